//! The `no_std`, allocation-free int8 engine. [`Plan::new`] validates a blob completely
//! (envelope, checksum, every shape and tensor length, the arena size) once; then
//! [`Plan::classify`] runs it on 784 pixels using only a caller-supplied arena.

#[cfg(fmnist_dsp)]
mod dsp;
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

use core::fmt;

use crate::blob::{
    self, Envelope, Layer, Model, Output, QuantConv2d, QuantLinear, Requant, FORMAT_VERSION,
    FORMAT_VERSION_1, MAGIC, MAX_LAYERS,
};
use crate::classes::{CLASS_COUNT, IMAGE_PIXELS, IMAGE_SIDE};
use kernels::{ConvShape, I8, U8};

/// Why a blob was refused. Nothing in a refused blob was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobError {
    /// The bytes are not a postcard envelope (too short, or malformed).
    NotABlob,
    /// The magic bytes are not `FMQ8`.
    BadMagic([u8; 4]),
    /// A format version this engine does not read.
    UnsupportedVersion(u16),
    /// The payload's CRC-32 differs from the one stated.
    BadChecksum {
        /// CRC-32 in the envelope.
        stated: u32,
        /// CRC-32 of the payload.
        computed: u32,
    },
    /// The payload does not decode as a model (or has more than 32 layers).
    BadPayload,
    /// Layer `index` is inconsistent: shapes that do not chain, wrong tensor lengths,
    /// values out of range.
    BadLayer {
        /// 0-based layer index.
        index: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// The model does not end in a linear layer producing 10 logits.
    NoLogits,
    /// The arena size the blob states is not the one its layers need.
    ArenaMismatch {
        /// Stated in the blob.
        stated: u32,
        /// Computed from the layers.
        required: u32,
    },
    /// Bytes follow the envelope, or the model description inside it: a blob is exactly
    /// one envelope around exactly one model.
    TrailingBytes {
        /// `"the envelope"` or `"the model description"`.
        after: &'static str,
        /// How many bytes follow it.
        count: usize,
    },
    /// A scale is unusable: `logit_scale` must be finite, positive and small enough that
    /// every logit stays finite; `input_scale` finite and positive; `temperature` within
    /// [`MIN_TEMPERATURE`]..=[`MAX_TEMPERATURE`].
    BadScale {
        /// `"logit_scale"`, `"input_scale"` or `"temperature"`.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// The model needs more than the [`Limits`] allow (arena bytes, or multiply-accumulates
    /// per image).
    OverLimit {
        /// `"arena bytes"` or `"multiply-accumulates per image"`.
        what: &'static str,
        /// What the layers need.
        needed: u64,
        /// The limit.
        limit: u64,
    },
    /// The multiply-accumulates per image the blob states are not those of its layers.
    MacsMismatch {
        /// Stated in the blob.
        stated: u32,
        /// Computed from the layers.
        computed: u64,
    },
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::NotABlob => write!(f, "truncated or corrupt: the envelope does not decode"),
            BlobError::BadMagic(m) => write!(f, "bad magic bytes {m:02x?}, expected \"FMQ8\""),
            BlobError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "blob format version {v}, this runtime reads versions {FORMAT_VERSION_1} and {FORMAT_VERSION}"
                )
            }
            BlobError::BadChecksum { stated, computed } => write!(
                f,
                "checksum mismatch (stated {stated:#010x}, computed {computed:#010x}): the blob is corrupt"
            ),
            BlobError::BadPayload => write!(f, "the model description does not decode"),
            BlobError::BadLayer { index, problem } => write!(f, "layer {index}: {problem}"),
            BlobError::NoLogits => write!(f, "the model does not end in 10 logits"),
            BlobError::ArenaMismatch { stated, required } => {
                write!(f, "the blob states an arena of {stated} bytes but its layers need {required}")
            }
            BlobError::TrailingBytes { after, count } => {
                write!(f, "{count} unexpected byte(s) after {after}")
            }
            BlobError::BadScale { field, problem } => write!(f, "{field}: {problem}"),
            BlobError::OverLimit { what, needed, limit } => {
                write!(f, "the model needs {needed} {what}, more than the limit of {limit}")
            }
            BlobError::MacsMismatch { stated, computed } => write!(
                f,
                "the blob states {stated} multiply-accumulates per image but its layers do {computed}"
            ),
        }
    }
}

/// Why classification could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// The arena is smaller than [`Plan::arena_bytes`].
    ArenaTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// The input is not 784 pixels.
    BadInput {
        /// Bytes given.
        given: usize,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::ArenaTooSmall { needed, given } => {
                write!(f, "arena of {given} bytes, the model needs {needed}")
            }
            EngineError::BadInput { given } => {
                write!(f, "{given} input bytes, expected {IMAGE_PIXELS} (28x28)")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BlobError {}
#[cfg(feature = "std")]
impl std::error::Error for EngineError {}

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

fn layer_error(index: usize, problem: &'static str) -> BlobError {
    BlobError::BadLayer { index, problem }
}

fn mul(values: &[usize], index: usize) -> Result<usize, BlobError> {
    values
        .iter()
        .try_fold(1usize, |acc, &v| acc.checked_mul(v))
        .ok_or(layer_error(index, "dimensions overflow"))
}

/// The longest dot product whose i32 accumulator cannot overflow: 32768 x 255 x 128 < 2^30.
const MAX_DOT: usize = 32_768;

fn check_requant(requant: &Requant<'_>, channels: usize, index: usize) -> Result<(), BlobError> {
    if requant.bias.len() != channels * 4
        || requant.multiplier.len() != channels * 4
        || requant.shift.len() != channels
    {
        return Err(layer_error(
            index,
            "bias, multiplier or shift length differs from the channel count",
        ));
    }
    for c in 0..channels {
        if kernels::le_i32(requant.multiplier, c) < 0 {
            return Err(layer_error(index, "negative requantization multiplier"));
        }
        if !(-30..=31).contains(&(requant.shift[c] as i8)) {
            return Err(layer_error(index, "requantization shift outside -30..=31"));
        }
        if kernels::le_i32(requant.bias, c).unsigned_abs() >= 1 << 30 {
            return Err(layer_error(index, "bias outside +-2^30"));
        }
    }
    Ok(())
}

/// Refuses a logits layer whose requantized output could leave i32 for some input: the
/// engine would clamp it, and two clamped logits tie, so the ranking could be wrong (one
/// class's exact logit 2.7x10^16, another's 2.1x10^14, both 2^31 - 1). The bound is the
/// bias plus every weight's magnitude times the largest input (255 for unsigned
/// activations, 128 for signed), requantized; exported models stay far below it.
fn check_logit_range(linear: &QuantLinear<'_>, kind: Kind, index: usize) -> Result<(), BlobError> {
    let largest_input: u64 = match kind {
        Kind::U8 => 255,
        Kind::I8 => 128,
    };
    let inputs = linear.inputs as usize;
    for channel in 0..linear.outputs as usize {
        let weight_sum: u64 = linear.weights[channel * inputs..][..inputs]
            .iter()
            .map(|&w| u64::from((w as i8).unsigned_abs()))
            .sum();
        let bias = u64::from(kernels::le_i32(linear.requant.bias, channel).unsigned_abs());
        let multiplier =
            u64::from(kernels::le_i32(linear.requant.multiplier, channel).unsigned_abs());
        let total = (31 + i32::from(linear.requant.shift[channel] as i8)) as u32;
        // In u64 without overflow: the bias is under 2^30 (validated), the weights' sum
        // at most 32,768 x 128 = 2^22 times 255, so the accumulator's bound is under 2^31;
        // times a multiplier under 2^31 it is under 2^62, and the rounding at most 2^61.
        let largest = (bias + weight_sum * largest_input) * multiplier;
        let scaled = (largest + (1u64 << (total - 1))) >> total;
        if scaled > i32::MAX as u64 {
            return Err(layer_error(
                index,
                "logits can exceed 32 bits (the requantization's shift is too small for its \
                 weights and bias), and clamped logits would tie",
            ));
        }
    }
    Ok(())
}

/// Bounds on the work and memory a blob may ask for. [`Plan::new`] applies
/// [`Limits::DEFAULT`], and so do the C ABI and the `runtime` command;
/// [`Plan::with_limits`] takes others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest activation arena accepted, in bytes (the blob's `arena_bytes` field is a
    /// `u32`, so more than `u32::MAX` is refused whatever this says). Default 16 MiB.
    pub max_arena_bytes: usize,
    /// The most multiply-accumulates per image accepted. Default 2x10^8 (the shipped `edge`
    /// model does 6.4x10^6, `cnn` 2.2x10^6).
    pub max_macs: u64,
}

impl Limits {
    /// 16 MiB of arena, 2x10^8 multiply-accumulates per image.
    pub const DEFAULT: Limits = Limits {
        max_arena_bytes: 16 << 20,
        max_macs: 200_000_000,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// What a valid model needs, computed from its layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Needs {
    arena: usize,
    macs: u64,
}

/// The largest logit scale whose logits (at most 2^31 in magnitude) stay finite in `f32`.
const MAX_LOGIT_SCALE: f32 = f32::MAX / 2_147_483_648.0;

/// The smallest softmax temperature a blob may state (`trainer calibrate` fits from 0.05).
pub const MIN_TEMPERATURE: f32 = 0.01;
/// The largest softmax temperature a blob may state (`trainer calibrate` fits up to 20).
pub const MAX_TEMPERATURE: f32 = 100.0;

fn check_scales(model: &Model<'_>) -> Result<(), BlobError> {
    let bad = |field, problem| Err(BlobError::BadScale { field, problem });
    let positive = |v: f32| v.is_finite() && v > 0.0;
    if !positive(model.logit_scale) {
        return bad("logit_scale", "not a finite positive number");
    }
    if model.logit_scale > MAX_LOGIT_SCALE {
        return bad("logit_scale", "so large that logits would not be finite");
    }
    if !positive(model.input_scale) {
        return bad("input_scale", "not a finite positive number");
    }
    if !(MIN_TEMPERATURE..=MAX_TEMPERATURE).contains(&model.temperature) {
        return bad("temperature", "not a number from 0.01 to 100");
    }
    Ok(())
}

impl<'a> Plan<'a> {
    /// Parses and validates a blob within [`Limits::DEFAULT`]. Borrows `bytes`; allocates
    /// nothing.
    pub fn new(bytes: &'a [u8]) -> Result<Plan<'a>, BlobError> {
        Self::with_limits(bytes, Limits::DEFAULT)
    }

    /// [`Plan::new`] with other limits on the arena and the work per image.
    pub fn with_limits(bytes: &'a [u8], limits: Limits) -> Result<Plan<'a>, BlobError> {
        let (envelope, rest) =
            postcard::take_from_bytes::<Envelope<'a>>(bytes).map_err(|_| BlobError::NotABlob)?;
        if !rest.is_empty() {
            return Err(BlobError::TrailingBytes {
                after: "the envelope",
                count: rest.len(),
            });
        }
        if envelope.magic != MAGIC {
            return Err(BlobError::BadMagic(envelope.magic));
        }
        if envelope.version != FORMAT_VERSION && envelope.version != FORMAT_VERSION_1 {
            return Err(BlobError::UnsupportedVersion(envelope.version));
        }
        let computed = blob::crc32(envelope.payload);
        if computed != envelope.checksum {
            return Err(BlobError::BadChecksum {
                stated: envelope.checksum,
                computed,
            });
        }
        let (model, rest) = blob::decode_payload(envelope.version, envelope.payload)
            .map_err(|_| BlobError::BadPayload)?;
        if rest != 0 {
            return Err(BlobError::TrailingBytes {
                after: "the model description",
                count: rest,
            });
        }
        check_scales(&model)?;
        let (steps, needs) = Self::validate(&model)?;
        // The blob states the arena in a u32: a larger one cannot be stated.
        let max_arena = limits.max_arena_bytes.min(u32::MAX as usize);
        if needs.arena > max_arena {
            return Err(BlobError::OverLimit {
                what: "arena bytes",
                needed: needs.arena as u64,
                limit: max_arena as u64,
            });
        }
        if needs.macs > limits.max_macs {
            return Err(BlobError::OverLimit {
                what: "multiply-accumulates per image",
                needed: needs.macs,
                limit: limits.max_macs,
            });
        }
        if model.arena_bytes as usize != needs.arena {
            return Err(BlobError::ArenaMismatch {
                stated: model.arena_bytes,
                required: needs.arena as u32,
            });
        }
        if u64::from(model.macs) != needs.macs {
            return Err(BlobError::MacsMismatch {
                stated: model.macs,
                computed: needs.macs,
            });
        }
        #[cfg(fmnist_dsp)]
        let scratch_bytes = dsp::scratch_bytes(&model.layers);
        #[cfg(fmnist_simd128)]
        let scratch_bytes = simd128::scratch_bytes(&model.layers);
        #[cfg(not(any(fmnist_dsp, fmnist_simd128)))]
        let scratch_bytes = 0;
        Ok(Plan {
            model,
            steps,
            arena_bytes: needs.arena,
            scratch_bytes,
        })
    }

    /// Walks the layers from a 28x28x1 u8 input: shapes chain, tensor lengths match,
    /// values are in range. Returns the steps and what they need (arena bytes and
    /// multiply-accumulates per image); the limits are the caller's to apply.
    fn validate(model: &Model<'a>) -> Result<(heapless::Vec<Step, MAX_LAYERS>, Needs), BlobError> {
        let mut steps = heapless::Vec::new();
        let mut shape = [IMAGE_SIDE, IMAGE_SIDE, 1];
        let mut kind = Kind::U8;
        let mut buffer = Buffer::Input;
        let mut arena = 0usize;
        // u64 whatever the target: a sum of at most 32 products of u16 dimensions and
        // lengths of the blob's own tensors; saturating, as any excess is refused anyway.
        let mut macs = 0u64;
        let last = model
            .layers
            .len()
            .checked_sub(1)
            .ok_or(BlobError::NoLogits)?;
        for (index, layer) in model.layers.iter().enumerate() {
            let [h, w, c] = shape;
            let (output, to) = match layer {
                Layer::Conv(conv) => {
                    let (k, p) = (usize::from(conv.kernel), usize::from(conv.padding));
                    let (cin, cout) = (
                        usize::from(conv.in_channels),
                        usize::from(conv.out_channels),
                    );
                    if (usize::from(conv.in_height), usize::from(conv.in_width), cin) != (h, w, c) {
                        return Err(layer_error(
                            index,
                            "convolution input shape differs from the previous output",
                        ));
                    }
                    if k == 0 || cout == 0 || p >= k || h + 2 * p < k || w + 2 * p < k {
                        return Err(layer_error(
                            index,
                            "impossible kernel, padding or channel count",
                        ));
                    }
                    let filter = mul(&[k, k, cin], index)?;
                    if filter > MAX_DOT {
                        return Err(layer_error(
                            index,
                            "filter too long for 32-bit accumulation",
                        ));
                    }
                    if conv.weights.len() != mul(&[filter, cout], index)? {
                        return Err(layer_error(
                            index,
                            "weight length differs from out x k x k x in",
                        ));
                    }
                    check_requant(&conv.requant, cout, index)?;
                    let (out_h, out_w) = (h + 2 * p - k + 1, w + 2 * p - k + 1);
                    macs = macs.saturating_add(
                        (out_h as u64 * out_w as u64).saturating_mul(conv.weights.len() as u64),
                    );
                    if conv.requant.output == Output::Logits {
                        return Err(layer_error(
                            index,
                            "a convolution cannot produce the logits",
                        ));
                    }
                    ([out_h, out_w, cout], buffer.other())
                }
                Layer::Linear(linear) => {
                    let (inputs, outputs) = (linear.inputs as usize, linear.outputs as usize);
                    if h != 1 || w != 1 || inputs != c {
                        return Err(layer_error(
                            index,
                            "linear input differs from the previous (flattened) output",
                        ));
                    }
                    if outputs == 0 || inputs > MAX_DOT {
                        return Err(layer_error(index, "impossible linear layer size"));
                    }
                    if linear.weights.len() != mul(&[inputs, outputs], index)? {
                        return Err(layer_error(index, "weight length differs from out x in"));
                    }
                    check_requant(&linear.requant, outputs, index)?;
                    macs = macs.saturating_add(linear.weights.len() as u64);
                    let logits = linear.requant.output == Output::Logits;
                    if logits != (index == last) {
                        return Err(if logits {
                            layer_error(index, "logits before the last layer")
                        } else {
                            BlobError::NoLogits
                        });
                    }
                    if logits && outputs != CLASS_COUNT {
                        return Err(BlobError::NoLogits);
                    }
                    if logits {
                        check_logit_range(linear, kind, index)?;
                    }
                    (
                        [1, 1, outputs],
                        if logits { buffer } else { buffer.other() },
                    )
                }
                Layer::MaxPool { size } => {
                    let size = usize::from(*size);
                    if size == 0 || size > h || size > w {
                        return Err(layer_error(index, "pooling window larger than its input"));
                    }
                    ([h / size, w / size, c], buffer.other())
                }
                Layer::Flatten => ([1, 1, mul(&shape, index)?], buffer),
            };
            let (in_len, out_len) = (mul(&shape, index)?, mul(&output, index)?);
            if to != buffer {
                let in_arena = if buffer == Buffer::Input { 0 } else { in_len };
                arena = arena.max(
                    in_arena
                        .checked_add(out_len)
                        .ok_or(layer_error(index, "dimensions overflow"))?,
                );
            }
            if index == 0 && !matches!(layer, Layer::Conv(_) | Layer::Flatten) {
                return Err(layer_error(
                    index,
                    "the first layer must be a convolution or a flatten",
                ));
            }
            steps
                .push(Step {
                    input: shape,
                    output,
                    kind,
                    from: buffer,
                    to,
                })
                .map_err(|_| BlobError::BadPayload)?;
            kind = match layer {
                Layer::Conv(conv) if conv.requant.output == Output::Relu => Kind::U8,
                Layer::Linear(linear) if linear.requant.output == Output::Relu => Kind::U8,
                Layer::Conv(_) | Layer::Linear(_) => Kind::I8,
                Layer::MaxPool { .. } | Layer::Flatten => kind,
            };
            shape = output;
            buffer = to;
        }
        match model.layers.last() {
            Some(Layer::Linear(linear)) if linear.requant.output == Output::Logits => {
                Ok((steps, Needs { arena, macs }))
            }
            _ => Err(BlobError::NoLogits),
        }
    }

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
    pub fn classify(&self, pixels: &[u8], arena: &mut [u8]) -> Result<Logits, EngineError> {
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

/// The arena a model description needs, validating it as [`Plan::new`] does (without the
/// envelope and the stated arena size). The exporter uses it to state the arena.
pub fn arena_for(model: &Model<'_>) -> Result<usize, BlobError> {
    Plan::validate(model).map(|(_, needs)| needs.arena)
}

/// The multiply-accumulates per image of a model description, validating it as
/// [`arena_for`] does: the value [`Plan::new`] requires in the blob's `macs` field.
pub fn macs_for(model: &Model<'_>) -> Result<u64, BlobError> {
    Plan::validate(model).map(|(_, needs)| needs.macs)
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
