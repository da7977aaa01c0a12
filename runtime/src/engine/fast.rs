//! The desktop path of the int8 engine (`std`): the same plan, with its convolutions and
//! logits layer run by AVX-512 VNNI kernels when the CPU has them, else by AVX2 kernels,
//! else by the portable kernels (chosen at run time, so the default x86-64 build keeps
//! working everywhere).
//!
//! At load, [`FastPlan::new`] repacks each accelerated layer's weights once, on the heap:
//! 4 consecutive filter taps of 16 output channels per 64 bytes, the layout `vpdpbusd`
//! (u8 x i8 -> i32, 4 products per lane) wants, and that AVX2 widens to 16 bits for
//! `vpmaddwd`. Classification allocates nothing: besides the caller's arena it uses stack
//! buffers (about 50 KB; 115 KB for AVX2, which also widens the input to 16 bits) for a
//! zero-bordered copy of a padded input, or for an "expanded" copy when the channel count
//! is not a multiple of 4 (see [`Layout`]); the tiles read the activations through a
//! per-layer table of offsets. Requantization is vectorised in
//! 64-bit arithmetic, so every output byte and logit equals the portable kernels'
//! (`runtime/tests/fast.rs` compares every ISA on the shipped models and on random models
//! of awkward shapes).

use core::mem::MaybeUninit;

use super::{Accelerator, EngineError, Kind, Logits, Plan, Step};
use crate::blob::{Layer, Output, Requant};
use crate::classes::CLASS_COUNT;

/// Which kernels a [`FastPlan`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// The portable kernels (no CPU-specific code).
    Portable,
    /// AVX2 (`vpmaddwd` on widened bytes) for convolutions and the logits layer.
    Avx2,
    /// AVX-512 VNNI (`vpdpbusd`) for convolutions, max pooling and the logits layer.
    Avx512Vnni,
}

impl Isa {
    /// The best kernels this CPU runs.
    pub fn detect() -> Isa {
        [Isa::Avx512Vnni, Isa::Avx2]
            .into_iter()
            .find(|isa| isa.supported())
            .unwrap_or(Isa::Portable)
    }

    /// Whether this CPU runs these kernels.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Isa::Portable => true,
                Isa::Avx2 => has!("avx2"),
                Isa::Avx512Vnni => {
                    has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Isa::Portable
        }
    }

    /// A short name for reports ("portable", "avx2", "avx512-vnni").
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
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
    /// The blob's taps per kernel row (`kernel x in`), and the packed ones (to 4; the
    /// same for logits and direct layers, whose taps keep their places).
    span: usize,
    padded_span: usize,
    /// Per group of 4 packed taps, its offset from the pixel's first byte.
    offsets: Vec<u32>,
    direct: bool,
}

impl Layout {
    fn new(taps: usize, geometry: Geometry) -> Layout {
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
                span: taps,
                padded_span: taps,
                offsets: (0..taps / 4).map(|g| (4 * g) as u32).collect(),
                direct: false,
            };
        };
        let span = kernel * c;
        if c.is_multiple_of(4) {
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
            span,
            padded_span,
            offsets,
            direct: false,
        }
    }

    /// Where tap `t` of the blob's `[ky][kx][in]` order goes among the packed taps: each
    /// kernel row's piece starts on a multiple of 4.
    fn place(&self, t: usize) -> usize {
        (t / self.span) * self.padded_span + t % self.span
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
                let at = layout.place(t);
                packed[((at / 4) * width + c) * 4 + at % 4] = weights[c * taps + t] as i8;
            }
        }
        // Per padded channel; the padding channels get 0.
        let per_channel = |bytes: &[u8]| -> Vec<i32> {
            (0..width)
                .map(|c| {
                    if c < channels {
                        super::kernels::le_i32(bytes, c)
                    } else {
                        0
                    }
                })
                .collect()
        };
        Packed {
            taps: layout.taps,
            padded_span: layout.padded_span,
            channels,
            blocks,
            weights: packed,
            bias: per_channel(requant.bias),
            multiplier: per_channel(requant.multiplier),
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

    /// Bytes of the zero-bordered and of the expanded copy of the input that `prepare`
    /// builds for this layer (0 for a copy it does not build).
    fn copies(&self) -> (usize, usize) {
        let Geometry::Conv {
            input: [h, w, c],
            output: [_, out_w, _],
            padding,
            ..
        } = self.geometry
        else {
            return (0, 0);
        };
        let height = h + 2 * padding;
        let bordered = if padding > 0 {
            height * (w + 2 * padding) * c
        } else {
            0
        };
        let expanded = if self.direct {
            0
        } else {
            height * out_w * self.padded_span
        };
        (bordered, expanded)
    }

    /// Whether the vector kernels can run this layer: the logits' patch, or what a
    /// convolution's tiles read, fits the stack buffers (a direct layer reads its input,
    /// or its bordered copy, in place; the others read the expanded copy, built from the
    /// bordered one).
    fn fits(&self) -> bool {
        let (bordered, expanded) = self.copies();
        match self.geometry {
            Geometry::Logits => self.taps <= MAX_TAPS,
            Geometry::Conv {
                input: [h, w, c], ..
            } if self.direct => bordered.max(h * w * c) <= MAX_PADDED,
            Geometry::Conv { .. } => bordered <= MAX_PADDED && expanded <= MAX_EXPANDED,
        }
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
        let isa = if isa.supported() { isa } else { Isa::Portable };
        let packed = match isa {
            Isa::Portable => Vec::new(),
            Isa::Avx2 | Isa::Avx512Vnni => plan
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
    Some(Packed::new(weights, requant, taps, geometry)).filter(Packed::fits)
}

impl Accelerator for FastPlan<'_> {
    fn conv(&self, index: usize, input: &[u8], output: &mut [u8]) -> bool {
        match (self.isa, self.packed.get(index)) {
            // SAFETY (all arms): `packed` exists only for an ISA `with_isa` confirmed.
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Vnni, Some(Some(packed))) => unsafe { vnni::conv(packed, input, output) },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, Some(Some(packed))) => unsafe { avx2::conv(packed, input, output) },
            _ => return false,
        }
        true
    }

    fn logits(&self, index: usize, input: &[u8], logits: &mut [i32; CLASS_COUNT]) -> bool {
        match (self.isa, self.packed.get(index)) {
            // SAFETY (all arms): as in `conv`.
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Vnni, Some(Some(packed))) => unsafe { vnni::logits(packed, input, logits) },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, Some(Some(packed))) => unsafe { avx2::logits(packed, input, logits) },
            _ => return false,
        }
        true
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

/// What a convolution's tiles read: the input itself, its zero-bordered copy, or its
/// expanded copy (see [`Layout`]), and where each output pixel's taps start in it.
struct Source<'s> {
    reads: &'s [u8],
    direct: bool,
    /// Row width (pixels) and channels of a direct source; output width and piece size
    /// of an expanded one.
    width: usize,
    channels: usize,
    out_w: usize,
    piece: usize,
    /// Output pixels.
    pixels: usize,
}

impl Source<'_> {
    /// Where output pixel `pixel`'s taps start in `reads`.
    #[inline(always)]
    fn start(&self, pixel: usize) -> usize {
        if self.direct {
            ((pixel / self.out_w) * self.width + pixel % self.out_w) * self.channels
        } else {
            pixel * self.piece
        }
    }

    /// The output pixels, `P` at a time: `(first, count, starts)`, `starts[p]` being where
    /// pixel `first + p`'s taps start (the pixels past `count` repeat the last one).
    fn tiles<const P: usize>(&self) -> impl Iterator<Item = (usize, usize, [usize; P])> + '_ {
        (0..self.pixels).step_by(P).map(move |first| {
            let count = P.min(self.pixels - first);
            let starts = core::array::from_fn(|p| self.start(first + p.min(count - 1)));
            (first, count, starts)
        })
    }
}

/// The zero-bordered copy of a padded input (direct layers) or the expanded input (the
/// others), built in the caller's stack buffers with `copy` (`dst.copy_from_slice(src)`,
/// or a faster equivalent).
fn prepare<'s, const B: usize, const E: usize>(
    packed: &Packed,
    input: &'s [u8],
    bordered: &'s mut [MaybeUninit<u8>; B],
    expanded: &'s mut [MaybeUninit<u8>; E],
    copy: impl Fn(&[u8], &mut [u8]),
) -> Source<'s> {
    let Geometry::Conv {
        input: [in_h, in_w, in_c],
        output: [out_h, out_w, _],
        kernel,
        padding,
    } = packed.geometry
    else {
        unreachable!("only convolutions have a source");
    };
    let (bordered_len, expanded_len) = packed.copies();
    let (source, width): (&[u8], usize) = if padding == 0 {
        (input, in_w)
    } else {
        let width = in_w + 2 * padding;
        let bordered = zeroed(bordered, bordered_len);
        let row = in_w * in_c;
        for y in 0..in_h {
            let at = ((y + padding) * width + padding) * in_c;
            copy(&input[y * row..][..row], &mut bordered[at..at + row]);
        }
        (bordered, width)
    };
    let piece = packed.padded_span;
    let reads = if packed.direct {
        source
    } else {
        let expanded = zeroed(expanded, expanded_len);
        let span = kernel * in_c;
        for (i, row) in expanded.chunks_exact_mut(piece).enumerate() {
            let (y, x) = (i / out_w, i % out_w);
            let from = (y * width + x) * in_c;
            copy(&source[from..from + span], &mut row[..span]);
        }
        expanded
    };
    Source {
        reads,
        direct: packed.direct,
        width,
        channels: in_c,
        out_w,
        piece,
        pixels: out_h * out_w,
    }
}

/// Bias and requantization of the logits from their raw dot products `sums`.
fn finish_logits(packed: &Packed, sums: &[i32; LANES], logits: &mut [i32; CLASS_COUNT]) {
    for (c, logit) in logits.iter_mut().enumerate() {
        *logit = super::kernels::requantize(
            sums[c].wrapping_add(packed.bias[c]),
            packed.multiplier[c],
            (packed.total_shift[c] - 31) as i32,
        );
    }
}

/// The first `len` bytes of `buffer`, zeroed (the rest stays uninitialised).
fn zeroed<const N: usize>(buffer: &mut [MaybeUninit<u8>; N], len: usize) -> &mut [u8] {
    let part = &mut buffer[..len];
    part.fill(MaybeUninit::new(0));
    // SAFETY: every byte of `part` was just initialised; `MaybeUninit<u8>` has the
    // layout of `u8`.
    unsafe { core::slice::from_raw_parts_mut(part.as_mut_ptr().cast::<u8>(), len) }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use core::arch::x86_64::*;
    use core::mem::MaybeUninit;

    use super::{prepare, zeroed, Packed, LANES, MAX_EXPANDED, MAX_PADDED, MAX_TAPS, PIXELS};
    use crate::classes::CLASS_COUNT;

    /// Most blocks of 16 channels one tile computes: 8 pixels x 2 blocks is 16
    /// accumulators (with 3, the compiler spilled registers).
    const MAX_BLOCKS: usize = 2;

    /// A convolution with ReLU output, 8 pixels x 32 channels at a time, over the source
    /// `prepare` builds (the input itself, its zero-bordered copy, or its expanded copy).
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW, VL and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn conv(packed: &Packed, input: &[u8], output: &mut [u8]) {
        let (mut bordered, mut expanded) = (
            [MaybeUninit::uninit(); MAX_PADDED],
            [MaybeUninit::uninit(); MAX_EXPANDED],
        );
        // The closure runs inside this function, with its target features.
        let source = prepare(packed, input, &mut bordered, &mut expanded, |s, d| {
            copy(s, d)
        });
        let reads = source.reads;
        for (first, count, starts) in source.tiles::<PIXELS>() {
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
        super::finish_logits(packed, &acc, logits);
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

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::*;
    use core::mem::MaybeUninit;

    use super::{prepare, Packed, LANES, MAX_EXPANDED, MAX_PADDED, MAX_TAPS};
    use crate::classes::CLASS_COUNT;

    /// The largest source the tiles read (see `pack`).
    const MAX_WIDE: usize = if MAX_PADDED > MAX_EXPANDED {
        MAX_PADDED
    } else {
        MAX_EXPANDED
    };

    /// Output pixels per register tile: 6 pixels x 8 channels is 12 accumulators; with 2
    /// weight registers and 1 input register, 15 of AVX2's 16.
    const PIXELS: usize = 6;

    /// A convolution with ReLU output, 6 pixels x 8 channels at a time: each group of 4
    /// taps is widened to 16 bits and multiplied with `vpmaddwd` (exact: a u8 times an i8
    /// fits 16 bits, two of them 32), the pair sums added up at the end.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn conv(packed: &Packed, input: &[u8], output: &mut [u8]) {
        let (mut bordered, mut expanded) = (
            [MaybeUninit::uninit(); MAX_PADDED],
            [MaybeUninit::uninit(); MAX_EXPANDED],
        );
        let source = prepare(packed, input, &mut bordered, &mut expanded, |s, d| {
            d.copy_from_slice(s)
        });
        // Every byte widened to 16 bits once, so that the tile broadcasts 4 taps with one
        // load (`pack` keeps every source within the buffer).
        let mut wide = [MaybeUninit::uninit(); MAX_WIDE];
        let wide = widen(source.reads, source.reads.len(), &mut wide);
        for (first, count, starts) in source.tiles::<PIXELS>() {
            for channel in (0..packed.channels).step_by(8) {
                let sums = tile(packed, wide, &starts, channel);
                let keep = 8.min(packed.channels - channel);
                for (p, &sum) in sums.iter().enumerate().take(count) {
                    let at = (first + p) * packed.channels + channel;
                    output[at..at + keep]
                        .copy_from_slice(&requantize_relu(packed, channel, sum)[..keep]);
                }
            }
        }
    }

    /// The logits layer: one "pixel" whose patch is the flattened input.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn logits(packed: &Packed, input: &[u8], logits: &mut [i32; CLASS_COUNT]) {
        // The input, zero-padded to a multiple of 4 taps: one patch.
        let mut wide = [MaybeUninit::uninit(); MAX_TAPS];
        let wide = widen(input, packed.taps, &mut wide);
        let mut acc = [0i32; 16];
        for channel in [0, 8] {
            let [sums] = tile::<1>(packed, wide, &[0], channel);
            // SAFETY: 8 i32 into 8 i32.
            unsafe { _mm256_storeu_si256(acc[channel..].as_mut_ptr().cast(), sums) };
        }
        super::finish_logits(packed, &acc, logits);
    }

    /// `bytes` as 16-bit values, zero-padded to `len`, in the first `len` slots of
    /// `buffer`.
    #[target_feature(enable = "avx2")]
    fn widen<'b, const N: usize>(
        bytes: &[u8],
        len: usize,
        buffer: &'b mut [MaybeUninit<u16>; N],
    ) -> &'b [u16] {
        let part = &mut buffer[..len];
        let (head, tail) = part.split_at_mut(bytes.len());
        for (slot, &byte) in head.iter_mut().zip(bytes) {
            *slot = MaybeUninit::new(u16::from(byte));
        }
        tail.fill(MaybeUninit::new(0));
        // SAFETY: every slot of `part` was just initialised; `MaybeUninit<u16>` has the
        // layout of `u16`.
        unsafe { core::slice::from_raw_parts(part.as_ptr().cast::<u16>(), len) }
    }

    /// Channels `channel..channel + 8` for `P` pixels whose taps (widened to 16 bits)
    /// start at `reads[starts[p]..]` (group `g` at `packed.offsets[g]` from there): the
    /// raw dot products (without bias), 8 channels in order per pixel.
    #[target_feature(enable = "avx2")]
    fn tile<const P: usize>(
        packed: &Packed,
        reads: &[u16],
        starts: &[usize; P],
        channel: usize,
    ) -> [__m256i; P] {
        let width = packed.blocks * LANES;
        assert!(channel.is_multiple_of(8) && channel + 8 <= width);
        assert!(packed.weights.len() >= packed.offsets.len() * width * 4);
        assert!(starts.iter().all(|&s| s + packed.reach <= reads.len()));
        let mut sums = [[_mm256_setzero_si256(); 2]; P];
        let weights = packed.weights.as_ptr();
        // SAFETY: in bounds of `reads`, as asserted.
        let pixels: [*const u16; P] =
            core::array::from_fn(|p| unsafe { reads.as_ptr().add(starts[p]) });
        for (group, &offset) in packed.offsets.iter().enumerate() {
            // SAFETY: the 32 weight bytes at `(group * width + channel) * 4` are within
            // `groups * width * 4`, and every input read (4 values at `starts[p] + offset`)
            // ends by `starts[p] + reach`: both asserted above.
            unsafe {
                // 4 taps of channels channel..+4, then of channel+4..+8, as 16-bit values.
                let row = weights.add((group * width + channel) * 4);
                let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(row.cast()));
                let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(row.add(16).cast()));
                for (sum, pixel) in sums.iter_mut().zip(pixels) {
                    // The 4 taps' 16-bit values, once per 64-bit lane.
                    let x = pixel.add(offset as usize).cast::<i64>().read_unaligned();
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
    /// shift: a negative rounded value is ReLU's 0 anyway, so it is zeroed first).
    #[target_feature(enable = "avx2")]
    fn requantize_relu(packed: &Packed, channel: usize, sums: __m256i) -> [u8; 8] {
        assert!(channel.is_multiple_of(8) && channel + 8 <= packed.bias.len());
        let (block, half) = (channel / LANES, (channel % LANES) / 8);
        assert!(packed.lanes.len() >= (block + 1) * 32);
        let lanes = &packed.lanes[block * 32 + 4 * half..];
        // SAFETY: 8 i32 or 4 i64 within the slices, as asserted.
        let load = |values: &[i64], at: usize| unsafe {
            _mm256_loadu_si256(values[at..at + 4].as_ptr().cast())
        };
        // SAFETY: as above.
        let (bias, multiplier) = unsafe {
            (
                _mm256_loadu_si256(packed.bias[channel..channel + 8].as_ptr().cast()),
                _mm256_loadu_si256(packed.multiplier[channel..channel + 8].as_ptr().cast()),
            )
        };
        let acc = _mm256_add_epi32(sums, bias);
        let relu = |products: __m256i, shift: __m256i, half: __m256i| {
            let rounded = _mm256_add_epi64(products, half);
            let negative = _mm256_cmpgt_epi64(_mm256_setzero_si256(), rounded);
            let value = _mm256_srlv_epi64(_mm256_andnot_si256(negative, rounded), shift);
            let top = _mm256_set1_epi64x(255);
            _mm256_blendv_epi8(value, top, _mm256_cmpgt_epi64(value, top))
        };
        // vpmuldq multiplies the signed low 32 bits of each 64-bit lane.
        let even = relu(
            _mm256_mul_epi32(acc, multiplier),
            load(lanes, 0),
            load(lanes, 16),
        );
        let odd = relu(
            _mm256_mul_epi32(
                _mm256_srli_epi64(acc, 32),
                _mm256_srli_epi64(multiplier, 32),
            ),
            load(lanes, 8),
            load(lanes, 24),
        );
        let mut values = [0i32; 8];
        // SAFETY: 8 i32 into 8 i32.
        unsafe {
            _mm256_storeu_si256(
                values.as_mut_ptr().cast(),
                _mm256_or_si256(even, _mm256_slli_epi64(odd, 32)),
            )
        };
        values.map(|v| v as u8)
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
