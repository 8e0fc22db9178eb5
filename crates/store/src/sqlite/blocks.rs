//! The block index of the audit log (SQLite). Its rows (`runs.rs`) carry no index but their
//! key, so that the read path's move writes one B-tree insert per run of events. Off the
//! commit path, the checkpointer thread summarises every [`BLOCK`] events of a tenant in one
//! row of `audit_blocks`: their sequence and time ranges, their principals, and a Bloom filter
//! of their subject pseudonyms. A search by subject, principal or time reads the summaries to
//! skip the blocks that cannot hold a match, then the few events after the last block; every
//! event it returns passes the filter itself, so a summary can only cost time, never a result.

use super::runs;
use crate::{AuditEvent, AuditFilter, Result, StoredEvent};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::BTreeMap;

/// Events per block.
pub(super) const BLOCK: usize = 1024;
/// Blocks built per batch of upkeep (the writer lock is held through a batch).
const BLOCKS_PER_BATCH: usize = 8;
/// A principal holding fewer than one event in this many of a block has them read one by one;
/// otherwise the block is read in order. A lookup reads its event's run (`runs::RUN` events),
/// so one by one costs at most what the block's runs in order cost.
const SPARSE: usize = runs::RUN;
/// Bloom filter bits per subject pseudonym, and probes: about 1% false positives.
const BITS_PER_SUBJECT: usize = 10;
const PROBES: usize = 7;

/// The bit positions of a pseudonym in a filter of `bits` bits. Pseudonyms are HMAC outputs,
/// uniform already: their own bytes serve as the hashes.
fn positions(s: &[u8; 32], bits: usize) -> impl Iterator<Item = usize> + '_ {
    s.chunks_exact(4)
        .take(PROBES)
        .map(move |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize % bits)
}

fn bloom(subjects: &[[u8; 32]]) -> Vec<u8> {
    let bits = (subjects.len() * BITS_PER_SUBJECT)
        .max(64)
        .next_multiple_of(8);
    let mut filter = vec![0u8; bits / 8];
    for s in subjects {
        for p in positions(s, bits) {
            filter[p / 8] |= 1 << (p % 8);
        }
    }
    filter
}

/// Whether a block whose filter is `filter` may hold `subject` (never false when it does).
fn may_hold(filter: &[u8], subject: &[u8; 32]) -> bool {
    let bits = filter.len() * 8;
    bits > 0 && positions(subject, bits).all(|p| filter[p / 8] & (1 << (p % 8)) != 0)
}

/// The distinct principals of a block and where their events are: each principal as a
/// length and its bytes, then a count and as many offsets from the block's first event.
fn principals_blob(principals: &BTreeMap<String, Vec<u16>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (p, offsets) in principals {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
        out.extend(offsets.iter().flat_map(|o| o.to_le_bytes()));
    }
    out
}

/// The offsets of a principal's events in a block: `Some(None)` if it has none there, `None`
/// if the summary does not parse.
fn principal_offsets(mut blob: &[u8], principal: &str) -> Option<Option<Vec<u16>>> {
    fn take<'a>(blob: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = blob.split_at_checked(n)?;
        *blob = rest;
        Some(head)
    }
    let word =
        |b: &[u8]| -> Option<usize> { Some(u32::from_le_bytes(b.try_into().ok()?) as usize) };
    while !blob.is_empty() {
        let len = word(take(&mut blob, 4)?)?;
        let name = take(&mut blob, len)?;
        let count = word(take(&mut blob, 4)?)?;
        let offsets = take(&mut blob, count.checked_mul(2)?)?;
        if name == principal.as_bytes() {
            return Some(Some(
                offsets
                    .chunks_exact(2)
                    .map(|o| u16::from_le_bytes([o[0], o[1]]))
                    .collect(),
            ));
        }
    }
    Some(None)
}

/// Summarises the full blocks after each tenant's mark, up to [`BLOCKS_PER_BATCH`] in one
/// transaction with the new marks. Returns whether more may be left.
pub(super) fn index_audit(c: &mut Connection) -> Result<bool> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let behind: Vec<(Vec<u8>, i64)> = tx
        .prepare_cached(
            "SELECT h.tenant, COALESCE(m.seq, 0) FROM audit_heads h
             LEFT JOIN audit_block_marks m ON m.tenant = h.tenant
             WHERE h.seq >= COALESCE(m.seq, 0) + ?1",
        )?
        .query_map([BLOCK as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut built = 0;
    for (tenant, mark) in behind {
        let mut last = mark;
        while built < BLOCKS_PER_BATCH {
            match build_block(&tx, &tenant, last)? {
                Some(l) => last = l,
                None => break,
            }
            built += 1;
        }
        if last > mark {
            tx.prepare_cached(
                "INSERT INTO audit_block_marks (tenant, seq) VALUES (?1, ?2)
                 ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq",
            )?
            .execute(params![&tenant, last])?;
        }
        if built == BLOCKS_PER_BATCH {
            break;
        }
    }
    tx.commit()?;
    Ok(built == BLOCKS_PER_BATCH)
}

/// Summarises the [`BLOCK`] events after `mark`, if there are that many; the last one's
/// sequence number. An event that does not decode is left out of the summary: no search by
/// subject, principal or time matches it.
fn build_block(c: &Connection, tenant: &[u8], mark: i64) -> Result<Option<i64>> {
    let (mut n, mut first, mut last) = (0, 0i64, 0i64);
    let (mut min_at, mut max_at) = (i64::MAX, i64::MIN);
    let mut principals: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    let mut subjects: Vec<[u8; 32]> = Vec::new();
    let mut gap = false;
    runs::scan(c, tenant, mark, i64::MAX, |seq, encoded, _| {
        let seq = seq as i64;
        if n == 0 {
            first = seq;
        } else if seq != last + 1 {
            // A chain has no gaps but the one retention leaves before its first event: this
            // one was made by hand, and the events stay unsummarised (searches read them all).
            gap = true;
            return Ok(false);
        }
        (n, last) = (n + 1, seq);
        if let Ok(e) = AuditEvent::columns(encoded) {
            (min_at, max_at) = (min_at.min(e.at_ms), max_at.max(e.at_ms));
            principals
                .entry(e.principal.to_owned())
                .or_default()
                .push((n - 1) as u16);
            subjects.extend(
                e.subjects
                    .chunks_exact(32)
                    .filter_map(|s| <[u8; 32]>::try_from(s).ok()),
            );
        }
        Ok(n < BLOCK)
    })?;
    if gap || n < BLOCK {
        return Ok(None);
    }
    c.prepare_cached(
        "INSERT INTO audit_blocks (tenant, first_seq, last_seq, min_at, max_at, principals, subjects)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        tenant,
        first,
        last,
        min_at,
        max_at,
        principals_blob(&principals),
        bloom(&subjects)
    ])?;
    Ok(Some(last))
}

/// After retention deleted a tenant's events up to `seq`: its blocks there go, and its mark
/// moves past them (fewer than a block may follow).
pub(super) fn prune(c: &Connection, tenant: &[u8], seq: i64) -> Result<()> {
    c.execute(
        "DELETE FROM audit_blocks WHERE tenant = ?1 AND last_seq <= ?2",
        params![tenant, seq],
    )?;
    // Never past the head: the events appended later are not summarised yet.
    c.execute(
        "INSERT INTO audit_block_marks (tenant, seq)
         VALUES (?1, MIN(?2, COALESCE((SELECT seq FROM audit_heads WHERE tenant = ?1), 0)))
         ON CONFLICT (tenant) DO UPDATE SET seq = MAX(seq, excluded.seq)",
        params![tenant, seq],
    )?;
    Ok(())
}

/// The stored events of a tenant after `after` that match `f`, in sequence order, at most
/// `limit`: with a subject, principal or time, the blocks that may hold a match and then the
/// rows after the last block; otherwise the rows in order.
pub(super) fn search(
    c: &Connection,
    tenant: &[u8; 16],
    f: &AuditFilter,
    after: u64,
    limit: usize,
) -> Result<Vec<StoredEvent>> {
    let upto = f.to_seq.map_or(i64::MAX, |s| s.min(i64::MAX as u64) as i64);
    let mut from = after.min(i64::MAX as u64) as i64;
    let mut out = Vec::new();
    let selective =
        f.subject.is_some() || f.principal.is_some() || f.from_ms.is_some() || f.to_ms.is_some();
    if selective {
        let mark: i64 = c
            .prepare_cached("SELECT seq FROM audit_block_marks WHERE tenant = ?1")?
            .query_row([&tenant[..]], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        if mark > from {
            // The filters are read only when searched by: they can be large.
            let mut st = c.prepare_cached(
                "SELECT first_seq, last_seq, CASE WHEN ?7 THEN principals END,
                 CASE WHEN ?8 THEN subjects END FROM audit_blocks
                 WHERE tenant = ?1 AND first_seq > ?2 - ?6 AND last_seq > ?2 AND first_seq <= ?3
                 AND (?4 IS NULL OR max_at >= ?4) AND (?5 IS NULL OR min_at < ?5)
                 ORDER BY first_seq",
            )?;
            // A block spans exactly BLOCK sequence numbers (see `build_block`): those that end
            // after `from` start less than BLOCK before it, which the key finds at once.
            let mut q = st.query(params![
                &tenant[..],
                from,
                upto.min(mark),
                f.from_ms,
                f.to_ms,
                BLOCK as i64,
                f.principal.is_some(),
                f.subject.is_some()
            ])?;
            while let Some(r) = q.next()? {
                let (first, last): (i64, i64) = (r.get(0)?, r.get(1)?);
                // A summary that does not parse rules nothing out: the block is read.
                if let Some(s) = &f.subject
                    && let Ok(filter) = r.get_ref(3)?.as_blob()
                    && !filter.is_empty()
                    && !may_hold(filter, s)
                {
                    continue;
                }
                let (lo, hi) = (first.saturating_sub(1).max(from), last.min(upto));
                let offsets = match &f.principal {
                    Some(p) => match r.get_ref(2)?.as_blob().map(|b| principal_offsets(b, p)) {
                        Ok(Some(None)) => continue,
                        Ok(Some(Some(offsets))) => Some(offsets),
                        _ => None,
                    },
                    None => None,
                };
                match offsets {
                    Some(offsets) if offsets.len() * SPARSE < BLOCK => {
                        // A few of the block's events: each through its run.
                        let seqs = offsets.iter().map(|&o| first.saturating_add(i64::from(o)));
                        for s in seqs.filter(|&s| s > lo && s <= hi) {
                            fetch(c, tenant, f, s - 1, s, limit, &mut out)?;
                        }
                    }
                    _ => fetch(c, tenant, f, lo, hi, limit, &mut out)?,
                }
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            from = mark;
        }
    }
    fetch(c, tenant, f, from, upto, limit, &mut out)?;
    Ok(out)
}

/// Appends the events in `(after, upto]` that match `f` to `out`, until it holds `limit`.
fn fetch(
    c: &Connection,
    tenant: &[u8; 16],
    f: &AuditFilter,
    after: i64,
    upto: i64,
    limit: usize,
    out: &mut Vec<StoredEvent>,
) -> Result<()> {
    if out.len() >= limit {
        return Ok(());
    }
    runs::scan(c, tenant, after, upto, |seq, encoded, hash| {
        if runs::matches(f, encoded) {
            out.push(StoredEvent {
                seq,
                encoded: encoded.to_vec(),
                hash: *hash,
            });
        }
        Ok(out.len() < limit)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bloom_never_misses_and_rarely_lies() {
        // Uniform 32-byte values, as pseudonyms are.
        let subject = |i: u64| boveda_audit::link_hash(&[0; 32], i, b"");
        let held: Vec<[u8; 32]> = (0..1000).map(subject).collect();
        let f = bloom(&held);
        assert_eq!(f.len(), 1250);
        assert!(held.iter().all(|s| may_hold(&f, s)));
        let lies = (1000..11_000)
            .filter(|&i| may_hold(&f, &subject(i)))
            .count();
        assert!(lies < 300, "{lies} false positives in 10,000");
        assert!(!may_hold(&[], &held[0]), "an empty filter holds nothing");
    }

    /// Blocks are built only when full, a batch at a time, and a search finds the same events
    /// through blocks, the rows after them, and after retention.
    #[test]
    fn blocks_summarise_full_runs_and_searches_match_the_rows() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrate(&mut c, super::super::DATA_MIGRATIONS).unwrap();
        let tenant = [5u8; 16];
        let n = BLOCK * (BLOCKS_PER_BATCH + 2) + 7;
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| {
                let mut e = AuditEvent::new(
                    tenant,
                    1_000 + i as i64,
                    match (i % 3, i % 100) {
                        (0, _) => "sa:three",
                        (_, 1) => "sa:rare",
                        _ => "sa:other",
                    },
                    "service",
                    "record.read",
                    boveda_audit::Outcome::Allowed,
                    "r",
                );
                e.subjects = vec![boveda_audit::link_hash(&[1; 32], (i % 50) as u64, b"")];
                e
            })
            .collect();
        let tx = c.transaction().unwrap();
        super::super::append_audit_tx(&tx, &events).unwrap();
        tx.commit().unwrap();
        let blocks = |c: &Connection| -> (i64, i64) {
            c.query_row(
                "SELECT count(*), COALESCE(MAX(last_seq), 0) FROM audit_blocks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        let find = |c: &Connection, f: &AuditFilter, after: u64, limit: usize| -> Vec<u64> {
            search(c, &tenant, f, after, limit)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        let filters = [
            AuditFilter {
                subject: Some(boveda_audit::link_hash(&[1; 32], 7, b"")),
                ..Default::default()
            },
            AuditFilter {
                principal: Some("sa:three".into()),
                from_ms: Some(1_000 + 2_000),
                ..Default::default()
            },
            // Few enough in a block to be read one by one.
            AuditFilter {
                principal: Some("sa:rare".into()),
                to_seq: Some(9_000),
                ..Default::default()
            },
            AuditFilter {
                from_ms: Some(1_000 + 5_000),
                to_ms: Some(1_000 + 9_000),
                to_seq: Some(8_500),
                ..Default::default()
            },
        ];
        let want: Vec<Vec<u64>> = filters.iter().map(|f| find(&c, f, 0, usize::MAX)).collect();
        assert_eq!(
            want[0],
            (0..n as u64)
                .filter(|i| i % 50 == 7)
                .map(|i| i + 1)
                .collect::<Vec<_>>()
        );
        assert_eq!(want[1].len(), (2_000..n).filter(|i| i % 3 == 0).count());
        assert_eq!(
            want[2],
            (0..9_000)
                .filter(|i| i % 3 != 0 && i % 100 == 1)
                .map(|i| i + 1)
                .collect::<Vec<_>>()
        );
        assert_eq!(want[3], (5_001..=8_500).collect::<Vec<_>>());

        assert!(
            index_audit(&mut c).unwrap(),
            "one batch does not cover it all"
        );
        assert_eq!(
            blocks(&c),
            (BLOCKS_PER_BATCH as i64, (BLOCK * BLOCKS_PER_BATCH) as i64)
        );
        assert!(!index_audit(&mut c).unwrap() || !index_audit(&mut c).unwrap());
        assert_eq!(
            blocks(&c),
            (
                BLOCKS_PER_BATCH as i64 + 2,
                (BLOCK * (BLOCKS_PER_BATCH + 2)) as i64
            ),
            "the last 7 events wait for a full block"
        );
        for (f, want) in filters.iter().zip(&want) {
            assert_eq!(&find(&c, f, 0, usize::MAX), want);
            // Pages of 10 give the same events.
            let (mut after, mut paged) = (0, Vec::new());
            loop {
                let page = find(&c, f, after, 10);
                let Some(&last) = page.last() else { break };
                (after, paged) = (last, [paged, page].concat());
            }
            assert_eq!(&paged, want);
        }

        // A damaged summary rules nothing out.
        let saved: (Vec<u8>, Vec<u8>) = c
            .query_row(
                "SELECT principals, subjects FROM audit_blocks WHERE first_seq = 1025",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        c.execute(
            "UPDATE audit_blocks SET principals = X'0102', subjects = X'' WHERE first_seq = 1025",
            [],
        )
        .unwrap();
        for (f, want) in filters.iter().zip(&want) {
            assert_eq!(&find(&c, f, 0, usize::MAX), want);
        }
        c.execute(
            "UPDATE audit_blocks SET principals = ?1, subjects = ?2 WHERE first_seq = 1025",
            params![saved.0, saved.1],
        )
        .unwrap();

        // Retention: the blocks it empties go, the mark moves past them.
        let tx = c.transaction().unwrap();
        assert_eq!(runs::prune(&tx, &tenant, 3000).unwrap(), 3000);
        prune(&tx, &tenant, 3000).unwrap();
        tx.commit().unwrap();
        let left: i64 = c
            .query_row("SELECT MIN(first_seq) FROM audit_blocks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 2049, "the block across the cut stays");
        for (f, want) in filters.iter().zip(&want) {
            let kept: Vec<u64> = want.iter().copied().filter(|&s| s > 3000).collect();
            assert_eq!(find(&c, f, 0, usize::MAX), kept);
        }
    }

    /// Retention asked to go past a chain's head leaves the mark at the head: the events
    /// appended later are found.
    #[test]
    fn a_prune_past_the_head_hides_nothing_appended_later() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrate(&mut c, super::super::DATA_MIGRATIONS).unwrap();
        let tenant = [6u8; 16];
        prune(&c, &tenant, 5).unwrap();
        let subject = [7u8; 32];
        let events: Vec<AuditEvent> = (0..10)
            .map(|i| {
                let mut e = AuditEvent::new(
                    tenant,
                    i,
                    "sa:a",
                    "service",
                    "record.read",
                    boveda_audit::Outcome::Allowed,
                    "r",
                );
                e.subjects = vec![subject];
                e
            })
            .collect();
        let tx = c.transaction().unwrap();
        super::super::append_audit_tx(&tx, &events).unwrap();
        tx.commit().unwrap();
        let f = AuditFilter {
            subject: Some(subject),
            ..Default::default()
        };
        let found: Vec<u64> = search(&c, &tenant, &f, 0, 100)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(found, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn principals_match_whole_names_only() {
        let set: BTreeMap<String, Vec<u16>> = [
            ("sa:a".to_owned(), vec![0, 5]),
            ("user:bob".to_owned(), vec![3]),
        ]
        .into();
        let blob = principals_blob(&set);
        assert_eq!(principal_offsets(&blob, "sa:a"), Some(Some(vec![0, 5])));
        assert_eq!(principal_offsets(&blob, "user:bob"), Some(Some(vec![3])));
        assert_eq!(principal_offsets(&blob, "sa:"), Some(None));
        assert_eq!(principal_offsets(&blob, "user:bo"), Some(None));
        assert_eq!(principal_offsets(&[], "sa:a"), Some(None));
        // A damaged summary is not read as an absent principal.
        assert_eq!(principal_offsets(&blob[..blob.len() - 1], "user:bob"), None);
        assert_eq!(principal_offsets(&blob[..3], "nobody"), None);
    }
}
