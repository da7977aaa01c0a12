//! The `no_std`, allocation-free int8 engine. [`Plan::new`] validates a blob completely
//! (envelope, checksum, every shape and tensor length, the arena size) once; then
//! [`Plan::classify`] runs it on 784 pixels using only a caller-supplied arena.

#[cfg(feature = "std")]
pub mod fast;
pub(crate) mod kernels;

use core::fmt;

use crate::blob::{
    self, Envelope, Layer, Model, Output, QuantLinear, Requant, FORMAT_VERSION, MAGIC, MAX_LAYERS,
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
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::NotABlob => write!(f, "not an int8 model blob (no readable envelope)"),
            BlobError::BadMagic(m) => write!(f, "bad magic bytes {m:02x?}, expected \"FMQ8\""),
            BlobError::UnsupportedVersion(v) => {
                write!(f, "blob format version {v}, this runtime reads version {FORMAT_VERSION}")
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
    arena_bytes: usize,
}

/// The logits of one image, and what they mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Logits {
    /// Integer logits in class order.
    pub values: [i32; CLASS_COUNT],
    /// Real value of one step of `values`.
    pub scale: f32,
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

    /// Softmax probabilities in class order.
    pub fn probabilities(&self) -> [f32; CLASS_COUNT] {
        crate::metrics::softmax(&self.real())
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

impl<'a> Plan<'a> {
    /// Parses and validates a blob. Borrows `bytes`; allocates nothing.
    pub fn new(bytes: &'a [u8]) -> Result<Plan<'a>, BlobError> {
        let (envelope, _) =
            postcard::take_from_bytes::<Envelope<'a>>(bytes).map_err(|_| BlobError::NotABlob)?;
        if envelope.magic != MAGIC {
            return Err(BlobError::BadMagic(envelope.magic));
        }
        if envelope.version != FORMAT_VERSION {
            return Err(BlobError::UnsupportedVersion(envelope.version));
        }
        let computed = blob::crc32(envelope.payload);
        if computed != envelope.checksum {
            return Err(BlobError::BadChecksum {
                stated: envelope.checksum,
                computed,
            });
        }
        let model: Model<'a> =
            postcard::from_bytes(envelope.payload).map_err(|_| BlobError::BadPayload)?;
        let (steps, required) = Self::validate(&model)?;
        if model.arena_bytes as usize != required {
            return Err(BlobError::ArenaMismatch {
                stated: model.arena_bytes,
                required: required as u32,
            });
        }
        Ok(Plan {
            model,
            steps,
            arena_bytes: required,
        })
    }

    /// Walks the layers from a 28x28x1 u8 input: shapes chain, tensor lengths match,
    /// values are in range. Returns the steps and the arena size they need.
    fn validate(model: &Model<'a>) -> Result<(heapless::Vec<Step, MAX_LAYERS>, usize), BlobError> {
        let mut steps = heapless::Vec::new();
        let mut shape = [IMAGE_SIDE, IMAGE_SIDE, 1];
        let mut kind = Kind::U8;
        let mut buffer = Buffer::Input;
        let mut arena = 0usize;
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
                    if conv.requant.output == Output::Logits {
                        return Err(layer_error(
                            index,
                            "a convolution cannot produce the logits",
                        ));
                    }
                    ([h + 2 * p - k + 1, w + 2 * p - k + 1, cout], buffer.other())
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
                Ok((steps, arena))
            }
            _ => Err(BlobError::NoLogits),
        }
    }

    /// The model's description (kind, class names, scales, accuracies, layers).
    pub fn model(&self) -> &Model<'a> {
        &self.model
    }

    /// Bytes of arena [`Plan::classify`] needs.
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }

    /// Classifies one image: 784 u8 pixels (row-major, 0 = black background, as in the
    /// dataset), using `arena` (at least [`Plan::arena_bytes`] long) as working memory.
    pub fn classify(&self, pixels: &[u8], arena: &mut [u8]) -> Result<Logits, EngineError> {
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
        if pixels.len() != IMAGE_PIXELS {
            return Err(EngineError::BadInput {
                given: pixels.len(),
            });
        }
        let size = self.arena_bytes;
        let needed = size + faster.scratch_bytes();
        if arena.len() < needed {
            return Err(EngineError::ArenaTooSmall {
                needed,
                given: arena.len(),
            });
        }
        let (arena, scratch) = arena[..needed].split_at_mut(size);
        let mut logits = [0i32; CLASS_COUNT];
        for (index, (step, layer)) in self.steps.iter().zip(self.model.layers.iter()).enumerate() {
            let (in_len, out_len) = (
                step.input.iter().product::<usize>(),
                step.output.iter().product::<usize>(),
            );
            if let Layer::Linear(linear) = layer {
                if linear.requant.output == Output::Logits {
                    let input = region(pixels, arena, step.from, in_len);
                    if !faster.logits(index, input, &mut logits, scratch) {
                        run_linear(step.kind, linear, input, |c, v| logits[c] = v);
                    }
                    continue;
                }
            }
            if step.from == step.to {
                continue; // Flatten: the same bytes, read as a vector.
            }
            let (input, output) = split(pixels, arena, step.from, in_len, out_len);
            match (layer, step.kind) {
                (Layer::Conv(_), _) if faster.conv(index, input, output, scratch) => {}
                (Layer::MaxPool { .. }, Kind::U8) if faster.pool(index, input, output) => {}
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
        Ok(Logits {
            values: logits,
            scale: self.model.logit_scale,
        })
    }
}

/// Faster kernels for some layers ([`fast`]); each method returns `false` to decline.
trait Accelerator {
    /// Scratch bytes the kernels need, placed in the caller's arena after the plan's
    /// activations.
    fn scratch_bytes(&self) -> usize;
    /// Runs convolution layer `index` from `input` into `output`.
    fn conv(&self, index: usize, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> bool;
    /// Runs the final linear layer `index` into `logits`.
    fn logits(
        &self,
        index: usize,
        input: &[u8],
        logits: &mut [i32; CLASS_COUNT],
        scratch: &mut [u8],
    ) -> bool;
    /// Runs max pooling layer `index` over u8 activations.
    fn pool(&self, index: usize, input: &[u8], output: &mut [u8]) -> bool;
}

/// The portable kernels only.
struct Portable;

impl Accelerator for Portable {
    fn scratch_bytes(&self) -> usize {
        0
    }
    fn conv(&self, _: usize, _: &[u8], _: &mut [u8], _: &mut [u8]) -> bool {
        false
    }
    fn logits(&self, _: usize, _: &[u8], _: &mut [i32; CLASS_COUNT], _: &mut [u8]) -> bool {
        false
    }
    fn pool(&self, _: usize, _: &[u8], _: &mut [u8]) -> bool {
        false
    }
}

/// The arena a model description needs, validating it as [`Plan::new`] does (without the
/// envelope and the stated arena size). The exporter uses it to state the arena.
pub fn arena_for(model: &Model<'_>) -> Result<usize, BlobError> {
    Plan::validate(model).map(|(_, arena)| arena)
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
