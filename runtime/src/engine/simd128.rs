//! Kernels for WebAssembly SIMD (`simd128`), which [`Plan::classify`](super::Plan::classify)
//! runs in a build with that target feature (`cfg(fmnist_simd128)`, set by `build.rs`;
//! `-C target-feature=+simd128`). `i32x4.dot_i16x8_s` multiplies eight pairs of 16-bit
//! values and adds neighbouring products: eight multiply-accumulates in one instruction,
//! which engines lower to `pmaddwd` on x86 and `smull`/`smlal2` pairs on ARM.
//!
//! The convolutions copy the input windows of four output pixels into the scratch as
//! 16-bit columns ("im2col", zero past the last tap), then run two filters over the four
//! columns at a time: each group of eight taps is one sign-extending load of eight
//! weights per filter (`v128.load8x8_s`), one load per column and eight dot products into
//! eight accumulators (64 multiply-accumulates in 22 instructions). The logits layer widens its input once and runs each output over
//! it the same way. Max pooling compares sixteen channels per instruction. Every result
//! equals the portable kernels' bit for bit: the sums are the same i32 sums (validation
//! bounds them) and requantization is shared.
//!
//! Relaxed SIMD's `i32x4.relaxed_dot_i8x16_i7x16_add` (16 multiply-accumulates, `vpdpbusd`
//! on VNNI CPUs) is not used: its result is defined only while one operand's values stay
//! within 7 bits, and the activations here are 8-bit (0..255 after ReLU). Making them fit
//! takes a second product per group, which costs what the wider instruction saves.

use core::arch::wasm32::{
    i16x8_load_extend_i8x8, i32x4_add, i32x4_dot_i16x8, i32x4_extract_lane, i32x4_shuffle,
    i32x4_splat, i8x16_max, u16x8_load_extend_u8x8, u8x16_max, v128, v128_load, v128_store,
};

use super::kernels::Requantizer;
use super::window;
use super::{Accelerator, Kind, Step};
use crate::blob::{Layer, Output, QuantConv2d, QuantLinear};
use crate::classes::CLASS_COUNT;

/// Output pixels computed together: the columns of a tile.
const TILE: usize = 4;

/// Filters run together over a tile's columns: two (eight accumulators, two vectors of
/// weights and one of inputs stay in the sixteen vector registers of x86-64 and fewer
/// loads serve more products; three and four ran 15% slower in V8).
const FILTERS: usize = 2;

/// 16-bit values in a vector.
const LANES: usize = 8;

/// The length of a column for filters of `taps` taps: whole vectors.
fn column_len(taps: usize) -> usize {
    taps.div_ceil(LANES) * LANES
}

/// Scratch bytes the kernels need for `plan_layers`: the four columns of the longest
/// filter, or the widened input of the logits layer, whichever is longer, and a byte to
/// align them.
pub(super) fn scratch_bytes(plan_layers: &[Layer<'_>]) -> usize {
    let values = plan_layers
        .iter()
        .map(|layer| match layer {
            Layer::Conv(conv) => {
                TILE * column_len(usize::from(conv.kernel).pow(2) * usize::from(conv.in_channels))
            }
            Layer::Linear(linear) => column_len(linear.inputs as usize),
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    if values == 0 {
        0
    } else {
        values * 2 + 1
    }
}

/// The SIMD kernels, with the scratch bytes [`scratch_bytes`] gave for a validated plan.
pub(super) struct Simd128 {
    pub(super) scratch_bytes: usize,
}

/// The 16-bit values of the scratch (aligned; at least what [`scratch_bytes`] promised).
fn halves(scratch: &mut [u8]) -> &mut [i16] {
    // SAFETY: any bit pattern is a valid i16; the middle part is aligned by construction.
    let (_, values, _) = unsafe { scratch.align_to_mut::<i16>() };
    values
}

impl Accelerator for Simd128 {
    fn scratch_bytes(&self) -> usize {
        self.scratch_bytes
    }

    fn conv(
        &self,
        _: usize,
        step: &Step,
        conv: &QuantConv2d<'_>,
        input: &[u8],
        output: &mut [u8],
        scratch: &mut [u8],
    ) -> bool {
        convolve(step, conv, input, output, halves(scratch));
        true
    }

    fn logits(
        &self,
        _: usize,
        step: &Step,
        linear: &QuantLinear<'_>,
        input: &[u8],
        logits: &mut [i32; CLASS_COUNT],
        scratch: &mut [u8],
    ) -> bool {
        let inputs = linear.inputs as usize;
        let column = &mut halves(scratch)[..column_len(inputs)];
        column.fill(0);
        for (value, &byte) in column.iter_mut().zip(&input[..inputs]) {
            *value = widen(step.kind, byte);
        }
        let requant = &linear.requant;
        for (oc, filter) in linear
            .weights
            .chunks_exact(inputs)
            .take(linear.outputs as usize)
            .enumerate()
        {
            let requantizer = Requantizer::of(requant, oc);
            let [sum] = dot::<1, 1>(column, [filter]);
            logits[oc] = requantizer.apply(sum[0] + requantizer.bias);
        }
        true
    }

    fn pool(&self, _: usize, step: &Step, size: u8, input: &[u8], output: &mut [u8]) -> bool {
        if !step.input[2].is_multiple_of(16) {
            return false;
        }
        max_pool(step.kind, step.input, usize::from(size), input, output);
        true
    }
}

/// An activation byte as the 16-bit value it stands for.
#[inline(always)]
fn widen(kind: Kind, byte: u8) -> i16 {
    match kind {
        Kind::U8 => i16::from(byte),
        Kind::I8 => i16::from(byte as i8),
    }
}

/// Writes the input window of output pixel `pixel` into `column` as 16-bit values in tap
/// order (`[ky][kx][ic]`, as the weights); taps that leave the image and those past the
/// last stay as the caller left them (zero).
fn im2col(step: &Step, conv: &QuantConv2d<'_>, input: &[u8], pixel: usize, column: &mut [i16]) {
    for (first, row) in window::rows(step, conv, input, pixel) {
        widen_row(step.kind, row, &mut column[first..][..row.len()]);
    }
}

/// `row` widened into `out` (the same length), eight values per instruction.
#[inline(always)]
fn widen_row(kind: Kind, row: &[u8], out: &mut [i16]) {
    let mut bytes = row.chunks_exact(LANES);
    let mut values = out.chunks_exact_mut(LANES);
    for (eight, into) in (&mut bytes).zip(&mut values) {
        // SAFETY: eight bytes in, eight i16 out, both in bounds; unaligned load and store.
        unsafe {
            let wide = match kind {
                Kind::U8 => u16x8_load_extend_u8x8(eight.as_ptr()),
                Kind::I8 => i16x8_load_extend_i8x8(eight.as_ptr().cast()),
            };
            v128_store(into.as_mut_ptr().cast(), wide);
        }
    }
    for (value, &byte) in values.into_remainder().iter_mut().zip(bytes.remainder()) {
        *value = widen(kind, byte);
    }
}

/// A convolution, [`TILE`] output pixels at a time, two filters over the tile's columns.
fn convolve(
    step: &Step,
    conv: &QuantConv2d<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [i16],
) {
    let [out_h, out_w, out_c] = step.output;
    let in_c = step.input[2];
    let k = usize::from(conv.kernel);
    let taps = k * k * in_c;
    let len = column_len(taps);
    let columns = &mut scratch[..TILE * len];
    let pixels = out_h * out_w;
    let requant = &conv.requant;
    let relu = requant.output == Output::Relu;
    // The padding past the last tap stays zero from here on; border windows are zeroed
    // again each time.
    columns.fill(0);
    let mut first = 0;
    while first < pixels {
        // The last tile repeats its last pixel where the pixels run out.
        let tile: [usize; TILE] = core::array::from_fn(|i| (first + i).min(pixels - 1));
        for (column, &pixel) in columns.chunks_exact_mut(len).zip(&tile) {
            if !window::inside(step, conv, pixel) {
                column.fill(0);
            }
            im2col(step, conv, input, pixel, column);
        }
        let at = tile.map(|p| p * out_c);
        let mut oc = 0;
        while oc < out_c {
            // Where the filters run out, the last one is run again and written once more.
            let channels: [usize; FILTERS] = core::array::from_fn(|f| (oc + f).min(out_c - 1));
            let filters = channels.map(|c| &conv.weights[c * taps..][..taps]);
            let sums = dot::<FILTERS, TILE>(columns, filters);
            for (channel, sums) in channels.into_iter().zip(sums) {
                let requantizer = Requantizer::of(requant, channel);
                for (&at, sum) in at.iter().zip(sums) {
                    let sum = sum + requantizer.bias;
                    output[at + channel] = if relu {
                        requantizer.scaled(sum).clamp(0, 255) as u8
                    } else {
                        requantizer.apply(sum) as u8
                    };
                }
            }
            oc += FILTERS;
        }
        first += TILE;
    }
}

/// Eight i8 weights from `filter[at..]` as 16-bit values; past the filter's end, zeros.
#[inline(always)]
fn weights(filter: &[u8], at: usize) -> v128 {
    match filter.get(at..at + LANES) {
        // SAFETY: eight bytes in bounds; the load is unaligned.
        Some(eight) => unsafe { i16x8_load_extend_i8x8(eight.as_ptr().cast()) },
        None => {
            let mut padded = [0u8; LANES];
            let tail = &filter[at..];
            padded[..tail.len()].copy_from_slice(tail);
            // SAFETY: a local of eight bytes.
            unsafe { i16x8_load_extend_i8x8(padded.as_ptr().cast()) }
        }
    }
}

/// The four lanes of each of four vectors, added: `[sum(a), sum(b), sum(c), sum(d)]`.
#[inline(always)]
fn lane_sums([a, b, c, d]: [v128; 4]) -> [i32; 4] {
    let ab = i32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(a, b),
        i32x4_shuffle::<2, 6, 3, 7>(a, b),
    );
    let cd = i32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(c, d),
        i32x4_shuffle::<2, 6, 3, 7>(c, d),
    );
    let sums = i32x4_add(
        i32x4_shuffle::<0, 1, 4, 5>(ab, cd),
        i32x4_shuffle::<2, 3, 6, 7>(ab, cd),
    );
    [
        i32x4_extract_lane::<0>(sums),
        i32x4_extract_lane::<1>(sums),
        i32x4_extract_lane::<2>(sums),
        i32x4_extract_lane::<3>(sums),
    ]
}

/// `F` filters over the first `COUNT` (1 to [`TILE`]) columns of `columns` (each
/// `column_len(taps)` long, zero past the taps): the sums of products, without bias. The
/// counts are constants so that the accumulators stay in registers.
#[inline(always)]
fn dot<const F: usize, const COUNT: usize>(
    columns: &[i16],
    filters: [&[u8]; F],
) -> [[i32; TILE]; F] {
    let taps = filters[0].len();
    let len = column_len(taps);
    let count = COUNT.min(TILE);
    assert!(filters.iter().all(|f| f.len() == taps) && columns.len() >= count * len);
    let whole = taps / LANES;
    let zero = i32x4_splat(0);
    let mut acc = [[zero; TILE]; F];
    let c = columns.as_ptr();
    for g in 0..whole {
        // SAFETY: group `g` is whole: its eight weights end at `8 * (g + 1) <= taps`, the
        // filters' length (asserted), and its eight values of column `j < count` end at
        // `j * len + 8 * (g + 1) <= count * len <= columns.len()`. The loads are unaligned.
        unsafe {
            let w: [v128; F] = core::array::from_fn(|f| {
                i16x8_load_extend_i8x8(filters[f].as_ptr().add(g * LANES).cast())
            });
            for j in 0..count {
                let x = v128_load(c.add(j * len + g * LANES).cast());
                for (sums, &w) in acc.iter_mut().zip(&w) {
                    sums[j] = i32x4_add(sums[j], i32x4_dot_i16x8(x, w));
                }
            }
        }
    }
    if !taps.is_multiple_of(LANES) {
        // The last taps, their weights padded with zeros (the columns hold zeros there).
        let at = whole * LANES;
        let w: [v128; F] = core::array::from_fn(|f| weights(filters[f], at));
        for (j, column) in columns.chunks_exact(len).take(count).enumerate() {
            let values = &column[at..at + LANES];
            // SAFETY: eight i16 in bounds (columns are whole vectors long); unaligned load.
            let x = unsafe { v128_load(values.as_ptr().cast()) };
            for (sums, &w) in acc.iter_mut().zip(&w) {
                sums[j] = i32x4_add(sums[j], i32x4_dot_i16x8(x, w));
            }
        }
    }
    acc.map(lane_sums)
}

/// Max pooling `size` x `size` whose channel count is a multiple of 16, sixteen channels
/// per instruction.
fn max_pool(kind: Kind, input: [usize; 3], size: usize, src: &[u8], dst: &mut [u8]) {
    let [h, w, c] = input;
    let (out_h, out_w) = (h / size, w / size);
    let load = |at: usize| {
        let bytes = &src[at..at + 16];
        // SAFETY: sixteen bytes in bounds; unaligned load.
        unsafe { v128_load(bytes.as_ptr().cast()) }
    };
    for (o, out) in dst[..out_h * out_w * c].chunks_exact_mut(c).enumerate() {
        let (oy, ox) = (o / out_w, o % out_w);
        let corner = (oy * size * w + ox * size) * c;
        for (g, best) in out.chunks_exact_mut(16).enumerate() {
            let mut m = load(corner + 16 * g);
            for dy in 0..size {
                let row = corner + dy * w * c + 16 * g;
                for dx in 0..size {
                    let x = load(row + dx * c);
                    m = match kind {
                        Kind::U8 => u8x16_max(m, x),
                        Kind::I8 => i8x16_max(m, x),
                    };
                }
            }
            // SAFETY: sixteen bytes in bounds (`best`); unaligned store.
            unsafe { v128_store(best.as_mut_ptr().cast(), m) };
        }
    }
}
