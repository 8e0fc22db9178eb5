//! PII detection and de-identification for boveda: pure functions from text to findings.
//!
//! The crate performs no I/O and never logs. Its checksum rules are shared with the vault's
//! validation of typed fields so that one piece of code decides whether a card number, an IBAN
//! or an identity number is well formed.
//!
//! ```
//! use boveda_detect::{DetectOptions, Detector, DetectorConfig};
//! let detector = Detector::new(DetectorConfig::default())?;
//! let found = detector.detect("DNI 12345678Z, tel. 612 345 678", &DetectOptions::default());
//! let kinds: Vec<&str> = found.iter().map(|f| f.entity.as_str()).collect();
//! assert_eq!(kinds, ["ES_NIF", "PHONE_NUMBER"]);
//! assert!(boveda_detect::checksum::luhn_valid("4111111111111111"));
//! # Ok::<(), boveda_detect::Error>(())
//! ```

pub mod checksum;
mod detector;
mod entity;
mod error;
mod finding;
mod language;
mod number;
pub mod operators;
mod patterns;
mod person;
mod places;
mod wallet;

pub use detector::{
    CONTEXT_BOOST, CustomPattern, CustomRecognizer, DenyList, DetectOptions, Detector,
    DetectorConfig, MIN_SCORE_WITH_CONTEXT, RE_DOTALL, RE_IGNORECASE, RE_MULTILINE, RE_VERBOSE,
    Validator, allow_pattern, ascii_pattern,
};
pub use entity::{BUILT_IN, Entity};
pub use error::Error;
pub use finding::{Explanation, Finding, Validation};
pub use language::Language;

/// Fuzz entry point: scan arbitrary bytes (lossily decoded) with every recognizer and check the
/// invariants of the result. Panics only when an invariant is broken.
#[doc(hidden)]
pub fn fuzz_detect(data: &[u8]) {
    use std::sync::LazyLock;
    static DETECTOR: LazyLock<Option<Detector>> =
        LazyLock::new(|| Detector::new(DetectorConfig::default()).ok());
    let Some(detector) = DETECTOR.as_ref() else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    let opts = DetectOptions {
        score_threshold: 0.0,
        ..DetectOptions::default()
    };
    let mut last_end = 0;
    for f in detector.detect(&text, &opts) {
        assert!(f.start < f.end && f.end <= text.len());
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        assert!(f.start >= last_end, "findings overlap");
        assert_eq!(f.char_start, text[..f.start].chars().count());
        assert_eq!(f.char_end - f.char_start, text[f.range()].chars().count());
        assert!((0.0..=1.0).contains(&f.score));
        last_end = f.end;
    }
}
