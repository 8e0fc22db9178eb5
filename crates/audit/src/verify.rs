//! The verifier: walks a tenant's stored events and checkpoints and names the first thing wrong.
//!
//! What it proves, and what it cannot:
//! - Any change to an event's bytes, sequence number or hash, a removed or reordered event, and
//!   an event inserted without recomputing the hashes after it break the chain itself.
//! - Someone with write access to the database can rewrite a suffix and recompute every hash.
//!   Signed checkpoints catch that for everything up to the latest checkpoint: its hash no
//!   longer matches ([`Problem::CheckpointMismatch`]), or the chain now ends before it
//!   ([`Problem::TruncatedTail`]). Events after the latest checkpoint are protected only by a
//!   saved [`VerifierState`] from an earlier run, so checkpoints should be frequent.
//! - Putting back an older copy of the whole database (events and checkpoints) is consistent in
//!   itself; only the verifier's saved state reveals it ([`Problem::Rollback`]).
//! - Events before the first stored one may have been removed by retention, which keeps the
//!   checkpoints: a chain that starts right after a valid checkpoint is accepted from there.
//!
//! It never fails open: any input it cannot make sense of is a [`Report::Broken`].

use crate::chain::{genesis, link_hash_with};
use crate::serde_util;
use crate::{Checkpoint, Error, Event, StoredEvent};
use boveda_crypto::sign::PublicKey;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What is wrong at [`Report::Broken::first_bad_seq`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// The event's bytes, sequence number or stored hash were changed: its hash does not link.
    Modified,
    /// Events are missing: the next stored event is `found`, not `expected`.
    Deleted {
        /// The sequence number that should have come next.
        expected: u64,
        /// The sequence number that came instead.
        found: u64,
    },
    /// Events are stored out of order: the event here belongs at another position.
    Reordered,
    /// An extra event that does not belong to the chain was inserted here.
    Inserted,
    /// The event's hash links but its bytes are not a canonical event (a bug or a forgery by
    /// someone who recomputed the hashes).
    Undecodable,
    /// An event, a checkpoint or the saved state names another tenant.
    WrongTenant,
    /// A checkpoint's signature or key id does not verify under the trusted public key.
    BadCheckpointSignature,
    /// A validly signed checkpoint holds another hash for this sequence number: the chain was
    /// rewritten up to here.
    CheckpointMismatch,
    /// The chain ends before a validly signed checkpoint: its tail was removed.
    TruncatedTail {
        /// The sequence number of the latest checkpoint.
        checkpoint_seq: u64,
    },
    /// The chain or the checkpoints end before what this verifier saw on an earlier run: an
    /// older copy was put back.
    Rollback {
        /// The sequence number the saved state had reached.
        state_seq: u64,
    },
    /// The chain holds another hash at the saved state's sequence number than an earlier run
    /// saw: history after the last checkpoint was rewritten.
    Forked,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Modified => f.write_str("event modified (hash does not link)"),
            Problem::Deleted { expected, found } => {
                write!(f, "events deleted (expected seq {expected}, found {found})")
            }
            Problem::Reordered => f.write_str("events reordered"),
            Problem::Inserted => f.write_str("event inserted"),
            Problem::Undecodable => f.write_str("event bytes are not a canonical event"),
            Problem::WrongTenant => f.write_str("event or checkpoint of another tenant"),
            Problem::BadCheckpointSignature => f.write_str("checkpoint signature does not verify"),
            Problem::CheckpointMismatch => f.write_str("chain disagrees with a signed checkpoint"),
            Problem::TruncatedTail { checkpoint_seq } => {
                write!(
                    f,
                    "chain ends before the checkpoint at seq {checkpoint_seq}"
                )
            }
            Problem::Rollback { state_seq } => {
                write!(
                    f,
                    "rolled back below seq {state_seq} seen on an earlier run"
                )
            }
            Problem::Forked => f.write_str("chain differs from what an earlier run saw"),
        }
    }
}

/// The verifier's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Report {
    /// Everything checked out.
    Intact {
        /// The first stored sequence number verified (1 unless retention removed a prefix).
        first_seq: u64,
        /// The last sequence number (0 for an empty chain).
        last_seq: u64,
        /// The last event's hash (the genesis value for an empty chain).
        #[serde(with = "serde_util::hex_array")]
        last_hash: [u8; 32],
        /// How many events were verified.
        events: u64,
        /// The latest checkpoint's sequence number (0 without checkpoints).
        checkpoint_seq: u64,
    },
    /// The first problem found; nothing after it was trusted.
    Broken {
        /// The sequence number where the chain first goes wrong.
        first_bad_seq: u64,
        /// What is wrong there.
        problem: Problem,
    },
}

impl Report {
    /// Whether the log verified.
    pub fn is_intact(&self) -> bool {
        matches!(self, Report::Intact { .. })
    }
}

/// What a verifier saw last time, kept by the CLI in a small JSON file so that the next run can
/// detect a rollback or a rewritten unsigned tail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierState {
    /// The tenant verified.
    #[serde(with = "serde_util::tenant")]
    pub tenant: [u8; 16],
    /// The last sequence number seen intact.
    pub seq: u64,
    /// Its hash.
    #[serde(with = "serde_util::hex_array")]
    pub hash: [u8; 32],
    /// The latest checkpoint seen.
    #[serde(default)]
    pub checkpoint_seq: u64,
}

impl VerifierState {
    /// The state to save after `report`, or `None` if the log did not verify (keep the old
    /// state then: a broken log must not lower what the verifier has seen).
    pub fn after(tenant: [u8; 16], report: &Report) -> Option<Self> {
        match report {
            Report::Intact {
                last_seq,
                last_hash,
                checkpoint_seq,
                ..
            } => Some(Self {
                tenant,
                seq: *last_seq,
                hash: *last_hash,
                checkpoint_seq: *checkpoint_seq,
            }),
            Report::Broken { .. } => None,
        }
    }

    /// The state as one line of JSON.
    pub fn to_json(&self) -> String {
        // Serialising a struct of integers and strings into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a saved state.
    ///
    /// # Errors
    /// [`Error::Json`] if the text is not a state.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|e| serde_util::json_error(&e))
    }
}

fn broken(first_bad_seq: u64, problem: Problem) -> Report {
    Report::Broken {
        first_bad_seq,
        problem,
    }
}

/// Verifies one tenant's events (in stored order) against its checkpoints, the trusted public
/// key and, if the caller kept one, the state from an earlier run. Memory stays constant in the
/// number of events; checkpoints are held in memory.
pub fn verify<I>(
    events: I,
    checkpoints: &[Checkpoint],
    public_key: &PublicKey,
    state: Option<&VerifierState>,
) -> Report
where
    I: IntoIterator<Item = StoredEvent>,
{
    let mut cps: Vec<&Checkpoint> = checkpoints.iter().collect();
    cps.sort_by_key(|c| c.seq);
    for cp in &cps {
        if cp.verify(public_key).is_err() {
            return broken(cp.seq, Problem::BadCheckpointSignature);
        }
    }
    let mut it = events.into_iter().peekable();

    // The tenant comes from what the verifier trusts most: its own state, then a signed
    // checkpoint, and only then the first event.
    let tenant = match (state, cps.first(), it.peek()) {
        (Some(s), _, _) => s.tenant,
        (None, Some(c), _) => c.tenant,
        (None, None, Some(first)) => match Event::peek_head(&first.encoded) {
            Ok((t, _)) => t,
            Err(_) => return broken(first.seq, Problem::Undecodable),
        },
        (None, None, None) => [0; 16],
    };
    if let Some(cp) = cps.iter().find(|c| c.tenant != tenant) {
        return broken(cp.seq, Problem::WrongTenant);
    }

    // Start at 1 from the genesis value, or right after a signed checkpoint if retention
    // removed the events before it.
    let (mut expected, mut prev) = match it.peek() {
        Some(first) if first.seq > 1 => {
            match cps.iter().find(|c| Some(c.seq) == first.seq.checked_sub(1)) {
                Some(anchor) => (first.seq, anchor.hash),
                None => (1, genesis(&tenant)),
            }
        }
        _ => (1, genesis(&tenant)),
    };
    let first_seq = expected;
    let mut ci = cps.partition_point(|c| c.seq < first_seq);
    let mut count = 0u64;
    let mut buf = Vec::with_capacity(512);

    while let Some(x) = it.next() {
        let links =
            x.seq == expected && link_hash_with(&mut buf, &prev, expected, &x.encoded) == x.hash;
        if !links {
            let problem = diagnose(&x, it.peek(), expected, &prev, &mut buf);
            return broken(expected, problem);
        }
        match Event::validate(&x.encoded) {
            Err(_) => return broken(expected, Problem::Undecodable),
            Ok((t, _)) if t != tenant => return broken(expected, Problem::WrongTenant),
            // The hash links, so whoever wrote this computed it over a wrong inner seq.
            Ok((_, s)) if s != expected => return broken(expected, Problem::Modified),
            Ok(_) => {}
        }
        while let Some(cp) = cps.get(ci).filter(|c| c.seq == expected) {
            if cp.hash != x.hash {
                return broken(expected, Problem::CheckpointMismatch);
            }
            ci += 1;
        }
        if let Some(s) = state.filter(|s| s.seq == expected)
            && s.hash != x.hash
        {
            return broken(expected, Problem::Forked);
        }
        prev = x.hash;
        count += 1;
        expected = match expected.checked_add(1) {
            Some(n) => n,
            None => return broken(expected, Problem::Inserted),
        };
    }

    let last_seq = expected - 1; // expected starts at 1 or above and only grows
    let checkpoint_seq = cps.last().map_or(0, |c| c.seq);
    if checkpoint_seq > last_seq {
        return broken(last_seq + 1, Problem::TruncatedTail { checkpoint_seq });
    }
    if let Some(s) = state {
        if s.seq > last_seq {
            return broken(last_seq + 1, Problem::Rollback { state_seq: s.seq });
        }
        if s.checkpoint_seq > checkpoint_seq {
            return broken(
                checkpoint_seq + 1,
                Problem::Rollback {
                    state_seq: s.checkpoint_seq,
                },
            );
        }
    }
    Report::Intact {
        first_seq,
        last_seq,
        last_hash: prev,
        events: count,
        checkpoint_seq,
    }
}

/// Names what is wrong with `x`, which does not link at `expected`, looking one event ahead.
fn diagnose(
    x: &StoredEvent,
    next: Option<&StoredEvent>,
    expected: u64,
    prev: &[u8; 32],
    buf: &mut Vec<u8>,
) -> Problem {
    // The content links at this position: only its stored sequence number was edited.
    if x.seq != expected && link_hash_with(buf, prev, expected, &x.encoded) == x.hash {
        return Problem::Modified;
    }
    // The next event is the one that belongs here: `x` was either swapped with it or inserted.
    if let Some(y) = next
        && y.seq == expected
        && link_hash_with(buf, prev, expected, &y.encoded) == y.hash
    {
        let swapped = Some(x.seq) == expected.checked_add(1)
            && link_hash_with(buf, &y.hash, x.seq, &x.encoded) == x.hash;
        return if swapped {
            Problem::Reordered
        } else {
            Problem::Inserted
        };
    }
    if x.seq > expected {
        return Problem::Deleted {
            expected,
            found: x.seq,
        };
    }
    if x.seq < expected {
        // A sequence number that was already used: a replayed or forged extra event.
        return Problem::Inserted;
    }
    // Right position, wrong hash. If the content is a valid event from another position, the
    // rows' contents were swapped; otherwise the bytes or the hash were edited.
    match Event::validate(&x.encoded) {
        Ok((_, inner)) if inner != expected => Problem::Reordered,
        _ => Problem::Modified,
    }
}
