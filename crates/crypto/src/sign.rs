//! Ed25519 signatures (RFC 8032) for audit checkpoints, and a keyed HMAC for pseudonyms.
//!
//! A node's signing key signs the audit chain's checkpoints; anyone with the 32-byte public key
//! can check them offline. This module owns the private key: it is held inside aws-lc-rs and as
//! a zeroized PKCS#8 document, prints `<redacted>`, and leaves only through `expose_pkcs8`, which
//! exists so that `init` can store it sealed. It never logs.

use crate::{Error, SecretKey};
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use std::fmt;
use zeroize::Zeroizing;

/// Length of an Ed25519 public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a key id: the first bytes of SHA-256 of the public key, enough to tell keys apart
/// after a rotation, not to authenticate anything.
pub const KEY_ID_LEN: usize = 8;

/// An Ed25519 private key that signs audit checkpoints.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// A fresh key pair from the operating system's generator.
    ///
    /// # Errors
    /// [`Error::Random`] if the generator fails.
    pub fn generate() -> Result<Self, Error> {
        let pair = Ed25519KeyPair::generate().map_err(|_| Error::Random)?;
        // The PKCS#8 v2 document carries the public key too, so a stored key can be checked
        // against itself on load. aws-lc-rs zeroizes the `Document` when it drops.
        let doc = pair
            .to_pkcs8()
            .map_err(|_| Error::InvalidKey("ed25519 key could not be encoded as pkcs#8"))?;
        let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
        Ok(Self { pair, pkcs8 })
    }

    /// The key pair whose private seed is `seed` (RFC 8032 §5.1.5), so that a deployment can
    /// keep the 32-byte seed wrapped by its root key like any other key.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the seed is rejected.
    pub fn from_seed(seed: &crate::SecretKey) -> Result<Self, Error> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.expose())
            .map_err(|_| Error::InvalidKey("ed25519 seed"))?;
        let doc = pair
            .to_pkcs8()
            .map_err(|_| Error::InvalidKey("ed25519 key could not be encoded as pkcs#8"))?;
        Ok(Self {
            pkcs8: Zeroizing::new(doc.as_ref().to_vec()),
            pair,
        })
    }

    /// Loads a key from an unencrypted PKCS#8 (v1 or v2) document, as written by
    /// [`SigningKey::expose_pkcs8`] or `openssl genpkey -algorithm ED25519 -outform DER`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the bytes are not an Ed25519 PKCS#8 key, or a v2 document's
    /// public key does not match its private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        let pair = Ed25519KeyPair::from_pkcs8(der)
            .map_err(|_| Error::InvalidKey("not an ed25519 pkcs#8 key"))?;
        Ok(Self {
            pair,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// The PKCS#8 document, for storing the key (sealed) at `init`.
    ///
    /// # Security
    /// This is the private key. Callers seal it before it touches a disk and never log it.
    pub fn expose_pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public half, safe to export and print.
    pub fn public_key(&self) -> PublicKey {
        let mut bytes = [0u8; PUBLIC_KEY_LEN];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(bytes)
    }

    /// Signs `message` (Ed25519 is deterministic: the same message gives the same signature).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let sig = self.pair.sign(message);
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(sig.as_ref());
        out
    }
}

/// An Ed25519 public key: 32 bytes, public, comparable and printable.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublicKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// A signature did not verify under the offered public key. It carries no detail on purpose:
/// the only honest answer is "not signed by this key".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSignature;

impl fmt::Display for BadSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("signature does not verify under this public key")
    }
}

impl std::error::Error for BadSignature {}

impl PublicKey {
    /// Wraps raw public key bytes. Whether they are a valid curve point is checked by `verify`.
    pub fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Takes a public key from a slice of exactly 32 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the slice is not 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; PUBLIC_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::InvalidKey("an ed25519 public key is 32 bytes"))?;
        Ok(Self(arr))
    }

    /// The raw 32 bytes (RFC 8032 encoding).
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// The first [`KEY_ID_LEN`] bytes of SHA-256 of the public key: names which key signed.
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        let digest = crate::sha256(&self.0);
        let mut out = [0u8; KEY_ID_LEN];
        out.copy_from_slice(&digest[..KEY_ID_LEN]);
        out
    }

    /// Checks that `signature` over `message` was made by this key's private half.
    ///
    /// # Errors
    /// [`BadSignature`] for a wrong signature, a wrong message, a malformed signature or a
    /// public key that is not a valid point.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), BadSignature> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .map_err(|_| BadSignature)
    }
}

/// A keyed HMAC-SHA256 (RFC 2104) for pseudonyms: the same key and input always give the same
/// 32 bytes, and without the key the output says nothing about the input.
pub struct MacKey {
    key: hmac::Key,
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(<redacted>)")
    }
}

impl MacKey {
    /// A MAC key from key material.
    pub fn new(key: &SecretKey) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.expose()),
        }
    }

    /// HMAC-SHA256 over the concatenation of `parts`, without copying them into one buffer
    /// (the parts may be personal values that should not linger in a heap copy). Callers
    /// length-prefix variable parts themselves so that part boundaries are unambiguous.
    pub fn mac_parts(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in parts {
            ctx.update(part);
        }
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signature_verifies_under_its_public_key() {
        let key = SigningKey::generate().unwrap();
        let sig = key.sign(b"checkpoint");
        key.public_key().verify(b"checkpoint", &sig).unwrap();
    }

    #[test]
    fn wrong_message_or_key_or_signature_fails() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let sig = key.sign(b"checkpoint");
        assert_eq!(
            key.public_key().verify(b"checkpoinT", &sig),
            Err(BadSignature)
        );
        assert_eq!(
            other.public_key().verify(b"checkpoint", &sig),
            Err(BadSignature)
        );
        let mut bad = sig;
        bad[10] ^= 1;
        assert_eq!(
            key.public_key().verify(b"checkpoint", &bad),
            Err(BadSignature)
        );
        assert_eq!(
            key.public_key().verify(b"checkpoint", &sig[..63]),
            Err(BadSignature)
        );
    }

    #[test]
    fn pkcs8_round_trips_to_the_same_key() {
        let key = SigningKey::generate().unwrap();
        let loaded = SigningKey::from_pkcs8(key.expose_pkcs8()).unwrap();
        assert_eq!(key.public_key(), loaded.public_key());
        let sig = loaded.sign(b"m");
        key.public_key().verify(b"m", &sig).unwrap();
    }

    #[test]
    fn garbage_pkcs8_is_rejected() {
        assert!(SigningKey::from_pkcs8(b"not a key").is_err());
        let key = SigningKey::generate().unwrap();
        let mut der = key.expose_pkcs8().to_vec();
        let last = der.len() - 1;
        der[last] ^= 1; // the embedded public key no longer matches
        assert!(SigningKey::from_pkcs8(&der).is_err());
    }

    #[test]
    fn rfc8032_test_vector_1_verifies() {
        // RFC 8032 §7.1, TEST 1: empty message.
        let pk = hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
            .unwrap();
        let sig = hex::decode(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        )
        .unwrap();
        let pk = PublicKey::from_slice(&pk).unwrap();
        pk.verify(b"", &sig).unwrap();
        assert!(pk.verify(b"x", &sig).is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let key = SigningKey::generate().unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
        let mac = MacKey::new(&SecretKey::from_bytes([7; 32]));
        assert_eq!(format!("{mac:?}"), "MacKey(<redacted>)");
    }

    #[test]
    fn key_id_is_a_prefix_of_the_public_key_hash() {
        let key = SigningKey::generate().unwrap();
        let pk = key.public_key();
        assert_eq!(pk.key_id()[..], crate::sha256(pk.as_bytes())[..KEY_ID_LEN]);
    }

    #[test]
    fn mac_parts_equals_hmac_of_the_concatenation() {
        // RFC 4231 test case 2 split in two parts.
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(b"Jefe");
        // HMAC pads keys shorter than the block with zeros, so "Jefe" + 28 zero bytes is the
        // same key as "Jefe".
        let mac = MacKey::new(&SecretKey::from_bytes(k));
        let tag = mac.mac_parts(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
