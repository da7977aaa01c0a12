//! What the trainer's command-line tests share: running the binary, and the arguments of a
//! small `mlp` run on generated data. Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `trainer` binary with `args`.
pub fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("the trainer binary runs")
}

/// Bytes of an output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A temporary path as the `&str` the binary takes.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// `trainer fit` of the `mlp` for `epochs` on `data` (generated, 40 validation images),
/// batch 20 at lr 3e-3, into `run`, then `extra`.
pub fn mlp_fit<'a>(
    data: &'a Path,
    run: &'a Path,
    epochs: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "fit",
        "--model",
        "mlp",
        "--epochs",
        epochs,
        "--lr",
        "3e-3",
        "--batch",
        "20",
        "--val",
        "40",
        "--data",
        path(data),
        "--out",
        path(run),
    ];
    args.extend_from_slice(extra);
    args
}
