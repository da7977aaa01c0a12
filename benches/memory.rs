//! The memory each inference path needs: every path runs in a fresh process that loads
//! 256 test images, resets and notes its peak resident set (`VmHWM`), loads the model,
//! classifies the images one by one and as one batch, and reports how much the peak grew.
//!
//! ```text
//! cargo bench --bench memory
//! ```
//!
//! The int8 engine's own figure is exact and smaller than a page count can show: its arena
//! (the blob states it) plus, on the vector path, the repacked weights.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

use fmnist_runtime::onnx::OnnxClassifier;
use fmnist_runtime::{FastPlan, Isa};
use fmnist_runtime::{Plan, IMAGE_PIXELS};
use fmnist_trainer::batch::images_tensor;
use fmnist_trainer::export::{onnx, unfold};
use fmnist_trainer::model::Classifier;

const PATHS: [&str; 7] = [
    "int8-portable",
    "int8-avx2",
    "int8-avx-vnni",
    "int8-avx512-vnni",
    "int8-amx-int8",
    "tract-f32",
    "burn-flex-f32",
];
const IMAGES: usize = 256;

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Peak resident set of this process so far, in KiB.
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn images() -> Vec<u8> {
    let dir = std::env::var_os("FMNIST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/datasets/fashion-mnist"));
    fmnist_runtime::dataset::read_idx_images(&dir.join("t10k-images-idx3-ubyte.gz"))
        .map(|p| p[..IMAGES * IMAGE_PIXELS].to_vec())
        .unwrap_or_else(|_| {
            (0..IMAGES * IMAGE_PIXELS)
                .map(|i| ((i * 2_654_435_761) >> 7) as u8)
                .collect()
        })
}

/// Child: one path on one model; prints `peak_before peak_after` (KiB).
fn measure(path: &str, kind: &str) -> Result<(), String> {
    let pixels = images();
    black_box(&pixels);
    // Reset the peak to the current resident set (Linux >= 4.0), so that the reading of
    // the whole test file above does not hide what the model needs.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = peak_kib();
    let read = |ext: &str| {
        let file = models_dir().join(format!("{kind}.{ext}"));
        std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))
    };
    match path {
        _ if path.starts_with("int8-") => {
            let blob = read("q8")?;
            let plan = Plan::new(&blob).map_err(|e| e.to_string())?;
            let isa = Isa::ALL
                .into_iter()
                .find(|isa| path == format!("int8-{}", isa.name()))
                .ok_or_else(|| format!("{path}: no such kernels"))?;
            let fast = FastPlan::with_isa(plan, isa);
            if fast.isa() != isa {
                return Err(format!("{path}: this CPU lacks it"));
            }
            let mut arena = vec![0u8; fast.arena_bytes()];
            eprintln!(
                "{kind} {path}: arena {} B, repacked weights {} B",
                fast.arena_bytes(),
                fast.packed_bytes()
            );
            for image in pixels.as_chunks::<IMAGE_PIXELS>().0 {
                black_box(
                    fast.classify(image, &mut arena)
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        "tract-f32" => {
            let name = format!("{kind}.onnx");
            let onnx = OnnxClassifier::from_bytes(&read("onnx")?, name.as_ref())
                .map_err(|e| e.to_string())?;
            black_box(
                onnx.logits(&pixels[..IMAGE_PIXELS])
                    .map_err(|e| e.to_string())?,
            );
            black_box(onnx.logits(&pixels).map_err(|e| e.to_string())?);
        }
        "burn-flex-f32" => {
            type Cpu = fmnist_trainer::backend::Cpu;
            let device = Default::default();
            let layers = onnx::read(&read("onnx")?).map_err(|e| e.to_string())?;
            let model: Classifier<Cpu> = unfold(&layers, &device);
            for batch in [1, IMAGES] {
                let input = images_tensor::<Cpu>(&pixels[..batch * IMAGE_PIXELS], &device);
                black_box(fmnist_trainer::batch::to_f32_vec(model.forward(input)));
            }
        }
        other => return Err(format!("unknown path {other}")),
    }
    println!("{before} {}", peak_kib());
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, path, kind, ..] = args.as_slice() {
        if flag == "--measure" {
            if let Err(e) = measure(path, kind) {
                eprintln!("{e}");
                std::process::exit(1);
            }
            return;
        }
    }
    let Ok(me) = std::env::current_exe() else {
        eprintln!("cannot find this program's path");
        std::process::exit(1);
    };
    println!(
        "| model | path | peak RSS before the model | growth: load + classify 1 and {IMAGES} |"
    );
    println!("|---|---|---:|---:|");
    for kind in ["cnn", "edge"] {
        for path in PATHS {
            let out = Command::new(&me)
                .args(["--measure", path, kind])
                .env("RAYON_NUM_THREADS", "1")
                .output();
            let text = out
                .as_ref()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            if let Ok(o) = &out {
                eprint!("{}", String::from_utf8_lossy(&o.stderr));
            }
            let numbers: Vec<u64> = text.split(' ').filter_map(|n| n.parse().ok()).collect();
            match numbers.as_slice() {
                [before, after] => println!(
                    "| {kind} | {path} | {before} KiB | {} KiB |",
                    after.saturating_sub(*before)
                ),
                _ => println!(
                    "| {kind} | {path} | failed: {} | |",
                    out.map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
                        .unwrap_or_else(|e| e.to_string())
                ),
            }
        }
    }
}
