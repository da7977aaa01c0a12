//! The smallest firmware around the engine, for its flash and RAM footprint
//! (scripts/footprint.sh): the shipped blob in flash, a static arena, and a loop that
//! classifies whatever the "camera" DMA last wrote into `FRAME` and publishes the class
//! in `CLASS`. No semihosting, no formatting, no allocator.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut};

use cortex_m_rt::entry;
use fmnist_runtime::{Plan, IMAGE_PIXELS};

#[path = "../../../src/trap.rs"]
mod trap;

#[cfg(not(feature = "cnn"))]
static MODEL: &[u8] = include_bytes!("../../../../../models/edge.q8");
#[cfg(feature = "cnn")]
static MODEL: &[u8] = include_bytes!("../../../../../models/cnn.q8");

/// `Plan::arena_bytes` of the blob with the DSP kernels, rounded up to 256 bytes
/// (scripts/footprint.sh checks it against what the engine asks for).
#[cfg(not(feature = "cnn"))]
const ARENA_BYTES: usize = 23 * 1024;
#[cfg(feature = "cnn")]
const ARENA_BYTES: usize = 15_872;

static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];
/// The frame a camera's DMA fills.
static mut FRAME: [u8; IMAGE_PIXELS] = [0; IMAGE_PIXELS];
/// The last class, or 0xff before the first / after an error.
static mut CLASS: u8 = 0xff;

#[entry]
fn main() -> ! {
    // SAFETY: main runs once and is the only code that touches these statics.
    let arena = unsafe { &mut *addr_of_mut!(ARENA) };
    let Ok(plan) = Plan::new(MODEL) else { trap() };
    loop {
        // The frame as the DMA left it: `black_box` hides the pointer's origin, so the
        // compiler reads the memory (a volatile read of 784 bytes would be 784 byte loads).
        // SAFETY: nothing else borrows FRAME mutably (the DMA is outside the program).
        let frame: &[u8; IMAGE_PIXELS] = unsafe { &*core::hint::black_box(addr_of!(FRAME)) };
        let class = match plan.classify(frame, arena) {
            Ok(logits) => logits.class() as u8,
            Err(_) => 0xff,
        };
        // SAFETY: a volatile store to a static only main touches.
        unsafe { core::ptr::write_volatile(addr_of_mut!(CLASS), class) };
    }
}

/// A blob that does not validate stops here (an illegal instruction).
fn trap() -> ! {
    panic!()
}
