use boveda_store::{Store, conformance, postgres::PostgresStore, sqlite::SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    conformance::run(&store, "sqlite").await;
    conformance::sqlite_audit_blocks(&store).await;
    // The blocks caught up for real: every tenant has fewer than a block after its mark, and
    // the summaries are there.
    store.index_audit().await.unwrap();
    let c = rusqlite::Connection::open(dir.path().join("data.db")).unwrap();
    let lagging: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM audit_heads h LEFT JOIN audit_block_marks m USING (tenant)
             WHERE h.seq - COALESCE(m.seq, 0) >= 1024",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(lagging, 0);
    let blocks: i64 = c
        .query_row("SELECT COUNT(*) FROM audit_blocks", [], |r| r.get(0))
        .unwrap();
    assert!(blocks >= 2, "{blocks}");
    assert_eq!(store.backend(), "sqlite");
}

/// An allowed read's audit event of `tenant`.
fn read_event(tenant: [u8; 16]) -> boveda_store::AuditEvent {
    boveda_store::AuditEvent::new(
        tenant,
        0,
        "p",
        "service",
        "record.read",
        boveda_audit::Outcome::Allowed,
        "r",
    )
}

/// Events staged while the checkpointer thread's move is not yet due are moved in anyway,
/// within about a second, with no append or write after them to nudge it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_staged_audit_events_are_moved_in_without_another_nudge() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let tenant = [7u8; 16];
    let c = rusqlite::Connection::open(dir.path().join("data.db")).unwrap();
    // The table as a copy would see it (store queries move staged events first).
    let in_table = |seq: i64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let n: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM audit_runs WHERE tenant = ?1 AND ?2 BETWEEN first_seq AND last_seq",
                    rusqlite::params![&tenant[..], seq],
                    |r| r.get(0),
                )
                .unwrap();
            if n == 1 {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let event = || std::sync::Arc::new(vec![read_event(tenant)]);
    store.append_audit(event()).await.unwrap();
    assert!(in_table(1), "the first event was not moved in");
    // Appended just after a move: its own is not due for about a second.
    store.append_audit(event()).await.unwrap();
    assert!(
        in_table(2),
        "an event staged between moves was never moved in"
    );
}

/// Appends faster than the checkpointer thread moves them: once the staging file holds 65,536
/// records the appends move the staged events themselves (so that it starts over, whatever
/// the checkpointer thread moved meanwhile), and the chain stays whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_staged_audit_events_are_bounded_under_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let tenant = [9u8; 16];
    let mut last = None;
    for _ in 0..15 {
        let batch: Vec<boveda_store::AuditEvent> = (0..5_000).map(|_| read_event(tenant)).collect();
        last = store
            .append_audit(std::sync::Arc::new(batch))
            .await
            .unwrap()
            .pop();
    }
    let staged = std::fs::metadata(dir.path().join("data.db-audit"))
        .unwrap()
        .len();
    let record = 60 + last.as_ref().unwrap().encoded.len() as u64;
    assert!(staged <= (65_536 + 5_000) * record, "{staged} bytes staged");
    let id = boveda_store::TenantId::from_bytes(tenant);
    let head = store.audit_head(id).await.unwrap().unwrap();
    assert_eq!(head, (75_000, last.unwrap().hash));
    let c = rusqlite::Connection::open(dir.path().join("data.db")).unwrap();
    let (n, max): (i64, i64) = c
        .query_row(
            "SELECT SUM(last_seq - first_seq + 1), MAX(last_seq) FROM audit_runs WHERE tenant = ?1",
            [&tenant[..]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (n, max),
        (75_000, 75_000),
        "every event in the table, no gap"
    );
}

/// PostgreSQL runs in CI (`.ci/run` starts it and fails when it cannot reach it); the URL comes
/// from `BOVEDA_TEST_POSTGRES_URL`, defaulting to this machine's server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    let url = boveda_store::postgres::test_url();
    let schema = format!("conf_{}", uuid::Uuid::now_v7().simple());
    let store = PostgresStore::connect_in_schema(&url, None, &schema)
        .await
        .unwrap();
    conformance::run(&store, "pg").await;
    assert_eq!(store.backend(), "postgres");
    store.drop_schema().await.unwrap();
}
