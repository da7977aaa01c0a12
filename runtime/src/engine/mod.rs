//! The `no_std`, allocation-free int8 engine. [`Plan::new`] validates a blob completely
//! (envelope, checksum, every shape and tensor length, the arena size) once; then
//! [`Plan::classify`] runs it on 784 pixels using only a caller-supplied arena.

#[cfg(fmnist_dsp)]
mod dsp;
mod error;
// Its tiers are x86's; elsewhere (WebAssembly, ARM) `FastPlan` runs the portable kernels
// and most of the module is unused.
#[cfg(feature = "std")]
#[cfg_attr(
    not(target_arch = "x86_64"),
    allow(dead_code, unused_variables, unreachable_code)
)]
pub mod fast;
pub(crate) mod kernels;
#[cfg(fmnist_simd128)]
mod simd128;
mod validate;
#[cfg(any(fmnist_dsp, fmnist_simd128))]
mod window;

pub use error::{BlobError, EngineError};
pub use validate::{arena_for, macs_for, Limits, MAX_TEMPERATURE, MIN_TEMPERATURE};

/// The kernels [`Plan::classify`] runs: `"dsp"` on ARMv7E-M targets (Cortex-M4, M7; the
/// DSP extension's `SMLAD` on pairs of 16-bit values), `"simd128"` on WebAssembly built
/// with SIMD (`i32x4.dot_i16x8_s`), `"portable"` elsewhere. All give the same logits, bit
/// for bit.
pub const KERNELS: &str = if cfg!(fmnist_dsp) {
    "dsp"
} else if cfg!(fmnist_simd128) {
    "simd128"
} else {
    "portable"
};

use crate::blob::{
    self, Envelope, Layer, Model, Output, QuantConv2d, QuantLinear, Requant, FORMAT_VERSION,
    FORMAT_VERSION_1, MAGIC, MAX_LAYERS,
};
use crate::classes::{Image, CLASS_COUNT, IMAGE_PIXELS, IMAGE_SIDE};
use kernels::{ConvShape, I8, U8};

/// Element type of an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    U8,
    I8,
}

/// Where an activation lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buffer {
    /// The caller's pixels.
    Input,
    /// The start of the arena.
    Front,
    /// The end of the arena.
    Back,
}

impl Buffer {
    fn other(self) -> Buffer {
        match self {
            Buffer::Front => Buffer::Back,
            Buffer::Input | Buffer::Back => Buffer::Front,
        }
    }
}

/// One validated step: the layer's shapes and buffers.
#[derive(Debug, Clone, Copy)]
struct Step {
    input: [usize; 3],
    output: [usize; 3],
    kind: Kind,
    from: Buffer,
    to: Buffer,
}

/// A validated model, ready to classify. Borrows the blob; holds no heap memory.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    model: Model<'a>,
    steps: heapless::Vec<Step, MAX_LAYERS>,
    /// The activations' bytes, as the blob states them.
    arena_bytes: usize,
    /// The kernels' scratch after the activations (the DSP kernels' columns; 0 for the
    /// portable kernels).
    scratch_bytes: usize,
}

/// The logits of one image, and what they mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Logits {
    /// Integer logits in class order.
    pub values: [i32; CLASS_COUNT],
    /// Real value of one step of `values`.
    pub scale: f32,
    /// The model's softmax temperature ([`Model::temperature`]): the probabilities are
    /// `softmax(values * scale / temperature)`.
    pub temperature: f32,
}

impl Default for Logits {
    /// All-zero logits (scale 0, temperature 1): an output slot for a batch
    /// (`FastPlan::classify_batch`) to fill.
    fn default() -> Logits {
        Logits {
            values: [0; CLASS_COUNT],
            scale: 0.0,
            temperature: 1.0,
        }
    }
}

impl Logits {
    /// The predicted class (the first of equal maxima).
    pub fn class(&self) -> usize {
        crate::metrics::argmax(&self.values)
    }

    /// The `K` best classes with their logits, best first (equal logits keep class
    /// order).
    pub fn top<const K: usize>(&self) -> heapless::Vec<(usize, i32), K> {
        crate::metrics::ranking(&self.values)
            .iter()
            .take(K)
            .map(|&c| (c, self.values[c]))
            .collect()
    }

    /// The `K` most probable classes with their calibrated probabilities
    /// ([`Logits::probabilities`]), most probable first (the order of [`Logits::top`]).
    pub fn top_probabilities<const K: usize>(&self) -> heapless::Vec<(usize, f32), K> {
        let probabilities = self.probabilities();
        crate::metrics::ranking(&self.values)
            .iter()
            .take(K)
            .map(|&c| (c, probabilities[c]))
            .collect()
    }

    /// The logits as real values (`values * scale`).
    pub fn real(&self) -> [f32; CLASS_COUNT] {
        self.values.map(|v| v as f32 * self.scale)
    }

    /// Softmax probabilities in class order, calibrated: `softmax(real() / temperature)`.
    /// Each logit's distance to the largest is taken exactly (in i64) before it becomes an
    /// `f32`, so the largest logit always has the largest probability, however large the
    /// logits (two near 2^31 round to the same `f32`; their difference does not).
    pub fn probabilities(&self) -> [f32; CLASS_COUNT] {
        let max = self.values[self.class()];
        let scale = self.scale / self.temperature;
        // The distance fits a u32 (at most 2^32 - 1), which a Cortex-M4F converts in
        // hardware (an i64 needs a software conversion); the same f32 either way.
        crate::metrics::softmax(
            &self
                .values
                .map(|v| -((i64::from(max) - i64::from(v)) as u32 as f32) * scale),
        )
    }
}

impl<'a> Plan<'a> {
    /// The model's description (kind, class names, scales, accuracies, layers).
    pub fn model(&self) -> &Model<'a> {
        &self.model
    }

    /// Bytes of arena [`Plan::classify`] needs: the activations' (the blob's
    /// `arena_bytes`), and with the DSP kernels ([`KERNELS`] `"dsp"`) two columns of
    /// 16-bit inputs for the longest filter (2,307 bytes more for the shipped `edge`).
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes + self.scratch_bytes
    }

    /// Classifies one image: 784 u8 pixels (row-major, 0 = black background, as in the
    /// dataset), using `arena` (at least [`Plan::arena_bytes`] long) as working memory.
    pub fn classify(&self, pixels: &Image, arena: &mut [u8]) -> Result<Logits, EngineError> {
        #[cfg(fmnist_dsp)]
        return self.run(
            pixels,
            arena,
            &dsp::Dsp {
                scratch_bytes: self.scratch_bytes,
            },
        );
        #[cfg(fmnist_simd128)]
        return self.run(
            pixels,
            arena,
            &simd128::Simd128 {
                scratch_bytes: self.scratch_bytes,
            },
        );
        #[cfg(not(any(fmnist_dsp, fmnist_simd128)))]
        self.run(pixels, arena, &Portable)
    }

    /// [`Plan::classify`], offering each convolution and the logits layer to `faster`
    /// first; the portable kernels run whatever it declines.
    fn run<A: Accelerator>(
        &self,
        pixels: &[u8],
        arena: &mut [u8],
        faster: &A,
    ) -> Result<Logits, EngineError> {
        // A batch of one: `run_batch` refuses anything but 784 pixels (`BadInput`).
        let mut logits = [Logits::default()];
        self.run_batch(pixels, arena, &mut logits, faster, false)?;
        Ok(logits[0])
    }

    /// Bytes of arena [`Plan::run_batch`] needs for `images` images and `scratch` bytes
    /// of accelerator scratch (`usize::MAX` if that overflows): a plan arena per image
    /// `by_layer`, else one (none for no image).
    fn batch_arena_bytes(&self, images: usize, scratch: usize, by_layer: bool) -> usize {
        let arenas = if by_layer { images } else { images.min(1) };
        self.arena_bytes
            .checked_mul(arenas)
            .and_then(|arenas| arenas.checked_add(scratch))
            .unwrap_or(usize::MAX)
    }

    /// [`Plan::run`] for `logits.len()` images (784 pixels each, back to back in
    /// `pixels`). `arena` holds one plan arena per image `by_layer` (else one), side by
    /// side, then `faster`'s scratch, which the images share. With `by_layer`, every image goes through a
    /// layer before any goes through the next (the accelerator's per-layer set-up is
    /// done once for all of them); without, each image goes through the whole model in
    /// the first plan arena, as one by one (its activations stay in L1).
    fn run_batch<A: Accelerator>(
        &self,
        pixels: &[u8],
        arena: &mut [u8],
        logits: &mut [Logits],
        faster: &A,
        by_layer: bool,
    ) -> Result<(), EngineError> {
        let images = logits.len();
        if images.checked_mul(IMAGE_PIXELS) != Some(pixels.len()) {
            return Err(EngineError::BadInput {
                given: pixels.len(),
            });
        }
        let size = self.arena_bytes;
        let needed = self.batch_arena_bytes(images, faster.scratch_bytes(), by_layer);
        if arena.len() < needed {
            return Err(EngineError::ArenaTooSmall {
                needed,
                given: arena.len(),
            });
        }
        let (arenas, scratch) = arena[..needed].split_at_mut(needed - faster.scratch_bytes());
        let layers = || self.steps.iter().zip(self.model.layers.iter()).enumerate();
        if by_layer {
            for (index, (step, layer)) in layers() {
                faster.begin_layer(index);
                for (image, logits) in logits.iter_mut().enumerate() {
                    let pixels = &pixels[image * IMAGE_PIXELS..][..IMAGE_PIXELS];
                    let arena = &mut arenas[image * size..][..size];
                    let values = &mut logits.values;
                    self.layer(index, step, layer, pixels, arena, scratch, values, faster);
                }
                faster.end_layer(index);
            }
        } else {
            for (pixels, logits) in pixels.chunks_exact(IMAGE_PIXELS).zip(logits.iter_mut()) {
                // One plan arena, which every image reuses (there is one: an image).
                let arena = &mut arenas[..size];
                for (index, (step, layer)) in layers() {
                    faster.begin_layer(index);
                    let values = &mut logits.values;
                    self.layer(index, step, layer, pixels, arena, scratch, values, faster);
                    faster.end_layer(index);
                }
            }
        }
        for logits in logits.iter_mut() {
            logits.scale = self.model.logit_scale;
            logits.temperature = self.model.temperature;
        }
        Ok(())
    }

    /// Layer `index` of one image, whose pixels are `pixels` and activations in `arena`;
    /// the logits layer writes `logits`.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn layer<A: Accelerator>(
        &self,
        index: usize,
        step: &Step,
        layer: &Layer<'_>,
        pixels: &[u8],
        arena: &mut [u8],
        scratch: &mut [u8],
        logits: &mut [i32; CLASS_COUNT],
        faster: &A,
    ) {
        let (in_len, out_len) = (
            step.input.iter().product::<usize>(),
            step.output.iter().product::<usize>(),
        );
        if let Layer::Linear(linear) = layer {
            if linear.requant.output == Output::Logits {
                let input = region(pixels, arena, step.from, in_len);
                if !faster.logits(index, step, linear, input, logits, scratch) {
                    run_linear(step.kind, linear, input, |c, v| logits[c] = v);
                }
                return;
            }
        }
        if step.from == step.to {
            return; // Flatten: the same bytes, read as a vector.
        }
        let (input, output) = split(pixels, arena, step.from, in_len, out_len);
        match (layer, step.kind) {
            (Layer::Conv(conv), _) if faster.conv(index, step, conv, input, output, scratch) => {}
            (Layer::MaxPool { .. }, _) if index > 0 && faster.pooled(index - 1) => {
                output.copy_from_slice(&input[..out_len]);
            }
            (Layer::MaxPool { size }, Kind::U8)
                if faster.pool(index, step, *size, input, output) => {}
            (Layer::Conv(conv), kind) => {
                let shape = ConvShape {
                    input: step.input,
                    output: step.output,
                    kernel: usize::from(conv.kernel),
                    padding: usize::from(conv.padding),
                };
                match kind {
                    Kind::U8 => {
                        kernels::conv::<U8>(&shape, conv.weights, &conv.requant, input, output)
                    }
                    Kind::I8 => {
                        kernels::conv::<I8>(&shape, conv.weights, &conv.requant, input, output)
                    }
                }
            }
            (Layer::Linear(linear), kind) => {
                run_linear(kind, linear, input, |c, v| output[c] = v as u8)
            }
            (Layer::MaxPool { size }, Kind::U8) => {
                kernels::max_pool::<U8>(step.input, usize::from(*size), input, output)
            }
            (Layer::MaxPool { size }, Kind::I8) => {
                kernels::max_pool::<I8>(step.input, usize::from(*size), input, output)
            }
            (Layer::Flatten, _) => {}
        }
    }
}

/// Faster kernels for some layers ([`fast`]); each method returns `false` to decline.
trait Accelerator {
    /// Scratch bytes the kernels need, placed in the caller's arena after the plan's
    /// activations.
    fn scratch_bytes(&self) -> usize;
    /// Runs convolution layer `index` (`conv`, shapes in `step`) from `input` into
    /// `output`.
    fn conv(
        &self,
        index: usize,
        step: &Step,
        conv: &QuantConv2d<'_>,
        input: &[u8],
        output: &mut [u8],
        scratch: &mut [u8],
    ) -> bool;
    /// Runs the final linear layer `index` (`linear`) into `logits`.
    fn logits(
        &self,
        index: usize,
        step: &Step,
        linear: &QuantLinear<'_>,
        input: &[u8],
        logits: &mut [i32; CLASS_COUNT],
        scratch: &mut [u8],
    ) -> bool;
    /// Runs max pooling layer `index` (`size` x `size`) over u8 activations.
    fn pool(&self, index: usize, step: &Step, size: u8, input: &[u8], output: &mut [u8]) -> bool;
    /// Whether convolution `index` also runs the max pool after it: it then writes the
    /// pooled activations at the start of its output, which the pool layer only moves.
    fn pooled(&self, _index: usize) -> bool {
        false
    }
    /// Called before layer `index` runs on the images of a batch (one or more), with
    /// [`Accelerator::end_layer`] after them: for state a layer's kernels set up once
    /// for all the images (AMX's tile configuration).
    fn begin_layer(&self, _index: usize) {}
    /// See [`Accelerator::begin_layer`].
    fn end_layer(&self, _index: usize) {}
}

/// The portable kernels only.
#[cfg_attr(any(fmnist_dsp, fmnist_simd128), allow(dead_code))]
struct Portable;

impl Accelerator for Portable {
    fn scratch_bytes(&self) -> usize {
        0
    }
    fn conv(
        &self,
        _: usize,
        _: &Step,
        _: &QuantConv2d<'_>,
        _: &[u8],
        _: &mut [u8],
        _: &mut [u8],
    ) -> bool {
        false
    }
    fn logits(
        &self,
        _: usize,
        _: &Step,
        _: &QuantLinear<'_>,
        _: &[u8],
        _: &mut [i32; CLASS_COUNT],
        _: &mut [u8],
    ) -> bool {
        false
    }
    fn pool(&self, _: usize, _: &Step, _: u8, _: &[u8], _: &mut [u8]) -> bool {
        false
    }
}

/// A linear layer on activations of element type `kind`; `emit(channel, value)` stores.
fn run_linear(kind: Kind, linear: &QuantLinear<'_>, input: &[u8], emit: impl FnMut(usize, i32)) {
    let (inputs, outputs) = (linear.inputs as usize, linear.outputs as usize);
    match kind {
        Kind::U8 => kernels::linear::<U8>(
            inputs,
            linear.weights,
            &linear.requant,
            input,
            outputs,
            emit,
        ),
        Kind::I8 => kernels::linear::<I8>(
            inputs,
            linear.weights,
            &linear.requant,
            input,
            outputs,
            emit,
        ),
    }
}

/// The bytes of an activation that is only read.
fn region<'b>(pixels: &'b [u8], arena: &'b [u8], buffer: Buffer, len: usize) -> &'b [u8] {
    match buffer {
        Buffer::Input => &pixels[..len],
        Buffer::Front => &arena[..len],
        Buffer::Back => &arena[arena.len() - len..],
    }
}

/// The input activation and the output activation of a step; validation guarantees they
/// fit in the arena without overlapping.
fn split<'b>(
    pixels: &'b [u8],
    arena: &'b mut [u8],
    from: Buffer,
    in_len: usize,
    out_len: usize,
) -> (&'b [u8], &'b mut [u8]) {
    let size = arena.len();
    match from {
        Buffer::Input => (&pixels[..in_len], &mut arena[..out_len]),
        Buffer::Front => {
            let (front, back) = arena.split_at_mut(size - out_len);
            (&front[..in_len], back)
        }
        Buffer::Back => {
            let (front, back) = arena.split_at_mut(out_len);
            (&back[back.len() - in_len..], front)
        }
    }
}
