//! The `trainer` binary as a user meets it: exit codes, one-line errors, files written.

use std::path::Path;
use std::process::Output;

use fmnist_trainer::model::ModelKind;
use fmnist_trainer::synthetic;

mod common;
use common::{mlp_fit, path, trainer};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Without `--model`, `trainer fit` trains the kind of the shipped `models/edge.*`
/// (`edge14`) with its default recipe; the run's lock file goes when it ends, also when it
/// ends in an error.
#[test]
fn fit_trains_the_shipped_kind_by_default_and_leaves_no_lock() {
    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 60, 20).unwrap();
    let run = data.path().join("run");
    let args = [
        "fit",
        "--epochs",
        "1",
        "--batch",
        "20",
        "--val",
        "20",
        "--no-progress",
        "--data",
        path(data.path()),
        "--out",
        path(&run),
    ];
    let output = trainer(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let info: fmnist_trainer::run::RunInfo =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info.model, ModelKind::Edge14);
    assert!(text.contains("edge14"), "{text}");
    let mut recipe = fmnist_trainer::config::recipe::Recipe::default_for(ModelKind::Edge14);
    (recipe.epochs, recipe.batch) = (1, 20);
    assert_eq!(info.recipe, recipe);
    assert!(text.contains(&format!("recipe: {recipe}")), "{text}");
    assert!(!run.join(".fit.lock").exists(), "the lock file stays");
    // Nothing to train, and an error after the lock was taken: no lock file either.
    let output = trainer(&["fit", "--resume", path(&run)]);
    assert!(
        stdout(&output).contains("nothing to train"),
        "{}",
        stderr(&output)
    );
    assert!(!run.join(".fit.lock").exists(), "the lock file stays");
    let output = trainer(&[
        "fit",
        "--resume",
        path(&run),
        "--epochs",
        "2",
        "--data",
        "/nonexistent",
    ]);
    assert!(!output.status.success());
    assert!(
        !run.join(".fit.lock").exists(),
        "the lock file stays after an error"
    );
}

#[test]
fn fit_eval_and_show_on_a_small_dataset() {
    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 240, 60).unwrap();
    let run = data.path().join("run");
    let output = trainer(&mlp_fit(data.path(), &run, "2", &[]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("Epoch: 2") && text.contains("overall accuracy"),
        "{text}"
    );
    for file in ["model.mpk", "run.json", "metrics.csv", "curves.png"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    // The lock goes with the run that held it (issue 36).
    assert!(!run.join(".fit.lock").exists(), "the lock file stays");
    // An mlp epoch on 200 images takes milliseconds, which tenths printed as "(0.0 s)".
    assert!(!text.contains("(0.0 s)"), "{text}");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["train_images"], 200);
    assert!(info["test_accuracy"].as_f64().unwrap() > 0.5, "{info}");
    assert!(info["command"]
        .as_str()
        .unwrap()
        .starts_with("trainer fit --model mlp"));
    // The options `--resume` continues with: what was given, and the defaults of the rest.
    let options = &info["options"];
    assert_eq!(options["model"], "mlp");
    assert_eq!(options["recipe"]["epochs"], 2);
    assert_eq!(options["recipe"]["optimizer"], serde_json::Value::Null);
    assert_eq!(options["val"], 40);
    assert_eq!(options["seed"], 42);
    assert_eq!(options["device"], "cpu");

    let output = trainer(&[
        "eval",
        "--checkpoint",
        path(&run),
        "--data",
        path(data.path()),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("of 60)"), "{}", stdout(&output));

    let grid = data.path().join("grid.png");
    let output = trainer(&[
        "show",
        "--out",
        path(&grid),
        "--data",
        path(data.path()),
        "--model",
        path(&run),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let image = image::open(&grid).unwrap();
    assert!(image.width() > 280 && image.height() > 280);
}

#[test]
fn an_unwritable_export_path_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let onnx = dir.path().join("no/such/dir/model.onnx");
    let output = trainer(&["fit", "--export", path(&onnx), "--out", path(&run)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("does not exist"),
        "{}",
        stderr(&output)
    );
    let output = trainer(&["fit", "--export-q8", path(dir.path()), "--out", path(&run)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is a directory"),
        "{}",
        stderr(&output)
    );
    assert!(!run.exists(), "nothing trained, nothing written");
}

#[test]
fn bad_usage_exits_2_with_one_line() {
    for args in [
        &["fit", "--lr", "-1"][..],
        &["fit", "--epochs", "0"],
        &["fit", "--model", "resnet"],
        &[
            "fit",
            "--device",
            "cuda",
            "--epochs",
            "1",
            "--data",
            "/nonexistent",
        ],
    ] {
        let output = trainer(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn bad_data_exits_1_naming_the_file() {
    let output = trainer(&["fit", "--data", "/nonexistent/fm"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/nonexistent/fm"),
        "{}",
        stderr(&output)
    );

    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 30, 10).unwrap();
    let labels = data.path().join("train-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&labels).unwrap();
    bytes[8 + 4] = 42;
    std::fs::write(&labels, bytes).unwrap();
    let output = trainer(&[
        "fit",
        "--data",
        path(data.path()),
        "--out",
        path(&data.path().join("run")),
    ]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("train-labels-idx1-ubyte") && message.contains("label 42 at record 5"),
        "{message}"
    );
    assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
}

#[test]
fn eval_of_a_broken_run_directory_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let output = trainer(&["eval", "--checkpoint", path(dir.path())]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("run.json"), "{}", stderr(&output));

    std::fs::write(dir.path().join("run.json"), b"{\"model\": ").unwrap();
    let output = trainer(&["eval", "--checkpoint", path(dir.path())]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not a valid run description"),
        "{}",
        stderr(&output)
    );
}

/// The figures `trainer fit --help` gives for each model kind are those `trainer info`
/// computes from the layer list.
#[test]
fn the_model_table_in_the_help_is_what_info_counts() {
    let help = stdout(&trainer(&["fit", "--help"]));
    for kind in ModelKind::all().iter().map(|kind| kind.name()) {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("- {kind}:")))
            .unwrap_or_else(|| panic!("no {kind} line in: {help}"));
        let info = stdout(&trainer(&["info", "--model", kind]));
        let total = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("total: "))
            .expect("a total line");
        let mut numbers = total
            .split(' ')
            .filter(|w| w.starts_with(|c: char| c.is_ascii_digit()));
        let (params, macs) = (numbers.next().unwrap(), numbers.next().unwrap());
        assert!(
            line.contains(&format!("{params} params, {macs} MACs")),
            "{kind}: help says {line:?}, info says {total:?}"
        );
    }
}

/// The shipped model files.
fn shipped(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models")
            .join(name),
    )
    .unwrap()
}

/// The same model as a format 1 blob: the payload without the temperature (the last 4
/// bytes postcard writes), in a version 1 envelope.
fn version_1(blob: &[u8]) -> Vec<u8> {
    use fmnist_runtime::blob::{self, Envelope};
    let plan = fmnist_runtime::Plan::new(blob).unwrap();
    let mut payload = postcard::to_allocvec(plan.model()).unwrap();
    payload.truncate(payload.len() - 4);
    postcard::to_allocvec(&Envelope {
        magic: blob::MAGIC,
        version: blob::FORMAT_VERSION_1,
        checksum: blob::crc32(&payload),
        payload: &payload,
    })
    .unwrap()
}

fn blob_temperature(path: &Path) -> f32 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        fmnist_runtime::blob::version(&bytes),
        Some(fmnist_runtime::blob::FORMAT_VERSION)
    );
    fmnist_runtime::Plan::new(&bytes)
        .map(|plan| plan.model().temperature)
        .unwrap()
}

fn onnx_metadata(path: &Path) -> Vec<(String, String)> {
    use protobuf::Message;
    let model = onnx_protobuf::ModelProto::parse_from_bytes(&std::fs::read(path).unwrap()).unwrap();
    model
        .get_metadata_props()
        .iter()
        .map(|e| (e.get_key().to_string(), e.get_value().to_string()))
        .collect()
}

fn onnx_temperature(path: &Path) -> f32 {
    let metadata = onnx_metadata(path);
    let (_, value) = metadata
        .iter()
        .find(|(key, _)| key == "temperature")
        .expect("a temperature entry");
    value.parse().unwrap()
}

/// The names in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn calibrate_upgrades_a_version_1_blob_and_an_onnx_file_and_again_gives_the_same_temperature() {
    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 300, 80).unwrap();
    let files = data.path().join("models");
    std::fs::create_dir(&files).unwrap();
    let (q8, onnx) = (files.join("cnn.q8"), files.join("cnn.onnx"));
    let original = shipped("cnn.q8");
    std::fs::write(&q8, version_1(&original)).unwrap();
    std::fs::write(&onnx, shipped("cnn.onnx")).unwrap();
    let calibrate = || {
        let output = trainer(&[
            "calibrate",
            path(&q8),
            path(&onnx),
            "--data",
            path(data.path()),
            "--val",
            "100",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(
            text.contains("validation: NLL") && text.contains("test:") && text.contains("ECE"),
            "{text}"
        );
        assert_eq!(listing(&files), ["cnn.onnx", "cnn.q8"], "no temporary left");
        (blob_temperature(&q8), onnx_temperature(&onnx))
    };
    let (blob_t, onnx_t) = calibrate();
    for t in [blob_t, onnx_t] {
        assert!((0.05..=20.0).contains(&t), "{t}");
    }
    // Only the temperature changed.
    let upgraded = std::fs::read(&q8).unwrap();
    let mut model = fmnist_runtime::Plan::new(&upgraded)
        .unwrap()
        .model()
        .clone();
    model.temperature = fmnist_runtime::Plan::new(&original)
        .unwrap()
        .model()
        .temperature;
    assert_eq!(
        fmnist_runtime::blob::encode(&model).unwrap(),
        original,
        "the layers, scales and card are the shipped blob's"
    );
    let before: Vec<_> =
        onnx_metadata(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/cnn.onnx"))
            .into_iter()
            .filter(|(key, _)| key != "temperature")
            .collect();
    let after = onnx_metadata(&onnx);
    assert_eq!(after[..after.len() - 1], before[..]);
    // The fit reads the raw logits, not those already divided by the temperature.
    let (again_blob, again_onnx) = calibrate();
    assert!(
        (again_blob - blob_t).abs() < 1e-3,
        "{blob_t} then {again_blob}"
    );
    assert!(
        (again_onnx - onnx_t).abs() < 1e-3,
        "{onnx_t} then {again_onnx}"
    );

    let output = trainer(&[
        "calibrate",
        path(&q8),
        "--data",
        path(data.path()),
        "--val",
        "0",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let not_a_model = files.join("notes.txt");
    std::fs::write(&not_a_model, "hello").unwrap();
    let output = trainer(&["calibrate", path(&not_a_model), "--data", path(data.path())]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("notes.txt"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&not_a_model).unwrap(), b"hello");
}

#[test]
fn fit_exports_both_files_with_the_temperature_calibrate_would_fit() {
    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 240, 60).unwrap();
    let (run, q8, onnx) = (
        data.path().join("run"),
        data.path().join("m.q8"),
        data.path().join("m.onnx"),
    );
    let output = trainer(&mlp_fit(
        data.path(),
        &run,
        "2",
        &["--export", path(&onnx), "--export-q8", path(&q8)],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(
        text.matches("probabilities: temperature").count(),
        2,
        "{text}"
    );
    let (blob_t, onnx_t) = (blob_temperature(&q8), onnx_temperature(&onnx));
    let output = trainer(&[
        "calibrate",
        path(&q8),
        path(&onnx),
        "--data",
        path(data.path()),
        "--val",
        "40",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!((blob_temperature(&q8) - blob_t).abs() < 1e-3);
    assert!((onnx_temperature(&onnx) - onnx_t).abs() < 1e-3);
}

#[test]
fn fit_exports_7_bit_weights_when_asked() {
    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 240, 60).unwrap();
    let (run, q8) = (data.path().join("run"), data.path().join("m7.q8"));
    // Without a blob to write, the option is a usage error, and nothing is trained.
    let output = trainer(&["fit", "--weight-bits", "7", "--out", path(&run)]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(!run.exists());
    let output = trainer(&mlp_fit(
        data.path(),
        &run,
        "1",
        &["--export-q8", path(&q8), "--weight-bits", "7"],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = std::fs::read(&q8).unwrap();
    let plan = fmnist_runtime::Plan::new(&bytes).unwrap();
    // Every layer's weights within -64..=64, each layer's largest exactly 64 in magnitude.
    for weights in plan
        .model()
        .layers
        .iter()
        .filter_map(fmnist_runtime::blob::Layer::weights)
    {
        let largest = weights.iter().map(|&w| (w as i8).unsigned_abs()).max();
        assert_eq!(largest, Some(64));
    }
}
