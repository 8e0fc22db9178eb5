//! Access decisions in data calls: the tenant's policy (crate `boveda-policy`) over the caller's
//! roles, the action, each field's labels, the purpose and the caller's context, then the
//! service account's own cap. Also the policy document itself: show, apply, explain.

use crate::principal::{Caller, PrincipalKind};
use crate::schema::CollectionSpec;
use crate::vault::{TenantCache, Vault, now_ms};
use crate::{Error, View};
use boveda_policy::{
    Action, Category, CompiledPolicy, Context, Decision, Grade, Missing, Policy, Request,
    ResourceLabels,
};
use boveda_store::{PolicyRow, PrincipalId, SubjectId, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The policy a tenant starts with until it applies its own: service accounts keep full access
/// (bounded by their scopes and view cap), support agents see contact data masked for customer
/// support, analysts count and search low grades masked, the privacy officer handles data
/// subject requests in clear after a fresh MFA check; all staff access needs eligibility.
pub const DEFAULT_POLICY: &str = r#"
[[rules]]
id = "service-accounts"
effect = "allow"
roles = ["service"]
actions = ["*"]
resources = ["*"]
purposes = ["*"]
view = "plain"

[[rules]]
id = "support-masked"
effect = "allow"
roles = ["support_agent"]
actions = ["read", "search"]
resources = ["*"]
purposes = ["customer_support"]
view = "masked"
conditions = { eligibility = true }

[[rules]]
id = "analyst-low-grades"
effect = "allow"
roles = ["analyst"]
actions = ["search"]
resources = [{ grade = "L1" }, { grade = "L2" }]
purposes = ["analytics"]
view = "masked"
conditions = { eligibility = true }

[[rules]]
id = "privacy-officer-requests"
effect = "allow"
roles = ["privacy_officer"]
actions = ["read", "search", "erase", "export"]
resources = ["*"]
purposes = ["data_subject_request", "legal_obligation"]
view = "plain"
conditions = { eligibility = true, mfa_within_minutes = 15 }
"#;

/// A tenant's current policy.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    /// The vault's version of the document (0 for the built-in default).
    pub version: i64,
    /// Who applied it.
    pub applied_by: Option<String>,
    /// The document.
    pub policy: Policy,
}

/// A request to explain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// A staff user of the tenant whose roles and eligibility to use.
    #[serde(default)]
    pub user_id: Option<PrincipalId>,
    /// Roles to use instead of a user's.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The action.
    pub action: Action,
    /// The collection.
    pub collection: String,
    /// A field of it; omitted for the collection as a whole (its highest grade).
    #[serde(default)]
    pub field: Option<String>,
    /// The purpose.
    pub purpose: String,
    /// Minutes since the last MFA check (default: none).
    #[serde(default)]
    pub mfa_age_minutes: Option<u32>,
    /// UTC hour to decide at (default: now).
    #[serde(default)]
    pub hour_utc: Option<u8>,
}

/// Why a request would be allowed or refused.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The decision, with the rule and missing conditions.
    #[serde(flatten)]
    pub decision: Decision,
    /// The policy version that decided.
    pub policy_version: i64,
    /// The roles used.
    pub roles: Vec<String>,
}

/// Parses the stored or built-in policy.
pub(crate) fn load_policy(row: Option<&PolicyRow>) -> Result<(i64, Policy, CompiledPolicy), Error> {
    let (version, policy) = match row {
        Some(r) => (
            r.version,
            Policy::parse_json(&r.document).map_err(|_| Error::Integrity("stored policy"))?,
        ),
        None => (
            0,
            Policy::parse_toml(DEFAULT_POLICY).map_err(|_| Error::Internal("default policy"))?,
        ),
    };
    let compiled = policy.compile();
    Ok((version, policy, compiled))
}

fn describe(missing: &[Missing]) -> Vec<String> {
    missing
        .iter()
        .map(|m| match m {
            Missing::Mfa { within_minutes } => {
                format!("an MFA check within {within_minutes} minutes (step up)")
            }
            Missing::Agreement => "a current confidentiality agreement".to_owned(),
            Missing::Training => "current training".to_owned(),
            Missing::Hours { from, to } => format!("a time between {from}:00 and {to}:00 UTC"),
            Missing::SubjectLimit { max_per_day } => {
                format!("fewer than {max_per_day} distinct subjects today")
            }
        })
        .collect()
}

fn denial(d: &Decision) -> Error {
    match d {
        Decision::Deny { rule, missing } => Error::Denied {
            rule: rule.clone(),
            missing: describe(missing),
            step_up: actionable(d) == 2,
        },
        Decision::Allow { .. } => Error::Internal("denial of an allow"),
    }
}

/// How much a denial tells the caller: 2 when only a fresh MFA check is missing, 1 when some
/// condition is, 0 when no rule would allow.
fn actionable(d: &Decision) -> u8 {
    match d {
        Decision::Deny { missing, .. } if missing.is_empty() => 0,
        Decision::Deny { missing, .. }
            if missing.iter().all(|m| matches!(m, Missing::Mfa { .. })) =>
        {
            2
        }
        Decision::Deny { .. } => 1,
        Decision::Allow { .. } => 0,
    }
}

fn hour_utc(now_ms: i64) -> u8 {
    (now_ms.div_euclid(3_600_000).rem_euclid(24)) as u8
}

/// The labels of a whole collection: its highest grade and that field's category.
fn collection_labels(spec: &CollectionSpec) -> (Grade, Category) {
    spec.fields
        .values()
        .max_by_key(|f| f.grade)
        .map_or((Grade::L4, Category::Other), |f| (f.grade, f.category))
}

impl Vault {
    /// The facts of a decision for this caller.
    async fn context(
        &self,
        caller: &Caller,
        tenant: TenantId,
        t: &TenantCache,
        subjects: &[SubjectId],
    ) -> Result<Context, Error> {
        let now = now_ms();
        let staff = caller.principal.staff.as_ref();
        let subjects_today = if t.subject_limits && !subjects.is_empty() {
            let day = now.div_euclid(86_400_000);
            let n = self
                .st("note_subject_access")
                .note_subject_access(tenant, caller.principal.id, day, subjects)
                .await?;
            u32::try_from(n).unwrap_or(u32::MAX)
        } else {
            0
        };
        Ok(Context {
            hour_utc: hour_utc(now),
            mfa_age_minutes: staff
                .map(|s| u32::try_from((now - s.mfa_at_ms).max(0) / 60_000).unwrap_or(u32::MAX)),
            // Eligibility is a staff notion; programs are bound by scopes instead.
            agreement_current: staff.is_none_or(|s| s.agreement_current),
            training_current: staff.is_none_or(|s| s.training_current),
            subjects_today,
        })
    }

    /// Decides an action on a collection for a caller, field by field. Returns each allowed
    /// field with its view cap (already bounded by the caller's own cap); refuses when no field
    /// is allowed, or when `all` is set and any field is refused.
    #[allow(clippy::too_many_arguments)] // the decision's facts; a struct would only rename them
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        tenant: TenantId,
        t: &TenantCache,
        collection: &str,
        spec: &CollectionSpec,
        action: Action,
        purpose: &str,
        fields: Option<&[&str]>,
        subjects: &[SubjectId],
        all: bool,
    ) -> Result<BTreeMap<String, View>, Error> {
        let ctx = self.context(caller, tenant, t, subjects).await?;
        let roles = &caller.principal.grants.roles;
        let mut allowed = BTreeMap::new();
        let mut first_denial = None;
        for (name, f) in &spec.fields {
            if fields.is_some_and(|fs| !fs.contains(&name.as_str())) {
                continue;
            }
            let labels = ResourceLabels {
                collection,
                field: Some(name),
                grade: f.grade,
                category: f.category,
            };
            let d = t.policy.decide(&Request {
                roles: roles.as_slice(),
                action,
                resource: &labels,
                purpose,
                context: &ctx,
            });
            match d.view() {
                Some(v) => {
                    allowed.insert(name.clone(), v.min(caller.principal.grants.max_view));
                }
                None => {
                    if all {
                        return Err(self
                            .refuse(caller, tenant, t, collection, action, purpose, subjects, &d)
                            .await);
                    }
                    // Report the most actionable denial: a fresh MFA check alone, then
                    // any missing condition, then the first.
                    if first_denial
                        .as_ref()
                        .is_none_or(|f| actionable(&d) > actionable(f))
                    {
                        first_denial = Some(d);
                    }
                }
            }
        }
        if allowed.is_empty() {
            let d = first_denial.unwrap_or(Decision::Deny {
                rule: None,
                missing: Vec::new(),
            });
            return Err(self
                .refuse(caller, tenant, t, collection, action, purpose, subjects, &d)
                .await);
        }
        Ok(allowed)
    }

    /// Decides an action that spans every collection (erasing a subject, detokenizing): it
    /// needs an allow for the most sensitive labels. Returns the view cap granted, bounded by
    /// the caller's own.
    pub(crate) async fn authorize_tenant_wide(
        &self,
        caller: &Caller,
        tenant: TenantId,
        t: &TenantCache,
        action: Action,
        purpose: &str,
        subjects: &[SubjectId],
    ) -> Result<View, Error> {
        let ctx = self.context(caller, tenant, t, subjects).await?;
        let labels = ResourceLabels {
            collection: "*",
            field: None,
            grade: Grade::L4,
            category: Category::Identity,
        };
        let d = t.policy.decide(&Request {
            roles: caller.principal.grants.roles.as_slice(),
            action,
            resource: &labels,
            purpose,
            context: &ctx,
        });
        match d.view() {
            Some(v) => Ok(v.min(caller.principal.grants.max_view)),
            None => Err(self
                .refuse(caller, tenant, t, "*", action, purpose, subjects, &d)
                .await),
        }
    }

    /// Records a refusal in the audit log and returns the error to answer with. If the refusal
    /// cannot be recorded, the answer is that the journal is unavailable.
    #[allow(clippy::too_many_arguments)] // the facts of one refusal
    async fn refuse(
        &self,
        caller: &Caller,
        tenant: TenantId,
        t: &TenantCache,
        collection: &str,
        action: Action,
        purpose: &str,
        subjects: &[SubjectId],
        d: &Decision,
    ) -> Error {
        let mut e = self.event(
            caller,
            tenant,
            Some(t),
            format!("record.{}", action.as_str()),
            boveda_audit::Outcome::Denied,
        );
        e.collection = (collection != "*").then(|| collection.to_owned());
        e.subjects = Self::subjects(t, subjects);
        e.purpose = Some(purpose.to_owned());
        e.reason = Some(match d {
            Decision::Deny { rule: Some(r), .. } => format!("rule {r}"),
            _ => "no rule allows".to_owned(),
        });
        if let Err(err) = self.audit(vec![e]).await {
            return err;
        }
        denial(d)
    }

    fn policy_reader(caller: &Caller) -> Result<TenantId, Error> {
        let p = &caller.principal;
        if p.kind == PrincipalKind::Staff
            && (p.has_role("privacy_officer")
                || p.has_role("tenant_admin")
                || p.has_role("auditor"))
        {
            return p.tenant.ok_or(Error::Internal("staff without tenant"));
        }
        Self::admin_of(caller)
    }

    /// The tenant's current policy (tenant admin, privacy officer, auditor, admin scope).
    ///
    /// # Errors
    /// [`Error::Forbidden`].
    pub async fn policy(&self, caller: &Caller) -> Result<PolicyView, Error> {
        let tenant = Self::policy_reader(caller)?;
        let row = self.st("policy").policy(tenant).await?;
        let (version, policy, _) = load_policy(row.as_ref())?;
        Ok(PolicyView {
            version,
            applied_by: row.map(|r| r.created_by),
            policy,
        })
    }

    /// Applies a new policy version (tenant admin or admin scope); it decides from the next
    /// call on this node, and within the cache TTL on others.
    ///
    /// # Errors
    /// [`Error::Forbidden`], [`Error::Invalid`] when the document does not validate.
    pub async fn apply_policy(&self, caller: &Caller, policy: Policy) -> Result<PolicyView, Error> {
        let tenant = Self::admin_of(caller)?;
        policy
            .validate()
            .map_err(|e| Error::PolicyDocument(e.to_string()))?;
        let document =
            serde_json::to_string(&policy).map_err(|_| Error::Internal("policy encoding"))?;
        for _ in 0..4 {
            let version = self
                .st("policy")
                .policy(tenant)
                .await?
                .map_or(1, |r| r.version + 1);
            let row = PolicyRow {
                tenant,
                version,
                document: document.clone(),
                created_by: caller.principal.id.to_string(),
                created_at: now_ms(),
            };
            match self.st("put_policy").put_policy(&row).await {
                Ok(()) => {
                    self.forget(tenant);
                    self.admin_event(
                        caller,
                        tenant,
                        "policy.change",
                        Some(format!("version {version}")),
                    )
                    .await?;
                    return Ok(PolicyView {
                        version,
                        applied_by: Some(row.created_by),
                        policy,
                    });
                }
                Err(boveda_store::Error::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict(
            "another policy was applied at the same time; retry".into(),
        ))
    }

    /// Says whether a request would be allowed, by which rule, and what is missing.
    ///
    /// # Errors
    /// [`Error::Forbidden`], [`Error::NotFound`] for an unknown user or collection.
    pub async fn explain(
        &self,
        caller: &Caller,
        req: ExplainRequest,
    ) -> Result<Explanation, Error> {
        let tenant = Self::policy_reader(caller)?;
        let t = self.cached(tenant).await?;
        let spec = t
            .collections
            .get(&req.collection)
            .cloned()
            .ok_or(Error::NotFound("collection"))?;
        let (grade, category) = match &req.field {
            Some(f) => {
                let fs = spec.fields.get(f).ok_or(Error::NotFound("field"))?;
                (fs.grade, fs.category)
            }
            None => collection_labels(&spec),
        };
        let (roles, agreement, training) = match (req.user_id, req.roles) {
            (Some(u), _) => self.user_facts(tenant, u).await?,
            (None, Some(r)) => (r, true, true),
            (None, None) => return Err(Error::invalid("user_id", "user_id_or_roles_required")),
        };
        let ctx = Context {
            hour_utc: req.hour_utc.unwrap_or_else(|| hour_utc(now_ms())).min(23),
            mfa_age_minutes: req.mfa_age_minutes,
            agreement_current: agreement,
            training_current: training,
            subjects_today: 0,
        };
        let labels = ResourceLabels {
            collection: &req.collection,
            field: req.field.as_deref(),
            grade,
            category,
        };
        let decision = t.policy.decide(&Request {
            roles: roles.as_slice(),
            action: req.action,
            resource: &labels,
            purpose: &req.purpose,
            context: &ctx,
        });
        Ok(Explanation {
            decision,
            policy_version: t.policy_version,
            roles,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_default_policy_parses_and_keeps_support_masked() {
        let (v, _, compiled) = load_policy(None).unwrap();
        assert_eq!(v, 0);
        let labels = ResourceLabels {
            collection: "customers",
            field: Some("phone"),
            grade: Grade::L3,
            category: Category::Contact,
        };
        let ctx = Context {
            hour_utc: 3,
            mfa_age_minutes: Some(0),
            agreement_current: true,
            training_current: true,
            subjects_today: 1,
        };
        let d = compiled.decide(&Request {
            roles: &["support_agent"],
            action: Action::Read,
            resource: &labels,
            purpose: "customer_support",
            context: &ctx,
        });
        assert_eq!(d.view(), Some(View::Masked));
        let d = compiled.decide(&Request {
            roles: &["support_agent"],
            action: Action::Read,
            resource: &labels,
            purpose: "marketing",
            context: &ctx,
        });
        assert!(!d.is_allow());
        let d = compiled.decide(&Request {
            roles: &["service"],
            action: Action::Erase,
            resource: &labels,
            purpose: "x",
            context: &Context::default(),
        });
        assert_eq!(d.view(), Some(View::Plain));
    }
}
