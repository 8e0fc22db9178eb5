//! The vault's error type. Messages name fields, rules, kinds and ids, never values.

/// Errors of vault calls. The server maps each variant to a status and a stable code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No credential, or one that is not valid.
    #[error("authentication required: present a valid bearer token")]
    Unauthenticated,
    /// Not found, or not visible to this principal: the two look the same from outside.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The principal may not do this in its own tenant.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A data call without a purpose.
    #[error(
        "a purpose is required for every data call: add ?purpose=<one of the tenant's purposes>"
    )]
    PurposeRequired,
    /// A purpose the tenant has not configured.
    #[error("purpose `{0}` is not one of the tenant's purposes")]
    PurposeNotAllowed(String),
    /// A value or document failed a rule.
    #[error("`{at}` fails rule `{rule}`")]
    Invalid {
        /// Where: a field path such as `records[3].phone`.
        at: String,
        /// The rule, a stable snake_case name.
        rule: &'static str,
    },
    /// A request that cannot be served as asked.
    #[error("{0}")]
    BadRequest(String),
    /// A state conflict (duplicate name, concurrent change, key in use).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A tenant whose data calls are frozen.
    #[error("tenant is frozen: data calls are refused until it is thawed")]
    Frozen,
    /// Storage cannot be used right now.
    #[error("storage unavailable")]
    Unavailable(#[source] boveda_store::Error),
    /// Stored data that does not open: tampering, a wrong root key, or a bug.
    #[error("stored data failed integrity checks ({0})")]
    Integrity(&'static str),
    /// Wrong or unknown credentials, a locked or disabled account: one answer for all.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A new password breaks a rule; the message names it.
    #[error("password refused: {0}")]
    PasswordRule(String),
    /// A staff user must change the password before anything else.
    #[error("a password change is required before anything else: POST /v1/auth/password")]
    PasswordChangeRequired,
    /// Staff eligibility (agreement, training) is missing or expired.
    #[error("data access needs {}", .0.join(" and "))]
    EligibilityRequired(Vec<&'static str>),
    /// The tenant's policy refuses.
    #[error("{}", describe_denial(rule.as_deref(), missing))]
    Denied {
        /// The deny rule, or `None` when no rule allows.
        rule: Option<String>,
        /// Conditions that would have allowed it.
        missing: Vec<String>,
        /// Only a fresh MFA check is missing.
        step_up: bool,
    },
    /// A policy document that does not validate.
    #[error("policy document: {0}")]
    PolicyDocument(String),
    /// The audit journal cannot be written: data calls are refused until it can (fail closed).
    #[error("the audit log cannot be written; data calls are refused until it can")]
    AuditUnavailable,
    /// The principal is throttled by a behaviour alert response.
    #[error("throttled after a behaviour alert: at most one data call a second for now")]
    Throttled,
    /// A bug: please report.
    #[error("internal error ({0}); please report")]
    Internal(&'static str),
}

impl Error {
    /// An [`Error::Invalid`].
    pub fn invalid(at: impl Into<String>, rule: &'static str) -> Self {
        Error::Invalid {
            at: at.into(),
            rule,
        }
    }
}

impl From<boveda_store::Error> for Error {
    fn from(e: boveda_store::Error) -> Self {
        match e {
            boveda_store::Error::Conflict(what) => {
                Error::Conflict(format!("{what} already exists"))
            }
            boveda_store::Error::Corrupt(_) => Error::Integrity("corrupt row"),
            other => Error::Unavailable(other),
        }
    }
}

impl From<boveda_crypto::Error> for Error {
    fn from(e: boveda_crypto::Error) -> Self {
        match e {
            boveda_crypto::Error::Random => Error::Internal("random generator"),
            _ => Error::Integrity("sealed value did not open"),
        }
    }
}

/// A name from a request made safe to quote in an error: only `[a-z0-9_]`, at most 63 chars.
/// Anything else is replaced, so a value sent where a name belongs is never echoed.
pub(crate) fn safe_name(name: &str) -> String {
    if crate::schema::valid_name(name) {
        name.to_owned()
    } else {
        "<invalid name>".to_owned()
    }
}

fn describe_denial(rule: Option<&str>, missing: &[String]) -> String {
    let mut m = match rule {
        Some(r) => format!("refused by policy rule `{r}`"),
        None => "no policy rule allows this".to_owned(),
    };
    if !missing.is_empty() {
        m.push_str("; missing: ");
        m.push_str(&missing.join(", "));
    }
    m
}
