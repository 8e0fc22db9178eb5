//! Extractors that turn every kind of bad input into an [`ApiError`] with a stable code and a
//! message that never quotes the input.

use crate::AppState;
use crate::error::{ApiError, describe_json_error};
use crate::net::ClientAddr;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use boveda_core::Caller;
use serde::de::DeserializeOwned;

/// The authenticated caller of a request.
pub(crate) struct Auth(pub(crate) Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(boveda_core::Error::Unauthenticated)?;
        let principal = state.vault.authenticate(bearer).await?;
        Ok(Auth(Caller {
            principal,
            request_id: crate::error::request_id(),
            client: parts.extensions.get::<ClientAddr>().map(|c| c.0.ip()),
        }))
    }
}

/// A JSON body: 415 without a JSON content type, 413 past the body limit, 400 when it does not
/// parse or has unknown fields.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `content-type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!(
                            "the body is larger than the limit of {} bytes",
                            state.body_limit
                        ),
                    )
                } else {
                    ApiError::body("the body could not be read")
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::body(describe_json_error(&e)))
    }
}

/// Query parameters: 400 naming the rule when they do not parse, never quoting them.
pub(crate) struct Params<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded_free(q).map(Params).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "query parameters are not valid: known ones are purpose (a name), view (plain, masked or redacted), limit (a number)",
            )
        })
    }
}

fn serde_urlencoded_free<T: DeserializeOwned>(q: &str) -> Result<T, ()> {
    axum::extract::Query::<T>::try_from_uri(&format!("/?{q}").parse().map_err(|_| ())?)
        .map(|axum::extract::Query(v)| v)
        .map_err(|_| ())
}

/// The client's address, when the request came over a socket; public authentication routes are
/// rate-limited by it (429 `rate_limited`).
pub(crate) struct Limited;

impl FromRequestParts<AppState> for Limited {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let addr = parts.extensions.get::<ClientAddr>().map(|c| c.0.ip());
        if state.auth_limit.allow(addr) {
            Ok(Limited)
        } else {
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many authentication attempts from this address; wait a minute",
            ))
        }
    }
}
