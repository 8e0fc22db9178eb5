//! The PostgreSQL backend, for several stateless boveda nodes sharing one database.
//!
//! Tables live in one schema (`boveda` by default). Key tables may live in a second database
//! (`storage.postgres_keys_url`), backed up on its own schedule, so that a backup of the data
//! cannot bring back an erased subject. Batches use `UNNEST` so one statement carries a whole
//! batch, and a unique violation anywhere rolls the whole batch back. Migrations take an
//! advisory lock, so nodes starting together migrate once.

use crate::{
    AlertId, AlertRow, AuditEvent, AuditFilter, Checkpoint, CollectionRow, Error, IncidentId,
    IncidentRow, IndexEntry, KeyState, NoticeRow, PolicyRow, PrincipalId, PrincipalRow, RecordId,
    RecordRow, Result, RetireOutcome, SessionRow, Store, StoredEvent, SubjectId, SubjectKeyRow,
    TenantId, TenantKeyRow, TenantRow, TokenRow, UserRow,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::sync::Arc;
use tokio_postgres::{NoTls, Row};

const DATA_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE tenants (
    id BYTEA PRIMARY KEY, name TEXT NOT NULL UNIQUE, settings TEXT NOT NULL,
    wrapped_index_key BYTEA NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE principals (
    id BYTEA PRIMARY KEY, tenant BYTEA, kind TEXT NOT NULL, name TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE, grants TEXT NOT NULL, created_at BIGINT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE);
CREATE INDEX principals_tenant ON principals (tenant);
CREATE TABLE collections (
    tenant BYTEA NOT NULL, name TEXT NOT NULL, schema TEXT NOT NULL, version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, PRIMARY KEY (tenant, name));
CREATE TABLE records (
    tenant BYTEA NOT NULL, collection TEXT NOT NULL, id BYTEA NOT NULL, subject BYTEA NOT NULL,
    sealed BYTEA NOT NULL, labels TEXT NOT NULL, version BIGINT NOT NULL,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, collection, id));
CREATE INDEX records_subject ON records (tenant, subject);
CREATE TABLE blind_index (
    tenant BYTEA NOT NULL, collection TEXT NOT NULL, field TEXT NOT NULL, digest BYTEA NOT NULL,
    record BYTEA NOT NULL, PRIMARY KEY (tenant, collection, field, digest, record));
CREATE INDEX blind_index_record ON blind_index (tenant, collection, record);
"#,
    r#"
CREATE TABLE users (
    tenant BYTEA NOT NULL, id BYTEA NOT NULL, login_digest BYTEA NOT NULL, state TEXT NOT NULL,
    sealed BYTEA NOT NULL, version BIGINT NOT NULL, created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE UNIQUE INDEX users_login ON users (tenant, login_digest);
CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY, tenant BYTEA NOT NULL, user_id BYTEA NOT NULL,
    created_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    mfa_at BIGINT NOT NULL, revoked BOOLEAN NOT NULL DEFAULT FALSE);
CREATE INDEX sessions_user ON sessions (tenant, user_id);
CREATE TABLE policies (
    tenant BYTEA NOT NULL, version BIGINT NOT NULL, document TEXT NOT NULL,
    created_by TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (tenant, version));
CREATE TABLE subject_access (
    tenant BYTEA NOT NULL, principal BYTEA NOT NULL, day BIGINT NOT NULL, subject BYTEA NOT NULL,
    PRIMARY KEY (tenant, principal, day, subject));
"#,
    r#"
CREATE TABLE audit_events (
    tenant BYTEA NOT NULL, seq BIGINT NOT NULL, encoded BYTEA NOT NULL, hash BYTEA NOT NULL,
    at_ms BIGINT NOT NULL, principal TEXT NOT NULL, action TEXT NOT NULL, collection TEXT,
    purpose TEXT, outcome TEXT NOT NULL, PRIMARY KEY (tenant, seq));
CREATE INDEX audit_events_time ON audit_events (tenant, at_ms);
CREATE TABLE audit_subjects (
    tenant BYTEA NOT NULL, subject BYTEA NOT NULL, seq BIGINT NOT NULL,
    PRIMARY KEY (tenant, subject, seq));
CREATE TABLE audit_heads (tenant BYTEA PRIMARY KEY, seq BIGINT NOT NULL, hash BYTEA NOT NULL);
CREATE TABLE audit_checkpoints (
    tenant BYTEA NOT NULL, seq BIGINT NOT NULL, hash BYTEA NOT NULL, at_ms BIGINT NOT NULL,
    key_id BYTEA NOT NULL, signature BYTEA NOT NULL, PRIMARY KEY (tenant, seq));
"#,
    r#"
CREATE TABLE alerts (
    tenant BYTEA NOT NULL, id BYTEA NOT NULL, kind TEXT NOT NULL, principal TEXT NOT NULL,
    at_ms BIGINT NOT NULL, events TEXT NOT NULL, detail TEXT NOT NULL, state TEXT NOT NULL,
    updated_at BIGINT NOT NULL, PRIMARY KEY (tenant, id));
"#,
    r#"
CREATE TABLE incidents (
    tenant BYTEA NOT NULL, id BYTEA NOT NULL, doc TEXT NOT NULL, version BIGINT NOT NULL,
    created_at BIGINT NOT NULL, PRIMARY KEY (tenant, id));
"#,
    r#"
CREATE TABLE notices (
    tenant BYTEA NOT NULL, incident BYTEA NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
    version BIGINT NOT NULL, PRIMARY KEY (tenant, incident, key));
"#,
    r#"
CREATE INDEX audit_events_principal ON audit_events (tenant, principal, seq);
"#,
    r#"
ALTER TABLE notices ADD COLUMN due_ms BIGINT;
UPDATE notices SET due_ms = 0 WHERE doc::jsonb ->> 'status' IN ('queued', 'sending', 'fell_back');
CREATE INDEX notices_due ON notices (tenant, incident, due_ms) WHERE due_ms IS NOT NULL;
"#,
    r#"
CREATE TABLE tokens (
    tenant BYTEA NOT NULL, scope TEXT NOT NULL, token TEXT NOT NULL, subject BYTEA NOT NULL,
    sealed BYTEA NOT NULL, created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, scope, token, subject));
CREATE INDEX tokens_subject ON tokens (tenant, subject);
"#,
];

const KEY_MIGRATIONS: &[&str] = &[r#"
CREATE TABLE tenant_keys (
    tenant BYTEA NOT NULL, version BIGINT NOT NULL, wrapped BYTEA, state TEXT NOT NULL,
    created_at BIGINT NOT NULL, PRIMARY KEY (tenant, version));
CREATE TABLE subject_keys (
    tenant BYTEA NOT NULL, subject BYTEA NOT NULL, kek_version BIGINT NOT NULL,
    dek_version BIGINT NOT NULL, wrapped_dek BYTEA NOT NULL, created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, subject));
CREATE INDEX subject_keys_version ON subject_keys (tenant, kek_version);
"#];

/// The URL tests use: `BOVEDA_TEST_POSTGRES_URL` or this machine's server.
pub fn test_url() -> String {
    std::env::var("BOVEDA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The PostgreSQL store.
pub struct PostgresStore {
    data: Pool,
    keys: Pool,
    schema: String,
}

fn valid_schema(schema: &str) -> Result<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid postgres schema name `{schema}`"
        )))
    }
}

async fn pool(url: &str, schema: &str) -> Result<Pool> {
    let mut cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| Error::Config(format!("invalid postgres url: {e}")))?;
    cfg.options(format!("-c search_path={schema}"));
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(mgr)
        .max_size(16)
        .build()
        .map_err(|e| Error::Config(format!("postgres pool: {e}")))?;
    let client = pool.get().await?;
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await?;
    Ok(pool)
}

async fn migrate(pool: &Pool, name: &str, migrations: &[&str]) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // One migrator at a time across nodes; the lock ends with the transaction.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("boveda-migrate-{name}")],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS schema_migrations_{name} (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)"
    ))
    .await?;
    let done: i64 = tx
        .query_one(
            &format!("SELECT COALESCE(MAX(version), 0) FROM schema_migrations_{name}"),
            &[],
        )
        .await?
        .get(0);
    let known = migrations.len() as i64;
    if done > known {
        return Err(Error::Config(format!(
            "database schema version {done} is newer than this binary knows ({known}); upgrade boveda"
        )));
    }
    for (i, sql) in migrations.iter().enumerate().skip(done as usize) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| Error::Config(format!("migration {} failed: {e}", i + 1)))?;
        tx.execute(
            &format!("INSERT INTO schema_migrations_{name} (version, applied_at) VALUES ($1, $2)"),
            &[&(i as i64 + 1), &now_ms()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn id16(b: Vec<u8>, table: &'static str) -> Result<[u8; 16]> {
    b.try_into().map_err(|_| Error::Corrupt(table))
}

fn version(v: i64, table: &'static str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Corrupt(table))
}

fn to_tenant(r: &Row) -> Result<TenantRow> {
    Ok(TenantRow {
        id: TenantId::from_bytes(id16(r.try_get(0)?, "tenants")?),
        name: r.try_get(1)?,
        settings: r.try_get(2)?,
        wrapped_index_key: r.try_get(3)?,
        created_at: r.try_get(4)?,
    })
}

fn to_principal(r: &Row) -> Result<PrincipalRow> {
    let tenant: Option<Vec<u8>> = r.try_get(1)?;
    Ok(PrincipalRow {
        id: PrincipalId::from_bytes(id16(r.try_get(0)?, "principals")?),
        tenant: tenant
            .map(|t| id16(t, "principals").map(TenantId::from_bytes))
            .transpose()?,
        kind: r.try_get(2)?,
        name: r.try_get(3)?,
        token_hash: r.try_get(4)?,
        grants: r.try_get(5)?,
        created_at: r.try_get(6)?,
        disabled: r.try_get(7)?,
    })
}

fn to_subject_key(r: &Row) -> Result<SubjectKeyRow> {
    Ok(SubjectKeyRow {
        tenant: TenantId::from_bytes(id16(r.try_get(0)?, "subject_keys")?),
        subject: SubjectId::from_bytes(id16(r.try_get(1)?, "subject_keys")?),
        kek_version: version(r.try_get(2)?, "subject_keys")?,
        dek_version: version(r.try_get(3)?, "subject_keys")?,
        wrapped_dek: r.try_get(4)?,
        created_at: r.try_get(5)?,
    })
}

const RECORD_COLUMNS: &str = "r.tenant, r.collection, r.id, r.subject, r.sealed, r.labels, r.version, r.created_at, r.updated_at";

fn to_record(r: &Row) -> Result<RecordRow> {
    Ok(RecordRow {
        tenant: TenantId::from_bytes(id16(r.try_get(0)?, "records")?),
        collection: r.try_get(1)?,
        id: RecordId::from_bytes(id16(r.try_get(2)?, "records")?),
        subject: SubjectId::from_bytes(id16(r.try_get(3)?, "records")?),
        sealed: r.try_get(4)?,
        labels: r.try_get(5)?,
        version: r.try_get(6)?,
        created_at: r.try_get(7)?,
        updated_at: r.try_get(8)?,
    })
}

const USER_COLUMNS: &str = "tenant, id, login_digest, state, sealed, version, created_at";

fn to_user(r: &Row) -> Result<UserRow> {
    Ok(UserRow {
        tenant: TenantId::from_bytes(id16(r.try_get(0)?, "users")?),
        id: PrincipalId::from_bytes(id16(r.try_get(1)?, "users")?),
        login_digest: r.try_get(2)?,
        state: r.try_get(3)?,
        sealed: r.try_get(4)?,
        version: r.try_get(5)?,
        created_at: r.try_get(6)?,
    })
}

fn to_session(r: &Row) -> Result<SessionRow> {
    Ok(SessionRow {
        token_hash: r.try_get(0)?,
        tenant: TenantId::from_bytes(id16(r.try_get(1)?, "sessions")?),
        user: PrincipalId::from_bytes(id16(r.try_get(2)?, "sessions")?),
        created_at: r.try_get(3)?,
        last_seen_at: r.try_get(4)?,
        expires_at: r.try_get(5)?,
        mfa_at: r.try_get(6)?,
        revoked: r.try_get(7)?,
    })
}

/// Appends audit events inside an open transaction. The head row of each tenant's chain is
/// locked (`FOR UPDATE`) until the transaction ends, so appends from several nodes queue on it:
/// no forks, no gaps.
async fn append_audit_tx(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[AuditEvent],
) -> Result<Vec<StoredEvent>> {
    // Lock the heads of the batch's tenants, in a stable order so that two nodes never wait on
    // each other; then chain the events in memory and insert them with one statement per table.
    let mut tenants: Vec<[u8; 16]> = events.iter().map(|e| e.tenant).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut heads: std::collections::HashMap<[u8; 16], (u64, [u8; 32])> =
        std::collections::HashMap::new();
    for tenant in tenants {
        let t = &tenant[..];
        let genesis = boveda_audit::genesis(&tenant);
        tx.execute(
            "INSERT INTO audit_heads (tenant, seq, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING",
            &[&t, &&genesis[..]],
        )
        .await?;
        let row = tx
            .query_one(
                "SELECT seq, hash FROM audit_heads WHERE tenant = $1 FOR UPDATE",
                &[&t],
            )
            .await?;
        let hash: Vec<u8> = row.try_get(1)?;
        heads.insert(
            tenant,
            (
                row.try_get::<_, i64>(0)? as u64,
                hash.try_into().map_err(|_| Error::Corrupt("audit_heads"))?,
            ),
        );
    }
    let n = events.len();
    let mut out = Vec::with_capacity(n);
    let (mut c_tenant, mut c_seq, mut c_hash, mut c_at) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut c_principal, mut c_action, mut c_collection, mut c_purpose, mut c_outcome) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut s_tenant, mut s_subject, mut s_seq) = (Vec::new(), Vec::new(), Vec::new());
    for e in events {
        let head = heads
            .get_mut(&e.tenant)
            .ok_or(Error::Corrupt("audit_heads"))?;
        let seq = head.0 + 1;
        let encoded = e.encode_as(seq);
        let hash = boveda_audit::link_hash(&head.1, seq, &encoded);
        *head = (seq, hash);
        for subject in &e.subjects {
            s_tenant.push(e.tenant.to_vec());
            s_subject.push(subject.to_vec());
            s_seq.push(seq as i64);
        }
        c_tenant.push(e.tenant.to_vec());
        c_seq.push(seq as i64);
        c_hash.push(hash.to_vec());
        c_at.push(e.at_ms);
        c_principal.push(e.principal.as_str());
        c_action.push(&*e.action);
        c_collection.push(e.collection.as_deref());
        c_purpose.push(e.purpose.as_deref());
        c_outcome.push(e.outcome.as_str());
        out.push(StoredEvent { seq, encoded, hash });
    }
    let c_encoded: Vec<&[u8]> = out.iter().map(|s| s.encoded.as_slice()).collect();
    tx.execute(
        "INSERT INTO audit_events (tenant, seq, encoded, hash, at_ms, principal, action, collection, purpose, outcome)
         SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::bytea[], $4::bytea[], $5::int8[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])",
        &[
            &c_tenant,
            &c_seq,
            &c_encoded,
            &c_hash,
            &c_at,
            &c_principal,
            &c_action,
            &c_collection,
            &c_purpose,
            &c_outcome,
        ],
    )
    .await?;
    if !s_seq.is_empty() {
        tx.execute(
            "INSERT INTO audit_subjects (tenant, subject, seq)
             SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::int8[]) ON CONFLICT DO NOTHING",
            &[&s_tenant, &s_subject, &s_seq],
        )
        .await?;
    }
    for (tenant, (seq, hash)) in heads {
        tx.execute(
            "UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant = $1",
            &[&&tenant[..], &(seq as i64), &&hash[..]],
        )
        .await?;
    }
    Ok(out)
}

fn to_checkpoint(tenant: [u8; 16], r: &Row) -> Result<Checkpoint> {
    let hash: Vec<u8> = r.try_get(1)?;
    let key_id: Vec<u8> = r.try_get(3)?;
    Ok(Checkpoint {
        tenant,
        seq: r.try_get::<_, i64>(0)? as u64,
        hash: hash
            .try_into()
            .map_err(|_| Error::Corrupt("audit_checkpoints"))?,
        at_ms: r.try_get(2)?,
        key_id: key_id
            .try_into()
            .map_err(|_| Error::Corrupt("audit_checkpoints"))?,
        signature: r.try_get(4)?,
    })
}

fn conflict(e: tokio_postgres::Error, what: &'static str) -> Error {
    match Error::from(e) {
        Error::Conflict(_) => Error::Conflict(what),
        other => other,
    }
}

async fn insert_index(tx: &deadpool_postgres::Transaction<'_>, index: &[IndexEntry]) -> Result<()> {
    if index.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&[u8]> = index
        .iter()
        .map(|e| e.tenant.as_bytes().as_slice())
        .collect();
    let cols: Vec<&str> = index.iter().map(|e| e.collection.as_str()).collect();
    let fields: Vec<&str> = index.iter().map(|e| e.field.as_str()).collect();
    let digests: Vec<&[u8]> = index.iter().map(|e| e.digest.as_slice()).collect();
    let records: Vec<&[u8]> = index
        .iter()
        .map(|e| e.record.as_bytes().as_slice())
        .collect();
    tx.execute(
        "INSERT INTO blind_index (tenant, collection, field, digest, record)
         SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::bytea[], $5::bytea[])
         ON CONFLICT DO NOTHING",
        &[&tenants, &cols, &fields, &digests, &records],
    )
    .await?;
    Ok(())
}

impl PostgresStore {
    /// Connects to `url` (and `keys_url` for the key tables, if given), in schema `boveda`, and
    /// runs migrations.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad URL or failed migration, [`Error::Unavailable`] when the server
    /// cannot be reached.
    pub async fn connect(url: &str, keys_url: Option<&str>) -> Result<Self> {
        Self::connect_in_schema(url, keys_url, "boveda").await
    }

    /// As [`PostgresStore::connect`], in a named schema (tests use one schema per run).
    ///
    /// # Errors
    /// As [`PostgresStore::connect`].
    pub async fn connect_in_schema(
        url: &str,
        keys_url: Option<&str>,
        schema: &str,
    ) -> Result<Self> {
        valid_schema(schema)?;
        let data = pool(url, schema).await?;
        let keys = match keys_url {
            Some(k) => pool(k, schema).await?,
            None => data.clone(),
        };
        migrate(&data, "data", DATA_MIGRATIONS).await?;
        migrate(&keys, "keys", KEY_MIGRATIONS).await?;
        // Paged scans (audit events, subjects) need the planner's statistics, which autovacuum
        // keeps; without them a page can cost a scan of the whole table.
        let autovacuum: String = data
            .get()
            .await?
            .query_one("SHOW autovacuum", &[])
            .await?
            .get(0);
        if autovacuum != "on" {
            tracing::warn!(
                "PostgreSQL autovacuum is off: run ANALYZE regularly, or paged scans of large tables slow down"
            );
        }
        Ok(Self {
            data,
            keys,
            schema: schema.to_owned(),
        })
    }

    /// Drops this store's schema and everything in it (tests only).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the server refuses.
    #[doc(hidden)]
    pub async fn drop_schema(&self) -> Result<()> {
        for pool in [&self.data, &self.keys] {
            pool.get()
                .await?
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
                .await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        self.data.get().await?.execute("SELECT 1", &[]).await?;
        self.keys.get().await?.execute("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let c = self.data.get().await?;
        Ok(
            c.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                .await?
                .map(|r| r.get(0)),
        )
    }

    async fn init_meta(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let c = self.data.get().await?;
        c.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&key, &value],
        )
        .await?;
        Ok(
            c.query_one("SELECT value FROM meta WHERE key = $1", &[&key])
                .await?
                .get(0),
        )
    }

    async fn create_tenant(&self, t: &TenantRow, k: &TenantKeyRow) -> Result<()> {
        let c = self.data.get().await?;
        if c.query_opt("SELECT 1 FROM tenants WHERE name = $1", &[&t.name])
            .await?
            .is_some()
        {
            return Err(Error::Conflict("tenant name"));
        }
        // Key first: a crash in between leaves an unused key, never a tenant without one.
        self.keys
            .get()
            .await?
            .execute(
                "INSERT INTO tenant_keys (tenant, version, wrapped, state, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&t.id.as_bytes().as_slice(), &i64::from(k.version), &k.wrapped, &k.state.as_str(), &k.created_at],
            )
            .await
            .map_err(|e| conflict(e, "key version"))?;
        c.execute(
            "INSERT INTO tenants (id, name, settings, wrapped_index_key, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&t.id.as_bytes().as_slice(), &t.name, &t.settings, &t.wrapped_index_key, &t.created_at],
        )
        .await
        .map_err(|e| conflict(e, "tenant name"))?;
        Ok(())
    }

    async fn tenant(&self, id: TenantId) -> Result<Option<TenantRow>> {
        let c = self.data.get().await?;
        c.query_opt(
            "SELECT id, name, settings, wrapped_index_key, created_at FROM tenants WHERE id = $1",
            &[&id.as_bytes().as_slice()],
        )
        .await?
        .map(|r| to_tenant(&r))
        .transpose()
    }

    async fn tenants(&self) -> Result<Vec<TenantRow>> {
        let c = self.data.get().await?;
        c.query("SELECT id, name, settings, wrapped_index_key, created_at FROM tenants ORDER BY created_at, id", &[])
            .await?
            .iter()
            .map(to_tenant)
            .collect()
    }

    async fn update_tenant_settings(&self, id: TenantId, settings: &str) -> Result<bool> {
        let c = self.data.get().await?;
        Ok(c.execute(
            "UPDATE tenants SET settings = $2 WHERE id = $1",
            &[&id.as_bytes().as_slice(), &settings],
        )
        .await?
            == 1)
    }

    async fn tenant_keys(&self, tenant: TenantId) -> Result<Vec<TenantKeyRow>> {
        let c = self.keys.get().await?;
        c.query(
            "SELECT version, wrapped, state, created_at FROM tenant_keys WHERE tenant = $1 ORDER BY version",
            &[&tenant.as_bytes().as_slice()],
        )
        .await?
        .iter()
        .map(|r| {
            let state: String = r.try_get(2)?;
            Ok(TenantKeyRow {
                tenant,
                version: version(r.try_get(0)?, "tenant_keys")?,
                wrapped: r.try_get(1)?,
                state: KeyState::parse(&state).ok_or(Error::Corrupt("tenant_keys"))?,
                created_at: r.try_get(3)?,
            })
        })
        .collect()
    }

    async fn add_tenant_key(&self, k: &TenantKeyRow) -> Result<()> {
        let mut c = self.keys.get().await?;
        let tx = c.transaction().await?;
        let t = k.tenant.as_bytes().as_slice();
        tx.execute(
            "UPDATE tenant_keys SET state = 'decrypt_only' WHERE tenant = $1 AND state = 'active'",
            &[&t],
        )
        .await?;
        tx.execute(
            "INSERT INTO tenant_keys (tenant, version, wrapped, state, created_at) VALUES ($1, $2, $3, 'active', $4)",
            &[&t, &i64::from(k.version), &k.wrapped, &k.created_at],
        )
        .await
        .map_err(|e| conflict(e, "key version"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn retire_tenant_key(&self, tenant: TenantId, v: u32) -> Result<RetireOutcome> {
        let mut c = self.keys.get().await?;
        let tx = c.transaction().await?;
        let t = tenant.as_bytes().as_slice();
        let v = i64::from(v);
        let state: Option<String> = tx
            .query_opt(
                "SELECT state FROM tenant_keys WHERE tenant = $1 AND version = $2 FOR UPDATE",
                &[&t, &v],
            )
            .await?
            .map(|r| r.get(0));
        let outcome = match state.as_deref().map(KeyState::parse) {
            None => RetireOutcome::NotFound,
            Some(None) => return Err(Error::Corrupt("tenant_keys")),
            Some(Some(KeyState::Active)) => RetireOutcome::Active,
            Some(Some(KeyState::Retired)) => RetireOutcome::Retired,
            Some(Some(KeyState::DecryptOnly)) => {
                let used: i64 = tx
                    .query_one(
                        "SELECT COUNT(*) FROM subject_keys WHERE tenant = $1 AND kek_version = $2",
                        &[&t, &v],
                    )
                    .await?
                    .get(0);
                if used > 0 {
                    RetireOutcome::InUse(used as u64)
                } else {
                    tx.execute(
                        "UPDATE tenant_keys SET state = 'retired', wrapped = NULL WHERE tenant = $1 AND version = $2",
                        &[&t, &v],
                    )
                    .await?;
                    RetireOutcome::Retired
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn create_principal(&self, p: &PrincipalRow) -> Result<()> {
        let c = self.data.get().await?;
        let tenant = p.tenant.map(|t| t.as_bytes().to_vec());
        c.execute(
            "INSERT INTO principals (id, tenant, kind, name, token_hash, grants, created_at, disabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&p.id.as_bytes().as_slice(), &tenant, &p.kind, &p.name, &p.token_hash, &p.grants, &p.created_at, &p.disabled],
        )
        .await
        .map_err(|e| conflict(e, "principal"))?;
        Ok(())
    }

    async fn principal_by_token(&self, token_hash: &[u8]) -> Result<Option<PrincipalRow>> {
        let c = self.data.get().await?;
        c.query_opt(
            "SELECT id, tenant, kind, name, token_hash, grants, created_at, disabled
             FROM principals WHERE token_hash = $1 AND NOT disabled",
            &[&token_hash],
        )
        .await?
        .map(|r| to_principal(&r))
        .transpose()
    }

    async fn principals(&self, tenant: Option<TenantId>) -> Result<Vec<PrincipalRow>> {
        let c = self.data.get().await?;
        let tenant = tenant.map(|t| t.as_bytes().to_vec());
        c.query(
            "SELECT id, tenant, kind, name, token_hash, grants, created_at, disabled
             FROM principals WHERE tenant IS NOT DISTINCT FROM $1 ORDER BY created_at, id",
            &[&tenant],
        )
        .await?
        .iter()
        .map(to_principal)
        .collect()
    }

    async fn disable_principal(&self, tenant: TenantId, id: PrincipalId) -> Result<bool> {
        let c = self.data.get().await?;
        Ok(c.execute(
            "UPDATE principals SET disabled = TRUE WHERE tenant = $1 AND id = $2",
            &[&tenant.as_bytes().as_slice(), &id.as_bytes().as_slice()],
        )
        .await?
            == 1)
    }

    async fn put_collection(&self, col: &CollectionRow) -> Result<()> {
        let c = self.data.get().await?;
        c.execute(
            "INSERT INTO collections (tenant, name, schema, version, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant, name) DO UPDATE SET schema = excluded.schema,
               version = excluded.version, updated_at = excluded.updated_at",
            &[&col.tenant.as_bytes().as_slice(), &col.name, &col.schema, &col.version, &col.updated_at],
        )
        .await?;
        Ok(())
    }

    async fn collection(&self, tenant: TenantId, name: &str) -> Result<Option<CollectionRow>> {
        let c = self.data.get().await?;
        Ok(c.query_opt(
            "SELECT schema, version, updated_at FROM collections WHERE tenant = $1 AND name = $2",
            &[&tenant.as_bytes().as_slice(), &name],
        )
        .await?
        .map(|r| CollectionRow {
            tenant,
            name: name.to_owned(),
            schema: r.get(0),
            version: r.get(1),
            updated_at: r.get(2),
        }))
    }

    async fn collections(&self, tenant: TenantId) -> Result<Vec<CollectionRow>> {
        let c = self.data.get().await?;
        Ok(c
            .query(
                "SELECT name, schema, version, updated_at FROM collections WHERE tenant = $1 ORDER BY name",
                &[&tenant.as_bytes().as_slice()],
            )
            .await?
            .iter()
            .map(|r| CollectionRow { tenant, name: r.get(0), schema: r.get(1), version: r.get(2), updated_at: r.get(3) })
            .collect())
    }

    async fn insert_subject_keys(&self, keys: &[SubjectKeyRow]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let c = self.keys.get().await?;
        let tenants: Vec<&[u8]> = keys
            .iter()
            .map(|k| k.tenant.as_bytes().as_slice())
            .collect();
        let subjects: Vec<&[u8]> = keys
            .iter()
            .map(|k| k.subject.as_bytes().as_slice())
            .collect();
        let kek: Vec<i64> = keys.iter().map(|k| i64::from(k.kek_version)).collect();
        let dek: Vec<i64> = keys.iter().map(|k| i64::from(k.dek_version)).collect();
        let wrapped: Vec<&[u8]> = keys.iter().map(|k| k.wrapped_dek.as_slice()).collect();
        let created: Vec<i64> = keys.iter().map(|k| k.created_at).collect();
        c.execute(
            "INSERT INTO subject_keys (tenant, subject, kek_version, dek_version, wrapped_dek, created_at)
             SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::int8[], $4::int8[], $5::bytea[], $6::int8[])",
            &[&tenants, &subjects, &kek, &dek, &wrapped, &created],
        )
        .await
        .map_err(|e| conflict(e, "subject"))?;
        Ok(())
    }

    async fn subject_keys(
        &self,
        tenant: TenantId,
        subjects: &[SubjectId],
    ) -> Result<Vec<SubjectKeyRow>> {
        let c = self.keys.get().await?;
        let ids: Vec<&[u8]> = subjects.iter().map(|s| s.as_bytes().as_slice()).collect();
        c.query(
            "SELECT tenant, subject, kek_version, dek_version, wrapped_dek, created_at
             FROM subject_keys WHERE tenant = $1 AND subject = ANY($2)",
            &[&tenant.as_bytes().as_slice(), &ids],
        )
        .await?
        .iter()
        .map(to_subject_key)
        .collect()
    }

    async fn erase_subject(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        audit: &[AuditEvent],
    ) -> Result<Option<Vec<StoredEvent>>> {
        let t = tenant.as_bytes().as_slice();
        let s = subject.as_bytes().as_slice();
        // Destroy the key first: from its commit on, the subject's ciphertexts are noise.
        let existed = self
            .keys
            .get()
            .await?
            .execute(
                "DELETE FROM subject_keys WHERE tenant = $1 AND subject = $2",
                &[&t, &s],
            )
            .await?
            == 1;
        let mut c = self.data.get().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "DELETE FROM blind_index WHERE tenant = $1 AND record IN
               (SELECT id FROM records WHERE tenant = $1 AND subject = $2)",
            &[&t, &s],
        )
        .await?;
        tx.execute(
            "DELETE FROM records WHERE tenant = $1 AND subject = $2",
            &[&t, &s],
        )
        .await?;
        tx.execute(
            "DELETE FROM tokens WHERE tenant = $1 AND subject = $2",
            &[&t, &s],
        )
        .await?;
        let stored = if existed {
            Some(append_audit_tx(&tx, audit).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(stored)
    }

    async fn subject_keys_not_at(
        &self,
        tenant: TenantId,
        v: u32,
        limit: usize,
    ) -> Result<Vec<SubjectKeyRow>> {
        let c = self.keys.get().await?;
        c.query(
            "SELECT tenant, subject, kek_version, dek_version, wrapped_dek, created_at
             FROM subject_keys WHERE tenant = $1 AND kek_version <> $2 LIMIT $3",
            &[
                &tenant.as_bytes().as_slice(),
                &i64::from(v),
                &(limit as i64),
            ],
        )
        .await?
        .iter()
        .map(to_subject_key)
        .collect()
    }

    async fn rewrap_subject_keys(&self, from_version: u32, keys: &[SubjectKeyRow]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let c = self.keys.get().await?;
        let tenants: Vec<&[u8]> = keys
            .iter()
            .map(|k| k.tenant.as_bytes().as_slice())
            .collect();
        let subjects: Vec<&[u8]> = keys
            .iter()
            .map(|k| k.subject.as_bytes().as_slice())
            .collect();
        let kek: Vec<i64> = keys.iter().map(|k| i64::from(k.kek_version)).collect();
        let wrapped: Vec<&[u8]> = keys.iter().map(|k| k.wrapped_dek.as_slice()).collect();
        Ok(c.execute(
            "UPDATE subject_keys s SET kek_version = u.kek, wrapped_dek = u.wrapped
             FROM UNNEST($1::bytea[], $2::bytea[], $3::int8[], $4::bytea[]) AS u(tenant, subject, kek, wrapped)
             WHERE s.tenant = u.tenant AND s.subject = u.subject AND s.kek_version = $5",
            &[&tenants, &subjects, &kek, &wrapped, &i64::from(from_version)],
        )
        .await?)
    }

    async fn subject_key_versions(&self, tenant: TenantId) -> Result<Vec<(u32, u64)>> {
        let c = self.keys.get().await?;
        c.query(
            "SELECT kek_version, COUNT(*) FROM subject_keys WHERE tenant = $1 GROUP BY kek_version ORDER BY kek_version",
            &[&tenant.as_bytes().as_slice()],
        )
        .await?
        .iter()
        .map(|r| Ok((version(r.try_get(0)?, "subject_keys")?, r.try_get::<_, i64>(1)? as u64)))
        .collect()
    }

    async fn insert_records(
        &self,
        records: &[RecordRow],
        index: &[IndexEntry],
        audit: &[AuditEvent],
    ) -> Result<Vec<StoredEvent>> {
        let mut c = self.data.get().await?;
        let tx = c.transaction().await?;
        if !records.is_empty() {
            let tenants: Vec<&[u8]> = records
                .iter()
                .map(|r| r.tenant.as_bytes().as_slice())
                .collect();
            let cols: Vec<&str> = records.iter().map(|r| r.collection.as_str()).collect();
            let ids: Vec<&[u8]> = records.iter().map(|r| r.id.as_bytes().as_slice()).collect();
            let subjects: Vec<&[u8]> = records
                .iter()
                .map(|r| r.subject.as_bytes().as_slice())
                .collect();
            let sealed: Vec<&[u8]> = records.iter().map(|r| r.sealed.as_slice()).collect();
            let labels: Vec<&str> = records.iter().map(|r| r.labels.as_str()).collect();
            let versions: Vec<i64> = records.iter().map(|r| r.version).collect();
            let created: Vec<i64> = records.iter().map(|r| r.created_at).collect();
            let updated: Vec<i64> = records.iter().map(|r| r.updated_at).collect();
            tx.execute(
                "INSERT INTO records (tenant, collection, id, subject, sealed, labels, version, created_at, updated_at)
                 SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[], $6::text[],
                                      $7::int8[], $8::int8[], $9::int8[])",
                &[&tenants, &cols, &ids, &subjects, &sealed, &labels, &versions, &created, &updated],
            )
            .await
            .map_err(|e| conflict(e, "record"))?;
        }
        insert_index(&tx, index).await?;
        let stored = append_audit_tx(&tx, audit).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn records(
        &self,
        tenant: TenantId,
        collection: &str,
        ids: &[RecordId],
    ) -> Result<Vec<RecordRow>> {
        let c = self.data.get().await?;
        let keys: Vec<&[u8]> = ids.iter().map(|i| i.as_bytes().as_slice()).collect();
        let rows = c
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM records r WHERE r.tenant = $1 AND r.collection = $2 AND r.id = ANY($3)"
                ),
                &[&tenant.as_bytes().as_slice(), &collection, &keys],
            )
            .await?;
        let mut out = rows.iter().map(to_record).collect::<Result<Vec<_>>>()?;
        // Keep the caller's order, as the SQLite backend does.
        out.sort_by_key(|r| ids.iter().position(|i| *i == r.id));
        Ok(out)
    }

    async fn update_record(
        &self,
        r: &RecordRow,
        index: &[IndexEntry],
        expected_version: i64,
        audit: &[AuditEvent],
    ) -> Result<Option<Vec<StoredEvent>>> {
        let mut c = self.data.get().await?;
        let tx = c.transaction().await?;
        let t = r.tenant.as_bytes().as_slice();
        let id = r.id.as_bytes().as_slice();
        let n = tx
            .execute(
                "UPDATE records SET sealed = $4, labels = $5, version = $6, updated_at = $7
                 WHERE tenant = $1 AND collection = $2 AND id = $3 AND version = $8",
                &[
                    &t,
                    &r.collection,
                    &id,
                    &r.sealed,
                    &r.labels,
                    &r.version,
                    &r.updated_at,
                    &expected_version,
                ],
            )
            .await?;
        if n != 1 {
            return Ok(None);
        }
        tx.execute(
            "DELETE FROM blind_index WHERE tenant = $1 AND collection = $2 AND record = $3",
            &[&t, &r.collection, &id],
        )
        .await?;
        insert_index(&tx, index).await?;
        let stored = append_audit_tx(&tx, audit).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    async fn delete_record(
        &self,
        tenant: TenantId,
        collection: &str,
        id: RecordId,
        audit: &[AuditEvent],
    ) -> Result<Option<Vec<StoredEvent>>> {
        let mut c = self.data.get().await?;
        let tx = c.transaction().await?;
        let t = tenant.as_bytes().as_slice();
        let i = id.as_bytes().as_slice();
        let n = tx
            .execute(
                "DELETE FROM records WHERE tenant = $1 AND collection = $2 AND id = $3",
                &[&t, &collection, &i],
            )
            .await?;
        tx.execute(
            "DELETE FROM blind_index WHERE tenant = $1 AND collection = $2 AND record = $3",
            &[&t, &collection, &i],
        )
        .await?;
        let stored = if n == 1 {
            Some(append_audit_tx(&tx, audit).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(stored)
    }

    async fn search(
        &self,
        tenant: TenantId,
        collection: &str,
        field: &str,
        digest: &[u8],
        limit: usize,
    ) -> Result<Vec<RecordRow>> {
        let c = self.data.get().await?;
        c.query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM blind_index b JOIN records r
                   ON r.tenant = b.tenant AND r.collection = b.collection AND r.id = b.record
                 WHERE b.tenant = $1 AND b.collection = $2 AND b.field = $3 AND b.digest = $4
                 ORDER BY r.id LIMIT $5"
            ),
            &[
                &tenant.as_bytes().as_slice(),
                &collection,
                &field,
                &digest,
                &(limit as i64),
            ],
        )
        .await?
        .iter()
        .map(to_record)
        .collect()
    }

    async fn count_digests(
        &self,
        tenant: TenantId,
        collection: &str,
        field: &str,
        digests: &[Vec<u8>],
    ) -> Result<Vec<u64>> {
        let c = self.data.get().await?;
        let rows = c
            .query(
                "SELECT digest, COUNT(*) FROM blind_index
                 WHERE tenant = $1 AND collection = $2 AND field = $3 AND digest = ANY($4) GROUP BY digest",
                &[&tenant.as_bytes().as_slice(), &collection, &field, &digests],
            )
            .await?;
        let counts: Vec<(Vec<u8>, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(digests
            .iter()
            .map(|d| {
                counts
                    .iter()
                    .find(|(k, _)| k == d)
                    .map_or(0, |(_, n)| *n as u64)
            })
            .collect())
    }

    async fn top_digests(
        &self,
        tenant: TenantId,
        collection: &str,
        field: &str,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        let c = self.data.get().await?;
        Ok(c
            .query(
                "SELECT digest, COUNT(*) AS n FROM blind_index WHERE tenant = $1 AND collection = $2 AND field = $3
                 GROUP BY digest ORDER BY n DESC, digest LIMIT $4",
                &[&tenant.as_bytes().as_slice(), &collection, &field, &(limit as i64)],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
            .collect())
    }

    async fn create_user(&self, u: &UserRow) -> Result<()> {
        let c = self.data.get().await?;
        c.execute(
            &format!("INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
            &[
                &u.tenant.as_bytes().as_slice(),
                &u.id.as_bytes().as_slice(),
                &u.login_digest,
                &u.state,
                &u.sealed,
                &u.version,
                &u.created_at,
            ],
        )
        .await
        .map_err(|e| conflict(e, "user"))?;
        Ok(())
    }

    async fn user(&self, tenant: TenantId, id: PrincipalId) -> Result<Option<UserRow>> {
        let c = self.data.get().await?;
        c.query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE tenant = $1 AND id = $2"),
            &[&tenant.as_bytes().as_slice(), &id.as_bytes().as_slice()],
        )
        .await?
        .map(|r| to_user(&r))
        .transpose()
    }

    async fn user_by_login(
        &self,
        tenant: TenantId,
        login_digest: &[u8],
    ) -> Result<Option<UserRow>> {
        let c = self.data.get().await?;
        c.query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE tenant = $1 AND login_digest = $2"),
            &[&tenant.as_bytes().as_slice(), &login_digest],
        )
        .await?
        .map(|r| to_user(&r))
        .transpose()
    }

    async fn users(&self, tenant: TenantId) -> Result<Vec<UserRow>> {
        let c = self.data.get().await?;
        c.query(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE tenant = $1 ORDER BY created_at, id"),
            &[&tenant.as_bytes().as_slice()],
        )
        .await?
        .iter()
        .map(to_user)
        .collect()
    }

    async fn update_user(&self, u: &UserRow, expected_version: i64) -> Result<bool> {
        let c = self.data.get().await?;
        Ok(c.execute(
            "UPDATE users SET login_digest = $3, state = $4, sealed = $5, version = $6
             WHERE tenant = $1 AND id = $2 AND version = $7",
            &[
                &u.tenant.as_bytes().as_slice(),
                &u.id.as_bytes().as_slice(),
                &u.login_digest,
                &u.state,
                &u.sealed,
                &u.version,
                &expected_version,
            ],
        )
        .await?
            == 1)
    }

    async fn create_session(&self, s: &SessionRow) -> Result<()> {
        let c = self.data.get().await?;
        c.execute(
            "INSERT INTO sessions (token_hash, tenant, user_id, created_at, last_seen_at, expires_at, mfa_at, revoked)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&s.token_hash, &s.tenant.as_bytes().as_slice(), &s.user.as_bytes().as_slice(), &s.created_at, &s.last_seen_at, &s.expires_at, &s.mfa_at, &s.revoked],
        )
        .await?;
        Ok(())
    }

    async fn session(&self, token_hash: &[u8]) -> Result<Option<SessionRow>> {
        let c = self.data.get().await?;
        c.query_opt(
            "SELECT token_hash, tenant, user_id, created_at, last_seen_at, expires_at, mfa_at, revoked FROM sessions WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?
        .map(|r| to_session(&r))
        .transpose()
    }

    async fn update_session(&self, s: &SessionRow) -> Result<bool> {
        let c = self.data.get().await?;
        Ok(c.execute(
            "UPDATE sessions SET last_seen_at = $2, mfa_at = $3, revoked = $4 WHERE token_hash = $1",
            &[&s.token_hash, &s.last_seen_at, &s.mfa_at, &s.revoked],
        )
        .await?
            == 1)
    }

    async fn revoke_sessions(&self, tenant: TenantId, user: PrincipalId) -> Result<u64> {
        let c = self.data.get().await?;
        Ok(c.execute(
            "UPDATE sessions SET revoked = TRUE WHERE tenant = $1 AND user_id = $2 AND NOT revoked",
            &[&tenant.as_bytes().as_slice(), &user.as_bytes().as_slice()],
        )
        .await?)
    }

    async fn put_policy(&self, p: &PolicyRow) -> Result<()> {
        let c = self.data.get().await?;
        c.execute(
            "INSERT INTO policies (tenant, version, document, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&p.tenant.as_bytes().as_slice(), &p.version, &p.document, &p.created_by, &p.created_at],
        )
        .await
        .map_err(|e| conflict(e, "policy version"))?;
        Ok(())
    }

    async fn policy(&self, tenant: TenantId) -> Result<Option<PolicyRow>> {
        let c = self.data.get().await?;
        Ok(c
            .query_opt(
                "SELECT version, document, created_by, created_at FROM policies WHERE tenant = $1 ORDER BY version DESC LIMIT 1",
                &[&tenant.as_bytes().as_slice()],
            )
            .await?
            .map(|r| PolicyRow { tenant, version: r.get(0), document: r.get(1), created_by: r.get(2), created_at: r.get(3) }))
    }

    async fn note_subject_access(
        &self,
        tenant: TenantId,
        principal: PrincipalId,
        day: i64,
        subjects: &[SubjectId],
    ) -> Result<u64> {
        let c = self.data.get().await?;
        let (t, p) = (
            tenant.as_bytes().as_slice(),
            principal.as_bytes().as_slice(),
        );
        let ids: Vec<&[u8]> = subjects.iter().map(|s| s.as_bytes().as_slice()).collect();
        c.execute(
            "INSERT INTO subject_access (tenant, principal, day, subject)
             SELECT $1, $2, $3, s FROM UNNEST($4::bytea[]) AS s ON CONFLICT DO NOTHING",
            &[&t, &p, &day, &ids],
        )
        .await?;
        let n: i64 = c
            .query_one("SELECT COUNT(*) FROM subject_access WHERE tenant = $1 AND principal = $2 AND day = $3", &[&t, &p, &day])
            .await?
            .get(0);
        Ok(n as u64)
    }

    async fn append_audit(&self, events: Arc<Vec<AuditEvent>>) -> Result<Vec<StoredEvent>> {
        let mut c = self.data.get().await?;
        let tx = c.transaction().await?;
        let out = append_audit_tx(&tx, &events).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn audit_probe(&self) -> Result<()> {
        let mut c = self.data.get().await?;
        let tx = c.transaction().await?;
        // A trial row that is never committed: it exercises the same table and triggers as an
        // append.
        tx.execute(
            "INSERT INTO audit_events (tenant, seq, encoded, hash, at_ms, principal, action, outcome)
             VALUES ('\\x00', -1, '', '', 0, '', 'probe', 'allowed')",
            &[],
        )
        .await?;
        tx.rollback().await?;
        Ok(())
    }

    async fn audit_head(&self, tenant: TenantId) -> Result<Option<(u64, [u8; 32])>> {
        let c = self.data.get().await?;
        let row = c
            .query_opt(
                "SELECT seq, hash FROM audit_heads WHERE tenant = $1",
                &[&tenant.as_bytes().as_slice()],
            )
            .await?;
        row.map(|r| {
            let hash: Vec<u8> = r.try_get(1)?;
            Ok((
                r.try_get::<_, i64>(0)? as u64,
                hash.try_into().map_err(|_| Error::Corrupt("audit_heads"))?,
            ))
        })
        .transpose()
        .map(|h| h.filter(|(seq, _)| *seq > 0))
    }

    async fn audit_events(
        &self,
        tenant: TenantId,
        f: &AuditFilter,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let c = self.data.get().await?;
        let t = tenant.as_bytes().to_vec();
        let after = after_seq as i64;
        let lim = limit as i64;
        let subject = f.subject.map(|s| s.to_vec());
        let to_seq = f.to_seq.map(|s| s as i64);
        let rows = c
            .query(
                "SELECT e.seq, e.encoded, e.hash FROM audit_events e
                 WHERE e.tenant = $1 AND e.seq > $2
                   AND ($3::int8 IS NULL OR e.at_ms >= $3) AND ($4::int8 IS NULL OR e.at_ms < $4)
                   AND ($5::text IS NULL OR e.principal = $5) AND ($6::text IS NULL OR e.action = $6)
                   AND ($7::text IS NULL OR e.collection = $7) AND ($8::text IS NULL OR e.purpose = $8)
                   AND ($9::text IS NULL OR e.outcome = $9)
                   AND ($10::bytea IS NULL OR e.seq IN (SELECT s.seq FROM audit_subjects s WHERE s.tenant = e.tenant AND s.subject = $10))
                   AND ($12::int8 IS NULL OR e.seq <= $12)
                 ORDER BY e.seq LIMIT $11",
                &[&t, &after, &f.from_ms, &f.to_ms, &f.principal, &f.action, &f.collection, &f.purpose, &f.outcome, &subject, &lim, &to_seq],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let hash: Vec<u8> = r.try_get(2)?;
                Ok(StoredEvent {
                    seq: r.try_get::<_, i64>(0)? as u64,
                    encoded: r.try_get(1)?,
                    hash: hash
                        .try_into()
                        .map_err(|_| Error::Corrupt("audit_events"))?,
                })
            })
            .collect()
    }

    async fn add_checkpoint(&self, cp: &Checkpoint) -> Result<()> {
        let c = self.data.get().await?;
        c.execute(
            "INSERT INTO audit_checkpoints (tenant, seq, hash, at_ms, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT DO NOTHING",
            &[&&cp.tenant[..], &(cp.seq as i64), &&cp.hash[..], &cp.at_ms, &&cp.key_id[..], &cp.signature],
        )
        .await?;
        Ok(())
    }

    async fn checkpoints(&self, tenant: TenantId) -> Result<Vec<Checkpoint>> {
        let c = self.data.get().await?;
        c.query(
            "SELECT seq, hash, at_ms, key_id, signature FROM audit_checkpoints WHERE tenant = $1 ORDER BY seq",
            &[&tenant.as_bytes().as_slice()],
        )
        .await?
        .iter()
        .map(|r| to_checkpoint(*tenant.as_bytes(), r))
        .collect()
    }

    async fn add_alert(&self, a: &AlertRow) -> Result<()> {
        let c = self.data.get().await?;
        c.execute(
            "INSERT INTO alerts (tenant, id, kind, principal, at_ms, events, detail, state, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[&a.tenant.as_bytes().as_slice(), &a.id.as_bytes().as_slice(), &a.kind, &a.principal, &a.at_ms, &a.events, &a.detail, &a.state, &a.updated_at],
        )
        .await?;
        Ok(())
    }

    async fn alerts(
        &self,
        tenant: TenantId,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AlertRow>> {
        let c = self.data.get().await?;
        c.query(
            "SELECT id, kind, principal, at_ms, events, detail, state, updated_at FROM alerts
             WHERE tenant = $1 AND ($2::text IS NULL OR state = $2) ORDER BY at_ms DESC, id DESC LIMIT $3",
            &[&tenant.as_bytes().as_slice(), &state, &(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(AlertRow {
                tenant,
                id: AlertId::from_bytes(id16(r.try_get(0)?, "alerts")?),
                kind: r.try_get(1)?,
                principal: r.try_get(2)?,
                at_ms: r.try_get(3)?,
                events: r.try_get(4)?,
                detail: r.try_get(5)?,
                state: r.try_get(6)?,
                updated_at: r.try_get(7)?,
            })
        })
        .collect()
    }

    async fn set_alert_state(
        &self,
        tenant: TenantId,
        id: AlertId,
        state: &str,
        at_ms: i64,
    ) -> Result<bool> {
        let c = self.data.get().await?;
        Ok(c.execute(
            "UPDATE alerts SET state = $3, updated_at = $4 WHERE tenant = $1 AND id = $2",
            &[
                &tenant.as_bytes().as_slice(),
                &id.as_bytes().as_slice(),
                &state,
                &at_ms,
            ],
        )
        .await?
            == 1)
    }

    async fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        let c = self.data.get().await?;
        c.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )
        .await?;
        Ok(())
    }

    async fn prune_audit(&self, tenant: TenantId, seq: u64) -> Result<u64> {
        let mut c = self.data.get().await?;
        let tx = c.transaction().await?;
        let t = tenant.as_bytes().as_slice();
        tx.execute(
            "DELETE FROM audit_subjects WHERE tenant = $1 AND seq <= $2",
            &[&t, &(seq as i64)],
        )
        .await?;
        let n = tx
            .execute(
                "DELETE FROM audit_events WHERE tenant = $1 AND seq <= $2",
                &[&t, &(seq as i64)],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn expire_session_mfa(&self, tenant: TenantId, user: PrincipalId) -> Result<u64> {
        let c = self.data.get().await?;
        Ok(c.execute(
            "UPDATE sessions SET mfa_at = 0 WHERE tenant = $1 AND user_id = $2 AND NOT revoked",
            &[&tenant.as_bytes().as_slice(), &user.as_bytes().as_slice()],
        )
        .await?)
    }

    async fn create_incident(&self, r: &IncidentRow) -> Result<()> {
        let c = self.data.get().await?;
        c.execute(
            "INSERT INTO incidents (tenant, id, doc, version, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&r.tenant.as_bytes().as_slice(), &r.id.as_bytes().as_slice(), &r.doc, &r.version, &r.created_at],
        )
        .await?;
        Ok(())
    }

    async fn incident(&self, tenant: TenantId, id: IncidentId) -> Result<Option<IncidentRow>> {
        let c = self.data.get().await?;
        Ok(c.query_opt(
            "SELECT doc, version, created_at FROM incidents WHERE tenant = $1 AND id = $2",
            &[&tenant.as_bytes().as_slice(), &id.as_bytes().as_slice()],
        )
        .await?
        .map(|r| IncidentRow {
            tenant,
            id,
            doc: r.get(0),
            version: r.get(1),
            created_at: r.get(2),
        }))
    }

    async fn incidents(&self, tenant: TenantId) -> Result<Vec<IncidentRow>> {
        let c = self.data.get().await?;
        c.query(
            "SELECT id, doc, version, created_at FROM incidents WHERE tenant = $1 ORDER BY created_at DESC, id DESC",
            &[&tenant.as_bytes().as_slice()],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(IncidentRow {
                tenant,
                id: IncidentId::from_bytes(id16(r.try_get(0)?, "incidents")?),
                doc: r.try_get(1)?,
                version: r.try_get(2)?,
                created_at: r.try_get(3)?,
            })
        })
        .collect()
    }

    async fn update_incident(&self, r: &IncidentRow, expected_version: i64) -> Result<bool> {
        let c = self.data.get().await?;
        Ok(c.execute(
            "UPDATE incidents SET doc = $3, version = $4 WHERE tenant = $1 AND id = $2 AND version = $5",
            &[&r.tenant.as_bytes().as_slice(), &r.id.as_bytes().as_slice(), &r.doc, &r.version, &expected_version],
        )
        .await?
            == 1)
    }

    async fn insert_notices(&self, notices: &[NoticeRow]) -> Result<u64> {
        let mut c = self.data.get().await?;
        let tx = c.transaction().await?;
        let st = tx
            .prepare_cached(
                "INSERT INTO notices (tenant, incident, key, doc, version, due_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .await?;
        let mut n = 0;
        for r in notices {
            n += tx
                .execute(
                    &st,
                    &[
                        &r.tenant.as_bytes().as_slice(),
                        &r.incident.as_bytes().as_slice(),
                        &r.key,
                        &r.doc,
                        &r.version,
                        &r.due_ms,
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn notices(&self, tenant: TenantId, incident: IncidentId) -> Result<Vec<NoticeRow>> {
        let c = self.data.get().await?;
        c.query(
            "SELECT key, doc, version, due_ms FROM notices WHERE tenant = $1 AND incident = $2 ORDER BY key COLLATE \"C\"",
            &[&tenant.as_bytes().as_slice(), &incident.as_bytes().as_slice()],
        )
        .await?
        .iter()
        .map(|r| notice_row(tenant, incident, r))
        .collect()
    }

    async fn insert_tokens(
        &self,
        tokens: &[TokenRow],
        audit: &[AuditEvent],
    ) -> Result<(u64, Vec<StoredEvent>)> {
        let mut c = self.data.get().await?;
        let tx = c.transaction().await?;
        let st = tx
            .prepare_cached(
                "INSERT INTO tokens (tenant, scope, token, subject, sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .await?;
        let mut n = 0;
        for r in tokens {
            n += tx
                .execute(
                    &st,
                    &[
                        &r.tenant.as_bytes().as_slice(),
                        &r.scope,
                        &r.token,
                        &r.subject
                            .as_ref()
                            .map_or(&[0u8; 16][..], |s| s.as_bytes().as_slice()),
                        &r.sealed,
                        &r.created_at,
                    ],
                )
                .await?;
        }
        let stored = append_audit_tx(&tx, audit).await?;
        tx.commit().await?;
        Ok((n, stored))
    }

    async fn tokens(
        &self,
        tenant: TenantId,
        scope: &str,
        tokens: &[String],
    ) -> Result<Vec<TokenRow>> {
        let c = self.data.get().await?;
        c.query(
            "SELECT token, subject, sealed, created_at FROM tokens WHERE tenant = $1 AND scope = $2 AND token = ANY($3) ORDER BY token, subject",
            &[&tenant.as_bytes().as_slice(), &scope, &tokens],
        )
        .await?
        .iter()
        .map(|r| {
            let subject = id16(r.try_get(1)?, "tokens")?;
            Ok(TokenRow {
                tenant,
                scope: scope.to_owned(),
                token: r.try_get(0)?,
                subject: (subject != [0; 16]).then(|| SubjectId::from_bytes(subject)),
                sealed: r.try_get(2)?,
                created_at: r.try_get(3)?,
            })
        })
        .collect()
    }

    async fn due_notices(
        &self,
        tenant: TenantId,
        incident: IncidentId,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<NoticeRow>> {
        let c = self.data.get().await?;
        c.query(
            "SELECT key, doc, version, due_ms FROM notices WHERE tenant = $1 AND incident = $2 AND due_ms <= $3 ORDER BY due_ms LIMIT $4",
            &[&tenant.as_bytes().as_slice(), &incident.as_bytes().as_slice(), &now_ms, &(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| notice_row(tenant, incident, r))
        .collect()
    }

    async fn notice(
        &self,
        tenant: TenantId,
        incident: IncidentId,
        key: &str,
    ) -> Result<Option<NoticeRow>> {
        let c = self.data.get().await?;
        c.query_opt(
            "SELECT key, doc, version, due_ms FROM notices WHERE tenant = $1 AND incident = $2 AND key = $3",
            &[
                &tenant.as_bytes().as_slice(),
                &incident.as_bytes().as_slice(),
                &key,
            ],
        )
        .await?
        .map(|r| notice_row(tenant, incident, &r))
        .transpose()
    }

    async fn update_notice(&self, r: &NoticeRow, expected_version: i64) -> Result<bool> {
        let c = self.data.get().await?;
        Ok(c.execute(
            "UPDATE notices SET doc = $4, version = $5, due_ms = $7 WHERE tenant = $1 AND incident = $2 AND key = $3 AND version = $6",
            &[&r.tenant.as_bytes().as_slice(), &r.incident.as_bytes().as_slice(), &r.key, &r.doc, &r.version, &expected_version, &r.due_ms],
        )
        .await?
            == 1)
    }

    async fn subject_records(
        &self,
        tenant: TenantId,
        collection: &str,
        subjects: &[SubjectId],
    ) -> Result<Vec<RecordRow>> {
        let c = self.data.get().await?;
        let keys: Vec<&[u8]> = subjects.iter().map(|i| i.as_bytes().as_slice()).collect();
        c.query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM records r WHERE r.tenant = $1 AND r.subject = ANY($2) AND r.collection = $3 ORDER BY r.created_at, r.id"
            ),
            &[&tenant.as_bytes().as_slice(), &keys, &collection],
        )
        .await?
        .iter()
        .map(to_record)
        .collect()
    }

    async fn subject_ids(
        &self,
        tenant: TenantId,
        after: Option<SubjectId>,
        limit: usize,
    ) -> Result<Vec<SubjectId>> {
        let c = self.keys.get().await?;
        let after = after.map_or_else(Vec::new, |s| s.as_bytes().to_vec());
        c.query(
            "SELECT subject FROM subject_keys WHERE tenant = $1 AND subject > $2 ORDER BY subject LIMIT $3",
            &[&tenant.as_bytes().as_slice(), &after, &(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| Ok(SubjectId::from_bytes(id16(r.try_get(0)?, "subject_keys")?)))
        .collect()
    }
}

fn notice_row(
    tenant: TenantId,
    incident: IncidentId,
    r: &tokio_postgres::Row,
) -> Result<NoticeRow> {
    Ok(NoticeRow {
        tenant,
        incident,
        key: r.try_get(0)?,
        doc: r.try_get(1)?,
        version: r.try_get(2)?,
        due_ms: r.try_get(3)?,
    })
}
