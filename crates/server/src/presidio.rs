//! Detection and de-identification over HTTP: boveda's native `POST /v1/detect` and
//! `POST /v1/deidentify`, and Microsoft Presidio's REST surface (`/analyze`, `/anonymize`,
//! `/deanonymize`, `/supportedentities`, `/recognizers`, `/anonymizers`, `/deanonymizers`,
//! `/health`) with Presidio's JSON shapes and its error shape `{"error": "<message>"}`.
//!
//! These routes process the text the caller sends and store nothing; they never log bodies,
//! and error messages never quote the text, a value or a key.
//!
//! Authentication: every route but `/health` needs the same bearer token as the other `/v1`
//! routes. Presidio itself has no authentication, so a client that switches its base URL must
//! also send `Authorization: Bearer <api key>` (Presidio's Python and HTTP clients accept extra
//! headers). An unauthenticated mode would expose an unmetered text-processing service and a
//! decryption oracle for whoever holds a Presidio key; it is deliberately not offered.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::{StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use boveda_core::deid::{Dialect, OperatorParams};
use boveda_detect::operators::{Anonymized, Operator, OperatorConfig, Span, anonymize};
use boveda_detect::{
    BUILT_IN, CustomPattern, CustomRecognizer, DetectOptions, Detector, DetectorConfig, Entity,
    Finding, Language, RE_DOTALL, RE_IGNORECASE, RE_MULTILINE, allow_pattern,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::RouteDoc;
use crate::error::{ApiError, describe_json_error};
use crate::extract::{Auth, JsonBody, Params};

/// Most texts in one native batch or one Presidio `/analyze` list.
const MAX_TEXTS: usize = 1000;

/// The built-in detector, compiled once per process on first use and shared by every request.
fn detector() -> Option<&'static Detector> {
    static DETECTOR: OnceLock<Option<Detector>> = OnceLock::new();
    DETECTOR
        .get_or_init(|| Detector::new(DetectorConfig::default()).ok())
        .as_ref()
}

const fn route(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    ok: Option<&'static str>,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        summary,
        tag,
        auth: true,
        data: false,
        body,
        ok: (200, ok),
    }
}

/// The routes of this module, documented.
pub(crate) fn routes() -> Vec<(RouteDoc, MethodRouter<AppState>)> {
    let mut health = route(
        "GET",
        "/health",
        "presidio",
        "Presidio-compatible health check (no token needed).",
        None,
        None,
    );
    health.auth = false;
    vec![
        (
            route(
                "POST",
                "/v1/detect",
                "detection",
                "Find personal data in a batch of texts; nothing is stored.",
                Some("DetectRequest"),
                Some("DetectResult"),
            ),
            post(native_detect),
        ),
        (
            route(
                "POST",
                "/v1/deidentify",
                "detection",
                "Detect and de-identify a batch of texts with per-entity operators; a vault_token without a key keeps the values, sealed, for /v1/tokens/detokenize (then `purpose` is required).",
                Some("DeidentifyRequest"),
                Some("DeidentifyResult"),
            )
            .data(),
            post(native_deidentify),
        ),
        (
            route(
                "POST",
                "/analyze",
                "presidio",
                "Presidio-compatible analyzer: results with character offsets.",
                Some("PresidioAnalyzeRequest"),
                Some("PresidioAnalyzeResult"),
            ),
            post(analyze),
        ),
        (
            route(
                "POST",
                "/anonymize",
                "presidio",
                "Presidio-compatible anonymizer over given analyzer results.",
                Some("PresidioAnonymizeRequest"),
                Some("PresidioAnonymizeResult"),
            ),
            post(anonymize_route),
        ),
        (
            route(
                "POST",
                "/deanonymize",
                "presidio",
                "Presidio-compatible decryption of encrypted spans.",
                Some("PresidioDeanonymizeRequest"),
                Some("PresidioAnonymizeResult"),
            ),
            post(deanonymize),
        ),
        (
            route(
                "GET",
                "/supportedentities",
                "presidio",
                "Entity names the analyzer supports for `?language=`.",
                None,
                Some("PresidioNameList"),
            ),
            get(supported_entities),
        ),
        (
            route(
                "GET",
                "/recognizers",
                "presidio",
                "Recognizer names for `?language=`.",
                None,
                Some("PresidioNameList"),
            ),
            get(recognizers),
        ),
        (
            route(
                "GET",
                "/anonymizers",
                "presidio",
                "Operator names of `/anonymize`.",
                None,
                Some("PresidioNameList"),
            ),
            get(anonymizers),
        ),
        (
            route(
                "GET",
                "/deanonymizers",
                "presidio",
                "Operator names of `/deanonymize`.",
                None,
                Some("PresidioNameList"),
            ),
            get(deanonymizers),
        ),
        (health, get(health_route)),
    ]
}

// ------------------------------------------------------------------ Presidio's error shape

/// An error of the Presidio surface: `{"error": "<message>"}`, 4xx for anything the caller can
/// fix. The message never quotes the text, a value or a key.
#[derive(Debug)]
struct PresidioError {
    status: StatusCode,
    message: String,
}

impl PresidioError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: message.into(),
        }
    }
    fn internal() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the detector is unavailable; retry later".into(),
        }
    }
}

impl IntoResponse for PresidioError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<boveda_detect::Error> for PresidioError {
    fn from(e: boveda_detect::Error) -> Self {
        // Detect errors name operators, recognizers and rules, never values.
        match e {
            boveda_detect::Error::InvalidOperator { reason, .. }
                if reason.starts_with("Invalid input") || reason.starts_with("Custom type") =>
            {
                Self::invalid(reason)
            }
            boveda_detect::Error::OperatorFailed { operator, .. } if operator == "decrypt" => {
                Self::invalid(
                    "Invalid input, decryption failed: wrong key or not a value encrypted with it",
                )
            }
            boveda_detect::Error::Unreachable(_) => Self::internal(),
            other => Self::invalid(format!("Invalid input, {other}")),
        }
    }
}

/// The bearer token of the other `/v1` routes, with failures in Presidio's error shape.
struct PresidioAuth;

impl FromRequestParts<AppState> for PresidioAuth {
    type Rejection = PresidioError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Auth::from_request_parts(parts, state).await {
            Ok(_) => Ok(PresidioAuth),
            Err(e) => {
                let status = e.into_response().status();
                let message = if status == StatusCode::UNAUTHORIZED {
                    "unauthenticated: send the API key as `Authorization: Bearer <key>`"
                } else {
                    "authentication is unavailable; retry later"
                };
                Err(PresidioError {
                    status,
                    message: message.into(),
                })
            }
        }
    }
}

/// Parse a Presidio body: `Invalid request json` when it is not JSON at all, 422 naming the
/// field when a field has the wrong type.
fn presidio_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    route: &str,
) -> Result<T, PresidioError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            PresidioError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: "the body is larger than the server's limit".into(),
            }
        } else {
            PresidioError::bad("Invalid request json")
        }
    })?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| PresidioError::bad("Invalid request json"))?;
    if !value.is_object() {
        return Err(PresidioError::bad("Invalid request json"));
    }
    serde_json::from_value(value).map_err(|e| {
        PresidioError::invalid(format!(
            "Failed to parse {route} request: {}",
            describe_json_error(&e)
        ))
    })
}

/// Run CPU-bound detection off the async workers.
async fn blocking<T: Send + 'static, E: Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
    on_panic: E,
) -> Result<T, E> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(on_panic))
}

fn language(code: Option<&str>) -> Result<Language, PresidioError> {
    match code {
        None | Some("") => Err(PresidioError::bad("No language provided")),
        Some(c) => Language::from_code(c).map_err(|e| PresidioError::invalid(e.to_string())),
    }
}

/// An entity name shown in a message only when it is a plain upper-case identifier.
fn shown_name(name: &str) -> &str {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if plain { name } else { "<invalid name>" }
}

fn round(score: f32) -> f64 {
    (f64::from(score) * 1e6).round() / 1e6
}

// ------------------------------------------------------------------ /analyze

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
struct AnalyzeRequest {
    text: Option<OneOrMany>,
    language: Option<String>,
    entities: Option<Vec<String>>,
    #[allow(dead_code)]
    correlation_id: Option<String>,
    score_threshold: Option<f32>,
    return_decision_process: Option<bool>,
    ad_hoc_recognizers: Option<Vec<AdHocRecognizer>>,
    context: Option<Vec<String>>,
    allow_list: Option<Vec<String>>,
    allow_list_match: Option<String>,
    regex_flags: Option<u32>,
}

/// Presidio's `PatternRecognizer.from_dict` shape.
#[derive(Deserialize)]
struct AdHocRecognizer {
    name: Option<String>,
    supported_entity: Option<String>,
    #[serde(default)]
    patterns: Vec<AdHocPattern>,
    #[serde(default)]
    context: Vec<String>,
    #[serde(default)]
    deny_list: Vec<String>,
}

#[derive(Deserialize)]
struct AdHocPattern {
    name: Option<String>,
    regex: String,
    score: f32,
}

fn presidio_result(f: &Finding, explain: bool) -> Value {
    let e = &f.explanation;
    let explanation = if explain {
        let textual = match &e.validation {
            Some(v) => format!(
                "Identified as {} by {} ({}), validated by {}",
                f.entity.as_str(),
                e.recognizer,
                e.pattern_name,
                v.as_str()
            ),
            None => format!(
                "Identified as {} by {} ({})",
                f.entity.as_str(),
                e.recognizer,
                e.pattern_name
            ),
        };
        json!({
            "recognizer": e.recognizer,
            "pattern_name": e.pattern_name,
            "pattern": e.pattern,
            "original_score": round(e.original_score),
            "score": round(f.score),
            "textual_explanation": textual,
            "score_context_improvement": round(e.score_boost),
            "supportive_context_word": e.context_words.first().map(|w| w.to_string()).unwrap_or_default(),
            "validation_result": e.validation.map(|_| true),
            "regex_flags": Value::Null,
        })
    } else {
        Value::Null
    };
    json!({
        "entity_type": f.entity.as_str(),
        "start": f.char_start,
        "end": f.char_end,
        "score": round(f.score),
        "analysis_explanation": explanation,
        "recognition_metadata": {
            "recognizer_name": e.recognizer,
            "recognizer_identifier": format!("{}_{}", e.recognizer, f.entity.as_str()),
        },
    })
}

async fn analyze(
    _: PresidioAuth,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, PresidioError> {
    let req: AnalyzeRequest = presidio_body(body, "/analyze")?;
    let (texts, many) = match req.text {
        Some(OneOrMany::One(t)) if !t.is_empty() => (vec![t], false),
        Some(OneOrMany::Many(list)) if !list.is_empty() => (list, true),
        _ => return Err(PresidioError::bad("No text provided")),
    };
    if texts.len() > MAX_TEXTS {
        return Err(PresidioError::invalid(format!(
            "Invalid input, at most {MAX_TEXTS} texts per request"
        )));
    }
    let lang = language(req.language.as_deref())?;
    let regex_allow = match req.allow_list_match.as_deref() {
        None | Some("exact") => false,
        Some("regex") => true,
        Some(_) => {
            return Err(PresidioError::invalid(
                "Invalid input, allow_list_match must be \"exact\" or \"regex\"",
            ));
        }
    };
    if let Some(t) = req.score_threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(PresidioError::invalid(
            "Invalid input, score_threshold must be between 0 and 1",
        ));
    }
    let mut config = DetectorConfig::default();
    let mut ad_hoc_entities = Vec::new();
    for (i, r) in req
        .ad_hoc_recognizers
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let entity = r
            .supported_entity
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                PresidioError::invalid("Invalid input, an ad-hoc recognizer needs supported_entity")
            })?;
        ad_hoc_entities.push(entity.clone());
        config.recognizers.push(CustomRecognizer {
            name: r.name.unwrap_or_else(|| format!("ad_hoc_recognizer_{i}")),
            entity,
            patterns: r
                .patterns
                .into_iter()
                .enumerate()
                .map(|(j, p)| CustomPattern {
                    name: p.name.unwrap_or_else(|| format!("pattern_{j}")),
                    regex: p.regex,
                    score: p.score,
                })
                .collect(),
            validator: None,
            context: r.context,
            deny_list: r.deny_list,
        });
    }
    let entities = match req.entities {
        None => None,
        Some(list) if list.is_empty() => None,
        Some(list) => {
            for name in &list {
                let known = BUILT_IN.iter().any(|e| e.as_str() == name)
                    || ad_hoc_entities.iter().any(|e| e == name);
                if !known {
                    return Err(PresidioError::invalid(format!(
                        "Entity {} doesn't have the corresponding recognizer in language : {}",
                        shown_name(name),
                        lang.code()
                    )));
                }
            }
            Some(list.iter().map(|n| Entity::from_name(n)).collect())
        }
    };
    let allow_list = req.allow_list.unwrap_or_default();
    // Presidio's default flags: IGNORECASE | MULTILINE | DOTALL.
    let flags = req
        .regex_flags
        .unwrap_or(RE_IGNORECASE | RE_MULTILINE | RE_DOTALL);
    let (allow_list, allow_pattern) = if regex_allow {
        let pattern = allow_pattern(&allow_list, flags).map_err(|_| {
            PresidioError::invalid(
                "Invalid input, an allow_list pattern does not compile (lookaround and backreferences are not supported)",
            )
        })?;
        (Vec::new(), pattern)
    } else {
        (allow_list, None)
    };
    let opts = DetectOptions {
        language: lang,
        entities,
        score_threshold: req.score_threshold.unwrap_or(0.0),
        allow_list,
        allow_pattern,
        context: req.context.unwrap_or_default(),
    };
    let explain = req.return_decision_process.unwrap_or(false);
    let results = blocking(
        move || {
            let base = detector().ok_or_else(PresidioError::internal)?;
            let custom;
            let d = if config.recognizers.is_empty() {
                base
            } else {
                custom = base.with_config(config)?;
                &custom
            };
            Ok(texts
                .iter()
                .map(|t| {
                    Value::Array(
                        d.detect(t, &opts)
                            .iter()
                            .map(|f| presidio_result(f, explain))
                            .collect(),
                    )
                })
                .collect::<Vec<Value>>())
        },
        PresidioError::internal(),
    )
    .await?;
    Ok(Json(if many {
        Value::Array(results)
    } else {
        results
            .into_iter()
            .next()
            .unwrap_or(Value::Array(Vec::new()))
    }))
}

// ------------------------------------------------------------------ /anonymize, /deanonymize

#[derive(Deserialize)]
struct ResultIn {
    entity_type: Option<String>,
    start: Option<i64>,
    end: Option<i64>,
    score: Option<f32>,
}

#[derive(Deserialize)]
struct AnonymizeRequest {
    text: Option<String>,
    analyzer_results: Option<Vec<ResultIn>>,
    anonymizers: Option<HashMap<String, OperatorParams>>,
}

#[derive(Deserialize)]
struct DeanonymizeRequest {
    text: Option<String>,
    anonymizer_results: Option<Vec<ResultIn>>,
    deanonymizers: Option<HashMap<String, OperatorParams>>,
}

/// Presidio's character offsets turned into byte spans, checked as Presidio checks them.
fn spans(text: &str, results: Vec<ResultIn>) -> Result<Vec<Span>, PresidioError> {
    let mut starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let chars = starts.len();
    starts.push(text.len());
    results
        .into_iter()
        .map(|r| {
            let entity = r
                .entity_type
                .ok_or_else(|| PresidioError::invalid("Invalid input, result must contain entity_type"))?;
            let start = r
                .start
                .ok_or_else(|| PresidioError::invalid("Invalid input, result must contain start"))?;
            let end = r
                .end
                .ok_or_else(|| PresidioError::invalid("Invalid input, result must contain end"))?;
            if start < 0 || end < 0 {
                return Err(PresidioError::invalid(
                    "Invalid input, start and end must be non-negative",
                ));
            }
            if start > end {
                return Err(PresidioError::invalid(format!(
                    "Invalid input, start index '{start}' must be smaller than end index '{end}'"
                )));
            }
            let (s, e) = (start as usize, end as usize);
            if e > chars {
                return Err(PresidioError::invalid(format!(
                    "Invalid analyzer result, start: {start} and end: {end}, while text length is only {chars}."
                )));
            }
            Ok(Span {
                entity: Entity::from_name(&entity),
                start: starts[s],
                end: starts[e],
                score: r.score.unwrap_or(1.0),
            })
        })
        .collect()
}

fn operator_config(
    ops: HashMap<String, OperatorParams>,
    dialect: Dialect,
    lang: Language,
) -> Result<OperatorConfig, PresidioError> {
    let mut config = OperatorConfig {
        language: lang,
        ..OperatorConfig::default()
    };
    for (entity, params) in ops {
        let op = params.build(dialect, lang)?;
        if entity == "DEFAULT" {
            config.default = op;
        } else {
            config.per_entity.insert(entity, op);
        }
    }
    Ok(config)
}

async fn anonymize_route(
    _: PresidioAuth,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Anonymized>, PresidioError> {
    let req: AnonymizeRequest = presidio_body(body, "/anonymize")?;
    let text = req
        .text
        .ok_or_else(|| PresidioError::bad("No text provided"))?;
    let results = req.analyzer_results.ok_or_else(|| {
        PresidioError::invalid("Invalid input, analyzer results can not be empty")
    })?;
    let spans = spans(&text, results)?;
    let config = operator_config(
        req.anonymizers.unwrap_or_default(),
        Dialect::Presidio,
        Language::En,
    )?;
    let out = blocking(
        move || anonymize(&text, &spans, &config).map_err(PresidioError::from),
        PresidioError::internal(),
    )
    .await?;
    Ok(Json(out))
}

async fn deanonymize(
    _: PresidioAuth,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Anonymized>, PresidioError> {
    let req: DeanonymizeRequest = presidio_body(body, "/deanonymize")?;
    let text = req
        .text
        .ok_or_else(|| PresidioError::bad("No text provided"))?;
    let results = req.anonymizer_results.ok_or_else(|| {
        PresidioError::invalid("Invalid input, anonymizer results can not be empty")
    })?;
    let ops = req.deanonymizers.unwrap_or_default();
    if ops.values().any(|p| p.kind != "decrypt") {
        return Err(PresidioError::invalid(
            "Invalid input, the only deanonymizer is decrypt",
        ));
    }
    let spans = spans(&text, results)?;
    if !ops.contains_key("DEFAULT")
        && let Some(s) = spans.iter().find(|s| !ops.contains_key(s.entity.as_str()))
    {
        return Err(PresidioError::invalid(format!(
            "Invalid input, no deanonymizer for entity type {} and no DEFAULT",
            shown_name(s.entity.as_str())
        )));
    }
    let config = operator_config(ops, Dialect::Presidio, Language::En)?;
    let out = blocking(
        move || anonymize(&text, &spans, &config).map_err(PresidioError::from),
        PresidioError::internal(),
    )
    .await?;
    Ok(Json(out))
}

// ------------------------------------------------------------------ listings and health

#[derive(Deserialize)]
struct LanguageQuery {
    language: Option<String>,
}

fn query_language(
    q: Result<Query<LanguageQuery>, impl std::fmt::Debug>,
) -> Result<Language, PresidioError> {
    let code = q.ok().and_then(|Query(q)| q.language);
    // Presidio answers for English when no language is given.
    language(Some(code.as_deref().unwrap_or("en")))
}

async fn supported_entities(
    _: PresidioAuth,
    q: Result<Query<LanguageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<String>>, PresidioError> {
    query_language(q)?;
    Ok(Json(
        BUILT_IN.iter().map(|e| e.as_str().to_owned()).collect(),
    ))
}

async fn recognizers(
    _: PresidioAuth,
    q: Result<Query<LanguageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<&'static str>>, PresidioError> {
    query_language(q)?;
    Ok(Json(vec![
        "PatternRecognizer",
        "NumberRecognizer",
        "PersonRecognizer",
        "LocationRecognizer",
        "DenyListRecognizer",
    ]))
}

async fn anonymizers(_: PresidioAuth) -> Json<Vec<&'static str>> {
    Json(vec!["hash", "mask", "redact", "replace", "keep", "encrypt"])
}

async fn deanonymizers(_: PresidioAuth) -> Json<Vec<&'static str>> {
    Json(vec!["decrypt"])
}

async fn health_route() -> &'static str {
    "Presidio Analyzer service is up"
}

// ------------------------------------------------------------------ native API

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectRequest {
    texts: Vec<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    entities: Option<Vec<String>>,
    #[serde(default)]
    score_threshold: Option<f32>,
    #[serde(default)]
    allow_list: Vec<String>,
    #[serde(default)]
    explain: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeidentifyRequest {
    texts: Vec<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    entities: Option<Vec<String>>,
    #[serde(default)]
    score_threshold: Option<f32>,
    #[serde(default)]
    allow_list: Vec<String>,
    #[serde(default)]
    operators: HashMap<String, OperatorParams>,
    /// The data subject the texts are about: the vault's tokens of these values are then that
    /// subject's (sealed under its key, erased with it).
    #[serde(default)]
    subject_id: Option<String>,
}

/// The `purpose` query parameter of a de-identification that keeps vault tokens.
#[derive(Deserialize)]
struct PurposeQuery {
    purpose: Option<String>,
}

fn native_invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
}

fn native_options(
    texts: &[String],
    language: Option<&str>,
    entities: Option<Vec<String>>,
    score_threshold: Option<f32>,
    allow_list: Vec<String>,
) -> Result<DetectOptions, ApiError> {
    if texts.len() > MAX_TEXTS {
        return Err(native_invalid(format!(
            "at most {MAX_TEXTS} texts per request"
        )));
    }
    let language =
        Language::from_code(language.unwrap_or("en")).map_err(|e| native_invalid(e.to_string()))?;
    let threshold = score_threshold.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(native_invalid("score_threshold must be between 0 and 1"));
    }
    Ok(DetectOptions {
        language,
        entities: entities.map(|l| l.iter().map(|n| Entity::from_name(n)).collect()),
        score_threshold: threshold,
        allow_list,
        allow_pattern: None,
        context: Vec::new(),
    })
}

fn native_finding(f: &Finding, explain: bool) -> Value {
    let mut v = json!({
        "entity": f.entity.as_str(),
        "start": f.start,
        "end": f.end,
        "char_start": f.char_start,
        "char_end": f.char_end,
        "score": round(f.score),
    });
    if explain {
        v["explanation"] = serde_json::to_value(&f.explanation).unwrap_or(Value::Null);
    }
    v
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the detector is unavailable; retry later",
    )
}

async fn native_detect(
    _: Auth,
    JsonBody(req): JsonBody<DetectRequest>,
) -> Result<Json<Value>, ApiError> {
    let opts = native_options(
        &req.texts,
        req.language.as_deref(),
        req.entities,
        req.score_threshold,
        req.allow_list,
    )?;
    let explain = req.explain;
    let texts = req.texts;
    let results = blocking(
        move || {
            let d = detector().ok_or_else(unavailable)?;
            Ok(texts
                .iter()
                .map(|t| {
                    Value::Array(
                        d.detect(t, &opts)
                            .iter()
                            .map(|f| native_finding(f, explain))
                            .collect(),
                    )
                })
                .collect::<Vec<Value>>())
        },
        unavailable(),
    )
    .await?;
    Ok(Json(json!({ "results": results })))
}

async fn native_deidentify(
    State(s): State<AppState>,
    Auth(c): Auth,
    Params(q): Params<PurposeQuery>,
    JsonBody(req): JsonBody<DeidentifyRequest>,
) -> Result<Json<Value>, ApiError> {
    let opts = native_options(
        &req.texts,
        req.language.as_deref(),
        req.entities,
        req.score_threshold,
        req.allow_list,
    )?;
    let mut config = OperatorConfig {
        language: opts.language,
        ..OperatorConfig::default()
    };
    // A `vault_token` without a key is the vault's: the values are kept, sealed, so that the
    // tokens can be turned back through `/v1/tokens/detokenize`.
    let mut issuers = Vec::new();
    let subject = match &req.subject_id {
        Some(s) => Some(
            s.parse::<boveda_core::SubjectId>()
                .map_err(|_| native_invalid("subject_id is not a subject id"))?,
        ),
        None => None,
    };
    for (entity, params) in &req.operators {
        let op: Operator = if params.kind == "vault_token" && params.key.is_none() {
            let issuer = s
                .vault
                .token_issuer(&c, q.purpose.as_deref(), params.scope.as_deref(), subject)
                .await?;
            issuers.push(Arc::clone(&issuer));
            Operator::Keyed(issuer)
        } else {
            params
                .build(Dialect::Native, opts.language)
                .map_err(|e| native_invalid(e.to_string()))?
        };
        if entity == "DEFAULT" {
            config.default = op;
        } else {
            config.per_entity.insert(entity.clone(), op);
        }
    }
    let texts = req.texts;
    let results = blocking(
        move || {
            let d = detector().ok_or_else(unavailable)?;
            texts
                .iter()
                .map(|t| {
                    let spans: Vec<Span> = d.detect(t, &opts).iter().map(Span::from).collect();
                    anonymize(t, &spans, &config).map_err(|e| native_invalid(e.to_string()))
                })
                .collect::<Result<Vec<Anonymized>, ApiError>>()
        },
        unavailable(),
    )
    .await?;
    for issuer in &issuers {
        s.vault.keep_tokens(&c, issuer).await?;
    }
    Ok(Json(json!({ "results": results })))
}

/// `base` (the document's schemas) with this module's added.
pub(crate) fn with_schemas(mut base: Value) -> Value {
    if let (Some(b), Value::Object(mine)) = (base.as_object_mut(), schemas()) {
        b.extend(mine);
    }
    base
}

fn schemas() -> Value {
    let name_list = json!({"type": "array", "items": {"type": "string"}});
    let operator = json!({"type": "object", "required": ["type"], "properties": {
        "type": {"type": "string"}, "new_value": {"type": "string"}, "masking_char": {"type": "string"},
        "chars_to_mask": {"type": "integer"}, "from_end": {"type": "boolean"}, "hash_type": {"type": "string", "enum": ["sha256", "sha512"]},
        "salt": {"type": "string"}, "key": {"type": "string"}}});
    let result_in = json!({"type": "object", "required": ["entity_type", "start", "end"], "properties": {
        "entity_type": {"type": "string"}, "start": {"type": "integer"}, "end": {"type": "integer"}, "score": {"type": "number"}}});
    let item = json!({"type": "object", "properties": {"operator": {"type": "string"}, "entity_type": {"type": "string"},
        "start": {"type": "integer"}, "end": {"type": "integer"}, "text": {"type": "string"}}});
    let anonymized = json!({"type": "object", "properties": {"text": {"type": "string"}, "items": {"type": "array", "items": item}}});
    let result = json!({"type": "object", "properties": {"entity_type": {"type": "string"}, "start": {"type": "integer"},
        "end": {"type": "integer"}, "score": {"type": "number"}, "analysis_explanation": {"type": ["object", "null"]},
        "recognition_metadata": {"type": "object"}}});
    let detect_common = json!({"texts": {"type": "array", "maxItems": MAX_TEXTS, "items": {"type": "string"}},
        "language": {"type": "string", "enum": ["en", "es", "zh"]}, "entities": {"type": "array", "items": {"type": "string"}},
        "score_threshold": {"type": "number"}, "allow_list": {"type": "array", "items": {"type": "string"}}});
    let mut detect_req = detect_common.clone();
    detect_req["explain"] = json!({"type": "boolean"});
    let mut deid_req = detect_common;
    deid_req["operators"] = json!({"type": "object", "additionalProperties": operator, "description": "by entity type or DEFAULT; types replace, redact, mask, hash, encrypt, decrypt, keep, generalise, ff1, vault_token, date_shift"});
    deid_req["subject_id"] = json!({"type": "string", "description": "the data subject the texts are about: keyless vault tokens are then sealed under that subject's key and erased with it"});
    json!({
        "PresidioError": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "PresidioNameList": name_list,
        "PresidioAnalyzeRequest": {"type": "object", "required": ["text", "language"], "properties": {
            "text": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "language": {"type": "string"}, "entities": {"type": "array", "items": {"type": "string"}},
            "correlation_id": {"type": "string"}, "score_threshold": {"type": "number"}, "return_decision_process": {"type": "boolean"},
            "ad_hoc_recognizers": {"type": "array", "items": {"type": "object"}}, "context": {"type": "array", "items": {"type": "string"}},
            "allow_list": {"type": "array", "items": {"type": "string"}}, "allow_list_match": {"type": "string", "enum": ["exact", "regex"]},
            "regex_flags": {"type": "integer", "description": "Python re flags for allow_list_match regex: 2 IGNORECASE, 8 MULTILINE, 16 DOTALL, 64 VERBOSE (default 26)"}}},
        "PresidioAnalyzeResult": {"oneOf": [{"type": "array", "items": result}, {"type": "array", "items": {"type": "array", "items": result}}]},
        "PresidioAnonymizeRequest": {"type": "object", "required": ["text", "analyzer_results"], "properties": {
            "text": {"type": "string"}, "analyzer_results": {"type": "array", "items": result_in},
            "anonymizers": {"type": "object", "additionalProperties": operator}}},
        "PresidioDeanonymizeRequest": {"type": "object", "required": ["text", "anonymizer_results", "deanonymizers"], "properties": {
            "text": {"type": "string"}, "anonymizer_results": {"type": "array", "items": result_in},
            "deanonymizers": {"type": "object", "additionalProperties": operator}}},
        "PresidioAnonymizeResult": anonymized,
        "DetectRequest": {"type": "object", "additionalProperties": false, "required": ["texts"], "properties": detect_req},
        "DetectResult": {"type": "object", "properties": {"results": {"type": "array", "items": {"type": "array", "items": {"type": "object", "properties": {
            "entity": {"type": "string"}, "start": {"type": "integer"}, "end": {"type": "integer"}, "char_start": {"type": "integer"},
            "char_end": {"type": "integer"}, "score": {"type": "number"}, "explanation": {"type": "object"}}}}}}},
        "DeidentifyRequest": {"type": "object", "additionalProperties": false, "required": ["texts"], "properties": deid_req},
        "DeidentifyResult": {"type": "object", "properties": {"results": {"type": "array", "items": anonymized}}},
    })
}
