//! The stack `Plan::classify` and `FastPlan::classify` (every ISA this CPU runs) need,
//! measured by painting: the region below the stack
//! pointer is filled with a pattern, classify runs, and the deepest byte it changed tells
//! its peak use. x86-64 only (the stack pointer is read with one instruction); the
//! table of docs/edge.md quotes what this prints
//! (`cargo test --release -p fmnist-runtime --test stack -- --nocapture`).
#![cfg(target_arch = "x86_64")]

use fmnist_runtime::{FastPlan, Isa, Plan};

const PAINTED: usize = 256 * 1024;
const PATTERN: u8 = 0xa5;

/// Peak bytes of stack below the caller's frame that `f` used.
#[inline(never)]
fn stack_used(f: &mut dyn FnMut()) -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer; no memory access.
    unsafe { std::arch::asm!("mov {}, rsp", out(reg) sp) };
    // Leave the red zone alone; paint what is below it.
    let top = sp - 256;
    let bottom = top - PAINTED;
    for address in bottom..top {
        // SAFETY: unused stack of this thread (spawned with a stack far larger than
        // `PAINTED`), below the live frames.
        unsafe { std::ptr::write_volatile(address as *mut u8, PATTERN) };
    }
    f();
    let deepest = (bottom..top)
        // SAFETY: as above; `f` has returned, so nothing lives there any more.
        .find(|&address| unsafe { std::ptr::read_volatile(address as *const u8) } != PATTERN)
        .unwrap_or(top);
    sp - deepest
}

/// `(baseline, used)`: the stack of an empty closure, and of one classification of
/// `blob` with the portable plan (`isa` None) or a `FastPlan` on `isa`.
fn measure(blob: &'static [u8], isa: Option<Isa>) -> (usize, usize) {
    std::thread::Builder::new()
        .stack_size(4 * 1024 * 1024)
        .spawn(move || {
            let plan = Plan::new(blob).expect("the shipped blob loads");
            let fast = isa.map(|isa| FastPlan::with_isa(plan.clone(), isa));
            let size = fast
                .as_ref()
                .map_or(plan.arena_bytes(), FastPlan::arena_bytes);
            let mut arena = vec![0u8; size];
            let pixels: [u8; 784] = core::array::from_fn(|i| (i * 37 % 256) as u8);
            let mut class = 0;
            let baseline = stack_used(&mut || class = std::hint::black_box(1));
            let used = stack_used(&mut || {
                let logits = match &fast {
                    Some(fast) => fast.classify(&pixels, &mut arena),
                    None => plan.classify(&pixels, &mut arena),
                };
                class = logits.expect("classifies").class();
            });
            assert!(class < 10);
            (baseline, used)
        })
        .expect("spawns")
        .join()
        .expect("measures")
}

#[test]
fn classify_needs_a_few_kilobytes_of_stack_on_every_path() {
    for (name, blob) in [
        ("edge", &include_bytes!("../../models/edge.q8")[..]),
        ("cnn", &include_bytes!("../../models/cnn.q8")[..]),
    ] {
        let isas = Isa::ALL;
        let paths =
            std::iter::once(None).chain(isas.into_iter().filter(|isa| isa.supported()).map(Some));
        for isa in paths {
            let what = isa.map_or("Plan".to_string(), |i| format!("FastPlan {}", i.name()));
            let (baseline, used) = measure(blob, isa);
            println!(
                "{name}, {what}: classify used {used} bytes of stack (an empty closure {baseline})"
            );
            assert!(used > baseline, "the painting saw no use at all");
            assert!(used < 8 * 1024, "{name}, {what}: {used} bytes of stack");
        }
    }
}
