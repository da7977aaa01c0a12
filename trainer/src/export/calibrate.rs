//! `trainer calibrate`: an exported file (int8 blob of format 1 or 2, or ONNX) rewritten
//! with the temperature [`crate::temperature`] fits on its raw logits.

use std::path::Path;

use anyhow::Context;
use fmnist_runtime::blob::{self, Envelope};
use fmnist_runtime::dataset::LabeledImages;
use fmnist_runtime::{FastPlan, Plan};

use crate::temperature::{int8_logits, onnx_entry, TemperatureFit, ONNX_KEY};

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

/// The float logits of an ONNX file this trainer exported, computed by burn on the layers
/// read back from it ([`crate::export::onnx::read`]).
pub fn onnx_logits(bytes: &[u8], set: &LabeledImages) -> anyhow::Result<Vec<f32>> {
    type B = crate::backend::Cpu;
    let device = Default::default();
    let layers = crate::export::onnx::read(bytes)?;
    let model = crate::export::unfold::<B>(&layers, &device);
    Ok(crate::eval::evaluate(&model, set, &device).logits)
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
    let bytes = crate::util::files::read_regular(path, 64 << 20)?;
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
    crate::util::files::write_output(path, &rewritten)?;
    Ok(fit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temperature::*;
    use fmnist_runtime::CLASS_COUNT;
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
