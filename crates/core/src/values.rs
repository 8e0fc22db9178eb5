//! Validation, normalisation and views of typed values, in one place.
//!
//! A value arrives as JSON, is checked by its field's type and normalised (the form that is
//! sealed), gives a blind-index form (the form that is hashed for equality search), and is shown
//! through a [`View`]. Errors name the rule, never the value.

use crate::schema::{FieldSpec, FieldType};
use boveda_crypto::Pii;
use boveda_detect::checksum;

pub use boveda_policy::View;

/// The marker shown for redacted values.
pub const REDACTED: &str = "[redacted]";

/// A value normalised for sealing, with its blind-index form when the field is searchable.
pub struct Normalised {
    /// The form that is sealed.
    pub stored: Pii<String>,
    /// The form that is hashed for the blind index.
    pub index: Pii<String>,
}

/// Largest free-text value, in bytes.
pub const MAX_FREE_TEXT: usize = 64 * 1024;
/// Largest short string, in characters.
pub const MAX_STRING: usize = 4096;

fn no_controls(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn compact(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.'))
        .collect()
}

/// Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Today's date in UTC.
pub fn today() -> (i64, u32, u32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    civil_from_days(secs.div_euclid(86_400))
}

/// Parses `YYYY-MM-DD` into a date that exists.
pub fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    (y >= 1 && checksum::date_exists(y, m, d)).then_some((i64::from(y), m, d))
}

/// Validates and normalises one JSON value for a field.
///
/// # Errors
/// The name of the rule that failed (a stable snake_case string), never the value.
pub fn normalise(
    spec: &FieldSpec,
    value: &serde_json::Value,
    default_region: &str,
) -> Result<Normalised, &'static str> {
    if spec.kind == FieldType::Integer {
        let n = value.as_i64().ok_or("integer")?;
        let s = n.to_string();
        return Ok(Normalised {
            index: Pii::new(s.clone()),
            stored: Pii::new(s),
        });
    }
    let raw = value.as_str().ok_or("string_expected")?;
    let (stored, index) = match spec.kind {
        FieldType::Email => {
            let s = raw.trim();
            let (local, domain) = s.rsplit_once('@').ok_or("email_format")?;
            let local_ok = !local.is_empty()
                && local.len() <= 64
                && !local.starts_with('.')
                && !local.ends_with('.')
                && !local.contains("..")
                && local
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&c));
            let labels_ok = domain.len() <= 253
                && domain.contains('.')
                && domain.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.chars().all(|c| c.is_alphanumeric() || c == '-')
                });
            if !local_ok || !labels_ok || s.len() > 254 {
                return Err("email_format");
            }
            let stored = format!("{local}@{}", domain.to_lowercase());
            (stored.clone(), stored.to_lowercase())
        }
        FieldType::Phone => {
            let e164 = crate::phone::normalise(raw, default_region).map_err(|e| match e {
                crate::phone::PhoneError::Characters => "phone_characters",
                crate::phone::PhoneError::Length => "phone_e164_length",
            })?;
            (e164.clone(), e164)
        }
        FieldType::PersonName => {
            let s = collapse_spaces(raw);
            if s.is_empty()
                || s.chars().count() > 200
                || !no_controls(&s)
                || !s.chars().any(char::is_alphabetic)
            {
                return Err("person_name");
            }
            let idx = s.to_lowercase();
            (s, idx)
        }
        FieldType::NationalId => {
            let s = compact(raw).to_uppercase();
            let ok = match spec.country.as_deref() {
                Some("CN") => checksum::cn_resident_id_valid(&s),
                Some("ES") => checksum::es_dni_valid(&s) || checksum::es_nie_valid(&s),
                Some("US") => checksum::us_ssn_valid(&s),
                _ => false,
            };
            if !ok {
                return Err(match spec.country.as_deref() {
                    Some("CN") => "cn_resident_id_gb11643",
                    Some("ES") => "es_dni_nie_letter",
                    _ => "us_ssn_format",
                });
            }
            (s.clone(), s)
        }
        FieldType::DateOfBirth => {
            let s = raw.trim();
            let d = parse_date(s).ok_or("date_exists")?;
            if d > today() || d.0 < 1900 {
                return Err("date_of_birth_range");
            }
            (s.to_owned(), s.to_owned())
        }
        FieldType::Date => {
            let s = raw.trim();
            parse_date(s).ok_or("date_exists")?;
            (s.to_owned(), s.to_owned())
        }
        FieldType::Address => {
            let s = collapse_spaces(raw);
            if s.is_empty() || s.chars().count() > 500 || !no_controls(&s) {
                return Err("address");
            }
            let idx = s.to_lowercase();
            (s, idx)
        }
        FieldType::BankCard => {
            let s = compact(raw);
            if !(12..=19).contains(&s.len()) || !checksum::luhn_valid(&s) {
                return Err("bank_card_luhn");
            }
            (s.clone(), s)
        }
        FieldType::Iban => {
            let s = compact(raw).to_uppercase();
            if !checksum::iban_valid(&s) {
                return Err("iban_mod97");
            }
            (s.clone(), s)
        }
        FieldType::IpAddress => {
            let ip: std::net::IpAddr = raw.trim().parse().map_err(|_| "ip_address")?;
            let s = ip.to_string();
            (s.clone(), s)
        }
        FieldType::FreeText => {
            if raw.len() > MAX_FREE_TEXT {
                return Err("free_text_at_most_64_kib");
            }
            (raw.to_owned(), String::new())
        }
        FieldType::String => {
            if raw.chars().count() > MAX_STRING || !no_controls(raw) {
                return Err("string_at_most_4096_chars");
            }
            (raw.to_owned(), raw.to_owned())
        }
        FieldType::Integer => return Err("integer"),
    };
    Ok(Normalised {
        stored: Pii::new(stored),
        index: Pii::new(index),
    })
}

/// The masked form of a normalised value. The one place where masks are defined.
pub fn mask(kind: FieldType, stored: &str) -> String {
    let chars: Vec<char> = stored.chars().collect();
    let first = |n: usize| chars.iter().take(n).collect::<String>();
    match kind {
        FieldType::Email => match stored.rsplit_once('@') {
            Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
            None => REDACTED.to_owned(),
        },
        FieldType::Phone => crate::phone::mask(stored),
        FieldType::PersonName => format!("{}**", first(1)),
        FieldType::NationalId => match chars.len() {
            0..=2 => "*".repeat(chars.len()),
            n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
        },
        FieldType::DateOfBirth | FieldType::Date => format!("{}-**-**", first(4)),
        FieldType::Address => format!("{}***", first(3)),
        FieldType::BankCard => format!(
            "**** **** **** {}",
            &stored[stored.len().saturating_sub(4)..]
        ),
        FieldType::Iban => format!(
            "{} **** {}",
            first(4),
            &stored[stored.len().saturating_sub(4)..]
        ),
        FieldType::IpAddress => match stored.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => {
                let o = v4.octets();
                format!("{}.{}.*.*", o[0], o[1])
            }
            Ok(std::net::IpAddr::V6(v6)) => {
                format!("{:x}:{:x}:*", v6.segments()[0], v6.segments()[1])
            }
            Err(_) => REDACTED.to_owned(),
        },
        FieldType::FreeText => REDACTED.to_owned(),
        FieldType::String => format!("{}***", first(1)),
        FieldType::Integer => "***".to_owned(),
    }
}

/// The JSON a reader gets for a normalised value in a view.
pub fn show(kind: FieldType, stored: &str, view: View) -> serde_json::Value {
    match view {
        View::Redacted => serde_json::Value::String(REDACTED.to_owned()),
        View::Masked => serde_json::Value::String(mask(kind, stored)),
        View::Plain => match kind {
            FieldType::Integer => stored
                .parse::<i64>()
                .map_or_else(|_| serde_json::Value::Null, serde_json::Value::from),
            _ => serde_json::Value::String(stored.to_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::schema::{Category, Grade};
    use serde_json::json;

    fn field(kind: FieldType, country: Option<&str>) -> FieldSpec {
        FieldSpec {
            kind,
            country: country.map(str::to_owned),
            category: Category::Other,
            grade: Grade::L2,
            searchable: true,
            required: false,
        }
    }

    fn ok(kind: FieldType, country: Option<&str>, v: serde_json::Value) -> String {
        normalise(&field(kind, country), &v, "CN")
            .map(|n| n.stored.expose().clone())
            .unwrap()
    }

    fn bad(kind: FieldType, country: Option<&str>, v: serde_json::Value) -> &'static str {
        normalise(&field(kind, country), &v, "CN").err().unwrap()
    }

    #[test]
    fn good_values_are_normalised() {
        assert_eq!(
            ok(FieldType::Email, None, json!(" Ana.Lopez@Example.COM ")),
            "Ana.Lopez@example.com"
        );
        assert_eq!(
            ok(FieldType::Phone, None, json!("138 1234 5678")),
            "+8613812345678"
        );
        assert_eq!(
            ok(FieldType::PersonName, None, json!("  Ana   López ")),
            "Ana López"
        );
        assert_eq!(
            ok(
                FieldType::NationalId,
                Some("CN"),
                json!("11010519491231002x")
            ),
            "11010519491231002X"
        );
        assert_eq!(
            ok(FieldType::NationalId, Some("ES"), json!("12345678-z")),
            "12345678Z"
        );
        assert_eq!(
            ok(FieldType::NationalId, Some("ES"), json!("X1234567L")),
            "X1234567L"
        );
        assert_eq!(
            ok(FieldType::NationalId, Some("US"), json!("123-45-6789")),
            "123456789"
        );
        assert_eq!(
            ok(FieldType::DateOfBirth, None, json!("1990-02-28")),
            "1990-02-28"
        );
        assert_eq!(
            ok(FieldType::BankCard, None, json!("4111 1111 1111 1111")),
            "4111111111111111"
        );
        assert_eq!(
            ok(
                FieldType::Iban,
                None,
                json!("es91 2100 0418 4502 0005 1332")
            ),
            "ES9121000418450200051332"
        );
        assert_eq!(
            ok(FieldType::IpAddress, None, json!("2001:0db8::0001")),
            "2001:db8::1"
        );
        assert_eq!(ok(FieldType::Integer, None, json!(42)), "42");
        assert_eq!(ok(FieldType::Date, None, json!("2024-02-29")), "2024-02-29");
    }

    #[test]
    fn bad_values_name_the_rule() {
        assert_eq!(bad(FieldType::Email, None, json!("ana@")), "email_format");
        assert_eq!(
            bad(FieldType::Email, None, json!("ana@localhost")),
            "email_format"
        );
        assert_eq!(
            bad(FieldType::Phone, None, json!("12")),
            "phone_e164_length"
        );
        assert_eq!(
            bad(
                FieldType::NationalId,
                Some("CN"),
                json!("110105194912310021")
            ),
            "cn_resident_id_gb11643"
        );
        assert_eq!(
            bad(FieldType::NationalId, Some("ES"), json!("12345678A")),
            "es_dni_nie_letter"
        );
        assert_eq!(
            bad(FieldType::BankCard, None, json!("4111111111111112")),
            "bank_card_luhn"
        );
        assert_eq!(
            bad(FieldType::Iban, None, json!("GB82WEST12345698765433")),
            "iban_mod97"
        );
        assert_eq!(
            bad(FieldType::Date, None, json!("2023-02-29")),
            "date_exists"
        );
        assert_eq!(
            bad(FieldType::DateOfBirth, None, json!("2999-01-01")),
            "date_of_birth_range"
        );
        assert_eq!(
            bad(FieldType::IpAddress, None, json!("300.1.1.1")),
            "ip_address"
        );
        assert_eq!(bad(FieldType::Integer, None, json!("42")), "integer");
        assert_eq!(bad(FieldType::Email, None, json!(7)), "string_expected");
        assert_eq!(
            bad(FieldType::PersonName, None, json!("   ")),
            "person_name"
        );
        assert_eq!(
            bad(
                FieldType::FreeText,
                None,
                json!("x".repeat(MAX_FREE_TEXT + 1))
            ),
            "free_text_at_most_64_kib"
        );
    }

    #[test]
    fn masks_by_type() {
        assert_eq!(
            mask(FieldType::Email, "juan@example.com"),
            "j***@example.com"
        );
        assert_eq!(mask(FieldType::Phone, "+8613812345678"), "+86 138****5678");
        assert_eq!(
            mask(FieldType::BankCard, "4111111111111234"),
            "**** **** **** 1234"
        );
        assert_eq!(
            mask(FieldType::NationalId, "11010519491231002X"),
            "1****************X"
        );
        assert_eq!(mask(FieldType::PersonName, "Juan García"), "J**");
        assert_eq!(mask(FieldType::PersonName, "张三"), "张**");
        assert_eq!(mask(FieldType::FreeText, "anything"), REDACTED);
        assert_eq!(mask(FieldType::IpAddress, "192.168.1.20"), "192.168.*.*");
    }

    #[test]
    fn views_never_show_more_than_asked() {
        let v = show(FieldType::Phone, "+8613812345678", View::Masked);
        assert!(!v.as_str().unwrap().contains("1234"));
        assert_eq!(
            show(FieldType::Phone, "+8613812345678", View::Redacted),
            json!(REDACTED)
        );
        assert_eq!(show(FieldType::Integer, "42", View::Plain), json!(42));
        assert!(View::Plain > View::Masked && View::Masked > View::Redacted);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    proptest::proptest! {
        #[test]
        fn masked_never_contains_the_middle_of_a_phone(n in 13_000_000_000u64..13_999_999_999u64) {
            let e164 = format!("+86{n}");
            let m = mask(FieldType::Phone, &e164);
            proptest::prop_assert!(!m.contains(&e164[6..10]) || m.matches('*').count() == 4);
            proptest::prop_assert_eq!(m.matches('*').count(), 4);
        }
    }
}
