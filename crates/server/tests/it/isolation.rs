//! Cross-tenant matrix: a principal of tenant A calls every route that takes an id with tenant
//! B's ids, and always gets the not-found answer, never data.

use crate::harness::{BOTH, Server};
use boveda_server::routes;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_a_never_sees_tenant_b() {
    for backend in BOTH {
        let s = Server::start(backend).await;
        let (ta, a) = s.tenant("tenant-a").await;
        let (tb, b) = s.tenant("tenant-b").await;
        s.customers(&a).await;
        s.customers(&b).await;
        s.ok(
            &b,
            Method::PUT,
            "/v1/collections/b_only",
            Some(json!({"fields": {"x": {"type": "string", "category": "other", "grade": "L1"}}})),
        )
        .await;
        let w = s.ok(&b, Method::POST, "/v1/collections/customers/records?purpose=customer_support", Some(json!({"records": [{"fields": {"email": "bee@example.com", "phone": "13812345678"}}]}))).await;
        let rid = w["records"][0]["id"].as_str().unwrap().to_owned();
        let sid = w["records"][0]["subject_id"].as_str().unwrap().to_owned();
        let b_sa = s.ok(&b, Method::GET, "/v1/service-accounts", None).await["service_accounts"][0]
            ["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // Principals that hold every role the incident routes want, in both tenants.
        let with_roles = |t: &str| format!("/v1/tenants/{t}/service-accounts");
        let roles = json!({"name": "all-roles", "roles": ["service", "security_responder", "privacy_officer", "auditor"]});
        let a_all = s
            .ok(
                &s.operator,
                Method::POST,
                &with_roles(&ta),
                Some(roles.clone()),
            )
            .await["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
        let b_all = s
            .ok(&s.operator, Method::POST, &with_roles(&tb), Some(roles))
            .await["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
        let b_incident = s
            .ok(&b_all, Method::POST, "/v1/incidents", Some(json!({"title": "b", "detected_at": 0, "severity": "low", "scope": {"tenant": true}})))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let b_user = s
            .ok(
                &b,
                Method::POST,
                "/v1/users",
                Some(
                    json!({"email": "staff@b.example", "name": "Bea Staff", "roles": ["analyst"]}),
                ),
            )
            .await["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();

        let mut covered = 0;
        for (r, _) in routes() {
            if !r.path.contains('{')
                || r.path == "/v1/collections/{collection}" && r.method == "PUT"
                || r.path.contains("{version}")
            {
                // No id of B to send (keys and schema names are per tenant); covered below.
                continue;
            }
            let collection = if r.path == "/v1/collections/{collection}" {
                "b_only"
            } else {
                "customers"
            };
            let path = r
                .path
                .replace("{tenant_id}", &tb)
                .replace("{collection}", collection)
                .replace("{record_id}", &rid)
                .replace("{subject_id}", &sid)
                .replace("{principal_id}", &b_sa)
                .replace("{user_id}", &b_user)
                .replace("{incident_id}", &b_incident)
                .replace("{jurisdiction}", "gdpr");
            let query = if r.data {
                "?purpose=customer_support&view=plain"
            } else {
                ""
            };
            let body = r.body.map(|schema| match schema {
                "Frozen" => json!({"frozen": true}),
                "ServiceAccountCreate" => json!({"name": "intruder"}),
                "RecordPatch" => json!({"fields": {"email": "mallory@example.com"}}),
                "RecordsWrite" => json!({"records": [{"subject_id": sid, "fields": {"email": "mallory@example.com"}}]}),
                "BatchGet" => json!({"ids": [rid]}),
                "Search" => json!({"field": "email", "value": "bee@example.com"}),
                "CountRequest" => json!({"field": "phone", "values": ["13812345678"]}),
                "UserPatch" => json!({"roles": ["tenant_admin"]}),
                "Eligibility" => json!({"agreements": [], "trainings": []}),
                "IncidentState" => json!({"state": "closed"}),
                "Containment" => json!({"action": "freeze_tenant"}),
                other => panic!("no body for {other}"),
            });
            let method = Method::from_bytes(r.method.as_bytes()).unwrap();
            let (st, v) = s
                .call(&a_all, method, &format!("{path}{query}"), body)
                .await;
            if r.path.ends_with("batch-get") {
                assert_eq!(st, StatusCode::OK);
                assert!(
                    v["records"].as_array().unwrap().is_empty(),
                    "{backend:?} batch-get leaked {v}"
                );
            } else if r.path.ends_with("/search") {
                assert_eq!(st, StatusCode::OK);
                assert!(
                    v["matches"].as_array().unwrap().is_empty(),
                    "{backend:?} search leaked {v}"
                );
            } else if r.path.ends_with("/count") {
                assert_eq!(st, StatusCode::OK);
                assert_eq!(v["counts"][0]["count"], 0, "{backend:?} count leaked {v}");
            } else {
                assert_eq!(
                    st,
                    StatusCode::NOT_FOUND,
                    "{backend:?} {} {} -> {st} {v}",
                    r.method,
                    r.path
                );
                assert_eq!(v["error"]["code"], "not_found");
            }
            // The phone in clear or masked ("+86 138****5678"); a bare "5678" also turns up
            // in random ids now and then.
            let body = v.to_string();
            assert!(
                !body.contains("bee@") && !body.contains("12345678") && !body.contains("*5678"),
                "{} {} leaked {body}",
                r.method,
                r.path
            );
            covered += 1;
        }
        assert!(covered >= 13, "the matrix covers the id routes ({covered})");
        let users = s.ok(&a, Method::GET, "/v1/users", None).await;
        assert!(
            users["users"].as_array().unwrap().is_empty(),
            "A lists no user of B"
        );

        // Routes without ids: searching, counting and listing never reach B's rows.
        let found = s
            .ok(
                &a,
                Method::POST,
                "/v1/collections/customers/search?purpose=customer_support",
                Some(json!({"field": "email", "value": "bee@example.com"})),
            )
            .await;
        assert!(found["matches"].as_array().unwrap().is_empty());
        let counts = s
            .ok(
                &a,
                Method::POST,
                "/v1/collections/customers/count?purpose=analytics",
                Some(json!({"field": "phone", "values": ["13812345678"]})),
            )
            .await;
        assert_eq!(counts["counts"][0]["count"], 0);
        let top = s
            .ok(
                &a,
                Method::POST,
                "/v1/collections/customers/count?purpose=analytics",
                Some(json!({"field": "phone"})),
            )
            .await;
        assert!(top["counts"].as_array().unwrap().is_empty());
        let cols = s.ok(&a, Method::GET, "/v1/collections", None).await;
        assert!(!cols.to_string().contains("b_only"));
        let sas = s.ok(&a, Method::GET, "/v1/service-accounts", None).await;
        assert!(!sas.to_string().contains(&b_sa));
        let me = s.ok(&a, Method::GET, "/v1/settings", None).await;
        assert_eq!(me["id"], ta.as_str());
        // B's record is untouched by all of the above.
        let still = s
            .ok(
                &b,
                Method::GET,
                &format!(
                    "/v1/collections/customers/records/{rid}?purpose=customer_support&view=plain"
                ),
                None,
            )
            .await;
        assert_eq!(still["fields"]["email"], "bee@example.com");
        assert_eq!(still["version"], 1);
        s.stop().await;
    }
}
