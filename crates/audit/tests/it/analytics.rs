//! Behaviour analytics on synthetic streams: each rule must fire on its pattern, once per
//! window, and an ordinary support agent's week must raise nothing.

use crate::support::TENANT;
use boveda_audit::{Alert, AlertKind, Analyzer, Event, Hours, Outcome, Thresholds};

const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;
/// Monday 2024-01-01 00:00 UTC.
const DAY0: i64 = 1_704_067_200_000;

struct Stream {
    analyzer: Analyzer,
    seq: u64,
    alerts: Vec<Alert>,
}

impl Stream {
    fn new() -> Self {
        Self::with(Thresholds {
            working_hours: Some(Hours { from: 7, to: 19 }),
            ..Thresholds::default()
        })
    }

    fn with(t: Thresholds) -> Self {
        Self {
            analyzer: Analyzer::new(t),
            seq: 0,
            alerts: Vec::new(),
        }
    }

    fn feed(&mut self, at_ms: i64, build: impl FnOnce(&mut Event)) {
        self.seq += 1;
        let mut e = Event::new(
            TENANT,
            at_ms,
            "agent-7",
            "user",
            "record.read",
            Outcome::Allowed,
            "r",
        );
        e.seq = self.seq;
        e.roles = vec!["support".into()];
        e.collection = Some("customers".into());
        e.purpose = Some("support".into());
        e.view = Some("masked".into());
        e.fields = vec!["email".into(), "phone".into()];
        e.subjects = vec![subject(self.seq % 37)];
        build(&mut e);
        let alerts = self.analyzer.observe(&e);
        self.alerts.extend(alerts);
    }

    fn kinds(&self) -> Vec<AlertKind> {
        self.alerts.iter().map(|a| a.kind).collect()
    }

    fn count(&self, kind: AlertKind) -> usize {
        self.alerts.iter().filter(|a| a.kind == kind).count()
    }
}

fn subject(n: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&n.to_be_bytes());
    s
}

/// A support agent's ordinary day: login and MFA at 09:00, then 30–50 masked reads an hour
/// until 17:00 over a few dozen customers, a couple of clear reads, the odd denial and a
/// mistyped MFA code now and then.
fn ordinary_day(s: &mut Stream, day: i64) {
    let start = DAY0 + day * 24 * HOUR + 9 * HOUR;
    s.feed(start, |e| {
        e.action = "auth.login".into();
        e.subjects.clear();
        e.fields.clear();
        e.purpose = None;
    });
    if day % 3 == 0 {
        s.feed(start + 1000, |e| {
            e.action = "auth.mfa".into();
            e.outcome = Outcome::Failed;
            e.subjects.clear();
            e.fields.clear();
            e.purpose = None;
        });
    }
    s.feed(start + 2000, |e| {
        e.action = "auth.mfa".into();
        e.subjects.clear();
        e.fields.clear();
        e.purpose = None;
    });
    for h in 0..8 {
        let n = 30 + (day * 7 + h * 3) % 21;
        for i in 0..n {
            let at = start + h * HOUR + 60_000 + i * (HOUR - 120_000) / n;
            s.feed(at, |e| {
                if i % 5 == 0 {
                    e.fields = vec!["address".into()];
                }
                if i == 10 || i == 20 {
                    e.view = Some("plain".into());
                }
                if i == 15 && h % 2 == 0 {
                    e.outcome = Outcome::Denied;
                }
                e.subjects = vec![subject((day * 31 + h * 7 + i) as u64 % 60)];
            });
        }
    }
}

fn baseline_week(s: &mut Stream) {
    for day in 0..7 {
        ordinary_day(s, day);
    }
}

#[test]
fn an_ordinary_week_raises_nothing() {
    let mut s = Stream::new();
    baseline_week(&mut s);
    ordinary_day(&mut s, 7);
    assert!(s.alerts.is_empty(), "{:?}", s.alerts);
}

#[test]
fn volume_far_above_own_baseline_alerts_once() {
    let mut s = Stream::new();
    baseline_week(&mut s);
    let start = DAY0 + 7 * 24 * HOUR + 10 * HOUR;
    for i in 0..400 {
        // Same few customers, so only the volume rule is in play.
        s.feed(start + i * 8000, |e| {
            e.subjects = vec![subject(i as u64 % 10)]
        });
    }
    assert_eq!(s.kinds(), vec![AlertKind::Volume]);
    let alert = &s.alerts[0];
    assert_eq!(alert.principal, "agent-7");
    // The median active hour has about 40 events, so the 5x line sits near 200.
    assert!(
        (190..=260).contains(&alert.events.len()),
        "{}",
        alert.events.len()
    );
    assert!(alert.detail.contains("baseline median"));
}

#[test]
fn a_new_principal_without_baseline_does_not_alert_on_volume() {
    let mut s = Stream::new();
    for i in 0..400 {
        s.feed(DAY0 + 10 * HOUR + i * 8000, |e| {
            e.subjects = vec![subject(1)]
        });
    }
    assert_eq!(s.count(AlertKind::Volume), 0);
}

#[test]
fn many_distinct_subjects_in_an_hour_alerts_once() {
    let mut s = Stream::new();
    let start = DAY0 + 10 * HOUR;
    for i in 0..400 {
        s.feed(start + i * 8000, |e| {
            e.subjects = vec![subject(1000 + i as u64)]
        });
    }
    assert_eq!(s.kinds(), vec![AlertKind::DistinctSubjects]);
    assert_eq!(s.alerts[0].events.len(), 151);
    // The next hour is a new window.
    for i in 0..200 {
        s.feed(start + HOUR + i * 1000, |e| {
            e.subjects = vec![subject(5000 + i as u64)]
        });
    }
    assert_eq!(s.count(AlertKind::DistinctSubjects), 2);
}

#[test]
fn access_at_three_in_the_morning_alerts_once_per_hour() {
    let mut s = Stream::new();
    let night = DAY0 + 3 * HOUR;
    for i in 0..10 {
        s.feed(night + i * MINUTE, |_| {});
    }
    s.feed(night + HOUR + 5, |_| {});
    assert_eq!(s.kinds(), vec![AlertKind::OffHours, AlertKind::OffHours]);
    assert!(s.alerts[0].detail.contains("03:00 UTC"));
    let mut off = Stream::with(Thresholds::default());
    off.feed(night, |_| {});
    assert!(off.alerts.is_empty(), "working hours are off by default");
}

#[test]
fn a_new_purpose_or_field_set_alerts_after_learning_only() {
    let mut s = Stream::new();
    // During learning a new purpose is just learned.
    s.feed(DAY0 + 9 * HOUR, |e| e.purpose = Some("billing".into()));
    baseline_week(&mut s);
    assert!(s.alerts.is_empty());
    let at = DAY0 + 7 * 24 * HOUR + 10 * HOUR;
    s.feed(at, |e| e.purpose = Some("marketing".into()));
    s.feed(at + 1000, |e| e.purpose = Some("marketing".into()));
    s.feed(at + 2000, |e| e.purpose = Some("billing".into()));
    s.feed(at + 3000, |e| e.fields = vec!["ssn".into(), "email".into()]);
    s.feed(at + 4000, |e| e.fields = vec!["email".into(), "ssn".into()]);
    // A repeat of the last list, then a new set after it, then the first list again.
    s.feed(at + 5000, |e| e.fields = vec!["email".into(), "ssn".into()]);
    s.feed(at + 6000, |e| e.fields = vec!["phone".into()]);
    s.feed(at + 7000, |e| e.fields = vec!["ssn".into(), "email".into()]);
    assert_eq!(
        s.kinds(),
        vec![
            AlertKind::NewPurpose,
            AlertKind::NewFieldSet,
            AlertKind::NewFieldSet
        ]
    );
    assert_eq!(s.alerts[0].events, vec![s.seq - 7]);
    assert!(s.alerts[1].detail.contains("[email, ssn]"));
    assert!(s.alerts[2].detail.contains("[phone]"));
}

#[test]
fn a_burst_of_clear_reads_or_detokenization_alerts_once() {
    let mut s = Stream::new();
    let at = DAY0 + 10 * HOUR;
    for i in 0..15 {
        s.feed(at + i * 2000, |e| e.view = Some("plain".into()));
    }
    for i in 15..40 {
        s.feed(at + i * 1000, |e| {
            e.action = "token.detokenize".into();
            e.view = None;
        });
    }
    assert_eq!(s.kinds(), vec![AlertKind::ClearBurst]);
    assert_eq!(s.alerts[0].events.len(), 21);
    // Twenty in a minute is the limit, not over it.
    let mut calm = Stream::new();
    for i in 0..20 {
        calm.feed(at + i * 2900, |e| e.view = Some("plain".into()));
    }
    assert!(calm.alerts.is_empty());
}

#[test]
fn repeated_denials_alert_once_per_ten_minutes() {
    let mut s = Stream::new();
    let at = DAY0 + 10 * HOUR;
    for i in 0..30 {
        s.feed(at + i * 15_000, |e| e.outcome = Outcome::Denied);
    }
    assert_eq!(s.kinds(), vec![AlertKind::RepeatedDenials]);
    assert_eq!(s.alerts[0].events, (1..=11).collect::<Vec<u64>>());
}

#[test]
fn repeated_mfa_failures_alert() {
    let mut s = Stream::new();
    let at = DAY0 + 10 * HOUR;
    for i in 0..6 {
        s.feed(at + i * 30_000, |e| {
            e.action = "auth.mfa".into();
            e.outcome = Outcome::Failed;
            e.subjects.clear();
        });
    }
    assert_eq!(s.kinds(), vec![AlertKind::RepeatedMfaFailures]);
    // Five failures spread over an hour are ordinary typing mistakes.
    let mut calm = Stream::new();
    for i in 0..5 {
        calm.feed(at + i * 12 * MINUTE, |e| {
            e.action = "auth.mfa".into();
            e.outcome = Outcome::Failed;
        });
    }
    assert!(calm.alerts.is_empty());
}

#[test]
fn exports_alert_once_per_hour() {
    let mut s = Stream::new();
    let at = DAY0 + 10 * HOUR;
    s.feed(at, |e| e.action = "audit.export".into());
    s.feed(at + MINUTE, |e| e.action = "records.export".into());
    s.feed(at + HOUR, |e| e.action = "records.export".into());
    assert_eq!(s.kinds(), vec![AlertKind::Export, AlertKind::Export]);
    assert!(s.alerts[0].detail.contains("audit.export"));
}

#[test]
fn principals_are_tracked_apart() {
    let mut s = Stream::new();
    let at = DAY0 + 10 * HOUR;
    for i in 0..20 {
        s.feed(at + i * 1000, |e| {
            e.outcome = Outcome::Denied;
            e.principal = format!("agent-{}", i % 4);
        });
    }
    assert!(s.alerts.is_empty());
}

#[test]
fn thresholds_load_from_toml_and_json_with_defaults() {
    let t: Thresholds = toml::from_str(
        "volume_factor = 8.0\nworking_hours = { from = 22, to = 6 }\nexports = false\n",
    )
    .unwrap();
    assert_eq!(t.volume_factor, 8.0);
    assert_eq!(t.working_hours, Some(Hours { from: 22, to: 6 }));
    assert_eq!(t.volume_min, Thresholds::default().volume_min);
    let j: Thresholds = serde_json::from_str(r#"{"denials_per_10_minutes": 3}"#).unwrap();
    assert_eq!(j.denials_per_10_minutes, 3);
    assert!(serde_json::from_str::<Thresholds>(r#"{"volume_facter": 3}"#).is_err());
}

#[test]
fn alerts_carry_no_personal_values() {
    // Events hold pseudonyms, and alerts copy only ids, counts and names of purposes and
    // fields; a subject pseudonym never appears in an alert either.
    let mut s = Stream::new();
    let at = DAY0 + 3 * HOUR;
    for i in 0..200 {
        s.feed(at + i * 1000, |e| {
            e.subjects = vec![subject(7000 + i as u64)];
            e.view = Some("plain".into());
            e.outcome = Outcome::Denied;
        });
    }
    let json = serde_json::to_string(&s.alerts).unwrap();
    assert!(!json.contains(&hex::encode(subject(7000))));
    assert!(s.count(AlertKind::DistinctSubjects) == 1 && s.count(AlertKind::OffHours) == 1);
}

proptest::proptest! {
    /// Rules never panic, whatever the events (times near the ends of i64, empty ids, long
    /// lists), and every alert points at events that were fed.
    #[test]
    fn arbitrary_streams_never_panic(events in proptest::collection::vec(crate::encoding::any_event(), 0..40)) {
        let mut a = Analyzer::new(Thresholds {
            working_hours: Some(Hours { from: 9, to: 17 }),
            learning_events: 3,
            denials_per_10_minutes: 1,
            ..Thresholds::default()
        });
        let seqs: std::collections::HashSet<u64> = events.iter().map(|e| e.seq).collect();
        for e in &events {
            for alert in a.observe(e) {
                proptest::prop_assert!(alert.events.iter().all(|s| seqs.contains(s)));
            }
        }
    }
}
