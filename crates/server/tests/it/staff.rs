//! Issue 3's scenario over HTTPS: staff invited, passwords and TOTP, a support agent who only
//! ever sees masked phones, a fraud investigator who sees the clear number of an L3 field for
//! fraud prevention after a fresh MFA check and nothing for marketing, eligibility that blocks
//! at once when it lapses, lockout after exactly ten failures, and `explain`.

use crate::harness::{Backend, Server};
use boveda_crypto::totp::{TotpSecret, code_at};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const POLICY: &str = r#"{"rules": [
  {"id": "services", "effect": "allow", "roles": ["service"], "actions": ["*"], "resources": ["*"], "purposes": ["*"], "view": "plain"},
  {"id": "support-masked", "effect": "allow", "roles": ["support_agent"], "actions": ["read", "search"], "resources": ["*"],
   "purposes": ["customer_support"], "view": "masked", "conditions": {"eligibility": true}},
  {"id": "fraud-l3-clear", "effect": "allow", "roles": ["fraud_investigator"], "actions": ["read"], "resources": [{"grade": "L3"}],
   "purposes": ["fraud_prevention"], "view": "plain", "conditions": {"eligibility": true, "mfa_within_minutes": 15}},
  {"id": "no-marketing", "effect": "deny", "roles": ["*"], "actions": ["*"], "resources": ["*"], "purposes": ["marketing"]}
]}"#;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn secret_of(uri: &str) -> TotpSecret {
    let q = uri.split_once('?').unwrap().1;
    let s = q
        .split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .unwrap();
    TotpSecret::from_base32(s).unwrap()
}

struct Staff {
    id: String,
    email: String,
    password: String,
    secret: TotpSecret,
    recovery: Vec<String>,
    /// The code that confirmed enrolment (its time step is now used).
    confirm_code: String,
}

async fn enrol(s: &Server, admin: &str, email: &str, name: &str, roles: &[&str]) -> Staff {
    let inv = s
        .ok(
            admin,
            Method::POST,
            "/v1/users",
            Some(json!({"email": email, "name": name, "roles": roles})),
        )
        .await;
    let invite = inv["invite"].as_str().unwrap().to_owned();
    assert!(!inv["user"]["active"].as_bool().unwrap());
    let password = "Lluvia-sobre-Teruel-en-1987!".to_owned();
    // Weak, short and blocklisted passwords are refused, each with its rule.
    for (bad, rule) in [
        ("short1!", "12"),
        ("password12345", "common"),
        (
            &*format!("{}-1234-abcd", name.split(' ').next().unwrap()),
            "name",
        ),
    ] {
        let (st, v) = s
            .call(
                "",
                Method::POST,
                "/v1/auth/invite/accept",
                Some(json!({"invite": invite, "password": bad})),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "password_rejected");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains(rule),
            "{bad}: {v}"
        );
    }
    let e = s
        .ok(
            "",
            Method::POST,
            "/v1/auth/invite/accept",
            Some(json!({"invite": invite, "password": password})),
        )
        .await;
    let uri = e["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"));
    assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = secret_of(uri);
    let (st, _) = s
        .call(
            "",
            Method::POST,
            "/v1/auth/mfa/confirm",
            Some(json!({"invite": invite, "code": "000000"})),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a wrong first code is refused"
    );
    let confirm_code = code_at(&secret, now()).as_str().to_owned();
    let c = s
        .ok(
            "",
            Method::POST,
            "/v1/auth/mfa/confirm",
            Some(json!({"invite": invite, "code": confirm_code})),
        )
        .await;
    let recovery: Vec<String> = c["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    let (st, _) = s
        .call(
            "",
            Method::POST,
            "/v1/auth/mfa/confirm",
            Some(json!({"invite": invite, "code": code_at(&secret, now()).as_str()})),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an invitation works once"
    );
    Staff {
        id: inv["user"]["id"].as_str().unwrap().to_owned(),
        email: email.to_owned(),
        password,
        secret,
        recovery,
        confirm_code,
    }
}

async fn login(s: &Server, tenant: &str, who: &Staff, code: &str) -> (StatusCode, Value) {
    s.call("", Method::POST, "/v1/auth/login", Some(json!({"tenant_id": tenant, "email": who.email, "password": who.password, "code": code}))).await
}

async fn eligible(s: &Server, admin: &str, who: &Staff, training_expires: Option<i64>) {
    let now_ms = (now() * 1000) as i64;
    s.ok(admin, Method::PUT, &format!("/v1/users/{}/eligibility", who.id), Some(json!({
        "agreements": [{"version": "2026-01", "signed_at": now_ms - 86_400_000}],
        "trainings": [{"course": "privacy-basics", "completed_at": now_ms - 86_400_000, "expires_at": training_expires}]
    })))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_sees_masked_fraud_sees_clear_with_mfa_and_nothing_for_marketing() {
    let s = Server::start(Backend::Sqlite).await;
    let (tenant, admin) = s.tenant("staffco").await;
    s.customers(&admin).await;
    let mut settings = s.ok(&admin, Method::GET, "/v1/settings", None).await["settings"].clone();
    settings["purposes"]
        .as_array_mut()
        .unwrap()
        .push(json!("marketing"));
    s.ok(&admin, Method::PUT, "/v1/settings", Some(settings))
        .await;
    let policy: Value = serde_json::from_str(POLICY).unwrap();
    let applied = s.ok(&admin, Method::PUT, "/v1/policy", Some(policy)).await;
    assert_eq!(applied["version"], 1);
    let w = s
        .ok(
            &admin,
            Method::POST,
            "/v1/collections/customers/records?purpose=billing",
            Some(json!({"records": [
        {"fields": {"email": "cliente@example.com", "phone": "+86 138 1234 5678"}}]})),
        )
        .await;
    let rid = w["records"][0]["id"].as_str().unwrap().to_owned();
    let read = |purpose: &str, view: &str| {
        format!("/v1/collections/customers/records/{rid}?purpose={purpose}&view={view}")
    };

    // The support agent.
    let agent = enrol(
        &s,
        &admin,
        "agente@staffco.example",
        "Marta Soporte",
        &["support_agent"],
    )
    .await;
    let (st, _) = login(&s, &tenant, &agent, &agent.confirm_code).await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "the code used to confirm enrolment cannot be replayed"
    );
    let (st, v) = login(
        &s,
        &tenant,
        &agent,
        code_at(&agent.secret, now() + 30).as_str(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let agent_token = v["session_token"].as_str().unwrap().to_owned();
    assert_eq!(v["password_change_recommended"], false);
    let (st, v) = s
        .call(
            &agent_token,
            Method::GET,
            &read("customer_support", "plain"),
            None,
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("eligibility_required")),
        "{v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("agreement") && msg.contains("training"),
        "{msg}"
    );
    eligible(&s, &admin, &agent, None).await;
    for view in ["plain", "masked"] {
        let r = s
            .ok(
                &agent_token,
                Method::GET,
                &read("customer_support", view),
                None,
            )
            .await;
        assert_eq!(
            r["fields"]["phone"], "+86 138****5678",
            "whatever view is asked for"
        );
        assert!(!r.to_string().contains("13812345678"));
    }
    let (st, v) = s
        .call(
            &agent_token,
            Method::GET,
            &read("marketing", "masked"),
            None,
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("policy_denied")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-marketing")
    );

    // Expired training blocks access at once.
    eligible(&s, &admin, &agent, Some((now() * 1000) as i64 - 1)).await;
    let (st, v) = s
        .call(
            &agent_token,
            Method::GET,
            &read("customer_support", "masked"),
            None,
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("eligibility_required")),
        "{v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("training"));

    // The fraud investigator.
    let fraud = enrol(
        &s,
        &admin,
        "fraude@staffco.example",
        "Tomás Investigador",
        &["fraud_investigator"],
    )
    .await;
    eligible(&s, &admin, &fraud, None).await;
    // A recovery code logs in too (and leaves the next TOTP step for the step-up below).
    let (st, v) = login(&s, &tenant, &fraud, &fraud.recovery[3]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let fraud_token = v["session_token"].as_str().unwrap().to_owned();
    let r = s
        .ok(
            &fraud_token,
            Method::GET,
            &read("fraud_prevention", "plain"),
            None,
        )
        .await;
    assert_eq!(
        r["fields"]["phone"], "+8613812345678",
        "clear L3 field after MFA within 15 minutes"
    );
    assert!(
        r["fields"].get("email").is_none(),
        "the L2 email is not covered by the L3 rule"
    );
    let (st, v) = s
        .call(&fraud_token, Method::GET, &read("marketing", "plain"), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(!v.to_string().contains("5678"));
    // Step-up with a fresh code works once per time step.
    let code = code_at(&fraud.secret, now() + 30);
    let (st, v) = s
        .call(
            &fraud_token,
            Method::POST,
            "/v1/auth/step-up",
            Some(json!({"code": code.as_str()})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["mfa_at"].as_i64().unwrap() > 0);
    let (st, _) = s
        .call(
            &fraud_token,
            Method::POST,
            "/v1/auth/step-up",
            Some(json!({"code": code.as_str()})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a step cannot be replayed");

    // The privacy officer's question: why?
    let e = s.ok(&admin, Method::POST, "/v1/policy/explain", Some(json!({
        "user_id": fraud.id, "action": "read", "collection": "customers", "field": "phone", "purpose": "fraud_prevention", "mfa_age_minutes": 20
    }))).await;
    assert_eq!(e["decision"], "deny");
    assert_eq!(e["missing"][0]["condition"], "mfa");
    let e = s.ok(&admin, Method::POST, "/v1/policy/explain", Some(json!({
        "user_id": fraud.id, "action": "read", "collection": "customers", "field": "phone", "purpose": "fraud_prevention", "mfa_age_minutes": 3
    }))).await;
    assert_eq!(
        (
            e["decision"].as_str(),
            e["rule"].as_str(),
            e["view"].as_str()
        ),
        (Some("allow"), Some("fraud-l3-clear"), Some("plain"))
    );
    let e = s.ok(&admin, Method::POST, "/v1/policy/explain", Some(json!({
        "roles": ["support_agent"], "action": "read", "collection": "customers", "field": "phone", "purpose": "marketing"
    }))).await;
    assert_eq!(
        (e["decision"].as_str(), e["rule"].as_str()),
        (Some("deny"), Some("no-marketing"))
    );

    // Forced password change comes before anything else.
    s.ok(
        &admin,
        Method::PATCH,
        &format!("/v1/users/{}", fraud.id),
        Some(json!({"must_change_password": true})),
    )
    .await;
    let (st, v) = s
        .call(
            &fraud_token,
            Method::GET,
            &read("fraud_prevention", "plain"),
            None,
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("password_change_required"))
    );
    let (st, _) = s
        .call(&fraud_token, Method::POST, "/v1/auth/password", Some(json!({"current_password": fraud.password, "new_password": "Otra-Clave-Distinta-para-2027?"})))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    s.ok(
        &fraud_token,
        Method::GET,
        &read("fraud_prevention", "plain"),
        None,
    )
    .await;

    // Revoking every session ends them at once; logout ends one.
    let r = s
        .ok(
            &admin,
            Method::POST,
            &format!("/v1/users/{}/sessions/revoke", fraud.id),
            None,
        )
        .await;
    assert_eq!(r["revoked"], 1);
    let (st, _) = s
        .call(
            &fraud_token,
            Method::GET,
            &read("fraud_prevention", "plain"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s
        .call(&agent_token, Method::POST, "/v1/auth/logout", None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.call(&agent_token, Method::GET, "/v1/whoami", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_after_exactly_ten_failures_and_one_answer_for_every_failure() {
    let s = Server::start_with(
        Backend::Postgres,
        crate::harness::Options {
            auth_rate: 1000,
            ..Default::default()
        },
    )
    .await;
    let (tenant, admin) = s.tenant("lockco").await;
    let mut who = enrol(
        &s,
        &admin,
        "bloqueo@lockco.example",
        "Lucía Bloqueo",
        &["analyst"],
    )
    .await;
    let right = who.password.clone();
    who.password = "wrong-password-attempt".into();
    let strip = |mut v: Value| {
        v["error"]["request_id"] = Value::Null;
        v
    };
    let (st_wrong, wrong) = login(&s, &tenant, &who, &who.recovery[0]).await;
    let (st_unknown, unknown) = s
        .call("", Method::POST, "/v1/auth/login", Some(json!({"tenant_id": tenant, "email": "nadie@lockco.example", "password": "x", "code": "123456"})))
        .await;
    assert_eq!(
        (st_wrong, strip(wrong.clone())),
        (st_unknown, strip(unknown)),
        "unknown user and wrong password look alike"
    );
    for _ in 0..8 {
        let (st, _) = login(&s, &tenant, &who, &who.recovery[0]).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    // Nine failures: not locked yet.
    who.password = right.clone();
    let (st, v) = login(&s, &tenant, &who, &who.recovery[0]).await;
    assert_eq!(st, StatusCode::OK, "nine failures do not lock: {v}");
    let (st, _) = login(&s, &tenant, &who, &who.recovery[0]).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a recovery code works once");
    // Ten failures lock, and a locked account answers like a wrong password.
    who.password = "wrong-password-attempt".into();
    for _ in 0..9 {
        login(&s, &tenant, &who, &who.recovery[1]).await;
    }
    who.password = right;
    let (st, locked) = login(&s, &tenant, &who, &who.recovery[1]).await;
    assert_eq!(
        (st, strip(locked)),
        (st_wrong, strip(wrong)),
        "locked after exactly ten failures, same answer"
    );
    let u = s
        .ok(&admin, Method::GET, &format!("/v1/users/{}", who.id), None)
        .await;
    assert!(u["locked_until"].as_i64().is_some());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_rate_limited_per_address() {
    let s = Server::start(Backend::Sqlite).await;
    let body = json!({"tenant_id": "01a22789-0000-7000-8000-000000000000", "email": "x@example.com", "password": "p", "code": "1"});
    let mut statuses = Vec::new();
    for _ in 0..32 {
        statuses.push(
            s.call("", Method::POST, "/v1/auth/login", Some(body.clone()))
                .await
                .0,
        );
    }
    assert!(
        statuses[..30]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(statuses[31], StatusCode::TOO_MANY_REQUESTS);
    s.stop().await;
}

/// A behaviour alert whose configured response is step-up: after repeated denials the staff
/// member's session no longer counts as recently MFA-checked, so the clear read that needs a
/// fresh check is refused until they pass TOTP again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_with_a_step_up_response_makes_the_session_pass_mfa_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = crate::harness::config(
        Backend::Sqlite,
        tmp.path(),
        &crate::harness::Options::default(),
    );
    cfg.set("vault.alert_step_up", "repeated_denials").unwrap();
    let s = Server::start_config(cfg, false).await;
    let (tenant, admin) = s.tenant("stepupco").await;
    s.customers(&admin).await;
    let mut settings = s.ok(&admin, Method::GET, "/v1/settings", None).await["settings"].clone();
    settings["purposes"]
        .as_array_mut()
        .unwrap()
        .push(json!("marketing"));
    s.ok(&admin, Method::PUT, "/v1/settings", Some(settings))
        .await;
    let policy: Value = serde_json::from_str(POLICY).unwrap();
    s.ok(&admin, Method::PUT, "/v1/policy", Some(policy)).await;
    let w = s
        .ok(
            &admin,
            Method::POST,
            "/v1/collections/customers/records?purpose=billing",
            Some(json!({"records": [{"fields": {"email": "c@example.com", "phone": "+86 138 1234 5678"}}]})),
        )
        .await;
    let rid = w["records"][0]["id"].as_str().unwrap().to_owned();
    let read = |purpose: &str| {
        format!("/v1/collections/customers/records/{rid}?purpose={purpose}&view=plain")
    };
    let fraud = enrol(
        &s,
        &admin,
        "fraude@stepupco.example",
        "Nuria Fraude",
        &["fraud_investigator"],
    )
    .await;
    eligible(&s, &admin, &fraud, None).await;
    // A recovery code logs in (with MFA) and leaves the next TOTP step for the step-up.
    let (st, v) = login(&s, &tenant, &fraud, &fraud.recovery[0]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let session = v["session_token"].as_str().unwrap().to_owned();
    let clear = s
        .ok(&session, Method::GET, &read("fraud_prevention"), None)
        .await;
    assert_eq!(clear["fields"]["phone"], "+8613812345678");

    for _ in 0..12 {
        let (st, _) = s
            .call(&session, Method::GET, &read("marketing"), None)
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }
    let alerts = s.ok(&admin, Method::GET, "/v1/alerts", None).await;
    assert!(alerts.to_string().contains("repeated_denials"), "{alerts}");
    let (st, v) = s
        .call(&session, Method::GET, &read("fraud_prevention"), None)
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("mfa_step_up_required")),
        "{v}"
    );
    s.ok(
        &session,
        Method::POST,
        "/v1/auth/step-up",
        Some(json!({"code": code_at(&fraud.secret, now() + 30).as_str()})),
    )
    .await;
    let clear = s
        .ok(&session, Method::GET, &read("fraud_prevention"), None)
        .await;
    assert_eq!(clear["fields"]["phone"], "+8613812345678");
}
