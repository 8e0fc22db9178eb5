//! The read path's audit journal on SQLite, in isolation: the CPU an append costs per commit
//! and per event (the staging's synchronous write), and the CPU the checkpointer thread
//! spends per event moving the staged events into the table in runs, summarising them in blocks
//! and copying the WAL back. CPU time per thread (`/proc/self/task/*/schedstat`), so the
//! figures hold on a host whose speed drifts, which throughput does not.
//!
//! `cargo bench -p boveda-store --bench journal` (`JOURNAL_EVENTS=<n>` events per group size,
//! 65,536 by default).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use boveda_store::sqlite::SqliteStore;
use boveda_store::{AuditEvent, AuditFilter, Store, TenantId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// CPU seconds so far of each live thread, by thread id, and whether it is a checkpointer.
fn threads() -> HashMap<String, (bool, f64)> {
    let mut out = HashMap::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("schedstat")),
        ) else {
            continue; // a thread that ended meanwhile
        };
        let ns: f64 = stat.split_whitespace().next().unwrap().parse().unwrap();
        let tid = dir.file_name().unwrap().to_string_lossy().into_owned();
        out.insert(tid, (name.starts_with("sqlite-checkpoi"), ns / 1e9));
    }
    out
}

/// CPU seconds the threads alive `now` used since `then`: the checkpointers', and the
/// others'. Per thread, so that the threads of a store dropped meanwhile (the previous run's)
/// take nothing away.
fn used(then: &HashMap<String, (bool, f64)>, now: &HashMap<String, (bool, f64)>) -> (f64, f64) {
    now.iter()
        .fold((0.0, 0.0), |(ck, rest), (tid, &(checkpointer, s))| {
            let s = s - then.get(tid).map_or(0.0, |t| t.1);
            if checkpointer {
                (ck + s, rest)
            } else {
                (ck, rest + s)
            }
        })
}

/// A single read's event as the vault writes it: a service account reads one record's five
/// fields in the plain view.
fn event(tenant: TenantId, i: usize) -> AuditEvent {
    let mut e = AuditEvent::new(
        *tenant.as_bytes(),
        1_767_225_600_000 + (i / 16) as i64,
        &uuid::Uuid::now_v7().to_string(),
        "service",
        "record.read",
        boveda_audit::Outcome::Allowed,
        &uuid::Uuid::now_v7().to_string(),
    );
    e.collection = Some("customers".into());
    e.records = vec![uuid::Uuid::now_v7().to_string()];
    e.subjects = vec![[(i % 251) as u8; 32]];
    e.fields = ["card", "dni", "email", "name", "phone"]
        .map(str::to_owned)
        .to_vec();
    e.grade = Some("L4".into());
    e.purpose = Some("billing".into());
    e.view = Some("plain".into());
    e.client = Some([7; 32]);
    e
}

/// The server's allocator (`boveda`'s binary and the api bench use it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("JOURNAL_EVENTS")
        .map_or(65_536, |v| v.parse().expect("JOURNAL_EVENTS: a number"));
    println!("  audit journal on SQLite, {n} single-read events per run, CPU per thread:");
    let mut rows = Vec::new();
    for group in [8, 32, 128, 1024] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let tenant = TenantId::generate();
        let groups: Vec<Arc<Vec<AuditEvent>>> = (0..n)
            .step_by(group)
            .map(|first| {
                Arc::new(
                    (first..n.min(first + group))
                        .map(|i| event(tenant, i))
                        .collect(),
                )
            })
            .collect();
        let before = threads();
        for g in groups {
            store.append_audit(g).await.unwrap();
        }
        let append = used(&before, &threads()).1 / n as f64;
        // The checkpointer moves what is staged within about a second of the last append;
        // done once its CPU stops growing (by more than a rounding of the sums).
        let mut moved = used(&before, &threads()).0;
        loop {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            let now = used(&before, &threads()).0;
            if now - moved < 1e-6 {
                break;
            }
            moved = now;
        }
        let moved = moved / n as f64;
        // Every event reached the table, in one chain.
        let head = store.audit_head(tenant).await.unwrap().unwrap().0;
        assert_eq!(head, n as u64);
        let events = store
            .audit_events(tenant, &AuditFilter::default(), 0, n + 1)
            .await
            .unwrap();
        assert_eq!(events.len(), n);
        println!(
            "    groups of {group:>4}: append {:6.2} us/event ({:6.1} us per commit), checkpointer {:5.2} us/event",
            append * 1e6,
            append * 1e6 * group as f64,
            moved * 1e6
        );
        rows.push((group as f64, append));
    }
    // append = per_commit / group + per_event, fitted by least squares in 1 / group.
    let k = rows.len() as f64;
    let (sx, sy) = rows
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (g, a)| (sx + 1.0 / g, sy + a));
    let (mx, my) = (sx / k, sy / k);
    let (sxy, sxx) = rows.iter().fold((0.0, 0.0), |(sxy, sxx), (g, a)| {
        (
            sxy + (1.0 / g - mx) * (a - my),
            sxx + (1.0 / g - mx).powi(2),
        )
    });
    let per_commit = sxy / sxx;
    println!(
        "    fitted: {:.0} us per commit (the synchronous write) + {:.2} us per event",
        per_commit * 1e6,
        (my - per_commit * mx) * 1e6
    );
}
