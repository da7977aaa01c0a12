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
            && std::arch::is_x86_feature_detected!("avx512vl")
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
const PIXELS: usize = 8;
/// The longest patch (taps, rounded up to 4) the stack buffer takes; longer layers run on
/// the portable kernels. The shipped models need at most 2000 (cnn's logits).
const MAX_TAPS: usize = 2048;
/// The largest zero-bordered copy of a padded convolution's input the stack buffer takes
/// (edge needs at most 16 x 16 x 32 = 8 KiB).
const MAX_PADDED: usize = 16 * 1024;
/// The largest expanded input (see [`Layout`]) the stack buffer takes (cnn's second
/// convolution needs 24 x 20 x 52 = 24,960 bytes).
const MAX_EXPANDED: usize = 32 * 1024;
/// Output channels per 512-bit accumulator.
const LANES: usize = 16;

/// One layer's weights and requantization, repacked for the vector kernels.
#[derive(Debug, Clone)]
struct Packed {
    /// Packed taps per output channel (see [`Layout`]); a multiple of 4.
    taps: usize,
    /// Expanded layers: bytes per kernel row piece of the expanded input.
    padded_span: usize,
    /// Output channels, and blocks of 16 of them (the last one zero-padded).
    channels: usize,
    blocks: usize,
    /// `[taps / 4][blocks * 16][4]` i8 weights.
    weights: Vec<i8>,
    /// Per padded channel: bias, multiplier, and `31 + shift` as i64.
    bias: Vec<i32>,
    multiplier: Vec<i32>,
    total_shift: Vec<i64>,
    /// Per block of 16 channels, the 64-bit lanes the vector requantization uses: the
    /// shifts of the even channels, of the odd ones, then the rounding halves of each.
    lanes: Vec<i64>,
    /// Per group of 4 taps, where its bytes start relative to the first byte a pixel
    /// reads (see [`Layout`]).
    offsets: Vec<u32>,
    /// Bytes past a pixel's first byte that its taps reach (largest offset + 4).
    reach: usize,
    /// Whether the layer reads its input directly instead of an expanded copy.
    direct: bool,
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

/// How a layer's taps are laid out, and where a pixel's groups of 4 taps are read from.
///
/// - Logits: the flattened input, taps padded to a multiple of 4.
/// - Direct (input channels a multiple of 4): the (zero-bordered) input activation itself;
///   each group of 4 taps is 4 channels of one input pixel.
/// - Expanded (other channel counts, e.g. the 1-channel image): each kernel row's
///   `kernel x channels` bytes are first copied, for every output column, into a row of
///   the "expanded" input (rounded up to 4 bytes), so a pixel's taps are `kernel` such
///   pieces, one per kernel row.
struct Layout {
    /// Packed taps per output channel (a multiple of 4).
    taps: usize,
    /// Where tap `t` of the blob's `[ky][kx][in]` order goes among the packed taps.
    place: fn(&Layout, usize) -> usize,
    /// The blob's taps per kernel row (`kernel x in`), and the packed ones (to 4).
    span: usize,
    padded_span: usize,
    /// Per group of 4 packed taps, its offset from the pixel's first byte.
    offsets: Vec<u32>,
    direct: bool,
}

impl Layout {
    fn new(taps: usize, geometry: Geometry) -> Layout {
        let identity = |_: &Layout, t: usize| t;
        let Geometry::Conv {
            input: [_, w, c],
            output: [_, out_w, _],
            kernel,
            padding,
        } = geometry
        else {
            let taps = taps.div_ceil(4) * 4;
            return Layout {
                taps,
                place: identity,
                span: taps,
                padded_span: taps,
                offsets: (0..taps / 4).map(|g| (4 * g) as u32).collect(),
                direct: false,
            };
        };
        let span = kernel * c;
        if c % 4 == 0 {
            let width = w + 2 * padding;
            let offsets = (0..taps / 4)
                .map(|g| {
                    let t = 4 * g;
                    let (ky, kx, ic) = (t / span, (t / c) % kernel, t % c);
                    ((ky * width + kx) * c + ic) as u32
                })
                .collect();
            return Layout {
                taps,
                place: identity,
                span,
                padded_span: span,
                offsets,
                direct: true,
            };
        }
        let padded_span = span.div_ceil(4) * 4;
        let offsets = (0..kernel)
            .flat_map(|ky| (0..padded_span / 4).map(move |g| ky * out_w * padded_span + 4 * g))
            .map(|o| o as u32)
            .collect();
        Layout {
            taps: kernel * padded_span,
            place: |l: &Layout, t: usize| (t / l.span) * l.padded_span + t % l.span,
            span,
            padded_span,
            offsets,
            direct: false,
        }
    }
}

impl Packed {
    fn new(weights: &[u8], requant: &Requant<'_>, taps: usize, geometry: Geometry) -> Packed {
        let layout = Layout::new(taps, geometry);
        let channels = requant.shift.len();
        let blocks = channels.div_ceil(LANES);
        let width = blocks * LANES;
        let mut packed = vec![0i8; layout.taps * width];
        for c in 0..channels {
            for t in 0..taps {
                let at = (layout.place)(&layout, t);
                packed[((at / 4) * width + c) * 4 + at % 4] = weights[c * taps + t] as i8;
            }
        }
        let per_channel = |f: &dyn Fn(usize) -> i64| -> Vec<i64> {
            (0..width)
                .map(|c| if c < channels { f(c) } else { 0 })
                .collect()
        };
        let le = |bytes: &[u8], c: usize| i64::from(super::kernels::le_i32(bytes, c));
        Packed {
            taps: layout.taps,
            padded_span: layout.padded_span,
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
            lanes: Vec::new(),
            reach: layout.offsets.iter().max().map_or(0, |&o| o as usize + 4),
            offsets: layout.offsets,
            direct: layout.direct,
            geometry,
        }
        .with_lanes()
    }

    fn with_lanes(mut self) -> Packed {
        self.lanes = self
            .total_shift
            .chunks_exact(LANES)
            .flat_map(|block| {
                let even = block.iter().step_by(2);
                let odd = block.iter().skip(1).step_by(2);
                let shifts = even.clone().chain(odd.clone()).copied();
                let halves = even.chain(odd).map(|&s| 1i64 << (s - 1));
                shifts.chain(halves).collect::<Vec<_>>()
            })
            .collect();
        self
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

    /// Heap bytes of the repacked layers (allocated once, by [`FastPlan::new`]).
    pub fn packed_bytes(&self) -> usize {
        self.packed
            .iter()
            .flatten()
            .map(|p| {
                p.weights.len()
                    + 4 * (p.bias.len() + p.multiplier.len() + p.offsets.len())
                    + 8 * (p.total_shift.len() + p.lanes.len())
            })
            .sum()
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
    let (bordered, expanded) = match geometry {
        Geometry::Conv {
            input: [h, w, c],
            output: [_, out_w, _],
            kernel,
            padding,
        } => (
            if padding > 0 {
                (h + 2 * padding) * (w + 2 * padding) * c
            } else {
                0
            },
            // Direct layers (channels a multiple of 4) need no expanded input.
            if c % 4 == 0 {
                0
            } else {
                (h + 2 * padding) * out_w * (kernel * c).div_ceil(4) * 4
            },
        ),
        Geometry::Logits => (0, 0),
    };
    (taps.div_ceil(4) * 4 <= MAX_TAPS && bordered <= MAX_PADDED && expanded <= MAX_EXPANDED)
        .then(|| Packed::new(weights, requant, taps, geometry))
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

    fn pool(&self, index: usize, input: &[u8], output: &mut [u8]) -> bool {
        match (
            self.isa,
            self.plan.steps.get(index),
            self.plan.model.layers.get(index),
        ) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Vnni, Some(step), Some(Layer::MaxPool { size })) => {
                // SAFETY: `with_isa` confirmed AVX-512 VNNI (and BW) for this ISA.
                unsafe { vnni::max_pool(step.input, usize::from(*size), input, output) };
                true
            }
            _ => false,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use core::arch::x86_64::*;
    use core::mem::MaybeUninit;

    use super::{Geometry, Packed, LANES, MAX_EXPANDED, MAX_PADDED, MAX_TAPS, PIXELS};
    use crate::classes::CLASS_COUNT;

    /// Most blocks of 16 channels one tile computes (8 pixels x 3 blocks: 24 accumulators).
    const MAX_BLOCKS: usize = 3;

    /// A convolution with ReLU output: all output pixels, 8 at a time. Inputs with
    /// padding are first copied into a zero-bordered buffer, so that every patch is
    /// `kernel` whole rows of `kernel x channels` bytes.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW, VL and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn conv(packed: &Packed, input: &[u8], output: &mut [u8]) {
        let Geometry::Conv {
            input: [in_h, in_w, in_c],
            output: [out_h, out_w, _],
            kernel,
            padding,
        } = packed.geometry
        else {
            return;
        };
        let mut bordered = [MaybeUninit::uninit(); MAX_PADDED];
        let height = in_h + 2 * padding;
        let (source, width) = if padding == 0 {
            (input, in_w)
        } else {
            let width = in_w + 2 * padding;
            let bordered = zeroed(&mut bordered, (in_h + 2 * padding) * width * in_c);
            let row = in_w * in_c;
            for y in 0..in_h {
                let at = ((y + padding) * width + padding) * in_c;
                copy(&input[y * row..][..row], &mut bordered[at..at + row]);
            }
            (&*bordered, width)
        };
        let pixels = out_h * out_w;
        let piece = packed.padded_span;
        let mut expanded = [MaybeUninit::uninit(); MAX_EXPANDED];
        let expanded = zeroed(
            &mut expanded,
            if packed.direct {
                0
            } else {
                height * out_w * piece
            },
        );
        if !packed.direct {
            let span = kernel * in_c;
            for (i, row) in expanded.chunks_exact_mut(piece).enumerate() {
                let (y, x) = (i / out_w, i % out_w);
                let from = (y * width + x) * in_c;
                copy(&source[from..from + span], &mut row[..span]);
            }
        }
        let corner = |pixel: usize| ((pixel / out_w) * width + pixel % out_w) * in_c;
        for first in (0..pixels).step_by(PIXELS) {
            let count = PIXELS.min(pixels - first);
            // Where each pixel's taps start; the pixels past `count` repeat the last one.
            let last = |p: usize| first + p.min(count - 1);
            let (reads, starts): (&[u8], [usize; PIXELS]) = if packed.direct {
                (source, core::array::from_fn(|p| corner(last(p))))
            } else {
                (expanded, core::array::from_fn(|p| last(p) * piece))
            };
            // Bias, requantization, ReLU and the store, straight from the accumulators.
            let mut finish = |p: usize, block: usize, sums: __m512i| {
                if p < count {
                    let channel = block * LANES;
                    let keep = LANES.min(packed.channels - channel);
                    let at = (first + p) * packed.channels + channel;
                    store(
                        requantize_relu(packed, block, sums),
                        &mut output[at..at + keep],
                    );
                }
            };
            let mut block = 0;
            while block < packed.blocks {
                block += match packed.blocks - block {
                    1 => tile::<PIXELS, 1>(packed, reads, &starts, block, &mut finish),
                    _ => tile::<PIXELS, 2>(packed, reads, &starts, block, &mut finish),
                };
            }
        }
    }

    /// The logits layer: one "pixel" whose patch is the flattened input.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW, VL and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn logits(packed: &Packed, input: &[u8], logits: &mut [i32; CLASS_COUNT]) {
        // The input, zero-padded to a multiple of 4 taps: one patch.
        let mut patch = [MaybeUninit::uninit(); MAX_TAPS];
        let patch = zeroed(&mut patch, packed.taps);
        copy(input, &mut patch[..input.len()]);
        let mut acc = [0i32; LANES];
        // CLASS_COUNT (10) channels: one block.
        tile::<1, 1>(packed, patch, &[0], 0, &mut |_, _, sums| {
            // SAFETY: 16 i32.
            unsafe { _mm512_storeu_si512(acc.as_mut_ptr().cast(), sums) }
        });
        for (c, logit) in logits.iter_mut().enumerate() {
            let sum = acc[c].wrapping_add(packed.bias[c]);
            *logit = crate::engine::kernels::requantize(
                sum,
                packed.multiplier[c],
                (packed.total_shift[c] - 31) as i32,
            );
        }
    }

    /// `kernels::max_pool::<U8>`, 64 channels per vector.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW, VL and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn max_pool(input: [usize; 3], size: usize, src: &[u8], dst: &mut [u8]) {
        let [h, w, c] = input;
        let (out_h, out_w) = (h / size, w / size);
        assert!(src.len() >= h * w * c && dst.len() >= out_h * out_w * c);
        for o in 0..out_h * out_w {
            let (oy, ox) = (o / out_w, o % out_w);
            let mut channel = 0;
            while channel < c {
                let mask: __mmask64 = u64::MAX >> (64 - (c - channel).min(64));
                let mut best = _mm512_setzero_si512();
                for dy in 0..size {
                    for dx in 0..size {
                        let at = ((oy * size + dy) * w + ox * size + dx) * c + channel;
                        // SAFETY: the mask keeps the read within the pixel's channels.
                        let v =
                            unsafe { _mm512_maskz_loadu_epi8(mask, src.as_ptr().add(at).cast()) };
                        best = _mm512_max_epu8(best, v);
                    }
                }
                // SAFETY: the mask keeps the write within output pixel `o`'s channels.
                unsafe {
                    _mm512_mask_storeu_epi8(
                        dst.as_mut_ptr().add(o * c + channel).cast(),
                        mask,
                        best,
                    )
                };
                channel += 64;
            }
        }
    }

    /// `dst.copy_from_slice(src)` in 64-byte vector moves (the last one masked).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    fn copy(src: &[u8], dst: &mut [u8]) {
        assert_eq!(src.len(), dst.len());
        let mut at = 0;
        while at < src.len() {
            let n = (src.len() - at).min(64);
            let mask: __mmask64 = u64::MAX >> (64 - n);
            // SAFETY: the masked load and store touch bytes at..at + n of both slices.
            unsafe {
                let v = _mm512_maskz_loadu_epi8(mask, src.as_ptr().add(at).cast());
                _mm512_mask_storeu_epi8(dst.as_mut_ptr().add(at).cast(), mask, v);
            }
            at += n;
        }
    }

    /// The first `dst.len()` (at most 16) bytes of `bytes` into `dst`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    fn store(bytes: __m128i, dst: &mut [u8]) {
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
        let groups = packed.offsets.len();
        let last = packed.reach;
        assert!(P <= PIXELS && B <= MAX_BLOCKS && block + B <= packed.blocks);
        assert!(packed.weights.len() >= groups * width * 4);
        assert!(starts.iter().all(|&s| s + last <= reads.len()));
        let mut sums = [[_mm512_setzero_si512(); B]; P];
        let weights = packed.weights.as_ptr();
        // SAFETY: in bounds of `reads`, as asserted.
        let pixels: [*const u8; P] =
            core::array::from_fn(|p| unsafe { reads.as_ptr().add(starts[p]) });
        for (group, &offset) in packed.offsets.iter().enumerate() {
            // SAFETY: every weight read (64 bytes at `(group * width + (block + b) * 16) * 4`)
            // is within `groups * width * 4`, and every input read (4 bytes at
            // `starts[p] + offset`) ends by `starts[p] + last`: both asserted above.
            unsafe {
                let row = weights.add((group * width + block * LANES) * 4);
                let w: [__m512i; B] =
                    core::array::from_fn(|b| _mm512_loadu_si512(row.add(b * 64).cast()));
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

    /// The first `len` bytes of `buffer`, zeroed (the rest stays uninitialised).
    fn zeroed<const N: usize>(buffer: &mut [MaybeUninit<u8>; N], len: usize) -> &mut [u8] {
        let part = &mut buffer[..len];
        part.fill(MaybeUninit::new(0));
        // SAFETY: every byte of `part` was just initialised; `MaybeUninit<u8>` has the
        // layout of `u8`.
        unsafe { core::slice::from_raw_parts_mut(part.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Bias, requantization and ReLU of the 16 channels of `block`, as
    /// `kernels::finish` computes them: `clamp(round(acc * m / 2^(31 + s)), 0, 255)`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    fn requantize_relu(packed: &Packed, block: usize, sums: __m512i) -> __m128i {
        let channel = block * LANES;
        assert!(channel + LANES <= packed.bias.len());
        assert!(packed.lanes.len() >= (block + 1) * 32);
        // SAFETY: all reads are 16 i32 or 8 i64 within the slices, as asserted.
        unsafe {
            let acc = _mm512_add_epi32(
                sums,
                _mm512_loadu_si512(packed.bias[channel..].as_ptr().cast()),
            );
            let multiplier = _mm512_loadu_si512(packed.multiplier[channel..].as_ptr().cast());
            // 64-bit lanes: the even channels in the low halves, the odd in the high.
            let lanes = packed.lanes[block * 32..].as_ptr();
            let lane = |i: usize| _mm512_loadu_si512(lanes.add(i * 8).cast());
            let scaled = |products: __m512i, shift: __m512i, half: __m512i| {
                let rounded = _mm512_srav_epi64(_mm512_add_epi64(products, half), shift);
                _mm512_min_epi64(
                    _mm512_max_epi64(rounded, _mm512_setzero_si512()),
                    _mm512_set1_epi64(255),
                )
            };
            // vpmuldq multiplies the signed low 32 bits of each 64-bit lane.
            let even = scaled(_mm512_mul_epi32(acc, multiplier), lane(0), lane(2));
            let odd = scaled(
                _mm512_mul_epi32(
                    _mm512_srli_epi64(acc, 32),
                    _mm512_srli_epi64(multiplier, 32),
                ),
                lane(1),
                lane(3),
            );
            _mm512_cvtepi32_epi8(_mm512_or_si512(even, _mm512_slli_epi64(odd, 32)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Requantization lanes: even channels' shifts, odd channels', then the halves.
        assert_eq!(&packed.lanes[..2], &[34, 31]);
        assert_eq!(&packed.lanes[8..10], &[28, 31]);
        assert_eq!(&packed.lanes[16..18], &[1 << 33, 1 << 30]);
        assert_eq!(&packed.lanes[24..26], &[1 << 27, 1 << 30]);
    }
}
