//! The Presidio-compatible surface and the native detection routes: shapes, character offsets
//! on Spanish and Chinese text, operators, decryption of a Presidio-encrypted value, errors in
//! Presidio's shape, and authentication.

use crate::harness::{Backend, Server};
use reqwest::Method;
use serde_json::{Value, json};

/// A value encrypted as Presidio does (AES-128-CBC, PKCS#7, IV 00..0f, base64(IV || ct)),
/// computed with Python `cryptography`, the library Presidio uses: "ana@example.com" under
/// the key "WmZq4t7w!z%C&F)J".
const PRESIDIO_CIPHERTEXT: &str = "AAECAwQFBgcICQoLDA0OD4809ggRAKbV3bc9WRa6S6A=";
const PRESIDIO_KEY: &str = "WmZq4t7w!z%C&F)J";

fn chars(text: &str, start: &Value, end: &Value) -> String {
    let (s, e) = (
        start.as_u64().unwrap() as usize,
        end.as_u64().unwrap() as usize,
    );
    text.chars().skip(s).take(e - s).collect()
}

fn error_message(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not Presidio's error shape: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_gives_character_offsets_in_spanish_and_chinese() {
    let s = Server::start(Backend::Sqlite).await;
    let (_, key) = s.tenant("presidio-analyze").await;

    let es = "Hola, soy Lucía García, mi DNI es 12345678Z y mi correo lucia.g@ejemplo.es; teléfono 612 345 678.";
    let (st, v) = s
        .call(
            &key,
            Method::POST,
            "/analyze",
            Some(json!({"text": es, "language": "es"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let results = v.as_array().unwrap();
    let find = |entity: &str| {
        results
            .iter()
            .find(|r| r["entity_type"] == entity)
            .unwrap_or_else(|| panic!("{entity} not found in {v}"))
    };
    let dni = find("ES_NIF");
    assert_eq!(chars(es, &dni["start"], &dni["end"]), "12345678Z");
    let phone = find("PHONE_NUMBER");
    assert_eq!(chars(es, &phone["start"], &phone["end"]), "612 345 678");
    let email = find("EMAIL_ADDRESS");
    // "í" of Lucía is two bytes: character offsets differ from byte offsets after it.
    assert_eq!(
        chars(es, &email["start"], &email["end"]),
        "lucia.g@ejemplo.es"
    );
    for r in results {
        assert!(r["analysis_explanation"].is_null());
        assert!(r["recognition_metadata"]["recognizer_name"].is_string());
        let score = r["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
    }

    let zh = "我叫张伟，身份证号11010519491231002X，手机13800138000，邮箱zhang.wei@example.cn";
    let (st, v) = s
        .call(
            &key,
            Method::POST,
            "/analyze",
            Some(json!({"text": zh, "language": "zh", "return_decision_process": true})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let results = v.as_array().unwrap();
    let got: Vec<(String, String)> = results
        .iter()
        .map(|r| {
            (
                r["entity_type"].as_str().unwrap().to_owned(),
                chars(zh, &r["start"], &r["end"]),
            )
        })
        .collect();
    for want in [
        ("CN_RESIDENT_ID", "11010519491231002X"),
        ("PHONE_NUMBER", "13800138000"),
        ("EMAIL_ADDRESS", "zhang.wei@example.cn"),
    ] {
        assert!(
            got.iter().any(|(e, t)| e == want.0 && t == want.1),
            "{want:?} not in {got:?}"
        );
    }
    let id = results
        .iter()
        .find(|r| r["entity_type"] == "CN_RESIDENT_ID")
        .unwrap();
    assert_eq!(id["analysis_explanation"]["validation_result"], true);
    assert!(id["analysis_explanation"]["recognizer"].is_string());

    // A list of texts gives a list of result lists; entities and score_threshold filter.
    let (st, v) = s
        .call(
            &key,
            Method::POST,
            "/analyze",
            Some(json!({"text": [es, "nothing here"], "language": "es",
                "entities": ["PHONE_NUMBER"], "score_threshold": 0.3})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let lists = v.as_array().unwrap();
    assert_eq!(lists.len(), 2);
    assert!(lists[1].as_array().unwrap().is_empty());
    assert!(
        lists[0]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["entity_type"] == "PHONE_NUMBER")
    );

    // An ad-hoc recognizer and an allow list behave as in Presidio.
    let text = "Employee EMP-12345 wrote from ana@example.com and bob@example.com";
    let (st, v) = s
        .call(
            &key,
            Method::POST,
            "/analyze",
            Some(
                json!({"text": text, "language": "en", "allow_list": ["bob@example.com"],
                "ad_hoc_recognizers": [{"name": "Employee ids", "supported_language": "en",
                    "supported_entity": "EMPLOYEE_ID",
                    "patterns": [{"name": "emp", "regex": "EMP-\\d{5}", "score": 0.9}]}]}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let got: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| chars(text, &r["start"], &r["end"]))
        .collect();
    assert!(got.contains(&"EMP-12345".to_owned()), "{got:?}");
    assert!(got.contains(&"ana@example.com".to_owned()));
    assert!(!got.contains(&"bob@example.com".to_owned()));

    // allow_list_match "regex": a finding goes when a pattern matches anywhere in its text (as
    // Presidio's re.search), case-insensitively by default (Presidio's flags); without
    // IGNORECASE the case counts.
    let text = "Mail ANA@EXAMPLE.COM, bob@example.com or carl@example.org";
    let found = |flags: Option<u32>, patterns: Value| {
        let mut body = json!({"text": text, "language": "en", "entities": ["EMAIL_ADDRESS"],
            "allow_list": patterns, "allow_list_match": "regex"});
        if let Some(f) = flags {
            body["regex_flags"] = json!(f);
        }
        let s = &s;
        let key = key.clone();
        async move {
            let v = s.ok(&key, Method::POST, "/analyze", Some(body)).await;
            v.as_array()
                .unwrap()
                .iter()
                .map(|r| chars(text, &r["start"], &r["end"]))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        found(None, json!([r"[a-z]+@example\.com"])).await,
        ["carl@example.org"]
    );
    assert_eq!(
        found(Some(0), json!([r"[a-z]+@example\.com"])).await,
        ["ANA@EXAMPLE.COM", "carl@example.org"]
    );
    assert_eq!(
        found(None, json!(["example\\.org$"])).await,
        ["ANA@EXAMPLE.COM", "bob@example.com"],
        "a match inside the finding is enough"
    );
    for bad in [
        json!({"allow_list_match": "fuzzy"}),
        json!({"allow_list": ["(?<=x)y"], "allow_list_match": "regex"}),
    ] {
        let mut body = json!({"text": text, "language": "en"});
        body.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let (st, v) = s.call(&key, Method::POST, "/analyze", Some(body)).await;
        assert_eq!(st, 422, "{v}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymize_applies_each_operator_with_items_into_the_output() {
    let s = Server::start(Backend::Sqlite).await;
    let (_, key) = s.tenant("presidio-anonymize").await;
    let text = "张伟的电话13800138000 邮箱ana@example.com 卡号4111 1111 1111 1111 IP 1.2.3.4 日期2024-05-03";
    let span = |entity: &str, value: &str| {
        let byte = text.find(value).unwrap();
        let start = text[..byte].chars().count();
        json!({"entity_type": entity, "start": start, "end": start + value.chars().count(), "score": 0.9})
    };
    let results = json!([
        span("PERSON", "张伟"),
        span("PHONE_NUMBER", "13800138000"),
        span("EMAIL_ADDRESS", "ana@example.com"),
        span("CREDIT_CARD", "4111 1111 1111 1111"),
        span("IP_ADDRESS", "1.2.3.4"),
        span("DATE_TIME", "2024-05-03"),
    ]);
    let body = json!({
        "text": text,
        "analyzer_results": results,
        "anonymizers": {
            "DEFAULT": {"type": "replace", "new_value": "<PII>"},
            "PHONE_NUMBER": {"type": "mask", "masking_char": "*", "chars_to_mask": 4, "from_end": true},
            "EMAIL_ADDRESS": {"type": "encrypt", "key": PRESIDIO_KEY},
            "CREDIT_CARD": {"type": "redact"},
            "IP_ADDRESS": {"type": "hash", "hash_type": "sha256", "salt": "per-tenant-salt"},
            "DATE_TIME": {"type": "keep"}
        }
    });
    let (st, v) = s.call(&key, Method::POST, "/anonymize", Some(body)).await;
    assert_eq!(st, 200, "{v}");
    let out = v["text"].as_str().unwrap();
    assert!(out.starts_with("<PII>的电话1380013****"), "{out}");
    assert!(out.contains("卡号 IP"), "{out}");
    assert!(out.ends_with("日期2024-05-03"), "{out}");
    assert!(!out.contains("ana@example.com") && !out.contains("1.2.3.4"));
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    let mut ops: Vec<&str> = items
        .iter()
        .map(|i| i["operator"].as_str().unwrap())
        .collect();
    ops.sort_unstable();
    assert_eq!(
        ops,
        ["encrypt", "hash", "keep", "mask", "redact", "replace"]
    );
    for item in items {
        // Exactly Presidio's item shape, offsets in characters of the output text.
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["end", "entity_type", "operator", "start", "text"]);
        assert_eq!(
            chars(out, &item["start"], &item["end"]),
            item["text"].as_str().unwrap()
        );
    }
    let hashed = items.iter().find(|i| i["operator"] == "hash").unwrap();
    assert_eq!(hashed["text"].as_str().unwrap().len(), 64);

    // The encrypted email decrypts back through /deanonymize.
    let enc = items.iter().find(|i| i["operator"] == "encrypt").unwrap();
    let (st, v) = s
        .call(
            &key,
            Method::POST,
            "/deanonymize",
            Some(json!({"text": out,
                "anonymizer_results": [{"entity_type": "EMAIL_ADDRESS", "start": enc["start"], "end": enc["end"]}],
                "deanonymizers": {"DEFAULT": {"type": "decrypt", "key": PRESIDIO_KEY}}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("邮箱ana@example.com 卡号"),
        "{v}"
    );
    assert_eq!(v["items"][0]["operator"], "decrypt");
    assert_eq!(v["items"][0]["text"], "ana@example.com");

    // DEFAULT without an entry is Presidio's replace with <ENTITY_TYPE>.
    let (st, v) = s
        .call(
            &key,
            Method::POST,
            "/anonymize",
            Some(json!({"text": "mail ana@example.com", "analyzer_results": [
                {"entity_type": "EMAIL_ADDRESS", "start": 5, "end": 20, "score": 1.0}]})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["text"], "mail <EMAIL_ADDRESS>");
    assert_eq!(
        v["items"][0],
        json!({"operator": "replace", "entity_type": "EMAIL_ADDRESS", "start": 5, "end": 20, "text": "<EMAIL_ADDRESS>"})
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_encrypted_by_presidio_decrypts_in_boveda() {
    let s = Server::start(Backend::Sqlite).await;
    let (_, key) = s.tenant("presidio-decrypt").await;
    let text = format!("contact: {PRESIDIO_CIPHERTEXT}.");
    let (st, v) = s
        .call(
            &key,
            Method::POST,
            "/deanonymize",
            Some(json!({"text": text,
                "anonymizer_results": [{"entity_type": "EMAIL_ADDRESS", "start": 9, "end": 9 + PRESIDIO_CIPHERTEXT.len()}],
                "deanonymizers": {"EMAIL_ADDRESS": {"type": "decrypt", "key": PRESIDIO_KEY}}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["text"], "contact: ana@example.com.");
    assert_eq!(
        v["items"][0],
        json!({"operator": "decrypt", "entity_type": "EMAIL_ADDRESS", "start": 9, "end": 24, "text": "ana@example.com"})
    );
    // A wrong key is a 422 in Presidio's shape that quotes neither key nor value.
    let (st, v) = s
        .call(
            &key,
            Method::POST,
            "/deanonymize",
            Some(json!({"text": text,
                "anonymizer_results": [{"entity_type": "EMAIL_ADDRESS", "start": 9, "end": 9 + PRESIDIO_CIPHERTEXT.len()}],
                "deanonymizers": {"DEFAULT": {"type": "decrypt", "key": "0123456789abcdef"}}})),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    let m = error_message(&v);
    assert!(
        !m.contains("0123456789abcdef") && !m.contains(PRESIDIO_CIPHERTEXT),
        "{m}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_presidio_errors_never_500() {
    let s = Server::start(Backend::Sqlite).await;
    let (_, key) = s.tenant("presidio-errors").await;
    let secret = "lucia.secret@example.com";
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/analyze",
            json!({"language": "en"}),
            400,
            "No text provided",
        ),
        (
            "/analyze",
            json!({"text": "", "language": "en"}),
            400,
            "No text provided",
        ),
        (
            "/analyze",
            json!({"text": secret}),
            400,
            "No language provided",
        ),
        (
            "/analyze",
            json!({"text": secret, "language": "fr"}),
            422,
            "unsupported language",
        ),
        (
            "/analyze",
            json!({"text": secret, "language": "en", "entities": ["NOPE"]}),
            422,
            "doesn't have the corresponding recognizer",
        ),
        (
            "/analyze",
            json!({"text": 42, "language": "en"}),
            422,
            "Failed to parse /analyze request",
        ),
        (
            "/analyze",
            json!({"text": secret, "language": "en", "ad_hoc_recognizers": [
            {"name": "bad", "supported_entity": "X", "patterns": [{"name": "p", "regex": "(", "score": 0.5}]}]}),
            422,
            "not a valid regular expression",
        ),
        (
            "/anonymize",
            json!({"analyzer_results": []}),
            400,
            "No text provided",
        ),
        (
            "/anonymize",
            json!({"text": secret}),
            422,
            "analyzer results can not be empty",
        ),
        (
            "/anonymize",
            json!({"text": secret, "analyzer_results": [{"entity_type": "EMAIL_ADDRESS", "start": 0, "end": 999}]}),
            422,
            "while text length is only",
        ),
        (
            "/anonymize",
            json!({"text": secret, "analyzer_results": [{"entity_type": "EMAIL_ADDRESS", "start": 5, "end": 2}]}),
            422,
            "must be smaller than end index",
        ),
        (
            "/anonymize",
            json!({"text": secret, "analyzer_results": [{"entity_type": "EMAIL_ADDRESS", "end": 2}]}),
            422,
            "must contain start",
        ),
        (
            "/anonymize",
            json!({"text": secret, "analyzer_results": [{"entity_type": "EMAIL_ADDRESS", "start": 0, "end": 5}],
            "anonymizers": {"DEFAULT": {"type": "encrypt", "key": "short-key"}}}),
            422,
            "key must be of length 128, 192 or 256 bits",
        ),
        (
            "/anonymize",
            json!({"text": secret, "analyzer_results": [{"entity_type": "EMAIL_ADDRESS", "start": 0, "end": 5}],
            "anonymizers": {"DEFAULT": {"type": "mask", "masking_char": "##", "chars_to_mask": 3}}}),
            422,
            "masking_char",
        ),
        (
            "/anonymize",
            json!({"text": secret, "analyzer_results": [{"entity_type": "EMAIL_ADDRESS", "start": 0, "end": 5}],
            "anonymizers": {"DEFAULT": {"type": "mask", "masking_char": "#"}}}),
            422,
            "chars_to_mask",
        ),
        (
            "/anonymize",
            json!({"text": secret, "analyzer_results": [{"entity_type": "EMAIL_ADDRESS", "start": 0, "end": 5}],
            "anonymizers": {"DEFAULT": {"type": "hash", "hash_type": "md5"}}}),
            422,
            "hash_type",
        ),
        (
            "/anonymize",
            json!({"text": secret, "analyzer_results": [{"entity_type": "EMAIL_ADDRESS", "start": 0, "end": 5}],
            "anonymizers": {"DEFAULT": {"type": "custom"}}}),
            422,
            "Custom type anonymizer is not supported",
        ),
        (
            "/anonymize",
            json!({"text": secret, "analyzer_results": [{"entity_type": "EMAIL_ADDRESS", "start": 0, "end": 5}],
            "anonymizers": {"DEFAULT": {"type": "shred"}}}),
            422,
            "type must be one of",
        ),
        (
            "/deanonymize",
            json!({"text": secret, "anonymizer_results": [{"entity_type": "EMAIL_ADDRESS", "start": 0, "end": 5}],
            "deanonymizers": {"DEFAULT": {"type": "replace"}}}),
            422,
            "the only deanonymizer is decrypt",
        ),
    ];
    for (path, body, status, needle) in cases {
        let (st, v) = s.call(&key, Method::POST, path, Some(body.clone())).await;
        assert_eq!(st.as_u16(), status, "{path} {body} -> {v}");
        let m = error_message(&v);
        assert!(m.contains(needle), "{path} {body}: {m}");
        assert!(!m.contains(secret) && !m.contains("short-key"), "{m}");
    }
    // Not JSON at all.
    let resp = s
        .client
        .post(format!("{}/analyze", s.url))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(error_message(&v), "Invalid request json");
    // Unknown languages on the listings too.
    let (st, v) = s
        .call(&key, Method::GET, "/supportedentities?language=xx", None)
        .await;
    assert_eq!(st, 422);
    error_message(&v);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_health_and_authentication() {
    let s = Server::start(Backend::Sqlite).await;
    let (_, key) = s.tenant("presidio-listings").await;
    let (st, v) = s
        .call(&key, Method::GET, "/supportedentities?language=es", None)
        .await;
    assert_eq!(st, 200);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    for n in [
        "PERSON",
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "IBAN_CODE",
        "ES_NIF",
        "CN_RESIDENT_ID",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    let (st, v) = s
        .call(&key, Method::GET, "/recognizers?language=zh", None)
        .await;
    assert_eq!(st, 200);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|x| x == "PersonRecognizer")
    );
    let (st, v) = s.call(&key, Method::GET, "/anonymizers", None).await;
    assert_eq!(st, 200);
    for op in ["replace", "redact", "mask", "hash", "encrypt", "keep"] {
        assert!(v.as_array().unwrap().iter().any(|x| x == op), "{op}");
    }
    // /health needs no token and answers as Presidio does.
    let resp = s.get("/health").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        "Presidio Analyzer service is up"
    );
    // Everything else needs the bearer token; the refusal is in Presidio's shape.
    let (st, v) = s
        .call(
            "not-a-token",
            Method::POST,
            "/analyze",
            Some(json!({"text": "x", "language": "en"})),
        )
        .await;
    assert_eq!(st, 401);
    assert!(error_message(&v).contains("Authorization: Bearer"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_detect_and_deidentify_batches() {
    let s = Server::start(Backend::Sqlite).await;
    let (_, key) = s.tenant("native-detect").await;
    let texts = json!([
        "DNI 12345678Z, tel. 612 345 678",
        "张伟的手机13800138000",
        "nothing"
    ]);
    let v = s
        .ok(
            &key,
            Method::POST,
            "/v1/detect",
            Some(json!({"texts": texts, "language": "es"})),
        )
        .await;
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0][0]["entity"], "ES_NIF");
    assert_eq!(results[0][0]["start"], 4);
    let phone = &results[1][results[1].as_array().unwrap().len() - 1];
    assert_eq!(phone["entity"], "PHONE_NUMBER");
    // Bytes and characters differ after Chinese text.
    assert_eq!(phone["char_start"], 5);
    assert_eq!(phone["start"], 15);
    assert!(results[2].as_array().unwrap().is_empty());

    let aead_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let v = s
        .ok(
            &key,
            Method::POST,
            "/v1/deidentify",
            Some(json!({"texts": ["DNI 12345678Z, tel. 612 345 678", "DNI 12345678Z"], "language": "es",
                "operators": {"ES_NIF": {"type": "vault_token", "key": aead_key, "scope": "crm"},
                              "PHONE_NUMBER": {"type": "encrypt", "key": aead_key}}})),
        )
        .await;
    let a = v["results"][0]["text"].as_str().unwrap();
    let b = v["results"][1]["text"].as_str().unwrap();
    assert!(
        a.starts_with("DNI tok_") && !a.contains("612 345 678"),
        "{a}"
    );
    // The same value in the same scope gives the same token.
    assert_eq!(&a[..28], &b[..28]);
    let sealed = v["results"][0]["items"][1]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = s
        .ok(
            &key,
            Method::POST,
            "/v1/deidentify",
            Some(
                json!({"texts": [format!("x {sealed}")], "entities": ["SEALED"],
                "operators": {"DEFAULT": {"type": "decrypt", "key": aead_key}}}),
            ),
        )
        .await;
    // No detector finds a sealed value, so nothing changes: decryption in the native API is
    // only for spans the caller names (see /deanonymize for Presidio's).
    assert_eq!(v["results"][0]["text"], format!("x {sealed}"));

    // Native errors keep boveda's shape.
    let (st, v) = s
        .call(
            &key,
            Method::POST,
            "/v1/deidentify",
            Some(json!({"texts": ["x"], "operators": {"DEFAULT": {"type": "encrypt", "key": "c2hvcnQ="}}})),
        )
        .await;
    assert_eq!(st, 422);
    assert_eq!(v["error"]["code"], "invalid_request");
    let (st, v) = s
        .call(
            &key,
            Method::POST,
            "/v1/detect",
            Some(json!({"texts": ["x"], "language": "fr"})),
        )
        .await;
    assert_eq!(st, 422);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unsupported language")
    );
    let (st, _) = s
        .call(
            "bad",
            Method::POST,
            "/v1/detect",
            Some(json!({"texts": ["x"]})),
        )
        .await;
    assert_eq!(st, 401);
    s.stop().await;
}

/// Vault tokens without a key are the vault's: the same value in the same scope gives the same
/// token, the value is kept sealed, and only a caller allowed to detokenize, with a purpose and
/// a plain view cap, gets it back, with an audit event that holds no value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_tokens_turn_back_only_through_the_vault() {
    for backend in crate::harness::BOTH {
        let s = Server::start(backend).await;
        let (tenant, key) = s.tenant("tokens").await;
        let body = json!({"texts": ["DNI 12345678Z, tel. 612 345 678", "otra vez 12345678Z"],
            "language": "es", "operators": {"ES_NIF": {"type": "vault_token", "scope": "crm"}}});
        let (st, v) = s
            .call(&key, Method::POST, "/v1/deidentify", Some(body.clone()))
            .await;
        assert_eq!(st, 400, "{v}");
        assert_eq!(v["error"]["code"], "purpose_required");
        let v = s
            .ok(
                &key,
                Method::POST,
                "/v1/deidentify?purpose=billing",
                Some(body.clone()),
            )
            .await;
        let a = v["results"][0]["text"].as_str().unwrap();
        let b = v["results"][1]["text"].as_str().unwrap();
        let token = &a[4..28];
        assert!(token.starts_with("tok_") && !a.contains("12345678Z"), "{a}");
        assert_eq!(&b[9..33], token, "the same value in the same scope");
        // A second call issues the same token and stores nothing new.
        let again = s
            .ok(
                &key,
                Method::POST,
                "/v1/deidentify?purpose=billing",
                Some(body),
            )
            .await;
        assert_eq!(again["results"][0]["text"], a);

        let detok = |scope: &str, tokens: Value| json!({"scope": scope, "tokens": tokens});
        let v = s
            .ok(
                &key,
                Method::POST,
                "/v1/tokens/detokenize?purpose=billing",
                Some(detok("crm", json!([token, "tok_aaaaaaaaaaaaaaaaaaaa"]))),
            )
            .await;
        assert_eq!(v["values"], json!(["12345678Z", null]));
        let v = s
            .ok(
                &key,
                Method::POST,
                "/v1/tokens/detokenize?purpose=billing",
                Some(detok("web", json!([token]))),
            )
            .await;
        assert_eq!(v["values"], json!([null]), "tokens belong to their scope");

        // Refusals: no purpose, a masked view cap, bad input; none of them shows the value.
        let masked = s
            .service_account(&tenant, json!({"name": "masked", "max_view": "masked"}))
            .await;
        for (k, path, b, status) in [
            (
                &key,
                "/v1/tokens/detokenize",
                detok("crm", json!([token])),
                400,
            ),
            (
                &masked,
                "/v1/tokens/detokenize?purpose=billing",
                detok("crm", json!([token])),
                403,
            ),
            (
                &key,
                "/v1/tokens/detokenize?purpose=billing",
                detok("crm", json!([])),
                400,
            ),
            (
                &key,
                "/v1/tokens/detokenize?purpose=billing",
                detok("bad scope!", json!([token])),
                400,
            ),
            (
                &key,
                "/v1/tokens/detokenize?purpose=billing",
                json!({"tokens": [token], "extra": 1}),
                400,
            ),
        ] {
            let (st, v) = s.call(k, Method::POST, path, Some(b)).await;
            assert_eq!(st.as_u16(), status, "{path}: {v}");
            assert!(!v.to_string().contains("12345678Z"));
        }

        // A policy that allows detokenizing only masked is a refusal too.
        let policy = json!({"rules": [
            {"id": "services", "effect": "allow", "roles": ["service"], "actions": ["*"], "resources": ["*"], "purposes": ["*"], "view": "plain"},
            {"id": "masked-detok", "effect": "allow", "roles": ["detok"], "actions": ["detokenize"], "resources": ["*"], "purposes": ["*"], "view": "masked"}]});
        s.ok(&key, Method::PUT, "/v1/policy", Some(policy)).await;
        let detok = s
            .service_account(
                &tenant,
                json!({"name": "detok", "scopes": ["read"], "roles": ["detok"]}),
            )
            .await;
        let (st, v) = s
            .call(
                &detok,
                Method::POST,
                "/v1/tokens/detokenize?purpose=billing",
                Some(json!({"scope": "crm", "tokens": [token]})),
            )
            .await;
        assert_eq!(st.as_u16(), 403, "{v}");
        assert!(!v.to_string().contains("12345678Z"));

        // Audited: one tokenize event per call that issued tokens, one detokenize per
        // answered call; no value in the log.
        let events = s
            .ok(&key, Method::GET, "/v1/audit/events?limit=1000", None)
            .await;
        let actions: Vec<&str> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["event"])
            .filter(|e| e["outcome"] == "allowed")
            .filter_map(|e| e["action"].as_str())
            .filter(|a| a.starts_with("token."))
            .collect();
        assert_eq!(
            actions,
            [
                "token.tokenize",
                "token.tokenize",
                "token.detokenize",
                "token.detokenize"
            ]
        );
        assert!(!events.to_string().contains("12345678Z"));

        // A subject's tokens are sealed under its key: detokenizing names the subject in the
        // log, and erasing the subject erases the value (another subject's same value stays).
        s.customers(&key).await;
        let w = s
            .ok(
                &key,
                Method::POST,
                "/v1/collections/customers/records?purpose=billing",
                Some(json!({"records": [{"fields": {"email": "x@example.com"}}, {"fields": {"email": "y@example.com"}}]})),
            )
            .await;
        let sid = |i: usize| w["records"][i]["subject_id"].as_str().unwrap().to_owned();
        let mut tok = Vec::new();
        for i in 0..2 {
            let v = s
                .ok(
                    &key,
                    Method::POST,
                    "/v1/deidentify?purpose=billing",
                    Some(
                        json!({"texts": ["DNI 87654321X"], "language": "es", "subject_id": sid(i),
                        "operators": {"ES_NIF": {"type": "vault_token", "scope": "crm"}}}),
                    ),
                )
                .await;
            tok.push(v["results"][0]["text"].as_str().unwrap()[4..28].to_owned());
        }
        assert_eq!(tok[0], tok[1], "one token for one value in one scope");
        assert_eq!(detok_one(&s, &key, &tok[0]).await, json!(["87654321X"]));
        let history = s
            .ok(
                &key,
                Method::GET,
                &format!("/v1/subjects/{}/access-history", sid(0)),
                None,
            )
            .await;
        assert!(
            history.to_string().contains("token.detokenize"),
            "{history}"
        );
        let (st, _) = s
            .call(
                &key,
                Method::DELETE,
                &format!("/v1/subjects/{}?purpose=data_subject_request", sid(0)),
                None,
            )
            .await;
        assert_eq!(st, 204);
        assert_eq!(
            detok_one(&s, &key, &tok[0]).await,
            json!(["87654321X"]),
            "the other subject's copy"
        );
        let (st, _) = s
            .call(
                &key,
                Method::DELETE,
                &format!("/v1/subjects/{}?purpose=data_subject_request", sid(1)),
                None,
            )
            .await;
        assert_eq!(st, 204);
        assert_eq!(
            detok_one(&s, &key, &tok[0]).await,
            json!([null]),
            "erased with its subjects"
        );
        let (st, v) = s
            .call(
                &key,
                Method::POST,
                "/v1/deidentify?purpose=billing",
                Some(json!({"texts": ["DNI 87654321X"], "subject_id": sid(1),
                    "operators": {"ES_NIF": {"type": "vault_token"}}})),
            )
            .await;
        assert_eq!(st, 404, "an erased subject takes no new tokens: {v}");
        let (st, v) = s
            .call(
                &key,
                Method::POST,
                "/v1/deidentify?purpose=billing",
                Some(
                    json!({"texts": ["DNI 87654321X"], "subject_id": "not-an-id",
                    "operators": {"ES_NIF": {"type": "vault_token"}}}),
                ),
            )
            .await;
        assert_eq!(st, 422, "{v}");
        assert_eq!(v["error"]["code"], "invalid_request");
        s.stop().await;
    }
}

async fn detok_one(s: &Server, key: &str, token: &str) -> Value {
    s.ok(
        key,
        Method::POST,
        "/v1/tokens/detokenize?purpose=billing",
        Some(json!({"scope": "crm", "tokens": [token]})),
    )
    .await["values"]
        .clone()
}
