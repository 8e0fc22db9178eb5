//! Incidents: a stolen service-account key, contained with one call, and the blast radius
//! from the audit log: who was seen in clear, who only masked, which categories and fields.

use crate::harness::{BOTH, Server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn account(s: &Server, tenant: &str, name: &str, roles: &[&str], max_view: &str) -> String {
    s.service_account(
        tenant,
        json!({"name": name, "roles": roles, "max_view": max_view}),
    )
    .await
}

async fn principal_of(s: &Server, key: &str) -> String {
    s.ok(key, Method::GET, "/v1/whoami", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stolen_key_is_contained_and_the_blast_radius_comes_from_the_audit_log() {
    for backend in BOTH {
        let s = Server::start(backend).await;
        let (tenant, admin) = s.tenant("breached").await;
        s.customers(&admin).await;
        let stolen = account(&s, &tenant, "batch-exporter", &["service"], "plain").await;
        let masked = account(&s, &tenant, "support-bot", &["service"], "masked").await;
        let responder = account(&s, &tenant, "soc", &["security_responder"], "redacted").await;
        let w = s
            .ok(&admin, Method::POST, "/v1/collections/customers/records?purpose=billing", Some(json!({"records": [
                {"fields": {"email": "uno@example.com", "phone": "13800000001", "card": "4111111111111111"}},
                {"fields": {"email": "dos@example.com", "phone": "13800000002"}},
                {"fields": {"email": "tres@example.com"}}]})))
            .await;
        let ids: Vec<String> = w["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let subjects: Vec<String> = w["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["subject_id"].as_str().unwrap().to_owned())
            .collect();
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            - 1;
        // The thief reads record 0 in clear; the support bot reads record 1 masked; nobody reads 2.
        s.ok(
            &stolen,
            Method::GET,
            &format!(
                "/v1/collections/customers/records/{}?purpose=billing&view=plain",
                ids[0]
            ),
            None,
        )
        .await;
        s.ok(
            &stolen,
            Method::GET,
            &format!(
                "/v1/collections/customers/records/{}?purpose=billing&view=masked",
                ids[1]
            ),
            None,
        )
        .await;
        s.ok(
            &masked,
            Method::GET,
            &format!(
                "/v1/collections/customers/records/{}?purpose=billing&view=plain",
                ids[1]
            ),
            None,
        )
        .await;
        let thief = principal_of(&s, &stolen).await;

        // Only responders and the privacy officer handle incidents.
        let (st, _) = s
            .call(
                &admin,
                Method::POST,
                "/v1/incidents",
                Some(json!({"title": "x", "detected_at": start, "severity": "high", "scope": {}})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let inc = s
            .ok(&responder, Method::POST, "/v1/incidents", Some(json!({
                "title": "Stolen API key of the batch exporter", "description": "key found in a public repository",
                "detected_at": start, "severity": "high", "cause": "leaked credential",
                "scope": {"principals": [thief], "from_ms": start}
            })))
            .await;
        let id = inc["id"].as_str().unwrap().to_owned();
        assert_eq!(inc["state"], "open");

        let contained = s
            .ok(
                &responder,
                Method::POST,
                &format!("/v1/incidents/{id}/containment"),
                Some(json!({"action": "revoke_principal", "principal_id": thief})),
            )
            .await;
        assert_eq!(
            contained["timeline"].as_array().unwrap().last().unwrap()["action"],
            "contain.revoke_principal"
        );
        let (st, _) = s.call(&stolen, Method::GET, "/v1/whoami", None).await;
        assert_eq!(
            st,
            StatusCode::UNAUTHORIZED,
            "the stolen key stops working at once"
        );
        s.ok(
            &responder,
            Method::POST,
            &format!("/v1/incidents/{id}/containment"),
            Some(json!({"action": "rotate_keys"})),
        )
        .await;
        let (st, v) = s
            .call(
                &responder,
                Method::POST,
                &format!("/v1/incidents/{id}/state"),
                Some(json!({"state": "notifying"})),
            )
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "no skipping containment: {v}");
        let i = s
            .ok(
                &responder,
                Method::POST,
                &format!("/v1/incidents/{id}/state"),
                Some(json!({"state": "contained"})),
            )
            .await;
        assert_eq!(i["state"], "contained");

        let b = s
            .ok(
                &responder,
                Method::GET,
                &format!("/v1/incidents/{id}/blast-radius"),
                None,
            )
            .await;
        let exposed: Vec<&Value> = b["subjects"].as_array().unwrap().iter().collect();
        assert_eq!(exposed.len(), 2, "{backend:?} {b}");
        let of = |sid: &str| exposed.iter().find(|x| x["subject_id"] == sid).copied();
        let first = of(&subjects[0]).expect("subject 0 exposed");
        assert_eq!(first["exposure"], "clear");
        assert!(
            first["categories"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "financial")
        );
        assert!(
            first["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "customers.card")
        );
        let second = of(&subjects[1]).expect("subject 1 exposed");
        assert_eq!(
            second["exposure"], "masked",
            "the thief saw subject 1 masked only; the bot's read is out of scope"
        );
        assert!(of(&subjects[2]).is_none(), "nobody read subject 2");
        assert_eq!(
            (b["clear"].as_u64(), b["masked_only"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(b["by_category"]["contact"], 2);
        // Whole values (a short piece like "4111" turns up in ids and timestamps by chance).
        let text = b.to_string();
        for value in ["uno@example.com", "4111111111111111", "13800000001"] {
            assert!(!text.contains(value), "{value} in the blast radius");
        }
        // Subjects come in pages sorted by first exposure; the totals stay whole.
        let page = s
            .ok(
                &responder,
                Method::GET,
                &format!("/v1/incidents/{id}/blast-radius?offset=1&limit=1"),
                None,
            )
            .await;
        assert_eq!(page["subjects"].as_array().unwrap().len(), 1);
        assert_eq!(page["subjects"][0], b["subjects"][1]);
        assert_eq!(page["as_of_seq"], b["as_of_seq"], "pages of one snapshot");
        assert!(b["as_of_seq"].as_u64().unwrap() > 0);
        assert_eq!(
            (page["subjects_total"].as_u64(), page["clear"].as_u64()),
            (Some(2), Some(1))
        );

        let i = s
            .ok(
                &responder,
                Method::GET,
                &format!("/v1/incidents/{id}"),
                None,
            )
            .await;
        let actions: Vec<&str> = i["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            vec![
                "opened",
                "contain.revoke_principal",
                "contain.rotate_keys",
                "state.contained"
            ]
        );
        let audited = s
            .ok(
                &s.operator,
                Method::POST,
                &format!("/v1/tenants/{tenant}/service-accounts"),
                Some(json!({"name": "aud", "scopes": ["audit"]})),
            )
            .await;
        let events = s
            .ok(
                audited["api_key"].as_str().unwrap(),
                Method::GET,
                "/v1/audit/events?limit=1000",
                None,
            )
            .await;
        let incident_events = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["event"]["action"]
                    .as_str()
                    .unwrap()
                    .starts_with("incident.")
            })
            .count();
        assert_eq!(incident_events, 4, "every incident action is audited");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_incident_input_gets_4xx_with_stable_codes() {
    let s = Server::start(crate::harness::Backend::Sqlite).await;
    let (tenant, admin) = s.tenant("badinc").await;
    s.customers(&admin).await;
    let soc = account(&s, &tenant, "soc", &["security_responder"], "redacted").await;
    let cases = [
        (
            json!({"title": "", "detected_at": 0, "severity": "high", "scope": {}}),
            422,
            "invalid_value",
        ),
        (
            json!({"title": "t", "detected_at": 0, "severity": "apocalyptic", "scope": {}}),
            422,
            "invalid_value",
        ),
        (
            json!({"title": "t", "detected_at": 0, "severity": "low", "scope": {"from_ms": 10, "to_ms": 5}}),
            422,
            "invalid_value",
        ),
        (
            json!({"title": "t", "detected_at": "yesterday", "severity": "low", "scope": {}}),
            400,
            "invalid_body",
        ),
        (
            json!({"title": "t", "detected_at": 0, "severity": "low", "scope": {"galaxy": true}}),
            400,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let (st, v) = s
            .call(&soc, Method::POST, "/v1/incidents", Some(body.clone()))
            .await;
        assert_eq!(
            (st.as_u16(), v["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {v}"
        );
    }
    let id = s
        .ok(
            &soc,
            Method::POST,
            "/v1/incidents",
            Some(json!({"title": "t", "detected_at": 0, "severity": "low", "scope": {}})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for query in ["limit=many", "offset=-1", "fresh=perhaps", "page=2"] {
        let (st, v) = s
            .call(
                &soc,
                Method::GET,
                &format!("/v1/incidents/{id}/blast-radius?{query}"),
                None,
            )
            .await;
        assert_eq!(st.as_u16(), 400, "{query}: {v}");
        assert!(v["error"]["code"].is_string(), "{query}: {v}");
    }
    let (st, v) = s
        .call(
            &soc,
            Method::POST,
            &format!("/v1/incidents/{id}/containment"),
            Some(json!({"action": "nuke_everything"})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), v["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (st, v) = s.call(&soc, Method::POST, &format!("/v1/incidents/{id}/containment"), Some(json!({"action": "suspend_principal", "principal_id": "01a22789-0000-7000-8000-000000000000"}))).await;
    assert_eq!(
        (st.as_u16(), v["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (st, v) = s
        .call(
            &soc,
            Method::POST,
            &format!("/v1/incidents/{id}/state"),
            Some(json!({"state": "sideways"})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), v["error"]["code"].as_str()),
        (422, Some("invalid_value"))
    );
    s.ok(
        &soc,
        Method::POST,
        &format!("/v1/incidents/{id}/containment"),
        Some(json!({"action": "freeze_tenant"})),
    )
    .await;
    let (st, v) = s
        .call(
            &admin,
            Method::POST,
            "/v1/collections/customers/records?purpose=billing",
            Some(json!({"records": [{"fields": {"email": "f@example.com"}}]})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), v["error"]["code"].as_str()),
        (423, Some("tenant_frozen")),
        "freezing stops data calls"
    );
    let closed = s
        .ok(
            &soc,
            Method::POST,
            &format!("/v1/incidents/{id}/state"),
            Some(json!({"state": "closed"})),
        )
        .await;
    assert_eq!(closed["state"], "closed");
    let (st, _) = s
        .call(
            &soc,
            Method::POST,
            &format!("/v1/incidents/{id}/state"),
            Some(json!({"state": "contained"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "a closed incident stays closed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legal_clocks_count_down_and_an_overdue_one_raises_one_alert() {
    let s = Server::start(crate::harness::Backend::Sqlite).await;
    let (tenant, _admin) = s.tenant("clocks").await;
    let soc = account(&s, &tenant, "soc", &["security_responder"], "redacted").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let late = s
        .ok(&soc, Method::POST, "/v1/incidents", Some(json!({"title": "found late", "detected_at": now - 100 * 3_600_000, "severity": "high", "scope": {"tenant": true}})))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fresh = s
        .ok(&soc, Method::POST, "/v1/incidents", Some(json!({"title": "found now", "detected_at": now, "severity": "low", "scope": {"tenant": true}})))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let i = s
        .ok(&soc, Method::GET, &format!("/v1/incidents/{late}"), None)
        .await;
    let gdpr = i["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "gdpr_art33_regulator")
        .unwrap()
        .clone();
    assert_eq!(gdpr["overdue"], true, "{i}");
    assert_eq!(
        gdpr["due_ms"].as_i64().unwrap(),
        now - 100 * 3_600_000 + 72 * 3_600_000
    );
    let f = s
        .ok(&soc, Method::GET, &format!("/v1/incidents/{fresh}"), None)
        .await;
    let cac = f["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "cac_report")
        .unwrap()
        .clone();
    assert_eq!(cac["overdue"], false);
    assert!(cac["remaining_ms"].as_i64().unwrap() > 3 * 3_600_000);
    assert_eq!(
        s.vault.incident_clocks().await.unwrap(),
        2,
        "both clocks of the late incident ran out"
    );
    assert_eq!(
        s.vault.incident_clocks().await.unwrap(),
        0,
        "one alert per clock, not one per check"
    );
    let alerts = s.ok(&soc, Method::GET, "/v1/alerts", None).await;
    let kinds: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["incident_deadline", "incident_deadline"]);
    let metrics = s.metrics().await;
    assert!(metrics.contains("boveda_incident_deadline_remaining_seconds"));
    s.stop().await;
}
