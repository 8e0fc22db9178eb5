//! Starts a real server on 127.0.0.1:0 over TLS and talks to it with reqwest.

use boveda_server::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BOTH: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// Every log line any test's server writes, at trace level, for the canary test.
pub fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(Arc::clone(&buf));
        let _ = tracing_subscriber_init(writer);
        buf
    })
    .clone()
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tracing_subscriber_init(w: Capture) -> Result<(), ()> {
    use tracing_subscriber::fmt::MakeWriter;
    struct Make(Capture);
    impl<'a> MakeWriter<'a> for Make {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.0.clone()
        }
    }
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(Make(w))
        .json()
        .try_init()
        .map_err(|_| ())
}

pub struct Server {
    pub url: String,
    pub client: reqwest::Client,
    pub dir: PathBuf,
    pub cfg: Config,
    pub operator: String,
    pub vault: boveda_core::Vault,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    job_stop: Option<tokio::sync::watch::Sender<bool>>,
    notify: Option<tokio::task::JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

pub struct Options {
    pub auth_rate: u32,
    pub rewrap_job: bool,
    pub rewrap_batch: usize,
    pub body_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            auth_rate: 30,
            rewrap_job: true,
            rewrap_batch: 500,
            body_limit: 1024 * 1024,
        }
    }
}

/// Each test server on PostgreSQL gets its own schema, named after a UUIDv7, and leaves it
/// behind (a test may end anywhere). Once per test binary, the schemas of servers started over
/// an hour ago are dropped: the UUID's first 48 bits are its creation time in milliseconds.
async fn sweep_old_schemas() {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let url = boveda_store::postgres::test_url();
    let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else {
        return;
    };
    tokio::spawn(conn);
    let Ok(rows) = client
        .query(
            "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE 'it\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for row in rows {
        let name: String = row.get(0);
        let born = name
            .strip_prefix("it_")
            .filter(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u64::from_str_radix(&h[..12], 16).ok());
        if born.is_some_and(|t| now_ms.saturating_sub(t) > 3_600_000) {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await;
        }
    }
}

pub fn config(backend: Backend, dir: &std::path::Path, opts: &Options) -> Config {
    let mut cfg = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.body_limit_bytes = opts.body_limit;
    cfg.server.shutdown_grace_seconds = 5;
    cfg.vault.rewrap_batch = opts.rewrap_batch;
    cfg.server.auth_rate_per_minute = opts.auth_rate;
    if backend == Backend::Postgres {
        cfg.storage.postgres_url = Some(boveda_store::postgres::test_url());
        cfg.storage.postgres_schema = format!("it_{}", uuid::Uuid::now_v7().simple());
    }
    cfg
}

impl Server {
    pub async fn start(backend: Backend) -> Server {
        Self::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, opts: Options) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(backend, tmp.path(), &opts);
        let mut s = Self::start_config(cfg, opts.rewrap_job).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts on an existing configuration (a restart keeps the data directory).
    pub async fn start_config(cfg: Config, rewrap_job: bool) -> Server {
        logs();
        if cfg.storage.postgres_url.is_some() {
            sweep_old_schemas().await;
        }
        let p = boveda_server::setup::prepare(&cfg).await.unwrap();
        let operator = std::fs::read_to_string(cfg.data_dir.join("bootstrap-operator.token"))
            .unwrap()
            .trim()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut state = boveda_server::AppState::new(p.vault.clone(), cfg.server.body_limit_bytes);
        state.auth_limit = std::sync::Arc::new(boveda_server::RateLimit::new(
            cfg.server.auth_rate_per_minute,
        ));
        let (job_tx, job_rx) = tokio::sync::watch::channel(false);
        for sink in boveda_server::setup::ExportSink::from_config(&cfg) {
            tokio::spawn(boveda_server::setup::export_job(
                p.vault.clone(),
                sink,
                job_rx.clone(),
            ));
        }
        if let Some(url) = cfg.audit.alert_webhook.clone() {
            tokio::spawn(boveda_server::setup::alert_webhook_job(
                p.vault.clone(),
                url,
                job_rx.clone(),
            ));
        }
        let notify = tokio::spawn(boveda_server::notify::notify_job(
            p.vault.clone(),
            boveda_server::notify::Notifier::new(&cfg.notify, &cfg.data_dir).unwrap(),
            std::time::Duration::from_millis(cfg.notify.interval_ms),
            job_rx.clone(),
        ));
        if rewrap_job {
            tokio::spawn(boveda_server::setup::rewrap_job(
                p.vault.clone(),
                cfg.vault.rewrap_batch,
                state.rewrap.clone(),
                job_rx,
            ));
        }
        let app = boveda_server::router(state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tls = p.tls.config.clone();
        let task = tokio::spawn(async move {
            boveda_server::net::serve(
                listener,
                tls,
                app,
                async {
                    let _ = rx.await;
                },
                std::time::Duration::from_secs(5),
            )
            .await
            .unwrap();
        });
        let pem = std::fs::read(&p.tls.cert_path).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .https_only(true)
            .build()
            .unwrap();
        Server {
            url: format!("https://localhost:{}", addr.port()),
            client,
            dir: cfg.data_dir.clone(),
            cfg,
            operator,
            vault: p.vault,
            stop: Some(tx),
            task: Some(task),
            job_stop: Some(job_tx),
            notify: Some(notify),
            _tmp: None,
        }
    }

    /// Stops serving (graceful) and hands back the data directory for a restart.
    pub async fn stop(mut self) -> (Config, Option<tempfile::TempDir>) {
        if let Some(j) = self.job_stop.take() {
            let _ = j.send(true);
        }
        // Delivery stops dead, as in a crash: a notice being sent is left claimed.
        if let Some(n) = self.notify.take() {
            n.abort();
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        let (cfg, tmp) = (self.cfg.clone(), self._tmp.take());
        drop(self);
        // As a process exits: the background tasks let go of the vault, and with it the SQLite
        // store lets go of its data directory (the lock on its audit staging file).
        if cfg.storage.postgres_url.is_none() {
            let staging = cfg.data_dir.join("data.db-audit");
            for _ in 0..500 {
                match std::fs::File::open(&staging) {
                    Ok(f) if f.try_lock().is_err() => {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    _ => break,
                }
            }
        }
        (cfg, tmp)
    }

    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A GET of `path` without a token (health, readiness, metrics, the API document).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let r = self.get("/metrics").await;
        assert!(r.status().is_success(), "/metrics -> {}", r.status());
        r.text().await.unwrap()
    }

    pub async fn ok(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(token, method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path} -> {status} {v}");
        v
    }

    /// A tenant with a service account holding every scope; returns (tenant id, api key).
    pub async fn tenant(&self, name: &str) -> (String, String) {
        let t = self
            .ok(
                &self.operator,
                Method::POST,
                "/v1/tenants",
                Some(json!({"name": name})),
            )
            .await;
        let id = t["id"].as_str().unwrap().to_owned();
        let key = self.service_account(&id, json!({"name": "app"})).await;
        (id, key)
    }

    /// A service account of `tenant` made by the operator from `body` (name, scopes, roles,
    /// max_view); its API key.
    pub async fn service_account(&self, tenant: &str, body: Value) -> String {
        self.ok(
            &self.operator,
            Method::POST,
            &format!("/v1/tenants/{tenant}/service-accounts"),
            Some(body),
        )
        .await["api_key"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The customers collection used across tests.
    pub async fn customers(&self, key: &str) {
        self.ok(
            key,
            Method::PUT,
            "/v1/collections/customers",
            Some(customers_schema()),
        )
        .await;
    }
}

pub fn customers_schema() -> Value {
    json!({"fields": {
        "email": {"type": "email", "category": "contact", "grade": "L2", "searchable": true, "required": true},
        "phone": {"type": "phone", "category": "contact", "grade": "L3", "searchable": true},
        "name": {"type": "person_name", "category": "identity", "grade": "L2"},
        "dni": {"type": "national_id", "country": "ES", "category": "identity", "grade": "L4", "searchable": true},
        "card": {"type": "bank_card", "category": "financial", "grade": "L4"},
        "notes": {"type": "free_text", "category": "other", "grade": "L3"}
    }})
}

/// A valid Spanish DNI for a number.
pub fn dni(n: u32) -> String {
    format!(
        "{n:08}{}",
        b"TRWAGMYFPDXBNJZSQVHLCKE"[(n % 23) as usize] as char
    )
}

/// A Luhn-valid card number from a 15-digit prefix.
pub fn card(prefix15: &str) -> String {
    for d in 0..10 {
        let c = format!("{prefix15}{d}");
        if boveda_detect::checksum::luhn_valid(&c) {
            return c;
        }
    }
    unreachable!()
}
