//! Arbitrary bytes through the scanner with every recognizer on: no panic, and every finding
//! in bounds, on character boundaries, in order, without overlaps, with consistent character
//! offsets and a score in 0..1 (the checks of `boveda_detect::fuzz_detect`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| boveda_detect::fuzz_detect(data));
