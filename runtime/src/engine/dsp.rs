//! Kernels for the DSP extension of ARMv7E-M (Cortex-M4, M7; M33/M55 with DSP), which
//! [`Plan::classify`](super::Plan::classify) runs on those targets (`cfg(fmnist_dsp)`,
//! set by `build.rs`): `SMLAD` multiplies two pairs of 16-bit values and adds both
//! products to an accumulator, two multiply-accumulates in one instruction.
//!
//! The convolutions work as CMSIS-NN's `arm_convolve_s8` does: the input window of two
//! output pixels is copied into the scratch as 16-bit values ("im2col"), then each pair of
//! filters runs over both columns, so each weight loaded serves two pixels and each input
//! loaded two filters (a 2 x 2 register tile, four accumulators). Weights stay in the
//! blob as they are (flash): a word of four i8 weights `[w0 w1 w2 w3]` becomes the pairs
//! `(w0, w2)` and `(w1, w3)` by two `SXTB16`; the columns hold their inputs in that same
//! order (`x0 x2 x1 x3` per group of four), written once per pixel by two `UXTB16` (or
//! `SXTB16` for signed activations) per word, so the inner loop is two word loads of
//! inputs per column, one of weights per filter, two `SXTB16` per filter and eight
//! `SMLAD`: 16 multiply-accumulates.
//!
//! The logits layer pairs outputs the same way over the activations as they are; max
//! pooling of unsigned activations compares four channels per instruction (`USUB8` then
//! `SEL`). Every result equals the portable kernels' bit for bit: the sums are the same
//! i32 sums (validation bounds them: no overflow), and requantization is shared.

use core::arch::asm;

use super::kernels::Requantizer;
use super::window;
use super::{Accelerator, Kind, Step};
use crate::blob::{Layer, Output, QuantConv2d, QuantLinear};
use crate::classes::CLASS_COUNT;

/// `acc + lo(a) * lo(b) + hi(a) * hi(b)`, the halves signed 16-bit.
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let result: i32;
    // SAFETY: a register-only DSP instruction (it may set the sticky Q flag, which nothing
    // reads; the sums here cannot overflow).
    unsafe {
        asm!("smlad {r}, {a}, {b}, {c}", r = lateout(reg) result, a = in(reg) a, b = in(reg) b,
             c = in(reg) acc, options(pure, nomem, nostack));
    }
    result
}

/// Bytes 0 and 2 of `x`, sign-extended to 16 bits each: `(x0, x2)`.
#[inline(always)]
fn sxtb16(x: u32) -> u32 {
    let result: u32;
    // SAFETY: a register-only instruction.
    unsafe {
        asm!("sxtb16 {r}, {x}", r = lateout(reg) result, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    result
}

/// Bytes 1 and 3 of `x`, sign-extended: `(x1, x3)`.
#[inline(always)]
fn sxtb16_odd(x: u32) -> u32 {
    let result: u32;
    // SAFETY: a register-only instruction.
    unsafe {
        asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) result, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    result
}

/// Bytes 0 and 2 of `x`, zero-extended: `(x0, x2)`.
#[inline(always)]
fn uxtb16(x: u32) -> u32 {
    let result: u32;
    // SAFETY: a register-only instruction.
    unsafe {
        asm!("uxtb16 {r}, {x}", r = lateout(reg) result, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    result
}

/// Bytes 1 and 3 of `x`, zero-extended: `(x1, x3)`.
#[inline(always)]
fn uxtb16_odd(x: u32) -> u32 {
    let result: u32;
    // SAFETY: a register-only instruction.
    unsafe {
        asm!("uxtb16 {r}, {x}, ror #8", r = lateout(reg) result, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    result
}

/// The unsigned maximum of each of the four bytes of `a` and `b`.
#[inline(always)]
fn max_u8x4(a: u32, b: u32) -> u32 {
    let result: u32;
    // SAFETY: register-only instructions; USUB8 sets the GE flags that SEL reads (the
    // condition flags are not preserved).
    unsafe {
        asm!("usub8 {r}, {a}, {b}", "sel {r}, {a}, {b}", r = out(reg) result, a = in(reg) a,
             b = in(reg) b, options(pure, nomem, nostack));
    }
    result
}

/// The little-endian word at `bytes[..4]`.
#[inline(always)]
fn word(bytes: &[u8]) -> u32 {
    match bytes.get(..4) {
        Some(&[b0, b1, b2, b3]) => u32::from_le_bytes([b0, b1, b2, b3]),
        _ => panic!("a word past the end of a validated tensor"),
    }
}

/// The last `bytes.len() % 4` bytes of `bytes` as a word, zero-padded.
#[inline(always)]
fn tail_word(bytes: &[u8]) -> u32 {
    let tail = &bytes[bytes.len() / 4 * 4..];
    tail.iter()
        .enumerate()
        .fold(0, |w, (i, &b)| w | u32::from(b) << (8 * i))
}

/// The 16-bit pairs of a word of four activations, `((x0, x2), (x1, x3))`.
#[inline(always)]
fn widen(kind: Kind, x: u32) -> (u32, u32) {
    match kind {
        Kind::U8 => (uxtb16(x), uxtb16_odd(x)),
        Kind::I8 => (sxtb16(x), sxtb16_odd(x)),
    }
}

/// Output pixels computed together: the columns of a tile.
const TILE: usize = 4;

/// Words of scratch the columns of a tile take for filters of `taps` taps: per group of
/// four taps, the even pairs of the [`TILE`] pixels, then their odd pairs.
fn tile_words(taps: usize) -> usize {
    taps.div_ceil(4) * 2 * TILE
}

/// Scratch bytes the kernels need for `plan`'s layers: the columns of a tile for the
/// longest filter, and 3 bytes to align them.
pub(super) fn scratch_bytes(plan_layers: &[Layer<'_>]) -> usize {
    let longest = plan_layers
        .iter()
        .map(|layer| match layer {
            Layer::Conv(conv) => usize::from(conv.kernel).pow(2) * usize::from(conv.in_channels),
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    if longest == 0 {
        0
    } else {
        tile_words(longest) * 4 + 3
    }
}

/// The DSP kernels, with the scratch bytes [`scratch_bytes`] gave for a validated plan.
pub(super) struct Dsp {
    pub(super) scratch_bytes: usize,
}

impl Accelerator for Dsp {
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
        // SAFETY: any bit pattern is a valid u32; the middle part is aligned by
        // construction.
        let (_, words, _) = unsafe { scratch.align_to_mut::<u32>() };
        convolve(step, conv, input, output, words);
        true
    }

    fn logits(
        &self,
        _: usize,
        step: &Step,
        linear: &QuantLinear<'_>,
        input: &[u8],
        logits: &mut [i32; CLASS_COUNT],
        _: &mut [u8],
    ) -> bool {
        linear_pairs(step.kind, linear, input, |c, v| logits[c] = v);
        true
    }

    fn pool(&self, _: usize, step: &Step, size: u8, input: &[u8], output: &mut [u8]) -> bool {
        if !step.input[2].is_multiple_of(4) || step.kind != Kind::U8 {
            return false;
        }
        max_pool_u8(step.input, usize::from(size), input, output);
        true
    }
}

/// Writes the input window of output pixel `pixel` into column `slot` of the tile
/// `columns` as 16-bit values in the pair order of [`widen`]; the caller has zeroed the
/// taps that leave the image and those past the last (and the whole tile, when the
/// channel count is not a multiple of 4).
fn im2col(
    step: &Step,
    conv: &QuantConv2d<'_>,
    input: &[u8],
    pixel: usize,
    slot: usize,
    columns: &mut [u32],
) {
    let in_c = step.input[2];
    for (first, row) in window::rows(step, conv, input, pixel) {
        if in_c.is_multiple_of(4) {
            // Whole words: the row's span starts a group of taps.
            widen_into(step.kind, row, slot, &mut columns[first / 4 * 2 * TILE..]);
        } else {
            // Any channel count (the 1-channel first layer): tap by tap.
            for (i, &byte) in row.iter().enumerate() {
                let tap = first + i;
                let value = match step.kind {
                    Kind::U8 => u32::from(byte),
                    Kind::I8 => u32::from(byte as i8 as i16 as u16),
                };
                // Taps 4g .. 4g + 3 are the halves (even word: 0, 2; odd word: 1, 3).
                let (group, lane) = (tap / 4, tap % 4);
                let at = group * 2 * TILE + (lane % 2) * TILE + slot;
                columns[at] |= value << (16 * (lane / 2));
            }
        }
    }
}

/// Each word of `bytes` as its two pairs, into column `slot` of the groups of `columns`.
#[inline(always)]
fn widen_into(kind: Kind, bytes: &[u8], slot: usize, columns: &mut [u32]) {
    for (group, x) in columns
        .chunks_exact_mut(2 * TILE)
        .zip(bytes.chunks_exact(4))
    {
        let (even, odd) = widen(kind, word(x));
        group[slot] = even;
        group[TILE + slot] = odd;
    }
}

/// A convolution, [`TILE`] output pixels at a time, each filter over the tile's columns.
fn convolve(
    step: &Step,
    conv: &QuantConv2d<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u32],
) {
    let [out_h, out_w, out_c] = step.output;
    let in_c = step.input[2];
    let k = usize::from(conv.kernel);
    let taps = k * k * in_c;
    let columns = &mut scratch[..tile_words(taps)];
    let pixels = out_h * out_w;
    let requant = &conv.requant;
    let relu = requant.output == Output::Relu;
    let mut first = 0;
    while first < pixels {
        // The last tile repeats its last pixel where the pixels run out.
        let tile: [usize; TILE] = core::array::from_fn(|i| (first + i).min(pixels - 1));
        // Zeros where no input is copied: taps past the last, and a window that leaves
        // the image (a border pixel), or taps copied one by one.
        if !in_c.is_multiple_of(4) || !tile.iter().all(|&p| window::inside(step, conv, p)) {
            columns.fill(0);
        }
        for (slot, &pixel) in tile.iter().enumerate() {
            im2col(step, conv, input, pixel, slot, columns);
        }
        let at = tile.map(|p| p * out_c);
        for (oc, filter) in conv.weights.chunks_exact(taps).take(out_c).enumerate() {
            let requantizer = Requantizer::of(requant, oc);
            let sums = dot_tile(columns, filter, [requantizer.bias; TILE]);
            // The activation decided once per filter and tile, not per value.
            if relu {
                for (&at, sum) in at.iter().zip(sums) {
                    output[at + oc] = requantizer.scaled(sum).clamp(0, 255) as u8;
                }
            } else {
                for (&at, sum) in at.iter().zip(sums) {
                    output[at + oc] = requantizer.apply(sum) as u8;
                }
            }
        }
        first += TILE;
    }
}

/// One group of four taps of one filter over the four columns of a tile: a word of
/// weights (`r11`, post-incremented) as its even and odd pairs, each against the four
/// columns' pairs (`r10`, post-incremented) into the accumulators `r4`, `r5`, `r8`,
/// `r9`. 16 multiply-accumulates in 13 instructions.
macro_rules! group {
    () => {
        "ldr r12, [r11], #4
         sxtb16 lr, r12
         ldm r10!, {{r0-r3}}
         smlad r4, r0, lr, r4
         smlad r5, r1, lr, r5
         smlad r8, r2, lr, r8
         smlad r9, r3, lr, r9
         sxtb16 lr, r12, ror #8
         ldm r10!, {{r0-r3}}
         smlad r4, r0, lr, r4
         smlad r5, r1, lr, r5
         smlad r8, r2, lr, r8
         smlad r9, r3, lr, r9"
    };
}

/// One filter over the [`TILE`] columns of `columns`, added to `acc`.
#[inline(always)]
fn dot_tile(columns: &[u32], filter: &[u8], acc: [i32; TILE]) -> [i32; TILE] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    let groups = filter.len() / 4;
    if groups > 0 {
        let cols = &columns[..groups * 2 * TILE];
        let weights = &filter[..groups * 4];
        // SAFETY: reads `groups` words of `weights` and `groups * 8` words of `cols`,
        // both in bounds (sliced above; `groups > 0`, so the loop runs at least once);
        // the pushed word is popped; every register written is an output or a clobber.
        unsafe {
            asm!(
                // The end of the columns, read back each turn (no register is left).
                "push {{r0}}",
                // Two groups a turn; an odd count enters at the second.
                "cmp r1, #0",
                "bne 3f",
                "2:",
                group!(),
                "3:",
                group!(),
                "ldr r0, [sp]",
                "cmp r10, r0",
                "bne 2b",
                "add sp, #4",
                inout("r0") cols.as_ptr_range().end => _,
                inout("r1") groups % 2 => _,
                out("r2") _,
                out("r3") _,
                inout("r4") a0,
                inout("r5") a1,
                inout("r8") a2,
                inout("r9") a3,
                inout("r10") cols.as_ptr() => _,
                inout("r11") weights.as_ptr() => _,
                out("r12") _,
                out("lr") _,
                options(readonly),
            );
        }
    }
    if !filter.len().is_multiple_of(4) {
        // The last taps: the columns hold zeros past them.
        let group = &columns[groups * 2 * TILE..][..2 * TILE];
        let w = tail_word(filter);
        let (even, odd) = (sxtb16(w), sxtb16_odd(w));
        a0 = smlad(group[TILE], odd, smlad(group[0], even, a0));
        a1 = smlad(group[TILE + 1], odd, smlad(group[1], even, a1));
        a2 = smlad(group[TILE + 2], odd, smlad(group[2], even, a2));
        a3 = smlad(group[TILE + 3], odd, smlad(group[3], even, a3));
    }
    [a0, a1, a2, a3]
}

/// A linear layer, two outputs at a time over the activations as stored; `emit(channel,
/// value)` receives each output.
fn linear_pairs(
    kind: Kind,
    linear: &QuantLinear<'_>,
    input: &[u8],
    mut emit: impl FnMut(usize, i32),
) {
    let (inputs, outputs) = (linear.inputs as usize, linear.outputs as usize);
    let input = &input[..inputs];
    let requant = &linear.requant;
    let mut oc = 0;
    while oc < outputs {
        let oc1 = (oc + 1).min(outputs - 1);
        let f0 = &linear.weights[oc * inputs..][..inputs];
        let f1 = &linear.weights[oc1 * inputs..][..inputs];
        let (r0, r1) = (Requantizer::of(requant, oc), Requantizer::of(requant, oc1));
        let (mut a0, mut a1) = (r0.bias, r1.bias);
        for ((x, w0), w1) in input
            .chunks_exact(4)
            .zip(f0.chunks_exact(4))
            .zip(f1.chunks_exact(4))
        {
            let (xe, xo) = widen(kind, word(x));
            let (w0, w1) = (word(w0), word(w1));
            a0 = smlad(xo, sxtb16_odd(w0), smlad(xe, sxtb16(w0), a0));
            a1 = smlad(xo, sxtb16_odd(w1), smlad(xe, sxtb16(w1), a1));
        }
        if !inputs.is_multiple_of(4) {
            let (xe, xo) = widen(kind, tail_word(input));
            let (w0, w1) = (tail_word(f0), tail_word(f1));
            a0 = smlad(xo, sxtb16_odd(w0), smlad(xe, sxtb16(w0), a0));
            a1 = smlad(xo, sxtb16_odd(w1), smlad(xe, sxtb16(w1), a1));
        }
        emit(oc, r0.apply(a0));
        emit(oc1, r1.apply(a1));
        oc += 2;
    }
}

/// Max pooling `size` x `size` of u8 activations whose channel count is a multiple of 4,
/// four channels per instruction.
fn max_pool_u8(input: [usize; 3], size: usize, src: &[u8], dst: &mut [u8]) {
    let [h, w, c] = input;
    let (out_h, out_w) = (h / size, w / size);
    for (o, out) in dst[..out_h * out_w * c].chunks_exact_mut(c).enumerate() {
        let (oy, ox) = (o / out_w, o % out_w);
        let corner = (oy * size * w + ox * size) * c;
        for (g, best) in out.chunks_exact_mut(4).enumerate() {
            let mut m = word(&src[corner + 4 * g..]);
            for dy in 0..size {
                let row = corner + dy * w * c + 4 * g;
                for dx in 0..size {
                    m = max_u8x4(m, word(&src[row + dx * c..]));
                }
            }
            best.copy_from_slice(&m.to_le_bytes());
        }
    }
}
