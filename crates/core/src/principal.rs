//! Who is calling: principals, their grants, and the per-request context every vault call takes.
//!
//! Today a principal is a platform operator or a service account with scopes; staff users with
//! roles, MFA and policies slot in as another [`PrincipalKind`] and a policy decision in place of
//! [`Grants::allows`], without changing the calls that take a [`Caller`].

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
}

impl PrincipalKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Operator => "operator",
            PrincipalKind::Service => "service",
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
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 6] = [
        Scope::Read,
        Scope::Write,
        Scope::Search,
        Scope::Erase,
        Scope::Admin,
        Scope::Keys,
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
        }
    }
}

/// What a principal may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// The most revealing view this principal may get.
    pub max_view: View,
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
