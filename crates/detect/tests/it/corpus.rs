//! Scores the detector on the committed evaluation corpus: precision, recall and F1 per entity,
//! with exact spans and with overlapping spans, and asserts the quality targets of issue 4.

use std::collections::BTreeMap;

use boveda_detect::{DetectOptions, Detector, DetectorConfig, Entity, Language};

use crate::corpus_gen;

const CORPUS: &str = include_str!("../corpus/eval.jsonl");

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Counts {
    fn precision(self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn recall(self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    fn f1(self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

type Span = (String, usize, usize);

/// Count matches between gold and predicted spans. A predicted span matches a gold span of the
/// same entity exactly, or (overlap mode) when the two share at least one character; each gold
/// span is matched at most once.
fn score(gold: &[Span], pred: &[Span], overlap: bool, counts: &mut BTreeMap<String, Counts>) {
    let mut used = vec![false; gold.len()];
    for p in pred {
        let hit = gold.iter().enumerate().position(|(i, g)| {
            !used[i]
                && g.0 == p.0
                && if overlap {
                    g.1 < p.2 && p.1 < g.2
                } else {
                    g.1 == p.1 && g.2 == p.2
                }
        });
        match hit {
            Some(i) => {
                used[i] = true;
                counts.entry(p.0.clone()).or_default().tp += 1;
            }
            None => counts.entry(p.0.clone()).or_default().fp += 1,
        }
    }
    for (g, u) in gold.iter().zip(used) {
        if !u {
            counts.entry(g.0.clone()).or_default().fn_ += 1;
        }
    }
}

struct Report {
    exact: BTreeMap<String, Counts>,
    overlap: BTreeMap<String, Counts>,
    errors: Vec<String>,
}

fn evaluate() -> Report {
    let detector = Detector::new(DetectorConfig::default()).unwrap();
    let mut report = Report {
        exact: BTreeMap::new(),
        overlap: BTreeMap::new(),
        errors: Vec::new(),
    };
    for line in CORPUS.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = v["text"].as_str().unwrap();
        let lang = Language::from_code(v["lang"].as_str().unwrap()).unwrap();
        let gold: Vec<Span> = v["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let n = |k: &str| s[k].as_u64().unwrap() as usize;
                (
                    s["entity"].as_str().unwrap().to_owned(),
                    n("start"),
                    n("end"),
                )
            })
            .collect();
        let opts = DetectOptions {
            language: lang,
            ..DetectOptions::default()
        };
        let pred: Vec<Span> = detector
            .detect(text, &opts)
            .into_iter()
            .map(|f| (f.entity.as_str().to_owned(), f.char_start, f.char_end))
            .collect();
        score(&gold, &pred, false, &mut report.exact);
        score(&gold, &pred, true, &mut report.overlap);
        let mut g = gold.clone();
        let mut p = pred.clone();
        g.sort();
        p.sort();
        if g != p && report.errors.len() < 400 {
            let show = |spans: &[Span]| {
                let chars: Vec<char> = text.chars().collect();
                spans
                    .iter()
                    .map(|(e, s, t)| format!("{e}:{:?}", chars[*s..*t].iter().collect::<String>()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            report.errors.push(format!(
                "{text}\n    gold [{}]\n    pred [{}]",
                show(&g),
                show(&p)
            ));
        }
    }
    report
}

fn table(report: &Report) -> String {
    let mut out = String::from(
        "| entity | support | precision | recall | F1 (overlap) | F1 (exact) |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let mut micro = Counts::default();
    let mut micro_exact = Counts::default();
    for (entity, c) in &report.overlap {
        let e = report.exact.get(entity).copied().unwrap_or_default();
        out.push_str(&format!(
            "| {entity} | {} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            c.tp + c.fn_,
            c.precision(),
            c.recall(),
            c.f1(),
            e.f1()
        ));
        micro.tp += c.tp;
        micro.fp += c.fp;
        micro.fn_ += c.fn_;
        micro_exact.tp += e.tp;
        micro_exact.fp += e.fp;
        micro_exact.fn_ += e.fn_;
    }
    out.push_str(&format!(
        "| **micro** | {} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
        micro.tp + micro.fn_,
        micro.precision(),
        micro.recall(),
        micro.f1(),
        micro_exact.f1()
    ));
    out
}

#[test]
fn committed_corpus_matches_the_generator() {
    assert!(
        corpus_gen::jsonl(corpus_gen::SIZE) == CORPUS,
        "tests/corpus/eval.jsonl is stale: run `cargo run -p boveda-detect --example gen_corpus`"
    );
}

#[test]
fn corpus_meets_quality_targets() {
    let report = evaluate();
    println!("{}", table(&report));
    if std::env::var_os("BOVEDA_SHOW_ERRORS").is_some() {
        for e in &report.errors {
            println!("{e}");
        }
    }
    let f1 = |e: &str| report.overlap.get(e).copied().unwrap_or_default().f1();
    let mut failures = Vec::new();
    for e in boveda_detect::BUILT_IN
        .iter()
        .filter(|e| e.is_checksum_backed())
    {
        let name = e.as_str();
        if report.overlap.contains_key(name) && f1(name) < 0.97 {
            failures.push(format!("{name} F1 {:.3} < 0.97", f1(name)));
        }
    }
    for e in [
        Entity::CnResidentId,
        Entity::CreditCard,
        Entity::IbanCode,
        Entity::EsNif,
        Entity::EsNie,
    ] {
        assert!(
            report.overlap.contains_key(e.as_str()),
            "the corpus has no {e}"
        );
    }
    for name in ["PERSON", "DATE_TIME", "LOCATION"] {
        if f1(name) < 0.90 {
            failures.push(format!("{name} F1 {:.3} < 0.90", f1(name)));
        }
    }
    let mut micro = Counts::default();
    for c in report.overlap.values() {
        micro.tp += c.tp;
        micro.fp += c.fp;
        micro.fn_ += c.fn_;
    }
    if micro.f1() < 0.93 {
        failures.push(format!("micro F1 {:.3} < 0.93", micro.f1()));
    }
    assert!(failures.is_empty(), "quality targets missed: {failures:?}");
}
