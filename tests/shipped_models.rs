//! The model card cannot drift from the shipped files: checksums, sizes and the int8 test
//! accuracy are recomputed here.

use std::path::{Path, PathBuf};

use fmnist_runtime::dataset::{load_split, Split, DEFAULT_DATA_DIR};
use fmnist_runtime::FastPlan;
use fmnist_runtime::Plan;
use sha2::{Digest, Sha256};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn card() -> String {
    std::fs::read_to_string(models().join("README.md")).unwrap()
}

/// `split` of the dataset in `FMNIST_DATA`, or in the Debian package's directory.
fn dataset(split: Split) -> fmnist_runtime::dataset::LabeledImages {
    let dir = std::env::var("FMNIST_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into());
    load_split(Path::new(&dir), split).expect("run scripts/test.sh: it installs the dataset")
}

#[test]
fn the_card_lists_every_shipped_file_with_its_size_and_checksum() {
    let card = card();
    let mut listed = 0;
    for line in card.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line
            .split('|')
            .map(|c| c.trim().trim_matches('`'))
            .collect();
        let (name, size, digest) = (cells[1], cells[2].replace(',', ""), cells[3]);
        let bytes = std::fs::read(models().join(name)).unwrap();
        assert_eq!(bytes.len().to_string(), size, "{name}");
        assert_eq!(format!("{:x}", Sha256::digest(&bytes)), digest, "{name}");
        listed += 1;
    }
    assert_eq!(
        listed, 6,
        "edge and cnn, ONNX and int8, edge7's blob and wide's ONNX file"
    );
}

#[test]
fn the_edge_blob_reaches_the_int8_accuracy_the_card_states() {
    let test = dataset(Split::Test);
    let blob = std::fs::read(models().join("edge.q8")).unwrap();
    let plan = FastPlan::new(Plan::new(&blob).unwrap());
    let (confusion, _) = fmnist_runtime::evaluate::evaluate(&plan, &test).expect("classifies");
    let measured = format!("{:.2}%", confusion.accuracy() * 100.0);
    assert_eq!(confusion.total(), 10_000);
    assert!(
        confusion.accuracy() >= 0.94,
        "the shipped edge blob is under the 94.0% target: {measured}"
    );
    assert!(
        card().contains(&format!("int8 {measured}")),
        "the card does not state int8 {measured}"
    );
    let recorded = plan
        .model()
        .int8_accuracy
        .expect("the blob records its accuracy");
    assert!((f64::from(recorded) - confusion.accuracy()).abs() < 1e-6);
}

#[test]
fn edge7_is_edge_with_7_bit_weights_at_the_accuracy_the_card_states() {
    use fmnist_runtime::blob::Layer;
    let (edge, edge7) = (
        std::fs::read(models().join("edge.q8")).unwrap(),
        std::fs::read(models().join("edge7.q8")).unwrap(),
    );
    let (edge, edge7) = (Plan::new(&edge).unwrap(), Plan::new(&edge7).unwrap());
    let weights = |plan: &Plan<'_>| -> Vec<(usize, i8)> {
        plan.model()
            .layers
            .iter()
            .filter_map(Layer::weights)
            .map(|w| {
                (
                    w.len(),
                    w.iter()
                        .map(|&b| b as i8)
                        .max_by_key(|w| w.unsigned_abs())
                        .unwrap(),
                )
            })
            .collect()
    };
    // The same layers, with weights up to 64 in magnitude (each layer's largest exactly
    // 64) where edge's reach 127.
    let (shapes, shapes7) = (weights(&edge), weights(&edge7));
    assert_eq!(shapes.len(), 6);
    for ((len, largest), (len7, largest7)) in shapes.iter().zip(&shapes7) {
        assert_eq!(len, len7);
        assert_eq!(largest.unsigned_abs(), 127);
        assert_eq!(largest7.unsigned_abs(), 64);
    }
    assert_eq!(edge.model().kind, edge7.model().kind);
    assert_eq!(edge.arena_bytes(), edge7.arena_bytes());
    // The AVX2 tier multiplies all of edge7's layers byte-wise, none of edge's.
    if fmnist_runtime::Isa::Avx2.supported() {
        let bytewise = |plan: &Plan<'_>| {
            FastPlan::with_isa(plan.clone(), fmnist_runtime::Isa::Avx2).bytewise_layers()
        };
        assert_eq!(bytewise(&edge7), 6);
        assert_eq!(bytewise(&edge), 0);
    }
    let test = dataset(Split::Test);
    let plan = FastPlan::new(edge7);
    let (confusion, _) = fmnist_runtime::evaluate::evaluate(&plan, &test).expect("classifies");
    let measured = format!("{:.2}%", confusion.accuracy() * 100.0);
    assert!(
        card().contains(&format!("test accuracy int8 {measured}**")),
        "the card does not state edge7's int8 {measured}"
    );
    let recorded = plan
        .model()
        .int8_accuracy
        .expect("the blob records its accuracy");
    assert!((f64::from(recorded) - confusion.accuracy()).abs() < 1e-6);
    let stored = f64::from(plan.model().temperature);
    assert!(
        (stored - card_temperature("edge7.q8")).abs() < 1e-4,
        "{stored}"
    );
}

#[test]
fn the_shipped_onnx_files_read_back_into_burn_with_tracts_logits() {
    use fmnist_runtime::IMAGE_PIXELS;
    type Cpu = fmnist_trainer::backend::Cpu;
    let test = dataset(Split::Test);
    let pixels = &test.images[..50 * IMAGE_PIXELS];
    for kind in ["cnn", "edge", "wide"] {
        let path = models().join(format!("{kind}.onnx"));
        let bytes = std::fs::read(&path).unwrap();
        let tract = fmnist_runtime::onnx::OnnxClassifier::from_bytes(&bytes, &path).unwrap();
        let expected = tract.logits(pixels).unwrap();
        let layers = fmnist_trainer::export::onnx::read(&bytes).unwrap();
        let device = Default::default();
        let model: fmnist_trainer::model::Classifier<Cpu> =
            fmnist_trainer::export::unfold(&layers, &device);
        let input = fmnist_trainer::batch::images_tensor::<Cpu>(pixels, &device);
        let got = fmnist_trainer::batch::to_f32_vec(model.forward(input));
        assert_eq!(got.len(), expected.len());
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "{kind}: burn and tract differ by {worst}");
    }
}

/// The temperature the card states for `file` (its calibration table).
fn card_temperature(file: &str) -> f64 {
    let card = card();
    let line = card
        .lines()
        .find(|l| l.starts_with(&format!("| {file} |")))
        .unwrap_or_else(|| panic!("the card has no calibration row for {file}"));
    line.split('|').nth(2).unwrap().trim().parse().unwrap()
}

#[test]
fn the_shipped_models_are_calibrated_as_the_card_states() {
    use fmnist_trainer::export::calibrate::onnx_logits;
    use fmnist_trainer::temperature::{ece, fit_temperature, int8_logits};
    let (_, val) = dataset(Split::Train).split_last(1000);
    // The edge blob: format 2, and its temperature is the one a fit on its own int8
    // logits gives again (the fit reads raw logits), which lowers the calibration error.
    let blob = std::fs::read(models().join("edge.q8")).unwrap();
    assert_eq!(
        fmnist_runtime::blob::version(&blob),
        Some(fmnist_runtime::blob::FORMAT_VERSION)
    );
    let plan = FastPlan::new(Plan::new(&blob).unwrap());
    let stored = f64::from(plan.model().temperature);
    assert!(
        (stored - card_temperature("edge.q8")).abs() < 1e-4,
        "{stored}"
    );
    let logits = int8_logits(&plan, &val).unwrap();
    let refit = fit_temperature(&logits, &val.labels);
    assert!(
        (refit - stored).abs() < 1e-3,
        "stored {stored}, fitted again {refit}"
    );
    let (before, after) = (
        ece(&logits, &val.labels, 1.0),
        ece(&logits, &val.labels, stored),
    );
    assert!(after < before / 2.0, "ECE {before} -> {after}");
    // The probabilities the engine gives are those of the temperature.
    let mut arena = vec![0u8; plan.arena_bytes()];
    let first = plan.classify(val.image(0), &mut arena).unwrap();
    let expected = fmnist_runtime::metrics::softmax(&first.real().map(|l| l / stored as f32));
    for (p, q) in first.probabilities().iter().zip(expected) {
        assert!((p - q).abs() < 1e-6, "{p} vs {q}");
    }
    // The edge ONNX file: its metadata's temperature, read by the runtime, fitted again on
    // the float logits.
    let path = models().join("edge.onnx");
    let bytes = std::fs::read(&path).unwrap();
    let onnx = fmnist_runtime::onnx::OnnxClassifier::from_bytes(&bytes, &path).unwrap();
    let stored = f64::from(onnx.temperature());
    assert!(
        (stored - card_temperature("edge.onnx")).abs() < 1e-4,
        "{stored}"
    );
    let logits = onnx_logits(&bytes, &val).unwrap();
    let refit = fit_temperature(&logits, &val.labels);
    assert!(
        (refit - stored).abs() < 1e-3,
        "stored {stored}, fitted again {refit}"
    );
    assert!(ece(&logits, &val.labels, stored) < ece(&logits, &val.labels, 1.0) / 2.0);
    for kind in ["cnn.q8", "cnn.onnx"] {
        assert!((0.05..=20.0).contains(&card_temperature(kind)), "{kind}");
    }
}

#[test]
fn the_wide_onnx_file_reaches_the_float_accuracy_the_card_states_and_beats_edge() {
    let test = dataset(Split::Test);
    let path = models().join("wide.onnx");
    let bytes = std::fs::read(&path).unwrap();
    let onnx = fmnist_runtime::onnx::OnnxClassifier::from_bytes(&bytes, &path).unwrap();
    assert!(
        (f64::from(onnx.temperature()) - card_temperature("wide.onnx")).abs() < 1e-4,
        "{}",
        onnx.temperature()
    );
    // The project's own evaluation (`trainer eval`'s): the file read back into burn, whose
    // logits the read-back test above holds to tract's.
    let device = Default::default();
    let layers = fmnist_trainer::export::onnx::read(&bytes).unwrap();
    let model: fmnist_trainer::model::Classifier<fmnist_trainer::backend::Cpu> =
        fmnist_trainer::export::unfold(&layers, &device);
    let confusion = fmnist_trainer::eval::evaluate(&model, &test, &device).confusion;
    let measured = format!("{:.2}%", confusion.accuracy() * 100.0);
    assert_eq!(confusion.total(), 10_000);
    assert!(
        card().contains(&format!("**float {measured}**")),
        "the card does not state wide's float {measured}"
    );
    // The teacher is shipped because it beats the shipped edge blob's int8 accuracy.
    let edge = std::fs::read(models().join("edge.q8")).unwrap();
    let edge_accuracy = Plan::new(&edge).unwrap().model().int8_accuracy.unwrap();
    assert!(
        confusion.accuracy() > f64::from(edge_accuracy),
        "wide {measured} does not beat edge's int8 {edge_accuracy}"
    );
}
