//! Hostile but well-formed blobs (issue 12): every blob `Plan::new` accepts runs to the
//! right answer within the limits, on every ISA, with no overflow in any build profile;
//! everything else is refused before anything is allocated for it.

use fmnist_runtime::blob::{
    self, Envelope, Layer, Model, Output, QuantConv2d, QuantLinear, Requant, FORMAT_VERSION, MAGIC,
};
use fmnist_runtime::engine::{arena_for, macs_for};
use fmnist_runtime::{BlobError, FastPlan, Isa, Limits, Logits, Plan, CLASS_NAMES, IMAGE_PIXELS};

/// Test tensors live as long as the test binary.
fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

fn le(values: &[i32]) -> &'static [u8] {
    leak(values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// Per-channel requantization: `(bias, multiplier, shift)` for each channel.
fn requant(channels: &[(i32, i32, i8)], output: Output) -> Requant<'static> {
    Requant {
        bias: le(&channels.iter().map(|c| c.0).collect::<Vec<_>>()),
        multiplier: le(&channels.iter().map(|c| c.1).collect::<Vec<_>>()),
        shift: leak(channels.iter().map(|c| c.2 as u8).collect()),
        output,
    }
}

/// `round(acc * 2^30 / 2^30)`: the value is the accumulator.
const IDENTITY: (i32, i8) = (1 << 30, -1);

fn linear(inputs: u32, weights: Vec<u8>, requant: Requant<'static>) -> Layer<'static> {
    Layer::Linear(QuantLinear {
        inputs,
        outputs: (weights.len() / inputs as usize) as u32,
        weights: leak(weights),
        requant,
    })
}

fn conv(cin: u16, cout: u16, kernel: u8, padding: u8, side: u16) -> Layer<'static> {
    let taps = usize::from(kernel) * usize::from(kernel) * usize::from(cin);
    Layer::Conv(QuantConv2d {
        in_channels: cin,
        out_channels: cout,
        kernel,
        padding,
        in_height: side,
        in_width: side,
        weights: leak(vec![1; taps * usize::from(cout)]),
        requant: requant(&vec![(0, IDENTITY.0, 8); usize::from(cout)], Output::Relu),
    })
}

/// A model of `layers` whose stated arena and MACs are what the engine computes (when it
/// can compute them: the shapes are valid).
fn model(layers: Vec<Layer<'static>>) -> Model<'static> {
    let mut model = Model {
        kind: "hostile",
        class_names: CLASS_NAMES,
        parameters: 0,
        macs: 0,
        input_scale: 1.0 / 255.0,
        logit_scale: 0.1,
        float_accuracy: None,
        int8_accuracy: None,
        calibration_images: 0,
        arena_bytes: 0,
        layers: layers.into_iter().collect(),
        temperature: 1.0,
    };
    if let (Ok(arena), Ok(macs)) = (arena_for(&model), macs_for(&model)) {
        model.arena_bytes = u32::try_from(arena).unwrap_or(u32::MAX);
        model.macs = u32::try_from(macs).unwrap_or(u32::MAX);
    }
    model
}

fn encode(model: &Model<'_>) -> Vec<u8> {
    blob::encode(model).expect("encodes")
}

/// Logits of `pixels` through the portable engine, after checking that every vector ISA
/// this CPU has gives the same logits bit for bit.
fn logits_on_every_isa(bytes: &[u8], pixels: &[u8; IMAGE_PIXELS]) -> Logits {
    let plan = Plan::new(bytes).expect("a valid blob");
    let mut arena = vec![0u8; plan.arena_bytes()];
    let portable = plan.classify(pixels, &mut arena).expect("classifies");
    for isa in Isa::ALL {
        if !isa.supported() {
            eprintln!("this CPU lacks {}, not compared", isa.name());
            continue;
        }
        let fast = FastPlan::with_isa(plan.clone(), isa);
        let mut arena = vec![0u8; fast.arena_bytes()];
        let got = fast.classify(pixels, &mut arena).expect("classifies");
        assert_eq!(
            got,
            portable,
            "{} differs from the portable engine",
            isa.name()
        );
    }
    portable
}

/// The class the probabilities rank first (what the CLI and the C ABI report).
fn top_probability(logits: &Logits) -> usize {
    let probabilities = logits.probabilities();
    assert!(
        probabilities.iter().all(|p| p.is_finite() && *p >= 0.0),
        "{probabilities:?}"
    );
    let sum: f32 = probabilities.iter().sum();
    assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");
    fmnist_runtime::metrics::ranking(&probabilities)[0]
}

/// Flatten, then one linear layer to the logits with per-class weights (one per pixel)
/// and requantization.
fn logits_model(weights: [i8; 10], channels: [(i32, i32, i8); 10]) -> Model<'static> {
    let weights = weights
        .iter()
        .flat_map(|&w| std::iter::repeat_n(w as u8, IMAGE_PIXELS))
        .collect();
    model(vec![
        Layer::Flatten,
        linear(
            IMAGE_PIXELS as u32,
            weights,
            requant(&channels, Output::Logits),
        ),
    ])
}

#[test]
fn logits_that_can_leave_i32_are_refused_at_validation() {
    // Trouser (1) and Dress (3): shift -30 with a multiplier near 2^31 multiplies a large
    // accumulator (784 x 255 x +-127) by about 2^30, which would saturate at i32::MIN and
    // i32::MAX; two classes saturating the same way would tie, and the first would win
    // whatever their exact logits (2.7x10^16 against 2.1x10^14, say). Such a blob is
    // refused, naming the layer.
    let mut weights = [0i8; 10];
    let mut channels: [(i32, i32, i8); 10] =
        core::array::from_fn(|c| (10 * c as i32, IDENTITY.0, IDENTITY.1));
    weights[1] = -127;
    weights[3] = 127;
    channels[1] = (-5, i32::MAX - 7, -30);
    channels[3] = (5, i32::MAX - 7, -30);
    let bytes = encode(&logits_model(weights, channels));
    let err = Plan::new(&bytes).unwrap_err();
    assert!(
        matches!(err, BlobError::BadLayer { index: 1, problem } if problem.contains("32 bits")),
        "{err}"
    );
    // Both ends: a shift one step larger than the bound allows is refused, the bound
    // itself accepted. 784 x 255 x 127 = 25,389,840; with multiplier 2^30 and shift s the
    // logit is acc / 2^(1 + s): within i32 from s = -7 (25,389,840 x 2^6 < 2^31 - 1,
    // x 2^7 is not).
    for (shift, accepted) in [(-7i8, true), (-8, false)] {
        let mut channels: [(i32, i32, i8); 10] =
            core::array::from_fn(|_| (0, IDENTITY.0, IDENTITY.1));
        channels[3] = (0, 1 << 30, shift);
        let mut weights = [0i8; 10];
        weights[3] = 127;
        let bytes = encode(&logits_model(weights, channels));
        assert_eq!(Plan::new(&bytes).is_ok(), accepted, "shift {shift}");
        if accepted {
            let logits = logits_on_every_isa(&bytes, &[255; IMAGE_PIXELS]);
            assert_eq!(logits.values[3], 25_389_840 << (-1 - i32::from(shift)));
        }
    }
}

#[test]
fn logits_too_close_for_f32_keep_their_ranking() {
    // 2^31 - 4 (Pullover, 2) and 2^31 - 2 (Sandal, 5) are the same f32: converting the
    // logits before subtracting the largest made them equal, and Pullover came first.
    let mut channels: [(i32, i32, i8); 10] = core::array::from_fn(|_| (0, IDENTITY.0, -1));
    channels[2] = ((1 << 30) - 2, 1 << 30, -2); // x2
    channels[5] = ((1 << 30) - 1, 1 << 30, -2);
    let bytes = encode(&logits_model([0; 10], channels));
    let logits = logits_on_every_isa(&bytes, &[0; IMAGE_PIXELS]);
    assert_eq!(logits.values[2], i32::MAX - 4 + 1);
    assert_eq!(logits.values[5], i32::MAX - 1);
    assert_eq!(logits.class(), 5);
    assert_eq!(top_probability(&logits), 5);
    let p = logits.probabilities();
    assert!(p[5] > p[2], "{p:?}");
}

#[test]
fn leaky_relu_of_a_large_negative_value_clamps_instead_of_flipping() {
    // One hidden LeakyReLU unit (slope 0.5) whose value is -199,920: x 16,384 that is
    // below i32::MIN; wrapped, it became +127 and the answer flipped. Logits: [h, -h, 0..].
    let hidden = linear(
        IMAGE_PIXELS as u32,
        vec![0; IMAGE_PIXELS],
        requant(
            &[(-199_920, IDENTITY.0, IDENTITY.1)],
            Output::LeakyRelu { slope_q15: 16_384 },
        ),
    );
    let mut weights = vec![0u8; 10];
    weights[0] = 1;
    weights[1] = (-1i8) as u8;
    let logits = linear(
        1,
        weights,
        requant(&[(0, IDENTITY.0, IDENTITY.1); 10], Output::Logits),
    );
    let bytes = encode(&model(vec![Layer::Flatten, hidden, logits]));
    let logits = logits_on_every_isa(&bytes, &[17; IMAGE_PIXELS]);
    assert_eq!(logits.values, [-128, 128, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(logits.class(), 1);
    assert_eq!(top_probability(&logits), 1);
}

/// The small valid model of these tests, as a model description.
fn small() -> Model<'static> {
    logits_model(
        core::array::from_fn(|c| c as i8 - 5),
        [(0, IDENTITY.0, 8); 10],
    )
}

#[test]
fn logit_and_input_scales_must_be_finite_and_positive() {
    let bytes = encode(&small());
    assert!(Plan::new(&bytes).is_ok());
    for (scale, problem) in [
        (f32::NAN, "not a finite positive number"),
        (f32::INFINITY, "not a finite positive number"),
        (f32::NEG_INFINITY, "not a finite positive number"),
        (0.0, "not a finite positive number"),
        (-0.0, "not a finite positive number"),
        (-0.1, "not a finite positive number"),
        (1e30, "so large that logits would not be finite"),
    ] {
        let mut m = small();
        m.logit_scale = scale;
        assert_eq!(
            Plan::new(&encode(&m)).err(),
            Some(BlobError::BadScale {
                field: "logit_scale",
                problem
            }),
            "logit_scale {scale}"
        );
    }
    for scale in [f32::NAN, f32::INFINITY, 0.0, -1.0 / 255.0] {
        let mut m = small();
        m.input_scale = scale;
        assert!(
            matches!(
                Plan::new(&encode(&m)),
                Err(BlobError::BadScale {
                    field: "input_scale",
                    ..
                })
            ),
            "input_scale {scale}"
        );
    }
    // The largest accepted scale still gives finite logits and probabilities.
    let mut m = small();
    m.logit_scale = 7.9e28;
    let bytes = encode(&m);
    let plan = Plan::new(&bytes).expect("finite logits");
    let logits = plan.classify(&[255; IMAGE_PIXELS], &mut [0u8; 16]).unwrap();
    assert!(logits.real().iter().all(|v| v.is_finite()));
    assert_eq!(top_probability(&logits), logits.class());
}

#[test]
fn work_beyond_the_limit_is_refused() {
    // A 181x181 kernel with padding 180 turns 28x28 into 208x208 outputs of 32,761 taps:
    // 1.4x10^9 multiply-accumulates per image from a 33 KB layer.
    let m = model(vec![
        conv(1, 1, 181, 180, 28),
        Layer::MaxPool { size: 8 },
        Layer::Flatten,
        linear(
            26 * 26,
            vec![1; 26 * 26 * 10],
            requant(&[(0, 1 << 30, 8); 10], Output::Logits),
        ),
    ]);
    let needed = 208 * 208 * 181 * 181 + 26 * 26 * 10;
    assert_eq!(macs_for(&m), Ok(needed));
    let bytes = encode(&m);
    assert!(bytes.len() < 40_000, "{} bytes", bytes.len());
    assert_eq!(
        Plan::new(&bytes).err(),
        Some(BlobError::OverLimit {
            what: "multiply-accumulates per image",
            needed,
            limit: 200_000_000,
        })
    );
    // Nothing else is wrong with it: a caller may allow more.
    let generous = Limits {
        max_macs: needed,
        ..Limits::DEFAULT
    };
    assert!(Plan::with_limits(&bytes, generous).is_ok());
    assert!(Plan::with_limits(
        &bytes,
        Limits {
            max_macs: needed - 1,
            ..generous
        }
    )
    .is_err());
}

#[test]
fn an_arena_beyond_the_limit_is_refused() {
    // A 1x1 convolution to 21,400 channels: 16,777,600 bytes of activations, just over
    // 16 MiB, from 21 KB of weights.
    let m = model(vec![
        conv(1, 21_400, 1, 0, 28),
        conv(21_400, 1, 1, 0, 28),
        Layer::MaxPool { size: 28 },
        Layer::Flatten,
        linear(
            1,
            vec![1; 10],
            requant(&[(0, 1 << 30, 8); 10], Output::Logits),
        ),
    ]);
    let needed = 28 * 28 * 21_400 + 28 * 28;
    assert_eq!(arena_for(&m), Ok(needed));
    let bytes = encode(&m);
    assert_eq!(
        Plan::new(&bytes).err(),
        Some(BlobError::OverLimit {
            what: "arena bytes",
            needed: needed as u64,
            limit: 16 << 20,
        })
    );
    let generous = Limits {
        max_arena_bytes: needed,
        ..Limits::DEFAULT
    };
    assert_eq!(
        Plan::with_limits(&bytes, generous).map(|p| p.arena_bytes()),
        Ok(needed)
    );
}

#[test]
#[cfg(target_pointer_width = "64")]
fn an_arena_beyond_u32_is_refused_whatever_the_limit() {
    // Two 181x181 kernels grow 28x28 to 388x388; 32,768 channels of that are 4.9x10^9
    // bytes, which the blob's u32 field cannot state.
    let m = model(vec![
        conv(1, 1, 181, 180, 28),
        conv(1, 1, 181, 180, 208),
        conv(1, 32_768, 1, 0, 388),
        conv(32_768, 1, 1, 0, 388),
        Layer::MaxPool { size: 194 },
        Layer::Flatten,
        linear(
            4,
            vec![1; 40],
            requant(&[(0, 1 << 30, 8); 10], Output::Logits),
        ),
    ]);
    let needed = 388 * 388 * 32_768 + 388 * 388;
    assert_eq!(arena_for(&m), Ok(needed));
    let unlimited = Limits {
        max_arena_bytes: usize::MAX,
        max_macs: u64::MAX,
    };
    assert_eq!(
        Plan::with_limits(&encode(&m), unlimited).err(),
        Some(BlobError::OverLimit {
            what: "arena bytes",
            needed: needed as u64,
            limit: u64::from(u32::MAX),
        })
    );
}

#[test]
fn the_stated_macs_must_be_the_layers() {
    let m = small();
    assert_eq!(u64::from(m.macs), 7840);
    for stated in [0, m.macs - 1, m.macs + 1, u32::MAX] {
        let mut wrong = small();
        wrong.macs = stated;
        assert_eq!(
            Plan::new(&encode(&wrong)).err(),
            Some(BlobError::MacsMismatch {
                stated,
                computed: 7840
            })
        );
    }
}

#[test]
fn the_shipped_models_state_their_true_macs() {
    for (bytes, macs) in [
        (&include_bytes!("../../models/edge.q8")[..], 9_153_216),
        (&include_bytes!("../../models/cnn.q8")[..], 2_164_000),
    ] {
        let plan = Plan::new(bytes).expect("a shipped model loads");
        assert_eq!(plan.model().macs, macs);
        assert_eq!(macs_for(plan.model()), Ok(u64::from(macs)));
    }
}

#[test]
fn bytes_after_the_envelope_or_the_payload_are_refused() {
    let good = encode(&small());
    assert!(Plan::new(&good).is_ok());
    for extra in [&[0u8][..], b"junk", &[0xFF; 300]] {
        let mut bytes = good.clone();
        bytes.extend_from_slice(extra);
        assert_eq!(
            Plan::new(&bytes).err(),
            Some(BlobError::TrailingBytes {
                after: "the envelope",
                count: extra.len()
            })
        );
        // Inside the envelope, covered by the checksum.
        let mut payload = postcard::to_allocvec(&small()).expect("encodes");
        payload.extend_from_slice(extra);
        let bytes = postcard::to_allocvec(&Envelope {
            magic: MAGIC,
            version: FORMAT_VERSION,
            checksum: blob::crc32(&payload),
            payload: &payload,
        })
        .expect("encodes");
        assert_eq!(
            Plan::new(&bytes).err(),
            Some(BlobError::TrailingBytes {
                after: "the model description",
                count: extra.len()
            })
        );
    }
}
