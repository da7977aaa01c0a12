//! A training checkpoint given to `runtime` as a model (issue 36): `runtime --model
//! runs/x/model.mpk` said what protobuf thought of it; it now says what the file is and
//! how to export it. The same for the run directory itself.
//!
//! What `trainer fit` writes as `model.mpk` (burn's `NamedMpkBytesRecorder`) starts with a
//! MessagePack map of three entries whose first key is "metadata":
//! `83 a8 6d 65 74 61 64 61 74 61 85 a5 66 6c 6f 61 74 ...` ({"metadata": {"float": ...
//! "format": "burn_core::record::memory::NamedMpkBytesRecorder<...>", ...}, "item": ...}),
//! read from a run of `trainer fit --model mlp`. The fakes below are those first bytes.

use std::process::Output;

mod common;
use common::{path, runtime};

/// The first bytes of a `model.mpk` as `trainer fit` writes it (see the module's text).
fn fake_record() -> Vec<u8> {
    let mut bytes = vec![0x83, 0xa8];
    bytes.extend_from_slice(b"metadata");
    bytes.extend_from_slice(&[0x85, 0xa5]);
    bytes.extend_from_slice(b"float");
    bytes.extend_from_slice(&[0xa3]);
    bytes.extend_from_slice(b"f32");
    bytes.extend_from_slice(&[0xa6]);
    bytes.extend_from_slice(b"format");
    bytes.extend_from_slice(&[0xd9, 0x64]);
    bytes.extend_from_slice(
        b"burn_core::record::memory::NamedMpkBytesRecorder<burn_core::record::settings::\
          FullPrecisionSettings>",
    );
    bytes
}

fn refused(output: &Output) -> String {
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
    assert!(!message.contains("protobuf"), "{message}");
    message
}

#[test]
fn a_training_checkpoint_or_run_directory_says_how_to_export_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("runs/x");
    std::fs::create_dir_all(&run).unwrap();
    let model = run.join("model.mpk");
    std::fs::write(&model, fake_record()).unwrap();
    std::fs::write(run.join("best.mpk"), fake_record()).unwrap();

    for command in ["info", "classify", "eval"] {
        let args: Vec<&str> = match command {
            "info" => vec!["info", path(&model)],
            "classify" => vec!["classify", "--model", path(&model), "nothing.png"],
            _ => vec!["eval", "--model", path(&model)],
        };
        let message = refused(&runtime(&args));
        assert!(
            message.contains(&format!(
                "{}: this is a training checkpoint (burn MessagePack)",
                path(&model)
            )) && message.contains(&format!(
                "export it with `trainer export --checkpoint {} --q8 FILE` or `--onnx FILE`",
                path(&run)
            )),
            "{command}: {message}"
        );
    }
    let best = refused(&runtime(&["info", path(&run.join("best.mpk"))]));
    assert!(best.contains("--best"), "{best}");

    // The run directory itself.
    std::fs::write(run.join("run.json"), b"{}").unwrap();
    let message = refused(&runtime(&["info", path(&run)]));
    assert!(
        message.contains("this is a training run directory")
            && message.contains(&format!(
                "`trainer export --checkpoint {} --q8 FILE`",
                path(&run)
            )),
        "{message}"
    );

    // MessagePack that is not a burn record (another first key) is not taken for one.
    let other = dir.path().join("other.mpk");
    let mut bytes = fake_record();
    bytes[2..10].copy_from_slice(b"metadatx");
    std::fs::write(&other, bytes).unwrap();
    let output = runtime(&["info", path(&other)]);
    assert!(!output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("training checkpoint"));
}
