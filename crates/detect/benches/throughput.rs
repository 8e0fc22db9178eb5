//! Single-thread throughput of a scan with every recognizer on, over a ~20 MB mixed-language
//! corpus (the evaluation sentences in a shuffled, repeated order, joined by newlines).
//!
//! Run with `cargo bench -p boveda-detect`; prints MB/s, the median of three runs.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use boveda_detect::{DetectOptions, Detector, DetectorConfig};

mod common;

const TARGET_BYTES: usize = 20 * 1024 * 1024;

fn main() {
    let sentences = common::sentences();
    let mut text = String::with_capacity(TARGET_BYTES + 4096);
    let mut state = common::SEED;
    while text.len() < TARGET_BYTES {
        let r = common::next(&mut state);
        text.push_str(&sentences[(r % sentences.len() as u64) as usize]);
        text.push(if r.is_multiple_of(3) { '\n' } else { ' ' });
    }
    let detector = Detector::new(DetectorConfig::default()).unwrap();
    run(
        "dense: every sentence from the evaluation corpus",
        &detector,
        &text,
        sentences.len(),
    );
    let mixed = common::log_like(&sentences, TARGET_BYTES, &mut state);
    run(
        "log-like: one sentence in five from the corpus, the rest prose",
        &detector,
        &mixed,
        0,
    );
}

fn run(label: &str, detector: &Detector, text: &str, sentences: usize) {
    let opts = DetectOptions::default();
    // Scanned in 64 KiB pieces cut at line ends, as the streaming CLI does.
    let chunks: Vec<&str> = {
        let mut v = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let mut cut = rest.len().min(64 * 1024);
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            if let Some(nl) = rest[..cut].rfind('\n').filter(|_| cut < rest.len()) {
                cut = nl + 1;
            }
            v.push(&rest[..cut]);
            rest = &rest[cut..];
        }
        v
    };
    let mb = text.len() as f64 / 1e6;
    let mut rates = Vec::new();
    let mut findings = 0;
    for _ in 0..3 {
        let t = Instant::now();
        findings = chunks
            .iter()
            .map(|c| detector.detect(c, &opts).len())
            .sum::<usize>();
        rates.push(mb / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let whole = {
        let t = Instant::now();
        let n = detector.detect(text, &opts).len();
        (n, mb / t.elapsed().as_secs_f64())
    };
    println!("{label}");
    println!(
        "corpus: {mb:.1} MB, {sentences} distinct sentences, {} chunks",
        chunks.len()
    );
    println!("findings: {findings} ({} in one piece)", whole.0);
    println!(
        "throughput, one thread, 64 KiB chunks: {:.1} MB/s (median of 3)",
        rates[1]
    );
    println!(
        "throughput, one thread, one 20 MB string: {:.1} MB/s",
        whole.1
    );
}
