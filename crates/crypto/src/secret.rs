//! Types that hold secrets and personal values: zeroized on drop, `<redacted>` in `Debug`, no
//! `Display`, no `Serialize`. The inside is reached only through `expose`.

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A 256-bit symmetric key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Takes a key from a slice of exactly 32 bytes.
    ///
    /// # Errors
    /// [`crate::Error::InvalidKey`] when the slice is not 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, crate::Error> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| crate::Error::InvalidKey("a key is 32 bytes"))?;
        Ok(Self(arr))
    }

    /// A fresh random key from the operating system's generator.
    ///
    /// # Errors
    /// [`crate::Error::Random`] if the generator fails.
    pub fn generate() -> Result<Self, crate::Error> {
        let mut k = [0u8; 32];
        crate::random_bytes(&mut k)?;
        Ok(Self(k))
    }

    /// The key bytes.
    ///
    /// # Security
    /// Callers must not copy the bytes anywhere that is not zeroized.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A personal value in memory: zeroized on drop, redacted in `Debug`.
pub struct Pii<T: Zeroize = String>(Zeroizing<T>);

impl<T: Zeroize> Pii<T> {
    /// Wraps a personal value.
    pub fn new(value: T) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The personal value. Each caller says in a comment why it needs the plaintext.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize + Clone> Clone for Pii<T> {
    fn clone(&self) -> Self {
        Self::new((*self.0).clone())
    }
}

impl<T: Zeroize + PartialEq> PartialEq for Pii<T> {
    fn eq(&self, other: &Self) -> bool {
        *self.0 == *other.0
    }
}

impl<T: Zeroize> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Pii<Vec<u8>> {
    /// Converts UTF-8 bytes into a string without copying them outside a zeroizing buffer.
    ///
    /// # Errors
    /// [`crate::Error::Malformed`] when the bytes are not UTF-8.
    pub fn into_string(mut self) -> Result<Pii<String>, crate::Error> {
        let bytes = std::mem::take(&mut *self.0);
        match String::from_utf8(bytes) {
            Ok(s) => Ok(Pii::new(s)),
            Err(e) => {
                let mut b = e.into_bytes();
                b.zeroize();
                Err(crate::Error::Malformed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_inside() {
        let k = SecretKey::from_bytes([7; 32]);
        assert_eq!(format!("{k:?}"), "<redacted>");
        let p = Pii::new("ana@example.com".to_string());
        assert_eq!(format!("{p:?}"), "<redacted>");
        assert!(!format!("{:?}", (k, p)).contains("ana"));
    }
}
