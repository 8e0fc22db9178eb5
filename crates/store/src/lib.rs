//! boveda's storage: the [`Store`] trait over sealed rows only, and its two backends, SQLite (the
//! embedded default) and PostgreSQL (for several nodes).
//!
//! Backends never see plaintext, keys or policy: every personal value arrives already sealed,
//! every key already wrapped, every searchable value as a keyed blind index. Storage is treated
//! as untrusted; integrity comes from the AEAD binding in `boveda-crypto`.
//!
//! Key material (tenant KEKs and subject DEKs) lives apart from the data (`keys.db` for SQLite,
//! an optional second database for PostgreSQL) so that a backup of the data alone cannot bring
//! back a subject whose key was destroyed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), boveda_store::Error> {
//! let store = boveda_store::sqlite::SqliteStore::open(std::path::Path::new("./boveda-data")).await?;
//! # let _ = store; Ok(()) }
//! ```

mod error;
mod ids;
mod rows;

#[doc(hidden)]
pub mod conformance;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

pub use boveda_audit::{Checkpoint, Event as AuditEvent, StoredEvent};
pub use error::Error;
pub use ids::{AlertId, IncidentId, PrincipalId, RecordId, SubjectId, TenantId};
pub use rows::{
    AlertRow, AuditFilter, CollectionRow, IncidentRow, IndexEntry, KeyState, NoticeRow, PolicyRow,
    PrincipalRow, RecordRow, RetireOutcome, SessionRow, SubjectKeyRow, TenantKeyRow, TenantRow,
    TokenRow, UserRow,
};

/// Result of store calls.
pub type Result<T> = std::result::Result<T, Error>;

/// Persistent storage of sealed rows. Every method is scoped by tenant where rows belong to one:
/// a backend never returns a row of another tenant, whatever ids it is given.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for metrics and logs: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Whether the store answers at all (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    /// A value of the instance metadata table.
    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets a metadata value, replacing any (export cursors and the like).
    async fn set_meta(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Sets a metadata value unless one exists; returns the value now stored.
    async fn init_meta(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;

    /// Creates a tenant and its first KEK version. [`Error::Conflict`] if the name is taken.
    async fn create_tenant(&self, tenant: &TenantRow, first_key: &TenantKeyRow) -> Result<()>;
    /// One tenant.
    async fn tenant(&self, id: TenantId) -> Result<Option<TenantRow>>;
    /// Every tenant, oldest first.
    async fn tenants(&self) -> Result<Vec<TenantRow>>;
    /// Replaces a tenant's settings document; false if there is no such tenant.
    async fn update_tenant_settings(&self, id: TenantId, settings: &str) -> Result<bool>;

    /// Every KEK version of a tenant, lowest first.
    async fn tenant_keys(&self, tenant: TenantId) -> Result<Vec<TenantKeyRow>>;
    /// Adds a new active KEK version; the previous active version becomes decrypt-only, in the
    /// same transaction. [`Error::Conflict`] if the version exists.
    async fn add_tenant_key(&self, key: &TenantKeyRow) -> Result<()>;
    /// Retires a decrypt-only version nothing uses any more, destroying its wrapped key.
    async fn retire_tenant_key(&self, tenant: TenantId, version: u32) -> Result<RetireOutcome>;

    /// Creates a principal. [`Error::Conflict`] on a duplicate id or token.
    async fn create_principal(&self, principal: &PrincipalRow) -> Result<()>;
    /// The enabled principal that holds a token, by the token's hash.
    async fn principal_by_token(&self, token_hash: &[u8]) -> Result<Option<PrincipalRow>>;
    /// The principals of a tenant (or the platform operators for `None`).
    async fn principals(&self, tenant: Option<TenantId>) -> Result<Vec<PrincipalRow>>;
    /// Disables a principal of a tenant; false if there is no such principal there.
    async fn disable_principal(&self, tenant: TenantId, id: PrincipalId) -> Result<bool>;

    /// Creates or replaces a collection schema.
    async fn put_collection(&self, collection: &CollectionRow) -> Result<()>;
    /// One collection of a tenant.
    async fn collection(&self, tenant: TenantId, name: &str) -> Result<Option<CollectionRow>>;
    /// The collections of a tenant, by name.
    async fn collections(&self, tenant: TenantId) -> Result<Vec<CollectionRow>>;

    /// Stores new subjects' wrapped DEKs. [`Error::Conflict`] if one exists.
    async fn insert_subject_keys(&self, keys: &[SubjectKeyRow]) -> Result<()>;
    /// The wrapped DEKs of the given subjects of a tenant that exist (erased ones do not).
    async fn subject_keys(
        &self,
        tenant: TenantId,
        subjects: &[SubjectId],
    ) -> Result<Vec<SubjectKeyRow>>;
    /// Erases a subject: destroys its wrapped DEK first (the crypto-shredding point), then
    /// deletes its records and index entries, and appends the audit events. The stored
    /// events, or `None` if the subject did not exist (then nothing is appended).
    async fn erase_subject(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        audit: &[AuditEvent],
    ) -> Result<Option<Vec<StoredEvent>>>;
    /// Up to `limit` subject keys of a tenant wrapped by a KEK version other than `version`.
    async fn subject_keys_not_at(
        &self,
        tenant: TenantId,
        version: u32,
        limit: usize,
    ) -> Result<Vec<SubjectKeyRow>>;
    /// Replaces wrapped DEKs after a rewrap, each only if it is still at `from_version`
    /// (another node may have moved it). Returns how many rows changed.
    async fn rewrap_subject_keys(&self, from_version: u32, keys: &[SubjectKeyRow]) -> Result<u64>;
    /// How many subject keys each KEK version wraps.
    async fn subject_key_versions(&self, tenant: TenantId) -> Result<Vec<(u32, u64)>>;

    /// Inserts records and their index entries, and appends their audit events, in one
    /// transaction: all or nothing; returns the stored events. [`Error::Conflict`] on a
    /// duplicate record id.
    async fn insert_records(
        &self,
        records: &[RecordRow],
        index: &[IndexEntry],
        audit: &[AuditEvent],
    ) -> Result<Vec<StoredEvent>>;
    /// The records with these ids in a collection of a tenant; missing ids are left out.
    async fn records(
        &self,
        tenant: TenantId,
        collection: &str,
        ids: &[RecordId],
    ) -> Result<Vec<RecordRow>>;
    /// Replaces a record's sealed fields and index entries if its version is still
    /// `expected_version`, appending the audit events, and returns them; `None` otherwise
    /// (missing or changed concurrently).
    async fn update_record(
        &self,
        record: &RecordRow,
        index: &[IndexEntry],
        expected_version: i64,
        audit: &[AuditEvent],
    ) -> Result<Option<Vec<StoredEvent>>>;
    /// Deletes a record and its index entries, appending the audit events in the same
    /// transaction, and returns them; `None` if it did not exist.
    async fn delete_record(
        &self,
        tenant: TenantId,
        collection: &str,
        id: RecordId,
        audit: &[AuditEvent],
    ) -> Result<Option<Vec<StoredEvent>>>;
    /// Records whose `field` has blind index `digest`, oldest first, at most `limit`.
    async fn search(
        &self,
        tenant: TenantId,
        collection: &str,
        field: &str,
        digest: &[u8],
        limit: usize,
    ) -> Result<Vec<RecordRow>>;
    /// How many records have each digest in `field`, in the order given.
    async fn count_digests(
        &self,
        tenant: TenantId,
        collection: &str,
        field: &str,
        digests: &[Vec<u8>],
    ) -> Result<Vec<u64>>;
    /// The most frequent digests of a field with their counts, most frequent first.
    async fn top_digests(
        &self,
        tenant: TenantId,
        collection: &str,
        field: &str,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>>;

    /// Creates a staff user. [`Error::Conflict`] when the tenant has a user with that login.
    async fn create_user(&self, user: &UserRow) -> Result<()>;
    /// One staff user of a tenant.
    async fn user(&self, tenant: TenantId, id: PrincipalId) -> Result<Option<UserRow>>;
    /// The staff user of a tenant with this login digest.
    async fn user_by_login(&self, tenant: TenantId, login_digest: &[u8])
    -> Result<Option<UserRow>>;
    /// The staff users of a tenant, oldest first.
    async fn users(&self, tenant: TenantId) -> Result<Vec<UserRow>>;
    /// Replaces a user's state if its version is still `expected_version` (compare and swap:
    /// lockout counters and TOTP steps stay right across nodes). False otherwise.
    async fn update_user(&self, user: &UserRow, expected_version: i64) -> Result<bool>;

    /// Stores a new session.
    async fn create_session(&self, session: &SessionRow) -> Result<()>;
    /// A session by its token's hash.
    async fn session(&self, token_hash: &[u8]) -> Result<Option<SessionRow>>;
    /// Saves a session's last use, MFA time and revocation. False if it does not exist.
    async fn update_session(&self, session: &SessionRow) -> Result<bool>;
    /// Makes every live session of a user need a fresh MFA check (step-up) before rules with
    /// an MFA condition allow anything; returns how many sessions.
    async fn expire_session_mfa(&self, tenant: TenantId, user: PrincipalId) -> Result<u64>;
    /// Revokes every session of a user; returns how many were live.
    async fn revoke_sessions(&self, tenant: TenantId, user: PrincipalId) -> Result<u64>;

    /// Stores a new policy version. [`Error::Conflict`] if the version exists.
    async fn put_policy(&self, policy: &PolicyRow) -> Result<()>;
    /// The latest policy version of a tenant.
    async fn policy(&self, tenant: TenantId) -> Result<Option<PolicyRow>>;

    /// Notes that a principal touched these subjects on `day` (days since the epoch) and
    /// returns how many distinct subjects it has touched that day.
    async fn note_subject_access(
        &self,
        tenant: TenantId,
        principal: PrincipalId,
        day: i64,
        subjects: &[SubjectId],
    ) -> Result<u64>;

    /// Appends audit events to their tenants' chains, assigning gapless sequence numbers and
    /// chain hashes under a lock on each chain's head (so several nodes never fork a chain).
    /// The events are shared rather than borrowed so that a store that appends on another
    /// thread need not copy them: this is the read path's one write.
    async fn append_audit(&self, events: Arc<Vec<AuditEvent>>) -> Result<Vec<StoredEvent>>;
    /// Whether the audit journal accepts writes now (a rolled-back trial insert).
    async fn audit_probe(&self) -> Result<()>;
    /// A tenant's chain head: last sequence number and hash.
    async fn audit_head(&self, tenant: TenantId) -> Result<Option<(u64, [u8; 32])>>;
    /// Stored events of a tenant matching a filter, in sequence order, after `after_seq`.
    async fn audit_events(
        &self,
        tenant: TenantId,
        filter: &AuditFilter,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>>;
    /// Deletes a tenant's events up to and including `seq` (retention). Checkpoints stay, so
    /// the remaining chain still verifies from the checkpoint at `seq`.
    async fn prune_audit(&self, tenant: TenantId, seq: u64) -> Result<u64>;
    /// Stores a signed checkpoint, never ahead of the events it covers: at once when they are
    /// all in the store; on SQLite, one of staged read events goes in with the move that takes
    /// them in (durable from then on), so that making it never waits for that move.
    async fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()>;
    /// A tenant's checkpoints, in sequence order.
    async fn checkpoints(&self, tenant: TenantId) -> Result<Vec<Checkpoint>>;

    /// Stores an alert.
    async fn add_alert(&self, alert: &AlertRow) -> Result<()>;
    /// A tenant's alerts, newest first, optionally only those in one state.
    async fn alerts(
        &self,
        tenant: TenantId,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AlertRow>>;
    /// Moves an alert to a new state; false if there is no such alert in the tenant.
    async fn set_alert_state(
        &self,
        tenant: TenantId,
        id: AlertId,
        state: &str,
        at_ms: i64,
    ) -> Result<bool>;

    /// Stores a new incident.
    async fn create_incident(&self, incident: &IncidentRow) -> Result<()>;
    /// One incident of a tenant.
    async fn incident(&self, tenant: TenantId, id: IncidentId) -> Result<Option<IncidentRow>>;
    /// A tenant's incidents, newest first.
    async fn incidents(&self, tenant: TenantId) -> Result<Vec<IncidentRow>>;
    /// Replaces an incident if its version is still `expected_version`.
    async fn update_incident(&self, incident: &IncidentRow, expected_version: i64) -> Result<bool>;
    /// Stores an incident's planned notices; a key that exists is left as it is. Returns how
    /// many were new.
    async fn insert_notices(&self, notices: &[NoticeRow]) -> Result<u64>;
    /// An incident's notices in key order.
    async fn notices(&self, tenant: TenantId, incident: IncidentId) -> Result<Vec<NoticeRow>>;
    /// Stores vault tokens (a token already stored is left as it is) and appends their audit
    /// events, in one transaction. Returns how many were new, and the stored events.
    async fn insert_tokens(
        &self,
        tokens: &[TokenRow],
        audit: &[AuditEvent],
    ) -> Result<(u64, Vec<StoredEvent>)>;
    /// The stored tokens among `tokens` in a scope of a tenant; unknown ones are left out.
    async fn tokens(
        &self,
        tenant: TenantId,
        scope: &str,
        tokens: &[String],
    ) -> Result<Vec<TokenRow>>;
    /// Notices of an incident due at `now_ms` (`due_ms <= now_ms`), earliest first, at most
    /// `limit`.
    async fn due_notices(
        &self,
        tenant: TenantId,
        incident: IncidentId,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<NoticeRow>>;
    /// One notice of an incident.
    async fn notice(
        &self,
        tenant: TenantId,
        incident: IncidentId,
        key: &str,
    ) -> Result<Option<NoticeRow>>;
    /// Replaces a notice if its version is still `expected_version`.
    async fn update_notice(&self, notice: &NoticeRow, expected_version: i64) -> Result<bool>;
    /// The records of these subjects in a collection of a tenant, oldest first.
    async fn subject_records(
        &self,
        tenant: TenantId,
        collection: &str,
        subjects: &[SubjectId],
    ) -> Result<Vec<RecordRow>>;
    /// Subject ids of a tenant after `after` (in id order), at most `limit`.
    async fn subject_ids(
        &self,
        tenant: TenantId,
        after: Option<SubjectId>,
        limit: usize,
    ) -> Result<Vec<SubjectId>>;
}
