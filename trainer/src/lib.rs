//! Fits Fashion-MNIST classifiers with burn, evaluates them, and exports them.
//!
//! One concern per module: [`model`] defines every model kind once, [`batch`] feeds it,
//! [`recipe`] says how it is trained, [`train`] trains and evaluates, [`fit`] runs
//! `trainer fit` from its options, [`checkpoint`] keeps a run directory and [`rundir`]
//! checks one before it is resumed, [`export`] writes
//! ONNX and int8 blobs, [`calibrate`] fits their probabilities' temperature, [`plot`] draws what people would rather look at than read,
//! [`usage`] names the mistakes in how the tools were called.

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
pub mod calibrate;
pub mod checkpoint;
pub mod conv;
pub mod distill;
pub mod export;
pub mod fit;
pub mod fsutil;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod model;
pub mod plot;
pub mod recipe;
pub mod rundir;
pub mod synthetic;
pub mod train;
pub mod usage;
