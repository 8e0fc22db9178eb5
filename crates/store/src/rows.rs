//! Rows as the store keeps them: sealed bytes, wrapped keys, digests and non-personal metadata.

use crate::{AlertId, IncidentId, PrincipalId, RecordId, SubjectId, TenantId};

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// Id.
    pub id: TenantId,
    /// Unique name (an organisation name, not personal data).
    pub name: String,
    /// Settings document (JSON).
    pub settings: String,
    /// The tenant's blind-index key, wrapped by the root key.
    pub wrapped_index_key: Vec<u8>,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

/// The life of a KEK version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Wraps new DEKs.
    Active,
    /// Still unwraps DEKs not yet moved to the active version.
    DecryptOnly,
    /// Destroyed; nothing uses it.
    Retired,
}

impl KeyState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::DecryptOnly => "decrypt_only",
            KeyState::Retired => "retired",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => KeyState::Active,
            "decrypt_only" => KeyState::DecryptOnly,
            "retired" => KeyState::Retired,
            _ => return None,
        })
    }
}

/// One KEK version of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKeyRow {
    /// Tenant.
    pub tenant: TenantId,
    /// Version, from 1.
    pub version: u32,
    /// The KEK wrapped by the root key; `None` once retired.
    pub wrapped: Option<Vec<u8>>,
    /// State.
    pub state: KeyState,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

/// What retiring a KEK version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireOutcome {
    /// Retired and its wrapped key destroyed.
    Retired,
    /// No such version.
    NotFound,
    /// It is the active version.
    Active,
    /// Subjects' keys are still wrapped by it.
    InUse(u64),
}

/// A principal: a service account or a platform operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRow {
    /// Id.
    pub id: PrincipalId,
    /// Tenant, `None` for platform operators.
    pub tenant: Option<TenantId>,
    /// `operator` or `service`.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// SHA-256 of the bearer token.
    pub token_hash: Vec<u8>,
    /// Scopes and roles (JSON).
    pub grants: String,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Disabled principals cannot authenticate.
    pub disabled: bool,
}

/// A collection schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionRow {
    /// Tenant.
    pub tenant: TenantId,
    /// Name.
    pub name: String,
    /// Schema document (JSON).
    pub schema: String,
    /// Increments on every change.
    pub version: i64,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
}

/// A subject's DEK, wrapped by a tenant KEK version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKeyRow {
    /// Tenant.
    pub tenant: TenantId,
    /// Subject.
    pub subject: SubjectId,
    /// The KEK version that wraps it.
    pub kek_version: u32,
    /// The DEK's own version (bound into every field it seals).
    pub dek_version: u32,
    /// The wrapped DEK.
    pub wrapped_dek: Vec<u8>,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

/// A record: its fields sealed one by one, encoded together by the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    /// Tenant.
    pub tenant: TenantId,
    /// Collection name.
    pub collection: String,
    /// Id.
    pub id: RecordId,
    /// The subject the record is about.
    pub subject: SubjectId,
    /// Sealed fields, opaque to the store.
    pub sealed: Vec<u8>,
    /// Non-personal labels (JSON), e.g. the entity kinds found in free text.
    pub labels: String,
    /// Increments on every change.
    pub version: i64,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
}

/// One blind-index entry of a record's searchable field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Tenant.
    pub tenant: TenantId,
    /// Collection.
    pub collection: String,
    /// Field.
    pub field: String,
    /// Keyed digest of the normalised value.
    pub digest: Vec<u8>,
    /// Record.
    pub record: RecordId,
}

/// A staff user. Personal values (name, email, TOTP secret) are sealed in `sealed`; the login
/// is found by a keyed digest of the normalised email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Tenant.
    pub tenant: TenantId,
    /// Id (also the subject id of the user's own DEK).
    pub id: PrincipalId,
    /// Keyed digest of the lower-cased email.
    pub login_digest: Vec<u8>,
    /// Non-personal state (JSON): roles, password hash, MFA, lockout, eligibility.
    pub state: String,
    /// Sealed personal fields, opaque to the store.
    pub sealed: Vec<u8>,
    /// Increments on every change.
    pub version: i64,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

/// A staff session, found by its token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the session token.
    pub token_hash: Vec<u8>,
    /// Tenant.
    pub tenant: TenantId,
    /// User.
    pub user: PrincipalId,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last use, Unix milliseconds (idle timeout).
    pub last_seen_at: i64,
    /// Absolute end, Unix milliseconds.
    pub expires_at: i64,
    /// Last MFA check, Unix milliseconds (step-up).
    pub mfa_at: i64,
    /// Revoked sessions do not authenticate.
    pub revoked: bool,
}

/// One version of a tenant's policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    /// Tenant.
    pub tenant: TenantId,
    /// Version, from 1.
    pub version: i64,
    /// The document (JSON).
    pub document: String,
    /// Who applied it (principal id).
    pub created_by: String,
    /// When, Unix milliseconds.
    pub created_at: i64,
}

/// What to select from a tenant's audit log. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// From this time, Unix milliseconds, inclusive.
    pub from_ms: Option<i64>,
    /// Until this time, Unix milliseconds, exclusive.
    pub to_ms: Option<i64>,
    /// Principal id.
    pub principal: Option<String>,
    /// Action, e.g. `record.read`.
    pub action: Option<String>,
    /// Collection.
    pub collection: Option<String>,
    /// Subject pseudonym (HMAC under the tenant's audit key).
    pub subject: Option<[u8; 32]>,
    /// Purpose.
    pub purpose: Option<String>,
    /// Outcome: `allowed`, `denied` or `failed`.
    pub outcome: Option<String>,
    /// Up to this sequence number, inclusive (a slice of the log, for parallel scans).
    pub to_seq: Option<u64>,
}

/// An alert of behaviour analytics, linked to the audit events that raised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// Tenant.
    pub tenant: TenantId,
    /// Id.
    pub id: AlertId,
    /// The rule (`volume`, `distinct_subjects`, ...).
    pub kind: String,
    /// The principal concerned.
    pub principal: String,
    /// When it was raised, Unix milliseconds.
    pub at_ms: i64,
    /// Sequence numbers of the events that raised it (JSON array).
    pub events: String,
    /// What was seen; no personal values.
    pub detail: String,
    /// `open`, `acknowledged` or `resolved`.
    pub state: String,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
}

/// A security incident: its document (JSON: facts, scope, state, timeline) under
/// compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    /// Tenant.
    pub tenant: TenantId,
    /// Id.
    pub id: IncidentId,
    /// The incident document (JSON); holds no personal values.
    pub doc: String,
    /// Increments on every change.
    pub version: i64,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

/// One planned notice of an incident (to a subject, a guardian, the public or a regulator):
/// its document (JSON: recipient kind, channels, status, attempts; never a personal value)
/// under compare-and-swap. `key` is unique per incident, which makes planning idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRow {
    /// Tenant.
    pub tenant: TenantId,
    /// Incident.
    pub incident: IncidentId,
    /// Unique within the incident: one notice per recipient.
    pub key: String,
    /// The notice document (JSON).
    pub doc: String,
    /// Increments on every change.
    pub version: i64,
    /// When delivery should next take it up (Unix milliseconds: the next attempt, or the end
    /// of a send lease); `None` once it needs nothing more.
    pub due_ms: Option<i64>,
}

/// A vault token and its value, sealed: the token is a keyed pseudonym of the value within a
/// scope, so the same value in the same scope is stored once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Tenant.
    pub tenant: TenantId,
    /// The scope of consistency.
    pub scope: String,
    /// The token.
    pub token: String,
    /// The data subject the value belongs to, when the caller named one: the value is then
    /// sealed under that subject's key, and erasing the subject erases it.
    pub subject: Option<SubjectId>,
    /// The value, sealed (bound to tenant, scope and token): under the subject's key, or the
    /// tenant's token key when no subject was named.
    pub sealed: Vec<u8>,
    /// When it was first issued, Unix milliseconds.
    pub created_at: i64,
}
