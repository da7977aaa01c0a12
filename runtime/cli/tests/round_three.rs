//! Hostile input, round three (issue 34), the `runtime` binary's part: what still got
//! through after rounds one and two, each as a file or a destination the test makes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fmnist_runtime::blob;
use fmnist_runtime::dataset::DEFAULT_DATA_DIR;
use fmnist_runtime::Plan;

#[path = "../../tests/common/onnx_graph.rs"]
mod onnx_graph;

use onnx_graph::{model, node};
use tract_onnx::pb;

mod common;
use common::{path, runtime, shipped, text};

fn data_dir() -> String {
    std::env::var("FMNIST_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into())
}

/// Exit code 1, one line on stderr naming `file` and containing `says`, no panic.
fn assert_refused(output: &Output, file: &str, says: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(file) && stderr.contains(says),
        "expected `{file}` and `{says}` in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

fn trouser_png(dir: &Path) -> PathBuf {
    let image = dir.join("trouser.png");
    std::fs::copy(shipped("samples/trouser.png"), &image).unwrap();
    image
}

#[test]
fn classify_into_a_full_disk_fails_instead_of_losing_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let image = trouser_png(dir.path());
    for json in [false, true] {
        let mut args = vec!["classify", path(&image)];
        if json {
            args.push("--json");
        }
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full exists");
        let output = Command::new(env!("CARGO_BIN_EXE_runtime"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_refused(&output, "writing to stdout", "No space left");
    }
}

#[test]
fn a_blob_kind_with_escape_codes_is_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(shipped("edge.q8")).unwrap();
    let plan = Plan::new(&bytes).unwrap();
    let mut model = plan.model().clone();
    // Red text, a cleared screen and a bell, as a terminal would obey them.
    model.kind = "edge\x1b[31m\x1b[2J\x07";
    let hostile = dir.path().join("hostile.q8");
    std::fs::write(&hostile, blob::encode(&model).unwrap()).unwrap();
    let data = data_dir();
    for args in [
        vec!["info", path(&hostile)],
        vec![
            "eval",
            "--model",
            path(&hostile),
            "--data",
            &data,
            "--limit",
            "20",
        ],
    ] {
        let output = runtime(&args);
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert!(
            !stdout.contains('\x1b') && !stdout.contains('\x07'),
            "{args:?}: {stdout:?}"
        );
        assert!(stdout.contains("edge\\u{1b}[31m"), "{args:?}: {stdout}");
    }
}

#[test]
fn empty_pnm_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, header) in [
        ("zero.pgm", "P5\n0 0\n255\n"),
        ("thin.pgm", "P5\n0 5\n255\n"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, header).unwrap();
        let output = runtime(&["classify", path(&file)]);
        assert_refused(&output, name, "empty image");
    }
}

#[test]
fn predict_never_replaces_a_link_a_named_pipe_or_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("images.csv");
    let pixels: Vec<String> = (0..784).map(|i| (i % 200).to_string()).collect();
    std::fs::write(&data, format!("{}\n", pixels.join(","))).unwrap();
    // A link to a file elsewhere: writing through the rename would replace the link.
    let target = dir.path().join("kept.csv");
    std::fs::write(&target, "kept\n").unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let output = runtime(&["predict", "--data", path(&data), "--out", path(&link)]);
    assert_refused(&output, "link.csv", "symbolic link");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept\n");
    // A named pipe: refused at once, before the model is loaded, and left a pipe.
    let fifo = dir.path().join("pipe");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let output = runtime(&["predict", "--data", path(&data), "--out", path(&fifo)]);
    assert_refused(&output, "pipe", "not a regular file");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    // A regular file is still written.
    let out = dir.path().join("out.csv");
    let output = runtime(&["predict", "--data", path(&data), "--out", path(&out)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .starts_with("id,label\n0,"));
}

#[test]
fn a_csv_with_a_byte_order_mark_gives_its_ids_not_its_labels() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<String> = (0..784).map(|i| (i % 200).to_string()).collect();
    let header: Vec<String> = (1..=784).map(|i| format!("pixel{i}")).collect();
    let header = header.join(",");
    let pixels = pixels.join(",");
    // Ids: the id column is read as ids.
    let ids = dir.path().join("ids.csv");
    std::fs::write(
        &ids,
        format!("\u{feff}id,{header}\nA7,{pixels}\nB9,{pixels}\n"),
    )
    .unwrap();
    let out = dir.path().join("ids-out.csv");
    let output = runtime(&["predict", "--data", path(&ids), "--out", path(&out)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let written = std::fs::read_to_string(&out).unwrap();
    let written_ids: Vec<&str> = written
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(written_ids, ["A7", "B9"], "{written}");
    // Labels: the label column is a label, not an id; ids are the row indices.
    let labelled = dir.path().join("labelled.csv");
    std::fs::write(
        &labelled,
        format!("\u{feff}label,{header}\n7,{pixels}\n3,{pixels}\n"),
    )
    .unwrap();
    let out = dir.path().join("labelled-out.csv");
    let output = runtime(&["predict", "--data", path(&labelled), "--out", path(&out)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let written = std::fs::read_to_string(&out).unwrap();
    let written_ids: Vec<&str> = written
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(written_ids, ["0", "1"], "{written}");
    // And eval reads its labels.
    let output = runtime(&["eval", "--data", path(&labelled)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

#[test]
fn model_files_over_64_mib_are_refused_on_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.onnx");
    // Sparse: the size is the file's, nothing is on disk, and nothing must be read.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len((64 << 20) + 1)
        .unwrap();
    let output = runtime(&["info", path(&huge)]);
    assert_refused(
        &output,
        "huge.onnx",
        "more than the 67108864 read as a model",
    );
    let csv = dir.path().join("huge.csv");
    std::fs::File::create(&csv)
        .unwrap()
        .set_len((256 << 20) + 1)
        .unwrap();
    let out = dir.path().join("out.csv");
    let output = runtime(&["predict", "--data", path(&csv), "--out", path(&out)]);
    assert_refused(
        &output,
        "huge.csv",
        "more than the 268435456 read as a CSV file",
    );
}

/// `input [N,1,28,28]` -> Flatten -> MatMul by zeros -> Add `bias`: logits `bias`.
fn onnx_with_bias(bias: [f32; 10]) -> Vec<u8> {
    let tensor = |name: &str, dims: Vec<i64>, values: Vec<f32>| pb::TensorProto {
        name: name.into(),
        dims,
        data_type: 1,
        float_data: values,
        ..Default::default()
    };
    let axis = pb::AttributeProto {
        name: "axis".into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: 1,
        ..Default::default()
    };
    model(
        vec![
            node("Flatten", &["input"], "flat", vec![axis]),
            node("MatMul", &["flat", "weights"], "product", vec![]),
            node("Add", &["product", "bias"], "out", vec![]),
        ],
        vec![
            tensor("weights", vec![784, 10], vec![0.0; 7840]),
            tensor("bias", vec![10], bias.to_vec()),
        ],
    )
}

#[test]
fn onnx_models_whose_logits_are_not_finite_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = trouser_png(dir.path());
    // The control: finite logits classify (class 3, Dress).
    let mut bias = [0.0f32; 10];
    bias[3] = 5.0;
    let fine = dir.path().join("fine.onnx");
    std::fs::write(&fine, onnx_with_bias(bias)).unwrap();
    let output = runtime(&["classify", "--model", path(&fine), path(&image)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("Dress"));
    for (name, value) in [
        ("nan.onnx", f32::NAN),
        ("inf.onnx", f32::INFINITY),
        ("minus-inf.onnx", f32::NEG_INFINITY),
    ] {
        let mut bias = [0.0f32; 10];
        bias[2] = value;
        let file = dir.path().join(name);
        std::fs::write(&file, onnx_with_bias(bias)).unwrap();
        let output = runtime(&["classify", "--model", path(&file), path(&image)]);
        assert_refused(&output, name, "not finite");
        assert!(!text(&output.stdout).contains("NaN"));
        let data = data_dir();
        let output = runtime(&[
            "eval",
            "--model",
            path(&file),
            "--data",
            &data,
            "--limit",
            "10",
        ]);
        assert_refused(&output, name, "not finite");
    }
}
