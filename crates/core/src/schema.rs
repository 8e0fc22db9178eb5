//! Collection schemas: typed fields with a category and a grade. A schema holds no personal
//! data and is stored as JSON.

use crate::Error;
use serde::{Deserialize, Serialize};

/// The PII type of a field: it decides validation, normalisation, the blind-index form and the
/// masked view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// An email address.
    Email,
    /// A phone number, stored in E.164.
    Phone,
    /// A person's name.
    PersonName,
    /// A national identity number of the field's `country` (CN, ES or US).
    NationalId,
    /// A date of birth, `YYYY-MM-DD`, not in the future.
    DateOfBirth,
    /// A postal address.
    Address,
    /// A payment card number (Luhn).
    BankCard,
    /// An IBAN (mod-97).
    Iban,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// Free text; never searchable, masked as redacted.
    FreeText,
    /// A short string.
    String,
    /// A 64-bit integer.
    Integer,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
}

pub use boveda_policy::{Category, Grade};

/// One field of a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// PII type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Issuing country of a `national_id` (ISO 3166 alpha-2); required for that type only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Category.
    pub category: Category,
    /// Grade.
    pub grade: Grade,
    /// Equality search by blind index.
    #[serde(default)]
    pub searchable: bool,
    /// Every record must have it.
    #[serde(default)]
    pub required: bool,
}

/// A collection's schema: fields by name, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionSpec {
    /// Fields by name.
    pub fields: std::collections::BTreeMap<String, FieldSpec>,
}

/// Most fields a collection may have.
pub const MAX_FIELDS: usize = 256;

/// Whether a name is a valid collection or field name: `[a-z][a-z0-9_]{0,62}`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

impl CollectionSpec {
    /// Checks the schema on its own and against the schema it replaces.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field and the rule, or [`Error::Conflict`] when an existing
    /// field would change its type, country or searchability (existing ciphertexts and indexes
    /// were made for the old definition).
    pub fn check(&self, previous: Option<&CollectionSpec>) -> Result<(), Error> {
        if self.fields.is_empty() {
            return Err(Error::invalid("fields", "at_least_one_field"));
        }
        if self.fields.len() > MAX_FIELDS {
            return Err(Error::invalid("fields", "at_most_256_fields"));
        }
        for (name, f) in &self.fields {
            if !valid_name(name) {
                return Err(Error::invalid(
                    format!("fields.{}", crate::error::safe_name(name)),
                    "field_name",
                ));
            }
            match (f.kind, f.country.as_deref()) {
                (FieldType::NationalId, Some("CN" | "ES" | "US")) => {}
                (FieldType::NationalId, Some(_)) => {
                    return Err(Error::invalid(
                        format!("fields.{name}.country"),
                        "supported_country_cn_es_us",
                    ));
                }
                (FieldType::NationalId, None) => {
                    return Err(Error::invalid(
                        format!("fields.{name}.country"),
                        "required_for_national_id",
                    ));
                }
                (_, Some(_)) => {
                    return Err(Error::invalid(
                        format!("fields.{name}.country"),
                        "only_for_national_id",
                    ));
                }
                _ => {}
            }
            if f.searchable && f.kind == FieldType::FreeText {
                return Err(Error::invalid(
                    format!("fields.{name}.searchable"),
                    "free_text_not_searchable",
                ));
            }
            if let Some(old) = previous.and_then(|p| p.fields.get(name))
                && (old.kind != f.kind
                    || old.country != f.country
                    || old.searchable != f.searchable)
            {
                return Err(Error::Conflict(format!(
                    "field `{name}` exists with another type, country or searchability; add a new field instead"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(json: &str) -> CollectionSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn national_id_needs_a_supported_country() {
        let ok = spec(
            r#"{"fields":{"dni":{"type":"national_id","country":"ES","category":"identity","grade":"L3"}}}"#,
        );
        assert!(ok.check(None).is_ok());
        let none =
            spec(r#"{"fields":{"dni":{"type":"national_id","category":"identity","grade":"L3"}}}"#);
        assert!(none.check(None).is_err());
        let fr = spec(
            r#"{"fields":{"dni":{"type":"national_id","country":"FR","category":"identity","grade":"L3"}}}"#,
        );
        assert!(fr.check(None).is_err());
    }

    #[test]
    fn unknown_keys_and_types_are_refused() {
        assert!(
            serde_json::from_str::<CollectionSpec>(
                r#"{"fields":{"a":{"type":"email","category":"contact","grade":"L2","x":1}}}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<CollectionSpec>(
                r#"{"fields":{"a":{"type":"blood","category":"contact","grade":"L2"}}}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<CollectionSpec>(
                r#"{"fields":{"a":{"type":"email","category":"contact","grade":"L5"}}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn changing_a_field_type_is_a_conflict() {
        let a = spec(r#"{"fields":{"a":{"type":"email","category":"contact","grade":"L2"}}}"#);
        let b = spec(r#"{"fields":{"a":{"type":"phone","category":"contact","grade":"L2"}}}"#);
        let c = spec(
            r#"{"fields":{"a":{"type":"email","category":"contact","grade":"L3","required":true}}}"#,
        );
        assert!(matches!(b.check(Some(&a)), Err(Error::Conflict(_))));
        assert!(c.check(Some(&a)).is_ok());
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("email_2"));
        assert!(!valid_name("2email"));
        assert!(!valid_name("Email"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(64)));
    }
}
