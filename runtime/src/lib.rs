//! Fashion-MNIST inference for desktops and microcontrollers.
//!
//! Without the `std` feature this crate is `no_std` and allocation-free. With `std` (the
//! default) it adds the dataset readers ([`dataset`]) that the trainer and the CLI share.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

pub mod blob;
pub mod classes;
#[cfg(feature = "tract")]
pub mod classifier;
#[cfg(feature = "std")]
pub mod dataset;
pub mod engine;
#[cfg(feature = "std")]
pub mod evaluate;
pub mod metrics;
#[cfg(feature = "tract")]
pub mod onnx;
#[cfg(feature = "cli")]
pub mod preprocess;

pub use classes::{CLASS_COUNT, CLASS_NAMES, IMAGE_PIXELS, IMAGE_SIDE};
pub use engine::{BlobError, EngineError, Logits, Plan};
pub use metrics::Confusion;
