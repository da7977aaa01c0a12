//! `runtime bench` as a user meets it: short runs (0.2 s of measurement, a few warm-up
//! calls), their JSON checked for consistency, and its usage and model errors.

mod common;
use common::{runtime, shipped, text};

/// `runtime bench --seconds 0.2 --warmup 2 --json ARGS`: the document, after checking that
/// it succeeded and that its figures agree with each other and with `batch` and `threads`.
fn bench(args: &[&str], batch: u64, threads: u64) -> serde_json::Value {
    let mut all = vec!["bench", "--seconds", "0.2", "--warmup", "2", "--json"];
    all.extend_from_slice(args);
    let output = runtime(&all);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        text(&output.stderr)
    );
    let document: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&output.stdout)));
    let number = |key: &str| {
        document[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {document}"))
    };
    let latency = |key: &str| {
        document["latency_us"][key]
            .as_f64()
            .unwrap_or_else(|| panic!("latency_us.{key} in {document}"))
    };
    let (min, mean, p50, p90, p99, max) = (
        latency("min"),
        latency("mean"),
        latency("p50"),
        latency("p90"),
        latency("p99"),
        latency("max"),
    );
    assert!(min > 0.0, "{document}");
    assert!(
        min <= p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{document}"
    );
    assert!(min <= mean && mean <= max, "{document}");
    let iterations = document["iterations"].as_u64().expect("iterations");
    assert!(iterations >= 1, "{document}");
    assert_eq!(
        document["images"].as_u64(),
        Some(iterations * batch),
        "{document}"
    );
    assert_eq!(document["batch"].as_u64(), Some(batch), "{document}");
    assert_eq!(document["threads"].as_u64(), Some(threads), "{document}");
    // Each thread warmed up with 2 calls.
    assert_eq!(document["warmup_iterations"].as_u64(), Some(2 * threads));
    let seconds = number("seconds");
    assert!((0.2..5.0).contains(&seconds), "{document}");
    let per_second = number("images_per_second");
    assert!(per_second > 0.0, "{document}");
    let expected = (iterations * batch) as f64 / seconds;
    assert!(
        (per_second - expected).abs() <= expected * 1e-9,
        "{document}"
    );
    // A call of `batch` images: the per-image figures are the call's divided by it.
    let per_image = document["latency_per_image_us"]["p50"].as_f64().unwrap();
    assert!(
        (per_image * batch as f64 - p50).abs() <= p50 * 1e-9,
        "{document}"
    );
    assert!(
        ["test set", "synthetic"].contains(&document["inputs"].as_str().unwrap()),
        "{document}"
    );
    document
}

#[test]
fn the_builtin_model_with_its_fastest_kernels() {
    let document = bench(&[], 1, 1);
    assert_eq!(document["format"], "int8");
    assert_eq!(document["model"], "models/edge.q8 (built in)");
    assert_eq!(document["kernels"], document["cpu_kernels"]);
}

#[test]
fn a_batch_of_4_on_2_threads() {
    let document = bench(&["--batch", "4", "--threads", "2"], 4, 2);
    assert_eq!(document["format"], "int8");
}

#[test]
fn portable_kernels_on_synthetic_images() {
    let document = bench(&["--kernels", "portable", "--synthetic"], 1, 1);
    assert_eq!(document["kernels"], "portable");
    assert_eq!(document["inputs"], "synthetic");
    assert!(document["inputs_path"].is_null(), "{document}");
}

#[test]
fn an_onnx_model_runs_on_tract() {
    let model = shipped("edge.onnx");
    let document = bench(&["--model", model.to_str().unwrap()], 1, 1);
    assert_eq!(document["format"], "onnx");
    assert_eq!(document["kernels"], "tract");
}

#[test]
fn a_fixed_number_of_calls_shared_among_threads() {
    let output = runtime(&[
        "bench",
        "--iterations",
        "7",
        "--threads",
        "2",
        "--batch",
        "3",
        "--warmup",
        "0",
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["iterations"], 7, "{document}");
    assert_eq!(document["images"], 21, "{document}");
    assert_eq!(document["latency_samples"], 7, "{document}");
    assert_eq!(document["warmup_iterations"], 0, "{document}");
}

#[test]
fn the_text_report_names_the_model_and_the_figures() {
    let output = runtime(&["bench", "--seconds", "0.1", "--warmup", "1", "--batch", "2"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for expected in [
        "model:    models/edge.q8 (built in) (int8,",
        "kernels:  ",
        "batch:    2 images per call; threads: 1",
        "Latency per call",
        "Median:",
        "Average:",
        "Min:",
        "Max:",
        "Latency per image (per call / 2)",
        "Throughput: ",
        " images/s",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in {stdout}");
    }
    // No progress bar where stderr is not a terminal.
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["--batch", "0"][..],
        &["--batch", "4097"],
        &["--seconds", "-1"],
        &["--seconds", "0"],
        &["--seconds", "nan"],
        &["--seconds", "3601"],
        &["--threads", "0"],
        &["--threads", "257"],
        &["--iterations", "0"],
        &["--seconds", "1", "--iterations", "5"],
        &["--data", "x", "--synthetic"],
    ] {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        let output = runtime(&all);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = text(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_missing_or_bad_model_file_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.q8");
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"neither a blob nor ONNX").unwrap();
    for file in [&missing, &garbage] {
        let file = file.to_str().unwrap();
        let output = runtime(&["bench", "--seconds", "0.1", "--model", file]);
        assert_eq!(output.status.code(), Some(1), "{file}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(file), "{file}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    // The int8 kernels are no ONNX option.
    let onnx = shipped("edge.onnx");
    let output = runtime(&[
        "bench",
        "--seconds",
        "0.1",
        "--kernels",
        "portable",
        "--model",
        onnx.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    // A data file that is not there.
    let output = runtime(&[
        "bench",
        "--seconds",
        "0.1",
        "--data",
        "/nonexistent/test.csv",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("/nonexistent/test.csv"));
}
