//! Security incidents (DESIGN.md §9, the policy's clauses 4 and 5): an incident with a scope,
//! a workflow (open → contained → notifying → closed), an owner and a timeline of every action;
//! containment actions one call each; and the blast radius computed from the audit log.
//!
//! Only security responders and the privacy officer handle incidents. Every action is audited
//! and on the timeline. The incident document holds ids, names of fields and counts: never a
//! personal value.

use crate::Error;
use crate::principal::{Caller, PrincipalKind};
use crate::vault::{Vault, now_ms};
use boveda_audit::{Event, Outcome};
use boveda_store::{
    AuditFilter, IncidentId, IncidentRow, PrincipalId, StoredEvent, SubjectId, TenantId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What an incident is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentScope {
    /// Compromised principals (staff users or service accounts).
    #[serde(default)]
    pub principals: Vec<PrincipalId>,
    /// Compromised KEK versions.
    #[serde(default)]
    pub key_versions: Vec<u32>,
    /// Collections concerned (empty: all).
    #[serde(default)]
    pub collections: Vec<String>,
    /// The whole tenant (every principal).
    #[serde(default)]
    pub tenant: bool,
    /// Start of the window, Unix milliseconds.
    #[serde(default)]
    pub from_ms: Option<i64>,
    /// End of the window, Unix milliseconds.
    #[serde(default)]
    pub to_ms: Option<i64>,
    /// Subjects known to be affected.
    #[serde(default)]
    pub subjects: Vec<SubjectId>,
}

/// A new incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    /// Title.
    pub title: String,
    /// What happened.
    #[serde(default)]
    pub description: String,
    /// When it was detected (awareness starts the legal clocks), Unix milliseconds.
    pub detected_at: i64,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// The cause, when known.
    #[serde(default)]
    pub cause: Option<String>,
    /// Scope.
    pub scope: IncidentScope,
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When.
    pub at_ms: i64,
    /// Who (principal id).
    pub actor: String,
    /// What, e.g. `opened`, `contain.revoke_principal`, `state.contained`.
    pub action: String,
    /// Details without personal values.
    pub detail: String,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Id.
    pub id: IncidentId,
    /// Title.
    pub title: String,
    /// What happened.
    pub description: String,
    /// When it was detected, Unix milliseconds.
    pub detected_at: i64,
    /// Severity.
    pub severity: String,
    /// Cause.
    pub cause: Option<String>,
    /// Scope.
    pub scope: IncidentScope,
    /// `open`, `contained`, `notifying` or `closed`.
    pub state: String,
    /// Owner (principal id).
    pub owner: String,
    /// Who opened it.
    pub created_by: String,
    /// Timeline of every action.
    pub timeline: Vec<TimelineEntry>,
    /// The notice plan's summary and approval, once planned.
    #[serde(default)]
    pub notice_plan: Option<crate::notice::NoticePlan>,
    /// The legal clocks, computed when the incident is read (not stored).
    #[serde(default, skip_deserializing)]
    pub deadlines: Vec<Deadline>,
}

/// One legal clock of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deadline {
    /// Which clock, e.g. `gdpr_art33_regulator`.
    pub name: String,
    /// When it runs out, Unix milliseconds.
    pub due_ms: i64,
    /// Milliseconds left (negative once overdue).
    pub remaining_ms: i64,
    /// Past due while the incident is not closed.
    pub overdue: bool,
}

/// A containment action.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "action", rename_all = "snake_case")]
pub enum Containment {
    /// Revoke a principal's sessions (staff) or disable its API key (service account).
    RevokePrincipal {
        /// The principal.
        principal_id: PrincipalId,
    },
    /// Force a staff user to change the password, ending its sessions.
    ForcePasswordReset {
        /// The user.
        principal_id: PrincipalId,
    },
    /// Suspend a principal (disable it and end its sessions).
    SuspendPrincipal {
        /// The principal.
        principal_id: PrincipalId,
    },
    /// Create a new KEK version; the background job moves every subject key to it, after which
    /// the compromised version can be retired.
    RotateKeys,
    /// Freeze the tenant's data calls.
    FreezeTenant,
}

/// One subject's exposure.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectExposure {
    /// The subject, when it still exists (an erased subject is known by pseudonym only).
    pub subject_id: Option<SubjectId>,
    /// The subject's pseudonym in the audit log (hex).
    pub pseudonym: String,
    /// `clear` (seen in plain), `masked` (only masked or redacted) or `ciphertext_only`.
    pub exposure: &'static str,
    /// Categories of data touched, sorted.
    pub categories: Vec<Arc<str>>,
    /// Fields touched (`collection.field`), sorted.
    pub fields: Vec<Arc<str>>,
    /// Grades touched, sorted.
    pub grades: Vec<Arc<str>>,
    /// Views used, sorted.
    pub views: Vec<Arc<str>>,
    /// Accesses per category, sorted by category (a JSON object).
    #[serde(serialize_with = "as_map")]
    pub counts: Vec<(Arc<str>, u64)>,
    /// First exposure, Unix milliseconds.
    pub first_ms: i64,
    /// Last exposure, Unix milliseconds.
    pub last_ms: i64,
}

/// The blast radius of an incident.
#[derive(Debug, Clone, Serialize)]
pub struct BlastRadius {
    /// Subjects affected.
    pub subjects: Vec<SubjectExposure>,
    /// How many were seen in clear.
    pub clear: u64,
    /// How many only masked.
    pub masked_only: u64,
    /// How many only as ciphertext.
    pub ciphertext_only: u64,
    /// Subjects affected per category.
    pub by_category: BTreeMap<String, u64>,
    /// Audit events examined.
    pub events_examined: u64,
    /// The log's last sequence number when this was computed: a snapshot, the same for every
    /// page read from it.
    pub as_of_seq: u64,
    /// When it was computed, Unix milliseconds.
    pub computed_at_ms: i64,
}

/// How long a computed blast radius is served again (to page through it) before the log is
/// read anew.
const RADIUS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The last blast radius computed, for paging through it without reading the log again.
pub(crate) struct RadiusCache {
    key: (TenantId, IncidentId, i64),
    at: std::time::Instant,
    radius: Arc<BlastRadius>,
}

pub(crate) fn handler(caller: &Caller) -> Result<TenantId, Error> {
    let p = &caller.principal;
    let tenant = p
        .tenant
        .ok_or_else(|| Error::Forbidden("incidents belong to tenants".into()))?;
    let ok = matches!(p.kind, PrincipalKind::Staff | PrincipalKind::Service)
        && (p.has_role("security_responder") || p.has_role("privacy_officer"));
    if ok {
        Ok(tenant)
    } else {
        Err(Error::Forbidden(
            "only security responders and the privacy officer handle incidents".into(),
        ))
    }
}

fn to_row(
    tenant: TenantId,
    i: &Incident,
    version: i64,
    created_at: i64,
) -> Result<IncidentRow, Error> {
    Ok(IncidentRow {
        tenant,
        id: i.id,
        doc: serde_json::to_string(i).map_err(|_| Error::Internal("incident encoding"))?,
        version,
        created_at,
    })
}

pub(crate) fn from_row(r: &IncidentRow) -> Result<Incident, Error> {
    serde_json::from_str(&r.doc).map_err(|_| Error::Integrity("incident document"))
}

/// The incident with its clocks computed for now.
fn with_clocks(
    mut i: Incident,
    clocks: &std::collections::BTreeMap<String, u32>,
    now: i64,
) -> Incident {
    i.deadlines = clocks
        .iter()
        .map(|(name, hours)| {
            let due_ms = i.detected_at + i64::from(*hours) * 3_600_000;
            Deadline {
                name: name.clone(),
                due_ms,
                remaining_ms: due_ms - now,
                overdue: i.state != "closed" && now > due_ms,
            }
        })
        .collect();
    i
}

impl Vault {
    async fn incident_event(
        &self,
        caller: &Caller,
        tenant: TenantId,
        action: impl Into<std::borrow::Cow<'static, str>>,
        id: IncidentId,
        detail: String,
    ) -> Result<(), Error> {
        let t = self.cached(tenant).await?;
        let mut e: Event = self.event(caller, tenant, Some(&t), action, Outcome::Allowed);
        e.reason = Some(format!("incident {id}: {detail}"));
        self.audit(vec![e]).await
    }

    /// Opens an incident (security responder, privacy officer).
    ///
    /// # Errors
    /// [`Error::Forbidden`], [`Error::Invalid`].
    pub async fn open_incident(
        &self,
        caller: &Caller,
        new: NewIncident,
    ) -> Result<Incident, Error> {
        let tenant = handler(caller)?;
        if new.title.trim().is_empty() || new.title.chars().count() > 300 {
            return Err(Error::invalid("title", "between_1_and_300_chars"));
        }
        if !matches!(
            new.severity.as_str(),
            "low" | "medium" | "high" | "critical"
        ) {
            return Err(Error::invalid("severity", "low_medium_high_or_critical"));
        }
        if let (Some(a), Some(b)) = (new.scope.from_ms, new.scope.to_ms)
            && a > b
        {
            return Err(Error::invalid("scope.to_ms", "after_from_ms"));
        }
        let actor = caller.principal.id.to_string();
        let now = now_ms();
        let i = Incident {
            id: IncidentId::generate(),
            title: new.title.trim().to_owned(),
            description: new.description,
            detected_at: new.detected_at,
            severity: new.severity,
            cause: new.cause,
            scope: new.scope,
            state: "open".into(),
            owner: actor.clone(),
            created_by: actor.clone(),
            timeline: vec![TimelineEntry {
                at_ms: now,
                actor,
                action: "opened".into(),
                detail: String::new(),
            }],
            notice_plan: None,
            deadlines: Vec::new(),
        };
        self.st("create_incident")
            .create_incident(&to_row(tenant, &i, 1, now)?)
            .await?;
        self.incident_event(caller, tenant, "incident.open", i.id, i.severity.clone())
            .await?;
        Ok(i)
    }

    /// The tenant's incidents.
    ///
    /// # Errors
    /// [`Error::Forbidden`].
    pub async fn incidents(&self, caller: &Caller) -> Result<Vec<Incident>, Error> {
        let tenant = handler(caller)?;
        let clocks = self.cached(tenant).await?.settings.incident_clocks.clone();
        let now = now_ms();
        self.st("incidents")
            .incidents(tenant)
            .await?
            .iter()
            .map(|r| Ok(with_clocks(from_row(r)?, &clocks, now)))
            .collect()
    }

    /// Publishes every open incident's clocks as metrics and raises one alert per overdue
    /// clock (the periodic job calls it).
    ///
    /// # Errors
    /// Store errors.
    pub async fn incident_clocks(&self) -> Result<usize, Error> {
        let now = now_ms();
        let mut raised = 0;
        for t in self.st("tenants").tenants().await? {
            let clocks = self.cached(t.id).await?.settings.incident_clocks.clone();
            for row in self.st("incidents").incidents(t.id).await? {
                let i = with_clocks(from_row(&row)?, &clocks, now);
                if i.state == "closed" {
                    continue;
                }
                for d in &i.deadlines {
                    metrics::gauge!("boveda_incident_deadline_remaining_seconds", "tenant" => t.id.to_string(), "incident" => i.id.to_string(), "clock" => d.name.clone())
                        .set(d.remaining_ms as f64 / 1000.0);
                    let marker = format!("deadline.overdue.{}", d.name);
                    if !d.overdue || i.timeline.iter().any(|e| e.action == marker) {
                        continue;
                    }
                    self.st("add_alert")
                        .add_alert(&boveda_store::AlertRow {
                            tenant: t.id,
                            id: boveda_store::AlertId::generate(),
                            kind: "incident_deadline".into(),
                            principal: i.owner.clone(),
                            at_ms: now,
                            events: "[]".into(),
                            detail: format!("incident {}: the {} clock ran out", i.id, d.name),
                            state: "open".into(),
                            updated_at: now,
                        })
                        .await?;
                    self.note_on_timeline(t.id, i.id, &marker).await?;
                    raised += 1;
                }
            }
        }
        Ok(raised)
    }

    /// Adds a system entry to an incident's timeline (compare-and-swap).
    async fn note_on_timeline(
        &self,
        tenant: TenantId,
        id: IncidentId,
        action: &str,
    ) -> Result<(), Error> {
        for _ in 0..8 {
            let Some(row) = self.st("incident").incident(tenant, id).await? else {
                return Ok(());
            };
            let mut i = from_row(&row)?;
            i.timeline.push(TimelineEntry {
                at_ms: now_ms(),
                actor: "boveda".into(),
                action: action.to_owned(),
                detail: String::new(),
            });
            if self
                .st("update_incident")
                .update_incident(
                    &to_row(tenant, &i, row.version + 1, row.created_at)?,
                    row.version,
                )
                .await?
            {
                return Ok(());
            }
        }
        Err(Error::Conflict(
            "the incident changed concurrently; retry".into(),
        ))
    }

    /// One incident.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Forbidden`].
    pub async fn incident(&self, caller: &Caller, id: IncidentId) -> Result<Incident, Error> {
        let tenant = handler(caller)?;
        let row = self
            .st("incident")
            .incident(tenant, id)
            .await?
            .ok_or(Error::NotFound("incident"))?;
        let clocks = self.cached(tenant).await?.settings.incident_clocks.clone();
        Ok(with_clocks(from_row(&row)?, &clocks, now_ms()))
    }

    /// Applies a change to an incident with compare-and-swap and a timeline entry.
    pub(crate) async fn change_incident(
        &self,
        caller: &Caller,
        id: IncidentId,
        action: &str,
        detail: String,
        change: impl Fn(&mut Incident) -> Result<(), Error>,
    ) -> Result<Incident, Error> {
        let tenant = handler(caller)?;
        for _ in 0..8 {
            let row = self
                .st("incident")
                .incident(tenant, id)
                .await?
                .ok_or(Error::NotFound("incident"))?;
            let mut i = from_row(&row)?;
            change(&mut i)?;
            i.timeline.push(TimelineEntry {
                at_ms: now_ms(),
                actor: caller.principal.id.to_string(),
                action: action.to_owned(),
                detail: detail.clone(),
            });
            if self
                .st("update_incident")
                .update_incident(
                    &to_row(tenant, &i, row.version + 1, row.created_at)?,
                    row.version,
                )
                .await?
            {
                self.incident_event(caller, tenant, format!("incident.{action}"), id, detail)
                    .await?;
                return Ok(i);
            }
        }
        Err(Error::Conflict(
            "the incident changed concurrently; retry".into(),
        ))
    }

    /// Moves an incident forward: open → contained → notifying → closed (closing is allowed
    /// from any state).
    ///
    /// # Errors
    /// [`Error::Conflict`] for a step backwards or sideways.
    pub async fn set_incident_state(
        &self,
        caller: &Caller,
        id: IncidentId,
        state: &str,
    ) -> Result<Incident, Error> {
        const ORDER: [&str; 4] = ["open", "contained", "notifying", "closed"];
        let to = ORDER
            .iter()
            .position(|s| *s == state)
            .ok_or_else(|| Error::invalid("state", "open_contained_notifying_or_closed"))?;
        self.change_incident(caller, id, &format!("state.{state}"), String::new(), |i| {
            let from = ORDER.iter().position(|s| *s == i.state).unwrap_or(0);
            if to == from + 1 || (state == "closed" && from < 3) {
                i.state = state.to_owned();
                Ok(())
            } else {
                Err(Error::Conflict(format!(
                    "an incident in state `{}` cannot move to `{state}`",
                    i.state
                )))
            }
        })
        .await
    }

    /// Runs one containment action and records it on the timeline.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown incident or principal, [`Error::Forbidden`].
    pub async fn contain(
        &self,
        caller: &Caller,
        id: IncidentId,
        action: Containment,
    ) -> Result<Incident, Error> {
        let tenant = handler(caller)?;
        self.st("incident")
            .incident(tenant, id)
            .await?
            .ok_or(Error::NotFound("incident"))?;
        let (name, detail) = match &action {
            Containment::RevokePrincipal { principal_id } => {
                let n = self
                    .contain_principal(tenant, *principal_id, false, false)
                    .await?;
                (
                    "contain.revoke_principal",
                    format!("principal {principal_id}: {n}"),
                )
            }
            Containment::ForcePasswordReset { principal_id } => {
                let n = self
                    .contain_principal(tenant, *principal_id, true, false)
                    .await?;
                (
                    "contain.force_password_reset",
                    format!("principal {principal_id}: {n}"),
                )
            }
            Containment::SuspendPrincipal { principal_id } => {
                let n = self
                    .contain_principal(tenant, *principal_id, false, true)
                    .await?;
                (
                    "contain.suspend_principal",
                    format!("principal {principal_id}: {n}"),
                )
            }
            Containment::RotateKeys => {
                let s = self.rotate_tenant_keys(tenant).await?;
                (
                    "contain.rotate_keys",
                    format!("new key version {}", s.active_version),
                )
            }
            Containment::FreezeTenant => {
                let mut settings = self.cached(tenant).await?.settings.clone();
                settings.frozen = true;
                self.put_settings(tenant, settings).await?;
                ("contain.freeze_tenant", "data calls frozen".to_owned())
            }
        };
        self.forget_principals();
        self.change_incident(caller, id, name, detail, |_| Ok(()))
            .await
    }

    /// Revokes (and optionally forces a reset of, or suspends) a principal of the tenant.
    async fn contain_principal(
        &self,
        tenant: TenantId,
        id: PrincipalId,
        force_reset: bool,
        suspend: bool,
    ) -> Result<String, Error> {
        if self.st("user").user(tenant, id).await?.is_some() {
            let n = self
                .st("revoke_sessions")
                .revoke_sessions(tenant, id)
                .await?;
            if force_reset || suspend {
                self.set_user_flags(tenant, id, force_reset, suspend)
                    .await?;
            }
            return Ok(format!("{n} sessions revoked"));
        }
        if self
            .st("disable_principal")
            .disable_principal(tenant, id)
            .await?
        {
            return Ok("API key disabled".to_owned());
        }
        Err(Error::NotFound("principal"))
    }

    /// Who and what an incident exposed, from the audit log: every allowed read or search by a
    /// principal in scope (or anyone, for a tenant-wide scope) within the window. The result is
    /// kept a minute for paging (the same snapshot for every page); `fresh` reads the log anew.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Forbidden`].
    pub async fn blast_radius(
        &self,
        caller: &Caller,
        id: IncidentId,
        fresh: bool,
    ) -> Result<Arc<BlastRadius>, Error> {
        let tenant = handler(caller)?;
        let row = self
            .st("incident")
            .incident(tenant, id)
            .await?
            .ok_or(Error::NotFound("incident"))?;
        let key = (tenant, id, row.version);
        if !fresh
            && let Ok(cache) = self.inner.radius.lock()
            && let Some(c) = cache.as_ref()
            && c.key == key
            && c.at.elapsed() < RADIUS_TTL
        {
            return Ok(Arc::clone(&c.radius));
        }
        let radius = Arc::new(self.compute_blast_radius(tenant, &row).await?);
        if let Ok(mut cache) = self.inner.radius.lock() {
            *cache = Some(RadiusCache {
                key,
                at: std::time::Instant::now(),
                radius: Arc::clone(&radius),
            });
        }
        Ok(radius)
    }

    /// The blast radius read from the log now (the notice plan wants it fresh).
    pub(crate) async fn compute_blast_radius(
        &self,
        tenant: TenantId,
        row: &IncidentRow,
    ) -> Result<BlastRadius, Error> {
        let incident = from_row(row)?;
        let scope = &incident.scope;
        let t = self.cached(tenant).await?;
        let principals: Vec<Option<String>> = if scope.tenant || scope.principals.is_empty() {
            vec![None]
        } else {
            scope
                .principals
                .iter()
                .map(|p| Some(p.to_string()))
                .collect()
        };
        let mut per: HashMap<[u8; 32], Acc> = HashMap::new();
        let mut names = Names::default();
        let mut examined = 0u64;
        // The log in slices of sequence numbers, fetched in parallel (pages of 10,000 events)
        // while this task counts: the order of events does not change the result.
        let head = self
            .st("audit_head")
            .audit_head(tenant)
            .await?
            .map_or(0, |h| h.0);
        let slices = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)) as u64;
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<Result<Vec<StoredEvent>, Error>>(slices as usize);
        // One task per slice, each over every principal in scope: as many store calls at once
        // as there are slices, whatever the scope.
        let mut fetchers = tokio::task::JoinSet::new();
        for k in 0..slices {
            let (vault, tx, principals) = (self.clone(), tx.clone(), principals.clone());
            let (from_ms, to_ms) = (scope.from_ms, scope.to_ms);
            fetchers.spawn(async move {
                for principal in principals {
                    let filter = AuditFilter {
                        from_ms,
                        to_ms,
                        principal,
                        outcome: Some("allowed".into()),
                        to_seq: Some(head * (k + 1) / slices),
                        ..AuditFilter::default()
                    };
                    let mut after = head * k / slices;
                    loop {
                        let page = vault
                            .st("audit_events")
                            .audit_events(tenant, &filter, after, 10_000)
                            .await;
                        match page {
                            Ok(page) => {
                                let Some(last) = page.last() else { break };
                                after = last.seq;
                                if tx.send(Ok(page)).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e.into())).await;
                                return;
                            }
                        }
                    }
                }
            });
        }
        drop(tx);
        let mut touched: Vec<(u16, Option<(u16, u16)>)> = Vec::new();
        while let Some(page) = rx.recv().await {
            for s in &page? {
                examined += 1;
                let e = Event::decode(&s.encoded).map_err(|_| Error::Integrity("audit event"))?;
                // Reads, searches, and vault tokens of a subject turned back into values.
                if !matches!(
                    &*e.action,
                    "record.read" | "record.search" | "token.detokenize"
                ) {
                    continue;
                }
                let Some(collection) = &e.collection else {
                    continue;
                };
                if !scope.collections.is_empty() && !scope.collections.contains(collection) {
                    continue;
                }
                let spec = t.collections.get(collection);
                let view = e.view.as_deref().unwrap_or_default();
                let view_id = names.id(view);
                touched.clear();
                for f in &e.fields {
                    let field = names.field(collection, f);
                    let class = spec
                        .and_then(|s| s.fields.get(f))
                        .map(|fs| (names.id(fs.category.as_str()), names.id(fs.grade.as_str())));
                    touched.push((field, class));
                }
                for subject in &e.subjects {
                    let x = per
                        .entry(*subject)
                        .or_insert_with(|| Acc::new(None, "masked", e.at_ms));
                    x.first_ms = x.first_ms.min(e.at_ms);
                    x.last_ms = x.last_ms.max(e.at_ms);
                    add(&mut x.views, view_id);
                    if view == "plain" {
                        x.exposure = "clear";
                    }
                    for (field, class) in &touched {
                        add(&mut x.fields, *field);
                        if let Some((cat, grade)) = class {
                            add(&mut x.grades, *grade);
                            match x.counts.iter_mut().find(|(c, _)| c == cat) {
                                Some((_, n)) => *n += 1,
                                None => x.counts.push((*cat, 1)),
                            }
                        }
                    }
                }
            }
        }
        // A fetcher that panicked dropped its sender early: the count would be short.
        while let Some(done) = fetchers.join_next().await {
            done.map_err(|_| Error::Internal("blast radius: a log reader failed"))?;
        }
        // Subjects whose keys a compromised KEK version wraps: their ciphertext may be opened
        // by whoever holds that version and a copy of the data.
        if !scope.key_versions.is_empty() {
            let mut after = None;
            loop {
                let ids = self
                    .st("subject_ids")
                    .subject_ids(tenant, after, 10_000)
                    .await?;
                let Some(last) = ids.last().copied() else {
                    break;
                };
                after = Some(last);
                let keys = self.st("subject_keys").subject_keys(tenant, &ids).await?;
                for k in keys
                    .iter()
                    .filter(|k| scope.key_versions.contains(&k.kek_version))
                {
                    let p = Self::subjects(&t, &[k.subject])[0];
                    per.entry(p).or_insert_with(|| {
                        Acc::new(Some(k.subject), "ciphertext_only", incident.detected_at)
                    });
                }
            }
        }
        // Resolve pseudonyms to subject ids for the notice plan (erased subjects stay unknown).
        let mut after = None;
        loop {
            let ids = self
                .st("subject_ids")
                .subject_ids(tenant, after, 10_000)
                .await?;
            let Some(last) = ids.last().copied() else {
                break;
            };
            after = Some(last);
            for (id, p) in ids.iter().zip(Self::subjects_in_order(&t, &ids)) {
                if let Some(x) = per.get_mut(&p) {
                    x.subject_id = Some(*id);
                }
            }
        }
        // Names are shared: a million subjects touch a handful of fields, views and grades.
        let name = |ids: &[u16]| -> Vec<Arc<str>> {
            let mut v: Vec<Arc<str>> = ids
                .iter()
                .map(|i| Arc::clone(&names.list[usize::from(*i)]))
                .collect();
            v.sort_unstable();
            v
        };
        // Sorted by first exposure, then pseudonym (bytes sort as their hex does).
        let mut per: Vec<([u8; 32], Acc)> = per.into_iter().collect();
        per.sort_unstable_by(|a, b| a.1.first_ms.cmp(&b.1.first_ms).then(a.0.cmp(&b.0)));
        let mut per_category = vec![0u64; names.list.len()];
        let subjects: Vec<SubjectExposure> = per
            .into_iter()
            .map(|(p, x)| {
                let mut counts: Vec<(Arc<str>, u64)> = x
                    .counts
                    .iter()
                    .map(|(c, n)| {
                        per_category[usize::from(*c)] += 1;
                        (Arc::clone(&names.list[usize::from(*c)]), *n)
                    })
                    .collect();
                counts.sort_unstable();
                SubjectExposure {
                    subject_id: x.subject_id,
                    pseudonym: hex::encode(p),
                    exposure: x.exposure,
                    categories: counts.iter().map(|(c, _)| Arc::clone(c)).collect(),
                    fields: name(&x.fields),
                    grades: name(&x.grades),
                    views: name(&x.views),
                    counts,
                    first_ms: x.first_ms,
                    last_ms: x.last_ms,
                }
            })
            .collect();
        let by_category: BTreeMap<String, u64> = per_category
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (names.list[i].to_string(), *n))
            .collect();
        let count = |e: &str| subjects.iter().filter(|s| s.exposure == e).count() as u64;
        Ok(BlastRadius {
            clear: count("clear"),
            masked_only: count("masked"),
            ciphertext_only: count("ciphertext_only"),
            by_category,
            events_examined: examined,
            subjects,
            as_of_seq: head,
            computed_at_ms: now_ms(),
        })
    }
}

/// One subject's exposure while the audit log is read: names as interned ids, in small sorted
/// vectors (a subject is touched by many events, with few distinct fields and views).
struct Acc {
    subject_id: Option<SubjectId>,
    exposure: &'static str,
    fields: Vec<u16>,
    grades: Vec<u16>,
    views: Vec<u16>,
    counts: Vec<(u16, u64)>,
    first_ms: i64,
    last_ms: i64,
}

impl Acc {
    fn new(subject_id: Option<SubjectId>, exposure: &'static str, at_ms: i64) -> Self {
        Self {
            subject_id,
            exposure,
            fields: Vec::new(),
            grades: Vec::new(),
            views: Vec::new(),
            counts: Vec::new(),
            first_ms: at_ms,
            last_ms: at_ms,
        }
    }
}

fn add(set: &mut Vec<u16>, id: u16) {
    if let Err(i) = set.binary_search(&id) {
        set.insert(i, id);
    }
}

/// Names met in one computation, each with a small id.
#[derive(Default)]
struct Names {
    list: Vec<Arc<str>>,
    ids: HashMap<String, u16>,
    key: String,
}

impl Names {
    fn id(&mut self, name: &str) -> u16 {
        if let Some(i) = self.ids.get(name) {
            return *i;
        }
        let i = u16::try_from(self.list.len()).unwrap_or(u16::MAX);
        self.list.push(Arc::from(name));
        self.ids.insert(name.to_owned(), i);
        i
    }

    /// The id of `collection.field`.
    fn field(&mut self, collection: &str, field: &str) -> u16 {
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        key.push_str(collection);
        key.push('.');
        key.push_str(field);
        let i = self.id(&key);
        self.key = key;
        i
    }
}

/// Serializes `(key, value)` pairs as a JSON object.
fn as_map<S: serde::Serializer>(pairs: &[(Arc<str>, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}
