//! Training survives being killed: a run killed (SIGKILL) or interrupted (Ctrl-C) during an
//! epoch and continued with `trainer fit --resume` ends exactly where an uninterrupted run
//! ends. Alone in its own test binary: it times its kills on the runs' files.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fmnist_trainer::synthetic;

const EPOCHS: usize = 3;

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn fit_command(data: &Path, out: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.args([
        "fit",
        "--model",
        "cnn",
        "--epochs",
        "3",
        "--batch",
        "50",
        "--lr",
        "2e-3",
        "--augment",
        "--val",
        "100",
        "--seed",
        "3",
        "--test-limit",
        "200",
        "--data",
    ]);
    command.arg(data).arg("--out").arg(out).arg("--no-progress");
    command
}

fn run(mut command: Command) -> Output {
    command.output().expect("the trainer binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Per-epoch figures and the test accuracy of a run directory; `seconds` left out.
fn figures(run: &Path) -> (Vec<[f64; 5]>, Option<f64>) {
    let bytes = std::fs::read(run.join("run.json")).expect("run.json exists");
    let info: fmnist_trainer::run::RunInfo = serde_json::from_slice(&bytes).unwrap();
    let epochs = info
        .epochs
        .iter()
        .map(|m| [m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.lr])
        .collect();
    (epochs, info.test_accuracy)
}

/// Starts a fit and waits until its first epoch's resume state exists, so that what
/// follows lands during the second epoch.
fn start_and_wait_for_epoch_one(data: &Path, run: &Path) -> Child {
    let mut child = fit_command(data, run)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the trainer binary starts");
    let state = run.join(fmnist_trainer::run::RESUME_FILE);
    let started = Instant::now();
    while !state.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no epoch finished"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

fn resume(run: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.args(["fit", "--resume", path(run), "--no-progress"]);
    run_checked(command)
}

fn run_checked(command: Command) -> Output {
    let output = run(command);
    assert!(output.status.success(), "{}", text(&output.stderr));
    output
}

#[test]
fn a_killed_or_interrupted_run_resumes_to_the_uninterrupted_result() {
    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 1600, 200).unwrap();
    let reference = data.path().join("reference");
    run_checked(fit_command(data.path(), &reference));
    let expected = figures(&reference);
    assert_eq!(expected.0.len(), EPOCHS);

    // SIGKILL in the middle of epoch 2: nothing gets a chance to clean up.
    let killed = data.path().join("killed");
    let mut child = start_and_wait_for_epoch_one(data.path(), &killed);
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    let saved = figures(&killed).0.len();
    assert!(
        (1..EPOCHS).contains(&saved),
        "{saved} epochs saved before the kill"
    );
    let output = resume(&killed);
    assert!(
        text(&output.stdout).contains(&format!("resuming {} after epoch {saved}", path(&killed)))
    );
    assert_eq!(figures(&killed), expected, "the resumed run differs");

    // Ctrl-C: a clean stop, exit code 130 and a message that says how to go on.
    let interrupted = data.path().join("interrupted");
    let child = start_and_wait_for_epoch_one(data.path(), &interrupted);
    let signal = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signal.success());
    let output = child.wait_with_output().unwrap();
    let message = text(&output.stderr);
    if output.status.code() == Some(130) {
        assert!(message.contains("interrupted during epoch"), "{message}");
        assert!(message.contains("--resume"), "{message}");
        assert_eq!(message.lines().count(), 1, "{message}");
    } else {
        // The signal landed after the last batch: the run finished normally.
        assert!(output.status.success(), "{message}");
    }
    resume(&interrupted);
    assert_eq!(figures(&interrupted), expected, "the resumed run differs");
}

#[test]
fn resume_refuses_bad_state_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.args(["fit", "--resume", path(dir.path())]);
    let output = run(command);
    assert_eq!(output.status.code(), Some(1));
    let message = text(&output.stderr);
    assert!(message.contains("resume.state: cannot read"), "{message}");

    std::fs::write(dir.path().join("resume.state"), b"FMRESUME\x01\xff").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.args(["fit", "--resume", path(dir.path())]);
    let output = run(command);
    assert_eq!(output.status.code(), Some(1));
    let message = text(&output.stderr);
    assert!(
        message.contains("truncated or corrupt resume state"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn a_run_without_recorded_options_is_not_resumed() {
    use fmnist_trainer::backend::Cpu;
    use fmnist_trainer::config::recipe::Recipe;
    use fmnist_trainer::model::{Classifier, ModelKind};
    use fmnist_trainer::run::{self, RunInfo};
    // What an older trainer wrote: a run description without the fit options.
    let dir = tempfile::tempdir().unwrap();
    let kind = ModelKind::Mlp;
    let info = RunInfo::new(
        kind,
        Recipe::default_for(kind),
        1,
        "flex",
        "trainer fit --model mlp".into(),
    );
    let model = Classifier::<Cpu>::new(kind, &Default::default());
    run::save_resume(dir.path(), &model, Vec::new(), &info).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.args(["fit", "--resume", path(dir.path())]);
    let output = run(command);
    let message = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("did not record its options"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}
