//! `boveda`: the server and its command-line client. Parsing, configuration and wiring only;
//! everything testable lives in the libraries.

mod audit;
mod client;
mod pii;

use anyhow::Context as _;
use boveda_server::config::Config;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// boveda: a personal-data vault.
#[derive(Parser)]
#[command(name = "boveda", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration comes from: file, then `BOVEDA_*` variables, then these flags.
#[derive(Args, Clone)]
struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "BOVEDA_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Listen address (overrides `server.listen`).
    #[arg(long)]
    listen: Option<String>,
    /// Any key: `--set section.key=value`, repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTPS server.
    Serve(ConfigArgs),
    /// Find personal data in a file or stdin: counts per entity, or findings as JSON lines.
    Scan(pii::ScanArgs),
    /// De-identify text, CSV or JSON lines with per-entity operators from a TOML file.
    Redact(pii::RedactArgs),
    /// Create the data directory, root key, development certificate and bootstrap credential,
    /// then exit.
    Init(ConfigArgs),
    /// Tenants (platform operator).
    Tenant {
        #[command(subcommand)]
        command: client::TenantCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Service accounts.
    ServiceAccount {
        #[command(subcommand)]
        command: client::ServiceAccountCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Collection schemas.
    Collection {
        #[command(subcommand)]
        command: client::CollectionCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Log in as a staff user; keeps the session in the user's config directory (0600).
    Login {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Staff users.
    User {
        #[command(subcommand)]
        command: client::UserCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// TOTP enrolment and step-up.
    Mfa {
        #[command(subcommand)]
        command: client::MfaCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// The tenant's access policy.
    Policy {
        #[command(subcommand)]
        command: client::PolicyCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// The audit log: offline verification.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Security incidents: open, contain, blast radius.
    Incident {
        #[command(subcommand)]
        command: client::IncidentCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Tenant keys.
    Keys {
        #[command(subcommand)]
        command: client::KeysCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
}

fn load_config(a: &ConfigArgs) -> anyhow::Result<Config> {
    let mut cfg = match &a.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    cfg.apply_env(std::env::vars())?;
    if let Some(d) = &a.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(l) = &a.listen {
        cfg.server.listen = l.clone();
    }
    for kv in &a.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set expects KEY=VALUE, got `{kv}`"))?;
        cfg.set(k.trim(), v.trim())?;
    }
    cfg.check()?;
    Ok(cfg)
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn prepare(cfg: &Config) -> anyhow::Result<boveda_server::setup::Prepared> {
    let p = boveda_server::setup::prepare(cfg).await?;
    if p.root_key_created {
        tracing::warn!(data_dir = %cfg.data_dir.display(), "created a new root key; keep a copy apart from the data, or use keys.root_key_env in production");
    }
    if p.tls.generated {
        tracing::warn!(cert = %p.tls.cert_path.display(), "no server.tls_cert configured: using a generated development certificate");
    }
    Ok(p)
}

fn announce(cfg: &Config, p: &boveda_server::setup::Prepared, addr: std::net::SocketAddr) {
    println!("boveda listening on https://{addr}");
    println!("  storage:     {}", p.vault.backend());
    println!(
        "  certificate: {} (SHA-256 {})",
        p.tls.cert_path.display(),
        p.tls.fingerprint
    );
    match &p.bootstrap_file {
        Some(f) => println!(
            "  bootstrap operator credential: {} (shown once; move it somewhere safe)",
            f.display()
        ),
        None => println!(
            "  bootstrap operator credential: created on an earlier start ({})",
            cfg.data_dir.join("bootstrap-operator.token").display()
        ),
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    init_logging(&cfg);
    let p = prepare(&cfg).await?;
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", cfg.server.listen))?;
    announce(&cfg, &p, listener.local_addr()?);
    let mut state = boveda_server::AppState::new(p.vault.clone(), cfg.server.body_limit_bytes);
    state.auth_limit = std::sync::Arc::new(boveda_server::RateLimit::new(
        cfg.server.auth_rate_per_minute,
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let checkpoints = tokio::spawn(boveda_server::setup::checkpoint_job(
        p.vault.clone(),
        std::time::Duration::from_secs(cfg.vault.checkpoint_seconds.max(1)),
        cfg.audit
            .retention_days
            .map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400)),
        stop_rx.clone(),
    ));
    let exports: Vec<_> = boveda_server::setup::ExportSink::from_config(&cfg)
        .into_iter()
        .map(|sink| {
            tokio::spawn(boveda_server::setup::export_job(
                p.vault.clone(),
                sink,
                stop_rx.clone(),
            ))
        })
        .collect();
    let alerts = cfg.audit.alert_webhook.clone().map(|url| {
        tokio::spawn(boveda_server::setup::alert_webhook_job(
            p.vault.clone(),
            url,
            stop_rx.clone(),
        ))
    });
    let notifier = boveda_server::notify::Notifier::new(&cfg.notify, &cfg.data_dir)
        .map_err(|e| anyhow::anyhow!(e))?;
    let notices = tokio::spawn(boveda_server::notify::notify_job(
        p.vault.clone(),
        notifier,
        std::time::Duration::from_millis(cfg.notify.interval_ms),
        stop_rx.clone(),
    ));
    let job = tokio::spawn(boveda_server::setup::rewrap_job(
        p.vault.clone(),
        cfg.vault.rewrap_batch,
        state.rewrap.clone(),
        stop_rx,
    ));
    let app = boveda_server::router(state);
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        return;
                    }
                };
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down: finishing in-flight requests");
    };
    boveda_server::net::serve(
        listener,
        p.tls.config.clone(),
        app,
        shutdown,
        std::time::Duration::from_secs(cfg.server.shutdown_grace_seconds),
    )
    .await?;
    let _ = stop_tx.send(true);
    let _ = job.await;
    let _ = checkpoints.await;
    let _ = notices.await;
    if let Some(a) = alerts {
        let _ = a.await;
    }
    for e in exports {
        let _ = e.await;
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve(load_config(&a)?).await?,
        Command::Init(a) => {
            let cfg = load_config(&a)?;
            init_logging(&cfg);
            let p = prepare(&cfg).await?;
            println!("data directory ready: {}", cfg.data_dir.display());
            println!("  certificate SHA-256 {}", p.tls.fingerprint);
            if let Some(f) = &p.bootstrap_file {
                println!("  bootstrap operator credential: {}", f.display());
            }
        }
        Command::Tenant { command, conn } => return client::tenant(&conn, command).await,
        Command::ServiceAccount { command, conn } => {
            return client::service_account(&conn, command).await;
        }
        Command::Collection { command, conn } => return client::collection(&conn, command).await,
        Command::Keys { command, conn } => return client::keys(&conn, command).await,
        Command::Audit { command } => return audit::run(command).await,
        Command::Incident { command, conn } => return client::incident(&conn, command).await,
        Command::Login { tenant, conn } => return client::login(&conn, &tenant).await,
        Command::User { command, conn } => return client::user(&conn, command).await,
        Command::Mfa { command, conn } => return client::mfa(&conn, command).await,
        Command::Policy { command, conn } => return client::policy(&conn, command).await,
        Command::Scan(a) => return Ok(pii::scan(a)),
        Command::Redact(a) => return Ok(pii::redact(a)),
    }
    Ok(ExitCode::SUCCESS)
}

/// mimalloc rather than glibc malloc: a read request allocates and frees across threads
/// (the request task, the blocking pool, the audit appender), where glibc spent about a fifth
/// of the request's CPU; `cargo bench -p boveda-server --bench api` measures with the same.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!(
                "error: cannot start the async runtime: {e}\nhint: check the process limits (threads, file descriptors)"
            );
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            eprintln!("hint: {}", client::hint(&e));
            ExitCode::from(2)
        }
    }
}
