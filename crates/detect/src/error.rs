//! The crate's one error type. Messages name settings and kinds, never the scanned text.

/// Everything that can go wrong when building a detector or applying an operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The language code is not one of en, es, zh.
    #[error("unsupported language {0:?}: supported languages are en, es and zh")]
    UnsupportedLanguage(String),
    /// A custom recognizer's regular expression does not compile.
    #[error("recognizer {recognizer:?}: pattern {pattern:?} is not a valid regular expression")]
    InvalidPattern {
        /// The recognizer's name from the configuration.
        recognizer: String,
        /// The pattern's name from the configuration.
        pattern: String,
    },
    /// A setting of a recognizer is out of range or missing.
    #[error("recognizer {recognizer:?}: {reason}")]
    InvalidRecognizer {
        /// The recognizer's name from the configuration.
        recognizer: String,
        /// What is wrong, in a few words.
        reason: &'static str,
    },
    /// An operator was given a parameter it cannot use.
    #[error("operator {operator:?}: {reason}")]
    InvalidOperator {
        /// The operator's name (`mask`, `generalise`).
        operator: String,
        /// What is wrong, in a few words.
        reason: String,
    },
    /// A keyed operator supplied from outside failed; the reason comes from it and must not
    /// contain the value it was applied to.
    #[error("operator {operator:?} failed: {reason}")]
    OperatorFailed {
        /// The operator's name (`hash`, `encrypt`, `vault_token`).
        operator: String,
        /// What went wrong, without values.
        reason: String,
    },
    /// A bug: an invariant of this crate did not hold.
    #[error("internal error in the detector, please report: {0}")]
    Unreachable(&'static str),
}
