//! The vault service: every call takes a [`Caller`], checks tenant, scope and purpose, and only
//! then touches keys and sealed rows. Handlers make one call here and map the result.

use crate::principal::{Caller, Grants, Principal, PrincipalKind, Scope};
use crate::schema::{CollectionSpec, FieldSpec};
use crate::values::{self, View};
use crate::{Error, error::safe_name};
use boveda_crypto::{Dek, FieldAad, IndexKey, Kek, Pii, RootKey, SecretKey, WrapAad, token};
use boveda_policy::Action;
use boveda_store::{
    CollectionRow, IndexEntry, KeyState, PrincipalId, PrincipalRow, RecordId, RecordRow,
    RetireOutcome, Store, SubjectId, SubjectKeyRow, TenantId, TenantKeyRow, TenantRow,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Vault settings that come from configuration.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Purposes a new tenant starts with.
    pub default_purposes: Vec<String>,
    /// Region for phone numbers written without a country code, for new tenants.
    pub default_region: String,
    /// Most records in one batch.
    pub max_batch: usize,
    /// How long a node trusts its cached copy of a tenant's settings, schemas and keys. Other
    /// nodes' changes become visible within this time; this node's own at once.
    pub cache_ttl: Duration,
    /// Argon2id parameters for staff passwords.
    pub password_params: boveda_crypto::password::Params,
    /// Absolute lifetime of a staff session.
    pub session_lifetime: Duration,
    /// A staff session unused this long ends.
    pub session_idle: Duration,
    /// Sign a checkpoint every this many events of a tenant (0: only periodically and on demand).
    pub checkpoint_every: u64,
    /// Write the audit log. Always on in service; the benchmark switches it off to measure its
    /// cost.
    #[doc(hidden)]
    pub audit: bool,
    /// Thresholds of behaviour analytics.
    pub alert_thresholds: boveda_audit::Thresholds,
    /// Alert kinds that suspend the principal at once (a configured response).
    pub alert_suspend: Vec<boveda_audit::AlertKind>,
    /// Alert kinds that make a staff principal's sessions need a fresh MFA check.
    pub alert_step_up: Vec<boveda_audit::AlertKind>,
    /// Alert kinds that throttle the principal's data calls to one a second for 15 minutes.
    pub alert_throttle: Vec<boveda_audit::AlertKind>,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            default_purposes: [
                "customer_support",
                "billing",
                "fraud_prevention",
                "legal_obligation",
                "data_subject_request",
                "analytics",
            ]
            .map(str::to_owned)
            .to_vec(),
            default_region: "CN".into(),
            max_batch: 1000,
            cache_ttl: Duration::from_secs(2),
            password_params: boveda_crypto::password::Params::default(),
            checkpoint_every: 1000,
            audit: true,
            alert_thresholds: boveda_audit::Thresholds::default(),
            alert_suspend: Vec::new(),
            alert_step_up: Vec::new(),
            alert_throttle: Vec::new(),
            session_lifetime: Duration::from_secs(12 * 3600),
            session_idle: Duration::from_secs(30 * 60),
        }
    }
}

/// A tenant's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Purposes data calls may name.
    pub purposes: Vec<String>,
    /// Region for national phone numbers (ISO 3166 alpha-2).
    pub default_region: String,
    /// Whether data calls are frozen (incident containment).
    #[serde(default)]
    pub frozen: bool,
    /// Days after which staff are reminded at login to change their password.
    #[serde(default = "default_reminder_days")]
    pub password_reminder_days: u32,
    /// Opt-in hard maximum password age in days: past it, a change is forced.
    #[serde(default)]
    pub password_max_age_days: Option<u32>,
    /// Legal clocks of an incident, in hours from awareness (`detected_at`): GDPR Art. 33 gives
    /// the regulator 72 h; the CAC asks 1, 2 or 4 h depending on the operator's type.
    #[serde(default = "default_clocks")]
    pub incident_clocks: std::collections::BTreeMap<String, u32>,
    /// How incident notices reach subjects, guardians, the public and regulators.
    #[serde(default)]
    pub notice: Option<crate::notice::NoticeSettings>,
}

fn default_clocks() -> std::collections::BTreeMap<String, u32> {
    [
        ("gdpr_art33_regulator".to_owned(), 72),
        ("cac_report".to_owned(), 4),
    ]
    .into_iter()
    .collect()
}

fn default_reminder_days() -> u32 {
    180
}

impl TenantSettings {
    fn check(&self) -> Result<(), Error> {
        if self.purposes.is_empty() || self.purposes.len() > 100 {
            return Err(Error::invalid("purposes", "between_1_and_100_purposes"));
        }
        if self.purposes.iter().any(|p| !crate::schema::valid_name(p)) {
            return Err(Error::invalid("purposes", "purpose_name"));
        }
        if !crate::phone::known_region(&self.default_region) {
            return Err(Error::invalid("default_region", "known_region"));
        }
        if let Some(n) = &self.notice {
            n.check()?;
        }
        Ok(())
    }
}

/// A tenant as callers see it.
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Name.
    pub name: String,
    /// Settings.
    pub settings: TenantSettings,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

/// A service account as callers see it (never its key).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceAccount {
    /// Id.
    pub id: PrincipalId,
    /// Tenant.
    pub tenant: TenantId,
    /// Name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Most revealing view.
    pub max_view: View,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Disabled accounts cannot authenticate.
    pub disabled: bool,
}

/// A newly created service account with its API key, shown once.
#[derive(Debug)]
pub struct NewServiceAccount {
    /// The account.
    pub account: ServiceAccount,
    /// The API key in clear; only its hash is stored.
    pub api_key: token::Token,
}

/// A collection as callers see it.
#[derive(Debug, Clone, Serialize)]
pub struct Collection {
    /// Name.
    pub name: String,
    /// Schema version.
    pub version: i64,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
    /// Fields.
    pub fields: BTreeMap<String, FieldSpec>,
}

impl Collection {
    fn of(row: CollectionRow, spec: CollectionSpec) -> Self {
        Self {
            name: row.name,
            version: row.version,
            updated_at: row.updated_at,
            fields: spec.fields,
        }
    }

    fn decode(row: CollectionRow) -> Result<Self, Error> {
        let spec =
            serde_json::from_str(&row.schema).map_err(|_| Error::Integrity("collection schema"))?;
        Ok(Self::of(row, spec))
    }
}

/// One record to write.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRecord {
    /// An existing subject of the tenant; a new subject is created when absent.
    #[serde(default)]
    pub subject_id: Option<SubjectId>,
    /// Field values by name.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// What a write produced.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// Record id.
    pub id: RecordId,
    /// Subject id.
    pub subject_id: SubjectId,
    /// Record version.
    pub version: i64,
}

/// A record shown in a view.
#[derive(Debug, Clone, Serialize)]
pub struct RecordView {
    /// Id.
    pub id: RecordId,
    /// Subject.
    pub subject_id: SubjectId,
    /// Version.
    pub version: i64,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
    /// The view the values are shown in.
    pub view: View,
    /// What the free-text fields were found to contain when written: entity kinds and counts
    /// per field, never values.
    pub labels: serde_json::Value,
    /// Values by field name.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// One KEK version's state.
#[derive(Debug, Clone, Serialize)]
pub struct KeyVersion {
    /// Version.
    pub version: u32,
    /// `active`, `decrypt_only` or `retired`.
    pub state: &'static str,
    /// Subject keys it wraps.
    pub subjects: u64,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

/// A tenant's keys and the progress of the rewrap job.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// The version that wraps new keys.
    pub active_version: u32,
    /// Every version.
    pub versions: Vec<KeyVersion>,
    /// Subject keys not yet on the active version.
    pub rewrap_pending: u64,
    /// Share of subject keys on the active version, 0 to 100.
    pub rewrap_progress_percent: f64,
}

/// Counts of values in a searchable field, by blind index.
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    /// For a counted value: its position in the request. For a bucket: absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_index: Option<usize>,
    /// For a bucket: a pseudonymous id of the value (a prefix of its blind index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// How many records hold it.
    pub count: u64,
}

/// A tenant's unwrapped keys, cached for [`VaultConfig::cache_ttl`].
pub(crate) struct Keyring {
    pub(crate) active: u32,
    pub(crate) keks: HashMap<u32, Kek>,
    pub(crate) index: IndexKey,
}

/// What a node caches of a tenant.
pub(crate) struct TenantCache {
    pub(crate) loaded: Instant,
    pub(crate) settings: TenantSettings,
    pub(crate) keyring: Arc<Keyring>,
    pub(crate) collections: HashMap<String, Arc<CollectionSpec>>,
    /// The compiled policy and its version (0: the built-in default).
    pub(crate) policy: Arc<boveda_policy::CompiledPolicy>,
    pub(crate) policy_version: i64,
    /// Whether any rule limits distinct subjects per day (then reads count them).
    pub(crate) subject_limits: bool,
    /// The tenant's audit pseudonym key (derived from the index key).
    pub(crate) audit_key: boveda_audit::AuditKey,
    /// Client addresses' pseudonyms under `audit_key`.
    pub(crate) clients: crate::audit::Pseudonyms<std::net::IpAddr>,
    /// Subjects' audit pseudonyms, remembered.
    pub(crate) subjects: crate::audit::Pseudonyms<SubjectId>,
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    root: RootKey,
    pub(crate) config: VaultConfig,
    /// A password hash of a random password, verified for unknown users so that they take as
    /// long as known ones.
    pub(crate) dummy_phc: String,
    /// The audit journal (group commit) and checkpoint signing key.
    pub(crate) journal: crate::audit::Journal,
    /// Behaviour analytics over the events this node appends.
    pub(crate) analyzer: std::sync::Mutex<boveda_audit::Analyzer>,
    /// Principals throttled by an alert response: until when, and their last data call.
    pub(crate) throttled: std::sync::Mutex<HashMap<PrincipalId, (Instant, Instant)>>,
    /// The last blast radius computed, for paging (see `Vault::blast_radius`).
    pub(crate) radius: std::sync::Mutex<Option<crate::incident::RadiusCache>>,
    cache: RwLock<HashMap<TenantId, Arc<TenantCache>>>,
    /// Principals by token hash, for [`VaultConfig::cache_ttl`]; cleared on any change.
    principals: RwLock<HashMap<[u8; 32], (Instant, Principal)>>,
}

/// Most cached principals; the cache is emptied when it fills.
const PRINCIPAL_CACHE: usize = 10_000;

/// The vault. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn crypto_ops(op: &'static str, n: u64) {
    metrics::counter!("boveda_crypto_operations_total", "op" => op).increment(n);
}

const ROOT_CHECK: &str = "root_key_check";
const BOOTSTRAP: &str = "bootstrap_operator";

/// Encodes sealed fields into one record blob: `[1][count u16]` then per field
/// `[name len u8][name][sealed len u32][sealed]`.
/// The detector that labels free text on write; built once.
fn detector() -> Option<&'static boveda_detect::Detector> {
    static DETECTOR: std::sync::OnceLock<Option<boveda_detect::Detector>> =
        std::sync::OnceLock::new();
    DETECTOR
        .get_or_init(|| boveda_detect::Detector::new(boveda_detect::DetectorConfig::default()).ok())
        .as_ref()
}

/// Labels of a record: for each free-text field written, the entity kinds found in it and how
/// many (DESIGN.md §8: free text is classified on ingest). Fields not written keep their labels;
/// a removed field loses them. Never a value.
fn labels(
    spec: &CollectionSpec,
    values: &BTreeMap<String, Option<values::Normalised>>,
    previous: Option<&str>,
) -> String {
    let mut out: serde_json::Map<String, serde_json::Value> = previous
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    for (name, value) in values {
        if spec.fields.get(name).map(|f| f.kind) != Some(crate::schema::FieldType::FreeText) {
            continue;
        }
        out.remove(name);
        let (Some(v), Some(d)) = (value, detector()) else {
            continue;
        };
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for f in d.detect(v.stored.expose(), &boveda_detect::DetectOptions::default()) {
            *counts.entry(f.entity.as_str().to_owned()).or_default() += 1;
        }
        if !counts.is_empty() {
            out.insert(name.clone(), serde_json::json!(counts));
        }
    }
    serde_json::Value::Object(out).to_string()
}

pub(crate) fn encode_fields(fields: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + fields.values().map(|v| v.len() + 40).sum::<usize>());
    out.push(1);
    out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (name, sealed) in fields {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
        out.extend_from_slice(sealed);
    }
    out
}

pub(crate) fn decode_fields(blob: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let bad = || Error::Integrity("record encoding");
    let take = |pos: &mut usize, n: usize| -> Result<&[u8], Error> {
        let s = blob.get(*pos..*pos + n).ok_or_else(bad)?;
        *pos += n;
        Ok(s)
    };
    let mut pos = 0;
    if take(&mut pos, 1)? != [1] {
        return Err(bad());
    }
    let count = u16::from_be_bytes(take(&mut pos, 2)?.try_into().map_err(|_| bad())?);
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let n = take(&mut pos, 1)?[0] as usize;
        let name = std::str::from_utf8(take(&mut pos, n)?)
            .map_err(|_| bad())?
            .to_owned();
        let len = u32::from_be_bytes(take(&mut pos, 4)?.try_into().map_err(|_| bad())?) as usize;
        out.insert(name, take(&mut pos, len)?.to_vec());
    }
    if pos != blob.len() {
        return Err(bad());
    }
    Ok(out)
}

impl Vault {
    /// Opens the vault over a store with a root key, checking that the root key is the one this
    /// store was initialised with.
    ///
    /// # Errors
    /// [`Error::Integrity`] when the root key does not match the store; store errors.
    pub async fn open(
        store: Arc<dyn Store>,
        root: RootKey,
        config: VaultConfig,
    ) -> Result<Self, Error> {
        let check_aad = WrapAad {
            kind: "check",
            tenant: b"",
            owner: b"",
        };
        let candidate = root.wrap(&SecretKey::from_bytes([0; 32]), &check_aad)?;
        let stored = store.init_meta(ROOT_CHECK, &candidate).await?;
        if root.unwrap(&stored, &check_aad).is_err() {
            return Err(Error::Integrity(
                "the root key does not match this data store",
            ));
        }
        let mut random = zeroize::Zeroizing::new([0u8; 24]);
        boveda_crypto::random_bytes(random.as_mut())?;
        let params = config.password_params;
        let dummy_phc = tokio::task::spawn_blocking(move || {
            boveda_crypto::password::hash(&hex::encode(random.as_ref()), &params)
        })
        .await
        .map_err(|_| Error::Internal("password hashing task"))?
        .map_err(|_| Error::Internal("password hashing"))?;
        let journal = crate::audit::Journal::start(Arc::clone(&store), &root).await?;
        let analyzer =
            std::sync::Mutex::new(boveda_audit::Analyzer::new(config.alert_thresholds.clone()));
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                root,
                config,
                dummy_phc,
                analyzer,
                throttled: std::sync::Mutex::new(HashMap::new()),
                radius: std::sync::Mutex::new(None),
                journal,
                cache: RwLock::new(HashMap::new()),
                principals: RwLock::new(HashMap::new()),
            }),
        })
    }

    pub(crate) fn st(&self, op: &'static str) -> &dyn Store {
        metrics::counter!("boveda_store_operations_total", "op" => op).increment(1);
        &*self.inner.store
    }

    /// The store itself, for tools and benchmarks that load data straight into it (one store
    /// per SQLite data directory: a second one cannot open it while this one is open).
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.inner.store)
    }

    /// The storage backend's name.
    pub fn backend(&self) -> &'static str {
        self.inner.store.backend()
    }

    /// Whether the audit journal took its last write (the `boveda_audit_available` gauge);
    /// [`Vault::ready`] probes it again when it did not.
    #[must_use]
    pub fn audit_available(&self) -> bool {
        self.inner.journal.healthy()
    }

    /// Whether storage answers.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it does not.
    pub async fn ready(&self) -> Result<(), Error> {
        self.st("ping").ping().await?;
        if self.journal_ready().await {
            Ok(())
        } else {
            Err(Error::AuditUnavailable)
        }
    }

    /// Creates the first platform operator once per store and returns its credential; `None`
    /// when one was created before (by this node or another).
    ///
    /// # Errors
    /// Store errors.
    pub async fn bootstrap_operator(&self) -> Result<Option<token::Token>, Error> {
        let mut marker = [0u8; 16];
        boveda_crypto::random_bytes(&mut marker)?;
        if self.st("meta").init_meta(BOOTSTRAP, &marker).await? != marker {
            return Ok(None);
        }
        let tok = token::Token::generate("bvd_op_")?;
        let grants = Grants {
            scopes: vec![Scope::Admin],
            max_view: View::Redacted,
            roles: vec!["platform_operator".to_owned()],
        };
        self.st("create_principal")
            .create_principal(&PrincipalRow {
                id: PrincipalId::generate(),
                tenant: None,
                kind: PrincipalKind::Operator.as_str().into(),
                name: "bootstrap operator".into(),
                token_hash: tok.hash().to_vec(),
                grants: serde_json::to_string(&grants)
                    .map_err(|_| Error::Internal("grants encoding"))?,
                created_at: now_ms(),
                disabled: false,
            })
            .await?;
        Ok(Some(tok))
    }

    /// The principal holding a bearer token.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for an unknown or disabled token.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, Error> {
        if bearer.is_empty() || bearer.len() > 256 {
            return Err(Error::Unauthenticated);
        }
        if bearer.starts_with("bvd_ss_") {
            // Sessions are looked up every time: revocation and logout act at once.
            return self.authenticate_session(bearer).await;
        }
        let hash = token::hash(bearer);
        if let Ok(c) = self.inner.principals.read()
            && let Some((at, p)) = c.get(&hash)
            && at.elapsed() < self.inner.config.cache_ttl
        {
            return Ok(p.clone());
        }
        let row = self
            .st("principal_by_token")
            .principal_by_token(&hash)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let kind = match row.kind.as_str() {
            "operator" => PrincipalKind::Operator,
            "service" => PrincipalKind::Service,
            _ => return Err(Error::Integrity("principal kind")),
        };
        let grants: Grants =
            serde_json::from_str(&row.grants).map_err(|_| Error::Integrity("principal grants"))?;
        let principal = Principal {
            id: row.id,
            tenant: row.tenant,
            kind,
            name: row.name,
            grants,
            staff: None,
        };
        if let Ok(mut c) = self.inner.principals.write() {
            if c.len() >= PRINCIPAL_CACHE {
                c.clear();
            }
            c.insert(hash, (Instant::now(), principal.clone()));
        }
        Ok(principal)
    }

    fn operator(caller: &Caller) -> Result<(), Error> {
        if caller.principal.kind == PrincipalKind::Operator {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "only platform operators manage tenants".into(),
            ))
        }
    }

    /// The caller's tenant, if it may use `scope` there.
    fn tenant_of(caller: &Caller, scope: Scope) -> Result<TenantId, Error> {
        let p = &caller.principal;
        let tenant = p.tenant.ok_or_else(|| {
            Error::Forbidden(
                "platform operators read no personal data and act on tenants through /v1/tenants"
                    .into(),
            )
        })?;
        if !p.grants.allows(scope) {
            return Err(Error::Forbidden(format!(
                "the `{}` scope is required",
                scope.as_str()
            )));
        }
        Ok(tenant)
    }

    // ---------------------------------------------------------------- tenants

    /// Creates a tenant with fresh keys (operators only).
    ///
    /// # Errors
    /// [`Error::Forbidden`], [`Error::Invalid`] for a bad name or settings, [`Error::Conflict`]
    /// for a taken name.
    pub async fn create_tenant(
        &self,
        caller: &Caller,
        name: &str,
        settings: Option<TenantSettings>,
    ) -> Result<Tenant, Error> {
        Self::operator(caller)?;
        if name.trim().is_empty()
            || name.chars().count() > 200
            || name.chars().any(char::is_control)
        {
            return Err(Error::invalid("name", "tenant_name"));
        }
        let settings = settings.unwrap_or_else(|| TenantSettings {
            purposes: self.inner.config.default_purposes.clone(),
            default_region: self.inner.config.default_region.clone(),
            frozen: false,
            password_reminder_days: default_reminder_days(),
            password_max_age_days: None,
            incident_clocks: default_clocks(),
            notice: None,
        });
        settings.check()?;
        let id = TenantId::generate();
        let kek = SecretKey::generate()?;
        let index = SecretKey::generate()?;
        let root = &self.inner.root;
        let wrapped_kek = root.wrap(
            &kek,
            &WrapAad {
                kind: "kek",
                tenant: id.as_bytes(),
                owner: &1u32.to_be_bytes(),
            },
        )?;
        let wrapped_index = root.wrap(
            &index,
            &WrapAad {
                kind: "index",
                tenant: id.as_bytes(),
                owner: b"",
            },
        )?;
        let row = TenantRow {
            id,
            name: name.trim().to_owned(),
            settings: serde_json::to_string(&settings)
                .map_err(|_| Error::Internal("settings encoding"))?,
            wrapped_index_key: wrapped_index,
            created_at: now_ms(),
        };
        let key = TenantKeyRow {
            tenant: id,
            version: 1,
            wrapped: Some(wrapped_kek),
            state: KeyState::Active,
            created_at: row.created_at,
        };
        self.st("create_tenant")
            .create_tenant(&row, &key)
            .await
            .map_err(|e| match e {
                boveda_store::Error::Conflict(_) => {
                    Error::Conflict("a tenant with this name exists".into())
                }
                other => other.into(),
            })?;
        Ok(Tenant {
            id,
            name: row.name,
            settings,
            created_at: row.created_at,
        })
    }

    fn tenant_view(row: TenantRow) -> Result<Tenant, Error> {
        let settings =
            serde_json::from_str(&row.settings).map_err(|_| Error::Integrity("tenant settings"))?;
        Ok(Tenant {
            id: row.id,
            name: row.name,
            settings,
            created_at: row.created_at,
        })
    }

    /// Every tenant (operators only).
    ///
    /// # Errors
    /// [`Error::Forbidden`], store errors.
    pub async fn tenants(&self, caller: &Caller) -> Result<Vec<Tenant>, Error> {
        Self::operator(caller)?;
        self.st("tenants")
            .tenants()
            .await?
            .into_iter()
            .map(Self::tenant_view)
            .collect()
    }

    /// One tenant: operators see any, a tenant's principals their own.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown tenant or another tenant's id.
    pub async fn tenant(&self, caller: &Caller, id: TenantId) -> Result<Tenant, Error> {
        if caller.principal.kind != PrincipalKind::Operator && caller.principal.tenant != Some(id) {
            return Err(Error::NotFound("tenant"));
        }
        let row = self
            .st("tenant")
            .tenant(id)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        Self::tenant_view(row)
    }

    /// Replaces the caller's tenant settings (admin scope).
    ///
    /// # Errors
    /// [`Error::Forbidden`], [`Error::Invalid`].
    pub async fn update_settings(
        &self,
        caller: &Caller,
        settings: TenantSettings,
    ) -> Result<Tenant, Error> {
        let tenant = Self::admin_of(caller)?;
        self.put_settings(tenant, settings).await
    }

    pub(crate) async fn put_settings(
        &self,
        tenant: TenantId,
        settings: TenantSettings,
    ) -> Result<Tenant, Error> {
        settings.check()?;
        let json =
            serde_json::to_string(&settings).map_err(|_| Error::Internal("settings encoding"))?;
        if !self
            .st("update_tenant_settings")
            .update_tenant_settings(tenant, &json)
            .await?
        {
            return Err(Error::NotFound("tenant"));
        }
        self.forget(tenant);
        let row = self
            .st("tenant")
            .tenant(tenant)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        Self::tenant_view(row)
    }

    /// Freezes or thaws a tenant's data calls (operators, for incident containment).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown tenant or a caller that is not an operator.
    pub async fn set_frozen(
        &self,
        caller: &Caller,
        tenant: TenantId,
        frozen: bool,
    ) -> Result<Tenant, Error> {
        // Tenants are the operator's resource: to anyone else, every tenant id is unknown.
        Self::operator(caller).map_err(|_| Error::NotFound("tenant"))?;
        let mut t = self.tenant(caller, tenant).await?;
        t.settings.frozen = frozen;
        self.put_settings(tenant, t.settings).await
    }

    // ------------------------------------------------------- service accounts

    /// Creates a service account in a tenant: operators for any tenant, admin-scoped accounts
    /// for their own. Its API key is returned once.
    ///
    /// # Errors
    /// [`Error::NotFound`] for another tenant, [`Error::Forbidden`], [`Error::Invalid`].
    pub async fn create_service_account(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &str,
        grants: Grants,
    ) -> Result<NewServiceAccount, Error> {
        match caller.principal.kind {
            PrincipalKind::Operator => {
                self.st("tenant")
                    .tenant(tenant)
                    .await?
                    .ok_or(Error::NotFound("tenant"))?;
            }
            PrincipalKind::Service | PrincipalKind::Staff => {
                if Self::admin_of(caller).ok() != Some(tenant) {
                    return Err(if caller.principal.tenant == Some(tenant) {
                        Error::Forbidden(
                            "the tenant_admin role or the admin scope is required".into(),
                        )
                    } else {
                        Error::NotFound("tenant")
                    });
                }
            }
        }
        if name.trim().is_empty()
            || name.chars().count() > 200
            || name.chars().any(char::is_control)
        {
            return Err(Error::invalid("name", "service_account_name"));
        }
        if grants.scopes.is_empty() {
            return Err(Error::invalid("scopes", "at_least_one_scope"));
        }
        let api_key = token::Token::generate("bvd_sa_")?;
        let row = PrincipalRow {
            id: PrincipalId::generate(),
            tenant: Some(tenant),
            kind: PrincipalKind::Service.as_str().into(),
            name: name.trim().to_owned(),
            token_hash: api_key.hash().to_vec(),
            grants: serde_json::to_string(&grants)
                .map_err(|_| Error::Internal("grants encoding"))?,
            created_at: now_ms(),
            disabled: false,
        };
        self.st("create_principal").create_principal(&row).await?;
        Ok(NewServiceAccount {
            account: ServiceAccount {
                id: row.id,
                tenant,
                name: row.name,
                scopes: grants.scopes,
                max_view: grants.max_view,
                created_at: row.created_at,
                disabled: false,
            },
            api_key,
        })
    }

    /// The service accounts of the caller's tenant (admin scope).
    ///
    /// # Errors
    /// [`Error::Forbidden`].
    pub async fn service_accounts(&self, caller: &Caller) -> Result<Vec<ServiceAccount>, Error> {
        let tenant = Self::admin_of(caller)?;
        self.st("principals")
            .principals(Some(tenant))
            .await?
            .into_iter()
            .map(|row| {
                let grants: Grants = serde_json::from_str(&row.grants)
                    .map_err(|_| Error::Integrity("principal grants"))?;
                Ok(ServiceAccount {
                    id: row.id,
                    tenant,
                    name: row.name,
                    scopes: grants.scopes,
                    max_view: grants.max_view,
                    created_at: row.created_at,
                    disabled: row.disabled,
                })
            })
            .collect()
    }

    /// Disables a service account of the caller's tenant (admin scope); its key stops working.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Forbidden`].
    pub async fn disable_service_account(
        &self,
        caller: &Caller,
        id: PrincipalId,
    ) -> Result<(), Error> {
        let tenant = Self::admin_of(caller)?;
        if self
            .st("disable_principal")
            .disable_principal(tenant, id)
            .await?
        {
            if let Ok(mut c) = self.inner.principals.write() {
                c.retain(|_, (_, p)| p.id != id);
            }
            Ok(())
        } else {
            Err(Error::NotFound("service account"))
        }
    }

    // ------------------------------------------------------------- the cache

    /// Forgets cached principals (after a change to roles, eligibility or keys).
    pub(crate) fn forget_principals(&self) {
        if let Ok(mut c) = self.inner.principals.write() {
            c.clear();
        }
    }

    pub(crate) fn forget(&self, tenant: TenantId) {
        if let Ok(mut c) = self.inner.cache.write() {
            c.remove(&tenant);
        }
    }

    pub(crate) async fn cached(&self, tenant: TenantId) -> Result<Arc<TenantCache>, Error> {
        if let Ok(c) = self.inner.cache.read()
            && let Some(t) = c.get(&tenant)
            && t.loaded.elapsed() < self.inner.config.cache_ttl
        {
            return Ok(Arc::clone(t));
        }
        let row = self
            .st("tenant")
            .tenant(tenant)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        let settings: TenantSettings =
            serde_json::from_str(&row.settings).map_err(|_| Error::Integrity("tenant settings"))?;
        let root = &self.inner.root;
        let index = root.unwrap(
            &row.wrapped_index_key,
            &WrapAad {
                kind: "index",
                tenant: tenant.as_bytes(),
                owner: b"",
            },
        )?;
        let mut keks = HashMap::new();
        let mut active = 0;
        for k in self.st("tenant_keys").tenant_keys(tenant).await? {
            if k.state == KeyState::Active {
                active = k.version;
            }
            if let Some(w) = &k.wrapped {
                let key = root.unwrap(
                    w,
                    &WrapAad {
                        kind: "kek",
                        tenant: tenant.as_bytes(),
                        owner: &k.version.to_be_bytes(),
                    },
                )?;
                keks.insert(k.version, Kek::new(k.version, &key)?);
            }
        }
        crypto_ops("unwrap_tenant_key", keks.len() as u64 + 1);
        if !keks.contains_key(&active) {
            return Err(Error::Integrity("tenant has no active key"));
        }
        let mut collections = HashMap::new();
        for c in self.st("collections").collections(tenant).await? {
            let spec: CollectionSpec = serde_json::from_str(&c.schema)
                .map_err(|_| Error::Integrity("collection schema"))?;
            collections.insert(c.name, Arc::new(spec));
        }
        let policy_row = self.st("policy").policy(tenant).await?;
        let (policy_version, policy, compiled) = crate::access::load_policy(policy_row.as_ref())?;
        let index_key = IndexKey::new(&index);
        let audit_key = crate::audit::derive_audit_key(&index_key);
        let entry = Arc::new(TenantCache {
            loaded: Instant::now(),
            audit_key,
            clients: crate::audit::Pseudonyms::default(),
            subjects: crate::audit::Pseudonyms::default(),
            subject_limits: policy
                .rules
                .iter()
                .any(|r| r.conditions.max_subjects_per_day.is_some()),
            policy: Arc::new(compiled),
            policy_version,
            settings,
            keyring: Arc::new(Keyring {
                active,
                keks,
                index: index_key,
            }),
            collections,
        });
        if let Ok(mut c) = self.inner.cache.write() {
            c.insert(tenant, Arc::clone(&entry));
        }
        Ok(entry)
    }

    /// The context of a data call: tenant, scope, purpose, not frozen.
    pub(crate) async fn data_call(
        &self,
        caller: &Caller,
        scope: Scope,
        purpose: Option<&str>,
    ) -> Result<
        (
            TenantId,
            Arc<TenantCache>,
            Option<crate::audit::Expected<'_>>,
        ),
        Error,
    > {
        let tenant = Self::tenant_of(caller, scope)?;
        let purpose = purpose
            .filter(|p| !p.is_empty())
            .ok_or(Error::PurposeRequired)?;
        self.check_throttle(caller.principal.id)?;
        if let Some(staff) = &caller.principal.staff {
            if staff.must_change_password {
                return Err(Error::PasswordChangeRequired);
            }
            let mut missing = Vec::new();
            if !staff.agreement_current {
                missing.push("a current confidentiality agreement");
            }
            if !staff.training_current {
                missing.push("current training");
            }
            if !missing.is_empty() {
                return Err(Error::EligibilityRequired(missing));
            }
        }
        let t = self.cached(tenant).await?;
        if !t.settings.purposes.iter().any(|p| p == purpose) {
            return Err(Error::PurposeNotAllowed(safe_name(purpose)));
        }
        if t.settings.frozen {
            return Err(Error::Frozen);
        }
        // Reads append their event through the journal; writes commit theirs themselves.
        let read = matches!(scope, Scope::Read | Scope::Search);
        Ok((tenant, t, read.then(|| self.inner.journal.expect())))
    }

    fn collection_of(t: &TenantCache, name: &str) -> Result<Arc<CollectionSpec>, Error> {
        t.collections
            .get(name)
            .cloned()
            .ok_or(Error::NotFound("collection"))
    }

    // ------------------------------------------------------------ collections

    /// Creates or replaces a collection schema (admin scope).
    ///
    /// # Errors
    /// [`Error::Invalid`], [`Error::Conflict`] for an incompatible change.
    pub async fn put_collection(
        &self,
        caller: &Caller,
        name: &str,
        spec: CollectionSpec,
    ) -> Result<Collection, Error> {
        let tenant = Self::admin_of(caller)?;
        if !crate::schema::valid_name(name) {
            return Err(Error::invalid("name", "collection_name"));
        }
        let previous = self.st("collection").collection(tenant, name).await?;
        let old: Option<CollectionSpec> = previous
            .as_ref()
            .map(|p| {
                serde_json::from_str(&p.schema).map_err(|_| Error::Integrity("collection schema"))
            })
            .transpose()?;
        spec.check(old.as_ref())?;
        let row = CollectionRow {
            tenant,
            name: name.to_owned(),
            schema: serde_json::to_string(&spec).map_err(|_| Error::Internal("schema encoding"))?,
            version: previous.map_or(1, |p| p.version + 1),
            updated_at: now_ms(),
        };
        self.st("put_collection").put_collection(&row).await?;
        self.forget(tenant);
        Ok(Collection::of(row, spec))
    }

    /// One collection of the caller's tenant.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn collection(&self, caller: &Caller, name: &str) -> Result<Collection, Error> {
        let tenant = caller
            .principal
            .tenant
            .ok_or(Error::NotFound("collection"))?;
        let row = self
            .st("collection")
            .collection(tenant, name)
            .await?
            .ok_or(Error::NotFound("collection"))?;
        Collection::decode(row)
    }

    /// Every collection of the caller's tenant.
    ///
    /// # Errors
    /// Store errors.
    pub async fn collections(&self, caller: &Caller) -> Result<Vec<Collection>, Error> {
        let Some(tenant) = caller.principal.tenant else {
            return Ok(Vec::new());
        };
        self.st("collections")
            .collections(tenant)
            .await?
            .into_iter()
            .map(Collection::decode)
            .collect()
    }

    // ---------------------------------------------------------------- records

    /// Validates and normalises one record's fields; `at` prefixes error paths.
    fn normalise_fields(
        spec: &CollectionSpec,
        fields: &serde_json::Map<String, serde_json::Value>,
        region: &str,
        at: &str,
        partial: bool,
    ) -> Result<BTreeMap<String, Option<values::Normalised>>, Error> {
        let mut out = BTreeMap::new();
        for (name, value) in fields {
            let f = spec.fields.get(name).ok_or_else(|| {
                Error::invalid(format!("{at}fields.{}", safe_name(name)), "unknown_field")
            })?;
            if value.is_null() {
                if f.required || !partial {
                    return Err(Error::invalid(
                        format!("{at}fields.{name}"),
                        if f.required { "required" } else { "null_value" },
                    ));
                }
                out.insert(name.clone(), None);
                continue;
            }
            let n = values::normalise(f, value, region)
                .map_err(|rule| Error::invalid(format!("{at}fields.{name}"), rule))?;
            out.insert(name.clone(), Some(n));
        }
        if !partial
            && let Some((name, _)) = spec
                .fields
                .iter()
                .find(|(n, f)| f.required && !fields.contains_key(*n))
        {
            return Err(Error::invalid(format!("{at}fields.{name}"), "required"));
        }
        Ok(out)
    }

    /// Seals changed values into a record's field map and adds index entries for searchable
    /// ones; `None` removes a field. `place` is (tenant, collection, record).
    fn seal_into(
        (tenant, collection, record): (TenantId, &str, RecordId),
        dek: &Dek,
        keyring: &Keyring,
        spec: &CollectionSpec,
        values: &BTreeMap<String, Option<values::Normalised>>,
        sealed: &mut BTreeMap<String, Vec<u8>>,
        index: &mut Vec<IndexEntry>,
    ) -> Result<(), Error> {
        for (name, value) in values {
            match value {
                None => {
                    sealed.remove(name);
                }
                Some(v) => {
                    let aad = FieldAad {
                        tenant: tenant.as_bytes(),
                        collection,
                        record: record.as_bytes(),
                        field: name,
                    };
                    sealed.insert(name.clone(), dek.seal(v.stored.expose().as_bytes(), &aad)?);
                    if spec.fields.get(name).is_some_and(|f| f.searchable) {
                        index.push(IndexEntry {
                            tenant,
                            collection: collection.to_owned(),
                            field: name.clone(),
                            digest: keyring
                                .index
                                .digest(collection, name, v.index.expose().as_bytes())
                                .to_vec(),
                            record,
                        });
                    }
                }
            }
        }
        crypto_ops(
            "seal",
            values.values().filter(|v| v.is_some()).count() as u64,
        );
        Ok(())
    }

    fn unwrap_dek(tenant: TenantId, keyring: &Keyring, key: &SubjectKeyRow) -> Result<Dek, Error> {
        let kek = keyring.keks.get(&key.kek_version).ok_or(Error::Integrity(
            "subject key wrapped by an unknown key version",
        ))?;
        crypto_ops("unwrap_dek", 1);
        Ok(kek.unwrap_dek(
            &key.wrapped_dek,
            key.dek_version,
            tenant.as_bytes(),
            key.subject.as_bytes(),
        )?)
    }

    /// The DEKs of subjects; reloads the keyring once if a key names a version this node has
    /// not seen yet (rotated on another node).
    pub(crate) async fn deks(
        &self,
        tenant: TenantId,
        t: &mut Arc<TenantCache>,
        subjects: &[SubjectId],
    ) -> Result<HashMap<SubjectId, Dek>, Error> {
        let mut unique = subjects.to_vec();
        unique.sort();
        unique.dedup();
        let keys = self
            .st("subject_keys")
            .subject_keys(tenant, &unique)
            .await?;
        if keys
            .iter()
            .any(|k| !t.keyring.keks.contains_key(&k.kek_version))
        {
            self.forget(tenant);
            *t = self.cached(tenant).await?;
        }
        keys.iter()
            .map(|k| Ok((k.subject, Self::unwrap_dek(tenant, &t.keyring, k)?)))
            .collect()
    }

    /// Writes a batch of records, all or nothing (write scope).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the record, field and rule; [`Error::NotFound`] for an unknown
    /// collection or subject; [`Error::BadRequest`] for an empty or oversized batch.
    pub async fn write_records(
        &self,
        caller: &Caller,
        collection: &str,
        purpose: Option<&str>,
        records: Vec<NewRecord>,
    ) -> Result<Vec<Written>, Error> {
        let (tenant, mut t, _) = self.data_call(caller, Scope::Write, purpose).await?;
        let spec = Self::collection_of(&t, collection)?;
        if records.is_empty() || records.len() > self.inner.config.max_batch {
            return Err(Error::BadRequest(format!(
                "a batch holds 1 to {} records",
                self.inner.config.max_batch
            )));
        }
        let normalised = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Self::normalise_fields(
                    &spec,
                    &r.fields,
                    &t.settings.default_region,
                    &format!("records[{i}]."),
                    false,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;

        let existing: Vec<SubjectId> = records.iter().filter_map(|r| r.subject_id).collect();
        let mut touched: Vec<&str> = records
            .iter()
            .flat_map(|r| r.fields.keys().map(String::as_str))
            .collect();
        touched.sort_unstable();
        touched.dedup();
        self.authorize(
            caller,
            tenant,
            &t,
            collection,
            &spec,
            Action::Write,
            purpose.unwrap_or_default(),
            Some(&touched),
            &existing,
            true,
        )
        .await?;
        let mut deks = self.deks(tenant, &mut t, &existing).await?;
        if existing.iter().any(|s| !deks.contains_key(s)) {
            return Err(Error::NotFound("subject"));
        }
        let active = t
            .keyring
            .keks
            .get(&t.keyring.active)
            .ok_or(Error::Internal("active key missing"))?;
        let now = now_ms();
        let mut new_keys = Vec::new();
        let mut rows = Vec::with_capacity(records.len());
        let mut index = Vec::new();
        let mut written = Vec::with_capacity(records.len());
        for (r, values) in records.iter().zip(&normalised) {
            let subject = match r.subject_id {
                Some(s) => s,
                None => {
                    let s = SubjectId::generate();
                    let dek = Dek::generate(1)?;
                    new_keys.push(SubjectKeyRow {
                        tenant,
                        subject: s,
                        kek_version: active.version(),
                        dek_version: dek.version(),
                        wrapped_dek: active.wrap_dek(&dek, tenant.as_bytes(), s.as_bytes())?,
                        created_at: now,
                    });
                    deks.insert(s, dek);
                    s
                }
            };
            let dek = deks.get(&subject).ok_or(Error::Internal("subject key"))?;
            let id = RecordId::generate();
            let mut sealed = BTreeMap::new();
            Self::seal_into(
                (tenant, collection, id),
                dek,
                &t.keyring,
                &spec,
                values,
                &mut sealed,
                &mut index,
            )?;
            rows.push(RecordRow {
                tenant,
                collection: collection.to_owned(),
                id,
                subject,
                sealed: encode_fields(&sealed),
                labels: labels(&spec, values, None),
                version: 1,
                created_at: now,
                updated_at: now,
            });
            written.push(Written {
                id,
                subject_id: subject,
                version: 1,
            });
        }
        crypto_ops("wrap_dek", new_keys.len() as u64);
        if !new_keys.is_empty() {
            // Keys first: a crash before the records commit leaves unused keys, never records
            // without a key.
            self.st("insert_subject_keys")
                .insert_subject_keys(&new_keys)
                .await?;
        }
        let subjects: Vec<SubjectId> = written.iter().map(|w| w.subject_id).collect();
        let event = Self::access(
            self.event(
                caller,
                tenant,
                Some(&t),
                "record.write",
                boveda_audit::Outcome::Allowed,
            ),
            &t,
            collection,
            written.iter().map(|w| w.id.to_string()).collect(),
            &subjects,
            touched.iter().map(|f| (*f).to_owned()).collect(),
            purpose,
            None,
        );
        // The event commits in the same transaction as the records.
        let events = self.write_events(vec![event]);
        match self
            .st("insert_records")
            .insert_records(&rows, &index, &events)
            .await
        {
            Ok(stored) => self.written(events, &stored).await,
            Err(e) => return Err(self.write_failed(e).await),
        }
        Ok(written)
    }

    /// Audits an access durably, then decrypts and shows the rows: never the other order.
    /// The event names the fields shown (and `extra_fields`, e.g. the searched one) and the most
    /// revealing view served.
    #[allow(clippy::too_many_arguments)] // the facts of one access
    async fn reveal(
        &self,
        caller: &Caller,
        tenant: TenantId,
        t: &mut Arc<TenantCache>,
        collection: &str,
        spec: &CollectionSpec,
        rows: &[RecordRow],
        caps: &BTreeMap<String, View>,
        view: View,
        purpose: Option<&str>,
        action: &'static str,
        extra_fields: Vec<String>,
    ) -> Result<Vec<RecordView>, Error> {
        let subjects: Vec<SubjectId> = rows.iter().map(|r| r.subject).collect();
        let mut fields: Vec<String> = caps.keys().cloned().collect();
        for f in extra_fields {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
        let shown = caps
            .values()
            .map(|c| view.min(*c))
            .max()
            .unwrap_or(View::Redacted);
        let event = self.event(
            caller,
            tenant,
            Some(t),
            action,
            boveda_audit::Outcome::Allowed,
        );
        let records = rows.iter().map(|r| r.id.to_string()).collect();
        let audited = self.audit(vec![Self::access(
            event,
            t,
            collection,
            records,
            &subjects,
            fields,
            purpose,
            Some(shown),
        )]);
        // The keys are fetched and the values opened while the event is made durable; nothing
        // leaves before it is, and a failed event fails the call.
        let opened = async {
            let deks = if shown == View::Redacted {
                HashMap::new()
            } else {
                self.deks(tenant, t, &subjects).await?
            };
            rows.iter()
                .map(|r| Self::show_record(tenant, spec, r, deks.get(&r.subject), view, caps))
                .collect()
        };
        let (audited, opened) = tokio::join!(audited, opened);
        audited?;
        opened
    }

    fn show_record(
        tenant: TenantId,
        spec: &CollectionSpec,
        row: &RecordRow,
        dek: Option<&Dek>,
        view: View,
        caps: &BTreeMap<String, View>,
    ) -> Result<RecordView, Error> {
        let sealed = decode_fields(&row.sealed)?;
        let mut fields = serde_json::Map::new();
        let mut opened = 0;
        for (name, ct) in &sealed {
            // A field removed from the schema, or one the policy does not allow, is not shown.
            let (Some(f), Some(cap)) = (spec.fields.get(name), caps.get(name)) else {
                continue;
            };
            let view = view.min(*cap);
            let value = if view == View::Redacted {
                values::show(f.kind, "", View::Redacted)
            } else {
                let dek = dek.ok_or(Error::NotFound("record"))?;
                let aad = FieldAad {
                    tenant: tenant.as_bytes(),
                    collection: &row.collection,
                    record: row.id.as_bytes(),
                    field: name,
                };
                let plain = dek.open(ct, &aad)?.into_string()?;
                opened += 1;
                values::show(f.kind, plain.expose(), view)
            };
            fields.insert(name.clone(), value);
        }
        crypto_ops("open", opened);
        Ok(RecordView {
            id: row.id,
            subject_id: row.subject,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            view,
            labels: serde_json::from_str(&row.labels).unwrap_or_else(|_| serde_json::json!({})),
            fields,
        })
    }

    /// Reads records in a view no more revealing than the caller's cap (read scope). Missing
    /// ids are left out; the caller compares.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown collection; [`Error::BadRequest`] for too many ids.
    pub async fn read_records(
        &self,
        caller: &Caller,
        collection: &str,
        purpose: Option<&str>,
        ids: &[RecordId],
        view: View,
    ) -> Result<Vec<RecordView>, Error> {
        let (tenant, mut t, _reading) = self.data_call(caller, Scope::Read, purpose).await?;
        let spec = Self::collection_of(&t, collection)?;
        if ids.is_empty() || ids.len() > self.inner.config.max_batch {
            return Err(Error::BadRequest(format!(
                "a batch read names 1 to {} ids",
                self.inner.config.max_batch
            )));
        }
        let view = view.min(caller.principal.grants.max_view);
        let rows = self.st("records").records(tenant, collection, ids).await?;
        let subjects: Vec<SubjectId> = rows.iter().map(|r| r.subject).collect();
        // Authorise, then decrypt: never the other order.
        let caps = self
            .authorize(
                caller,
                tenant,
                &t,
                collection,
                &spec,
                Action::Read,
                purpose.unwrap_or_default(),
                None,
                &subjects,
                false,
            )
            .await?;
        self.reveal(
            caller,
            tenant,
            &mut t,
            collection,
            &spec,
            &rows,
            &caps,
            view,
            purpose,
            "record.read",
            Vec::new(),
        )
        .await
    }

    /// Changes some fields of a record; `null` removes an optional field (write scope).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Invalid`], [`Error::Conflict`] when it changed meanwhile.
    pub async fn update_record(
        &self,
        caller: &Caller,
        collection: &str,
        purpose: Option<&str>,
        id: RecordId,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Written, Error> {
        let (tenant, mut t, _) = self.data_call(caller, Scope::Write, purpose).await?;
        let spec = Self::collection_of(&t, collection)?;
        if fields.is_empty() {
            return Err(Error::invalid("fields", "at_least_one_field"));
        }
        let changes = Self::normalise_fields(&spec, &fields, &t.settings.default_region, "", true)?;
        let row = self
            .st("records")
            .records(tenant, collection, &[id])
            .await?
            .pop()
            .ok_or(Error::NotFound("record"))?;
        let touched: Vec<&str> = fields.keys().map(String::as_str).collect();
        self.authorize(
            caller,
            tenant,
            &t,
            collection,
            &spec,
            Action::Write,
            purpose.unwrap_or_default(),
            Some(&touched),
            &[row.subject],
            true,
        )
        .await?;
        let deks = self.deks(tenant, &mut t, &[row.subject]).await?;
        let dek = deks.get(&row.subject).ok_or(Error::NotFound("record"))?;
        let mut sealed = decode_fields(&row.sealed)?;
        let mut index = Vec::new();
        Self::seal_into(
            (tenant, collection, id),
            dek,
            &t.keyring,
            &spec,
            &changes,
            &mut sealed,
            &mut index,
        )?;
        // Index entries of unchanged searchable fields are rebuilt from their sealed values.
        for (name, ct) in &sealed {
            if changes.contains_key(name) || !spec.fields.get(name).is_some_and(|f| f.searchable) {
                continue;
            }
            let Some(f) = spec.fields.get(name) else {
                continue;
            };
            let aad = FieldAad {
                tenant: tenant.as_bytes(),
                collection,
                record: id.as_bytes(),
                field: name,
            };
            let plain = dek.open(ct, &aad)?.into_string()?;
            let n = values::normalise(
                f,
                &serde_json::Value::String(plain.expose().clone()),
                &t.settings.default_region,
            )
            .map_err(|_| Error::Integrity("stored value no longer valid"))?;
            index.push(IndexEntry {
                tenant,
                collection: collection.to_owned(),
                field: name.clone(),
                digest: t
                    .keyring
                    .index
                    .digest(collection, name, n.index.expose().as_bytes())
                    .to_vec(),
                record: id,
            });
        }
        let updated = RecordRow {
            labels: labels(&spec, &changes, Some(&row.labels)),
            sealed: encode_fields(&sealed),
            version: row.version + 1,
            updated_at: now_ms(),
            ..row.clone()
        };
        let event = Self::access(
            self.event(
                caller,
                tenant,
                Some(&t),
                "record.update",
                boveda_audit::Outcome::Allowed,
            ),
            &t,
            collection,
            vec![id.to_string()],
            &[row.subject],
            touched.iter().map(|f| (*f).to_owned()).collect(),
            purpose,
            None,
        );
        let events = self.write_events(vec![event]);
        let changed = match self
            .st("update_record")
            .update_record(&updated, &index, row.version, &events)
            .await
        {
            Ok(c) => c,
            Err(e) => return Err(self.write_failed(e).await),
        };
        if let Some(stored) = &changed {
            self.written(events, stored).await;
        } else {
            return Err(Error::Conflict(
                "the record changed meanwhile; read it again and retry".into(),
            ));
        }
        Ok(Written {
            id,
            subject_id: row.subject,
            version: updated.version,
        })
    }

    /// Deletes a record (write scope).
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn delete_record(
        &self,
        caller: &Caller,
        collection: &str,
        purpose: Option<&str>,
        id: RecordId,
    ) -> Result<(), Error> {
        let (tenant, t, _) = self.data_call(caller, Scope::Write, purpose).await?;
        let spec = Self::collection_of(&t, collection)?;
        self.authorize(
            caller,
            tenant,
            &t,
            collection,
            &spec,
            Action::Write,
            purpose.unwrap_or_default(),
            None,
            &[],
            true,
        )
        .await?;
        let event = Self::access(
            self.event(
                caller,
                tenant,
                Some(&t),
                "record.delete",
                boveda_audit::Outcome::Allowed,
            ),
            &t,
            collection,
            vec![id.to_string()],
            &[],
            Vec::new(),
            purpose,
            None,
        );
        let events = self.write_events(vec![event]);
        let deleted = match self
            .st("delete_record")
            .delete_record(tenant, collection, id, &events)
            .await
        {
            Ok(d) => d,
            Err(e) => return Err(self.write_failed(e).await),
        };
        if let Some(stored) = deleted {
            self.written(events, &stored).await;
            Ok(())
        } else {
            Err(Error::NotFound("record"))
        }
    }

    fn searchable<'a>(spec: &'a CollectionSpec, field: &str) -> Result<&'a FieldSpec, Error> {
        let f = spec.fields.get(field).ok_or_else(|| {
            Error::invalid(format!("fields.{}", safe_name(field)), "unknown_field")
        })?;
        if !f.searchable {
            return Err(Error::invalid(format!("fields.{field}"), "not_searchable"));
        }
        Ok(f)
    }

    /// Records whose `field` equals `value` after normalisation, shown masked at most
    /// (search scope).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a field that is not searchable or a value that is not valid.
    pub async fn search(
        &self,
        caller: &Caller,
        collection: &str,
        purpose: Option<&str>,
        field: &str,
        value: &serde_json::Value,
        limit: usize,
    ) -> Result<Vec<RecordView>, Error> {
        let (tenant, mut t, _reading) = self.data_call(caller, Scope::Search, purpose).await?;
        let spec = Self::collection_of(&t, collection)?;
        let f = Self::searchable(&spec, field)?;
        let purpose = purpose.unwrap_or_default();
        self.authorize(
            caller,
            tenant,
            &t,
            collection,
            &spec,
            Action::Search,
            purpose,
            Some(&[field]),
            &[],
            true,
        )
        .await?;
        let n = values::normalise(f, value, &t.settings.default_region)
            .map_err(|rule| Error::invalid("value", rule))?;
        let digest = t
            .keyring
            .index
            .digest(collection, field, n.index.expose().as_bytes());
        crypto_ops("blind_index", 1);
        let rows = self
            .st("search")
            .search(tenant, collection, field, &digest, limit.clamp(1, 1000))
            .await?;
        let view = View::Masked.min(caller.principal.grants.max_view);
        let subjects: Vec<SubjectId> = rows.iter().map(|r| r.subject).collect();
        // Results show the fields the caller may read, masked at most; none when it may read none.
        let caps = match self
            .authorize(
                caller,
                tenant,
                &t,
                collection,
                &spec,
                Action::Read,
                purpose,
                None,
                &subjects,
                false,
            )
            .await
        {
            Ok(caps) => caps,
            Err(Error::Denied { .. }) => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        self.reveal(
            caller,
            tenant,
            &mut t,
            collection,
            &spec,
            &rows,
            &caps,
            view,
            Some(purpose),
            "record.search",
            vec![field.to_owned()],
        )
        .await
    }

    /// Counts records by value of a searchable field without decrypting anything: for each
    /// given value, or the most frequent values as pseudonymous buckets (search scope).
    ///
    /// # Errors
    /// As [`Vault::search`].
    pub async fn count(
        &self,
        caller: &Caller,
        collection: &str,
        purpose: Option<&str>,
        field: &str,
        values_to_count: Option<&[serde_json::Value]>,
        limit: usize,
    ) -> Result<Vec<Count>, Error> {
        let (tenant, t, _reading) = self.data_call(caller, Scope::Search, purpose).await?;
        let spec = Self::collection_of(&t, collection)?;
        let f = Self::searchable(&spec, field)?;
        self.authorize(
            caller,
            tenant,
            &t,
            collection,
            &spec,
            Action::Search,
            purpose.unwrap_or_default(),
            Some(&[field]),
            &[],
            true,
        )
        .await?;
        // Counting reveals no value, but it is an access to the field: it is audited too.
        self.audit(vec![Self::access(
            self.event(
                caller,
                tenant,
                Some(&t),
                "record.count",
                boveda_audit::Outcome::Allowed,
            ),
            &t,
            collection,
            Vec::new(),
            &[],
            vec![field.to_owned()],
            purpose,
            None,
        )])
        .await?;
        match values_to_count {
            Some(vs) => {
                if vs.len() > 1000 {
                    return Err(Error::BadRequest(
                        "count at most 1000 values at once".into(),
                    ));
                }
                let digests = vs
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let n = values::normalise(f, v, &t.settings.default_region)
                            .map_err(|rule| Error::invalid(format!("values[{i}]"), rule))?;
                        Ok(t.keyring
                            .index
                            .digest(collection, field, n.index.expose().as_bytes())
                            .to_vec())
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                crypto_ops("blind_index", digests.len() as u64);
                let counts = self
                    .st("count_digests")
                    .count_digests(tenant, collection, field, &digests)
                    .await?;
                Ok(counts
                    .into_iter()
                    .enumerate()
                    .map(|(i, count)| Count {
                        value_index: Some(i),
                        bucket: None,
                        count,
                    })
                    .collect())
            }
            None => {
                let top = self
                    .st("top_digests")
                    .top_digests(tenant, collection, field, limit.clamp(1, 1000))
                    .await?;
                Ok(top
                    .into_iter()
                    .map(|(d, count)| Count {
                        value_index: None,
                        bucket: Some(hex::encode(&d[..d.len().min(8)])),
                        count,
                    })
                    .collect())
            }
        }
    }

    /// Erases a subject: destroys its key, then its records (erase scope). Its ciphertexts
    /// cannot be opened afterwards, from this store or any copy of its data.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown subject.
    ///
    /// # Security
    /// Irreversible by design.
    pub async fn erase_subject(
        &self,
        caller: &Caller,
        purpose: Option<&str>,
        subject: SubjectId,
    ) -> Result<(), Error> {
        let (tenant, t, _) = self.data_call(caller, Scope::Erase, purpose).await?;
        self.authorize_tenant_wide(
            caller,
            tenant,
            &t,
            Action::Erase,
            purpose.unwrap_or_default(),
            &[subject],
        )
        .await?;
        let mut event = self.event(
            caller,
            tenant,
            Some(&t),
            "subject.erase",
            boveda_audit::Outcome::Allowed,
        );
        event.subjects = Self::subjects(&t, &[subject]);
        event.purpose = purpose.map(str::to_owned);
        let events = self.write_events(vec![event]);
        let erased = match self
            .st("erase_subject")
            .erase_subject(tenant, subject, &events)
            .await
        {
            Ok(e) => e,
            Err(e) => return Err(self.write_failed(e).await),
        };
        if let Some(stored) = erased {
            self.written(events, &stored).await;
            crypto_ops("destroy_dek", 1);
            Ok(())
        } else {
            Err(Error::NotFound("subject"))
        }
    }

    // ------------------------------------------------------------------- keys

    /// The caller's tenant keys and rewrap progress (keys scope).
    ///
    /// # Errors
    /// [`Error::Forbidden`].
    pub async fn key_status(&self, caller: &Caller) -> Result<KeyStatus, Error> {
        let tenant = Self::tenant_of(caller, Scope::Keys)?;
        self.tenant_key_status(tenant).await
    }

    async fn tenant_key_status(&self, tenant: TenantId) -> Result<KeyStatus, Error> {
        let keys = self.st("tenant_keys").tenant_keys(tenant).await?;
        let counts: HashMap<u32, u64> = self
            .st("subject_key_versions")
            .subject_key_versions(tenant)
            .await?
            .into_iter()
            .collect();
        let active = keys
            .iter()
            .find(|k| k.state == KeyState::Active)
            .map_or(0, |k| k.version);
        let total: u64 = counts.values().sum();
        let at_active = counts.get(&active).copied().unwrap_or(0);
        let pending = total - at_active;
        Ok(KeyStatus {
            active_version: active,
            versions: keys
                .iter()
                .map(|k| KeyVersion {
                    version: k.version,
                    state: k.state.as_str(),
                    subjects: counts.get(&k.version).copied().unwrap_or(0),
                    created_at: k.created_at,
                })
                .collect(),
            rewrap_pending: pending,
            rewrap_progress_percent: if total == 0 {
                100.0
            } else {
                (at_active as f64 * 1000.0 / total as f64).floor() / 10.0
            },
        })
    }

    /// Creates a new active KEK version; the background job then moves every subject key to it
    /// (keys scope).
    ///
    /// # Errors
    /// [`Error::Conflict`] when another rotation won the race.
    pub async fn rotate_keys(&self, caller: &Caller) -> Result<KeyStatus, Error> {
        let tenant = Self::tenant_of(caller, Scope::Keys)?;
        let status = self.rotate_tenant_keys(tenant).await?;
        self.admin_event(
            caller,
            tenant,
            "key.rotate",
            Some(format!("version {}", status.active_version)),
        )
        .await?;
        Ok(status)
    }

    /// Records an administrative event (keys, schema, settings, policy, principals) of the
    /// caller's tenant.
    pub(crate) async fn admin_event(
        &self,
        caller: &Caller,
        tenant: TenantId,
        action: impl Into<std::borrow::Cow<'static, str>>,
        reason: Option<String>,
    ) -> Result<(), Error> {
        let t = self.cached(tenant).await?;
        let mut e = self.event(
            caller,
            tenant,
            Some(&t),
            action,
            boveda_audit::Outcome::Allowed,
        );
        e.reason = reason;
        self.audit(vec![e]).await
    }

    /// Rotation without a caller, for the rewrap tests and incident containment.
    ///
    /// # Errors
    /// As [`Vault::rotate_keys`].
    pub async fn rotate_tenant_keys(&self, tenant: TenantId) -> Result<KeyStatus, Error> {
        let keys = self.st("tenant_keys").tenant_keys(tenant).await?;
        let version = keys.iter().map(|k| k.version).max().unwrap_or(0) + 1;
        let kek = SecretKey::generate()?;
        let wrapped = self.inner.root.wrap(
            &kek,
            &WrapAad {
                kind: "kek",
                tenant: tenant.as_bytes(),
                owner: &version.to_be_bytes(),
            },
        )?;
        crypto_ops("wrap_tenant_key", 1);
        self.st("add_tenant_key")
            .add_tenant_key(&TenantKeyRow {
                tenant,
                version,
                wrapped: Some(wrapped),
                state: KeyState::Active,
                created_at: now_ms(),
            })
            .await?;
        self.forget(tenant);
        self.tenant_key_status(tenant).await
    }

    /// Retires a KEK version nothing uses any more, destroying it (keys scope).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Conflict`] while it is active or still wraps subject keys.
    pub async fn retire_key(&self, caller: &Caller, version: u32) -> Result<KeyStatus, Error> {
        let tenant = Self::tenant_of(caller, Scope::Keys)?;
        match self
            .st("retire_tenant_key")
            .retire_tenant_key(tenant, version)
            .await?
        {
            RetireOutcome::Retired => {
                self.forget(tenant);
                self.admin_event(
                    caller,
                    tenant,
                    "key.retire",
                    Some(format!("version {version}")),
                )
                .await?;
                self.tenant_key_status(tenant).await
            }
            RetireOutcome::NotFound => Err(Error::NotFound("key version")),
            RetireOutcome::Active => Err(Error::Conflict(
                "the active key version cannot be retired; rotate first".into(),
            )),
            RetireOutcome::InUse(n) => Err(Error::Conflict(format!(
                "key version {version} still wraps {n} subject keys; wait for the rewrap to finish"
            ))),
        }
    }

    /// One step of the background rewrap job over every tenant: moves up to `batch` subject
    /// keys per tenant to the active KEK version. Returns how many moved and how many remain.
    /// Safe on several nodes at once (each move is conditional) and resumable after a restart
    /// (the state is the keys themselves).
    ///
    /// # Errors
    /// Store and integrity errors.
    pub async fn rewrap_step(&self, batch: usize) -> Result<(u64, u64), Error> {
        let (mut moved, mut remaining) = (0, 0);
        for tenant in self.st("tenants").tenants().await? {
            let t = self.cached(tenant.id).await?;
            let mut keyring = Arc::clone(&t.keyring);
            let pending = self
                .st("subject_keys_not_at")
                .subject_keys_not_at(tenant.id, keyring.active, batch)
                .await?;
            if pending.is_empty() {
                continue;
            }
            if pending
                .iter()
                .any(|k| !keyring.keks.contains_key(&k.kek_version))
            {
                self.forget(tenant.id);
                keyring = Arc::clone(&self.cached(tenant.id).await?.keyring);
            }
            let active = keyring
                .keks
                .get(&keyring.active)
                .ok_or(Error::Internal("active key missing"))?;
            let mut by_version: HashMap<u32, Vec<SubjectKeyRow>> = HashMap::new();
            for k in &pending {
                let dek = Self::unwrap_dek(tenant.id, &keyring, k)?;
                let wrapped = active.wrap_dek(&dek, tenant.id.as_bytes(), k.subject.as_bytes())?;
                by_version
                    .entry(k.kek_version)
                    .or_default()
                    .push(SubjectKeyRow {
                        kek_version: active.version(),
                        wrapped_dek: wrapped,
                        ..k.clone()
                    });
            }
            crypto_ops("rewrap_dek", pending.len() as u64);
            for (from, rows) in by_version {
                moved += self
                    .st("rewrap_subject_keys")
                    .rewrap_subject_keys(from, &rows)
                    .await?;
            }
            let status = self.tenant_key_status(tenant.id).await?;
            metrics::gauge!("boveda_rewrap_pending", "tenant" => tenant.id.to_string())
                .set(status.rewrap_pending as f64);
            remaining += status.rewrap_pending;
        }
        Ok((moved, remaining))
    }

    /// Opens one sealed field with the vault's current keys, as an attacker holding an old copy
    /// of the data and the live key store would try. For erasure tests.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the subject's key is gone; integrity errors otherwise.
    #[doc(hidden)]
    pub async fn danger_open_sealed(
        &self,
        tenant: TenantId,
        row: &RecordRow,
        field: &str,
    ) -> Result<Pii<String>, Error> {
        let mut t = self.cached(tenant).await?;
        let deks = self.deks(tenant, &mut t, &[row.subject]).await?;
        let dek = deks
            .get(&row.subject)
            .ok_or(Error::NotFound("subject key"))?;
        let sealed = decode_fields(&row.sealed)?;
        let ct = sealed.get(field).ok_or(Error::NotFound("field"))?;
        let aad = FieldAad {
            tenant: tenant.as_bytes(),
            collection: &row.collection,
            record: row.id.as_bytes(),
            field,
        };
        Ok(dek.open(ct, &aad)?.into_string()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn record_encoding_round_trips_and_rejects_garbage() {
        let mut m = BTreeMap::new();
        m.insert("email".to_owned(), vec![1, 2, 3]);
        m.insert("phone".to_owned(), vec![]);
        let blob = encode_fields(&m);
        assert_eq!(decode_fields(&blob).unwrap(), m);
        assert!(decode_fields(&blob[..blob.len() - 1]).is_err());
        assert!(decode_fields(&[2, 0, 0]).is_err());
        let mut extra = blob.clone();
        extra.push(0);
        assert!(decode_fields(&extra).is_err());
    }
}
