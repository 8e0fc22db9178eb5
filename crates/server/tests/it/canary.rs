//! Canary: recognisable fake personal values go in through every data route; afterwards they
//! appear nowhere in clear, hex or base64: not in the SQLite files or their WAL, not in the
//! PostgreSQL rows as text, not in the logs, not in any error body.

use crate::harness::{Backend, Server, card, dni, logs};
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

fn forms(value: &str) -> Vec<Vec<u8>> {
    let b = value.as_bytes();
    let mut out = vec![
        b.to_vec(),
        hex::encode(b).into_bytes(),
        hex::encode_upper(b).into_bytes(),
    ];
    // Base64 depends on alignment: take the stable middle of each of the three alignments.
    for skip in 0..3 {
        let enc = base64::engine::general_purpose::STANDARD.encode(&b[skip..]);
        let stable = &enc[..enc.len().saturating_sub(4)];
        if stable.len() >= 8 {
            out.push(stable.as_bytes().to_vec());
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_absent(place: &str, hay: &[u8], canaries: &[String]) {
    for c in canaries {
        for f in forms(c) {
            assert!(
                !find(hay, &f),
                "canary `{c}` found in {place} as {}",
                String::from_utf8_lossy(&f)
            );
        }
    }
}

async fn drive(s: &Server, key: &str, canaries: &[String], errors: &mut Vec<Value>) {
    let [email, phone, name, id, cardno, notes, addr] = canaries else {
        panic!()
    };
    s.ok(key, Method::PUT, "/v1/collections/people", Some(json!({"fields": {
        "email": {"type": "email", "category": "contact", "grade": "L2", "searchable": true},
        "phone": {"type": "phone", "category": "contact", "grade": "L3", "searchable": true},
        "name": {"type": "person_name", "category": "identity", "grade": "L2", "searchable": true},
        "dni": {"type": "national_id", "country": "ES", "category": "identity", "grade": "L4", "searchable": true},
        "card": {"type": "bank_card", "category": "financial", "grade": "L4", "searchable": true},
        "notes": {"type": "free_text", "category": "other", "grade": "L3"},
        "address": {"type": "address", "category": "location", "grade": "L3", "searchable": true}
    }}))).await;
    let w = s
        .ok(key, Method::POST, "/v1/collections/people/records?purpose=customer_support", Some(json!({"records": [
            {"fields": {"email": email, "phone": phone, "name": name, "dni": id, "card": cardno, "notes": notes, "address": addr}}
        ]})))
        .await;
    let rid = w["records"][0]["id"].as_str().unwrap().to_owned();
    let sid = w["records"][0]["subject_id"].as_str().unwrap().to_owned();
    for view in ["plain", "masked", "redacted"] {
        s.ok(
            key,
            Method::GET,
            &format!("/v1/collections/people/records/{rid}?purpose=customer_support&view={view}"),
            None,
        )
        .await;
    }
    s.ok(
        key,
        Method::POST,
        "/v1/collections/people/records/batch-get?purpose=billing&view=plain",
        Some(json!({"ids": [rid]})),
    )
    .await;
    for (field, value) in [
        ("email", email),
        ("phone", phone),
        ("name", name),
        ("dni", id),
        ("card", cardno),
        ("address", addr),
    ] {
        s.ok(
            key,
            Method::POST,
            "/v1/collections/people/search?purpose=customer_support",
            Some(json!({"field": field, "value": value})),
        )
        .await;
        s.ok(
            key,
            Method::POST,
            "/v1/collections/people/count?purpose=analytics",
            Some(json!({"field": field, "values": [value]})),
        )
        .await;
    }
    s.ok(
        key,
        Method::PATCH,
        &format!("/v1/collections/people/records/{rid}?purpose=customer_support"),
        Some(json!({"fields": {"notes": notes}})),
    )
    .await;
    // Bad requests that carry the values where they do not belong: the errors must not echo.
    let bad = [
        (
            "/v1/collections/people/records?purpose=customer_support",
            json!({"records": [{"fields": {"email": phone, "phone": email, "card": format!("{cardno}1"), "dni": format!("{id}X")}}]}),
        ),
        (
            "/v1/collections/people/records?purpose=customer_support",
            json!({"records": [{"fields": {email.as_str(): 1}}]}),
        ),
        (
            "/v1/collections/people/records?purpose=customer_support",
            json!({"records": [{"fields": {"email": email}, name.as_str(): 1}]}),
        ),
        (
            "/v1/collections/people/records?purpose=customer_support",
            json!({"records": email}),
        ),
        (
            "/v1/collections/people/search?purpose=customer_support",
            json!({"field": email, "value": email}),
        ),
        (
            "/v1/collections/people/search?purpose=customer_support",
            json!({"field": "card", "value": format!("{cardno}9")}),
        ),
        (
            "/v1/collections/people/count?purpose=analytics",
            json!({"field": "notes", "values": [notes]}),
        ),
    ];
    for (path, body) in bad {
        let (st, v) = s.call(key, Method::POST, path, Some(body)).await;
        assert!(st.is_client_error(), "{path} -> {st}");
        errors.push(v);
    }
    let (_, v) = s
        .call(
            key,
            Method::GET,
            &format!("/v1/collections/people/records/{rid}?purpose={email}"),
            None,
        )
        .await;
    errors.push(v);
    let (_, v) = s
        .call(
            key,
            Method::GET,
            &format!("/v1/collections/{name}/records/{rid}?purpose=customer_support"),
            None,
        )
        .await;
    errors.push(v);
    // Erase one copy of the subject last; the canary must be gone from the files already anyway.
    let w2 = s
        .ok(
            key,
            Method::POST,
            "/v1/collections/people/records?purpose=customer_support",
            Some(json!({"records": [{"fields": {"email": email}}]})),
        )
        .await;
    let sid2 = w2["records"][0]["subject_id"].as_str().unwrap();
    s.ok(
        key,
        Method::DELETE,
        &format!("/v1/subjects/{sid2}?purpose=data_subject_request"),
        None,
    )
    .await;
    let _ = sid;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_values_never_appear_in_clear_hex_or_base64() {
    let canaries: Vec<String> = vec![
        "zqcanary.7731@example.org".into(),
        "+34 699 773 120".into(),
        "Zacarías Canarioque".into(),
        dni(77_312_049),
        card("627730012345678"),
        "Nota canaria: Zacarías llamó desde Teruel".into(),
        "Calle del Canario 7731, Teruel".into(),
    ];
    // The stored forms: normalised phone and the card are what reach storage.
    let mut stored = canaries.clone();
    stored.push("+34699773120".into());
    stored.push("699773120".into());
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let s = Server::start(backend).await;
        let (_t, key) = s.tenant("canary").await;
        let mut errors = Vec::new();
        drive(&s, &key, &canaries, &mut errors).await;
        for e in &errors {
            assert_absent("an error body", e.to_string().as_bytes(), &stored);
            assert!(e["error"]["code"].is_string(), "{e}");
        }
        match backend {
            Backend::Sqlite => {
                for f in ["data.db", "data.db-wal", "keys.db", "keys.db-wal"] {
                    if let Ok(bytes) = std::fs::read(s.dir.join(f)) {
                        assert_absent(f, &bytes, &stored);
                    }
                }
            }
            Backend::Postgres => {
                let schema = s.cfg.storage.postgres_schema.clone();
                let (client, conn) = tokio_postgres::connect(
                    &boveda_store::postgres::test_url(),
                    tokio_postgres::NoTls,
                )
                .await
                .unwrap();
                tokio::spawn(conn);
                let tables = client
                    .query(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                        &[&schema],
                    )
                    .await
                    .unwrap();
                assert!(tables.len() >= 7);
                for t in tables {
                    let name: String = t.get(0);
                    let rows = client
                        .query(&format!("SELECT t::text FROM {schema}.{name} t"), &[])
                        .await
                        .unwrap();
                    let text: String = rows
                        .iter()
                        .map(|r| r.get::<_, String>(0))
                        .collect::<Vec<_>>()
                        .join("\n");
                    assert_absent(&format!("postgres table {name}"), text.as_bytes(), &stored);
                }
                client
                    .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                    .await
                    .unwrap();
            }
        }
        s.stop().await;
    }
    let logs = logs();
    let captured = logs.lock().unwrap().clone();
    assert!(!captured.is_empty(), "the log capture works");
    assert_absent("the logs", &captured, &stored);
}
