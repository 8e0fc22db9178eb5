//! What a detection returns: a finding with its offsets, score and explanation.
//!
//! A finding carries offsets, never the matched text: callers slice the text they scanned, so a
//! finding can be logged or counted without copying personal data.

use std::borrow::Cow;

use crate::entity::Entity;

/// One piece of personal data found in a text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    /// The kind of data.
    pub entity: Entity,
    /// Byte offset of the first byte (always on a character boundary).
    pub start: usize,
    /// Byte offset one past the last byte (always on a character boundary).
    pub end: usize,
    /// Offset of the first character, counted in Unicode scalar values as Presidio counts.
    pub char_start: usize,
    /// Offset one past the last character, in Unicode scalar values.
    pub char_end: usize,
    /// Confidence in `0.0..=1.0`, context boost included.
    pub score: f32,
    /// Why the finding was made: recognizer, pattern, validation and context.
    pub explanation: Explanation,
}

impl Finding {
    /// The byte range of the finding, to slice the scanned text with.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// The decision process behind a finding, shaped after Presidio's `analysis_explanation`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation {
    /// The recognizer that made the finding (`NumberRecognizer`, `PersonRecognizer`, or the
    /// name of a custom recognizer).
    pub recognizer: Cow<'static, str>,
    /// The name of the pattern or rule inside the recognizer (`iso date`, `given + surname`).
    pub pattern_name: Cow<'static, str>,
    /// The regular expression that matched, when the finding came from one.
    pub pattern: Option<Cow<'static, str>>,
    /// The check that the candidate passed, if any.
    pub validation: Option<Validation>,
    /// Context words found near the match (lower case), the first one gave the boost.
    pub context_words: Vec<Cow<'static, str>>,
    /// The score before the context boost.
    pub original_score: f32,
    /// How much the context raised the score (0 when no context word was found).
    pub score_boost: f32,
}

/// A check that a candidate passed before it became a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum Validation {
    /// Luhn check digit (ISO/IEC 7812-1) and a known issuer prefix.
    Luhn,
    /// IBAN mod-97 and the country's registered length (ISO 13616).
    IbanMod97,
    /// ISO 7064 MOD 11-2 check character and a real birth date (GB 11643).
    Mod11_2,
    /// Spanish DNI/NIE control letter (number mod 23).
    Mod23Letter,
    /// US SSN area, group and serial rules.
    SsnRules,
    /// The date exists in the Gregorian calendar.
    DateExists,
    /// The address parses as IPv4 or IPv6.
    IpParse,
    /// Six octets in one of the MAC notations.
    MacFormat,
    /// Base58Check: the last four bytes are the double SHA-256 of the rest.
    Base58Check,
    /// The BIP 173 / BIP 350 Bech32 checksum.
    Bech32,
    /// A country calling code or a national numbering plan with the right length.
    NumberingPlan,
    /// The top-level domain is one the recognizer knows.
    KnownTld,
    /// The word is in the name, place or deny list.
    WordList,
}

impl Validation {
    /// A short, stable name for the check (`luhn`, `iban_mod97`).
    pub fn as_str(self) -> &'static str {
        match self {
            Validation::Luhn => "luhn",
            Validation::IbanMod97 => "iban_mod97",
            Validation::Mod11_2 => "iso7064_mod11_2",
            Validation::Mod23Letter => "mod23_letter",
            Validation::SsnRules => "ssn_rules",
            Validation::DateExists => "date_exists",
            Validation::IpParse => "ip_parse",
            Validation::MacFormat => "mac_format",
            Validation::Base58Check => "base58check",
            Validation::Bech32 => "bech32",
            Validation::NumberingPlan => "numbering_plan",
            Validation::KnownTld => "known_tld",
            Validation::WordList => "word_list",
        }
    }
}

/// A finding before context, thresholds and overlaps: what recognizers produce.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) entity: Entity,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) score: f32,
    pub(crate) recognizer: Cow<'static, str>,
    pub(crate) pattern_name: Cow<'static, str>,
    pub(crate) pattern: Option<Cow<'static, str>>,
    pub(crate) validation: Option<Validation>,
    /// The score before the context boost (set by the context step).
    pub(crate) original_score: f32,
    /// Context words found near the candidate (set by the context step).
    pub(crate) context_words: Vec<Cow<'static, str>>,
}

impl Candidate {
    /// A candidate from a built-in recognizer.
    pub(crate) fn built_in(
        entity: Entity,
        range: (usize, usize),
        score: f32,
        recognizer: &'static str,
        pattern_name: &'static str,
        validation: Option<Validation>,
    ) -> Candidate {
        Candidate {
            entity,
            start: range.0,
            end: range.1,
            score,
            recognizer: Cow::Borrowed(recognizer),
            pattern_name: Cow::Borrowed(pattern_name),
            pattern: None,
            validation,
            original_score: score,
            context_words: Vec::new(),
        }
    }
}
