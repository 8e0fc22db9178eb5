/// Errors of the audit crate. Messages name kinds and sequence numbers, never field values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Encoded event bytes are not a canonical version-1 event (truncated, trailing bytes, a bad
    /// tag, invalid UTF-8, an unknown version, or over a size limit).
    #[error("audit event is not decodable: {0}")]
    Undecodable(&'static str),
    /// An event breaks a limit or invariant before it is encoded (for example a string over
    /// [`crate::MAX_STRING_LEN`] bytes); the caller built it wrongly.
    #[error("audit event is invalid: {0}")]
    Invalid(&'static str),
    /// An event for another tenant was offered to this tenant's chain.
    #[error("audit event belongs to another tenant than this chain")]
    WrongTenant,
    /// The chain's sequence number would overflow; it cannot happen at any real event rate.
    #[error("audit sequence exhausted")]
    SequenceExhausted,
    /// A checkpoint names a key id other than the offered public key's.
    #[error("checkpoint at seq {seq} was signed by another key")]
    WrongKey {
        /// The checkpoint's sequence number.
        seq: u64,
    },
    /// A checkpoint's signature does not verify.
    #[error("checkpoint at seq {seq} has a bad signature")]
    BadSignature {
        /// The checkpoint's sequence number.
        seq: u64,
    },
    /// A JSON document (export line, verifier state, thresholds) could not be parsed.
    #[error("malformed json: {0}")]
    Json(String),
}
