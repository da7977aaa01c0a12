//! Firmware-style use from Rust: `#![no_std]`, the shipped `edge` blob in flash through
//! `include_bytes!`, a static arena, no allocator, classification in a loop.
//!
//! The board support (C startup code, or a Rust `#[entry]` in embassy/RTIC) calls
//! `firmware_main`; the board provides `camera_frame` (fills 784 pixels, false when there
//! are no more) and `show_class`. Build it as a static library:
//!
//! ```text
//! cargo build --manifest-path runtime/firmware/Cargo.toml --release --example firmware
//! ```
//!
//! `tests/capi.rs` links it with `examples/c/firmware_host.c`, a host stand-in for
//! the board that feeds real test images, and checks every class against the engine.
#![no_std]

use core::sync::atomic::{AtomicBool, Ordering};

// The panic handler of this final artefact: a trap, never an unwind into C (a library
// such as `fmnist_runtime` never defines one).
#[path = "../src/trap.rs"]
mod trap;

use fmnist_runtime::{Plan, IMAGE_PIXELS};

/// The model, in flash.
static MODEL: &[u8] = include_bytes!("../../../models/edge.q8");

/// Working memory of the engine, in RAM. The shipped `edge` (an `edge14` model) needs
/// 18,816 bytes.
const ARENA_BYTES: usize = 19 * 1024;
static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];
/// Set by the first `firmware_main`, so that the arena is only ever borrowed once.
static ARENA_TAKEN: AtomicBool = AtomicBool::new(false);

extern "C" {
    /// Fills `pixels` (784 bytes, 0 = black background) with the next frame; false when
    /// there is none.
    fn camera_frame(pixels: *mut u8) -> bool;
    /// Reports the class of the last frame.
    fn show_class(class_index: u32);
}

/// Classifies frames until the camera has none. Returns the number of frames classified,
/// -1 if the blob is invalid or the arena too small, -2 if called twice.
#[no_mangle]
pub extern "C" fn firmware_main() -> i32 {
    if ARENA_TAKEN.swap(true, Ordering::AcqRel) {
        return -2;
    }
    // SAFETY: the flag above lets exactly one caller ever create this borrow.
    let arena: &'static mut [u8; ARENA_BYTES] = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
    let Ok(plan) = Plan::new(MODEL) else {
        return -1;
    };
    let mut frame = [0u8; IMAGE_PIXELS];
    let mut count = 0;
    // SAFETY: `frame` has the 784 bytes the board's hook fills.
    while unsafe { camera_frame(frame.as_mut_ptr()) } {
        match plan.classify(&frame, arena) {
            // SAFETY: a plain call into the board's hook.
            Ok(logits) => unsafe { show_class(logits.class() as u32) },
            Err(_) => return -1,
        }
        count += 1;
    }
    count
}
