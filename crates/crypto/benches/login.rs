//! The cost of one staff login's password work (Argon2id, OWASP parameters), and of the other
//! per-login primitives. `cargo bench -p boveda-crypto --bench login` prints the figures.
#![allow(clippy::unwrap_used, missing_docs)]

use boveda_crypto::password::{Params, hash, verify};
use boveda_crypto::totp::{TotpSecret, code_at, verify as totp_verify};
use std::time::Instant;

fn main() {
    let params = Params::default();
    let n = 20;
    let phc = hash("Lluvia-sobre-Teruel-en-1987!", &params).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        hash("Lluvia-sobre-Teruel-en-1987!", &params).unwrap();
    }
    let hash_ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(n);
    let start = Instant::now();
    for _ in 0..n {
        assert!(verify("Lluvia-sobre-Teruel-en-1987!", &phc).unwrap());
    }
    let verify_ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(n);
    let secret = TotpSecret::generate().unwrap();
    let code = code_at(&secret, 1_800_000_000);
    let m = 100_000;
    let start = Instant::now();
    for _ in 0..m {
        totp_verify(&secret, &code, 1_800_000_000).unwrap();
    }
    let totp_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(m);
    println!(
        "Argon2id m={} KiB t={} p={} (OWASP), one core:",
        params.memory_kib, params.iterations, params.parallelism
    );
    println!("  hash   {hash_ms:>7.1} ms");
    println!(
        "  verify {verify_ms:>7.1} ms  (one login; about {:.0} logins/s per core)",
        1000.0 / verify_ms
    );
    println!("TOTP verify (±1 step): {totp_us:.2} µs");
}
