//! Offline verification of an audit log, as `boveda audit verify` runs it: from a copy of the
//! SQLite data file, from a PostgreSQL database, or from an exported JSON-lines file, against a
//! trusted public key and the verifier's saved state (to detect a rolled-back tail).

use crate::Error;
use boveda_audit::{Checkpoint, Report, StoredEvent, VerifierState};
use boveda_crypto::sign::PublicKey;
use boveda_store::{AuditFilter, Store, TenantId};
use std::path::Path;

/// Where the log comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A SQLite `data.db` (a copy is fine; it is opened read-only).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL URL and schema.
    Postgres {
        /// URL.
        url: String,
        /// Schema.
        schema: String,
    },
    /// An export from `GET /v1/audit/export?format=jsonl`, with checkpoints if any.
    JsonLines(std::path::PathBuf),
}

async fn load(
    source: &Source,
    tenant: TenantId,
) -> Result<(Vec<StoredEvent>, Vec<Checkpoint>), Error> {
    match source {
        Source::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                boveda_store::sqlite::read_audit_file(&path, tenant)
            })
            .await
            .map_err(|_| Error::Internal("reading task"))?
            .map_err(Error::from)
        }
        Source::Postgres { url, schema } => {
            let store =
                boveda_store::postgres::PostgresStore::connect_in_schema(url, None, schema).await?;
            let mut events = Vec::new();
            let mut after = 0;
            loop {
                let page = store
                    .audit_events(tenant, &AuditFilter::default(), after, 50_000)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                events.extend(page);
            }
            Ok((events, store.checkpoints(tenant).await?))
        }
        Source::JsonLines(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|_| Error::BadRequest(format!("cannot read {}", path.display())))?;
            let mut events = Vec::new();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                events.push(boveda_audit::from_json_line(line).map_err(|_| {
                    Error::BadRequest(format!("line {} is not an exported audit event", i + 1))
                })?);
            }
            Ok((events, Vec::new()))
        }
    }
}

/// Verifies a tenant's log from `source` with the trusted key; reads and then updates the
/// state file when one is given (only after an intact result).
///
/// # Errors
/// When the source or the state file cannot be read; a broken log is a [`Report`], not an
/// error.
pub async fn verify(
    source: &Source,
    tenant: TenantId,
    key: &PublicKey,
    state_file: Option<&Path>,
) -> Result<Report, Error> {
    let state = match state_file {
        Some(p) if p.exists() => {
            let text = std::fs::read_to_string(p)
                .map_err(|_| Error::BadRequest(format!("cannot read {}", p.display())))?;
            Some(VerifierState::from_json(&text).map_err(|_| {
                Error::BadRequest(format!("{} is not a verifier state", p.display()))
            })?)
        }
        _ => None,
    };
    let (events, checkpoints) = load(source, tenant).await?;
    let report = boveda_audit::verify(events, &checkpoints, key, state.as_ref());
    if let (Some(p), Some(next)) = (
        state_file,
        VerifierState::after(*tenant.as_bytes(), &report),
    ) {
        std::fs::write(p, next.to_json())
            .map_err(|_| Error::BadRequest(format!("cannot write {}", p.display())))?;
    }
    Ok(report)
}
