//! Integration tests of boveda-policy, in one binary (build time on two cores matters).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod decide_laws;
