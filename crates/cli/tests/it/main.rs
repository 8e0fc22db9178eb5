//! The `boveda` binary end to end: init, serve over TLS, the client commands, configuration
//! errors with hints, and a graceful stop on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

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
