//! What the `runtime` binary's tests share: running it, its output as text, paths as
//! arguments, the shipped models, and a run measured for its peak memory.
// Each test file uses some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the binary with `args` (standard input closed) to its end.
pub fn runtime(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(args)
        .output()
        .expect("the runtime binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// `runtime classify --json ARGS FILES`: each file's entry of `results`, in order, after
/// checking that it succeeded.
pub fn classified_json(args: &[&str], files: &[PathBuf]) -> Vec<serde_json::Value> {
    let mut all = vec!["classify", "--json"];
    all.extend_from_slice(args);
    all.extend(files.iter().map(|f| path(f)));
    let output = runtime(&all);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let document: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("classify --json prints JSON");
    document["results"]
        .as_array()
        .expect("a results array")
        .clone()
}

/// A file of the workspace's `models/`.
pub fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(name)
}

/// How a measured run ended.
#[cfg(target_os = "linux")]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident set size of the child, in MB (10^6 bytes).
    pub peak_mb: u64,
    pub wall: std::time::Duration,
}

/// Runs the binary to its end and takes its own peak RSS from `wait4`.
// The child is reaped by `wait4`, which clippy does not recognise as a wait.
#[cfg(target_os = "linux")]
#[allow(clippy::zombie_processes)]
pub fn measured(args: &[&str]) -> Outcome {
    use std::io::Read;
    use std::process::Stdio;
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the runtime binary runs");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 writes both out-parameters.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own unwaited child; the pointers are to live locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::Interrupted,
            "wait4: {error}"
        );
    }
    let wall = started.elapsed();
    Outcome {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stdout: stdout.join().expect("stdout drained"),
        stderr: stderr.join().expect("stderr drained"),
        // ru_maxrss is in KiB on Linux.
        peak_mb: usage.ru_maxrss as u64 * 1024 / 1_000_000,
        wall,
    }
}
