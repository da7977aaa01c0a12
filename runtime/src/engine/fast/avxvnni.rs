//! AVX-VNNI kernels: `vpdpbusd` in its VEX form on 256-bit registers (Alder Lake and
//! later Intel cores, Zen 5), for the CPUs that have VNNI without AVX-512. The AVX-512
//! tile's structure at half the width: u8 x i8, 4 products per 32-bit lane, no widening
//! and no separate add; tiles of 6 pixels x 16 channels (two registers of 8). The
//! requantization, the stores and the max pool are the AVX2 tier's.

use core::arch::x86_64::*;

use super::avx2;
use super::pack::{Packed, LANES};
use super::source::{patch, prepare, Source};
use crate::classes::CLASS_COUNT;

/// Output pixels per register tile: 6 pixels x 2 registers is 12 accumulators; with 2
/// weight registers and 1 input register, 15 of the 16. As in the AVX2 tier, tiles of 5
/// pixels run where they waste fewer slots.
const PIXELS: usize = 6;

/// A convolution with ReLU output, 6 (or 5) pixels x 16 channels at a time, over the
/// source `prepare` builds in `scratch`.
///
/// # Safety
/// The CPU has AVX2 and AVX-VNNI.
#[target_feature(enable = "avx2,avxvnni")]
pub(super) unsafe fn conv(packed: &Packed, input: &[u8], output: &mut [u8], scratch: &mut [u8]) {
    let (source, _) = prepare(packed, input, scratch, |s, d| d.copy_from_slice(s));
    let cost = |p: usize| source.pixels().div_ceil(p) * (p + 1);
    if cost(PIXELS - 1) < cost(PIXELS) {
        conv_tiles::<{ PIXELS - 1 }>(packed, &source, output);
    } else {
        conv_tiles::<PIXELS>(packed, &source, output);
    }
}

/// Every output pixel of `source`, `P` at a time, 16 channels (one packed block) at a
/// time; a block with 8 real channels or fewer computes only its first register.
#[target_feature(enable = "avx2,avxvnni")]
fn conv_tiles<const P: usize>(packed: &Packed, source: &Source<'_>, output: &mut [u8]) {
    for (first, count, starts) in source.tiles::<P>() {
        for block in 0..packed.blocks {
            let channel = block * LANES;
            let real = packed.channels - channel;
            let sums = if real > 8 {
                tile::<P, 2>(packed, source.reads, &starts, block)
            } else {
                tile::<P, 1>(packed, source.reads, &starts, block).map(|[s]| [s, s])
            };
            for (p, pair) in sums.iter().enumerate().take(count) {
                let at = (first + p) * packed.channels + channel;
                for (half, &sum) in pair.iter().enumerate().take(real.div_ceil(8).min(2)) {
                    let from = channel + 8 * half;
                    let keep = 8.min(packed.channels - from);
                    avx2::store(
                        avx2::requantize_relu(packed, from, sum),
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
/// The CPU has AVX2 and AVX-VNNI.
#[target_feature(enable = "avx2,avxvnni")]
pub(super) unsafe fn logits(
    packed: &Packed,
    input: &[u8],
    logits: &mut [i32; CLASS_COUNT],
    scratch: &mut [u8],
) {
    let patch = patch(packed, input, scratch, |s, d| d.copy_from_slice(s));
    // CLASS_COUNT (10) channels: one block.
    let [[low, high]] = tile::<1, 2>(packed, patch, &[0], 0);
    let mut acc = [0i32; LANES];
    // SAFETY: 8 i32 into each half of the 16 i32 of `acc`.
    unsafe {
        _mm256_storeu_si256(acc.as_mut_ptr().cast(), low);
        _mm256_storeu_si256(acc[8..].as_mut_ptr().cast(), high);
    }
    super::finish_logits(packed, &acc, logits);
}

/// The first `H` (1 or 2) registers of 8 channels of block `block`, for `P` pixels whose
/// taps start at `reads[starts[p]..]` (group `g` at `packed.offsets[g]` from there): the
/// raw dot products (without bias), 8 channels in order per register.
#[target_feature(enable = "avx2,avxvnni")]
fn tile<const P: usize, const H: usize>(
    packed: &Packed,
    reads: &[u8],
    starts: &[usize; P],
    block: usize,
) -> [[__m256i; H]; P] {
    let width = packed.blocks * LANES;
    let reach = packed.reach;
    assert!(P <= PIXELS && H <= 2 && block < packed.blocks);
    let mut sums = [[_mm256_setzero_si256(); H]; P];
    // Each pixel's taps (every group's offset + 4 <= reach): the slicing checks the
    // bounds once per tile, the loop reads through the slices' start.
    let pixels: [*const u8; P] =
        core::array::from_fn(|p| reads[starts[p]..starts[p] + reach].as_ptr());
    let rows = packed.weights.chunks_exact(width * 4);
    for (row, &offset) in rows.zip(&packed.offsets) {
        let row = &row[block * LANES * 4..(block + 1) * LANES * 4];
        // SAFETY: the `H` 32-byte weight loads lie within `row` (64 bytes), and every
        // input read (4 bytes at `offset`) ends by `reach`, within each pixel's slice.
        unsafe {
            let w: [__m256i; H] =
                core::array::from_fn(|h| _mm256_loadu_si256(row.as_ptr().add(h * 32).cast()));
            for (sum, pixel) in sums.iter_mut().zip(pixels) {
                let x = pixel.add(offset as usize).cast::<i32>().read_unaligned();
                let x = _mm256_set1_epi32(x);
                for h in 0..H {
                    sum[h] = _mm256_dpbusd_avx_epi32(sum[h], x, w[h]);
                }
            }
        }
    }
    sums
}
