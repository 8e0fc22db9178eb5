//! The rows of the audit log on SQLite. A row of `audit_runs` holds a run of one tenant's
//! consecutive events: the first and last sequence numbers, the events' encodings (each after
//! its length, four bytes big-endian) and their chain hashes (32 bytes each). The checkpointer
//! moves the read path's staged events in as runs of up to [`RUN`], one B-tree insert per run
//! instead of per event, which took two thirds of its time (`cargo bench -p boveda-store
//! --bench journal`); a write's events go in with it, one run per tenant. What searches filter
//! on is read from the encodings themselves ([`AuditEvent::columns`]), after the block
//! summaries (`blocks.rs`) have ruled out the runs that cannot match.

use crate::{AuditEvent, AuditFilter, Result, StoredEvent};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// Events per run, at most: a lookup of one event reads its run's (about 20 KB).
pub(super) const RUN: usize = 64;

/// A run row's `events` and `hashes` columns, from its events in order.
#[must_use]
pub fn pack<'a>(events: impl IntoIterator<Item = (&'a [u8], &'a [u8; 32])>) -> (Vec<u8>, Vec<u8>) {
    let (mut encodings, mut hashes) = (Vec::new(), Vec::new());
    for (encoded, hash) in events {
        push(&mut encodings, &mut hashes, encoded, hash);
    }
    (encodings, hashes)
}

fn push(encodings: &mut Vec<u8>, hashes: &mut Vec<u8>, encoded: &[u8], hash: &[u8; 32]) {
    // An encoding past u32 cannot pass `AuditEvent::check`: it never reaches a store.
    encodings.extend_from_slice(
        &u32::try_from(encoded.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    encodings.extend_from_slice(encoded);
    hashes.extend_from_slice(hash);
}

/// An event of a run: sequence number, encoding, hash.
pub type RunEvent<'a> = (u64, &'a [u8], &'a [u8; 32]);

/// The events of a run row, or `None` if the row is not a well-formed run: as many encodings
/// as hashes as sequence numbers, nothing left over.
#[must_use]
pub fn unpack<'a>(
    first: i64,
    last: i64,
    mut events: &'a [u8],
    hashes: &'a [u8],
) -> Option<Vec<RunEvent<'a>>> {
    let first = u64::try_from(first).ok()?;
    let count = usize::try_from(
        u64::try_from(last)
            .ok()?
            .checked_sub(first)?
            .checked_add(1)?,
    )
    .ok()?;
    if hashes.len() != count.checked_mul(32)? {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for (i, hash) in hashes.chunks_exact(32).enumerate() {
        let (len, rest) = events.split_first_chunk::<4>()?;
        let (encoded, rest) = rest.split_at_checked(u32::from_be_bytes(*len) as usize)?;
        out.push((first + i as u64, encoded, hash.try_into().ok()?));
        events = rest;
    }
    events.is_empty().then_some(out)
}

/// A run being filled.
struct Run {
    first: u64,
    count: usize,
    encodings: Vec<u8>,
    hashes: Vec<u8>,
}

impl Run {
    fn new(first: u64) -> Self {
        Self {
            first,
            count: 0,
            encodings: Vec::with_capacity(RUN * 384),
            hashes: Vec::with_capacity(RUN * 32),
        }
    }
}

/// Inserts chained events (each tenant's in sequence order) as runs: each tenant's
/// consecutive events, up to [`RUN`] a row.
pub(super) fn insert<'a>(
    c: &Connection,
    events: impl IntoIterator<Item = (&'a [u8; 16], u64, &'a [u8], &'a [u8; 32])>,
) -> Result<()> {
    let mut st = c.prepare_cached(
        "INSERT INTO audit_runs (tenant, first_seq, last_seq, events, hashes) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut write = |tenant: &[u8; 16], run: &Run| -> Result<()> {
        if run.count > 0 {
            st.execute(params![
                &tenant[..],
                run.first as i64,
                (run.first + run.count as u64 - 1) as i64,
                run.encodings,
                run.hashes
            ])?;
        }
        Ok(())
    };
    let mut open: HashMap<[u8; 16], Run> = HashMap::new();
    for (tenant, seq, encoded, hash) in events {
        let run = open.entry(*tenant).or_insert_with(|| Run::new(seq));
        if run.count == RUN || run.first + run.count as u64 != seq {
            write(tenant, run)?;
            *run = Run::new(seq);
        }
        push(&mut run.encodings, &mut run.hashes, encoded, hash);
        run.count += 1;
    }
    for (tenant, run) in &open {
        write(tenant, run)?;
    }
    Ok(())
}

/// Calls `f` with each of a tenant's events in `(after, upto]` as (sequence number, encoding,
/// hash), in order, while it returns true. A row that is not a well-formed run reads as one
/// event at its first sequence number, its whole `events` blob under a zero hash: one that
/// verification reports and searches never match.
pub(super) fn scan(
    c: &Connection,
    tenant: &[u8],
    after: i64,
    upto: i64,
    mut f: impl FnMut(u64, &[u8], &[u8; 32]) -> Result<bool>,
) -> Result<()> {
    if after >= upto {
        return Ok(());
    }
    // From the run holding the first event wanted: the last to start at or before it.
    let mut st = c.prepare_cached(
        "SELECT first_seq, last_seq, CAST(events AS BLOB), CAST(hashes AS BLOB) FROM audit_runs
         WHERE tenant = ?1 AND first_seq <= ?3 AND first_seq >= COALESCE((SELECT first_seq
           FROM audit_runs WHERE tenant = ?1 AND first_seq <= ?2 ORDER BY first_seq DESC LIMIT 1), ?2)
         ORDER BY first_seq",
    )?;
    let mut q = st.query(params![tenant, after + 1, upto])?;
    while let Some(r) = q.next()? {
        let Some((first, last)) = bounds(r.get_ref(0)?, r.get_ref(1)?) else {
            continue;
        };
        // Blobs by the casts (the columns are NOT NULL).
        let events = r.get_ref(2)?.as_blob().unwrap_or_default();
        let hashes = r.get_ref(3)?.as_blob().unwrap_or_default();
        match last.and_then(|last| unpack(first, last, events, hashes)) {
            Some(run) => {
                for (seq, encoded, hash) in run {
                    if seq as i64 > upto {
                        return Ok(());
                    }
                    if seq as i64 > after && !f(seq, encoded, hash)? {
                        return Ok(());
                    }
                }
            }
            None => {
                if first > after && !f(first as u64, events, &[0; 32])? {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// A row's first sequence number and its last if it is an integer (if not, the row is
/// malformed). A first that is a real number (the column's affinity keeps integers integers)
/// is read down to an integer; one that is neither is `None`: text and blobs sort after every
/// number, so no range of sequence numbers selects them.
fn bounds(first: ValueRef<'_>, last: ValueRef<'_>) -> Option<(i64, Option<i64>)> {
    let first = match first {
        ValueRef::Integer(i) => i,
        // Saturating: whatever it was, the row reads as one event that cannot verify.
        ValueRef::Real(r) => r.floor() as i64,
        _ => return None,
    };
    Some((first, last.as_i64().ok()))
}

/// Whether an event's encoding matches a filter. One that does not decode matches only a
/// filter on nothing but sequence numbers: verification and export see it, searches do not.
pub(super) fn matches(f: &AuditFilter, encoded: &[u8]) -> bool {
    let Ok(e) = AuditEvent::columns(encoded) else {
        return *f
            == AuditFilter {
                to_seq: f.to_seq,
                ..AuditFilter::default()
            };
    };
    let eq =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    f.from_ms.is_none_or(|v| e.at_ms >= v)
        && f.to_ms.is_none_or(|v| e.at_ms < v)
        && eq(&f.principal, Some(e.principal))
        && eq(&f.action, Some(e.action))
        && eq(&f.collection, e.collection)
        && eq(&f.purpose, e.purpose)
        && eq(&f.outcome, Some(e.outcome.as_str()))
        && f.subject
            .is_none_or(|s| e.subjects.chunks_exact(32).any(|c| c == s))
}

/// A tenant's stored events in `(after, upto]`, all of them.
pub(super) fn read(
    c: &Connection,
    tenant: &[u8],
    after: i64,
    upto: i64,
) -> Result<Vec<StoredEvent>> {
    let mut out = Vec::new();
    scan(c, tenant, after, upto, |seq, encoded, hash| {
        out.push(StoredEvent {
            seq,
            encoded: encoded.to_vec(),
            hash: *hash,
        });
        Ok(true)
    })?;
    Ok(out)
}

/// Deletes a tenant's events up to `seq`, cutting the run across it; returns how many.
pub(super) fn prune(c: &Connection, tenant: &[u8; 16], seq: i64) -> Result<u64> {
    let t = &tenant[..];
    let whole: i64 = c.query_row(
        "SELECT CAST(COALESCE(SUM(last_seq - first_seq + 1), 0) AS INTEGER) FROM audit_runs
         WHERE tenant = ?1 AND last_seq <= ?2",
        params![t, seq],
        |r| r.get(0),
    )?;
    c.execute(
        "DELETE FROM audit_runs WHERE tenant = ?1 AND last_seq <= ?2",
        params![t, seq],
    )?;
    // The run across the cut, if any: what follows the cut goes back as a run of its own.
    let across = c
        .query_row(
            "SELECT rowid, first_seq, last_seq FROM audit_runs WHERE tenant = ?1 AND first_seq <= ?2
             ORDER BY first_seq DESC LIMIT 1",
            params![t, seq],
            |r| Ok((r.get::<_, i64>(0)?, bounds(r.get_ref(1)?, r.get_ref(2)?))),
        )
        .optional()?;
    let Some((rowid, Some((first, last)))) = across else {
        return Ok(whole.max(0) as u64);
    };
    // A malformed run (no last) goes whole: none of its events can verify.
    let kept = match last {
        Some(last) => read(c, t, seq, last)?,
        None => Vec::new(),
    };
    c.execute("DELETE FROM audit_runs WHERE rowid = ?1", [rowid])?;
    insert(
        c,
        kept.iter()
            .map(|e| (tenant, e.seq, &e.encoded[..], &e.hash)),
    )?;
    Ok(whole.max(0) as u64 + seq.saturating_sub(first).saturating_add(1).max(0) as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sqlite::{DATA_MIGRATIONS, migrate};

    fn database() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, DATA_MIGRATIONS).unwrap();
        c
    }

    fn event(tenant: u8, seq: u64) -> ([u8; 16], StoredEvent) {
        let e = AuditEvent::new(
            [tenant; 16],
            seq as i64,
            "sa:a",
            "service",
            "record.read",
            boveda_audit::Outcome::Allowed,
            "r",
        );
        let encoded = e.encode_as(seq);
        let hash = boveda_audit::link_hash(&[tenant; 32], seq, &encoded);
        ([tenant; 16], StoredEvent { seq, encoded, hash })
    }

    fn put(c: &Connection, events: &[([u8; 16], StoredEvent)]) {
        insert(
            c,
            events
                .iter()
                .map(|(t, e)| (t, e.seq, &e.encoded[..], &e.hash)),
        )
        .unwrap();
    }

    fn rows(c: &Connection) -> Vec<(i64, i64)> {
        let mut st = c
            .prepare("SELECT first_seq, last_seq FROM audit_runs ORDER BY tenant, first_seq")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_run_reads_back_and_a_malformed_one_does_not() {
        let events: Vec<_> = (5..9).map(|s| event(1, s).1).collect();
        let (blob, hashes) = pack(events.iter().map(|e| (&e.encoded[..], &e.hash)));
        let back = unpack(5, 8, &blob, &hashes).unwrap();
        assert_eq!(back.len(), 4);
        for ((seq, encoded, hash), e) in back.iter().zip(&events) {
            assert_eq!((*seq, *encoded, *hash), (e.seq, &e.encoded[..], &e.hash));
        }
        assert!(unpack(5, 9, &blob, &hashes).is_none(), "one hash short");
        assert!(unpack(5, 7, &blob, &hashes).is_none(), "one hash over");
        assert!(unpack(6, 5, &blob, &hashes).is_none(), "backwards");
        assert!(unpack(-1, 2, &blob, &hashes).is_none(), "negative");
        assert!(
            unpack(5, 8, &blob[..blob.len() - 1], &hashes).is_none(),
            "cut short"
        );
        let mut more = blob.clone();
        more.push(0);
        assert!(unpack(5, 8, &more, &hashes).is_none(), "trailing bytes");
        let mut longer = blob.clone();
        longer[3] += 1;
        assert!(unpack(5, 8, &longer, &hashes).is_none(), "a wrong length");
    }

    /// Each tenant's consecutive events go in runs of up to `RUN`, whatever the interleaving;
    /// a gap starts a run.
    #[test]
    fn events_go_in_runs_per_tenant_and_read_back_in_order() {
        let c = database();
        let mut events = Vec::new();
        for s in 1..=150u64 {
            events.push(event(1, s));
            if s % 2 == 0 {
                events.push(event(2, s / 2));
            }
        }
        events.push(event(2, 80));
        put(&c, &events);
        assert_eq!(
            rows(&c),
            [(1, 64), (65, 128), (129, 150), (1, 64), (65, 75), (80, 80)]
        );
        let seqs = |t: u8, after, upto| -> Vec<u64> {
            read(&c, &[t; 16], after, upto)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        assert_eq!(seqs(1, 0, i64::MAX), (1..=150).collect::<Vec<_>>());
        assert_eq!(seqs(1, 63, 66), [64, 65, 66]);
        assert_eq!(seqs(1, 100, 100), Vec::<u64>::new());
        assert_eq!(seqs(2, 70, 90), [71, 72, 73, 74, 75, 80]);
        let got = read(&c, &[2; 16], 74, 75).unwrap();
        assert_eq!(got, [event(2, 75).1]);
    }

    /// Retention cuts the run across its mark and counts events, not rows.
    #[test]
    fn prune_cuts_the_run_across_the_mark() {
        let c = database();
        let events: Vec<_> = (1..=150).map(|s| event(1, s)).collect();
        put(&c, &events);
        put(&c, &[event(2, 1)]);
        assert_eq!(prune(&c, &[1; 16], 100).unwrap(), 100);
        assert_eq!(rows(&c), [(101, 128), (129, 150), (1, 1)]);
        let left = read(&c, &[1; 16], 0, i64::MAX).unwrap();
        let want: Vec<StoredEvent> = events[100..].iter().map(|e| e.1.clone()).collect();
        assert_eq!(left, want);
        assert_eq!(prune(&c, &[1; 16], 128).unwrap(), 28, "on a run's end");
        assert_eq!(prune(&c, &[1; 16], 128).unwrap(), 0);
        assert_eq!(rows(&c), [(129, 150), (1, 1)]);
    }

    /// A malformed row reads as one event that cannot verify, and matches no search.
    #[test]
    fn a_malformed_row_reads_as_an_event_that_cannot_verify() {
        let c = database();
        put(&c, &(1..=3).map(|s| event(1, s)).collect::<Vec<_>>());
        c.execute("UPDATE audit_runs SET last_seq = 2", []).unwrap();
        let got = read(&c, &[1; 16], 0, i64::MAX).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].seq, got[0].hash), (1, [0; 32]));
        assert!(matches(&AuditFilter::default(), &got[0].encoded));
        let by_action = AuditFilter {
            action: Some("record.read".into()),
            ..Default::default()
        };
        assert!(!matches(&by_action, &got[0].encoded));
        assert!(matches(&by_action, &event(1, 1).1.encoded));
        // A sequence number that is not an integer is no way to hide a run.
        c.execute("UPDATE audit_runs SET last_seq = 3.5", [])
            .unwrap();
        let got = read(&c, &[1; 16], 0, i64::MAX).unwrap();
        assert_eq!((got.len(), got[0].seq, got[0].hash), (1, 1, [0; 32]));
        c.execute("UPDATE audit_runs SET first_seq = 0.5, last_seq = 3", [])
            .unwrap();
        let got = read(&c, &[1; 16], i64::MIN, i64::MAX).unwrap();
        assert_eq!((got.len(), got[0].seq, got[0].hash), (1, 0, [0; 32]));
        assert_eq!(
            prune(&c, &[1; 16], 2).unwrap(),
            3,
            "a malformed run goes whole"
        );
        assert_eq!(rows(&c), []);
    }

    /// Rows of the table events had before runs come through the migration whole.
    #[test]
    fn the_migration_carries_per_event_rows_into_runs() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, &DATA_MIGRATIONS[..DATA_MIGRATIONS.len() - 1]).unwrap();
        let events: Vec<_> = (1..=3).map(|s| event(1, s).1).collect();
        for e in &events {
            c.execute(
                "INSERT INTO audit_events (tenant, seq, encoded, hash, at_ms, principal, action, outcome)
                 VALUES (?1, ?2, ?3, ?4, 0, 'sa:a', 'record.read', 'allowed')",
                params![&[1u8; 16][..], e.seq as i64, e.encoded, &e.hash[..]],
            )
            .unwrap();
        }
        migrate(&mut c, DATA_MIGRATIONS).unwrap();
        assert_eq!(read(&c, &[1; 16], 0, i64::MAX).unwrap(), events);
    }
}
