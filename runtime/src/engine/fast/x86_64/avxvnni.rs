//! Kernels over the 8-bit VNNI layout on 256-bit registers: 4 u8 x i8 products per 32-bit
//! lane, tiles of 6 (or 5) pixels x 16 channels (two registers of 8), the AVX-512
//! tile's structure at half the width. Two instruction sets run them ([`Dot`]):
//! - AVX-VNNI: `vpdpbusd` in its VEX form (Alder Lake and later Intel cores, Zen 5), for
//!   the CPUs that have VNNI without AVX-512;
//! - AVX2 alone, on layers whose weights cannot saturate a 16-bit pair sum (every pair
//!   `|w0| + |w1| <= 128`, as 7-bit weights are): `vpmaddubsw`, then `vpmaddwd` by ones
//!   and `vpaddd`, the same sums. Other layers take the AVX2 tier's 16-bit kernels.
//!
//! The requantization, the stores and the max pool are the AVX2 tier's.

use core::arch::x86_64::*;

use super::avx2;
use crate::classes::CLASS_COUNT;
use crate::engine::fast::pack::{Packed, LANES};
use crate::engine::fast::source::{patch, prepare, Source};

/// How a tile adds 4 u8 x i8 products per 32-bit lane into its sums.
trait Dot {
    /// Output pixels per register tile: `PIXELS` x 2 accumulators, 2 weight registers, 1
    /// input register and the step's own within AVX2's 16.
    const PIXELS: usize;

    /// `sum` plus, per 32-bit lane, the 4 products of `x`'s bytes (u8) and `w`'s (i8).
    ///
    /// # Safety
    /// The CPU has the step's instructions.
    unsafe fn dot(sum: __m256i, x: __m256i, w: __m256i) -> __m256i;
}

/// `vpdpbusd`: one instruction, exact.
struct Vnni;

impl Dot for Vnni {
    /// 12 accumulators, 15 registers.
    const PIXELS: usize = 6;

    #[inline(always)]
    unsafe fn dot(sum: __m256i, x: __m256i, w: __m256i) -> __m256i {
        // SAFETY: the caller's CPU has AVX-VNNI.
        unsafe { _mm256_dpbusd_avx_epi32(sum, x, w) }
    }
}

/// `vpmaddubsw` (pairs into saturating 16-bit sums, exact while `|w0| + |w1| <= 128`:
/// `255 * 128 < 2^15`), `vpmaddwd` by ones, `vpaddd`.
struct Bytes;

impl Dot for Bytes {
    /// 10 accumulators; the ones and the 16-bit sums take two registers more.
    const PIXELS: usize = 5;

    #[inline(always)]
    unsafe fn dot(sum: __m256i, x: __m256i, w: __m256i) -> __m256i {
        // SAFETY: the caller's CPU has AVX2.
        unsafe {
            let pairs = _mm256_maddubs_epi16(x, w);
            _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }
}

/// A convolution with ReLU output, with `vpdpbusd`.
///
/// # Safety
/// The CPU has AVX2 and AVX-VNNI.
#[target_feature(enable = "avx2,avxvnni")]
pub(in crate::engine::fast) unsafe fn conv(
    packed: &Packed,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) {
    // SAFETY: the CPU has AVX-VNNI.
    unsafe { conv_with::<Vnni>(packed, input, output, scratch) }
}

/// A convolution with ReLU output, with `vpmaddubsw`: for layers whose weights
/// [`Packed::pairs_fit_16_bits`].
///
/// # Safety
/// The CPU has AVX2; `packed.pairs_fit_16_bits()`.
#[target_feature(enable = "avx2")]
pub(in crate::engine::fast) unsafe fn conv_bytes(
    packed: &Packed,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) {
    // SAFETY: the CPU has AVX2 (and no more is enabled here: the compiler could otherwise
    // fuse `vpmaddwd` and `vpaddd` into a VNNI instruction).
    unsafe { conv_with::<Bytes>(packed, input, output, scratch) }
}

/// The logits layer, with `vpdpbusd`.
///
/// # Safety
/// The CPU has AVX2 and AVX-VNNI.
#[target_feature(enable = "avx2,avxvnni")]
pub(in crate::engine::fast) unsafe fn logits(
    packed: &Packed,
    input: &[u8],
    logits: &mut [i32; CLASS_COUNT],
    scratch: &mut [u8],
) {
    // SAFETY: the CPU has AVX-VNNI.
    unsafe { logits_with::<Vnni>(packed, input, logits, scratch) }
}

/// The logits layer, with `vpmaddubsw`.
///
/// # Safety
/// The CPU has AVX2; `packed.pairs_fit_16_bits()`.
#[target_feature(enable = "avx2")]
pub(in crate::engine::fast) unsafe fn logits_bytes(
    packed: &Packed,
    input: &[u8],
    logits: &mut [i32; CLASS_COUNT],
    scratch: &mut [u8],
) {
    // SAFETY: the CPU has AVX2.
    unsafe { logits_with::<Bytes>(packed, input, logits, scratch) }
}

/// A convolution with ReLU output, `D::PIXELS` (or one fewer) pixels x 16 channels at a
/// time, over the source `prepare` builds in `scratch`.
///
/// # Safety
/// The CPU has AVX2 and `D`'s instructions.
#[inline(always)]
unsafe fn conv_with<D: Dot>(packed: &Packed, input: &[u8], output: &mut [u8], scratch: &mut [u8]) {
    let (source, _) = prepare(packed, input, scratch, |s, d| d.copy_from_slice(s));
    if packed.pool.is_some() {
        // SAFETY: the caller's CPU has D's instructions.
        return unsafe { conv_pooled::<D>(packed, &source, output) };
    }
    // Tile slots (computed pixels), plus about one pixel's work per tile for its setup and
    // requantization: the smaller tile runs where it wastes fewer slots.
    let cost = |p: usize| source.pixels().div_ceil(p) * (p + 1);
    // SAFETY: the caller's CPU has D's instructions.
    unsafe {
        if D::PIXELS == 6 {
            if cost(5) < cost(6) {
                conv_tiles::<D, 5>(packed, &source, output);
            } else {
                conv_tiles::<D, 6>(packed, &source, output);
            }
        } else if cost(4) < cost(5) {
            conv_tiles::<D, 4>(packed, &source, output);
        } else {
            conv_tiles::<D, 5>(packed, &source, output);
        }
    }
}

/// Every output pixel of `source`, `P` at a time, 16 channels (one packed block) at a
/// time; a block with 8 real channels or fewer computes only its first register.
///
/// # Safety
/// The CPU has AVX2 and `D`'s instructions.
#[inline(always)]
unsafe fn conv_tiles<D: Dot, const P: usize>(
    packed: &Packed,
    source: &Source<'_>,
    output: &mut [u8],
) {
    for (first, count, starts) in source.tiles::<P>() {
        for block in 0..packed.blocks {
            let channel = block * LANES;
            let real = packed.channels - channel;
            // SAFETY: the caller's CPU has D's instructions.
            let sums = unsafe {
                if real > 8 {
                    tile::<D, P, 2>(packed, source.reads, &starts, block)
                } else {
                    tile::<D, P, 1>(packed, source.reads, &starts, block).map(|[s]| [s, s])
                }
            };
            for (p, pair) in sums.iter().enumerate().take(count) {
                let at = (first + p) * packed.channels + channel;
                for (half, &sum) in pair.iter().enumerate().take(real.div_ceil(8).min(2)) {
                    let from = channel + 8 * half;
                    let keep = 8.min(packed.channels - from);
                    // SAFETY: the caller's CPU has AVX2.
                    unsafe {
                        avx2::store(
                            avx2::requantize_relu(packed, from, sum),
                            &mut output[at + 8 * half..at + 8 * half + keep],
                        );
                    }
                }
            }
        }
    }
}

/// A convolution with ReLU and the 2 x 2 max pool after it (`Packed::pool`, which these
/// tiers take only of size 2): each tile computes one window's 4 pixels, and only their
/// maximum is requantized.
///
/// # Safety
/// The CPU has AVX2 and `D`'s instructions.
#[inline(always)]
unsafe fn conv_pooled<D: Dot>(packed: &Packed, source: &Source<'_>, output: &mut [u8]) {
    for (pooled, _, starts) in source.windows::<4, 2>() {
        for block in 0..packed.blocks {
            let channel = block * LANES;
            let real = packed.channels - channel;
            // SAFETY: the caller's CPU has D's instructions.
            let sums = unsafe {
                if real > 8 {
                    tile::<D, 4, 2>(packed, source.reads, &starts, block)
                } else {
                    tile::<D, 4, 1>(packed, source.reads, &starts, block).map(|[s]| [s, s])
                }
            };
            let at = pooled * packed.channels + channel;
            for half in 0..real.div_ceil(8).min(2) {
                let from = channel + 8 * half;
                let keep = 8.min(packed.channels - from);
                // SAFETY: the caller's CPU has AVX2.
                unsafe {
                    let best = avx2::largest(sums.map(|pair| pair[half]));
                    avx2::store(
                        avx2::requantize_relu(packed, from, best),
                        &mut output[at + 8 * half..at + 8 * half + keep],
                    );
                }
            }
        }
    }
}

/// The logits layer: one "pixel" whose patch is the flattened input, zero-padded to a
/// multiple of 4 taps in `scratch`.
///
/// # Safety
/// The CPU has AVX2 and `D`'s instructions.
#[inline(always)]
unsafe fn logits_with<D: Dot>(
    packed: &Packed,
    input: &[u8],
    logits: &mut [i32; CLASS_COUNT],
    scratch: &mut [u8],
) {
    let patch = patch(packed, input, scratch, |s, d| d.copy_from_slice(s));
    let mut acc = [0i32; LANES];
    // SAFETY: the caller's CPU has D's instructions; 8 i32 stored into each half of the
    // 16 i32 of `acc`. CLASS_COUNT (10) channels: one block.
    unsafe {
        let [[low, high]] = tile::<D, 1, 2>(packed, patch, &[0], 0);
        _mm256_storeu_si256(acc.as_mut_ptr().cast(), low);
        _mm256_storeu_si256(acc[8..].as_mut_ptr().cast(), high);
    }
    crate::engine::fast::finish_logits(packed, &acc, logits);
}

/// The first `H` (1 or 2) registers of 8 channels of block `block`, for `P` pixels whose
/// taps start at `reads[starts[p]..]` (group `g` at `packed.offsets[g]` from there): the
/// raw dot products (without bias), 8 channels in order per register.
///
/// # Safety
/// The CPU has AVX2 and `D`'s instructions.
#[inline(always)]
unsafe fn tile<D: Dot, const P: usize, const H: usize>(
    packed: &Packed,
    reads: &[u8],
    starts: &[usize; P],
    block: usize,
) -> [[__m256i; H]; P] {
    let width = packed.blocks * LANES;
    let reach = packed.reach;
    assert!(P <= 6 && H <= 2 && block < packed.blocks);
    // SAFETY: the caller's CPU has AVX2.
    let mut sums = [[unsafe { _mm256_setzero_si256() }; H]; P];
    // Each pixel's taps (every group's offset + 4 <= reach): the slicing checks the
    // bounds once per tile, the loop reads through the slices' start.
    let pixels: [*const u8; P] =
        core::array::from_fn(|p| reads[starts[p]..starts[p] + reach].as_ptr());
    let rows = packed.weights.chunks_exact(width * 4);
    for (row, &offset) in rows.zip(&packed.offsets) {
        let row = &row[block * LANES * 4..(block + 1) * LANES * 4];
        // SAFETY: the `H` 32-byte weight loads lie within `row` (64 bytes), and every
        // input read (4 bytes at `offset`) ends by `reach`, within each pixel's slice; the
        // caller's CPU has AVX2 and D's instructions.
        unsafe {
            let w: [__m256i; H] =
                core::array::from_fn(|h| _mm256_loadu_si256(row.as_ptr().add(h * 32).cast()));
            for (sum, pixel) in sums.iter_mut().zip(pixels) {
                let x = pixel.add(offset as usize).cast::<i32>().read_unaligned();
                let x = _mm256_set1_epi32(x);
                for h in 0..H {
                    sum[h] = D::dot(sum[h], x, w[h]);
                }
            }
        }
    }
    sums
}

/// The AVX-VNNI tier's kernels (max pooling: AVX2's).
pub(in crate::engine::fast) const KERNELS: crate::engine::fast::Kernels =
    crate::engine::fast::Kernels {
        isa: crate::engine::fast::Isa::AvxVnni,
        conv,
        conv_bytes: None,
        logits,
        logits_bytes: None,
        pool: super::avx2::max_pool,
    };
