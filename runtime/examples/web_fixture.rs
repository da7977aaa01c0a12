//! What the WebAssembly tests and benchmark compare against (`scripts/web.sh`): the native
//! engine's answers on the same inputs.
//!
//! `cargo run -p fmnist-runtime --features image --example web_fixture -- OUT [COUNT]`
//! writes into `OUT`:
//! - `images.bin`: the first `COUNT` (default 300) test images of the Debian dataset
//!   (`FMNIST_DATA`, default `/usr/share/datasets/fashion-mnist`), then 20 generated ones
//!   (blobs of light, noise, two all-white), 784 bytes each;
//! - `NAME.q8`: the shipped blobs (`models/*.q8`) and nine random models of awkward
//!   shapes (`random-0` ...: channel counts and taps that are not multiples of 8, odd
//!   filter counts, LeakyReLU into a convolution and into the logits), as the Cortex-M
//!   test has them;
//! - `NAME.logits`: for each, the native engine's integer logits of those images (10
//!   little-endian i32 per image);
//! - `samples.json`: for each `models/samples/*.png`, the 784 pixels `runtime classify`
//!   makes of it and the class the shipped `edge` gives them.
//!
//! With `--bench` it also prints the native engine's time per image, one thread, in the
//! benchmark's line format: `native us_per_image=X` (the vector kernels this CPU has) and
//! `native-portable us_per_image=X`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use fmnist_runtime::dataset::{self, Split};
use fmnist_runtime::preprocess::{self, Invert};
use fmnist_runtime::{FastPlan, Plan, IMAGE_PIXELS};

#[path = "../tests/common/random_model.rs"]
mod random_model;
use random_model::{images, taps, two_convolutions_with, Rng, Tensors, AWKWARD};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Random models of awkward shapes for the SIMD kernels: (name, blob).
fn random_models() -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(37);
    AWKWARD
        .iter()
        .enumerate()
        .map(|(case, &(shape, outputs))| {
            let [t1, t2, t3] = taps(shape);
            let first = Tensors::random(&mut rng, t1, shape.0, (6, 9));
            let second = Tensors::random(&mut rng, t2, shape.3, (8, 13));
            let logits = Tensors::random(&mut rng, t3, 10, (12, 16));
            let blob = two_convolutions_with(shape, outputs, &first, &second, &logits);
            (format!("random-{case}"), blob)
        })
        .collect()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let out = PathBuf::from(
        positional
            .first()
            .ok_or("usage: web_fixture OUT [COUNT] [--bench]")?,
    );
    let count: usize = match positional.get(1) {
        Some(n) => n.parse()?,
        None => 300,
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let data = std::env::var_os("FMNIST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/datasets/fashion-mnist"));
    std::fs::create_dir_all(&out)?;
    let test = dataset::load_split(&data, Split::Test)?.truncated(count);
    let mut all = test.images.clone();
    all.extend(images(&mut Rng(33), 18));
    all.extend(std::iter::repeat_n(255u8, 2 * IMAGE_PIXELS));
    std::fs::write(out.join("images.bin"), &all)?;

    let mut shipped: Vec<PathBuf> = std::fs::read_dir(root.join("models"))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    shipped.retain(|p| p.extension().is_some_and(|e| e == "q8"));
    shipped.sort();
    let mut blobs = Vec::new();
    for path in &shipped {
        let name = path.file_stem().ok_or("a blob without a name")?;
        blobs.push((name.to_string_lossy().into_owned(), std::fs::read(path)?));
    }
    blobs.extend(random_models());
    for (name, bytes) in &blobs {
        let plan = Plan::new(bytes)?;
        let mut arena = vec![0u8; plan.arena_bytes()];
        let mut logits = Vec::with_capacity(all.len() / IMAGE_PIXELS * 40);
        for image in all.as_chunks::<IMAGE_PIXELS>().0 {
            for value in plan.classify(image, &mut arena)?.values {
                logits.extend_from_slice(&value.to_le_bytes());
            }
        }
        std::fs::write(out.join(format!("{name}.q8")), bytes)?;
        std::fs::write(out.join(format!("{name}.logits")), logits)?;
    }

    let edge = std::fs::read(root.join("models/edge.q8"))?;
    let plan = Plan::new(&edge)?;
    let mut arena = vec![0u8; plan.arena_bytes()];
    let mut samples: Vec<PathBuf> = std::fs::read_dir(root.join("models/samples"))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    samples.sort();
    let mut json = Vec::new();
    for sample in &samples {
        let pixels = preprocess::load(sample, Invert::Auto)?;
        let class = plan.classify(&pixels, &mut arena)?.class();
        let file = sample.file_name().ok_or("a sample without a name")?;
        json.push(format!(
            "{{\"file\":{:?},\"class\":{:?},\"pixels\":{:?}}}",
            file.to_string_lossy(),
            plan.model().class_names[class],
            pixels.as_slice()
        ));
    }
    std::fs::write(
        out.join("samples.json"),
        format!("[{}]\n", json.join(",\n")),
    )?;

    if bench {
        let fast = FastPlan::new(plan.clone());
        let mut fast_arena = vec![0u8; fast.arena_bytes()];
        let time = |run: &mut dyn FnMut(&fmnist_runtime::Image) -> Result<()>| -> Result<f64> {
            // A warm-up pass, then the best of five passes over the images.
            let mut best = f64::INFINITY;
            for pass in 0..6 {
                let started = Instant::now();
                for image in test.images.as_chunks::<IMAGE_PIXELS>().0 {
                    run(image)?;
                }
                let us = started.elapsed().as_secs_f64() * 1e6 / test.len() as f64;
                if pass > 0 {
                    best = best.min(us);
                }
            }
            Ok(best)
        };
        let native = time(&mut |image| {
            std::hint::black_box(fast.classify(image, &mut fast_arena)?);
            Ok(())
        })?;
        let portable = time(&mut |image| {
            std::hint::black_box(plan.classify(image, &mut arena)?);
            Ok(())
        })?;
        println!("native us_per_image={native:.2}");
        println!("native-portable us_per_image={portable:.2}");
    }
    Ok(())
}
