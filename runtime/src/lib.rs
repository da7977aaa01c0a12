//! Fashion-MNIST inference for desktops and microcontrollers.
//!
//! Without the `std` feature this crate is `no_std` and allocation-free. With `std` (the
//! default) it adds the dataset readers ([`dataset`]) that the trainer and the CLI share.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

pub mod blob;
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
#[cfg(feature = "cli")]
pub mod preprocess;

pub use classes::{CLASS_COUNT, CLASS_NAMES, IMAGE_PIXELS, IMAGE_SIDE};
pub use engine::{BlobError, EngineError, Logits, Plan};
pub use metrics::Confusion;

/// The panic handler of a `no_std` final artefact (the C static library, firmware): a
/// panic, which validated blobs never cause, stops the program with a trap instruction
/// (an illegal-instruction fault) instead of unwinding into C.
#[cfg(all(feature = "panic-handler", not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        // SAFETY: a trap instruction, no memory access.
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        unsafe {
            core::arch::asm!("ud2", options(noreturn))
        }
        #[cfg(any(target_arch = "arm", target_arch = "aarch64"))]
        unsafe {
            core::arch::asm!("udf #0", options(noreturn))
        }
    }
}
