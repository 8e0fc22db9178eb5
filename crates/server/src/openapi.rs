//! The OpenAPI 3.1 document, generated from the route table so every route is in it.

use crate::api::routes;
use serde_json::{Map, Value, json};

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

fn schemas() -> Value {
    let view = json!({"type": "string", "enum": ["plain", "masked", "redacted"]});
    let settings = json!({"type": "object", "additionalProperties": false, "required": ["purposes", "default_region"], "properties": {
        "purposes": {"type": "array", "items": {"type": "string"}},
        "default_region": {"type": "string", "examples": ["CN", "ES", "US"]},
        "frozen": {"type": "boolean"}}});
    let field = json!({"type": "object", "additionalProperties": false, "required": ["type", "category", "grade"], "properties": {
        "type": {"type": "string", "enum": ["email", "phone", "person_name", "national_id", "date_of_birth", "address", "bank_card", "iban", "ip_address", "free_text", "string", "integer", "date"]},
        "country": {"type": "string", "enum": ["CN", "ES", "US"], "description": "national_id only"},
        "category": {"type": "string", "enum": ["identity", "contact", "financial", "health", "biometric", "location", "minors", "other"]},
        "grade": {"type": "string", "enum": ["L1", "L2", "L3", "L4"]},
        "searchable": {"type": "boolean"}, "required": {"type": "boolean"}}});
    let record = json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "subject_id": {"type": "string", "format": "uuid"},
        "version": {"type": "integer"}, "created_at": {"type": "integer"}, "updated_at": {"type": "integer"},
        "view": view, "labels": {"type": "object", "description": "entity kinds and counts found in free-text fields"}, "fields": {"type": "object"}}});
    let written = json!({"type": "object", "properties": {"id": {"type": "string"}, "subject_id": {"type": "string"}, "version": {"type": "integer"}}});
    let tenant = json!({"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "settings": settings, "created_at": {"type": "integer"}}});
    let account = json!({"type": "object", "properties": {"id": {"type": "string"}, "tenant": {"type": "string"}, "name": {"type": "string"},
        "scopes": {"type": "array", "items": {"type": "string"}}, "max_view": view, "created_at": {"type": "integer"}, "disabled": {"type": "boolean"}}});
    let collection = json!({"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "integer"}, "updated_at": {"type": "integer"},
        "fields": {"type": "object", "additionalProperties": field}}});
    let eligibility = json!({"type": "object", "additionalProperties": false, "properties": {
        "agreements": {"type": "array", "items": {"type": "object", "required": ["version", "signed_at"], "properties": {
            "version": {"type": "string"}, "signed_at": {"type": "integer"}, "expires_at": {"type": ["integer", "null"]}}}},
        "trainings": {"type": "array", "items": {"type": "object", "required": ["course", "completed_at"], "properties": {
            "course": {"type": "string"}, "completed_at": {"type": "integer"}, "expires_at": {"type": ["integer", "null"]}}}}}});
    let user = json!({"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "email": {"type": "string"},
        "roles": {"type": "array", "items": {"type": "string"}}, "mfa_enrolled": {"type": "boolean"}, "active": {"type": "boolean"},
        "locked_until": {"type": ["integer", "null"]}, "must_change_password": {"type": "boolean"}, "disabled": {"type": "boolean"},
        "eligible": {"type": "boolean"}, "eligibility": eligibility, "created_at": {"type": "integer"}}});
    let policy = json!({"type": "object", "required": ["rules"], "properties": {"version": {"type": "integer"}, "rules": {"type": "array", "items": {
        "type": "object", "required": ["id", "effect", "roles", "actions", "resources", "purposes"], "properties": {
            "id": {"type": "string"}, "effect": {"type": "string", "enum": ["allow", "deny"]},
            "roles": {"type": "array", "items": {"type": "string"}}, "actions": {"type": "array", "items": {"type": "string"}},
            "resources": {"type": "array"}, "purposes": {"type": "array", "items": {"type": "string"}},
            "view": {"type": "string", "enum": ["plain", "masked", "redacted"]},
            "conditions": {"type": "object", "properties": {"mfa_within_minutes": {"type": "integer"}, "eligibility": {"type": "boolean"},
                "hours": {"type": "object", "properties": {"from": {"type": "integer"}, "to": {"type": "integer"}}}, "max_subjects_per_day": {"type": "integer"}}}}}}}});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message", "request_id"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "request_id": {"type": "string"}}}}},
        "Status": {"type": "object", "properties": {"status": {"type": "string"}}},
        "Principal": {"type": "object", "properties": {"id": {"type": "string"}, "kind": {"type": "string"}, "tenant_id": {"type": ["string", "null"]}}},
        "Settings": settings,
        "Tenant": tenant,
        "TenantList": {"type": "object", "properties": {"tenants": {"type": "array", "items": tenant}}},
        "TenantCreate": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {"name": {"type": "string"}, "settings": settings}},
        "Frozen": {"type": "object", "additionalProperties": false, "required": ["frozen"], "properties": {"frozen": {"type": "boolean"}}},
        "ServiceAccountCreate": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
            "name": {"type": "string"}, "scopes": {"type": "array", "items": {"type": "string", "enum": ["read", "write", "search", "erase", "admin", "keys"]}}, "max_view": view}},
        "ServiceAccount": account,
        "NewServiceAccount": {"type": "object", "properties": {"service_account": account, "api_key": {"type": "string", "description": "shown once"}}},
        "ServiceAccountList": {"type": "object", "properties": {"service_accounts": {"type": "array", "items": account}}},
        "FieldSpec": field,
        "CollectionSpec": {"type": "object", "additionalProperties": false, "required": ["fields"], "properties": {"fields": {"type": "object", "additionalProperties": field}}},
        "Collection": collection,
        "CollectionList": {"type": "object", "properties": {"collections": {"type": "array", "items": collection}}},
        "RecordsWrite": {"type": "object", "additionalProperties": false, "required": ["records"], "properties": {"records": {"type": "array", "maxItems": 1000, "items": {
            "type": "object", "additionalProperties": false, "required": ["fields"], "properties": {"subject_id": {"type": "string", "format": "uuid"}, "fields": {"type": "object"}}}}}},
        "Written": written,
        "WrittenList": {"type": "object", "properties": {"records": {"type": "array", "items": written}}},
        "BatchGet": {"type": "object", "additionalProperties": false, "required": ["ids"], "properties": {"ids": {"type": "array", "maxItems": 1000, "items": {"type": "string"}}}},
        "Record": record,
        "RecordList": {"type": "object", "properties": {"records": {"type": "array", "items": record}, "missing": {"type": "array", "items": {"type": "string"}}}},
        "RecordPatch": {"type": "object", "additionalProperties": false, "required": ["fields"], "properties": {"fields": {"type": "object"}}},
        "Search": {"type": "object", "additionalProperties": false, "required": ["field", "value"], "properties": {"field": {"type": "string"}, "value": {}, "limit": {"type": "integer"}}},
        "SearchResult": {"type": "object", "properties": {"matches": {"type": "array", "items": record}}},
        "CountRequest": {"type": "object", "additionalProperties": false, "required": ["field"], "properties": {"field": {"type": "string"}, "values": {"type": "array"}, "limit": {"type": "integer"}}},
        "CountResult": {"type": "object", "properties": {"counts": {"type": "array", "items": {"type": "object", "properties": {
            "value_index": {"type": "integer"}, "bucket": {"type": "string"}, "count": {"type": "integer"}}}}}},
        "UserInvite": {"type": "object", "additionalProperties": false, "required": ["email", "name", "roles"], "properties": {
            "email": {"type": "string"}, "name": {"type": "string"}, "roles": {"type": "array", "items": {"type": "string"}}}},
        "User": user,
        "UserList": {"type": "object", "properties": {"users": {"type": "array", "items": user}}},
        "Invited": {"type": "object", "properties": {"user": user, "invite": {"type": "string", "description": "shown once"}}},
        "UserPatch": {"type": "object", "additionalProperties": false, "properties": {
            "roles": {"type": "array", "items": {"type": "string"}}, "must_change_password": {"type": "boolean"}, "disabled": {"type": "boolean"}}},
        "Eligibility": eligibility,
        "Revoked": {"type": "object", "properties": {"revoked": {"type": "integer"}}},
        "InviteAccept": {"type": "object", "additionalProperties": false, "required": ["invite", "password"], "properties": {"invite": {"type": "string"}, "password": {"type": "string", "minLength": 12, "maxLength": 128}}},
        "Enrollment": {"type": "object", "properties": {"otpauth_uri": {"type": "string"}, "qr_svg": {"type": "string"}}},
        "MfaConfirm": {"type": "object", "additionalProperties": false, "required": ["invite", "code"], "properties": {"invite": {"type": "string"}, "code": {"type": "string"}}},
        "RecoveryCodes": {"type": "object", "properties": {"recovery_codes": {"type": "array", "items": {"type": "string"}}}},
        "Login": {"type": "object", "additionalProperties": false, "required": ["tenant_id", "email", "password", "code"], "properties": {
            "tenant_id": {"type": "string"}, "email": {"type": "string"}, "password": {"type": "string"}, "code": {"type": "string", "description": "a TOTP code or a recovery code"}}},
        "LoginResult": {"type": "object", "properties": {"session_token": {"type": "string"}, "expires_at": {"type": "integer"},
            "password_change_required": {"type": "boolean"}, "password_change_recommended": {"type": "boolean"}}},
        "StepUp": {"type": "object", "additionalProperties": false, "required": ["code"], "properties": {"code": {"type": "string"}}},
        "StepUpResult": {"type": "object", "properties": {"mfa_at": {"type": "integer"}}},
        "PasswordChange": {"type": "object", "additionalProperties": false, "required": ["current_password", "new_password"], "properties": {
            "current_password": {"type": "string"}, "new_password": {"type": "string"}}},
        "DetokenizeRequest": {"type": "object", "additionalProperties": false, "required": ["tokens"], "properties": {
            "scope": {"type": "string", "description": "the scope the tokens were issued in (default `default`)"},
            "tokens": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "string"}}}},
        "DetokenizeResult": {"type": "object", "properties": {"values": {"type": "array", "items": {"type": ["string", "null"]},
            "description": "in the order asked; null for a token the vault did not issue in that scope"}}},
        "Policy": policy,
        "PolicyView": {"type": "object", "properties": {"version": {"type": "integer"}, "applied_by": {"type": ["string", "null"]}, "policy": policy}},
        "ExplainRequest": {"type": "object", "additionalProperties": false, "required": ["action", "collection", "purpose"], "properties": {
            "user_id": {"type": "string"}, "roles": {"type": "array", "items": {"type": "string"}}, "action": {"type": "string"},
            "collection": {"type": "string"}, "field": {"type": "string"}, "purpose": {"type": "string"},
            "mfa_age_minutes": {"type": "integer"}, "hour_utc": {"type": "integer"}}},
        "Explanation": {"type": "object", "properties": {"decision": {"type": "string", "enum": ["allow", "deny"]}, "rule": {"type": ["string", "null"]},
            "view": {"type": "string"}, "missing": {"type": "array"}, "policy_version": {"type": "integer"}, "roles": {"type": "array", "items": {"type": "string"}}}},
        "AuditEvents": {"type": "object", "properties": {"events": {"type": "array", "items": {"type": "object", "properties": {
            "seq": {"type": "integer"}, "hash": {"type": "string"}, "event": {"type": "object"}}}}, "next_after": {"type": ["integer", "null"]}}},
        "Text": {"type": "string"},
        "AuditReport": {"type": "object", "properties": {"status": {"type": "string", "enum": ["intact", "broken"]}, "last_seq": {"type": "integer"},
            "first_bad_seq": {"type": "integer"}, "problem": {}}},
        "PublicKey": {"type": "object", "properties": {"algorithm": {"type": "string"}, "public_key": {"type": "string"}, "key_id": {"type": "string"}}},
        "CheckpointResult": {"type": "object", "properties": {"checkpoint": {"type": ["object", "null"]}}},
        "AccessHistory": {"type": "object", "properties": {"subject_id": {"type": "string"}, "accesses": {"type": "array", "items": {"type": "object", "properties": {
            "at_ms": {"type": "integer"}, "principal": {"type": "string"}, "roles": {"type": "array"}, "action": {"type": "string"},
            "fields": {"type": "array"}, "purpose": {"type": ["string", "null"]}, "view": {"type": ["string", "null"]}}}}}},
        "Alerts": {"type": "object", "properties": {"alerts": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "kind": {"type": "string"}, "principal": {"type": "string"}, "at_ms": {"type": "integer"},
            "events": {"type": "array", "items": {"type": "integer"}}, "detail": {"type": "string"},
            "state": {"type": "string", "enum": ["open", "acknowledged", "resolved"]}, "updated_at": {"type": "integer"}}}}}},
        "NewIncident": {"type": "object", "additionalProperties": false, "required": ["title", "detected_at", "severity", "scope"], "properties": {
            "title": {"type": "string"}, "description": {"type": "string"}, "detected_at": {"type": "integer"},
            "severity": {"type": "string", "enum": ["low", "medium", "high", "critical"]}, "cause": {"type": "string"},
            "scope": {"type": "object", "properties": {"principals": {"type": "array", "items": {"type": "string"}}, "key_versions": {"type": "array", "items": {"type": "integer"}},
                "collections": {"type": "array", "items": {"type": "string"}}, "tenant": {"type": "boolean"}, "from_ms": {"type": "integer"}, "to_ms": {"type": "integer"},
                "subjects": {"type": "array", "items": {"type": "string"}}}}}},
        "Incident": {"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "state": {"type": "string"}, "severity": {"type": "string"},
            "owner": {"type": "string"}, "timeline": {"type": "array", "items": {"type": "object"}}}},
        "IncidentList": {"type": "object", "properties": {"incidents": {"type": "array", "items": {"type": "object"}}}},
        "NoticeList": {"type": "object", "properties": {"notices": {"type": "array", "items": {"type": "object", "properties": {
            "key": {"type": "string"}, "kind": {"type": "string", "enum": ["individual", "guardian", "announcement", "regulator_gdpr", "regulator_pipl"]},
            "subject_id": {"type": ["string", "null"]}, "language": {"type": "string", "enum": ["es", "en", "zh"]},
            "channels": {"type": "array", "items": {"type": "string", "enum": ["email", "sms", "push", "phone", "letter", "publish"]}},
            "channel": {"type": "integer"}, "status": {"type": "string", "enum": ["queued", "sending", "sent", "fell_back", "failed", "unreachable", "not_required", "covered"]},
            "reason": {"type": ["string", "null"]}, "attempts": {"type": "integer"}, "next_attempt_ms": {"type": "integer"}, "updated_ms": {"type": "integer"},
            "history": {"type": "array", "items": {"type": "object", "properties": {"at_ms": {"type": "integer"}, "channel": {"type": "string"}, "outcome": {"type": "string"}, "error": {"type": ["string", "null"]}}}}}}}}},
        "RegulatorReport": {"type": "object", "properties": {"jurisdiction": {"type": "string", "enum": ["gdpr", "pipl"]}, "incident_id": {"type": "string"},
            "controller": {"type": "string"}, "detected_at": {"type": "integer"}, "language": {"type": "string"}, "fields": {"type": "object"},
            "subject": {"type": "string"}, "text": {"type": "string"}}},
        "IncidentState": {"type": "object", "additionalProperties": false, "required": ["state"], "properties": {"state": {"type": "string", "enum": ["contained", "notifying", "closed"]}}},
        "Containment": {"type": "object", "required": ["action"], "properties": {"action": {"type": "string", "enum": ["revoke_principal", "force_password_reset", "suspend_principal", "rotate_keys", "freeze_tenant"]},
            "principal_id": {"type": "string"}}},
        "BlastRadius": {"type": "object", "properties": {"subjects": {"type": "array", "items": {"type": "object", "properties": {
            "subject_id": {"type": ["string", "null"]}, "exposure": {"type": "string", "enum": ["clear", "masked", "ciphertext_only"]}, "categories": {"type": "array"},
            "fields": {"type": "array"}, "grades": {"type": "array"}, "views": {"type": "array"}, "counts": {"type": "object"}, "first_ms": {"type": "integer"}, "last_ms": {"type": "integer"}}}},
            "clear": {"type": "integer"}, "masked_only": {"type": "integer"}, "ciphertext_only": {"type": "integer"}, "by_category": {"type": "object"}, "events_examined": {"type": "integer"},
            "subjects_total": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"},
            "as_of_seq": {"type": "integer", "description": "the log's last sequence number in this snapshot; pages read within a minute share it"},
            "computed_at_ms": {"type": "integer"}}},
        "KeyStatus": {"type": "object", "properties": {"active_version": {"type": "integer"}, "rewrap_pending": {"type": "integer"},
            "rewrap_progress_percent": {"type": "number"}, "versions": {"type": "array", "items": {"type": "object", "properties": {
                "version": {"type": "integer"}, "state": {"type": "string"}, "subjects": {"type": "integer"}, "created_at": {"type": "integer"}}}}}}
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    let error = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    for (r, _) in routes() {
        let mut params = path_params(r.path);
        if r.data {
            params.push(json!({"name": "purpose", "in": "query", "required": true, "schema": {"type": "string"}, "description": "why the data is used; one of the tenant's purposes"}));
            params.push(json!({"name": "view", "in": "query", "required": false, "schema": {"type": "string", "enum": ["plain", "masked", "redacted"]}}));
        }
        let ok = match r.ok.1 {
            Some(schema) => {
                json!({"description": "success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
            }
            None => json!({"description": "success"}),
        };
        let mut responses = Map::new();
        responses.insert(r.ok.0.to_string(), ok);
        responses.insert("4XX".into(), error.clone());
        let mut op = json!({
            "summary": r.summary,
            "tags": [r.tag],
            "operationId": format!("{} {}", r.method.to_lowercase(), r.path),
            "parameters": params,
            "responses": responses,
        });
        if r.auth {
            op["security"] = json!([{"bearer": []}]);
        }
        if let Some(schema) = r.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "boveda", "version": env!("CARGO_PKG_VERSION"), "description": "Personal-data vault: encrypted, desensitized, access-controlled, audited."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": crate::presidio::with_schemas(schemas()),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_every_schema_exists() {
        let doc = document();
        let schemas = doc["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (r, _) in routes() {
            let op = &doc["paths"][r.path][r.method.to_lowercase()];
            assert!(
                op.is_object(),
                "{} {} missing from the document",
                r.method,
                r.path
            );
            assert!(!r.summary.is_empty());
            for name in r.body.iter().chain(r.ok.1.iter()) {
                assert!(
                    schemas.contains_key(*name),
                    "schema {name} of {} {} is not defined",
                    r.method,
                    r.path
                );
            }
        }
    }
}
