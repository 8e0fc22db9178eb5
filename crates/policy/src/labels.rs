//! The vocabulary of a decision: how a value may be shown ([`View`]), how sensitive a field is
//! ([`Grade`]), what kind of personal information it holds ([`Category`]) and what a caller
//! wants to do ([`Action`]). These types hold no personal data.

use serde::{Deserialize, Serialize};

/// How a value is shown. Ordered from least to most revealing, so `min` and `max` compare caps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// A fixed marker; the value is not even decrypted.
    Redacted,
    /// Masked by type: `j***@example.com`, `+86 138****5678`, `**** **** **** 1234`.
    #[default]
    Masked,
    /// The clear value.
    Plain,
}

impl View {
    /// Every view, least revealing first.
    pub const ALL: [View; 3] = [View::Redacted, View::Masked, View::Plain];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            View::Redacted => "redacted",
            View::Masked => "masked",
            View::Plain => "plain",
        }
    }
}

/// Sensitivity grade of a field: L1 public … L4 highly sensitive. Ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Grade {
    /// Public.
    L1,
    /// Internal.
    L2,
    /// Sensitive.
    L3,
    /// Highly sensitive.
    L4,
}

impl Grade {
    /// Every grade, lowest first.
    pub const ALL: [Grade; 4] = [Grade::L1, Grade::L2, Grade::L3, Grade::L4];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::L1 => "L1",
            Grade::L2 => "L2",
            Grade::L3 => "L3",
            Grade::L4 => "L4",
        }
    }
}

/// The category of personal information a field holds (GB/T 35273 and GDPR Art. 9 classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Who a person is.
    Identity,
    /// How to reach a person.
    Contact,
    /// Money.
    Financial,
    /// Health.
    Health,
    /// Biometrics.
    Biometric,
    /// Where a person is or was.
    Location,
    /// Information of minors.
    Minors,
    /// Anything else.
    Other,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 8] = [
        Category::Identity,
        Category::Contact,
        Category::Financial,
        Category::Health,
        Category::Biometric,
        Category::Location,
        Category::Minors,
        Category::Other,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Identity => "identity",
            Category::Contact => "contact",
            Category::Financial => "financial",
            Category::Health => "health",
            Category::Biometric => "biometric",
            Category::Location => "location",
            Category::Minors => "minors",
            Category::Other => "other",
        }
    }
}

/// What a caller wants to do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read values.
    Read,
    /// Create or change values.
    Write,
    /// Equality search by blind index.
    Search,
    /// Erase a subject's data.
    Erase,
    /// Replace a value by a vault token.
    Tokenize,
    /// Turn a vault token back into its value.
    Detokenize,
    /// Export in bulk.
    Export,
    /// Administer users, roles, policies and schema.
    Admin,
}

impl Action {
    /// Every action, in a fixed order (the compiled index relies on it).
    pub const ALL: [Action; 8] = [
        Action::Read,
        Action::Write,
        Action::Search,
        Action::Erase,
        Action::Tokenize,
        Action::Detokenize,
        Action::Export,
        Action::Admin,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Search => "search",
            Action::Erase => "erase",
            Action::Tokenize => "tokenize",
            Action::Detokenize => "detokenize",
            Action::Export => "export",
            Action::Admin => "admin",
        }
    }

    /// The action named `name` (the wire name), if any.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// A dense index in `0..8`, for tables indexed by action.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly
    use super::*;

    #[test]
    fn views_are_ordered_and_named_in_snake_case() {
        assert!(View::Redacted < View::Masked && View::Masked < View::Plain);
        assert_eq!(serde_json::to_string(&View::Plain).unwrap(), "\"plain\"");
        let v: View = serde_json::from_str("\"redacted\"").unwrap();
        assert_eq!(v, View::Redacted);
    }

    #[test]
    fn grades_are_ordered_and_named_l1_to_l4() {
        assert!(Grade::L1 < Grade::L4);
        assert_eq!(serde_json::to_string(&Grade::L3).unwrap(), "\"L3\"");
    }

    #[test]
    fn names_round_trip_through_serde() {
        for a in Action::ALL {
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.as_str())
            );
            assert_eq!(Action::from_name(a.as_str()), Some(a));
        }
        for c in Category::ALL {
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        for (i, a) in Action::ALL.into_iter().enumerate() {
            assert_eq!(a.index(), i);
        }
    }
}
