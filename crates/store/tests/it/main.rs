//! Store integration tests: the conformance suite on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod conformance_runs;
