//! `trainer show`: which split it draws, the picture format its `--out` names, and what it
//! refuses before any work.

use std::process::Output;

use fmnist_trainer::synthetic;

mod common;
use common::{mlp_fit, path, text, trainer};

/// A generated data directory with 240 training and 60 test images, and a 1-epoch mlp run
/// fitted on it in `run`.
fn data_and_run() -> (tempfile::TempDir, std::path::PathBuf) {
    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 240, 60).unwrap();
    let run = data.path().join("run");
    let output = trainer(&mlp_fit(data.path(), &run, "1", &["--no-progress"]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    (data, run)
}

/// The "R of N right" line of `show --model`: N.
fn scored(output: &Output) -> usize {
    let out = text(&output.stdout);
    let line = out
        .lines()
        .find(|l| l.ends_with(" right"))
        .unwrap_or_else(|| panic!("no score line: {out}"));
    line.split(' ').nth(2).unwrap().parse().unwrap()
}

#[test]
fn show_scores_the_split_asked_for_test_by_default_with_a_model() {
    let (data, run) = data_and_run();
    let grid = data.path().join("grid.png");
    let show = |extra: &[&str]| {
        let mut args = vec![
            "show",
            "--out",
            path(&grid),
            "--data",
            path(data.path()),
            "--model",
            path(&run),
        ];
        args.extend_from_slice(extra);
        let output = trainer(&args);
        assert!(output.status.success(), "{}", text(&output.stderr));
        output
    };
    // The test split has 60 images, the training split 240.
    assert_eq!(scored(&show(&[])), 60, "test by default with --model");
    assert_eq!(scored(&show(&["--split", "test"])), 60);
    assert_eq!(scored(&show(&["--split", "train"])), 100);
    assert_eq!(scored(&show(&["--split", "test", "--start", "50"])), 10);
    assert_eq!(
        scored(&show(&["--split", "train", "--start", "5", "--count", "7"])),
        7
    );
    // Ten a row: 7 images make one row, 60 six.
    let one_row = image::open(&grid).unwrap();
    show(&[]);
    let six_rows = image::open(&grid).unwrap();
    assert_eq!(one_row.width(), six_rows.width());
    assert!(six_rows.height() > 5 * one_row.height() - 100);
}

#[test]
fn show_without_a_model_draws_training_images_and_writes_jpeg_for_jpg() {
    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 240, 60).unwrap();
    let png = data.path().join("grid.png");
    let output = trainer(&["show", "--out", path(&png), "--data", path(data.path())]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let png_bytes = std::fs::read(&png).unwrap();
    assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
    let png = image::load_from_memory(&png_bytes).unwrap();

    let jpg = data.path().join("grid.JPG");
    let output = trainer(&["show", "--out", path(&jpg), "--data", path(data.path())]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let bytes = std::fs::read(&jpg).unwrap();
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "JPEG bytes for .JPG");
    let jpeg = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
    assert_eq!(
        (jpeg.width(), jpeg.height()),
        (png.width(), png.height()),
        "the same picture"
    );
    // 100 training images: ten rows. (The test split has 60: six.)
    let output = trainer(&[
        "show",
        "--out",
        path(data.path().join("test.png").as_path()),
        "--data",
        path(data.path()),
        "--split",
        "test",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let test = image::open(data.path().join("test.png")).unwrap();
    assert!(png.height() > test.height() + 3 * 100, "{png:?} {test:?}");
}

#[test]
fn show_refuses_other_extensions_and_a_start_past_the_end_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // No data at all: the extension is refused before anything is read.
    for name in ["grid.gif", "grid", "grid.png.bak"] {
        let out = dir.path().join(name);
        let output = trainer(&["show", "--out", path(&out), "--data", "/nonexistent/fm"]);
        let message = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {message}");
        assert!(
            message.contains(".png") && message.contains(".jpg"),
            "{message}"
        );
        assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
        assert!(!out.exists());
    }
    synthetic::write_dataset(dir.path(), 30, 10).unwrap();
    let out = dir.path().join("grid.png");
    let output = trainer(&[
        "show",
        "--out",
        path(&out),
        "--data",
        path(dir.path()),
        "--split",
        "test",
        "--start",
        "10",
    ]);
    let message = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(
        message.contains("--start 10") && message.contains("10 images"),
        "{message}"
    );
    assert!(!out.exists());
    let output = trainer(&["show", "--out", path(&out), "--count", "101"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}
