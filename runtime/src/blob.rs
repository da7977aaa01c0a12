//! The int8 model blob: one versioned format, serialized with `postcard`, read in place.
//!
//! ```text
//! Envelope { magic: b"FMQ8", version: u16, checksum: u32 (CRC-32 of payload), payload: bytes }
//! payload = Model { kind, class names, scales, accuracies, arena size, layers, temperature }
//! ```
//!
//! Version 2 added [`Model::temperature`] (the probabilities' calibration) after the
//! layers; a version 1 payload is a version 2 payload without it, and the engine reads it
//! as temperature 1 (uncalibrated probabilities).
//!
//! Deserialization borrows every tensor and string from the blob (zero-copy), so firmware
//! can keep the blob in flash (`include_bytes!`) and spend RAM only on activations. Tensors
//! are byte slices: `i8` weights as bytes, `i32` biases and multipliers little-endian, read
//! at use. Nothing here is trusted until [`crate::engine::Plan::new`] has validated it.

use serde::{Deserialize, Serialize};

use crate::classes::CLASS_COUNT;

/// The first four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"FMQ8";
/// The format version this crate writes (it also reads [`FORMAT_VERSION_1`]).
pub const FORMAT_VERSION: u16 = 2;
/// The previous format version: no [`Model::temperature`], read as temperature 1.
pub const FORMAT_VERSION_1: u16 = 1;
/// The most layers a blob may have.
pub const MAX_LAYERS: usize = 32;

/// The outer layer of a blob, checked before anything else is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<'a> {
    /// [`MAGIC`].
    pub magic: [u8; 4],
    /// [`FORMAT_VERSION`].
    pub version: u16,
    /// CRC-32 (IEEE) of `payload`.
    pub checksum: u32,
    /// The postcard-encoded [`Model`].
    #[serde(borrow)]
    pub payload: &'a [u8],
}

/// A quantized classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model<'a> {
    /// The model kind (`mlp`, `cnn`, `edge`).
    #[serde(borrow)]
    pub kind: &'a str,
    /// Class names in label order.
    #[serde(borrow)]
    pub class_names: [&'a str; CLASS_COUNT],
    /// Trainable parameters of the float model.
    pub parameters: u32,
    /// Multiply-accumulates per image.
    pub macs: u32,
    /// Real value of one input step: pixel `p` (u8) means `p * input_scale` (1/255).
    pub input_scale: f32,
    /// Real value of one step of the final logits.
    pub logit_scale: f32,
    /// Test accuracy of the float model at export, if measured.
    pub float_accuracy: Option<f32>,
    /// Test accuracy of this int8 model at export, if measured.
    pub int8_accuracy: Option<f32>,
    /// Training images used to calibrate activation scales.
    pub calibration_images: u32,
    /// Bytes of working memory ("arena") classification needs.
    pub arena_bytes: u32,
    /// The layers, in order.
    #[serde(borrow)]
    pub layers: heapless::Vec<Layer<'a>, MAX_LAYERS>,
    /// The softmax temperature `T` fitted on the validation split (temperature scaling):
    /// probabilities are `softmax(logits * logit_scale / T)`. It changes no class, only
    /// how confident the probabilities are. 1 is uncalibrated.
    pub temperature: f32,
}

/// One layer. Activations are laid out height, width, channel (HWC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Layer<'a> {
    /// Convolution with fused bias, requantization and activation.
    Conv(#[serde(borrow)] QuantConv2d<'a>),
    /// Fully connected layer with fused bias, requantization and activation.
    Linear(#[serde(borrow)] QuantLinear<'a>),
    /// Non-overlapping `size` x `size` max pooling, stride `size`, floor.
    MaxPool {
        /// Window side and stride.
        size: u8,
    },
    /// `[H, W, C]` becomes a vector in H, W, C order (no data moves).
    Flatten,
}

impl<'a> Layer<'a> {
    /// The i8 weights (as bytes) of a convolution or linear layer; `None` for the others.
    pub fn weights(&self) -> Option<&'a [u8]> {
        match self {
            Layer::Conv(conv) => Some(conv.weights),
            Layer::Linear(linear) => Some(linear.weights),
            Layer::MaxPool { .. } | Layer::Flatten => None,
        }
    }
}

/// What follows the accumulation, and the output element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// ReLU: u8 output, zero point 0, clamped to 0..=255.
    Relu,
    /// LeakyReLU: i8 output, zero point 0; negative values times `slope_q15 / 32768`.
    LeakyRelu {
        /// The negative slope in Q15.
        slope_q15: i16,
    },
    /// The final logits: i32, no clamping, in units of [`Model::logit_scale`].
    Logits,
}

/// An int8 convolution: stride 1, square kernel, symmetric zero padding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantConv2d<'a> {
    /// Input channels.
    pub in_channels: u16,
    /// Output channels.
    pub out_channels: u16,
    /// Kernel side.
    pub kernel: u8,
    /// Zero padding on each side.
    pub padding: u8,
    /// Input height.
    pub in_height: u16,
    /// Input width.
    pub in_width: u16,
    /// i8 weights, `[out][kernel_y][kernel_x][in]`, symmetric per output channel.
    #[serde(borrow)]
    pub weights: &'a [u8],
    /// Per-channel requantization, bias and activation.
    #[serde(borrow)]
    pub requant: Requant<'a>,
}

/// An int8 fully connected layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantLinear<'a> {
    /// Input features.
    pub inputs: u32,
    /// Output features.
    pub outputs: u32,
    /// i8 weights, `[out][in]`; inputs in the HWC order of the previous layer.
    #[serde(borrow)]
    pub weights: &'a [u8],
    /// Per-channel requantization, bias and activation.
    #[serde(borrow)]
    pub requant: Requant<'a>,
}

/// Per output channel: `out = round(acc * multiplier / 2^(31 + shift))`, where
/// `acc = bias + sum(input * weight)`; then the activation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requant<'a> {
    /// i32 little-endian per output channel, in units of input scale x weight scale.
    #[serde(borrow)]
    pub bias: &'a [u8],
    /// i32 little-endian per output channel, in `[2^30, 2^31)` (or 0).
    #[serde(borrow)]
    pub multiplier: &'a [u8],
    /// i8 per output channel, in `-30..=31`.
    #[serde(borrow)]
    pub shift: &'a [u8],
    /// The activation and output type.
    pub output: Output,
}

/// CRC-32 (IEEE 802.3, reflected, as zip and PNG use).
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |crc, &b| {
        TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

/// The bytes a version 1 payload lacks: [`Model::temperature`] 1.0, as postcard writes it.
const TEMPERATURE_ONE: [u8; 4] = 1f32.to_le_bytes();

/// A postcard source reading the payload, then (for a version 1 payload) the temperature
/// it lacks. One source for both versions, so that the model's decoder is compiled once
/// (it is most of the engine's read-only code).
struct Payload<'a> {
    bytes: &'a [u8],
    missing: &'a [u8],
}

impl<'a> postcard::de_flavors::Flavor<'a> for Payload<'a> {
    type Remainder = usize;
    type Source = &'a [u8];

    fn pop(&mut self) -> postcard::Result<u8> {
        self.try_take_n(1).map(|b| b[0])
    }

    fn try_take_n(&mut self, count: usize) -> postcard::Result<&'a [u8]> {
        // A read never straddles the end of the payload: the only field after it is the
        // temperature, read whole.
        let source = if self.bytes.is_empty() {
            &mut self.missing
        } else {
            &mut self.bytes
        };
        if source.len() < count {
            return Err(postcard::Error::DeserializeUnexpectedEnd);
        }
        let (taken, rest) = source.split_at(count);
        *source = rest;
        Ok(taken)
    }

    /// The bytes left unread: the payload's own, and those of a version 1 payload that
    /// were read as the temperature.
    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.bytes.len() + TEMPERATURE_ONE.len() * usize::from(!self.missing.is_empty()))
    }
}

/// Decodes the payload of a blob of format `version` ([`FORMAT_VERSION`], or
/// [`FORMAT_VERSION_1`], whose model gets temperature 1). Returns the model and the
/// number of bytes that follow it (0 in a well-formed payload). Validates nothing else:
/// [`crate::engine::Plan::new`] does.
pub fn decode_payload(version: u16, payload: &[u8]) -> Result<(Model<'_>, usize), postcard::Error> {
    let mut deserializer = postcard::Deserializer::from_flavor(Payload {
        bytes: payload,
        missing: if version == FORMAT_VERSION_1 {
            &TEMPERATURE_ONE
        } else {
            &[]
        },
    });
    let model = Model::deserialize(&mut deserializer)?;
    Ok((model, deserializer.finalize()?))
}

/// The format version a blob states, if its envelope decodes (nothing else is checked).
pub fn version(bytes: &[u8]) -> Option<u16> {
    postcard::take_from_bytes::<Envelope<'_>>(bytes)
        .ok()
        .map(|(envelope, _)| envelope.version)
}

/// Encodes a model as a blob (`std` only: the trainer's exporter uses it).
#[cfg(feature = "std")]
pub fn encode(model: &Model<'_>) -> Result<Vec<u8>, postcard::Error> {
    let payload = postcard::to_allocvec(model)?;
    postcard::to_allocvec(&Envelope {
        magic: MAGIC,
        version: FORMAT_VERSION,
        checksum: crc32(&payload),
        payload: &payload,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_of_the_standard_check_string() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}
