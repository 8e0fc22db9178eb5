//! Verification throughput on one core: 1,000,000 realistic events with a signed checkpoint
//! every 10,000 events. Target: at least 500,000 events per second (issue 5).
//!
//! Run: `cargo bench -p boveda-audit`. Prints figures; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use boveda_audit::{AuditKey, Chain, Checkpoint, Event, Outcome, Report, verify};
use boveda_crypto::sign::SigningKey;
use std::hint::black_box;
use std::time::Instant;

const N: u64 = 1_000_000;
const EVERY: u64 = 10_000;
const T0: i64 = 1_700_000_000_000;

fn event(tenant: [u8; 16], key: &AuditKey, i: u64) -> Event {
    let action = match i % 20 {
        0 => "record.write",
        1 => "auth.login",
        _ => "record.read",
    };
    Event {
        roles: vec!["support".into()],
        session: Some(format!("ses-{:016x}", i / 200)),
        mfa_at_ms: Some(T0),
        collection: Some("customers".into()),
        records: vec![format!("0190f3b2-7c1d-7a4e-9b2f-{:012x}", i % 50_000)],
        subjects: vec![key.pseudonym("subject", &(i % 50_000).to_be_bytes())],
        fields: vec!["email".into(), "phone".into(), "address".into()],
        grade: Some("confidential".into()),
        purpose: Some("customer-support".into()),
        view: Some("masked".into()),
        client: Some(key.pseudonym("client", &((i % 300) as u32).to_be_bytes())),
        ..Event::new(
            tenant,
            T0 + i as i64 * 50,
            &format!("0190f3b2-0000-7000-8000-{:012x}", i % 200),
            "user",
            action,
            Outcome::Allowed,
            &format!("0190f3b2-1111-7000-8000-{i:012x}"),
        )
    }
}

fn main() {
    let tenant = [0x42; 16];
    let key = AuditKey::from_bytes([5; 32]);
    let signer = SigningKey::generate().unwrap();
    let events: Vec<Event> = (1..=N).map(|i| event(tenant, &key, i)).collect();

    let start = Instant::now();
    let mut chain = Chain::new(tenant);
    let mut stored = Vec::with_capacity(N as usize);
    let mut checkpoints = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        stored.push(chain.append(e).unwrap());
        if (i as u64 + 1).is_multiple_of(EVERY) {
            let (seq, hash) = chain.head();
            checkpoints.push(Checkpoint::sign(tenant, seq, hash, T0, &signer));
        }
    }
    let append = start.elapsed();
    let bytes: usize = stored.iter().map(|s| s.encoded.len()).sum();
    println!(
        "append (encode + link + checkpoint every {EVERY}): {:.0} events/s, mean event {} bytes",
        N as f64 / append.as_secs_f64(),
        bytes / N as usize
    );

    let pk = signer.public_key();
    let mut rates = Vec::new();
    for _ in 0..3 {
        let copy = stored.clone();
        let start = Instant::now();
        let report = black_box(verify(copy, &checkpoints, &pk, None));
        let took = start.elapsed();
        assert!(matches!(report, Report::Intact { events, .. } if events == N));
        rates.push(N as f64 / took.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "verify {N} events, {} checkpoints, one core: median {:.0} events/s (min {:.0}, max {:.0}); target 500000",
        checkpoints.len(),
        rates[1],
        rates[0],
        rates[2]
    );
}
