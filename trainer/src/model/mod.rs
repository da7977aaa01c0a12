//! The classifiers, defined once. Each model kind is a list of [`LayerSpec`]s; the same list
//! builds the burn module, counts parameters and multiply-accumulates, and (later) drives
//! every exporter, so no model is described twice.

pub mod conv;

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::Initializer;
use burn::nn::{BatchNorm, BatchNormConfig, LeakyRelu, LeakyReluConfig, Linear, LinearConfig};
use burn::nn::{PaddingConfig2d, Relu};
use burn::prelude::*;
use fmnist_runtime::{CLASS_COUNT, IMAGE_SIDE};

/// The model kinds `trainer fit --model` accepts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The notebook's MLP: Flatten, Linear(784,128), LeakyReLU, Linear(128,10). 101,770
    /// params, 101,632 MACs.
    Mlp,
    /// The notebook's CNN: Conv(1,10,5x5), ReLU, Conv(10,20,5x5), ReLU, MaxPool 2x2,
    /// Flatten, Linear(2000,10). 25,290 params, 2,164,000 MACs.
    Cnn,
    /// A small VGG-style CNN for microcontrollers: five 3x3 conv + batch norm + ReLU blocks,
    /// three 2x2 max pools, one linear layer. 97,066 params, 6,443,712 MACs.
    Edge,
    /// `edge` with twice the channels (32-64-64-128-192), a teacher for distilling `edge`
    /// and a stronger model where memory is no object. 369,226 params, 25,531,776 MACs.
    Wide,
    /// `edge`'s layers and parameters with its second pool moved one convolution later, so
    /// that three convolutions work at 14x14 instead of two: it spends the MACs `edge`
    /// leaves unused on resolution. The shipped models/edge.* are an `edge14` model.
    /// 97,066 params, 9,153,216 MACs.
    Edge14,
}

impl ModelKind {
    /// Every model kind, in declaration order (the list `--model` accepts).
    pub fn all() -> &'static [ModelKind] {
        <ModelKind as clap::ValueEnum>::value_variants()
    }

    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
            ModelKind::Edge => "edge",
            ModelKind::Wide => "wide",
            ModelKind::Edge14 => "edge14",
        }
    }

    /// The layers of this model kind, in order.
    pub fn layers(self) -> Vec<LayerSpec> {
        use LayerSpec::*;
        let conv = |inputs, outputs, kernel, padding| Conv {
            inputs,
            outputs,
            kernel,
            padding,
        };
        match self {
            ModelKind::Mlp => vec![
                Flatten,
                Linear {
                    inputs: 784,
                    outputs: 128,
                },
                LeakyRelu { slope: 0.01 },
                Linear {
                    inputs: 128,
                    outputs: CLASS_COUNT,
                },
            ],
            ModelKind::Cnn => vec![
                conv(1, 10, 5, 0),
                Relu,
                conv(10, 20, 5, 0),
                Relu,
                MaxPool { size: 2 },
                Flatten,
                Linear {
                    inputs: 2000,
                    outputs: CLASS_COUNT,
                },
            ],
            ModelKind::Edge => vgg([16, 32, 32, 64, 96], VGG_POOLS),
            ModelKind::Wide => vgg([32, 64, 64, 128, 192], VGG_POOLS),
            ModelKind::Edge14 => vgg([16, 32, 32, 64, 96], [true, false, false, true, true]),
        }
    }
}

/// Where `edge` and `wide` pool: after the 1st, 3rd and 5th convolutions.
const VGG_POOLS: [bool; 5] = [true, false, true, false, true];

/// `edge`'s shape with the given channels: five 3x3 convolutions with batch norm and ReLU,
/// a 2x2 max pool after those `pools` marks (three of them: 28 -> 14 -> 7 -> 3), one linear
/// layer.
fn vgg(channels: [usize; 5], pools: [bool; 5]) -> Vec<LayerSpec> {
    let mut layers = Vec::new();
    let mut inputs = 1;
    let mut side = IMAGE_SIDE;
    for (outputs, pool) in channels.into_iter().zip(pools) {
        layers.extend([
            LayerSpec::Conv {
                inputs,
                outputs,
                kernel: 3,
                padding: 1,
            },
            LayerSpec::BatchNorm { features: outputs },
            LayerSpec::Relu,
        ]);
        if pool {
            layers.push(LayerSpec::MaxPool { size: 2 });
            side /= 2;
        }
        inputs = outputs;
    }
    layers.extend([
        LayerSpec::Flatten,
        LayerSpec::Linear {
            inputs: inputs * side * side,
            outputs: CLASS_COUNT,
        },
    ]);
    layers
}

/// One layer, as the exporters and the summary see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerSpec {
    /// 2-D convolution, square kernel, stride 1, zero padding on every side, with bias.
    Conv {
        /// Input channels.
        inputs: usize,
        /// Output channels.
        outputs: usize,
        /// Kernel side.
        kernel: usize,
        /// Zero padding on each side.
        padding: usize,
    },
    /// Batch normalisation over channels (folded into the preceding conv at export).
    BatchNorm {
        /// Channels.
        features: usize,
    },
    /// max(x, 0).
    Relu,
    /// x if x > 0 else slope * x.
    LeakyRelu {
        /// The negative slope.
        slope: f64,
    },
    /// Non-overlapping max pooling, `size` x `size`, stride `size`, floor.
    MaxPool {
        /// Window side and stride.
        size: usize,
    },
    /// [N, C, H, W] -> [N, C*H*W] in C, H, W order.
    Flatten,
    /// Fully connected layer with bias.
    Linear {
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
    },
}

/// "Conv 1->16 3x3 pad 1", "BatchNorm 16", "ReLU", "LeakyReLU 0.01", "MaxPool 2x2",
/// "Flatten", "Linear 864->10".
impl std::fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            LayerSpec::Conv {
                inputs,
                outputs,
                kernel,
                padding,
            } => write!(
                f,
                "Conv {inputs}->{outputs} {kernel}x{kernel} pad {padding}"
            ),
            LayerSpec::BatchNorm { features } => write!(f, "BatchNorm {features}"),
            LayerSpec::Relu => f.write_str("ReLU"),
            LayerSpec::LeakyRelu { slope } => write!(f, "LeakyReLU {slope}"),
            LayerSpec::MaxPool { size } => write!(f, "MaxPool {size}x{size}"),
            LayerSpec::Flatten => f.write_str("Flatten"),
            LayerSpec::Linear { inputs, outputs } => write!(f, "Linear {inputs}->{outputs}"),
        }
    }
}

/// Activation shape between layers: `[channels, height, width]` or a flat vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A feature map.
    Map([usize; 3]),
    /// A vector of features.
    Flat(usize),
}

/// "16x28x28" (channels, height, width) or "864".
impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Map([c, h, w]) => write!(f, "{c}x{h}x{w}"),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// `n` with thousands separators: 6443712 -> "6,443,712".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut text = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

impl Shape {
    /// Number of values.
    pub fn len(self) -> usize {
        match self {
            Shape::Map([c, h, w]) => c * h * w,
            Shape::Flat(n) => n,
        }
    }

    /// True for a zero-sized shape.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// One row of a model summary.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSummary {
    /// The layer.
    pub layer: LayerSpec,
    /// Its output shape for one image.
    pub output: Shape,
    /// Trainable parameters (batch norm counts gamma and beta).
    pub params: usize,
    /// Multiply-accumulates per image (conv and linear only).
    pub macs: usize,
}

/// burn's backend random generator is process-wide: whoever seeds it and draws from it
/// (initialisation, random tensors) holds this lock meanwhile, so that concurrent work in one
/// process (tests, a library user's threads) cannot shift another's draws.
pub fn lock_backend_rng() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Trainable parameters of a model kind (batch norm's running statistics not included).
pub fn parameter_count(kind: ModelKind) -> usize {
    summarize(&kind.layers()).map_or(0, |rows| rows.iter().map(|r| r.params).sum())
}

/// The shape of one input image: `[1, 28, 28]`.
pub const INPUT_SHAPE: Shape = Shape::Map([1, IMAGE_SIDE, IMAGE_SIDE]);

/// Why a layer list is not a classifier of one image into 10 logits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChainError {
    /// A layer cannot take the output of the one before it.
    #[error("{layer} (layer {index}) cannot follow an output of shape {shape}")]
    Mismatch {
        /// Position of the layer.
        index: usize,
        /// The layer.
        layer: LayerSpec,
        /// The output of the layers before it.
        shape: Shape,
    },
    /// The last layer does not output the class logits.
    #[error("the model ends in an output of shape {0}, not {CLASS_COUNT} logits")]
    Ending(Shape),
}

/// Walks the layers from [`INPUT_SHAPE`]: output shapes, parameters, MACs. The one place
/// shapes are computed (the exporters record them from here). Fails when the layers do not
/// chain (a programming error in a model definition, or a foreign file).
pub fn summarize(layers: &[LayerSpec]) -> Result<Vec<LayerSummary>, ChainError> {
    let mut shape = INPUT_SHAPE;
    let mut rows = Vec::with_capacity(layers.len());
    for (index, &layer) in layers.iter().enumerate() {
        let (output, params, macs) = match (layer, shape) {
            (
                LayerSpec::Conv {
                    inputs,
                    outputs,
                    kernel,
                    padding,
                },
                Shape::Map([c, h, w]),
            ) if c == inputs && h + 2 * padding >= kernel && w + 2 * padding >= kernel => {
                let (oh, ow) = (h + 2 * padding - kernel + 1, w + 2 * padding - kernel + 1);
                let weights = outputs * inputs * kernel * kernel;
                (
                    Shape::Map([outputs, oh, ow]),
                    weights + outputs,
                    weights * oh * ow,
                )
            }
            (LayerSpec::BatchNorm { features }, Shape::Map([c, ..])) if c == features => {
                (shape, 2 * features, 0)
            }
            (LayerSpec::Relu | LayerSpec::LeakyRelu { .. }, _) => (shape, 0, 0),
            (LayerSpec::MaxPool { size }, Shape::Map([c, h, w])) if size > 0 => {
                (Shape::Map([c, h / size, w / size]), 0, 0)
            }
            (LayerSpec::Flatten, _) => (Shape::Flat(shape.len()), 0, 0),
            (LayerSpec::Linear { inputs, outputs }, Shape::Flat(n)) if n == inputs => (
                Shape::Flat(outputs),
                inputs * outputs + outputs,
                inputs * outputs,
            ),
            (layer, shape) => {
                return Err(ChainError::Mismatch {
                    index,
                    layer,
                    shape,
                })
            }
        };
        shape = output;
        rows.push(LayerSummary {
            layer,
            output,
            params,
            macs,
        });
    }
    if shape != Shape::Flat(CLASS_COUNT) {
        return Err(ChainError::Ending(shape));
    }
    Ok(rows)
}

/// The summary table `trainer info` and `trainer fit` print: one row per layer, then totals.
pub fn summary_text(kind: ModelKind) -> String {
    match summarize(&kind.layers()) {
        Ok(rows) => {
            let mut text = format!(
                "model {}:\n  {:<26} {:>10} {:>9} {:>11}\n",
                kind.name(),
                "layer",
                "output",
                "params",
                "MACs"
            );
            for row in &rows {
                text += &format!(
                    "  {:<26} {:>10} {:>9} {:>11}\n",
                    row.layer.to_string(),
                    row.output.to_string(),
                    thousands(row.params),
                    thousands(row.macs)
                );
            }
            text += &format!(
                "  total: {} parameters, {} multiply-accumulates per image",
                thousands(rows.iter().map(|r| r.params).sum::<usize>()),
                thousands(rows.iter().map(|r| r.macs).sum::<usize>())
            );
            text
        }
        Err(problem) => format!("model {}: invalid layer list: {problem}", kind.name()),
    }
}

/// A burn layer, one variant per [`LayerSpec`] kind.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Layer<B: Backend> {
    /// See [`LayerSpec::Conv`].
    Conv(Conv2d<B>),
    /// See [`LayerSpec::BatchNorm`].
    BatchNorm(BatchNorm<B>),
    /// See [`LayerSpec::Relu`].
    Relu(Relu),
    /// See [`LayerSpec::LeakyRelu`].
    LeakyRelu(LeakyRelu),
    /// See [`LayerSpec::MaxPool`].
    MaxPool(MaxPool2d),
    /// See [`LayerSpec::Flatten`].
    Flatten(Flatten),
    /// See [`LayerSpec::Linear`].
    Linear(Linear<B>),
}

/// `[N, C, H, W] -> [N, C*H*W]`.
#[derive(Module, Clone, Debug, Default)]
pub struct Flatten;

/// A classifier: its layers run in order.
#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    /// The layers, in the order of [`ModelKind::layers`].
    pub layers: Vec<Layer<B>>,
}

enum Activation<B: Backend> {
    Map(Tensor<B, 4>),
    Flat(Tensor<B, 2>),
}

impl<B: Backend> Classifier<B> {
    /// A freshly initialised model of the given kind, drawn from the backend's seeded
    /// generator. The notebook's models start as Paddle 2.2 starts them (conv weights normal
    /// with std sqrt(2 / fan_in), linear weights Xavier-uniform, biases zero); `edge` keeps
    /// burn's defaults (PyTorch's).
    pub fn new(kind: ModelKind, device: &B::Device) -> Self {
        let notebook_init = matches!(kind, ModelKind::Mlp | ModelKind::Cnn);
        let (conv_init, linear_init) = if notebook_init {
            (
                Initializer::KaimingNormal {
                    gain: std::f64::consts::SQRT_2,
                    fan_out_only: false,
                },
                Initializer::XavierUniform { gain: 1.0 },
            )
        } else {
            (
                Conv2dConfig::new([1, 1], [1, 1]).initializer,
                LinearConfig::new(1, 1).initializer,
            )
        };
        let zero_bias = |bias: Option<Param<Tensor<B, 1>>>| match bias {
            Some(b) if notebook_init => Some(Param::from_tensor(Tensor::zeros(b.dims(), device))),
            other => other,
        };
        let layers = kind
            .layers()
            .into_iter()
            .map(|spec| match spec {
                LayerSpec::Conv {
                    inputs,
                    outputs,
                    kernel,
                    padding,
                } => {
                    let mut conv = Conv2dConfig::new([inputs, outputs], [kernel, kernel])
                        .with_padding(PaddingConfig2d::Explicit(
                            padding, padding, padding, padding,
                        ))
                        .with_initializer(conv_init.clone())
                        .init(device);
                    conv.bias = zero_bias(conv.bias);
                    Layer::Conv(conv)
                }
                LayerSpec::BatchNorm { features } => {
                    Layer::BatchNorm(BatchNormConfig::new(features).init(device))
                }
                LayerSpec::Relu => Layer::Relu(Relu),
                LayerSpec::LeakyRelu { slope } => {
                    Layer::LeakyRelu(LeakyReluConfig::new().with_negative_slope(slope).init())
                }
                LayerSpec::MaxPool { size } => Layer::MaxPool(
                    MaxPool2dConfig::new([size, size])
                        .with_strides([size, size])
                        .init(),
                ),
                LayerSpec::Flatten => Layer::Flatten(Flatten),
                LayerSpec::Linear { inputs, outputs } => {
                    let mut linear = LinearConfig::new(inputs, outputs)
                        .with_initializer(linear_init.clone())
                        .init(device);
                    linear.bias = zero_bias(linear.bias);
                    Layer::Linear(linear)
                }
            })
            .collect();
        Self { layers }
    }

    /// Pixels scaled to 0..=1, `[batch, 1, 28, 28]` -> logits `[batch, 10]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.run(images, None)
    }

    /// The largest absolute value of every layer's output over `images` (for calibration).
    pub fn output_maxima(&self, images: Tensor<B, 4>) -> Vec<f32> {
        let mut maxima = vec![0f32; self.layers.len()];
        self.run(images, Some(&mut |index, max| maxima[index] = max));
        maxima
    }

    /// Runs the layers; `observe(index, max)`, if given, receives each layer's largest
    /// absolute output.
    fn run(
        &self,
        images: Tensor<B, 4>,
        mut observe: Option<&mut dyn FnMut(usize, f32)>,
    ) -> Tensor<B, 2> {
        let max_of = |x: &Activation<B>| -> f32 {
            let max = match x {
                Activation::Map(t) => t.clone().abs().max(),
                Activation::Flat(t) => t.clone().abs().max(),
            };
            max.into_scalar().elem::<f32>()
        };
        let mut x = Activation::Map(images);
        for (index, layer) in self.layers.iter().enumerate() {
            x = match (layer, x) {
                (Layer::Conv(conv), Activation::Map(t)) => {
                    Activation::Map(crate::model::conv::forward(conv, t))
                }
                (Layer::BatchNorm(bn), Activation::Map(t)) => Activation::Map(batch_norm(bn, t)),
                (Layer::Relu(relu), Activation::Map(t)) => Activation::Map(relu.forward(t)),
                (Layer::Relu(relu), Activation::Flat(t)) => Activation::Flat(relu.forward(t)),
                (Layer::LeakyRelu(act), Activation::Map(t)) => Activation::Map(act.forward(t)),
                (Layer::LeakyRelu(act), Activation::Flat(t)) => Activation::Flat(act.forward(t)),
                (Layer::MaxPool(pool), Activation::Map(t)) => Activation::Map(pool.forward(t)),
                (Layer::Flatten(_), Activation::Map(t)) => Activation::Flat(t.flatten(1, 3)),
                (Layer::Linear(linear), Activation::Flat(t)) => Activation::Flat(linear.forward(t)),
                // `summarize` rejects such orders for every ModelKind; a test checks all kinds.
                (_, _) => unreachable!("layer order validated by summarize()"),
            };
            if let Some(observe) = observe.as_mut() {
                observe(index, max_of(&x));
            }
        }
        match x {
            Activation::Flat(logits) => logits,
            Activation::Map(_) => unreachable!("every ModelKind ends in Linear"),
        }
    }
}

/// Batch normalisation with burn's `BatchNorm` parameters and semantics (biased batch
/// variance, running statistics with its momentum), computed so that every per-channel
/// broadcast has the `[N, C, 1, 1]` contiguous form burn-flex runs on its SIMD fast path.
/// burn's own forward broadcasts `[1, C, 1, 1]` and transposes, which burn-flex walks
/// element by element: it made the `edge` model's training step 2-3x slower.
fn batch_norm<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, _, _] = x.dims();
    let device = x.device();
    let per_channel = |t: Tensor<B, 4>| t.mean_dim(3).mean_dim(2).mean_dim(0);
    let (mean, var) = if B::ad_enabled(&device) {
        let mean = per_channel(x.clone());
        let var = per_channel((x.clone() - mean.clone().repeat_dim(0, n)).square());
        let momentum = bn.momentum;
        let update = |running: Tensor<B, 1>, batch: Tensor<B, 4>| {
            running.mul_scalar(1.0 - momentum) + batch.detach().reshape([c]).mul_scalar(momentum)
        };
        bn.running_mean
            .update(update(bn.running_mean.value_sync(), mean.clone()).detach());
        bn.running_var
            .update(update(bn.running_var.value_sync(), var.clone()).detach());
        (mean, var)
    } else {
        (
            bn.running_mean.value().reshape([1, c, 1, 1]),
            bn.running_var.value().reshape([1, c, 1, 1]),
        )
    };
    let scale = bn.gamma.val().reshape([1, c, 1, 1]) / var.add_scalar(bn.epsilon).sqrt();
    let shift = bn.beta.val().reshape([1, c, 1, 1]) - mean * scale.clone();
    x * scale.repeat_dim(0, n) + shift.repeat_dim(0, n)
}

#[cfg(test)]
mod tests;
