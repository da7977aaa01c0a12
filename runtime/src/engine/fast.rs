//! The desktop path of the int8 engine (`std`): the same plan, with its convolutions and
//! logits layer run by AVX-512 VNNI kernels when the CPU has them (chosen at run time,
//! so the default x86-64 build keeps working everywhere), else by the portable kernels.
//!
//! At load, [`FastPlan::new`] repacks each accelerated layer's weights (once, on the heap)
//! so that one 64-byte load holds 4 consecutive filter taps of 16 output channels: the
//! layout `vpdpbusd` (u8 x i8 -> i32, 4 products per lane) wants. Classification itself
//! allocates nothing: it uses the caller's arena and a fixed stack buffer for the patches
//! of 4 output pixels (im2col, taps in the blob's `[ky][kx][in]` order, zero-padded to a
//! multiple of 4). Requantization is vectorised too, in 64-bit arithmetic, so every output
//! byte and logit equals the portable kernels' (the tests compare both on every layer
//! shape the exporter produces).

use super::{Accelerator, EngineError, Kind, Logits, Plan, Step};
use crate::blob::{Layer, Output, Requant};
use crate::classes::CLASS_COUNT;

/// Which kernels a [`FastPlan`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// The portable kernels (no CPU-specific code).
    Portable,
    /// AVX-512 VNNI (`vpdpbusd`) for convolutions and the logits layer.
    Avx512Vnni,
}

impl Isa {
    /// The best kernels this CPU runs.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
        {
            return Isa::Avx512Vnni;
        }
        Isa::Portable
    }

    /// A short name for reports ("portable", "avx512-vnni").
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx512Vnni => "avx512-vnni",
        }
    }
}

/// Output pixels per register tile (and per patch buffer).
const PIXELS: usize = 4;
/// The longest patch (taps, rounded up to 4) the stack buffer takes; longer layers run on
/// the portable kernels. Every shipped model is far below (at most 576).
const MAX_TAPS: usize = 4096;
/// Output channels per 512-bit accumulator.
const LANES: usize = 16;

/// One layer's weights and requantization, repacked for the vector kernels.
#[derive(Debug, Clone)]
struct Packed {
    /// Taps per output, rounded up to a multiple of 4.
    taps: usize,
    /// Output channels, and blocks of 16 of them (the last one zero-padded).
    channels: usize,
    blocks: usize,
    /// `[taps / 4][blocks * 16][4]` i8 weights.
    weights: Vec<i8>,
    /// Per padded channel: bias, multiplier, and `31 + shift` as i64.
    bias: Vec<i32>,
    multiplier: Vec<i32>,
    total_shift: Vec<i64>,
    /// What the layer is: a convolution (with its shape) or the logits.
    geometry: Geometry,
}

#[derive(Debug, Clone, Copy)]
enum Geometry {
    Conv {
        input: [usize; 3],
        output: [usize; 3],
        kernel: usize,
        padding: usize,
    },
    Logits,
}

impl Packed {
    fn new(weights: &[u8], requant: &Requant<'_>, taps: usize, geometry: Geometry) -> Packed {
        let channels = requant.shift.len();
        let blocks = channels.div_ceil(LANES);
        let padded_taps = taps.div_ceil(4) * 4;
        let width = blocks * LANES;
        let mut packed = vec![0i8; padded_taps * width];
        for c in 0..channels {
            for t in 0..taps {
                packed[((t / 4) * width + c) * 4 + t % 4] = weights[c * taps + t] as i8;
            }
        }
        let per_channel = |f: &dyn Fn(usize) -> i64| -> Vec<i64> {
            (0..width)
                .map(|c| if c < channels { f(c) } else { 0 })
                .collect()
        };
        let le = |bytes: &[u8], c: usize| i64::from(super::kernels::le_i32(bytes, c));
        Packed {
            taps: padded_taps,
            channels,
            blocks,
            weights: packed,
            bias: per_channel(&|c| le(requant.bias, c))
                .into_iter()
                .map(|v| v as i32)
                .collect(),
            multiplier: per_channel(&|c| le(requant.multiplier, c))
                .into_iter()
                .map(|v| v as i32)
                .collect(),
            // Padded channels: multiplier 0 and a shift of 31 give 0, never stored.
            total_shift: (0..width)
                .map(|c| 31 + requant.shift.get(c).map_or(0, |&s| i64::from(s as i8)))
                .collect(),
            geometry,
        }
    }
}

/// A validated model with the fastest kernels this CPU runs. Same results as
/// [`Plan::classify`], bit for bit.
#[derive(Debug, Clone)]
pub struct FastPlan<'a> {
    plan: Plan<'a>,
    isa: Isa,
    /// Per layer: its packed form, when an accelerated kernel runs it.
    packed: Vec<Option<Packed>>,
}

impl<'a> FastPlan<'a> {
    /// Packs `plan` for the best kernels of this CPU ([`Isa::detect`]).
    pub fn new(plan: Plan<'a>) -> FastPlan<'a> {
        FastPlan::with_isa(plan, Isa::detect())
    }

    /// Packs `plan` for `isa`; an ISA this CPU lacks falls back to [`Isa::Portable`].
    pub fn with_isa(plan: Plan<'a>, isa: Isa) -> FastPlan<'a> {
        let isa = if isa == Isa::Avx512Vnni && Isa::detect() != Isa::Avx512Vnni {
            Isa::Portable
        } else {
            isa
        };
        let packed = match isa {
            Isa::Portable => Vec::new(),
            Isa::Avx512Vnni => plan
                .steps
                .iter()
                .zip(plan.model.layers.iter())
                .map(|(step, layer)| pack(step, layer))
                .collect(),
        };
        FastPlan { plan, isa, packed }
    }

    /// The kernels in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The validated plan.
    pub fn plan(&self) -> &Plan<'a> {
        &self.plan
    }

    /// The model's description, as [`Plan::model`].
    pub fn model(&self) -> &crate::blob::Model<'a> {
        self.plan.model()
    }

    /// Bytes of arena [`FastPlan::classify`] needs (the plan's).
    pub fn arena_bytes(&self) -> usize {
        self.plan.arena_bytes()
    }

    /// Classifies one image, as [`Plan::classify`].
    pub fn classify(&self, pixels: &[u8], arena: &mut [u8]) -> Result<Logits, EngineError> {
        self.plan.run(pixels, arena, self)
    }
}

/// The packed form of a layer the vector kernels run: convolutions and the logits layer
/// over u8 (ReLU) activations, with ReLU (or logits) outputs.
fn pack(step: &Step, layer: &Layer<'_>) -> Option<Packed> {
    if step.kind != Kind::U8 {
        return None;
    }
    let (weights, requant, taps, geometry) = match layer {
        Layer::Conv(conv) if conv.requant.output == Output::Relu => {
            let kernel = usize::from(conv.kernel);
            (
                conv.weights,
                &conv.requant,
                kernel * kernel * usize::from(conv.in_channels),
                Geometry::Conv {
                    input: step.input,
                    output: step.output,
                    kernel,
                    padding: usize::from(conv.padding),
                },
            )
        }
        Layer::Linear(linear) if linear.requant.output == Output::Logits => (
            linear.weights,
            &linear.requant,
            linear.inputs as usize,
            Geometry::Logits,
        ),
        _ => return None,
    };
    (taps.div_ceil(4) * 4 <= MAX_TAPS).then(|| Packed::new(weights, requant, taps, geometry))
}

impl Accelerator for FastPlan<'_> {
    fn conv(&self, index: usize, input: &[u8], output: &mut [u8]) -> bool {
        match self.packed.get(index) {
            #[cfg(target_arch = "x86_64")]
            Some(Some(packed)) => {
                // SAFETY: `packed` exists only when `with_isa` confirmed AVX-512 VNNI.
                unsafe { vnni::conv(packed, input, output) };
                true
            }
            _ => false,
        }
    }

    fn logits(&self, index: usize, input: &[u8], logits: &mut [i32; CLASS_COUNT]) -> bool {
        match self.packed.get(index) {
            #[cfg(target_arch = "x86_64")]
            Some(Some(packed)) => {
                // SAFETY: as in `conv`.
                unsafe { vnni::logits(packed, input, logits) };
                true
            }
            _ => false,
        }
    }
}

/// Gathers the im2col patch of output pixel `pixel` into `patch` (`taps` long, the blob's
/// `[ky][kx][in]` order, zeros for padding and for the taps past the filter).
fn gather(geometry: Geometry, pixel: usize, input: &[u8], patch: &mut [u8]) {
    let Geometry::Conv {
        input: [in_h, in_w, in_c],
        output: [_, out_w, _],
        kernel,
        padding,
    } = geometry
    else {
        return;
    };
    patch.fill(0);
    let (oy, ox) = (pixel / out_w, pixel % out_w);
    let kx_start = padding.saturating_sub(ox);
    let kx_end = kernel.min(in_w + padding - ox);
    let ky_end = kernel.min(in_h + padding - oy);
    let span = (kx_end - kx_start) * in_c;
    for ky in padding.saturating_sub(oy)..ky_end {
        let iy = oy + ky - padding;
        let from = (iy * in_w + ox + kx_start - padding) * in_c;
        let to = (ky * kernel + kx_start) * in_c;
        patch[to..to + span].copy_from_slice(&input[from..from + span]);
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use core::arch::x86_64::*;

    use super::{gather, Geometry, Packed, LANES, MAX_TAPS, PIXELS};
    use crate::classes::CLASS_COUNT;

    /// A convolution with ReLU output: all output pixels, 4 at a time.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn conv(packed: &Packed, input: &[u8], output: &mut [u8]) {
        let Geometry::Conv {
            output: [out_h, out_w, _],
            ..
        } = packed.geometry
        else {
            return;
        };
        let taps = packed.taps;
        let mut patches = [0u8; PIXELS * MAX_TAPS];
        let patches = &mut patches[..PIXELS * taps];
        let pixels = out_h * out_w;
        for first in (0..pixels).step_by(PIXELS) {
            let count = PIXELS.min(pixels - first);
            for (p, patch) in patches.chunks_exact_mut(taps).enumerate() {
                if p < count {
                    gather(packed.geometry, first + p, input, patch);
                }
            }
            let mut block = 0;
            while block < packed.blocks {
                let mut acc = [[0i32; LANES * 4]; PIXELS];
                let width = match packed.blocks - block {
                    1 => tile::<1>(packed, patches, block, &mut acc),
                    2 => tile::<2>(packed, patches, block, &mut acc),
                    3 => tile::<3>(packed, patches, block, &mut acc),
                    _ => tile::<4>(packed, patches, block, &mut acc),
                };
                for (p, sums) in acc.iter().enumerate().take(count) {
                    for b in 0..width {
                        let channel = (block + b) * LANES;
                        let bytes = requantize_relu(packed, channel, &sums[b * LANES..]);
                        let keep = LANES.min(packed.channels - channel);
                        let at = (first + p) * packed.channels + channel;
                        output[at..at + keep].copy_from_slice(&bytes[..keep]);
                    }
                }
                block += width;
            }
        }
    }

    /// The logits layer: one "pixel" whose patch is the flattened input.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn logits(packed: &Packed, input: &[u8], logits: &mut [i32; CLASS_COUNT]) {
        let mut patches = [0u8; PIXELS * MAX_TAPS];
        let taps = packed.taps;
        patches[..input.len()].copy_from_slice(input);
        let mut acc = [[0i32; LANES * 4]; PIXELS];
        // CLASS_COUNT (10) channels: one block.
        tile::<1>(packed, &patches[..PIXELS * taps], 0, &mut acc);
        for (c, logit) in logits.iter_mut().enumerate() {
            let sum = acc[0][c].wrapping_add(packed.bias[c]);
            *logit = crate::engine::kernels::requantize(
                sum,
                packed.multiplier[c],
                (packed.total_shift[c] - 31) as i32,
            );
        }
    }

    /// `B` blocks of 16 channels from `block` on, for 4 patches: the raw dot products
    /// (without bias) into `acc[pixel][b * 16 + lane]`. Returns `B`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn tile<const B: usize>(
        packed: &Packed,
        patches: &[u8],
        block: usize,
        acc: &mut [[i32; LANES * 4]; PIXELS],
    ) -> usize {
        let taps = packed.taps;
        let width = packed.blocks * LANES;
        assert!(patches.len() >= PIXELS * taps && block + B <= packed.blocks);
        assert!(packed.weights.len() >= taps * width);
        let mut sums = [[_mm512_setzero_si512(); B]; PIXELS];
        let weights = packed.weights.as_ptr();
        let patch = patches.as_ptr();
        for group in 0..taps / 4 {
            // SAFETY: group * 4 < taps, so every weight read (64 bytes at
            // `(group * width + (block + b) * 16) * 4`) and every patch read (4 bytes at
            // `p * taps + group * 4`) is in bounds, as asserted above.
            unsafe {
                let row = weights.add((group * width + block * LANES) * 4);
                let w: [__m512i; B] =
                    core::array::from_fn(|b| _mm512_loadu_si512(row.add(b * 64).cast()));
                for (p, sum) in sums.iter_mut().enumerate() {
                    let x = patch
                        .add(p * taps + group * 4)
                        .cast::<i32>()
                        .read_unaligned();
                    let x = _mm512_set1_epi32(x);
                    for b in 0..B {
                        sum[b] = _mm512_dpbusd_epi32(sum[b], x, w[b]);
                    }
                }
            }
        }
        for (p, sum) in sums.iter().enumerate() {
            for (b, s) in sum.iter().enumerate() {
                // SAFETY: 16 i32 at b * 16 < 64.
                unsafe { _mm512_storeu_si512(acc[p][b * LANES..].as_mut_ptr().cast(), *s) };
            }
        }
        B
    }

    /// Bias, requantization and ReLU of 16 channels from `channel`, as
    /// `kernels::finish` computes them: `clamp(round(acc * m / 2^(31 + s)), 0, 255)`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn requantize_relu(packed: &Packed, channel: usize, sums: &[i32]) -> [u8; LANES] {
        assert!(sums.len() >= LANES && channel + LANES <= packed.bias.len());
        // SAFETY: all reads are 16 i32 or 16 i64 within the slices, as asserted.
        unsafe {
            let acc = _mm512_add_epi32(
                _mm512_loadu_si512(sums.as_ptr().cast()),
                _mm512_loadu_si512(packed.bias[channel..].as_ptr().cast()),
            );
            let multiplier = _mm512_loadu_si512(packed.multiplier[channel..].as_ptr().cast());
            // 64-bit lanes: the even channels in the low halves, the odd in the high.
            let shifts = packed.total_shift[channel..].as_ptr();
            let index_even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
            let index_odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
            let lo = _mm512_loadu_si512(shifts.cast());
            let hi = _mm512_loadu_si512(shifts.add(8).cast());
            let shift_even = _mm512_permutex2var_epi64(lo, index_even, hi);
            let shift_odd = _mm512_permutex2var_epi64(lo, index_odd, hi);
            let one = _mm512_set1_epi64(1);
            let scaled = |products: __m512i, shift: __m512i| {
                let half = _mm512_sllv_epi64(one, _mm512_sub_epi64(shift, one));
                let rounded = _mm512_srav_epi64(_mm512_add_epi64(products, half), shift);
                _mm512_min_epi64(
                    _mm512_max_epi64(rounded, _mm512_setzero_si512()),
                    _mm512_set1_epi64(255),
                )
            };
            // vpmuldq multiplies the signed low 32 bits of each 64-bit lane.
            let even = scaled(_mm512_mul_epi32(acc, multiplier), shift_even);
            let odd = scaled(
                _mm512_mul_epi32(
                    _mm512_srli_epi64(acc, 32),
                    _mm512_srli_epi64(multiplier, 32),
                ),
                shift_odd,
            );
            let both = _mm512_or_si512(even, _mm512_slli_epi64(odd, 32));
            let mut bytes = [0u8; LANES];
            _mm_storeu_si128(bytes.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(both));
            bytes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_follow_the_weight_order_with_zero_padding() {
        // 3x3x2 input, 3x3 kernel, padding 1: the corner pixel's patch.
        let input: Vec<u8> = (1..=18).collect();
        let geometry = Geometry::Conv {
            input: [3, 3, 2],
            output: [3, 3, 4],
            kernel: 3,
            padding: 1,
        };
        let mut patch = [9u8; 20];
        gather(geometry, 0, &input, &mut patch);
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 0, 0, 0, // ky 0: above the image
            0, 0, 1, 2, 3, 4, // ky 1: left padding, pixels (0,0) and (0,1)
            0, 0, 7, 8, 9, 10, // ky 2
            0, 0, // taps 18..20: rounding to a multiple of 4
        ];
        assert_eq!(patch, expected);
    }

    #[test]
    fn packing_puts_four_taps_of_sixteen_channels_together() {
        // 2 channels, 5 taps: weights[c][t] = 10 * c + t.
        let weights: Vec<u8> = (0..2)
            .flat_map(|c| (0..5).map(move |t| 10 * c + t))
            .collect();
        let bias = [0u8; 8];
        let multiplier = [0u8; 8];
        let shift = [3u8, 253];
        let requant = Requant {
            bias: &bias,
            multiplier: &multiplier,
            shift: &shift,
            output: Output::Logits,
        };
        let packed = Packed::new(&weights, &requant, 5, Geometry::Logits);
        assert_eq!((packed.taps, packed.blocks, packed.channels), (8, 1, 2));
        assert_eq!(&packed.weights[..8], &[0, 1, 2, 3, 10, 11, 12, 13]);
        // Taps 4..8 of channel 0 start the second group of 16 channels x 4 taps.
        assert_eq!(&packed.weights[64..72], &[4, 0, 0, 0, 14, 0, 0, 0]);
        assert_eq!(&packed.total_shift[..3], &[34, 28, 31]);
    }
}
