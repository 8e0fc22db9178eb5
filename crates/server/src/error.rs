//! The one table from errors to HTTP status and stable code. Bodies are
//! `{"error":{"code","message","request_id"}}` and never carry values or internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boveda_core::Error as CoreError;

tokio::task_local! {
    /// The id of the request being served, set by the request-id middleware.
    pub(crate) static REQUEST_ID: String;
}

/// The current request's id, or `-` outside a request.
pub(crate) fn request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".to_owned())
}

/// An API error: a status, a stable code and a message without values.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// 400 for a body that is not what the route takes.
    pub(crate) fn body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }
}

/// The table. Every core error has exactly one row.
impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let (status, code) = match &e {
            CoreError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            CoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            CoreError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            CoreError::PurposeRequired => (StatusCode::BAD_REQUEST, "purpose_required"),
            CoreError::PurposeNotAllowed(_) => (StatusCode::FORBIDDEN, "purpose_not_allowed"),
            CoreError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value"),
            CoreError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            CoreError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            CoreError::Frozen => (StatusCode::LOCKED, "tenant_frozen"),
            CoreError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            CoreError::Integrity(_) => (StatusCode::INTERNAL_SERVER_ERROR, "integrity_error"),
            CoreError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            CoreError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            CoreError::AuditUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable"),
            CoreError::Throttled => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
            CoreError::PasswordRule(_) => (StatusCode::UNPROCESSABLE_ENTITY, "password_rejected"),
            CoreError::PasswordChangeRequired => {
                (StatusCode::FORBIDDEN, "password_change_required")
            }
            CoreError::EligibilityRequired(_) => (StatusCode::FORBIDDEN, "eligibility_required"),
            CoreError::Denied { step_up: true, .. } => {
                (StatusCode::FORBIDDEN, "mfa_step_up_required")
            }
            CoreError::Denied { .. } => (StatusCode::FORBIDDEN, "policy_denied"),
            CoreError::PolicyDocument(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            // Logged once, here at the boundary; the source chain names kinds, never values.
            tracing::error!(request_id = %request_id(), code, error = %e, source = ?std::error::Error::source(&e).map(ToString::to_string), "request failed");
        }
        let message = match &e {
            // Storage details stay in the log.
            CoreError::Unavailable(_) => "storage is unavailable; retry later".to_owned(),
            other => other.to_string(),
        };
        Self {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message, "request_id": request_id() }
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A serde error turned into a message that never quotes the input: unknown fields are named
/// only when the name is a plain identifier, and types are described by position.
pub(crate) fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let safe = name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let shown = if safe && !name.is_empty() {
            name
        } else {
            "<invalid name>"
        };
        return format!(
            "unknown field `{shown}` at line {} column {}",
            e.line(),
            e.column()
        );
    }
    if let Some(rest) = text.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("");
        return format!("missing field `{name}`");
    }
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Eof => "JSON ends too early",
        serde_json::error::Category::Data => "a value has the wrong type or form",
        serde_json::error::Category::Io => "unreadable body",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        n: u32,
    }

    #[test]
    fn json_errors_never_quote_values() {
        let e = serde_json::from_str::<T>(r#"{"n":"ana@example.com"}"#).unwrap_err();
        let m = describe_json_error(&e);
        assert!(!m.contains("ana"), "{m}");
        let e = serde_json::from_str::<T>(r#"{"ana@example.com":1}"#).unwrap_err();
        let m = describe_json_error(&e);
        assert!(!m.contains("ana") && m.contains("unknown field"), "{m}");
        let e = serde_json::from_str::<T>(r#"{"n":1,"extra":2}"#).unwrap_err();
        assert!(describe_json_error(&e).contains("`extra`"));
    }
}
