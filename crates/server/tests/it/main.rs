//! Server integration tests over real TLS on port 0, with a client that trusts only the
//! generated development certificate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod harness;

mod audit;
mod canary;
mod erasure;
mod incidents;
mod isolation;
mod notices;
mod openapi_cover;
mod presidio;
mod rotation;
mod staff;
mod tour;
mod transport;
mod validation;
