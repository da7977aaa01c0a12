//! Fits Fashion-MNIST classifiers with burn, evaluates them, and exports them.
//!
//! The modules form layers, each importing only those below it (docs/architecture.md
//! draws them; `tests/layers.rs` checks every `use crate::` line against this order):
//!
//! 1. [`util`]: files written atomically and read with limits, output probes, SHA-256;
//! 2. [`backend`], `gpu` (with `--features cuda`), [`synthetic`]: burn's backends, the CUDA probe, generated data;
//! 3. [`model`]: every model kind once, its layers and the CPU convolution;
//! 4. [`batch`]: images and labels to tensors;
//! 5. [`eval`]: loss, confusion matrix and logits of a model on a set;
//! 6. [`temperature`]: the one temperature fit of the probabilities;
//! 7. [`config`]: the recipe (with the distillation's settings) and the fit options, as
//!    plain data;
//! 8. [`usage`]: mistakes in how the tools were called (exit code 2);
//! 9. [`run`]: the run directory: its files, `run.json`, weights, `resume.state`;
//! 10. [`plot`]: curves and sample grids;
//! 11. [`export`]: ONNX and int8 blobs, and `calibrate`;
//! 12. [`distill`]: the teacher beside the student;
//! 13. [`train`]: the epoch loop;
//! 14. [`resume`]: what `--resume` may change, and a run directory checked before it
//!     continues;
//! 15. [`fit`]: the `trainer fit` workflow.

// Unsafe only in `gpu`: asking the CUDA loader whether its libraries open.
#![deny(unsafe_code)]

/// `println!` that ignores a closed standard output: `trainer fit | head` keeps training
/// (and saving every epoch) after the reader has gone, instead of dying on a broken pipe.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod backend;
pub mod batch;
pub mod config;
pub mod distill;
pub mod eval;
pub mod export;
pub mod fit;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod model;
pub mod plot;
pub mod resume;
pub mod run;
pub mod synthetic;
pub mod temperature;
pub mod train;
pub mod usage;
pub mod util;
