//! Signed checkpoints: a node's Ed25519 signature over a tenant's chain head.
//!
//! Hashes alone do not stop someone with write access to the database from rewriting the tail
//! and recomputing every hash after it. A checkpoint fixes the hash at a sequence number under a
//! key that the database does not hold in the clear, so a rewrite before the latest checkpoint,
//! a truncation below it, or an edited checkpoint shows up in verification.

use crate::Error;
use crate::serde_util;
use boveda_crypto::sign::{KEY_ID_LEN, PublicKey, SigningKey};
use serde::{Deserialize, Serialize};

const CHECKPOINT_TAG: &[u8] = b"boveda/audit/checkpoint/v1\0";

/// A signed statement "tenant T's chain had hash H at sequence S at time A".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The tenant whose chain is covered.
    #[serde(with = "serde_util::tenant")]
    pub tenant: [u8; 16],
    /// The sequence number of the last covered event.
    pub seq: u64,
    /// That event's chain hash.
    #[serde(with = "serde_util::hex_array")]
    pub hash: [u8; 32],
    /// When the checkpoint was made, milliseconds since the Unix epoch (UTC).
    pub at_ms: i64,
    /// [`PublicKey::key_id`] of the signing key, to pick the right key after a rotation.
    #[serde(with = "serde_util::hex_array")]
    pub key_id: [u8; KEY_ID_LEN],
    /// Ed25519 signature over [`Checkpoint::signed_bytes`].
    #[serde(with = "serde_util::hex_vec")]
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// Signs the chain head `(seq, hash)` of `tenant`.
    pub fn sign(tenant: [u8; 16], seq: u64, hash: [u8; 32], at_ms: i64, key: &SigningKey) -> Self {
        let mut cp = Self {
            tenant,
            seq,
            hash,
            at_ms,
            key_id: key.public_key().key_id(),
            signature: Vec::new(),
        };
        cp.signature = key.sign(&cp.signed_bytes()).to_vec();
        cp
    }

    /// The canonical bytes the signature covers: a domain tag, then tenant, seq (big-endian),
    /// hash, at_ms (big-endian) and key id, all fixed-size.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(CHECKPOINT_TAG.len() + 16 + 8 + 32 + 8 + KEY_ID_LEN);
        b.extend_from_slice(CHECKPOINT_TAG);
        b.extend_from_slice(&self.tenant);
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.hash);
        b.extend_from_slice(&self.at_ms.to_be_bytes());
        b.extend_from_slice(&self.key_id);
        b
    }

    /// Checks the key id and the signature.
    ///
    /// # Errors
    /// [`Error::WrongKey`] if the checkpoint names another key, [`Error::BadSignature`] if any
    /// byte of it was changed.
    pub fn verify(&self, public_key: &PublicKey) -> Result<(), Error> {
        if self.key_id != public_key.key_id() {
            return Err(Error::WrongKey { seq: self.seq });
        }
        public_key
            .verify(&self.signed_bytes(), &self.signature)
            .map_err(|_| Error::BadSignature { seq: self.seq })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signed_checkpoint_verifies_and_any_edit_fails() {
        let key = SigningKey::generate().unwrap();
        let pk = key.public_key();
        let cp = Checkpoint::sign([1; 16], 10, [2; 32], 99, &key);
        cp.verify(&pk).unwrap();
        let edits: Vec<fn(&mut Checkpoint)> = vec![
            |c| c.tenant[0] ^= 1,
            |c| c.seq += 1,
            |c| c.hash[31] ^= 1,
            |c| c.at_ms += 1,
            |c| c.key_id[0] ^= 1,
            |c| c.signature[5] ^= 1,
            |c| {
                c.signature.pop();
            },
        ];
        for edit in edits {
            let mut bad = cp.clone();
            edit(&mut bad);
            assert!(bad.verify(&pk).is_err());
        }
    }

    #[test]
    fn another_key_is_named_as_such() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let cp = Checkpoint::sign([1; 16], 3, [2; 32], 0, &key);
        assert_eq!(
            cp.verify(&other.public_key()),
            Err(Error::WrongKey { seq: 3 })
        );
    }

    #[test]
    fn json_round_trips() {
        let key = SigningKey::generate().unwrap();
        let cp = Checkpoint::sign([1; 16], 3, [2; 32], 0, &key);
        let json = serde_json::to_string(&cp).unwrap();
        assert_eq!(serde_json::from_str::<Checkpoint>(&json).unwrap(), cp);
    }
}
