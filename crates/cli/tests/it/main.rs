//! The `boveda` binary end to end: init, serve over TLS, the client commands, configuration
//! errors with hints, and a graceful stop on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod staff;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_boveda");

fn boveda(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("BOVEDA_TOKEN")
        .env_remove("BOVEDA_TOKEN_FILE")
        .env_remove("BOVEDA_URL");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Serving {
    child: Child,
    url: String,
}

fn serve(dir: &Path) -> Serving {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--set",
            "log.level=warn",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("boveda listening on https://")
        .unwrap()
        .to_owned();
    let port = addr.rsplit(':').next().unwrap();
    std::thread::spawn(move || for _ in lines {});
    Serving {
        child,
        url: format!("https://localhost:{port}"),
    }
}

#[test]
fn init_serve_and_client_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();
    let out = boveda(&["init", "--data-dir", d], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dir.join("root.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.join("bootstrap-operator.token"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("SHA-256"));

    let mut s = serve(&dir);
    let ca = dir.join("tls/dev-cert.pem");
    // The journal's health is exported from the start, before any data call.
    let metrics = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pem = std::fs::read(&ca).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .build()
            .unwrap()
            .get(format!("{}/metrics", s.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(metrics.contains("boveda_audit_available 1"), "{metrics}");
    let token_file = dir.join("bootstrap-operator.token");
    let conn = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--url".into(),
            s.url.clone(),
            "--ca-cert".into(),
            ca.to_str().unwrap().into(),
            "--output".into(),
            "json".into(),
        ]);
        v
    };
    let op = [("BOVEDA_TOKEN_FILE", token_file.to_str().unwrap())];
    let args = conn(&[
        "tenant",
        "create",
        "acme",
        "--purposes",
        "billing,customer_support",
        "--region",
        "ES",
    ]);
    let t = json(&boveda(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &op,
    ));
    assert_eq!(t["settings"]["default_region"], "ES");
    let tenant = t["id"].as_str().unwrap();
    let args = conn(&["service-account", "create", "backend", "--tenant", tenant]);
    let sa = json(&boveda(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &op,
    ));
    let key = sa["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("bvd_sa_"));

    let schema = tmp.path().join("customers.toml");
    std::fs::write(
        &schema,
        "name = \"customers\"\n[fields.email]\ntype = \"email\"\ncategory = \"contact\"\ngrade = \"L2\"\nsearchable = true\n\n[fields.phone]\ntype = \"phone\"\ncategory = \"contact\"\ngrade = \"L3\"\n",
    )
    .unwrap();
    let sa_env = [("BOVEDA_TOKEN", key.as_str())];
    let args = conn(&["collection", "apply", schema.to_str().unwrap()]);
    let c = json(&boveda(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &sa_env,
    ));
    assert_eq!(c["version"], 1);
    assert_eq!(c["fields"]["phone"]["type"], "phone");

    let args = conn(&["keys", "rotate"]);
    let k = json(&boveda(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &sa_env,
    ));
    assert_eq!(k["active_version"], 2);
    let args = conn(&["keys", "status"]);
    let k = json(&boveda(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &sa_env,
    ));
    assert_eq!(k["versions"].as_array().unwrap().len(), 2);

    // A server error reaches the user with its code and a hint, exit code 2.
    let args = conn(&["keys", "retire", "2"]);
    let out = boveda(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &sa_env,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("conflict") && err.contains("hint:"), "{err}");
    // No credential at all.
    let args = conn(&["tenant", "list"]);
    let out = boveda(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BOVEDA_TOKEN"));

    // SIGTERM: a graceful stop, exit 0.
    let status = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = s.child.wait().unwrap();
    assert!(code.success(), "{code:?}");
}

#[test]
fn configuration_errors_name_the_key_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let out = boveda(
        &[
            "serve",
            "--data-dir",
            d,
            "--set",
            "server.listn=127.0.0.1:1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.listn") && err.contains("hint:"),
        "{err}"
    );

    let cfg = tmp.path().join("boveda.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"127.0.0.1:0\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let out = boveda(&["serve", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour"));

    let out = boveda(&["serve", "--data-dir", d], &[("BOVEDA_SERVER_PORT", "1")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BOVEDA_SERVER_PORT"));
}

// ------------------------------------------------------------------ scan and redact

fn boveda_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

const PII_TEXT: &str = "Hola, soy Lucía García, DNI 12345678Z\ncall 612 345 678 or ana@example.com\n张伟的手机13800138000\n";

const PII_CONFIG: &str = r#"
language = "es"
allow_list = ["allowed@example.com"]

[operators.DEFAULT]
type = "replace"

[operators.PHONE_NUMBER]
type = "mask"
masking_char = "*"
chars_to_mask = 4
from_end = true

[operators.ES_NIF]
type = "vault_token"
key_env = "TEST_DEID_KEY"
scope = "tests"

[[recognizers]]
name = "employee ids"
entity = "EMPLOYEE_ID"
patterns = [{ name = "emp", regex = "EMP-\\d{5}", score = 0.9 }]
"#;

const DEID_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn pii_config(dir: &Path) -> String {
    let p = dir.join("pii.toml");
    std::fs::write(&p, PII_CONFIG).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn scan_counts_entities_and_fails_on_pii() {
    let out = boveda_stdin(&["scan", "-"], PII_TEXT.as_bytes());
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8(out.stdout).unwrap();
    let count = |entity: &str| -> u64 {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(entity))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("{entity} missing:\n{table}"))
            .parse()
            .unwrap()
    };
    assert_eq!(count("PHONE_NUMBER"), 2);
    assert_eq!(count("EMAIL_ADDRESS"), 1);
    assert_eq!(count("ES_NIF"), 1);
    assert!(count("TOTAL") >= 5);

    let out = boveda_stdin(
        &["scan", "-", "--fail-on-pii", "--jsonl"],
        PII_TEXT.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        !stdout.contains("ana@example.com"),
        "values are shown only on request"
    );
    let email: serde_json::Value = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["entity"] == "EMAIL_ADDRESS")
        .unwrap();
    let (s, e) = (
        email["start"].as_u64().unwrap() as usize,
        email["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&PII_TEXT[s..e], "ana@example.com");
    let (cs, ce) = (
        email["char_start"].as_u64().unwrap() as usize,
        email["char_end"].as_u64().unwrap() as usize,
    );
    assert_eq!(
        PII_TEXT.chars().skip(cs).take(ce - cs).collect::<String>(),
        "ana@example.com"
    );
    assert_eq!(email["line"], 2);

    let out = boveda_stdin(
        &["scan", "-", "--jsonl", "--show-values"],
        PII_TEXT.as_bytes(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"text\":\"ana@example.com\""));

    let out = boveda_stdin(&["scan", "-", "--fail-on-pii"], b"nothing personal here\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TOTAL"));
}

#[test]
fn redact_text_csv_and_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = pii_config(dir.path());
    let key = [("TEST_DEID_KEY", DEID_KEY)];
    let run = |args: &[&str], input: &[u8]| {
        let mut c = Command::new(BIN);
        c.args(args).env("TEST_DEID_KEY", key[0].1);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let text = run(&["redact", "-", "--config", &cfg], PII_TEXT.as_bytes());
    assert!(
        text.contains("call 612 345**** or <EMAIL_ADDRESS>"),
        "{text}"
    );
    assert!(text.contains("DNI tok_"), "{text}");
    assert!(
        text.contains("张伟的手机1380013****") || text.contains("<PERSON>的手机1380013****"),
        "{text}"
    );
    assert!(!text.contains("12345678Z") && !text.contains("ana@example.com"));
    assert_eq!(text.lines().count(), 3);
    // Consistent tokens: the same DNI gives the same token on every run.
    assert_eq!(
        text,
        run(&["redact", "-", "--config", &cfg], PII_TEXT.as_bytes())
    );

    let csv = "id,email,note\n1,ana@example.com,\"call 612 345 678, EMP-12345\"\n2,allowed@example.com,plain\n";
    let out = run(
        &[
            "redact",
            "-",
            "--config",
            &cfg,
            "--format",
            "csv",
            "--columns",
            "note",
        ],
        csv.as_bytes(),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "id,email,note");
    assert_eq!(
        lines[1],
        "1,ana@example.com,\"call 612 345****, <EMPLOYEE_ID>\""
    );
    let out = run(
        &["redact", "-", "--config", &cfg, "--format", "csv"],
        csv.as_bytes(),
    );
    assert!(out.contains("1,<EMAIL_ADDRESS>,"), "{out}");
    assert!(
        out.contains("2,allowed@example.com,plain"),
        "allow list: {out}"
    );

    let jsonl = "{\"user\":{\"email\":\"ana@example.com\",\"age\":37},\"msg\":\"call 612 345 678\"}\n{\"msg\":\"none\"}\n";
    let out = run(
        &[
            "redact", "-", "--config", &cfg, "--format", "jsonl", "--fields", "email",
        ],
        jsonl.as_bytes(),
    );
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["user"]["email"], "<EMAIL_ADDRESS>");
    assert_eq!(first["user"]["age"], 37);
    assert_eq!(first["msg"], "call 612 345 678", "only the chosen fields");
    let out = run(
        &["redact", "-", "--config", &cfg, "--format", "jsonl"],
        jsonl.as_bytes(),
    );
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["msg"], "call 612 345****");
    assert_eq!(out.lines().count(), 2);

    // --output writes a file; a bad config is exit 2 with a hint naming the setting.
    let target = dir.path().join("out.txt");
    run(
        &[
            "redact",
            "-",
            "--config",
            &cfg,
            "--output",
            target.to_str().unwrap(),
        ],
        PII_TEXT.as_bytes(),
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), text);
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[operators.DEFAULT]\ntype = \"mask\"\nmasking_char = \"**\"\nchars_to_mask = 2\n",
    )
    .unwrap();
    let out = boveda_stdin(&["redact", "-", "--config", bad.to_str().unwrap()], b"x");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("operators.DEFAULT") && err.contains("hint:"),
        "{err}"
    );
    let out = boveda_stdin(&["redact", "-", "--config", &cfg], b"x");
    assert_eq!(out.status.code(), Some(2), "key_env unset");
    assert!(String::from_utf8_lossy(&out.stderr).contains("TEST_DEID_KEY"));
}

#[test]
fn invalid_utf8_input_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = pii_config(dir.path());
    let mut input = b"ok ana@example.com\n\xff\xfe\xc3 broken \xe4\xb8 612 345 678\n".to_vec();
    input.extend(std::iter::repeat_n(0x80u8, 300));
    input.extend_from_slice(b"\ntrailing bob@example.com");
    for args in [
        vec!["scan", "-", "--jsonl", "--chunk-bytes", "16"],
        vec!["scan", "-"],
        vec![
            "redact",
            "-",
            "--config",
            &cfg,
            "--chunk-bytes",
            "16",
            "--jobs",
            "2",
        ],
        vec!["redact", "-", "--config", &cfg, "--format", "jsonl"],
        vec!["redact", "-", "--config", &cfg, "--format", "csv"],
    ] {
        let mut c = Command::new(BIN);
        c.args(&args).env("TEST_DEID_KEY", DEID_KEY);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&input).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(matches!(out.status.code(), Some(0..=2)), "{args:?}: {err}");
        if args[0] == "redact" && args.len() > 3 && args[3] == "--chunk-bytes" {
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(text.contains("\u{FFFD}"), "invalid bytes become U+FFFD");
            assert!(
                text.contains("612 345****") && text.contains("trailing <EMAIL_ADDRESS>"),
                "{text}"
            );
            assert!(!text.contains("ana@example.com"));
        }
    }
}

#[test]
fn an_entity_across_a_chunk_boundary_is_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = pii_config(dir.path());
    // One long line: with 32-byte chunks every value below crosses at least one boundary.
    let mut line = String::new();
    for i in 0..40 {
        line.push_str(&format!(
            "row {i:02} mail ana.garcia{i}@example.com tel 612 345 678; "
        ));
    }
    line.push('\n');
    for jobs in ["1", "3"] {
        let mut c = Command::new(BIN);
        c.args([
            "redact",
            "-",
            "--config",
            &cfg,
            "--chunk-bytes",
            "32",
            "--jobs",
            jobs,
        ])
        .env("TEST_DEID_KEY", DEID_KEY);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(line.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.matches("<EMAIL_ADDRESS>").count(), 40, "{text}");
        assert_eq!(text.matches("612 345****").count(), 40, "{text}");
        assert!(!text.contains("@example.com"));
        let mut expected = String::new();
        for i in 0..40 {
            expected.push_str(&format!(
                "row {i:02} mail <EMAIL_ADDRESS> tel 612 345****; "
            ));
        }
        expected.push('\n');
        assert_eq!(text, expected, "jobs {jobs}");
    }
    // scan gives absolute offsets across chunks.
    let out = boveda_stdin(
        &["scan", "-", "--jsonl", "--chunk-bytes", "32", "--jobs", "2"],
        line.as_bytes(),
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut emails = 0;
    for l in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let (s, e) = (
            v["start"].as_u64().unwrap() as usize,
            v["end"].as_u64().unwrap() as usize,
        );
        if v["entity"] == "EMAIL_ADDRESS" {
            assert!(line[s..e].starts_with("ana.garcia") && line[s..e].ends_with("@example.com"));
            emails += 1;
        }
    }
    assert_eq!(emails, 40);
}
