//! Random int8 models of awkward shapes and test images, for the tests that hold every
//! set of kernels to the portable ones (`runtime/tests/fast.rs` on x86, `tests/cortex_m.rs`
//! on emulated Cortex-M cores). Included by path; not every includer uses every item.
#![allow(dead_code)]

use fmnist_runtime::blob::{self, Layer, Model, Output, QuantConv2d, QuantLinear, Requant};
use fmnist_runtime::engine::{arena_for, macs_for};
use fmnist_runtime::{CLASS_NAMES, IMAGE_PIXELS};

/// xorshift64*: reproducible test data without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Images with structure (blobs of light on black), flat areas and pure noise, so that
/// activations reach both ReLU's zero and the 255 clamp.
pub fn images(rng: &mut Rng, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * IMAGE_PIXELS);
    for i in 0..count {
        let (cx, cy, r) = (
            rng.below(28) as i64,
            rng.below(28) as i64,
            3 + rng.below(10) as i64,
        );
        let level = rng.next() as u8;
        for y in 0..28i64 {
            for x in 0..28i64 {
                let inside = (x - cx).pow(2) + (y - cy).pow(2) <= r * r;
                out.push(match i % 3 {
                    0 if inside => level,
                    0 => 0,
                    1 => level.wrapping_add((x * y) as u8),
                    _ => rng.next() as u8,
                });
            }
        }
    }
    out
}

/// Owned tensors of one random layer.
pub struct Tensors {
    pub weights: Vec<u8>,
    pub bias: Vec<u8>,
    pub multiplier: Vec<u8>,
    pub shift: Vec<u8>,
}

pub fn conv(
    t: &Tensors,
    cin: usize,
    cout: usize,
    k: usize,
    p: usize,
    side: usize,
    output: Output,
) -> Layer<'_> {
    Layer::Conv(QuantConv2d {
        in_channels: cin as u16,
        out_channels: cout as u16,
        kernel: k as u8,
        padding: p as u8,
        in_height: side as u16,
        in_width: side as u16,
        weights: &t.weights,
        requant: t.requant(output),
    })
}

impl Tensors {
    pub fn random(rng: &mut Rng, taps: usize, channels: usize, shift: (i64, i64)) -> Tensors {
        Tensors {
            weights: rng.bytes(taps * channels),
            bias: (0..channels)
                .flat_map(|_| ((rng.below(40_001) as i32) - 20_000).to_le_bytes())
                .collect(),
            multiplier: (0..channels)
                .flat_map(|_| ((1u32 << 30) + rng.below(1 << 30) as u32).to_le_bytes())
                .collect(),
            shift: (0..channels)
                .map(|_| (shift.0 + rng.below((shift.1 - shift.0 + 1) as u64) as i64) as i8 as u8)
                .collect(),
        }
    }

    pub fn requant(&self, output: Output) -> Requant<'_> {
        Requant {
            bias: &self.bias,
            multiplier: &self.multiplier,
            shift: &self.shift,
            output,
        }
    }
}

/// The shape of a two-convolution model: (channels 1, kernel 1, padding 1, channels 2,
/// kernel 2, padding 2, pool).
pub type Shape = (usize, usize, usize, usize, usize, usize, usize);

/// A two-convolution model of the given shapes over these tensors, ReLU after both,
/// encoded.
pub fn two_convolutions(
    shape: Shape,
    first: &Tensors,
    second: &Tensors,
    logits: &Tensors,
) -> Vec<u8> {
    two_convolutions_with(shape, [Output::Relu; 2], first, second, logits)
}

/// [`two_convolutions`] with the given activations after the two convolutions.
pub fn two_convolutions_with(
    shape: Shape,
    outputs: [Output; 2],
    first: &Tensors,
    second: &Tensors,
    logits: &Tensors,
) -> Vec<u8> {
    let (c1, k1, p1, c2, k2, p2, pool) = shape;
    let side1 = 28 + 2 * p1 - k1 + 1;
    let side2 = side1 + 2 * p2 - k2 + 1;
    let flat = (side2 / pool) * (side2 / pool) * c2;
    let mut model = Model {
        kind: "test",
        class_names: CLASS_NAMES,
        parameters: 0,
        macs: 0,
        input_scale: 1.0 / 255.0,
        logit_scale: 0.1,
        float_accuracy: None,
        int8_accuracy: None,
        calibration_images: 0,
        arena_bytes: 0,
        layers: Default::default(),
        temperature: 1.0,
    };
    for layer in [
        conv(first, 1, c1, k1, p1, 28, outputs[0]),
        conv(second, c1, c2, k2, p2, side1, outputs[1]),
        Layer::MaxPool { size: pool as u8 },
        Layer::Flatten,
        Layer::Linear(QuantLinear {
            inputs: flat as u32,
            outputs: 10,
            weights: &logits.weights,
            requant: logits.requant(Output::Logits),
        }),
    ] {
        model.layers.push(layer).expect("5 layers fit");
    }
    model.arena_bytes = arena_for(&model).expect("valid shapes") as u32;
    model.macs = macs_for(&model).expect("valid shapes") as u32;
    blob::encode(&model).expect("encodes")
}

/// The tap count of each layer of a two-convolution model: first, second, logits.
pub fn taps(shape: Shape) -> [usize; 3] {
    let (c1, k1, p1, c2, k2, p2, pool) = shape;
    let side1 = 28 + 2 * p1 - k1 + 1;
    let side2 = side1 + 2 * p2 - k2 + 1;
    [k1 * k1, k2 * k2 * c1, (side2 / pool) * (side2 / pool) * c2]
}

/// Two-convolution models of awkward shapes, with their activations: channel counts that
/// are not multiples of 4 or 8 (tap by tap copies), filters whose taps are not a multiple
/// of the kernels' group (a partial last group) or fewer than one group, odd channel
/// counts (a repeated last filter), pixel counts that are not multiples of 4 (a repeated
/// last pixel), pools over channel counts the vector pools decline, signed activations
/// (LeakyReLU into the second convolution and into the logits, 1,053 of them: a partial
/// last word). Each faster set of kernels is held to the portable ones on these.
pub const AWKWARD: [(Shape, [Output; 2]); 9] = {
    const RELU: [Output; 2] = [Output::Relu; 2];
    const LEAKY: Output = Output::LeakyRelu { slope_q15: 3277 };
    [
        ((16, 3, 1, 32, 3, 1, 2), RELU),
        ((10, 5, 0, 20, 5, 0, 2), RELU),
        ((16, 3, 1, 33, 3, 1, 2), RELU),
        ((3, 1, 0, 17, 3, 2, 3), RELU),
        ((7, 4, 1, 70, 2, 0, 4), RELU),
        ((5, 3, 1, 20, 2, 0, 2), RELU),
        ((3, 1, 0, 5, 1, 0, 2), RELU),
        ((12, 3, 1, 9, 3, 0, 3), [LEAKY, Output::Relu]),
        ((8, 2, 1, 13, 3, 1, 3), [Output::Relu, LEAKY]),
    ]
};
