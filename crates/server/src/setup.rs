//! Turning a [`Config`] into a running vault: the data directory, the root key (file, env or
//! passphrase), the store, the TLS material and the one-time bootstrap credential.

use crate::config::Config;
use crate::tls::{self, TlsMaterial};
use boveda_core::Vault;
use boveda_crypto::RootKey;
use boveda_store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Start-up errors: each names the setting or file to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Root key.
    #[error("root key: {0}")]
    RootKey(String),
    /// Storage.
    // The source carries the message: `{e:#}` prints "storage: <it>" once, not twice.
    #[error("storage")]
    Store(#[from] boveda_store::Error),
    /// Vault.
    #[error("vault")]
    Vault(#[from] boveda_core::Error),
    /// Data directory or files.
    #[error("{path}: {reason}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A prepared server: everything but the socket.
pub struct Prepared {
    /// The vault.
    pub vault: Vault,
    /// TLS material.
    pub tls: TlsMaterial,
    /// The file holding the bootstrap operator credential, when it was created this start.
    pub bootstrap_file: Option<PathBuf>,
    /// Whether the root key was generated this start.
    pub root_key_created: bool,
}

fn io(path: &Path, e: impl std::fmt::Display) -> SetupError {
    SetupError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Loads or creates the root key as configured.
///
/// # Errors
/// [`SetupError::RootKey`] naming the source that failed.
pub fn root_key(cfg: &Config) -> Result<(RootKey, bool), SetupError> {
    if let Some(var) = &cfg.keys.root_key_env {
        let text = std::env::var(var).map_err(|_| {
            SetupError::RootKey(format!(
                "environment variable {var} (keys.root_key_env) is not set"
            ))
        })?;
        let key =
            RootKey::from_base64(&text).map_err(|e| SetupError::RootKey(format!("{var}: {e}")))?;
        return Ok((key, false));
    }
    if let Some(var) = &cfg.keys.passphrase_env {
        let pass = zeroize::Zeroizing::new(std::env::var(var).map_err(|_| {
            SetupError::RootKey(format!(
                "environment variable {var} (keys.passphrase_env) is not set"
            ))
        })?);
        if pass.len() < 16 {
            return Err(SetupError::RootKey(format!(
                "the passphrase in {var} must have at least 16 characters"
            )));
        }
        let salt_path = cfg.data_dir.join("root.salt");
        let created = !salt_path.exists();
        if created {
            let mut salt = [0u8; 16];
            boveda_crypto::random_bytes(&mut salt)
                .map_err(|e| SetupError::RootKey(e.to_string()))?;
            tls::write_private(&salt_path, hex::encode(salt).as_bytes())
                .map_err(|e| io(&salt_path, e))?;
        }
        let salt = std::fs::read_to_string(&salt_path).map_err(|e| io(&salt_path, e))?;
        let salt = hex::decode(salt.trim()).map_err(|e| io(&salt_path, e))?;
        let key = RootKey::from_passphrase(pass.as_bytes(), &salt)
            .map_err(|e| SetupError::RootKey(e.to_string()))?;
        return Ok((key, created));
    }
    let path = cfg
        .keys
        .root_key_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("root.key"));
    if !path.exists() {
        let (key, text) = RootKey::generate().map_err(|e| SetupError::RootKey(e.to_string()))?;
        tls::write_private(&path, text.as_bytes()).map_err(|e| io(&path, e))?;
        return Ok((key, true));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .map_err(|e| io(&path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(SetupError::RootKey(format!(
                "{} is readable by others (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| io(&path, e))?);
    let key = RootKey::from_base64(&text)
        .map_err(|e| SetupError::RootKey(format!("{}: {e}", path.display())))?;
    Ok((key, false))
}

/// Opens the configured store.
///
/// # Errors
/// [`SetupError::Store`].
pub async fn store(cfg: &Config) -> Result<Arc<dyn Store>, SetupError> {
    Ok(match &cfg.storage.postgres_url {
        Some(url) => Arc::new(
            boveda_store::postgres::PostgresStore::connect_in_schema(
                url,
                cfg.storage.postgres_keys_url.as_deref(),
                &cfg.storage.postgres_schema,
            )
            .await?,
        ),
        None => Arc::new(boveda_store::sqlite::SqliteStore::open(&cfg.data_dir).await?),
    })
}

/// Prepares everything a server needs, creating what a first start creates.
///
/// # Errors
/// [`SetupError`] naming what to fix.
pub async fn prepare(cfg: &Config) -> Result<Prepared, SetupError> {
    prepare_with(cfg, cfg.vault_config()).await
}

/// As [`prepare`], with explicit vault settings (the benchmarks switch the audit log off to
/// measure its cost; nothing else should).
///
/// # Errors
/// [`SetupError`] naming what to fix.
pub async fn prepare_with(
    cfg: &Config,
    vault_config: boveda_core::VaultConfig,
) -> Result<Prepared, SetupError> {
    cfg.check()?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| io(&cfg.data_dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let (root, root_key_created) = root_key(cfg)?;
    // The recorder first: the vault sets its gauges as it opens.
    crate::metrics_handle();
    let store = store(cfg).await?;
    let vault = Vault::open(store, root, vault_config).await?;
    let tls = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (Some(c), Some(k)) => tls::load(c, k, false)?,
        _ => {
            let (c, k, _) = tls::dev_certificate(&cfg.data_dir)?;
            tls::load(&c, &k, true)?
        }
    };
    let bootstrap_file = match vault.bootstrap_operator().await? {
        Some(token) => {
            let path = cfg.data_dir.join("bootstrap-operator.token");
            let _ = std::fs::remove_file(&path);
            tls::write_private(&path, format!("{}\n", token.expose()).as_bytes())
                .map_err(|e| io(&path, e))?;
            Some(path)
        }
        None => None,
    };
    Ok(Prepared {
        vault,
        tls,
        bootstrap_file,
        root_key_created,
    })
}

/// Runs the background rewrap job until `stop` fires: one step whenever woken or every second,
/// straight on while there is work.
pub async fn rewrap_job(
    vault: Vault,
    batch: usize,
    wake: Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let busy = match vault.rewrap_step(batch).await {
            Ok((moved, remaining)) => moved > 0 && remaining > 0,
            Err(e) => {
                tracing::warn!(error = %e, "rewrap step failed; retrying");
                false
            }
        };
        if busy {
            tokio::task::yield_now().await;
            if *stop.borrow() {
                return;
            }
            continue;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Signs a checkpoint of every tenant's chain every `every` (the periodic half of "every N
/// events or T seconds") and applies the retention, until `stop` fires.
pub async fn checkpoint_job(
    vault: Vault,
    every: std::time::Duration,
    retention: Option<std::time::Duration>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = vault.checkpoint_all().await {
            tracing::warn!(error = %e, "periodic audit checkpoint failed; retrying later");
        }
        if let Err(e) = vault.incident_clocks().await {
            tracing::warn!(error = %e, "incident clocks could not be checked; retrying later");
        }
        if let Some(keep) = retention
            && let Err(e) = vault.apply_retention(keep.as_millis() as i64).await
        {
            tracing::warn!(error = %e, "audit retention failed; retrying later");
        }
    }
}

/// Where the continuous export goes.
#[derive(Debug, Clone)]
pub enum ExportSink {
    /// Appended to a file, one event per line.
    File {
        /// The file.
        path: PathBuf,
        /// `jsonl` or `cef`.
        format: String,
    },
    /// POSTed to a webhook as a JSON array of exported events.
    Webhook {
        /// The URL.
        url: String,
    },
}

impl ExportSink {
    /// The sinks a configuration names.
    pub fn from_config(cfg: &Config) -> Vec<ExportSink> {
        let mut out = Vec::new();
        if let Some(path) = &cfg.audit.export_file {
            out.push(ExportSink::File {
                path: path.clone(),
                format: cfg
                    .audit
                    .export_format
                    .clone()
                    .unwrap_or_else(|| "jsonl".into()),
            });
        }
        if let Some(url) = &cfg.audit.export_webhook {
            out.push(ExportSink::Webhook { url: url.clone() });
        }
        out
    }

    fn name(&self) -> &'static str {
        match self {
            ExportSink::File { .. } => "file",
            ExportSink::Webhook { .. } => "webhook",
        }
    }
}

async fn deliver(
    sink: &ExportSink,
    http: &reqwest::Client,
    events: &[boveda_store::StoredEvent],
) -> Result<(), String> {
    match sink {
        ExportSink::File { path, format } => {
            use tokio::io::AsyncWriteExt as _;
            let mut text = String::new();
            for e in events {
                let line = if format == "cef" {
                    boveda_core::audit_format::to_cef(e)
                } else {
                    boveda_core::audit_format::to_json_line(e)
                }
                .map_err(|e| e.to_string())?;
                text.push_str(&line);
                text.push('\n');
            }
            let mut f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await
                .map_err(|e| e.to_string())?;
            f.write_all(text.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            // Durable before the cursor moves: at least once, never lost.
            f.sync_data().await.map_err(|e| e.to_string())
        }
        ExportSink::Webhook { url } => {
            let lines: Vec<serde_json::Value> = events
                .iter()
                .map(|e| {
                    let line =
                        boveda_core::audit_format::to_json_line(e).map_err(|e| e.to_string())?;
                    serde_json::from_str(&line).map_err(|e| e.to_string())
                })
                .collect::<Result<_, _>>()?;
            let resp = http
                .post(url)
                .json(&lines)
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(format!("webhook answered {}", resp.status()))
            }
        }
    }
}

/// Ships the audit log to a sink continuously, at least once: a batch is delivered, then the
/// cursor moves; a failed delivery is retried with backoff (up to a minute). The lag is the
/// metric `boveda_audit_export_lag_events`.
pub async fn export_job(
    vault: Vault,
    sink: ExportSink,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let mut backoff = std::time::Duration::from_millis(200);
    loop {
        let mut delivered_any = false;
        match vault.export_pending(sink.name(), 1000).await {
            Ok(batches) => {
                for b in batches {
                    let Some(last) = b.events.last().map(|e| e.seq) else {
                        continue;
                    };
                    match deliver(&sink, &http, &b.events).await {
                        Ok(()) => {
                            if let Err(e) = vault.export_done(sink.name(), b.tenant, last).await {
                                tracing::warn!(error = %e, "could not save the export cursor; events may be sent again");
                            }
                            delivered_any = true;
                            backoff = std::time::Duration::from_millis(200);
                        }
                        Err(e) => {
                            metrics::counter!("boveda_audit_export_failures_total", "sink" => sink.name()).increment(1);
                            tracing::warn!(sink = sink.name(), error = %e, "audit export failed; retrying");
                            backoff = (backoff * 2).min(std::time::Duration::from_secs(60));
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "audit export could not read the log"),
        }
        let wait = if delivered_any {
            std::time::Duration::from_millis(50)
        } else {
            backoff.max(std::time::Duration::from_millis(500))
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Sends behaviour alerts to a webhook as they are raised, at least once: a tenant's batch
/// (`{"tenant_id", "alerts": [...]}`) is POSTed, then the cursor moves; failures are retried.
pub async fn alert_webhook_job(
    vault: Vault,
    url: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    loop {
        match vault.pending_alerts("webhook").await {
            Ok(pending) => {
                for (tenant, alerts) in pending {
                    let Some(last) = alerts.last() else { continue };
                    let body = serde_json::json!({"tenant_id": tenant, "alerts": alerts});
                    match http.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => {
                            if let Err(e) = vault.alerts_delivered("webhook", tenant, last).await {
                                tracing::warn!(error = %e, "could not save the alert cursor; alerts may be sent again");
                            }
                        }
                        Ok(r) => {
                            tracing::warn!(status = %r.status(), "alert webhook refused; retrying")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e.without_url(), "alert webhook failed; retrying")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read alerts"),
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
    }
}
