//! Incident notices end to end: a stolen key reads five customers in clear and one masked;
//! the plan sends the guardian of a minor, falls back from a bouncing email to SMS, writes a
//! letter, announces publicly for the unreachable, reports to two regulators, waits for a
//! second privacy officer, and survives being stopped in the middle of a delivery without
//! sending anything twice. Real SMTP (aiosmtpd) and a local webhook receiver.

use crate::harness::{Backend, Server};
use axum::{Json, Router, routing::post};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Smtp {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Smtp {
    fn start() -> Smtp {
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/smtp_sink.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (./scripts/test installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the sink prints its port");
        Smtp { child, dir, port }
    }

    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn account(s: &Server, tenant: &str, name: &str, roles: &[&str]) -> String {
    s.service_account(
        tenant,
        json!({"name": name, "roles": roles, "max_view": "plain"}),
    )
    .await
}

/// A SQLite server that delivers notices through `smtp`, quickly: 20 ms backoff, a 1 s send
/// lease, a delivery pass every 50 ms.
async fn notify_server(smtp: &Smtp, dir: &std::path::Path) -> Server {
    let mut cfg = crate::harness::config(Backend::Sqlite, dir, &crate::harness::Options::default());
    for (k, v) in [
        ("notify.smtp_url", format!("smtp://127.0.0.1:{}", smtp.port)),
        ("notify.from", "privacidad@acme.example".into()),
        ("notify.backoff_ms", "20".into()),
        ("notify.lease_seconds", "1".into()),
        ("notify.interval_ms", "50".into()),
    ] {
        cfg.set(k, &v).unwrap();
    }
    Server::start_config(cfg, false).await
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..400 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_key_leads_to_approved_notices_delivered_once_each() {
    let smtp = Smtp::start();
    let hooks: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let app = {
        let hooks = Arc::clone(&hooks);
        Router::new().route(
            "/sms",
            post(move |h: axum::http::HeaderMap, Json(body): Json<Value>| {
                let hooks = Arc::clone(&hooks);
                async move {
                    let key = h["idempotency-key"].to_str().unwrap().to_owned();
                    hooks.lock().unwrap().push((key, body));
                    StatusCode::OK
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let tmp = tempfile::tempdir().unwrap();
    let s = notify_server(&smtp, tmp.path()).await;
    let (tenant, admin) = s.tenant("acme").await;
    s.ok(
        &admin,
        Method::PUT,
        "/v1/collections/people",
        Some(json!({"fields": {
        "name": {"type": "person_name", "category": "identity", "grade": "L2"},
        "email": {"type": "email", "category": "contact", "grade": "L2"},
        "phone": {"type": "phone", "category": "contact", "grade": "L3"},
        "address": {"type": "address", "category": "location", "grade": "L3"},
        "dob": {"type": "date_of_birth", "category": "identity", "grade": "L3"},
        "lang": {"type": "string", "category": "other", "grade": "L1"},
        "card": {"type": "bank_card", "category": "financial", "grade": "L4"},
        "guardian_name": {"type": "person_name", "category": "minors", "grade": "L2"},
        "guardian_email": {"type": "email", "category": "minors", "grade": "L2"}}})),
    )
    .await;
    let mut settings = s.ok(&admin, Method::GET, "/v1/settings", None).await["settings"].clone();
    settings["notice"] = json!({
        "collection": "people",
        "fields": {"name": "name", "email": "email", "phone": "phone", "address": "address",
                   "date_of_birth": "dob", "language": "lang",
                   "guardian_name": "guardian_name", "guardian_email": "guardian_email"},
        "channels": ["email", "sms", "letter"],
        "controller": "ACME S.L.",
        "contact": "dpo@acme.example",
        "regulators": {"gdpr": "brechas@aepd.example", "pipl": "report@cac.example"},
        "webhooks": {"sms": format!("http://127.0.0.1:{hook_port}/sms")}
    });
    // A template with an unknown placeholder is refused, naming the template.
    let mut bad = settings.clone();
    bad["notice"]["templates"] = json!({"es.individual": {"subject": "x", "body": "{{password}}"}});
    let r = s.call(&admin, Method::PUT, "/v1/settings", Some(bad)).await;
    assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.1);
    assert!(r.1.to_string().contains("notice.templates.es.individual"));
    s.ok(&admin, Method::PUT, "/v1/settings", Some(settings))
        .await;

    let people = json!({"records": [
        {"fields": {"name": "Ana García", "email": "ana@example.es", "lang": "es", "dob": "1980-01-01", "card": "4111111111111111"}},
        {"fields": {"name": "Bob Smith", "email": "bob@bounce.example", "phone": "+34600111222", "lang": "en", "dob": "1975-05-05"}},
        {"fields": {"name": "小明", "dob": "2015-06-01", "lang": "zh", "guardian_name": "王芳", "guardian_email": "wangfang@example.cn"}},
        {"fields": {"name": "Diego Ruiz", "address": "Calle Mayor 1, 28013 Madrid", "lang": "es", "dob": "1990-02-02"}},
        {"fields": {"name": "Eva Sin Contacto", "lang": "es", "dob": "1985-03-03"}},
        {"fields": {"name": "Fer Enmascarado", "email": "fer@example.es", "dob": "1970-01-01"}}]});
    let w = s
        .ok(
            &admin,
            Method::POST,
            "/v1/collections/people/records?purpose=billing",
            Some(people),
        )
        .await;
    let ids: Vec<String> = w["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();

    let stolen = account(&s, &tenant, "exporter", &["service"]).await;
    let thief = s.ok(&stolen, Method::GET, "/v1/whoami", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (i, id) in ids.iter().enumerate() {
        let view = if i == 5 { "masked" } else { "plain" };
        s.ok(
            &stolen,
            Method::GET,
            &format!("/v1/collections/people/records/{id}?purpose=billing&view={view}"),
            None,
        )
        .await;
    }

    let officer = account(&s, &tenant, "dpo", &["privacy_officer"]).await;
    let officer2 = account(&s, &tenant, "dpo-deputy", &["privacy_officer"]).await;
    let responder = account(&s, &tenant, "soc", &["security_responder"]).await;
    let incident = s
        .ok(&officer, Method::POST, "/v1/incidents", Some(json!({
            "title": "Clave de servicio robada", "description": "Una clave de API de exportación se usó desde una dirección desconocida.",
            "detected_at": 1_790_000_000_000i64, "severity": "high", "cause": "credential theft",
            "scope": {"principals": [thief]}})))
        .await;
    let iid = incident["id"].as_str().unwrap().to_owned();
    s.ok(
        &responder,
        Method::POST,
        &format!("/v1/incidents/{iid}/containment"),
        Some(json!({"action": "revoke_principal", "principal_id": thief})),
    )
    .await;

    // Approval before a plan, and by anyone but another privacy officer, is refused.
    let r = s
        .call(
            &officer2,
            Method::POST,
            &format!("/v1/incidents/{iid}/notices/approve"),
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::CONFLICT, "{}", r.1);

    let plan = s
        .ok(
            &responder,
            Method::POST,
            &format!("/v1/incidents/{iid}/notices/plan"),
            None,
        )
        .await;
    let notices = plan["notices"].as_array().unwrap();
    let status = |kind: &str, st: &str| {
        notices
            .iter()
            .filter(|n| n["kind"] == kind && n["status"] == st)
            .count()
    };
    assert_eq!(status("individual", "queued"), 3, "{plan}");
    assert_eq!(
        status("guardian", "queued"),
        1,
        "the minor's guardian: {plan}"
    );
    assert_eq!(status("individual", "unreachable"), 1, "{plan}");
    assert_eq!(
        status("individual", "not_required"),
        1,
        "masked only: {plan}"
    );
    assert_eq!(status("announcement", "queued"), 1, "{plan}");
    assert_eq!(
        status("regulator_gdpr", "queued") + status("regulator_pipl", "queued"),
        2
    );
    let bob = notices
        .iter()
        .find(|n| n["language"] == "en")
        .expect("Bob's notice in English");
    assert_eq!(bob["channels"], json!(["email", "sms"]));
    let r = s
        .call(
            &responder,
            Method::POST,
            &format!("/v1/incidents/{iid}/notices/plan"),
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::CONFLICT, "planned once");

    // Nothing leaves before approval.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(smtp.messages().is_empty());
    for (who, code) in [
        (&responder, StatusCode::FORBIDDEN),
        (&officer, StatusCode::FORBIDDEN),
    ] {
        let r = s
            .call(
                who,
                Method::POST,
                &format!("/v1/incidents/{iid}/notices/approve"),
                None,
            )
            .await;
        assert_eq!(r.0, code, "{}", r.1);
    }

    // The second email stalls at the relay; boveda stops dead in the middle of it.
    std::fs::write(smtp.dir.path().join("stall_at"), "2").unwrap();
    let approved = s
        .ok(
            &officer2,
            Method::POST,
            &format!("/v1/incidents/{iid}/notices/approve"),
            None,
        )
        .await;
    assert_eq!(approved["state"], "notifying");
    let stalled = smtp.dir.path().join("stalled");
    wait_for("a stalled delivery", async || stalled.exists()).await;
    let (cfg, keep) = s.stop().await;
    std::fs::remove_file(smtp.dir.path().join("stall_at")).unwrap();
    assert_eq!(smtp.messages().len(), 1);

    let s = Server::start_config(cfg, false).await;
    let _keep = keep;
    let list = format!("/v1/incidents/{iid}/notices");
    wait_for("every notice delivered", async || {
        let v = s.ok(&officer, Method::GET, &list, None).await;
        v["notices"].as_array().unwrap().iter().all(|n| {
            matches!(
                n["status"].as_str().unwrap(),
                "sent" | "failed" | "unreachable" | "not_required"
            )
        })
    })
    .await;
    let v = s.ok(&officer, Method::GET, &list, None).await;
    let notices = v["notices"].as_array().unwrap();
    assert!(notices.iter().all(|n| n["status"] != "failed"), "{v}");
    let bob = notices.iter().find(|n| n["language"] == "en").unwrap();
    assert!(
        bob["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["outcome"] == "fell_back"),
        "{bob}"
    );

    // Exactly one email per recipient, in the recipient's language, with the content required.
    let mail = smtp.messages();
    let to = |addr: &str| -> Vec<&Value> {
        mail.iter()
            .filter(|m| m["rcpt"].as_array().unwrap().iter().any(|r| r == addr))
            .collect()
    };
    assert_eq!(mail.len(), 4, "{mail:?}");
    for addr in [
        "ana@example.es",
        "wangfang@example.cn",
        "brechas@aepd.example",
        "report@cac.example",
    ] {
        assert_eq!(to(addr).len(), 1, "{addr}: {mail:?}");
    }
    assert!(to("fer@example.es").is_empty(), "masked only: no notice");
    let ana = to("ana@example.es")[0];
    let body = ana["body"].as_str().unwrap();
    for part in [
        "Ana García",
        "Qué ha ocurrido",
        "Posibles consecuencias",
        "Medidas adoptadas",
        "se revocaron las sesiones",
        "Qué puede hacer",
        "revise sus movimientos bancarios",
        "reclamación",
        "dpo@acme.example",
    ] {
        assert!(body.contains(part), "{part} in {body}");
    }
    let guardian = to("wangfang@example.cn")[0];
    assert!(guardian["subject"].as_str().unwrap().contains("小明"));
    let gbody = guardian["body"].as_str().unwrap();
    assert!(
        gbody.contains("王芳") && gbody.contains("监护人"),
        "{gbody}"
    );
    let gdpr = to("brechas@aepd.example")[0]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        gdpr.contains("Delegado de protección de datos") && gdpr.contains("dpo@acme.example"),
        "{gdpr}"
    );
    let pipl = to("report@cac.example")[0]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pipl.contains("可能造成的危害"), "{pipl}");

    // Bob: no email accepted (the relay bounced it), one SMS in English.
    let sms = hooks.lock().unwrap().clone();
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert_eq!(sms[0].1["to"], "+34600111222");
    assert_eq!(sms[0].1["language"], "en");
    assert!(
        sms[0].1["text"]
            .as_str()
            .unwrap()
            .contains("What you can do")
    );
    assert_eq!(sms[0].0, sms[0].1["id"].as_str().unwrap());

    // One letter for Diego, and the announcement as HTML and PDF.
    let folder = s.dir.join("outbox").join(&tenant).join(&iid);
    let letters: Vec<_> = std::fs::read_dir(folder.join("letters"))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(letters.len(), 1);
    let pdf = std::fs::read(letters[0].path()).unwrap();
    assert!(pdf.starts_with(b"%PDF-") && pdf.ends_with(b"%%EOF\n"));
    let html = std::fs::read_to_string(folder.join("announcement.html")).unwrap();
    assert!(
        html.contains("Comunicado público") && html.contains("ACME S.L."),
        "{html}"
    );
    assert!(
        !html.contains("Eva"),
        "no personal value in the announcement"
    );
    assert!(
        std::fs::read(folder.join("announcement.pdf"))
            .unwrap()
            .starts_with(b"%PDF-")
    );

    // The regulator's report as data.
    let report = s
        .ok(
            &officer,
            Method::GET,
            &format!("/v1/incidents/{iid}/reports/gdpr?language=en"),
            None,
        )
        .await;
    let f = &report["fields"];
    assert_eq!(f["approximate_subjects"], 6, "{report}");
    assert_eq!(f["subjects_exposed_in_clear"], 5);
    assert_eq!(f["subjects_masked_only"], 1);
    assert_eq!(f["dpo_contact"], "dpo@acme.example");
    assert!(
        f["categories_of_data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "financial")
    );
    assert!(
        report["text"]
            .as_str()
            .unwrap()
            .contains("Likely consequences")
    );
    let pipl = s
        .ok(
            &officer,
            Method::GET,
            &format!("/v1/incidents/{iid}/reports/pipl"),
            None,
        )
        .await;
    assert_eq!(pipl["language"], "zh");
    assert!(
        pipl["fields"]["individual_measures"]
            .as_str()
            .unwrap()
            .len()
            > 3
    );
    let r = s
        .call(
            &officer,
            Method::GET,
            &format!("/v1/incidents/{iid}/reports/ccpa"),
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY);

    // Personal values reach only the messages: not the notices, the audit log or the logs.
    let audit = s
        .ok(
            &officer,
            Method::GET,
            "/v1/audit/events?action=notice.sent&limit=100",
            None,
        )
        .await;
    assert!(audit.to_string().contains("notice.sent"), "{audit}");
    let logs = String::from_utf8_lossy(&crate::harness::logs().lock().unwrap()).to_string();
    for secret in [
        "ana@example.es",
        "+34600111222",
        "Calle Mayor",
        "王芳",
        "wangfang",
    ] {
        assert!(!v.to_string().contains(secret), "{secret} in notices");
        assert!(
            !audit.to_string().contains(secret),
            "{secret} in the audit log"
        );
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

/// A subject erased after the plan cannot be written to: that notice fails alone, with the
/// reason, and the others are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_to_an_erased_subject_fails_alone() {
    let smtp = Smtp::start();
    let tmp = tempfile::tempdir().unwrap();
    let s = notify_server(&smtp, tmp.path()).await;
    let (tenant, admin) = s.tenant("erased").await;
    s.ok(
        &admin,
        Method::PUT,
        "/v1/collections/people",
        Some(json!({"fields": {
        "name": {"type": "person_name", "category": "identity", "grade": "L2"},
        "email": {"type": "email", "category": "contact", "grade": "L2"}}})),
    )
    .await;
    let mut settings = s.ok(&admin, Method::GET, "/v1/settings", None).await["settings"].clone();
    settings["notice"] = json!({"collection": "people", "fields": {"name": "name", "email": "email"},
        "channels": ["email"], "controller": "ACME S.L.", "contact": "dpo@acme.example"});
    s.ok(&admin, Method::PUT, "/v1/settings", Some(settings))
        .await;
    let w = s
        .ok(
            &admin,
            Method::POST,
            "/v1/collections/people/records?purpose=billing",
            Some(json!({"records": [
                {"fields": {"name": "Ana García", "email": "ana@example.es"}},
                {"fields": {"name": "Bea López", "email": "bea@example.es"}}]})),
        )
        .await;
    let stolen = account(&s, &tenant, "exporter", &["service"]).await;
    let thief = s.ok(&stolen, Method::GET, "/v1/whoami", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut subjects = Vec::new();
    for r in w["records"].as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        s.ok(
            &stolen,
            Method::GET,
            &format!("/v1/collections/people/records/{id}?purpose=billing&view=plain"),
            None,
        )
        .await;
        subjects.push(r["subject_id"].as_str().unwrap().to_owned());
    }
    let officer = account(&s, &tenant, "dpo", &["privacy_officer"]).await;
    let officer2 = account(&s, &tenant, "dpo-deputy", &["privacy_officer"]).await;
    let iid = s
        .ok(
            &officer,
            Method::POST,
            "/v1/incidents",
            Some(json!({
            "title": "Clave robada", "description": "", "detected_at": 1_790_000_000_000i64,
            "severity": "high", "scope": {"principals": [thief]}})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(
        &officer,
        Method::POST,
        &format!("/v1/incidents/{iid}/notices/plan"),
        None,
    )
    .await;
    let (st, _) = s
        .call(
            &admin,
            Method::DELETE,
            &format!("/v1/subjects/{}?purpose=data_subject_request", subjects[0]),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "erased after the plan");
    s.ok(
        &officer2,
        Method::POST,
        &format!("/v1/incidents/{iid}/notices/approve"),
        None,
    )
    .await;
    let list = format!("/v1/incidents/{iid}/notices");
    wait_for("both notices settled", async || {
        let v = s.ok(&officer, Method::GET, &list, None).await;
        v["notices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "individual")
            .all(|n| matches!(n["status"].as_str().unwrap(), "sent" | "failed"))
    })
    .await;
    let v = s.ok(&officer, Method::GET, &list, None).await;
    let of = |sid: &str| {
        v["notices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["subject_id"] == sid)
            .unwrap()
            .clone()
    };
    let (erased, kept) = (of(&subjects[0]), of(&subjects[1]));
    assert_eq!(erased["status"], "failed", "{v}");
    assert!(
        erased["history"].to_string().contains("cannot be composed"),
        "{erased}"
    );
    assert_eq!(kept["status"], "sent", "{v}");
    let sent = smtp.messages();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].to_string().contains("bea@example.es"));
    s.stop().await;
}
