//! Vault throughput through the HTTPS API, with the ceiling measured in the same run: the raw
//! AEAD work of the same records and raw SQLite inserts and reads of the same bytes.
//!
//! `cargo bench -p boveda-server --bench api` prints the figures. Not a test: the machine is
//! shared and noisy; compare figures from one run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use boveda_crypto::{Dek, FieldAad, IndexKey, Kek, SecretKey};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 100;
const FIELDS: [&str; 5] = ["email", "phone", "name", "dni", "card"];

fn record(i: usize) -> Value {
    json!({"fields": {
        "email": format!("user{i}@example.com"),
        "phone": format!("+86138{:08}", i % 100_000_000),
        "name": format!("Persona Número {i}"),
        "dni": dni(10_000_000 + (i as u32 % 89_999_999)),
        "card": "4111111111111111",
    }})
}

fn dni(n: u32) -> String {
    format!(
        "{n:08}{}",
        b"TRWAGMYFPDXBNJZSQVHLCKE"[(n % 23) as usize] as char
    )
}

fn values(i: usize) -> [String; 5] {
    let r = record(i);
    FIELDS.map(|f| r["fields"][f].as_str().unwrap().to_owned())
}

/// Raw work per record: DEK, wrap, five seals, two blind indexes; then the same bytes into
/// SQLite in transactions of 100 (record rows, key rows, index rows) and read back by id.
fn ceiling(n: usize) -> (f64, f64, f64, f64) {
    let kek = Kek::new(1, &SecretKey::generate().unwrap()).unwrap();
    let idx = IndexKey::new(&SecretKey::generate().unwrap());
    let tenant = [7u8; 16];
    let start = Instant::now();
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let id = uuid::Uuid::now_v7();
        let subject = uuid::Uuid::now_v7();
        let dek = Dek::generate(1).unwrap();
        let wrapped = kek.wrap_dek(&dek, &tenant, subject.as_bytes()).unwrap();
        let mut blob = Vec::with_capacity(400);
        let vals = values(i);
        for (f, v) in FIELDS.iter().zip(vals.iter()) {
            let aad = FieldAad {
                tenant: &tenant,
                collection: "customers",
                record: id.as_bytes(),
                field: f,
            };
            blob.extend_from_slice(&dek.seal(v.as_bytes(), &aad).unwrap());
        }
        // The digests of the real values: random keys, as in the vault's blind index.
        let d1 = idx
            .digest("customers", "email", vals[0].as_bytes())
            .to_vec();
        let d2 = idx
            .digest("customers", "phone", vals[1].as_bytes())
            .to_vec();
        rows.push((id, subject, wrapped, blob, d1, d2));
    }
    let seal_s = start.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().unwrap();
    let c = rusqlite::Connection::open(dir.path().join("raw.db")).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE r (tenant BLOB, collection TEXT, id BLOB, subject BLOB, sealed BLOB, PRIMARY KEY (tenant, collection, id));
         CREATE TABLE k (tenant BLOB, subject BLOB, wrapped BLOB, PRIMARY KEY (tenant, subject)) WITHOUT ROWID;
         CREATE TABLE b (tenant BLOB, collection TEXT, field TEXT, digest BLOB, record BLOB, PRIMARY KEY (tenant, collection, field, digest, record)) WITHOUT ROWID;",
    )
    .unwrap();
    let start = Instant::now();
    for chunk in rows.chunks(BATCH) {
        let tx = c.unchecked_transaction().unwrap();
        for (id, subject, wrapped, blob, d1, d2) in chunk {
            tx.execute(
                "INSERT INTO k VALUES (?1, ?2, ?3)",
                rusqlite::params![&tenant[..], subject.as_bytes().as_slice(), wrapped],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO r VALUES (?1, 'customers', ?2, ?3, ?4)",
                rusqlite::params![
                    &tenant[..],
                    id.as_bytes().as_slice(),
                    subject.as_bytes().as_slice(),
                    blob
                ],
            )
            .unwrap();
            for (f, d) in [("email", d1), ("phone", d2)] {
                tx.execute(
                    "INSERT INTO b VALUES (?1, 'customers', ?2, ?3, ?4)",
                    rusqlite::params![&tenant[..], f, d, id.as_bytes().as_slice()],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let insert_s = start.elapsed().as_secs_f64();

    // Reads: by id, the key row and the record row, then unwrap and open the five fields.
    let start = Instant::now();
    let mut st_r = c
        .prepare("SELECT sealed FROM r WHERE tenant = ?1 AND collection = 'customers' AND id = ?2")
        .unwrap();
    let mut st_k = c
        .prepare("SELECT wrapped FROM k WHERE tenant = ?1 AND subject = ?2")
        .unwrap();
    for (id, subject, _, _, _, _) in &rows {
        let _: Vec<u8> = st_r
            .query_row(
                rusqlite::params![&tenant[..], id.as_bytes().as_slice()],
                |r| r.get(0),
            )
            .unwrap();
        let _: Vec<u8> = st_k
            .query_row(
                rusqlite::params![&tenant[..], subject.as_bytes().as_slice()],
                |r| r.get(0),
            )
            .unwrap();
    }
    let read_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for (i, (id, subject, wrapped, blob, _, _)) in rows.iter().enumerate() {
        let dek = kek
            .unwrap_dek(wrapped, 1, &tenant, subject.as_bytes())
            .unwrap();
        let mut pos = 0;
        for (f, v) in FIELDS.iter().zip(values(i)) {
            let len = 1 + 4 + 12 + v.len() + 16;
            let aad = FieldAad {
                tenant: &tenant,
                collection: "customers",
                record: id.as_bytes(),
                field: f,
            };
            dek.open(&blob[pos..pos + len], &aad).unwrap();
            pos += len;
        }
    }
    let open_s = start.elapsed().as_secs_f64();
    (
        n as f64 / seal_s,
        n as f64 / insert_s,
        n as f64 / read_s,
        n as f64 / open_s,
    )
}

struct Api {
    url: String,
    client: reqwest::Client,
    key: String,
}

impl Api {
    async fn post(&self, path: &str, body: &Value) -> Value {
        let r = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.json().await.unwrap()
    }
    async fn get(&self, path: &str) {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let _ = r.bytes().await.unwrap();
    }
}

/// Runs `f` from `workers` tasks for `secs`; returns operations per second.
async fn throughput<F, Fut>(workers: usize, secs: f64, f: F) -> f64
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = usize> + Send,
{
    let f = Arc::new(f);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let f = Arc::clone(&f);
        tasks.push(tokio::spawn(async move {
            let mut ops = 0;
            let mut i = 0;
            while Instant::now() < deadline {
                ops += f(w, i).await;
                i += 1;
            }
            ops
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// A server on port 0 with a tenant, a service account and the customers collection.
async fn start(audit: bool) -> (Arc<Api>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = boveda_server::config::Config {
        data_dir: tmp.path().to_path_buf(),
        ..Default::default()
    };
    cfg.log.level = "error".into();
    let mut vc = cfg.vault_config();
    vc.audit = audit;
    let p = boveda_server::setup::prepare_with(&cfg, vc).await.unwrap();
    let operator = std::fs::read_to_string(tmp.path().join("bootstrap-operator.token"))
        .unwrap()
        .trim()
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = boveda_server::router(boveda_server::AppState::new(
        p.vault.clone(),
        cfg.server.body_limit_bytes,
    ));
    tokio::spawn(boveda_server::net::serve(
        listener,
        p.tls.config.clone(),
        app,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    let pem = std::fs::read(&p.tls.cert_path).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}");
    let op = Api {
        url: url.clone(),
        client: client.clone(),
        key: operator,
    };
    let t = op.post("/v1/tenants", &json!({"name": "bench"})).await;
    let sa = op
        .post(
            &format!("/v1/tenants/{}/service-accounts", t["id"].as_str().unwrap()),
            &json!({"name": "bench"}),
        )
        .await;
    let api = Arc::new(Api {
        url,
        client,
        key: sa["api_key"].as_str().unwrap().to_owned(),
    });
    api.client
        .put(format!("{}/v1/collections/customers", api.url))
        .bearer_auth(&api.key)
        .json(&json!({"fields": {
            "email": {"type": "email", "category": "contact", "grade": "L2", "searchable": true},
            "phone": {"type": "phone", "category": "contact", "grade": "L3", "searchable": true},
            "name": {"type": "person_name", "category": "identity", "grade": "L2"},
            "dni": {"type": "national_id", "country": "ES", "category": "identity", "grade": "L4"},
            "card": {"type": "bank_card", "category": "financial", "grade": "L4"}}}))
        .send()
        .await
        .unwrap();

    (api, tmp)
}

/// The audit log's cost on the read path: the same plain reads against `api` and against a
/// second server with auditing switched off inside this benchmark only. Single reads (one
/// event per record) at 8 to 512 clients, batch reads (one event per 100 records), then each
/// side at its best client count.
async fn audit_overhead(api: Arc<Api>, on_ids: Arc<Vec<String>>) -> Vec<Overhead> {
    let (off, _tmp_off) = start(false).await;
    let off_ids = Arc::new(insert_some(&off).await);
    let mut overhead = Vec::new();
    // `AUDIT_AT=8,32,8b` measures only those settings (`b`: batch reads).
    let only = std::env::var("AUDIT_AT").ok();
    for (workers, batch) in [
        (8, false),
        (16, false),
        (32, false),
        (64, false),
        (128, false),
        (512, false),
        (8, true),
    ] {
        let name = format!("{workers}{}", if batch { "b" } else { "" });
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|s| s == name))
        {
            continue;
        }
        let o = compare(&api, &on_ids, &off, &off_ids, workers, batch).await;
        overhead.push(o);
    }
    // Capacity, the most reads per second each side serves at any client count.
    let counts: Vec<usize> = overhead
        .iter()
        .filter(|o| !o.batch)
        .map(|o| o.workers.0)
        .collect();
    if counts.len() > 1 {
        overhead.push(capacity(&api, &on_ids, &off, &off_ids, &counts).await);
    }
    overhead
}

// Many short alternating rounds, in alternating order: the machine is shared and its speed
// drifts by more than the figure measured, so each side gets the same mix of fast and slow
// moments. The figure is the ratio of the summed rates. CPU time per record (the whole
// process: clients, TLS, server) is summed the same way.
const ROUNDS: usize = 12;
const SECS: f64 = 1.5;

/// Rounds of the capacity measurement; each runs every client count on both sides. Even:
/// folds of two rounds, with both orders of every pair.
const CAPACITY_ROUNDS: usize = 12;

/// One side's run: records per second and CPU seconds per record.
type Run = (f64, f64);
/// The audited and the unaudited side's runs at one client count in one round.
type Pair = (Run, Run);

/// Each side's highest mean rate of single reads over the client counts `counts`, all of them
/// measured in the same rounds (in an order that rotates, each pair in alternating order):
/// the host's drift between the settings above is often larger than the difference between
/// two client counts, so a side's best count picked from them can be one where it is not at
/// its best (16 clients, say, where the audited side's commits are small) and measured again
/// there. Spread and CPU are those of the chosen counts, round by round.
async fn capacity(
    api: &Arc<Api>,
    on_ids: &Arc<Vec<String>>,
    off: &Arc<Api>,
    off_ids: &Arc<Vec<String>>,
    counts: &[usize],
) -> Overhead {
    let n = counts.len();
    let mut runs: Vec<Vec<Pair>> = vec![vec![((0.0, 0.0), (0.0, 0.0)); n]; CAPACITY_ROUNDS];
    for (round, row) in runs.iter_mut().enumerate() {
        for k in 0..n {
            let i = (k + round) % n;
            let w = counts[i];
            // Which side runs first alternates from round to round at each count (and from
            // count to count within a round).
            row[i] = if (round + i).is_multiple_of(2) {
                let a = plain_reads(api, on_ids, w, SECS, false).await;
                (a, plain_reads(off, off_ids, w, SECS, false).await)
            } else {
                let u = plain_reads(off, off_ids, w, SECS, false).await;
                (plain_reads(api, on_ids, w, SECS, false).await, u)
            };
        }
    }
    // Folds of two rounds (0 and 1, 2 and 3, ...), which hold both orders of every pair.
    let folds = CAPACITY_ROUNDS / 2;
    // The mean run of count `i` on one side over the rounds `take` keeps.
    let mean = |i: usize, side: fn(&Pair) -> Run, take: &dyn Fn(usize) -> bool| {
        let (rate, cpu, k) = runs
            .iter()
            .enumerate()
            .filter(|(r, _)| take(*r))
            .map(|(_, row)| side(&row[i]))
            .fold((0.0, 0.0, 0.0), |s, x| (s.0 + x.0, s.1 + x.1, s.2 + 1.0));
        (rate / k, cpu / k)
    };
    // A side's best count on the rounds outside fold `f`.
    let best = |side: fn(&Pair) -> Run, f: usize| {
        let others = |r: usize| r / 2 != f;
        (0..n)
            .max_by(|&a, &b| {
                mean(a, side, &others)
                    .0
                    .total_cmp(&mean(b, side, &others).0)
            })
            .unwrap_or(0)
    };
    // Each side's best count is chosen on the other rounds and its rate taken from those of
    // one fold, fold by fold (cross-fitting). The highest of several means measured with noise
    // is the luckiest of them as often as the best: a side whose top is flat (the unaudited
    // one, about as fast at 16 as at 64 clients) would gain the most from that luck, and so be
    // measured faster than it is.
    let chosen: Vec<(usize, usize)> = (0..folds)
        .map(|f| (best(|r| r.0, f), best(|r| r.1, f)))
        .collect();
    let mut pairs: Vec<f64> = runs
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let (a, u) = chosen[r / 2];
            1.0 - row[a].0.0 / row[u].1.0
        })
        .collect();
    pairs.sort_by(f64::total_cmp);
    // A side's mean run at the count chosen for each fold, on that fold; the folds averaged.
    let at_chosen = |audited: bool| {
        (0..folds)
            .map(|f| {
                let this = |r: usize| r / 2 == f;
                match (audited, chosen[f]) {
                    (true, (a, _)) => mean(a, |r| r.0, &this),
                    (false, (_, u)) => mean(u, |r| r.1, &this),
                }
            })
            .fold((0.0, 0.0), |s, x| {
                (s.0 + x.0 / folds as f64, s.1 + x.1 / folds as f64)
            })
    };
    let (audited, unaudited) = (at_chosen(true), at_chosen(false));
    Overhead {
        chosen: chosen
            .iter()
            .map(|&(a, u)| (counts[a], counts[u]))
            .collect(),
        audited: audited.0,
        unaudited: unaudited.0,
        cpu_audited: audited.1,
        cpu_unaudited: unaudited.1,
        spread: (pairs[1], pairs[CAPACITY_ROUNDS - 2]),
        curve: (0..n)
            .map(|i| {
                (
                    counts[i],
                    mean(i, |r| r.0, &|_| true).0,
                    mean(i, |r| r.1, &|_| true).0,
                )
            })
            .collect(),
        ..Overhead::default()
    }
}

/// Plain reads against the audited and the unaudited server by `workers` clients each, in
/// [`ROUNDS`] alternating rounds.
async fn compare(
    api: &Arc<Api>,
    on_ids: &Arc<Vec<String>>,
    off: &Arc<Api>,
    off_ids: &Arc<Vec<String>>,
    workers: usize,
    batch: bool,
) -> Overhead {
    // One round each to open the connections before timing.
    plain_reads(api, on_ids, workers, 0.3, batch).await;
    plain_reads(off, off_ids, workers, 0.3, batch).await;
    let mut o = Overhead {
        workers: (workers, workers),
        batch,
        ..Overhead::default()
    };
    let mut pairs = Vec::new();
    for round in 0..ROUNDS {
        let (audited, unaudited) = if round % 2 == 0 {
            let a = plain_reads(api, on_ids, workers, SECS, batch).await;
            (a, plain_reads(off, off_ids, workers, SECS, batch).await)
        } else {
            let u = plain_reads(off, off_ids, workers, SECS, batch).await;
            (plain_reads(api, on_ids, workers, SECS, batch).await, u)
        };
        pairs.push(1.0 - audited.0 / unaudited.0);
        o.audited += audited.0 / ROUNDS as f64;
        o.unaudited += unaudited.0 / ROUNDS as f64;
        o.cpu_audited += audited.1 / ROUNDS as f64;
        o.cpu_unaudited += unaudited.1 / ROUNDS as f64;
    }
    pairs.sort_by(f64::total_cmp);
    o.spread = (pairs[1], pairs[ROUNDS - 2]);
    o.fsync = fsync_latency();
    o
}

/// The median time of a small synchronous write over blocks a file already has, made as the
/// audit staging file makes it (one block, `O_DIRECT | O_DSYNC` where the file system takes
/// it), on the disk the servers write to: the wait that no grouping takes away from an
/// audited read whose commit is not shared with reads already waiting.
fn fsync_latency() -> f64 {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    const BLOCK: usize = 4096;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe");
    std::fs::write(&path, vec![0; 1 << 20]).unwrap();
    let open = |flags| {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(flags)
            .open(&path)
    };
    let f = open(libc::O_DSYNC | libc::O_DIRECT)
        .or_else(|_| open(libc::O_DSYNC))
        .unwrap();
    f.sync_all().unwrap();
    let buf = vec![1u8; 2 * BLOCK];
    let at = buf.as_ptr().align_offset(BLOCK);
    let block = &buf[at..at + BLOCK];
    let mut times: Vec<f64> = (0..200u64)
        .map(|i| {
            let t = Instant::now();
            f.write_all_at(block, i * BLOCK as u64).unwrap();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Reads of the records in `ids` in `view` by `workers` clients for `secs` seconds, one record
/// per request or [`BATCH`] per batch-get; returns records per second.
async fn reads(
    api: Arc<Api>,
    ids: Arc<Vec<String>>,
    workers: usize,
    secs: f64,
    view: &'static str,
    batch: bool,
) -> f64 {
    throughput(workers, secs, move |w, i| {
        let (api, ids) = (Arc::clone(&api), Arc::clone(&ids));
        async move {
            if batch {
                let start = (w * 7919 + i * 1_000) % (ids.len() + 1 - BATCH);
                let body = json!({"ids": &ids[start..start + BATCH]});
                let path = format!(
                    "/v1/collections/customers/records/batch-get?purpose=billing&view={view}"
                );
                api.post(&path, &body).await;
                BATCH
            } else {
                let id = &ids[(w * 7919 + i * 104_729) % ids.len()];
                api.get(&format!(
                    "/v1/collections/customers/records/{id}?purpose=billing&view={view}"
                ))
                .await;
                1
            }
        }
    })
    .await
}

/// Plain reads as [`reads`] does them: records per second, and CPU seconds per record of the
/// whole process.
async fn plain_reads(
    api: &Arc<Api>,
    ids: &Arc<Vec<String>>,
    workers: usize,
    secs: f64,
    batch: bool,
) -> (f64, f64) {
    let c0 = cpu_seconds();
    let rate = reads(
        Arc::clone(api),
        Arc::clone(ids),
        workers,
        secs,
        "plain",
        batch,
    )
    .await;
    (rate, (cpu_seconds() - c0) / (rate * secs))
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

async fn insert_some(api: &Api) -> Vec<String> {
    api.post(
        "/v1/collections/customers/records?purpose=billing",
        &json!({"records": (0..BATCH).map(record).collect::<Vec<_>>()}),
    )
    .await["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[derive(Default)]
struct Overhead {
    /// Clients of the audited and of the unaudited server.
    workers: (usize, usize),
    batch: bool,
    /// Capacity (each side at its best client count): the counts chosen for each fold of
    /// rounds, audited and not.
    chosen: Vec<(usize, usize)>,
    audited: f64,
    unaudited: f64,
    cpu_audited: f64,
    cpu_unaudited: f64,
    /// The second lowest and second highest overhead of a pair of rounds.
    spread: (f64, f64),
    /// [`fsync_latency`], measured after the rounds.
    fsync: f64,
    /// Capacity: each client count's mean rates, audited and not.
    curve: Vec<(usize, f64, f64)>,
}

impl Overhead {
    fn ratio(&self) -> f64 {
        1.0 - self.audited / self.unaudited
    }

    /// The overhead if each request's cycle without the audit log (clients / requests per
    /// second) only grew by one synchronous write: the least that a read's event made durable
    /// before its response costs at this client count, not counting any CPU.
    fn fsync_floor(&self) -> f64 {
        let per_request = if self.batch { BATCH as f64 } else { 1.0 };
        let cycle = self.workers.1 as f64 * per_request / self.unaudited;
        self.fsync / (cycle + self.fsync)
    }
}

fn print_overhead(overhead: Vec<Overhead>) {
    println!(
        "  audit overhead on plain reads (each response waits for its event's fsync; group commit;"
    );
    println!(
        "  {ROUNDS} alternating rounds of {SECS} s; capacity: every client count in each of {CAPACITY_ROUNDS} rounds, each side's best count chosen on all but two of them and measured on those two, fold by fold; mean rates; CPU per record of the whole process):"
    );
    for o in &overhead {
        let a = o.workers.0;
        let setting = if o.batch {
            format!("batch of 100, {a:>3} clients")
        } else if !o.chosen.is_empty() {
            let tally = |side: fn(&(usize, usize)) -> usize| {
                let mut t = std::collections::BTreeMap::new();
                for c in o.chosen.iter().map(side) {
                    *t.entry(c).or_insert(0) += 1;
                }
                let mut t: Vec<(usize, usize)> = t.into_iter().collect();
                t.sort_by_key(|x| std::cmp::Reverse(x.1));
                let t: Vec<String> = t.iter().map(|(w, k)| format!("{w}x{k}")).collect();
                t.join(" ")
            };
            format!("capacity, clients {} vs {}", tally(|c| c.0), tally(|c| c.1))
        } else {
            format!("single,       {a:>3} clients")
        };
        let floor = if !o.chosen.is_empty() {
            String::new()
        } else {
            format!(
                "; fsync floor {:.1}% ({:.0} us)",
                100.0 * o.fsync_floor(),
                o.fsync * 1e6
            )
        };
        println!(
            "    {setting}: {:>7.0} records/s audited vs {:>7.0} without the audit log ({:.1}% fewer; pairs {:.0}% to {:.0}%); CPU {:.0} vs {:.0} us/record{floor}",
            o.audited,
            o.unaudited,
            100.0 * o.ratio(),
            100.0 * o.spread.0,
            100.0 * o.spread.1,
            o.cpu_audited * 1e6,
            o.cpu_unaudited * 1e6,
        );
        if !o.curve.is_empty() {
            let curve: Vec<String> = o
                .curve
                .iter()
                .map(|(w, a, u)| format!("{w}: {a:.0} vs {u:.0}"))
                .collect();
            println!("      by clients, audited vs not: {}", curve.join(", "));
            let top =
                |side: fn(&(usize, f64, f64)) -> f64| o.curve.iter().map(side).fold(0.0, f64::max);
            let (a, u) = (top(|c| c.1), top(|c| c.2));
            println!(
                "      highest of the curve: {a:.0} vs {u:.0} ({:.1}% fewer; picked and measured on the same rounds, so lifted by the luckiest count, most on the side with a flatter top)",
                100.0 * (1.0 - a / u)
            );
        }
    }
}

/// The allocator of the `boveda` binary, so that the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // `cargo bench -p boveda-server --bench api -- audit` measures only the audit overhead.
    if std::env::args().any(|a| a == "audit") {
        let (api, _tmp) = start(true).await;
        let ids = Arc::new(insert_some(&api).await);
        print_overhead(audit_overhead(api, ids).await);
        return;
    }
    // `SOAK=<clients>,<on|off>[,<seconds>[,batch]] cargo bench -p boveda-server --bench api`
    // runs one server, audited or not, under single (or batch) plain reads, to profile
    // (`perf record`) one side.
    if let Ok(spec) = std::env::var("SOAK") {
        let spec: Vec<&str> = spec.split(',').collect();
        let workers: usize = spec[0].parse().expect("SOAK: clients");
        let (api, _tmp) = start(spec.get(1) == Some(&"on")).await;
        let secs: f64 = spec
            .get(2)
            .map_or(15.0, |s| s.parse().expect("SOAK: seconds"));
        let batch = spec.get(3) == Some(&"batch");
        let ids = Arc::new(insert_some(&api).await);
        let (r, cpu) = plain_reads(&api, &ids, workers, secs, batch).await;
        println!("{r:.0} records/s, CPU {:.0} us/record", cpu * 1e6);
        return;
    }
    let n = 20_000;
    let (seal, insert, read, open) = ceiling(n);
    let write_ceiling = 1.0 / (1.0 / seal + 1.0 / insert);
    let read_ceiling = 1.0 / (1.0 / read + 1.0 / open);

    let (api, _tmp) = start(true).await;

    let ids = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let writes = {
        let (api, ids) = (Arc::clone(&api), Arc::clone(&ids));
        throughput(8, 8.0, move |w, i| {
            let (api, ids) = (Arc::clone(&api), Arc::clone(&ids));
            async move {
                let base = (w * 1_000_000) + i * BATCH;
                let records: Vec<Value> = (0..BATCH).map(|j| record(base + j)).collect();
                let v = api
                    .post(
                        "/v1/collections/customers/records?purpose=billing",
                        &json!({"records": records}),
                    )
                    .await;
                let mut g = ids.lock().unwrap();
                g.extend(
                    v["records"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["id"].as_str().unwrap().to_owned()),
                );
                BATCH
            }
        })
        .await
    };
    let ids: Arc<Vec<String>> = Arc::new(ids.lock().unwrap().clone());

    let mut rates = Vec::new();
    for view in ["plain", "masked"] {
        let single = reads(Arc::clone(&api), Arc::clone(&ids), 8, 4.0, view, false).await;
        let batch = reads(Arc::clone(&api), Arc::clone(&ids), 4, 4.0, view, true).await;
        rates.push((view, single, batch));
    }

    // Latency at a fixed offered load of 500 requests/s for 10 s (open loop).
    let mut lat = Vec::new();
    let mut handles = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    for i in 0..5_000 {
        tick.tick().await;
        let (api, ids) = (Arc::clone(&api), Arc::clone(&ids));
        handles.push(tokio::spawn(async move {
            let id = &ids[(i * 104_729) % ids.len()];
            let s = Instant::now();
            api.get(&format!(
                "/v1/collections/customers/records/{id}?purpose=billing&view=masked"
            ))
            .await;
            s.elapsed()
        }));
    }
    for h in handles {
        lat.push(h.await.unwrap());
    }
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;

    let overhead = audit_overhead(
        Arc::clone(&api),
        Arc::new(ids[..BATCH.min(ids.len())].to_vec()),
    )
    .await;

    println!(
        "boveda vault API benchmark (one node, SQLite, HTTPS/1.1, client on the same machine)"
    );
    println!("records of 5 fields (email, phone, name, DNI, card); writes in batches of {BATCH}");
    println!();
    println!("ceiling, one core, same run ({n} records):");
    println!("  AEAD seal (DEK + wrap + 5 seals + 2 blind indexes)  {seal:>12.0} records/s");
    println!("  SQLite insert of the same bytes (txn of {BATCH})      {insert:>12.0} records/s");
    println!(
        "  => write ceiling (seal then insert)                 {write_ceiling:>12.0} records/s"
    );
    println!("  SQLite point reads (record + key row)               {read:>12.0} records/s");
    println!("  AEAD open (unwrap + 5 opens)                        {open:>12.0} records/s");
    println!(
        "  => read ceiling                                     {read_ceiling:>12.0} records/s"
    );
    println!();
    println!("through the HTTPS API:");
    println!(
        "  batch writes (8 clients)                            {writes:>12.0} records/s  ({:.0}% of ceiling)",
        100.0 * writes / write_ceiling
    );
    for (view, single, batch) in &rates {
        println!("  single reads, {view:<6} (8 clients)                {single:>12.0} requests/s");
        println!(
            "  batch reads of {BATCH}, {view:<6} (4 clients)           {batch:>12.0} records/s"
        );
    }
    println!(
        "  single read latency at 500 requests/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    print_overhead(overhead);
}
