//! Who is calling: principals, their grants, and the per-request context every vault call takes.
//!
//! A principal is a platform operator, a service account (API key with scopes and roles) or a
//! staff user (password + TOTP session with roles). Data calls are decided by the tenant's
//! policy over the principal's roles; scopes and the view cap of service accounts bound that
//! further.

use crate::View;
use boveda_store::{PrincipalId, TenantId};
use serde::{Deserialize, Serialize};

/// What a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// Manages tenants; never reads personal data.
    Operator,
    /// A program with an API key, in one tenant.
    Service,
    /// A person with a password and TOTP, in one tenant.
    Staff,
}

impl PrincipalKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Operator => "operator",
            PrincipalKind::Service => "service",
            PrincipalKind::Staff => "staff",
        }
    }
}

/// An action a service account may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read records.
    Read,
    /// Create, change and delete records.
    Write,
    /// Search and count by blind index.
    Search,
    /// Erase subjects.
    Erase,
    /// Manage the tenant: schema, settings, service accounts.
    Admin,
    /// Rotate and retire keys.
    Keys,
    /// Read and export the audit log.
    Audit,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 7] = [
        Scope::Read,
        Scope::Write,
        Scope::Search,
        Scope::Erase,
        Scope::Admin,
        Scope::Keys,
        Scope::Audit,
    ];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Search => "search",
            Scope::Erase => "erase",
            Scope::Admin => "admin",
            Scope::Keys => "keys",
            Scope::Audit => "audit",
        }
    }
}

/// What a principal may do, besides what the policy says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// The most revealing view this principal may get.
    pub max_view: View,
    /// Roles the tenant's policy matches on (`service` for service accounts by default).
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
}

fn default_roles() -> Vec<String> {
    vec!["service".to_owned()]
}

/// The built-in roles (custom roles are any other name).
pub const BUILTIN_ROLES: [&str; 8] = [
    "platform_operator",
    "tenant_admin",
    "privacy_officer",
    "security_responder",
    "auditor",
    "support_agent",
    "analyst",
    "service",
];

/// A staff session's facts that decisions need.
#[derive(Debug, Clone)]
pub struct StaffSession {
    /// SHA-256 of the session token.
    pub token_hash: Vec<u8>,
    /// Last MFA check, Unix milliseconds.
    pub mfa_at_ms: i64,
    /// A password change is required before anything else.
    pub must_change_password: bool,
    /// A current confidentiality agreement is on file.
    pub agreement_current: bool,
    /// Current training is on file.
    pub training_current: bool,
}

impl Grants {
    /// Whether a scope is granted.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// An authenticated principal.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Id.
    pub id: PrincipalId,
    /// Tenant; `None` for operators.
    pub tenant: Option<TenantId>,
    /// Kind.
    pub kind: PrincipalKind,
    /// Display name.
    pub name: String,
    /// Grants.
    pub grants: Grants,
    /// For staff: the session and eligibility facts.
    pub staff: Option<StaffSession>,
}

impl Principal {
    /// Whether the principal holds a role.
    pub fn has_role(&self, role: &str) -> bool {
        self.grants.roles.iter().any(|r| r == role)
    }
}

/// The context of one request: who, which request, from where.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated principal.
    pub principal: Principal,
    /// The request id, echoed in errors and logs.
    pub request_id: String,
    /// The client's address, when known.
    pub client: Option<std::net::IpAddr>,
}
