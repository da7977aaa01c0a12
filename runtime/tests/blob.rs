//! Hostile and broken blobs are refused with an error value, never a panic.

use fmnist_runtime::blob::{
    self, Envelope, Layer, Model, Output, QuantConv2d, QuantLinear, Requant, MAGIC,
};
use fmnist_runtime::{BlobError, EngineError, Plan, CLASS_NAMES};

/// Owned tensors for a small valid model: conv 1->2 3x3 pad 1, ReLU, max pool 2, flatten,
/// linear 392->10 logits.
struct Tensors {
    conv_w: Vec<u8>,
    conv_bias: Vec<u8>,
    conv_mult: Vec<u8>,
    conv_shift: Vec<u8>,
    lin_w: Vec<u8>,
    lin_bias: Vec<u8>,
    lin_mult: Vec<u8>,
    lin_shift: Vec<u8>,
}

fn tensors() -> Tensors {
    let le = |v: i32, n: usize| (0..n).flat_map(|_| v.to_le_bytes()).collect::<Vec<u8>>();
    Tensors {
        conv_w: (0..18).map(|i| (i as i8 - 9) as u8).collect(),
        conv_bias: le(5, 2),
        conv_mult: le(1 << 30, 2),
        conv_shift: vec![3, 3],
        lin_w: (0..3920)
            .map(|i: i32| (i * 7 % 255 - 127) as i8 as u8)
            .collect(),
        lin_bias: le(-100, 10),
        lin_mult: le(1 << 30, 10),
        lin_shift: vec![4; 10],
    }
}

fn model(t: &Tensors) -> Model<'_> {
    let requant = |bias, multiplier, shift, output| Requant {
        bias,
        multiplier,
        shift,
        output,
    };
    let mut layers = heapless::Vec::new();
    let conv = QuantConv2d {
        in_channels: 1,
        out_channels: 2,
        kernel: 3,
        padding: 1,
        in_height: 28,
        in_width: 28,
        weights: &t.conv_w,
        requant: requant(&t.conv_bias, &t.conv_mult, &t.conv_shift, Output::Relu),
    };
    let linear = QuantLinear {
        inputs: 392,
        outputs: 10,
        weights: &t.lin_w,
        requant: requant(&t.lin_bias, &t.lin_mult, &t.lin_shift, Output::Logits),
    };
    for layer in [
        Layer::Conv(conv),
        Layer::MaxPool { size: 2 },
        Layer::Flatten,
        Layer::Linear(linear),
    ] {
        layers.push(layer).unwrap();
    }
    Model {
        kind: "test",
        class_names: CLASS_NAMES,
        parameters: 0,
        // conv: 28 x 28 outputs x 2 channels x 9 taps; linear: 392 x 10.
        macs: 28 * 28 * 2 * 9 + 392 * 10,
        input_scale: 1.0 / 255.0,
        logit_scale: 0.1,
        float_accuracy: None,
        int8_accuracy: Some(0.5),
        calibration_images: 0,
        arena_bytes: (28 * 28 * 2 + 14 * 14 * 2) as u32,
        layers,
        temperature: 1.0,
    }
}

fn encode(model: &Model<'_>) -> Vec<u8> {
    blob::encode(model).unwrap()
}

/// A blob whose envelope is valid (right magic, version and checksum) around `model`, so
/// that only the layer checks can refuse it.
fn plan_error(model: &Model<'_>) -> BlobError {
    Plan::new(&encode(model)).expect_err("must be refused")
}

#[test]
fn a_valid_blob_loads_and_classifies_deterministically() {
    let t = tensors();
    let bytes = encode(&model(&t));
    let plan = Plan::new(&bytes).unwrap();
    assert_eq!(plan.arena_bytes(), 28 * 28 * 2 + 14 * 14 * 2);
    assert_eq!(plan.model().int8_accuracy, Some(0.5));
    let image: [u8; 784] = core::array::from_fn(|i| (i % 251) as u8);
    let mut arena = vec![0u8; plan.arena_bytes()];
    let a = plan.classify(&image, &mut arena).unwrap();
    let mut dirty = vec![0xAAu8; plan.arena_bytes() + 100];
    let b = plan.classify(&image, &mut dirty).unwrap();
    assert_eq!(a, b, "the arena's previous contents do not matter");
    assert!(a.values.iter().any(|&v| v != a.values[0]), "{a:?}");
    assert_eq!(a.top::<3>()[0].0, a.class());
}

#[test]
fn classify_refuses_a_small_arena_and_wrong_input() {
    let t = tensors();
    let bytes = encode(&model(&t));
    let plan = Plan::new(&bytes).unwrap();
    let mut small = vec![0u8; plan.arena_bytes() - 1];
    assert!(matches!(
        plan.classify(&[0; 784], &mut small),
        Err(EngineError::ArenaTooSmall { .. })
    ));
    // An image of another length is a type error (`Image`, a compile_fail doctest); the
    // C ABI, which takes a length, refuses it (tests/capi.rs).
}

#[test]
fn envelope_damage_is_caught_first() {
    let t = tensors();
    let good = encode(&model(&t));

    let mut wrong_magic = good.clone();
    wrong_magic[0] = b'X';
    assert!(matches!(
        Plan::new(&wrong_magic),
        Err(BlobError::BadMagic(_))
    ));

    let payload = postcard::to_allocvec(&model(&t)).unwrap();
    let future = postcard::to_allocvec(&Envelope {
        magic: MAGIC,
        version: 99,
        checksum: blob::crc32(&payload),
        payload: &payload,
    })
    .unwrap();
    assert_eq!(
        Plan::new(&future).err(),
        Some(BlobError::UnsupportedVersion(99))
    );

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40; // inside the payload, so only the checksum can tell
    assert!(matches!(
        Plan::new(&flipped),
        Err(BlobError::BadChecksum { .. })
    ));

    for cut in [0, 1, 4, 6, 10, good.len() / 2, good.len() - 1] {
        assert!(Plan::new(&good[..cut]).is_err(), "truncated to {cut}");
    }

    let garbage = postcard::to_allocvec(&Envelope {
        magic: MAGIC,
        version: 1,
        checksum: blob::crc32(b"nonsense"),
        payload: b"nonsense",
    })
    .unwrap();
    assert_eq!(Plan::new(&garbage).err(), Some(BlobError::BadPayload));
}

#[test]
fn lying_shapes_and_values_are_refused() {
    let t = tensors();

    let mut m = model(&t);
    m.arena_bytes += 1;
    assert!(matches!(plan_error(&m), BlobError::ArenaMismatch { .. }));

    let mut m = model(&t);
    if let Layer::Conv(conv) = &mut m.layers[0] {
        conv.in_height = 27;
    }
    assert!(matches!(
        plan_error(&m),
        BlobError::BadLayer { index: 0, .. }
    ));

    let mut m = model(&t);
    if let Layer::Conv(conv) = &mut m.layers[0] {
        conv.weights = &t.conv_w[..17];
    }
    assert!(matches!(
        plan_error(&m),
        BlobError::BadLayer { index: 0, .. }
    ));

    let mut m = model(&t);
    if let Layer::Conv(conv) = &mut m.layers[0] {
        conv.out_channels = 60_000; // claims far more weights than present
    }
    assert!(matches!(
        plan_error(&m),
        BlobError::BadLayer { index: 0, .. }
    ));

    let bad_shift = vec![40u8; 10];
    let mut m = model(&t);
    if let Layer::Linear(linear) = &mut m.layers[3] {
        linear.requant.shift = &bad_shift;
    }
    assert!(matches!(
        plan_error(&m),
        BlobError::BadLayer { index: 3, .. }
    ));

    let mut m = model(&t);
    if let Layer::Linear(linear) = &mut m.layers[3] {
        linear.inputs = 391;
    }
    assert!(matches!(
        plan_error(&m),
        BlobError::BadLayer { index: 3, .. }
    ));

    let mut m = model(&t);
    m.layers[1] = Layer::MaxPool { size: 0 };
    assert!(matches!(
        plan_error(&m),
        BlobError::BadLayer { index: 1, .. }
    ));

    let mut m = model(&t);
    m.layers.pop();
    assert_eq!(plan_error(&m), BlobError::NoLogits);

    let mut m = model(&t);
    if let Layer::Linear(linear) = &mut m.layers[3] {
        linear.requant.output = Output::Relu;
    }
    assert_eq!(plan_error(&m), BlobError::NoLogits);
}

#[test]
fn every_single_byte_corruption_is_an_error_or_a_valid_plan() {
    // Flip each byte of the envelope and header region; nothing may panic.
    let t = tensors();
    let good = encode(&model(&t));
    let mut arena = vec![0u8; 1 << 16];
    for at in 0..good.len().min(400) {
        let mut bytes = good.clone();
        bytes[at] = bytes[at].wrapping_add(0x55);
        let plan = Plan::new(&bytes);
        if let Ok(plan) = &plan {
            let _ = plan.classify(&[7; 784], &mut arena);
        }
    }
}

#[test]
fn a_temperature_outside_its_bounds_is_refused() {
    let t = tensors();
    for bad in [
        0.0,
        -0.0,
        -1.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.009,
        100.5,
        f32::MIN_POSITIVE,
    ] {
        let mut m = model(&t);
        m.temperature = bad;
        assert_eq!(
            plan_error(&m),
            BlobError::BadScale {
                field: "temperature",
                problem: "not a number from 0.01 to 100"
            },
            "{bad}"
        );
    }
    for good in [
        fmnist_runtime::engine::MIN_TEMPERATURE,
        0.5,
        2.5,
        fmnist_runtime::engine::MAX_TEMPERATURE,
    ] {
        let mut m = model(&t);
        m.temperature = good;
        let bytes = encode(&m);
        assert_eq!(Plan::new(&bytes).unwrap().model().temperature, good);
    }
}

/// `softmax(values * scale / temperature)` in f64.
fn reference_softmax(values: &[i32; 10], scale: f32, temperature: f32) -> [f64; 10] {
    let z = values.map(|v| f64::from(v) * f64::from(scale) / f64::from(temperature));
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
    z.map(|v| (v - max).exp() / sum)
}

#[test]
fn probabilities_are_the_softmax_of_the_logits_over_the_temperature() {
    let t = tensors();
    let plain = encode(&model(&t));
    let plain = Plan::new(&plain).unwrap();
    let mut arena = vec![0u8; plain.arena_bytes()];
    for temperature in [0.05f32, 0.7, 1.0, 2.5, 19.0] {
        let mut m = model(&t);
        m.temperature = temperature;
        let bytes = encode(&m);
        let plan = Plan::new(&bytes).unwrap();
        for seed in 0..20u32 {
            let image: [u8; 784] = core::array::from_fn(|i| {
                ((i as u32)
                    .wrapping_mul(seed * 2 + 1)
                    .wrapping_add(seed * 37)
                    % 256) as u8
            });
            let logits = plan.classify(&image, &mut arena).unwrap();
            let before = plain.classify(&image, &mut arena).unwrap();
            assert_eq!(logits.values, before.values, "the logits do not change");
            assert_eq!(logits.class(), before.class(), "nor does the class");
            assert_eq!(logits.temperature, temperature);
            let p = logits.probabilities();
            let expected = reference_softmax(&logits.values, logits.scale, temperature);
            for c in 0..10 {
                assert!(
                    (f64::from(p[c]) - expected[c]).abs() < 1e-6,
                    "T {temperature}, image {seed}, class {c}: {} vs {}",
                    p[c],
                    expected[c]
                );
            }
            let best = fmnist_runtime::metrics::argmax(&p);
            assert_eq!(p[best], p[logits.class()], "argmax unchanged");
        }
    }
}

/// A version 1 blob of `model`: its payload without the temperature, which version 1 did
/// not have (postcard writes the f32 last, in 4 bytes).
fn version_1(model: &Model<'_>, extra: &[u8]) -> Vec<u8> {
    let mut payload = postcard::to_allocvec(model).unwrap();
    payload.truncate(payload.len() - 4);
    payload.extend_from_slice(extra);
    postcard::to_allocvec(&Envelope {
        magic: MAGIC,
        version: blob::FORMAT_VERSION_1,
        checksum: blob::crc32(&payload),
        payload: &payload,
    })
    .unwrap()
}

#[test]
fn a_version_1_blob_reads_as_temperature_one() {
    let t = tensors();
    let mut m = model(&t);
    m.temperature = 3.0; // dropped: version 1 has no temperature
    let old = version_1(&m, &[]);
    let plan = Plan::new(&old).unwrap();
    assert_eq!(plan.model().temperature, 1.0);
    assert_eq!(blob::version(&old), Some(1));
    let (decoded, rest) =
        blob::decode_payload(1, postcard::from_bytes::<Envelope>(&old).unwrap().payload).unwrap();
    assert_eq!((decoded.temperature, rest), (1.0, 0));
    m.temperature = 1.0;
    assert_eq!(plan.model(), &m);
    let current = encode(&m);
    assert_eq!(blob::version(&current), Some(blob::FORMAT_VERSION));
    let current = Plan::new(&current).unwrap();
    let mut arena = vec![0u8; plan.arena_bytes()];
    let image: [u8; 784] = core::array::from_fn(|i| (i % 253) as u8);
    assert_eq!(
        plan.classify(&image, &mut arena).unwrap(),
        current.classify(&image, &mut arena).unwrap()
    );
    // A version 1 payload with bytes after it (a temperature, say) is refused, and so is
    // a version 2 payload without its temperature.
    assert_eq!(
        Plan::new(&version_1(&m, &2f32.to_le_bytes())).err(),
        Some(BlobError::TrailingBytes {
            after: "the model description",
            count: 4
        })
    );
    // Fewer bytes than a temperature: they do not decode as one.
    assert_eq!(
        Plan::new(&version_1(&m, &[7])).err(),
        Some(BlobError::BadPayload)
    );
    let mut payload = postcard::to_allocvec(&m).unwrap();
    payload.truncate(payload.len() - 4);
    let short = postcard::to_allocvec(&Envelope {
        magic: MAGIC,
        version: blob::FORMAT_VERSION,
        checksum: blob::crc32(&payload),
        payload: &payload,
    })
    .unwrap();
    assert_eq!(Plan::new(&short).err(), Some(BlobError::BadPayload));
}
