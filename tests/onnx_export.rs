//! ONNX export of every model kind, run back through tract-onnx on real test images.

mod common;

use std::path::Path;

use common::data_dir;
use fmnist_runtime::blob::Layer;
use fmnist_runtime::dataset::{load_split, LabeledImages, Split};
use fmnist_runtime::metrics::argmax;
use fmnist_runtime::onnx::OnnxClassifier;
use fmnist_runtime::{FastPlan, Isa, CLASS_COUNT};
use fmnist_trainer::backend::Cpu;
use fmnist_trainer::config::recipe::Recipe;
use fmnist_trainer::export;
use fmnist_trainer::model::ModelKind;
use fmnist_trainer::run::{self, RunInfo};

/// A briefly trained run of `kind` (so batch norm statistics are real, not 0 and 1).
fn trained_run(kind: ModelKind, dir: &Path) -> RunInfo {
    let (train, val) = load_split(&data_dir(), Split::Train)
        .unwrap()
        .truncated(700)
        .split_last(100);
    let mut recipe = Recipe::default_for(kind);
    recipe.epochs = 1;
    recipe.batch = 50;
    recipe.lr = 1e-3;
    let (mut info, _) = common::fit(kind, recipe, 3, train, val, dir);
    info.test_accuracy = Some(0.5);
    run::save_info(dir, &info).unwrap();
    info
}

fn test_images(count: usize) -> LabeledImages {
    load_split(&data_dir(), Split::Test)
        .unwrap()
        .truncated(count)
}

#[test]
fn every_model_kind_exports_and_tract_matches_burn() {
    let test = test_images(256);
    for &kind in ModelKind::all() {
        let run = tempfile::tempdir().unwrap();
        let info = trained_run(kind, run.path());
        let (info_loaded, model) = run::load::<Cpu>(run.path(), &Default::default()).unwrap();
        assert_eq!(info_loaded, info);
        let onnx_path = run.path().join("model.onnx");
        export::write_onnx(&model, &info, &onnx_path, Some(0.8)).unwrap();

        let burn_logits = fmnist_trainer::eval::evaluate(&model, &test, &Default::default()).logits;
        let onnx = OnnxClassifier::load(&onnx_path).unwrap();
        let tract_logits = onnx.logits(&test.images).unwrap();
        assert_eq!(tract_logits.len(), 256 * CLASS_COUNT);
        let worst = burn_logits
            .iter()
            .zip(&tract_logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-4, "{kind:?}: logits differ by up to {worst}");
        for (image, (ours, theirs)) in burn_logits
            .chunks(10)
            .zip(tract_logits.chunks(10))
            .enumerate()
        {
            assert_eq!(argmax(ours), argmax(theirs), "{kind:?}: image {image}");
        }
        // Batch 1 gives the same logits as the batch of 256 (the batch is symbolic).
        let single = onnx.logits(test.image(7)).unwrap();
        assert!(single
            .iter()
            .zip(&tract_logits[70..80])
            .all(|(a, b)| (a - b).abs() < 1e-5));

        // The int8 export of the same model: the engine runs every layer kind of every
        // model kind, and agrees with the float model.
        let calibration = load_split(&data_dir(), Split::Train)
            .unwrap()
            .truncated(600);
        let q8_path = run.path().join("model.q8");
        let images = export::ExportImages {
            calibration: &calibration,
            val: &test,
            test: Some(&test),
        };
        let report = export::write_q8(
            &model,
            &info,
            images,
            export::WeightBits::Eight,
            &q8_path,
            &Default::default(),
        )
        .unwrap();
        assert!(report.agreement >= 0.95, "{kind:?}: {report:?}");
        assert!(
            (report.float_val - report.int8_val).abs() <= 0.03,
            "{kind:?}: {report:?}"
        );
        let blob = std::fs::read(&q8_path).unwrap();
        let plan = fmnist_runtime::Plan::new(&blob).unwrap();
        assert_eq!(plan.model().kind, kind.name());
        assert_eq!(plan.arena_bytes(), report.arena_bytes);

        // Quantized again from the ONNX file (batch norm folded there): with 8-bit weights
        // as from the run, within two of the 256 images; with 7-bit ones, which the AVX2
        // tier multiplies byte-wise in every layer it runs (convolutions and the logits
        // after u8 activations: none of the mlp's, which follow LeakyReLU).
        for bits in [export::WeightBits::Eight, export::WeightBits::Seven] {
            let path = run.path().join(format!("from-onnx-{}.q8", bits.bits()));
            let (read, again) =
                export::write_q8_from_onnx(&onnx_path, images, bits, &path).unwrap();
            assert_eq!(read, kind);
            assert!(again.agreement >= 0.95, "{kind:?}, {bits:?}: {again:?}");
            let blob = std::fs::read(&path).unwrap();
            let plan = fmnist_runtime::Plan::new(&blob).unwrap();
            assert_eq!(plan.model().kind, kind.name());
            let largest = plan
                .model()
                .layers
                .iter()
                .filter_map(Layer::weights)
                .flatten()
                .map(|&w| (w as i8).unsigned_abs())
                .max();
            assert_eq!(largest, Some(bits.largest() as u8), "{kind:?}, {bits:?}");
            if bits == export::WeightBits::Eight {
                let (from_run, from_onnx) = (report.int8_test.unwrap(), again.int8_test.unwrap());
                assert!(
                    (from_run - from_onnx).abs() * 256.0 <= 2.0,
                    "{kind:?}: {from_run} from the run, {from_onnx} from its ONNX file"
                );
            } else if Isa::Avx2.supported() {
                let runs = match kind {
                    ModelKind::Mlp => 0,
                    ModelKind::Cnn => 3,
                    _ => 6,
                };
                assert_eq!(
                    FastPlan::with_isa(plan, Isa::Avx2).bytewise_layers(),
                    runs,
                    "{kind:?}"
                );
            }
        }

        let metadata = onnx.metadata();
        assert_eq!(metadata["model_kind"], kind.name());
        assert_eq!(
            metadata["parameter_count"],
            fmnist_trainer::model::parameter_count(kind).to_string()
        );
        assert!(metadata["class_names"].contains("Ankle boot"));
        assert_eq!(metadata["test_accuracy"], "0.5000");
        assert!(metadata["training_command"].starts_with("trainer fit"));
    }
}

#[test]
fn a_corrupt_or_truncated_onnx_file_is_a_clear_error() {
    let run = tempfile::tempdir().unwrap();
    let info = trained_run(ModelKind::Cnn, run.path());
    let (_, model) = run::load::<Cpu>(run.path(), &Default::default()).unwrap();
    let path = run.path().join("model.onnx");
    export::write_onnx(&model, &info, &path, None).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let truncated = run.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = run.path().join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a protobuf at all \xff\xff\xff\xff").unwrap();
    let missing = run.path().join("missing.onnx");
    for bad in [&truncated, &garbage, &missing] {
        let error = OnnxClassifier::load(bad).err().expect("loading must fail");
        let text = error.to_string();
        assert!(text.contains(bad.to_str().unwrap()), "{text}");
        assert!(!text.is_empty() && text.lines().count() == 1, "{text}");
    }
}
