//! The README's five-minute tour, end to end over HTTPS, on both backends.

use crate::harness::{BOTH, Server};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_minute_tour_on_both_backends() {
    for backend in BOTH {
        let s = Server::start(backend).await;
        let (_tenant, key) = s.tenant("acme").await;
        s.customers(&key).await;

        let w = s
            .ok(&key, Method::POST, "/v1/collections/customers/records?purpose=customer_support", Some(json!({"records": [
                {"fields": {"email": "Ana.Lopez@Example.com", "phone": "138 1234 5678", "name": "Ana López", "dni": "12345678Z", "card": "4111 1111 1111 1111", "notes": "called about an invoice"}},
                {"fields": {"email": "li.wei@example.cn", "phone": "+86 139 0000 1111"}}
            ]})))
            .await;
        let rid = w["records"][0]["id"].as_str().unwrap().to_owned();
        let sid = w["records"][0]["subject_id"].as_str().unwrap().to_owned();
        let path = format!("/v1/collections/customers/records/{rid}");

        let masked = s
            .ok(
                &key,
                Method::GET,
                &format!("{path}?purpose=customer_support"),
                None,
            )
            .await;
        assert_eq!(masked["view"], "masked", "{backend:?}");
        assert_eq!(masked["fields"]["phone"], "+86 138****5678");
        assert_eq!(masked["fields"]["email"], "A***@example.com");
        assert_eq!(masked["fields"]["card"], "**** **** **** 1111");
        assert_eq!(masked["fields"]["dni"], "1*******Z");
        assert_eq!(masked["fields"]["notes"], "[redacted]");

        let plain = s
            .ok(
                &key,
                Method::GET,
                &format!("{path}?purpose=customer_support&view=plain"),
                None,
            )
            .await;
        assert_eq!(plain["fields"]["phone"], "+8613812345678");
        assert_eq!(plain["fields"]["email"], "Ana.Lopez@example.com");
        assert_eq!(plain["fields"]["name"], "Ana López");

        let batch = s
            .ok(
                &key,
                Method::POST,
                "/v1/collections/customers/records/batch-get?purpose=billing&view=redacted",
                Some(json!({"ids": [rid, "not-an-id", "01a22789-0000-7000-8000-000000000000"]})),
            )
            .await;
        assert_eq!(batch["records"].as_array().unwrap().len(), 1);
        assert_eq!(batch["records"][0]["fields"]["email"], "[redacted]");
        assert_eq!(batch["missing"].as_array().unwrap().len(), 2);

        // Search is by normalised value: another spelling of the same email matches.
        let found = s
            .ok(
                &key,
                Method::POST,
                "/v1/collections/customers/search?purpose=customer_support",
                Some(json!({"field": "email", "value": "ANA.LOPEZ@example.com"})),
            )
            .await;
        assert_eq!(found["matches"].as_array().unwrap().len(), 1);
        assert_eq!(
            found["matches"][0]["fields"]["phone"], "+86 138****5678",
            "search results are masked"
        );
        let counts = s
            .ok(&key, Method::POST, "/v1/collections/customers/count?purpose=analytics", Some(json!({"field": "phone", "values": ["13812345678", "+8613900001111", "13700000000"]})))
            .await;
        assert_eq!(
            counts["counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["count"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            vec![1, 1, 0]
        );

        let patched = s
            .ok(
                &key,
                Method::PATCH,
                &format!("{path}?purpose=customer_support"),
                Some(json!({"fields": {"phone": "13911112222", "notes": null}})),
            )
            .await;
        assert_eq!(patched["version"], 2);
        let after = s
            .ok(
                &key,
                Method::GET,
                &format!("{path}?purpose=customer_support&view=plain"),
                None,
            )
            .await;
        assert_eq!(after["fields"]["phone"], "+8613911112222");
        assert!(after["fields"].get("notes").is_none());
        // The old phone no longer finds it, the new one does, and the untouched email still does.
        let old = s
            .ok(
                &key,
                Method::POST,
                "/v1/collections/customers/search?purpose=customer_support",
                Some(json!({"field": "phone", "value": "13812345678"})),
            )
            .await;
        assert!(old["matches"].as_array().unwrap().is_empty());
        let by_email = s
            .ok(
                &key,
                Method::POST,
                "/v1/collections/customers/search?purpose=customer_support",
                Some(json!({"field": "email", "value": "ana.lopez@example.com"})),
            )
            .await;
        assert_eq!(by_email["matches"].as_array().unwrap().len(), 1);

        let status = s.ok(&key, Method::POST, "/v1/keys/rotate", None).await;
        assert_eq!(status["active_version"], 2);

        let (st, _) = s
            .call(
                &key,
                Method::DELETE,
                &format!("/v1/subjects/{sid}?purpose=data_subject_request"),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        let (st, body) = s
            .call(
                &key,
                Method::GET,
                &format!("{path}?purpose=customer_support"),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
        assert!(
            body["error"]["request_id"]
                .as_str()
                .is_some_and(|r| !r.is_empty())
        );

        let (st, _) = s
            .call(
                &key,
                Method::DELETE,
                &format!("{path}?purpose=customer_support"),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let other = w["records"][1]["id"].as_str().unwrap();
        let (st, _) = s
            .call(
                &key,
                Method::DELETE,
                &format!("/v1/collections/customers/records/{other}?purpose=customer_support"),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_are_capped_by_the_principal() {
    let s = Server::start(crate::harness::Backend::Sqlite).await;
    let (tenant, key) = s.tenant("capped").await;
    s.customers(&key).await;
    let support = s
        .ok(
            &s.operator,
            Method::POST,
            &format!("/v1/tenants/{tenant}/service-accounts"),
            Some(json!({"name": "support", "scopes": ["read"], "max_view": "masked"})),
        )
        .await;
    let support = support["api_key"].as_str().unwrap();
    let w = s.ok(&key, Method::POST, "/v1/collections/customers/records?purpose=customer_support", Some(json!({"records": [{"fields": {"email": "x@example.com", "phone": "13812345678"}}]}))).await;
    let rid = w["records"][0]["id"].as_str().unwrap();
    let v = s
        .ok(
            support,
            Method::GET,
            &format!("/v1/collections/customers/records/{rid}?purpose=customer_support&view=plain"),
            None,
        )
        .await;
    assert_eq!(v["view"], "masked");
    assert_eq!(v["fields"]["phone"], "+86 138****5678");
    // Without the write scope, a write is forbidden.
    let (st, body) = s
        .call(
            support,
            Method::POST,
            "/v1/collections/customers/records?purpose=customer_support",
            Some(json!({"records": [{"fields": {"email": "y@example.com"}}]})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    // Operators never read personal data.
    let (st, _) = s
        .call(
            &s.operator,
            Method::GET,
            &format!("/v1/collections/customers/records/{rid}?purpose=customer_support"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_text_is_labelled_on_write_with_kinds_and_counts_never_values() {
    let s = Server::start(crate::harness::Backend::Sqlite).await;
    let (_t, key) = s.tenant("labels").await;
    s.customers(&key).await;
    let w = s
        .ok(&key, Method::POST, "/v1/collections/customers/records?purpose=billing", Some(json!({"records": [{"fields": {
            "email": "l@example.com",
            "notes": "Customer asked to be called at +34 612 345 678 or written to maria.lopez@example.org; card 4111 1111 1111 1111."
        }}]})))
        .await;
    let rid = w["records"][0]["id"].as_str().unwrap();
    let path = format!("/v1/collections/customers/records/{rid}?purpose=billing&view=redacted");
    let r = s.ok(&key, Method::GET, &path, None).await;
    let notes = &r["labels"]["notes"];
    assert_eq!(notes["EMAIL_ADDRESS"], 1, "{r}");
    assert_eq!(notes["CREDIT_CARD"], 1, "{r}");
    assert!(notes["PHONE_NUMBER"].as_u64().unwrap_or(0) >= 1, "{r}");
    assert!(!r["labels"].to_string().contains("maria") && !r["labels"].to_string().contains("612"));
    assert_eq!(
        r["fields"]["notes"], "[redacted]",
        "labels are readable without decrypting"
    );
    s.ok(
        &key,
        Method::PATCH,
        &format!("/v1/collections/customers/records/{rid}?purpose=billing"),
        Some(json!({"fields": {"notes": "nothing personal here"}})),
    )
    .await;
    let r = s.ok(&key, Method::GET, &path, None).await;
    assert!(
        r["labels"].get("notes").is_none(),
        "rewritten text is labelled again: {r}"
    );
    s.stop().await;
}
