//! Fixtures: realistic events, chains with checkpoints.

use boveda_audit::{AuditKey, Chain, Checkpoint, Event, Outcome, StoredEvent};
use boveda_crypto::sign::SigningKey;

pub const TENANT: [u8; 16] = [0x11; 16];
pub const T0: i64 = 1_700_000_000_000;

/// A realistic event: a support agent reading one customer's contact fields.
pub fn event(tenant: [u8; 16], i: u64) -> Event {
    let key = AuditKey::from_bytes([3; 32]);
    let action = match i % 10 {
        0 => "record.write",
        7 => "auth.login",
        _ => "record.read",
    };
    let outcome = if i.is_multiple_of(13) {
        Outcome::Denied
    } else {
        Outcome::Allowed
    };
    Event {
        roles: vec!["support".into()],
        session: Some(format!("ses-{:08x}", i / 50)),
        mfa_at_ms: Some(T0 - 60_000),
        collection: Some("customers".into()),
        records: vec![format!("rec-{:032x}", i % 997)],
        subjects: vec![key.pseudonym("subject", format!("sub-{}", i % 997).as_bytes())],
        fields: vec!["email".into(), "phone".into()],
        grade: Some("confidential".into()),
        purpose: Some("support".into()),
        view: Some("masked".into()),
        client: Some(key.pseudonym("client", b"10.0.0.7")),
        reason: (outcome == Outcome::Denied).then(|| "policy".into()),
        ..Event::new(
            tenant,
            T0 + i as i64 * 1000,
            &format!("prn-{:04}", i % 20),
            "user",
            action,
            outcome,
            &format!("req-{i:016x}"),
        )
    }
}

pub struct Fixture {
    pub key: SigningKey,
    pub events: Vec<StoredEvent>,
    pub checkpoints: Vec<Checkpoint>,
}

/// `n` events with a checkpoint after every `every` events (none if `every` is 0).
pub fn fixture(n: u64, every: u64) -> Fixture {
    let key = SigningKey::generate().unwrap();
    let mut chain = Chain::new(TENANT);
    let mut events = Vec::new();
    let mut checkpoints = Vec::new();
    for i in 1..=n {
        events.push(chain.append(event(TENANT, i)).unwrap());
        if every > 0 && i.is_multiple_of(every) {
            let (seq, hash) = chain.head();
            checkpoints.push(Checkpoint::sign(TENANT, seq, hash, T0 + i as i64, &key));
        }
    }
    Fixture {
        key,
        events,
        checkpoints,
    }
}
