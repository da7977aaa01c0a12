//! Every inference path on the shipped models, batch 1 (latency) and 256 (throughput), one
//! thread: the int8 engine (portable kernels, and the AVX2 and AVX-512 VNNI kernels where
//! the CPU has them), tract-onnx on the exported ONNX, burn's CPU backend (float), and with
//! `--features cuda` burn's CUDA backend at batch 1, 256, 4096 and 65536, from host bytes
//! to host logits (`burn-cuda-f32`) and on a batch already on the device, waiting for the
//! device to finish (`burn-cuda-f32-resident`).
//!
//! ```text
//! cargo bench --bench inference                      # everything but CUDA
//! cargo bench --bench inference -- edge/batch1       # one group
//! cargo bench --bench inference --features cuda -- cuda
//! ```
//!
//! Images: the test images of the Debian package `dataset-fashion-mnist` when it is
//! installed (set `FMNIST_DATA` to another directory), repeated to 65536, otherwise
//! generated ones (the run says which; no path's speed depends on the pixel values). The
//! models: `models/` of this checkout, or `FMNIST_MODELS` (the GPU kit runs the bench
//! binary away from the checkout it was built in). burn runs the shipped
//! ONNX model read back into burn layers (`fmnist_trainer::export::unfold`), batch norm
//! folded as in the file.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use burn::prelude::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fmnist_runtime::onnx::OnnxClassifier;
use fmnist_runtime::{FastPlan, Isa, Logits};
use fmnist_runtime::{Plan, IMAGE_PIXELS};
use fmnist_trainer::batch::images_tensor;
use fmnist_trainer::export::{onnx, unfold};
use fmnist_trainer::model::Classifier;

const KINDS: [&str; 2] = ["cnn", "edge"];

fn models_dir() -> PathBuf {
    std::env::var_os("FMNIST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

fn read(name: &str) -> Vec<u8> {
    let path = models_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The largest batch measured.
const COUNT: usize = 65536;

/// [`COUNT`] images, 784 bytes each.
fn images() -> Vec<u8> {
    let dir = std::env::var_os("FMNIST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/datasets/fashion-mnist"));
    for name in ["t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"] {
        if let Ok(pixels) = fmnist_runtime::dataset::read_idx_images(&dir.join(name)) {
            if pixels.len() >= 256 * IMAGE_PIXELS {
                let found = pixels.len() / IMAGE_PIXELS;
                eprintln!(
                    "images: {} ({found} test images, repeated to {COUNT})",
                    dir.join(name).display()
                );
                return pixels
                    .iter()
                    .copied()
                    .cycle()
                    .take(COUNT * IMAGE_PIXELS)
                    .collect();
            }
        }
    }
    eprintln!("images: generated ({} not found)", dir.display());
    (0..COUNT * IMAGE_PIXELS)
        .map(|i| ((i * 2_654_435_761) >> 7) as u8)
        .collect()
}

/// Runs `model` on `pixels` from host bytes to host logits.
fn burn_logits<B: Backend>(model: &Classifier<B>, pixels: &[u8], device: &B::Device) -> Vec<f32> {
    fmnist_trainer::batch::to_f32_vec(model.forward(images_tensor(pixels, device)))
}

fn int8(c: &mut Criterion, kind: &str, pixels: &[u8]) {
    let blob = read(&format!("{kind}.q8"));
    let plan = Plan::new(&blob).expect("the shipped blob loads");
    for isa in Isa::ALL {
        if !isa.supported() {
            eprintln!("int8 {}: not on this CPU, skipped", isa.name());
            continue;
        }
        let fast = FastPlan::with_isa(plan.clone(), isa);
        let mut arena = vec![0u8; fast.arena_bytes()];
        for batch in [1, 256] {
            let mut group = c.benchmark_group(format!("{kind}/batch{batch}"));
            group.throughput(Throughput::Elements(batch as u64));
            let input = &pixels[..batch * IMAGE_PIXELS];
            group.bench_function(BenchmarkId::new("int8", isa.name()), |b| {
                b.iter(|| {
                    for image in black_box(input).as_chunks::<IMAGE_PIXELS>().0 {
                        black_box(fast.classify(image, &mut arena).expect("classifies"));
                    }
                })
            });
            group.finish();
        }
        // The batch API: 64 images per call, layer by layer, one arena.
        let mut batch_arena = vec![0u8; fast.batch_arena_bytes(64)];
        let mut logits = vec![Logits::default(); 64];
        let mut group = c.benchmark_group(format!("{kind}/batch256"));
        group.throughput(Throughput::Elements(256));
        let input = &pixels[..256 * IMAGE_PIXELS];
        group.bench_function(BenchmarkId::new("int8-batch64", isa.name()), |b| {
            b.iter(|| {
                for batch in black_box(input).chunks_exact(64 * IMAGE_PIXELS) {
                    fast.classify_batch(batch, &mut batch_arena, &mut logits)
                        .expect("classifies");
                    black_box(&logits);
                }
            })
        });
        group.finish();
    }
    // The best kernels on every core (`FastPlan::classify_all`, one arena per thread).
    let fast = FastPlan::new(plan);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group(format!("{kind}/batch256"));
    group.throughput(Throughput::Elements(256));
    let input = &pixels[..256 * IMAGE_PIXELS];
    group.bench_function(
        BenchmarkId::new(format!("int8-{cores}-threads"), fast.isa().name()),
        |b| b.iter(|| black_box(fast.classify_all(black_box(input), 0).expect("classifies"))),
    );
    group.finish();
}

fn tract(c: &mut Criterion, kind: &str, pixels: &[u8]) {
    let name = format!("{kind}.onnx");
    let onnx = OnnxClassifier::from_bytes(&read(&name), name.as_ref()).expect("loads");
    for batch in [1, 256] {
        let mut group = c.benchmark_group(format!("{kind}/batch{batch}"));
        group.throughput(Throughput::Elements(batch as u64));
        let input = &pixels[..batch * IMAGE_PIXELS];
        group.bench_function("tract-f32", |b| {
            b.iter(|| black_box(onnx.logits(black_box(input)).expect("runs")))
        });
        group.finish();
    }
}

/// burn's float inference of the shipped ONNX model, read back into burn, on backend `B`,
/// labelled `label`, at each of `batches`: from host bytes to host logits, or with
/// `resident` on a batch already on the device, waiting for the device to finish each
/// batch (the logits stay on the device).
fn burn<B: Backend>(
    c: &mut Criterion,
    name: &str,
    label: &str,
    batches: &[usize],
    pixels: &[u8],
    resident: bool,
) {
    let device = Default::default();
    let layers = onnx::read(&read(&format!("{name}.onnx"))).expect("the shipped ONNX reads");
    let model: Classifier<B> = unfold(&layers, &device);
    for &batch in batches {
        let mut group = c.benchmark_group(format!("{name}/batch{batch}"));
        group.throughput(Throughput::Elements(batch as u64));
        let input = &pixels[..batch * IMAGE_PIXELS];
        if resident {
            let on_device = images_tensor::<B>(input, &device);
            group.bench_function(label, |b| {
                b.iter(|| {
                    let logits = model.forward(black_box(on_device.clone()));
                    B::sync(&device).expect("the device finishes");
                    black_box(logits)
                })
            });
        } else {
            group.bench_function(label, |b| {
                b.iter(|| black_box(burn_logits(&model, black_box(input), &device)))
            });
        }
        group.finish();
    }
}

fn all(c: &mut Criterion) {
    let pixels = images();
    eprintln!("int8 kernels on this CPU: {}", Isa::detect().name());
    for name in KINDS {
        int8(c, name, &pixels);
        tract(c, name, &pixels);
        type Cpu = fmnist_trainer::backend::Cpu;
        burn::<Cpu>(c, name, "burn-flex-f32", &[1, 256], &pixels, false);
        #[cfg(feature = "cuda")]
        {
            type Gpu = fmnist_trainer::backend::Gpu;
            const BATCHES: [usize; 4] = [1, 256, 4096, COUNT];
            burn::<Gpu>(c, name, "burn-cuda-f32", &BATCHES, &pixels, false);
            burn::<Gpu>(c, name, "burn-cuda-f32-resident", &BATCHES, &pixels, true);
        }
    }
    // `edge` with 7-bit weights: the AVX2 tier multiplies its bytes (`vpmaddubsw`); the
    // other tiers run it as `edge.q8`.
    int8(c, "edge7", &pixels);
}

fn config() -> Criterion {
    // One thread for every CPU path (burn-flex would otherwise use every core).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    // Plots off: plotters finds no fonts on a bare machine and panics.
    Criterion::default()
        .without_plots()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = all
}
criterion_main!(benches);
