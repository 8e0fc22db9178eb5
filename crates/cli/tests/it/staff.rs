//! The staff commands end to end: invite, accept with a password, enrol TOTP, log in (the
//! session kept 0600 in the user's config directory), then apply, show and explain a policy.

use super::{BIN, json, serve};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[String], envs: &[(&str, &str)], input: &str) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("BOVEDA_TOKEN")
        .env_remove("BOVEDA_TOKEN_FILE")
        .env_remove("BOVEDA_URL");
    for (k, v) in envs {
        c.env(k, v);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn invite_enrol_login_and_policy_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut s = serve(&dir);
    let ca = dir.join("tls/dev-cert.pem");
    let config_home = tmp.path().join("config");
    let args = |extra: &[&str]| -> Vec<String> {
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
    let token_file = dir.join("bootstrap-operator.token");
    let op = [("BOVEDA_TOKEN_FILE", token_file.to_str().unwrap())];
    let t = json(&run(&args(&["tenant", "create", "staffcli"]), &op, ""));
    let tenant = t["id"].as_str().unwrap().to_owned();
    let sa = json(&run(
        &args(&["service-account", "create", "admin", "--tenant", &tenant]),
        &op,
        "",
    ));
    let sa_key = sa["api_key"].as_str().unwrap().to_owned();
    let admin = [("BOVEDA_TOKEN", sa_key.as_str())];

    // Email and name come on standard input, never on the command line.
    let inv = json(&run(
        &args(&["user", "invite", "--roles", "tenant_admin,privacy_officer"]),
        &admin,
        "oficial@staffcli.example\nOlga Oficial\n",
    ));
    let invite = inv["invite"].as_str().unwrap().to_owned();
    let qr = tmp.path().join("totp.svg");
    let password = "Niebla-sobre-el-Moncayo-2026?";
    let e = json(&run(
        &args(&["mfa", "accept-invite", "--qr", qr.to_str().unwrap()]),
        &[],
        &format!("{invite}\n{password}\n"),
    ));
    assert!(std::fs::read_to_string(&qr).unwrap().contains("<svg"));
    let uri = e["otpauth_uri"].as_str().unwrap();
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let secret = boveda_crypto::totp::TotpSecret::from_base32(secret).unwrap();
    let code = boveda_crypto::totp::code_at(&secret, now());
    let c = json(&run(
        &args(&["mfa", "confirm"]),
        &[],
        &format!("{invite}\n{}\n", code.as_str()),
    ));
    let recovery = c["recovery_codes"][0].as_str().unwrap().to_owned();

    let home = [("XDG_CONFIG_HOME", config_home.to_str().unwrap())];
    let out = run(
        &args(&["login", "--tenant", &tenant]),
        &home,
        &format!("oficial@staffcli.example\n{password}\n{recovery}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session = config_home.join("boveda/session");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&session).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&std::fs::read_to_string(&session).unwrap()),
        "the token is not printed"
    );

    // With the saved session: schema, policy, explain.
    let schema = tmp.path().join("customers.toml");
    std::fs::write(&schema, "name = \"customers\"\n[fields.phone]\ntype = \"phone\"\ncategory = \"contact\"\ngrade = \"L3\"\n").unwrap();
    json(&run(
        &args(&["collection", "apply", schema.to_str().unwrap()]),
        &home,
        "",
    ));
    let policy = tmp.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[rules]]\nid = \"support-masked\"\neffect = \"allow\"\nroles = [\"support_agent\"]\nactions = [\"read\"]\nresources = [\"*\"]\npurposes = [\"customer_support\"]\nview = \"masked\"\n",
    )
    .unwrap();
    let applied = json(&run(
        &args(&["policy", "apply", policy.to_str().unwrap()]),
        &home,
        "",
    ));
    assert_eq!(applied["version"], 1);
    let shown = json(&run(&args(&["policy", "show"]), &home, ""));
    assert_eq!(shown["policy"]["rules"][0]["id"], "support-masked");
    let explain = |purpose: &str| {
        run(
            &args(&[
                "policy",
                "explain",
                "--roles",
                "support_agent",
                "--action",
                "read",
                "--collection",
                "customers",
                "--field",
                "phone",
                "--purpose",
                purpose,
            ]),
            &home,
            "",
        )
    };
    let allowed = explain("customer_support");
    assert_eq!(
        allowed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    assert_eq!(json(&allowed)["rule"], "support-masked");
    assert_eq!(
        explain("marketing").status.code(),
        Some(1),
        "a refusal exits 1"
    );
    let users = json(&run(&args(&["user", "list"]), &home, ""));
    assert_eq!(users["users"][0]["email"], "oficial@staffcli.example");

    // Incidents, as the privacy officer (the logged-in user); a plain service account may not.
    let file = tmp.path().join("incident.json");
    std::fs::write(&file, r#"{"title": "laptop lost", "detected_at": 0, "severity": "medium", "scope": {"tenant": true}}"#).unwrap();
    let refused = run(
        &args(&["incident", "open", file.to_str().unwrap()]),
        &admin,
        "",
    );
    assert_eq!(
        refused.status.code(),
        Some(2),
        "the service role does not handle incidents"
    );
    let inc = json(&run(
        &args(&["incident", "open", file.to_str().unwrap()]),
        &home,
        "",
    ));
    let id = inc["id"].as_str().unwrap().to_owned();
    let contained = json(&run(
        &args(&["incident", "contain", &id, "rotate_keys"]),
        &home,
        "",
    ));
    assert_eq!(contained["timeline"][1]["action"], "contain.rotate_keys");
    let state = json(&run(
        &args(&["incident", "state", &id, "contained"]),
        &home,
        "",
    ));
    assert_eq!(state["state"], "contained");
    let blast = json(&run(&args(&["incident", "blast-radius", &id]), &home, ""));
    assert!(
        blast["subjects"].as_array().unwrap().is_empty(),
        "no data was read in this test"
    );
    let listed = json(&run(&args(&["incident", "list"]), &home, ""));
    assert_eq!(listed["incidents"].as_array().unwrap().len(), 1);

    // Notices: without the tenant's `notice` settings nothing can be planned; the creator may
    // not approve; a jurisdiction other than gdpr or pipl has no report.
    let plan = run(&args(&["incident", "plan-notices", &id]), &home, "");
    assert_eq!(plan.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&plan.stderr).contains("notice"),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let approve = run(&args(&["incident", "approve-notices", &id]), &home, "");
    assert_eq!(
        approve.status.code(),
        Some(2),
        "the creator may not approve"
    );
    let report = run(&args(&["incident", "report", &id, "ccpa"]), &home, "");
    assert_eq!(report.status.code(), Some(2));
    let notices = json(&run(&args(&["incident", "notices", &id]), &home, ""));
    assert!(notices["notices"].as_array().unwrap().is_empty());

    let _ = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status();
    let _ = s.child.wait();
}
