//! Post-training static int8 quantization into the runtime's blob format.
//!
//! Weights: symmetric per output channel (zero point 0, -127..=127, or -64..=64 with
//! [`WeightBits::Seven`]). Biases: i32 in units
//! of input scale x weight scale. Activations: u8 after ReLU (zero point 0, the input is
//! the raw pixels at scale [`INPUT_SCALE`]), i8 after LeakyReLU; their scales are the
//! largest values seen on calibration images ([`calibrate`]). Requantization is
//! integer-only: a Q31 multiplier and a shift per output channel, as TFLite Micro and
//! CMSIS-NN do.

use std::path::Path;

use burn::prelude::Backend;
use fmnist_runtime::blob::{self, Layer, Model, Output, QuantConv2d, QuantLinear, Requant};
use fmnist_runtime::dataset::LabeledImages;
use fmnist_runtime::{BlobError, CLASS_NAMES, INPUT_SCALE};

use super::{fold, ExportError, FoldedConv, FoldedLayer, FoldedOp};
use crate::config::options::WeightBits;
use crate::model::{Classifier, LayerSpec, ModelKind, Shape};
use crate::run::RunInfo;

/// Images of the training split used to calibrate activation scales.
pub const CALIBRATION_IMAGES: usize = 2048;

/// The bytes of one quantized conv or linear layer, built once; the blob borrows them.
struct Tensors {
    /// Weights, i8 as bytes, in the engine's order.
    weights: Vec<u8>,
    /// i32 biases, little-endian.
    bias: Vec<u8>,
    /// i32 Q31 multipliers, little-endian.
    multiplier: Vec<u8>,
    /// i8 shifts.
    shift: Vec<u8>,
    /// What follows the accumulation.
    output: Output,
}

impl Tensors {
    fn requant(&self) -> Requant<'_> {
        Requant {
            bias: &self.bias,
            multiplier: &self.multiplier,
            shift: &self.shift,
            output: self.output,
        }
    }
}

/// A quantized model: the folded layers it was made from and the bytes of every conv and
/// linear layer; [`QuantizedModel::encode`] writes the blob.
pub struct QuantizedModel<'a> {
    /// One entry per blob layer: the folded layer (its activation fused away) and, for conv
    /// and linear layers, their bytes.
    layers: Vec<(&'a FoldedLayer, Option<Tensors>)>,
    logit_scale: f32,
}

/// What the blob records besides the layers.
pub struct BlobCard<'a> {
    /// Model kind name.
    pub kind: &'a str,
    /// Trainable parameters.
    pub parameters: u32,
    /// Multiply-accumulates per image.
    pub macs: u32,
    /// Float test accuracy at export.
    pub float_accuracy: Option<f32>,
    /// Int8 test accuracy at export.
    pub int8_accuracy: Option<f32>,
    /// Calibration images used.
    pub calibration_images: u32,
    /// The softmax temperature ([`Model::temperature`]).
    pub temperature: f32,
}

/// Why quantized layers did not make a blob the engine loads.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The engine cannot size an arena for the layers.
    #[error("the quantized model is not runnable")]
    NotRunnable(#[source] BlobError),
    /// The blob could not be serialised.
    #[error("the quantized model cannot be serialised")]
    Serialise(#[source] postcard::Error),
    /// The engine refuses the bytes written.
    #[error("the quantized model is not loadable")]
    NotLoadable(#[source] BlobError),
}

/// The activation ranges of a model on calibration images.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Images used.
    pub images: usize,
    /// The largest absolute output of every folded layer (a batch norm's range belongs to
    /// the convolution it is folded into).
    pub maxima: Vec<f32>,
}

/// Runs the first [`CALIBRATION_IMAGES`] of `set` through `model` (of kind `kind`) and
/// records every folded layer's largest absolute output.
pub fn calibrate<B: Backend>(
    model: &Classifier<B>,
    kind: ModelKind,
    set: &LabeledImages,
    device: &B::Device,
) -> Calibration {
    let Calibration {
        images: count,
        maxima,
    } = calibrate_layers(model, set, device);
    let specs = kind.layers();
    let mut folded = Vec::with_capacity(specs.len());
    for (spec, max) in specs.iter().zip(&maxima) {
        match spec {
            LayerSpec::BatchNorm { .. } => {
                if let Some(last) = folded.last_mut() {
                    *last = *max;
                }
            }
            _ => folded.push(*max),
        }
    }
    Calibration {
        images: count,
        maxima: folded,
    }
}

/// Runs the first [`CALIBRATION_IMAGES`] of `set` through `model` and records every
/// layer's largest absolute output: the folded layers' ranges when `model` was built from
/// folded layers ([`super::unfold`]).
pub fn calibrate_layers<B: Backend>(
    model: &Classifier<B>,
    set: &LabeledImages,
    device: &B::Device,
) -> Calibration {
    let count = set.len().min(CALIBRATION_IMAGES);
    let indices: Vec<usize> = (0..count).collect();
    let mut maxima = vec![0f32; model.layers.len()];
    for chunk in indices.chunks(crate::eval::EVAL_BATCH) {
        let (images, _) = crate::batch::batch::<B>(set, chunk, None, device);
        for (m, batch_max) in maxima.iter_mut().zip(model.output_maxima(images)) {
            *m = m.max(batch_max);
        }
    }
    Calibration {
        images: count,
        maxima,
    }
}

/// `real = multiplier * 2^-(31 + shift)` with `multiplier` in `[2^30, 2^31)`.
pub fn quantize_multiplier(real: f64) -> (i32, i8) {
    if !(real.is_finite() && real > 0.0) {
        return (0, 0);
    }
    let mut exponent = real.log2().floor() as i32 + 1; // real = m * 2^exponent, m in [0.5, 1)
    let mut multiplier = (real / 2f64.powi(exponent) * 2f64.powi(31)).round() as i64;
    if multiplier == 1 << 31 {
        multiplier /= 2;
        exponent += 1;
    }
    let shift = -exponent;
    if shift > 31 {
        return (0, 0); // too small to matter: the output is always 0
    }
    (multiplier as i32, shift.max(-30) as i8)
}

fn weight_scales(weight: &[f32], outputs: usize, bits: WeightBits) -> Vec<f32> {
    let per = weight.len() / outputs;
    (0..outputs)
        .map(|o| {
            let max = weight[o * per..(o + 1) * per]
                .iter()
                .fold(0f32, |m, w| m.max(w.abs()));
            if max > 0.0 {
                max / bits.largest()
            } else {
                1.0
            }
        })
        .collect()
}

fn quantize_weights(weight: &[f32], scales: &[f32], bits: WeightBits) -> Vec<i8> {
    let per = weight.len() / scales.len();
    let largest = bits.largest();
    weight
        .iter()
        .enumerate()
        .map(|(i, w)| (w / scales[i / per]).round().clamp(-largest, largest) as i8)
        .collect()
}

fn requant(
    bias: &[f32],
    in_scale: f32,
    w_scales: &[f32],
    out_scale: f32,
    weights: Vec<u8>,
    output: Output,
) -> Tensors {
    let mut tensors = Tensors {
        weights,
        bias: Vec::new(),
        multiplier: Vec::new(),
        shift: Vec::new(),
        output,
    };
    for (b, ws) in bias.iter().zip(w_scales) {
        let acc_scale = f64::from(in_scale) * f64::from(*ws);
        let q = (f64::from(*b) / acc_scale)
            .round()
            .clamp(-(2f64.powi(30) - 1.0), 2f64.powi(30) - 1.0) as i32;
        let (m, s) = quantize_multiplier(acc_scale / f64::from(out_scale));
        tensors.bias.extend_from_slice(&q.to_le_bytes());
        tensors.multiplier.extend_from_slice(&m.to_le_bytes());
        tensors.shift.push(s as u8);
    }
    tensors
}

/// Conv weights `[out][in][ky][kx]` as the engine reads them: `[out][ky][kx][in]`.
fn conv_weights(conv: &FoldedConv, q: &[i8]) -> Vec<u8> {
    let (k, cin) = (conv.kernel, conv.inputs);
    let mut hwc = vec![0u8; q.len()];
    for o in 0..conv.outputs {
        for i in 0..cin {
            for ky in 0..k {
                for kx in 0..k {
                    hwc[((o * k + ky) * k + kx) * cin + i] =
                        q[((o * cin + i) * k + ky) * k + kx] as u8;
                }
            }
        }
    }
    hwc
}

/// Linear weights `[out][in]`; inputs flattened from `from` = `[C, H, W]` (burn's order)
/// are read by the engine in H, W, C order.
fn linear_weights(outputs: usize, inputs: usize, q: &[i8], from: Option<Shape>) -> Vec<u8> {
    match from {
        Some(Shape::Map([c, h, w])) if c * h * w == inputs && c > 1 => {
            let mut hwc = vec![0u8; q.len()];
            for o in 0..outputs {
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            hwc[o * inputs + (y * w + x) * c + ch] =
                                q[o * inputs + ch * h * w + y * w + x] as u8;
                        }
                    }
                }
            }
            hwc
        }
        _ => q.iter().map(|&v| v as u8).collect(),
    }
}

/// What layer `index` writes: the activation fused into it (a ReLU or LeakyReLU that
/// follows), the scale of its output from the range after that activation, the index of
/// the last layer it covers, and whether that is the model's last.
struct Fused {
    output: Output,
    out_scale: f32,
    range_index: usize,
    last: bool,
}

fn fused(layers: &[FoldedLayer], index: usize, output_maxima: &[f32]) -> Fused {
    // The activation fused into a conv or linear layer, and the range after it.
    let (activation, range_index) = match layers.get(index + 1).map(|l| &l.op) {
        Some(FoldedOp::Relu) => (Some(Output::Relu), index + 1),
        Some(FoldedOp::LeakyRelu { slope }) => {
            let slope_q15 = (f64::from(*slope) * 32768.0).round().clamp(0.0, 32767.0) as i16;
            (Some(Output::LeakyRelu { slope_q15 }), index + 1)
        }
        _ => (None, index),
    };
    let last = range_index + 1 == layers.len();
    let range = output_maxima
        .get(range_index)
        .copied()
        .unwrap_or(0.0)
        .max(1e-6);
    let (output, out_scale) = match (activation, last) {
        (Some(Output::Relu), _) => (Output::Relu, range / 255.0),
        (Some(leaky), _) => (leaky, range / 127.0),
        (None, true) => (Output::Logits, range / 32767.0),
        (None, false) => (Output::Logits, 0.0),
    };
    Fused {
        output,
        out_scale,
        range_index,
        last,
    }
}

/// Quantizes folded layers. `output_maxima[i]` is the largest absolute value of the output
/// of folded layer `i` on the calibration images (after its activation where one follows).
/// The shapes come from the folded layers; the weights span `bits`. About 80 lines: one
/// arm per layer kind, each with the reason the engine cannot take it.
pub fn quantize<'a>(
    layers: &'a [FoldedLayer],
    output_maxima: &[f32],
    bits: WeightBits,
) -> Result<QuantizedModel<'a>, ExportError> {
    let unsupported =
        |index: usize, layer: &FoldedLayer, reason: &'static str| ExportError::Unsupported {
            index,
            layer: layer.op.name().to_string(),
            reason,
        };
    let mut in_scale = INPUT_SCALE;
    let mut logit_scale = 1.0f32;
    let mut quantized = Vec::new();
    let mut index = 0;
    while index < layers.len() {
        let layer = &layers[index];
        let Fused {
            output,
            out_scale,
            range_index,
            last,
        } = fused(layers, index, output_maxima);
        match &layer.op {
            FoldedOp::Conv(conv) => {
                if output == Output::Logits {
                    return Err(unsupported(
                        index,
                        layer,
                        "the int8 engine needs a ReLU or LeakyReLU after a convolution",
                    ));
                }
                let scales = weight_scales(&conv.weight, conv.outputs, bits);
                let q = quantize_weights(&conv.weight, &scales, bits);
                let weights = conv_weights(conv, &q);
                let tensors = requant(&conv.bias, in_scale, &scales, out_scale, weights, output);
                quantized.push((layer, Some(tensors)));
                in_scale = out_scale;
                index = range_index + 1;
            }
            FoldedOp::Linear(linear) => {
                if output == Output::Logits && !last {
                    return Err(unsupported(
                        index,
                        layer,
                        "a linear layer without activation must be the last",
                    ));
                }
                let scales = weight_scales(&linear.weight, linear.outputs, bits);
                let q = quantize_weights(&linear.weight, &scales, bits);
                let flattened_from = index
                    .checked_sub(1)
                    .map(|i| &layers[i])
                    .filter(|l| l.op == FoldedOp::Flatten)
                    .map(|l| l.input);
                let weights = linear_weights(linear.outputs, linear.inputs, &q, flattened_from);
                if output == Output::Logits {
                    logit_scale = out_scale;
                }
                let tensors = requant(&linear.bias, in_scale, &scales, out_scale, weights, output);
                quantized.push((layer, Some(tensors)));
                in_scale = out_scale;
                index = range_index + 1;
            }
            FoldedOp::MaxPool { .. } | FoldedOp::Flatten => {
                quantized.push((layer, None));
                index += 1;
            }
            FoldedOp::Relu | FoldedOp::LeakyRelu { .. } => {
                return Err(unsupported(
                    index,
                    layer,
                    "an activation must follow a convolution or linear layer",
                ));
            }
        }
    }
    Ok(QuantizedModel {
        layers: quantized,
        logit_scale,
    })
}

impl QuantizedModel<'_> {
    /// The blob's model description, borrowing this model's bytes.
    fn describe<'b>(&'b self, card: &BlobCard<'b>, arena_bytes: u32) -> Model<'b> {
        let layers = self
            .layers
            .iter()
            .filter_map(|(layer, tensors)| {
                Some(match (&layer.op, tensors) {
                    (FoldedOp::Conv(conv), Some(tensors)) => {
                        let Shape::Map([_, height, width]) = layer.input else {
                            unreachable!("FoldedLayer::chain checked that a conv takes a map")
                        };
                        Layer::Conv(QuantConv2d {
                            in_channels: conv.inputs as u16,
                            out_channels: conv.outputs as u16,
                            kernel: conv.kernel as u8,
                            padding: conv.padding as u8,
                            in_height: height as u16,
                            in_width: width as u16,
                            weights: &tensors.weights,
                            requant: tensors.requant(),
                        })
                    }
                    (FoldedOp::Linear(linear), Some(tensors)) => Layer::Linear(QuantLinear {
                        inputs: linear.inputs as u32,
                        outputs: linear.outputs as u32,
                        weights: &tensors.weights,
                        requant: tensors.requant(),
                    }),
                    (FoldedOp::MaxPool { size }, _) => Layer::MaxPool { size: *size as u8 },
                    (FoldedOp::Flatten, _) => Layer::Flatten,
                    _ => return None,
                })
            })
            .collect();
        Model {
            kind: card.kind,
            class_names: CLASS_NAMES,
            parameters: card.parameters,
            macs: card.macs,
            input_scale: INPUT_SCALE,
            logit_scale: self.logit_scale,
            float_accuracy: card.float_accuracy,
            int8_accuracy: card.int8_accuracy,
            calibration_images: card.calibration_images,
            arena_bytes,
            layers,
            temperature: card.temperature,
        }
    }

    /// The blob bytes, with the arena size the runtime computes for these layers.
    pub fn encode(&self, card: &BlobCard<'_>) -> Result<Vec<u8>, EncodeError> {
        let arena = fmnist_runtime::engine::arena_for(&self.describe(card, 0))
            .map_err(EncodeError::NotRunnable)?;
        let bytes =
            blob::encode(&self.describe(card, arena as u32)).map_err(EncodeError::Serialise)?;
        // The exporter refuses to write what the engine would refuse to load.
        fmnist_runtime::Plan::new(&bytes).map_err(EncodeError::NotLoadable)?;
        Ok(bytes)
    }
}

/// Float and int8 accuracy of one export, side by side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Q8Report {
    /// Float accuracy on the validation split.
    pub float_val: f64,
    /// Int8 accuracy on the validation split.
    pub int8_val: f64,
    /// Float accuracy on the test set, when given.
    pub float_test: Option<f64>,
    /// Int8 accuracy on the test set, when given.
    pub int8_test: Option<f64>,
    /// Fraction of test (else validation) images where float and int8 agree on the class.
    pub agreement: f64,
    /// Blob size in bytes.
    pub bytes: usize,
    /// Arena the blob states.
    pub arena_bytes: usize,
    /// The softmax temperature fitted on the validation split with the engine's logits,
    /// and the calibration before and after.
    pub calibration: crate::temperature::TemperatureFit,
}

/// The images an int8 export uses.
#[derive(Debug, Clone, Copy)]
pub struct ExportImages<'s> {
    /// Activation ranges come from its first [`CALIBRATION_IMAGES`].
    pub calibration: &'s LabeledImages,
    /// The softmax temperature is fitted here, and the accuracy measured.
    pub val: &'s LabeledImages,
    /// The accuracy is measured here too, when given.
    pub test: Option<&'s LabeledImages>,
}

/// Quantizes `model` (calibrating on the first [`CALIBRATION_IMAGES`] of
/// `images.calibration`) with weights of `bits`, checks the result on `images.val` (and
/// `images.test` when given) against the float model, fits the softmax temperature on
/// `images.val` with the engine's own logits ([`crate::export::calibrate`]), and writes the blob
/// at `path` atomically.
pub fn write_q8<B: Backend>(
    model: &Classifier<B>,
    info: &RunInfo,
    images: ExportImages<'_>,
    bits: WeightBits,
    path: &Path,
    device: &B::Device,
) -> anyhow::Result<Q8Report> {
    let folded = fold(model, info.model)?;
    let ranges = calibrate(model, info.model, images.calibration, device);
    let quantized = quantize(&folded, &ranges.maxima, bits)?;
    let card = BlobCard::of_kind(info.model, ranges.images)?;
    write_quantized(model, &quantized, card, images, path, device)
}

/// [`write_q8`] for the float model of an ONNX file this trainer exported
/// ([`super::onnx::read_with_kind`]; batch norm already folded), whose `model_kind` metadata names
/// the kind the blob records. Returns that kind too.
pub fn write_q8_from_onnx(
    onnx: &Path,
    images: ExportImages<'_>,
    bits: WeightBits,
    path: &Path,
) -> anyhow::Result<(ModelKind, Q8Report)> {
    use anyhow::Context;
    type B = crate::backend::Cpu;
    let device = Default::default();
    let name = || onnx.display().to_string();
    let bytes = crate::util::files::read_regular(onnx, 64 << 20)?;
    let (folded, kind) = super::onnx::read_with_kind(&bytes).with_context(name)?;
    let model = super::unfold::<B>(&folded, &device);
    let ranges = calibrate_layers(&model, images.calibration, &device);
    let quantized = quantize(&folded, &ranges.maxima, bits)?;
    let card = BlobCard::of_kind(kind, ranges.images)?;
    let report = write_quantized(&model, &quantized, card, images, path, &device)?;
    Ok((kind, report))
}

impl BlobCard<'static> {
    /// The card of a `kind` model calibrated on `images` images: its parameters and MACs,
    /// temperature 1 and no accuracy yet.
    fn of_kind(kind: ModelKind, images: usize) -> Result<Self, ExportError> {
        let summary = crate::model::summarize(&kind.layers()).map_err(ExportError::from)?;
        Ok(BlobCard {
            kind: kind.name(),
            parameters: summary.iter().map(|r| r.params).sum::<usize>() as u32,
            macs: summary.iter().map(|r| r.macs).sum::<usize>() as u32,
            float_accuracy: None,
            int8_accuracy: None,
            calibration_images: images as u32,
            temperature: 1.0,
        })
    }
}

/// Checks `quantized` against the float `model`, fits the temperature and writes the
/// blob (see [`write_q8`]).
fn write_quantized<B: Backend>(
    model: &Classifier<B>,
    quantized: &QuantizedModel<'_>,
    mut card: BlobCard<'_>,
    images: ExportImages<'_>,
    path: &Path,
    device: &B::Device,
) -> anyhow::Result<Q8Report> {
    use crate::eval::evaluate;
    use fmnist_runtime::evaluate::evaluate as evaluate_int8;

    let (val, test) = (images.val, images.test);
    let draft = quantized.encode(&card)?;
    let plan = fmnist_runtime::Plan::new(&draft).map_err(EncodeError::NotLoadable)?;
    // The arena the blob states (firmware's); FastPlan adds its kernels' scratch.
    let arena_bytes = plan.arena_bytes();
    let plan = fmnist_runtime::FastPlan::new(plan);
    let float_val = evaluate(model, val, device);
    let (int8_val, int8_val_predictions) = evaluate_int8(&plan, val)?;
    // The draft's temperature is 1 and the fit reads the raw logits anyway.
    let val_logits = crate::temperature::int8_logits(&plan, val)?;
    let test_logits = test
        .map(|t| crate::temperature::int8_logits(&plan, t))
        .transpose()?;
    let calibration = crate::temperature::TemperatureFit::new(
        (&val_logits, &val.labels),
        test.zip(test_logits.as_deref())
            .map(|(t, logits)| (logits, &t.labels[..])),
    );
    card.temperature = calibration.stored();
    let mut report = Q8Report {
        float_val: float_val.confusion.accuracy(),
        int8_val: int8_val.accuracy(),
        float_test: None,
        int8_test: None,
        agreement: agreement(&float_val.predictions, &int8_val_predictions),
        bytes: draft.len(),
        arena_bytes,
        calibration,
    };
    if let Some(test) = test {
        let float_test = evaluate(model, test, device);
        let (int8_test, int8_predictions) = evaluate_int8(&plan, test)?;
        report.float_test = Some(float_test.confusion.accuracy());
        report.int8_test = Some(int8_test.accuracy());
        report.agreement = agreement(&float_test.predictions, &int8_predictions);
        card.float_accuracy = report.float_test.map(|a| a as f32);
        card.int8_accuracy = report.int8_test.map(|a| a as f32);
    }
    let bytes = quantized.encode(&card)?;
    crate::util::files::write_output(path, &bytes)?;
    report.bytes = bytes.len();
    Ok(report)
}

fn agreement(a: &[u8], b: &[u8]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipliers_represent_the_real_value() {
        for real in [0.000_123, 0.01, 0.5, 0.75, 0.999_999_9, 1.0, 3.7, 1000.0] {
            let (m, s) = quantize_multiplier(real);
            assert!((1 << 30..=i32::MAX).contains(&m), "{real}: {m}");
            let back = f64::from(m) * 2f64.powi(-(31 + i32::from(s)));
            assert!((back - real).abs() / real < 1e-9, "{real} -> {back}");
        }
        assert_eq!(quantize_multiplier(0.0), (0, 0));
    }
}
