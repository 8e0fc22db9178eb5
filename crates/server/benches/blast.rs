//! Blast radius of an incident over a large audit log, on SQLite and PostgreSQL.
//!
//! Loads `BLAST_EVENTS` audit events (default 10,000,000) over `BLAST_SUBJECTS` subjects
//! (default 1,000,000) and 1,000 principals straight into the store (through `append_audit`,
//! so the chain is real), then times `blast_radius` for an incident whose scope is one stolen
//! principal holding a tenth of the events. `BLAST_BACKENDS=sqlite,postgres` (default both).
//!
//! `BLAST_KEEP=DIR` keeps the loaded database in `DIR/<backend>` (and its PostgreSQL schema) and
//! reuses it on the next run, which then only measures.
//!
//! `cargo bench -p boveda-server --bench blast` prints the figures. Not a test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use boveda_core::{Caller, SubjectId, Vault};
use boveda_store::{AuditEvent, SubjectKeyRow};
use std::sync::Arc;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn caller(vault: &Vault, token: &str) -> Caller {
    Caller {
        principal: vault.authenticate(token).await.unwrap(),
        request_id: "bench".into(),
        client: None,
    }
}

async fn run(backend: &str, events: usize, subjects: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var("BLAST_KEEP")
        .ok()
        .map(|d| std::path::PathBuf::from(d).join(backend));
    let dir = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let saved: Option<serde_json::Value> = std::fs::read(dir.join("bench.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    let mut cfg = boveda_server::config::Config {
        data_dir: dir.clone(),
        ..Default::default()
    };
    cfg.log.level = "error".into();
    if backend == "postgres" {
        cfg.storage.postgres_url = Some(boveda_store::postgres::test_url());
        cfg.storage.postgres_schema = match &saved {
            Some(s) => s["schema"].as_str().unwrap().to_owned(),
            None => format!("bench_{}", uuid::Uuid::now_v7().simple()),
        };
    }
    let mut vc = cfg.vault_config();
    vc.checkpoint_every = 0;
    let p = boveda_server::setup::prepare_with(&cfg, vc).await.unwrap();
    let vault = p.vault;
    let (admin, incident, load) = match saved {
        Some(s) => (
            caller(&vault, s["admin"].as_str().unwrap()).await,
            serde_json::from_value(s["incident"].clone()).unwrap(),
            s["load"].as_f64().unwrap(),
        ),
        None => {
            let (key, incident, load) = load(&cfg, &vault, events, subjects).await;
            if keep.is_some() {
                let saved = serde_json::json!({"schema": cfg.storage.postgres_schema,
                    "admin": key, "incident": incident, "load": load});
                std::fs::write(dir.join("bench.json"), saved.to_string()).unwrap();
            }
            (caller(&vault, &key).await, incident, load)
        }
    };
    measure(backend, &vault, &admin, incident, events, subjects, load).await;
    if backend == "postgres" && keep.is_none() {
        // Leave the shared server as it was: the bench's tables hold gigabytes.
        pg_execute(&format!(
            "DROP SCHEMA {} CASCADE",
            cfg.storage.postgres_schema
        ))
        .await;
    }
}

/// Loads the tenant, its subjects and events; returns the admin's API key, the incident and
/// the load time in seconds.
async fn load(
    cfg: &boveda_server::config::Config,
    vault: &Vault,
    events: usize,
    subjects: usize,
) -> (String, boveda_core::IncidentId, f64) {
    let token = std::fs::read_to_string(cfg.data_dir.join("bootstrap-operator.token")).unwrap();
    let op = caller(vault, token.trim()).await;
    let tenant = vault.create_tenant(&op, "bench", None).await.unwrap().id;
    let account = |name: &str, roles: &[&str]| {
        serde_json::from_value::<boveda_core::Grants>(serde_json::json!({
            "scopes": ["read", "write", "admin", "audit"], "max_view": "plain", "roles": roles}))
        .map(|g| (name.to_owned(), g))
        .unwrap()
    };
    let (name, grants) = account("admin", &["tenant_admin", "privacy_officer"]);
    let admin = vault
        .create_service_account(&op, tenant, &name, grants)
        .await
        .unwrap();
    let key = admin.api_key.expose().to_owned();
    let admin = caller(vault, &key).await;
    vault
        .put_collection(
            &admin,
            "customers",
            serde_json::from_value(serde_json::json!({"fields": {
                "email": {"type": "email", "category": "contact", "grade": "L2"},
                "phone": {"type": "phone", "category": "contact", "grade": "L3"},
                "card": {"type": "bank_card", "category": "financial", "grade": "L4"}}}))
            .unwrap(),
        )
        .await
        .unwrap();

    // Subjects: a key row each (the blast radius maps pseudonyms back to ids through them).
    let store = vault.store();
    let start = Instant::now();
    let ids: Vec<SubjectId> = (0..subjects).map(|_| SubjectId::generate()).collect();
    for chunk in ids.chunks(10_000) {
        let rows: Vec<SubjectKeyRow> = chunk
            .iter()
            .map(|s| SubjectKeyRow {
                tenant,
                subject: *s,
                kek_version: 1,
                dek_version: 1,
                wrapped_dek: vec![0; 60],
                created_at: 0,
            })
            .collect();
        store.insert_subject_keys(&rows).await.unwrap();
    }
    let pseudonyms = vault.subject_pseudonyms(tenant, &ids).await.unwrap();

    // Events: reads by 1,000 principals over 30 days; principal 0 (the stolen one) makes a
    // tenth of them. A simple LCG picks subjects, fields and views.
    let stolen = uuid::Uuid::now_v7().to_string();
    let principals: Vec<String> = (0..1000)
        .map(|i| {
            if i == 0 {
                stolen.clone()
            } else {
                uuid::Uuid::now_v7().to_string()
            }
        })
        .collect();
    let t0 = 1_780_000_000_000i64;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..events {
        let who = if i % 10 == 0 {
            0
        } else {
            1 + next() as usize % 999
        };
        let mut e = AuditEvent::new(
            *tenant.as_bytes(),
            t0 + (i as i64) * 259,
            &principals[who],
            "service",
            "record.read",
            boveda_audit::Outcome::Allowed,
            "bench",
        );
        e.collection = Some("customers".into());
        e.records = vec![uuid::Uuid::now_v7().to_string()];
        e.subjects = vec![pseudonyms[next() as usize % subjects]];
        e.fields = if next() % 3 == 0 {
            vec!["email".into(), "card".into()]
        } else {
            vec!["email".into(), "phone".into()]
        };
        e.purpose = Some("customer_support".into());
        e.view = Some(if next() % 4 == 0 { "plain" } else { "masked" }.into());
        batch.push(e);
        if batch.len() == 10_000 {
            store
                .append_audit(Arc::new(std::mem::take(&mut batch)))
                .await
                .unwrap();
        }
    }
    if !batch.is_empty() {
        store.append_audit(Arc::new(batch)).await.unwrap();
    }
    if cfg.storage.postgres_url.is_some() {
        // A default server's autovacuum analyzes new tables; this machine's has it off.
        pg_execute(&format!(
            "SET search_path = {}; ANALYZE",
            cfg.storage.postgres_schema
        ))
        .await;
    }
    let load = start.elapsed().as_secs_f64();
    eprintln!("{events} events loaded in {load:.0} s");

    let incident = vault
        .open_incident(
            &admin,
            serde_json::from_value(serde_json::json!({
                "title": "stolen key", "description": "", "detected_at": t0 + 86_400_000,
                "severity": "high", "scope": {"principals": [stolen]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    (key, incident.id, load)
}

async fn measure(
    backend: &str,
    vault: &Vault,
    admin: &Caller,
    incident: boveda_core::IncidentId,
    events: usize,
    subjects: usize,
    load: f64,
) {
    let mut times = Vec::new();
    let mut radius = None;
    for _ in 0..3 {
        drop(radius.take());
        let start = Instant::now();
        radius = Some(vault.blast_radius(admin, incident, true).await.unwrap());
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let r = radius.unwrap();
    println!(
        "{backend:<8} {events:>10} events {subjects:>9} subjects: loaded in {load:.0} s; blast radius of the stolen principal: {:.2} s (median of 3; {} events examined, {} subjects: {} clear, {} masked only)",
        times[1],
        r.events_examined,
        r.subjects.len(),
        r.clear,
        r.masked_only
    );
}

#[tokio::main]
async fn main() {
    let events = env("BLAST_EVENTS", 10_000_000);
    let subjects = env("BLAST_SUBJECTS", 1_000_000);
    let backends = std::env::var("BLAST_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".to_owned());
    for b in backends.split(',') {
        run(b.trim(), events, subjects).await;
    }
}

/// Runs SQL on the test PostgreSQL server, outside the store.
async fn pg_execute(sql: &str) {
    let (client, conn) =
        tokio_postgres::connect(&boveda_store::postgres::test_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
}
