//! The int8 blob loader and engine: see `checks::blob`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::blob(data));
