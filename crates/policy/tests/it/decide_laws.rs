//! The laws of a decision (DESIGN.md §6), checked on random policies and requests: deny wins,
//! no matching rule means deny, the view never exceeds the cap, adding an allow rule never turns
//! an allow into a deny, a deny-everything rule denies everything; and the indexed decision
//! agrees with a naive reading of the rules.

use boveda_policy::{
    Action, Category, Conditions, Context, Decision, Effect, Grade, Hours, Missing, Policy,
    Request, Resource, ResourceLabels, Rule, View, effective_view,
};
use proptest::prelude::*;

const ROLES: [&str; 4] = ["a", "b", "c", "*"];
const ASKING_ROLES: [&str; 4] = ["a", "b", "c", "d"];
const ACTIONS: [Action; 3] = [Action::Read, Action::Write, Action::Export];
const COLLECTIONS: [&str; 2] = ["customers", "orders"];
const FIELDS: [&str; 2] = ["phone", "email"];
const PURPOSES: [&str; 3] = ["p", "q", "*"];
const CATEGORIES: [Category; 3] = [Category::Contact, Category::Health, Category::Other];

fn view() -> impl Strategy<Value = View> {
    prop::sample::select(View::ALL.to_vec())
}

fn grade() -> impl Strategy<Value = Grade> {
    prop::sample::select(Grade::ALL.to_vec())
}

fn resource() -> impl Strategy<Value = Resource> {
    prop_oneof![
        Just(Resource::Any),
        prop::sample::select(COLLECTIONS.to_vec()).prop_map(|c| Resource::Collection {
            collection: c.into()
        }),
        (
            prop::sample::select(COLLECTIONS.to_vec()),
            prop::sample::select(FIELDS.to_vec())
        )
            .prop_map(|(c, f)| Resource::Field {
                collection: c.into(),
                field: f.into()
            }),
        grade().prop_map(Resource::Grade),
        grade().prop_map(Resource::GradeAtLeast),
        prop::sample::select(CATEGORIES.to_vec()).prop_map(Resource::Category),
    ]
}

fn conditions() -> impl Strategy<Value = Conditions> {
    (
        prop::option::weighted(0.3, 0u32..30),
        prop::bool::weighted(0.3),
        prop::option::weighted(0.2, (0u8..24, 0u8..25)),
        prop::option::weighted(0.2, 1u32..10),
    )
        .prop_map(|(mfa, eligibility, hours, max)| Conditions {
            mfa_within_minutes: mfa,
            eligibility,
            hours: hours
                .filter(|(f, t)| f != t)
                .map(|(from, to)| Hours { from, to }),
            max_subjects_per_day: max,
        })
}

fn names(pool: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::sample::subsequence(pool.to_vec(), 1..=max)
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        prop::bool::weighted(0.3),
        names(&ROLES, 2),
        prop::sample::subsequence(ACTIONS.to_vec(), 1..=2),
        prop::collection::vec(resource(), 1..3),
        names(&PURPOSES, 2),
        view(),
        conditions(),
    )
        .prop_map(
            |(deny, roles, actions, resources, purposes, view, conditions)| Rule {
                id: String::new(),
                effect: if deny { Effect::Deny } else { Effect::Allow },
                roles,
                actions,
                resources,
                purposes,
                view: if deny { View::Plain } else { view },
                conditions,
            },
        )
}

fn number(mut rules: Vec<Rule>) -> Policy {
    for (i, r) in rules.iter_mut().enumerate() {
        r.id = format!("r{i}");
    }
    let p = Policy {
        version: None,
        rules,
    };
    p.validate().unwrap();
    p
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::collection::vec(rule(), 0..12).prop_map(number)
}

#[derive(Debug, Clone)]
struct Asked {
    roles: Vec<String>,
    action: Action,
    collection: &'static str,
    field: Option<&'static str>,
    grade: Grade,
    category: Category,
    purpose: &'static str,
    context: Context,
}

fn asked() -> impl Strategy<Value = Asked> {
    (
        names(&ASKING_ROLES, 2),
        prop::sample::select(ACTIONS.to_vec()),
        prop::sample::select(COLLECTIONS.to_vec()),
        prop::option::weighted(0.8, prop::sample::select(FIELDS.to_vec())),
        grade(),
        prop::sample::select(CATEGORIES.to_vec()),
        prop::sample::select(vec!["p", "q", "r"]),
        (
            0u8..24,
            prop::option::of(0u32..40),
            any::<bool>(),
            any::<bool>(),
            0u32..12,
        ),
    )
        .prop_map(
            |(roles, action, collection, field, grade, category, purpose, c)| Asked {
                roles,
                action,
                collection,
                field,
                grade,
                category,
                purpose,
                context: Context {
                    hour_utc: c.0,
                    mfa_age_minutes: c.1,
                    agreement_current: c.2,
                    training_current: c.3,
                    subjects_today: c.4,
                },
            },
        )
}

impl Asked {
    fn labels(&self) -> ResourceLabels<'static> {
        ResourceLabels {
            collection: self.collection,
            field: self.field,
            grade: self.grade,
            category: self.category,
        }
    }
}

fn decide(p: &Policy, q: &Asked) -> Decision {
    let labels = q.labels();
    p.compile().decide(&Request {
        roles: &q.roles,
        action: q.action,
        resource: &labels,
        purpose: q.purpose,
        context: &q.context,
    })
}

/// A rule's scope, read straight from the document.
fn in_scope(r: &Rule, q: &Asked) -> bool {
    let role = r
        .roles
        .iter()
        .any(|x| (x == "*" && !q.roles.is_empty()) || q.roles.contains(x));
    let purpose = r.purposes.iter().any(|p| p == "*" || p == q.purpose);
    let resource = r.resources.iter().any(|res| match res {
        Resource::Any => true,
        Resource::Collection { collection } => collection == q.collection,
        Resource::Field { collection, field } => {
            collection == q.collection && Some(field.as_str()) == q.field
        }
        Resource::Grade(g) => *g == q.grade,
        Resource::GradeAtLeast(g) => q.grade >= *g,
        Resource::Category(c) => *c == q.category,
    });
    role && r.actions.contains(&q.action) && purpose && resource
}

/// The failed conditions of a rule, in the order `Missing` lists them.
fn failed(c: &Conditions, x: &Context) -> Vec<Missing> {
    let mut out = Vec::new();
    if let Some(m) = c.mfa_within_minutes
        && x.mfa_age_minutes.is_none_or(|a| a > m)
    {
        out.push(Missing::Mfa { within_minutes: m });
    }
    if c.eligibility && !x.agreement_current {
        out.push(Missing::Agreement);
    }
    if c.eligibility && !x.training_current {
        out.push(Missing::Training);
    }
    if let Some(h) = c.hours
        && !h.contains(x.hour_utc)
    {
        out.push(Missing::Hours {
            from: h.from,
            to: h.to,
        });
    }
    if let Some(max) = c.max_subjects_per_day
        && x.subjects_today > max
    {
        out.push(Missing::SubjectLimit { max_per_day: max });
    }
    out
}

/// The semantics of DESIGN.md §6 read naively, rule by rule.
fn reference(p: &Policy, q: &Asked) -> Decision {
    for r in &p.rules {
        if r.effect == Effect::Deny && in_scope(r, q) {
            let f = failed(&r.conditions, &q.context);
            if r.conditions.is_empty() || !f.is_empty() {
                return Decision::Deny {
                    rule: Some(r.id.clone()),
                    missing: f,
                };
            }
        }
    }
    let mut best: Option<&Rule> = None;
    let mut missing = Vec::new();
    for r in &p.rules {
        if r.effect == Effect::Allow && in_scope(r, q) {
            let f = failed(&r.conditions, &q.context);
            if f.is_empty() {
                if best.is_none_or(|b| r.view > b.view) {
                    best = Some(r);
                }
            } else {
                for m in f {
                    if !missing.contains(&m) {
                        missing.push(m);
                    }
                }
            }
        }
    }
    match best {
        Some(r) => Decision::Allow {
            rule: r.id.clone(),
            view: r.view,
        },
        None => Decision::Deny {
            rule: None,
            missing,
        },
    }
}

fn with_rule(p: &Policy, at: usize, mut r: Rule) -> Policy {
    let mut rules = p.rules.clone();
    r.id = "added".into();
    rules.insert(at.min(rules.len()), r);
    let p = Policy {
        version: None,
        rules,
    };
    p.validate().unwrap();
    p
}

fn deny_all() -> Rule {
    Rule {
        id: String::new(),
        effect: Effect::Deny,
        roles: vec!["*".into()],
        actions: Action::ALL.to_vec(),
        resources: vec![Resource::Any],
        purposes: vec!["*".into()],
        view: View::Plain,
        conditions: Conditions::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn indexed_decision_agrees_with_the_naive_reading(p in policy(), q in asked()) {
        prop_assert_eq!(decide(&p, &q), reference(&p, &q));
    }

    #[test]
    fn deny_wins(p in policy(), q in asked(), at in 0usize..12, whole in any::<bool>()) {
        // An unconditional deny scoped to exactly this request, anywhere in the document.
        let resource = match (whole, q.field) {
            (false, Some(f)) => Resource::Field { collection: q.collection.into(), field: f.into() },
            _ => Resource::Collection { collection: q.collection.into() },
        };
        let deny = Rule {
            roles: vec![q.roles[0].clone()],
            actions: vec![q.action],
            resources: vec![resource],
            purposes: vec![q.purpose.into()],
            ..deny_all()
        };
        let d = decide(&with_rule(&p, at, deny), &q);
        prop_assert!(matches!(d, Decision::Deny { rule: Some(_), .. }), "{:?}", d);
    }

    #[test]
    fn no_matching_rule_means_deny(p in policy(), q in asked()) {
        // Nobody holds role "d" in the policy and no rule uses "*".
        let mut p = p;
        for r in &mut p.rules {
            r.roles.retain(|x| x != "*");
            if r.roles.is_empty() {
                r.roles.push("a".into());
            }
        }
        let q = Asked { roles: vec!["d".into()], ..q };
        prop_assert_eq!(decide(&p, &q), Decision::Deny { rule: None, missing: vec![] });
    }

    #[test]
    fn the_view_never_exceeds_the_cap(p in policy(), q in asked(), requested in view()) {
        let d = decide(&p, &q);
        let served = effective_view(requested, &d);
        prop_assert!(served <= requested);
        if let Decision::Allow { rule, view } = &d {
            let r = p.rules.iter().find(|r| &r.id == rule).unwrap();
            prop_assert_eq!(r.effect, Effect::Allow);
            prop_assert_eq!(r.view, *view);
            prop_assert!(served <= r.view);
            // No applicable allow rule grants less than it and none grants more.
            let max = p.rules.iter()
                .filter(|r| r.effect == Effect::Allow && in_scope(r, &q)
                    && failed(&r.conditions, &q.context).is_empty())
                .map(|r| r.view)
                .max();
            prop_assert_eq!(max, Some(*view));
        } else {
            prop_assert_eq!(served, View::Redacted);
        }
    }

    #[test]
    fn adding_an_allow_rule_never_turns_allow_into_deny(
        p in policy(), q in asked(), extra in rule(), at in 0usize..12,
    ) {
        let before = decide(&p, &q);
        let extra = Rule { effect: Effect::Allow, ..extra };
        let after = decide(&with_rule(&p, at, extra), &q);
        if let Some(v) = before.view() {
            prop_assert!(after.view().is_some_and(|w| w >= v), "{:?} then {:?}", before, after);
        }
    }

    #[test]
    fn a_deny_matching_everything_denies_everything(p in policy(), q in asked(), at in 0usize..12) {
        let d = decide(&with_rule(&p, at, deny_all()), &q);
        prop_assert!(matches!(d, Decision::Deny { rule: Some(_), .. }), "{:?}", d);
    }
}
