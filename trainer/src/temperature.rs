//! Temperature scaling: one temperature `T > 0` such that `softmax(logits / T)` means
//! what it says, fitted on the validation split (Guo et al., "On Calibration of Modern
//! Neural Networks", 2017). Label smoothing trains models whose probabilities top out near
//! 90%; `T` corrects that without changing any class.
//!
//! [`fit_temperature`] minimises the mean negative log-likelihood over `ln T` in
//! `[ln 0.05, ln 20]` by golden-section search in `f64` (deterministic: the same logits give
//! the same `T`). It always starts from the raw logits (the int8 engine's real-valued
//! logits, or the float model's), never from probabilities already scaled, so
//! calibrating a file twice gives the same temperature.
//! [`crate::export::calibrate::calibrate_file`] rewrites an exported file (int8 blob of
//! format 1 or 2, or ONNX) with its temperature.

use std::fmt;

use fmnist_runtime::dataset::LabeledImages;
use fmnist_runtime::{FastPlan, CLASS_COUNT};

/// The smallest temperature the fit considers (a blob may state down to
/// [`fmnist_runtime::engine::MIN_TEMPERATURE`]; distillation's own range is
/// [`crate::config::recipe::DISTILL_MIN_TEMPERATURE`]).
pub const FIT_MIN_TEMPERATURE: f64 = 0.05;
/// The largest temperature the fit considers (a blob may state up to
/// [`fmnist_runtime::engine::MAX_TEMPERATURE`]).
pub const FIT_MAX_TEMPERATURE: f64 = 20.0;
/// Equal-width confidence bins of the expected calibration error.
pub const ECE_BINS: usize = 15;
/// The `metadata_props` key of an ONNX file's temperature.
pub const ONNX_KEY: &str = "temperature";

/// How well probabilities `softmax(logits / T)` fit the labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Mean negative log-likelihood of the true class (nats).
    pub nll: f64,
    /// Expected calibration error over [`ECE_BINS`] bins of the top probability: the
    /// image-weighted mean of |accuracy - mean confidence| per bin.
    pub ece: f64,
}

/// One image's logits at a time.
fn rows(logits: &[f32]) -> impl Iterator<Item = &[f32]> {
    logits.chunks_exact(CLASS_COUNT)
}

/// Log-softmax of one image's logits at temperature `t`, in f64.
fn log_softmax(row: &[f32], t: f64) -> [f64; CLASS_COUNT] {
    let z: [f64; CLASS_COUNT] = std::array::from_fn(|c| f64::from(row[c]) / t);
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_sum = z.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
    z.map(|v| v - log_sum)
}

/// Mean negative log-likelihood of `labels` under `softmax(logits / t)`; `logits` holds
/// 10 per image.
pub fn nll(logits: &[f32], labels: &[u8], t: f64) -> f64 {
    let sum: f64 = rows(logits)
        .zip(labels)
        .map(|(row, &label)| -log_softmax(row, t)[usize::from(label)])
        .sum();
    sum / labels.len().max(1) as f64
}

/// Expected calibration error of `softmax(logits / t)` over [`ECE_BINS`] equal-width bins
/// of the top probability (a bin is `(k/15, (k+1)/15]`).
pub fn ece(logits: &[f32], labels: &[u8], t: f64) -> f64 {
    let mut count = [0usize; ECE_BINS];
    let mut confidence = [0f64; ECE_BINS];
    let mut correct = [0f64; ECE_BINS];
    for (row, &label) in rows(logits).zip(labels) {
        let log_p = log_softmax(row, t);
        let predicted = fmnist_runtime::metrics::argmax(row);
        let top = log_p[predicted].exp();
        let bin = ((top * ECE_BINS as f64).ceil() as usize).clamp(1, ECE_BINS) - 1;
        count[bin] += 1;
        confidence[bin] += top;
        correct[bin] += f64::from(u8::from(predicted == usize::from(label)));
    }
    let total = labels.len().max(1) as f64;
    (0..ECE_BINS)
        .filter(|&b| count[b] > 0)
        .map(|b| (correct[b] - confidence[b]).abs() / total)
        .sum()
}

/// [`nll`] and [`ece`] at temperature `t`.
pub fn quality(logits: &[f32], labels: &[u8], t: f64) -> Quality {
    Quality {
        nll: nll(logits, labels, t),
        ece: ece(logits, labels, t),
    }
}

/// The temperature in `[FIT_MIN_TEMPERATURE, FIT_MAX_TEMPERATURE]` that minimises the mean
/// negative log-likelihood of `labels` under `softmax(logits / T)`: golden-section search
/// on `ln T` (the NLL is unimodal in it) to a width of 1e-9. 1 when there are no images.
pub fn fit_temperature(logits: &[f32], labels: &[u8]) -> f64 {
    if labels.is_empty() {
        return 1.0;
    }
    let f = |x: f64| nll(logits, labels, x.exp());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (FIT_MIN_TEMPERATURE.ln(), FIT_MAX_TEMPERATURE.ln());
    let mut c = b - ratio * (b - a);
    let mut d = a + ratio * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > 1e-9 {
        if fc <= fd {
            b = d;
            d = c;
            fd = fc;
            c = b - ratio * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + ratio * (b - a);
            fd = f(d);
        }
    }
    ((a + b) / 2.0).exp()
}

/// A fitted temperature and what it did, on the validation split and the test set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemperatureFit {
    /// The fitted temperature.
    pub temperature: f64,
    /// Validation images it was fitted on.
    pub val_images: usize,
    /// On the validation split: before (T = 1) and after.
    pub val: [Quality; 2],
    /// On the test set, when given: before and after.
    pub test: Option<[Quality; 2]>,
}

impl TemperatureFit {
    /// Fits on the validation logits and labels and measures before and after on them
    /// and on the test set's (when given). Logits: 10 per image, raw (not divided by any
    /// temperature).
    pub fn new(val: (&[f32], &[u8]), test: Option<(&[f32], &[u8])>) -> TemperatureFit {
        let temperature = fit_temperature(val.0, val.1);
        let measure = |(logits, labels): (&[f32], &[u8])| {
            [
                quality(logits, labels, 1.0),
                quality(logits, labels, temperature),
            ]
        };
        TemperatureFit {
            temperature,
            val_images: val.1.len(),
            val: measure(val),
            test: test.filter(|(_, labels)| !labels.is_empty()).map(measure),
        }
    }

    /// The temperature as the files store it.
    pub fn stored(&self) -> f32 {
        self.temperature as f32
    }
}

impl fmt::Display for TemperatureFit {
    /// `temperature 0.7123 (fitted on 1000 validation images)`, then a line each for the
    /// validation split and the test set: NLL and ECE before -> after.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "temperature {:.4} (fitted on {} validation images)",
            self.stored(),
            self.val_images
        )?;
        let line = |f: &mut fmt::Formatter<'_>, name: &str, [before, after]: [Quality; 2]| {
            write!(
                f,
                "\n    {name:<11} NLL {:.4} -> {:.4}, ECE {:.2}% -> {:.2}%",
                before.nll,
                after.nll,
                before.ece * 100.0,
                after.ece * 100.0
            )
        };
        line(f, "validation:", self.val)?;
        if let Some(test) = self.test {
            line(f, "test:", test)?;
        }
        Ok(())
    }
}

/// The int8 engine's real-valued logits (`values * logit_scale`, not divided by the
/// blob's temperature) of every image of `set`, 10 per image.
pub fn int8_logits(plan: &FastPlan<'_>, set: &LabeledImages) -> anyhow::Result<Vec<f32>> {
    Ok(plan
        .classify_all(&set.images, 0)?
        .iter()
        .flat_map(|logits| logits.real())
        .collect())
}

/// The ONNX `metadata_props` entry of a temperature (the shortest text that reads back as
/// the same `f32`).
pub fn onnx_entry(temperature: f32) -> onnx_protobuf::StringStringEntryProto {
    let mut entry = onnx_protobuf::StringStringEntryProto::new();
    entry.set_key(ONNX_KEY.into());
    entry.set_value(temperature.to_string());
    entry
}
