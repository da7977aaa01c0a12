//! The ONNX path's softmax temperature: the `temperature` metadata entry that `trainer
//! export` and `trainer calibrate` write, applied to the probabilities, refused at load
//! (naming the file) when it is not a usable number.
#![cfg(feature = "tract")]

use std::path::Path;

use fmnist_runtime::classifier::Classifier;
use fmnist_runtime::onnx::{InterfaceProblem, OnnxClassifier, OnnxError};
use fmnist_runtime::CLASS_COUNT;
use prost::Message;
use tract_onnx::pb;

/// The shipped `cnn.onnx` with its `temperature` entry replaced by `value` (removed for
/// `None`).
fn with_temperature(value: Option<&str>) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/cnn.onnx");
    let mut model = pb::ModelProto::decode(&std::fs::read(path).unwrap()[..]).unwrap();
    model
        .metadata_props
        .retain(|entry| entry.key != "temperature");
    if let Some(value) = value {
        model.metadata_props.push(pb::StringStringEntryProto {
            key: "temperature".into(),
            value: value.into(),
        });
    }
    model.encode_to_vec()
}

#[test]
fn a_bad_temperature_is_refused_at_load_naming_the_file() {
    let path = Path::new("models/bad.onnx");
    for bad in [
        "0", "-1", "nan", "NaN", "inf", "-inf", "", "warm", "1e9", "0.001",
    ] {
        let error = OnnxClassifier::from_bytes(&with_temperature(Some(bad)), path)
            .err()
            .unwrap_or_else(|| panic!("temperature `{bad}` must be refused"));
        assert!(
            matches!(&error, OnnxError::Interface { problem: InterfaceProblem::Temperature(v), .. } if v == bad),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.starts_with("models/bad.onnx: ") && text.contains("temperature"),
            "{text}"
        );
    }
}

#[test]
fn the_probabilities_are_the_softmax_of_the_logits_over_the_temperature() {
    let path = Path::new("cnn.onnx");
    let plain = OnnxClassifier::from_bytes(&with_temperature(None), path).unwrap();
    assert_eq!(plain.temperature(), 1.0);
    let bytes = with_temperature(Some("0.5"));
    let hot = OnnxClassifier::from_bytes(&bytes, path).unwrap();
    assert_eq!(hot.temperature(), 0.5);
    assert_eq!(hot.metadata()["temperature"], "0.5");
    let pixels: Vec<u8> = (0..784 * 3).map(|i| (i * 31 % 256) as u8).collect();
    let logits = hot.logits(&pixels).unwrap();
    assert_eq!(
        logits,
        plain.logits(&pixels).unwrap(),
        "the graph is the same"
    );
    let classifier = Classifier::from_bytes(&bytes, path).unwrap();
    assert_eq!(classifier.temperature(), 0.5);
    let probabilities = classifier.probabilities(&pixels).unwrap();
    for (row, p) in logits.chunks(CLASS_COUNT).zip(&probabilities) {
        let z: Vec<f64> = row.iter().map(|&l| f64::from(l) / 0.5).collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
        for c in 0..CLASS_COUNT {
            let expected = (z[c] - max).exp() / sum;
            assert!(
                (f64::from(p[c]) - expected).abs() < 1e-6,
                "{} vs {expected}",
                p[c]
            );
        }
        assert_eq!(
            fmnist_runtime::metrics::argmax(p),
            fmnist_runtime::metrics::argmax(row),
            "the class does not change"
        );
    }
}
