//! A run directory you can trust: every broken or foreign file of a run directory, built
//! here, gives a one-line error naming the file (or is repaired from `resume.state`, saying
//! so), never a panic, never exit 0 with a broken run, never an error found only after
//! training. One test per defect of issue 19; each makes tiny runs on generated data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fmnist_trainer::model::ModelKind;
use fmnist_trainer::run::{self, ResumeState, RunInfo};
use fmnist_trainer::synthetic;

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the trainer; a run that takes over a minute (a read that blocks) is killed and
/// fails the test.
fn trainer(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the trainer binary runs");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().expect("kill");
            let output = child.wait_with_output().expect("wait");
            panic!(
                "trainer {args:?} did not finish in 60 s: {}",
                text(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Data for tiny runs: 80 training images (60 fitted, 20 validated) and 20 test images.
fn dataset() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 80, 20).unwrap();
    data
}

fn fit_args<'a>(data: &'a Path, out: &'a Path, model: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "fit",
        "--model",
        model,
        "--epochs",
        epochs,
        "--batch",
        "20",
        "--lr",
        "3e-3",
        "--val",
        "20",
        "--test-limit",
        "20",
        "--no-progress",
        "--data",
        path(data),
        "--out",
        path(out),
    ]
}

/// A finished run of `model` in `data/name`.
fn run(data: &Path, name: &str, model: &str) -> PathBuf {
    let out = data.join(name);
    let output = trainer(&fit_args(data, &out, model, "1"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    out
}

/// A failure with exit code `code` and one line on stderr that names `file` and says
/// `what`, without a panic.
fn assert_refused(output: &Output, code: i32, file: &str, what: &str) {
    let message = text(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{message}");
    assert!(
        !message.contains("internal error") && !message.contains("panicked"),
        "{message}"
    );
    assert!(message.contains(file), "names {file}: {message}");
    assert!(message.contains(what), "says {what:?}: {message}");
    assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
}

fn eval(run: &Path, data: &Path) -> Output {
    trainer(&["eval", "--checkpoint", path(run), "--data", path(data)])
}

/// `eval`, `export` and `show` on a run directory: each must refuse it the same way.
fn assert_every_reader_refuses(run: &Path, data: &Path, file: &str, what: &str) {
    assert_refused(&eval(run, data), 1, file, what);
    let onnx = data.join("out.onnx");
    let output = trainer(&["export", "--checkpoint", path(run), "--onnx", path(&onnx)]);
    assert_refused(&output, 1, file, what);
    assert!(!onnx.exists());
    let grid = data.join("grid.png");
    let output = trainer(&[
        "show",
        "--out",
        path(&grid),
        "--data",
        path(data),
        "--model",
        path(run),
    ]);
    assert_refused(&output, 1, file, what);
}

/// The run description and resume state of `run`'s `resume.state`, decoded without any of
/// the loader's checks (so that tests can break them).
fn state_parts(run: &Path) -> (RunInfo, ResumeState) {
    let bytes = std::fs::read(run.join(run::RESUME_FILE)).unwrap();
    // magic (8 bytes), version (1), SHA-256 (32), then the postcard payload.
    let state: ResumeState = postcard::from_bytes(&bytes[8 + 1 + 32..]).unwrap();
    let info = serde_json::from_str(&state.info).unwrap();
    (info, state)
}

/// Writes a `resume.state` with a valid checksum around `info` and `state`: the damage is
/// inside, where only the decoding can find it.
fn write_state(run: &Path, info: &RunInfo, mut state: ResumeState) {
    state.info = serde_json::to_string(info).unwrap();
    let payload = postcard::to_stdvec(&state).unwrap();
    std::fs::write(run.join(run::RESUME_FILE), run::resume_envelope(&payload)).unwrap();
}

/// Where the parameter ids of a `model.mpk` (MessagePack `"id"` then a 13-character
/// string) start.
fn param_ids(bytes: &[u8]) -> Vec<usize> {
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"\xa2id\xad")
        .map(|(i, _)| i + 4)
        .collect()
}

fn resume(run: &Path) -> Output {
    trainer(&["fit", "--resume", path(run), "--no-progress"])
}

/// Defect 1: One changed byte in a parameter id: `Invalid id.` panicked inside burn's recorder.
#[test]
fn a_corrupt_parameter_id_is_an_error_not_a_panic() {
    let data = dataset();
    let run = run(data.path(), "mlp", "mlp");
    let model_path = run.join(run::MODEL_FILE);
    let good = std::fs::read(&model_path).unwrap();
    let mut bad = good.clone();
    let id = param_ids(&bad)[0];
    bad[id] = b'!';
    std::fs::write(&model_path, &bad).unwrap();
    // The checksum finds it first...
    assert_every_reader_refuses(&run, data.path(), "model.mpk", "checksum mismatch");
    // ... and with the checksum updated to match, the guarded decoding does.
    let mut info: RunInfo =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    info.model_sha256 = Some(fmnist_trainer::util::sha256::sha256_hex(&bad));
    run::save_info(&run, &info).unwrap();
    assert_every_reader_refuses(&run, data.path(), "model.mpk", "Invalid id");

    // The same byte in the weights that resume.state holds.
    let (mut info, mut state) = state_parts(&run);
    let id = param_ids(&state.model)[0];
    state.model[id] = b'!';
    info.model_sha256 = Some(fmnist_trainer::util::sha256::sha256_hex(&state.model));
    write_state(&run, &info, state);
    assert_refused(&resume(&run), 1, "resume.state", "bad model state");
}

/// Defect 2: A moment tensor of the wrong shape in the optimiser state panicked in the first
/// Adam step ("incompatible shapes").
#[test]
fn an_optimiser_state_of_the_wrong_shape_is_refused_before_training() {
    let data = dataset();
    let run = data.path().join("mlp");
    let output = trainer(&fit_args(data.path(), &run, "mlp", "1"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    // Continue a 2-epoch run from its first epoch: change the recipe in both places.
    let (mut info, mut state) = state_parts(&run);
    info.recipe.epochs = 2;
    if let Some(options) = &mut info.options {
        options.recipe.epochs = Some(2);
    }
    // Swap the moments of the first layer's weight [784, 128] and bias [128]: the keys of
    // the optimiser's record are the parameter ids.
    let ids: Vec<Vec<u8>> = param_ids(&state.model)
        .iter()
        .map(|&i| state.model[i..i + 13].to_vec())
        .collect();
    let (weight, bias) = (&ids[0], &ids[1]);
    let find = |bytes: &[u8], id: &[u8]| {
        bytes
            .windows(13)
            .position(|w| w == id)
            .expect("the optimiser state has the parameter's moments")
    };
    let (w, b) = (find(&state.optimizer, weight), find(&state.optimizer, bias));
    state.optimizer[w..w + 13].copy_from_slice(bias);
    state.optimizer[b..b + 13].copy_from_slice(weight);
    write_state(&run, &info, state);
    run::save_info(&run, &info).unwrap();
    let output = resume(&run);
    assert_refused(&output, 1, "resume.state", "bad optimiser state");
    assert!(
        text(&output.stderr).contains("shape"),
        "{}",
        text(&output.stderr)
    );
    assert!(!text(&output.stdout).contains("Epoch: 2"));
}

/// Defect 3: The recipe read back was never validated: batch 0 divided by zero, label smoothing
/// 1.5 panicked in burn, a negative learning rate trained to 10% with exit 0.
#[test]
fn the_recipe_read_back_is_validated_like_the_command_line() {
    let data = dataset();
    let run = run(data.path(), "mlp", "mlp");
    let (good_info, good_state) = state_parts(&run);
    type Break = fn(&mut RunInfo);
    let cases: [(Break, &str); 3] = [
        (
            |info| {
                info.recipe.batch = 0;
                info.options.as_mut().unwrap().recipe.batch = Some(0);
            },
            "--batch must be at least 1",
        ),
        (
            |info| {
                info.recipe.label_smoothing = 1.5;
                info.options.as_mut().unwrap().recipe.label_smoothing = Some(1.5);
            },
            "--label-smoothing must be in [0, 1)",
        ),
        (
            |info| {
                info.recipe.lr = -1e-3;
                info.options.as_mut().unwrap().recipe.lr = Some(-1e-3);
            },
            "--lr must be a positive number",
        ),
    ];
    for (break_it, what) in cases {
        let mut info = good_info.clone();
        break_it(&mut info);
        write_state(&run, &info, good_state.clone());
        let output = resume(&run);
        assert_refused(&output, 1, "resume.state", what);
        assert!(!text(&output.stdout).contains("Epoch:"));
        // The same recipe in run.json: eval refuses it too.
        write_state(&run, &good_info, good_state.clone());
        run::save_info(&run, &info).unwrap();
        assert_refused(&eval(&run, data.path()), 1, "run.json", what);
        run::save_info(&run, &good_info).unwrap();
    }
    // Only the recipe, not the options that gave it: they disagree.
    let mut info = good_info.clone();
    info.recipe.lr = 0.5;
    write_state(&run, &info, good_state);
    assert_refused(&resume(&run), 1, "resume.state", "another recipe");
}

/// Defect 4: Resume trusted resume.state over the rest: a cnn run's resume.state in an mlp run's
/// directory resumed with exit 0 and wrote a cnn run.json next to the mlp model.mpk; a
/// finished run with a corrupt model.mpk resumed with exit 0 and kept the broken file.
#[test]
fn resume_checks_resume_state_against_the_run_directory() {
    let data = dataset();
    let mlp = run(data.path(), "mlp", "mlp");
    let cnn = run(data.path(), "cnn", "cnn");
    let mlp_run_json = std::fs::read(mlp.join("run.json")).unwrap();
    std::fs::copy(cnn.join("resume.state"), mlp.join("resume.state")).unwrap();
    let output = resume(&mlp);
    assert_refused(&output, 1, "resume.state", "model kind is cnn");
    assert!(text(&output.stderr).contains("run.json says mlp"));
    assert_eq!(std::fs::read(mlp.join("run.json")).unwrap(), mlp_run_json);
    assert_eq!(
        eval(&mlp, data.path()).status.code(),
        Some(0),
        "the mlp run is untouched"
    );

    // A finished cnn run whose model.mpk is corrupt: repaired from resume.state.
    let model_path = cnn.join("model.mpk");
    let good = std::fs::read(&model_path).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x40;
    std::fs::write(&model_path, &bad).unwrap();
    assert_refused(
        &eval(&cnn, data.path()),
        1,
        "model.mpk",
        "checksum mismatch",
    );
    let output = resume(&cnn);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let said = text(&output.stdout);
    assert!(
        said.contains("model.mpk") && said.contains("rewritten from resume.state"),
        "{said}"
    );
    assert_eq!(std::fs::read(&model_path).unwrap(), good);
    assert!(eval(&cnn, data.path()).status.success());

    // A missing run.json is rewritten too; a consistent directory is not touched.
    std::fs::remove_file(cnn.join("run.json")).unwrap();
    let output = resume(&cnn);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("run.json: missing; rewritten"));
    let output = resume(&cnn);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        !text(&output.stdout).contains("rewritten"),
        "{}",
        text(&output.stdout)
    );
    assert!(eval(&cnn, data.path()).status.success());
}

/// Defect 5: One flipped byte in the weight data of model.mpk gave other results with exit 0.
#[test]
fn a_flipped_weight_byte_is_found_by_the_checksum() {
    let data = dataset();
    let run = run(data.path(), "mlp", "mlp");
    assert!(eval(&run, data.path()).status.success());
    let model_path = run.join(run::MODEL_FILE);
    let mut bytes = std::fs::read(&model_path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&model_path, &bytes).unwrap();
    assert_every_reader_refuses(&run, data.path(), "model.mpk", "checksum mismatch");

    // A run.json without the checksum (a run of an older trainer) is not trusted either.
    let mut info: RunInfo =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    info.model_sha256 = None;
    run::save_info(&run, &info).unwrap();
    assert_refused(&eval(&run, data.path()), 1, "model.mpk", "no checksum");
    // A damaged field name is not a missing field.
    let json = text(&std::fs::read(run.join("run.json")).unwrap()).replace("\"seed\"", "\"sead\"");
    std::fs::write(run.join("run.json"), json).unwrap();
    assert_refused(&eval(&run, data.path()), 1, "run.json", "unknown field");
}

/// Defect 6: Output paths were refused only after work: `--out` an existing file, in an
/// unwritable place or with a name too long, after epoch 1; `--export` in an existing but
/// unwritable directory, after all training.
#[test]
fn every_output_path_is_proven_writable_before_any_work() {
    let data = dataset();
    let file = data.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let long = data.path().join("x".repeat(300));
    for (out, what) in [
        (file.clone(), "not a directory"),
        (long.clone(), "cannot write there"),
        (PathBuf::from("/proc/self/run"), "cannot write there"),
    ] {
        let output = trainer(&fit_args(data.path(), &out, "mlp", "1"));
        assert_refused(&output, 2, path(&out), what);
        assert!(!text(&output.stdout).contains("Epoch:"));
    }
    let run = data.path().join("run");
    for flag in ["--export", "--export-q8"] {
        for target in [
            PathBuf::from("/proc/self/model.out"),
            data.path().join("y".repeat(300)),
        ] {
            let mut args = fit_args(data.path(), &run, "mlp", "1");
            args.extend([flag, path(&target)]);
            let output = trainer(&args);
            assert_refused(&output, 2, path(&target), "cannot write there");
            assert!(!text(&output.stdout).contains("Epoch:"));
            assert!(!run.exists(), "nothing written");
        }
    }
    // A read-only directory (not for root, who may write anywhere).
    let read_only = data.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    set_mode(&read_only, 0o555);
    if std::fs::write(read_only.join("probe"), b"").is_err() {
        let target = read_only.join("model.onnx");
        let mut args = fit_args(data.path(), &run, "mlp", "1");
        args.extend(["--export", path(&target)]);
        assert_refused(&trainer(&args), 2, path(&target), "cannot write there");
        let output = trainer(&fit_args(data.path(), &read_only, "mlp", "1"));
        assert_refused(&output, 2, path(&read_only), "cannot write there");
    }
    set_mode(&read_only, 0o755);

    let run = self::run(data.path(), "done", "mlp");
    let logits = PathBuf::from("/proc/self/logits.csv");
    let output = trainer(&[
        "eval",
        "--checkpoint",
        path(&run),
        "--data",
        path(data.path()),
        "--logits",
        path(&logits),
    ]);
    assert_refused(&output, 2, "logits.csv", "cannot write there");
    assert!(!text(&output.stdout).contains("accuracy"));
}

fn set_mode(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Defect 7: A killed run left `.tmp-*` files, and resume never removed them.
#[test]
fn resume_removes_the_temporary_files_of_a_killed_run() {
    let data = dataset();
    let run = run(data.path(), "mlp", "mlp");
    // What a run killed inside `write_atomic` leaves: a partial model.mpk.
    for name in [".tmp-a1b2c3", ".tmp-XyZ789"] {
        std::fs::write(run.join(name), vec![7u8; 1_200_000]).unwrap();
    }
    let output = resume(&run);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("removed 2 temporary file(s)"));
    let left: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Defect 8: Unbounded reads: model.mpk as a named pipe blocked forever, as a link to /dev/zero
/// read until memory ran out.
#[test]
fn run_files_are_read_only_if_regular_and_of_plausible_size() {
    let data = dataset();
    let run = run(data.path(), "mlp", "mlp");
    let model_path = run.join(run::MODEL_FILE);
    let good = std::fs::read(&model_path).unwrap();
    std::fs::remove_file(&model_path).unwrap();
    let status = Command::new("mkfifo").arg(&model_path).status().unwrap();
    assert!(status.success());
    assert_refused(&eval(&run, data.path()), 1, "model.mpk", "a named pipe");
    std::fs::remove_file(&model_path).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &model_path).unwrap();
    assert_refused(&eval(&run, data.path()), 1, "model.mpk", "a device");
    // Resume repairs it from resume.state instead.
    let output = resume(&run);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(std::fs::read(&model_path).unwrap(), good);

    // A run.json or resume.state of implausible size.
    let run_json = run.join("run.json");
    let saved = std::fs::read(&run_json).unwrap();
    let file = std::fs::File::create(&run_json).unwrap();
    file.set_len(run::MAX_RUN_BYTES + 1).unwrap();
    assert_refused(&eval(&run, data.path()), 1, "run.json", "more than");
    std::fs::write(&run_json, saved).unwrap();
    let state = run.join(run::RESUME_FILE);
    std::fs::remove_file(&state).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &state).unwrap();
    assert_refused(&resume(&run), 1, "resume.state", "a device");
}

/// Defect 9: A resume whose saved options name another model kind printed that kind's layers
/// while it trained the run's own model.
#[test]
fn saved_options_that_name_another_model_kind_are_refused() {
    let data = dataset();
    let run = run(data.path(), "mlp", "mlp");
    let (mut info, state) = state_parts(&run);
    info.options.as_mut().unwrap().model = ModelKind::Cnn;
    write_state(&run, &info, state);
    let output = resume(&run);
    assert_refused(&output, 1, "resume.state", "options name the cnn model");
    assert!(
        !text(&output.stdout).contains("Conv"),
        "{}",
        text(&output.stdout)
    );
}

/// Issue 34: unknown fields in `run.json`'s options (or in their recipe) were accepted,
/// while the rest of `run.json` refuses them.
#[test]
fn unknown_fields_in_the_saved_options_are_refused() {
    let data = dataset();
    let run = run(data.path(), "mlp", "mlp");
    let run_json = run.join("run.json");
    let saved = std::fs::read_to_string(&run_json).unwrap();
    for (pointer, field) in [("/options", "bogus"), ("/options/recipe", "lr_typo")] {
        let mut json: serde_json::Value = serde_json::from_str(&saved).unwrap();
        json.pointer_mut(pointer)
            .and_then(|v| v.as_object_mut())
            .expect("run.json records the options and their recipe")
            .insert(field.into(), serde_json::json!(1));
        std::fs::write(&run_json, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        assert_every_reader_refuses(&run, data.path(), "run.json", field);
    }
}

/// A named pipe at `path`; nothing ever opens its other end.
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Issue 34: outputs that are links, pipes or devices; `--logits -`; the run's lock file.
#[test]
fn outputs_write_through_links_keep_their_mode_and_never_replace_pipes() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let data = dataset();
    let run = run(data.path(), "mlp", "mlp");

    // `--logits -` is standard output (a file named `-` was written); the summary goes to
    // standard error.
    let output = trainer(&[
        "eval",
        "--checkpoint",
        path(&run),
        "--data",
        path(data.path()),
        "--logits",
        "-",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("label,logit0,"), "{stdout}");
    assert_eq!(stdout.lines().count(), 21, "a header and 20 images");
    assert!(text(&output.stderr).contains("images/s"));

    // A named pipe as an output: refused before any work, left a pipe (it was replaced
    // by a regular file).
    let pipe = data.path().join("pipe.q8");
    mkfifo(&pipe);
    let output = trainer(&["export", "--checkpoint", path(&run), "--q8", path(&pipe)]);
    assert_refused(&output, 2, "pipe.q8", "a named pipe, not a regular file");
    assert!(std::fs::symlink_metadata(&pipe)
        .unwrap()
        .file_type()
        .is_fifo());

    // A link as an output: written through, the link kept; a read-only file stays
    // read-only (it became 0644).
    let target = data.path().join("target.q8");
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444)).unwrap();
    let link = data.path().join("link.q8");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let output = trainer(&["export", "--checkpoint", path(&run), "--q8", path(&link)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let written = std::fs::read(&target).unwrap();
    assert!(written.starts_with(b"FMQ8") || written.len() > 1000);
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o444
    );

    // The run's lock file as a named pipe: opening it blocked `fit` forever.
    let lock = run.join(".fit.lock");
    let _ = std::fs::remove_file(&lock);
    mkfifo(&lock);
    let resume = || trainer(&["fit", "--resume", path(&run), "--epochs", "2"]);
    assert_refused(&resume(), 1, ".fit.lock", "a named pipe");
    // As a link: it was followed, and its target created outside the run directory.
    std::fs::remove_file(&lock).unwrap();
    let outside = data.path().join("outside-lock");
    std::os::unix::fs::symlink(&outside, &lock).unwrap();
    assert_refused(&resume(), 1, ".fit.lock", "a symbolic link");
    assert!(!outside.exists());
}

/// Issue 34: outputs onto what the command reads or onto the run's own files succeeded
/// and broke things later (`--export RUN/resume.state`, `export --onnx RUN/model.mpk`,
/// `eval --logits RUN/run.json`, `export --from-onnx s.onnx --q8 s.onnx`, `--onnx x --q8
/// x`). Each is refused before any work, through links too, and nothing is changed.
#[test]
fn outputs_onto_inputs_or_the_runs_own_files_are_refused() {
    let data = dataset();
    let run = run(data.path(), "mlp", "mlp");
    let unchanged = |file: &Path, before: &[u8]| {
        assert_eq!(std::fs::read(file).unwrap(), before, "{}", file.display());
    };

    let model = run.join("model.mpk");
    let before = std::fs::read(&model).unwrap();
    let output = trainer(&["export", "--checkpoint", path(&run), "--onnx", path(&model)]);
    assert_refused(&output, 2, "model.mpk", "the run directory's own files");
    unchanged(&model, &before);

    let run_json = run.join("run.json");
    let before = std::fs::read(&run_json).unwrap();
    let link = data.path().join("logits.csv");
    std::os::unix::fs::symlink(&run_json, &link).unwrap();
    for (logits, named) in [(&run_json, "run.json"), (&link, "logits.csv")] {
        let output = trainer(&[
            "eval",
            "--checkpoint",
            path(&run),
            "--data",
            path(data.path()),
            "--logits",
            path(logits),
        ]);
        assert_refused(&output, 2, named, "the run directory's own files");
    }
    unchanged(&run_json, &before);

    let same = data.path().join("both");
    let output = trainer(&[
        "export",
        "--checkpoint",
        path(&run),
        "--onnx",
        path(&same),
        "--q8",
        path(&same),
    ]);
    assert_refused(&output, 2, "both", "are the same file");

    let onnx = data.path().join("s.onnx");
    let output = trainer(&["export", "--checkpoint", path(&run), "--onnx", path(&onnx)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let before = std::fs::read(&onnx).unwrap();
    let output = trainer(&[
        "export",
        "--from-onnx",
        path(&onnx),
        "--q8",
        path(&onnx),
        "--data",
        path(data.path()),
    ]);
    assert_refused(&output, 2, "s.onnx", "which this command reads");
    unchanged(&onnx, &before);

    // `fit --export` onto the new run's own resume state.
    let fresh = data.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let state = fresh.join("resume.state");
    let mut args = fit_args(data.path(), &fresh, "mlp", "1");
    args.extend(["--export", path(&state)]);
    assert_refused(
        &trainer(&args),
        2,
        "resume.state",
        "the run directory's own files",
    );
    assert!(!state.exists());
}

/// Issue 34, trainer item 10: the two kill points that did not resume exactly.
#[test]
fn runs_killed_at_the_last_two_kill_points_resume_or_say_what_to_do() {
    let data = dataset();
    // Killed just before the final `run.json` write: every file of the last epoch saved
    // (`run.json` as each epoch writes it, without a test accuracy), no export written.
    // The resume said the run was finished, with no test accuracy and no export.
    let out = data.path().join("last");
    let export = data.path().join("last.onnx");
    let mut args = fit_args(data.path(), &out, "mlp", "1");
    args.extend(["--export", path(&export)]);
    let output = trainer(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let tested = run::load_info(&out).unwrap().test_accuracy;
    assert!(tested.is_some());
    let (epoch_info, _) = state_parts(&out);
    assert_eq!(epoch_info.test_accuracy, None);
    run::save_info(&out, &epoch_info).unwrap();
    std::fs::remove_file(&export).unwrap();
    let output = resume(&out);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains("was stopped before it was tested and exported: testing and exporting"),
        "{stdout}"
    );
    assert!(!stdout.contains("trained 0"), "{stdout}");
    assert!(export.is_file(), "the export was not written");
    let info = run::load_info(&out).unwrap();
    assert_eq!(
        info.test_accuracy, tested,
        "the same weights, the same test"
    );
    assert_eq!(info.epochs.len(), 1, "no epoch trained");
    // Now it is finished.
    let output = resume(&out);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("nothing to train"));

    // Killed during epoch 1's saves, before `resume.state` was written: a new `fit`
    // advised `--resume`, which then failed. Both now say the run cannot be resumed and
    // that --force replaces it, which works.
    let out = run(data.path(), "first", "mlp");
    std::fs::remove_file(out.join(run::RESUME_FILE)).unwrap();
    let output = trainer(&fit_args(data.path(), &out, "mlp", "1"));
    assert_refused(
        &output,
        2,
        path(&out),
        "stopped before its first epoch was saved whole (there is no resume.state), which \
         cannot be resumed: give --force to replace it",
    );
    assert!(!text(&output.stderr).contains("--resume"));
    let output = resume(&out);
    assert_refused(
        &output,
        1,
        path(&out),
        "was stopped before its first epoch was saved whole, and cannot be resumed; start it \
         again with `trainer fit --out",
    );
    let mut args = fit_args(data.path(), &out, "mlp", "1");
    args.push("--force");
    let output = trainer(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(out.join(run::RESUME_FILE).is_file());
}
