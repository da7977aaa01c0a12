//! The `runtime` binary as a user meets it, on images generated from real test images.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fmnist_runtime::dataset::{load_split, Split, DEFAULT_DATA_DIR};
use image::{DynamicImage, GrayImage, ImageBuffer, Luma, Rgb, Rgba};

mod common;
use common::{classified_json, path, runtime, shipped, text};

/// The first test image of `label` that the shipped model classifies confidently.
fn real_image(label: u8) -> GrayImage {
    let dir = std::env::var("FMNIST_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into());
    let test = load_split(Path::new(&dir), Split::Test)
        .expect("run scripts/test.sh: it installs the dataset");
    let index = test.labels.iter().position(|&l| l == label).unwrap();
    GrayImage::from_raw(28, 28, test.image(index).to_vec()).unwrap()
}

/// A trouser in many encodings: sizes, colour types, bit depths, a light background.
fn write_variants(dir: &Path) -> Vec<PathBuf> {
    let trouser = real_image(1);
    let big = image::imageops::resize(&trouser, 200, 200, image::imageops::FilterType::Triangle);
    let mut files = Vec::new();
    let mut save = |name: &str, image: DynamicImage| {
        let file = dir.join(name);
        image.save(&file).unwrap();
        files.push(file);
    };
    save("a-gray-28.png", DynamicImage::ImageLuma8(trouser.clone()));
    save(
        "b-rgb-200.jpg",
        DynamicImage::ImageRgb8(ImageBuffer::from_fn(200, 200, |x, y| {
            let v = big.get_pixel(x, y).0[0];
            Rgb([v, v, v])
        })),
    );
    // A product photo: dark garment on white, with an alpha channel, 16 bits per channel.
    let photo: ImageBuffer<Rgba<u16>, Vec<u16>> = ImageBuffer::from_fn(300, 240, |x, y| {
        let (sx, sy) = (x as i64 - 50, y as i64 - 20);
        let v = if (0..200).contains(&sx) && (0..200).contains(&sy) {
            big.get_pixel(sx as u32, sy as u32).0[0]
        } else {
            0
        };
        let level = (255 - u16::from(v)) * 257;
        Rgba([level, level, level, 65535])
    });
    save("c-photo-rgba16.png", DynamicImage::ImageRgba16(photo));
    let gray16: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_fn(28, 28, |x, y| {
        Luma([u16::from(trouser.get_pixel(x, y).0[0]) * 257])
    });
    save("d-gray16.png", DynamicImage::ImageLuma16(gray16));
    files
}

#[test]
fn classifies_a_trouser_in_every_encoding_with_the_builtin_model() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_variants(dir.path());
    for file in &files {
        let output = runtime(&["classify", path(file)]);
        let stdout = text(&output.stdout);
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            text(&output.stderr)
        );
        assert!(stdout.contains(": Trouser"), "{}: {stdout}", file.display());
    }
}

#[test]
fn a_directory_with_a_broken_file_reports_it_and_classifies_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_variants(dir.path());
    std::fs::write(
        dir.path().join("e-broken.png"),
        b"\x89PNG\r\n\x1a\n but then nothing",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("notes.txt"),
        b"not an image, and skipped in directories",
    )
    .unwrap();
    let output = runtime(&["classify", "--json", "--top", "3", path(dir.path())]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "one file failed: {}",
        text(&output.stderr)
    );
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let results = document["results"].as_array().unwrap();
    assert_eq!(results.len(), files.len() + 1);
    for result in &results[..files.len()] {
        assert_eq!(result["class"], "Trouser", "{result}");
        assert_eq!(result["top"].as_array().unwrap().len(), 3);
        let p = result["probability"].as_f64().unwrap();
        assert!(p > 0.5 && p <= 1.0, "{result}");
    }
    let broken = &results[files.len()];
    assert!(
        broken["error"].as_str().unwrap().contains("e-broken.png"),
        "{broken}"
    );
    assert_eq!(document["format"], "int8");
}

#[test]
fn absurd_dimensions_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    // A PNG header claiming 100000 x 100000 pixels, and no data.
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    png.extend_from_slice(&100_000u32.to_be_bytes());
    png.extend_from_slice(&100_000u32.to_be_bytes());
    png.extend_from_slice(&[8, 0, 0, 0, 0]);
    let crc = crc32fast_like(&png[12..]);
    png.extend_from_slice(&crc.to_be_bytes());
    let file = dir.path().join("huge.png");
    std::fs::write(&file, png).unwrap();
    let output = runtime(&["classify", path(&file)]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("huge.png") && stderr.to_lowercase().contains("limit"),
        "{stderr}"
    );
}

fn crc32fast_like(bytes: &[u8]) -> u32 {
    fmnist_runtime::blob::crc32(bytes)
}

#[test]
fn bad_models_exit_1_and_bad_usage_2_as_in_trainer() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("x.png");
    DynamicImage::ImageLuma8(real_image(1))
        .save(&image)
        .unwrap();
    let bogus = dir.path().join("model.bin");
    std::fs::write(&bogus, b"FMQ8 but not really a blob").unwrap();
    let output = runtime(&["classify", "--model", path(&bogus), path(&image)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("model.bin"),
        "{}",
        text(&output.stderr)
    );
    let output = runtime(&["classify", "--top", "11", path(&image)]);
    assert_eq!(output.status.code(), Some(2));
    let output = runtime(&["classify", "--model", "/nonexistent.q8", path(&image)]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn info_and_eval_on_the_shipped_models() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let output = runtime(&["info", path(&models.join("edge.q8"))]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains("kind: edge") && stdout.contains("arena:"),
        "{stdout}"
    );
    let output = runtime(&[
        "eval",
        "--model",
        path(&models.join("edge.onnx")),
        "--limit",
        "300",
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains("of 300)") && stdout.contains("onnx"),
        "{stdout}"
    );
}

#[test]
fn kernels_can_be_chosen_and_say_how_avx2_multiplies() {
    use fmnist_runtime::Isa;
    let (edge, edge7) = (shipped("edge.q8"), shipped("edge7.q8"));
    let eval = |model: &Path, kernels: &str| {
        let output = runtime(&[
            "eval",
            "--model",
            path(model),
            "--limit",
            "200",
            "--kernels",
            kernels,
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        text_accuracy(&text(&output.stdout))
    };
    // Every tier this CPU runs gives the portable kernels' accuracy.
    for model in [&edge, &edge7] {
        let portable = eval(model, "portable");
        for isa in Isa::ALL.into_iter().filter(|isa| isa.supported()) {
            assert_eq!(eval(model, isa.name()), portable, "{}", isa.name());
        }
    }
    if Isa::Avx2.supported() {
        let info = |model: &Path| {
            let output = runtime(&["info", path(model), "--kernels", "avx2"]);
            assert!(output.status.success(), "{}", text(&output.stderr));
            let stdout = text(&output.stdout);
            let line = stdout
                .lines()
                .find(|l| l.starts_with("kernels: "))
                .map(str::to_owned);
            line.unwrap_or_else(|| panic!("no kernels line: {stdout}"))
        };
        assert_eq!(
            info(&edge7),
            "kernels: avx2 (byte-wise, `vpmaddubsw`, in all 6 layers it runs)"
        );
        let line = info(&edge);
        assert!(line.starts_with("kernels: avx2 (16-bit"), "{line}");
        assert!(line.contains("--weight-bits 7"), "{line}");
    }
    // A name that is no tier's is bad usage; a tier the CPU lacks, or kernels for an ONNX
    // file, a model that cannot be used.
    let output = runtime(&["info", "--kernels", "sse2"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("avx512-vnni"),
        "{}",
        text(&output.stderr)
    );
    if let Some(lacking) = Isa::ALL.into_iter().find(|isa| !isa.supported()) {
        let output = runtime(&["info", "--kernels", lacking.name()]);
        assert_eq!(output.status.code(), Some(1));
        assert!(text(&output.stderr).contains("does not run them"));
    }
    let output = runtime(&["info", path(&shipped("edge.onnx")), "--kernels", "portable"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("edge.onnx is ONNX"),
        "{}",
        text(&output.stderr)
    );
}

/// The `overall accuracy 85.33% (256 of 300)` line of `eval`'s text output.
fn text_accuracy(stdout: &str) -> (String, u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("overall accuracy "))
        .unwrap_or_else(|| panic!("no accuracy line: {stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let correct = words[3].trim_start_matches('(').parse().unwrap();
    let total = words[5].trim_end_matches(')').parse().unwrap();
    (words[2].to_string(), correct, total)
}

#[test]
fn eval_json_agrees_with_the_text_report() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let dir = std::env::var("FMNIST_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into());
    let cnn = models.join("cnn.q8");
    let args = [
        "eval",
        "--model",
        path(&cnn),
        "--data",
        &dir,
        "--limit",
        "2000",
    ];
    let output = runtime(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let (percent, correct, total) = text_accuracy(&stdout);
    assert!(
        !stdout.contains("{") && stdout.contains("images/s"),
        "{stdout}"
    );

    let output = runtime(&[&args[..], &["--json"]].concat());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["images"], 2000);
    assert_eq!(document["correct"].as_u64(), Some(correct));
    assert_eq!(total, 2000);
    let accuracy = document["accuracy"].as_f64().unwrap();
    assert_eq!(format!("{:.2}%", accuracy * 100.0), percent);
    assert!(accuracy > 0.8, "{accuracy}");
    let matrix = document["confusion_matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), 10);
    let cells: Vec<u64> = matrix
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|c| c.as_u64().unwrap()))
        .collect();
    assert_eq!(cells.len(), 100);
    assert_eq!(cells.iter().sum::<u64>(), 2000);
    let diagonal: u64 = (0..10).map(|c| cells[c * 11]).sum();
    assert_eq!(diagonal, correct);
    let classes = document["classes"].as_array().unwrap();
    for (c, class) in classes.iter().enumerate() {
        let row: u64 = cells[c * 10..c * 10 + 10].iter().sum();
        assert_eq!(class["images"].as_u64(), Some(row), "{class}");
        let recall = class["recall"].as_f64().unwrap();
        assert!((recall - cells[c * 11] as f64 / row as f64).abs() < 1e-12);
    }
    assert!(document["images_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn eval_of_a_few_images_says_dash_for_classes_without_images() {
    let dir = std::env::var("FMNIST_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into());
    let output = runtime(&["eval", "--data", &dir, "--limit", "5"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    // The first five test images are an ankle boot, a pullover, two trousers and a shirt.
    let dress = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Dress |") && l.contains('-'))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(!dress.contains("0.00%"), "{dress}");
    for name in ["T-shirt/top |", "Ankle boot |", "T-shirt/", "Pullover"] {
        assert!(stdout.contains(name), "{name}: {stdout}");
    }
    let output = runtime(&["eval", "--data", &dir, "--limit", "5", "--json"]);
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(document["classes"][3]["recall"].is_null(), "{document}");
}

/// The first `count` test images.
fn test_images(count: usize) -> Vec<Vec<u8>> {
    let dir = std::env::var("FMNIST_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into());
    let test = load_split(Path::new(&dir), Split::Test).expect("the dataset is installed");
    (0..count).map(|i| test.image(i).to_vec()).collect()
}

/// `runtime classify --no-invert --json FILES`: the label of each file, in order.
fn classify_labels(model: &Path, files: &[PathBuf]) -> Vec<u64> {
    classified_json(&["--no-invert", "--model", path(model)], files)
        .iter()
        .map(|r| r["label"].as_u64().unwrap())
        .collect()
}

fn csv_row(lead: Option<&str>, pixels: &[u8]) -> String {
    let pixels: Vec<String> = pixels.iter().map(u8::to_string).collect();
    match lead {
        Some(lead) => format!("{lead},{}\n", pixels.join(",")),
        None => format!("{}\n", pixels.join(",")),
    }
}

fn pixel_header() -> String {
    (1..=784)
        .map(|i| format!("pixel{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn predict_writes_the_labels_classify_gives() {
    let dir = tempfile::tempdir().unwrap();
    let images = test_images(40);
    let files: Vec<PathBuf> = images
        .iter()
        .enumerate()
        .map(|(i, pixels)| {
            let file = dir.path().join(format!("{i:03}.png"));
            GrayImage::from_raw(28, 28, pixels.clone())
                .unwrap()
                .save(&file)
                .unwrap();
            file
        })
        .collect();
    for model in [shipped("cnn.q8"), shipped("edge.onnx")] {
        let expected = classify_labels(&model, &files);
        // The competition's unlabelled test file: an id column (here from 1001), no labels.
        let mut csv = format!("id,{}\n", pixel_header());
        for (i, pixels) in images.iter().enumerate() {
            csv.push_str(&csv_row(Some(&(1001 + i).to_string()), pixels));
        }
        let data = dir.path().join("test_data.csv");
        std::fs::write(&data, csv).unwrap();
        let out = dir.path().join("submission.csv");
        let output = runtime(&[
            "predict",
            "--model",
            path(&model),
            "--data",
            path(&data),
            "--out",
            path(&out),
            "--force",
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let written = std::fs::read_to_string(&out).unwrap();
        let mut lines = written.lines();
        assert_eq!(lines.next(), Some("id,label"));
        let rows: Vec<(u64, u64)> = lines
            .map(|l| {
                let (id, label) = l.split_once(',').unwrap();
                (id.parse().unwrap(), label.parse().unwrap())
            })
            .collect();
        let ids: Vec<u64> = (1001..1041).collect();
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), ids);
        assert_eq!(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            expected,
            "{}",
            model.display()
        );
    }
    // No temporary file is left beside the submission.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn predict_numbers_labelled_csv_and_idx_rows_from_0() {
    let dir = tempfile::tempdir().unwrap();
    let images = test_images(12);
    let mut csv = format!("label,{}\n", pixel_header());
    let mut idx = Vec::new();
    idx.extend_from_slice(&[0, 0, 8, 3]);
    idx.extend_from_slice(&12u32.to_be_bytes());
    idx.extend_from_slice(&28u32.to_be_bytes());
    idx.extend_from_slice(&28u32.to_be_bytes());
    for pixels in &images {
        csv.push_str(&csv_row(Some("0"), pixels));
        idx.extend_from_slice(pixels);
    }
    let labelled = dir.path().join("labelled.csv");
    std::fs::write(&labelled, csv).unwrap();
    let images_idx = dir.path().join("images-idx3-ubyte");
    std::fs::write(&images_idx, idx).unwrap();
    let mut outputs = Vec::new();
    for data in [&labelled, &images_idx] {
        let out = dir.path().join("out.csv");
        // The same output twice: the second replaces the first, as --force allows.
        let output = runtime(&[
            "predict",
            "--data",
            path(data),
            "--out",
            path(&out),
            "--force",
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let written = std::fs::read_to_string(&out).unwrap();
        let ids: Vec<&str> = written
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(ids, (0..12).map(|i| i.to_string()).collect::<Vec<_>>());
        outputs.push(written);
    }
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn predict_names_the_file_and_line_of_a_bad_row_and_keeps_the_old_output() {
    let dir = tempfile::tempdir().unwrap();
    let images = test_images(3);
    let mut csv = format!("id,{}\n", pixel_header());
    csv.push_str(&csv_row(Some("1"), &images[0]));
    let mut bad = images[1].clone();
    bad[100] = 0;
    let bad_row = csv_row(Some("2"), &bad).replacen(",0,", ",300,", 1);
    csv.push_str(&bad_row);
    let data = dir.path().join("bad.csv");
    std::fs::write(&data, csv).unwrap();
    let out = dir.path().join("submission.csv");
    std::fs::write(&out, "old").unwrap();
    // Even with --force, a failed run keeps the old output.
    let output = runtime(&[
        "predict",
        "--data",
        path(&data),
        "--out",
        path(&out),
        "--force",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("bad.csv") && stderr.contains("line 3") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old");
    // The input is never the output; eval on unlabelled data points to predict.
    let good = dir.path().join("good.csv");
    let good_csv = format!("id,{}\n{}", pixel_header(), csv_row(Some("7"), &images[2]));
    std::fs::write(&good, &good_csv).unwrap();
    let output = runtime(&[
        "predict",
        "--data",
        path(&good),
        "--out",
        path(&good),
        "--force",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&good).unwrap(), good_csv);
    let output = runtime(&["eval", "--data", path(&good)]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("good.csv") && stderr.contains("runtime predict"),
        "{stderr}"
    );
    // An IDX label file is not images.
    let labels = dir.path().join("t10k-labels-idx1-ubyte");
    std::fs::write(&labels, [0, 0, 8, 1, 0, 0, 0, 1, 3]).unwrap();
    let output = runtime(&[
        "predict",
        "--data",
        path(&labels),
        "--out",
        path(&out),
        "--force",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("IDX label file"),
        "{}",
        text(&output.stderr)
    );
    // An output in a directory that does not exist: one line naming it, exit 1.
    let missing = dir.path().join("no/such/dir/submission.csv");
    let output = runtime(&["predict", "--data", path(&good), "--out", path(&missing)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("submission.csv"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn classify_reads_stdin_as_it_reads_a_file_and_times_inference() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("photo.jpg");
    // A product photo (dark on white, 200x200 JPEG): the whole preparation is exercised.
    let trouser = real_image(1);
    let big = image::imageops::resize(&trouser, 200, 200, image::imageops::FilterType::Triangle);
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(200, 200, |x, y| {
        let v = 255 - big.get_pixel(x, y).0[0];
        Rgb([v, v, v])
    }))
    .save(&file)
    .unwrap();
    let from_file = runtime(&["classify", "--json", "--top", "10", path(&file)]);
    assert!(from_file.status.success(), "{}", text(&from_file.stderr));
    let stdin_run = |args: &[&str], input: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runtime"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // A refusal may close the pipe early; that is not this writer's failure.
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let bytes = std::fs::read(&file).unwrap();
    let from_stdin = stdin_run(&["classify", "--json", "--top", "10", "-"], &bytes);
    assert!(from_stdin.status.success(), "{}", text(&from_stdin.stderr));
    let a: serde_json::Value = serde_json::from_slice(&from_file.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&from_stdin.stdout).unwrap();
    assert_eq!(a["results"][0]["top"], b["results"][0]["top"]);
    assert_eq!(b["results"][0]["class"], "Trouser");

    // --timing: the model call's time per image, in microseconds.
    let timed = stdin_run(&["classify", "--timing", "-"], &bytes);
    let line = text(&timed.stdout);
    let micros: f64 = line
        .split("(inference ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(" us)\n"))
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    assert!(
        line.starts_with("<stdin>: Trouser") && micros > 0.0,
        "{line}"
    );
    let timed = runtime(&["classify", "--json", "--timing", path(&file)]);
    let document: serde_json::Value = serde_json::from_slice(&timed.stdout).unwrap();
    assert!(document["results"][0]["inference_us"].as_f64().unwrap() > 0.0);

    // Not an image, and more than the 64 MiB a file may have: one line each, exit 1.
    let output = stdin_run(&["classify", "-"], b"hello");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("error: <stdin>: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let output = stdin_run(&["classify", "-"], &vec![0u8; (64 << 20) + 1]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("<stdin>: more than"), "{stderr}");
    let output = runtime(&["classify", "-", "-"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn info_describes_the_builtin_model_and_onnx_graphs() {
    let builtin = runtime(&["info"]);
    assert!(builtin.status.success(), "{}", text(&builtin.stderr));
    let file = runtime(&["info", path(&shipped("edge.q8"))]);
    let strip_first = |o: &Output| {
        text(&o.stdout)
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Only the first line (the file's name) differs.
    assert_eq!(strip_first(&builtin), strip_first(&file));
    let stdout = text(&builtin.stdout);
    assert!(
        stdout.contains("built in") && stdout.contains("Conv "),
        "{stdout}"
    );
    assert!(
        !stdout.contains('{') && !stdout.contains("Relu"),
        "{stdout}"
    );

    let output = runtime(&["info", path(&shipped("cnn.onnx"))]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for wanted in [
        "inputs:",
        "outputs:",
        "opset: ",
        "layers (",
        "Conv",
        "float32 [",
    ] {
        assert!(stdout.contains(wanted), "{wanted}: {stdout}");
    }
    let output_line = stdout
        .lines()
        .skip_while(|l| *l != "outputs:")
        .nth(1)
        .unwrap();
    assert!(output_line.ends_with(", 10]"), "{output_line}");
}

#[test]
fn a_truncated_blob_is_called_truncated_and_usage_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let blob = std::fs::read(shipped("edge.q8")).unwrap();
    let half = dir.path().join("half.q8");
    std::fs::write(&half, &blob[..blob.len() / 2]).unwrap();
    let output = runtime(&["info", path(&half)]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("half.q8") && stderr.contains("truncated or corrupt"),
        "{stderr}"
    );
    for args in [
        &["classify", "--bogus", "x.png"][..],
        &["eval", "--limit", "many"],
        &["predict", "--data", "x.csv"],
        &["classify"],
        &[],
    ] {
        let output = runtime(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
    let help = runtime(&["predict", "--help"]);
    assert!(help.status.success() && text(&help.stdout).contains("--out"));
}

#[test]
fn predict_on_the_test_set_agrees_with_eval() {
    // A data directory: its 10,000 test images, ids 0..9999 in file order. The labels
    // predict writes, scored against the true ones, give eval's count of correct images.
    let data = std::env::var("FMNIST_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into());
    let test = load_split(Path::new(&data), Split::Test).expect("the dataset is installed");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("submission.csv");
    let model = shipped("cnn.q8");
    let output = runtime(&[
        "predict",
        "--model",
        path(&model),
        "--data",
        &data,
        "--out",
        path(&out),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let written = std::fs::read_to_string(&out).unwrap();
    let mut correct = 0u64;
    let mut rows = 0usize;
    for (i, line) in written.lines().skip(1).enumerate() {
        let (id, label) = line.split_once(',').unwrap();
        assert_eq!(id, i.to_string());
        correct += u64::from(label.parse::<u8>().unwrap() == test.labels[i]);
        rows += 1;
    }
    assert_eq!(rows, test.len());
    let output = runtime(&["eval", "--model", path(&model), "--data", &data, "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["correct"].as_u64(), Some(correct));
}
