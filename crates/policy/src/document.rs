//! The policy document: a versioned list of allow and deny rules, parsed from TOML or JSON and
//! validated so that every problem names the rule it is in. This module never decides; see
//! [`crate::CompiledPolicy`] for that.
//!
//! ```toml
//! version = 3
//!
//! [[rules]]
//! id = "support-reads-contact-masked"
//! effect = "allow"
//! roles = ["support_agent"]
//! actions = ["read", "search"]
//! resources = [{ category = "contact" }]
//! purposes = ["customer_support"]
//! view = "masked"
//! conditions = { mfa_within_minutes = 480 }
//!
//! [[rules]]
//! id = "nobody-exports-l4"
//! effect = "deny"
//! roles = ["*"]
//! actions = ["export"]
//! resources = [{ grade_at_least = "L4" }]
//! purposes = ["*"]
//! ```

use crate::{Action, Category, Error, Grade, View};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::HashSet;
use std::fmt;

/// The wildcard accepted in `roles`, `actions`, `purposes` and `resources`.
pub const ANY: &str = "*";

/// Longest rule id accepted, in bytes.
pub const MAX_RULE_ID: usize = 128;

/// A validated policy document. Build one with [`Policy::parse_toml`] or [`Policy::parse_json`],
/// or in code followed by [`Policy::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Policy {
    /// The document's version, as the tenant numbered it; the vault also keeps its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The rules, in document order. Order never changes a decision's outcome; it only picks
    /// which rule id is reported when several rules decide alike (the first one).
    pub rules: Vec<Rule>,
}

/// One allow or deny rule: roles × actions × resources × purposes, a view cap and conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique within the policy; reported by decisions and `explain`.
    pub id: String,
    /// Allow or deny.
    pub effect: Effect,
    /// Roles the rule applies to; [`ANY`] matches every caller that holds at least one role.
    pub roles: Vec<String>,
    /// Actions the rule applies to (a `"*"` in the document expands to all of them).
    pub actions: Vec<Action>,
    /// Resources the rule applies to; the rule applies when any one of them matches.
    pub resources: Vec<Resource>,
    /// Purposes the rule applies to; [`ANY`] matches every purpose.
    pub purposes: Vec<String>,
    /// The most revealing view an allow rule grants (default [`View::Plain`]). A deny rule may
    /// not set one; its value is then [`View::Plain`] and is never used.
    pub view: View,
    /// Conditions. On an allow rule they must all hold for the rule to grant anything. On a
    /// deny rule they are requirements too: the deny applies when its scope matches and any of
    /// its conditions fails (so a deny without conditions always applies).
    pub conditions: Conditions,
}

/// Whether a rule grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Grants access up to the rule's view cap, when its conditions hold.
    Allow,
    /// Refuses access; wins over every allow.
    Deny,
}

/// What a rule is about. A request concerns one field (or one collection as a whole) with its
/// labels; see [`crate::ResourceLabels`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `"*"`: everything.
    Any,
    /// `{ collection = "c" }`: every field of a collection, and the collection as a whole.
    Collection {
        /// Collection name.
        collection: String,
    },
    /// `{ collection = "c", field = "f" }`: one field.
    Field {
        /// Collection name.
        collection: String,
        /// Field name.
        field: String,
    },
    /// `{ grade = "L3" }`: every field of exactly that grade. Exact, so that a rule for L2 data
    /// never reaches L3 or L4 by accident; use [`Resource::GradeAtLeast`] to cover a range.
    Grade(Grade),
    /// `{ grade_at_least = "L3" }`: every field of that grade or a higher one. Meant for deny
    /// rules and conditions that must cover everything sensitive.
    GradeAtLeast(Grade),
    /// `{ category = "contact" }`: every field of that category.
    Category(Category),
}

/// Conditions under which a rule's access holds (DESIGN.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Conditions {
    /// The caller's last MFA check is at most this many minutes old (step-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_within_minutes: Option<u32>,
    /// The caller's confidentiality agreement and training are both current (issue 3, item 8).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub eligibility: bool,
    /// The request falls within these UTC hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hours: Option<Hours>,
    /// The caller touches at most this many distinct subjects per UTC day, counting the
    /// subject of the request itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_subjects_per_day: Option<u32>,
}

impl Conditions {
    /// Whether the rule has no conditions at all.
    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }
}

/// A window of UTC hours, `from` inclusive, `to` exclusive. When `from > to` the window wraps
/// past midnight: `{ from = 22, to = 6 }` is 22:00–05:59. `from` is 0–23, `to` is 0–24, and
/// they differ (an all-day window is simply no `hours` condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hours {
    /// First hour inside the window, 0–23.
    pub from: u8,
    /// First hour after the window, 0–24.
    pub to: u8,
}

impl Hours {
    /// Whether `hour` (0–23, UTC) lies inside the window. Hours above 23 never do.
    pub fn contains(self, hour: u8) -> bool {
        if hour > 23 {
            return false;
        }
        if self.from < self.to {
            self.from <= hour && hour < self.to
        } else if self.from > self.to {
            hour >= self.from || hour < self.to
        } else {
            false
        }
    }
}

impl Policy {
    /// Parses and validates a TOML policy document.
    ///
    /// # Errors
    /// [`Error::Syntax`] for malformed TOML, unknown keys or wrong types; [`Error::Rule`] for a
    /// rule that parses but is not valid, naming the rule and the problem.
    pub fn parse_toml(text: &str) -> Result<Policy, Error> {
        let doc: DocPolicy = toml::from_str(text).map_err(|e| Error::Syntax {
            format: "toml",
            message: e.message().to_owned(),
        })?;
        Policy::from_doc(doc)
    }

    /// Parses and validates a JSON policy document.
    ///
    /// # Errors
    /// As [`Policy::parse_toml`].
    pub fn parse_json(text: &str) -> Result<Policy, Error> {
        let doc: DocPolicy = serde_json::from_str(text).map_err(|e| Error::Syntax {
            format: "json",
            message: e.to_string(),
        })?;
        Policy::from_doc(doc)
    }

    /// Checks a policy built in code: unique non-empty ids, non-empty lists, valid hours and
    /// limits, no view on a deny rule. The parsers call it.
    ///
    /// # Errors
    /// [`Error::Rule`] naming the first rule at fault.
    pub fn validate(&self) -> Result<(), Error> {
        let mut seen = HashSet::new();
        for (n, rule) in self.rules.iter().enumerate() {
            let fail = |problem: &str| Err(rule_error(n, &rule.id, problem));
            if rule.id.is_empty() {
                return fail("id is empty");
            }
            if rule.id.len() > MAX_RULE_ID {
                return fail("id is longer than 128 bytes");
            }
            if !seen.insert(rule.id.as_str()) {
                return fail("duplicate rule id");
            }
            if rule.roles.is_empty() {
                return fail("roles is empty; use [\"*\"] for every role");
            }
            if rule.roles.iter().any(String::is_empty) {
                return fail("a role name is empty");
            }
            if rule.actions.is_empty() {
                return fail("actions is empty; use [\"*\"] for every action");
            }
            if rule.resources.is_empty() {
                return fail("resources is empty; use [\"*\"] for everything");
            }
            for r in &rule.resources {
                match r {
                    Resource::Collection { collection } | Resource::Field { collection, .. }
                        if collection.is_empty() =>
                    {
                        return fail("a resource names an empty collection");
                    }
                    Resource::Field { field, .. } if field.is_empty() => {
                        return fail("a resource names an empty field");
                    }
                    _ => {}
                }
            }
            if rule.purposes.is_empty() {
                return fail("purposes is empty; use [\"*\"] for every purpose");
            }
            if rule.purposes.iter().any(String::is_empty) {
                return fail("a purpose is empty");
            }
            if rule.effect == Effect::Deny && rule.view != View::Plain {
                return fail("a view cap is for allow rules only");
            }
            if let Some(h) = rule.conditions.hours {
                if h.from > 23 {
                    return fail("hours.from must be 0 to 23 (UTC)");
                }
                if h.to > 24 {
                    return fail("hours.to must be 0 to 24 (UTC)");
                }
                if h.from == h.to {
                    return fail("hours.from and hours.to are equal; omit hours for all day");
                }
            }
            if rule.conditions.max_subjects_per_day == Some(0) {
                return fail("max_subjects_per_day must be at least 1");
            }
        }
        Ok(())
    }

    fn from_doc(doc: DocPolicy) -> Result<Policy, Error> {
        let mut rules = Vec::with_capacity(doc.rules.len());
        for (n, r) in doc.rules.into_iter().enumerate() {
            let fail = |problem: String| rule_error(n, &r.id, &problem);
            let effect = match r.effect.as_str() {
                "allow" => Effect::Allow,
                "deny" => Effect::Deny,
                other => {
                    return Err(fail(format!(
                        "effect {other:?} is not \"allow\" or \"deny\""
                    )));
                }
            };
            let mut actions = Vec::with_capacity(r.actions.len());
            for a in &r.actions {
                if a == ANY {
                    actions.extend(Action::ALL);
                } else if let Some(action) = Action::from_name(a) {
                    actions.push(action);
                } else {
                    return Err(fail(format!("unknown action {a:?}")));
                }
            }
            actions.sort_by_key(|a| a.index());
            actions.dedup();
            let mut resources = Vec::with_capacity(r.resources.len());
            for res in r.resources {
                resources.push(res.into_resource().map_err(|p| fail(p.to_owned()))?);
            }
            if effect == Effect::Deny && r.view.is_some() {
                return Err(fail("a view cap is for allow rules only".to_owned()));
            }
            let c = r.conditions.unwrap_or_default();
            let hours = match c.hours {
                None => None,
                Some(DocHours { from, to }) => {
                    let from = u8::try_from(from)
                        .ok()
                        .filter(|h| *h <= 23)
                        .ok_or_else(|| fail(format!("hours.from {from} is not 0 to 23 (UTC)")))?;
                    let to = u8::try_from(to)
                        .ok()
                        .filter(|h| *h <= 24)
                        .ok_or_else(|| fail(format!("hours.to {to} is not 0 to 24 (UTC)")))?;
                    Some(Hours { from, to })
                }
            };
            rules.push(Rule {
                id: r.id,
                effect,
                roles: r.roles,
                actions,
                resources,
                purposes: r.purposes,
                view: r.view.unwrap_or(View::Plain),
                conditions: Conditions {
                    mfa_within_minutes: c.mfa_within_minutes,
                    eligibility: c.eligibility,
                    hours,
                    max_subjects_per_day: c.max_subjects_per_day,
                },
            });
        }
        let policy = Policy {
            version: doc.version,
            rules,
        };
        policy.validate()?;
        Ok(policy)
    }
}

fn rule_error(n: usize, id: &str, problem: &str) -> Error {
    let rule = if id.is_empty() {
        format!("#{}", n + 1)
    } else {
        id.to_owned()
    };
    Error::Rule {
        rule,
        problem: problem.to_owned(),
    }
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if let Resource::Any = self {
            return s.serialize_str(ANY);
        }
        let mut m = s.serialize_map(None)?;
        match self {
            Resource::Any => {}
            Resource::Collection { collection } => m.serialize_entry("collection", collection)?,
            Resource::Field { collection, field } => {
                m.serialize_entry("collection", collection)?;
                m.serialize_entry("field", field)?;
            }
            Resource::Grade(g) => m.serialize_entry("grade", g)?,
            Resource::GradeAtLeast(g) => m.serialize_entry("grade_at_least", g)?,
            Resource::Category(c) => m.serialize_entry("category", c)?,
        }
        m.end()
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The same shape as the document, so that a served policy parses back; a deny rule
        // carries no view.
        #[derive(Serialize)]
        struct Out<'a> {
            id: &'a str,
            effect: Effect,
            roles: &'a [String],
            actions: &'a [Action],
            resources: &'a [Resource],
            purposes: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            view: Option<View>,
            #[serde(skip_serializing_if = "Conditions::is_empty")]
            conditions: &'a Conditions,
        }
        Out {
            id: &self.id,
            effect: self.effect,
            roles: &self.roles,
            actions: &self.actions,
            resources: &self.resources,
            purposes: &self.purposes,
            view: (self.effect == Effect::Allow).then_some(self.view),
            conditions: &self.conditions,
        }
        .serialize(s)
    }
}

// The document as written. Lists and names stay strings here so that validation can say which
// rule a bad value is in; serde alone could only give a line and column.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocPolicy {
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    rules: Vec<DocRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocRule {
    id: String,
    effect: String,
    roles: Vec<String>,
    actions: Vec<String>,
    resources: Vec<DocResource>,
    purposes: Vec<String>,
    #[serde(default)]
    view: Option<View>,
    #[serde(default)]
    conditions: Option<DocConditions>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DocConditions {
    #[serde(default)]
    mfa_within_minutes: Option<u32>,
    #[serde(default)]
    eligibility: bool,
    #[serde(default)]
    hours: Option<DocHours>,
    #[serde(default)]
    max_subjects_per_day: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocHours {
    from: u32,
    to: u32,
}

enum DocResource {
    Any,
    Table(DocResourceTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocResourceTable {
    #[serde(default)]
    collection: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    grade: Option<Grade>,
    #[serde(default)]
    grade_at_least: Option<Grade>,
    #[serde(default)]
    category: Option<Category>,
}

impl DocResource {
    fn into_resource(self) -> Result<Resource, &'static str> {
        let t = match self {
            DocResource::Any => return Ok(Resource::Any),
            DocResource::Table(t) => t,
        };
        let kinds = usize::from(t.collection.is_some())
            + usize::from(t.grade.is_some())
            + usize::from(t.grade_at_least.is_some())
            + usize::from(t.category.is_some());
        if kinds != 1 {
            return Err(
                "a resource names exactly one of collection, grade, grade_at_least, \
                        category",
            );
        }
        Ok(match t {
            DocResourceTable {
                collection: Some(collection),
                field: None,
                ..
            } => Resource::Collection { collection },
            DocResourceTable {
                collection: Some(collection),
                field: Some(field),
                ..
            } => Resource::Field { collection, field },
            DocResourceTable { field: Some(_), .. } => {
                return Err("a resource with a field must name its collection");
            }
            DocResourceTable { grade: Some(g), .. } => Resource::Grade(g),
            DocResourceTable {
                grade_at_least: Some(g),
                ..
            } => Resource::GradeAtLeast(g),
            DocResourceTable {
                category: Some(c), ..
            } => Resource::Category(c),
            _ => return Err("a resource is empty"),
        })
    }
}

impl<'de> Deserialize<'de> for DocResource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DocResource;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"*\" or a table with collection (and field), grade, grade_at_least or category")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DocResource, E> {
                if v == ANY {
                    Ok(DocResource::Any)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DocResource, A::Error> {
                DocResourceTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(DocResource::Table)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly
    use super::*;

    const SAMPLE: &str = r#"
version = 3

[[rules]]
id = "support-contact"
effect = "allow"
roles = ["support_agent"]
actions = ["read", "search"]
resources = [{ category = "contact" }, { collection = "customers", field = "name" }]
purposes = ["customer_support"]
view = "masked"
conditions = { mfa_within_minutes = 480, hours = { from = 22, to = 6 } }

[[rules]]
id = "no-l4-export"
effect = "deny"
roles = ["*"]
actions = ["*"]
resources = [{ grade_at_least = "L4" }, "*"]
purposes = ["*"]
"#;

    fn problem(text: &str) -> (String, String) {
        match Policy::parse_toml(text) {
            Err(Error::Rule { rule, problem }) => (rule, problem),
            other => panic!("expected a rule error, got {other:?}"),
        }
    }

    fn one_rule(body: &str) -> String {
        format!(
            "[[rules]]\nid = \"r1\"\neffect = \"allow\"\nroles = [\"a\"]\nactions = [\"read\"]\n\
             resources = [\"*\"]\npurposes = [\"p\"]\n{body}\n"
        )
    }

    #[test]
    fn sample_parses_with_wildcards_expanded() {
        let p = Policy::parse_toml(SAMPLE).unwrap();
        assert_eq!(p.version, Some(3));
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.rules[0].view, View::Masked);
        assert_eq!(p.rules[0].conditions.hours, Some(Hours { from: 22, to: 6 }));
        assert_eq!(
            p.rules[0].resources[1],
            Resource::Field {
                collection: "customers".into(),
                field: "name".into()
            }
        );
        assert_eq!(p.rules[1].actions.len(), 8);
        assert_eq!(
            p.rules[1].resources,
            vec![Resource::GradeAtLeast(Grade::L4), Resource::Any]
        );
    }

    #[test]
    fn json_and_toml_agree_and_serialization_round_trips() {
        let p = Policy::parse_toml(SAMPLE).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(Policy::parse_json(&json).unwrap(), p);
    }

    #[test]
    fn duplicate_ids_are_refused_by_name() {
        let text = format!("{}{}", one_rule(""), one_rule(""));
        assert_eq!(problem(&text), ("r1".into(), "duplicate rule id".into()));
    }

    #[test]
    fn empty_lists_are_refused_by_name() {
        let text = one_rule("").replace("roles = [\"a\"]", "roles = []");
        assert_eq!(
            problem(&text).1,
            "roles is empty; use [\"*\"] for every role"
        );
        let text = one_rule("").replace("purposes = [\"p\"]", "purposes = []");
        assert!(problem(&text).1.starts_with("purposes is empty"));
    }

    #[test]
    fn bad_hours_are_refused_by_name() {
        let (rule, p) = problem(&one_rule("conditions = { hours = { from = 25, to = 3 } }"));
        assert_eq!(rule, "r1");
        assert_eq!(p, "hours.from 25 is not 0 to 23 (UTC)");
        let (_, p) = problem(&one_rule("conditions = { hours = { from = 5, to = 5 } }"));
        assert!(p.starts_with("hours.from and hours.to are equal"));
    }

    #[test]
    fn unknown_action_and_effect_are_refused_by_name() {
        let text = one_rule("").replace("[\"read\"]", "[\"peek\"]");
        assert_eq!(problem(&text).1, "unknown action \"peek\"");
        let text = one_rule("").replace("\"allow\"", "\"maybe\"");
        assert_eq!(
            problem(&text).1,
            "effect \"maybe\" is not \"allow\" or \"deny\""
        );
    }

    #[test]
    fn deny_with_view_is_refused() {
        let text = one_rule("view = \"masked\"").replace("\"allow\"", "\"deny\"");
        assert_eq!(problem(&text).1, "a view cap is for allow rules only");
    }

    #[test]
    fn ambiguous_resources_are_refused() {
        let text = one_rule("").replace("[\"*\"]", "[{ grade = \"L2\", category = \"health\" }]");
        assert!(problem(&text).1.starts_with("a resource names exactly one"));
        let text = one_rule("").replace("[\"*\"]", "[{ field = \"x\" }]");
        assert!(problem(&text).1.starts_with("a resource names exactly one"));
        let text = one_rule("").replace("resources = [\"*\"]", "resources = [\"all\"]");
        assert!(matches!(
            Policy::parse_toml(&text),
            Err(Error::Syntax { .. })
        ));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = one_rule("colour = \"red\"");
        match Policy::parse_toml(&text) {
            Err(Error::Syntax { message, .. }) => assert!(message.contains("colour"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rule_without_id_is_named_by_position() {
        let text = one_rule("").replace("id = \"r1\"", "id = \"\"");
        assert_eq!(problem(&text), ("#1".into(), "id is empty".into()));
    }

    #[test]
    fn hours_wrap_past_midnight() {
        let night = Hours { from: 22, to: 6 };
        assert!(night.contains(23) && night.contains(0) && night.contains(5));
        assert!(!night.contains(6) && !night.contains(12) && !night.contains(24));
        let day = Hours { from: 9, to: 17 };
        assert!(day.contains(9) && day.contains(16) && !day.contains(17));
        assert!(Hours { from: 0, to: 24 }.contains(23));
    }
}
