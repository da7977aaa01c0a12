//! `runtime predict` as Unix tools behave: `--out -` is standard output, `--data` takes
//! image files and folders of them (ids are file names), `--probabilities` adds a column a
//! class, and an existing output is replaced only with `--force`.

use std::path::{Path, PathBuf};

use fmnist_runtime::dataset::{load_split, Split, DEFAULT_DATA_DIR};
use image::GrayImage;

mod common;
use common::{classified_json, path, runtime, text};

/// The first `count` test images as PNG files in `dir`, named `NN-label.png`.
fn png_files(dir: &Path, count: usize) -> Vec<PathBuf> {
    let data = std::env::var("FMNIST_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into());
    let test = load_split(Path::new(&data), Split::Test).expect("the dataset is installed");
    (0..count)
        .map(|i| {
            let file = dir.join(format!("{i:02}-{}.png", test.labels[i]));
            GrayImage::from_raw(28, 28, test.image(i).to_vec())
                .unwrap()
                .save(&file)
                .unwrap();
            file
        })
        .collect()
}

/// `classify --json`'s label and probabilities of each file, in order.
fn classified(files: &[PathBuf]) -> Vec<(String, u64, Vec<f64>)> {
    classified_json(&["--top", "10"], files)
        .iter()
        .map(|r| {
            let file = Path::new(r["file"].as_str().unwrap());
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let mut probabilities = vec![0.0; 10];
            for entry in r["top"].as_array().unwrap() {
                probabilities[entry["label"].as_u64().unwrap() as usize] =
                    entry["probability"].as_f64().unwrap();
            }
            (name, r["label"].as_u64().unwrap(), probabilities)
        })
        .collect()
}

#[test]
fn a_folder_of_images_to_stdout_with_probabilities_agrees_with_classify() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("photos");
    std::fs::create_dir(&images).unwrap();
    let files = png_files(&images, 12);
    // Not an image: ignored in a folder, as classify ignores it.
    std::fs::write(images.join("notes.txt"), "not an image").unwrap();
    let expected = classified(&files);
    let output = runtime(&[
        "predict",
        "--data",
        path(&images),
        "--out",
        "-",
        "--probabilities",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(!Path::new("-").exists(), "no file named `-` is written");
    let stdout = text(&output.stdout);
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..2], ["id", "label"]);
    assert_eq!(header[2..], fmnist_runtime::CLASS_NAMES);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), expected.len());
    for (row, (name, label, probabilities)) in rows.iter().zip(&expected) {
        assert_eq!(row[0], name);
        assert_eq!(row[1], label.to_string(), "{name}");
        let written: Vec<f64> = row[2..].iter().map(|p| p.parse().unwrap()).collect();
        assert_eq!(written.len(), 10);
        for (w, p) in written.iter().zip(probabilities) {
            assert!(
                (w - p).abs() < 1e-5,
                "{name}: {written:?} vs {probabilities:?}"
            );
        }
        assert!((written.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    }
    assert!(text(&output.stderr).contains("ids: file names"));
}

#[test]
fn a_list_of_image_files_with_a_broken_one_writes_the_rest_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = png_files(dir.path(), 3);
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n truncated").unwrap();
    files.insert(1, broken);
    let out = dir.path().join("labels.csv");
    let mut args = vec!["predict", "--out", path(&out), "--data"];
    args.extend(files.iter().map(|f| path(f)));
    let output = runtime(&args);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("broken.png"));
    let written = std::fs::read_to_string(&out).unwrap();
    let ids: Vec<&str> = written
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids, ["00-9.png", "01-2.png", "02-1.png"]);
    // A data file among image files is not a list predict reads.
    let csv = dir.path().join("data.csv");
    std::fs::write(&csv, "1,2\n").unwrap();
    let output = runtime(&[
        "predict",
        "--out",
        "-",
        "--data",
        path(&files[0]),
        path(&csv),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}

#[test]
fn an_existing_output_is_replaced_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let files = png_files(dir.path(), 2);
    let out = dir.path().join("submission.csv");
    std::fs::write(&out, "keep me\n").unwrap();
    let run = |force: bool| {
        let mut args = vec!["predict", "--out", path(&out), "--data", path(&files[0])];
        if force {
            args.push("--force");
        }
        runtime(&args)
    };
    let output = run(false);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("submission.csv") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me\n");
    let output = run(true);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("id,label\n00-9.png,{}\n", classified(&files[..1])[0].1)
    );
}
