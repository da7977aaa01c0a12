//! The engine built for Cortex-M (`thumbv7em-none-eabihf`) and run on QEMU's emulated
//! Cortex-M4 (`mps2-an386`) and Cortex-M7 (`mps2-an500`): every image's logits equal the
//! host engine's bit for bit, for the DSP kernels `Plan::classify` uses there (on the
//! shipped models and on random models of awkward shapes) and for the portable ones.
//! The firmware is `runtime/firmware/cortex-m` (`classify logits BLOB IMAGES COUNT`).

use std::path::Path;

use fmnist_runtime::dataset::{load_split, Split};
use fmnist_runtime::{Plan, IMAGE_PIXELS};

#[allow(dead_code)]
mod common;
#[path = "common/cortex_m.rs"]
mod cortex_m;
#[path = "../runtime/tests/common/random_model.rs"]
mod random_model;

use cortex_m::{firmware, qemu, M4, M7};
use random_model::{images, taps, two_convolutions_with, Rng, Tensors, AWKWARD};

/// The first `count` test images of the real dataset, back to back.
fn test_images(count: usize) -> Vec<u8> {
    let test = load_split(&common::data_dir(), Split::Test).expect("the test split loads");
    (0..count).flat_map(|i| test.image(i).to_vec()).collect()
}

/// The logits the host engine gives each image.
fn host_logits(blob: &[u8], pixels: &[u8]) -> Vec<[i32; 10]> {
    let plan = Plan::new(blob).expect("a valid blob");
    let mut arena = vec![0u8; plan.arena_bytes()];
    pixels
        .as_chunks::<IMAGE_PIXELS>()
        .0
        .iter()
        .map(|image| plan.classify(image, &mut arena).expect("classifies").values)
        .collect()
}

/// Runs the firmware built with `kernels` on `board` over `pixels` with `blob` (written to
/// `dir`; `None`: the shipped `edge` built into the firmware) and returns each image's
/// logits, checking the kernels it reports, and what it printed.
fn emulated_run(
    kernels: &'static str,
    board: (&str, &str),
    dir: &Path,
    blob: Option<&[u8]>,
    pixels: &[u8],
) -> (Vec<[i32; 10]>, String) {
    let images = dir.join("images.bin");
    std::fs::write(&images, pixels).unwrap();
    let blob_arg = match blob {
        Some(bytes) => {
            let path = dir.join("model.q8");
            std::fs::write(&path, bytes).unwrap();
            path.to_string_lossy().into_owned()
        }
        None => "-".into(),
    };
    let count = pixels.len() / IMAGE_PIXELS;
    let out = qemu(
        board,
        &firmware(kernels),
        &[
            "classify",
            "logits",
            &blob_arg,
            &images.to_string_lossy(),
            &count.to_string(),
        ],
    );
    assert!(
        out.lines().any(|l| l == format!("kernels {kernels}")),
        "the firmware does not report the {kernels} kernels: {out}"
    );
    assert!(out.lines().any(|l| l == format!("done {count}")), "{out}");
    let logits = out
        .lines()
        .filter_map(|line| line.strip_prefix("logits "))
        .enumerate()
        .map(|(i, rest)| {
            let fields: Vec<i32> = rest
                .split(' ')
                .map(|f| f.parse().expect("an integer"))
                .collect();
            assert_eq!(fields[0] as usize, i, "{out}");
            fields[1..11].try_into().expect("ten logits")
        })
        .collect();
    (logits, out)
}

/// The number after `name ` on a line of the firmware's output.
fn reported(out: &str, name: &str) -> usize {
    out.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} line: {out}"))
}

fn assert_same(expected: &[[i32; 10]], got: &[[i32; 10]], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: image count");
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        assert_eq!(e, g, "{what}: image {i}");
    }
}

#[test]
fn the_shipped_edge_model_on_an_emulated_m4_and_m7_gives_the_host_logits() {
    let pixels = test_images(200);
    let blob = std::fs::read(cortex_m::root().join("models/edge.q8")).unwrap();
    let expected = host_logits(&blob, &pixels);
    let dir = tempfile::tempdir().unwrap();
    // 200 real test images on the M4 (the model built into the firmware), 50 on the M7.
    let (m4, out) = emulated_run("dsp", M4, dir.path(), None, &pixels);
    assert_same(&expected, &m4, "edge, DSP kernels, Cortex-M4");
    // The firmware budget's RAM half: the arena (activations and the DSP kernels'
    // columns) and the most stack `Plan::new` and `classify` used, painted and read back,
    // within 64 KiB.
    let (arena, stack) = (reported(&out, "arena"), reported(&out, "stack"));
    println!("Cortex-M4: arena {arena} bytes, stack {stack} bytes");
    assert!(stack > 0 && arena + stack <= 64 * 1024, "{out}");
    let (m7, _) = emulated_run("dsp", M7, dir.path(), None, &pixels[..50 * IMAGE_PIXELS]);
    assert_same(&expected[..50], &m7, "edge, DSP kernels, Cortex-M7");
    // The test is only worth something if the images differ: most classes appear.
    let classes: std::collections::HashSet<_> = expected
        .iter()
        .map(|l| (0..10).max_by_key(|&c| (l[c], std::cmp::Reverse(c))))
        .collect();
    assert!(classes.len() >= 8, "{classes:?}");
}

#[test]
fn every_shipped_blob_on_an_emulated_m4_gives_the_host_logits_with_either_kernels() {
    let pixels = test_images(40);
    let dir = tempfile::tempdir().unwrap();
    for name in ["edge.q8", "edge7.q8", "cnn.q8"] {
        let blob = std::fs::read(cortex_m::root().join("models").join(name)).unwrap();
        let expected = host_logits(&blob, &pixels);
        for kernels in ["dsp", "portable"] {
            let (got, _) = emulated_run(kernels, M4, dir.path(), Some(&blob), &pixels);
            assert_same(&expected, &got, &format!("{name}, {kernels} kernels"));
        }
    }
}

#[test]
fn random_models_of_awkward_shapes_on_an_emulated_m4_give_the_host_logits() {
    let mut rng = Rng(33);
    let mut pixels = images(&mut rng, 18);
    // Saturated images too: the largest sums occur.
    pixels.extend(std::iter::repeat_n(255u8, 2 * IMAGE_PIXELS));
    let dir = tempfile::tempdir().unwrap();
    let cases = AWKWARD;
    for (case, &(shape, outputs)) in cases.iter().enumerate() {
        let [t1, t2, t3] = taps(shape);
        let first = Tensors::random(&mut rng, t1, shape.0, (6, 9));
        let second = Tensors::random(&mut rng, t2, shape.3, (8, 13));
        let logits = Tensors::random(&mut rng, t3, 10, (12, 16));
        let blob = two_convolutions_with(shape, outputs, &first, &second, &logits);
        let expected = host_logits(&blob, &pixels);
        let distinct: std::collections::HashSet<_> = expected.iter().collect();
        assert!(
            distinct.len() * 2 > expected.len(),
            "case {case}: logits vary too little"
        );
        let (got, _) = emulated_run("dsp", M4, dir.path(), Some(&blob), &pixels);
        assert_same(&expected, &got, &format!("random model {case} {shape:?}"));
    }
}
