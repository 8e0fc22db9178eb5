//! Integration tests of boveda-detect: the evaluation corpus and its scorer, and properties.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod corpus;
#[allow(dead_code)]
mod corpus_gen;
mod properties;
