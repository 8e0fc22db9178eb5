//! Integration tests of boveda-audit: one binary, one module per concern.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod analytics;
mod encoding;
mod export;
mod support;
mod tamper;
