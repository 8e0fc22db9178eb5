//! Incident notices rendered per second: the built-in template of an individual notice filled
//! with an incident's facts and the recipient's name, in each language.
//!
//! `cargo bench -p boveda-core --bench notices` prints the figure (target: at least 10,000/s).
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Instant;

fn main() {
    let n = 200_000;
    let mut bytes = 0;
    let start = Instant::now();
    for i in 0..n {
        let language = ["es", "en", "zh"][i % 3];
        let body = boveda_core::notice::render_sample(language, &format!("Persona {i}"));
        bytes += body.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "notices rendered: {:.0}/s on one core ({n} notices, {:.0} bytes each on average; target >= 10,000/s)",
        n as f64 / secs,
        bytes as f64 / n as f64
    );
}
