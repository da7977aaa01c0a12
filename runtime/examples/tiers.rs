//! Times every kernel tier this CPU runs on one model, one thread unless stated: the
//! figures of benches/README.md's tier tables.
//!
//! ```sh
//! cargo run --release -p fmnist-runtime --example tiers -- models/edge.q8 [IMAGES [ROUNDS]]
//! ```
//!
//! Per vector tier: `classify` image by image (the best of ROUNDS passes over the first IMAGES
//! test images, and the best 64-image slice of those passes, which a noisy machine's
//! pauses spoil less), `classify_batch` in batches of 64 (best slice), and
//! `classify_all` on every core the process may use (best pass; pin the process with
//! `taskset` for one). Each result is checked against the portable kernels' logits.
//! Needs Debian's `dataset-fashion-mnist`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use fmnist_runtime::{FastPlan, Isa, Logits, Plan, IMAGE_PIXELS};

const SLICE: usize = 64;
const TEST_IMAGES: &str = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| match args.get(i).map(|s| s.parse::<usize>()) {
        None => Ok(default),
        Some(Ok(n)) if n > 0 => Ok(n),
        Some(_) => Err(format!("argument {}: expected a positive number", i + 1)),
    };
    let (Some(model), Ok(images), Ok(rounds)) = (args.first(), number(1, 2048), number(2, 7))
    else {
        eprintln!("usage: tiers MODEL.q8 [IMAGES (2048)] [ROUNDS (7)]");
        return ExitCode::from(2);
    };
    match run(Path::new(model), images.next_multiple_of(SLICE), rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tiers: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The best time per image, in µs, of `work` run `rounds` times over `count` images.
fn best(rounds: usize, count: usize, mut work: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64() * 1e6 / count as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn run(model: &Path, images: usize, rounds: usize) -> Result<(), String> {
    let blob = std::fs::read(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let plan = Plan::new(&blob).map_err(|e| format!("{}: {e}", model.display()))?;
    let pixels = fmnist_runtime::dataset::read_idx_images(Path::new(TEST_IMAGES))
        .map_err(|e| format!("{TEST_IMAGES}: {e}"))?;
    let pixels: Vec<u8> = pixels
        .iter()
        .copied()
        .cycle()
        .take(images * IMAGE_PIXELS)
        .collect();
    let mut arena = vec![0u8; plan.arena_bytes()];
    let portable = pixels
        .as_chunks::<IMAGE_PIXELS>()
        .0
        .iter()
        .map(|image| plan.classify(image, &mut arena))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{}: {images} images, best of {rounds} rounds, µs per image",
        model.display()
    );
    let threads = match threads {
        1 => "1 thread".to_string(),
        n => format!("{n} threads"),
    };
    println!("| tier | classify | best {SLICE}-image slice | classify_batch({SLICE}), best slice | classify_all, {threads} |");
    println!("|---|---:|---:|---:|---:|");
    // The vector tiers (the portable kernels, 10-100x slower, are the reference).
    for isa in Isa::ALL.into_iter().skip(1).filter(|isa| isa.supported()) {
        let fast = FastPlan::with_isa(plan.clone(), isa);
        let mut arena = vec![0u8; fast.arena_bytes()];
        let mut batch_arena = vec![0u8; fast.batch_arena_bytes(SLICE)];
        let mut logits = vec![Logits::default(); SLICE];
        // The first image whose logits differ from the portable kernels', if any.
        let failed = std::cell::Cell::new(None);
        let check = |got: Option<Logits>, at: usize| {
            if got != Some(portable[at]) {
                failed.set(Some(at));
            }
        };
        let one = best(rounds, images, || {
            for (at, image) in pixels.as_chunks::<IMAGE_PIXELS>().0.iter().enumerate() {
                check(fast.classify(image, &mut arena).ok(), at);
            }
        });
        let (mut sliced, mut batched) = (f64::INFINITY, f64::INFINITY);
        for (s, slice) in pixels.chunks_exact(SLICE * IMAGE_PIXELS).enumerate() {
            sliced = sliced.min(best(rounds, SLICE, || {
                for (i, image) in slice.as_chunks::<IMAGE_PIXELS>().0.iter().enumerate() {
                    check(fast.classify(image, &mut arena).ok(), s * SLICE + i);
                }
            }));
            let mut ok = true;
            batched = batched.min(best(rounds, SLICE, || {
                ok &= fast
                    .classify_batch(slice, &mut batch_arena, &mut logits)
                    .is_ok();
            }));
            for (i, got) in logits.iter().enumerate() {
                check(ok.then_some(*got), s * SLICE + i);
            }
        }
        let all = best(rounds, images, || match fast.classify_all(&pixels, 0) {
            Ok(all) => all
                .iter()
                .enumerate()
                .for_each(|(at, got)| check(Some(*got), at)),
            Err(_) => failed.set(Some(0)),
        });
        if let Some(at) = failed.get() {
            return Err(format!("{}: image {at} differs from portable", isa.name()));
        }
        println!(
            "| {} | {one:.1} | {sliced:.1} | {batched:.1} | {all:.1} |",
            isa.name()
        );
    }
    Ok(())
}
