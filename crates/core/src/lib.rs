//! The boveda vault: tenants, principals, typed collections, subjects and records sealed per
//! field, blind-index search, key rotation with background rewrap, and erasure by destroying a
//! subject's key.
//!
//! Every call takes a [`Caller`] and, for data, a purpose; it authorises first, then touches
//! keys and sealed rows. Storage is any [`boveda_store::Store`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let store = boveda_store::sqlite::SqliteStore::open(std::path::Path::new("./boveda-data")).await?;
//! let (root, _text) = boveda_crypto::RootKey::generate()?;
//! let vault = boveda_core::Vault::open(Arc::new(store), root, Default::default()).await?;
//! let operator_token = vault.bootstrap_operator().await?;
//! # let _ = operator_token; Ok(()) }
//! ```

mod access;
mod audit;
pub mod deid;
mod error;
mod incident;
pub mod notice;
pub mod offline;
pub mod phone;
mod principal;
pub mod schema;
mod staff;
pub mod tokens;
pub mod values;
mod vault;

pub use access::{DEFAULT_POLICY, ExplainRequest, Explanation, PolicyView};
pub use audit::{Access, AlertView, AuditEntry, AuditQuery, ExportBatch};
pub use boveda_audit::{AlertKind, Checkpoint, Report as AuditReport};

/// Export formats of the audit log (JSON lines and CEF).
pub mod audit_format {
    pub use boveda_audit::{to_cef, to_json_line};
}
pub use boveda_policy::{Action, Policy};
pub use boveda_store::AlertId;
pub use boveda_store::IncidentId;
pub use boveda_store::{PrincipalId, RecordId, SubjectId, TenantId};
pub use error::Error;
pub use incident::{
    BlastRadius, Containment, Incident, IncidentScope, NewIncident, SubjectExposure, TimelineEntry,
};
pub use principal::{BUILTIN_ROLES, Caller, Grants, Principal, PrincipalKind, Scope, StaffSession};
pub use staff::{
    Agreement, Eligibility, Enrollment, Invited, LOCK_AFTER, LoginResult, Training, User, UserPatch,
};
pub use values::View;
pub use vault::{
    Collection, Count, KeyStatus, KeyVersion, NewRecord, NewServiceAccount, RecordView,
    ServiceAccount, Tenant, TenantSettings, Vault, VaultConfig, Written,
};
