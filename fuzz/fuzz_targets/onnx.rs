//! ONNX loading through tract: see `checks::onnx`.
//!
//! `OnnxClassifier` turns a panic inside tract into an error (tract has index-out-of-
//! bounds panics on some malformed graphs: `fuzz/regressions/onnx/tract-padding-panic-*`),
//! so only a panic that escapes it is a finding. libfuzzer-sys's hook aborts on every
//! panic, caught or not; this target replaces it with one that only prints a line, and a
//! panic that reaches libfuzzer-sys still aborts the run there.
#![no_main]

#[path = "../checks.rs"]
mod checks;

static QUIET_PANICS: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}"))));
    checks::onnx(data)
});
