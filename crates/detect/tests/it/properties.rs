//! Properties every scan must keep, whatever the input: no panic, offsets in bounds and on
//! character boundaries, character offsets consistent with byte offsets, no overlaps.

use std::sync::LazyLock;

use boveda_detect::operators::{OperatorConfig, Span, anonymize};
use boveda_detect::{DetectOptions, Detector, DetectorConfig, fuzz_detect};
use proptest::prelude::*;

static DETECTOR: LazyLock<Detector> =
    LazyLock::new(|| Detector::new(DetectorConfig::default()).unwrap());

/// Text built from fragments that trigger recognizers, glued in random order so that
/// candidates touch, overlap and sit next to CJK characters.
fn pii_soup() -> impl Strategy<Value = String> {
    let parts = prop::sample::select(vec![
        "4111 1111 1111 1111",
        "13800138000",
        "11010519491231002X",
        "12345678Z",
        "X1234567L",
        "ES91 2100 0418 4502 0005 1332",
        "+34 612 345 678",
        "(555) 234-5678",
        "123-45-6789",
        "ana@example.com",
        "https://例子.com/a",
        "www.example.org",
        "2001:db8::1",
        "10.0.0.1",
        "00:1A:2B:3C:4D:5E",
        "2024-05-03T10:00:00Z",
        "3 de mayo de 2024",
        "May 3, 2024",
        "2024年5月3日",
        "Calle Mayor 5",
        "221 Baker Street",
        "北京市朝阳区建国路88号",
        "John Smith",
        "Mr. ",
        "María García",
        "张伟",
        "先生",
        "欧阳",
        "Madrid",
        "北京",
        " ",
        "，",
        "é",
        "\u{0301}",
        "\n",
        ".",
        "-",
        "(",
        ")",
        "+",
        "0",
        "9",
        "X",
        "😀",
        "\u{200B}",
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
        "0x52908400098527886E0F7030069857D2E4169EE7",
    ]);
    prop::collection::vec(parts, 0..24).prop_map(|v| v.concat())
}

fn check(text: &str) {
    let opts = DetectOptions {
        score_threshold: 0.0,
        ..DetectOptions::default()
    };
    let found = DETECTOR.detect(text, &opts);
    let mut last = 0;
    for f in &found {
        assert!(f.start < f.end && f.end <= text.len(), "out of bounds");
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        assert!(f.start >= last, "overlap");
        assert_eq!(f.char_start, text[..f.start].chars().count());
        assert_eq!(f.char_end, text[..f.end].chars().count());
        assert!((0.0..=1.0).contains(&f.score));
        last = f.end;
    }
    let spans: Vec<Span> = found.iter().map(Span::from).collect();
    let out = anonymize(text, &spans, &OperatorConfig::default()).unwrap();
    let chars: Vec<char> = out.text.chars().collect();
    for item in &out.items {
        assert_eq!(
            chars[item.start..item.end].iter().collect::<String>(),
            item.text
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_string_keeps_the_invariants(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn pii_soup_keeps_the_invariants(text in pii_soup()) {
        check(&text);
    }

    #[test]
    fn any_bytes_pass_the_fuzz_entry_point(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzz_detect(&data);
    }

    #[test]
    fn detection_is_deterministic(text in pii_soup()) {
        let opts = DetectOptions::default();
        prop_assert_eq!(DETECTOR.detect(&text, &opts), DETECTOR.detect(&text, &opts));
    }
}

#[test]
fn built_in_patterns_use_no_unicode_boundaries_or_digit_classes() {
    for (name, source) in DETECTOR.built_in_patterns() {
        let mut rest = source;
        while let Some(i) = rest.find('\\') {
            let next = rest[i + 1..].chars().next();
            let ascii_boundary = rest[..i].ends_with("(?-u:");
            assert!(
                !matches!(next, Some('d' | 'D' | 'w' | 'W')),
                "pattern {name} uses \\d or \\w; write [0-9] or an ASCII class"
            );
            assert!(
                !matches!(next, Some('b' | 'B')) || ascii_boundary,
                "pattern {name} uses a bare \\b; write (?-u:\\b)"
            );
            rest = &rest[i + 1 + next.map_or(0, char::len_utf8)..];
        }
    }
}

#[test]
fn unknown_language_is_an_error_without_the_text() {
    let err = boveda_detect::Language::from_code("klingon")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("unsupported language"));
}
