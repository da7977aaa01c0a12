//! AVX-512 VNNI kernels: `vpdpbusd` (u8 x i8, 4 products per 32-bit lane) tiles of 8
//! pixels x 32 channels for convolutions and the logits, and a vector max pool.

use core::arch::x86_64::*;

use crate::classes::CLASS_COUNT;
use crate::engine::fast::pack::{Packed, LANES};
use crate::engine::fast::source::{patch, pool_windows, prepare, Source};

/// Output pixels per register tile (9 for the windows of a 3 x 3 pool).
const PIXELS: usize = 8;
/// Most blocks of 16 channels one tile computes: 8 pixels x 2 blocks is 16 accumulators
/// (with 3, the compiler spilled registers).
const MAX_BLOCKS: usize = 2;

/// A convolution with ReLU output, 8 pixels x 32 channels at a time, over the source
/// `prepare` builds in `scratch` (the input itself, its zero-bordered copy, or its
/// expanded copy); with `packed.pool`, the max pool after it too ([`conv_pooled`]).
///
/// # Safety
/// The CPU has AVX-512 F, BW, VL and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(in crate::engine::fast) unsafe fn conv(
    packed: &Packed,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) {
    // The closure runs inside this function, with its target features.
    let (source, _) = prepare(packed, input, scratch, |s, d| copy(s, d));
    match packed.pool.as_ref().map(|pool| pool.size) {
        Some(2) => return conv_pooled::<8, 2>(packed, &source, output),
        Some(3) => return conv_pooled::<9, 3>(packed, &source, output),
        _ => {}
    }
    let reads = source.reads;
    let mut block = 0;
    while block < packed.blocks {
        let step = (packed.blocks - block).min(MAX_BLOCKS);
        for (first, count, starts) in source.tiles::<PIXELS>() {
            // Bias, requantization, ReLU and the store, straight from the accumulators.
            let mut finish = |p: usize, block: usize, sums: __m512i| {
                if p < count {
                    store_block(packed, first + p, block, sums, output);
                }
            };
            match step {
                1 => tile::<PIXELS, 1>(packed, reads, &starts, block, &mut finish),
                _ => tile::<PIXELS, 2>(packed, reads, &starts, block, &mut finish),
            };
        }
        block += step;
    }
}

/// A convolution with ReLU and the `S` x `S` max pool after it ([`Pool`](crate::engine::fast::pack::Pool)): each register
/// tile computes the `P` pixels of `P / (S * S)` windows (window by window, row by row
/// within one), keeps each window's largest sums in registers, and requantizes only
/// them. Pixels no window holds are not computed.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn conv_pooled<const P: usize, const S: usize>(
    packed: &Packed,
    source: &Source<'_>,
    output: &mut [u8],
) {
    let window = S * S;
    let mut block = 0;
    while block < packed.blocks {
        let step = (packed.blocks - block).min(MAX_BLOCKS);
        for (first, count, starts) in source.windows::<P, S>() {
            let mut best = [_mm512_setzero_si512(); MAX_BLOCKS];
            // The pixels come in order, each with its blocks: a window's first pixel
            // starts its maximum, its last one requantizes and stores it.
            let mut finish = |p: usize, at_block: usize, sums: __m512i| {
                let b = at_block - block;
                best[b] = match p % window {
                    0 => sums,
                    _ => _mm512_max_epi32(best[b], sums),
                };
                let pooled = p / window;
                if p % window == window - 1 && pooled < count {
                    store_block(packed, first + pooled, at_block, best[b], output);
                }
            };
            match step {
                1 => tile::<P, 1>(packed, source.reads, &starts, block, &mut finish),
                _ => tile::<P, 2>(packed, source.reads, &starts, block, &mut finish),
            };
        }
        block += step;
    }
}

/// Bias, requantization, ReLU and the store of output pixel `pixel`'s block `block`
/// from its sums (its real channels only).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn store_block(packed: &Packed, pixel: usize, block: usize, sums: __m512i, output: &mut [u8]) {
    let channel = block * LANES;
    let keep = LANES.min(packed.channels - channel);
    let at = pixel * packed.channels + channel;
    store(
        requantize_relu(packed, block, sums),
        &mut output[at..at + keep],
    );
}

/// The logits layer: one "pixel" whose patch is the flattened input, zero-padded to a
/// multiple of 4 taps in `scratch`.
///
/// # Safety
/// The CPU has AVX-512 F, BW, VL and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(in crate::engine::fast) unsafe fn logits(
    packed: &Packed,
    input: &[u8],
    logits: &mut [i32; CLASS_COUNT],
    scratch: &mut [u8],
) {
    let patch = patch(packed, input, scratch, |s, d| copy(s, d));
    // CLASS_COUNT (10) channels: one block, so a row of weights is 4 taps x 16 channels
    // (64 bytes) and row `g` multiplies patch bytes `4 g..4 g + 4`. Four rows at a time
    // into four accumulators: one would chain every `vpdpbusd` on the previous one.
    assert_eq!(packed.blocks, 1);
    let (weights, patch) = (&packed.weights[..], &patch[..packed.taps]);
    let mut sums = [_mm512_setzero_si512(); 4];
    let (rows, taps) = (weights.chunks_exact(4 * 64), patch.chunks_exact(4 * 4));
    let (rest_rows, rest_taps) = (rows.remainder(), taps.remainder());
    let step = |sum: __m512i, row: &[i8], taps: &[u8]| {
        // SAFETY: 64 bytes loaded from the 64 of `row`, 4 read from the 4 of `taps`.
        unsafe {
            let w = _mm512_loadu_si512(row[..64].as_ptr().cast());
            let x = taps[..4].as_ptr().cast::<i32>().read_unaligned();
            _mm512_dpbusd_epi32(sum, _mm512_set1_epi32(x), w)
        }
    };
    for (rows, taps) in rows.zip(taps) {
        for (r, sum) in sums.iter_mut().enumerate() {
            *sum = step(*sum, &rows[r * 64..], &taps[r * 4..]);
        }
    }
    for (row, taps) in rest_rows.chunks_exact(64).zip(rest_taps.chunks_exact(4)) {
        sums[0] = step(sums[0], row, taps);
    }
    let total = _mm512_add_epi32(
        _mm512_add_epi32(sums[0], sums[1]),
        _mm512_add_epi32(sums[2], sums[3]),
    );
    let mut acc = [0i32; LANES];
    // SAFETY: 16 i32 into the 16 of `acc`.
    unsafe { _mm512_storeu_si512(acc.as_mut_ptr().cast(), total) };
    crate::engine::fast::finish_logits(packed, &acc, logits);
}

/// `kernels::max_pool::<U8>`, 64 channels per vector.
///
/// # Safety
/// The CPU has AVX-512 F, BW, VL and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(in crate::engine::fast) unsafe fn max_pool(
    input: [usize; 3],
    size: usize,
    src: &[u8],
    dst: &mut [u8],
) {
    let [_, w, c] = input;
    pool_windows(input, size, src, dst, |window, out, size| {
        for channel in (0..c).step_by(64) {
            let mask: __mmask64 = u64::MAX >> (64 - (c - channel).min(64));
            let mut best = _mm512_setzero_si512();
            for dy in 0..size {
                for dx in 0..size {
                    let at = (dy * w + dx) * c + channel;
                    // SAFETY: the mask keeps the read within this pixel's channels, which
                    // lie within `window`.
                    let v =
                        unsafe { _mm512_maskz_loadu_epi8(mask, window.as_ptr().add(at).cast()) };
                    best = _mm512_max_epu8(best, v);
                }
            }
            // SAFETY: the mask keeps the write within this output pixel's channels.
            unsafe { _mm512_mask_storeu_epi8(out.as_mut_ptr().add(channel).cast(), mask, best) };
        }
    });
}

/// `dst.copy_from_slice(src)` in 64-byte vector moves (the last one masked).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn copy(src: &[u8], dst: &mut [u8]) {
    assert_eq!(src.len(), dst.len());
    for (s, d) in src.chunks(64).zip(dst.chunks_mut(64)) {
        let mask: __mmask64 = u64::MAX >> (64 - s.len());
        // SAFETY: the masked load and store touch the `s.len()` bytes of both chunks.
        unsafe {
            let v = _mm512_maskz_loadu_epi8(mask, s.as_ptr().cast());
            _mm512_mask_storeu_epi8(d.as_mut_ptr().cast(), mask, v);
        }
    }
}

/// The first `dst.len()` (at most 16) bytes of `bytes` into `dst`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(in crate::engine::fast) fn store(bytes: __m128i, dst: &mut [u8]) {
    assert!(dst.len() <= LANES);
    let mask: __mmask16 = (u32::MAX >> (32 - dst.len())) as u16;
    // SAFETY: the mask covers exactly dst.len() bytes.
    unsafe { _mm_mask_storeu_epi8(dst.as_mut_ptr().cast(), mask, bytes) };
}

/// `B` blocks of 16 channels from `block` on, for `P` pixels whose taps start at
/// `reads[starts[p]..]` (group `g` at `packed.offsets[g]` from there): hands the raw
/// dot products (without bias) of each pixel and block to `finish(pixel, block, sums)`.
/// Returns `B`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn tile<const P: usize, const B: usize>(
    packed: &Packed,
    reads: &[u8],
    starts: &[usize; P],
    block: usize,
    finish: &mut impl FnMut(usize, usize, __m512i),
) -> usize {
    let width = packed.blocks * LANES;
    let reach = packed.reach;
    assert!(P <= PIXELS + 1 && B <= MAX_BLOCKS && block + B <= packed.blocks);
    let mut sums = [[_mm512_setzero_si512(); B]; P];
    // Each pixel's taps: `reach` bytes from its start (every group's offset + 4 <= reach):
    // the slicing checks the bounds once per tile, the loop reads through the slices'
    // start (an array of slices in the loop costs registers: AVX2 measured 30-40% slower).
    let pixels: [*const u8; P] =
        core::array::from_fn(|p| reads[starts[p]..starts[p] + reach].as_ptr());
    let rows = packed.weights.chunks_exact(width * 4);
    for (row, &offset) in rows.zip(&packed.offsets) {
        let row = &row[block * LANES * 4..(block + B) * LANES * 4];
        // SAFETY: the `B` 64-byte weight loads lie within `row` (`B * 64` bytes), and every
        // input read (4 bytes at `offset`) ends by `reach`, within each pixel's slice.
        unsafe {
            let w: [__m512i; B] =
                core::array::from_fn(|b| _mm512_loadu_si512(row.as_ptr().add(b * 64).cast()));
            for (sum, pixel) in sums.iter_mut().zip(pixels) {
                let x = pixel.add(offset as usize).cast::<i32>().read_unaligned();
                let x = _mm512_set1_epi32(x);
                for b in 0..B {
                    sum[b] = _mm512_dpbusd_epi32(sum[b], x, w[b]);
                }
            }
        }
    }
    for (p, sum) in sums.iter().enumerate() {
        for (b, &s) in sum.iter().enumerate() {
            finish(p, block + b, s);
        }
    }
    B
}

/// Bias, requantization and ReLU of the 16 channels of `block`, as
/// `kernels::finish` computes them: `clamp(round(acc * m / 2^(31 + s)), 0, 255)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(in crate::engine::fast) fn requantize_relu(
    packed: &Packed,
    block: usize,
    sums: __m512i,
) -> __m128i {
    Requant::new(packed, block).relu(sums)
}

/// One block's requantization constants, loaded into registers once for a run of
/// pixels.
#[derive(Clone, Copy)]
pub(in crate::engine::fast) struct Requant {
    bias: __m512i,
    /// The multipliers of the even channels in the low halves of the 64-bit lanes, and
    /// of the odd ones.
    even: __m512i,
    odd: __m512i,
    /// Per 64-bit lane: the shifts and rounding halves of the even and odd channels.
    shifts: [__m512i; 2],
    halves: [__m512i; 2],
}

impl Requant {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(in crate::engine::fast) fn new(packed: &Packed, block: usize) -> Requant {
        let channel = block * LANES;
        let (bias, multiplier) = (
            &packed.bias[channel..channel + LANES],
            &packed.multiplier[channel..channel + LANES],
        );
        let lanes = &packed.lanes[block * 32..(block + 1) * 32];
        // SAFETY: every load reads 16 i32 or 8 i64 within the slices above.
        unsafe {
            let multiplier = _mm512_loadu_si512(multiplier.as_ptr().cast());
            let lane = |i: usize| _mm512_loadu_si512(lanes[i * 8..].as_ptr().cast());
            Requant {
                bias: _mm512_loadu_si512(bias.as_ptr().cast()),
                even: multiplier,
                odd: _mm512_srli_epi64(multiplier, 32),
                shifts: [lane(0), lane(1)],
                halves: [lane(2), lane(3)],
            }
        }
    }

    /// The 16 output bytes of the raw dot products `sums`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(in crate::engine::fast) fn relu(&self, sums: __m512i) -> __m128i {
        let acc = _mm512_add_epi32(sums, self.bias);
        // Rounded, shifted, ReLU, then bytes saturating at 255 (`vpmovusqb`: the value is
        // not negative by then): 8 channels in the low 8 bytes.
        let bytes = |products: __m512i, half: usize| {
            let rounded = _mm512_srav_epi64(
                _mm512_add_epi64(products, self.halves[half]),
                self.shifts[half],
            );
            _mm512_cvtusepi64_epi8(_mm512_max_epi64(rounded, _mm512_setzero_si512()))
        };
        // vpmuldq multiplies the signed low 32 bits of each 64-bit lane.
        let even = bytes(_mm512_mul_epi32(acc, self.even), 0);
        let odd = bytes(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), self.odd), 1);
        // Even and odd channels' bytes interleaved: the 16 channels in order.
        _mm_unpacklo_epi8(even, odd)
    }
}

/// [`max_pool`] as a [`crate::engine::fast::Kernels`] entry: it runs every shape.
///
/// # Safety
/// As [`max_pool`]: the CPU has AVX-512 BW.
pub(in crate::engine::fast) unsafe fn pool(
    input: [usize; 3],
    size: usize,
    src: &[u8],
    dst: &mut [u8],
) -> bool {
    // SAFETY: the caller's.
    unsafe { max_pool(input, size, src, dst) };
    true
}

/// The AVX-512 VNNI tier's kernels.
pub(in crate::engine::fast) const KERNELS: crate::engine::fast::Kernels =
    crate::engine::fast::Kernels {
        isa: crate::engine::fast::Isa::Avx512Vnni,
        conv,
        conv_bytes: None,
        logits,
        logits_bytes: None,
        pool,
    };
