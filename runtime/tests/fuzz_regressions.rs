//! Every input the fuzz targets found worth keeping (crashes once fixed, and inputs that
//! reach deep paths) is replayed here through the same checks as `cargo fuzz`
//! (`fuzz/checks.rs`), so a regression fails `scripts/test.sh` without nightly or
//! libFuzzer. The inputs live in `fuzz/regressions/<target>/`.

use std::path::Path;

#[path = "../../fuzz/checks.rs"]
mod checks;

/// Runs `check` on every file of `fuzz/regressions/<target>/`; returns how many.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions/<target> exists") {
        let path = entry.expect("a directory entry").path();
        let data = std::fs::read(&path).expect("a readable input");
        eprintln!("{}", path.display());
        check(&data);
        count += 1;
    }
    count
}

#[test]
fn blob_inputs_replay() {
    assert!(replay("blob", checks::blob) > 0);
    // The seeds: each shipped blob whole (mode byte 0), and with a valid envelope rebuilt
    // around its payload (mode byte 1), which reaches classify.
    for name in ["edge.q8", "cnn.q8"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models")
            .join(name);
        let blob = std::fs::read(&path).expect("a shipped blob");
        let (envelope, _) = postcard::take_from_bytes::<fmnist_runtime::blob::Envelope<'_>>(&blob)
            .expect("an envelope");
        checks::blob(&[&[0u8][..], &blob].concat());
        checks::blob(&[&[1u8][..], envelope.payload].concat());
    }
}

#[test]
fn dataset_inputs_replay() {
    assert!(replay("dataset", checks::dataset) > 0);
}

#[test]
fn image_inputs_replay() {
    assert!(replay("image", checks::image) > 0);
}

#[test]
fn onnx_inputs_replay() {
    assert!(replay("onnx", checks::onnx) > 0);
}
