//! Exporters. Both formats start from one folded, backend-free view of a trained model
//! ([`fold`]): batch norm merged into the preceding convolution, weights as plain `f32`
//! arrays in PyTorch's layouts. A layer the formats cannot express is refused here, by name.

pub mod onnx;
pub mod q8;

use burn::prelude::*;

use crate::batch::to_f32_vec as values;
use crate::model::{Classifier, Layer, LayerSpec, ModelKind};

/// A layer ready to export: batch norm folded away, weights copied out of burn.
#[derive(Debug, Clone, PartialEq)]
pub enum FoldedLayer {
    /// Convolution, stride 1, square kernel, symmetric zero padding.
    Conv {
        /// Input channels.
        inputs: usize,
        /// Output channels.
        outputs: usize,
        /// Kernel side.
        kernel: usize,
        /// Zero padding on each side.
        padding: usize,
        /// `[outputs, inputs, kernel, kernel]`, row-major.
        weight: Vec<f32>,
        /// `[outputs]`.
        bias: Vec<f32>,
    },
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
    Linear {
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
        /// `[outputs, inputs]`, row-major (PyTorch's layout; burn stores the transpose).
        weight: Vec<f32>,
        /// `[outputs]`.
        bias: Vec<f32>,
    },
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
    #[error("the weights do not fit the {0} model")]
    Shapes(&'static str),
}

/// A layer's bias, zeros when it has none.
fn bias_values<B: Backend>(
    bias: &Option<burn::module::Param<Tensor<B, 1>>>,
    outputs: usize,
) -> Vec<f32> {
    bias.as_ref()
        .map_or_else(|| vec![0.0; outputs], |b| values(b.val()))
}

/// The inverse of [`fold`]: a burn model running `layers` (batch norm already folded into
/// the convolutions), e.g. read back from an exported ONNX file by [`onnx::read`].
pub fn unfold<B: Backend>(layers: &[FoldedLayer], device: &B::Device) -> Classifier<B> {
    use burn::module::Param;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::nn::{LeakyReluConfig, LinearConfig, PaddingConfig2d, Relu};
    let layers = layers
        .iter()
        .map(|layer| match layer {
            FoldedLayer::Conv {
                inputs,
                outputs,
                kernel,
                padding,
                weight,
                bias,
            } => {
                let p = *padding;
                let mut conv = Conv2dConfig::new([*inputs, *outputs], [*kernel, *kernel])
                    .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                    .init(device);
                let shape = [*outputs, *inputs, *kernel, *kernel];
                conv.weight = Param::from_tensor(Tensor::from_data(
                    TensorData::new(weight.clone(), shape),
                    device,
                ));
                conv.bias = Some(Param::from_tensor(Tensor::from_data(
                    TensorData::new(bias.clone(), [*outputs]),
                    device,
                )));
                Layer::Conv(conv)
            }
            FoldedLayer::Relu => Layer::Relu(Relu),
            FoldedLayer::LeakyRelu { slope } => Layer::LeakyRelu(
                LeakyReluConfig::new()
                    .with_negative_slope(f64::from(*slope))
                    .init(),
            ),
            FoldedLayer::MaxPool { size } => Layer::MaxPool(
                MaxPool2dConfig::new([*size, *size])
                    .with_strides([*size, *size])
                    .init(),
            ),
            FoldedLayer::Flatten => Layer::Flatten(crate::model::Flatten),
            FoldedLayer::Linear {
                inputs,
                outputs,
                weight,
                bias,
            } => {
                let mut linear = LinearConfig::new(*inputs, *outputs).init(device);
                // burn stores `[inputs, outputs]`, the transpose of the folded layout.
                let w = Tensor::<B, 2>::from_data(
                    TensorData::new(weight.clone(), [*outputs, *inputs]),
                    device,
                );
                linear.weight = Param::from_tensor(w.transpose());
                linear.bias = Some(Param::from_tensor(Tensor::from_data(
                    TensorData::new(bias.clone(), [*outputs]),
                    device,
                )));
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
    crate::checkpoint::check_shapes(model, kind).map_err(|_| ExportError::Shapes(kind.name()))?;
    let specs = kind.layers();
    let mut folded: Vec<FoldedLayer> = Vec::with_capacity(specs.len());
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
            ) => {
                let bias = bias_values(&conv.bias, outputs);
                FoldedLayer::Conv {
                    inputs,
                    outputs,
                    kernel,
                    padding,
                    weight: values(conv.weight.val()),
                    bias,
                }
            }
            (LayerSpec::BatchNorm { .. }, Layer::BatchNorm(bn)) => {
                let Some(FoldedLayer::Conv {
                    weight,
                    bias,
                    outputs,
                    ..
                }) = folded.last_mut()
                else {
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
                let per_channel = weight.len() / *outputs;
                for c in 0..*outputs {
                    let scale = gamma[c] / (var[c] + bn.epsilon as f32).sqrt();
                    weight[c * per_channel..(c + 1) * per_channel]
                        .iter_mut()
                        .for_each(|w| *w *= scale);
                    bias[c] = (bias[c] - mean[c]) * scale + beta[c];
                }
                continue;
            }
            (LayerSpec::Relu, _) => FoldedLayer::Relu,
            (LayerSpec::LeakyRelu { slope }, _) => FoldedLayer::LeakyRelu {
                slope: slope as f32,
            },
            (LayerSpec::MaxPool { size }, _) => FoldedLayer::MaxPool { size },
            (LayerSpec::Flatten, _) => FoldedLayer::Flatten,
            (LayerSpec::Linear { inputs, outputs }, Layer::Linear(linear)) => {
                let burn_layout = values(linear.weight.val()); // [inputs, outputs]
                let weight = (0..outputs * inputs)
                    .map(|i| burn_layout[(i % inputs) * outputs + i / inputs])
                    .collect();
                let bias = bias_values(&linear.bias, outputs);
                FoldedLayer::Linear {
                    inputs,
                    outputs,
                    weight,
                    bias,
                }
            }
            (spec, _) => {
                return Err(ExportError::Unsupported {
                    index,
                    layer: format!("{spec:?}"),
                    reason: "the layer does not match the model definition",
                })
            }
        };
        folded.push(next);
    }
    Ok(folded)
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
}

impl ModelCard {
    /// The card of a trained run.
    pub fn of_run(info: &crate::checkpoint::RunInfo) -> ModelCard {
        ModelCard {
            kind: info.model,
            parameters: crate::model::parameter_count(info.model),
            test_accuracy: info.test_accuracy,
            training_command: info.command.clone(),
        }
    }
}

/// Writes `model` as an ONNX file at `path`, atomically.
pub fn write_onnx<B: Backend>(
    model: &Classifier<B>,
    info: &crate::checkpoint::RunInfo,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let layers = fold(model, info.model)?;
    let bytes = onnx::to_bytes(&layers, &ModelCard::of_run(info))
        .with_context(|| format!("{}: cannot encode the ONNX model", path.display()))?;
    crate::fsutil::write_atomic(path, &bytes)
}

/// Images of the training split used to calibrate activation scales.
pub const CALIBRATION_IMAGES: usize = 2048;

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
}

/// Quantizes `model` (calibrating on the first [`CALIBRATION_IMAGES`] of `calibration`),
/// checks the result on `val` (and `test` when given) against the float model, and writes
/// the blob at `path` atomically.
pub fn write_q8<B: Backend>(
    model: &Classifier<B>,
    info: &crate::checkpoint::RunInfo,
    calibration: &fmnist_runtime::dataset::LabeledImages,
    val: &fmnist_runtime::dataset::LabeledImages,
    test: Option<&fmnist_runtime::dataset::LabeledImages>,
    path: &std::path::Path,
    device: &B::Device,
) -> anyhow::Result<Q8Report> {
    use crate::train::evaluate;
    use fmnist_runtime::evaluate::evaluate as evaluate_int8;

    let folded = fold(model, info.model)?;
    // Largest output of every layer on the calibration images, then per folded layer (a
    // batch norm's range belongs to the convolution it is folded into).
    let count = calibration.len().min(CALIBRATION_IMAGES);
    let indices: Vec<usize> = (0..count).collect();
    let mut maxima = vec![0f32; info.model.layers().len()];
    for chunk in indices.chunks(crate::train::EVAL_BATCH) {
        let (images, _) = crate::batch::batch::<B>(calibration, chunk, None, device);
        for (m, batch_max) in maxima.iter_mut().zip(model.output_maxima(images)) {
            *m = m.max(batch_max);
        }
    }
    let mut folded_maxima = Vec::with_capacity(folded.len());
    for (spec, max) in info.model.layers().iter().zip(&maxima) {
        match spec {
            LayerSpec::BatchNorm { .. } => {
                if let Some(last) = folded_maxima.last_mut() {
                    *last = *max;
                }
            }
            _ => folded_maxima.push(*max),
        }
    }
    let quantized = q8::quantize(&folded, &folded_maxima)?;
    let summary = crate::model::summarize(&info.model.layers()).map_err(anyhow::Error::msg)?;
    let mut card = q8::BlobCard {
        kind: info.model.name(),
        parameters: summary.iter().map(|r| r.params).sum::<usize>() as u32,
        macs: summary.iter().map(|r| r.macs).sum::<usize>() as u32,
        float_accuracy: None,
        int8_accuracy: None,
        calibration_images: count as u32,
    };
    let draft = quantized.encode(&card)?;
    let plan = fmnist_runtime::Plan::new(&draft).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan = fmnist_runtime::engine::fast::FastPlan::new(plan);
    let float_val = evaluate(model, val, device);
    let (int8_val, int8_val_predictions) = evaluate_int8(&plan, val);
    let mut report = Q8Report {
        float_val: float_val.confusion.accuracy(),
        int8_val: int8_val.accuracy(),
        float_test: None,
        int8_test: None,
        agreement: agreement(&float_val.predictions, &int8_val_predictions),
        bytes: draft.len(),
        arena_bytes: plan.arena_bytes(),
    };
    if let Some(test) = test {
        let float_test = evaluate(model, test, device);
        let (int8_test, int8_predictions) = evaluate_int8(&plan, test);
        report.float_test = Some(float_test.confusion.accuracy());
        report.int8_test = Some(int8_test.accuracy());
        report.agreement = agreement(&float_test.predictions, &int8_predictions);
        card.float_accuracy = report.float_test.map(|a| a as f32);
        card.int8_accuracy = report.int8_test.map(|a| a as f32);
    }
    let bytes = quantized.encode(&card)?;
    crate::fsutil::write_atomic(path, &bytes)?;
    report.bytes = bytes.len();
    Ok(report)
}

fn agreement(a: &[u8], b: &[u8]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}
