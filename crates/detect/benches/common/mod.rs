//! The text the detection benchmarks scan, shared with `boveda redact`'s benchmark (which
//! includes this file by path): the sentences of the evaluation corpus, and log-like text in
//! which one line in five is such a sentence and the rest ordinary prose in en, es and zh.

/// The sentences of the labelled evaluation corpus.
pub(crate) fn sentences() -> Vec<String> {
    include_str!("../../tests/corpus/eval.jsonl")
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(v["text"].as_str()?.to_owned())
        })
        .collect()
}

/// The next value of a xorshift generator (a fixed sequence, so runs compare).
pub(crate) fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The generator's first state.
pub(crate) const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// At least `bytes` of log lines: one in five a corpus sentence, the rest prose without
/// personal data.
pub(crate) fn log_like(sentences: &[String], bytes: usize, state: &mut u64) -> String {
    const PROSE: [&str; 8] = [
        "The service restarted after the nightly deployment and all health checks passed.",
        "Cache hit ratio stayed above ninety percent during the whole maintenance window.",
        "The quarterly report summarises revenue, costs and the roadmap for next year.",
        "El sistema procesó todas las solicitudes pendientes sin errores durante la noche.",
        "La reunión de seguimiento revisó el presupuesto y los plazos del proyecto.",
        "系统在夜间完成了数据备份，所有服务运行正常，没有发现异常。",
        "本季度的用户增长主要来自移动端，团队将继续优化产品体验。",
        "Background workers drained the queue and the latency returned to normal levels.",
    ];
    let mut text = String::with_capacity(bytes + 4096);
    while text.len() < bytes {
        let r = next(state);
        if r.is_multiple_of(5) {
            text.push_str(&sentences[(r % sentences.len() as u64) as usize]);
        } else {
            text.push_str(PROSE[(r % PROSE.len() as u64) as usize]);
        }
        text.push('\n');
    }
    text
}
