//! Fashion-MNIST inference for desktops and microcontrollers.
//!
//! The core is an int8 engine over a blob that `fmnist-trainer` exports: [`Plan::new`]
//! validates the blob once (envelope, checksum, every shape and length, the arena it
//! needs), then [`Plan::classify`] runs one 28x28 image in a caller-supplied arena,
//! without allocating. On `std`, [`FastPlan`] runs the same plan with the fastest
//! kernels this CPU has (AMX-INT8, AVX-512 VNNI, AVX-VNNI, AVX2), bit for bit the same
//! results, one image at a time ([`FastPlan::classify`]), a batch in one arena
//! ([`FastPlan::classify_batch`]) or many images on every core
//! ([`FastPlan::classify_all`]). On ARMv7E-M microcontrollers (Cortex-M4, M7:
//! `thumbv7em-*` targets) [`Plan::classify`] itself runs kernels for the DSP extension
//! (two 16-bit multiply-accumulates per `SMLAD`), again with the same results;
//! [`engine::KERNELS`] says which kernels a build has, and `FMNIST_KERNELS=portable` at
//! build time keeps the portable ones.
//!
//! ```
//! use fmnist_runtime::{Plan, CLASS_NAMES, IMAGE_PIXELS};
//!
//! // The shipped `edge` model, compiled into the program (firmware keeps it in flash).
//! static MODEL: &[u8] = include_bytes!("../models/edge.q8");
//!
//! let plan = Plan::new(MODEL)?;
//! // Working memory: firmware uses a static array of this size; here, the heap.
//! let mut arena = vec![0u8; plan.arena_bytes()];
//! // A 28x28 gray image, row-major, 0 = black background (the dataset's convention):
//! // here two bright vertical bars, a pair of trousers.
//! let pixels: [u8; IMAGE_PIXELS] =
//!     core::array::from_fn(|i| if matches!(i % 28, 9..=12 | 15..=18) { 200 } else { 0 });
//! let logits = plan.classify(&pixels, &mut arena)?;
//! let probabilities = logits.probabilities();
//! for (class, _logit) in logits.top::<3>() {
//!     println!("{} {:.1}%", CLASS_NAMES[class], probabilities[class] * 100.0);
//! }
//! assert_eq!(logits.top::<1>()[0].0, logits.class());
//! assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A photo, with the `image` and `models` features (any PNG, JPEG, ... of any size; the
//! garment light on dark or dark on light):
//!
//! ```
//! # #[cfg(all(feature = "image", feature = "models"))] {
//! use fmnist_runtime::preprocess::{self, Invert};
//! use fmnist_runtime::{models, Plan, CLASS_NAMES};
//! # let photo = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/samples/trouser.png"));
//!
//! let plan = Plan::new(models::EDGE)?; // the shipped model
//! let mut arena = vec![0u8; plan.arena_bytes()];
//! let pixels: [u8; 784] = preprocess::load(photo, Invert::Auto)?; // 28x28, as the dataset
//! let logits = plan.classify(&pixels, &mut arena)?;
//! for (class, probability) in logits.top_probabilities::<3>() {
//!     println!("{} {:.1}%", CLASS_NAMES[class], probability * 100.0);
//! }
//! # assert_eq!(CLASS_NAMES[logits.class()], "Trouser");
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//! - `std` (default): the dataset readers ([`dataset`]), [`FastPlan`], evaluation.
//!   Without it the crate is `no_std` and allocation-free; it never defines a panic
//!   handler (the final artefact does: see `runtime/firmware/`).
//! - `capi`: the C ABI (module `capi`, header `include/fmnist.h`).
//! - `image`: image files to 28x28 pixels (module `preprocess`).
//! - `tract`: ONNX files through tract-onnx (module `onnx`), and one classifier over both
//!   formats (module `classifier`).
//! - `models`: the shipped `edge` blob as `models::EDGE` (99 KB of read-only data).
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod blob;
#[cfg(feature = "std")]
pub mod budget;
#[cfg(feature = "capi")]
pub mod capi;
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
#[cfg(feature = "models")]
pub mod models {
    //! The shipped models, compiled into the program (feature `models`).

    /// The shipped `edge` int8 blob (`models/edge.q8`: an `edge14` distilled from `wide`,
    /// 91.7% on the test set, 98,809 bytes; its model card is `models/README.md`).
    /// Firmware keeps it in flash.
    pub static EDGE: &[u8] = include_bytes!("../models/edge.q8");
}
#[cfg(feature = "image")]
pub mod preprocess;
#[cfg(feature = "std")]
pub mod report;

pub use classes::{Image, CLASS_COUNT, CLASS_NAMES, IMAGE_PIXELS, IMAGE_SIDE, INPUT_SCALE};
#[cfg(feature = "std")]
pub use engine::fast::{FastPlan, Isa, MIN_IMAGES_PER_THREAD};
pub use engine::{BlobError, EngineError, Limits, Logits, Plan};
pub use metrics::Confusion;

// The crate README's example is compiled and run as a doctest too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
