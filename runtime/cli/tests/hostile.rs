//! Files and pipes a hostile or careless user gives the `runtime` binary (issue 12): a
//! closed stdout ends every subcommand quietly; a named pipe given as an image, a model or
//! data is refused at once, naming the file, instead of blocking forever.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fmnist_runtime::dataset::DEFAULT_DATA_DIR;

mod common;
use common::{path, text};

fn edge() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/edge.q8")
}

fn data_dir() -> String {
    std::env::var("FMNIST_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into())
}

/// Waits at most 10 s for `child`, then kills it and fails: a refusal must be immediate.
fn finish_within_10s(mut child: Child, what: &str) -> Output {
    let started = Instant::now();
    loop {
        match child.try_wait().expect("the child can be waited for") {
            Some(_) => return child.wait_with_output().expect("output is readable"),
            None if started.elapsed() > Duration::from_secs(10) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what}: still running after 10 s (blocked on a named pipe?)");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Runs the binary with stdout a pipe whose reading end is already closed, as in
/// `runtime info ... | true`: every write fails with EPIPE.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let child = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("the runtime binary runs");
    finish_within_10s(child, &args.join(" "))
}

fn assert_quiet(output: &Output, what: &str) {
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{what}: {stderr}"
    );
    assert_eq!(output.status.code(), Some(0), "{what}: {stderr}");
}

#[test]
fn a_closed_stdout_ends_every_subcommand_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("x.png");
    image::GrayImage::from_fn(28, 28, |x, _| {
        image::Luma([if x % 9 < 4 { 200 } else { 0 }])
    })
    .save(&image)
    .unwrap();
    let edge = edge();
    let data = data_dir();
    for args in [
        vec!["info", path(&edge)],
        vec!["info", path(&edge.with_file_name("edge.onnx"))],
        vec!["eval", "--data", &data, "--limit", "50"],
        vec!["classify", path(&image), path(&image)],
        vec!["classify", "--json", path(&image)],
    ] {
        let output = with_closed_stdout(&args);
        assert_quiet(&output, &args.join(" "));
    }
}

#[test]
fn eval_piped_into_head_ends_quietly() {
    // `runtime eval ... | head -1`: the reader takes one line and goes.
    let data = data_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["eval", "--data", &data, "--limit", "50"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the runtime binary runs");
    let mut stdout = child.stdout.take().expect("piped");
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("eval writes something");
    drop(stdout);
    let output = finish_within_10s(child, "eval | head -1");
    assert_quiet(&output, "eval | head -1");
}

/// A named pipe in a fresh directory; nothing ever writes to it.
fn fifo(dir: &Path, name: &str) -> PathBuf {
    let fifo = dir.join(name);
    let status = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", fifo.display());
    fifo
}

fn refused(args: &[&str], file: &Path) {
    let child = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the runtime binary runs");
    let what = args.join(" ");
    let output = finish_within_10s(child, &what);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{what}: {stderr}");
    assert!(
        stderr.contains(path(file)) && stderr.contains("named pipe"),
        "{what}: {stderr}"
    );
}

#[test]
fn named_pipes_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = fifo(dir.path(), "pipe.png");
    let model = fifo(dir.path(), "model.q8");
    let data = fifo(dir.path(), "test.csv");
    let image = dir.path().join("x.png");
    image::GrayImage::new(28, 28).save(&image).unwrap();

    refused(&["classify", path(&pipe)], &pipe);
    refused(&["classify", "--model", path(&model), path(&image)], &model);
    refused(&["info", path(&model)], &model);
    refused(&["eval", "--model", path(&model)], &model);
    refused(&["eval", "--data", path(&data), "--limit", "5"], &data);

    // With other images, the pipe is one failure and the rest are classified.
    let child = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["classify", path(&image), path(&pipe)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the runtime binary runs");
    let output = finish_within_10s(child, "classify image pipe");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("x.png: "),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn a_model_file_with_trailing_bytes_is_refused() {
    // The edge model with one byte after its envelope, as a file: the CLI shares the
    // engine's validation (and so its limits), and says why.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(edge()).unwrap();
    bytes.push(0);
    let long = dir.path().join("long.q8");
    std::fs::write(&long, &bytes).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["info", path(&long)])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("1 unexpected byte(s) after the envelope"),
        "{}",
        text(&output.stderr)
    );
}
