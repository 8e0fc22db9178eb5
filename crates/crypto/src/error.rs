/// Errors of the crypto crate. Messages name kinds and versions, never key material or values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A sealed value failed to authenticate: wrong key, wrong place, or tampered bytes.
    #[error("sealed value failed to open (wrong key, wrong place or modified)")]
    Open,
    /// A sealed value is shorter than its header or has an unknown format byte.
    #[error("sealed value is malformed")]
    Malformed,
    /// The sealed value names a key version other than the key offered.
    #[error("sealed value is for key version {found}, not {expected}")]
    KeyVersion {
        /// The version in the sealed header.
        found: u32,
        /// The version of the key that was offered.
        expected: u32,
    },
    /// Key material of the wrong length or encoding.
    #[error("invalid key material: {0}")]
    InvalidKey(&'static str),
    /// The operating system's random generator failed.
    #[error("random generator failed")]
    Random,
    /// An input a primitive cannot take (too short for FF1, a numeral out of range); the
    /// message names the rule, never the input.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// Passphrase derivation failed.
    #[error("passphrase key derivation failed")]
    Derivation,
}
