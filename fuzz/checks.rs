//! What each fuzz target checks, shared by the `cargo fuzz` targets (`fuzz_targets/`) and
//! the regression test that replays every input they ever found
//! (`runtime/tests/fuzz_regressions.rs`, part of `scripts/test.sh`).
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use fmnist_runtime::blob::{crc32, Envelope, FORMAT_VERSION, FORMAT_VERSION_1, MAGIC};
use fmnist_runtime::dataset::{read_csv, read_idx_images, read_idx_labels};
use fmnist_runtime::onnx::OnnxClassifier;
use fmnist_runtime::preprocess::{load, Invert};
use fmnist_runtime::{FastPlan, Isa, Limits, Plan};

/// A validated blob may state a large, consistent arena (wide or padded layers); the
/// harness caps what it allocates for one.
const MAX_ARENA: usize = 4 << 20;

/// The int8 blob: arbitrary bytes through `Plan::new`, then `classify` when it validates.
/// The first byte picks the mode: odd, the rest is a model *payload* wrapped here in a
/// valid envelope (correct magic, version and CRC-32), so that mutations reach the layer
/// validation and the kernels instead of stopping at the checksum (3 modulo 4: a format 1
/// envelope, whose payload has no temperature; 1 modulo 4: the current format); even,
/// the rest is a whole blob as a file would hold it.
pub fn blob(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let wrapped;
    let blob = if mode % 2 == 1 {
        wrapped = postcard::to_allocvec(&Envelope {
            magic: MAGIC,
            version: if mode % 4 == 3 {
                FORMAT_VERSION_1
            } else {
                FORMAT_VERSION
            },
            checksum: crc32(rest),
            payload: rest,
        })
        .expect("an envelope serialises");
        &wrapped[..]
    } else {
        rest
    };
    // Up to 2x10^7 multiply-accumulates (the shipped `edge` needs 9.2x10^6): each input is
    // classified five times (portable, every vector tier, a batch of two), which for a
    // blob at the engine's 2x10^8 cap took 19 s with the sanitizers, over libFuzzer's
    // 10 s timeout. The cap itself is tested in runtime/tests/limits.rs.
    let limits = Limits {
        max_macs: 20_000_000,
        ..Limits::DEFAULT
    };
    let Ok(plan) = Plan::with_limits(blob, limits) else {
        return;
    };
    let needed = plan.arena_bytes();
    if needed > MAX_ARENA {
        return;
    }
    let mut arena = vec![0u8; needed];
    let pixels: [u8; 784] = core::array::from_fn(|i| (i * 37 % 256) as u8);
    let logits = plan
        .classify(&pixels, &mut arena)
        .expect("a validated plan classifies with the arena it states");
    assert!(logits.class() < 10);
    let probabilities = logits.probabilities();
    let sum: f32 = probabilities.iter().sum();
    // Validated scales keep every probability finite, and the top logit's the largest.
    assert!((sum - 1.0).abs() < 1e-3, "probabilities sum to {sum}");
    assert!(probabilities
        .iter()
        .all(|&p| p <= probabilities[logits.class()]));
    if needed > 0 {
        assert!(plan.classify(&pixels, &mut arena[..needed - 1]).is_err());
    }
    // The vector kernels of every ISA this CPU runs give the portable logits, bit for bit,
    // with the arena (activations and scratch) they state.
    for isa in Isa::ALL.into_iter().skip(1) {
        if !isa.supported() {
            continue;
        }
        let fast = FastPlan::with_isa(plan.clone(), isa);
        let needed = fast.arena_bytes();
        if needed > MAX_ARENA {
            continue;
        }
        let mut arena = vec![0u8; needed];
        let fast_logits = fast
            .classify(&pixels, &mut arena)
            .expect("a FastPlan classifies with the arena it states");
        assert_eq!(
            fast_logits,
            logits,
            "{} differs from the portable kernels",
            isa.name()
        );
        // An arena of the plan's size works as well (the scratch is then the thread's own);
        // one byte less than that is refused.
        let plan_sized = plan.arena_bytes();
        assert_eq!(fast.classify(&pixels, &mut arena[..plan_sized]), Ok(logits));
        if plan_sized > 0 {
            assert!(fast
                .classify(&pixels, &mut arena[..plan_sized - 1])
                .is_err());
        }
    }
    // A batch of two (layer by layer, one arena per image) on the best kernels: each
    // image's logits as one by one, the second image being the first reversed.
    let fast = FastPlan::new(plan.clone());
    let needed = fast.batch_arena_bytes(2);
    if needed <= MAX_ARENA {
        let mut arena = vec![0u8; needed];
        let mut images = pixels.to_vec();
        images.extend(pixels.iter().rev());
        let mut batch = [fmnist_runtime::Logits::default(); 2];
        fast.classify_batch(&images, &mut arena, &mut batch)
            .expect("a FastPlan classifies a batch with the arena it states");
        let mut one = vec![0u8; plan.arena_bytes()];
        for (image, got) in images.as_chunks::<784>().0.iter().zip(&batch) {
            let want = plan.classify(image, &mut one).expect("classifies");
            assert_eq!(*got, want, "{}: a batch differs", fast.isa().name());
        }
        assert!(fast
            .classify_batch(&images, &mut arena[..needed - 1], &mut batch)
            .is_err());
    }
}

/// `data` in a temporary file (in memory where /dev/shm exists).
fn temporary(data: &[u8]) -> tempfile::NamedTempFile {
    let dir = if Path::new("/dev/shm").is_dir() {
        Path::new("/dev/shm").to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).expect("a temporary file");
    file.write_all(data).expect("writes");
    file.flush().expect("flushes");
    file
}

/// The dataset readers: arbitrary bytes as an IDX image file, an IDX label file (raw, or
/// gzipped when the bytes start with the gzip magic) and a competition CSV file, through
/// the same path-based functions the trainer and `runtime eval` call.
pub fn dataset(data: &[u8]) {
    let file = temporary(data);
    let path = file.path();
    if let Ok(images) = read_idx_images(path) {
        assert_eq!(images.len() % 784, 0);
    }
    if let Ok(labels) = read_idx_labels(path) {
        assert!(labels.iter().all(|&l| l < 10));
    }
    if let Ok(set) = read_csv(path) {
        assert_eq!(set.images.len(), set.len() * 784);
    }
}

/// The CLI's image path: arbitrary bytes as an image file (any format the `image` crate
/// guesses from the content), decoded with the runtime's limits and preprocessed.
pub fn image(data: &[u8]) {
    let file = temporary(data);
    let invert = match data.first() {
        Some(b) if b % 3 == 0 => Invert::Yes,
        Some(b) if b % 3 == 1 => Invert::No,
        _ => Invert::Auto,
    };
    let _ = load(file.path(), invert);
}

/// The tract path: arbitrary bytes as an ONNX file, loaded, checked and optimised, then
/// run on one image when that succeeds.
pub fn onnx(data: &[u8]) {
    let Ok(model) = OnnxClassifier::from_bytes(data, Path::new("fuzz.onnx")) else {
        return;
    };
    // What the graph check accepted is within its limits; the run that follows must then
    // stay within the fuzzer's memory and time limits (a crash or a timeout is a finding).
    let work = model.work();
    assert!(work.macs <= fmnist_runtime::onnx::MAX_MACS, "{work:?}");
    assert!(work.nodes <= fmnist_runtime::onnx::MAX_NODES, "{work:?}");
    assert!(
        work.elements <= fmnist_runtime::onnx::MAX_TOTAL_ELEMENTS,
        "{work:?}"
    );
    if let Ok(logits) = model.logits(&[128u8; 784]) {
        assert_eq!(logits.len(), 10);
    }
}
