//! The place gazetteer: countries, regions and cities (en, es, zh) found with one
//! Aho-Corasick DFA pass.
//!
//! Names written in Latin script must stand as whole words; Chinese names need no boundary.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use crate::entity::Entity;
use crate::finding::{Candidate, Validation};

const RECOGNIZER: &str = "LocationRecognizer";

/// The listed place names, in their written case.
pub(crate) fn names() -> Vec<&'static str> {
    include_str!("../data/places.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The places alone, for [`first_place`]; scans find them in the detector's one pass over
/// places and context words.
static PLACES: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    // DFA kind: about four times the throughput of the default NFA on this many patterns.
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::DFA))
        .build(names())
        .ok()
});

/// Force the automaton to build, so that the first scan does not pay for it.
pub(crate) fn warm_up() {
    LazyLock::force(&PLACES);
}

/// Whether the character ending at or starting at a boundary continues a Latin word.
pub(crate) fn latin_word_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || (('\u{C0}'..='\u{24F}').contains(&c)))
}

/// Push a LOCATION candidate for a listed place found at `s..e`, unless a Latin name is part
/// of a longer word.
pub(crate) fn found(text: &str, s: usize, e: usize, out: &mut Vec<Candidate>) {
    let latin = text.as_bytes()[s].is_ascii();
    if latin
        && (latin_word_char(text[..s].chars().next_back())
            || latin_word_char(text[e..].chars().next()))
    {
        return;
    }
    out.push(Candidate::built_in(
        Entity::Location,
        (s, e),
        0.75,
        RECOGNIZER,
        "place list",
        Some(Validation::WordList),
    ));
}

/// Push a LOCATION candidate for every listed place in `text` (the detector does this in its
/// shared pass; this is the same on its own, for tests).
#[cfg(test)]
pub(crate) fn scan(text: &str, out: &mut Vec<Candidate>) {
    let Some(ac) = PLACES.as_ref() else { return };
    for m in ac.find_iter(text) {
        found(text, m.start(), m.end(), out);
    }
}

/// The offset within `text` of the first listed place, used to trim the start of a Chinese
/// street address that the address pattern began too early.
pub(crate) fn first_place(text: &str) -> Option<usize> {
    PLACES.as_ref()?.find(text).map(|m| m.start())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_places_as_whole_words() {
        let text = "Vivo en Madrid, not in Madridista; 我住在北京。";
        let mut out = Vec::new();
        scan(text, &mut out);
        let found: Vec<&str> = out.iter().map(|c| &text[c.start..c.end]).collect();
        assert_eq!(found, ["Madrid", "北京"]);
    }
}
