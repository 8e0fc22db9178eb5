use boveda_store::{Store, conformance, postgres::PostgresStore, sqlite::SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    conformance::run(&store, "sqlite").await;
    conformance::sqlite_subject_index(&store).await;
    // The index caught up for real: every tenant's mark is its head, and the rows are there.
    store.index_audit_subjects().await.unwrap();
    let c = rusqlite::Connection::open(dir.path().join("data.db")).unwrap();
    let lagging: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM audit_heads h LEFT JOIN audit_subjects_indexed i USING (tenant)
             WHERE COALESCE(i.seq, 0) <> h.seq",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(lagging, 0);
    let rows: i64 = c
        .query_row("SELECT COUNT(*) FROM audit_subjects", [], |r| r.get(0))
        .unwrap();
    assert!(rows >= 5, "{rows}");
    assert_eq!(store.backend(), "sqlite");
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
