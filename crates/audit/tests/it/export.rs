//! JSON lines and CEF export.

use crate::support::{TENANT, event, fixture};
use boveda_audit::{Chain, Event, Outcome, from_json_line, to_cef, to_json_line, verify};

#[test]
fn exported_json_lines_read_back_and_verify() {
    let f = fixture(50, 10);
    let text: String = f
        .events
        .iter()
        .map(|e| to_json_line(e).unwrap() + "\n")
        .collect();
    assert_eq!(text.lines().count(), 50);
    let back: Vec<_> = text.lines().map(|l| from_json_line(l).unwrap()).collect();
    assert_eq!(back, f.events);
    assert!(verify(back, &f.checkpoints, &f.key.public_key(), None).is_intact());
}

#[test]
fn an_edited_json_line_fails_verification() {
    let f = fixture(20, 10);
    let mut lines: Vec<String> = f.events.iter().map(|e| to_json_line(e).unwrap()).collect();
    lines[4] = lines[4].replace("\"purpose\":\"support\"", "\"purpose\":\"billing\"");
    let back: Vec<_> = lines.iter().map(|l| from_json_line(l).unwrap()).collect();
    assert!(!verify(back, &f.checkpoints, &f.key.public_key(), None).is_intact());
}

#[test]
fn json_line_shape_is_stable() {
    let mut chain = Chain::new(TENANT);
    let stored = chain.append(event(TENANT, 1)).unwrap();
    let line = to_json_line(&stored).unwrap();
    assert!(line.starts_with("{\"seq\":1,\"hash\":\""));
    assert!(
        line.contains("\"event\":{\"v\":1,\"tenant\":\"11111111-1111-1111-1111-111111111111\"")
    );
    assert!(!line.contains('\n'));
    assert!(from_json_line("{\"seq\":1}").is_err());
    assert!(
        to_json_line(&boveda_audit::StoredEvent {
            seq: 1,
            encoded: vec![9],
            hash: [0; 32]
        })
        .is_err()
    );
}

#[test]
fn cef_line_has_header_and_escaped_extensions() {
    let mut chain = Chain::new(TENANT);
    let mut e = Event::new(
        TENANT,
        1_700_000_000_000,
        "p|1",
        "user",
        "record.read",
        Outcome::Denied,
        "req=7",
    );
    e.reason = Some("line1\nline2 \\ end".into());
    e.fields = vec!["email".into(), "phone".into()];
    e.subjects = vec![[0xab; 32]];
    let stored = chain.append(e).unwrap();
    let cef = to_cef(&stored).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        cef.starts_with(&format!(
            "CEF:0|boveda|boveda|{version}|record.read|record.read|7|rt=1700000000000 "
        )),
        "{cef}"
    );
    assert!(cef.contains(" externalId=req\\=7 "), "{cef}");
    assert!(cef.contains(" cn3=1 "), "{cef}");
    assert!(cef.contains(" suid=p|1 "), "{cef}");
    assert!(cef.contains(" outcome=denied "), "{cef}");
    assert!(cef.contains(" flexString1=email,phone "), "{cef}");
    assert!(
        cef.contains(&format!(" duid={} ", hex::encode([0xab; 32]))),
        "{cef}"
    );
    assert!(cef.ends_with(" reason=line1\\nline2 \\\\ end"), "{cef}");
    assert!(!cef.contains('\n'));
}

#[test]
fn cef_escapes_pipes_in_the_header() {
    let mut chain = Chain::new(TENANT);
    let e = Event::new(
        TENANT,
        0,
        "p",
        "user",
        "odd|action\\x",
        Outcome::Allowed,
        "r",
    );
    let cef = to_cef(&chain.append(e).unwrap()).unwrap();
    assert!(
        cef.contains("|odd\\|action\\\\x|odd\\|action\\\\x|4|"),
        "{cef}"
    );
}

#[test]
fn cef_severity_ranks_denials_and_sensitive_actions_higher() {
    let sev = |action: &'static str, outcome: Outcome| {
        let mut chain = Chain::new(TENANT);
        let cef = to_cef(
            &chain
                .append(Event::new(TENANT, 0, "p", "user", action, outcome, "r"))
                .unwrap(),
        )
        .unwrap();
        cef.split('|').nth(6).unwrap().parse::<u8>().unwrap()
    };
    assert_eq!(sev("record.read", Outcome::Allowed), 3);
    assert_eq!(sev("subject.erase", Outcome::Allowed), 6);
    assert_eq!(sev("audit.export", Outcome::Allowed), 6);
    assert_eq!(sev("auth.mfa", Outcome::Failed), 7);
    assert_eq!(sev("record.read", Outcome::Denied), 7);
}
