//! The tamper matrix: every way of changing the log must come out as `Broken`, naming the
//! first bad sequence number and what is wrong; clean logs must never raise a false alarm.

use crate::support::{Fixture, T0, TENANT, event, fixture};
use boveda_audit::{
    Chain, Checkpoint, Event, Problem, Report, StoredEvent, VerifierState, link_hash, verify,
};
use boveda_crypto::sign::SigningKey;
use proptest::prelude::*;

fn run(f: &Fixture, events: Vec<StoredEvent>, state: Option<&VerifierState>) -> Report {
    verify(events, &f.checkpoints, &f.key.public_key(), state)
}

fn broken(first_bad_seq: u64, problem: Problem) -> Report {
    Report::Broken {
        first_bad_seq,
        problem,
    }
}

/// Recomputes every hash from `from` (0-based index) on, as someone with database write access
/// but without the signing key would.
fn rehash_from(events: &mut [StoredEvent], from: usize) {
    for i in from..events.len() {
        let prev = if i == 0 {
            boveda_audit::genesis(&TENANT)
        } else {
            events[i - 1].hash
        };
        let seq = i as u64 + 1;
        let mut ev = Event::decode(&events[i].encoded).unwrap();
        ev.seq = seq;
        events[i].seq = seq;
        events[i].encoded = ev.encode();
        events[i].hash = link_hash(&prev, seq, &events[i].encoded);
    }
}

#[test]
fn clean_chain_is_intact() {
    let f = fixture(50, 10);
    let report = run(&f, f.events.clone(), None);
    assert_eq!(
        report,
        Report::Intact {
            first_seq: 1,
            last_seq: 50,
            last_hash: f.events[49].hash,
            events: 50,
            checkpoint_seq: 50,
        }
    );
}

#[test]
fn flipped_byte_in_event_bytes_is_modified() {
    let f = fixture(50, 10);
    let mut ev = f.events.clone();
    ev[20].encoded[40] ^= 0x01;
    assert_eq!(run(&f, ev, None), broken(21, Problem::Modified));
}

#[test]
fn flipped_byte_in_stored_hash_is_modified() {
    let f = fixture(50, 10);
    let mut ev = f.events.clone();
    ev[20].hash[0] ^= 0x80;
    assert_eq!(run(&f, ev, None), broken(21, Problem::Modified));
}

#[test]
fn edited_sequence_column_is_modified() {
    let f = fixture(50, 10);
    let mut ev = f.events.clone();
    ev[20].seq = 99;
    assert_eq!(run(&f, ev, None), broken(21, Problem::Modified));
}

#[test]
fn deleted_middle_event_is_named() {
    let f = fixture(50, 10);
    let mut ev = f.events.clone();
    ev.remove(24);
    assert_eq!(
        run(&f, ev, None),
        broken(
            25,
            Problem::Deleted {
                expected: 25,
                found: 26
            }
        )
    );
}

#[test]
fn deleted_first_event_is_named() {
    let f = fixture(50, 10);
    let mut ev = f.events.clone();
    ev.remove(0);
    assert_eq!(
        run(&f, ev, None),
        broken(
            1,
            Problem::Deleted {
                expected: 1,
                found: 2
            }
        )
    );
}

#[test]
fn deleted_tail_below_a_checkpoint_is_truncation() {
    let f = fixture(50, 10);
    let mut ev = f.events.clone();
    ev.truncate(45);
    assert_eq!(
        run(&f, ev, None),
        broken(46, Problem::TruncatedTail { checkpoint_seq: 50 })
    );
}

#[test]
fn deleted_tail_after_the_last_checkpoint_is_a_rollback_against_saved_state() {
    let f = fixture(50, 20); // checkpoints at 20 and 40
    let first = run(&f, f.events.clone(), None);
    let state = VerifierState::after(TENANT, &first).unwrap();
    assert_eq!(state.seq, 50);
    let mut ev = f.events.clone();
    ev.truncate(44);
    // Without a saved state nothing can tell: the unsigned tail is simply shorter.
    assert!(run(&f, ev.clone(), None).is_intact());
    assert_eq!(
        run(&f, ev, Some(&state)),
        broken(45, Problem::Rollback { state_seq: 50 })
    );
}

#[test]
fn swapped_events_are_reordered() {
    let f = fixture(50, 10);
    let mut ev = f.events.clone();
    ev.swap(30, 31);
    assert_eq!(run(&f, ev, None), broken(31, Problem::Reordered));
}

#[test]
fn swapped_row_contents_with_fixed_sequence_column_are_reordered() {
    let f = fixture(50, 10);
    let mut ev = f.events.clone();
    let (a, b) = (ev[12].clone(), ev[30].clone());
    ev[12] = StoredEvent { seq: 13, ..b };
    ev[30] = StoredEvent { seq: 31, ..a };
    assert_eq!(run(&f, ev, None), broken(13, Problem::Reordered));
}

#[test]
fn inserted_event_without_rehash_is_inserted() {
    let f = fixture(50, 10);
    let mut forged = event(TENANT, 999);
    forged.seq = 26;
    let encoded = forged.encode();

    // A forged event that does not link.
    let mut ev = f.events.clone();
    ev.insert(
        25,
        StoredEvent {
            seq: 26,
            encoded: encoded.clone(),
            hash: [0xab; 32],
        },
    );
    assert_eq!(run(&f, ev, None), broken(26, Problem::Inserted));

    // One that links to its predecessor (but not the events after it): then the forged event
    // holds position 26 and the real event 26 is the one out of place.
    let mut ev = f.events.clone();
    let hash = link_hash(&ev[24].hash, 26, &encoded);
    ev.insert(
        25,
        StoredEvent {
            seq: 26,
            encoded,
            hash,
        },
    );
    assert_eq!(run(&f, ev, None), broken(27, Problem::Inserted));
}

#[test]
fn forged_event_with_recomputed_hashes_is_caught_by_the_next_checkpoint() {
    let f = fixture(50, 10);
    let mut ev = f.events.clone();
    ev.insert(
        24,
        StoredEvent {
            seq: 0,
            encoded: event(TENANT, 777).encode(),
            hash: [0; 32],
        },
    );
    rehash_from(&mut ev, 24);
    ev.pop(); // keep the length, hoping nobody notices
    assert_eq!(run(&f, ev, None), broken(30, Problem::CheckpointMismatch));
}

#[test]
fn forged_event_after_the_last_checkpoint_is_caught_by_saved_state() {
    let f = fixture(50, 20); // checkpoints at 20 and 40
    let state = VerifierState::after(TENANT, &run(&f, f.events.clone(), None)).unwrap();
    let mut ev = f.events.clone();
    let mut edited = Event::decode(&ev[44].encoded).unwrap();
    edited.purpose = Some("marketing".into());
    ev[44].encoded = edited.encode();
    rehash_from(&mut ev, 44);
    assert!(run(&f, ev.clone(), None).is_intact());
    assert_eq!(run(&f, ev, Some(&state)), broken(50, Problem::Forked));
}

#[test]
fn edited_checkpoint_is_a_bad_signature() {
    let f = fixture(50, 10);
    for edit in [
        |c: &mut Checkpoint| c.hash[3] ^= 1,
        |c: &mut Checkpoint| c.seq -= 1,
        |c: &mut Checkpoint| c.at_ms += 1,
        |c: &mut Checkpoint| c.tenant[0] ^= 1,
        |c: &mut Checkpoint| c.signature[0] ^= 1,
        |c: &mut Checkpoint| c.key_id[7] ^= 1,
    ] {
        let mut cps = f.checkpoints.clone();
        edit(&mut cps[2]);
        let seq = cps[2].seq;
        assert_eq!(
            verify(f.events.clone(), &cps, &f.key.public_key(), None),
            broken(seq, Problem::BadCheckpointSignature)
        );
    }
}

#[test]
fn checkpoint_signed_by_another_key_is_refused() {
    let f = fixture(50, 10);
    let intruder = SigningKey::generate().unwrap();
    let mut cps = f.checkpoints.clone();
    cps.push(Checkpoint::sign(TENANT, 50, [0; 32], T0, &intruder));
    assert_eq!(
        verify(f.events.clone(), &cps, &f.key.public_key(), None),
        broken(50, Problem::BadCheckpointSignature)
    );
}

#[test]
fn older_copy_put_back_is_a_rollback() {
    let f = fixture(50, 10);
    let state = VerifierState::after(TENANT, &run(&f, f.events.clone(), None)).unwrap();
    // The whole database as it was at seq 30: events and checkpoints.
    let old_events = f.events[..30].to_vec();
    let old_cps: Vec<_> = f
        .checkpoints
        .iter()
        .filter(|c| c.seq <= 30)
        .cloned()
        .collect();
    let pk = f.key.public_key();
    assert!(verify(old_events.clone(), &old_cps, &pk, None).is_intact());
    assert_eq!(
        verify(old_events, &old_cps, &pk, Some(&state)),
        broken(31, Problem::Rollback { state_seq: 50 })
    );
}

#[test]
fn deleted_checkpoints_below_saved_state_are_a_rollback() {
    let f = fixture(50, 10);
    let state = VerifierState::after(TENANT, &run(&f, f.events.clone(), None)).unwrap();
    let cps: Vec<_> = f
        .checkpoints
        .iter()
        .filter(|c| c.seq <= 30)
        .cloned()
        .collect();
    assert_eq!(
        verify(f.events.clone(), &cps, &f.key.public_key(), Some(&state)),
        broken(31, Problem::Rollback { state_seq: 50 })
    );
}

#[test]
fn another_tenants_event_spliced_in_is_detected() {
    let f = fixture(50, 10);
    let other = [0x22; 16];
    let mut chain = Chain::new(other);
    let foreign: Vec<_> = (1..=50)
        .map(|i| chain.append(event(other, i)).unwrap())
        .collect();
    let mut ev = f.events.clone();
    ev[5] = foreign[5].clone();
    assert_eq!(run(&f, ev, None), broken(6, Problem::Modified));
    // A whole chain of another tenant, presented with this tenant's checkpoints.
    assert_eq!(run(&f, foreign, None), broken(1, Problem::Modified));
}

#[test]
fn garbage_with_a_recomputed_hash_is_undecodable() {
    let f = fixture(50, 0);
    let mut ev = f.events.clone();
    ev[49].encoded = b"not an event".to_vec();
    ev[49].hash = link_hash(&ev[48].hash, 50, &ev[49].encoded);
    assert_eq!(run(&f, ev, None), broken(50, Problem::Undecodable));
}

#[test]
fn retention_to_a_checkpoint_is_accepted_but_not_elsewhere() {
    let f = fixture(50, 10);
    let pruned = f.events[20..].to_vec();
    assert_eq!(
        run(&f, pruned, None),
        Report::Intact {
            first_seq: 21,
            last_seq: 50,
            last_hash: f.events[49].hash,
            events: 30,
            checkpoint_seq: 50,
        }
    );
    let pruned = f.events[25..].to_vec();
    assert_eq!(
        run(&f, pruned, None),
        broken(
            1,
            Problem::Deleted {
                expected: 1,
                found: 26
            }
        )
    );
}

#[test]
fn empty_log_with_checkpoints_is_truncated() {
    let f = fixture(50, 10);
    assert_eq!(
        run(&f, Vec::new(), None),
        broken(1, Problem::TruncatedTail { checkpoint_seq: 50 })
    );
    let empty = fixture(0, 10);
    assert!(run(&empty, Vec::new(), None).is_intact());
}

#[test]
fn verifier_state_round_trips_as_small_json() {
    let f = fixture(5, 5);
    let state = VerifierState::after(TENANT, &run(&f, f.events.clone(), None)).unwrap();
    let json = state.to_json();
    assert!(json.len() < 200, "{json}");
    assert_eq!(VerifierState::from_json(&json).unwrap(), state);
    assert!(VerifierState::from_json("{}").is_err());
}

#[test]
fn reports_serialise_for_the_api() {
    let r = broken(
        7,
        Problem::Deleted {
            expected: 7,
            found: 9,
        },
    );
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(
        json,
        r#"{"status":"broken","first_bad_seq":7,"problem":{"kind":"deleted","expected":7,"found":9}}"#
    );
}

/// Where a single byte is changed.
#[derive(Debug, Clone)]
enum Target {
    Encoded,
    Hash,
    Seq,
    Checkpoint,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Invariant 6 of DESIGN.md §12: any one-byte change anywhere in a chain of 50 events
    /// (event bytes, stored hash, stored sequence number, or a checkpoint) is detected.
    #[test]
    fn any_one_byte_change_is_detected(
        which in 0usize..50,
        target in prop_oneof![
            Just(Target::Encoded), Just(Target::Hash), Just(Target::Seq), Just(Target::Checkpoint)
        ],
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let f = shared_fixture();
        let mut ev = f.events.clone();
        let mut cps = f.checkpoints.clone();
        match target {
            Target::Encoded => {
                let e = &mut ev[which].encoded;
                let i = at.index(e.len());
                e[i] ^= xor;
            }
            Target::Hash => ev[which].hash[at.index(32)] ^= xor,
            Target::Seq => {
                let mut b = ev[which].seq.to_be_bytes();
                b[at.index(8)] ^= xor;
                ev[which].seq = u64::from_be_bytes(b);
            }
            Target::Checkpoint => {
                let n = cps.len();
                let c = &mut cps[which % n];
                // Change one byte of a stored field (the domain tag is not stored) or of the
                // signature.
                let bytes = c.signed_bytes();
                let mut body = bytes[bytes.len() - 72..].to_vec();
                let i = at.index(body.len() + c.signature.len());
                if i < body.len() {
                    body[i] ^= xor;
                    c.tenant.copy_from_slice(&body[..16]);
                    c.seq = u64::from_be_bytes(body[16..24].try_into().unwrap());
                    c.hash.copy_from_slice(&body[24..56]);
                    c.at_ms = i64::from_be_bytes(body[56..64].try_into().unwrap());
                    c.key_id.copy_from_slice(&body[64..72]);
                } else {
                    c.signature[i - body.len()] ^= xor;
                }
            }
        }
        let report = verify(ev, &cps, &f.key.public_key(), None);
        prop_assert!(!report.is_intact(), "undetected: {report:?}");
    }

    /// 100 clean chains of varying length and checkpoint spacing, verified twice with the saved
    /// state carried over, raise no false alarm.
    #[test]
    fn clean_chains_never_raise_false_alarms(n in 0u64..120, every in 0u64..25, grow in 0u64..30) {
        let key = SigningKey::generate().unwrap();
        let mut chain = Chain::new(TENANT);
        let mut events = Vec::new();
        let mut cps = Vec::new();
        let mut append = |i: u64, events: &mut Vec<StoredEvent>, cps: &mut Vec<Checkpoint>| {
            events.push(chain.append(event(TENANT, i)).unwrap());
            if every > 0 && i.is_multiple_of(every) {
                let (seq, hash) = chain.head();
                cps.push(Checkpoint::sign(TENANT, seq, hash, T0, &key));
            }
        };
        for i in 1..=n {
            append(i, &mut events, &mut cps);
        }
        let first = verify(events.clone(), &cps, &key.public_key(), None);
        prop_assert!(first.is_intact(), "{first:?}");
        let state = VerifierState::after(TENANT, &first).unwrap();
        for i in n + 1..=n + grow {
            append(i, &mut events, &mut cps);
        }
        let second = verify(events, &cps, &key.public_key(), Some(&state));
        prop_assert!(second.is_intact(), "{second:?}");
    }
}

fn shared_fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| fixture(50, 10))
}
