//! Bearer tokens (API keys, the bootstrap operator credential): 256 random bits, shown once,
//! stored only as their SHA-256. A plain hash is enough here because the input is uniformly
//! random, not a password.

use crate::{Error, random_bytes, sha256};
use base64::Engine as _;
use zeroize::Zeroizing;

/// A bearer token in clear, as shown once to its owner.
pub struct Token(Zeroizing<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A fresh token with a readable prefix, e.g. `bvd_sa_…`.
    ///
    /// # Errors
    /// [`Error::Random`] if the generator fails.
    pub fn generate(prefix: &str) -> Result<Self, Error> {
        let mut raw = Zeroizing::new([0u8; 32]);
        random_bytes(raw.as_mut())?;
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_ref());
        Ok(Self(Zeroizing::new(format!("{prefix}{body}"))))
    }

    /// A token made of given text (a composite token whose random part came from
    /// [`Token::generate`]).
    pub fn from_text(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The token text, to be shown once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form.
    pub fn hash(&self) -> [u8; 32] {
        hash(&self.0)
    }
}

/// The stored form of a presented token.
pub fn hash(token: &str) -> [u8; 32] {
    sha256(token.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let a = Token::generate("bvd_").unwrap();
        let b = Token::generate("bvd_").unwrap();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("bvd_"));
        assert_eq!(a.hash(), hash(a.expose()));
        assert_eq!(format!("{a:?}"), "Token(<redacted>)");
    }
}
