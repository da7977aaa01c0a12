//! The engine on an (emulated) Cortex-M: reads a blob and test images from the host
//! through semihosting, classifies each image with `Plan::classify` and prints the
//! logits, or the instructions each image took.
//!
//! The command line (QEMU's `-semihosting-config arg=...`):
//!
//! ```text
//! classify logits|bench BLOB|- IMAGES COUNT
//! ```
//!
//! `BLOB` is a blob file on the host, `-` the shipped `edge` model built into the image;
//! `IMAGES` a file of 28x28 images, 784 bytes each, back to back. Output, one line each:
//!
//! ```text
//! kernels dsp|portable
//! arena BYTES
//! macs MULTIPLY-ACCUMULATES                 (per image)
//! load INSTRUCTIONS                         (Plan::new, bench only)
//! logits INDEX L0 .. L9 INSTRUCTIONS        (INSTRUCTIONS: bench only)
//! stack BYTES                               (the most Plan::new and a classify used)
//! done COUNT
//! ```
//!
//! Instructions are counted with QEMU's `-icount shift=0` (one instruction, one
//! nanosecond of virtual time) through SysTick, calibrated against a loop of known length
//! (`bench` runs it first: `calibration INSTRUCTIONS TICKS`).
#![no_std]
#![no_main]

use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::hio::{self, HostStream};
use cortex_m_semihosting::{debug, nr, syscall, syscall1};
use fmnist_runtime::{Plan, IMAGE_PIXELS};

#[path = "../../../src/trap.rs"]
mod trap;

/// The shipped model, used when the blob argument is `-`.
static EDGE: &[u8] = include_bytes!("../../../../../models/edge.q8");

/// A blob read from the host (the largest shipped blob is about 100 KB).
static mut BLOB: [u8; 256 * 1024] = [0; 256 * 1024];
/// The engine's working memory.
static mut ARENA: [u8; 96 * 1024] = [0; 96 * 1024];

/// Bytes of stack painted below the caller's frame before the engine runs.
const PAINTED: usize = 32 * 1024;
const PAINT: u32 = 0x5afe_c0de;

/// SysTick wraps (every 2^24 ticks).
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Ticks since the counter started (SysTick counts down from 2^24 - 1, on the core clock).
fn ticks() -> u64 {
    loop {
        let before = WRAPS.load(Ordering::Relaxed);
        let current = cortex_m::peripheral::SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == before {
            return (u64::from(before) << 24) + u64::from(0xff_ffff - current);
        }
    }
}

/// A line of output, written to the host's stdout in one semihosting call.
struct Line {
    out: Option<HostStream>,
    bytes: [u8; 256],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line {
            out: hio::hstdout().ok(),
            bytes: [0; 256],
            len: 0,
        }
    }

    fn send(&mut self) {
        self.bytes[self.len] = b'\n';
        if let Some(out) = self.out.as_mut() {
            let _ = out.write_all(&self.bytes[..=self.len]);
        }
        self.len = 0;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.bytes.len() - 1 - self.len;
        let n = s.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn fail(message: &str) -> ! {
    let mut line = Line::new();
    let _ = write!(line, "error {message}");
    line.send();
    exit(debug::EXIT_FAILURE)
}

/// Ends the emulation with `status` (QEMU exits with it).
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}

/// A file on the host, opened read-only.
struct HostFile(usize);

impl HostFile {
    fn open(path: &str) -> HostFile {
        let mut name = [0u8; 256];
        if path.len() >= name.len() {
            fail("path too long");
        }
        name[..path.len()].copy_from_slice(path.as_bytes());
        // SAFETY: OPEN with a NUL-terminated name, a mode and the name's length.
        let fd = unsafe { syscall!(OPEN, name.as_ptr(), nr::open::R_BINARY, path.len()) };
        if fd == usize::MAX {
            fail("cannot open a file named on the command line");
        }
        HostFile(fd)
    }

    /// Fills `buffer` as far as the file goes; returns the bytes read.
    fn read(&self, buffer: &mut [u8]) -> usize {
        // SAFETY: READ into a writable buffer of that length; returns the bytes NOT read.
        let unread = unsafe { syscall!(READ, self.0, buffer.as_mut_ptr(), buffer.len()) };
        buffer.len() - unread.min(buffer.len())
    }
}

/// Instructions and SysTick ticks of a loop of two instructions per turn: their ratio
/// turns ticks into instructions.
fn calibrate(line: &mut Line) -> (u64, u64) {
    const TURNS: u32 = 5_000_000;
    let start = ticks();
    // SAFETY: a register-only countdown loop: `subs` and `bne`, TURNS times.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, #1",
            "bne 2b",
            n = inout(reg) TURNS => _,
            options(nomem, nostack),
        );
    }
    let elapsed = ticks() - start;
    let _ = write!(line, "calibration {} {elapsed}", 2 * TURNS);
    line.send();
    (2 * u64::from(TURNS), elapsed.max(1))
}

/// `ticks` in instructions, rounded, by the calibration's ratio.
fn instructions(ticks: u64, (counted, measured): (u64, u64)) -> u64 {
    (ticks * counted + measured / 2) / measured
}

/// The deepest the stack went below `top` since it was painted.
fn stack_used(top: usize) -> usize {
    let bottom = top - PAINTED;
    let mut at = bottom;
    // SAFETY: reads of the painted words, which lie in the stack region below the frame.
    while at < top && unsafe { core::ptr::read_volatile(at as *const u32) } == PAINT {
        at += 4;
    }
    top - at
}

#[inline(never)]
fn paint_stack() -> usize {
    let top = cortex_m::register::msp::read() as usize - 64;
    let mut at = top - PAINTED;
    while at < top {
        // SAFETY: the stack below the current frame (the RAM region holds 512 KiB and
        // nothing else grows into it), not in use until the engine runs.
        unsafe { core::ptr::write_volatile(at as *mut u32, PAINT) };
        at += 4;
    }
    top
}

#[entry]
fn main() -> ! {
    let mut core = cortex_m::Peripherals::take().unwrap_or_else(|| fail("no peripherals"));
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(0xff_ffff);
    core.SYST.clear_current();
    core.SYST.enable_interrupt();
    core.SYST.enable_counter();

    let mut cmdline = [0u8; 512];
    let mut request = [cmdline.as_mut_ptr() as usize, cmdline.len()];
    // SAFETY: GET_CMDLINE with a buffer and its length; the host writes the length back.
    let status = unsafe { syscall1!(GET_CMDLINE, request.as_mut_ptr()) };
    if status != 0 {
        fail("no command line (run under QEMU with -semihosting-config ...,arg=...)");
    }
    let cmdline = core::str::from_utf8(&cmdline[..request[1].min(512)])
        .unwrap_or_else(|_| fail("command line is not UTF-8"));
    let mut args = cmdline.split_ascii_whitespace();
    // QEMU passes the program name first when it is given as an arg.
    let mut next = || {
        args.next()
            .unwrap_or_else(|| fail("usage: classify logits|bench BLOB|- IMAGES COUNT"))
    };
    let mut mode = next();
    if mode == "classify" {
        mode = next();
    }
    let bench = match mode {
        "logits" => false,
        "bench" => true,
        _ => fail("mode must be logits or bench"),
    };
    let blob_path = next();
    let images = HostFile::open(next());
    let count: usize = next()
        .parse()
        .unwrap_or_else(|_| fail("COUNT is not a number"));

    let mut line = Line::new();
    let _ = write!(line, "kernels {}", fmnist_runtime::engine::KERNELS);
    line.send();
    let ratio = if bench { calibrate(&mut line) } else { (0, 1) };

    // SAFETY: main runs once; these are the only borrows of the two buffers.
    let (blob_buffer, arena) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(BLOB),
            &mut *core::ptr::addr_of_mut!(ARENA),
        )
    };
    let blob: &[u8] = if blob_path == "-" {
        EDGE
    } else {
        let file = HostFile::open(blob_path);
        let n = file.read(blob_buffer);
        if n == blob_buffer.len() {
            fail("blob larger than the firmware's buffer");
        }
        &blob_buffer[..n]
    };

    let mut pixels = [0u8; IMAGE_PIXELS];
    let next_image = |pixels: &mut [u8; IMAGE_PIXELS]| {
        if images.read(pixels) != IMAGE_PIXELS {
            fail("the images file ends early");
        }
    };
    if count > 0 {
        next_image(&mut pixels);
    }
    // The stack the engine uses: painted, then `Plan::new` and one `classify`, then read
    // back before anything else (formatting, semihosting) runs.
    let top = paint_stack();
    let start = ticks();
    let plan = Plan::new(blob).unwrap_or_else(|_| fail("the blob is invalid"));
    let load = ticks() - start;
    if plan.arena_bytes() > arena.len() {
        fail("arena larger than the firmware's buffer");
    }
    let mut classify = |pixels: &[u8; IMAGE_PIXELS]| {
        let start = ticks();
        let logits = plan
            .classify(pixels, arena)
            .unwrap_or_else(|_| fail("classify failed"));
        (logits, ticks() - start)
    };
    let first = (count > 0).then(|| classify(&pixels));
    let stack = stack_used(top);
    let _ = write!(line, "arena {}", plan.arena_bytes());
    line.send();
    let _ = write!(line, "macs {}", plan.model().macs);
    line.send();
    if bench {
        let _ = write!(line, "load {}", instructions(load, ratio));
        line.send();
    }

    for index in 0..count {
        let (logits, elapsed) = match (index, first) {
            (0, Some(first)) => first,
            _ => {
                next_image(&mut pixels);
                classify(&pixels)
            }
        };
        let _ = write!(line, "logits {index}");
        for value in logits.values {
            let _ = write!(line, " {value}");
        }
        if bench {
            let _ = write!(line, " {}", instructions(elapsed, ratio));
        }
        line.send();
    }
    let _ = write!(line, "stack {stack}");
    line.send();
    let _ = write!(line, "done {count}");
    line.send();
    exit(debug::EXIT_SUCCESS)
}
