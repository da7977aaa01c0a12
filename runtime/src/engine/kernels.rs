//! The int8 kernels: plain, portable Rust over byte slices, bit-exact on every target.
//! Activations are HWC; weights i8 stored as bytes; accumulation in i32.

use crate::blob::{Output, Requant};

/// How to read one activation byte.
pub trait Element {
    /// The byte as the integer it encodes.
    fn value(byte: u8) -> i32;
    /// The byte encoding the larger of two values.
    fn max(a: u8, b: u8) -> u8;
}

/// Unsigned activations (pixels, ReLU outputs), zero point 0.
pub struct U8;
/// Signed activations (LeakyReLU outputs), zero point 0.
pub struct I8;

impl Element for U8 {
    #[inline(always)]
    fn value(byte: u8) -> i32 {
        i32::from(byte)
    }
    #[inline(always)]
    fn max(a: u8, b: u8) -> u8 {
        a.max(b)
    }
}

impl Element for I8 {
    #[inline(always)]
    fn value(byte: u8) -> i32 {
        i32::from(byte as i8)
    }
    #[inline(always)]
    fn max(a: u8, b: u8) -> u8 {
        (a as i8).max(b as i8) as u8
    }
}

/// Little-endian i32 number `index` of `bytes` (lengths are validated at load).
#[inline(always)]
pub fn le_i32(bytes: &[u8], index: usize) -> i32 {
    let at = index * 4;
    // One bounds check and one (unaligned) load, not four.
    match bytes.get(at..at + 4) {
        Some(&[b0, b1, b2, b3]) => i32::from_le_bytes([b0, b1, b2, b3]),
        _ => panic!("i32 {index} past the end of a validated tensor"),
    }
}

/// `round(acc * multiplier / 2^(31 + shift))`, rounding half up; `shift` in -30..=31.
#[cfg(any(test, feature = "std"))]
#[inline(always)]
pub fn requantize(acc: i32, multiplier: i32, shift: i32) -> i32 {
    Requantizer::new(multiplier, shift, Output::Logits, 0).apply(acc)
}

/// One output channel's bias, requantization and activation, read from the blob once and
/// applied to any number of sums.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requantizer {
    /// The channel's bias, for the caller to start its sums from.
    #[cfg_attr(not(any(fmnist_dsp, fmnist_simd128)), allow(dead_code))]
    pub(crate) bias: i32,
    multiplier: i32,
    /// Half of the divisor `2^total`: the rounding.
    round: i64,
    /// `31 + shift`, 1..=62.
    total: u32,
    output: Output,
}

impl Requantizer {
    #[inline(always)]
    fn new(multiplier: i32, shift: i32, output: Output, bias: i32) -> Requantizer {
        let total = (31 + shift) as u32;
        Requantizer {
            bias,
            multiplier,
            round: 1i64 << (total - 1),
            total,
            output,
        }
    }

    /// Output channel `channel` of `requant`.
    #[inline(always)]
    pub(crate) fn of(requant: &Requant<'_>, channel: usize) -> Requantizer {
        Requantizer::new(
            le_i32(requant.multiplier, channel),
            i32::from(requant.shift[channel] as i8),
            requant.output,
            le_i32(requant.bias, channel),
        )
    }

    /// The requantized value, activated, as stored (bias already in `acc`).
    #[inline(always)]
    pub(crate) fn apply(&self, acc: i32) -> i32 {
        let value = self.scaled(acc);
        match self.output {
            Output::Relu => value.clamp(0, 255),
            Output::LeakyRelu { slope_q15 } => {
                // In i64: a value near i32::MIN times a slope near 2^15 needs 47 bits.
                let value = if value < 0 {
                    (i64::from(value) * i64::from(slope_q15) + (1 << 14)) >> 15
                } else {
                    i64::from(value)
                };
                value.clamp(-128, 127) as i32
            }
            Output::Logits => value,
        }
    }

    /// The requantized value before the activation (bias already in `acc`).
    #[inline(always)]
    pub(crate) fn scaled(&self, acc: i32) -> i32 {
        // |acc * multiplier| <= 2^62 and round <= 2^61: no overflow.
        let rounded = i64::from(acc) * i64::from(self.multiplier) + self.round;
        if self.total >= 32 {
            // The high word alone, shifted (a multiply-accumulate and a shift on a 32-bit
            // core); |rounded| < 2^63 so the result is within i32 and needs no clamp.
            ((rounded >> 32) as i32) >> (self.total - 32)
        } else {
            (rounded >> self.total).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
        }
    }
}

/// Bias, requantization and activation of output channel `channel`; the result as stored.
#[inline(always)]
pub(crate) fn finish(requant: &Requant<'_>, channel: usize, acc: i32) -> i32 {
    Requantizer::of(requant, channel).apply(acc)
}

#[inline(always)]
fn dot<E: Element>(inputs: &[u8], weights: &[u8]) -> i32 {
    inputs
        .iter()
        .zip(weights)
        .map(|(&x, &w)| E::value(x) * i32::from(w as i8))
        .sum()
}

/// Shape of a convolution, all validated at load.
pub struct ConvShape {
    /// Input height, width, channels.
    pub input: [usize; 3],
    /// Output height, width, channels.
    pub output: [usize; 3],
    /// Kernel side.
    pub kernel: usize,
    /// Zero padding on each side.
    pub padding: usize,
}

/// Convolution, stride 1: `input` HWC -> `output` HWC bytes.
pub fn conv<E: Element>(
    shape: &ConvShape,
    weights: &[u8],
    requant: &Requant<'_>,
    input: &[u8],
    output: &mut [u8],
) {
    let [in_h, in_w, in_c] = shape.input;
    let [out_h, out_w, out_c] = shape.output;
    let (k, pad) = (shape.kernel, shape.padding);
    let filter_len = k * k * in_c;
    for oy in 0..out_h {
        // The kernel rows that fall inside the image for this output row.
        let ky_start = pad.saturating_sub(oy);
        let ky_end = k.min(in_h + pad - oy);
        for ox in 0..out_w {
            let kx_start = pad.saturating_sub(ox);
            let kx_end = k.min(in_w + pad - ox);
            let out_pixel = &mut output[(oy * out_w + ox) * out_c..][..out_c];
            let span = (kx_end - kx_start) * in_c;
            // Four output channels at a time: each input byte is loaded once for four
            // filters, and the compiler vectorises the four dot products together.
            let mut oc = 0;
            while oc < out_c {
                let group = (out_c - oc).min(4);
                let mut acc = [0i32; 4];
                for (g, a) in acc.iter_mut().enumerate().take(group) {
                    *a = le_i32(requant.bias, oc + g);
                }
                for ky in ky_start..ky_end {
                    let iy = oy + ky - pad;
                    let row = &input[(iy * in_w + ox + kx_start - pad) * in_c..][..span];
                    let w_row = (ky * k + kx_start) * in_c;
                    let filters: [&[u8]; 4] = core::array::from_fn(|g| {
                        let c = oc + g.min(group - 1);
                        &weights[c * filter_len + w_row..][..span]
                    });
                    let sums = dot4::<E>(row, filters);
                    for (a, s) in acc.iter_mut().zip(sums) {
                        *a += s;
                    }
                }
                for (g, &a) in acc.iter().enumerate().take(group) {
                    out_pixel[oc + g] = finish(requant, oc + g, a) as u8;
                }
                oc += group;
            }
        }
    }
}

/// Four dot products of `inputs` with four filters of the same length.
#[inline(always)]
fn dot4<E: Element>(inputs: &[u8], filters: [&[u8]; 4]) -> [i32; 4] {
    let n = inputs.len();
    let [f0, f1, f2, f3] = filters.map(|f| &f[..n]);
    let mut acc = [0i32; 4];
    for i in 0..n {
        let x = E::value(inputs[i]);
        acc[0] += x * i32::from(f0[i] as i8);
        acc[1] += x * i32::from(f1[i] as i8);
        acc[2] += x * i32::from(f2[i] as i8);
        acc[3] += x * i32::from(f3[i] as i8);
    }
    acc
}

/// Fully connected layer: `emit(channel, value)` receives each output channel's
/// requantized, activated value (stored as a byte, or kept as an i32 logit by the caller).
pub fn linear<E: Element>(
    inputs: usize,
    weights: &[u8],
    requant: &Requant<'_>,
    input: &[u8],
    outputs: usize,
    mut emit: impl FnMut(usize, i32),
) {
    for oc in 0..outputs {
        let acc = le_i32(requant.bias, oc)
            + dot::<E>(&input[..inputs], &weights[oc * inputs..][..inputs]);
        emit(oc, finish(requant, oc, acc));
    }
}

/// Max pooling `size` x `size`, stride `size`, HWC. Max commutes with the (monotonic)
/// quantization, so it runs on the stored integers.
pub fn max_pool<E: Element>(input: [usize; 3], size: usize, src: &[u8], dst: &mut [u8]) {
    let [h, w, c] = input;
    let (out_h, out_w) = (h / size, w / size);
    // Whole channel vectors at a time, branch-free: the compiler turns the inner loop
    // into vector max instructions.
    for (o, out) in dst[..out_h * out_w * c].chunks_exact_mut(c).enumerate() {
        let (oy, ox) = (o / out_w, o % out_w);
        let corner = ((oy * size) * w + ox * size) * c;
        out.copy_from_slice(&src[corner..corner + c]);
        for dy in 0..size {
            let row = &src[((oy * size + dy) * w + ox * size) * c..][..size * c];
            for pixel in row.chunks_exact(c) {
                for (best, &candidate) in out.iter_mut().zip(pixel) {
                    *best = E::max(*best, candidate);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requantize_rounds_half_up_and_scales() {
        // multiplier 2^30 with shift 0 is x0.5.
        assert_eq!(requantize(10, 1 << 30, 0), 5);
        assert_eq!(requantize(11, 1 << 30, 0), 6);
        assert_eq!(requantize(-11, 1 << 30, 0), -5);
        // shift 2 divides by 4 more; shift -1 multiplies by 2.
        assert_eq!(requantize(100, 1 << 30, 2), 13);
        assert_eq!(requantize(100, 1 << 30, -1), 100);
        assert_eq!(requantize(i32::MAX, i32::MAX, -30), i32::MAX);
    }

    #[test]
    fn leaky_relu_of_a_large_negative_value_clamps_without_overflow() {
        // value = acc (multiplier 2^30, shift -1); slope 0.5: -199,920 x 16,384 is below
        // i32::MIN, and wrapped it would come out as +127.
        let bias = 0i32.to_le_bytes();
        let multiplier = (1i32 << 30).to_le_bytes();
        let shift = [(-1i8) as u8];
        let requant = |slope_q15| Requant {
            bias: &bias,
            multiplier: &multiplier,
            shift: &shift,
            output: Output::LeakyRelu { slope_q15 },
        };
        assert_eq!(finish(&requant(16_384), 0, -199_920), -128);
        assert_eq!(finish(&requant(16_384), 0, -200), -100);
        assert_eq!(finish(&requant(i16::MAX), 0, i32::MIN), -128);
        assert_eq!(finish(&requant(i16::MIN), 0, i32::MIN), 127);
        assert_eq!(finish(&requant(16_384), 0, 199_920), 127);
    }

    #[test]
    fn conv_with_padding_matches_a_direct_sum() {
        // 3x3 single-channel input, 3x3 kernel of ones, padding 1, scale x1 (multiplier 2^30, shift -1).
        let input: [u8; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let weights = [1u8; 9];
        let bias = 0i32.to_le_bytes();
        let multiplier = (1i32 << 30).to_le_bytes();
        let shift = [(-1i8) as u8];
        let requant = Requant {
            bias: &bias,
            multiplier: &multiplier,
            shift: &shift,
            output: Output::Relu,
        };
        let shape = ConvShape {
            input: [3, 3, 1],
            output: [3, 3, 1],
            kernel: 3,
            padding: 1,
        };
        let mut output = [0u8; 9];
        conv::<U8>(&shape, &weights, &requant, &input, &mut output);
        assert_eq!(output, [12, 21, 16, 27, 45, 33, 24, 39, 28]);
    }

    #[test]
    fn max_pool_compares_signed_values_as_signed() {
        let src = [(-5i8) as u8, 3, (-1i8) as u8, (-128i8) as u8];
        let mut dst = [0u8; 1];
        max_pool::<I8>([2, 2, 1], 2, &src, &mut dst);
        assert_eq!(dst[0] as i8, 3);
        max_pool::<U8>([2, 2, 1], 2, &[1, 200, 3, 4], &mut dst);
        assert_eq!(dst[0], 200);
    }
}
