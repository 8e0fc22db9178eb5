/// Errors of the policy crate. Messages name rules and problems; a policy holds no personal
/// data, and password checks report through [`crate::PasswordRule`], never through this type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The document is not well-formed TOML or JSON, has an unknown key or a wrong type.
    #[error("policy is not valid {format}: {message}")]
    Syntax {
        /// `"toml"` or `"json"`.
        format: &'static str,
        /// The parser's message, with its position.
        message: String,
    },
    /// A rule parses but is not valid.
    #[error("rule {rule:?}: {problem}")]
    Rule {
        /// The rule's id, or `#n` (1-based position) when it has none.
        rule: String,
        /// What is wrong.
        problem: String,
    },
    /// The data does not fit in a QR code.
    #[error("qr code: {0}")]
    Qr(String),
}
