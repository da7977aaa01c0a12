//! Exporters. Both formats start from one folded, backend-free view of a trained model
//! ([`fold`]): batch norm merged into the preceding convolution, weights as plain `f32`
//! arrays in PyTorch's layouts, every layer's input and output shape recorded once. A
//! layer the formats cannot express is refused here, by name.

pub mod calibrate;
pub mod onnx;
pub mod q8;

use std::path::Path;

use burn::module::Param;
use burn::prelude::*;

pub use crate::config::options::WeightBits;
pub use q8::{write_q8, write_q8_from_onnx, ExportImages, Q8Report, CALIBRATION_IMAGES};

use crate::batch::to_f32_vec as values;
use crate::model::{summarize, ChainError, Classifier, Layer, LayerSpec, ModelKind, Shape};

/// A convolution ready to export: stride 1, square kernel, symmetric zero padding, batch
/// norm (if the model had one after it) folded in.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedConv {
    /// Input channels.
    pub inputs: usize,
    /// Output channels.
    pub outputs: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// `[outputs, inputs, kernel, kernel]`, row-major.
    pub weight: Vec<f32>,
    /// `[outputs]`.
    pub bias: Vec<f32>,
}

/// A fully connected layer ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedLinear {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// `[outputs, inputs]`, row-major (PyTorch's layout; burn stores the transpose).
    pub weight: Vec<f32>,
    /// `[outputs]`.
    pub bias: Vec<f32>,
}

/// What a folded layer computes.
#[derive(Debug, Clone, PartialEq)]
pub enum FoldedOp {
    /// Convolution.
    Conv(FoldedConv),
    /// max(x, 0).
    Relu,
    /// x if x > 0 else slope * x.
    LeakyRelu {
        /// Negative slope.
        slope: f32,
    },
    /// `size` x `size` max pooling with stride `size`, floor.
    MaxPool {
        /// Window side and stride.
        size: usize,
    },
    /// `[N, C, H, W] -> [N, C*H*W]`.
    Flatten,
    /// Fully connected.
    Linear(FoldedLinear),
}

impl FoldedOp {
    /// The layer as the model definitions describe it (for shapes and messages).
    pub fn spec(&self) -> LayerSpec {
        match self {
            FoldedOp::Conv(conv) => LayerSpec::Conv {
                inputs: conv.inputs,
                outputs: conv.outputs,
                kernel: conv.kernel,
                padding: conv.padding,
            },
            FoldedOp::Relu => LayerSpec::Relu,
            FoldedOp::LeakyRelu { slope } => LayerSpec::LeakyRelu {
                slope: f64::from(*slope),
            },
            FoldedOp::MaxPool { size } => LayerSpec::MaxPool { size: *size },
            FoldedOp::Flatten => LayerSpec::Flatten,
            FoldedOp::Linear(linear) => LayerSpec::Linear {
                inputs: linear.inputs,
                outputs: linear.outputs,
            },
        }
    }

    /// The layer kind's name, as error messages say it.
    pub fn name(&self) -> &'static str {
        match self {
            FoldedOp::Conv(_) => "Conv",
            FoldedOp::Relu => "Relu",
            FoldedOp::LeakyRelu { .. } => "LeakyRelu",
            FoldedOp::MaxPool { .. } => "MaxPool",
            FoldedOp::Flatten => "Flatten",
            FoldedOp::Linear(_) => "Linear",
        }
    }
}

/// A layer ready to export: what it computes and the shapes it maps between, for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedLayer {
    /// What it computes.
    pub op: FoldedOp,
    /// The shape of its input.
    pub input: Shape,
    /// The shape of its output.
    pub output: Shape,
}

impl FoldedLayer {
    /// Records every op's input and output shape, walking from the model input
    /// ([`crate::model::INPUT_SHAPE`]) with [`summarize`], the one shape walker; ops that do
    /// not chain into 10 logits are refused.
    pub fn chain(ops: Vec<FoldedOp>) -> Result<Vec<FoldedLayer>, ChainError> {
        let specs: Vec<LayerSpec> = ops.iter().map(FoldedOp::spec).collect();
        let rows = summarize(&specs)?;
        let mut input = crate::model::INPUT_SHAPE;
        Ok(ops
            .into_iter()
            .zip(rows)
            .map(|(op, row)| {
                let layer = FoldedLayer {
                    op,
                    input,
                    output: row.output,
                };
                input = row.output;
                layer
            })
            .collect())
    }
}

/// Why a model could not be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A layer (or layer order) the export formats do not support.
    #[error("cannot export layer {index} ({layer}): {reason}")]
    Unsupported {
        /// Position in the model.
        index: usize,
        /// The layer, as written in the model definition.
        layer: String,
        /// Why.
        reason: &'static str,
    },
    /// The weights do not match the model definition.
    #[error("the weights do not fit the {kind} model")]
    Shapes {
        /// The model kind.
        kind: &'static str,
        /// What does not fit.
        #[source]
        source: crate::run::ShapeMismatch,
    },
    /// The layers do not chain from one image to 10 logits.
    #[error("the layers do not chain")]
    Chain(#[from] ChainError),
}

/// A layer's bias, zeros when it has none.
fn bias_values<B: Backend>(bias: &Option<Param<Tensor<B, 1>>>, outputs: usize) -> Vec<f32> {
    bias.as_ref()
        .map_or_else(|| vec![0.0; outputs], |b| values(b.val()))
}

/// A parameter of `shape` holding `values` (row-major).
fn param<B: Backend, const D: usize>(
    values: &[f32],
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(values.to_vec(), shape),
        device,
    ))
}

/// `[rows, cols]` row-major values transposed to `[cols, rows]`.
fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| values[(i % rows) * cols + i / rows])
        .collect()
}

/// The inverse of [`fold`]: a burn model running `layers` (batch norm already folded into
/// the convolutions), e.g. read back from an exported ONNX file by [`onnx::read`].
pub fn unfold<B: Backend>(layers: &[FoldedLayer], device: &B::Device) -> Classifier<B> {
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::nn::{LeakyReluConfig, LinearConfig, PaddingConfig2d, Relu};
    let layers = layers
        .iter()
        .map(|layer| match &layer.op {
            FoldedOp::Conv(c) => {
                let (k, p) = (c.kernel, c.padding);
                let mut conv = Conv2dConfig::new([c.inputs, c.outputs], [k, k])
                    .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                    .init(device);
                conv.weight = param(&c.weight, [c.outputs, c.inputs, k, k], device);
                conv.bias = Some(param(&c.bias, [c.outputs], device));
                Layer::Conv(conv)
            }
            FoldedOp::Relu => Layer::Relu(Relu),
            FoldedOp::LeakyRelu { slope } => Layer::LeakyRelu(
                LeakyReluConfig::new()
                    .with_negative_slope(f64::from(*slope))
                    .init(),
            ),
            FoldedOp::MaxPool { size } => Layer::MaxPool(
                MaxPool2dConfig::new([*size, *size])
                    .with_strides([*size, *size])
                    .init(),
            ),
            FoldedOp::Flatten => Layer::Flatten(crate::model::Flatten),
            FoldedOp::Linear(l) => {
                let mut linear = LinearConfig::new(l.inputs, l.outputs).init(device);
                // burn stores `[inputs, outputs]`, the transpose of the folded layout.
                let burn_layout = transposed(&l.weight, l.outputs, l.inputs);
                linear.weight = param(&burn_layout, [l.inputs, l.outputs], device);
                linear.bias = Some(param(&l.bias, [l.outputs], device));
                Layer::Linear(linear)
            }
        })
        .collect();
    Classifier { layers }
}

/// Folds a trained model into export-ready layers.
pub fn fold<B: Backend>(
    model: &Classifier<B>,
    kind: ModelKind,
) -> Result<Vec<FoldedLayer>, ExportError> {
    crate::run::check_shapes(model, kind).map_err(|source| ExportError::Shapes {
        kind: kind.name(),
        source,
    })?;
    let specs = kind.layers();
    let mut ops: Vec<FoldedOp> = Vec::with_capacity(specs.len());
    for (index, (spec, layer)) in specs.iter().zip(&model.layers).enumerate() {
        let next = match (*spec, layer) {
            (
                LayerSpec::Conv {
                    inputs,
                    outputs,
                    kernel,
                    padding,
                },
                Layer::Conv(conv),
            ) => FoldedOp::Conv(FoldedConv {
                inputs,
                outputs,
                kernel,
                padding,
                weight: values(conv.weight.val()),
                bias: bias_values(&conv.bias, outputs),
            }),
            (LayerSpec::BatchNorm { .. }, Layer::BatchNorm(bn)) => {
                let Some(FoldedOp::Conv(conv)) = ops.last_mut() else {
                    return Err(ExportError::Unsupported {
                        index,
                        layer: format!("{spec:?}"),
                        reason:
                            "batch norm is folded into a preceding convolution, and there is none",
                    });
                };
                let (gamma, beta) = (values(bn.gamma.val()), values(bn.beta.val()));
                let (mean, var) = (
                    values(bn.running_mean.value()),
                    values(bn.running_var.value()),
                );
                let per_channel = conv.weight.len() / conv.outputs;
                for c in 0..conv.outputs {
                    let scale = gamma[c] / (var[c] + bn.epsilon as f32).sqrt();
                    conv.weight[c * per_channel..(c + 1) * per_channel]
                        .iter_mut()
                        .for_each(|w| *w *= scale);
                    conv.bias[c] = (conv.bias[c] - mean[c]) * scale + beta[c];
                }
                continue;
            }
            (LayerSpec::Relu, _) => FoldedOp::Relu,
            (LayerSpec::LeakyRelu { slope }, _) => FoldedOp::LeakyRelu {
                slope: slope as f32,
            },
            (LayerSpec::MaxPool { size }, _) => FoldedOp::MaxPool { size },
            (LayerSpec::Flatten, _) => FoldedOp::Flatten,
            (LayerSpec::Linear { inputs, outputs }, Layer::Linear(linear)) => {
                // burn's layout is [inputs, outputs].
                let weight = transposed(&values(linear.weight.val()), inputs, outputs);
                FoldedOp::Linear(FoldedLinear {
                    inputs,
                    outputs,
                    weight,
                    bias: bias_values(&linear.bias, outputs),
                })
            }
            (spec, _) => {
                return Err(ExportError::Unsupported {
                    index,
                    layer: format!("{spec:?}"),
                    reason: "the layer does not match the model definition",
                })
            }
        };
        ops.push(next);
    }
    Ok(FoldedLayer::chain(ops)?)
}

/// What the exported files record about the model, besides its layers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCard {
    /// The model kind.
    pub kind: ModelKind,
    /// Trainable parameters (before folding; batch norm's running statistics not counted).
    pub parameters: usize,
    /// Test accuracy measured at the end of training, if it was.
    pub test_accuracy: Option<f64>,
    /// The command line that trained it.
    pub training_command: String,
    /// The softmax temperature fitted on the validation split
    /// ([`crate::export::calibrate`]), stored as the `temperature` metadata entry.
    pub temperature: Option<f32>,
}

impl ModelCard {
    /// The card of a trained run.
    pub fn of_run(info: &crate::run::RunInfo) -> ModelCard {
        ModelCard {
            kind: info.model,
            parameters: crate::model::parameter_count(info.model),
            test_accuracy: info.test_accuracy,
            training_command: info.command.clone(),
            temperature: None,
        }
    }
}

/// Writes `model` as an ONNX file at `path`, atomically, with the softmax `temperature`
/// in its metadata when given.
pub fn write_onnx<B: Backend>(
    model: &Classifier<B>,
    info: &crate::run::RunInfo,
    path: &Path,
    temperature: Option<f32>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let layers = fold(model, info.model)?;
    let card = ModelCard {
        temperature,
        ..ModelCard::of_run(info)
    };
    let bytes = onnx::to_bytes(&layers, &card)
        .with_context(|| format!("{}: cannot encode the ONNX model", path.display()))?;
    crate::util::files::write_output(path, &bytes)
}

/// Files to export a trained model to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exports {
    /// The ONNX file, if any.
    pub onnx: Option<std::path::PathBuf>,
    /// The int8 blob, if any.
    pub q8: Option<std::path::PathBuf>,
    /// The range of the blob's weights.
    pub weight_bits: WeightBits,
}

/// Writes the files of `exports` and says what was written. The int8 blob's activation
/// scales are calibrated on `calibration`; both files get the softmax temperature fitted
/// on `val` (each on its own logits: the float model's, the int8 engine's), and their
/// accuracy and calibration are reported on `val` and (when not empty) `test`.
pub fn write_all<B: Backend>(
    model: &Classifier<B>,
    info: &crate::run::RunInfo,
    exports: &Exports,
    calibration: &fmnist_runtime::dataset::LabeledImages,
    val: &fmnist_runtime::dataset::LabeledImages,
    test: &fmnist_runtime::dataset::LabeledImages,
    device: &B::Device,
) -> anyhow::Result<()> {
    if let Some(path) = &exports.onnx {
        let logits = |set: &fmnist_runtime::dataset::LabeledImages| {
            crate::eval::evaluate(model, set, device).logits
        };
        let val_logits = logits(val);
        let test_logits = (!test.is_empty()).then(|| logits(test));
        let fit = crate::temperature::TemperatureFit::new(
            (&val_logits, &val.labels),
            test_logits.as_deref().map(|l| (l, &test.labels[..])),
        );
        let temperature = (!val.is_empty()).then(|| fit.stored());
        write_onnx(model, info, path, temperature)?;
        crate::say!("wrote {} (ONNX, opset {})", path.display(), onnx::OPSET);
        print_calibration(&fit);
    }
    if let Some(path) = &exports.q8 {
        let images = ExportImages {
            calibration,
            val,
            test: (!test.is_empty()).then_some(test),
        };
        let report = write_q8(model, info, images, exports.weight_bits, path, device)?;
        print_q8(path, &report, images, exports.weight_bits);
    }
    Ok(())
}

/// Says what [`write_q8`] wrote and how it scores.
pub fn print_q8(path: &Path, report: &Q8Report, images: ExportImages<'_>, bits: WeightBits) {
    crate::say!(
        "wrote {} (int8 blob, {}-bit weights, {} bytes, arena {} bytes, calibrated on {} training images)",
        path.display(),
        bits.bits(),
        report.bytes,
        report.arena_bytes,
        images.calibration.len().min(CALIBRATION_IMAGES)
    );
    crate::say!(
        "  validation accuracy: float {:.2}%, int8 {:.2}%",
        report.float_val * 100.0,
        report.int8_val * 100.0
    );
    if let (Some(float), Some(int8)) = (report.float_test, report.int8_test) {
        crate::say!(
            "  test accuracy:       float {:.2}%, int8 {:.2}%",
            float * 100.0,
            int8 * 100.0
        );
    }
    crate::say!(
        "  float and int8 agree on {:.2}% of images",
        report.agreement * 100.0
    );
    print_calibration(&report.calibration);
}

/// The temperature a file got and what it did, or why it got none.
fn print_calibration(fit: &crate::temperature::TemperatureFit) {
    if fit.val_images == 0 {
        crate::say!("  probabilities not calibrated (temperature 1): no validation images");
    } else {
        crate::say!("  probabilities: {fit}");
    }
}
