//! The panic handler of a `no_std` final artefact (`libfmnist.a`, and the firmware
//! example, which includes this file): a trap instruction (an illegal-instruction fault),
//! never an unwind into C. A validated blob never panics the engine; this is the last
//! resort. A library, `fmnist_runtime` included, never defines a panic handler.

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: a trap instruction, no memory access.
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    unsafe {
        core::arch::asm!("ud2", options(noreturn));
    }
    // SAFETY: as above.
    #[cfg(any(target_arch = "arm", target_arch = "aarch64"))]
    unsafe {
        core::arch::asm!("udf #0", options(noreturn));
    }
    #[cfg(not(any(
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "arm",
        target_arch = "aarch64"
    )))]
    loop {}
}
