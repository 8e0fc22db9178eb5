//! `boveda audit verify`: offline verification of an audit log against a trusted public key,
//! keeping a small state file so that a later run detects a truncated or rolled-back log.
//! Exit 0 intact, 1 broken (first bad sequence number and what is wrong), 2 error.

use anyhow::Context as _;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify a tenant's audit log offline.
    Verify {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The trusted Ed25519 public key (hex), from `GET /v1/audit/public-key`.
        #[arg(long)]
        public_key: String,
        /// A copy of the SQLite `data.db`.
        #[arg(long, conflicts_with_all = ["postgres", "jsonl"])]
        sqlite: Option<PathBuf>,
        /// A PostgreSQL URL.
        #[arg(long, conflicts_with = "jsonl")]
        postgres: Option<String>,
        /// The schema in PostgreSQL.
        #[arg(long, default_value = "boveda")]
        schema: String,
        /// An export from `GET /v1/audit/export?format=jsonl`.
        #[arg(long)]
        jsonl: Option<PathBuf>,
        /// The verifier's state file (created on first use; detects rollbacks later).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_parser = ["text", "json"], default_value = "text")]
        output: String,
    },
}

pub(crate) async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify {
        tenant,
        public_key,
        sqlite,
        postgres,
        schema,
        jsonl,
        state,
        output,
    } = cmd;
    let tenant: boveda_core::TenantId = tenant.parse().context("--tenant is not a tenant id")?;
    let key_bytes = hex::decode(public_key.trim()).context("--public-key is not hex")?;
    let key = boveda_crypto::sign::PublicKey::from_slice(&key_bytes)
        .map_err(|_| anyhow::anyhow!("--public-key is not a 32-byte Ed25519 key"))?;
    let source = match (sqlite, postgres, jsonl) {
        (Some(p), None, None) => boveda_core::offline::Source::Sqlite(p),
        (None, Some(url), None) => boveda_core::offline::Source::Postgres { url, schema },
        (None, None, Some(p)) => boveda_core::offline::Source::JsonLines(p),
        _ => anyhow::bail!("name the log: --sqlite FILE, --postgres URL or --jsonl FILE"),
    };
    let report = boveda_core::offline::verify(&source, tenant, &key, state.as_deref()).await?;
    if output == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &report {
            boveda_core::AuditReport::Intact {
                last_seq,
                events,
                checkpoint_seq,
                ..
            } => {
                println!(
                    "intact: {events} events up to sequence {last_seq}, last checkpoint at {checkpoint_seq}"
                );
            }
            boveda_core::AuditReport::Broken {
                first_bad_seq,
                problem,
            } => {
                println!("BROKEN at sequence {first_bad_seq}: {problem}");
            }
        }
    }
    Ok(if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
