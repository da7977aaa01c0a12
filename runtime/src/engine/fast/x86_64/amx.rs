//! AMX-INT8 kernels (Sapphire Rapids and later Xeons): the convolutions as tile
//! matrix products (`tdpbusd`: 16 pixels x 64 input bytes times 64 bytes x 16 channels,
//! 16,384 multiply-accumulates per instruction), 32 pixels x 32 channels at a time in
//! four accumulator tiles. Everything else (the logits, max
//! pooling, requantization) runs the AVX-512 VNNI kernels.
//!
//! Rust has no stable AMX intrinsics, so the tile instructions are written as inline
//! assembly on fixed tile registers, which the compiler never uses: tmm0-3 accumulate,
//! tmm4-5 hold the pixels' bytes, tmm6-7 the weights. Linux hands AMX's register state
//! to a process only on request (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), which
//! [`available`] makes once.

use core::arch::asm;
use core::arch::x86_64::*;

use super::avx512;
use crate::engine::fast::pack::{Geometry, Packed, Pool, Tiles, LANES, TILE_ROWS};
use crate::engine::fast::source::border;

/// Bytes of the four accumulator tiles stored for requantization.
const ACCUMULATORS: usize = 4 * TILE_ROWS * 64;

/// Scratch bytes of a layer with these tiles: its bordered input and the stored
/// accumulators, each from a cache line (a pool's sums come after them).
pub(in crate::engine::fast) fn scratch_bytes(tiles: &Tiles) -> usize {
    63 + tiles.reads.next_multiple_of(64) + ACCUMULATORS
}

/// Whether this CPU has AMX-INT8 and the operating system lets this process use it
/// (asked once; the answer is kept).
pub(in crate::engine::fast) fn available() -> bool {
    use std::sync::OnceLock;
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(|| {
        // CPUID leaf 7: EDX bit 24 is AMX-TILE, bit 25 AMX-INT8.
        let leaf = __cpuid_count(7, 0);
        let cpu = leaf.edx >> 24 & 1 == 1 && leaf.edx >> 25 & 1 == 1;
        cpu && request_tile_data()
    })
}

#[cfg(target_os = "linux")]
fn request_tile_data() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes which register state the
    // kernel saves for this process; it fails (non-zero) where AMX is not supported.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_data() -> bool {
    false
}

/// `ldtilecfg`'s 64-byte operand: palette 1, every tile used 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// A convolution with ReLU output on AMX tiles, 32 pixels x 32 channels per pass (a layer
/// without tiles, which `Packed::tiles` gives every convolution with an output: the
/// AVX-512 VNNI kernel). With `packed.pool`, the max pool after it too: each pass keeps
/// the pooled pixels' largest sums in the scratch, and only those are requantized.
///
/// # Safety
/// The CPU has AVX-512 F, BW, VL and VNNI, [`available`] said yes, and [`configure`]
/// ran since the last [`release`] on this thread.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(in crate::engine::fast) unsafe fn conv(
    packed: &Packed,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) {
    let Some(tiles) = &packed.tiles else {
        // SAFETY: the caller's guarantees are this function's.
        return unsafe { avx512::conv(packed, input, output, scratch) };
    };
    let Geometry::Conv {
        input: [h, w, c],
        output: [out_h, out_w, _],
        padding,
        ..
    } = packed.geometry
    else {
        unreachable!("only convolutions have tiles");
    };
    // The zero-bordered input, and zeros past it for the last tiles' windows.
    let width = w + 2 * padding;
    // Both on cache lines (`scratch_bytes` left room for it): a tile row that straddles
    // two lines loads more slowly.
    let skip = scratch.as_ptr().align_offset(64);
    let (source, rest) = scratch[skip..].split_at_mut(tiles.reads.next_multiple_of(64));
    border(input, [h, w, c], padding, source, |s, d| {
        d.copy_from_slice(s)
    });
    let (accumulators, rest) = rest.split_at_mut(ACCUMULATORS);
    let mut pooled = packed
        .pool
        .as_ref()
        .map(|pool| (pool, pooled_sums(pool, packed.blocks, rest)));
    let pixels = (out_h - 1) * width + out_w;
    for first in (0..pixels).step_by(2 * TILE_ROWS) {
        for block in (0..packed.blocks).step_by(2) {
            let pair = block + 1 < packed.blocks;
            products(tiles, packed.blocks, source, first * c, c, block, pair);
            // SAFETY: four (or, without a pair, two) tiles of 16 rows x 64 bytes into the
            // 4,096 bytes of `accumulators`.
            unsafe {
                let at = accumulators.as_mut_ptr();
                asm!(
                    "tilestored [{a} + {s}*1], tmm0",
                    "tilestored [{c} + {s}*1], tmm2",
                    a = in(reg) at,
                    c = in(reg) at.add(2048),
                    s = in(reg) 64usize,
                    options(nostack),
                );
                if pair {
                    asm!(
                        "tilestored [{b} + {s}*1], tmm1",
                        "tilestored [{d} + {s}*1], tmm3",
                        b = in(reg) at.add(1024),
                        d = in(reg) at.add(3072),
                        s = in(reg) 64usize,
                        options(nostack),
                    );
                }
            }
            match &mut pooled {
                Some((pool, sums)) => {
                    keep_tiles_largest(pool, packed.blocks, accumulators, first, block, pair, sums)
                }
                None => finish(
                    packed,
                    accumulators,
                    first,
                    pixels,
                    [width, out_w],
                    block,
                    pair,
                    output,
                ),
            }
        }
    }
    if let Some((pool, sums)) = pooled {
        finish_pooled(packed, pool.pixels, sums, output);
    }
}

/// With a pool: the largest of each pooled pixel's sums so far, with those of the
/// stored accumulators (32 computed pixels from `first` x 16 or 32 channels from
/// `block`) in `sums`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn keep_tiles_largest(
    pool: &Pool,
    blocks: usize,
    accumulators: &[u8],
    first: usize,
    block: usize,
    pair: bool,
    sums: &mut [u8],
) {
    // `Pool::into` covers every computed pixel, the whole last pass included.
    let into = &pool.into[first..first + 2 * TILE_ROWS];
    for b in 0..1 + usize::from(pair) {
        // Consecutive pixels of one window (a run of the same `into`) are maxed in a
        // register, and the run's maximum kept once.
        let mut run = (Pool::NONE, _mm512_setzero_si512());
        for half in 0..2 {
            let tile = &accumulators[(2 * half + b) * 1024..][..1024];
            let into = &into[half * TILE_ROWS..][..TILE_ROWS];
            for (row, &to) in tile.chunks_exact(64).zip(into) {
                // SAFETY: 64 bytes loaded from the 64 of `row`.
                let row = unsafe { _mm512_loadu_si512(row.as_ptr().cast()) };
                if to == run.0 {
                    run.1 = _mm512_max_epi32(run.1, row);
                    continue;
                }
                if run.0 != Pool::NONE {
                    keep_largest(sums, usize::from(run.0) * blocks + block + b, run.1);
                }
                run = (to, row);
            }
        }
        if run.0 != Pool::NONE {
            keep_largest(sums, usize::from(run.0) * blocks + block + b, run.1);
        }
    }
}

/// A pool's sums ([`Pool`]) at the first cache line of `scratch`, `[pooled pixel][block]
/// [16]` i32, each `i32::MIN` (below any sum) to start with.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn pooled_sums<'s>(pool: &Pool, blocks: usize, scratch: &'s mut [u8]) -> &'s mut [u8] {
    let skip = scratch.as_ptr().align_offset(64);
    let sums = &mut scratch[skip..][..pool.sum_bytes(blocks)];
    for lanes in sums.chunks_exact_mut(64) {
        // SAFETY: 64 bytes stored to the 64 of `lanes`.
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), _mm512_set1_epi32(i32::MIN)) };
    }
    sums
}

/// Keeps the larger of each lane of `row` and of the pooled sums' entry `entry` (a pooled
/// pixel's block of 16 channels) there.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn keep_largest(sums: &mut [u8], entry: usize, row: __m512i) {
    let best = &mut sums[entry * 64..][..64];
    // SAFETY: 64 bytes loaded from and stored to the 64 of `best`.
    unsafe {
        let old = _mm512_loadu_si512(best.as_ptr().cast());
        _mm512_storeu_si512(best.as_mut_ptr().cast(), _mm512_max_epi32(row, old));
    }
}

/// Bias, requantization, ReLU and the stores of the `pixels` pooled pixels' largest sums
/// (`sums`, as [`pooled_sums`] laid them out).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn finish_pooled(packed: &Packed, pixels: usize, sums: &[u8], output: &mut [u8]) {
    let channels = packed.channels;
    for block in 0..packed.blocks {
        let requant = avx512::Requant::new(packed, block);
        let channel = block * LANES;
        let keep = LANES.min(channels - channel);
        for pixel in 0..pixels {
            let best = &sums[(pixel * packed.blocks + block) * 64..][..64];
            // SAFETY: 64 bytes loaded from the 64 of `best`.
            let best = unsafe { _mm512_loadu_si512(best.as_ptr().cast()) };
            let at = pixel * channels + channel;
            avx512::store(requant.relu(best), &mut output[at..at + keep]);
        }
    }
}

/// Loads the tile configuration every tiled convolution uses; [`release`] undoes it.
/// Once per layer, for all the images of a batch (140 ns with `tilerelease` on the
/// Xeon measured).
///
/// # Safety
/// [`available`] said yes.
pub(in crate::engine::fast) unsafe fn configure() {
    // SAFETY: CONFIG is a valid palette-1 configuration (the CPU has AMX: `available`).
    unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) };
}

/// Releases the tile state (back to its initial, unused state).
///
/// # Safety
/// [`available`] said yes.
pub(in crate::engine::fast) unsafe fn release() {
    // SAFETY: `tilerelease` exists on this CPU and touches no memory.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// The raw dot products of pixels `first..first + 32` (their taps starting at byte
/// `at` of `source`, `stride` bytes apart) and channel block `block` (and `block + 1`
/// when `pair`), accumulated in tmm0 (first 16 pixels, `block`), tmm1 (first 16,
/// `block + 1`), tmm2 and tmm3 (the next 16).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn products(
    tiles: &Tiles,
    blocks: usize,
    source: &[u8],
    at: usize,
    stride: usize,
    block: usize,
    pair: bool,
) {
    // SAFETY: zeroing tile registers touches no memory.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        )
    };
    let tile = TILE_ROWS * 64;
    for (chunk, &start) in tiles.starts.iter().enumerate() {
        // Two tiles of 16 rows, 64 bytes each, `stride` apart: within this slice
        // (`Packed::tiles` sized `reads` for the last pixels' windows).
        let pixels = &source[at + start as usize..][..(2 * TILE_ROWS - 1) * stride + 64];
        let weights =
            &tiles.weights[(chunk * blocks + block) * tile..][..tile << usize::from(pair)];
        // SAFETY: every tile load reads within the slices above (16 rows of 64 bytes,
        // `stride` or 64 bytes apart).
        unsafe {
            asm!(
                "tileloadd tmm4, [{p} + {s}*1]",
                "tileloadd tmm5, [{q} + {s}*1]",
                "tileloadd tmm6, [{w} + {r}*1]",
                "tdpbusd tmm0, tmm4, tmm6",
                "tdpbusd tmm2, tmm5, tmm6",
                p = in(reg) pixels.as_ptr(),
                q = in(reg) pixels.as_ptr().add(TILE_ROWS * stride),
                s = in(reg) stride,
                w = in(reg) weights.as_ptr(),
                r = in(reg) 64usize,
                options(nostack, readonly),
            );
            if pair {
                asm!(
                    "tileloadd tmm7, [{w} + {r}*1]",
                    "tdpbusd tmm1, tmm4, tmm7",
                    "tdpbusd tmm3, tmm5, tmm7",
                    w = in(reg) weights[tile..].as_ptr(),
                    r = in(reg) 64usize,
                    options(nostack, readonly),
                );
            }
        }
    }
}

/// Bias, requantization, ReLU and the stores of the stored accumulators: 32 computed
/// pixels from `first` (of `pixels` computed in all, `width` per row of which the first
/// `out_w` are output pixels) x 16 or 32 channels from `block`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn finish(
    packed: &Packed,
    accumulators: &[u8],
    first: usize,
    pixels: usize,
    [width, out_w]: [usize; 2],
    block: usize,
    pair: bool,
    output: &mut [u8],
) {
    let channels = packed.channels;
    for b in 0..1 + usize::from(pair) {
        let requant = avx512::Requant::new(packed, block + b);
        let channel = (block + b) * LANES;
        let keep = LANES.min(channels - channel);
        let output = &mut output[channel..];
        // The two pixel tiles (16 computed pixels each) of this block's accumulators.
        for half in 0..2 {
            let start = first + half * TILE_ROWS;
            if start >= pixels {
                break;
            }
            let tile = &accumulators[(2 * half + b) * 1024..][..1024];
            let (mut y, mut x) = (start / width, start % width);
            for sums in tile.chunks_exact(64).take(pixels - start) {
                if x < out_w {
                    // SAFETY: 64 bytes loaded from the 64 of `sums`.
                    let sums = unsafe { _mm512_loadu_si512(sums.as_ptr().cast()) };
                    let at = (y * out_w + x) * channels;
                    avx512::store(requant.relu(sums), &mut output[at..at + keep]);
                }
                x += 1;
                if x == width {
                    (y, x) = (y + 1, 0);
                }
            }
        }
    }
}

/// The AMX-INT8 tier's kernels: its convolutions on tiles; the logits and pooling of
/// AVX-512 VNNI.
pub(in crate::engine::fast) const KERNELS: crate::engine::fast::Kernels =
    crate::engine::fast::Kernels {
        isa: crate::engine::fast::Isa::AmxInt8,
        conv,
        conv_bytes: None,
        logits: super::avx512::logits,
        logits_bytes: None,
        pool: super::avx512::pool,
    };
