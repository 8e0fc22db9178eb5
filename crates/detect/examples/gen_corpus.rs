//! Writes the labelled evaluation corpus to `tests/corpus/eval.jsonl`.
//!
//! Run with `cargo run -p boveda-detect --example gen_corpus`; the output is deterministic and
//! a test checks that the committed file matches it.

#[allow(dead_code)]
#[path = "../tests/it/corpus_gen.rs"]
mod corpus_gen;

fn main() -> std::io::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/eval.jsonl");
    std::fs::write(path, corpus_gen::jsonl(corpus_gen::SIZE))?;
    println!("wrote {} sentences to {path}", corpus_gen::SIZE);
    Ok(())
}
