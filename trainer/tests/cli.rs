//! The `trainer` binary as a user meets it: exit codes, one-line errors, files written.

use std::path::Path;
use std::process::{Command, Output};

use fmnist_trainer::synthetic;

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("the trainer binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn fit_eval_and_show_on_a_small_dataset() {
    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 240, 60).unwrap();
    let run = data.path().join("run");
    let output = trainer(&[
        "fit",
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--lr",
        "3e-3",
        "--batch",
        "20",
        "--val",
        "40",
        "--data",
        path(data.path()),
        "--out",
        path(&run),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("Epoch: 2") && text.contains("overall accuracy"),
        "{text}"
    );
    for file in ["model.mpk", "run.json", "metrics.csv", "curves.png"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
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
    for kind in ["mlp", "cnn", "edge"] {
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
