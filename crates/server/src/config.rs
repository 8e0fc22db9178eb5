//! Configuration: a TOML file, overridden by `BOVEDA_*` environment variables, then by flags
//! (`--set section.key=value`). An unknown key in any of the three is an error naming the key.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Configuration errors: operator misuse, reported at start with the setting's name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown or mistyped key.
    #[error("config file {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What the parser said (it names the key).
        message: String,
    },
    /// An unknown key in an environment variable or flag.
    #[error("unknown configuration key `{0}`")]
    UnknownKey(String),
    /// A value that does not fit its key.
    #[error("invalid value for `{key}`: {reason}")]
    Value {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data directory: SQLite files, the generated root key and development certificate.
    pub data_dir: PathBuf,
    /// HTTPS server.
    pub server: ServerConfig,
    /// Storage backend.
    pub storage: StorageConfig,
    /// Root key source.
    pub keys: KeysConfig,
    /// Vault behaviour.
    pub vault: VaultSection,
    /// Logging.
    pub log: LogConfig,
    /// Continuous export of the audit log.
    pub audit: AuditSection,
    /// Delivery of incident notices.
    pub notify: NotifySection,
}

/// `[notify]`: how incident notices leave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySection {
    /// The SMTP relay: `smtp://host:587` (STARTTLS when offered; `?tls=required` to insist),
    /// `smtps://host:465` (TLS), with `user:password@` if it needs them.
    pub smtp_url: Option<String>,
    /// The sender address of notices.
    pub from: String,
    /// Where letters (PDF) and the public announcement (HTML, PDF) go; default
    /// `<data_dir>/outbox`.
    pub outbox_dir: Option<PathBuf>,
    /// First retry delay after a failed attempt, doubled on each further one.
    pub backoff_ms: u64,
    /// A notice claimed by a node that then died is claimed again after this long.
    pub lease_seconds: u64,
    /// How often the delivery job looks for due notices.
    pub interval_ms: u64,
}

impl Default for NotifySection {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "boveda@localhost".into(),
            outbox_dir: None,
            backoff_ms: 30_000,
            lease_seconds: 300,
            interval_ms: 1_000,
        }
    }
}

/// `[audit]`: continuous export to a SIEM, at least once, with a lag metric.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Append every event to this file (JSON lines or CEF lines).
    pub export_file: Option<PathBuf>,
    /// `jsonl` or `cef`.
    pub export_format: Option<String>,
    /// POST batches of events (a JSON array of exported events) to this URL.
    pub export_webhook: Option<String>,
    /// Keep events this many days (then delete up to a checkpoint; checkpoints stay).
    pub retention_days: Option<u32>,
    /// POST behaviour alerts to this URL as they are raised.
    pub alert_webhook: Option<String>,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// PEM certificate chain; a development certificate is generated when unset.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Largest request body in bytes (413 beyond it).
    pub body_limit_bytes: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_grace_seconds: u64,
    /// Requests per minute one address may make to the public authentication routes.
    pub auth_rate_per_minute: u32,
}

/// `[storage]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// PostgreSQL URL; SQLite in `data_dir` when unset.
    pub postgres_url: Option<String>,
    /// A second PostgreSQL database for key tables, backed up apart from the data.
    pub postgres_keys_url: Option<String>,
    /// Schema that holds boveda's tables, so several deployments can share a database.
    pub postgres_schema: String,
}

/// `[keys]`: where the root key comes from, first match wins: `root_key_env`, then
/// `passphrase_env`, then `root_key_file` (created on first start).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Root key file (base64 of 32 bytes, mode 0600); default `<data_dir>/root.key`.
    pub root_key_file: Option<PathBuf>,
    /// Name of an environment variable holding the root key in base64.
    pub root_key_env: Option<String>,
    /// Name of an environment variable holding a passphrase (Argon2id, salt in the data dir).
    pub passphrase_env: Option<String>,
}

/// `[vault]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultSection {
    /// Region for national phone numbers of new tenants.
    pub default_region: String,
    /// Purposes new tenants start with.
    pub default_purposes: Vec<String>,
    /// Most records per batch.
    pub max_batch: usize,
    /// How long a node caches tenant settings, schemas and keys, in milliseconds.
    pub cache_ttl_ms: u64,
    /// Subject keys moved per step of the rewrap job.
    pub rewrap_batch: usize,
    /// A staff session unused this many minutes ends.
    pub session_idle_minutes: u64,
    /// A staff session ends this many hours after login.
    pub session_lifetime_hours: u64,
    /// Argon2id memory for staff passwords, KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id passes (OWASP: 2).
    pub argon2_iterations: u32,
    /// Argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// Sign an audit checkpoint every this many events of a tenant.
    pub checkpoint_every: u64,
    /// And at least every this many seconds when there are new events.
    pub checkpoint_seconds: u64,
    /// Behaviour alert kinds that suspend the principal at once (`repeated_denials`,
    /// `repeated_mfa_failures`, `volume`, `distinct_subjects`, `clear_burst`, ...).
    pub alert_suspend: Vec<String>,
    /// Alert kinds that make a staff principal step up MFA again.
    pub alert_step_up: Vec<String>,
    /// Alert kinds that throttle the principal to one data call a second for 15 minutes.
    pub alert_throttle: Vec<String>,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `boveda=debug`.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./boveda-data"),
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            keys: KeysConfig::default(),
            vault: VaultSection::default(),
            log: LogConfig::default(),
            audit: AuditSection::default(),
            notify: NotifySection::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            tls_cert: None,
            tls_key: None,
            body_limit_bytes: 1024 * 1024,
            shutdown_grace_seconds: 30,
            auth_rate_per_minute: 30,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            postgres_url: None,
            postgres_keys_url: None,
            postgres_schema: "boveda".into(),
        }
    }
}

impl Default for VaultSection {
    fn default() -> Self {
        let v = boveda_core::VaultConfig::default();
        Self {
            default_region: v.default_region,
            default_purposes: v.default_purposes,
            max_batch: v.max_batch,
            cache_ttl_ms: v.cache_ttl.as_millis() as u64,
            rewrap_batch: 500,
            session_idle_minutes: 30,
            session_lifetime_hours: 12,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            checkpoint_every: 1000,
            checkpoint_seconds: 60,
            alert_suspend: Vec::new(),
            alert_step_up: Vec::new(),
            alert_throttle: Vec::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// Environment variables that are not configuration keys but are read by boveda.
pub const RESERVED_ENV: &[&str] = &[
    "BOVEDA_CONFIG",
    "BOVEDA_ROOT_KEY",
    "BOVEDA_PASSPHRASE",
    "BOVEDA_TOKEN",
    "BOVEDA_TOKEN_FILE",
    "BOVEDA_URL",
    "BOVEDA_CA_CERT",
    "BOVEDA_TEST_POSTGRES_URL",
];

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError::Value {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn alert_kind(name: &str) -> Option<boveda_core::AlertKind> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

fn alert_kinds(names: &[String]) -> Vec<boveda_core::AlertKind> {
    names.iter().filter_map(|k| alert_kind(k)).collect()
}

fn opt(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

impl Config {
    /// Reads a TOML file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`] naming the unknown or mistyped key.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text; the error names the offending key.
    ///
    /// # Errors
    /// The parser's message.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Sets one key by its dotted name (`server.listen`), as environment variables and flags do.
    ///
    /// # Errors
    /// [`ConfigError::UnknownKey`] or [`ConfigError::Value`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "data_dir" => self.data_dir = PathBuf::from(value),
            "server.listen" => self.server.listen = value.to_owned(),
            "server.tls_cert" => self.server.tls_cert = opt(value).map(PathBuf::from),
            "server.tls_key" => self.server.tls_key = opt(value).map(PathBuf::from),
            "server.body_limit_bytes" => self.server.body_limit_bytes = parse(key, value)?,
            "server.auth_rate_per_minute" => self.server.auth_rate_per_minute = parse(key, value)?,
            "server.shutdown_grace_seconds" => {
                self.server.shutdown_grace_seconds = parse(key, value)?
            }
            "storage.postgres_url" => self.storage.postgres_url = opt(value),
            "storage.postgres_keys_url" => self.storage.postgres_keys_url = opt(value),
            "storage.postgres_schema" => self.storage.postgres_schema = value.to_owned(),
            "keys.root_key_file" => self.keys.root_key_file = opt(value).map(PathBuf::from),
            "keys.root_key_env" => self.keys.root_key_env = opt(value),
            "keys.passphrase_env" => self.keys.passphrase_env = opt(value),
            "vault.default_region" => self.vault.default_region = value.to_owned(),
            "vault.default_purposes" => {
                self.vault.default_purposes = value
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "vault.max_batch" => self.vault.max_batch = parse(key, value)?,
            "vault.cache_ttl_ms" => self.vault.cache_ttl_ms = parse(key, value)?,
            "vault.rewrap_batch" => self.vault.rewrap_batch = parse(key, value)?,
            "vault.session_idle_minutes" => self.vault.session_idle_minutes = parse(key, value)?,
            "vault.session_lifetime_hours" => {
                self.vault.session_lifetime_hours = parse(key, value)?
            }
            "vault.argon2_memory_kib" => self.vault.argon2_memory_kib = parse(key, value)?,
            "vault.argon2_iterations" => self.vault.argon2_iterations = parse(key, value)?,
            "vault.argon2_parallelism" => self.vault.argon2_parallelism = parse(key, value)?,
            "vault.checkpoint_every" => self.vault.checkpoint_every = parse(key, value)?,
            "vault.checkpoint_seconds" => self.vault.checkpoint_seconds = parse(key, value)?,
            "vault.alert_suspend" => self.vault.alert_suspend = list(value),
            "vault.alert_step_up" => self.vault.alert_step_up = list(value),
            "vault.alert_throttle" => self.vault.alert_throttle = list(value),
            "audit.export_file" => self.audit.export_file = opt(value).map(PathBuf::from),
            "audit.export_format" => self.audit.export_format = opt(value),
            "audit.export_webhook" => self.audit.export_webhook = opt(value),
            "audit.alert_webhook" => self.audit.alert_webhook = opt(value),
            "audit.retention_days" => {
                self.audit.retention_days = opt(value).map(|v| parse(key, &v)).transpose()?
            }
            "notify.smtp_url" => self.notify.smtp_url = opt(value),
            "notify.from" => self.notify.from = value.to_owned(),
            "notify.outbox_dir" => self.notify.outbox_dir = opt(value).map(PathBuf::from),
            "notify.backoff_ms" => self.notify.backoff_ms = parse(key, value)?,
            "notify.lease_seconds" => self.notify.lease_seconds = parse(key, value)?,
            "notify.interval_ms" => self.notify.interval_ms = parse(key, value)?,
            "log.format" => self.log.format = value.to_owned(),
            "log.level" => self.log.level = value.to_owned(),
            _ => return Err(ConfigError::UnknownKey(key.to_owned())),
        }
        Ok(())
    }

    /// Applies `BOVEDA_<SECTION>_<KEY>` variables (`BOVEDA_SERVER_LISTEN`, `BOVEDA_DATA_DIR`).
    ///
    /// # Errors
    /// [`ConfigError::UnknownKey`] for a `BOVEDA_` variable that is neither a key nor reserved.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("BOVEDA_") else {
                continue;
            };
            if RESERVED_ENV.contains(&name.as_str()) {
                continue;
            }
            let lower = rest.to_ascii_lowercase();
            let key = if lower == "data_dir" {
                lower
            } else {
                match lower.split_once('_') {
                    Some((section, field)) => format!("{section}.{field}"),
                    None => return Err(ConfigError::UnknownKey(name)),
                }
            };
            self.set(&key, &value).map_err(|e| match e {
                ConfigError::UnknownKey(_) => ConfigError::UnknownKey(name.clone()),
                other => other,
            })?;
        }
        Ok(())
    }

    /// Checks values that parse but cannot work.
    ///
    /// # Errors
    /// [`ConfigError::Value`] naming the key.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| {
            Err(ConfigError::Value {
                key: key.into(),
                reason: reason.into(),
            })
        };
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad(
                "server.listen",
                "expected an address such as 127.0.0.1:8443",
            );
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return bad(
                "server.tls_cert",
                "set both tls_cert and tls_key, or neither",
            );
        }
        if self.server.body_limit_bytes < 1024 {
            return bad("server.body_limit_bytes", "at least 1024");
        }
        if !boveda_core::phone::known_region(&self.vault.default_region) {
            return bad(
                "vault.default_region",
                "a supported ISO 3166 region such as CN, ES or US",
            );
        }
        if !(1..=10_000).contains(&self.vault.max_batch) {
            return bad("vault.max_batch", "between 1 and 10000");
        }
        if self.vault.argon2_memory_kib < 8 * 1024
            || self.vault.argon2_iterations == 0
            || self.vault.argon2_parallelism == 0
        {
            return bad(
                "vault.argon2_memory_kib",
                "at least 8192 KiB, 1 pass and 1 lane",
            );
        }
        if self.vault.session_idle_minutes == 0 || self.vault.session_lifetime_hours == 0 {
            return bad(
                "vault.session_idle_minutes",
                "sessions need a positive idle timeout and lifetime",
            );
        }
        if self.vault.rewrap_batch == 0 {
            return bad("vault.rewrap_batch", "at least 1");
        }
        for (key, kinds) in [
            ("vault.alert_suspend", &self.vault.alert_suspend),
            ("vault.alert_step_up", &self.vault.alert_step_up),
            ("vault.alert_throttle", &self.vault.alert_throttle),
        ] {
            if let Some(k) = kinds.iter().find(|k| alert_kind(k).is_none()) {
                return bad(key, &format!("unknown alert kind `{k}`"));
            }
        }
        if !matches!(
            self.audit.export_format.as_deref(),
            None | Some("jsonl" | "cef")
        ) {
            return bad("audit.export_format", "jsonl or cef");
        }
        for (key, url) in [
            ("audit.export_webhook", &self.audit.export_webhook),
            ("audit.alert_webhook", &self.audit.alert_webhook),
        ] {
            if let Some(u) = url
                && !boveda_core::notice::webhook_allowed(u)
            {
                return bad(key, "an https:// URL (plain http only to this machine)");
            }
        }
        if let Err(e) = crate::notify::Notifier::new(&self.notify, &self.data_dir) {
            let (key, why) = e.split_once(": ").unwrap_or(("notify", &e));
            return bad(key, why);
        }
        if self.notify.interval_ms == 0 {
            return bad("notify.interval_ms", "at least 1");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format", "text or json");
        }
        Ok(())
    }

    /// The vault settings this configuration gives.
    pub fn vault_config(&self) -> boveda_core::VaultConfig {
        boveda_core::VaultConfig {
            checkpoint_every: self.vault.checkpoint_every,
            audit: true,
            alert_thresholds: Default::default(),
            alert_suspend: alert_kinds(&self.vault.alert_suspend),
            alert_step_up: alert_kinds(&self.vault.alert_step_up),
            alert_throttle: alert_kinds(&self.vault.alert_throttle),
            default_purposes: self.vault.default_purposes.clone(),
            default_region: self.vault.default_region.clone(),
            max_batch: self.vault.max_batch,
            cache_ttl: std::time::Duration::from_millis(self.vault.cache_ttl_ms),
            password_params: boveda_crypto::password::Params {
                memory_kib: self.vault.argon2_memory_kib,
                iterations: self.vault.argon2_iterations,
                parallelism: self.vault.argon2_parallelism,
            },
            session_lifetime: std::time::Duration::from_secs(
                self.vault.session_lifetime_hours * 3600,
            ),
            session_idle: std::time::Duration::from_secs(self.vault.session_idle_minutes * 60),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unknown_file_key_is_named() {
        let err = Config::from_toml("[server]\nlisten = \"0.0.0.0:1\"\nlistn = 3\n").unwrap_err();
        assert!(err.contains("listn"), "{err}");
        let err = Config::from_toml("colour = 1").unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let mut c = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\n").unwrap();
        c.apply_env([
            ("BOVEDA_SERVER_LISTEN".into(), "127.0.0.1:2".into()),
            ("HOME".into(), "/x".into()),
        ])
        .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:2");
        c.set("server.listen", "127.0.0.1:3").unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:3");
        c.apply_env([
            ("BOVEDA_DATA_DIR".into(), "/tmp/d".into()),
            ("BOVEDA_ROOT_KEY".into(), "x".into()),
        ])
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/d"));
    }

    #[test]
    fn unknown_env_and_flag_keys_are_named() {
        let mut c = Config::default();
        let e = c
            .apply_env([("BOVEDA_SERVER_LISTN".into(), "x".into())])
            .unwrap_err();
        assert!(e.to_string().contains("BOVEDA_SERVER_LISTN"));
        let e = c.set("storage.pg", "x").unwrap_err();
        assert!(e.to_string().contains("storage.pg"));
        let e = c.set("server.body_limit_bytes", "lots").unwrap_err();
        assert!(e.to_string().contains("server.body_limit_bytes"));
    }

    #[test]
    fn check_names_the_setting() {
        let mut c = Config::default();
        c.check().unwrap();
        c.server.listen = "nowhere".into();
        assert!(c.check().unwrap_err().to_string().contains("server.listen"));
    }
}
