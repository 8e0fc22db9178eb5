//! Validation through the API: good and bad values for each type, and every kind of malformed
//! request, each with a 4xx, a stable code and no echo of the value.

use crate::harness::{Backend, Options, Server, card, dni};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn all_types() -> Value {
    json!({"fields": {
        "email": {"type": "email", "category": "contact", "grade": "L2"},
        "phone": {"type": "phone", "category": "contact", "grade": "L3"},
        "name": {"type": "person_name", "category": "identity", "grade": "L2"},
        "cn_id": {"type": "national_id", "country": "CN", "category": "identity", "grade": "L4"},
        "es_id": {"type": "national_id", "country": "ES", "category": "identity", "grade": "L4"},
        "us_id": {"type": "national_id", "country": "US", "category": "identity", "grade": "L4"},
        "dob": {"type": "date_of_birth", "category": "identity", "grade": "L3"},
        "address": {"type": "address", "category": "location", "grade": "L3"},
        "card": {"type": "bank_card", "category": "financial", "grade": "L4"},
        "iban": {"type": "iban", "category": "financial", "grade": "L4"},
        "ip": {"type": "ip_address", "category": "location", "grade": "L2"},
        "notes": {"type": "free_text", "category": "other", "grade": "L3"},
        "code": {"type": "string", "category": "other", "grade": "L1"},
        "age": {"type": "integer", "category": "other", "grade": "L1"},
        "since": {"type": "date", "category": "other", "grade": "L1"}
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_type_accepts_good_and_names_the_rule_for_bad() {
    let s = Server::start_with(
        Backend::Sqlite,
        Options {
            body_limit: 64 * 1024,
            ..Options::default()
        },
    )
    .await;
    let (_t, key) = s.tenant("validation").await;
    s.ok(&key, Method::PUT, "/v1/collections/all", Some(all_types()))
        .await;
    let good = json!({
        "email": "ana@example.com", "phone": "+34 612 345 678", "name": "李小龙", "cn_id": "11010519491231002X",
        "es_id": dni(12_345_678), "us_id": "123-45-6789", "dob": "1990-02-28", "address": "北京市朝阳区建国路 1 号",
        "card": card("621234567890126"), "iban": "DE89 3704 0044 0532 0130 00", "ip": "2001:db8::1", "notes": "x",
        "code": "A-17", "age": 41, "since": "2024-02-29"
    });
    let w = s
        .ok(
            &key,
            Method::POST,
            "/v1/collections/all/records?purpose=billing",
            Some(json!({"records": [{"fields": good}]})),
        )
        .await;
    let rid = w["records"][0]["id"].as_str().unwrap();
    let plain = s
        .ok(
            &key,
            Method::GET,
            &format!("/v1/collections/all/records/{rid}?purpose=billing&view=plain"),
            None,
        )
        .await;
    assert_eq!(plain["fields"]["phone"], "+34612345678");
    assert_eq!(plain["fields"]["iban"], "DE89370400440532013000");
    assert_eq!(plain["fields"]["us_id"], "123456789");
    assert_eq!(plain["fields"]["age"], 41);

    let bad: &[(&str, Value, &str)] = &[
        ("email", json!("ana.example.com"), "email_format"),
        ("phone", json!("+34 6123"), "phone_e164_length"),
        ("phone", json!("call me"), "phone_characters"),
        ("name", json!("\u{0007}"), "person_name"),
        (
            "cn_id",
            json!("110105194912310021"),
            "cn_resident_id_gb11643",
        ),
        ("es_id", json!("12345678A"), "es_dni_nie_letter"),
        ("us_id", json!("666-45-6789"), "us_ssn_format"),
        ("dob", json!("2999-01-01"), "date_of_birth_range"),
        ("dob", json!("1990-02-30"), "date_exists"),
        ("card", json!("4111111111111112"), "bank_card_luhn"),
        ("iban", json!("DE89370400440532013001"), "iban_mod97"),
        ("ip", json!("10.0.0.256"), "ip_address"),
        ("age", json!("41"), "integer"),
        ("age", json!(4.5), "integer"),
        ("since", json!("2023-02-29"), "date_exists"),
        ("email", json!(12), "string_expected"),
    ];
    for (field, value, rule) in bad {
        let body = json!({"records": [{"fields": {"email": "ok@example.com", (*field): value}}]});
        let (st, v) = s
            .call(
                &key,
                Method::POST,
                "/v1/collections/all/records?purpose=billing",
                Some(body),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{field} {value}: {v}");
        assert_eq!(v["error"]["code"], "invalid_value");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(rule) && msg.contains(field), "{msg}");
        if let Some(text) = value.as_str() {
            assert!(!msg.contains(text), "the value is echoed: {msg}");
        }
    }
    // Atomic: a batch with one bad record writes nothing.
    let (st, _) = s
        .call(
            &key,
            Method::POST,
            "/v1/collections/all/records?purpose=billing",
            Some(json!({"records": [
            {"fields": {"email": "first@example.com"}}, {"fields": {"email": "bad"}}]})),
        )
        .await;
    assert_eq!(st, 422);
    let c = s.ok(&key, Method::PUT, "/v1/collections/idx", Some(json!({"fields": {"email": {"type": "email", "category": "contact", "grade": "L2", "searchable": true}}}))).await;
    assert_eq!(c["version"], 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_4xx_with_stable_codes() {
    let s = Server::start_with(
        Backend::Sqlite,
        Options {
            body_limit: 64 * 1024,
            ..Options::default()
        },
    )
    .await;
    let (_t, key) = s.tenant("malformed").await;
    s.customers(&key).await;
    let url = |p: &str| format!("{}{p}", s.url);
    let records = "/v1/collections/customers/records?purpose=customer_support";
    let send = |method: Method, path: &str, ctype: Option<&str>, body: Vec<u8>| {
        let mut r = s
            .client
            .request(method, url(path))
            .bearer_auth(&key)
            .body(body);
        if let Some(c) = ctype {
            r = r.header("content-type", c);
        }
        r.send()
    };
    type Case<'a> = (Method, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            records,
            Some("application/json"),
            b"{not json".to_vec(),
            400,
            "invalid_body",
        ),
        (
            Method::POST,
            records,
            Some("application/json"),
            b"".to_vec(),
            400,
            "invalid_body",
        ),
        (
            Method::POST,
            records,
            Some("text/plain"),
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            records,
            None,
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            records,
            Some("application/json"),
            br#"{"records": {"a": 1}}"#.to_vec(),
            400,
            "invalid_body",
        ),
        (
            Method::POST,
            records,
            Some("application/json"),
            br#"{"records": [], "extra": 1}"#.to_vec(),
            400,
            "invalid_body",
        ),
        (
            Method::POST,
            records,
            Some("application/json"),
            br#"{"records": []}"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            records,
            Some("application/json"),
            vec![b' '; 70 * 1024],
            413,
            "payload_too_large",
        ),
        (
            Method::POST,
            records,
            Some("application/json"),
            vec![0xff, 0xfe, b'{'],
            400,
            "invalid_body",
        ),
        (
            Method::POST,
            "/v1/collections/customers/records",
            Some("application/json"),
            br#"{"records": [{"fields": {"email": "a@b.co"}}]}"#.to_vec(),
            400,
            "purpose_required",
        ),
        (
            Method::POST,
            "/v1/collections/customers/records?purpose=gossip",
            Some("application/json"),
            br#"{"records": [{"fields": {"email": "a@b.co"}}]}"#.to_vec(),
            403,
            "purpose_not_allowed",
        ),
        (
            Method::GET,
            "/v1/collections/customers/records/x?purpose=billing&view=everything",
            None,
            vec![],
            400,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/collections/customers/records/x?purpose=billing&colour=red",
            None,
            vec![],
            400,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/collections/customers/records/not-a-uuid?purpose=billing",
            None,
            vec![],
            404,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/collections/nope/records/01a22789-0000-7000-8000-000000000000?purpose=billing",
            None,
            vec![],
            404,
            "not_found",
        ),
        (
            Method::POST,
            "/v1/collections/customers/search?purpose=billing",
            Some("application/json"),
            br#"{"field": "name", "value": "x"}"#.to_vec(),
            422,
            "invalid_value",
        ),
        (
            Method::POST,
            "/v1/collections/customers/count?purpose=billing",
            Some("application/json"),
            br#"{"field": "notes"}"#.to_vec(),
            422,
            "invalid_value",
        ),
        (
            Method::PUT,
            "/v1/collections/Bad-Name",
            Some("application/json"),
            br#"{"fields": {"a": {"type": "email", "category": "contact", "grade": "L2"}}}"#
                .to_vec(),
            422,
            "invalid_value",
        ),
        (
            Method::PUT,
            "/v1/collections/customers",
            Some("application/json"),
            br#"{"fields": {"email": {"type": "phone", "category": "contact", "grade": "L2"}}}"#
                .to_vec(),
            409,
            "conflict",
        ),
        (
            Method::PUT,
            "/v1/collections/c2",
            Some("application/json"),
            br#"{"fields": {"a": {"type": "email", "category": "contact", "grade": "L9"}}}"#
                .to_vec(),
            400,
            "invalid_body",
        ),
        (
            Method::PUT,
            "/v1/settings",
            Some("application/json"),
            br#"{"purposes": [], "default_region": "CN"}"#.to_vec(),
            422,
            "invalid_value",
        ),
        (
            Method::POST,
            "/v1/keys/99/retire",
            None,
            vec![],
            404,
            "not_found",
        ),
        (
            Method::POST,
            "/v1/keys/abc/retire",
            None,
            vec![],
            404,
            "not_found",
        ),
    ];
    for (method, path, ctype, body, status, code) in cases {
        let resp = send(method.clone(), path, ctype, body).await.unwrap();
        let st = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (st, v["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{method} {path}: {v}"
        );
        assert!(v["error"]["request_id"].is_string());
    }
    // Too many records in one batch.
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"fields": {"email": format!("m{i}@example.com")}}))
        .collect();
    let s2 = Server::start(Backend::Sqlite).await;
    let (_t, k2) = s2.tenant("many").await;
    s2.customers(&k2).await;
    let (st, v) = s2
        .call(&k2, Method::POST, records, Some(json!({"records": many})))
        .await;
    assert_eq!(st, 400, "{v}");
    s2.stop().await;
    s.stop().await;
}
