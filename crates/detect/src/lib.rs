//! PII detection and de-identification for boveda: pure functions from text to findings.
//!
//! The crate performs no I/O. Its checksum rules are shared with the vault's validation of typed
//! fields so that one piece of code decides whether a card number, an IBAN or an identity number
//! is well formed.
//!
//! ```
//! assert!(boveda_detect::checksum::luhn_valid("4111111111111111"));
//! ```

pub mod checksum;
