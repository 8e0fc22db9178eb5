//! The number recognizer: one regex shape finds runs of digits with separators, and this
//! module decides what each run, or a sub-run of it, is: a card, a Chinese resident id, an SSN,
//! a phone, a numeric date, an IPv4 address or a postal code.
//!
//! Deciding here rather than with one regex per entity keeps the scan to one pass and lets the
//! check digits, not the order of patterns, pick the entity of an ambiguous digit string.

use crate::checksum;
use crate::entity::Entity;
use crate::finding::{Candidate, Validation};

const RECOGNIZER: &str = "NumberRecognizer";
/// A phone or card is at most six groups ("+34 91 123 45 67"); longer windows are not tried.
const MAX_GROUPS: usize = 6;

/// One maximal digit run inside a candidate, as byte offsets into the text.
#[derive(Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
}

/// What a span of digit groups was classified as.
struct Class {
    entity: Entity,
    score: f32,
    pattern: &'static str,
    validation: Option<Validation>,
}

fn class(entity: Entity, score: f32, pattern: &'static str, v: Option<Validation>) -> Class {
    Class {
        entity,
        score,
        pattern,
        validation: v,
    }
}

/// Classify the regex match `text[start..end]` and push what it holds.
pub(crate) fn scan(text: &str, start: usize, end: usize, out: &mut Vec<Candidate>) {
    let bytes = text.as_bytes();
    // A digit run glued to an ASCII word ("abc123", "x86_64") is not an identifier; a CJK
    // neighbour is fine because Chinese text has no spaces.
    if start > 0 && is_word_byte(bytes[start - 1]) {
        return;
    }
    if end < bytes.len() && is_word_byte(bytes[end]) {
        return;
    }
    // Decimals ("3.1415926535") and amounts ("1,234,567,890") are not identifiers.
    if start >= 2 && matches!(bytes[start - 1], b'.' | b',') && bytes[start - 2].is_ascii_digit() {
        return;
    }
    // Most matches hold a few groups: keep them on the stack, spill to the heap past that.
    let mut inline = [Group { start: 0, end: 0 }; 16];
    let mut n_inline = 0usize;
    let mut spilled: Vec<Group> = Vec::new();
    let mut i = start;
    while i < end {
        if bytes[i].is_ascii_digit() {
            let s = i;
            while i < end && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i < end && matches!(bytes[i], b'X' | b'x') && i + 1 == end {
                i += 1;
            }
            let group = Group { start: s, end: i };
            if !spilled.is_empty() {
                spilled.push(group);
            } else if n_inline < inline.len() {
                inline[n_inline] = group;
                n_inline += 1;
            } else {
                spilled.extend_from_slice(&inline);
                spilled.push(group);
            }
        } else {
            i += 1;
        }
    }
    let groups: &[Group] = if spilled.is_empty() {
        &inline[..n_inline]
    } else {
        &spilled
    };
    let mut g = 0;
    while g < groups.len() {
        let mut best: Option<(Class, usize, usize, usize)> = None;
        let last = groups.len().min(g + MAX_GROUPS);
        for j in (g + 1..=last).rev() {
            let (s, e) = span_bounds(bytes, start, end, groups, g, j);
            if let Some(c) = classify(bytes, s, e, &groups[g..j])
                && best.as_ref().is_none_or(|b| c.score > b.0.score)
            {
                best = Some((c, s, e, j));
            }
        }
        match best {
            Some((c, s, e, j)) => {
                out.push(Candidate::built_in(
                    c.entity,
                    (s, e),
                    c.score,
                    RECOGNIZER,
                    c.pattern,
                    c.validation,
                ));
                g = j;
            }
            None => g += 1,
        }
    }
}

/// The byte span of groups `g..j`, widened to a leading `+` or `(` and a closing `)`.
fn span_bounds(
    bytes: &[u8],
    lo: usize,
    hi: usize,
    groups: &[Group],
    g: usize,
    j: usize,
) -> (usize, usize) {
    let mut s = groups[g].start;
    let mut e = groups[j - 1].end;
    if s > lo && bytes[s - 1] == b'(' {
        s -= 1;
    }
    if s > lo && bytes[s - 1] == b'+' {
        s -= 1;
    }
    let opened = bytes[s..e].contains(&b'(');
    let closed = bytes[s..e].iter().filter(|&&b| b == b')').count();
    let opens = bytes[s..e].iter().filter(|&&b| b == b'(').count();
    if opened && opens > closed && e < hi && bytes[e] == b')' {
        e += 1;
    }
    (s, e)
}

pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn classify(bytes: &[u8], s: usize, e: usize, groups: &[Group]) -> Option<Class> {
    let n = groups.len();
    let mut digits = [0u8; 24];
    let mut len = 0usize;
    let mut has_x = false;
    for g in groups {
        for &b in &bytes[g.start..g.end] {
            if len == digits.len() {
                return None;
            }
            if b.is_ascii_digit() {
                digits[len] = b;
            } else {
                has_x = true;
                digits[len] = b'X';
            }
            len += 1;
        }
    }
    let d = std::str::from_utf8(&digits[..len]).ok()?;
    if n > MAX_GROUPS {
        return None;
    }
    let mut lens_buf = [0usize; MAX_GROUPS];
    let mut seps_buf: [&[u8]; MAX_GROUPS] = [&[]; MAX_GROUPS];
    for (k, g) in groups.iter().enumerate() {
        lens_buf[k] = g.end - g.start;
        if k + 1 < n {
            seps_buf[k] = &bytes[g.end..groups[k + 1].start];
        }
    }
    let lens = &lens_buf[..n];
    let seps = &seps_buf[..n.saturating_sub(1)];
    let uniform = |sep: &[u8]| seps.iter().all(|s| *s == sep);
    let plus = bytes[s] == b'+';
    let paren = bytes[s..e].contains(&b'(');

    if has_x {
        return (n == 1 && len == 18 && checksum::cn_resident_id_valid(d)).then(|| {
            class(
                Entity::CnResidentId,
                1.0,
                "cn resident id",
                Some(Validation::Mod11_2),
            )
        });
    }
    if plus {
        return international_phone(d);
    }
    if n == 3
        && !paren
        && (uniform(b"-") || uniform(b"/") || uniform(b"."))
        && let Some(c) = numeric_date(d, lens, seps[0])
    {
        return Some(c);
    }
    if n == 4 && uniform(b".") && lens.iter().all(|&l| l <= 3) {
        let text = std::str::from_utf8(&bytes[s..e]).ok()?;
        if text.parse::<std::net::Ipv4Addr>().is_ok() {
            return Some(class(
                Entity::IpAddress,
                0.85,
                "ipv4",
                Some(Validation::IpParse),
            ));
        }
        return None;
    }
    if n == 1 && len == 18 && checksum::cn_resident_id_valid(d) {
        return Some(class(
            Entity::CnResidentId,
            1.0,
            "cn resident id",
            Some(Validation::Mod11_2),
        ));
    }
    let spaced = n == 1 || uniform(b" ") || uniform(b"-");
    if (12..=19).contains(&len)
        && spaced
        && !paren
        && (n == 1 || lens.iter().all(|&l| l <= 6))
        && card_prefix(d, len)
        && checksum::luhn_valid(d)
    {
        return Some(class(
            Entity::CreditCard,
            1.0,
            "card",
            Some(Validation::Luhn),
        ));
    }
    if n == 3 && lens == [3, 2, 4] && (uniform(b"-") || uniform(b" ")) {
        if checksum::us_ssn_valid(d) {
            let score = if uniform(b"-") { 0.85 } else { 0.6 };
            return Some(class(
                Entity::UsSsn,
                score,
                "ssn",
                Some(Validation::SsnRules),
            ));
        }
        return None;
    }
    national_phone(d, lens, seps, paren).or_else(|| {
        if n != 1 {
            return None;
        }
        match len {
            9 if checksum::us_ssn_valid(d) => Some(class(
                Entity::UsSsn,
                0.3,
                "ssn (bare)",
                Some(Validation::SsnRules),
            )),
            // Postal codes (US ZIP, Spanish CP, Chinese 邮编) are only plausible with context.
            5 | 6 => Some(class(Entity::Location, 0.15, "postal code", None)),
            _ => None,
        }
    })
}

/// Issuer prefixes and lengths of the major card networks (ISO/IEC 7812 IIN ranges).
fn card_prefix(d: &str, len: usize) -> bool {
    let p2: u32 = d[..2].parse().unwrap_or(0);
    let p3: u32 = d[..3].parse().unwrap_or(0);
    let p4: u32 = d[..4].parse().unwrap_or(0);
    let p6: u32 = d[..6].parse().unwrap_or(0);
    match d.as_bytes()[0] {
        b'4' => matches!(len, 13 | 16 | 19),          // Visa
        b'5' if (51..=55).contains(&p2) => len == 16, // Mastercard
        b'5' => (12..=19).contains(&len) && matches!(p2, 50 | 56..=58), // Maestro
        b'2' => (2221..=2720).contains(&p4) && len == 16, // Mastercard 2-series
        b'3' if p2 == 34 || p2 == 37 => len == 15,    // Amex
        b'3' if (3528..=3589).contains(&p4) => (16..=19).contains(&len), // JCB
        b'3' if (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 => {
            (14..=19).contains(&len) // Diners Club
        }
        b'6' if p2 == 62 => (16..=19).contains(&len), // UnionPay
        b'6' if p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) => (16..=19).contains(&len),
        b'6' if (622126..=622925).contains(&p6) => (16..=19).contains(&len), // Discover co-brand
        b'6' => (12..=19).contains(&len) && matches!(p2, 60 | 63 | 67 | 68 | 69), // Maestro
        _ => false,
    }
}

/// Numeric dates with three groups: `yyyy-mm-dd`, `dd/mm/yyyy`, `mm/dd/yyyy`, `dd.mm.yy`...
fn numeric_date(d: &str, lens: &[usize], sep: &[u8]) -> Option<Class> {
    let num = |a: usize, b: usize| d[a..b].parse::<u32>().ok();
    let (l0, l1, l2) = (lens[0], lens[1], lens[2]);
    if l0 == 4 && (1..=2).contains(&l1) && (1..=2).contains(&l2) {
        let (y, m, day) = (num(0, 4)?, num(4, 4 + l1)?, num(4 + l1, 4 + l1 + l2)?);
        if (1900..=2100).contains(&y) && checksum::date_exists(y, m, day) {
            let score = if sep == b"-" { 0.85 } else { 0.75 };
            return Some(class(
                Entity::DateTime,
                score,
                "y-m-d",
                Some(Validation::DateExists),
            ));
        }
        return None;
    }
    if (1..=2).contains(&l0) && (1..=2).contains(&l1) && (l2 == 4 || l2 == 2) {
        let (a, b) = (num(0, l0)?, num(l0, l0 + l1)?);
        let y = num(l0 + l1, l0 + l1 + l2)?;
        let y = if l2 == 2 { 2000 + y } else { y };
        if l2 == 4 && !(1900..=2100).contains(&y) {
            return None;
        }
        if checksum::date_exists(y, b, a) || checksum::date_exists(y, a, b) {
            let score = if l2 == 4 { 0.75 } else { 0.45 };
            return Some(class(
                Entity::DateTime,
                score,
                "d/m/y",
                Some(Validation::DateExists),
            ));
        }
    }
    None
}

/// Numbers written with a leading `+` and a country calling code (ITU-T E.164: at most 15
/// digits). The codes of the corpus languages are checked against their national lengths.
fn international_phone(d: &str) -> Option<Class> {
    let len = d.len();
    let known = |cc: &str, total: &[usize]| d.starts_with(cc) && total.contains(&len);
    let plan = known("1", &[11])
        || (d.starts_with("861") && len == 13)
        || known("86", &[12, 13])
        || (known("34", &[11]) && matches!(d.as_bytes()[2], b'6'..=b'9'))
        || known("44", &[12, 13])
        || known("33", &[11])
        || known("49", &[11, 12, 13, 14])
        || known("52", &[12, 13])
        || known("39", &[11, 12, 13]);
    if plan {
        return Some(class(
            Entity::PhoneNumber,
            0.9,
            "international",
            Some(Validation::NumberingPlan),
        ));
    }
    (8..=15)
        .contains(&len)
        .then(|| class(Entity::PhoneNumber, 0.6, "international (other)", None))
}

/// National formats: Chinese mobiles and landlines, Spanish numbers, North American numbers.
fn national_phone(d: &str, lens: &[usize], seps: &[&[u8]], paren: bool) -> Option<Class> {
    let b = d.as_bytes();
    let len = d.len();
    let n = lens.len();
    let simple = |s: &&[u8]| matches!(*s, b" " | b"-" | b".");
    let all_simple = seps.iter().all(simple);
    let plan = Some(Validation::NumberingPlan);
    // Chinese mobile: 1[3-9] and nine more digits, often written 3-4-4.
    if len == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && !paren {
        if n == 1 {
            return Some(class(Entity::PhoneNumber, 0.75, "cn mobile", plan));
        }
        if lens == [3, 4, 4] && all_simple {
            return Some(class(Entity::PhoneNumber, 0.85, "cn mobile", plan));
        }
    }
    // Chinese landline: trunk 0, a 2-3 digit area code, 7-8 digits.
    if b[0] == b'0'
        && n == 2
        && (3..=4).contains(&lens[0])
        && (7..=8).contains(&lens[1])
        && (paren || seps[0] == b"-" || seps[0] == b" ")
    {
        return Some(class(Entity::PhoneNumber, 0.75, "cn landline", plan));
    }
    // Spanish: nine digits starting 6, 7 (mobile), 8 or 9 (fixed).
    if len == 9 && (b'6'..=b'9').contains(&b[0]) && !paren {
        let grouped = matches!(lens, [3, 3, 3] | [3, 2, 2, 2] | [2, 3, 2, 2] | [3, 6]);
        if n == 1 {
            return Some(class(Entity::PhoneNumber, 0.6, "es phone", plan));
        }
        if grouped && all_simple {
            return Some(class(Entity::PhoneNumber, 0.75, "es phone", plan));
        }
    }
    // North America (NANP): area and exchange codes start 2-9.
    let nanp = |x: &[u8]| (b'2'..=b'9').contains(&x[0]) && (b'2'..=b'9').contains(&x[3]);
    if len == 10 && nanp(b) {
        if lens == [3, 3, 4] && (paren || all_simple) {
            return Some(class(Entity::PhoneNumber, 0.75, "us phone", plan));
        }
        if n == 1 {
            return Some(class(Entity::PhoneNumber, 0.4, "us phone (bare)", plan));
        }
    }
    if len == 11 && b[0] == b'1' && nanp(&b[1..]) && lens == [1, 3, 3, 4] && (paren || all_simple) {
        return Some(class(Entity::PhoneNumber, 0.75, "us phone", plan));
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        scan(text, 0, text.len(), &mut out);
        out.iter()
            .map(|c| (c.entity.as_str().to_owned(), &text[c.start..c.end]))
            .collect()
    }

    #[test]
    fn cards_of_every_network() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "5555-5555-5555-4444",
            "378282246310005",
            "6212345678901265",
            "3530111333300000",
            "6011111111111117",
            "30569309025904",
        ] {
            assert_eq!(
                kinds(card),
                vec![("CREDIT_CARD".to_owned(), card)],
                "{card}"
            );
        }
        assert!(
            kinds("4111111111111112")
                .iter()
                .all(|(e, _)| e != "CREDIT_CARD")
        );
    }

    #[test]
    fn phones_ids_and_dates() {
        assert_eq!(kinds("13800138000")[0].0, "PHONE_NUMBER");
        assert_eq!(
            kinds("+34 612 345 678")[0],
            ("PHONE_NUMBER".to_owned(), "+34 612 345 678")
        );
        assert_eq!(
            kinds("(555) 234-5678")[0],
            ("PHONE_NUMBER".to_owned(), "(555) 234-5678")
        );
        assert_eq!(kinds("010-12345678")[0].0, "PHONE_NUMBER");
        assert_eq!(kinds("11010519491231002X")[0].0, "CN_RESIDENT_ID");
        assert_eq!(kinds("123-45-6789")[0].0, "US_SSN");
        assert_eq!(kinds("2024-05-03")[0].0, "DATE_TIME");
        assert_eq!(kinds("31/12/2023")[0].0, "DATE_TIME");
        assert!(kinds("2023-02-30").is_empty());
        assert_eq!(kinds("192.168.1.20")[0].0, "IP_ADDRESS");
        assert!(kinds("300.1.1.1").is_empty());
    }

    #[test]
    fn the_best_sub_run_wins() {
        let found = kinds("2023 612 345 678");
        assert_eq!(found, vec![("PHONE_NUMBER".to_owned(), "612 345 678")]);
    }

    #[test]
    fn glued_to_a_word_is_not_a_number() {
        let text = "x4111111111111111";
        let mut out = Vec::new();
        scan(text, 1, text.len(), &mut out);
        assert!(out.is_empty());
    }
}
