//! `runtime bench`: a model's latency and throughput on a fixed pool of images, in the
//! manner of TFLite's `benchmark_model` and OpenVINO's `benchmark_app`: warm up, then call
//! the model back to back for a duration (or a number of calls) on one or more threads,
//! timing every call, and report the latency distribution and the images per second.
//!
//! A call is one batch of `--batch` images through the model's own inference entry point,
//! on the calling thread: an int8 blob through [`FastPlan::classify_batch`] in an arena
//! allocated once per thread (nothing is allocated while timing), an ONNX file through
//! tract as [`OnnxClassifier::logits`] runs it (one image after the other, one state per
//! call). Each thread has its own copy of the int8 plan and its own arena; ONNX threads
//! share tract's optimised plan (immutable) and each call has its own state.
//!
//! Latencies are kept as nanoseconds, at most [`MAX_SAMPLES`] of them across all threads
//! (a uniform sample of each thread's calls when a run makes more: reservoir sampling),
//! so that memory stays bounded however long the run; the minimum, mean and maximum are
//! exact over every call. Percentiles are nearest-rank ([`percentile`]).
//!
//! This module owns the arguments and the order of the steps; [`inputs`](mod@inputs) the
//! images, [`measure`](mod@measure) the timed calls and their pooled figures,
//! [`report`](mod@report) the JSON document and the text.
//!
//! [`FastPlan::classify_batch`]: fmnist_runtime::FastPlan::classify_batch
//! [`OnnxClassifier::logits`]: fmnist_runtime::onnx::OnnxClassifier::logits
//! [`MAX_SAMPLES`]: measure::MAX_SAMPLES
//! [`percentile`]: measure::percentile

mod inputs;
mod measure;
mod report;

use std::time::Duration;

use self::inputs::{inputs, Pool};
use self::measure::{measure, Schedule, Until};
use self::report::{report_json, report_text, Report};
use super::*;

/// The largest `--batch`.
const MAX_BATCH: u32 = 4096;
/// The most `--threads`.
const MAX_THREADS: u32 = 256;
/// The longest `--seconds`: an hour.
const MAX_SECONDS: f64 = 3600.0;
/// The most `--iterations` (and `--warmup`).
const MAX_ITERATIONS: u64 = 1_000_000_000;
/// The measured run without `--seconds` or `--iterations`.
const DEFAULT_SECONDS: f64 = 5.0;
/// The warm-up without `--warmup`, shortened to a fifth of `--seconds` when that is less.
const DEFAULT_WARMUP_SECONDS: f64 = 1.0;

#[derive(Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Images per model call (a call is one batch), 1 to 4096.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BATCH)))]
    batch: u32,
    /// Threads calling the model at once, each with its own working memory, 1 to 256; the
    /// throughput is theirs together and the latencies are pooled.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_THREADS)))]
    threads: u32,
    /// Measure for S seconds (fractions allowed, more than 0, at most 3600) [default: 5].
    #[arg(long, value_name = "S", value_parser = parse_seconds, allow_negative_numbers = true,
          conflicts_with = "iterations")]
    seconds: Option<f64>,
    /// Measure N calls in all (shared among the threads) instead of a duration.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=MAX_ITERATIONS))]
    iterations: Option<u64>,
    /// Warm-up calls per thread before measuring (0: none) [default: 1 s of calls, or a
    /// fifth of --seconds when that is shorter; with --iterations, a fifth of each thread's
    /// calls].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(0..=MAX_ITERATIONS))]
    warmup: Option<u64>,
    /// The images: a data directory (its test split), a CSV or an IDX image file; the first
    /// 1000 are cycled [default: the test set in /usr/share/datasets/fashion-mnist when it
    /// is there, otherwise deterministic synthetic images].
    #[arg(long, value_name = "DIR|FILE", conflicts_with = "synthetic")]
    data: Option<PathBuf>,
    /// Use deterministic synthetic images even where the dataset is installed.
    #[arg(long)]
    synthetic: bool,
    /// One JSON document on stdout instead of text: model, format, kernels, batch,
    /// threads, iterations, images, seconds, latency_us (min, mean, p50, p90, p99, max),
    /// images_per_second, inputs.
    #[arg(long)]
    json: bool,
}

/// `--seconds`: a finite number of seconds, more than 0 and at most [`MAX_SECONDS`].
fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > MAX_SECONDS {
        return Err(format!(
            "{text} seconds: it must be more than 0 and at most {MAX_SECONDS}"
        ));
    }
    Ok(seconds)
}

/// When the measured run ends, how long each thread warms up and when each thread stops,
/// from `--iterations` (shared among the threads), `--seconds` and `--warmup`. clap has
/// already checked each argument's range and that `--seconds` and `--iterations` are not
/// both given.
fn check_args(args: &BenchArgs) -> Schedule {
    let threads = args.threads as usize;
    match args.iterations {
        Some(calls) => {
            let threads = threads as u64;
            let shares: Vec<u64> = (0..threads)
                .map(|t| calls / threads + u64::from(t < calls % threads))
                .collect();
            let warmup = args.warmup.unwrap_or(shares[0].div_ceil(5));
            Schedule {
                until: Until::Calls(calls),
                warmup: Until::Calls(warmup),
                per_thread: shares.into_iter().map(Until::Calls).collect(),
            }
        }
        None => {
            let seconds = args.seconds.unwrap_or(DEFAULT_SECONDS);
            let warmup = match args.warmup {
                Some(calls) => Until::Calls(calls),
                None => Until::Elapsed(Duration::from_secs_f64(
                    DEFAULT_WARMUP_SECONDS.min(seconds / 5.0),
                )),
            };
            let until = Until::Elapsed(Duration::from_secs_f64(seconds));
            Schedule {
                until,
                warmup,
                per_thread: vec![until; threads],
            }
        }
    }
}

/// `runtime bench`: check the arguments, load the model and the images, time the calls on
/// every thread, and report the figures as text or JSON.
pub(crate) fn bench(args: &BenchArgs) -> anyhow::Result<u8> {
    let batch = args.batch as usize;
    let (bytes, name) = model_bytes(&args.model)?;
    let model = load(&bytes, &name, args.model.kernels)?;
    let inputs = inputs(args)?;
    let pool = Pool::new(&inputs.pixels, batch);
    let schedule = check_args(args);
    let measured = measure(&model, &pool, batch, &schedule)?;
    let report = Report {
        name: &name,
        model: &model,
        inputs: &inputs,
        pool_images: pool.images,
        batch,
        threads: args.threads as usize,
        measured,
    };
    if args.json {
        report_json(&report)
    } else {
        report_text(&report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_must_be_positive_finite_and_at_most_an_hour() {
        assert_eq!(parse_seconds("0.2"), Ok(0.2));
        assert_eq!(parse_seconds("3600"), Ok(3600.0));
        for bad in ["0", "-1", "nan", "inf", "3600.5", "", "five"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
