//! The embedded SQLite backend: two files in the data directory, `data.db` (tenants,
//! principals, schemas, sealed records, blind indexes) and `keys.db` (wrapped KEKs and DEKs).
//!
//! WAL mode with `synchronous=FULL`, so an acknowledged write survives `kill -9` and power loss;
//! `secure_delete` so destroyed keys are overwritten in the file, and a WAL checkpoint after an
//! erasure so they do not linger in the journal either. One writer connection per file (SQLite
//! has one writer anyway) and a few reader connections; calls run on the blocking pool.

use crate::{
    AlertId, AlertRow, AuditEvent, AuditFilter, Checkpoint, CollectionRow, Error, IncidentId,
    IncidentRow, IndexEntry, KeyState, NoticeRow, PolicyRow, PrincipalId, PrincipalRow, RecordId,
    RecordRow, Result, RetireOutcome, SessionRow, Store, StoredEvent, SubjectId, SubjectKeyRow,
    TenantId, TenantKeyRow, TenantRow, TokenRow, UserRow,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

mod blocks;
pub mod runs;
mod staging;

const DATA_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE tenants (
    id BLOB PRIMARY KEY, name TEXT NOT NULL UNIQUE, settings TEXT NOT NULL,
    wrapped_index_key BLOB NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE principals (
    id BLOB PRIMARY KEY, tenant BLOB, kind TEXT NOT NULL, name TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE, grants TEXT NOT NULL, created_at INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0);
CREATE INDEX principals_tenant ON principals (tenant);
CREATE TABLE collections (
    tenant BLOB NOT NULL, name TEXT NOT NULL, schema TEXT NOT NULL, version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, PRIMARY KEY (tenant, name)) WITHOUT ROWID;
CREATE TABLE records (
    tenant BLOB NOT NULL, collection TEXT NOT NULL, id BLOB NOT NULL, subject BLOB NOT NULL,
    sealed BLOB NOT NULL, labels TEXT NOT NULL, version INTEGER NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, collection, id));
CREATE INDEX records_subject ON records (tenant, subject);
CREATE TABLE blind_index (
    tenant BLOB NOT NULL, collection TEXT NOT NULL, field TEXT NOT NULL, digest BLOB NOT NULL,
    record BLOB NOT NULL, PRIMARY KEY (tenant, collection, field, digest, record)) WITHOUT ROWID;
CREATE INDEX blind_index_record ON blind_index (tenant, collection, record);
"#,
    r#"
CREATE TABLE users (
    tenant BLOB NOT NULL, id BLOB NOT NULL, login_digest BLOB NOT NULL, state TEXT NOT NULL,
    sealed BLOB NOT NULL, version INTEGER NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE UNIQUE INDEX users_login ON users (tenant, login_digest);
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY, tenant BLOB NOT NULL, user_id BLOB NOT NULL,
    created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    mfa_at INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX sessions_user ON sessions (tenant, user_id);
CREATE TABLE policies (
    tenant BLOB NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL,
    created_by TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (tenant, version));
CREATE TABLE subject_access (
    tenant BLOB NOT NULL, principal BLOB NOT NULL, day INTEGER NOT NULL, subject BLOB NOT NULL,
    PRIMARY KEY (tenant, principal, day, subject)) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE audit_events (
    tenant BLOB NOT NULL, seq INTEGER NOT NULL, encoded BLOB NOT NULL, hash BLOB NOT NULL,
    at_ms INTEGER NOT NULL, principal TEXT NOT NULL, action TEXT NOT NULL, collection TEXT,
    purpose TEXT, outcome TEXT NOT NULL, PRIMARY KEY (tenant, seq)) WITHOUT ROWID;
CREATE INDEX audit_events_time ON audit_events (tenant, at_ms);
CREATE TABLE audit_subjects (
    tenant BLOB NOT NULL, subject BLOB NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (tenant, subject, seq)) WITHOUT ROWID;
CREATE TABLE audit_heads (tenant BLOB PRIMARY KEY, seq INTEGER NOT NULL, hash BLOB NOT NULL);
CREATE TABLE audit_checkpoints (
    tenant BLOB NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL, at_ms INTEGER NOT NULL,
    key_id BLOB NOT NULL, signature BLOB NOT NULL, PRIMARY KEY (tenant, seq)) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE alerts (
    tenant BLOB NOT NULL, id BLOB NOT NULL, kind TEXT NOT NULL, principal TEXT NOT NULL,
    at_ms INTEGER NOT NULL, events TEXT NOT NULL, detail TEXT NOT NULL, state TEXT NOT NULL,
    updated_at INTEGER NOT NULL, PRIMARY KEY (tenant, id));
"#,
    r#"
CREATE TABLE incidents (
    tenant BLOB NOT NULL, id BLOB NOT NULL, doc TEXT NOT NULL, version INTEGER NOT NULL,
    created_at INTEGER NOT NULL, PRIMARY KEY (tenant, id));
"#,
    r#"
CREATE TABLE notices (
    tenant BLOB NOT NULL, incident BLOB NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
    version INTEGER NOT NULL, PRIMARY KEY (tenant, incident, key)) WITHOUT ROWID;
"#,
    r#"
CREATE INDEX audit_events_principal ON audit_events (tenant, principal, seq);
"#,
    r#"
ALTER TABLE notices ADD COLUMN due_ms INTEGER;
UPDATE notices SET due_ms = 0 WHERE json_extract(doc, '$.status') IN ('queued', 'sending', 'fell_back');
CREATE INDEX notices_due ON notices (tenant, incident, due_ms) WHERE due_ms IS NOT NULL;
"#,
    r#"
CREATE TABLE tokens (
    tenant BLOB NOT NULL, scope TEXT NOT NULL, token TEXT NOT NULL, subject BLOB NOT NULL,
    sealed BLOB NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, scope, token, subject)) WITHOUT ROWID;
CREATE INDEX tokens_subject ON tokens (tenant, subject);
"#,
    // The subject index of the audit log is built off the commit path: an append stores the
    // event's subject pseudonyms in its row, and the checkpointer thread moves them into
    // audit_subjects in sorted batches, up to a per-tenant mark. Searches read the index up
    // to the mark and the rows after it.
    r#"
ALTER TABLE audit_events ADD COLUMN subjects BLOB;
CREATE TABLE audit_subjects_indexed (tenant BLOB PRIMARY KEY, seq INTEGER NOT NULL);
INSERT INTO audit_subjects_indexed (tenant, seq) SELECT tenant, seq FROM audit_heads;
"#,
    // The read path's append writes one B-tree: searches by subject, principal or time read
    // block summaries built off the commit path (`sqlite/blocks.rs`) instead of indexes. An
    // event without subjects stores an empty `subjects`; NULL marks a row from before the
    // column, whose subjects are read from the event.
    r#"
DROP INDEX audit_events_time;
DROP INDEX audit_events_principal;
DROP TABLE audit_subjects;
DROP TABLE audit_subjects_indexed;
CREATE TABLE audit_block_marks (tenant BLOB PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE audit_blocks (
    tenant BLOB NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    min_at INTEGER NOT NULL, max_at INTEGER NOT NULL, principals BLOB NOT NULL,
    subjects BLOB NOT NULL, PRIMARY KEY (tenant, first_seq));
"#,
    // Events are stored in runs (`sqlite/runs.rs`): each row holds a tenant's consecutive
    // events, each encoding after its length (four bytes big-endian), and their hashes.
    r#"
CREATE TABLE audit_runs (
    tenant BLOB NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    events BLOB NOT NULL, hashes BLOB NOT NULL, PRIMARY KEY (tenant, first_seq));
INSERT INTO audit_runs (tenant, first_seq, last_seq, events, hashes)
    SELECT tenant, seq, seq,
        unhex(printf('%08X', length(CAST(encoded AS BLOB)))) || CAST(encoded AS BLOB),
        CAST(hash AS BLOB)
    FROM audit_events;
DROP TABLE audit_events;
"#,
];

const KEY_MIGRATIONS: &[&str] = &[r#"
CREATE TABLE tenant_keys (
    tenant BLOB NOT NULL, version INTEGER NOT NULL, wrapped BLOB, state TEXT NOT NULL,
    created_at INTEGER NOT NULL, PRIMARY KEY (tenant, version)) WITHOUT ROWID;
CREATE TABLE subject_keys (
    tenant BLOB NOT NULL, subject BLOB NOT NULL, kek_version INTEGER NOT NULL,
    dek_version INTEGER NOT NULL, wrapped_dek BLOB NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, subject)) WITHOUT ROWID;
CREATE INDEX subject_keys_version ON subject_keys (tenant, kek_version);
"#];

const READERS: usize = 4;

/// The writer connection, and for `data.db` the staged audit events that go in through it.
struct Writer {
    conn: Connection,
    staging: Option<Arc<Mutex<staging::Staging>>>,
}

/// The staging, locked.
fn locked(s: &Mutex<staging::Staging>) -> Result<std::sync::MutexGuard<'_, staging::Staging>> {
    lock(s, "audit staging")
}

/// A lock of this file's; `what` names it in the error if a panic poisoned it.
fn lock<'a, T>(m: &'a Mutex<T>, what: &str) -> Result<std::sync::MutexGuard<'a, T>> {
    m.lock()
        .map_err(|_| Error::Unavailable(format!("{what} poisoned")))
}

impl Writer {
    /// Moves every staged audit event into the table with the staging held: none is staged
    /// afterwards.
    fn flush_all(&mut self) -> Result<()> {
        if let Some(s) = &self.staging {
            locked(s)?.flush(&mut self.conn, usize::MAX)?;
        }
        Ok(())
    }

    /// Moves up to `most` staged audit events into the table; whether some are left. The
    /// staging is locked only to take them out and to drop them once committed: reads go on
    /// appending meanwhile.
    fn flush(&mut self, most: usize) -> Result<bool> {
        let Some(s) = &self.staging else {
            return Ok(false);
        };
        let pending = locked(s)?.pending(most);
        staging::move_in(&mut self.conn, &pending)?;
        Ok(locked(s)?.moved(&pending))
    }
}

/// One SQLite file: a writer, a few readers, and a checkpointer thread.
struct Db {
    writer: Arc<Mutex<Writer>>,
    /// The read path's audit events (`data.db` only), appended without the writer lock.
    staging: Option<Arc<Mutex<staging::Staging>>>,
    /// Reads for the reader threads.
    readers: std::sync::mpsc::Sender<ReadJob>,
    /// Nudges the checkpointer after a write; dropping it stops the thread.
    wrote: std::sync::mpsc::SyncSender<()>,
}

/// Copies the WAL back into the database file off the request path: the writer never
/// checkpoints (`wal_autocheckpoint=0`), this thread does, at most every 100 ms after writes,
/// so a page changed by many commits is copied and synced once; it moves staged audit events
/// in at most every [`MOVE_EVERY`]. PASSIVE never blocks the writer or readers. Under a steady
/// stream of reads a passive checkpoint never lets the WAL start over (checkpoint
/// starvation), and every read then searches a longer WAL index; past
/// [`WAL_RESTART_FRAMES`] a RESTART checkpoint waits for the readers of old snapshots (they
/// are short) so that the next write starts the WAL from the beginning.
fn checkpointer(conn: Connection, wrote: std::sync::mpsc::Receiver<()>, upkeep: Upkeep) {
    let checkpoint = |mode: &str| -> rusqlite::Result<i64> {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get(1))
    };
    // Each round does a bounded share of the upkeep and then checkpoints, so that work that
    // never runs out (appends as fast as the moves) cannot starve the checkpoint: a bulk load
    // of 10 M events once grew the WAL to 70 GB that way. Work left over starts the next
    // round without waiting for a write.
    let mut left = false;
    let mut moved_at: Option<std::time::Instant> = None;
    loop {
        let stopped = if left {
            matches!(
                wrote.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Disconnected)
            )
        } else {
            wrote.recv().is_err()
        };
        if stopped {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        while wrote.try_recv().is_ok() {}
        left = false;
        if moved_at.is_none_or(|t| t.elapsed() >= MOVE_EVERY) {
            moved_at = Some(std::time::Instant::now());
            if let Err(e) = move_staged(&upkeep.0) {
                tracing::warn!(error = %e, "moving staged audit events failed; retried after the next append");
            }
        } else {
            // Staged events wait for their move: the next round comes without a write.
            left = staged(&upkeep.0);
        }
        if let Some(work) = upkeep.1 {
            left |= run_upkeep(&upkeep.0, |w| work(&mut w.conn));
        }
        let done = match checkpoint("PASSIVE") {
            Ok(frames) if frames >= WAL_RESTART_FRAMES => checkpoint("RESTART").map(|_| ()),
            other => other.map(|_| ()),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "sqlite checkpoint failed; retried after the next write");
        }
    }
}

/// Work the checkpointer thread does on the writer connection after writes (moving staged
/// audit events in, then the file's own upkeep), in batches that each return whether more is
/// left; the writer lock is let go between batches, for long enough that a waiting append
/// takes it (the mutex is not fair: relocking at once would keep appends, and the reads that
/// wait for them, waiting for the whole backlog).
type Upkeep = (
    Arc<Mutex<Writer>>,
    Option<fn(&mut Connection) -> Result<bool>>,
);

/// How often the checkpointer thread moves staged audit events into the table. Each move is
/// a transaction synced to disk and then a checkpoint; under a stream of reads, moves a
/// second apart each take in many events, rewrite the table's last pages once rather than ten
/// times, and leave the disk to the reads' own fsyncs: in three paired runs of the audit
/// bench against moves 100 ms apart, about 3 points less overhead at every setting (means
/// 43.6 against 46.5 % at 8 clients, 13.4 against 16.6 % at 32, 5.8 against 8.5 % at 128,
/// 11.3 against 13.7 % for batch reads). Writes and audit queries move what is staged
/// themselves, first.
const MOVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Staged audit events moved into the table per transaction of the checkpointer thread.
const STAGED_MOVE: usize = 1024;

/// Batches of upkeep per round of the checkpointer thread.
const UPKEEP_BATCHES: usize = 64;

/// Runs up to [`UPKEEP_BATCHES`] batches of `work`; returns whether some is left.
fn run_upkeep(writer: &Mutex<Writer>, mut work: impl FnMut(&mut Writer) -> Result<bool>) -> bool {
    for _ in 0..UPKEEP_BATCHES {
        let more = match writer.lock() {
            Ok(mut w) => work(&mut w),
            Err(_) => return false,
        };
        match more {
            Ok(true) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Ok(false) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "sqlite upkeep failed; retried after the next write");
                return false;
            }
        }
    }
    true
}

/// Moves the staged audit events into the table: batches that leave the staging free for
/// appends while [`UPKEEP_BATCHES`] allow, then the rest with the staging held, so that the
/// round ends with none staged and the staging file starts over (it would otherwise grow for
/// as long as appends keep a few events staged).
fn move_staged(writer: &Mutex<Writer>) -> Result<()> {
    for _ in 0..UPKEEP_BATCHES {
        if !lock(writer, "sqlite writer")?.flush(STAGED_MOVE)? {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    lock(writer, "sqlite writer")?.flush_all()
}

/// Whether audit events wait in the staging for their move (a poisoned lock counts as no: as
/// for a failed move, the next append nudges the checkpointer again).
fn staged(writer: &Mutex<Writer>) -> bool {
    lock(writer, "sqlite writer").is_ok_and(|w| {
        w.staging
            .as_deref()
            .is_some_and(|s| locked(s).is_ok_and(|s| !s.is_empty()))
    })
}

/// WAL length (in pages) past which the checkpointer makes the WAL start over.
const WAL_RESTART_FRAMES: i64 = 4096;

/// Every commit (the audit journal's many a second among them) empties the page caches of the
/// other connections; with the file mapped, reading a page back is a memory read rather than
/// a system call and a copy.
///
/// A WAL that a burst of writes grew is cut back to 64 MB once it starts over.
fn configure(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;
         PRAGMA secure_delete=ON; PRAGMA busy_timeout=10000; PRAGMA cache_size=-32768;
         PRAGMA mmap_size=268435456; PRAGMA journal_size_limit=67108864;",
    )?;
    Ok(())
}

fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let known = migrations.len() as i64;
    if done > known {
        return Err(Error::Config(format!(
            "database schema version {done} is newer than this binary knows ({known}); upgrade boveda"
        )));
    }
    for (i, sql) in migrations.iter().enumerate().skip(done as usize) {
        tx.execute_batch(sql)
            .map_err(|e| Error::Config(format!("migration {} failed: {e}", i + 1)))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![i as i64 + 1, now_ms()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Db {
    fn open(
        path: &Path,
        migrations: &[&str],
        upkeep: Option<fn(&mut Connection) -> Result<bool>>,
        staged_audit: bool,
    ) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut writer = Connection::open_with_flags(path, flags)
            .map_err(|e| Error::Config(format!("cannot open {}: {e}", path.display())))?;
        configure(&writer)?;
        migrate(&mut writer, migrations)?;
        writer.execute_batch("PRAGMA wal_autocheckpoint=0;")?;
        let staging = if staged_audit {
            Some(Arc::new(Mutex::new(staging::Staging::open(
                path,
                &mut writer,
            )?)))
        } else {
            None
        };
        let writer = Arc::new(Mutex::new(Writer {
            conn: writer,
            staging: staging.clone(),
        }));
        let ckpt = Connection::open_with_flags(path, flags)?;
        configure(&ckpt)?;
        let (wrote, nudges) = std::sync::mpsc::sync_channel(1);
        let upkeep = (Arc::clone(&writer), upkeep);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpointer(ckpt, nudges, upkeep))
            .map_err(|e| Error::Config(format!("cannot start the checkpointer: {e}")))?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(path, flags)?;
            configure(&r)?;
            readers.push(r);
        }
        Ok(Self {
            writer,
            staging,
            readers: start_readers(readers)?,
            wrote,
        })
    }

    /// Runs `f` on the writer connection, after the staged audit events are in the table
    /// (a write's own events extend the chains after them).
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        self.with_writer(move |w| {
            let Some(s) = w.staging.clone() else {
                return f(&mut w.conn);
            };
            // What is staged goes in first without the staging held, so that reads go on
            // appending meanwhile; then, held, what they appended since. The staging stays
            // locked until the write commits: an append meanwhile would take the sequence
            // numbers the write's events take.
            w.flush(usize::MAX)?;
            let mut s = locked(&s)?;
            s.flush(&mut w.conn, usize::MAX)?;
            let out = f(&mut w.conn);
            s.forget_heads();
            out
        })
        .await
    }

    /// Runs `f` on the writer connection without moving the staged audit events first: for
    /// writes that neither extend nor read the chains (the daily subject count of a read),
    /// which would otherwise make the read path's appends wait for a move.
    async fn write_off_chain<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        self.with_writer(move |w| f(&mut w.conn)).await
    }

    /// Moves the audit events staged so far into the table, for a query of the chains; reads
    /// go on appending meanwhile.
    async fn flush_staged(&self) -> Result<()> {
        self.with_writer(|w| w.flush(usize::MAX).map(drop)).await
    }

    async fn with_writer<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T> + Send + 'static,
    {
        let w = Arc::clone(&self.writer);
        let out = tokio::task::spawn_blocking(move || f(&mut *lock(&w, "sqlite writer")?))
            .await
            .map_err(|_| Error::Unavailable("sqlite task failed".into()))?;
        let _ = self.wrote.try_send(());
        out
    }

    /// Appends audit events to the staging file (durable on return).
    async fn stage(&self, events: Arc<Vec<AuditEvent>>) -> Result<Vec<StoredEvent>> {
        let s = self
            .staging
            .clone()
            .ok_or_else(|| Error::Config("this file stages no audit events".into()))?;
        let w = Arc::clone(&self.writer);
        let out = tokio::task::spawn_blocking(move || {
            loop {
                {
                    let mut s = locked(&s)?;
                    if !s.full() {
                        return s.append(&events);
                    }
                }
                // Appends outrun the moves: this one helps (the writer lock first, as
                // everywhere), and fails closed if moving fails.
                lock(&w, "sqlite writer")?.flush_all()?;
            }
        })
        .await
        .map_err(|_| Error::Unavailable("sqlite task failed".into()))?;
        let _ = self.wrote.try_send(());
        out
    }

    /// Runs `f` on the next free reader thread, with its connection.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        self.readers
            .send(Box::new(move |c| {
                let _ = done.send(f(c));
            }))
            .map_err(|_| Error::Unavailable("sqlite readers stopped".into()))?;
        result
            .await
            .map_err(|_| Error::Unavailable("sqlite task failed".into()))?
    }
}

/// A read, run by a reader thread on its connection.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Starts a thread per reader connection, all taking reads from one queue; dropping the
/// queue's sender stops them. Threads of their own rather than the runtime's blocking pool:
/// a busy reader takes the next read at once instead of waking another thread for it, and no
/// pool grows with the reads under way to contend for a few connections. In the api bench,
/// unaudited single reads at their best went from about 7,600 to 9,800 a second (CPU per read
/// 260 -> 200 us), audited ones from about 6,000 to 8,900.
fn start_readers(conns: Vec<Connection>) -> Result<std::sync::mpsc::Sender<ReadJob>> {
    let (jobs, queue) = std::sync::mpsc::channel::<ReadJob>();
    let queue = Arc::new(Mutex::new(queue));
    for (i, conn) in conns.into_iter().enumerate() {
        let queue = Arc::clone(&queue);
        std::thread::Builder::new()
            .name(format!("sqlite-reader-{i}"))
            .spawn(move || {
                loop {
                    // The lock is held while waiting: one idle reader waits on the queue, the
                    // others on the lock.
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    // A read that panics fails its call (its sender is dropped), not the thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn)));
                }
            })
            .map_err(|e| Error::Config(format!("cannot start a sqlite reader: {e}")))?;
    }
    Ok(jobs)
}

impl Drop for Db {
    /// Moves the staged audit events in, so that a stopped server leaves them all in the table.
    fn drop(&mut self) {
        if let Ok(mut w) = self.writer.lock()
            && let Err(e) = w.flush_all()
        {
            tracing::warn!(error = %e, "staged audit events stay in the staging file until the next start");
        }
    }
}

/// The SQLite store.
pub struct SqliteStore {
    data: Db,
    keys: Db,
}

fn id16(b: Vec<u8>, table: &'static str) -> Result<[u8; 16]> {
    b.try_into().map_err(|_| Error::Corrupt(table))
}

type TenantTuple = (Vec<u8>, String, String, Vec<u8>, i64);

fn tenant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TenantTuple> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn to_tenant(t: TenantTuple) -> Result<TenantRow> {
    Ok(TenantRow {
        id: TenantId::from_bytes(id16(t.0, "tenants")?),
        name: t.1,
        settings: t.2,
        wrapped_index_key: t.3,
        created_at: t.4,
    })
}

type PrincipalTuple = (
    Vec<u8>,
    Option<Vec<u8>>,
    String,
    String,
    Vec<u8>,
    String,
    i64,
    bool,
);

fn principal_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PrincipalTuple> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn to_principal(p: PrincipalTuple) -> Result<PrincipalRow> {
    Ok(PrincipalRow {
        id: PrincipalId::from_bytes(id16(p.0, "principals")?),
        tenant: p
            .1
            .map(|t| id16(t, "principals").map(TenantId::from_bytes))
            .transpose()?,
        kind: p.2,
        name: p.3,
        token_hash: p.4,
        grants: p.5,
        created_at: p.6,
        disabled: p.7,
    })
}

type KeyTuple = (Vec<u8>, u32, Option<Vec<u8>>, String, i64);

fn to_tenant_key(k: KeyTuple) -> Result<TenantKeyRow> {
    Ok(TenantKeyRow {
        tenant: TenantId::from_bytes(id16(k.0, "tenant_keys")?),
        version: k.1,
        wrapped: k.2,
        state: KeyState::parse(&k.3).ok_or(Error::Corrupt("tenant_keys"))?,
        created_at: k.4,
    })
}

type SubjectTuple = (Vec<u8>, Vec<u8>, u32, u32, Vec<u8>, i64);

fn subject_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SubjectTuple> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn to_subject_key(s: SubjectTuple) -> Result<SubjectKeyRow> {
    Ok(SubjectKeyRow {
        tenant: TenantId::from_bytes(id16(s.0, "subject_keys")?),
        subject: SubjectId::from_bytes(id16(s.1, "subject_keys")?),
        kek_version: s.2,
        dek_version: s.3,
        wrapped_dek: s.4,
        created_at: s.5,
    })
}

type RecordTuple = (
    Vec<u8>,
    String,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    String,
    i64,
    i64,
    i64,
);

const RECORD_COLUMNS: &str = "r.tenant, r.collection, r.id, r.subject, r.sealed, r.labels, r.version, r.created_at, r.updated_at";

fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordTuple> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn to_record(r: RecordTuple) -> Result<RecordRow> {
    Ok(RecordRow {
        tenant: TenantId::from_bytes(id16(r.0, "records")?),
        collection: r.1,
        id: RecordId::from_bytes(id16(r.2, "records")?),
        subject: SubjectId::from_bytes(id16(r.3, "records")?),
        sealed: r.4,
        labels: r.5,
        version: r.6,
        created_at: r.7,
        updated_at: r.8,
    })
}

type UserTuple = (Vec<u8>, Vec<u8>, Vec<u8>, String, Vec<u8>, i64, i64);

const USER_COLUMNS: &str = "tenant, id, login_digest, state, sealed, version, created_at";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserTuple> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn to_user(u: UserTuple) -> Result<UserRow> {
    Ok(UserRow {
        tenant: TenantId::from_bytes(id16(u.0, "users")?),
        id: PrincipalId::from_bytes(id16(u.1, "users")?),
        login_digest: u.2,
        state: u.3,
        sealed: u.4,
        version: u.5,
        created_at: u.6,
    })
}

type SessionTuple = (Vec<u8>, Vec<u8>, Vec<u8>, i64, i64, i64, i64, bool);

fn to_session(s: SessionTuple) -> Result<SessionRow> {
    Ok(SessionRow {
        token_hash: s.0,
        tenant: TenantId::from_bytes(id16(s.1, "sessions")?),
        user: PrincipalId::from_bytes(id16(s.2, "sessions")?),
        created_at: s.3,
        last_seen_at: s.4,
        expires_at: s.5,
        mfa_at: s.6,
        revoked: s.7,
    })
}

/// A tenant's chain head in the table: last sequence number and hash (the genesis hash at 0).
fn chain_head(c: &Connection, tenant: &[u8; 16]) -> Result<(u64, [u8; 32])> {
    let row: Option<(i64, Vec<u8>)> = c
        .prepare_cached("SELECT seq, hash FROM audit_heads WHERE tenant = ?1")?
        .query_row([&tenant[..]], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        Some((seq, hash)) => (
            seq as u64,
            hash.try_into().map_err(|_| Error::Corrupt("audit_heads"))?,
        ),
        None => (0, boveda_audit::genesis(tenant)),
    })
}

fn set_head(c: &Connection, tenant: &[u8; 16], seq: u64, hash: &[u8; 32]) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO audit_heads (tenant, seq, hash) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )?
    .execute(params![&tenant[..], seq as i64, &hash[..]])?;
    Ok(())
}

fn insert_checkpoint(c: &Connection, cp: &Checkpoint) -> Result<()> {
    c.prepare_cached(
        "INSERT OR IGNORE INTO audit_checkpoints (tenant, seq, hash, at_ms, key_id, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![&cp.tenant[..], cp.seq as i64, &cp.hash[..], cp.at_ms, &cp.key_id[..], cp.signature])?;
    Ok(())
}

/// Appends audit events inside an open write transaction (after the staged ones, which the
/// writer moved in first): per tenant, the head row gives the last sequence number and hash;
/// each event gets the next number and links to the previous hash. The single writer
/// connection serialises appends, so chains never fork.
fn append_audit_tx(
    tx: &rusqlite::Transaction<'_>,
    events: &[AuditEvent],
) -> Result<Vec<StoredEvent>> {
    let mut heads: std::collections::HashMap<[u8; 16], (u64, [u8; 32])> =
        std::collections::HashMap::new();
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let head = match heads.get(&e.tenant) {
            Some(h) => *h,
            None => chain_head(tx, &e.tenant)?,
        };
        let seq = head.0 + 1;
        let encoded = e.encode_as(seq);
        let hash = boveda_audit::link_hash(&head.1, seq, &encoded);
        heads.insert(e.tenant, (seq, hash));
        out.push(StoredEvent { seq, encoded, hash });
    }
    runs::insert(
        tx,
        events
            .iter()
            .zip(&out)
            .map(|(e, s)| (&e.tenant, s.seq, &s.encoded[..], &s.hash)),
    )?;
    for (tenant, (seq, hash)) in heads {
        set_head(tx, &tenant, seq, &hash)?;
    }
    Ok(out)
}

type CheckpointTuple = (i64, Vec<u8>, i64, Vec<u8>, Vec<u8>, [u8; 16]);

fn checkpoint_row(tenant: [u8; 16], r: &rusqlite::Row<'_>) -> rusqlite::Result<CheckpointTuple> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        tenant,
    ))
}

fn to_checkpoint(c: CheckpointTuple) -> Result<Checkpoint> {
    Ok(Checkpoint {
        tenant: c.5,
        seq: c.0 as u64,
        hash: c
            .1
            .try_into()
            .map_err(|_| Error::Corrupt("audit_checkpoints"))?,
        at_ms: c.2,
        key_id: c
            .3
            .try_into()
            .map_err(|_| Error::Corrupt("audit_checkpoints"))?,
        signature: c.4,
    })
}

/// Reads a tenant's audit log and checkpoints from a copy of `data.db`, opened read-only, for
/// offline verification (`boveda audit verify --sqlite`).
///
/// # Errors
/// [`Error::Config`] when the file cannot be opened, [`Error::Corrupt`] for rows that do not
/// decode.
pub fn read_audit_file(
    path: &Path,
    tenant: TenantId,
) -> Result<(Vec<StoredEvent>, Vec<Checkpoint>)> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::Config(format!("cannot open {}: {e}", path.display())))?;
    let t = tenant.as_bytes().as_slice();
    // From the lowest sequence number there is: a row moved below the chain's start reads as
    // an event that cannot verify.
    let mut events = runs::read(&c, t, i64::MIN, i64::MAX)?;
    // A server stopped cleanly leaves no staged events; one that was not may have left some
    // past the table's head.
    events.extend(
        staging::recoverable(&staging::path_of(path), |t| chain_head(&c, t))?
            .into_iter()
            .filter(|(t, _)| t == tenant.as_bytes())
            .map(|(_, e)| e),
    );
    let mut st = c.prepare("SELECT seq, CAST(hash AS BLOB), at_ms, CAST(key_id AS BLOB), CAST(signature AS BLOB) FROM audit_checkpoints WHERE tenant = ?1 ORDER BY seq")?;
    let cps = st
        .query_map([t], |r| checkpoint_row(*tenant.as_bytes(), r))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .map(to_checkpoint)
        .collect::<Result<Vec<_>>>()?;
    Ok((events, cps))
}

fn insert_index(tx: &rusqlite::Transaction<'_>, index: &[IndexEntry]) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO blind_index (tenant, collection, field, digest, record) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in index {
        st.execute(params![
            e.tenant.as_bytes().as_slice(),
            e.collection,
            e.field,
            e.digest,
            e.record.as_bytes().as_slice()
        ])?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `data.db` and `keys.db` in `dir` and runs migrations.
    ///
    /// # Errors
    /// [`Error::Config`] when the directory or files cannot be opened or migrated.
    pub async fn open(dir: &Path) -> Result<Self> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
            Ok(Self {
                data: Db::open(
                    &dir.join("data.db"),
                    DATA_MIGRATIONS,
                    Some(blocks::index_audit),
                    true,
                )?,
                keys: Db::open(&dir.join("keys.db"), KEY_MIGRATIONS, None, false)?,
            })
        })
        .await
        .map_err(|_| Error::Unavailable("sqlite open task failed".into()))?
    }

    /// Summarises the audit log's full blocks now, as the checkpointer thread does after
    /// writes (for tests and tools).
    pub async fn index_audit(&self) -> Result<()> {
        self.data
            .write(|c| {
                while blocks::index_audit(c)? {}
                Ok(())
            })
            .await
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        self.data
            .read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await?;
        self.keys
            .read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.data
            .read(move |c| {
                Ok(
                    c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                        .optional()?,
                )
            })
            .await
    }

    async fn init_meta(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.data
            .write(move |c| {
                c.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                    params![key, value],
                )?;
                Ok(c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?)
            })
            .await
    }

    async fn create_tenant(&self, tenant: &TenantRow, first_key: &TenantKeyRow) -> Result<()> {
        let t = tenant.clone();
        let exists = {
            let name = t.name.clone();
            self.data
                .read(move |c| {
                    Ok(
                        c.query_row("SELECT 1 FROM tenants WHERE name = ?1", [name], |_| Ok(()))
                            .optional()?
                            .is_some(),
                    )
                })
                .await?
        };
        if exists {
            return Err(Error::Conflict("tenant name"));
        }
        // Key first: a crash in between leaves an unused key, never a tenant without one.
        let k = first_key.clone();
        self.keys
            .write(move |c| {
                c.execute(
                    "INSERT INTO tenant_keys (tenant, version, wrapped, state, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![k.tenant.as_bytes().as_slice(), k.version, k.wrapped, k.state.as_str(), k.created_at],
                )?;
                Ok(())
            })
            .await?;
        self.data
            .write(move |c| {
                c.execute(
                    "INSERT INTO tenants (id, name, settings, wrapped_index_key, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![t.id.as_bytes().as_slice(), t.name, t.settings, t.wrapped_index_key, t.created_at],
                )
                .map_err(|e| match Error::from(e) {
                    Error::Conflict(_) => Error::Conflict("tenant name"),
                    other => other,
                })?;
                Ok(())
            })
            .await
    }

    async fn tenant(&self, id: TenantId) -> Result<Option<TenantRow>> {
        self.data
            .read(move |c| {
                c.query_row(
                    "SELECT id, name, settings, wrapped_index_key, created_at FROM tenants WHERE id = ?1",
                    [id.as_bytes().as_slice()],
                    tenant_row,
                )
                .optional()?
                .map(to_tenant)
                .transpose()
            })
            .await
    }

    async fn tenants(&self) -> Result<Vec<TenantRow>> {
        self.data
            .read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT id, name, settings, wrapped_index_key, created_at FROM tenants ORDER BY created_at, id",
                )?;
                let rows = st.query_map([], tenant_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter().map(to_tenant).collect()
            })
            .await
    }

    async fn update_tenant_settings(&self, id: TenantId, settings: &str) -> Result<bool> {
        let settings = settings.to_owned();
        self.data
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE tenants SET settings = ?2 WHERE id = ?1",
                    params![id.as_bytes().as_slice(), settings],
                )? == 1)
            })
            .await
    }

    async fn tenant_keys(&self, tenant: TenantId) -> Result<Vec<TenantKeyRow>> {
        self.keys
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT tenant, version, wrapped, state, created_at FROM tenant_keys WHERE tenant = ?1 ORDER BY version",
                )?;
                let rows = st
                    .query_map([tenant.as_bytes().as_slice()], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<rusqlite::Result<Vec<KeyTuple>>>()?;
                rows.into_iter().map(to_tenant_key).collect()
            })
            .await
    }

    async fn add_tenant_key(&self, key: &TenantKeyRow) -> Result<()> {
        let k = key.clone();
        self.keys
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute(
                    "UPDATE tenant_keys SET state = 'decrypt_only' WHERE tenant = ?1 AND state = 'active'",
                    [k.tenant.as_bytes().as_slice()],
                )?;
                tx.execute(
                    "INSERT INTO tenant_keys (tenant, version, wrapped, state, created_at) VALUES (?1, ?2, ?3, 'active', ?4)",
                    params![k.tenant.as_bytes().as_slice(), k.version, k.wrapped, k.created_at],
                )
                .map_err(|e| match Error::from(e) {
                    Error::Conflict(_) => Error::Conflict("key version"),
                    other => other,
                })?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn retire_tenant_key(&self, tenant: TenantId, version: u32) -> Result<RetireOutcome> {
        self.keys
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let t = tenant.as_bytes().as_slice();
                let state: Option<String> = tx
                    .query_row(
                        "SELECT state FROM tenant_keys WHERE tenant = ?1 AND version = ?2",
                        params![t, version],
                        |r| r.get(0),
                    )
                    .optional()?;
                let outcome = match state.as_deref().map(KeyState::parse) {
                    None => RetireOutcome::NotFound,
                    Some(None) => return Err(Error::Corrupt("tenant_keys")),
                    Some(Some(KeyState::Active)) => RetireOutcome::Active,
                    Some(Some(KeyState::Retired)) => RetireOutcome::Retired,
                    Some(Some(KeyState::DecryptOnly)) => {
                        let used: u64 = tx.query_row(
                            "SELECT COUNT(*) FROM subject_keys WHERE tenant = ?1 AND kek_version = ?2",
                            params![t, version],
                            |r| r.get(0),
                        )?;
                        if used > 0 {
                            RetireOutcome::InUse(used)
                        } else {
                            tx.execute(
                                "UPDATE tenant_keys SET state = 'retired', wrapped = NULL WHERE tenant = ?1 AND version = ?2",
                                params![t, version],
                            )?;
                            RetireOutcome::Retired
                        }
                    }
                };
                tx.commit()?;
                Ok(outcome)
            })
            .await
    }

    async fn create_principal(&self, p: &PrincipalRow) -> Result<()> {
        let p = p.clone();
        self.data
            .write(move |c| {
                c.execute(
                    "INSERT INTO principals (id, tenant, kind, name, token_hash, grants, created_at, disabled)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        p.id.as_bytes().as_slice(),
                        p.tenant.map(|t| t.as_bytes().to_vec()),
                        p.kind,
                        p.name,
                        p.token_hash,
                        p.grants,
                        p.created_at,
                        p.disabled
                    ],
                )
                .map_err(|e| match Error::from(e) {
                    Error::Conflict(_) => Error::Conflict("principal"),
                    other => other,
                })?;
                Ok(())
            })
            .await
    }

    async fn principal_by_token(&self, token_hash: &[u8]) -> Result<Option<PrincipalRow>> {
        let h = token_hash.to_vec();
        self.data
            .read(move |c| {
                c.query_row(
                    "SELECT id, tenant, kind, name, token_hash, grants, created_at, disabled
                     FROM principals WHERE token_hash = ?1 AND disabled = 0",
                    [h],
                    principal_row,
                )
                .optional()?
                .map(to_principal)
                .transpose()
            })
            .await
    }

    async fn principals(&self, tenant: Option<TenantId>) -> Result<Vec<PrincipalRow>> {
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT id, tenant, kind, name, token_hash, grants, created_at, disabled
                     FROM principals WHERE tenant IS ?1 ORDER BY created_at, id",
                )?;
                let rows = st
                    .query_map([tenant.map(|t| t.as_bytes().to_vec())], principal_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter().map(to_principal).collect()
            })
            .await
    }

    async fn disable_principal(&self, tenant: TenantId, id: PrincipalId) -> Result<bool> {
        self.data
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE principals SET disabled = 1 WHERE tenant = ?1 AND id = ?2",
                    params![tenant.as_bytes().as_slice(), id.as_bytes().as_slice()],
                )? == 1)
            })
            .await
    }

    async fn put_collection(&self, col: &CollectionRow) -> Result<()> {
        let col = col.clone();
        self.data
            .write(move |c| {
                c.execute(
                    "INSERT INTO collections (tenant, name, schema, version, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (tenant, name) DO UPDATE SET schema = excluded.schema,
                       version = excluded.version, updated_at = excluded.updated_at",
                    params![col.tenant.as_bytes().as_slice(), col.name, col.schema, col.version, col.updated_at],
                )?;
                Ok(())
            })
            .await
    }

    async fn collection(&self, tenant: TenantId, name: &str) -> Result<Option<CollectionRow>> {
        let name = name.to_owned();
        self.data
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT schema, version, updated_at FROM collections WHERE tenant = ?1 AND name = ?2",
                    params![tenant.as_bytes().as_slice(), name],
                    |r| {
                        Ok(CollectionRow {
                            tenant,
                            name: name.clone(),
                            schema: r.get(0)?,
                            version: r.get(1)?,
                            updated_at: r.get(2)?,
                        })
                    },
                )
                .optional()?)
            })
            .await
    }

    async fn collections(&self, tenant: TenantId) -> Result<Vec<CollectionRow>> {
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT name, schema, version, updated_at FROM collections WHERE tenant = ?1 ORDER BY name",
                )?;
                let rows = st
                    .query_map([tenant.as_bytes().as_slice()], |r| {
                        Ok(CollectionRow {
                            tenant,
                            name: r.get(0)?,
                            schema: r.get(1)?,
                            version: r.get(2)?,
                            updated_at: r.get(3)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
    }

    async fn insert_subject_keys(&self, keys: &[SubjectKeyRow]) -> Result<()> {
        let keys = keys.to_vec();
        self.keys
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut st = tx.prepare_cached(
                        "INSERT INTO subject_keys (tenant, subject, kek_version, dek_version, wrapped_dek, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?;
                    for k in &keys {
                        st.execute(params![
                            k.tenant.as_bytes().as_slice(),
                            k.subject.as_bytes().as_slice(),
                            k.kek_version,
                            k.dek_version,
                            k.wrapped_dek,
                            k.created_at
                        ])
                        .map_err(|e| match Error::from(e) {
                            Error::Conflict(_) => Error::Conflict("subject"),
                            other => other,
                        })?;
                    }
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn subject_keys(
        &self,
        tenant: TenantId,
        subjects: &[SubjectId],
    ) -> Result<Vec<SubjectKeyRow>> {
        let subjects = subjects.to_vec();
        self.keys
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT tenant, subject, kek_version, dek_version, wrapped_dek, created_at
                     FROM subject_keys WHERE tenant = ?1 AND subject = ?2",
                )?;
                let mut out = Vec::with_capacity(subjects.len());
                for s in &subjects {
                    if let Some(row) = st
                        .query_row(
                            params![tenant.as_bytes().as_slice(), s.as_bytes().as_slice()],
                            subject_row,
                        )
                        .optional()?
                    {
                        out.push(to_subject_key(row)?);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn erase_subject(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        audit: &[AuditEvent],
    ) -> Result<Option<Vec<StoredEvent>>> {
        let audit = audit.to_vec();
        // Destroy the key first and make sure its bytes leave the WAL: from this point the
        // subject's ciphertexts are noise, in this file and in every copy of data.db.
        let existed = self
            .keys
            .write(move |c| {
                let n = c.execute(
                    "DELETE FROM subject_keys WHERE tenant = ?1 AND subject = ?2",
                    params![tenant.as_bytes().as_slice(), subject.as_bytes().as_slice()],
                )?;
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                Ok(n == 1)
            })
            .await?;
        self.data
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let t = tenant.as_bytes().as_slice();
                tx.execute(
                    "DELETE FROM blind_index WHERE tenant = ?1 AND record IN
                       (SELECT id FROM records WHERE tenant = ?1 AND subject = ?2)",
                    params![t, subject.as_bytes().as_slice()],
                )?;
                tx.execute(
                    "DELETE FROM records WHERE tenant = ?1 AND subject = ?2",
                    params![t, subject.as_bytes().as_slice()],
                )?;
                tx.execute(
                    "DELETE FROM tokens WHERE tenant = ?1 AND subject = ?2",
                    params![t, subject.as_bytes().as_slice()],
                )?;
                let stored = if existed {
                    Some(append_audit_tx(&tx, &audit)?)
                } else {
                    None
                };
                tx.commit()?;
                Ok(stored)
            })
            .await
    }

    async fn subject_keys_not_at(
        &self,
        tenant: TenantId,
        version: u32,
        limit: usize,
    ) -> Result<Vec<SubjectKeyRow>> {
        self.keys
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT tenant, subject, kek_version, dek_version, wrapped_dek, created_at
                     FROM subject_keys WHERE tenant = ?1 AND kek_version <> ?2 LIMIT ?3",
                )?;
                let rows = st
                    .query_map(
                        params![tenant.as_bytes().as_slice(), version, limit as i64],
                        subject_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter().map(to_subject_key).collect()
            })
            .await
    }

    async fn rewrap_subject_keys(&self, from_version: u32, keys: &[SubjectKeyRow]) -> Result<u64> {
        let keys = keys.to_vec();
        self.keys
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut n = 0u64;
                {
                    let mut st = tx.prepare_cached(
                        "UPDATE subject_keys SET kek_version = ?3, wrapped_dek = ?4
                         WHERE tenant = ?1 AND subject = ?2 AND kek_version = ?5",
                    )?;
                    for k in &keys {
                        n += st.execute(params![
                            k.tenant.as_bytes().as_slice(),
                            k.subject.as_bytes().as_slice(),
                            k.kek_version,
                            k.wrapped_dek,
                            from_version
                        ])? as u64;
                    }
                }
                tx.commit()?;
                Ok(n)
            })
            .await
    }

    async fn subject_key_versions(&self, tenant: TenantId) -> Result<Vec<(u32, u64)>> {
        self.keys
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT kek_version, COUNT(*) FROM subject_keys WHERE tenant = ?1 GROUP BY kek_version ORDER BY kek_version",
                )?;
                let rows = st
                    .query_map([tenant.as_bytes().as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
    }

    async fn insert_records(
        &self,
        records: &[RecordRow],
        index: &[IndexEntry],
        audit: &[AuditEvent],
    ) -> Result<Vec<StoredEvent>> {
        let (records, index, audit) = (records.to_vec(), index.to_vec(), audit.to_vec());
        self.data
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut st = tx.prepare_cached(
                        "INSERT INTO records (tenant, collection, id, subject, sealed, labels, version, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?;
                    for r in &records {
                        st.execute(params![
                            r.tenant.as_bytes().as_slice(),
                            r.collection,
                            r.id.as_bytes().as_slice(),
                            r.subject.as_bytes().as_slice(),
                            r.sealed,
                            r.labels,
                            r.version,
                            r.created_at,
                            r.updated_at
                        ])
                        .map_err(|e| match Error::from(e) {
                            Error::Conflict(_) => Error::Conflict("record"),
                            other => other,
                        })?;
                    }
                }
                insert_index(&tx, &index)?;
                let stored = append_audit_tx(&tx, &audit)?;
                tx.commit()?;
                Ok(stored)
            })
            .await
    }

    async fn records(
        &self,
        tenant: TenantId,
        collection: &str,
        ids: &[RecordId],
    ) -> Result<Vec<RecordRow>> {
        let (collection, ids) = (collection.to_owned(), ids.to_vec());
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM records r WHERE r.tenant = ?1 AND r.collection = ?2 AND r.id = ?3"
                ))?;
                let mut out = Vec::with_capacity(ids.len());
                for id in &ids {
                    if let Some(row) = st
                        .query_row(
                            params![tenant.as_bytes().as_slice(), collection, id.as_bytes().as_slice()],
                            record_row,
                        )
                        .optional()?
                    {
                        out.push(to_record(row)?);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn update_record(
        &self,
        r: &RecordRow,
        index: &[IndexEntry],
        expected_version: i64,
        audit: &[AuditEvent],
    ) -> Result<Option<Vec<StoredEvent>>> {
        let (r, index, audit) = (r.clone(), index.to_vec(), audit.to_vec());
        self.data
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let t = r.tenant.as_bytes().as_slice();
                let n = tx.execute(
                    "UPDATE records SET sealed = ?4, labels = ?5, version = ?6, updated_at = ?7
                     WHERE tenant = ?1 AND collection = ?2 AND id = ?3 AND version = ?8",
                    params![
                        t,
                        r.collection,
                        r.id.as_bytes().as_slice(),
                        r.sealed,
                        r.labels,
                        r.version,
                        r.updated_at,
                        expected_version
                    ],
                )?;
                if n != 1 {
                    return Ok(None);
                }
                tx.execute(
                    "DELETE FROM blind_index WHERE tenant = ?1 AND collection = ?2 AND record = ?3",
                    params![t, r.collection, r.id.as_bytes().as_slice()],
                )?;
                insert_index(&tx, &index)?;
                let stored = append_audit_tx(&tx, &audit)?;
                tx.commit()?;
                Ok(Some(stored))
            })
            .await
    }

    async fn delete_record(
        &self,
        tenant: TenantId,
        collection: &str,
        id: RecordId,
        audit: &[AuditEvent],
    ) -> Result<Option<Vec<StoredEvent>>> {
        let (collection, audit) = (collection.to_owned(), audit.to_vec());
        self.data
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let t = tenant.as_bytes().as_slice();
                let n = tx.execute(
                    "DELETE FROM records WHERE tenant = ?1 AND collection = ?2 AND id = ?3",
                    params![t, collection, id.as_bytes().as_slice()],
                )?;
                tx.execute(
                    "DELETE FROM blind_index WHERE tenant = ?1 AND collection = ?2 AND record = ?3",
                    params![t, collection, id.as_bytes().as_slice()],
                )?;
                let stored = if n == 1 {
                    Some(append_audit_tx(&tx, &audit)?)
                } else {
                    None
                };
                tx.commit()?;
                Ok(stored)
            })
            .await
    }

    async fn search(
        &self,
        tenant: TenantId,
        collection: &str,
        field: &str,
        digest: &[u8],
        limit: usize,
    ) -> Result<Vec<RecordRow>> {
        let (collection, field, digest) =
            (collection.to_owned(), field.to_owned(), digest.to_vec());
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM blind_index b JOIN records r
                       ON r.tenant = b.tenant AND r.collection = b.collection AND r.id = b.record
                     WHERE b.tenant = ?1 AND b.collection = ?2 AND b.field = ?3 AND b.digest = ?4
                     ORDER BY r.id LIMIT ?5"
                ))?;
                let rows = st
                    .query_map(
                        params![
                            tenant.as_bytes().as_slice(),
                            collection,
                            field,
                            digest,
                            limit as i64
                        ],
                        record_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter().map(to_record).collect()
            })
            .await
    }

    async fn count_digests(
        &self,
        tenant: TenantId,
        collection: &str,
        field: &str,
        digests: &[Vec<u8>],
    ) -> Result<Vec<u64>> {
        let (collection, field, digests) =
            (collection.to_owned(), field.to_owned(), digests.to_vec());
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT COUNT(*) FROM blind_index WHERE tenant = ?1 AND collection = ?2 AND field = ?3 AND digest = ?4",
                )?;
                digests
                    .iter()
                    .map(|d| {
                        Ok(st.query_row(params![tenant.as_bytes().as_slice(), collection, field, d], |r| r.get(0))?)
                    })
                    .collect()
            })
            .await
    }

    async fn top_digests(
        &self,
        tenant: TenantId,
        collection: &str,
        field: &str,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        let (collection, field) = (collection.to_owned(), field.to_owned());
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT digest, COUNT(*) AS n FROM blind_index WHERE tenant = ?1 AND collection = ?2 AND field = ?3
                     GROUP BY digest ORDER BY n DESC, digest LIMIT ?4",
                )?;
                let rows = st
                    .query_map(params![tenant.as_bytes().as_slice(), collection, field, limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
    }

    async fn create_user(&self, u: &UserRow) -> Result<()> {
        let u = u.clone();
        self.data
            .write(move |c| {
                c.execute(
                    &format!(
                        "INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    ),
                    params![
                        u.tenant.as_bytes().as_slice(),
                        u.id.as_bytes().as_slice(),
                        u.login_digest,
                        u.state,
                        u.sealed,
                        u.version,
                        u.created_at
                    ],
                )
                .map_err(|e| match Error::from(e) {
                    Error::Conflict(_) => Error::Conflict("user"),
                    other => other,
                })?;
                Ok(())
            })
            .await
    }

    async fn user(&self, tenant: TenantId, id: PrincipalId) -> Result<Option<UserRow>> {
        self.data
            .read(move |c| {
                c.query_row(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE tenant = ?1 AND id = ?2"),
                    params![tenant.as_bytes().as_slice(), id.as_bytes().as_slice()],
                    user_row,
                )
                .optional()?
                .map(to_user)
                .transpose()
            })
            .await
    }

    async fn user_by_login(
        &self,
        tenant: TenantId,
        login_digest: &[u8],
    ) -> Result<Option<UserRow>> {
        let d = login_digest.to_vec();
        self.data
            .read(move |c| {
                c.query_row(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE tenant = ?1 AND login_digest = ?2"
                    ),
                    params![tenant.as_bytes().as_slice(), d],
                    user_row,
                )
                .optional()?
                .map(to_user)
                .transpose()
            })
            .await
    }

    async fn users(&self, tenant: TenantId) -> Result<Vec<UserRow>> {
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE tenant = ?1 ORDER BY created_at, id"
                ))?;
                let rows = st
                    .query_map([tenant.as_bytes().as_slice()], user_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter().map(to_user).collect()
            })
            .await
    }

    async fn update_user(&self, u: &UserRow, expected_version: i64) -> Result<bool> {
        let u = u.clone();
        self.data
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE users SET login_digest = ?3, state = ?4, sealed = ?5, version = ?6
                     WHERE tenant = ?1 AND id = ?2 AND version = ?7",
                    params![
                        u.tenant.as_bytes().as_slice(),
                        u.id.as_bytes().as_slice(),
                        u.login_digest,
                        u.state,
                        u.sealed,
                        u.version,
                        expected_version
                    ],
                )? == 1)
            })
            .await
    }

    async fn create_session(&self, s: &SessionRow) -> Result<()> {
        let s = s.clone();
        self.data
            .write(move |c| {
                c.execute(
                    "INSERT INTO sessions (token_hash, tenant, user_id, created_at, last_seen_at, expires_at, mfa_at, revoked)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![s.token_hash, s.tenant.as_bytes().as_slice(), s.user.as_bytes().as_slice(), s.created_at, s.last_seen_at, s.expires_at, s.mfa_at, s.revoked],
                )?;
                Ok(())
            })
            .await
    }

    async fn session(&self, token_hash: &[u8]) -> Result<Option<SessionRow>> {
        let h = token_hash.to_vec();
        self.data
            .read(move |c| {
                c.query_row(
                    "SELECT token_hash, tenant, user_id, created_at, last_seen_at, expires_at, mfa_at, revoked
                     FROM sessions WHERE token_hash = ?1",
                    [h],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
                )
                .optional()?
                .map(to_session)
                .transpose()
            })
            .await
    }

    async fn update_session(&self, s: &SessionRow) -> Result<bool> {
        let s = s.clone();
        self.data
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE sessions SET last_seen_at = ?2, mfa_at = ?3, revoked = ?4 WHERE token_hash = ?1",
                    params![s.token_hash, s.last_seen_at, s.mfa_at, s.revoked],
                )? == 1)
            })
            .await
    }

    async fn revoke_sessions(&self, tenant: TenantId, user: PrincipalId) -> Result<u64> {
        self.data
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE sessions SET revoked = 1 WHERE tenant = ?1 AND user_id = ?2 AND revoked = 0",
                    params![tenant.as_bytes().as_slice(), user.as_bytes().as_slice()],
                )? as u64)
            })
            .await
    }

    async fn put_policy(&self, p: &PolicyRow) -> Result<()> {
        let p = p.clone();
        self.data
            .write(move |c| {
                c.execute(
                    "INSERT INTO policies (tenant, version, document, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![p.tenant.as_bytes().as_slice(), p.version, p.document, p.created_by, p.created_at],
                )
                .map_err(|e| match Error::from(e) {
                    Error::Conflict(_) => Error::Conflict("policy version"),
                    other => other,
                })?;
                Ok(())
            })
            .await
    }

    async fn policy(&self, tenant: TenantId) -> Result<Option<PolicyRow>> {
        self.data
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT version, document, created_by, created_at FROM policies WHERE tenant = ?1 ORDER BY version DESC LIMIT 1",
                    [tenant.as_bytes().as_slice()],
                    |r| Ok(PolicyRow { tenant, version: r.get(0)?, document: r.get(1)?, created_by: r.get(2)?, created_at: r.get(3)? }),
                )
                .optional()?)
            })
            .await
    }

    async fn note_subject_access(
        &self,
        tenant: TenantId,
        principal: PrincipalId,
        day: i64,
        subjects: &[SubjectId],
    ) -> Result<u64> {
        let subjects = subjects.to_vec();
        self.data
            .write_off_chain(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let (t, p) = (tenant.as_bytes().as_slice(), principal.as_bytes().as_slice());
                {
                    let mut st = tx.prepare_cached("INSERT OR IGNORE INTO subject_access (tenant, principal, day, subject) VALUES (?1, ?2, ?3, ?4)")?;
                    for s in &subjects {
                        st.execute(params![t, p, day, s.as_bytes().as_slice()])?;
                    }
                }
                let n: u64 = tx.query_row(
                    "SELECT COUNT(*) FROM subject_access WHERE tenant = ?1 AND principal = ?2 AND day = ?3",
                    params![t, p, day],
                    |r| r.get(0),
                )?;
                tx.commit()?;
                Ok(n)
            })
            .await
    }

    async fn append_audit(&self, events: Arc<Vec<AuditEvent>>) -> Result<Vec<StoredEvent>> {
        self.data.stage(events).await
    }

    async fn audit_probe(&self) -> Result<()> {
        self.data
            .with_writer(|w| w.staging.as_ref().map_or(Ok(()), |s| locked(s)?.probe()))
            .await?;
        self.data
            .write(|c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // A trial row that is never committed: it exercises the same table, triggers
                // and disk as a real append.
                tx.execute(
                    "INSERT INTO audit_runs (tenant, first_seq, last_seq, events, hashes)
                     VALUES (X'00', -1, -1, X'', X'')",
                    [],
                )?;
                tx.rollback()?;
                Ok(())
            })
            .await
    }

    async fn audit_head(&self, tenant: TenantId) -> Result<Option<(u64, [u8; 32])>> {
        self.data.flush_staged().await?;
        self.data
            .read(move |c| {
                // A chain's first event makes its head row: none is at 0.
                let head = chain_head(c, tenant.as_bytes())?;
                Ok((head.0 > 0).then_some(head))
            })
            .await
    }

    async fn audit_events(
        &self,
        tenant: TenantId,
        f: &AuditFilter,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let f = f.clone();
        self.data.flush_staged().await?;
        self.data
            .read(move |c| blocks::search(c, tenant.as_bytes(), &f, after_seq, limit))
            .await
    }

    async fn add_checkpoint(&self, cp: &Checkpoint) -> Result<()> {
        // A checkpoint of staged events goes in with the move that completes them, without
        // waiting for it; one of events all in the table goes in now.
        if let Some(s) = self.data.staging.clone() {
            let c = cp.clone();
            let deferred = tokio::task::spawn_blocking(move || locked(&s).map(|mut g| g.defer(&c)))
                .await
                .map_err(|_| Error::Unavailable("sqlite task failed".into()))??;
            if deferred {
                let _ = self.data.wrote.try_send(());
                return Ok(());
            }
        }
        let cp = cp.clone();
        self.data.write(move |c| insert_checkpoint(c, &cp)).await
    }

    async fn checkpoints(&self, tenant: TenantId) -> Result<Vec<Checkpoint>> {
        self.data.flush_staged().await?;
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached("SELECT seq, CAST(hash AS BLOB), at_ms, CAST(key_id AS BLOB), CAST(signature AS BLOB) FROM audit_checkpoints WHERE tenant = ?1 ORDER BY seq")?;
                let rows = st.query_map([tenant.as_bytes().as_slice()], |r| checkpoint_row(*tenant.as_bytes(), r))?.collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter().map(to_checkpoint).collect()
            })
            .await
    }

    async fn add_alert(&self, a: &AlertRow) -> Result<()> {
        let a = a.clone();
        self.data
            .write(move |c| {
                c.execute(
                    "INSERT INTO alerts (tenant, id, kind, principal, at_ms, events, detail, state, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![a.tenant.as_bytes().as_slice(), a.id.as_bytes().as_slice(), a.kind, a.principal, a.at_ms, a.events, a.detail, a.state, a.updated_at],
                )?;
                Ok(())
            })
            .await
    }

    async fn alerts(
        &self,
        tenant: TenantId,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AlertRow>> {
        let state = state.map(str::to_owned);
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT id, kind, principal, at_ms, events, detail, state, updated_at FROM alerts
                     WHERE tenant = ?1 AND (?2 IS NULL OR state = ?2) ORDER BY at_ms DESC, id DESC LIMIT ?3",
                )?;
                let rows = st
                    .query_map(params![tenant.as_bytes().as_slice(), state, limit as i64], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter()
                    .map(|(id, kind, principal, at_ms, events, detail, state, updated_at)| {
                        Ok(AlertRow { tenant, id: AlertId::from_bytes(id16(id, "alerts")?), kind, principal, at_ms, events, detail, state, updated_at })
                    })
                    .collect()
            })
            .await
    }

    async fn set_alert_state(
        &self,
        tenant: TenantId,
        id: AlertId,
        state: &str,
        at_ms: i64,
    ) -> Result<bool> {
        let state = state.to_owned();
        self.data
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE alerts SET state = ?3, updated_at = ?4 WHERE tenant = ?1 AND id = ?2",
                    params![
                        tenant.as_bytes().as_slice(),
                        id.as_bytes().as_slice(),
                        state,
                        at_ms
                    ],
                )? == 1)
            })
            .await
    }

    async fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.data
            .write(move |c| {
                c.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, value],
                )?;
                Ok(())
            })
            .await
    }

    async fn prune_audit(&self, tenant: TenantId, seq: u64) -> Result<u64> {
        self.data
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let seq = seq.min(i64::MAX as u64) as i64;
                blocks::prune(&tx, tenant.as_bytes(), seq)?;
                let n = runs::prune(&tx, tenant.as_bytes(), seq)?;
                tx.commit()?;
                Ok(n)
            })
            .await
    }

    async fn expire_session_mfa(&self, tenant: TenantId, user: PrincipalId) -> Result<u64> {
        self.data
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE sessions SET mfa_at = 0 WHERE tenant = ?1 AND user_id = ?2 AND revoked = 0",
                    params![tenant.as_bytes().as_slice(), user.as_bytes().as_slice()],
                )? as u64)
            })
            .await
    }

    async fn create_incident(&self, r: &IncidentRow) -> Result<()> {
        let r = r.clone();
        self.data
            .write(move |c| {
                c.execute(
                    "INSERT INTO incidents (tenant, id, doc, version, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![r.tenant.as_bytes().as_slice(), r.id.as_bytes().as_slice(), r.doc, r.version, r.created_at],
                )?;
                Ok(())
            })
            .await
    }

    async fn incident(&self, tenant: TenantId, id: IncidentId) -> Result<Option<IncidentRow>> {
        self.data
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT doc, version, created_at FROM incidents WHERE tenant = ?1 AND id = ?2",
                    params![tenant.as_bytes().as_slice(), id.as_bytes().as_slice()],
                    |r| {
                        Ok(IncidentRow {
                            tenant,
                            id,
                            doc: r.get(0)?,
                            version: r.get(1)?,
                            created_at: r.get(2)?,
                        })
                    },
                )
                .optional()?)
            })
            .await
    }

    async fn incidents(&self, tenant: TenantId) -> Result<Vec<IncidentRow>> {
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached("SELECT id, doc, version, created_at FROM incidents WHERE tenant = ?1 ORDER BY created_at DESC, id DESC")?;
                let rows = st
                    .query_map([tenant.as_bytes().as_slice()], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter()
                    .map(|(id, doc, version, created_at)| Ok(IncidentRow { tenant, id: IncidentId::from_bytes(id16(id, "incidents")?), doc, version, created_at }))
                    .collect()
            })
            .await
    }

    async fn update_incident(&self, r: &IncidentRow, expected_version: i64) -> Result<bool> {
        let r = r.clone();
        self.data
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE incidents SET doc = ?3, version = ?4 WHERE tenant = ?1 AND id = ?2 AND version = ?5",
                    params![r.tenant.as_bytes().as_slice(), r.id.as_bytes().as_slice(), r.doc, r.version, expected_version],
                )? == 1)
            })
            .await
    }

    async fn insert_notices(&self, notices: &[NoticeRow]) -> Result<u64> {
        let rows = notices.to_vec();
        self.data
            .write(move |c| {
                let tx = c.transaction()?;
                let mut n = 0;
                {
                    let mut st = tx.prepare_cached(
                        "INSERT OR IGNORE INTO notices (tenant, incident, key, doc, version, due_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?;
                    for r in &rows {
                        n += st.execute(params![r.tenant.as_bytes().as_slice(), r.incident.as_bytes().as_slice(), r.key, r.doc, r.version, r.due_ms])? as u64;
                    }
                }
                tx.commit()?;
                Ok(n)
            })
            .await
    }

    async fn notices(&self, tenant: TenantId, incident: IncidentId) -> Result<Vec<NoticeRow>> {
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached("SELECT key, doc, version, due_ms FROM notices WHERE tenant = ?1 AND incident = ?2 ORDER BY key")?;
                let rows = st
                    .query_map(params![tenant.as_bytes().as_slice(), incident.as_bytes().as_slice()], |r| {
                        Ok(NoticeRow { tenant, incident, key: r.get(0)?, doc: r.get(1)?, version: r.get(2)?, due_ms: r.get(3)? })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
    }

    async fn insert_tokens(
        &self,
        tokens: &[TokenRow],
        audit: &[AuditEvent],
    ) -> Result<(u64, Vec<StoredEvent>)> {
        let (rows, audit) = (tokens.to_vec(), audit.to_vec());
        self.data
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut n = 0;
                {
                    let mut st = tx.prepare_cached(
                        "INSERT OR IGNORE INTO tokens (tenant, scope, token, subject, sealed, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?;
                    for r in &rows {
                        n += st.execute(params![r.tenant.as_bytes().as_slice(), r.scope, r.token, token_subject(r.subject), r.sealed, r.created_at])? as u64;
                    }
                }
                let stored = append_audit_tx(&tx, &audit)?;
                tx.commit()?;
                Ok((n, stored))
            })
            .await
    }

    async fn tokens(
        &self,
        tenant: TenantId,
        scope: &str,
        tokens: &[String],
    ) -> Result<Vec<TokenRow>> {
        let (scope, tokens) = (scope.to_owned(), tokens.to_vec());
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached("SELECT CAST(subject AS BLOB), CAST(sealed AS BLOB), created_at FROM tokens WHERE tenant = ?1 AND scope = ?2 AND token = ?3 ORDER BY subject")?;
                let mut out = Vec::new();
                for token in tokens {
                    let rows = st
                        .query_map(params![tenant.as_bytes().as_slice(), scope, token], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get(2)?)))?
                        .collect::<rusqlite::Result<Vec<(Vec<u8>, Vec<u8>, i64)>>>()?;
                    for (subject, sealed, created_at) in rows {
                        out.push(TokenRow { tenant, scope: scope.clone(), token: token.clone(), subject: from_token_subject(&subject)?, sealed, created_at });
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn due_notices(
        &self,
        tenant: TenantId,
        incident: IncidentId,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<NoticeRow>> {
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached("SELECT key, doc, version, due_ms FROM notices WHERE tenant = ?1 AND incident = ?2 AND due_ms <= ?3 ORDER BY due_ms LIMIT ?4")?;
                let rows = st
                    .query_map(params![tenant.as_bytes().as_slice(), incident.as_bytes().as_slice(), now_ms, limit as i64], |r| {
                        Ok(NoticeRow { tenant, incident, key: r.get(0)?, doc: r.get(1)?, version: r.get(2)?, due_ms: r.get(3)? })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
    }

    async fn notice(
        &self,
        tenant: TenantId,
        incident: IncidentId,
        key: &str,
    ) -> Result<Option<NoticeRow>> {
        let key = key.to_owned();
        self.data
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT doc, version, due_ms FROM notices WHERE tenant = ?1 AND incident = ?2 AND key = ?3",
                    params![tenant.as_bytes().as_slice(), incident.as_bytes().as_slice(), key],
                    |r| Ok(NoticeRow { tenant, incident, key: key.clone(), doc: r.get(0)?, version: r.get(1)?, due_ms: r.get(2)? }),
                )
                .optional()?)
            })
            .await
    }

    async fn update_notice(&self, r: &NoticeRow, expected_version: i64) -> Result<bool> {
        let r = r.clone();
        self.data
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE notices SET doc = ?4, version = ?5, due_ms = ?7 WHERE tenant = ?1 AND incident = ?2 AND key = ?3 AND version = ?6",
                    params![r.tenant.as_bytes().as_slice(), r.incident.as_bytes().as_slice(), r.key, r.doc, r.version, expected_version, r.due_ms],
                )? == 1)
            })
            .await
    }

    async fn subject_records(
        &self,
        tenant: TenantId,
        collection: &str,
        subjects: &[SubjectId],
    ) -> Result<Vec<RecordRow>> {
        let (collection, subjects) = (collection.to_owned(), subjects.to_vec());
        self.data
            .read(move |c| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM records r WHERE r.tenant = ?1 AND r.subject = ?2 AND r.collection = ?3 ORDER BY r.created_at, r.id"
                ))?;
                let mut out = Vec::new();
                for s in &subjects {
                    let rows = st
                        .query_map(params![tenant.as_bytes().as_slice(), s.as_bytes().as_slice(), collection], record_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    for row in rows {
                        out.push(to_record(row)?);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn subject_ids(
        &self,
        tenant: TenantId,
        after: Option<SubjectId>,
        limit: usize,
    ) -> Result<Vec<SubjectId>> {
        self.keys
            .read(move |c| {
                let mut st = c.prepare_cached("SELECT subject FROM subject_keys WHERE tenant = ?1 AND subject > ?2 ORDER BY subject LIMIT ?3")?;
                let after = after.map_or_else(Vec::new, |s| s.as_bytes().to_vec());
                let rows = st
                    .query_map(params![tenant.as_bytes().as_slice(), after, limit as i64], |r| r.get::<_, Vec<u8>>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter().map(|b| Ok(SubjectId::from_bytes(id16(b, "subject_keys")?))).collect()
            })
            .await
    }
}

/// The `subject` column of a vault token: the subject's id, or 16 zero bytes for none.
fn token_subject(s: Option<SubjectId>) -> Vec<u8> {
    s.map_or_else(|| vec![0; 16], |s| s.as_bytes().to_vec())
}

fn from_token_subject(b: &[u8]) -> Result<Option<SubjectId>> {
    let id = id16(b.to_vec(), "tokens")?;
    Ok((id != [0; 16]).then(|| SubjectId::from_bytes(id)))
}
