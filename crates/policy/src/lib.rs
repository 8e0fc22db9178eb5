//! Pure access decisions for boveda: a policy document of allow and deny rules is compiled once
//! and then answers each request with allow (up to a view cap) or deny, and why.
//!
//! The crate does no I/O, keeps no clock and never logs; the vault gathers the facts (roles,
//! purpose, labels of the field, MFA age, eligibility) and records the decision in the audit
//! log. It also holds the password rules of NIST SP 800-63B §5.1.1.2 ([`password`]) and the QR
//! rendering of TOTP enrolment ([`qr`]), which are pure in the same way.
//!
//! ```
//! use boveda_policy::{Action, Category, Context, Grade, Policy, Request, ResourceLabels, View};
//!
//! let policy = Policy::parse_toml(r#"
//!     [[rules]]
//!     id = "support-contact"
//!     effect = "allow"
//!     roles = ["support_agent"]
//!     actions = ["read"]
//!     resources = [{ category = "contact" }]
//!     purposes = ["customer_support"]
//!     view = "masked"
//! "#).unwrap().compile();
//!
//! let phone = ResourceLabels {
//!     collection: "customers", field: Some("phone"), grade: Grade::L3, category: Category::Contact,
//! };
//! let decision = policy.decide(&Request {
//!     roles: &["support_agent"],
//!     action: Action::Read,
//!     resource: &phone,
//!     purpose: "customer_support",
//!     context: &Context::default(),
//! });
//! assert_eq!(boveda_policy::effective_view(View::Plain, &decision), View::Masked);
//! ```

mod decide;
mod document;
mod error;
mod labels;
pub mod password;
pub mod qr;

pub use decide::{
    CompiledPolicy, Context, Decision, Missing, Request, ResourceLabels, decide, effective_view,
};
pub use document::{ANY, Conditions, Effect, Hours, MAX_RULE_ID, Policy, Resource, Rule};
pub use error::Error;
pub use labels::{Action, Category, Grade, View};
