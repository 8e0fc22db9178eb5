//! The audit journal in the vault: every call that touches personal data, every
//! authentication, key, policy and schema change leaves one event in the tenant's hash chain
//! (crate `boveda-audit`), durably, before any plaintext leaves.
//!
//! Writes carry their events into the store's own transaction. Reads and other events go
//! through a group-commit appender: concurrent requests' events share one transaction (one
//! fsync), and each request waits until its events are durable. A commit waits (1 ms, which
//! the runtime's millisecond timer makes 1 to 2) for the reads already under way, so that
//! under load one fsync serves many reads. Each commit's events and its time in the store
//! are metrics (`boveda_audit_commit_events`, `boveda_audit_commit_seconds`). If
//! the journal cannot be written, the request fails with [`Error::AuditUnavailable`] (503) and
//! nothing is served; readiness reports it, and the next successful append restores service
//! by itself.

use crate::principal::{Caller, PrincipalKind};
use crate::vault::{TenantCache, Vault, now_ms};
use crate::{Error, View};
use boveda_audit::{AuditKey, Checkpoint, Event, Outcome, Report, StoredEvent, VerifierState};
use boveda_crypto::sign::{PublicKey, SigningKey};
use boveda_crypto::{SecretKey, WrapAad};
use boveda_store::{AuditFilter, Store, SubjectId, TenantId};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{mpsc, oneshot};

const SIGNING_SEED: &str = "audit_signing_seed";
const MAX_GROUP: usize = 1024;
/// How long a commit waits for reads under way to join it (tokio's timer rounds it up to
/// the next millisecond tick).
const MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// Events with their places in the chain.
type Appended = (Vec<Event>, Vec<StoredEvent>);

struct Pending {
    events: Vec<Event>,
    done: oneshot::Sender<Result<Appended, ()>>,
}

/// The group-commit appender and the journal's health.
pub(crate) struct Journal {
    tx: mpsc::Sender<Pending>,
    healthy: Arc<AtomicBool>,
    /// Reads under way that will append an event: the appender waits for them (at most
    /// [`MAX_WAIT`]) so that they share a commit.
    expected: Arc<AtomicUsize>,
    pub(crate) signing: SigningKey,
}

/// A read under way, counted by the appender until it is dropped.
pub(crate) struct Expected<'a>(&'a AtomicUsize);

impl Drop for Expected<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sets the journal's health, logging when it comes back (its failures are logged where
/// they happen).
fn set_health(healthy: &AtomicBool, ok: bool) {
    if healthy.swap(ok, Ordering::Relaxed) != ok && ok {
        tracing::info!("audit journal writable again; data calls are served");
    }
}

impl Journal {
    /// Starts the appender and loads (or creates, once per store) the checkpoint signing key,
    /// kept as a seed wrapped by the root key.
    pub(crate) async fn start(
        store: Arc<dyn Store>,
        root: &boveda_crypto::RootKey,
    ) -> Result<Self, Error> {
        let aad = WrapAad {
            kind: "audit-sign",
            tenant: b"",
            owner: b"",
        };
        let candidate = root.wrap(&SecretKey::generate()?, &aad)?;
        let wrapped = store.init_meta(SIGNING_SEED, &candidate).await?;
        let signing = SigningKey::from_seed(&root.unwrap(&wrapped, &aad)?)?;
        let (tx, mut rx) = mpsc::channel::<Pending>(4096);
        let healthy = Arc::new(AtomicBool::new(true));
        let h = Arc::clone(&healthy);
        let expected = Arc::new(AtomicUsize::new(0));
        let e = Arc::clone(&expected);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                // One timer for the group's wait, registered the first time it is polled (a
                // `timeout_at` per read that joins would register and cancel one each).
                let deadline = tokio::time::sleep(MAX_WAIT);
                tokio::pin!(deadline);
                loop {
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(p) => group.push(p),
                            Err(_) => break,
                        }
                    }
                    // Reads already under way will append soon: each joins this commit
                    // instead of paying for one of its own (PostgreSQL's commit_siblings).
                    if group.len() >= MAX_GROUP || e.load(Ordering::Relaxed) <= group.len() {
                        break;
                    }
                    tokio::select! {
                        biased;
                        p = rx.recv() => match p {
                            Some(p) => group.push(p),
                            None => break,
                        },
                        () = &mut deadline => break,
                    }
                }
                let counts: Vec<usize> = group.iter().map(|p| p.events.len()).collect();
                let mut events = Vec::with_capacity(counts.iter().sum());
                for p in &mut group {
                    events.append(&mut p.events);
                }
                let events = Arc::new(events);
                let started = std::time::Instant::now();
                let appended = store.append_audit(Arc::clone(&events)).await;
                // The durable write's share of a read's wait, and how many events shared it.
                metrics::histogram!("boveda_audit_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("boveda_audit_commit_events").record(events.len() as f64);
                // The store has let go of them: no copy is made.
                let mut events = Arc::unwrap_or_clone(events);
                match appended {
                    Ok(mut stored) => {
                        set_health(&h, true);
                        metrics::counter!("boveda_audit_events_total")
                            .increment(stored.len() as u64);
                        // Each request gets its events back with their places in the chain.
                        for (p, n) in group.into_iter().zip(counts).rev() {
                            let mine = stored.split_off(stored.len() - n);
                            let theirs = events.split_off(events.len() - n);
                            let _ = p.done.send(Ok((theirs, mine)));
                        }
                    }
                    Err(e) => {
                        set_health(&h, false);
                        tracing::error!(error = %e, events = events.len(), "audit journal write failed; data calls are refused until it works");
                        for p in group {
                            let _ = p.done.send(Err(()));
                        }
                    }
                }
            }
        });
        Ok(Self {
            tx,
            healthy,
            expected,
            signing,
        })
    }

    /// Counts a read under way until the guard is dropped.
    pub(crate) fn expect(&self) -> Expected<'_> {
        self.expected.fetch_add(1, Ordering::Relaxed);
        Expected(&self.expected)
    }

    pub(crate) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn mark(&self, ok: bool) {
        set_health(&self.healthy, ok);
    }

    /// Appends events and waits until they are durable; gives them back with their places.
    pub(crate) async fn append(&self, events: Vec<Event>) -> Result<Appended, Error> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending { events, done })
            .await
            .map_err(|_| Error::AuditUnavailable)?;
        wait.await
            .map_err(|_| Error::AuditUnavailable)?
            .map_err(|()| Error::AuditUnavailable)
    }
}

/// The audit key of a tenant: derived from its index key, so it needs no storage of its own.
/// Derived once per cache load ([`TenantCache::audit_key`]), not per event.
pub(crate) fn derive_audit_key(index: &boveda_crypto::IndexKey) -> AuditKey {
    AuditKey::from_bytes(index.mac(b"boveda.audit-key.v1"))
}

fn audit_key(t: &TenantCache) -> &AuditKey {
    &t.audit_key
}

/// Most pseudonyms a [`Pseudonyms`] keeps; it is emptied when full.
const PSEUDONYMS: usize = 4096;

/// A value an audit event names by its keyed pseudonym: a client address (by its text form)
/// or a subject id.
pub(crate) trait Pseudonymous: std::hash::Hash + Eq + Copy {
    /// The kind, part of the pseudonym's input.
    const KIND: &'static str;
    /// The pseudonym of this value under `key`.
    fn pseudonym(&self, key: &AuditKey) -> [u8; 32];
}

impl Pseudonymous for IpAddr {
    const KIND: &'static str = "client";
    fn pseudonym(&self, key: &AuditKey) -> [u8; 32] {
        key.pseudonym(Self::KIND, self.to_string().as_bytes())
    }
}

impl Pseudonymous for SubjectId {
    const KIND: &'static str = "subject";
    fn pseudonym(&self, key: &AuditKey) -> [u8; 32] {
        key.pseudonym(Self::KIND, self.as_bytes())
    }
}

/// Audit pseudonyms of one kind of value under one tenant's audit key, remembered so that
/// every request naming a client or subject seen lately does not compute the HMAC again
/// (about 1 µs of a read's audit for the client, 0.5 for a subject). In memory only, at most
/// [`PSEUDONYMS`], and dropped with the tenant's cache (and so with its key).
pub(crate) struct Pseudonyms<K>(std::sync::Mutex<std::collections::HashMap<K, [u8; 32]>>);

impl<K> Default for Pseudonyms<K> {
    fn default() -> Self {
        Self(std::sync::Mutex::default())
    }
}

impl<K: Pseudonymous> Pseudonyms<K> {
    /// The pseudonym of `value` under `key`.
    fn of(&self, key: &AuditKey, value: K) -> [u8; 32] {
        if let Some(p) = self.0.lock().ok().and_then(|m| m.get(&value).copied()) {
            return p;
        }
        let p = value.pseudonym(key);
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= PSEUDONYMS {
                m.clear();
            }
            m.insert(value, p);
        }
        p
    }
}

/// One entry of a subject's access history.
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Who: principal id.
    pub principal: String,
    /// What kind of principal.
    pub principal_kind: String,
    /// With which roles.
    pub roles: Vec<String>,
    /// What was done.
    pub action: String,
    /// Allowed, denied or failed.
    pub outcome: String,
    /// Collection.
    pub collection: Option<String>,
    /// Fields.
    pub fields: Vec<String>,
    /// Purpose.
    pub purpose: Option<String>,
    /// How values were shown.
    pub view: Option<String>,
    /// The event's sequence number.
    pub seq: u64,
}

/// Filters of an audit search, as callers give them (subject as an id, not a pseudonym).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// From, Unix milliseconds.
    pub from_ms: Option<i64>,
    /// Until, Unix milliseconds.
    pub to_ms: Option<i64>,
    /// Principal id.
    pub principal: Option<String>,
    /// Action.
    pub action: Option<String>,
    /// Collection.
    pub collection: Option<String>,
    /// Subject id.
    pub subject: Option<SubjectId>,
    /// Purpose.
    pub purpose: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Events after this sequence number (pagination).
    pub after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// An event as the search shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Sequence number.
    pub seq: u64,
    /// Chain hash, hex.
    pub hash: String,
    /// The event.
    pub event: Event,
}

impl Vault {
    /// An event of this caller with the fields every event has.
    pub(crate) fn event(
        &self,
        caller: &Caller,
        tenant: TenantId,
        t: Option<&TenantCache>,
        action: impl Into<std::borrow::Cow<'static, str>>,
        outcome: Outcome,
    ) -> Event {
        let p = &caller.principal;
        let kind = match p.kind {
            PrincipalKind::Operator => "operator",
            PrincipalKind::Service => "service",
            PrincipalKind::Staff => "user",
        };
        let mut e = Event::new(
            *tenant.as_bytes(),
            now_ms(),
            &p.id.to_string(),
            kind,
            action,
            outcome,
            &caller.request_id,
        );
        e.roles = p.grants.roles.clone();
        if let Some(s) = &p.staff {
            e.session = Some(hex::encode(&s.token_hash[..8.min(s.token_hash.len())]));
            e.mfa_at_ms = Some(s.mfa_at_ms);
        }
        if let (Some(t), Some(ip)) = (t, caller.client) {
            e.client = Some(t.clients.of(audit_key(t), ip));
        }
        e
    }

    /// The audit pseudonyms of a tenant's subjects, in the order given: for benchmarks that
    /// load audit events directly into the store.
    ///
    /// # Errors
    /// Store errors.
    #[doc(hidden)]
    pub async fn subject_pseudonyms(
        &self,
        tenant: TenantId,
        subjects: &[SubjectId],
    ) -> Result<Vec<[u8; 32]>, Error> {
        let t = self.cached(tenant).await?;
        Ok(Self::subjects_in_order(&t, subjects))
    }

    /// Subject pseudonyms in the order given (no sorting), to map pseudonyms back to ids.
    pub(crate) fn subjects_in_order(t: &TenantCache, subjects: &[SubjectId]) -> Vec<[u8; 32]> {
        let key = audit_key(t);
        subjects.iter().map(|s| t.subjects.of(key, *s)).collect()
    }

    /// Subject pseudonyms for an event.
    pub(crate) fn subjects(t: &TenantCache, subjects: &[SubjectId]) -> Vec<[u8; 32]> {
        let mut out = Self::subjects_in_order(t, subjects);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Sets the data-access fields of an event.
    #[allow(clippy::too_many_arguments)] // the facts of one access
    pub(crate) fn access(
        mut e: Event,
        t: &TenantCache,
        collection: &str,
        records: Vec<String>,
        subjects: &[SubjectId],
        fields: Vec<String>,
        purpose: Option<&str>,
        view: Option<View>,
    ) -> Event {
        let spec = t.collections.get(collection);
        e.grade = spec
            .and_then(|s| {
                fields
                    .iter()
                    .filter_map(|f| s.fields.get(f))
                    .map(|f| f.grade)
                    .max()
            })
            .map(|g| g.as_str().into());
        e.collection = Some(collection.to_owned());
        e.records = records;
        e.subjects = Self::subjects(t, subjects);
        e.fields = fields;
        e.purpose = purpose.map(str::to_owned);
        e.view = view.map(|v| v.as_str().into());
        e
    }

    /// Appends events durably (group commit), or fails closed.
    pub(crate) async fn audit(&self, events: Vec<Event>) -> Result<(), Error> {
        if !self.inner.config.audit || events.is_empty() {
            return Ok(());
        }
        let (events, stored) = self.inner.journal.append(events).await?;
        self.after_append(events, &stored).await;
        Ok(())
    }

    /// Checkpoints every N events, and feeds the analyzer.
    pub(crate) async fn after_append(&self, mut events: Vec<Event>, stored: &[StoredEvent]) {
        let every = self.inner.config.checkpoint_every;
        for (e, s) in events.iter_mut().zip(stored) {
            e.seq = s.seq;
        }
        let mut alerts = Vec::new();
        if let Ok(mut a) = self.inner.analyzer.lock() {
            for e in &events {
                alerts.extend(a.observe(e));
            }
        }
        for alert in alerts {
            self.raise(alert).await;
        }
        for (e, s) in events.iter().zip(stored) {
            if every > 0 && s.seq % every == 0 {
                let cp = Checkpoint::sign(
                    e.tenant,
                    s.seq,
                    s.hash,
                    now_ms(),
                    &self.inner.journal.signing,
                );
                if let Err(err) = self.st("add_checkpoint").add_checkpoint(&cp).await {
                    tracing::warn!(error = %err, "could not store an audit checkpoint; the next one will cover it");
                }
            }
        }
    }

    /// After a write whose events committed with it: the journal works, and the events feed
    /// the analyzer and the checkpoints as appended ones do.
    pub(crate) async fn written(&self, events: Vec<Event>, stored: &[StoredEvent]) {
        self.journal_ok();
        self.after_append(events, stored).await;
    }

    /// Events of a write, for the store to commit with it.
    pub(crate) fn write_events(&self, events: Vec<Event>) -> Vec<Event> {
        if self.inner.config.audit {
            events
        } else {
            Vec::new()
        }
    }

    /// Notes that a write's events were committed (the store returned success).
    pub(crate) fn journal_ok(&self) {
        self.inner.journal.mark(true);
    }

    /// Maps a store failure of a write with events to a fail-closed answer when the journal is
    /// what failed.
    pub(crate) async fn write_failed(&self, e: boveda_store::Error) -> Error {
        if matches!(e, boveda_store::Error::Unavailable(_))
            && self.st("audit_probe").audit_probe().await.is_err()
        {
            self.inner.journal.mark(false);
            return Error::AuditUnavailable;
        }
        e.into()
    }

    /// Whether the journal can be written (for `/readyz`); probes when it last failed, so that
    /// readiness comes back by itself.
    pub(crate) async fn journal_ready(&self) -> bool {
        if self.inner.journal.healthy() {
            return true;
        }
        let ok = self.st("audit_probe").audit_probe().await.is_ok();
        self.inner.journal.mark(ok);
        ok
    }

    fn audit_reader(caller: &Caller) -> Result<TenantId, Error> {
        let p = &caller.principal;
        let tenant = p.tenant.ok_or_else(|| {
            Error::Forbidden("platform operators do not read tenants' audit logs".into())
        })?;
        let ok = match p.kind {
            PrincipalKind::Staff => ["auditor", "privacy_officer", "security_responder"]
                .iter()
                .any(|r| p.has_role(r)),
            PrincipalKind::Service => p.grants.allows(crate::Scope::Audit),
            PrincipalKind::Operator => false,
        };
        if ok {
            Ok(tenant)
        } else {
            Err(Error::Forbidden("the auditor, privacy_officer or security_responder role (or the audit scope) is required".into()))
        }
    }

    /// Searches the caller's tenant's audit log (auditors, privacy officer, responders).
    ///
    /// # Errors
    /// [`Error::Forbidden`].
    pub async fn audit_events(
        &self,
        caller: &Caller,
        q: &AuditQuery,
    ) -> Result<Vec<AuditEntry>, Error> {
        let tenant = Self::audit_reader(caller)?;
        let t = self.cached(tenant).await?;
        let filter = AuditFilter {
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            principal: q.principal.clone(),
            action: q.action.clone(),
            collection: q.collection.clone(),
            subject: q.subject.map(|s| s.pseudonym(audit_key(&t))),
            purpose: q.purpose.clone(),
            outcome: q.outcome.clone(),
            to_seq: None,
        };
        let stored = self
            .st("audit_events")
            .audit_events(
                tenant,
                &filter,
                q.after.unwrap_or(0),
                q.limit.unwrap_or(100).clamp(1, 1000),
            )
            .await?;
        let mut out = Vec::with_capacity(stored.len());
        for s in stored {
            let event = Event::decode(&s.encoded).map_err(|_| Error::Integrity("audit event"))?;
            out.push(AuditEntry {
                seq: s.seq,
                hash: hex::encode(s.hash),
                event,
            });
        }
        // Reading the audit log is itself audited.
        self.audit(vec![self.event(
            caller,
            tenant,
            Some(&t),
            "audit.read",
            Outcome::Allowed,
        )])
        .await?;
        Ok(out)
    }

    /// Exports stored events from `after` as JSON lines (`jsonl`) or CEF lines (`cef`).
    ///
    /// # Errors
    /// [`Error::Forbidden`], [`Error::Invalid`] for another format.
    pub async fn audit_export(
        &self,
        caller: &Caller,
        format: &str,
        after: u64,
        limit: usize,
    ) -> Result<String, Error> {
        let tenant = Self::audit_reader(caller)?;
        let t = self.cached(tenant).await?;
        let stored = self
            .st("audit_events")
            .audit_events(
                tenant,
                &AuditFilter::default(),
                after,
                limit.clamp(1, 100_000),
            )
            .await?;
        let mut out = String::new();
        for s in &stored {
            let line = match format {
                "jsonl" => boveda_audit::to_json_line(s),
                "cef" => boveda_audit::to_cef(s),
                _ => return Err(Error::invalid("format", "jsonl_or_cef")),
            }
            .map_err(|_| Error::Integrity("audit event"))?;
            out.push_str(&line);
            out.push('\n');
        }
        self.audit(vec![self.event(
            caller,
            tenant,
            Some(&t),
            "audit.export",
            Outcome::Allowed,
        )])
        .await?;
        Ok(out)
    }

    /// The public key that verifies checkpoints.
    pub fn audit_public_key(&self) -> PublicKey {
        self.inner.journal.signing.public_key()
    }

    /// Signs a checkpoint of the caller's tenant's chain head now.
    ///
    /// # Errors
    /// [`Error::Forbidden`].
    pub async fn audit_checkpoint(&self, caller: &Caller) -> Result<Option<Checkpoint>, Error> {
        let tenant = Self::audit_reader(caller)?;
        self.checkpoint_tenant(tenant).await
    }

    /// Signs a checkpoint of a tenant's chain head, if it has events past the last one.
    ///
    /// # Errors
    /// Store errors.
    pub async fn checkpoint_tenant(&self, tenant: TenantId) -> Result<Option<Checkpoint>, Error> {
        let Some((seq, hash)) = self.st("audit_head").audit_head(tenant).await? else {
            return Ok(None);
        };
        let last = self
            .st("checkpoints")
            .checkpoints(tenant)
            .await?
            .last()
            .map_or(0, |c| c.seq);
        if seq == last {
            return Ok(None);
        }
        let cp = Checkpoint::sign(
            *tenant.as_bytes(),
            seq,
            hash,
            now_ms(),
            &self.inner.journal.signing,
        );
        self.st("add_checkpoint").add_checkpoint(&cp).await?;
        Ok(Some(cp))
    }

    /// Checkpoints every tenant with events past its last checkpoint (the periodic job).
    ///
    /// # Errors
    /// Store errors.
    pub async fn checkpoint_all(&self) -> Result<usize, Error> {
        let mut n = 0;
        for t in self.st("tenants").tenants().await? {
            n += usize::from(self.checkpoint_tenant(t.id).await?.is_some());
        }
        Ok(n)
    }

    /// Verifies the caller's tenant's chain and checkpoints.
    ///
    /// # Errors
    /// [`Error::Forbidden`].
    pub async fn audit_verify(&self, caller: &Caller) -> Result<Report, Error> {
        let tenant = Self::audit_reader(caller)?;
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .st("audit_events")
                .audit_events(tenant, &AuditFilter::default(), after, 10_000)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            events.extend(page);
        }
        let cps = self.st("checkpoints").checkpoints(tenant).await?;
        Ok(boveda_audit::verify(
            events,
            &cps,
            &self.audit_public_key(),
            None::<&VerifierState>,
        ))
    }

    /// Who read a subject's data, when, which fields, why and how (privacy officer, auditor).
    ///
    /// # Errors
    /// [`Error::Forbidden`].
    pub async fn access_history(
        &self,
        caller: &Caller,
        subject: SubjectId,
    ) -> Result<Vec<Access>, Error> {
        let tenant = Self::audit_reader(caller)?;
        let t = self.cached(tenant).await?;
        let filter = AuditFilter {
            subject: Some(subject.pseudonym(audit_key(&t))),
            ..AuditFilter::default()
        };
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .st("audit_events")
                .audit_events(tenant, &filter, after, 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for s in page {
                let e = Event::decode(&s.encoded).map_err(|_| Error::Integrity("audit event"))?;
                out.push(Access {
                    at_ms: e.at_ms,
                    principal: e.principal,
                    principal_kind: e.principal_kind.into_owned(),
                    roles: e.roles,
                    action: e.action.into_owned(),
                    outcome: e.outcome.as_str().to_owned(),
                    collection: e.collection,
                    fields: e.fields,
                    purpose: e.purpose,
                    view: e.view.map(std::borrow::Cow::into_owned),
                    seq: s.seq,
                });
            }
        }
        // A subject the tenant never had (or another tenant's) looks like any unknown id; an
        // erased subject keeps its history.
        if out.is_empty()
            && self
                .st("subject_keys")
                .subject_keys(tenant, &[subject])
                .await?
                .is_empty()
        {
            return Err(Error::NotFound("subject"));
        }
        self.audit(vec![self.event(
            caller,
            tenant,
            Some(&t),
            "audit.access_history",
            Outcome::Allowed,
        )])
        .await?;
        Ok(out)
    }
}

/// An alert as callers see it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    /// Id.
    pub id: boveda_store::AlertId,
    /// The rule that raised it.
    pub kind: String,
    /// The principal concerned.
    pub principal: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Sequence numbers of the audit events that raised it.
    pub events: Vec<u64>,
    /// What was seen.
    pub detail: String,
    /// `open`, `acknowledged` or `resolved`.
    pub state: String,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
}

impl From<boveda_store::AlertRow> for AlertView {
    fn from(r: boveda_store::AlertRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            principal: r.principal,
            at_ms: r.at_ms,
            events: serde_json::from_str(&r.events).unwrap_or_default(),
            detail: r.detail,
            state: r.state,
            updated_at: r.updated_at,
        }
    }
}

impl Vault {
    /// Stores an alert and runs the configured response.
    async fn raise(&self, alert: boveda_audit::Alert) {
        let tenant = TenantId::from_bytes(alert.tenant);
        let kind = serde_json::to_value(alert.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        metrics::counter!("boveda_alerts_total", "kind" => kind.clone()).increment(1);
        let row = boveda_store::AlertRow {
            tenant,
            id: boveda_store::AlertId::generate(),
            kind,
            principal: alert.principal.clone(),
            at_ms: alert.at_ms,
            events: serde_json::to_string(&alert.events).unwrap_or_else(|_| "[]".into()),
            detail: alert.detail.clone(),
            state: "open".into(),
            updated_at: now_ms(),
        };
        if let Err(e) = self.st("add_alert").add_alert(&row).await {
            tracing::error!(error = %e, "could not store an alert");
        }
        tracing::warn!(tenant = %tenant, kind = %row.kind, principal = %row.principal, "behaviour alert");
        if self.inner.config.alert_suspend.contains(&alert.kind) {
            self.suspend(tenant, &alert.principal).await;
        }
        if self.inner.config.alert_step_up.contains(&alert.kind)
            && let Ok(id) = alert.principal.parse::<boveda_store::PrincipalId>()
        {
            let n = self
                .st("expire_session_mfa")
                .expire_session_mfa(tenant, id)
                .await
                .unwrap_or(0);
            tracing::warn!(tenant = %tenant, principal = %id, sessions = n, "step-up MFA required by an alert response");
        }
        if self.inner.config.alert_throttle.contains(&alert.kind)
            && let Ok(id) = alert.principal.parse::<boveda_store::PrincipalId>()
            && let Ok(mut t) = self.inner.throttled.lock()
        {
            let now = std::time::Instant::now();
            t.insert(
                id,
                (
                    now + std::time::Duration::from_secs(15 * 60),
                    now - std::time::Duration::from_secs(1),
                ),
            );
            tracing::warn!(tenant = %tenant, principal = %id, "principal throttled by an alert response");
        }
    }

    /// Suspends a principal named in an alert: a service account is disabled, a staff user is
    /// disabled and loses its sessions.
    async fn suspend(&self, tenant: TenantId, principal: &str) {
        let Ok(id) = principal.parse::<boveda_store::PrincipalId>() else {
            return;
        };
        let disabled = self
            .st("disable_principal")
            .disable_principal(tenant, id)
            .await
            .unwrap_or(false);
        if !disabled {
            let _ = self.suspend_user(tenant, id).await;
        }
        self.forget_principals();
        tracing::warn!(tenant = %tenant, principal = %id, "principal suspended by an alert response");
    }

    /// Alerts of the caller's tenant (auditors, privacy officer, responders).
    ///
    /// # Errors
    /// [`Error::Forbidden`].
    pub async fn alerts(
        &self,
        caller: &Caller,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AlertView>, Error> {
        let tenant = Self::audit_reader(caller)?;
        let rows = self
            .st("alerts")
            .alerts(tenant, state, limit.clamp(1, 1000))
            .await?;
        Ok(rows.into_iter().map(AlertView::from).collect())
    }

    /// Acknowledges or resolves an alert (audited).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Forbidden`], [`Error::Invalid`] for another state.
    pub async fn set_alert_state(
        &self,
        caller: &Caller,
        id: boveda_store::AlertId,
        state: &str,
    ) -> Result<(), Error> {
        let tenant = Self::audit_reader(caller)?;
        if !matches!(state, "acknowledged" | "resolved") {
            return Err(Error::invalid("state", "acknowledged_or_resolved"));
        }
        if !self
            .st("set_alert_state")
            .set_alert_state(tenant, id, state, now_ms())
            .await?
        {
            return Err(Error::NotFound("alert"));
        }
        self.admin_event(
            caller,
            tenant,
            format!("alert.{state}"),
            Some(id.to_string()),
        )
        .await
    }
}

/// Events a sink has not received yet, per tenant.
pub struct ExportBatch {
    /// Tenant.
    pub tenant: TenantId,
    /// Events after the sink's cursor, in order.
    pub events: Vec<StoredEvent>,
}

fn cursor_key(sink: &str, tenant: TenantId) -> String {
    format!("audit_export:{sink}:{tenant}")
}

impl Vault {
    /// The next events for a continuous export sink, per tenant, after its stored cursor.
    /// Delivery is at least once: the cursor moves only when [`Vault::export_done`] is called
    /// after the sink has the events.
    ///
    /// # Errors
    /// Store errors.
    pub async fn export_pending(
        &self,
        sink: &str,
        limit: usize,
    ) -> Result<Vec<ExportBatch>, Error> {
        let mut out = Vec::new();
        for t in self.st("tenants").tenants().await? {
            let cursor = self.export_cursor(sink, t.id).await?;
            let head = self
                .st("audit_head")
                .audit_head(t.id)
                .await?
                .map_or(0, |h| h.0);
            metrics::gauge!("boveda_audit_export_lag_events", "sink" => sink.to_owned(), "tenant" => t.id.to_string())
                .set(head.saturating_sub(cursor) as f64);
            if head <= cursor {
                continue;
            }
            let events = self
                .st("audit_events")
                .audit_events(t.id, &AuditFilter::default(), cursor, limit)
                .await?;
            if !events.is_empty() {
                out.push(ExportBatch {
                    tenant: t.id,
                    events,
                });
            }
        }
        Ok(out)
    }

    async fn export_cursor(&self, sink: &str, tenant: TenantId) -> Result<u64, Error> {
        let v = self.st("meta").meta(&cursor_key(sink, tenant)).await?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Records that a sink has every event of a tenant up to `seq`.
    ///
    /// # Errors
    /// Store errors.
    pub async fn export_done(&self, sink: &str, tenant: TenantId, seq: u64) -> Result<(), Error> {
        self.st("set_meta")
            .set_meta(&cursor_key(sink, tenant), &seq.to_be_bytes())
            .await?;
        Ok(())
    }
}

impl Vault {
    /// Deletes events older than `keep_ms`, but only up to a signed checkpoint, so that what
    /// remains still verifies; checkpoints are kept. Returns how many events were deleted.
    ///
    /// # Errors
    /// Store errors.
    pub async fn apply_retention(&self, keep_ms: i64) -> Result<u64, Error> {
        let cutoff = now_ms() - keep_ms;
        let mut n = 0;
        for t in self.st("tenants").tenants().await? {
            let cps = self.st("checkpoints").checkpoints(t.id).await?;
            if let Some(cp) = cps.iter().rev().find(|c| c.at_ms < cutoff) {
                n += self.st("prune_audit").prune_audit(t.id, cp.seq).await?;
            }
        }
        Ok(n)
    }
}

impl Vault {
    /// Alerts a sink has not received yet, per tenant, oldest first (at least once: the cursor
    /// moves with [`Vault::alerts_delivered`]).
    ///
    /// # Errors
    /// Store errors.
    pub async fn pending_alerts(
        &self,
        sink: &str,
    ) -> Result<Vec<(TenantId, Vec<AlertView>)>, Error> {
        let mut out = Vec::new();
        for t in self.st("tenants").tenants().await? {
            let cursor = self
                .st("meta")
                .meta(&format!("alert_sink:{sink}:{}", t.id))
                .await?
                .unwrap_or_default();
            let rows = self.st("alerts").alerts(t.id, None, 1000).await?;
            let mut fresh: Vec<AlertView> = rows
                .into_iter()
                .filter(|r| format!("{:020}:{}", r.at_ms, r.id).into_bytes() > cursor)
                .map(AlertView::from)
                .collect();
            fresh.reverse();
            if !fresh.is_empty() {
                out.push((t.id, fresh));
            }
        }
        Ok(out)
    }

    /// Records that a sink has a tenant's alerts up to and including `last`.
    ///
    /// # Errors
    /// Store errors.
    pub async fn alerts_delivered(
        &self,
        sink: &str,
        tenant: TenantId,
        last: &AlertView,
    ) -> Result<(), Error> {
        let cursor = format!("{:020}:{}", last.at_ms, last.id);
        self.st("set_meta")
            .set_meta(&format!("alert_sink:{sink}:{tenant}"), cursor.as_bytes())
            .await?;
        Ok(())
    }
}

impl Vault {
    /// Refuses a data call of a throttled principal made less than a second after its last.
    /// Throttling is per node: it slows one principal down, it is not a security boundary.
    pub(crate) fn check_throttle(&self, principal: boveda_store::PrincipalId) -> Result<(), Error> {
        let Ok(mut t) = self.inner.throttled.lock() else {
            return Ok(());
        };
        let now = std::time::Instant::now();
        match t.get_mut(&principal) {
            Some((until, _)) if *until <= now => {
                t.remove(&principal);
                Ok(())
            }
            Some((_, last)) if now.duration_since(*last) < std::time::Duration::from_secs(1) => {
                Err(Error::Throttled)
            }
            Some((_, last)) => {
                *last = now;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_the_keyed_hmac_of_the_value_before_and_after_caching() {
        let key = AuditKey::from_bytes([7; 32]);
        let other = AuditKey::from_bytes([8; 32]);
        let cache = Pseudonyms::<IpAddr>::default();
        let ip: IpAddr = [10, 0, 0, 7].into();
        let want = key.pseudonym("client", b"10.0.0.7");
        assert_eq!(cache.of(&key, ip), want);
        assert_eq!(cache.of(&key, ip), want, "the remembered one");
        assert_ne!(
            cache.of(&key, [10, 0, 0, 8].into()),
            want,
            "another address"
        );
        assert_ne!(
            Pseudonyms::<IpAddr>::default().of(&other, ip),
            want,
            "another key"
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap_or(ip);
        assert_eq!(cache.of(&key, v6), key.pseudonym("client", b"2001:db8::1"));
        let subjects = Pseudonyms::<SubjectId>::default();
        let s = SubjectId::from_bytes([3; 16]);
        for _ in 0..2 {
            assert_eq!(subjects.of(&key, s), key.pseudonym("subject", &[3; 16]));
        }
        assert_ne!(subjects.of(&key, s), key.pseudonym("client", &[3; 16]));
    }

    #[test]
    fn the_pseudonym_cache_stays_bounded() {
        let key = AuditKey::from_bytes([7; 32]);
        let cache = Pseudonyms::<IpAddr>::default();
        for i in 0..=PSEUDONYMS as u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            assert_eq!(
                cache.of(&key, ip),
                key.pseudonym("client", ip.to_string().as_bytes())
            );
            let held = cache.0.lock().map(|m| m.len()).unwrap_or(usize::MAX);
            assert!(held <= PSEUDONYMS, "{held} held");
        }
    }
}
