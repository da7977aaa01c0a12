//! Temperature scaling: one temperature `T > 0` such that `softmax(logits / T)` means
//! what it says, fitted on the validation split (Guo et al., "On Calibration of Modern
//! Neural Networks", 2017). Label smoothing trains models whose probabilities top out near
//! 90%; `T` corrects that without changing any class.
//!
//! [`fit_temperature`] minimises the mean negative log-likelihood over `ln T` in
//! `[ln 0.05, ln 20]` by golden-section search in `f64` (deterministic: the same logits give
//! the same `T`). It always starts from the raw logits (the int8 engine's real-valued
//! logits, or the float model's), never from probabilities already scaled, so
//! calibrating a file twice gives the same temperature. [`calibrate_file`] rewrites an
//! exported file (int8 blob of format 1 or 2, or ONNX) with its temperature.

use std::fmt;
use std::path::Path;

use anyhow::Context;
use fmnist_runtime::blob::{self, Envelope};
use fmnist_runtime::dataset::LabeledImages;
use fmnist_runtime::{FastPlan, Plan, CLASS_COUNT};

/// The smallest temperature the fit considers.
pub const MIN_TEMPERATURE: f64 = 0.05;
/// The largest temperature the fit considers.
pub const MAX_TEMPERATURE: f64 = 20.0;
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

/// The temperature in `[MIN_TEMPERATURE, MAX_TEMPERATURE]` that minimises the mean
/// negative log-likelihood of `labels` under `softmax(logits / T)`: golden-section search
/// on `ln T` (the NLL is unimodal in it) to a width of 1e-9. 1 when there are no images.
pub fn fit_temperature(logits: &[f32], labels: &[u8]) -> f64 {
    if labels.is_empty() {
        return 1.0;
    }
    let f = |x: f64| nll(logits, labels, x.exp());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (MIN_TEMPERATURE.ln(), MAX_TEMPERATURE.ln());
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

/// A blob (format 1 or 2) with its temperature set to `temperature`, as format 2. The
/// blob is validated by the engine before and after.
pub fn blob_with_temperature(bytes: &[u8], temperature: f32) -> anyhow::Result<Vec<u8>> {
    Plan::new(bytes).context("the int8 blob is refused")?;
    let (envelope, _) = postcard::take_from_bytes::<Envelope<'_>>(bytes)
        .context("the int8 blob's envelope does not decode")?;
    let (mut model, _) = blob::decode_payload(envelope.version, envelope.payload)
        .context("the int8 blob's model does not decode")?;
    model.temperature = temperature;
    let bytes = blob::encode(&model).context("the int8 blob cannot be encoded")?;
    Plan::new(&bytes).context("the calibrated int8 blob is refused")?;
    Ok(bytes)
}

/// An ONNX file with its `temperature` metadata entry set to `temperature` (any previous
/// one replaced); nothing else changes.
pub fn onnx_with_temperature(bytes: &[u8], temperature: f32) -> anyhow::Result<Vec<u8>> {
    use protobuf::Message;
    let mut model =
        onnx_protobuf::ModelProto::parse_from_bytes(bytes).context("not an ONNX file")?;
    let mut kept: Vec<_> = model
        .get_metadata_props()
        .iter()
        .filter(|entry| entry.get_key() != ONNX_KEY)
        .cloned()
        .collect();
    kept.push(onnx_entry(temperature));
    model.set_metadata_props(kept.into());
    Ok(model.write_to_bytes()?)
}

/// The ONNX `metadata_props` entry of a temperature (the shortest text that reads back as
/// the same `f32`).
pub fn onnx_entry(temperature: f32) -> onnx_protobuf::StringStringEntryProto {
    let mut entry = onnx_protobuf::StringStringEntryProto::new();
    entry.set_key(ONNX_KEY.into());
    entry.set_value(temperature.to_string());
    entry
}

/// The float logits of an ONNX file this trainer exported, computed by burn on the layers
/// read back from it ([`crate::export::onnx::read`]).
pub fn onnx_logits(bytes: &[u8], set: &LabeledImages) -> anyhow::Result<Vec<f32>> {
    type B = crate::backend::Cpu;
    let device = Default::default();
    let layers = crate::export::onnx::read(bytes)?;
    let model = crate::export::unfold::<B>(&layers, &device);
    Ok(crate::train::evaluate(&model, set, &device).logits)
}

/// Fits the temperature of the exported file at `path` (an int8 blob, recognised by its
/// magic, or an ONNX file) on `val`, measures it on `val` and `test` (when not empty), and
/// rewrites the file atomically with the temperature. The fit uses the file's raw logits,
/// so the result does not depend on a temperature the file already has.
pub fn calibrate_file(
    path: &Path,
    val: &LabeledImages,
    test: &LabeledImages,
) -> anyhow::Result<TemperatureFit> {
    let name = || path.display().to_string();
    let bytes = crate::fsutil::read_regular(path, 64 << 20)?;
    let test = (!test.is_empty()).then_some(test);
    let (fit, rewritten) = if bytes.starts_with(&blob::MAGIC) {
        let plan = FastPlan::new(
            Plan::new(&bytes).with_context(|| format!("{}: int8 blob refused", name()))?,
        );
        let val_logits = int8_logits(&plan, val)?;
        let test_logits = test.map(|t| int8_logits(&plan, t)).transpose()?;
        let fit = TemperatureFit::new(
            (&val_logits, &val.labels),
            test.zip(test_logits.as_deref())
                .map(|(t, l)| (l, &t.labels[..])),
        );
        let rewritten = blob_with_temperature(&bytes, fit.stored()).with_context(name)?;
        (fit, rewritten)
    } else {
        let val_logits = onnx_logits(&bytes, val).with_context(name)?;
        let test_logits = test.map(|t| onnx_logits(&bytes, t)).transpose()?;
        let fit = TemperatureFit::new(
            (&val_logits, &val.labels),
            test.zip(test_logits.as_deref())
                .map(|(t, l)| (l, &t.labels[..])),
        );
        let rewritten = onnx_with_temperature(&bytes, fit.stored()).with_context(name)?;
        (fit, rewritten)
    };
    crate::fsutil::write_output(path, &rewritten)?;
    Ok(fit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Logits `z * t_true` of images whose labels are drawn from `softmax(z)`: a model
    /// whose calibrating temperature is `t_true`.
    fn synthetic(t_true: f64, images: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut logits = Vec::with_capacity(images * CLASS_COUNT);
        let mut labels = Vec::with_capacity(images);
        for _ in 0..images {
            let favourite = rng.random_range(0..CLASS_COUNT);
            let z: [f64; CLASS_COUNT] = std::array::from_fn(|c| {
                rng.random_range(-2.0..2.0) + if c == favourite { 3.0 } else { 0.0 }
            });
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let p = z.map(|v| (v - max).exp());
            let mut u = rng.random_range(0.0..p.iter().sum::<f64>());
            let mut label = CLASS_COUNT - 1;
            for (c, &pc) in p.iter().enumerate() {
                if u < pc {
                    label = c;
                    break;
                }
                u -= pc;
            }
            labels.push(label as u8);
            logits.extend(z.map(|v| (v * t_true) as f32));
        }
        (logits, labels)
    }

    #[test]
    fn the_fit_recovers_a_known_temperature() {
        for (t_true, seed) in [(2.5, 1), (0.4, 2), (1.0, 3)] {
            let (logits, labels) = synthetic(t_true, 20_000, seed);
            let t = fit_temperature(&logits, &labels);
            assert!(
                (t / t_true - 1.0).abs() < 0.04,
                "true temperature {t_true}, fitted {t}"
            );
            // It is the minimum, and calibration improves.
            let best = nll(&logits, &labels, t);
            assert!(best <= nll(&logits, &labels, t * 1.01));
            assert!(best <= nll(&logits, &labels, t / 1.01));
            if t_true != 1.0 {
                let fit = TemperatureFit::new((&logits, &labels), None);
                assert!(fit.val[1].ece < fit.val[0].ece / 2.0, "{fit}");
                assert!(fit.val[1].nll < fit.val[0].nll, "{fit}");
            }
            // Deterministic.
            assert_eq!(t, fit_temperature(&logits, &labels));
        }
    }

    #[test]
    fn nll_and_ece_of_known_cases() {
        // Two images, uniform logits: NLL ln 10, top probability 0.1, first class
        // predicted, right once: ECE |0.5 - 0.1|.
        let logits = vec![0f32; 20];
        assert!((nll(&logits, &[0, 3], 1.0) - 10f64.ln()).abs() < 1e-12);
        assert!((ece(&logits, &[0, 3], 1.0) - 0.4).abs() < 1e-12);
        // Certain and right: no error.
        let mut sure = vec![0f32; 10];
        sure[4] = 100.0;
        assert!(nll(&sure, &[4], 1.0) < 1e-12);
        assert!(ece(&sure, &[4], 1.0) < 1e-12);
        assert_eq!(fit_temperature(&[], &[]), 1.0);
    }

    #[test]
    fn onnx_metadata_round_trip() {
        use protobuf::Message;
        let mut model = onnx_protobuf::ModelProto::new();
        let mut other = onnx_protobuf::StringStringEntryProto::new();
        other.set_key("model_kind".into());
        other.set_value("edge".into());
        model.mut_metadata_props().push(other);
        let bytes = model.write_to_bytes().unwrap();
        let once = onnx_with_temperature(&bytes, 0.7123).unwrap();
        let twice = onnx_with_temperature(&once, 1.25).unwrap();
        let back = onnx_protobuf::ModelProto::parse_from_bytes(&twice).unwrap();
        let props: Vec<(&str, &str)> = back
            .get_metadata_props()
            .iter()
            .map(|e| (e.get_key(), e.get_value()))
            .collect();
        assert_eq!(props, [("model_kind", "edge"), ("temperature", "1.25")]);
        let value = onnx_protobuf::ModelProto::parse_from_bytes(&once).unwrap();
        let value = value.get_metadata_props()[1].get_value().parse::<f32>();
        assert_eq!(value, Ok(0.7123));
    }
}
