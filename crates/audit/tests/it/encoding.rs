//! Properties of the canonical encoding.

use boveda_audit::{Event, Outcome};
use proptest::prelude::*;

fn opt_str() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(".{0,12}")
}

fn strs() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(".{0,8}", 0..4)
}

prop_compose! {
    pub fn any_event()(
        tenant in any::<[u8; 16]>(),
        seq in any::<u64>(),
        at_ms in any::<i64>(),
        principal in ".{0,12}",
        roles in strs(),
        session in opt_str(),
        mfa_at_ms in proptest::option::of(any::<i64>()),
        action in "[a-z.]{0,16}",
        outcome in prop_oneof![Just(Outcome::Allowed), Just(Outcome::Denied), Just(Outcome::Failed)],
        (collection, grade, purpose, view, reason) in (opt_str(), opt_str(), opt_str(), opt_str(), opt_str()),
        records in strs(),
        subjects in proptest::collection::vec(any::<[u8; 32]>(), 0..3),
        fields in strs(),
        client in proptest::option::of(any::<[u8; 32]>()),
        request_id in ".{0,12}",
    ) -> Event {
        Event {
            seq, roles, session, mfa_at_ms, collection, records, subjects, fields,
            grade: grade.map(Into::into), purpose, view: view.map(Into::into), client, reason,
            ..Event::new(tenant, at_ms, &principal, "user", action, outcome, &request_id)
        }
    }
}

proptest! {
    #[test]
    fn decode_inverts_encode(e in any_event()) {
        prop_assert_eq!(Event::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn json_round_trips(e in any_event()) {
        let json = serde_json::to_string(&e).unwrap();
        prop_assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    /// Any bytes that decode re-encode to themselves (the encoding is canonical), and the
    /// allocation-free validator agrees with the decoder on every input.
    #[test]
    fn mutated_bytes_decode_only_canonically(
        e in any_event(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = e.encode();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len() + 1));
        }
        let decoded = Event::decode(&bytes);
        prop_assert_eq!(decoded.is_ok(), Event::validate(&bytes).is_ok());
        if let Ok(d) = decoded {
            prop_assert_eq!(&d.encode(), &bytes);
            // The columns read in place are the decoded event's.
            let c = Event::columns(&bytes).unwrap();
            prop_assert_eq!(
                (c.tenant, c.seq, c.at_ms, c.principal, c.action, c.outcome),
                (d.tenant, d.seq, d.at_ms, d.principal.as_str(), &*d.action, d.outcome)
            );
            prop_assert_eq!(
                (c.collection, c.purpose, c.subjects.to_vec()),
                (d.collection.as_deref(), d.purpose.as_deref(), d.subjects.concat())
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Event::decode(&bytes);
        let _ = Event::validate(&bytes);
    }
}
