//! Policy decisions per second for a 200-rule policy on one core (issue 3: at least 1,000,000
//! per second, so that policy never limits reads). A plain binary that prints its figures:
//!
//! ```sh
//! cargo bench -p boveda-policy --bench decide
//! ```

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // a bench binary

use boveda_policy::{
    Action, Category, Conditions, Context, Effect, Grade, Hours, Policy, Request, Resource,
    ResourceLabels, Rule, View,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

const ROLES: [&str; 10] = [
    "support_agent",
    "analyst",
    "privacy_officer",
    "security_responder",
    "auditor",
    "tenant_admin",
    "fraud_investigator",
    "billing_clerk",
    "service",
    "team_lead",
];
const PURPOSES: [&str; 8] = [
    "customer_support",
    "billing",
    "fraud_prevention",
    "legal_obligation",
    "data_subject_request",
    "analytics",
    "marketing",
    "security",
];
const COLLECTIONS: [&str; 8] = [
    "customers",
    "orders",
    "payments",
    "employees",
    "patients",
    "devices",
    "tickets",
    "addresses",
];
const FIELDS: [&str; 8] = [
    "name",
    "email",
    "phone",
    "national_id",
    "address",
    "card",
    "dob",
    "notes",
];

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn policy(rng: &mut Rng) -> Policy {
    let mut rules = Vec::new();
    for i in 0..200 {
        let deny = i % 10 == 9;
        let roles = if rng.chance(8) {
            vec!["*".to_owned()]
        } else {
            (0..1 + rng.next() % 2)
                .map(|_| rng.pick(&ROLES).to_owned())
                .collect()
        };
        let mut actions: Vec<Action> = (0..1 + rng.next() % 3)
            .map(|_| rng.pick(&Action::ALL))
            .collect();
        actions.sort_by_key(|a| *a as usize);
        actions.dedup();
        let resources = (0..1 + rng.next() % 3)
            .map(|_| match rng.next() % 5 {
                0 => Resource::Collection {
                    collection: rng.pick(&COLLECTIONS).to_owned(),
                },
                1 => Resource::Field {
                    collection: rng.pick(&COLLECTIONS).to_owned(),
                    field: rng.pick(&FIELDS).to_owned(),
                },
                2 => Resource::Grade(rng.pick(&Grade::ALL)),
                3 => Resource::GradeAtLeast(rng.pick(&Grade::ALL)),
                _ => Resource::Category(rng.pick(&Category::ALL)),
            })
            .collect();
        let purposes = if rng.chance(10) {
            vec!["*".to_owned()]
        } else {
            (0..1 + rng.next() % 2)
                .map(|_| rng.pick(&PURPOSES).to_owned())
                .collect()
        };
        let conditions = Conditions {
            mfa_within_minutes: rng.chance(30).then_some(15),
            eligibility: rng.chance(30),
            hours: rng.chance(10).then_some(Hours { from: 8, to: 20 }),
            max_subjects_per_day: rng.chance(10).then_some(200),
        };
        rules.push(Rule {
            id: format!("rule-{i:03}"),
            effect: if deny { Effect::Deny } else { Effect::Allow },
            roles,
            actions,
            resources,
            purposes,
            view: if deny {
                View::Plain
            } else {
                rng.pick(&View::ALL)
            },
            conditions,
        });
    }
    Policy {
        version: Some(1),
        rules,
    }
}

struct Owned {
    roles: Vec<&'static str>,
    action: Action,
    resource: ResourceLabels<'static>,
    purpose: &'static str,
    context: Context,
}

fn requests(rng: &mut Rng, n: usize) -> Vec<Owned> {
    (0..n)
        .map(|_| Owned {
            roles: (0..1 + rng.next() % 2).map(|_| rng.pick(&ROLES)).collect(),
            action: if rng.chance(70) {
                Action::Read
            } else {
                rng.pick(&Action::ALL)
            },
            resource: ResourceLabels {
                collection: rng.pick(&COLLECTIONS),
                field: rng.chance(90).then(|| rng.pick(&FIELDS)),
                grade: rng.pick(&Grade::ALL),
                category: rng.pick(&Category::ALL),
            },
            purpose: rng.pick(&PURPOSES),
            context: Context {
                hour_utc: (rng.next() % 24) as u8,
                mfa_age_minutes: rng.chance(80).then(|| (rng.next() % 60) as u32),
                agreement_current: rng.chance(85),
                training_current: rng.chance(85),
                subjects_today: (rng.next() % 300) as u32,
            },
        })
        .collect()
}

fn main() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let policy = policy(&mut rng);
    policy.validate().expect("bench policy is valid");
    let compiled = policy.compile();
    let reqs = requests(&mut rng, 8192);

    let run = |budget: Duration| {
        let start = Instant::now();
        let (mut n, mut allowed) = (0u64, 0u64);
        while start.elapsed() < budget {
            for r in &reqs {
                let d = compiled.decide(&Request {
                    roles: &r.roles,
                    action: r.action,
                    resource: &r.resource,
                    purpose: r.purpose,
                    context: &r.context,
                });
                allowed += u64::from(black_box(d).is_allow());
            }
            n += reqs.len() as u64;
        }
        (n, allowed, start.elapsed())
    };
    run(Duration::from_millis(300)); // warm-up
    let (n, allowed, took) = run(Duration::from_secs(3));
    let per_sec = n as f64 / took.as_secs_f64();
    println!(
        "policy decide: {} rules, {n} decisions in {:.2} s = {:.0} decisions/s \
         ({:.0} ns each, {:.1}% allowed), one thread",
        compiled.rule_count(),
        took.as_secs_f64(),
        per_sec,
        1e9 / per_sec,
        100.0 * allowed as f64 / n as f64,
    );
}
