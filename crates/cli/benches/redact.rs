//! `boveda redact` on a large log-like file: throughput with `--jobs 1` and `--jobs N` (the
//! machine's cores), and the peak resident memory of each run (the target: at most 100 MB on a
//! 1 GB file, whatever its size).
//!
//! The file is `REDACT_MB` megabytes (default 1024) of log lines in en, es and zh, one in five a
//! sentence of the evaluation corpus (personal data), the rest prose. Peak memory is the
//! child's `VmHWM` from `/proc`, read every 20 ms until it exits.
//!
//! `cargo bench -p boveda-cli --bench redact` prints the figures. Not a test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../detect/benches/common/mod.rs"]
mod common;

fn peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let mb: usize = std::env::var("REDACT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let tmp = tempfile::tempdir().unwrap();
    // A 4 MB block, written as many times as needed.
    let mut state = common::SEED;
    let block = common::log_like(&common::sentences(), 4 << 20, &mut state);
    let input = tmp.path().join("big.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    let mut size = 0usize;
    while size < mb << 20 {
        f.write_all(block.as_bytes()).unwrap();
        size += block.len();
    }
    f.flush().unwrap();
    drop(f);
    let config = tmp.path().join("redact.toml");
    std::fs::write(
        &config,
        "[operators.DEFAULT]\ntype = \"replace\"\n\n[operators.EMAIL_ADDRESS]\ntype = \"mask\"\nmasking_char = \"*\"\nchars_to_mask = 4\n",
    )
    .unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "boveda redact, {:.0} MB log-like text (one line in five with personal data):",
        size as f64 / 1e6
    );
    let mut first = None;
    for jobs in [1, cores] {
        let start = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_boveda"))
            .arg("redact")
            .arg(&input)
            .arg("--config")
            .arg(&config)
            .arg("--jobs")
            .arg(jobs.to_string())
            .arg("-o")
            .arg(tmp.path().join("out.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut peak = 0;
        while child.try_wait().unwrap().is_none() {
            peak = peak.max(peak_kb(child.id()).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(20));
        }
        let secs = start.elapsed().as_secs_f64();
        let rate = size as f64 / 1e6 / secs;
        let speedup = first.map_or(1.0, |f: f64| rate / f);
        first.get_or_insert(rate);
        println!(
            "  --jobs {jobs}: {rate:.1} MB/s ({secs:.1} s, {speedup:.2}x of --jobs 1), peak RSS {:.1} MB",
            peak as f64 / 1024.0
        );
    }
}
