//! The detector: built once from a configuration, shared across threads, and run over texts.
//!
//! A scan is one lazy-DFA pass for every built-in pattern, one Aho-Corasick pass for places and
//! one for context words, one linear pass for person names, then validation of candidates,
//! context boosts, the threshold and the resolution of overlaps. Custom recognizers add one
//! pass each, so that they behave as Presidio's independent recognizers do.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_automata::meta::Regex;

use crate::checksum;
use crate::entity::{BUILT_IN, Entity};
use crate::error::Error;
use crate::finding::{Candidate, Explanation, Finding};
use crate::language::Language;
use crate::patterns::{self, Kind};
use crate::{person, places};

/// How much a context word raises a score (Presidio's default context similarity factor).
pub const CONTEXT_BOOST: f32 = 0.35;
/// The lowest score of a finding that has a context word (Presidio's default).
pub const MIN_SCORE_WITH_CONTEXT: f32 = 0.4;
/// Bytes before a match searched for context words (about 40 characters of Latin text).
const CONTEXT_BEFORE: usize = 48;
/// Bytes after a match searched for context words ("张伟先生", "612 345 678 (móvil)").
const CONTEXT_AFTER: usize = 24;

/// Deny lists and custom recognizers; the built-in recognizers need no configuration.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Words that are always reported as the given entity, with score 1.0.
    #[serde(default)]
    pub deny_lists: Vec<DenyList>,
    /// Extra pattern recognizers.
    #[serde(default)]
    pub recognizers: Vec<CustomRecognizer>,
}

/// A list of words that are always the given entity (Presidio's `deny_list`), matched as whole
/// words without regard to ASCII case.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DenyList {
    /// The entity name to report (`PERSON`, `EMPLOYEE_ID`...).
    pub entity: String,
    /// The words.
    pub words: Vec<String>,
}

/// A pattern recognizer from configuration, shaped after Presidio's ad-hoc recognizers.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRecognizer {
    /// A name for explanations and error messages.
    pub name: String,
    /// The entity name to report.
    #[serde(alias = "supported_entity")]
    pub entity: String,
    /// Regular expressions; `\b` and `\d` are rewritten to their ASCII forms (see
    /// [`ascii_pattern`]).
    #[serde(default)]
    pub patterns: Vec<CustomPattern>,
    /// A check-digit rule every match must pass.
    #[serde(default)]
    pub validator: Option<Validator>,
    /// Words that raise the score when they stand near a match.
    #[serde(default)]
    pub context: Vec<String>,
    /// Words that are always this entity.
    #[serde(default)]
    pub deny_list: Vec<String>,
}

/// One regular expression of a custom recognizer.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    /// A name for explanations.
    pub name: String,
    /// The regular expression (Rust `regex` syntax).
    pub regex: String,
    /// The score of a match, in `0.0..=1.0`.
    pub score: f32,
}

/// A check-digit rule from [`crate::checksum`] that a custom recognizer can require. The match
/// is compacted (spaces, dashes and dots removed, letters upper-cased) before the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Validator {
    /// [`checksum::luhn_valid`].
    Luhn,
    /// [`checksum::iban_valid`].
    Iban,
    /// [`checksum::cn_resident_id_valid`].
    CnResidentId,
    /// [`checksum::es_dni_valid`].
    EsDni,
    /// [`checksum::es_nie_valid`].
    EsNie,
    /// [`checksum::us_ssn_valid`].
    UsSsn,
}

impl Validator {
    fn check(self, matched: &str) -> bool {
        let compact: String = matched
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match self {
            Validator::Luhn => checksum::luhn_valid(&compact),
            Validator::Iban => checksum::iban_valid(&compact),
            Validator::CnResidentId => checksum::cn_resident_id_valid(&compact),
            Validator::EsDni => checksum::es_dni_valid(&compact),
            Validator::EsNie => checksum::es_nie_valid(&compact),
            Validator::UsSsn => checksum::us_ssn_valid(&compact),
        }
    }
}

/// Options of one scan; `Default` gives every entity, English, and a threshold of 0.5.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// The text's language.
    pub language: Language,
    /// Only these entities are reported; `None` reports all.
    pub entities: Option<Vec<Entity>>,
    /// Findings scoring below this are dropped (after the context boost).
    pub score_threshold: f32,
    /// Exact strings that are never reported (Presidio's `allow_list`).
    pub allow_list: Vec<String>,
    /// A pattern whose full matches are never reported (Presidio's `allow_list` with
    /// `allow_list_match = "regex"`); see [`allow_pattern`].
    pub allow_pattern: Option<Regex>,
    /// Extra context words that raise the score of any entity near them (Presidio's `context`).
    pub context: Vec<String>,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            language: Language::En,
            entities: None,
            score_threshold: 0.5,
            allow_list: Vec::new(),
            allow_pattern: None,
            context: Vec::new(),
        }
    }
}

/// Python `re` flag bits that [`allow_pattern`] understands (Presidio's `regex_flags`; its
/// default is `IGNORECASE | MULTILINE | DOTALL` = 26).
pub const RE_IGNORECASE: u32 = 2;
/// Python `re.MULTILINE`.
pub const RE_MULTILINE: u32 = 8;
/// Python `re.DOTALL`.
pub const RE_DOTALL: u32 = 16;
/// Python `re.VERBOSE`.
pub const RE_VERBOSE: u32 = 64;

/// One pattern out of Presidio-style allow-list regular expressions: a finding is dropped when
/// any of them matches somewhere in its text (Presidio's `re.search` over
/// `"|".join(patterns)`).
///
/// # Errors
/// [`Error::InvalidPattern`] when a pattern does not compile (lookaround and backreferences are
/// not supported) or is too large.
pub fn allow_pattern(patterns: &[String], flags: u32) -> Result<Option<Regex>, Error> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = String::from("(?");
    for (bit, c) in [
        (RE_IGNORECASE, 'i'),
        (RE_MULTILINE, 'm'),
        (RE_DOTALL, 's'),
        (RE_VERBOSE, 'x'),
    ] {
        if flags & bit != 0 {
            set.push(c);
        }
    }
    set.push_str("u)");
    let alternatives: Vec<String> = patterns.iter().map(|p| format!("(?:{p})")).collect();
    let source = format!("{set}{}", alternatives.join("|"));
    Regex::builder()
        .configure(Regex::config().nfa_size_limit(Some(1 << 20)))
        .build(&source)
        .map(Some)
        .map_err(|_| Error::InvalidPattern {
            recognizer: "allow_list".into(),
            pattern: "allow_list_match".into(),
        })
}

impl DetectOptions {
    fn wants(&self, e: &Entity) -> bool {
        self.entities.as_ref().is_none_or(|list| list.contains(e))
    }
}

/// The built-in patterns, compiled once per process and shared by every detector.
struct BuiltIn {
    regex: Regex,
    kinds: Vec<(Kind, &'static str)>,
    sources: Vec<String>,
}

static BUILT_INS: LazyLock<Result<Arc<BuiltIn>, String>> = LazyLock::new(|| {
    let table = patterns::built_in();
    let sources: Vec<String> = table.iter().map(|(_, _, s)| s.clone()).collect();
    let regex = Regex::new_many(&sources).map_err(|e| e.to_string())?;
    let kinds = table.iter().map(|(k, n, _)| (*k, *n)).collect();
    Ok(Arc::new(BuiltIn {
        regex,
        kinds,
        sources,
    }))
});

/// Context words of every built-in entity in one automaton, each word mapped to the entities
/// it supports.
struct ContextWords {
    ac: AhoCorasick,
    words: Vec<&'static str>,
    /// For each word, a bit per built-in entity ([`entity_bit`]) it supports.
    masks: Vec<u32>,
    /// Listed places, after the words in the automaton's patterns: one pass finds both. A
    /// place matches in its written case only (the automaton ignores ASCII case for the words).
    places: Vec<&'static str>,
}

/// A bit per built-in entity, for context-word lookups; custom entities have none.
fn entity_bit(e: &Entity) -> u32 {
    match e {
        Entity::Custom(_) => 0,
        _ => 1 << e.priority(),
    }
}

static CONTEXT: LazyLock<Option<ContextWords>> = LazyLock::new(|| {
    let mut words: Vec<&'static str> = Vec::new();
    let mut entities: Vec<Vec<Entity>> = Vec::new();
    for e in BUILT_IN {
        for w in e.context_words() {
            match words.iter().position(|x| x == w) {
                Some(i) => entities[i].push(e.clone()),
                None => {
                    words.push(w);
                    entities.push(vec![e.clone()]);
                }
            }
        }
    }
    let places = places::names();
    let ac = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::DFA))
        .build(words.iter().chain(&places))
        .ok()?;
    let masks = entities
        .iter()
        .map(|es| es.iter().map(entity_bit).fold(0, |a, b| a | b))
        .collect();
    Some(ContextWords {
        ac,
        words,
        masks,
        places,
    })
});

struct Compiled {
    recognizer: Arc<str>,
    entity: Entity,
    pattern_name: Arc<str>,
    source: Arc<str>,
    regex: Regex,
    score: f32,
    validator: Option<Validator>,
}

struct Deny {
    ac: AhoCorasick,
    entities: Vec<(Entity, Arc<str>)>,
}

/// A PII detector. Build it once and share it: it is `Send + Sync` and `detect` takes `&self`.
///
/// ```
/// use boveda_detect::{DetectOptions, Detector, DetectorConfig};
/// let detector = Detector::new(DetectorConfig::default())?;
/// let text = "Call 612 345 678 or write to ana@example.com";
/// let found = detector.detect(text, &DetectOptions::default());
/// assert_eq!(found[0].entity.as_str(), "PHONE_NUMBER");
/// assert_eq!(&text[found[1].range()], "ana@example.com");
/// # Ok::<(), boveda_detect::Error>(())
/// ```
pub struct Detector {
    built_in: Arc<BuiltIn>,
    config: DetectorConfig,
    custom: Vec<Compiled>,
    custom_context: Vec<(Entity, Vec<String>)>,
    deny: Option<Deny>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("built_in_patterns", &self.built_in.kinds.len())
            .field("custom_patterns", &self.custom.len())
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Build a detector with the built-in recognizers and those of `config`.
    ///
    /// # Errors
    /// [`Error::InvalidPattern`] or [`Error::InvalidRecognizer`] when a custom recognizer is
    /// malformed; the message names the recognizer and the pattern, never a value.
    pub fn new(config: DetectorConfig) -> Result<Detector, Error> {
        let built_in = match &*BUILT_INS {
            Ok(b) => Arc::clone(b),
            Err(_) => return Err(Error::Unreachable("built-in patterns do not compile")),
        };
        person::warm_up();
        places::warm_up();
        LazyLock::force(&CONTEXT);
        let mut detector = Detector {
            built_in,
            config: DetectorConfig::default(),
            custom: Vec::new(),
            custom_context: Vec::new(),
            deny: None,
        };
        detector.add(config)?;
        Ok(detector)
    }

    /// A detector with this one's recognizers plus `config`'s, for per-request ad-hoc
    /// recognizers. The built-in patterns are shared, not recompiled; custom ones are.
    ///
    /// # Errors
    /// As [`Detector::new`].
    pub fn with_config(&self, config: DetectorConfig) -> Result<Detector, Error> {
        let mut merged = self.config.clone();
        merged.deny_lists.extend(config.deny_lists);
        merged.recognizers.extend(config.recognizers);
        let mut detector = Detector {
            built_in: Arc::clone(&self.built_in),
            config: DetectorConfig::default(),
            custom: Vec::new(),
            custom_context: Vec::new(),
            deny: None,
        };
        detector.add(merged)?;
        Ok(detector)
    }

    fn add(&mut self, config: DetectorConfig) -> Result<(), Error> {
        self.config = config.clone();
        let mut deny_words: Vec<(Entity, Arc<str>)> = Vec::new();
        for list in config.deny_lists {
            let entity = Entity::from_name(&list.entity);
            for w in list.words.into_iter().filter(|w| !w.trim().is_empty()) {
                deny_words.push((entity.clone(), Arc::from(w.as_str())));
            }
        }
        for r in config.recognizers {
            let invalid = |reason| Error::InvalidRecognizer {
                recognizer: r.name.clone(),
                reason,
            };
            if r.name.is_empty() {
                return Err(invalid("a recognizer needs a name"));
            }
            if r.entity.is_empty() {
                return Err(invalid("a recognizer needs an entity"));
            }
            if r.patterns.is_empty() && r.deny_list.is_empty() {
                return Err(invalid("a recognizer needs patterns or a deny list"));
            }
            let entity = Entity::from_name(&r.entity);
            for p in &r.patterns {
                if !(0.0..=1.0).contains(&p.score) {
                    return Err(invalid("a pattern score must be between 0 and 1"));
                }
                let source = ascii_pattern(&p.regex);
                let regex = Regex::new(&source).map_err(|_| Error::InvalidPattern {
                    recognizer: r.name.clone(),
                    pattern: p.name.clone(),
                })?;
                self.custom.push(Compiled {
                    recognizer: Arc::from(r.name.as_str()),
                    entity: entity.clone(),
                    pattern_name: Arc::from(p.name.as_str()),
                    source: Arc::from(source.as_str()),
                    regex,
                    score: p.score,
                    validator: r.validator,
                });
            }
            for w in r.deny_list.iter().filter(|w| !w.trim().is_empty()) {
                deny_words.push((entity.clone(), Arc::from(w.as_str())));
            }
            if !r.context.is_empty() {
                let words = r.context.iter().map(|w| w.to_lowercase()).collect();
                self.custom_context.push((entity, words));
            }
        }
        if !deny_words.is_empty() {
            let ac = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(deny_words.iter().map(|(_, w)| w.as_bytes()))
                .map_err(|_| Error::InvalidRecognizer {
                    recognizer: "deny_list".into(),
                    reason: "the deny list is too large",
                })?;
            self.deny = Some(Deny {
                ac,
                entities: deny_words,
            });
        }
        Ok(())
    }

    /// The regular expressions of the built-in recognizers, by pattern name, for
    /// `/recognizers` listings and for tests.
    pub fn built_in_patterns(&self) -> Vec<(&'static str, &str)> {
        self.built_in
            .kinds
            .iter()
            .zip(&self.built_in.sources)
            .map(|((_, n), s)| (*n, s.as_str()))
            .collect()
    }

    /// Find personal data in `text`. Findings do not overlap and are sorted by offset.
    pub fn detect(&self, text: &str, opts: &DetectOptions) -> Vec<Finding> {
        let mut hits = Vec::new();
        let mut cands = self.candidates(text, opts, &mut hits);
        cands.retain(|c| opts.wants(&c.entity));
        if !opts.allow_list.is_empty() {
            cands.retain(|c| !opts.allow_list.iter().any(|a| a == &text[c.start..c.end]));
        }
        if let Some(allow) = &opts.allow_pattern {
            cands.retain(|c| !allow.is_match(&text[c.start..c.end]));
        }
        // Each recognizer's candidates come in order of start: sorting the indices merges
        // a few runs.
        let mut order: Vec<u32> = (0..cands.len() as u32).collect();
        order.sort_by_key(|&i| cands[i as usize].start);
        self.apply_context(text, &mut cands, &order, opts, &hits);
        order.retain(|&i| {
            let c = &cands[i as usize];
            c.score >= opts.score_threshold && c.start < c.end
        });
        let kept = resolve_overlaps(&cands, order);
        to_findings(text, cands, &kept)
    }

    /// The candidates of every recognizer, and the built-in context words found (start, end,
    /// word), in order.
    fn candidates(
        &self,
        text: &str,
        opts: &DetectOptions,
        hits: &mut Vec<(usize, usize, usize)>,
    ) -> Vec<Candidate> {
        let mut out = Vec::new();
        let b = &*self.built_in;
        for m in b.regex.find_iter(text) {
            let (kind, name) = b.kinds[m.pattern().as_usize()];
            patterns::validate(kind, name, text, m.start(), m.end(), &mut out);
        }
        if opts.wants(&Entity::Person) {
            person::scan(text, &mut out);
        }
        // One pass for listed places and context words.
        if let Some(cw) = CONTEXT.as_ref() {
            let places = opts.wants(&Entity::Location);
            let bytes = text.as_bytes();
            for m in cw.ac.find_iter(text) {
                let (s, e, id) = (m.start(), m.end(), m.pattern().as_usize());
                let Some(word) = cw.words.get(id) else {
                    if places && &text[s..e] == cw.places[id - cw.words.len()] {
                        places::found(text, s, e, &mut out);
                    }
                    continue;
                };
                if word.is_ascii() {
                    let letter = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_alphabetic);
                    let left = s > 0 && letter(s - 1);
                    let right = word.len() <= 4 && letter(e) && (bytes[e] != b's' || letter(e + 1));
                    if left || right {
                        continue;
                    }
                }
                hits.push((s, e, id));
            }
        }
        for c in &self.custom {
            if !opts.wants(&c.entity) {
                continue;
            }
            for m in c.regex.find_iter(text) {
                if m.is_empty() {
                    continue;
                }
                let matched = &text[m.start()..m.end()];
                if c.validator.is_some_and(|v| !v.check(matched)) {
                    continue;
                }
                out.push(Candidate {
                    entity: c.entity.clone(),
                    start: m.start(),
                    end: m.end(),
                    score: c.score,
                    recognizer: Cow::Owned(c.recognizer.to_string()),
                    pattern_name: Cow::Owned(c.pattern_name.to_string()),
                    pattern: Some(Cow::Owned(c.source.to_string())),
                    validation: None,
                    original_score: c.score,
                    context_words: Vec::new(),
                });
            }
        }
        if let Some(deny) = &self.deny {
            for m in deny.ac.find_iter(text) {
                let (s, e) = (m.start(), m.end());
                if places::latin_word_char(text[..s].chars().next_back())
                    || places::latin_word_char(text[e..].chars().next())
                {
                    continue;
                }
                let (entity, _) = &deny.entities[m.pattern().as_usize()];
                out.push(Candidate {
                    entity: entity.clone(),
                    start: s,
                    end: e,
                    score: 1.0,
                    recognizer: Cow::Borrowed("DenyListRecognizer"),
                    pattern_name: Cow::Borrowed("deny list"),
                    pattern: None,
                    validation: Some(crate::finding::Validation::WordList),
                    original_score: 1.0,
                    context_words: Vec::new(),
                });
            }
        }
        out
    }

    /// Raise scores by context and record the words that did it.
    fn apply_context(
        &self,
        text: &str,
        cands: &mut [Candidate],
        order: &[u32],
        opts: &DetectOptions,
        hits: &[(usize, usize, usize)],
    ) {
        if cands.is_empty() {
            return;
        }
        let extra: Vec<String> = opts.context.iter().map(|w| w.to_lowercase()).collect();
        let any_custom = !extra.is_empty() || !self.custom_context.is_empty();
        // Candidates in order of start, so the first context word of each window only moves
        // forward.
        let mut first = 0;
        for &i in order {
            let c = &mut cands[i as usize];
            let lo = floor_boundary(text, c.start.saturating_sub(CONTEXT_BEFORE));
            let hi = ceil_boundary(text, (c.end + CONTEXT_AFTER).min(text.len()));
            let mut words: Vec<Cow<'static, str>> = Vec::new();
            let bit = entity_bit(&c.entity);
            if let Some(cw) = CONTEXT.as_ref().filter(|_| bit != 0) {
                while hits.get(first).is_some_and(|h| h.0 < lo) {
                    first += 1;
                }
                for &(s, e, id) in hits[first..].iter().take_while(|h| h.0 < hi) {
                    let outside = e <= c.start || s >= c.end;
                    if outside && cw.masks[id] & bit != 0 {
                        words.push(Cow::Borrowed(cw.words[id]));
                    }
                }
            }
            if any_custom {
                let wanted: Vec<&String> = self
                    .custom_context
                    .iter()
                    .filter(|(e, _)| *e == c.entity)
                    .flat_map(|(_, ws)| ws.iter())
                    .chain(extra.iter())
                    .collect();
                if !wanted.is_empty() {
                    let before = text[lo..c.start].to_lowercase();
                    let after = text[c.end..hi].to_lowercase();
                    for w in wanted {
                        if before.contains(w.as_str()) || after.contains(w.as_str()) {
                            words.push(Cow::Owned(w.clone()));
                        }
                    }
                }
            }
            c.original_score = c.score;
            if !words.is_empty() && c.score < 1.0 {
                c.score = (c.score + CONTEXT_BOOST).clamp(MIN_SCORE_WITH_CONTEXT, 1.0);
            }
            c.context_words = words;
        }
    }
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The order in which overlapping candidates are tried: longer spans first, then higher
/// scores, then the entity priority, then the earlier start, then the entity, then the order
/// the recognizers produced them in.
fn precedence(scored: &[Candidate], i: u32, j: u32) -> std::cmp::Ordering {
    let (a, b) = (&scored[i as usize], &scored[j as usize]);
    (b.end - b.start)
        .cmp(&(a.end - a.start))
        .then(b.score.total_cmp(&a.score))
        .then(a.entity.priority().cmp(&b.entity.priority()))
        .then(a.start.cmp(&b.start))
        .then(a.entity.cmp(&b.entity))
        .then(i.cmp(&j))
}

/// Keep a set of non-overlapping candidates: longer spans first, then higher scores, then the
/// entity priority, then the earlier start. The order is total, so the result does not depend
/// on the order recognizers ran in.
///
/// Candidates are grouped into clusters of transitively overlapping spans (one sort by start);
/// a candidate alone in its cluster is kept as is, and only the candidates of a cluster are
/// ordered by precedence, which gives the same result as one greedy pass over all of them.
/// Returns the indices of the kept candidates in order of start.
/// `order` holds the indices of the candidates to consider, sorted by start.
fn resolve_overlaps(scored: &[Candidate], mut order: Vec<u32>) -> Vec<u32> {
    let span = |i: u32| (scored[i as usize].start, scored[i as usize].end);
    let mut kept: Vec<u32> = Vec::with_capacity(order.len());
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let mut taken_map: BTreeMap<usize, usize> = BTreeMap::new();
    let mut k = 0;
    while k < order.len() {
        let mut max_end = span(order[k]).1;
        let mut m = k + 1;
        while m < order.len() && span(order[m]).0 < max_end {
            max_end = max_end.max(span(order[m]).1);
            m += 1;
        }
        if m == k + 1 {
            kept.push(order[k]);
            k = m;
            continue;
        }
        let cluster = &mut order[k..m];
        cluster.sort_unstable_by(|&i, &j| precedence(scored, i, j));
        let first_kept = kept.len();
        if cluster.len() <= 32 {
            taken.clear();
            for &i in cluster.iter() {
                let (s, e) = span(i);
                if !taken.iter().any(|&(ts, te)| ts < e && s < te) {
                    taken.push((s, e));
                    kept.push(i);
                }
            }
        } else {
            taken_map.clear();
            for &i in cluster.iter() {
                let (s, e) = span(i);
                let clash = taken_map
                    .range(..e)
                    .next_back()
                    .is_some_and(|(_, &end)| end > s);
                if !clash {
                    taken_map.insert(s, e);
                    kept.push(i);
                }
            }
        }
        kept[first_kept..].sort_unstable_by_key(|&i| span(i).0);
        k = m;
    }
    kept
}

fn to_findings(text: &str, mut scored: Vec<Candidate>, kept: &[u32]) -> Vec<Finding> {
    let bytes = text.as_bytes();
    let count = |from: usize, to: usize| {
        bytes[from..to]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count()
    };
    let (mut at, mut chars) = (0usize, 0usize);
    kept.iter()
        .map(|&i| {
            let c = &mut scored[i as usize];
            chars += count(at, c.start);
            let char_start = chars;
            let char_end = char_start + count(c.start, c.end);
            chars = char_end;
            at = c.end;
            Finding {
                entity: c.entity.clone(),
                start: c.start,
                end: c.end,
                char_start,
                char_end,
                score: c.score,
                explanation: Explanation {
                    recognizer: std::mem::take(&mut c.recognizer),
                    pattern_name: std::mem::take(&mut c.pattern_name),
                    pattern: c.pattern.take(),
                    validation: c.validation,
                    score_boost: c.score - c.original_score,
                    original_score: c.original_score,
                    context_words: std::mem::take(&mut c.context_words),
                },
            }
        })
        .collect()
}

/// Rewrite `\b`, `\B`, `\d`, `\D`, `\w` and `\W` to their ASCII forms so that a custom pattern
/// written for Presidio (which uses them freely) keeps the scan on the fast lazy DFA.
pub fn ascii_pattern(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 16);
    let mut chars = source.chars();
    let mut in_class = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('d') if in_class > 0 => out.push_str("0-9"),
                Some('w') if in_class > 0 => out.push_str("0-9A-Za-z_"),
                Some('d') => out.push_str("[0-9]"),
                Some('D') if in_class == 0 => out.push_str("[^0-9]"),
                Some('w') => out.push_str("[0-9A-Za-z_]"),
                Some('W') if in_class == 0 => out.push_str("[^0-9A-Za-z_]"),
                Some('b') if in_class == 0 => out.push_str(r"(?-u:\b)"),
                Some('B') if in_class == 0 => out.push_str(r"(?-u:\B)"),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' => {
                in_class += 1;
                out.push(c);
            }
            ']' if in_class > 0 => {
                in_class -= 1;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn detector() -> Detector {
        Detector::new(DetectorConfig::default()).unwrap()
    }

    fn found(text: &str) -> Vec<(String, String)> {
        detector()
            .detect(text, &DetectOptions::default())
            .iter()
            .map(|f| (f.entity.as_str().to_owned(), text[f.range()].to_owned()))
            .collect()
    }

    #[test]
    fn detector_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Detector>();
    }

    #[test]
    fn numbers_after_chinese_characters_are_found() {
        let f = found("我的手机号是13800138000，身份证号11010519491231002X。");
        assert!(
            f.contains(&("PHONE_NUMBER".into(), "13800138000".into())),
            "{f:?}"
        );
        assert!(
            f.contains(&("CN_RESIDENT_ID".into(), "11010519491231002X".into())),
            "{f:?}"
        );
    }

    #[test]
    fn email_does_not_swallow_chinese() {
        let f = found("请发邮件到zhang.wei@example.cn谢谢");
        assert!(
            f.contains(&("EMAIL_ADDRESS".into(), "zhang.wei@example.cn".into())),
            "{f:?}"
        );
    }

    #[test]
    fn url_is_not_the_domain_of_an_email() {
        let f = found("write to ana@example.com or visit https://example.com/a.");
        assert_eq!(
            f,
            vec![
                ("EMAIL_ADDRESS".into(), "ana@example.com".into()),
                ("URL".into(), "https://example.com/a".into())
            ]
        );
    }

    #[test]
    fn context_raises_a_weak_match() {
        let d = detector();
        let opts = DetectOptions::default();
        assert!(
            d.detect("ref 078-05-1120", &opts)
                .iter()
                .all(|f| f.entity != Entity::UsSsn)
                || d.detect("ref 078-05-1120", &opts)[0].score < 0.9
        );
        let f = d.detect("my SSN is 078051120", &opts);
        assert_eq!(f[0].entity, Entity::UsSsn);
        assert_eq!(f[0].explanation.context_words, vec!["ssn".to_owned()]);
        assert!((f[0].explanation.score_boost - CONTEXT_BOOST).abs() < 1e-6);
    }

    #[test]
    fn allow_deny_and_custom() {
        let config: DetectorConfig = serde_json::from_str(
            r#"{"deny_lists":[{"entity":"TITLE","words":["Ms"]}],
                "recognizers":[{"name":"emp","entity":"EMPLOYEE_ID",
                  "patterns":[{"name":"id","regex":"\\bEMP-\\d{5}\\b","score":0.9}],
                  "context":["employee"]}]}"#,
        )
        .unwrap();
        let d = Detector::new(config).unwrap();
        let mut opts = DetectOptions::default();
        let text = "Ms Lee, employee EMP-12345, ana@example.com";
        let f = d.detect(text, &opts);
        let names: Vec<&str> = f.iter().map(|f| f.entity.as_str()).collect();
        assert_eq!(
            names,
            ["TITLE", "PERSON", "EMPLOYEE_ID", "EMAIL_ADDRESS"],
            "{f:?}"
        );
        assert_eq!(f[2].score, 1.0);
        opts.allow_list = vec!["ana@example.com".into()];
        assert_eq!(d.detect(text, &opts).len(), 3);
        let bad = DetectorConfig {
            recognizers: vec![CustomRecognizer {
                name: "broken".into(),
                entity: "X".into(),
                patterns: vec![CustomPattern {
                    name: "p".into(),
                    regex: "(".into(),
                    score: 0.5,
                }],
                validator: None,
                context: vec![],
                deny_list: vec![],
            }],
            ..Default::default()
        };
        let err = Detector::new(bad).unwrap_err().to_string();
        assert_eq!(
            err,
            r#"recognizer "broken": pattern "p" is not a valid regular expression"#
        );
    }

    #[test]
    fn ascii_rewrite() {
        assert_eq!(
            ascii_pattern(r"\b\d{3}[\d-]\w\b"),
            r"(?-u:\b)[0-9]{3}[0-9-][0-9A-Za-z_](?-u:\b)"
        );
        assert_eq!(ascii_pattern(r"\\d"), r"\\d");
    }

    #[test]
    fn overlaps_prefer_the_longer_span() {
        let f = found("Send it to Calle de Alcalá 42, Madrid");
        assert_eq!(f[0], ("LOCATION".into(), "Calle de Alcalá 42".into()));
    }

    #[test]
    fn offsets_in_characters() {
        let d = detector();
        let text = "电话：13800138000";
        let f = d.detect(text, &DetectOptions::default());
        assert_eq!((f[0].char_start, f[0].char_end), (3, 14));
        assert_eq!((f[0].start, f[0].end), (9, 20));
    }
}
