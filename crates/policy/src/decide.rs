//! Decisions: a compiled policy and the pure function from a request to allow or deny.
//!
//! The semantics, in one place (DESIGN.md §6):
//!
//! - A rule's *scope* matches when one of the caller's roles, the action, one of its resources
//!   and the purpose all match.
//! - **Default deny.** With no applicable allow rule the answer is [`Decision::Deny`] with no
//!   rule; `missing` lists the conditions that kept scope-matching allow rules from applying.
//! - **Deny wins.** A deny rule applies when its scope matches and any of its conditions fails
//!   (a deny without conditions always applies). An applicable deny refuses whatever allows.
//! - An allow rule applies when its scope matches and all its conditions hold.
//! - When several allow rules apply, the **most permissive** cap among them is granted: each
//!   allow rule is a grant on its own, so a narrower grant must never shrink a wider one. To
//!   narrow a view for everyone, write the wider rule narrower; to forbid, write a deny.
//! - The caller chooses a view up to the cap ([`effective_view`]).
//!
//! This module does no I/O, keeps no clock and never logs: the caller supplies the context.

use crate::document::{ANY, Conditions, Effect, Policy, Resource};
use crate::{Action, Category, Grade, View};
use serde::Serialize;
use std::collections::HashMap;

/// The labels of what a request touches. For an operation on a whole record or collection the
/// caller passes `field: None` and the highest grade (and its category) among the fields
/// involved, so that a grade or category rule still sees the most sensitive part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLabels<'a> {
    /// Collection name.
    pub collection: &'a str,
    /// Field name, or `None` for the collection or record as a whole.
    pub field: Option<&'a str>,
    /// The field's grade.
    pub grade: Grade,
    /// The field's category.
    pub category: Category,
}

/// Facts about the caller at the time of the request, gathered by the vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context {
    /// The current hour, UTC, 0–23.
    pub hour_utc: u8,
    /// Minutes since the session's last MFA check; `None` when it never had one.
    pub mfa_age_minutes: Option<u32>,
    /// A confidentiality agreement is signed and not expired.
    pub agreement_current: bool,
    /// Required training is completed and not expired.
    pub training_current: bool,
    /// Distinct subjects the caller has touched today (UTC), counting this request's subject.
    pub subjects_today: u32,
}

/// One request to decide. `R` is the caller's role name type: `&str` or `String`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a, R: AsRef<str> = &'a str> {
    /// The caller's roles. With no roles nothing matches, not even `"*"`.
    pub roles: &'a [R],
    /// The action.
    pub action: Action,
    /// What is touched.
    pub resource: &'a ResourceLabels<'a>,
    /// The declared purpose.
    pub purpose: &'a str,
    /// Facts about the caller.
    pub context: &'a Context,
}

/// The outcome of a decision, as `explain` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Access granted up to `view`.
    Allow {
        /// The id of the allow rule that granted the cap (the first in document order among
        /// those granting the highest cap).
        rule: String,
        /// The most revealing view the caller may choose.
        view: View,
    },
    /// Access refused.
    Deny {
        /// The deny rule that refused (the first in document order), or `None` when no rule
        /// allowed (default deny).
        rule: Option<String>,
        /// Conditions that were not met: for a deny rule, its failed conditions; for a default
        /// deny, those that kept scope-matching allow rules from applying. Empty when no
        /// condition would change the outcome.
        missing: Vec<Missing>,
    },
}

impl Decision {
    /// Whether access was granted.
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The cap when allowed.
    pub fn view(&self) -> Option<View> {
        match self {
            Decision::Allow { view, .. } => Some(*view),
            Decision::Deny { .. } => None,
        }
    }
}

/// A condition that did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "condition", rename_all = "snake_case")]
pub enum Missing {
    /// An MFA check no older than `within_minutes` is needed (step-up).
    Mfa {
        /// The rule's limit.
        within_minutes: u32,
    },
    /// A current confidentiality agreement is needed.
    Agreement,
    /// Current training is needed.
    Training,
    /// The request is outside the allowed UTC hours.
    Hours {
        /// First hour inside the window.
        from: u8,
        /// First hour after the window.
        to: u8,
    },
    /// The caller has reached the daily limit of distinct subjects.
    SubjectLimit {
        /// The rule's limit.
        max_per_day: u32,
    },
}

/// The view actually served: what the caller asked for, never above the decision's cap. A
/// refusal yields [`View::Redacted`], the least revealing view; callers serve nothing on a deny.
pub fn effective_view(requested: View, decision: &Decision) -> View {
    match decision {
        Decision::Allow { view, .. } => requested.min(*view),
        Decision::Deny { .. } => View::Redacted,
    }
}

/// Decides `request` under `policy`; see the module documentation for the semantics.
pub fn decide<R: AsRef<str>>(policy: &CompiledPolicy, request: &Request<'_, R>) -> Decision {
    policy.decide(request)
}

/// A policy indexed for fast decisions: rules by action, then by role, with `"*"`-role rules
/// kept apart so every request scans only rules that could match its action and roles.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    version: Option<u64>,
    rules: Vec<CompiledRule>,
    /// Role name → slot in the per-action tables.
    roles: HashMap<Box<str>, usize>,
    /// Per action: rules whose roles include `"*"`, by ascending index.
    any_role: [Box<[u32]>; 8],
    /// Per action, per role slot: rules naming that role, by ascending index.
    by_role: [Box<[Box<[u32]>]>; 8],
}

#[derive(Debug, Clone)]
struct CompiledRule {
    id: String,
    deny: bool,
    cap: View,
    resources: Box<[CompiledResource]>,
    /// `None` when the rule accepts any purpose.
    purposes: Option<Box<[Box<str>]>>,
    conditions: Conditions,
}

#[derive(Debug, Clone)]
enum CompiledResource {
    Any,
    Collection(Box<str>),
    Field(Box<str>, Box<str>),
    Grade(Grade),
    GradeAtLeast(Grade),
    Category(Category),
}

// Failed conditions as bits, so the hot path never allocates.
const MISS_MFA: u8 = 1;
const MISS_AGREEMENT: u8 = 2;
const MISS_TRAINING: u8 = 4;
const MISS_HOURS: u8 = 8;
const MISS_SUBJECTS: u8 = 16;

impl Policy {
    /// Indexes the rules for [`decide`]. Call [`Policy::validate`] first on policies built in
    /// code; the parsers already have.
    pub fn compile(&self) -> CompiledPolicy {
        let mut roles: HashMap<Box<str>, usize> = HashMap::new();
        for rule in &self.rules {
            for role in &rule.roles {
                if role != ANY && !roles.contains_key(role.as_str()) {
                    let slot = roles.len();
                    roles.insert(role.as_str().into(), slot);
                }
            }
        }
        let mut any_role: [Vec<u32>; 8] = Default::default();
        let mut by_role: [Vec<Vec<u32>>; 8] = Default::default();
        for table in &mut by_role {
            *table = vec![Vec::new(); roles.len()];
        }
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            // A policy has far fewer than 2^32 rules; saturate rather than wrap if not.
            let idx = u32::try_from(i).unwrap_or(u32::MAX);
            for action in &rule.actions {
                let a = action.index();
                if rule.roles.iter().any(|r| r == ANY) {
                    push_once(&mut any_role[a], idx);
                } else {
                    for role in &rule.roles {
                        if let Some(&slot) = roles.get(role.as_str()) {
                            push_once(&mut by_role[a][slot], idx);
                        }
                    }
                }
            }
            let purposes = if rule.purposes.iter().any(|p| p == ANY) {
                None
            } else {
                Some(rule.purposes.iter().map(|p| p.as_str().into()).collect())
            };
            rules.push(CompiledRule {
                id: rule.id.clone(),
                deny: rule.effect == Effect::Deny,
                cap: rule.view,
                resources: rule.resources.iter().map(CompiledResource::from).collect(),
                purposes,
                conditions: rule.conditions,
            });
        }
        CompiledPolicy {
            version: self.version,
            rules,
            roles,
            any_role: any_role.map(Vec::into_boxed_slice),
            by_role: by_role.map(|t| t.into_iter().map(Vec::into_boxed_slice).collect()),
        }
    }
}

fn push_once(list: &mut Vec<u32>, idx: u32) {
    if list.last() != Some(&idx) {
        list.push(idx);
    }
}

impl From<&Resource> for CompiledResource {
    fn from(r: &Resource) -> Self {
        match r {
            Resource::Any => CompiledResource::Any,
            Resource::Collection { collection } => {
                CompiledResource::Collection(collection.as_str().into())
            }
            Resource::Field { collection, field } => {
                CompiledResource::Field(collection.as_str().into(), field.as_str().into())
            }
            Resource::Grade(g) => CompiledResource::Grade(*g),
            Resource::GradeAtLeast(g) => CompiledResource::GradeAtLeast(*g),
            Resource::Category(c) => CompiledResource::Category(*c),
        }
    }
}

impl CompiledResource {
    fn matches(&self, r: &ResourceLabels<'_>) -> bool {
        match self {
            CompiledResource::Any => true,
            CompiledResource::Collection(c) => **c == *r.collection,
            CompiledResource::Field(c, f) => **c == *r.collection && Some(&**f) == r.field,
            CompiledResource::Grade(g) => *g == r.grade,
            CompiledResource::GradeAtLeast(g) => r.grade >= *g,
            CompiledResource::Category(c) => *c == r.category,
        }
    }
}

impl CompiledRule {
    fn in_scope(&self, resource: &ResourceLabels<'_>, purpose: &str) -> bool {
        let purpose_ok = match &self.purposes {
            None => true,
            Some(list) => list.iter().any(|p| **p == *purpose),
        };
        purpose_ok && self.resources.iter().any(|r| r.matches(resource))
    }
}

/// The conditions of `c` that fail in `ctx`, as `MISS_*` bits.
fn failed(c: &Conditions, ctx: &Context) -> u8 {
    let mut miss = 0;
    if let Some(limit) = c.mfa_within_minutes
        && ctx.mfa_age_minutes.is_none_or(|age| age > limit)
    {
        miss |= MISS_MFA;
    }
    if c.eligibility && !ctx.agreement_current {
        miss |= MISS_AGREEMENT;
    }
    if c.eligibility && !ctx.training_current {
        miss |= MISS_TRAINING;
    }
    if let Some(h) = c.hours
        && !h.contains(ctx.hour_utc)
    {
        miss |= MISS_HOURS;
    }
    if let Some(max) = c.max_subjects_per_day
        && ctx.subjects_today > max
    {
        miss |= MISS_SUBJECTS;
    }
    miss
}

fn push_missing(out: &mut Vec<Missing>, c: &Conditions, bits: u8) {
    let mut add = |m: Missing| {
        if !out.contains(&m) {
            out.push(m);
        }
    };
    if let Some(within_minutes) = c.mfa_within_minutes
        && bits & MISS_MFA != 0
    {
        add(Missing::Mfa { within_minutes });
    }
    if bits & MISS_AGREEMENT != 0 {
        add(Missing::Agreement);
    }
    if bits & MISS_TRAINING != 0 {
        add(Missing::Training);
    }
    if let Some(h) = c.hours
        && bits & MISS_HOURS != 0
    {
        add(Missing::Hours {
            from: h.from,
            to: h.to,
        });
    }
    if let Some(max_per_day) = c.max_subjects_per_day
        && bits & MISS_SUBJECTS != 0
    {
        add(Missing::SubjectLimit { max_per_day });
    }
}

/// What a scan of candidate rules found.
#[derive(Default)]
struct Scan {
    /// Lowest index of an applicable deny rule.
    deny: Option<u32>,
    /// Highest cap of an applicable allow rule, with the lowest index granting it.
    allow: Option<(View, u32)>,
    /// Scope-matching allow rules whose conditions failed, with the failed bits.
    blocked: Vec<(u32, u8)>,
}

impl CompiledPolicy {
    /// The policy document's version.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// How many rules the policy has.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Decides `request`; see the module documentation for the semantics.
    pub fn decide<R: AsRef<str>>(&self, request: &Request<'_, R>) -> Decision {
        let mut scan = Scan::default();
        if !request.roles.is_empty() {
            let a = request.action.index();
            self.scan(&self.any_role[a], request, &mut scan);
            for (i, role) in request.roles.iter().enumerate() {
                let role = role.as_ref();
                // A role listed twice is scanned once.
                if request.roles[..i].iter().any(|r| r.as_ref() == role) {
                    continue;
                }
                if let Some(&slot) = self.roles.get(role) {
                    self.scan(&self.by_role[a][slot], request, &mut scan);
                }
            }
        }
        self.conclude(scan, request.context)
    }

    fn scan<R: AsRef<str>>(&self, candidates: &[u32], req: &Request<'_, R>, scan: &mut Scan) {
        for &idx in candidates {
            let Some(rule) = self.rules.get(idx as usize) else {
                continue;
            };
            if !rule.in_scope(req.resource, req.purpose) {
                continue;
            }
            let miss = failed(&rule.conditions, req.context);
            if rule.deny {
                // Applies when unconditional or when one of its requirements fails.
                if (rule.conditions.is_empty() || miss != 0) && scan.deny.is_none_or(|d| idx < d) {
                    scan.deny = Some(idx);
                }
            } else if miss == 0 {
                let better = match scan.allow {
                    None => true,
                    Some((cap, at)) => rule.cap > cap || (rule.cap == cap && idx < at),
                };
                if better {
                    scan.allow = Some((rule.cap, idx));
                }
            } else {
                scan.blocked.push((idx, miss));
            }
        }
    }

    fn conclude(&self, scan: Scan, ctx: &Context) -> Decision {
        if let Some(idx) = scan.deny {
            let rule = &self.rules[idx as usize];
            let mut missing = Vec::new();
            push_missing(
                &mut missing,
                &rule.conditions,
                failed(&rule.conditions, ctx),
            );
            return Decision::Deny {
                rule: Some(rule.id.clone()),
                missing,
            };
        }
        if let Some((view, idx)) = scan.allow {
            return Decision::Allow {
                rule: self.rules[idx as usize].id.clone(),
                view,
            };
        }
        let mut blocked = scan.blocked;
        blocked.sort_unstable();
        let mut missing = Vec::new();
        for (idx, bits) in blocked {
            push_missing(&mut missing, &self.rules[idx as usize].conditions, bits);
        }
        Decision::Deny {
            rule: None,
            missing,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly
    use super::*;

    const POLICY: &str = r#"
[[rules]]
id = "support-contact-masked"
effect = "allow"
roles = ["support_agent"]
actions = ["read"]
resources = [{ category = "contact" }]
purposes = ["customer_support"]
view = "masked"

[[rules]]
id = "fraud-l3-plain"
effect = "allow"
roles = ["fraud_investigator"]
actions = ["read"]
resources = [{ grade = "L3" }]
purposes = ["fraud_prevention"]
view = "plain"
conditions = { mfa_within_minutes = 15, eligibility = true }

[[rules]]
id = "no-marketing-l3"
effect = "deny"
roles = ["*"]
actions = ["*"]
resources = [{ grade_at_least = "L3" }]
purposes = ["marketing"]

[[rules]]
id = "night-shift"
effect = "allow"
roles = ["support_agent"]
actions = ["read"]
resources = [{ collection = "customers", field = "phone" }]
purposes = ["customer_support"]
view = "plain"
conditions = { hours = { from = 22, to = 6 }, max_subjects_per_day = 50 }
"#;

    const PHONE: ResourceLabels<'static> = ResourceLabels {
        collection: "customers",
        field: Some("phone"),
        grade: Grade::L3,
        category: Category::Contact,
    };

    fn ctx() -> Context {
        Context {
            hour_utc: 12,
            mfa_age_minutes: Some(5),
            agreement_current: true,
            training_current: true,
            subjects_today: 1,
        }
    }

    fn ask(roles: &[&str], purpose: &str, ctx: &Context) -> Decision {
        let p = Policy::parse_toml(POLICY).unwrap().compile();
        p.decide(&Request {
            roles,
            action: Action::Read,
            resource: &PHONE,
            purpose,
            context: ctx,
        })
    }

    #[test]
    fn support_agent_sees_masked_phone_whatever_it_asks() {
        let d = ask(&["support_agent"], "customer_support", &ctx());
        assert_eq!(
            d,
            Decision::Allow {
                rule: "support-contact-masked".into(),
                view: View::Masked
            }
        );
        assert_eq!(effective_view(View::Plain, &d), View::Masked);
        assert_eq!(effective_view(View::Redacted, &d), View::Redacted);
    }

    #[test]
    fn fraud_investigator_sees_plain_l3_with_fresh_mfa_and_eligibility() {
        let d = ask(&["fraud_investigator"], "fraud_prevention", &ctx());
        assert_eq!(d.view(), Some(View::Plain));
    }

    #[test]
    fn stale_mfa_and_expired_training_are_reported_missing() {
        let c = Context {
            mfa_age_minutes: Some(16),
            training_current: false,
            ..ctx()
        };
        let d = ask(&["fraud_investigator"], "fraud_prevention", &c);
        assert_eq!(
            d,
            Decision::Deny {
                rule: None,
                missing: vec![Missing::Mfa { within_minutes: 15 }, Missing::Training]
            }
        );
        let never = Context {
            mfa_age_minutes: None,
            ..ctx()
        };
        assert!(!ask(&["fraud_investigator"], "fraud_prevention", &never).is_allow());
    }

    #[test]
    fn marketing_is_denied_by_the_deny_rule_for_everyone() {
        for roles in [
            &["fraud_investigator"][..],
            &["support_agent"],
            &["x", "support_agent"],
        ] {
            let d = ask(roles, "marketing", &ctx());
            assert_eq!(
                d,
                Decision::Deny {
                    rule: Some("no-marketing-l3".into()),
                    missing: vec![]
                }
            );
            assert_eq!(effective_view(View::Plain, &d), View::Redacted);
        }
    }

    #[test]
    fn most_permissive_applicable_cap_wins() {
        let night = Context {
            hour_utc: 23,
            ..ctx()
        };
        let d = ask(&["support_agent"], "customer_support", &night);
        assert_eq!(
            d,
            Decision::Allow {
                rule: "night-shift".into(),
                view: View::Plain
            }
        );
        let busy = Context {
            subjects_today: 51,
            ..night
        };
        assert_eq!(
            ask(&["support_agent"], "customer_support", &busy).view(),
            Some(View::Masked)
        );
    }

    #[test]
    fn unknown_role_and_no_role_are_default_denied() {
        let d = ask(&["intern"], "customer_support", &ctx());
        assert_eq!(
            d,
            Decision::Deny {
                rule: None,
                missing: vec![]
            }
        );
        assert!(!ask(&[], "marketing", &ctx()).is_allow());
    }

    #[test]
    fn a_conditional_deny_applies_only_when_its_requirement_fails() {
        let text = format!(
            "{POLICY}\n[[rules]]\nid = \"l3-needs-fresh-mfa\"\neffect = \"deny\"\n\
             roles = [\"*\"]\nactions = [\"read\"]\nresources = [{{ grade_at_least = \"L3\" }}]\n\
             purposes = [\"*\"]\nconditions = {{ mfa_within_minutes = 10 }}\n"
        );
        let p = Policy::parse_toml(&text).unwrap().compile();
        let req = |c: &Context| {
            p.decide(&Request {
                roles: &["support_agent".to_owned()],
                action: Action::Read,
                resource: &PHONE,
                purpose: "customer_support",
                context: c,
            })
        };
        assert!(req(&ctx()).is_allow());
        let stale = Context {
            mfa_age_minutes: Some(11),
            ..ctx()
        };
        assert_eq!(
            req(&stale),
            Decision::Deny {
                rule: Some("l3-needs-fresh-mfa".into()),
                missing: vec![Missing::Mfa { within_minutes: 10 }]
            }
        );
    }

    #[test]
    fn decisions_serialize_for_explain() {
        let d = Decision::Deny {
            rule: None,
            missing: vec![Missing::Mfa { within_minutes: 15 }, Missing::Agreement],
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({"decision": "deny", "rule": null, "missing": [
                {"condition": "mfa", "within_minutes": 15}, {"condition": "agreement"}]})
        );
    }
}
