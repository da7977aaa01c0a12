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
//! static MODEL: &[u8] = include_bytes!("../../models/edge.q8");
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
//! # Features
//! - `std` (default): the dataset readers ([`dataset`]), [`FastPlan`], evaluation.
//!   Without it the crate is `no_std` and allocation-free; it never defines a panic
//!   handler (the final artefact does: see `runtime/firmware/`).
//! - `capi`: the C ABI (module `capi`, header `include/fmnist.h`).
//! - `image`: image files to 28x28 pixels (module `preprocess`).
//! - `tract`: ONNX files through tract-onnx (module `onnx`), and one classifier over both
//!   formats (module `classifier`).
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
#[cfg(feature = "image")]
pub mod preprocess;
#[cfg(feature = "std")]
pub mod report;

pub use classes::{CLASS_COUNT, CLASS_NAMES, IMAGE_PIXELS, IMAGE_SIDE, INPUT_SCALE};
#[cfg(feature = "std")]
pub use engine::fast::{FastPlan, Isa, MIN_IMAGES_PER_THREAD};
pub use engine::{BlobError, EngineError, Limits, Logits, Plan};
pub use metrics::Confusion;
