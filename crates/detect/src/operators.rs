//! De-identification operators applied to findings: replace, redact, mask, generalise, keep,
//! and a trait through which keyed operators (keyed hash, encryption, vault tokens, FF1, date
//! shift per subject) are plugged in by the crate that owns the keys.
//!
//! This module holds no keys and never falls back to revealing a value: when a generalisation
//! cannot parse a value it replaces it with the entity type instead.

use std::collections::HashMap;
use std::sync::Arc;

use crate::entity::Entity;
use crate::error::Error;
use crate::finding::Finding;
use crate::language::Language;

/// An operator that needs a key the detection crate does not hold.
///
/// Implementations must be deterministic where the operator promises it (a keyed hash or a
/// vault token gives the same output for the same value within a scope) and must never put the
/// value into an error.
pub trait KeyedOperator: Send + Sync {
    /// The operator's name in anonymizer items (`hash`, `encrypt`, `vault_token`, `ff1`).
    fn name(&self) -> &str;
    /// The replacement for `value`, found as entity `entity`.
    ///
    /// # Errors
    /// [`Error::OperatorFailed`] naming the operator and the reason, never the value.
    fn apply(&self, entity: &str, value: &str) -> Result<String, Error>;
}

/// How to coarsen a value instead of hiding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Generalisation {
    /// A date becomes its year (`2024`).
    DateToYear,
    /// A date becomes its year and month (`2024-05`).
    DateToMonth,
    /// A number (an age) becomes a bucket of the given width (`30-39` for width 10).
    AgeBucket {
        /// Width of a bucket, at least 1.
        width: u32,
    },
    /// A postal code keeps its first `keep` characters, the rest become `*` (`28***`).
    PostalPrefix {
        /// How many leading characters stay.
        keep: usize,
    },
}

/// What to do with a finding.
#[derive(Clone)]
#[non_exhaustive]
pub enum Operator {
    /// Replace with `new_value`, or with `<ENTITY_TYPE>` when it is `None` (Presidio's default).
    Replace {
        /// The replacement text.
        new_value: Option<String>,
    },
    /// Remove the value.
    Redact,
    /// Overwrite `chars_to_mask` characters with `masking_char`, from the start or the end
    /// (Presidio's `mask`; more characters than the value has masks all of them).
    Mask {
        /// The character written over the value.
        masking_char: char,
        /// How many characters to overwrite.
        chars_to_mask: usize,
        /// Whether to count from the end of the value.
        from_end: bool,
    },
    /// Coarsen the value.
    Generalise(Generalisation),
    /// Leave the value as it is (the finding is still reported as an item).
    Keep,
    /// An operator with a key, supplied from outside this crate.
    Keyed(Arc<dyn KeyedOperator>),
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operator::Keyed(k) => write!(f, "Keyed({})", k.name()),
            Operator::Replace { new_value } => f
                .debug_struct("Replace")
                .field("new_value", new_value)
                .finish(),
            Operator::Redact => f.write_str("Redact"),
            Operator::Mask {
                masking_char,
                chars_to_mask,
                from_end,
            } => f
                .debug_struct("Mask")
                .field("masking_char", masking_char)
                .field("chars_to_mask", chars_to_mask)
                .field("from_end", from_end)
                .finish(),
            Operator::Generalise(g) => write!(f, "Generalise({g:?})"),
            Operator::Keep => f.write_str("Keep"),
        }
    }
}

impl Operator {
    /// The name used in anonymizer items (`replace`, `redact`, `mask`, `generalise`, `keep`,
    /// or the keyed operator's own name).
    pub fn name(&self) -> &str {
        match self {
            Operator::Replace { .. } => "replace",
            Operator::Redact => "redact",
            Operator::Mask { .. } => "mask",
            Operator::Generalise(_) => "generalise",
            Operator::Keep => "keep",
            Operator::Keyed(k) => k.name(),
        }
    }

    /// A mask, checked: the masking character must be a single character (Presidio rejects
    /// longer strings too).
    ///
    /// # Errors
    /// [`Error::InvalidOperator`] when `masking_char` is not exactly one character.
    pub fn mask(masking_char: &str, chars_to_mask: usize, from_end: bool) -> Result<Self, Error> {
        let mut chars = masking_char.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(Operator::Mask {
                masking_char: c,
                chars_to_mask,
                from_end,
            }),
            _ => Err(Error::InvalidOperator {
                operator: "mask".into(),
                reason: "masking_char must be exactly one character".into(),
            }),
        }
    }

    fn apply(&self, entity: &Entity, value: &str, lang: Language) -> Result<String, Error> {
        Ok(match self {
            Operator::Replace { new_value: Some(v) } => v.clone(),
            Operator::Replace { new_value: None } => format!("<{}>", entity.as_str()),
            Operator::Redact => String::new(),
            Operator::Keep => value.to_owned(),
            Operator::Mask {
                masking_char,
                chars_to_mask,
                from_end,
            } => mask(value, *masking_char, *chars_to_mask, *from_end),
            Operator::Generalise(g) => {
                generalise(value, *g, lang).unwrap_or_else(|| format!("<{}>", entity.as_str()))
            }
            Operator::Keyed(k) => k.apply(entity.as_str(), value)?,
        })
    }
}

/// Which operator applies to which entity; `default` covers every entity without an entry
/// (Presidio's `DEFAULT`), and is `replace` unless set.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The operator for entities without their own entry.
    pub default: Operator,
    /// Operators by entity name (`PHONE_NUMBER`).
    pub per_entity: HashMap<String, Operator>,
    /// The text's language, used to read ambiguous numeric dates when generalising.
    pub language: Language,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            default: Operator::Replace { new_value: None },
            per_entity: HashMap::new(),
            language: Language::En,
        }
    }
}

impl OperatorConfig {
    /// The operator for `entity`.
    pub fn operator(&self, entity: &Entity) -> &Operator {
        self.per_entity
            .get(entity.as_str())
            .unwrap_or(&self.default)
    }
}

/// A span to de-identify: a finding, or a result handed in by a client (Presidio's
/// `analyzer_results`) once its character offsets are turned into bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The kind of data.
    pub entity: Entity,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// The score, used to choose between overlapping spans.
    pub score: f32,
}

impl From<&Finding> for Span {
    fn from(f: &Finding) -> Span {
        Span {
            entity: f.entity.clone(),
            start: f.start,
            end: f.end,
            score: f.score,
        }
    }
}

/// The de-identified text and what was done where (Presidio's anonymizer result).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Anonymized {
    /// The output text.
    pub text: String,
    /// One item per span, in text order.
    pub items: Vec<Item>,
}

/// One operation, exactly Presidio's item shape: offsets point into the OUTPUT text and are
/// counted in characters, as Presidio counts them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Item {
    /// The operator's name.
    pub operator: String,
    /// The entity name.
    pub entity_type: String,
    /// Character offset of the replacement in the output text.
    pub start: usize,
    /// Character offset one past the replacement in the output text.
    pub end: usize,
    /// The replacement text.
    pub text: String,
    /// Byte offset of the replacement in the output text (not part of Presidio's shape).
    #[serde(skip)]
    pub byte_start: usize,
    /// Byte offset one past the replacement in the output text.
    #[serde(skip)]
    pub byte_end: usize,
}

/// The byte offset of character `char_index` of `text`, or `None` past the end; converts
/// Presidio's character offsets for [`Span`].
pub fn byte_offset(text: &str, char_index: usize) -> Option<usize> {
    if char_index == text.chars().count() {
        return Some(text.len());
    }
    text.char_indices().nth(char_index).map(|(i, _)| i)
}

/// Apply `config` to `spans` of `text`.
///
/// Spans out of bounds or off character boundaries are rejected. Overlapping spans are
/// resolved first: the longer span wins, then the higher score, then the earlier start, so the
/// output never contains a half-replaced value.
///
/// # Errors
/// [`Error::InvalidOperator`] for a span that does not fit the text, or the error of a keyed
/// operator.
pub fn anonymize(text: &str, spans: &[Span], config: &OperatorConfig) -> Result<Anonymized, Error> {
    for s in spans {
        if s.start > s.end
            || s.end > text.len()
            || !text.is_char_boundary(s.start)
            || !text.is_char_boundary(s.end)
        {
            return Err(Error::InvalidOperator {
                operator: "anonymize".into(),
                reason: "a result's offsets do not fit the text".into(),
            });
        }
    }
    let mut order: Vec<&Span> = spans.iter().filter(|s| s.start < s.end).collect();
    order.sort_by(|a, b| {
        (b.end - b.start)
            .cmp(&(a.end - a.start))
            .then(b.score.total_cmp(&a.score))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<&Span> = Vec::new();
    for s in order {
        if kept.iter().all(|k| k.end <= s.start || s.end <= k.start) {
            kept.push(s);
        }
    }
    kept.sort_by_key(|s| s.start);
    let mut out = String::with_capacity(text.len());
    let mut items = Vec::with_capacity(kept.len());
    let mut at = 0;
    let mut out_chars = 0;
    for s in kept {
        let between = &text[at..s.start];
        out.push_str(between);
        out_chars += between.chars().count();
        let op = config.operator(&s.entity);
        let new = op.apply(&s.entity, &text[s.start..s.end], config.language)?;
        let byte_start = out.len();
        out.push_str(&new);
        let n = new.chars().count();
        items.push(Item {
            operator: op.name().to_owned(),
            entity_type: s.entity.as_str().to_owned(),
            start: out_chars,
            end: out_chars + n,
            text: new,
            byte_start,
            byte_end: out.len(),
        });
        out_chars += n;
        at = s.end;
    }
    out.push_str(&text[at..]);
    Ok(Anonymized { text: out, items })
}

fn mask(value: &str, c: char, count: usize, from_end: bool) -> String {
    let len = value.chars().count();
    let n = count.min(len);
    value
        .chars()
        .enumerate()
        .map(|(i, ch)| {
            let masked = if from_end { i >= len - n } else { i < n };
            if masked { c } else { ch }
        })
        .collect()
}

/// A parsed calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ymd {
    y: i64,
    m: u32,
    d: Option<u32>,
}

const MONTHS: &[(&str, u32)] = &[
    ("january", 1),
    ("february", 2),
    ("march", 3),
    ("april", 4),
    ("may", 5),
    ("june", 6),
    ("july", 7),
    ("august", 8),
    ("september", 9),
    ("october", 10),
    ("november", 11),
    ("december", 12),
    ("jan", 1),
    ("feb", 2),
    ("mar", 3),
    ("apr", 4),
    ("jun", 6),
    ("jul", 7),
    ("aug", 8),
    ("sept", 9),
    ("sep", 9),
    ("oct", 10),
    ("nov", 11),
    ("dec", 12),
    ("enero", 1),
    ("febrero", 2),
    ("marzo", 3),
    ("abril", 4),
    ("mayo", 5),
    ("junio", 6),
    ("julio", 7),
    ("agosto", 8),
    ("septiembre", 9),
    ("setiembre", 9),
    ("octubre", 10),
    ("noviembre", 11),
    ("diciembre", 12),
];

/// Read a date in the formats the detector finds: ISO, numeric with `/`, `-` or `.`, month
/// names in English or Spanish, and `2024年5月3日`.
fn parse_date(value: &str, lang: Language) -> Option<Ymd> {
    let nums: Vec<&str> = value
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .collect();
    let lower = value.to_lowercase();
    let month_name = lower
        .split(|c: char| !c.is_alphabetic())
        .find_map(|w| MONTHS.iter().find(|(n, _)| *n == w).map(|(_, m)| *m));
    let num = |s: &str| s.parse::<u32>().ok();
    let ymd = match (month_name, nums.as_slice()) {
        (Some(m), [d, y]) if y.len() == 4 => Ymd {
            y: i64::from(num(y)?),
            m,
            d: Some(num(d)?),
        },
        (Some(m), [y]) if y.len() == 4 => Ymd {
            y: i64::from(num(y)?),
            m,
            d: None,
        },
        (None, [y, m, d]) if y.len() == 4 => Ymd {
            y: i64::from(num(y)?),
            m: num(m)?,
            d: Some(num(d)?),
        },
        (None, [y, m]) if y.len() == 4 => Ymd {
            y: i64::from(num(y)?),
            m: num(m)?,
            d: None,
        },
        (None, [a, b, y]) if y.len() == 4 => {
            let (a, b) = (num(a)?, num(b)?);
            // English writes month first, Spanish and Chinese day first; a value over 12 settles it.
            let (m, d) = match lang {
                _ if a > 12 => (b, a),
                _ if b > 12 => (a, b),
                Language::En => (a, b),
                _ => (b, a),
            };
            Ymd {
                y: i64::from(num(y)?),
                m,
                d: Some(d),
            }
        }
        _ => return None,
    };
    let valid_day = ymd.d.is_none_or(|d| {
        u32::try_from(ymd.y).is_ok_and(|y| crate::checksum::date_exists(y, ymd.m, d))
    });
    ((1..=12).contains(&ymd.m) && valid_day).then_some(ymd)
}

fn generalise(value: &str, g: Generalisation, lang: Language) -> Option<String> {
    match g {
        Generalisation::DateToYear => parse_date(value, lang).map(|d| format!("{:04}", d.y)),
        Generalisation::DateToMonth => {
            parse_date(value, lang).map(|d| format!("{:04}-{:02}", d.y, d.m))
        }
        Generalisation::AgeBucket { width } => {
            let width = width.max(1);
            let age: u32 = value.trim().parse().ok()?;
            let lo = age / width * width;
            Some(if width == 1 {
                lo.to_string()
            } else {
                format!("{lo}-{}", lo + width - 1)
            })
        }
        Generalisation::PostalPrefix { keep } => {
            let n = value.chars().count();
            Some(mask(value, '*', n.saturating_sub(keep), true))
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Shift a date by `days`, keeping its format: `2024-05-03` (with any time suffix kept as is),
/// `03/05/2024` and `03.05.2024` read in the order of `lang`, and `2024年5月3日`. Returns
/// `None` for anything else, so that the caller can fall back to replacing the value.
///
/// The day count is the caller's: a keyed operator derives it from the subject's key so that
/// every date of one subject moves by the same amount and intervals are preserved.
pub fn shift_date(value: &str, days: i64, lang: Language) -> Option<String> {
    let b = value.as_bytes();
    let iso = b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b[..4]
            .iter()
            .chain(&b[5..7])
            .chain(&b[8..10])
            .all(u8::is_ascii_digit);
    let parsed = parse_date(if iso { &value[..10] } else { value }, lang)?;
    let d = parsed.d?;
    let (y, m, dd) = civil_from_days(days_from_civil(parsed.y, parsed.m, d) + days);
    if iso {
        return Some(format!("{y:04}-{m:02}-{dd:02}{}", &value[10..]));
    }
    if value.contains('年') {
        return Some(format!("{y}年{m}月{dd}日"));
    }
    for sep in ['/', '.', '-'] {
        let parts: Vec<&str> = value.split(sep).collect();
        if parts.len() == 3 && parts.iter().all(|p| p.bytes().all(|c| c.is_ascii_digit())) {
            let a: u32 = parts[0].parse().ok()?;
            let month_first = a == parsed.m && a <= 12 && (lang == Language::En || d > 12);
            return Some(if month_first {
                format!("{m:02}{sep}{dd:02}{sep}{y:04}")
            } else {
                format!("{dd:02}{sep}{m:02}{sep}{y:04}")
            });
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn span(entity: Entity, text: &str, value: &str) -> Span {
        let start = text.find(value).unwrap();
        Span {
            entity,
            start,
            end: start + value.len(),
            score: 1.0,
        }
    }

    #[test]
    fn replace_redact_and_items_point_into_the_output() {
        let text = "张伟的电话13800138000, mail ana@example.com";
        let spans = [
            span(Entity::Person, text, "张伟"),
            span(Entity::PhoneNumber, text, "13800138000"),
            span(Entity::EmailAddress, text, "ana@example.com"),
        ];
        let mut config = OperatorConfig::default();
        config
            .per_entity
            .insert("EMAIL_ADDRESS".into(), Operator::Redact);
        let out = anonymize(text, &spans, &config).unwrap();
        assert_eq!(out.text, "<PERSON>的电话<PHONE_NUMBER>, mail ");
        let chars: Vec<char> = out.text.chars().collect();
        for item in &out.items {
            let slice: String = chars[item.start..item.end].iter().collect();
            assert_eq!(slice, item.text);
            assert_eq!(&out.text[item.byte_start..item.byte_end], item.text);
        }
        assert_eq!(out.items[2].operator, "redact");
    }

    #[test]
    fn mask_has_presidio_semantics() {
        assert_eq!(mask("4111111111111111", '*', 12, false), "************1111");
        assert_eq!(mask("612345678", '#', 3, true), "612345###");
        assert_eq!(mask("abc", '*', 10, false), "***");
        assert!(Operator::mask("**", 1, false).is_err());
    }

    #[test]
    fn generalise_dates_ages_and_postcodes() {
        let g = |v: &str, k| generalise(v, k, Language::Es);
        assert_eq!(
            g("2024-05-03", Generalisation::DateToYear).as_deref(),
            Some("2024")
        );
        assert_eq!(
            g("3 de mayo de 2024", Generalisation::DateToMonth).as_deref(),
            Some("2024-05")
        );
        assert_eq!(
            g("2024年5月3日", Generalisation::DateToMonth).as_deref(),
            Some("2024-05")
        );
        assert_eq!(
            g("03/05/2024", Generalisation::DateToMonth).as_deref(),
            Some("2024-05")
        );
        assert_eq!(
            generalise("03/05/2024", Generalisation::DateToMonth, Language::En).as_deref(),
            Some("2024-03")
        );
        assert_eq!(
            g("37", Generalisation::AgeBucket { width: 10 }).as_deref(),
            Some("30-39")
        );
        assert_eq!(
            g("28013", Generalisation::PostalPrefix { keep: 2 }).as_deref(),
            Some("28***")
        );
        // Unparseable values are replaced, never kept.
        let op = Operator::Generalise(Generalisation::DateToYear);
        assert_eq!(
            op.apply(&Entity::DateTime, "someday", Language::En)
                .unwrap(),
            "<DATE_TIME>"
        );
    }

    #[test]
    fn date_shift_keeps_format_and_intervals() {
        assert_eq!(
            shift_date("2024-02-28", 2, Language::En).as_deref(),
            Some("2024-03-01")
        );
        assert_eq!(
            shift_date("2024-12-31T10:00:00Z", 1, Language::En).as_deref(),
            Some("2025-01-01T10:00:00Z")
        );
        assert_eq!(
            shift_date("31/12/2023", -365, Language::Es).as_deref(),
            Some("31/12/2022")
        );
        assert_eq!(
            shift_date("2024年5月3日", 30, Language::Zh).as_deref(),
            Some("2024年6月2日")
        );
        assert_eq!(shift_date("not a date", 3, Language::En), None);
        for z in [-800_000, -1, 0, 1, 19_000, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    struct Upper;
    impl KeyedOperator for Upper {
        fn name(&self) -> &str {
            "upper"
        }
        fn apply(&self, _: &str, value: &str) -> Result<String, Error> {
            Ok(value.to_uppercase())
        }
    }

    #[test]
    fn keyed_operators_plug_in_and_overlaps_resolve() {
        let text = "ana@example.com";
        let spans = [
            span(Entity::EmailAddress, text, "ana@example.com"),
            span(Entity::Url, text, "example.com"),
        ];
        let config = OperatorConfig {
            default: Operator::Keyed(Arc::new(Upper)),
            ..Default::default()
        };
        let out = anonymize(text, &spans, &config).unwrap();
        assert_eq!(out.text, "ANA@EXAMPLE.COM");
        assert_eq!(out.items.len(), 1);
        assert_eq!(out.items[0].operator, "upper");
        let bad = [Span {
            entity: Entity::Url,
            start: 0,
            end: 99,
            score: 1.0,
        }];
        assert!(anonymize(text, &bad, &config).is_err());
    }
}
