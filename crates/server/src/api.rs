//! The route table: every route with its documentation, the handlers (extract, one vault call,
//! a DTO), and the OpenAPI document built from the same table, so a route cannot exist
//! undocumented.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, Limited, Params};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use boveda_core::{
    Grants, NewRecord, PrincipalId, RecordId, Scope, SubjectId, TenantId, TenantSettings, View,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// One documented route.
pub struct RouteDoc {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path with `{param}` segments.
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Group.
    pub tag: &'static str,
    /// Needs a bearer token.
    pub auth: bool,
    /// Takes `purpose` (and `view`) query parameters.
    pub data: bool,
    /// Request body schema name, if any.
    pub body: Option<&'static str>,
    /// Success status and response schema name.
    pub ok: (u16, Option<&'static str>),
}

const fn doc(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        summary,
        tag,
        auth: true,
        data: false,
        body: None,
        ok: (200, None),
    }
}

impl RouteDoc {
    const fn public(mut self) -> Self {
        self.auth = false;
        self
    }
    pub(crate) const fn data(mut self) -> Self {
        self.data = true;
        self
    }
    const fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }
    const fn ok(mut self, status: u16, schema: &'static str) -> Self {
        self.ok = (status, Some(schema));
        self
    }
    const fn empty(mut self) -> Self {
        self.ok = (204, None);
        self
    }
}

/// Every route, documented, with its handler.
pub fn routes() -> Vec<(RouteDoc, MethodRouter<AppState>)> {
    let mut v = vec![
        (
            doc(
                "GET",
                "/healthz",
                "health",
                "Liveness: the process answers.",
            )
            .public()
            .ok(200, "Status"),
            get(healthz),
        ),
        (
            doc("GET", "/readyz", "health", "Readiness: storage answers.")
                .public()
                .ok(200, "Status"),
            get(readyz),
        ),
        (
            doc("GET", "/metrics", "health", "Prometheus metrics.").public(),
            get(metrics),
        ),
        (
            doc("GET", "/openapi.json", "health", "This document.").public(),
            get(openapi),
        ),
        (
            doc(
                "GET",
                "/v1/whoami",
                "principals",
                "The authenticated principal.",
            )
            .ok(200, "Principal"),
            get(whoami),
        ),
        (
            doc(
                "POST",
                "/v1/tenants",
                "tenants",
                "Create a tenant (platform operator).",
            )
            .body("TenantCreate")
            .ok(201, "Tenant"),
            post(create_tenant),
        ),
        (
            doc(
                "GET",
                "/v1/tenants",
                "tenants",
                "List tenants (platform operator).",
            )
            .ok(200, "TenantList"),
            get(list_tenants),
        ),
        (
            doc("GET", "/v1/tenants/{tenant_id}", "tenants", "One tenant.").ok(200, "Tenant"),
            get(show_tenant),
        ),
        (
            doc(
                "PUT",
                "/v1/tenants/{tenant_id}/frozen",
                "tenants",
                "Freeze or thaw a tenant's data calls (platform operator).",
            )
            .body("Frozen")
            .ok(200, "Tenant"),
            put(freeze_tenant),
        ),
        (
            doc(
                "POST",
                "/v1/tenants/{tenant_id}/service-accounts",
                "principals",
                "Create a service account in a tenant; its API key is shown once.",
            )
            .body("ServiceAccountCreate")
            .ok(201, "NewServiceAccount"),
            post(create_service_account_in),
        ),
        (
            doc(
                "GET",
                "/v1/settings",
                "tenants",
                "The caller's tenant settings.",
            )
            .ok(200, "Tenant"),
            get(show_settings),
        ),
        (
            doc(
                "PUT",
                "/v1/settings",
                "tenants",
                "Replace the tenant's settings (admin scope).",
            )
            .body("Settings")
            .ok(200, "Tenant"),
            put(update_settings),
        ),
        (
            doc(
                "GET",
                "/v1/service-accounts",
                "principals",
                "Service accounts of the caller's tenant (admin scope).",
            )
            .ok(200, "ServiceAccountList"),
            get(list_service_accounts),
        ),
        (
            doc(
                "POST",
                "/v1/service-accounts",
                "principals",
                "Create a service account in the caller's tenant (admin scope).",
            )
            .body("ServiceAccountCreate")
            .ok(201, "NewServiceAccount"),
            post(create_service_account),
        ),
        (
            doc(
                "DELETE",
                "/v1/service-accounts/{principal_id}",
                "principals",
                "Disable a service account (admin scope).",
            )
            .empty(),
            delete(disable_service_account),
        ),
        (
            doc(
                "GET",
                "/v1/collections",
                "collections",
                "Collections of the caller's tenant.",
            )
            .ok(200, "CollectionList"),
            get(list_collections),
        ),
        (
            doc(
                "GET",
                "/v1/collections/{collection}",
                "collections",
                "One collection schema.",
            )
            .ok(200, "Collection"),
            get(show_collection),
        ),
        (
            doc(
                "PUT",
                "/v1/collections/{collection}",
                "collections",
                "Create or change a collection schema (admin scope).",
            )
            .body("CollectionSpec")
            .ok(200, "Collection"),
            put(put_collection),
        ),
        (
            doc(
                "POST",
                "/v1/collections/{collection}/records",
                "records",
                "Write up to 1,000 records, all or nothing.",
            )
            .data()
            .body("RecordsWrite")
            .ok(201, "WrittenList"),
            post(write_records),
        ),
        (
            doc(
                "POST",
                "/v1/collections/{collection}/records/batch-get",
                "records",
                "Read up to 1,000 records in a view.",
            )
            .data()
            .body("BatchGet")
            .ok(200, "RecordList"),
            post(batch_get),
        ),
        (
            doc(
                "GET",
                "/v1/collections/{collection}/records/{record_id}",
                "records",
                "Read one record in a view.",
            )
            .data()
            .ok(200, "Record"),
            get(read_record),
        ),
        (
            doc(
                "PATCH",
                "/v1/collections/{collection}/records/{record_id}",
                "records",
                "Change fields of a record; null removes an optional field.",
            )
            .data()
            .body("RecordPatch")
            .ok(200, "Written"),
            patch(update_record),
        ),
        (
            doc(
                "DELETE",
                "/v1/collections/{collection}/records/{record_id}",
                "records",
                "Delete a record.",
            )
            .data()
            .empty(),
            delete(delete_record),
        ),
        (
            doc(
                "POST",
                "/v1/collections/{collection}/search",
                "records",
                "Exact search over a searchable field by blind index; results masked.",
            )
            .data()
            .body("Search")
            .ok(200, "SearchResult"),
            post(search),
        ),
        (
            doc(
                "POST",
                "/v1/collections/{collection}/count",
                "records",
                "Count records by value of a searchable field without decrypting.",
            )
            .data()
            .body("CountRequest")
            .ok(200, "CountResult"),
            post(count),
        ),
        (
            doc(
                "POST",
                "/v1/tokens/detokenize",
                "detection",
                "The values of vault tokens of a scope (read scope, policy action detokenize, plain view cap; audited).",
            )
            .data()
            .body("DetokenizeRequest")
            .ok(200, "DetokenizeResult"),
            post(detokenize),
        ),
        (
            doc(
                "DELETE",
                "/v1/subjects/{subject_id}",
                "subjects",
                "Erase a subject by destroying its key (erase scope).",
            )
            .data()
            .empty(),
            delete(erase_subject),
        ),
        (
            doc(
                "POST",
                "/v1/users",
                "staff",
                "Invite a staff user (tenant admin); the invitation is shown once.",
            )
            .body("UserInvite")
            .ok(201, "Invited"),
            post(invite_user),
        ),
        (
            doc(
                "GET",
                "/v1/users",
                "staff",
                "Staff users of the tenant (tenant admin).",
            )
            .ok(200, "UserList"),
            get(list_users),
        ),
        (
            doc(
                "GET",
                "/v1/users/{user_id}",
                "staff",
                "One staff user (tenant admin).",
            )
            .ok(200, "User"),
            get(show_user),
        ),
        (
            doc(
                "PATCH",
                "/v1/users/{user_id}",
                "staff",
                "Change roles, force a password change, disable (tenant admin).",
            )
            .body("UserPatch")
            .ok(200, "User"),
            patch(update_user),
        ),
        (
            doc(
                "PUT",
                "/v1/users/{user_id}/eligibility",
                "staff",
                "Replace agreements and trainings (tenant admin).",
            )
            .body("Eligibility")
            .ok(200, "User"),
            put(set_eligibility),
        ),
        (
            doc(
                "POST",
                "/v1/users/{user_id}/sessions/revoke",
                "staff",
                "Revoke every session of a user (tenant admin, incident containment).",
            )
            .ok(200, "Revoked"),
            post(revoke_sessions),
        ),
        (
            doc(
                "POST",
                "/v1/auth/invite/accept",
                "auth",
                "Set the password of an invited user and start TOTP enrolment.",
            )
            .public()
            .body("InviteAccept")
            .ok(200, "Enrollment"),
            post(accept_invite),
        ),
        (
            doc(
                "POST",
                "/v1/auth/mfa/confirm",
                "auth",
                "Confirm TOTP enrolment with a first code; returns recovery codes once.",
            )
            .public()
            .body("MfaConfirm")
            .ok(200, "RecoveryCodes"),
            post(confirm_mfa),
        ),
        (
            doc(
                "POST",
                "/v1/auth/login",
                "auth",
                "Log in with email, password and a TOTP or recovery code.",
            )
            .public()
            .body("Login")
            .ok(200, "LoginResult"),
            post(login),
        ),
        (
            doc(
                "POST",
                "/v1/auth/logout",
                "auth",
                "End the caller's session.",
            )
            .empty(),
            post(logout),
        ),
        (
            doc(
                "POST",
                "/v1/auth/step-up",
                "auth",
                "Re-check a TOTP code for step-up conditions.",
            )
            .body("StepUp")
            .ok(200, "StepUpResult"),
            post(step_up),
        ),
        (
            doc(
                "POST",
                "/v1/auth/password",
                "auth",
                "Change the caller's password.",
            )
            .body("PasswordChange")
            .empty(),
            post(change_password),
        ),
        (
            doc(
                "GET",
                "/v1/policy",
                "policy",
                "The tenant's current policy.",
            )
            .ok(200, "PolicyView"),
            get(show_policy),
        ),
        (
            doc(
                "PUT",
                "/v1/policy",
                "policy",
                "Apply a new policy version (tenant admin).",
            )
            .body("Policy")
            .ok(200, "PolicyView"),
            put(apply_policy),
        ),
        (
            doc(
                "POST",
                "/v1/policy/explain",
                "policy",
                "Why a request would be allowed or refused.",
            )
            .body("ExplainRequest")
            .ok(200, "Explanation"),
            post(explain),
        ),
        (
            doc(
                "GET",
                "/v1/audit/events",
                "audit",
                "Search the audit log (auditor, privacy officer, responder).",
            )
            .ok(200, "AuditEvents"),
            get(audit_events),
        ),
        (
            doc(
                "GET",
                "/v1/audit/export",
                "audit",
                "Export the audit log as JSON lines or CEF lines.",
            )
            .ok(200, "Text"),
            get(audit_export),
        ),
        (
            doc(
                "GET",
                "/v1/audit/verify",
                "audit",
                "Verify the tenant's hash chain and signed checkpoints.",
            )
            .ok(200, "AuditReport"),
            get(audit_verify),
        ),
        (
            doc(
                "GET",
                "/v1/audit/public-key",
                "audit",
                "The Ed25519 public key that verifies checkpoints.",
            )
            .ok(200, "PublicKey"),
            get(audit_public_key),
        ),
        (
            doc(
                "POST",
                "/v1/audit/checkpoints",
                "audit",
                "Sign a checkpoint of the chain head now.",
            )
            .ok(200, "CheckpointResult"),
            post(audit_checkpoint),
        ),
        (
            doc(
                "GET",
                "/v1/subjects/{subject_id}/access-history",
                "audit",
                "Who accessed a subject's data, when, which fields, why and how.",
            )
            .ok(200, "AccessHistory"),
            get(access_history),
        ),
        (
            doc(
                "GET",
                "/v1/alerts",
                "audit",
                "Behaviour alerts (auditor, privacy officer, responder).",
            )
            .ok(200, "Alerts"),
            get(list_alerts),
        ),
        (
            doc(
                "POST",
                "/v1/alerts/{alert_id}/acknowledge",
                "audit",
                "Acknowledge an alert.",
            )
            .empty(),
            post(acknowledge_alert),
        ),
        (
            doc(
                "POST",
                "/v1/alerts/{alert_id}/resolve",
                "audit",
                "Resolve an alert.",
            )
            .empty(),
            post(resolve_alert),
        ),
        (
            doc(
                "POST",
                "/v1/incidents",
                "incidents",
                "Open an incident (security responder, privacy officer).",
            )
            .body("NewIncident")
            .ok(201, "Incident"),
            post(open_incident),
        ),
        (
            doc(
                "GET",
                "/v1/incidents",
                "incidents",
                "The tenant's incidents.",
            )
            .ok(200, "IncidentList"),
            get(list_incidents),
        ),
        (
            doc(
                "GET",
                "/v1/incidents/{incident_id}",
                "incidents",
                "One incident with its timeline.",
            )
            .ok(200, "Incident"),
            get(show_incident),
        ),
        (
            doc(
                "POST",
                "/v1/incidents/{incident_id}/state",
                "incidents",
                "Move the incident forward: contained, notifying, closed.",
            )
            .body("IncidentState")
            .ok(200, "Incident"),
            post(incident_state),
        ),
        (
            doc(
                "POST",
                "/v1/incidents/{incident_id}/containment",
                "incidents",
                "Run one containment action.",
            )
            .body("Containment")
            .ok(200, "Incident"),
            post(contain),
        ),
        (
            doc(
                "GET",
                "/v1/incidents/{incident_id}/blast-radius",
                "incidents",
                "Subjects, categories, fields and views exposed, from the audit log; subjects in pages (`offset`, `limit`: default 1000, at most 10000) of one snapshot kept a minute (`fresh=true` reads the log anew), totals whole.",
            )
            .ok(200, "BlastRadius"),
            get(blast_radius),
        ),
        (
            doc(
                "POST",
                "/v1/incidents/{incident_id}/notices/plan",
                "incidents",
                "Plan the notices from the blast radius and the contact data: recipient (subject or guardian), channels, announcement, regulator reports. Once per incident.",
            )
            .ok(200, "NoticeList"),
            post(plan_notices),
        ),
        (
            doc(
                "POST",
                "/v1/incidents/{incident_id}/notices/approve",
                "incidents",
                "Approve the notice plan (a privacy officer other than the incident's creator); delivery starts.",
            )
            .empty()
            .ok(200, "Incident"),
            post(approve_notices),
        ),
        (
            doc(
                "GET",
                "/v1/incidents/{incident_id}/notices",
                "incidents",
                "The incident's notices and their delivery status (queued, sending, sent, fell_back, failed, unreachable, not_required, covered).",
            )
            .ok(200, "NoticeList"),
            get(list_notices),
        ),
        (
            doc(
                "GET",
                "/v1/incidents/{incident_id}/reports/{jurisdiction}",
                "incidents",
                "The regulator's report: gdpr (Art. 33) or pipl (Art. 57), as fields and as text; `?language=es|en|zh`.",
            )
            .ok(200, "RegulatorReport"),
            get(regulator_report),
        ),
        (
            doc(
                "GET",
                "/v1/keys",
                "keys",
                "Key versions and rewrap progress (keys scope).",
            )
            .ok(200, "KeyStatus"),
            get(key_status),
        ),
        (
            doc(
                "POST",
                "/v1/keys/rotate",
                "keys",
                "Create a new key version; a background job rewraps every subject key.",
            )
            .ok(200, "KeyStatus"),
            post(rotate_keys),
        ),
        (
            doc(
                "POST",
                "/v1/keys/{version}/retire",
                "keys",
                "Retire an unused key version, destroying it.",
            )
            .ok(200, "KeyStatus"),
            post(retire_key),
        ),
    ];
    v.extend(crate::presidio::routes());
    v
}

// ------------------------------------------------------------------ handlers

type ApiResult<T> = Result<T, ApiError>;

fn created(v: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn id<T: std::str::FromStr>(raw: &str, kind: &'static str) -> ApiResult<T> {
    raw.parse()
        .map_err(|_| boveda_core::Error::NotFound(kind).into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataQuery {
    purpose: Option<String>,
    #[serde(default)]
    view: Option<View>,
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(s): State<AppState>) -> Response {
    match s.vault.ready().await {
        Ok(()) => Json(json!({"status": "ready", "storage": s.vault.backend()})).into_response(),
        Err(boveda_core::Error::AuditUnavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "the audit journal cannot be written"})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "storage does not answer"})),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut body = s.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    // The recorder is the process's; the journal's health is this vault's own.
    body.push_str(&format!(
        "# HELP boveda_audit_available Whether the audit journal can be written (data calls are refused while it is 0).\n# TYPE boveda_audit_available gauge\nboveda_audit_available {}\n",
        u8::from(s.vault.audit_available())
    ));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

async fn whoami(Auth(c): Auth) -> Json<Value> {
    let p = c.principal;
    Json(
        json!({"id": p.id, "kind": p.kind, "name": p.name, "tenant_id": p.tenant, "scopes": p.grants.scopes, "max_view": p.grants.max_view}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantCreate {
    name: String,
    #[serde(default)]
    settings: Option<TenantSettings>,
}

async fn create_tenant(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<TenantCreate>,
) -> ApiResult<Response> {
    Ok(created(
        s.vault.create_tenant(&c, &b.name, b.settings).await?,
    ))
}

async fn list_tenants(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"tenants": s.vault.tenants(&c).await?})))
}

async fn show_tenant(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(t): Path<String>,
) -> ApiResult<Json<boveda_core::Tenant>> {
    Ok(Json(
        s.vault.tenant(&c, id::<TenantId>(&t, "tenant")?).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Frozen {
    frozen: bool,
}

async fn freeze_tenant(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(t): Path<String>,
    JsonBody(b): JsonBody<Frozen>,
) -> ApiResult<Json<boveda_core::Tenant>> {
    Ok(Json(
        s.vault
            .set_frozen(&c, id::<TenantId>(&t, "tenant")?, b.frozen)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceAccountCreate {
    name: String,
    #[serde(default)]
    scopes: Option<Vec<Scope>>,
    #[serde(default)]
    max_view: Option<View>,
    #[serde(default)]
    roles: Option<Vec<String>>,
}

async fn new_service_account(
    s: &AppState,
    c: &boveda_core::Caller,
    tenant: TenantId,
    b: ServiceAccountCreate,
) -> ApiResult<Response> {
    let grants = Grants {
        scopes: b.scopes.unwrap_or_else(|| Scope::ALL.to_vec()),
        max_view: b.max_view.unwrap_or(View::Plain),
        roles: b.roles.unwrap_or_else(|| vec!["service".to_owned()]),
    };
    let n = s
        .vault
        .create_service_account(c, tenant, &b.name, grants)
        .await?;
    // The key is shown once, here, and never stored in clear.
    Ok(created(
        json!({"service_account": n.account, "api_key": n.api_key.expose()}),
    ))
}

async fn create_service_account_in(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(t): Path<String>,
    JsonBody(b): JsonBody<ServiceAccountCreate>,
) -> ApiResult<Response> {
    new_service_account(&s, &c, id::<TenantId>(&t, "tenant")?, b).await
}

async fn create_service_account(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<ServiceAccountCreate>,
) -> ApiResult<Response> {
    let tenant = c
        .principal
        .tenant
        .ok_or(boveda_core::Error::NotFound("tenant"))?;
    new_service_account(&s, &c, tenant, b).await
}

async fn list_service_accounts(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"service_accounts": s.vault.service_accounts(&c).await?}),
    ))
}

async fn disable_service_account(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(p): Path<String>,
) -> ApiResult<StatusCode> {
    s.vault
        .disable_service_account(&c, id::<PrincipalId>(&p, "service account")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn show_settings(
    State(s): State<AppState>,
    Auth(c): Auth,
) -> ApiResult<Json<boveda_core::Tenant>> {
    let tenant = c
        .principal
        .tenant
        .ok_or(boveda_core::Error::NotFound("tenant"))?;
    Ok(Json(s.vault.tenant(&c, tenant).await?))
}

async fn update_settings(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<TenantSettings>,
) -> ApiResult<Json<boveda_core::Tenant>> {
    Ok(Json(s.vault.update_settings(&c, b).await?))
}

async fn list_collections(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"collections": s.vault.collections(&c).await?})))
}

async fn show_collection(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<boveda_core::Collection>> {
    Ok(Json(s.vault.collection(&c, &name).await?))
}

async fn put_collection(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<boveda_core::schema::CollectionSpec>,
) -> ApiResult<Json<boveda_core::Collection>> {
    Ok(Json(s.vault.put_collection(&c, &name, b).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsWrite {
    records: Vec<NewRecord>,
}

async fn write_records(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(col): Path<String>,
    Params(q): Params<DataQuery>,
    JsonBody(b): JsonBody<RecordsWrite>,
) -> ApiResult<Response> {
    Ok(created(
        json!({"records": s.vault.write_records(&c, &col, q.purpose.as_deref(), b.records).await?}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchGet {
    ids: Vec<String>,
}

async fn batch_get(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(col): Path<String>,
    Params(q): Params<DataQuery>,
    JsonBody(b): JsonBody<BatchGet>,
) -> ApiResult<Json<Value>> {
    // Ids that do not parse cannot exist: they are reported missing like unknown ones.
    let ids: Vec<RecordId> = b.ids.iter().filter_map(|i| i.parse().ok()).collect();
    let mut records = if ids.is_empty() && !b.ids.is_empty() {
        Vec::new()
    } else {
        s.vault
            .read_records(
                &c,
                &col,
                q.purpose.as_deref(),
                &ids,
                q.view.unwrap_or(View::Masked),
            )
            .await?
    };
    records.sort_by_key(|r| ids.iter().position(|i| *i == r.id));
    let missing: Vec<&String> = b
        .ids
        .iter()
        .filter(|raw| {
            !records
                .iter()
                .any(|r| r.id.to_string() == raw.to_ascii_lowercase())
        })
        .collect();
    Ok(Json(json!({"records": records, "missing": missing})))
}

async fn read_record(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path((col, rid)): Path<(String, String)>,
    Params(q): Params<DataQuery>,
) -> ApiResult<Json<boveda_core::RecordView>> {
    let rid = id::<RecordId>(&rid, "record")?;
    let mut found = s
        .vault
        .read_records(
            &c,
            &col,
            q.purpose.as_deref(),
            &[rid],
            q.view.unwrap_or(View::Masked),
        )
        .await?;
    Ok(Json(
        found.pop().ok_or(boveda_core::Error::NotFound("record"))?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordPatch {
    fields: serde_json::Map<String, Value>,
}

async fn update_record(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path((col, rid)): Path<(String, String)>,
    Params(q): Params<DataQuery>,
    JsonBody(b): JsonBody<RecordPatch>,
) -> ApiResult<Json<boveda_core::Written>> {
    let rid = id::<RecordId>(&rid, "record")?;
    Ok(Json(
        s.vault
            .update_record(&c, &col, q.purpose.as_deref(), rid, b.fields)
            .await?,
    ))
}

async fn delete_record(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path((col, rid)): Path<(String, String)>,
    Params(q): Params<DataQuery>,
) -> ApiResult<StatusCode> {
    s.vault
        .delete_record(
            &c,
            &col,
            q.purpose.as_deref(),
            id::<RecordId>(&rid, "record")?,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    field: String,
    value: Value,
    #[serde(default)]
    limit: Option<usize>,
}

async fn search(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(col): Path<String>,
    Params(q): Params<DataQuery>,
    JsonBody(b): JsonBody<Search>,
) -> ApiResult<Json<Value>> {
    let found = s
        .vault
        .search(
            &c,
            &col,
            q.purpose.as_deref(),
            &b.field,
            &b.value,
            b.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(json!({"matches": found})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountRequest {
    field: String,
    #[serde(default)]
    values: Option<Vec<Value>>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn count(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(col): Path<String>,
    Params(q): Params<DataQuery>,
    JsonBody(b): JsonBody<CountRequest>,
) -> ApiResult<Json<Value>> {
    let counts = s
        .vault
        .count(
            &c,
            &col,
            q.purpose.as_deref(),
            &b.field,
            b.values.as_deref(),
            b.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(json!({"counts": counts})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetokenizeRequest {
    #[serde(default)]
    scope: Option<String>,
    tokens: Vec<String>,
}

async fn detokenize(
    State(s): State<AppState>,
    Auth(c): Auth,
    Params(q): Params<DataQuery>,
    JsonBody(b): JsonBody<DetokenizeRequest>,
) -> ApiResult<Json<Value>> {
    let values = s
        .vault
        .detokenize(&c, q.purpose.as_deref(), b.scope.as_deref(), &b.tokens)
        .await?;
    let values: Vec<Value> = values
        .iter()
        .map(|v| {
            v.as_ref()
                .map_or(Value::Null, |v| Value::from(v.expose().as_str()))
        })
        .collect();
    Ok(Json(json!({ "values": values })))
}

async fn erase_subject(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(sid): Path<String>,
    Params(q): Params<DataQuery>,
) -> ApiResult<StatusCode> {
    s.vault
        .erase_subject(&c, q.purpose.as_deref(), id::<SubjectId>(&sid, "subject")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn key_status(
    State(s): State<AppState>,
    Auth(c): Auth,
) -> ApiResult<Json<boveda_core::KeyStatus>> {
    Ok(Json(s.vault.key_status(&c).await?))
}

async fn rotate_keys(
    State(s): State<AppState>,
    Auth(c): Auth,
) -> ApiResult<Json<boveda_core::KeyStatus>> {
    let status = s.vault.rotate_keys(&c).await?;
    s.rewrap.notify_one();
    Ok(Json(status))
}

async fn retire_key(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(v): Path<String>,
) -> ApiResult<Json<boveda_core::KeyStatus>> {
    Ok(Json(
        s.vault
            .retire_key(&c, id::<u32>(&v, "key version")?)
            .await?,
    ))
}

// ------------------------------------------------------------- staff identity

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserInvite {
    email: String,
    name: String,
    roles: Vec<String>,
}

async fn invite_user(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<UserInvite>,
) -> ApiResult<Response> {
    let i = s.vault.invite_user(&c, &b.email, &b.name, b.roles).await?;
    // The invitation is shown once, here.
    Ok(created(
        json!({"user": i.user, "invite": i.invite.expose()}),
    ))
}

async fn list_users(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"users": s.vault.users(&c).await?})))
}

async fn show_user(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(u): Path<String>,
) -> ApiResult<Json<boveda_core::User>> {
    Ok(Json(
        s.vault.user(&c, id::<PrincipalId>(&u, "user")?).await?,
    ))
}

async fn update_user(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(u): Path<String>,
    JsonBody(b): JsonBody<boveda_core::UserPatch>,
) -> ApiResult<Json<boveda_core::User>> {
    Ok(Json(
        s.vault
            .update_user(&c, id::<PrincipalId>(&u, "user")?, b)
            .await?,
    ))
}

async fn set_eligibility(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(u): Path<String>,
    JsonBody(b): JsonBody<boveda_core::Eligibility>,
) -> ApiResult<Json<boveda_core::User>> {
    Ok(Json(
        s.vault
            .set_eligibility(&c, id::<PrincipalId>(&u, "user")?, b)
            .await?,
    ))
}

async fn revoke_sessions(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(u): Path<String>,
) -> ApiResult<Json<Value>> {
    let n = s
        .vault
        .revoke_user_sessions(&c, id::<PrincipalId>(&u, "user")?)
        .await?;
    Ok(Json(json!({"revoked": n})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteAccept {
    invite: String,
    password: String,
}

async fn accept_invite(
    State(s): State<AppState>,
    _: Limited,
    JsonBody(b): JsonBody<InviteAccept>,
) -> ApiResult<Json<boveda_core::Enrollment>> {
    let password = zeroize::Zeroizing::new(b.password);
    Ok(Json(s.vault.accept_invite(&b.invite, &password).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaConfirm {
    invite: String,
    code: String,
}

async fn confirm_mfa(
    State(s): State<AppState>,
    _: Limited,
    JsonBody(b): JsonBody<MfaConfirm>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"recovery_codes": s.vault.confirm_mfa(&b.invite, &b.code).await?}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    tenant_id: String,
    email: String,
    password: String,
    code: String,
}

async fn login(
    State(s): State<AppState>,
    _: Limited,
    JsonBody(b): JsonBody<Login>,
) -> ApiResult<Json<boveda_core::LoginResult>> {
    let password = zeroize::Zeroizing::new(b.password);
    // An unknown tenant id answers like any other failed login.
    let tenant = b
        .tenant_id
        .parse::<TenantId>()
        .map_err(|_| boveda_core::Error::InvalidCredentials)?;
    let request_id = crate::error::request_id();
    Ok(Json(
        s.vault
            .login(tenant, &b.email, &password, &b.code, &request_id)
            .await?,
    ))
}

async fn logout(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<StatusCode> {
    s.vault.logout(&c).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepUp {
    code: String,
}

async fn step_up(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<StepUp>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"mfa_at": s.vault.step_up(&c, &b.code).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<PasswordChange>,
) -> ApiResult<StatusCode> {
    let (current, new) = (
        zeroize::Zeroizing::new(b.current_password),
        zeroize::Zeroizing::new(b.new_password),
    );
    s.vault.change_password(&c, &current, &new).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn show_policy(
    State(s): State<AppState>,
    Auth(c): Auth,
) -> ApiResult<Json<boveda_core::PolicyView>> {
    Ok(Json(s.vault.policy(&c).await?))
}

async fn apply_policy(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<Value>,
) -> ApiResult<Json<boveda_core::PolicyView>> {
    // Policy documents hold no personal data: the parser's own message, which names the rule
    // and the problem, is the most useful answer.
    let policy = boveda_core::Policy::parse_json(&b.to_string())
        .map_err(|e| boveda_core::Error::PolicyDocument(e.to_string()))?;
    Ok(Json(s.vault.apply_policy(&c, policy).await?))
}

async fn explain(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<boveda_core::ExplainRequest>,
) -> ApiResult<Json<boveda_core::Explanation>> {
    Ok(Json(s.vault.explain(&c, b).await?))
}

// ----------------------------------------------------------------------- audit

async fn audit_events(
    State(s): State<AppState>,
    Auth(c): Auth,
    Params(q): Params<boveda_core::AuditQuery>,
) -> ApiResult<Json<Value>> {
    let events = s.vault.audit_events(&c, &q).await?;
    let next = events.last().map(|e| e.seq);
    Ok(Json(json!({"events": events, "next_after": next})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn audit_export(
    State(s): State<AppState>,
    Auth(c): Auth,
    Params(q): Params<ExportQuery>,
) -> ApiResult<Response> {
    let format = q.format.unwrap_or_else(|| "jsonl".to_owned());
    let body = s
        .vault
        .audit_export(
            &c,
            &format,
            q.after.unwrap_or(0),
            q.limit.unwrap_or(100_000),
        )
        .await?;
    let ctype = if format == "jsonl" {
        "application/x-ndjson"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok(([(axum::http::header::CONTENT_TYPE, ctype)], body).into_response())
}

async fn audit_verify(
    State(s): State<AppState>,
    Auth(c): Auth,
) -> ApiResult<Json<boveda_core::AuditReport>> {
    Ok(Json(s.vault.audit_verify(&c).await?))
}

async fn audit_public_key(State(s): State<AppState>, Auth(_c): Auth) -> Json<Value> {
    let k = s.vault.audit_public_key();
    Json(
        json!({"algorithm": "ed25519", "public_key": hex::encode(k.as_bytes()), "key_id": hex::encode(k.key_id())}),
    )
}

async fn audit_checkpoint(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"checkpoint": s.vault.audit_checkpoint(&c).await?}),
    ))
}

async fn access_history(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(sid): Path<String>,
) -> ApiResult<Json<Value>> {
    let subject = id::<SubjectId>(&sid, "subject")?;
    Ok(Json(
        json!({"subject_id": subject, "accesses": s.vault.access_history(&c, subject).await?}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list_alerts(
    State(s): State<AppState>,
    Auth(c): Auth,
    Params(q): Params<AlertQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"alerts": s.vault.alerts(&c, q.state.as_deref(), q.limit.unwrap_or(100)).await?}),
    ))
}

async fn acknowledge_alert(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(a): Path<String>,
) -> ApiResult<StatusCode> {
    s.vault
        .set_alert_state(&c, id::<boveda_core::AlertId>(&a, "alert")?, "acknowledged")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resolve_alert(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(a): Path<String>,
) -> ApiResult<StatusCode> {
    s.vault
        .set_alert_state(&c, id::<boveda_core::AlertId>(&a, "alert")?, "resolved")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// -------------------------------------------------------------------- incidents

async fn open_incident(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<boveda_core::NewIncident>,
) -> ApiResult<Response> {
    Ok(created(s.vault.open_incident(&c, b).await?))
}

async fn list_incidents(State(s): State<AppState>, Auth(c): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"incidents": s.vault.incidents(&c).await?})))
}

async fn show_incident(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(i): Path<String>,
) -> ApiResult<Json<boveda_core::Incident>> {
    Ok(Json(
        s.vault
            .incident(&c, id::<boveda_core::IncidentId>(&i, "incident")?)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentState {
    state: String,
}

async fn incident_state(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(i): Path<String>,
    JsonBody(b): JsonBody<IncidentState>,
) -> ApiResult<Json<boveda_core::Incident>> {
    Ok(Json(
        s.vault
            .set_incident_state(&c, id::<boveda_core::IncidentId>(&i, "incident")?, &b.state)
            .await?,
    ))
}

async fn contain(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(i): Path<String>,
    JsonBody(b): JsonBody<boveda_core::Containment>,
) -> ApiResult<Json<boveda_core::Incident>> {
    let incident = s
        .vault
        .contain(&c, id::<boveda_core::IncidentId>(&i, "incident")?, b)
        .await?;
    s.rewrap.notify_one();
    Ok(Json(incident))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectPage {
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    fresh: bool,
}

/// The blast radius with one page of its subjects (`offset`, `limit`: default 1,000, at most
/// 10,000): a large incident touches a million subjects, and the totals come whole. Pages read
/// within a minute come from one snapshot of the log (`as_of_seq`).
async fn blast_radius(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(i): Path<String>,
    Params(q): Params<SubjectPage>,
) -> ApiResult<Json<Value>> {
    let r = s
        .vault
        .blast_radius(&c, id::<boveda_core::IncidentId>(&i, "incident")?, q.fresh)
        .await?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let page: Vec<&boveda_core::SubjectExposure> =
        r.subjects.iter().skip(q.offset).take(limit).collect();
    let v = json!({
        "subjects": page, "clear": r.clear, "masked_only": r.masked_only,
        "ciphertext_only": r.ciphertext_only, "by_category": r.by_category,
        "events_examined": r.events_examined, "as_of_seq": r.as_of_seq,
        "computed_at_ms": r.computed_at_ms, "subjects_total": r.subjects.len(),
        "offset": q.offset, "limit": limit,
    });
    Ok(Json(v))
}

async fn plan_notices(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(i): Path<String>,
) -> ApiResult<Json<Value>> {
    let notices = s
        .vault
        .plan_notices(&c, id::<boveda_core::IncidentId>(&i, "incident")?)
        .await?;
    Ok(Json(json!({ "notices": notices })))
}

async fn approve_notices(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(i): Path<String>,
) -> ApiResult<Json<boveda_core::Incident>> {
    Ok(Json(
        s.vault
            .approve_notices(&c, id::<boveda_core::IncidentId>(&i, "incident")?)
            .await?,
    ))
}

async fn list_notices(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(i): Path<String>,
) -> ApiResult<Json<Value>> {
    let notices = s
        .vault
        .notices(&c, id::<boveda_core::IncidentId>(&i, "incident")?)
        .await?;
    Ok(Json(json!({ "notices": notices })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    language: Option<String>,
}

async fn regulator_report(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path((i, jurisdiction)): Path<(String, String)>,
    Params(q): Params<ReportQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        s.vault
            .regulator_report(
                &c,
                id::<boveda_core::IncidentId>(&i, "incident")?,
                &jurisdiction,
                q.language.as_deref(),
            )
            .await?,
    ))
}
