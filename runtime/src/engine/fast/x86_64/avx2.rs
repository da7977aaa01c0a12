//! AVX2 kernels (no VNNI): each input byte is widened to 16 bits once per layer, and 4
//! taps at a time are multiplied with `vpmaddwd` (exact: a u8 times an i8 fits 16 bits,
//! two of them 32); tiles of 6 pixels x 8 channels.

use core::arch::x86_64::*;

use crate::classes::CLASS_COUNT;
use crate::engine::fast::pack::{Packed, LANES};
use crate::engine::fast::source::{pool_windows, prepare, Source};

/// Output pixels per register tile: 6 pixels x 8 channels is 12 accumulators; with 2
/// weight registers and 1 input register, 15 of AVX2's 16. Tiles of 5 pixels cost as
/// much per pixel and waste less on some layers (7 x 7 = 49 pixels: 50 slots, not 54).
const PIXELS: usize = 6;

/// A convolution with ReLU output, 6 (or 5) pixels x 8 channels at a time, over the
/// source `prepare` builds in `scratch`, widened to 16 bits in the rest of `scratch`.
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(in crate::engine::fast) unsafe fn conv(
    packed: &Packed,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
) {
    let (source, rest) = prepare(packed, input, scratch, |s, d| d.copy_from_slice(s));
    // Every byte widened to 16 bits once, so that the tile broadcasts 4 taps with one
    // load.
    let wide = widen(source.reads, source.reads.len(), rest);
    if packed.pool.is_some() {
        return conv_pooled(packed, &source, wide, output);
    }
    // Tile slots (computed pixels), plus about one pixel's work per tile for its setup
    // and requantization.
    let cost = |p: usize| source.pixels().div_ceil(p) * (p + 1);
    if cost(PIXELS - 1) < cost(PIXELS) {
        conv_tiles::<{ PIXELS - 1 }>(packed, &source, wide, output);
    } else {
        conv_tiles::<PIXELS>(packed, &source, wide, output);
    }
}

/// Every output pixel of `source`, `P` at a time, 8 channels at a time.
#[target_feature(enable = "avx2")]
fn conv_tiles<const P: usize>(
    packed: &Packed,
    source: &Source<'_>,
    wide: &[u8],
    output: &mut [u8],
) {
    for (first, count, starts) in source.tiles::<P>() {
        for channel in (0..packed.channels).step_by(8) {
            let sums = tile(packed, wide, &starts, channel);
            for (p, &sum) in sums.iter().enumerate().take(count) {
                store_channels(packed, first + p, channel, sum, output);
            }
        }
    }
}

/// Bias, requantization, ReLU and the store of output pixel `pixel`'s channels
/// `channel..channel + 8` (the real ones) from their sums.
#[target_feature(enable = "avx2")]
#[inline]
fn store_channels(packed: &Packed, pixel: usize, channel: usize, sum: __m256i, out: &mut [u8]) {
    let keep = 8.min(packed.channels - channel);
    let at = pixel * packed.channels + channel;
    store(
        requantize_relu(packed, channel, sum),
        &mut out[at..at + keep],
    );
}

/// A convolution with ReLU and the 2 x 2 max pool after it (`Packed::pool`, which this
/// tier takes only of size 2): each tile computes one window's 4 pixels, and only their
/// maximum is requantized.
#[target_feature(enable = "avx2")]
fn conv_pooled(packed: &Packed, source: &Source<'_>, wide: &[u8], output: &mut [u8]) {
    for (pooled, _, starts) in source.windows::<4, 2>() {
        for channel in (0..packed.channels).step_by(8) {
            let best = largest(tile(packed, wide, &starts, channel));
            store_channels(packed, pooled, channel, best, output);
        }
    }
}

/// The lane-wise maximum of a window's 4 pixels' sums.
#[target_feature(enable = "avx2")]
#[inline]
pub(in crate::engine::fast) fn largest([a, b, c, d]: [__m256i; 4]) -> __m256i {
    _mm256_max_epi32(_mm256_max_epi32(a, b), _mm256_max_epi32(c, d))
}

/// The first `dst.len()` (at most 8) bytes of `bytes` into `dst`.
#[target_feature(enable = "avx2")]
#[inline]
pub(in crate::engine::fast) fn store(bytes: __m128i, dst: &mut [u8]) {
    if let Ok(out) = <&mut [u8; 8]>::try_from(&mut *dst) {
        // SAFETY: 8 bytes stored into the 8 bytes of `out`.
        unsafe { _mm_storel_epi64(out.as_mut_ptr().cast(), bytes) };
    } else {
        let mut all = [0u8; 16];
        // SAFETY: 16 bytes stored into the 16 of `all`.
        unsafe { _mm_storeu_si128(all.as_mut_ptr().cast(), bytes) };
        dst.copy_from_slice(&all[..dst.len()]);
    }
}

/// Max pooling of u8 activations (`size` x `size`, stride `size`), 16 channels at a time
/// with `vpmaxub`; when `c` is not a multiple of 16, the last 16 channels overlap the
/// previous group (the maximum is the same). Fewer than 16 channels: `false`, nothing
/// done (the portable kernel runs).
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(in crate::engine::fast) unsafe fn max_pool(
    input: [usize; 3],
    size: usize,
    src: &[u8],
    dst: &mut [u8],
) -> bool {
    let [_, w, c] = input;
    if c < 16 {
        return false;
    }
    let groups = (0..c - 15)
        .step_by(16)
        .chain((!c.is_multiple_of(16)).then_some(c - 16));
    pool_windows(input, size, src, dst, |window, out, size| {
        for channel in groups.clone() {
            let mut best = _mm_setzero_si128();
            for dy in 0..size {
                for dx in 0..size {
                    let pixel = &window[(dy * w + dx) * c + channel..][..16];
                    // SAFETY: 16 bytes loaded from the 16 of `pixel`.
                    let v = unsafe { _mm_loadu_si128(pixel.as_ptr().cast()) };
                    best = _mm_max_epu8(best, v);
                }
            }
            // SAFETY: 16 bytes stored into the 16 of the slice.
            unsafe { _mm_storeu_si128(out[channel..channel + 16].as_mut_ptr().cast(), best) };
        }
    });
    true
}

/// The logits layer: one "pixel" whose patch is the flattened input, zero-padded to a
/// multiple of 4 taps and widened in `scratch`.
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(in crate::engine::fast) unsafe fn logits(
    packed: &Packed,
    input: &[u8],
    logits: &mut [i32; CLASS_COUNT],
    scratch: &mut [u8],
) {
    let wide = widen(input, packed.taps, scratch);
    let mut acc = [0i32; 16];
    for channel in [0, 8] {
        let [sums] = tile::<1>(packed, wide, &[0], channel);
        // SAFETY: 8 i32 into the 8 i32 of `acc[channel..channel + 8]`.
        unsafe { _mm256_storeu_si256(acc[channel..channel + 8].as_mut_ptr().cast(), sums) };
    }
    crate::engine::fast::finish_logits(packed, &acc, logits);
}

/// `bytes` as little-endian 16-bit values, zero-padded to `len` values, in the first
/// `2 * len` bytes of `buffer`.
#[target_feature(enable = "avx2")]
fn widen<'b>(bytes: &[u8], len: usize, buffer: &'b mut [u8]) -> &'b [u8] {
    let part = &mut buffer[..2 * len];
    let (head, tail) = part.split_at_mut(2 * bytes.len());
    let mut chunks = head.chunks_exact_mut(32);
    let mut from = bytes.chunks_exact(16);
    for (dst, src) in (&mut chunks).zip(&mut from) {
        // SAFETY: 16 bytes read from `src`, 32 written to `dst`: their lengths.
        unsafe {
            let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(src.as_ptr().cast()));
            _mm256_storeu_si256(dst.as_mut_ptr().cast(), v);
        }
    }
    for (pair, &byte) in chunks
        .into_remainder()
        .chunks_exact_mut(2)
        .zip(from.remainder())
    {
        pair.copy_from_slice(&u16::from(byte).to_le_bytes());
    }
    tail.fill(0);
    part
}

/// Channels `channel..channel + 8` for `P` pixels whose taps (widened to 16 bits, so 2
/// bytes each) start at tap `starts[p]` of `wide` (group `g` at tap `packed.offsets[g]`
/// from there): the raw dot products (without bias), 8 channels in order per pixel.
#[target_feature(enable = "avx2")]
fn tile<const P: usize>(
    packed: &Packed,
    wide: &[u8],
    starts: &[usize; P],
    channel: usize,
) -> [__m256i; P] {
    let width = packed.blocks * LANES;
    assert!(channel.is_multiple_of(8) && channel + 8 <= width);
    let reach = 2 * packed.reach;
    let mut sums = [[_mm256_setzero_si256(); 2]; P];
    // Each pixel's widened taps (every group's offset + 4 taps <= reach): the slicing
    // checks the bounds once per tile, the loop reads through the slices' start.
    let pixels: [*const u8; P] =
        core::array::from_fn(|p| wide[2 * starts[p]..2 * starts[p] + reach].as_ptr());
    // The weights widened to 16 bits at load (`FastPlan::with_isa`): 2 bytes per tap.
    let rows = packed.weights.chunks_exact(width * 4 * 2);
    for (row, &offset) in rows.zip(&packed.offsets) {
        let row = &row[channel * 8..channel * 8 + 64];
        // SAFETY: the two 32-byte weight loads lie within `row` (64 bytes), and every
        // input read (8 bytes at byte `2 * offset`) ends by `reach`, within each pixel's
        // slice.
        unsafe {
            // 4 taps of channels channel..+4, then of channel+4..+8, as 16-bit values.
            let w0 = _mm256_loadu_si256(row.as_ptr().cast());
            let w1 = _mm256_loadu_si256(row.as_ptr().add(32).cast());
            for (sum, pixel) in sums.iter_mut().zip(pixels) {
                // The 4 taps' 16-bit values, once per 64-bit lane.
                let x = pixel
                    .add(2 * offset as usize)
                    .cast::<i64>()
                    .read_unaligned();
                let x = _mm256_set1_epi64x(x);
                sum[0] = _mm256_add_epi32(sum[0], _mm256_madd_epi16(x, w0));
                sum[1] = _mm256_add_epi32(sum[1], _mm256_madd_epi16(x, w1));
            }
        }
    }
    // Each accumulator holds two pair sums per channel: add them, and put the
    // channels back in order ([c0 c1 c4 c5 | c2 c3 c6 c7] after the horizontal add).
    let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    sums.map(|[low, high]| _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(low, high), order))
}

/// Bias, requantization and ReLU of channels `channel..channel + 8`, as
/// `kernels::finish` computes them, in 64-bit lanes (AVX2 has no 64-bit arithmetic
/// shift: a negative rounded value is ReLU's 0 anyway, so it is zeroed first). The 8
/// output bytes are the low half of the result.
#[target_feature(enable = "avx2")]
#[inline]
pub(in crate::engine::fast) fn requantize_relu(
    packed: &Packed,
    channel: usize,
    sums: __m256i,
) -> __m128i {
    assert!(channel.is_multiple_of(8));
    let (block, half) = (channel / LANES, (channel % LANES) / 8);
    let lanes = &packed.lanes[block * 32..(block + 1) * 32];
    let (bias, multiplier) = (
        &packed.bias[channel..channel + 8],
        &packed.multiplier[channel..channel + 8],
    );
    // SAFETY: 4 i64 within `lanes` (at most 24 + 4 + 4 <= 32).
    let load = |at: usize| unsafe {
        _mm256_loadu_si256(lanes[at + 4 * half..at + 4 * half + 4].as_ptr().cast())
    };
    // SAFETY: 8 i32 within each slice.
    let (bias, multiplier) = unsafe {
        (
            _mm256_loadu_si256(bias.as_ptr().cast()),
            _mm256_loadu_si256(multiplier.as_ptr().cast()),
        )
    };
    let acc = _mm256_add_epi32(sums, bias);
    // The rounded, shifted product, 0 if negative.
    let relu = |products: __m256i, shift: __m256i, half: __m256i| {
        let rounded = _mm256_add_epi64(products, half);
        let negative = _mm256_cmpgt_epi64(_mm256_setzero_si256(), rounded);
        _mm256_srlv_epi64(_mm256_andnot_si256(negative, rounded), shift)
    };
    // ... at most 255: with every total shift 31 or more the value is under 2^31, and the
    // unsigned-saturating packs below clamp it; else it is clamped in 64 bits here.
    let narrow = packed.narrow;
    let clamp = |value: __m256i| {
        if narrow {
            value
        } else {
            let top = _mm256_set1_epi64x(255);
            _mm256_blendv_epi8(value, top, _mm256_cmpgt_epi64(value, top))
        }
    };
    // vpmuldq multiplies the signed low 32 bits of each 64-bit lane.
    let even = clamp(relu(_mm256_mul_epi32(acc, multiplier), load(0), load(16)));
    let odd = clamp(relu(
        _mm256_mul_epi32(
            _mm256_srli_epi64(acc, 32),
            _mm256_srli_epi64(multiplier, 32),
        ),
        load(8),
        load(24),
    ));
    // The 8 values (non-negative, under 2^31, in order as i32) packed to bytes, saturating
    // at 255 (32767, then 255: both packs saturate signed inputs): the low 8 of the
    // result.
    let values = _mm256_or_si256(even, _mm256_slli_epi64(odd, 32));
    let words = _mm_packs_epi32(
        _mm256_castsi256_si128(values),
        _mm256_extracti128_si256(values, 1),
    );
    _mm_packus_epi16(words, words)
}

/// The AVX2 tier's kernels: 16-bit products (`vpmaddwd`) on widened weights, and the
/// byte-wise kernels of `avxvnni` for layers whose weight pairs fit `vpmaddubsw`.
pub(in crate::engine::fast) const KERNELS: crate::engine::fast::Kernels =
    crate::engine::fast::Kernels {
        isa: crate::engine::fast::Isa::Avx2,
        conv,
        conv_bytes: Some(super::avxvnni::conv_bytes),
        logits,
        logits_bytes: Some(super::avxvnni::logits_bytes),
        pool: max_pool,
    };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{Output, Requant};
    use crate::engine::fast::pack::Geometry;
    use crate::engine::kernels::requantize;

    /// Every shift the validator accepts (so both the narrow and the clamping path), with
    /// sums and biases at their extremes and between: the bytes `kernels::requantize`
    /// and ReLU give.
    #[test]
    fn vector_requantization_equals_the_portable_one_for_every_shift() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("no AVX2: not compared");
            return;
        }
        let sums = [
            i32::MIN,
            -(1 << 30),
            -65_536,
            -255,
            -1,
            0,
            1,
            2,
            127,
            128,
            255,
            256,
            65_535,
            1 << 20,
            1 << 30,
            i32::MAX,
        ];
        for low in -30i8..=31 {
            // 8 channels: shifts low..low+8 (wrapping into the range), various multipliers
            // and biases.
            let shift: Vec<u8> = (0..8)
                .map(|c| ((low as i32 + c + 30) % 62 - 30) as i8 as u8)
                .collect();
            let multiplier: Vec<i32> = [
                0,
                1,
                1 << 16,
                1 << 29,
                1 << 30,
                (1 << 30) + 12_345,
                i32::MAX - 1,
                i32::MAX,
            ]
            .into();
            let bias: Vec<i32> = [0, 1, -1, 1000, -1000, (1 << 30) - 1, -(1 << 30) + 1, 77].into();
            let (bias_bytes, multiplier_bytes): (Vec<u8>, Vec<u8>) = (
                bias.iter().flat_map(|b| b.to_le_bytes()).collect(),
                multiplier.iter().flat_map(|m| m.to_le_bytes()).collect(),
            );
            let requant = Requant {
                bias: &bias_bytes,
                multiplier: &multiplier_bytes,
                shift: &shift,
                output: Output::Logits,
            };
            let packed = Packed::new(&[0; 8], &requant, 1, Geometry::Logits);
            assert_eq!(packed.narrow, shift.iter().all(|&s| s as i8 >= 0));
            for &sum in &sums {
                let lanes: Vec<i32> = (0..8).map(|c| sum.wrapping_add(c * 7)).collect();
                // SAFETY: AVX2 was detected above; 8 i32 loaded from the 8 of `lanes`.
                let got = unsafe {
                    let v = _mm256_loadu_si256(lanes.as_ptr().cast());
                    let mut out = [0u8; 16];
                    _mm_storeu_si128(out.as_mut_ptr().cast(), requantize_relu(&packed, 0, v));
                    out
                };
                for c in 0..8 {
                    let acc = lanes[c].wrapping_add(bias[c]);
                    let want =
                        requantize(acc, multiplier[c], i32::from(shift[c] as i8)).clamp(0, 255);
                    assert_eq!(
                        i32::from(got[c]),
                        want,
                        "shift {}, sum {sum}, channel {c}",
                        shift[c] as i8
                    );
                }
            }
        }
    }
}
