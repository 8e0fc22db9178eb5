//! The per-tenant hash chain: each event's hash covers the previous hash, its sequence number
//! and its encoded bytes, so changing, removing or reordering any event changes every hash
//! after it.
//!
//! The chain starts from a genesis value derived from the tenant id rather than from zeros, so
//! that one tenant's chain can never be presented as another's, even if both start with equal
//! events. Sequence numbers start at 1 and have no gaps.

use crate::{Error, Event};
use boveda_crypto::sha256;
use serde::{Deserialize, Serialize};

const LINK_TAG: &[u8] = b"boveda/audit/link/v1\0";
const GENESIS_TAG: &[u8] = b"boveda/audit/genesis/v1\0";

/// An event as stored: its sequence number, canonical bytes and chain hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Position in the tenant's chain, from 1.
    pub seq: u64,
    /// [`Event::encode`] of the event.
    #[serde(with = "crate::serde_util::hex_vec")]
    pub encoded: Vec<u8>,
    /// [`link_hash`] of the previous hash, `seq` and `encoded`.
    #[serde(with = "crate::serde_util::hex_array")]
    pub hash: [u8; 32],
}

/// The `prev` value for a tenant's first event: SHA-256 over a domain tag and the tenant id.
pub fn genesis(tenant: &[u8; 16]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(GENESIS_TAG.len() + 16);
    buf.extend_from_slice(GENESIS_TAG);
    buf.extend_from_slice(tenant);
    sha256(&buf)
}

/// SHA-256 over a domain tag, the previous hash, the sequence number (big-endian) and the
/// encoded event. The tag keeps these hashes apart from any other SHA-256 in the system.
pub fn link_hash(prev: &[u8; 32], seq: u64, encoded: &[u8]) -> [u8; 32] {
    let mut buf = Vec::new();
    link_hash_with(&mut buf, prev, seq, encoded)
}

/// [`link_hash`] reusing a scratch buffer, for the verifier's loop.
pub(crate) fn link_hash_with(
    buf: &mut Vec<u8>,
    prev: &[u8; 32],
    seq: u64,
    encoded: &[u8],
) -> [u8; 32] {
    buf.clear();
    buf.reserve(LINK_TAG.len() + 40 + encoded.len());
    buf.extend_from_slice(LINK_TAG);
    buf.extend_from_slice(prev);
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(encoded);
    sha256(buf)
}

/// Appends events to one tenant's chain in memory. Storage keeps the head (last sequence
/// number and hash) and resumes with [`Chain::resume`]; two writers must serialise appends to
/// one tenant (a transaction on the head row) or they fork the chain.
#[derive(Debug, Clone)]
pub struct Chain {
    tenant: [u8; 16],
    last_seq: u64,
    last_hash: [u8; 32],
}

impl Chain {
    /// An empty chain for `tenant`.
    pub fn new(tenant: [u8; 16]) -> Self {
        Self {
            tenant,
            last_seq: 0,
            last_hash: genesis(&tenant),
        }
    }

    /// A chain that continues after a stored head. For `last_seq == 0` pass
    /// [`genesis`]`(&tenant)` as `last_hash` (or use [`Chain::new`]).
    pub fn resume(tenant: [u8; 16], last_seq: u64, last_hash: [u8; 32]) -> Self {
        Self {
            tenant,
            last_seq,
            last_hash,
        }
    }

    /// The tenant this chain belongs to.
    pub fn tenant(&self) -> [u8; 16] {
        self.tenant
    }

    /// The last sequence number and hash (0 and the genesis value when empty).
    pub fn head(&self) -> (u64, [u8; 32]) {
        (self.last_seq, self.last_hash)
    }

    /// Assigns the next sequence number to `event`, encodes it and links it.
    ///
    /// # Errors
    /// [`Error::WrongTenant`] if the event names another tenant, [`Error::Invalid`] if it breaks
    /// a limit, [`Error::SequenceExhausted`] after 2^64 - 1 events.
    pub fn append(&mut self, mut event: Event) -> Result<StoredEvent, Error> {
        if event.tenant != self.tenant {
            return Err(Error::WrongTenant);
        }
        event.check()?;
        let seq = self
            .last_seq
            .checked_add(1)
            .ok_or(Error::SequenceExhausted)?;
        event.seq = seq;
        let encoded = event.encode();
        let hash = link_hash(&self.last_hash, seq, &encoded);
        self.last_seq = seq;
        self.last_hash = hash;
        Ok(StoredEvent { seq, encoded, hash })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Outcome;

    fn ev(tenant: [u8; 16]) -> Event {
        Event::new(tenant, 1, "p", "user", "record.read", Outcome::Allowed, "r")
    }

    #[test]
    fn append_assigns_gapless_sequence_and_links_hashes() {
        let mut chain = Chain::new([1; 16]);
        let a = chain.append(ev([1; 16])).unwrap();
        let b = chain.append(ev([1; 16])).unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.hash, link_hash(&genesis(&[1; 16]), 1, &a.encoded));
        assert_eq!(b.hash, link_hash(&a.hash, 2, &b.encoded));
        assert_eq!(Event::decode(&b.encoded).unwrap().seq, 2);
        assert_eq!(chain.head(), (2, b.hash));
    }

    #[test]
    fn other_tenants_events_are_refused() {
        let mut chain = Chain::new([1; 16]);
        assert_eq!(chain.append(ev([2; 16])), Err(Error::WrongTenant));
        assert_eq!(chain.head().0, 0);
    }

    #[test]
    fn genesis_differs_per_tenant() {
        assert_ne!(genesis(&[1; 16]), genesis(&[2; 16]));
    }

    #[test]
    fn resume_continues_the_same_chain() {
        let mut a = Chain::new([1; 16]);
        a.append(ev([1; 16])).unwrap();
        let (seq, hash) = a.head();
        let mut b = Chain::resume([1; 16], seq, hash);
        assert_eq!(
            a.append(ev([1; 16])).unwrap(),
            b.append(ev([1; 16])).unwrap()
        );
    }
}
