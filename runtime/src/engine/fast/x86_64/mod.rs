//! The x86-64 tiers: AVX2 (`avx2`), AVX-VNNI and AVX2 on byte pairs (`avxvnni`),
//! AVX-512 VNNI (`avx512`) and AMX-INT8 (`amx`). Another architecture's kernels go in a
//! folder of their own beside this one.

pub(super) mod amx;
pub(super) mod avx2;
pub(super) mod avx512;
pub(super) mod avxvnni;

/// Every tier's kernels, the fastest first.
pub(in crate::engine::fast) const TIERS: [&crate::engine::fast::Kernels; 4] = [
    &amx::KERNELS,
    &avx512::KERNELS,
    &avxvnni::KERNELS,
    &avx2::KERNELS,
];
