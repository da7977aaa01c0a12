//! The trainer's run-directory loaders: see `checks_trainer::rundir`.
#![no_main]

#[path = "../checks_trainer.rs"]
mod checks_trainer;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks_trainer::rundir(data));
