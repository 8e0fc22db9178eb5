//! The read path's audit events on SQLite: durable in an append-only file next to `data.db`
//! (`data.db-audit`) before the response leaves, one synchronous write per group commit, then
//! moved into `audit_runs` in bulk (`runs.rs`): by the checkpointer thread after appends
//! (at most every second), and before any other write or audit query, so the table is whole
//! wherever it is read.
//! The staging has its own lock: a move holds it only to take the events out (sharing the
//! bytes of their group's records, not copying them) and to drop them once committed, so reads
//! go on appending while the table takes them in.
//!
//! A SQLite transaction per group commit costs a B-tree insert in three trees per event,
//! rewrites the same tail pages at every commit and copies them again at the WAL checkpoint,
//! and makes every reader connection drop its page cache; the file costs one sequential
//! write. The chain is the same: sequence numbers and hashes are assigned here, under the
//! staging's lock, from heads that include the staged events.
//!
//! The file is written from the start again once everything in it is in the table, over the
//! old records rather than after a truncation: overwriting blocks the file already has makes
//! the sync a data write only (about 100 against 150-180 µs here). So after the records of
//! the current run lie older ones, all behind the heads.
//!
//! Writes are whole blocks ([`BLOCK`]), with `O_DIRECT | O_DSYNC` where the file system takes
//! them: the group's records after the bytes of the last block already written (the same
//! bytes again, so a torn write cannot damage them), zeros to the block's end. The data then
//! goes to the disk from our buffer and the write returns once it is durable, without the
//! page cache's writeback and a separate `fdatasync`: on this machine's virtual disk a
//! commit of 10 KB took about 100-135 µs and 28-56 µs of CPU, against 160-180 µs and
//! 77-84 µs of CPU buffered with `fdatasync`. Where `O_DIRECT` is refused (tmpfs), the same
//! writes go through the page cache, still synchronous (`O_DSYNC`).
//!
//! On open, events the file holds past the table's heads are moved in. A record counts only
//! if it extends its tenant's chain (the next sequence number, and its hash links): reading
//! stops at a torn record, whose append never returned, and skips the older ones.

use super::{chain_head, insert_checkpoint, runs, set_head};
use crate::{AuditEvent, Checkpoint, Error, Result, StoredEvent};
use rusqlite::{Connection, TransactionBehavior};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Records in the file past which an append first helps move the staged events into the
/// table, so that the file starts over (backpressure when appends outrun the checkpointer
/// thread, as a bulk load does). The records, not the staged events: the file starts over
/// only once none is staged, and moves in batches can keep a few staged for a long time.
pub(super) const MOST: usize = 65_536;
/// Bytes of a record before its encoded event: tenant, sequence number, hash, length.
const HEADER: usize = 16 + 8 + 32 + 4;
/// The unit of the file's writes, and the alignment of their offset, length and buffer
/// (a multiple of any disk's logical block size, as `O_DIRECT` requires).
const BLOCK: usize = 4096;

/// What a move takes in: staged events, and the checkpoints they complete.
pub(super) type Pending = (Vec<Staged>, Vec<Checkpoint>);

/// A staged event: its place in its chain, and its encoding in the records of the group
/// commit that wrote it (shared by the group's events, so that staging an event and taking
/// it out for a move copy no bytes).
#[derive(Clone)]
pub(super) struct Staged {
    pub(super) tenant: [u8; 16],
    pub(super) seq: u64,
    pub(super) hash: [u8; 32],
    records: Arc<Vec<u8>>,
    at: std::ops::Range<usize>,
}

impl Staged {
    /// An event read back from the file (a restart's recovery): its own copy of the bytes.
    fn own(tenant: [u8; 16], e: &StoredEvent) -> Self {
        Self {
            tenant,
            seq: e.seq,
            hash: e.hash,
            records: Arc::new(e.encoded.clone()),
            at: 0..e.encoded.len(),
        }
    }

    /// The event's encoding.
    pub(super) fn encoded(&self) -> &[u8] {
        self.records.get(self.at.clone()).unwrap_or_default()
    }
}

/// The staged events and the heads of their chains.
pub(super) struct Staging {
    path: PathBuf,
    /// Reads chain heads from the table. When the staging is locked no write is under way
    /// (a write holds the lock from its move through its commit), and a tenant missing from
    /// `heads` has no staged events for a move to change: the committed head is current.
    conn: Connection,
    /// Chain heads known to be current: tenants with staged events, and those looked up since
    /// the table last changed under a write.
    heads: HashMap<[u8; 16], (u64, [u8; 32])>,
    staged: std::collections::VecDeque<Staged>,
    /// Checkpoints of staged events, inserted by the move that takes in the last event each
    /// covers: a checkpoint never gets ahead of the table, and making one never waits for a
    /// move. One made just before a crash is lost (the next one covers its events).
    checkpoints: Vec<Checkpoint>,
    /// Where the next record goes: the end of the staged ones.
    offset: u64,
    /// The bytes of the file from the start of `offset`'s block to `offset`: written again
    /// before the next records, as writes are whole blocks.
    tail: Vec<u8>,
    /// Where the blocks of a write are put together, aligned to [`BLOCK`] (reused).
    scratch: Vec<u8>,
    /// Records written since the file started over.
    written: usize,
    /// The file, open and locked for as long as the store is open (another process, or store,
    /// on the same `data.db` would extend the chains from heads that lack these staged
    /// events), and written through; the one at the path again if it is removed.
    file: std::fs::File,
    /// The file lacks staged events (replaced or cut short): the next write puts them all
    /// back first, from the start.
    rewrite: bool,
}

/// The staging file of a database file.
pub(super) fn path_of(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-audit");
    PathBuf::from(p)
}

/// The staging file opened for writing with `flags`, made if missing, never truncated.
fn open_file(path: &Path, flags: i32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(flags)
        .open(path)
}

/// The staging file opened for synchronous writes (`O_DSYNC`), direct (`O_DIRECT`) where the
/// file system allows it. `O_DSYNC`, not `O_SYNC` (which rustix's `DSYNC` is on Linux): a
/// write must not also wait for the inode's new modification time.
fn open_sync(path: &Path) -> std::io::Result<std::fs::File> {
    match open_file(path, libc::O_DSYNC | libc::O_DIRECT) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open_file(path, libc::O_DSYNC),
        other => other,
    }
}

/// Turns `O_DIRECT` off for `file` (its writes go through the page cache, still synchronous);
/// whether it was on.
fn undirect(file: &std::fs::File) -> std::io::Result<bool> {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let flags = fcntl_getfl(file)?;
    if !flags.contains(OFlags::DIRECT) {
        return Ok(false);
    }
    fcntl_setfl(file, flags - OFlags::DIRECT)?;
    Ok(true)
}

/// Writes `parts` one after the other at `offset` (a block's start), with zeros to the end
/// of the last block, from a buffer aligned to [`BLOCK`] (`scratch`, reused); returns the
/// blocks written. A file system that refuses a direct write gets it, and the later ones,
/// through the page cache.
fn write_blocks<'a>(
    file: &std::fs::File,
    scratch: &'a mut Vec<u8>,
    parts: &[&[u8]],
    offset: u64,
) -> std::io::Result<&'a [u8]> {
    let len = parts
        .iter()
        .map(|p| p.len())
        .sum::<usize>()
        .next_multiple_of(BLOCK);
    scratch.clear();
    scratch.resize(len + BLOCK, 0);
    let start = scratch.as_ptr().align_offset(BLOCK).min(BLOCK);
    let aligned = &mut scratch[start..start + len];
    let mut at = 0;
    for p in parts {
        aligned[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    match file.write_all_at(aligned, offset) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            if !undirect(file)? {
                return Err(e);
            }
            file.write_all_at(aligned, offset)?;
        }
        other => other?,
    }
    Ok(aligned)
}

/// The staging file opened for writing and locked: one store owns it.
fn lock_file(path: &Path) -> Result<std::fs::File> {
    let f = open_sync(path)
        .map_err(|e| Error::Config(format!("cannot open {}: {e}", path.display())))?;
    f.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => Error::Config(format!(
            "{} is in use by another boveda process (the audit staging file of its database is locked); one server owns a SQLite data directory",
            path.display()
        )),
        std::fs::TryLockError::Error(e) => {
            Error::Config(format!("cannot lock {}: {e}", path.display()))
        }
    })?;
    Ok(f)
}

fn io(path: &Path, e: &std::io::Error) -> Error {
    Error::Unavailable(format!("audit staging file {}: {e}", path.display()))
}

/// Appends the record of an event to `buf`; returns where its encoding lies in `buf`.
fn record(
    buf: &mut Vec<u8>,
    tenant: &[u8; 16],
    seq: u64,
    hash: &[u8; 32],
    encoded: &[u8],
) -> std::ops::Range<usize> {
    buf.extend_from_slice(tenant);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(hash);
    buf.extend_from_slice(
        &u32::try_from(encoded.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    let at = buf.len();
    buf.extend_from_slice(encoded);
    at..buf.len()
}

/// The records of a staging file past their chains' heads in the table (`head_of`), in
/// order: each must extend its chain (the next sequence number, and its hash links); reading
/// stops at one that does not, and skips those behind (moved in already). What a restart
/// moves in, and what the offline verifier reads of a copy.
pub(super) fn recoverable(
    path: &Path,
    mut head_of: impl FnMut(&[u8; 16]) -> Result<(u64, [u8; 32])>,
) -> Result<Vec<([u8; 16], StoredEvent)>> {
    let mut heads: HashMap<[u8; 16], (u64, [u8; 32])> = HashMap::new();
    let mut out = Vec::new();
    for (tenant, e) in read(path)? {
        let head = match heads.get(&tenant) {
            Some(h) => *h,
            None => head_of(&tenant)?,
        };
        if e.seq <= head.0 {
            continue;
        }
        if e.seq != head.0 + 1 || boveda_audit::link_hash(&head.1, e.seq, &e.encoded) != e.hash {
            break;
        }
        heads.insert(tenant, (e.seq, e.hash));
        out.push((tenant, e));
    }
    Ok(out)
}

/// The whole records of a staging file, in order, up to the first torn one or the zeros of
/// a hole. A file that does not exist holds none.
fn read(path: &Path) -> Result<Vec<([u8; 16], StoredEvent)>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path, &e)),
    };
    let mut out = Vec::new();
    let mut rest = bytes.as_slice();
    while let Some((head, tail)) = rest.split_first_chunk::<HEADER>() {
        let (tenant, h) = head.split_first_chunk::<16>().unwrap_or((&[0; 16], &[]));
        let (seq, h) = h.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
        let (hash, h) = h.split_first_chunk::<32>().unwrap_or((&[0; 32], &[]));
        let len = h.first_chunk::<4>().map_or(0, |l| u32::from_le_bytes(*l)) as usize;
        let Some((encoded, tail)) = tail.split_at_checked(len) else {
            break;
        };
        if *seq == [0; 8] {
            break;
        }
        out.push((
            *tenant,
            StoredEvent {
                seq: u64::from_le_bytes(*seq),
                encoded: encoded.to_vec(),
                hash: *hash,
            },
        ));
        rest = tail;
    }
    Ok(out)
}

/// Inserts staged events as runs, moves their chains' heads and inserts the
/// checkpoints they complete, in one transaction.
pub(super) fn move_in(conn: &mut Connection, (rows, checkpoints): &Pending) -> Result<()> {
    if rows.is_empty() && checkpoints.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    runs::insert(
        &tx,
        rows.iter()
            .map(|e| (&e.tenant, e.seq, e.encoded(), &e.hash)),
    )?;
    let mut last: HashMap<[u8; 16], (u64, [u8; 32])> = HashMap::new();
    for e in rows {
        last.insert(e.tenant, (e.seq, e.hash));
    }
    for (tenant, (seq, hash)) in last {
        set_head(&tx, &tenant, seq, &hash)?;
    }
    for cp in checkpoints {
        insert_checkpoint(&tx, cp)?;
    }
    tx.commit()?;
    Ok(())
}

impl Staging {
    /// Opens the staging of `db`'s writer connection, moving in what a previous run left.
    pub(super) fn open(db: &Path, writer: &mut Connection) -> Result<Self> {
        let path = path_of(db);
        let file = lock_file(&path)?;
        let conn = Connection::open_with_flags(
            db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut s = Self {
            path,
            conn,
            heads: HashMap::new(),
            staged: std::collections::VecDeque::new(),
            checkpoints: Vec::new(),
            offset: 0,
            tail: Vec::new(),
            scratch: Vec::new(),
            written: 0,
            file,
            rewrite: false,
        };
        for (tenant, e) in recoverable(&s.path, |t| chain_head(&s.conn, t))? {
            s.heads.insert(tenant, (e.seq, e.hash));
            s.staged.push_back(Staged::own(tenant, &e));
        }
        s.flush(writer, usize::MAX)?;
        Ok(s)
    }

    fn head(&mut self, tenant: &[u8; 16]) -> Result<(u64, [u8; 32])> {
        if let Some(h) = self.heads.get(tenant) {
            return Ok(*h);
        }
        let h = chain_head(&self.conn, tenant)?;
        self.heads.insert(*tenant, h);
        Ok(h)
    }

    /// Chains the events and makes them durable in the file; nothing changes if that fails.
    pub(super) fn append(&mut self, events: &[AuditEvent]) -> Result<Vec<StoredEvent>> {
        let mut heads: HashMap<[u8; 16], (u64, [u8; 32])> = HashMap::new();
        let mut buf = Vec::with_capacity(events.len() * 512);
        let mut out = Vec::with_capacity(events.len());
        let mut at = Vec::with_capacity(events.len());
        for e in events {
            let head = match heads.get(&e.tenant) {
                Some(h) => *h,
                None => self.head(&e.tenant)?,
            };
            let seq = head.0 + 1;
            let encoded = e.encode_as(seq);
            let hash = boveda_audit::link_hash(&head.1, seq, &encoded);
            heads.insert(e.tenant, (seq, hash));
            at.push(record(&mut buf, &e.tenant, seq, &hash, &encoded));
            out.push(StoredEvent { seq, encoded, hash });
        }
        self.check_file()?;
        let rewrite = self.rewrite;
        // What goes before this group in its first block: the staged events again, from the
        // start, or the bytes already written there.
        let before = if rewrite {
            let mut again = Vec::new();
            for e in &self.staged {
                record(&mut again, &e.tenant, e.seq, &e.hash, e.encoded());
            }
            again
        } else {
            std::mem::take(&mut self.tail)
        };
        let start = if rewrite {
            0
        } else {
            self.offset - before.len() as u64
        };
        let end = before.len() + buf.len();
        match write_blocks(&self.file, &mut self.scratch, &[&before, &buf], start) {
            // The last block's bytes, for the next write.
            Ok(blocks) => self.tail = blocks[end - end % BLOCK..end].to_vec(),
            Err(e) => {
                if !rewrite {
                    self.tail = before;
                }
                return Err(io(&self.path, &e));
            }
        }
        if rewrite {
            self.rewrite = false;
            self.written = self.staged.len();
        }
        self.offset = start + end as u64;
        self.written += events.len();
        self.heads.extend(heads);
        let records = Arc::new(buf);
        self.staged
            .extend(events.iter().zip(&out).zip(at).map(|((e, s), at)| Staged {
                tenant: e.tenant,
                seq: s.seq,
                hash: s.hash,
                records: Arc::clone(&records),
                at,
            }));
        Ok(out)
    }

    /// Notices a file removed, renamed away, replaced or cut short under the server, rather
    /// than writing to it unseen: an empty file, locked, takes the path's place if the path no
    /// longer names the file, and either way the next write puts the staged events back.
    /// Only link counts, sizes and inode numbers are asked for: asking for timestamps (as
    /// `metadata()` does) makes the next write change them at a fine grain, which costs the
    /// sync a journal commit (about 45 µs of 90 here).
    fn check_file(&mut self) -> Result<()> {
        use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
        let id = |s: &rustix::fs::Statx| (s.stx_ino, s.stx_dev_major, s.stx_dev_minor);
        let ours = statx(
            &self.file,
            "",
            AtFlags::EMPTY_PATH,
            StatxFlags::NLINK | StatxFlags::SIZE | StatxFlags::INO,
        )
        .map_err(|e| io(&self.path, &e.into()))?;
        let named = match statx(CWD, &self.path, AtFlags::empty(), StatxFlags::INO) {
            Ok(at_path) => ours.stx_nlink > 0 && id(&at_path) == id(&ours),
            Err(rustix::io::Errno::NOENT) => false,
            Err(e) => return Err(io(&self.path, &e.into())),
        };
        if !named {
            // Whatever is at the path now holds none of the staged events: it starts empty,
            // and becomes the file only once it is.
            let f = lock_file(&self.path).map_err(|e| match e {
                Error::Config(m) => Error::Unavailable(m),
                e => e,
            })?;
            f.set_len(0).map_err(|e| io(&self.path, &e))?;
            // Its name in the directory must last too.
            let dir = match self.path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io(&self.path, &e))?;
            self.file = f;
            self.tail.clear();
            self.rewrite = true;
        } else if ours.stx_size < self.offset {
            self.rewrite = true;
        }
        Ok(())
    }

    /// Moves up to `most` staged events into the table in one transaction, holding the
    /// staging throughout (a write's move). Returns whether some are left.
    pub(super) fn flush(&mut self, conn: &mut Connection, most: usize) -> Result<bool> {
        let pending = self.pending(most);
        move_in(conn, &pending)?;
        Ok(self.moved(&pending))
    }

    /// The first `most` staged events (their bytes shared, not copied), and copies of the
    /// checkpoints no later staged event is behind, for a move.
    pub(super) fn pending(&self, most: usize) -> Pending {
        let rows: Vec<_> = self.staged.iter().take(most).cloned().collect();
        let left = || self.staged.iter().skip(rows.len());
        let checkpoints = self
            .checkpoints
            .iter()
            .filter(|cp| !left().any(|e| e.tenant == cp.tenant && e.seq <= cp.seq))
            .cloned()
            .collect();
        (rows, checkpoints)
    }

    /// Keeps a checkpoint for the move that completes its events if some are staged; returns
    /// whether it did (otherwise its events are all in the table).
    pub(super) fn defer(&mut self, cp: &Checkpoint) -> bool {
        let staged = self
            .staged
            .iter()
            .any(|e| e.tenant == cp.tenant && e.seq <= cp.seq);
        if staged {
            self.checkpoints.push(cp.clone());
        }
        staged
    }

    /// Drops what a move committed; the file starts over once no event is left. Returns
    /// whether some are left.
    pub(super) fn moved(&mut self, (rows, checkpoints): &Pending) -> bool {
        self.checkpoints.retain(|c| {
            !checkpoints
                .iter()
                .any(|d| (d.tenant, d.seq) == (c.tenant, c.seq))
        });
        let n = rows.len();
        self.staged.drain(..n.min(self.staged.len()));
        if self.staged.is_empty() {
            // Everything in the file is in the table, durably: the next group overwrites it.
            self.offset = 0;
            self.tail.clear();
            self.written = 0;
        }
        !self.staged.is_empty()
    }

    /// Whether no event waits for its move.
    pub(super) fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// Whether appends should first help move the staged events in ([`MOST`]).
    pub(super) fn full(&self) -> bool {
        self.written >= MOST
    }

    /// After a write, which may have appended to the chains in the table itself.
    pub(super) fn forget_heads(&mut self) {
        if self.staged.is_empty() {
            self.heads.clear();
        }
    }

    /// Whether the staging file can be written now.
    pub(super) fn probe(&self) -> Result<()> {
        open_file(&self.path, 0)
            .map(drop)
            .map_err(|e| io(&self.path, &e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn event(tenant: u8) -> AuditEvent {
        AuditEvent::new(
            [tenant; 16],
            0,
            "p",
            "service",
            "record.read",
            boveda_audit::Outcome::Allowed,
            "r",
        )
    }

    /// A migrated `data.db` in a new directory (kept alive by the first value).
    fn database() -> (tempfile::TempDir, PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data.db");
        let mut c = Connection::open(&db).unwrap();
        super::super::migrate(&mut c, super::super::DATA_MIGRATIONS).unwrap();
        (dir, db, c)
    }

    /// Every stored event, by tenant and sequence number.
    fn events(c: &Connection) -> Vec<(Vec<u8>, StoredEvent)> {
        let tenants: Vec<Vec<u8>> = c
            .prepare("SELECT DISTINCT tenant FROM audit_runs ORDER BY tenant")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        tenants
            .into_iter()
            .flat_map(|t| {
                let events = runs::read(c, &t, 0, i64::MAX).unwrap();
                events.into_iter().map(move |e| (t.clone(), e))
            })
            .collect()
    }

    fn table(c: &Connection) -> Vec<(Vec<u8>, i64)> {
        events(c)
            .into_iter()
            .map(|(t, e)| (t, e.seq as i64))
            .collect()
    }

    /// Staged events survive a crash (the staging dropped without a move), a torn record at
    /// the tail is left out, and records of an earlier run behind the new ones are skipped.
    #[test]
    fn staged_events_are_recovered_after_a_crash_and_never_twice() {
        let (_dir, db, mut c) = database();
        let mut s = Staging::open(&db, &mut c).unwrap();
        let out = s.append(&[event(1), event(2), event(1)]).unwrap();
        assert_eq!(out.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 1, 2]);
        s.append(&[event(1)]).unwrap();
        assert!(table(&c).is_empty(), "staged, not yet in the table");
        drop(s); // a crash: nothing moved
        // A torn record right after the last whole one (the block's zeros follow it).
        let end: usize = read(&path_of(&db))
            .unwrap()
            .iter()
            .map(|(_, e)| HEADER + e.encoded.len())
            .sum();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path_of(&db))
            .unwrap();
        let mut torn = Vec::new();
        record(
            &mut torn,
            &[1; 16],
            out[0].seq,
            &out[0].hash,
            &out[0].encoded,
        );
        f.write_all_at(&torn[..torn.len() - 3], end as u64).unwrap();
        drop(f);

        let mut s = Staging::open(&db, &mut c).unwrap();
        let one = vec![1u8; 16];
        let two = vec![2u8; 16];
        assert_eq!(
            table(&c),
            vec![
                (one.clone(), 1),
                (one.clone(), 2),
                (one.clone(), 3),
                (two.clone(), 1)
            ]
        );
        assert_eq!(chain_head(&c, &[1; 16]).unwrap().0, 3);
        // The file starts over, over the old records.
        let next = s.append(&[event(2)]).unwrap();
        assert_eq!(next[0].seq, 2);
        let on_disk = read(&path_of(&db)).unwrap();
        assert_eq!((on_disk[0].0, on_disk[0].1.seq), ([2; 16], 2));
        drop(s);
        let _s = Staging::open(&db, &mut c).unwrap();
        assert_eq!(
            table(&c),
            vec![
                (one.clone(), 1),
                (one.clone(), 2),
                (one, 3),
                (two.clone(), 1),
                (two, 2)
            ]
        );
        let head = chain_head(&c, &[2; 16]).unwrap();
        assert_eq!(head, (2, next[0].hash));
    }

    /// The offline verifier's reader of a copy sees the staged events after the table's, and
    /// stops at one that does not extend the chain.
    #[test]
    fn a_copy_is_read_with_its_staged_events() {
        let (_dir, db, mut c) = database();
        let mut s = Staging::open(&db, &mut c).unwrap();
        s.append(&[event(1), event(2)]).unwrap();
        s.flush(&mut c, usize::MAX).unwrap();
        let staged = s.append(&[event(1), event(1), event(1)]).unwrap();
        let tenant = crate::TenantId::from_bytes([1; 16]);
        let (events, _) = super::super::read_audit_file(&db, tenant).unwrap();
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(events[3].hash, staged[2].hash);
        let mut bytes = std::fs::read(path_of(&db)).unwrap();
        bytes[HEADER + 2] ^= 1; // the first staged event's encoding
        std::fs::write(path_of(&db), &bytes).unwrap();
        let (events, _) = super::super::read_audit_file(&db, tenant).unwrap();
        assert_eq!(events.len(), 1, "only the table's event");
    }

    /// A second opener of the same file is refused while the first holds it.
    #[test]
    fn one_store_owns_the_staging_file() {
        let (_dir, db, mut c) = database();
        let first = Staging::open(&db, &mut c).unwrap();
        let Err(Error::Config(m)) = Staging::open(&db, &mut c) else {
            panic!("a second staging of the same file opened")
        };
        assert!(m.contains("in use by another boveda process"), "{m}");
        drop(first);
        Staging::open(&db, &mut c).unwrap();
    }

    /// Stages events of tenants 1 and `second`, lets `disturb` act on the staging file (given
    /// the database's directory), stages one more event of tenant 1, then crashes and opens
    /// again: the records in the file before the crash, and the table after.
    fn crash_after(
        second: u8,
        disturb: impl FnOnce(&Path, &Path),
    ) -> (Vec<u64>, Vec<(Vec<u8>, i64)>) {
        let (dir, db, mut c) = database();
        let mut s = Staging::open(&db, &mut c).unwrap();
        s.append(&[event(1), event(second)]).unwrap();
        disturb(&path_of(&db), dir.path());
        s.append(&[event(1)]).unwrap();
        let on_disk = read(&path_of(&db))
            .unwrap()
            .iter()
            .map(|(_, e)| e.seq)
            .collect();
        drop(s); // a crash
        Staging::open(&db, &mut c).unwrap();
        (on_disk, table(&c))
    }

    /// A staging file removed under the server is written again whole at the next append, so
    /// a crash after it loses no staged event.
    #[test]
    fn a_replaced_file_gets_the_staged_events_again() {
        let (on_disk, table) = crash_after(1, |file, _| std::fs::remove_file(file).unwrap());
        assert_eq!(on_disk, vec![1, 2, 3]);
        assert_eq!(
            table,
            vec![(vec![1u8; 16], 1), (vec![1u8; 16], 2), (vec![1u8; 16], 3)]
        );
    }

    /// Events staged while the file was written again whole (and those staged before) move
    /// into the table with the bytes their appends returned.
    #[test]
    fn events_staged_through_a_rewrite_move_in_with_their_encodings() {
        let (_dir, db, mut c) = database();
        let mut s = Staging::open(&db, &mut c).unwrap();
        let mut stored = s.append(&[event(1), event(2)]).unwrap();
        std::fs::remove_file(path_of(&db)).unwrap();
        stored.extend(s.append(&[event(1), event(2), event(1)]).unwrap());
        s.flush(&mut c, usize::MAX).unwrap();
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = events(&c)
            .into_iter()
            .map(|(_, e)| (e.seq as i64, e.encoded, e.hash.to_vec()))
            .collect();
        let mut want: Vec<(i64, Vec<u8>, Vec<u8>)> = stored
            .iter()
            .map(|e| (e.seq as i64, e.encoded.clone(), e.hash.to_vec()))
            .collect();
        let mut got = rows;
        want.sort();
        got.sort();
        assert_eq!(got.len(), 5);
        assert_eq!(got, want);
    }

    /// A staging file renamed away (its link count stays 1) is noticed as well: the path gets
    /// a new file with every staged event.
    #[test]
    fn a_file_renamed_away_is_replaced_at_the_path() {
        let (_, table) = crash_after(1, |file, dir| {
            std::fs::rename(file, dir.join("elsewhere")).unwrap();
        });
        assert_eq!(
            table,
            vec![(vec![1u8; 16], 1), (vec![1u8; 16], 2), (vec![1u8; 16], 3)]
        );
    }

    /// A staging file cut short under the server gets the staged events again too.
    #[test]
    fn a_truncated_file_gets_the_staged_events_again() {
        let (_, table) = crash_after(2, |file, _| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(file)
                .unwrap()
                .set_len(10)
                .unwrap();
        });
        assert_eq!(
            table,
            vec![(vec![1u8; 16], 1), (vec![1u8; 16], 2), (vec![2u8; 16], 1)]
        );
    }

    /// A checkpoint of staged events waits for the move that completes them, goes in with
    /// it, and never before; one of events already in the table is not kept.
    #[test]
    fn checkpoints_go_in_with_the_move_that_completes_their_events() {
        let (_dir, db, mut c) = database();
        let mut s = Staging::open(&db, &mut c).unwrap();
        let key = boveda_crypto::sign::SigningKey::generate().unwrap();
        let out = s.append(&[event(1), event(2), event(1)]).unwrap();
        let cp = |t: u8, e: &StoredEvent| Checkpoint::sign([t; 16], e.seq, e.hash, 0, &key);
        let (first, second) = (cp(1, &out[0]), cp(1, &out[2]));
        assert!(s.defer(&first) && s.defer(&second));
        let stored = |c: &Connection| -> Vec<i64> {
            c.prepare("SELECT seq FROM audit_checkpoints ORDER BY seq")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        s.flush(&mut c, 2).unwrap(); // tenant 1's first event and tenant 2's
        assert_eq!(stored(&c), vec![1], "the second waits for its event");
        s.flush(&mut c, 2).unwrap();
        assert_eq!(stored(&c), vec![1, 2]);
        assert!(!s.defer(&second), "its events are in the table");
        assert!(s.checkpoints.is_empty());
    }

    /// Many small groups, each written as whole blocks after the bytes of the last block
    /// already written, directly or (where `O_DIRECT` is refused) through the page cache: a
    /// crash loses none of them, and records of an earlier run behind a new one (whose last
    /// block the zeros end) are not taken in again.
    #[test]
    fn groups_across_blocks_are_recovered_whole_with_direct_writes_or_without() {
        for direct in [true, false] {
            let (_dir, db, mut c) = database();
            let mut s = Staging::open(&db, &mut c).unwrap();
            if !direct {
                undirect(&s.file).unwrap();
            }
            let mut want = Vec::new();
            for i in 0..120u8 {
                let group: Vec<AuditEvent> = (0..1 + i % 3).map(|j| event(1 + j % 2)).collect();
                want.extend(s.append(&group).unwrap().iter().map(|e| (e.seq, e.hash)));
            }
            assert!(s.offset > 4 * BLOCK as u64, "the groups span blocks");
            assert_eq!(s.offset % BLOCK as u64, s.tail.len() as u64);
            let len = std::fs::metadata(path_of(&db)).unwrap().len();
            assert_eq!(len % BLOCK as u64, 0, "whole blocks");
            drop(s); // a crash
            let mut s = Staging::open(&db, &mut c).unwrap();
            let mut got: Vec<(u64, [u8; 32])> = events(&c)
                .into_iter()
                .map(|(_, e)| (e.seq, e.hash))
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "direct: {direct}");
            // The next run starts over at the first block; a crash takes in its one event.
            let next = s.append(&[event(1)]).unwrap();
            drop(s);
            Staging::open(&db, &mut c).unwrap();
            assert_eq!(table(&c).len(), want.len() + 1, "direct: {direct}");
            assert_eq!(
                chain_head(&c, &[1; 16]).unwrap(),
                (next[0].seq, next[0].hash)
            );
        }
    }

    /// A staged record whose hash does not link to its chain stops recovery there.
    #[test]
    fn a_record_that_does_not_link_is_not_recovered() {
        let (_dir, db, mut c) = database();
        let mut s = Staging::open(&db, &mut c).unwrap();
        s.append(&[event(1), event(1), event(1)]).unwrap();
        drop(s);
        let mut bytes = std::fs::read(path_of(&db)).unwrap();
        let second = read(&path_of(&db)).unwrap()[0].1.encoded.len() + HEADER;
        bytes[second + HEADER + 5] ^= 1; // the second event's encoding
        std::fs::write(path_of(&db), &bytes).unwrap();
        Staging::open(&db, &mut c).unwrap();
        assert_eq!(table(&c), vec![(vec![1u8; 16], 1)]);
    }
}
