//! `libfmnist.a`: the C ABI of `fmnist_runtime::capi` (header `runtime/include/fmnist.h`)
//! as a static library for C firmware: `no_std`, no allocator, no libc I/O, and the panic
//! handler of `trap.rs`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub use fmnist_runtime::capi::*;

mod trap;
