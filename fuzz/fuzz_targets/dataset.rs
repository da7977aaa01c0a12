//! The IDX and CSV readers: see `checks::dataset`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::dataset(data));
