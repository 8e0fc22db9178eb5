//! boveda's audit log without I/O: the event model, its canonical encoding, the per-tenant hash
//! chain, Ed25519-signed checkpoints, the verifier, behaviour analytics and SIEM formats.
//!
//! Storage, durability and fail-closed behaviour live in `core` and `store`; this crate only
//! computes, so every rule here is unit- and property-tested and fuzzable. Nothing here may hold
//! a personal value: events carry ids and keyed pseudonyms only.
//!
//! ```
//! use boveda_audit::{Chain, Checkpoint, Event, Outcome, Report, verify};
//! use boveda_crypto::sign::SigningKey;
//!
//! let tenant = [7u8; 16];
//! let mut chain = Chain::new(tenant);
//! let stored = chain
//!     .append(Event::new(tenant, 1_700_000_000_000, "p-1", "user", "auth.login", Outcome::Allowed, "req-1"))
//!     .unwrap();
//! let key = SigningKey::generate().unwrap();
//! let (seq, hash) = chain.head();
//! let checkpoint = Checkpoint::sign(tenant, seq, hash, 1_700_000_000_500, &key);
//! let report = verify([stored], &[checkpoint], &key.public_key(), None);
//! assert!(matches!(report, Report::Intact { last_seq: 1, .. }));
//! ```

mod analytics;
mod chain;
mod checkpoint;
mod error;
mod event;
mod export;
mod serde_util;
mod verify;

pub use analytics::{Alert, AlertKind, Analyzer, Hours, MAX_ALERT_EVENTS, Thresholds};
pub use chain::{Chain, StoredEvent, genesis, link_hash};
pub use checkpoint::Checkpoint;
pub use error::Error;
pub use event::{AuditKey, Columns, Event, MAX_LIST_LEN, MAX_STRING_LEN, Outcome, VERSION};
pub use export::{from_json_line, to_cef, to_json_line};
pub use verify::{Problem, Report, VerifierState, verify};
