//! The audit log through the product: one event per data request, access history, verify,
//! a tamper matrix on both backends, fail-closed and recovery.

use crate::harness::{BOTH, Backend, Server};
use boveda_core::AuditReport;
use boveda_core::offline::{Source, verify};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;

struct Log {
    s: Server,
    tenant: String,
    key: String,
}

async fn workload(backend: Backend) -> (Log, BTreeMap<String, usize>) {
    let s = Server::start(backend).await;
    let (tenant, key) = s.tenant("audited").await;
    s.customers(&key).await;
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    let mut n = |a: &str| *expected.entry(a.to_owned()).or_default() += 1;
    let w = s
        .ok(
            &key,
            Method::POST,
            "/v1/collections/customers/records?purpose=billing",
            Some(json!({"records": [
            {"fields": {"email": "uno@example.com", "phone": "13800000001"}},
            {"fields": {"email": "dos@example.com", "phone": "13800000002"}},
            {"fields": {"email": "tres@example.com"}}]})),
        )
        .await;
    n("record.write");
    let ids: Vec<String> = w["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let subjects: Vec<String> = w["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["subject_id"].as_str().unwrap().to_owned())
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let view = ["plain", "masked", "redacted"][i % 3];
        s.ok(
            &key,
            Method::GET,
            &format!("/v1/collections/customers/records/{id}?purpose=customer_support&view={view}"),
            None,
        )
        .await;
        n("record.read");
    }
    s.ok(
        &key,
        Method::POST,
        "/v1/collections/customers/records/batch-get?purpose=billing",
        Some(json!({"ids": ids})),
    )
    .await;
    n("record.read");
    s.ok(
        &key,
        Method::POST,
        "/v1/collections/customers/search?purpose=customer_support",
        Some(json!({"field": "email", "value": "uno@example.com"})),
    )
    .await;
    n("record.search");
    s.ok(
        &key,
        Method::POST,
        "/v1/collections/customers/count?purpose=analytics",
        Some(json!({"field": "phone", "values": ["13800000001"]})),
    )
    .await;
    n("record.count");
    s.ok(
        &key,
        Method::PATCH,
        &format!(
            "/v1/collections/customers/records/{}?purpose=billing",
            ids[1]
        ),
        Some(json!({"fields": {"phone": "13800000009"}})),
    )
    .await;
    n("record.update");
    s.ok(
        &key,
        Method::DELETE,
        &format!(
            "/v1/collections/customers/records/{}?purpose=billing",
            ids[2]
        ),
        None,
    )
    .await;
    n("record.delete");
    s.ok(
        &key,
        Method::DELETE,
        &format!("/v1/subjects/{}?purpose=data_subject_request", subjects[1]),
        None,
    )
    .await;
    n("subject.erase");
    s.ok(&key, Method::POST, "/v1/keys/rotate", None).await;
    n("key.rotate");
    // Requests that touch no personal data leave no data event: a bad purpose, an unknown id.
    s.call(
        &key,
        Method::GET,
        &format!(
            "/v1/collections/customers/records/{}?purpose=gossip",
            ids[0]
        ),
        None,
    )
    .await;
    (Log { s, tenant, key }, expected)
}

async fn events(log: &Log, query: &str) -> Vec<Value> {
    let v = log
        .s
        .ok(
            &log.key,
            Method::GET,
            &format!("/v1/audit/events?limit=1000{query}"),
            None,
        )
        .await;
    v["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_data_request_leaves_exactly_one_event_without_values() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (log, expected) = workload(backend).await;
        let all = events(&log, "").await;
        let mut counted: BTreeMap<String, usize> = BTreeMap::new();
        for e in &all {
            let action = e["event"]["action"].as_str().unwrap();
            if action.starts_with("record.")
                || action.starts_with("subject.")
                || action.starts_with("key.")
            {
                *counted.entry(action.to_owned()).or_default() += 1;
            }
        }
        assert_eq!(counted, expected, "{backend:?}");
        let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gapless");
        let text = serde_json::to_string(&all).unwrap();
        for value in ["uno@example.com", "13800000001", "+8613800000009", "dos@"] {
            assert!(!text.contains(value), "{value} in the audit log");
        }
        let read = all
            .iter()
            .find(|e| e["event"]["action"] == "record.read")
            .unwrap();
        assert_eq!(read["event"]["purpose"], "customer_support");
        assert_eq!(read["event"]["view"], "plain");
        assert!(
            read["event"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "phone")
        );
        assert_eq!(read["event"]["subjects"].as_array().unwrap().len(), 1);
        let r = log
            .s
            .ok(&log.key, Method::GET, "/v1/audit/verify", None)
            .await;
        assert_eq!(r["status"], "intact", "{r}");
        // Filters.
        let only_reads = events(&log, "&action=record.read").await;
        assert_eq!(only_reads.len(), expected["record.read"]);
        let denied = events(&log, "&outcome=denied").await;
        assert!(denied.is_empty());
        log.s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_history_lists_who_read_what_why_and_how() {
    let s = Server::start(Backend::Sqlite).await;
    let (_t, key) = s.tenant("history").await;
    s.customers(&key).await;
    let w = s.ok(&key, Method::POST, "/v1/collections/customers/records?purpose=billing", Some(json!({"records": [{"fields": {"email": "h@example.com", "phone": "13800000001"}}]}))).await;
    let (rid, sid) = (
        w["records"][0]["id"].as_str().unwrap(),
        w["records"][0]["subject_id"].as_str().unwrap(),
    );
    s.ok(
        &key,
        Method::GET,
        &format!("/v1/collections/customers/records/{rid}?purpose=customer_support&view=masked"),
        None,
    )
    .await;
    let h = s
        .ok(
            &key,
            Method::GET,
            &format!("/v1/subjects/{sid}/access-history"),
            None,
        )
        .await;
    let acc = h["accesses"].as_array().unwrap();
    assert_eq!(
        acc.iter()
            .map(|a| a["action"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["record.write", "record.read"]
    );
    assert_eq!(acc[1]["purpose"], "customer_support");
    assert_eq!(acc[1]["view"], "masked");
    assert_eq!(acc[1]["roles"], json!(["service"]));
    let (st, _) = s
        .call(
            &key,
            Method::GET,
            "/v1/subjects/01a22789-0000-7000-8000-000000000000/access-history",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    s.stop().await;
}

fn sqlite(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamper_matrix_on_sqlite_is_detected_and_clean_logs_never_alarm() {
    let (log, _) = workload(Backend::Sqlite).await;
    for _ in 0..5 {
        log.s
            .ok(&log.key, Method::GET, "/v1/collections", None)
            .await;
    }
    log.s
        .ok(&log.key, Method::POST, "/v1/audit/checkpoints", None)
        .await;
    let tenant: boveda_core::TenantId = log.tenant.parse().unwrap();
    let key = log.s.vault.audit_public_key();
    // A few more events after the checkpoint: the unsigned tail.
    let ids = events(&log, "&action=record.read").await;
    let rid = ids[0]["event"]["records"][0].as_str().unwrap().to_owned();
    for _ in 0..3 {
        log.s
            .ok(
                &log.key,
                Method::GET,
                &format!("/v1/collections/customers/records/{rid}?purpose=billing"),
                None,
            )
            .await;
    }
    let dir = log.s.dir.clone();
    let (_cfg, tmp) = log.s.stop().await;
    let data = dir.join("data.db");
    // Fold the journal into the file, so that a plain copy of data.db is the whole database.
    sqlite(&data)
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state.json");

    // Clean: intact, a hundred times, and the state is saved.
    for _ in 0..100 {
        let r = verify(&Source::Sqlite(data.clone()), tenant, &key, Some(&state))
            .await
            .unwrap();
        assert!(r.is_intact(), "false alarm: {r:?}");
    }
    let AuditReport::Intact {
        last_seq,
        checkpoint_seq,
        ..
    } = verify(&Source::Sqlite(data.clone()), tenant, &key, None)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(
        checkpoint_seq > 2 && last_seq > checkpoint_seq,
        "{checkpoint_seq} {last_seq}"
    );
    let mid = checkpoint_seq / 2;
    let t = tenant.as_bytes().to_vec();

    type Tamper = fn(&rusqlite::Connection, &[u8], u64, u64) -> usize;
    let cases: Vec<(&str, Tamper)> = vec![
        // A byte of each column of the row that holds the middle event.
        ("flip a byte of an event", |c, t, mid, _| {
            flip(c, t, mid, "events")
        }),
        ("flip a byte of a stored hash", |c, t, mid, _| {
            flip(c, t, mid, "hashes")
        }),
        ("flip a byte of a run's tenant", |c, t, mid, _| {
            flip(c, t, mid, "tenant")
        }),
        ("change a run's first sequence number", |c, t, mid, _| {
            c.execute(
                "UPDATE audit_runs SET first_seq = first_seq + 1 WHERE rowid = ?1",
                [run_of(c, t, mid)],
            )
            .unwrap()
        }),
        ("change a run's last sequence number", |c, t, mid, _| {
            c.execute(
                "UPDATE audit_runs SET last_seq = last_seq - 1 WHERE rowid = ?1",
                [run_of(c, t, mid)],
            )
            .unwrap()
        }),
        (
            "give a run a sequence number that is not an integer",
            |c, t, mid, _| {
                c.execute(
                    "UPDATE audit_runs SET last_seq = last_seq + 0.5 WHERE rowid = ?1",
                    [run_of(c, t, mid)],
                )
                .unwrap()
            },
        ),
        (
            "move the first run below the chain's start",
            |c, t, _, _| {
                c.execute(
                    "UPDATE audit_runs SET first_seq = 0 WHERE tenant = ?1 AND first_seq = 1",
                    [t],
                )
                .unwrap()
            },
        ),
        ("delete a middle run", |c, t, mid, _| {
            c.execute(
                "DELETE FROM audit_runs WHERE rowid = ?1",
                [run_of(c, t, mid)],
            )
            .unwrap()
        }),
        // Rows rewritten whole, as one who knows the format would.
        ("delete a middle event", |c, t, mid, _| {
            let mut events = stored(c, t);
            events.retain(|e| e.0 != mid);
            restore(c, t, &events)
        }),
        ("delete the tail", |c, t, _, cp| {
            let mut events = stored(c, t);
            events.retain(|e| e.0 <= cp - 2);
            restore(c, t, &events)
        }),
        ("swap two events", |c, t, mid, _| {
            let mut events = stored(c, t);
            let i = events.iter().position(|e| e.0 == mid).unwrap();
            let (a, b) = (events[i].clone(), events[i + 1].clone());
            (events[i].1, events[i].2) = (b.1, b.2);
            (events[i + 1].1, events[i + 1].2) = (a.1, a.2);
            restore(c, t, &events)
        }),
        ("edit a checkpoint", |c, _, _, cp| {
            c.execute("UPDATE audit_checkpoints SET signature = X'00' || substr(signature, 2) WHERE seq = ?1", [cp as i64]).unwrap()
        }),
        ("move a checkpoint", |c, _, _, cp| {
            c.execute(
                "UPDATE audit_checkpoints SET seq = seq - 1 WHERE seq = ?1",
                [cp as i64],
            )
            .unwrap()
        }),
    ];
    for (name, tamper) in cases {
        let copy = work.path().join(format!("{}.db", name.replace(' ', "-")));
        std::fs::copy(&data, &copy).unwrap();
        let c = sqlite(&copy);
        let n = tamper(&c, &t, mid, checkpoint_seq);
        assert!(n > 0, "{name}: the tamper changed nothing");
        drop(c);
        let r = verify(&Source::Sqlite(copy.clone()), tenant, &key, Some(&state))
            .await
            .unwrap();
        assert!(!r.is_intact(), "{name} not detected");
    }

    // A forged event with recomputed hashes (no signing key): the checkpoint catches it.
    let copy = work.path().join("forged.db");
    std::fs::copy(&data, &copy).unwrap();
    {
        let c = sqlite(&copy);
        let mut prev = boveda_audit_genesis(&t);
        let mut events = stored(&c, &t);
        for (seq, enc, hash) in &mut events {
            let mut event = decode(enc);
            if *seq == mid {
                event.purpose = Some("forged".into());
            }
            *enc = event.encode();
            *hash = link(&prev, *seq, enc);
            prev = *hash;
        }
        restore(&c, &t, &events);
    }
    let r = verify(&Source::Sqlite(copy), tenant, &key, None)
        .await
        .unwrap();
    assert!(
        matches!(r, AuditReport::Broken { .. }),
        "forged chain not detected: {r:?}"
    );

    // An older copy put back: the saved state sees the rollback.
    let old = work.path().join("old.db");
    std::fs::copy(&data, &old).unwrap();
    {
        let c = sqlite(&old);
        let mut events = stored(&c, &t);
        events.retain(|e| e.0 < last_seq);
        restore(&c, &t, &events);
    }
    let r = verify(&Source::Sqlite(old), tenant, &key, Some(&state))
        .await
        .unwrap();
    assert!(!r.is_intact(), "rollback not detected: {r:?}");
    drop(tmp);
}

/// A tenant's events in a SQLite database, as (sequence number, encoding, hash).
fn stored(c: &rusqlite::Connection, t: &[u8]) -> Vec<(u64, Vec<u8>, [u8; 32])> {
    let mut st = c
        .prepare("SELECT first_seq, last_seq, events, hashes FROM audit_runs WHERE tenant = ?1 ORDER BY first_seq")
        .unwrap();
    let rows: Vec<(i64, i64, Vec<u8>, Vec<u8>)> = st
        .query_map([t], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.iter()
        .flat_map(|(first, last, events, hashes)| {
            boveda_store::sqlite::runs::unpack(*first, *last, events, hashes)
                .unwrap()
                .into_iter()
                .map(|(seq, enc, hash)| (seq, enc.to_vec(), *hash))
        })
        .collect()
}

/// Puts a tenant's events back as the only ones, one run each; returns how many.
fn restore(c: &rusqlite::Connection, t: &[u8], events: &[(u64, Vec<u8>, [u8; 32])]) -> usize {
    c.execute("DELETE FROM audit_runs WHERE tenant = ?1", [t])
        .unwrap();
    for (seq, enc, hash) in events {
        let (events, hashes) = boveda_store::sqlite::runs::pack([(&enc[..], hash)]);
        c.execute(
            "INSERT INTO audit_runs (tenant, first_seq, last_seq, events, hashes) VALUES (?1, ?2, ?2, ?3, ?4)",
            rusqlite::params![t, *seq as i64, events, hashes],
        )
        .unwrap();
    }
    events.len()
}

/// The rowid of the run that holds a tenant's event `seq`.
fn run_of(c: &rusqlite::Connection, t: &[u8], seq: u64) -> i64 {
    c.query_row(
        "SELECT rowid FROM audit_runs WHERE tenant = ?1 AND first_seq <= ?2 ORDER BY first_seq DESC LIMIT 1",
        rusqlite::params![t, seq as i64],
        |r| r.get(0),
    )
    .unwrap()
}

/// Flips a byte in the middle of a column of the run that holds `seq`.
fn flip(c: &rusqlite::Connection, t: &[u8], seq: u64, column: &str) -> usize {
    let rowid = run_of(c, t, seq);
    let mut bytes: Vec<u8> = c
        .query_row(
            &format!("SELECT {column} FROM audit_runs WHERE rowid = ?1"),
            [rowid],
            |r| r.get(0),
        )
        .unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x40;
    c.execute(
        &format!("UPDATE audit_runs SET {column} = ?1 WHERE rowid = ?2"),
        rusqlite::params![bytes, rowid],
    )
    .unwrap()
}

fn decode(enc: &[u8]) -> boveda_store::AuditEvent {
    boveda_store::AuditEvent::decode(enc).unwrap()
}

fn boveda_audit_genesis(t: &[u8]) -> [u8; 32] {
    let t: [u8; 16] = t.try_into().unwrap();
    boveda_audit::genesis(&t)
}

fn link(prev: &[u8; 32], seq: u64, enc: &[u8]) -> [u8; 32] {
    boveda_audit::link_hash(prev, seq, enc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamper_on_postgres_is_detected() {
    let (log, _) = workload(Backend::Postgres).await;
    log.s
        .ok(&log.key, Method::POST, "/v1/audit/checkpoints", None)
        .await;
    let tenant: boveda_core::TenantId = log.tenant.parse().unwrap();
    let key = log.s.vault.audit_public_key();
    let schema = log.s.cfg.storage.postgres_schema.clone();
    let url = boveda_store::postgres::test_url();
    let src = Source::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    };
    assert!(verify(&src, tenant, &key, None).await.unwrap().is_intact());
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let t = tenant.as_bytes().to_vec();
    let row = client
        .query_one(
            &format!(
                "SELECT encoded, hash FROM {schema}.audit_events WHERE tenant = $1 AND seq = 3"
            ),
            &[&t],
        )
        .await
        .unwrap();
    let (enc, hash): (Vec<u8>, Vec<u8>) = (row.get(0), row.get(1));
    let mut bad = enc.clone();
    bad[25] ^= 1;
    client
        .execute(
            &format!("UPDATE {schema}.audit_events SET encoded = $2 WHERE tenant = $1 AND seq = 3"),
            &[&t, &bad],
        )
        .await
        .unwrap();
    assert!(
        !verify(&src, tenant, &key, None).await.unwrap().is_intact(),
        "modified event"
    );
    client
        .execute(
            &format!("UPDATE {schema}.audit_events SET encoded = $2 WHERE tenant = $1 AND seq = 3"),
            &[&t, &enc],
        )
        .await
        .unwrap();
    assert!(
        verify(&src, tenant, &key, None).await.unwrap().is_intact(),
        "restored"
    );
    client
        .execute(
            &format!("DELETE FROM {schema}.audit_events WHERE tenant = $1 AND seq = 3"),
            &[&t],
        )
        .await
        .unwrap();
    assert!(
        !verify(&src, tenant, &key, None).await.unwrap().is_intact(),
        "deleted event"
    );
    client
        .execute(
            &format!("INSERT INTO {schema}.audit_events (tenant, seq, encoded, hash, at_ms, principal, action, outcome) VALUES ($1, 3, $2, $3, 0, '', '', 'allowed')"),
            &[&t, &enc, &hash],
        )
        .await
        .unwrap();
    assert!(
        verify(&src, tenant, &key, None).await.unwrap().is_intact(),
        "restored"
    );
    client.execute(&format!("UPDATE {schema}.audit_checkpoints SET signature = '\\x00' || substring(signature from 2) WHERE tenant = $1"), &[&t]).await.unwrap();
    assert!(
        !verify(&src, tenant, &key, None).await.unwrap().is_intact(),
        "edited checkpoint"
    );
    let r = log
        .s
        .ok(&log.key, Method::GET, "/v1/audit/verify", None)
        .await;
    assert_eq!(r["status"], "broken", "the API verifier sees it too: {r}");
    log.s.stop().await;
}

/// Makes every write to the audit journal fail, or lifts that: a trigger on its table, and on
/// SQLite a directory where the staging file of the read path's events was.
async fn block_journal(s: &Server, on: bool) {
    match &s.cfg.storage.postgres_url {
        None => {
            let c = sqlite(&s.dir.join("data.db"));
            c.execute_batch(if on {
                "CREATE TRIGGER block_audit BEFORE INSERT ON audit_runs BEGIN SELECT RAISE(ABORT, 'journal blocked'); END;"
            } else {
                "DROP TRIGGER block_audit;"
            })
            .unwrap();
            let staging = s.dir.join("data.db-audit");
            if on {
                let _ = std::fs::remove_file(&staging);
                std::fs::create_dir(&staging).unwrap();
            } else {
                std::fs::remove_dir(&staging).unwrap();
            }
        }
        Some(url) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let schema = &s.cfg.storage.postgres_schema;
            let sql = if on {
                format!(
                    "CREATE FUNCTION {schema}.block_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'journal blocked'; END $$;
                     CREATE TRIGGER block_audit BEFORE INSERT ON {schema}.audit_events FOR EACH ROW EXECUTE FUNCTION {schema}.block_audit();"
                )
            } else {
                format!(
                    "DROP TRIGGER block_audit ON {schema}.audit_events; DROP FUNCTION {schema}.block_audit();"
                )
            };
            client.batch_execute(&sql).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_when_the_journal_cannot_be_written_then_recovers() {
    for backend in BOTH {
        let s = Server::start(backend).await;
        let (_t, key) = s.tenant("failclosed").await;
        s.customers(&key).await;
        let w = s.ok(&key, Method::POST, "/v1/collections/customers/records?purpose=billing", Some(json!({"records": [{"fields": {"email": "fc@example.com", "phone": "13811112222"}}]}))).await;
        let rid = w["records"][0]["id"].as_str().unwrap().to_owned();
        let read = format!("/v1/collections/customers/records/{rid}?purpose=billing&view=plain");
        s.ok(&key, Method::GET, &read, None).await;
        // The read's commit is in the metrics: its events and its time in the store.
        let metrics = s.metrics().await;
        let commits = |name: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        assert!(
            commits("boveda_audit_commit_events_count") >= 1.0,
            "{metrics}"
        );
        assert!(
            commits("boveda_audit_commit_events_sum") >= 1.0,
            "{metrics}"
        );
        assert!(
            commits("boveda_audit_commit_seconds_bucket{le=\"+Inf\"}") >= 1.0,
            "{metrics}"
        );

        block_journal(&s, true).await;
        let (st, v) = s.call(&key, Method::GET, &read, None).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("audit_unavailable")),
            "{v}"
        );
        assert!(
            !v.to_string().contains("fc@example.com") && !v.to_string().contains("13811112222"),
            "no plaintext without its event"
        );
        let (st, v) = s
            .call(
                &key,
                Method::POST,
                "/v1/collections/customers/records?purpose=billing",
                Some(json!({"records": [{"fields": {"email": "lost@example.com"}}]})),
            )
            .await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        let ready = s.get("/readyz").await;
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        let metrics = s.metrics().await;
        assert!(
            metrics.contains("boveda_audit_available 0"),
            "the metric says so"
        );

        block_journal(&s, false).await;
        let ready = s.get("/readyz").await;
        assert_eq!(
            ready.status(),
            StatusCode::OK,
            "readiness comes back by itself"
        );
        let v = s.ok(&key, Method::GET, &read, None).await;
        assert_eq!(v["fields"]["email"], "fc@example.com");
        // The refused write left nothing behind; the log is intact.
        let found = s
            .ok(
                &key,
                Method::POST,
                "/v1/collections/customers/search?purpose=billing",
                Some(json!({"field": "email", "value": "lost@example.com"})),
            )
            .await;
        assert!(found["matches"].as_array().unwrap().is_empty());
        assert_eq!(
            s.ok(&key, Method::GET, "/v1/audit/verify", None).await["status"],
            "intact"
        );
        s.stop().await;
    }
}

/// Two nodes on one PostgreSQL database append to the same tenant's chain at the same time:
/// no fork, no gap, and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_postgres_share_one_chain_without_forks_or_gaps() {
    let a = Server::start(Backend::Postgres).await;
    let (tenant, key) = a.tenant("multinode").await;
    a.customers(&key).await;
    // A second node: same database and schema, same root key, its own process state.
    let mut cfg = a.cfg.clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(a.dir.join("root.key"), dir.path().join("root.key")).unwrap();
    std::fs::copy(
        a.dir.join("bootstrap-operator.token"),
        dir.path().join("bootstrap-operator.token"),
    )
    .unwrap();
    cfg.data_dir = dir.path().to_path_buf();
    let b = Server::start_config(cfg, false).await;
    let w = a
        .ok(
            &key,
            Method::POST,
            "/v1/collections/customers/records?purpose=billing",
            Some(json!({"records": [{"fields": {"email": "n@example.com"}}]})),
        )
        .await;
    let rid = w["records"][0]["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for node in [&a, &b] {
        for _ in 0..4 {
            let (client, url, key, rid) = (
                node.client.clone(),
                node.url.clone(),
                key.clone(),
                rid.clone(),
            );
            tasks.push(tokio::spawn(async move {
                for _ in 0..15 {
                    let r = client
                        .get(format!(
                            "{url}/v1/collections/customers/records/{rid}?purpose=billing"
                        ))
                        .bearer_auth(&key)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = events(
        &Log {
            s: b,
            tenant: tenant.clone(),
            key: key.clone(),
        },
        "",
    )
    .await;
    let reads = all
        .iter()
        .filter(|e| e["event"]["action"] == "record.read")
        .count();
    assert_eq!(reads, 120, "every read of both nodes is in the one chain");
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gapless");
    let r = a.ok(&key, Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(r["status"], "intact", "{r}");
    a.stop().await;
}

/// Behaviour analytics over the live event stream: a burst of refusals raises an alert linked
/// to its events and, when configured, suspends the principal; a normal stream raises none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_denials_raise_an_alert_and_suspend_when_configured() {
    let received: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = std::sync::Arc::default();
    let hook = {
        let received = std::sync::Arc::clone(&received);
        axum::Router::new().route(
            "/alerts",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let received = std::sync::Arc::clone(&received);
                async move {
                    received.lock().unwrap().push(body);
                    StatusCode::OK
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = crate::harness::config(
        Backend::Sqlite,
        tmp.path(),
        &crate::harness::Options::default(),
    );
    cfg.set("vault.alert_suspend", "repeated_denials").unwrap();
    cfg.set(
        "audit.alert_webhook",
        &format!("http://127.0.0.1:{hook_port}/alerts"),
    )
    .unwrap();
    let s = Server::start_config(cfg, false).await;
    let (tenant, admin) = s.tenant("analytics").await;
    s.customers(&admin).await;
    let policy = json!({"rules": [
        {"id": "services", "effect": "allow", "roles": ["service"], "actions": ["*"], "resources": ["*"], "purposes": ["*"], "view": "plain"},
        {"id": "no-analytics-reads", "effect": "deny", "roles": ["reader"], "actions": ["read"], "resources": ["*"], "purposes": ["analytics"]},
        {"id": "reader", "effect": "allow", "roles": ["reader"], "actions": ["read"], "resources": ["*"], "purposes": ["*"], "view": "masked"}
    ]});
    s.ok(&admin, Method::PUT, "/v1/policy", Some(policy)).await;
    let reader = s
        .service_account(
            &tenant,
            json!({"name": "reader", "scopes": ["read"], "roles": ["reader"]}),
        )
        .await;
    let w = s
        .ok(
            &admin,
            Method::POST,
            "/v1/collections/customers/records?purpose=billing",
            Some(json!({"records": [{"fields": {"email": "a@example.com"}}]})),
        )
        .await;
    let rid = w["records"][0]["id"].as_str().unwrap().to_owned();
    // A normal stream: reads for an allowed purpose raise nothing.
    for _ in 0..20 {
        s.ok(
            &reader,
            Method::GET,
            &format!("/v1/collections/customers/records/{rid}?purpose=billing"),
            None,
        )
        .await;
    }
    assert!(
        s.ok(&admin, Method::GET, "/v1/alerts", None).await["alerts"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no false alarm"
    );
    // Refusals: more than ten within ten minutes raise the alert, and the response suspends.
    let mut last = StatusCode::OK;
    for _ in 0..11 {
        last = s
            .call(
                &reader,
                Method::GET,
                &format!("/v1/collections/customers/records/{rid}?purpose=analytics"),
                None,
            )
            .await
            .0;
    }
    assert_eq!(last, StatusCode::FORBIDDEN);
    let alerts = s
        .ok(&admin, Method::GET, "/v1/alerts?state=open", None)
        .await;
    let alert = &alerts["alerts"][0];
    assert_eq!(alert["kind"], "repeated_denials", "{alerts}");
    assert_eq!(
        alert["events"].as_array().unwrap().len(),
        11,
        "the alert links to the events that raised it"
    );
    let log = Log {
        s,
        tenant: tenant.clone(),
        key: admin.clone(),
    };
    let denied = events(&log, "&outcome=denied").await;
    let s = log.s;
    let denied_seqs: Vec<u64> = denied.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    for seq in alert["events"].as_array().unwrap() {
        assert!(denied_seqs.contains(&seq.as_u64().unwrap()));
    }
    let (st, _) = s
        .call(
            &reader,
            Method::GET,
            &format!("/v1/collections/customers/records/{rid}?purpose=billing"),
            None,
        )
        .await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "suspended by the configured response"
    );
    let id = alert["id"].as_str().unwrap();
    let mut sent = false;
    for _ in 0..100 {
        if received.lock().unwrap().iter().any(|b| {
            b["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["id"] == id))
        }) {
            sent = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(sent, "the alert reached the webhook");
    let (st, _) = s
        .call(
            &admin,
            Method::POST,
            &format!("/v1/alerts/{id}/resolve"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        s.ok(&admin, Method::GET, "/v1/alerts?state=resolved", None)
            .await["alerts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.stop().await;
}

/// Continuous export to a file and to a webhook that fails at first: every event arrives (at
/// least once), in order, and the lag metric is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_export_reaches_a_file_and_a_flaky_webhook() {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = {
        let (received, calls) = (Arc::clone(&received), Arc::clone(&calls));
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<Vec<Value>>| {
                let (received, calls) = (Arc::clone(&received), Arc::clone(&calls));
                async move {
                    // The first two deliveries fail: the exporter must retry, not skip.
                    if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    received.lock().unwrap().extend(body);
                    StatusCode::OK
                }
            }),
        )
    };
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = hook.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(hook, app).await.unwrap() });

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("siem.jsonl");
    let mut cfg = crate::harness::config(
        Backend::Sqlite,
        &tmp.path().join("data"),
        &crate::harness::Options::default(),
    );
    cfg.set("audit.export_file", file.to_str().unwrap())
        .unwrap();
    cfg.set(
        "audit.export_webhook",
        &format!("http://127.0.0.1:{}/hook", hook_addr.port()),
    )
    .unwrap();
    let s = Server::start_config(cfg, false).await;
    let (tenant, key) = s.tenant("exported").await;
    s.customers(&key).await;
    let w = s
        .ok(
            &key,
            Method::POST,
            "/v1/collections/customers/records?purpose=billing",
            Some(json!({"records": [{"fields": {"email": "x@example.com"}}]})),
        )
        .await;
    let rid = w["records"][0]["id"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        s.ok(
            &key,
            Method::GET,
            &format!("/v1/collections/customers/records/{rid}?purpose=billing"),
            None,
        )
        .await;
    }
    let log = Log { s, tenant, key };
    let head = events(&log, "").await.len();
    let s = log.s;
    let mut ok = false;
    for _ in 0..200 {
        let lines = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .count();
        let hooked = received.lock().unwrap().len();
        if lines >= head && hooked >= head {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "every event reached both sinks");
    let text = std::fs::read_to_string(&file).unwrap();
    let seqs: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        &seqs[..head],
        &(1..=head as u64).collect::<Vec<_>>()[..],
        "in order, none skipped"
    );
    assert!(!text.contains("x@example.com"));
    assert!(
        calls.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "the failed deliveries were retried"
    );
    let hooked: Vec<u64> = received
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(
        (1..=head as u64).all(|q| hooked.contains(&q)),
        "at least once to the webhook"
    );
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("boveda_audit_export_lag_events"),
        "the lag is a metric"
    );
    s.stop().await;
}

/// The throttle response: after the alert, a principal gets at most one data call a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_denials_can_throttle_instead() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = crate::harness::config(
        Backend::Sqlite,
        tmp.path(),
        &crate::harness::Options::default(),
    );
    cfg.set("vault.alert_throttle", "repeated_denials").unwrap();
    let s = Server::start_config(cfg, false).await;
    let (tenant, admin) = s.tenant("throttle").await;
    s.customers(&admin).await;
    s.ok(&admin, Method::PUT, "/v1/policy", Some(json!({"rules": [
        {"id": "services", "effect": "allow", "roles": ["service"], "actions": ["*"], "resources": ["*"], "purposes": ["*"], "view": "plain"},
        {"id": "reader", "effect": "allow", "roles": ["reader"], "actions": ["read"], "resources": ["*"], "purposes": ["billing"], "view": "masked"}
    ]}))).await;
    let reader = s
        .service_account(
            &tenant,
            json!({"name": "r", "scopes": ["read"], "roles": ["reader"]}),
        )
        .await;
    let w = s
        .ok(
            &admin,
            Method::POST,
            "/v1/collections/customers/records?purpose=billing",
            Some(json!({"records": [{"fields": {"email": "t@example.com"}}]})),
        )
        .await;
    let read = |purpose: &str| {
        format!(
            "/v1/collections/customers/records/{}?purpose={purpose}",
            w["records"][0]["id"].as_str().unwrap()
        )
    };
    for _ in 0..5 {
        s.ok(&reader, Method::GET, &read("billing"), None).await;
    }
    for _ in 0..11 {
        s.call(&reader, Method::GET, &read("analytics"), None).await;
    }
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                s.call(&reader, Method::GET, &read("billing"), None)
                    .await
                    .0
                    .as_u16(),
            );
        }
        v
    };
    assert!(
        statuses.contains(&429),
        "throttled after the alert: {statuses:?}"
    );
    let (_, v) = s.call(&reader, Method::GET, &read("billing"), None).await;
    assert_eq!(v["error"]["code"], "throttled");
    s.stop().await;
}

/// A write's events commit with the write, and then feed what appended events feed: here the
/// checkpoints (one per event), so the last checkpoint is the write's own event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_events_are_checkpointed_and_observed_like_appended_ones() {
    for backend in crate::harness::BOTH {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg =
            crate::harness::config(backend, tmp.path(), &crate::harness::Options::default());
        cfg.set("vault.checkpoint_every", "1").unwrap();
        let s = Server::start_config(cfg, false).await;
        let (_, admin) = s.tenant("checkpointed").await;
        s.customers(&admin).await;
        for path in [
            "/v1/collections/customers/records?purpose=billing",
            "/v1/collections/customers/records?purpose=billing",
        ] {
            s.ok(
                &admin,
                Method::POST,
                path,
                Some(json!({"records": [{"fields": {"email": "a@example.com"}}]})),
            )
            .await;
        }
        let v = s.ok(&admin, Method::GET, "/v1/audit/verify", None).await;
        assert_eq!(v["status"], "intact", "{v}");
        assert_eq!(v["checkpoint_seq"], v["last_seq"], "{v}");
        let last = events_of(&s, &admin)
            .await
            .into_iter()
            .find(|e| e["seq"] == v["last_seq"])
            .unwrap();
        assert_eq!(last["event"]["action"], "record.write", "{last}");
        s.stop().await;
    }
}

async fn events_of(s: &Server, key: &str) -> Vec<Value> {
    s.ok(key, Method::GET, "/v1/audit/events?limit=1000", None)
        .await["events"]
        .as_array()
        .unwrap()
        .clone()
}
