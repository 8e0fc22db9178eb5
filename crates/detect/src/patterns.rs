//! The built-in patterns, scanned together in one pass, and the validation of each match.
//!
//! Patterns use no Unicode `\b`, `\w` or `\d`: on text with any non-ASCII byte they make the lazy
//! DFA give up and throughput falls from hundreds of MB/s to single digits. Word boundaries are
//! checked on bytes after the match instead, which is also what lets a number glued to Chinese
//! text be found. Order matters: among matches starting at the same byte the earlier pattern
//! wins, so specific shapes come before the general number shape.

use crate::checksum;
use crate::entity::Entity;
use crate::finding::{Candidate, Validation};
use crate::number::{self, is_word_byte};
use crate::{places, wallet};

/// What a built-in pattern looks for; decides how a match is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Email,
    UrlScheme,
    UrlWww,
    UrlBare,
    Iban,
    EsNie,
    EsNif,
    CnPassport,
    Btc58,
    Bech32,
    Eth,
    HexColon,
    MacDash,
    MacDot,
    DateIso,
    DateEn,
    DateEnDayFirst,
    DateEs,
    DateZh,
    AddressEn,
    AddressEs,
    AddressZh,
    Number,
}

const URL_CHARS: &str = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]";
const MONTHS_EN: &str = "(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|\
                         Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)";

/// The built-in patterns in priority order: (kind, name, source).
pub(crate) fn built_in() -> Vec<(Kind, &'static str, String)> {
    let label = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?";
    let tlds = "(?:com|org|net|edu|gov|io|es|cn|uk|de|fr|it|info|biz|app|dev|co|mx|ar|eu)";
    vec![
        (
            Kind::Email,
            "email",
            format!(r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@{label}(?:\.{label})*\.[A-Za-z]{{2,24}}"),
        ),
        (Kind::UrlScheme, "url (scheme)", format!(r"(?:https?|ftp)://{URL_CHARS}+")),
        (Kind::UrlWww, "url (www)", format!(r"www\.{label}(?:\.{label})+(?:/{URL_CHARS}*)?")),
        (Kind::UrlBare, "url (domain)", format!(r"{label}(?:\.{label})*\.{tlds}(?:/{URL_CHARS}*)?")),
        (
            Kind::Iban,
            "iban",
            r"[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)".into(),
        ),
        (Kind::EsNie, "es nie", r"[XYZxyz]-?[0-9]{7}-?[A-Za-z]".into()),
        (Kind::EsNif, "es dni", r"[0-9]{8}-?[A-Za-z]".into()),
        (
            Kind::CnPassport,
            "cn passport",
            r"(?:[EG][0-9]{8}|E[A-HJ-NP-Z][0-9]{7}|[DSP]E[0-9]{7})".into(),
        ),
        (Kind::Btc58, "btc base58", r"[13][1-9A-HJ-NP-Za-km-z]{25,34}".into()),
        (Kind::Bech32, "btc bech32", r"(?:bc1|BC1)[02-9ac-hj-np-zAC-HJ-NP-Z]{11,71}".into()),
        (Kind::Eth, "eth", r"0x[0-9a-fA-F]{40}".into()),
        (
            Kind::HexColon,
            "ipv6 or mac",
            r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?".into(),
        ),
        (Kind::MacDash, "mac (dash)", r"[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5}".into()),
        (Kind::MacDot, "mac (dot)", r"[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}".into()),
        (
            Kind::DateIso,
            "iso datetime",
            r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+\-][0-9]{2}:?[0-9]{2})?)?"
                .into(),
        ),
        (
            Kind::DateEn,
            "month day, year",
            format!(r"{MONTHS_EN}\.? [0-9]{{1,2}}(?:st|nd|rd|th)?(?:,? [0-9]{{4}})?|{MONTHS_EN} [0-9]{{4}}"),
        ),
        (
            Kind::DateEnDayFirst,
            "day month year",
            format!(r"[0-9]{{1,2}}(?:st|nd|rd|th)? (?:of )?{MONTHS_EN},? [0-9]{{4}}"),
        ),
        (
            Kind::DateEs,
            "día de mes",
            r"[0-9]{1,2} de (?:[Ee]nero|[Ff]ebrero|[Mm]arzo|[Aa]bril|[Mm]ayo|[Jj]unio|[Jj]ulio|[Aa]gosto|[Ss]eptiembre|[Ss]etiembre|[Oo]ctubre|[Nn]oviembre|[Dd]iciembre)(?: del? [0-9]{4})?"
                .into(),
        ),
        (
            Kind::DateZh,
            "年月日",
            r"[0-9]{4}年[0-9]{1,2}月(?:[0-9]{1,2}[日号])?|[0-9]{1,2}月[0-9]{1,2}[日号]".into(),
        ),
        (
            Kind::AddressEn,
            "street address (en)",
            r"[0-9]{1,5}(?: [A-Z][a-z]+){1,3} (?:Street|Avenue|Road|Boulevard|Lane|Drive|Court|Way|Place|Terrace|Square|(?:St|Ave|Rd|Blvd|Ln|Dr|Ct|Pl|Sq)\.?)(?:,? (?:Apt|Suite|Unit)\.? ?[0-9]{1,5}[A-Z]?)?"
                .into(),
        ),
        (
            Kind::AddressEs,
            "street address (es)",
            r"(?:[Cc]alle|C/|[Aa]venida|Avda\.|Av\.|[Pp]laza|[Pp]aseo|[Cc]amino|[Cc]arretera|[Rr]onda)(?: (?:de|del|la|las|los|el|[A-ZÁÉÍÓÚÑ][a-záéíóúñü]+)){1,5},? (?:n[º°o]\.? ?)?[0-9]{1,4}(?:,? [0-9]{1,2}[º°ª]? ?[A-Z]?)?"
                .into(),
        ),
        (
            Kind::AddressZh,
            "street address (zh)",
            r"(?:[\x{4E00}-\x{9FFF}]{1,6}(?:省|市))?(?:[\x{4E00}-\x{9FFF}]{1,5}(?:市|区|县))?[\x{4E00}-\x{9FFF}]{1,8}(?:路|街|大道|巷|胡同)[0-9]{1,5}号(?:[0-9]{1,5}室)?"
                .into(),
        ),
        (Kind::Number, "number", r"\+?\(?[0-9](?:[0-9]|[ .\-/()]{1,2}[0-9])*[Xx]?".into()),
    ]
}

/// Whether the bytes around `s..e` let the match stand as a whole token.
fn isolated(bytes: &[u8], s: usize, e: usize) -> bool {
    (s == 0 || !is_word_byte(bytes[s - 1])) && (e >= bytes.len() || !is_word_byte(bytes[e]))
}

/// Validate one match of the pattern `kind` at `s..e` and push what it holds.
pub(crate) fn validate(
    kind: Kind,
    name: &'static str,
    text: &str,
    s: usize,
    e: usize,
    out: &mut Vec<Candidate>,
) {
    let bytes = text.as_bytes();
    let m = &text[s..e];
    let mut push = |entity, range, score, v| {
        out.push(Candidate::built_in(
            entity,
            range,
            score,
            "PatternRecognizer",
            name,
            v,
        ));
    };
    match kind {
        Kind::Number => number::scan(text, s, e, out),
        Kind::Email => {
            if s > 0 && matches!(bytes[s - 1], b'.' | b'-' | b'_') {
                return;
            }
            if e < bytes.len() && is_word_byte(bytes[e]) {
                return;
            }
            push(
                Entity::EmailAddress,
                (s, e),
                1.0,
                Some(Validation::KnownTld),
            );
        }
        Kind::UrlScheme | Kind::UrlWww | Kind::UrlBare => {
            if s > 0 && (is_word_byte(bytes[s - 1]) || matches!(bytes[s - 1], b'@' | b'.' | b'-')) {
                return;
            }
            // Trailing punctuation belongs to the sentence, not the URL.
            let mut end = e;
            while end > s
                && matches!(
                    bytes[end - 1],
                    b'.' | b',' | b';' | b':' | b'!' | b'?' | b'\''
                )
            {
                end -= 1;
            }
            if end > s && bytes[end - 1] == b')' && !m.contains('(') {
                end -= 1;
            }
            if end < bytes.len() && is_word_byte(bytes[end]) {
                return;
            }
            let score = match kind {
                Kind::UrlScheme => 0.85,
                Kind::UrlWww => 0.8,
                _ => 0.6,
            };
            push(Entity::Url, (s, end), score, Some(Validation::KnownTld));
        }
        Kind::Iban => {
            if s > 0 && is_word_byte(bytes[s - 1]) {
                return;
            }
            // A spaced IBAN may have swallowed a following group: drop groups until valid.
            let mut end = e;
            loop {
                let compact: String = text[s..end].chars().filter(|c| *c != ' ').collect();
                let boundary = end >= bytes.len() || !is_word_byte(bytes[end]);
                if boundary && checksum::iban_valid(&compact) {
                    push(Entity::IbanCode, (s, end), 1.0, Some(Validation::IbanMod97));
                    return;
                }
                match text[s..end].rfind(' ') {
                    Some(p) if p > 4 => end = s + p,
                    _ => return,
                }
            }
        }
        Kind::EsNie | Kind::EsNif => {
            if !isolated(bytes, s, e) {
                return;
            }
            let compact: String = m
                .chars()
                .filter(|c| *c != '-')
                .map(|c| c.to_ascii_uppercase())
                .collect();
            if kind == Kind::EsNie && checksum::es_nie_valid(&compact) {
                push(Entity::EsNie, (s, e), 1.0, Some(Validation::Mod23Letter));
            } else if kind == Kind::EsNif && checksum::es_dni_valid(&compact) {
                push(Entity::EsNif, (s, e), 1.0, Some(Validation::Mod23Letter));
            }
        }
        Kind::CnPassport => {
            if isolated(bytes, s, e) {
                push(Entity::CnPassport, (s, e), 0.45, None);
            }
        }
        Kind::Btc58 => {
            if isolated(bytes, s, e) && wallet::base58check_valid(m) {
                push(Entity::Crypto, (s, e), 1.0, Some(Validation::Base58Check));
            }
        }
        Kind::Bech32 => {
            if isolated(bytes, s, e) && wallet::bech32_valid(m) {
                push(Entity::Crypto, (s, e), 1.0, Some(Validation::Bech32));
            }
        }
        Kind::Eth => {
            // EIP-55 mixed-case checksums need Keccak-256, which this crate does not carry:
            // the shape alone gives a moderate score that context raises.
            if isolated(bytes, s, e) {
                push(Entity::Crypto, (s, e), 0.7, None);
            }
        }
        Kind::HexColon => {
            let mut end = e;
            if m.ends_with(':') && !m.ends_with("::") {
                end -= 1;
            }
            let v = &text[s..end];
            let before_ok = s == 0 || !(is_word_byte(bytes[s - 1]) || bytes[s - 1] == b':');
            let after_ok = end >= bytes.len() || !(is_word_byte(bytes[end]) || bytes[end] == b':');
            if !before_ok || !after_ok {
                return;
            }
            let groups: Vec<&str> = v.split(':').collect();
            if groups.len() == 6 && groups.iter().all(|g| g.len() == 2) {
                push(
                    Entity::MacAddress,
                    (s, end),
                    0.9,
                    Some(Validation::MacFormat),
                );
            } else if (v.contains("::") || groups.len() == 8)
                && v != "::"
                && v.parse::<std::net::Ipv6Addr>().is_ok()
            {
                push(Entity::IpAddress, (s, end), 0.9, Some(Validation::IpParse));
            }
        }
        Kind::MacDash | Kind::MacDot => {
            if isolated(bytes, s, e) {
                let score = if kind == Kind::MacDash { 0.9 } else { 0.7 };
                push(
                    Entity::MacAddress,
                    (s, e),
                    score,
                    Some(Validation::MacFormat),
                );
            }
        }
        Kind::DateIso => {
            if !isolated(bytes, s, e) {
                return;
            }
            let num = |a: usize, b: usize| m.get(a..b).and_then(|x| x.parse::<u32>().ok());
            if let (Some(y), Some(mo), Some(d)) = (num(0, 4), num(5, 7), num(8, 10))
                && (1900..=2100).contains(&y)
                && checksum::date_exists(y, mo, d)
            {
                let score = if m.len() > 10 { 0.95 } else { 0.85 };
                push(
                    Entity::DateTime,
                    (s, e),
                    score,
                    Some(Validation::DateExists),
                );
            }
        }
        Kind::DateEn | Kind::DateEnDayFirst | Kind::DateEs => {
            if !isolated(bytes, s, e) {
                return;
            }
            let has_year =
                m.len() >= 4 && m.as_bytes()[m.len() - 4..].iter().all(u8::is_ascii_digit);
            let has_day =
                m.bytes().filter(u8::is_ascii_digit).count() > if has_year { 4 } else { 0 };
            let score = match (has_year, has_day) {
                (true, true) => 0.85,
                (false, true) => 0.6,
                _ => 0.5,
            };
            push(
                Entity::DateTime,
                (s, e),
                score,
                Some(Validation::DateExists),
            );
        }
        Kind::DateZh => {
            if s > 0 && bytes[s - 1].is_ascii_digit() {
                return;
            }
            // At most four numbers are kept: more than three never matches below.
            let mut buf = [0u32; 4];
            let mut n = 0;
            for v in m
                .split(|c: char| !c.is_ascii_digit())
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.parse::<u32>().ok())
            {
                if n < buf.len() {
                    buf[n] = v;
                }
                n += 1;
            }
            let nums = &buf[..n.min(buf.len())];
            let ok = match (m.contains('年'), nums) {
                (true, [y, mo, d]) => checksum::date_exists(*y, *mo, *d),
                (true, [_, mo]) => (1..=12).contains(mo),
                (false, [mo, d]) => checksum::date_exists(2000, *mo, *d),
                _ => false,
            };
            if ok {
                push(Entity::DateTime, (s, e), 0.85, Some(Validation::DateExists));
            }
        }
        Kind::AddressEn | Kind::AddressEs => {
            if isolated(bytes, s, e) {
                push(Entity::Location, (s, e), 0.8, None);
            }
        }
        Kind::AddressZh => {
            // The pattern may have started on the words before the address ("我住在北京市...").
            // Start at the first listed place; failing that, drop leading function characters.
            let start = match places::first_place(m) {
                Some(p) => s + p,
                None => {
                    let lead = m
                        .char_indices()
                        .find(|(_, c)| !"我你他她住在于是的地址位为家：:，,".contains(*c))
                        .map_or(0, |(i, _)| i);
                    s + lead
                }
            };
            if e > start && !(e < bytes.len() && bytes[e].is_ascii_digit()) {
                push(Entity::Location, (start, e), 0.8, None);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_pattern_compiles_alone() {
        for (_, name, source) in built_in() {
            assert!(regex_automata::meta::Regex::new(&source).is_ok(), "{name}");
        }
    }
}
