//! A blob validated completely, once: the envelope and checksum, every shape and tensor
//! length, the requantization, the scales, the arena and the work per image, against
//! [`Limits`].

use super::*;

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

/// A convolution on a `shape` input: its output shape and multiply-accumulates.
fn check_conv(
    conv: &QuantConv2d<'_>,
    [h, w, c]: [usize; 3],
    index: usize,
) -> Result<([usize; 3], u64), BlobError> {
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
    let macs = (out_h as u64 * out_w as u64).saturating_mul(conv.weights.len() as u64);
    if conv.requant.output == Output::Logits {
        return Err(layer_error(
            index,
            "a convolution cannot produce the logits",
        ));
    }
    Ok(([out_h, out_w, cout], macs))
}

/// A linear layer on a `shape` input of `kind`, the model's `last` layer or not: whether
/// it writes the logits (which only the last may, and must, as 10 of them).
fn check_linear(
    linear: &QuantLinear<'_>,
    [h, w, c]: [usize; 3],
    kind: Kind,
    index: usize,
    last: bool,
) -> Result<bool, BlobError> {
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
    if logits != last {
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
    Ok(logits)
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
                    let (output, work) = check_conv(conv, shape, index)?;
                    macs = macs.saturating_add(work);
                    (output, buffer.other())
                }
                Layer::Linear(linear) => {
                    macs = macs.saturating_add(linear.weights.len() as u64);
                    let logits = check_linear(linear, shape, kind, index, index == last)?;
                    let to = if logits { buffer } else { buffer.other() };
                    ([1, 1, linear.outputs as usize], to)
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
}
