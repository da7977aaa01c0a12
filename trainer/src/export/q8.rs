//! Post-training static int8 quantization into the runtime's blob format.
//!
//! Weights: symmetric per output channel (zero point 0, -127..=127). Biases: i32 in units
//! of input scale x weight scale. Activations: u8 after ReLU (zero point 0, the input is
//! the raw pixels at scale 1/255), i8 after LeakyReLU; their scales are the largest values
//! seen on calibration images. Requantization is integer-only: a Q31 multiplier and a
//! shift per output channel, as TFLite Micro and CMSIS-NN do.

use fmnist_runtime::blob::{self, Layer, Model, Output, QuantConv2d, QuantLinear, Requant};
use fmnist_runtime::{CLASS_NAMES, IMAGE_SIDE};

use super::{ExportError, FoldedLayer};

/// Everything a quantized layer owns; the blob borrows from it.
struct OwnedRequant {
    bias: Vec<u8>,
    multiplier: Vec<u8>,
    shift: Vec<u8>,
    output: Output,
}

enum OwnedLayer {
    Conv {
        conv: FoldedConvMeta,
        weights: Vec<u8>,
        requant: OwnedRequant,
    },
    Linear {
        inputs: u32,
        outputs: u32,
        weights: Vec<u8>,
        requant: OwnedRequant,
    },
    MaxPool(u8),
    Flatten,
}

struct FoldedConvMeta {
    in_channels: u16,
    out_channels: u16,
    kernel: u8,
    padding: u8,
    in_height: u16,
    in_width: u16,
}

/// A quantized model that owns its tensors; [`QuantizedModel::encode`] writes the blob.
pub struct QuantizedModel {
    layers: Vec<OwnedLayer>,
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

fn weight_scales(weight: &[f32], outputs: usize) -> Vec<f32> {
    let per = weight.len() / outputs;
    (0..outputs)
        .map(|o| {
            let max = weight[o * per..(o + 1) * per]
                .iter()
                .fold(0f32, |m, w| m.max(w.abs()));
            if max > 0.0 {
                max / 127.0
            } else {
                1.0
            }
        })
        .collect()
}

fn quantize_weights(weight: &[f32], scales: &[f32]) -> Vec<i8> {
    let per = weight.len() / scales.len();
    weight
        .iter()
        .enumerate()
        .map(|(i, w)| (w / scales[i / per]).round().clamp(-127.0, 127.0) as i8)
        .collect()
}

fn requant(
    bias: &[f32],
    in_scale: f32,
    w_scales: &[f32],
    out_scale: f32,
    output: Output,
) -> OwnedRequant {
    let mut owned = OwnedRequant {
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
        owned.bias.extend_from_slice(&q.to_le_bytes());
        owned.multiplier.extend_from_slice(&m.to_le_bytes());
        owned.shift.push(s as u8);
    }
    owned
}

/// Quantizes folded layers. `output_maxima[i]` is the largest absolute value of the output
/// of folded layer `i` on the calibration images (after its activation where one follows).
pub fn quantize(
    layers: &[FoldedLayer],
    output_maxima: &[f32],
) -> Result<QuantizedModel, ExportError> {
    let unsupported =
        |index: usize, layer: &FoldedLayer, reason: &'static str| ExportError::Unsupported {
            index,
            layer: layer_name(layer).to_string(),
            reason,
        };
    let mut shape = [1usize, IMAGE_SIDE, IMAGE_SIDE]; // C, H, W before flatten
    let mut flat_from: Option<[usize; 3]> = None;
    let mut in_scale = 1.0f32 / 255.0;
    let mut logit_scale = 1.0f32;
    let mut owned = Vec::new();
    let mut index = 0;
    while index < layers.len() {
        let layer = &layers[index];
        // The activation fused into a conv or linear layer, and the range after it.
        let (activation, range_index) = match layers.get(index + 1) {
            Some(FoldedLayer::Relu) => (Some(Output::Relu), index + 1),
            Some(FoldedLayer::LeakyRelu { slope }) => {
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
        match layer {
            FoldedLayer::Conv {
                inputs,
                outputs,
                kernel,
                padding,
                weight,
                bias,
            } => {
                if output == Output::Logits {
                    return Err(unsupported(
                        index,
                        layer,
                        "the int8 engine needs a ReLU or LeakyReLU after a convolution",
                    ));
                }
                let scales = weight_scales(weight, *outputs);
                let q = quantize_weights(weight, &scales);
                // [out][in][ky][kx] -> [out][ky][kx][in]
                let (k, cin) = (*kernel, *inputs);
                let mut hwc = vec![0u8; q.len()];
                for o in 0..*outputs {
                    for i in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                hwc[((o * k + ky) * k + kx) * cin + i] =
                                    q[((o * cin + i) * k + ky) * k + kx] as u8;
                            }
                        }
                    }
                }
                let [_, h, w] = shape;
                owned.push(OwnedLayer::Conv {
                    conv: FoldedConvMeta {
                        in_channels: cin as u16,
                        out_channels: *outputs as u16,
                        kernel: k as u8,
                        padding: *padding as u8,
                        in_height: h as u16,
                        in_width: w as u16,
                    },
                    weights: hwc,
                    requant: requant(bias, in_scale, &scales, out_scale, output),
                });
                shape = [*outputs, h + 2 * padding - k + 1, w + 2 * padding - k + 1];
                in_scale = out_scale;
                index = range_index + 1;
            }
            FoldedLayer::Linear {
                inputs,
                outputs,
                weight,
                bias,
            } => {
                if output == Output::Logits && !last {
                    return Err(unsupported(
                        index,
                        layer,
                        "a linear layer without activation must be the last",
                    ));
                }
                let scales = weight_scales(weight, *outputs);
                let q = quantize_weights(weight, &scales);
                // Inputs flattened from C, H, W (burn) are read by the engine in H, W, C order.
                let weights: Vec<u8> = match flat_from.take() {
                    Some([c, h, w]) if c * h * w == *inputs && c > 1 => {
                        let mut hwc = vec![0u8; q.len()];
                        for o in 0..*outputs {
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
                };
                if output == Output::Logits {
                    logit_scale = out_scale;
                }
                owned.push(OwnedLayer::Linear {
                    inputs: *inputs as u32,
                    outputs: *outputs as u32,
                    weights,
                    requant: requant(bias, in_scale, &scales, out_scale, output),
                });
                shape = [*outputs, 1, 1];
                in_scale = out_scale;
                index = range_index + 1;
            }
            FoldedLayer::MaxPool { size } => {
                owned.push(OwnedLayer::MaxPool(*size as u8));
                shape = [shape[0], shape[1] / size, shape[2] / size];
                index += 1;
            }
            FoldedLayer::Flatten => {
                owned.push(OwnedLayer::Flatten);
                flat_from = Some(shape);
                shape = [shape.iter().product(), 1, 1];
                index += 1;
            }
            FoldedLayer::Relu | FoldedLayer::LeakyRelu { .. } => {
                return Err(unsupported(
                    index,
                    layer,
                    "an activation must follow a convolution or linear layer",
                ));
            }
        }
    }
    Ok(QuantizedModel {
        layers: owned,
        logit_scale,
    })
}

fn layer_name(layer: &FoldedLayer) -> &'static str {
    match layer {
        FoldedLayer::Conv { .. } => "Conv",
        FoldedLayer::Relu => "Relu",
        FoldedLayer::LeakyRelu { .. } => "LeakyRelu",
        FoldedLayer::MaxPool { .. } => "MaxPool",
        FoldedLayer::Flatten => "Flatten",
        FoldedLayer::Linear { .. } => "Linear",
    }
}

impl QuantizedModel {
    /// The blob's model description, borrowing this model's tensors.
    fn describe<'a>(&'a self, card: &BlobCard<'a>, arena_bytes: u32) -> Model<'a> {
        let borrow = |r: &'a OwnedRequant| Requant {
            bias: &r.bias,
            multiplier: &r.multiplier,
            shift: &r.shift,
            output: r.output,
        };
        let layers = self
            .layers
            .iter()
            .map(|layer| match layer {
                OwnedLayer::Conv {
                    conv,
                    weights,
                    requant,
                } => Layer::Conv(QuantConv2d {
                    in_channels: conv.in_channels,
                    out_channels: conv.out_channels,
                    kernel: conv.kernel,
                    padding: conv.padding,
                    in_height: conv.in_height,
                    in_width: conv.in_width,
                    weights,
                    requant: borrow(requant),
                }),
                OwnedLayer::Linear {
                    inputs,
                    outputs,
                    weights,
                    requant,
                } => Layer::Linear(QuantLinear {
                    inputs: *inputs,
                    outputs: *outputs,
                    weights,
                    requant: borrow(requant),
                }),
                OwnedLayer::MaxPool(size) => Layer::MaxPool { size: *size },
                OwnedLayer::Flatten => Layer::Flatten,
            })
            .collect();
        Model {
            kind: card.kind,
            class_names: CLASS_NAMES,
            parameters: card.parameters,
            macs: card.macs,
            input_scale: 1.0 / 255.0,
            logit_scale: self.logit_scale,
            float_accuracy: card.float_accuracy,
            int8_accuracy: card.int8_accuracy,
            calibration_images: card.calibration_images,
            arena_bytes,
            layers,
        }
    }

    /// The blob bytes, with the arena size the runtime computes for these layers.
    pub fn encode(&self, card: &BlobCard<'_>) -> anyhow::Result<Vec<u8>> {
        let arena = fmnist_runtime::engine::arena_for(&self.describe(card, 0))
            .map_err(|e| anyhow::anyhow!("the quantized model is not runnable: {e}"))?;
        let bytes = blob::encode(&self.describe(card, arena as u32))?;
        // The exporter refuses to write what the engine would refuse to load.
        fmnist_runtime::Plan::new(&bytes)
            .map_err(|e| anyhow::anyhow!("the quantized model is not loadable: {e}"))?;
        Ok(bytes)
    }
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
