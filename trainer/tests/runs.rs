//! Runs as users of Keras and Lightning expect them (issue 16): a finished run is never
//! clobbered, a run can be extended and its data moved, the timing counts what ran,
//! `--train-limit` counts training images, the best epoch is kept and `--patience` stops
//! early, a divergence before the first epoch leaves nothing behind, and `eval` speaks
//! JSON, and a run distils from a teacher file it records. Tiny runs on generated data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fmnist_trainer::run::RunInfo;
use fmnist_trainer::synthetic;

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn trainer_in(dir: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().expect("the trainer binary runs")
}

fn trainer(args: &[&str]) -> Output {
    trainer_in(None, args)
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
}

fn refused(output: &Output, code: i32, what: &str) {
    let message = text(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{message}");
    assert!(message.contains(what), "{what:?} not in: {message}");
    assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
}

/// 80 training images (60 fitted, the last 20 validated) and 20 test images.
fn dataset() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    synthetic::write_dataset(data.path(), 80, 20).unwrap();
    data
}

/// `trainer fit` of the `mlp` (its default recipe: Adam 1e-4, constant) on `data` with
/// `extra` options.
fn fit_args<'a>(data: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "fit",
        "--model",
        "mlp",
        "--batch",
        "20",
        "--val",
        "20",
        "--no-progress",
        "--data",
        path(data),
    ];
    args.extend_from_slice(extra);
    args
}

fn info(run: &Path) -> RunInfo {
    serde_json::from_slice(&std::fs::read(run.join("run.json")).expect("run.json")).unwrap()
}

/// Per-epoch figures without the seconds, and the test accuracy.
fn figures(run: &Path) -> (Vec<[f64; 5]>, Option<f64>) {
    let info = info(run);
    let epochs = info
        .epochs
        .iter()
        .map(|m| [m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.lr])
        .collect();
    (epochs, info.test_accuracy)
}

#[test]
fn a_run_is_never_clobbered() {
    let data = dataset();
    let run = data.path().join("run");
    ok(trainer(&fit_args(
        data.path(),
        &["--epochs", "1", "--out", path(&run)],
    )));
    let before = std::fs::read(run.join("model.mpk")).unwrap();
    let again = trainer(&fit_args(
        data.path(),
        &["--epochs", "1", "--seed", "7", "--out", path(&run)],
    ));
    refused(&again, 2, "holds a finished mlp run (1 of 1 epochs)");
    assert!(text(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read(run.join("model.mpk")).unwrap(), before);

    let forced = ok(trainer(&fit_args(
        data.path(),
        &[
            "--epochs",
            "1",
            "--seed",
            "7",
            "--out",
            path(&run),
            "--force",
        ],
    )));
    assert!(forced.contains("replacing the run"), "{forced}");
    assert_eq!(info(&run).seed, 7);
    assert_ne!(std::fs::read(run.join("model.mpk")).unwrap(), before);
    assert!(!run.join(".replaced").exists());

    // A replacement that saves nothing (it diverges before its first epoch) leaves the
    // old run as it was; `--force` deleted it before the new run had saved anything, and
    // left an empty directory (issue 34).
    let kept: Vec<(String, Vec<u8>)> = ["model.mpk", "run.json", "resume.state", "metrics.csv"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(run.join(f)).unwrap()))
        .collect();
    let diverged = trainer(&fit_args(
        data.path(),
        &[
            "--epochs",
            "1",
            "--lr",
            "1e30",
            "--out",
            path(&run),
            "--force",
        ],
    ));
    refused(&diverged, 1, "training diverged");
    for (file, bytes) in &kept {
        assert_eq!(&std::fs::read(run.join(file)).unwrap(), bytes, "{file}");
    }
    assert!(!run.join(".replaced").exists());
    assert_eq!(info(&run).seed, 7);

    // A replacement killed before its first epoch was saved left the old run set aside:
    // the next `fit` into the directory puts it back (and refuses to clobber it).
    let aside = run.join(".replaced");
    std::fs::create_dir(&aside).unwrap();
    for (file, _) in &kept {
        std::fs::rename(run.join(file), aside.join(file)).unwrap();
    }
    let again = trainer(&fit_args(
        data.path(),
        &["--epochs", "1", "--out", path(&run)],
    ));
    refused(&again, 2, "holds a finished mlp run");
    for (file, bytes) in &kept {
        assert_eq!(&std::fs::read(run.join(file)).unwrap(), bytes, "{file}");
    }
    assert!(!aside.exists());

    // Without --out, a repeated command makes a new directory next to the first.
    let cwd = tempfile::tempdir().unwrap();
    let first = ok(trainer_in(
        Some(cwd.path()),
        &fit_args(data.path(), &["--epochs", "1"]),
    ));
    assert!(first.contains("run directory runs/mlp"), "{first}");
    let second = ok(trainer_in(
        Some(cwd.path()),
        &fit_args(data.path(), &["--epochs", "1"]),
    ));
    assert!(
        second.contains("runs/mlp holds an earlier run; this run goes to runs/mlp-2"),
        "{second}"
    );
    for dir in ["runs/mlp", "runs/mlp-2"] {
        assert_eq!(info(&cwd.path().join(dir)).epochs.len(), 1, "{dir}");
    }

    // A directory another fit is writing (it holds the lock; its first epoch is not saved
    // yet) is neither chosen, nor written with --out, nor resumed.
    let busy = cwd.path().join("runs/mlp-3");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join(".tmp-in-flight"), b"another run's temporary file").unwrap();
    let lock = std::fs::File::create(busy.join(".fit.lock")).unwrap();
    lock.lock().unwrap();
    let third = ok(trainer_in(
        Some(cwd.path()),
        &fit_args(data.path(), &["--epochs", "1"]),
    ));
    assert!(third.contains("this run goes to runs/mlp-4"), "{third}");
    let into_busy = trainer(&fit_args(
        data.path(),
        &["--epochs", "1", "--out", path(&busy)],
    ));
    refused(
        &into_busy,
        1,
        "another `trainer fit` is writing this run directory",
    );
    let resumed = trainer(&["fit", "--resume", path(&busy)]);
    refused(
        &resumed,
        1,
        "another `trainer fit` is writing this run directory",
    );
    assert!(!busy.join("run.json").exists());
    assert!(busy.join(".tmp-in-flight").exists());
    drop(lock);
}

#[test]
fn a_run_is_extended_to_what_a_longer_run_gives() {
    let data = dataset();
    let long = data.path().join("long");
    ok(trainer(&fit_args(
        data.path(),
        &["--epochs", "3", "--out", path(&long)],
    )));

    let short = data.path().join("short");
    ok(trainer(&fit_args(
        data.path(),
        &["--epochs", "2", "--out", path(&short)],
    )));
    // Nothing left to train: said, and nothing rewritten.
    let model = std::fs::read(short.join("model.mpk")).unwrap();
    let nothing = ok(trainer(&["fit", "--resume", path(&short)]));
    assert!(
        nothing.contains("nothing to train") && nothing.contains("--epochs N"),
        "{nothing}"
    );
    assert_eq!(std::fs::read(short.join("model.mpk")).unwrap(), model);

    // The data moved: the same data elsewhere is accepted (checked by checksum), the run's
    // own options may be repeated, and --epochs extends it.
    let moved = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(data.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), moved.path().join(entry.file_name())).unwrap();
        }
    }
    let extended = ok(trainer(&[
        "fit",
        "--resume",
        path(&short),
        "--epochs",
        "3",
        "--model",
        "mlp",
        "--lr",
        "1e-4",
        "--data",
        path(moved.path()),
    ]));
    assert!(
        extended.contains("extending the run from 2 to 3 epochs"),
        "{extended}"
    );
    // The timing counts the one epoch that ran, not the three the run has.
    assert!(
        extended.contains("trained 1 epoch (epoch 3) in"),
        "{extended}"
    );
    assert_eq!(figures(&short), figures(&long), "extended != longer run");
    let record = info(&short);
    assert_eq!(record.recipe.epochs, 3);
    assert_eq!(record.resumed.len(), 1, "{:?}", record.resumed);
    assert!(record.resumed[0].contains("(after epoch 2)"));
    assert_eq!(record.resumed_after(), [2]);
    // Each epoch records the schedule it followed (curves.png draws the rates from it).
    let spans: Vec<Option<usize>> = record.epochs.iter().map(|m| m.schedule_epochs).collect();
    assert_eq!(spans, [Some(2), Some(2), Some(3)]);
    assert!(!short.join(".fit.lock").exists(), "the lock file stays");

    // What would make it another run is refused, named as written; so is shrinking it.
    refused(
        &trainer(&["fit", "--resume", path(&short), "--lr", "1e-3"]),
        2,
        "--lr 1e-3: --resume continues a run with its own options",
    );
    refused(
        &trainer(&["fit", "--resume", path(&short), "--epochs", "2"]),
        2,
        "--epochs 2: the run has already trained 3 epochs",
    );
    // Other data under the old name is found by its checksum.
    let images = moved.path().join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&images).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&images, bytes).unwrap();
    refused(
        &trainer(&[
            "fit",
            "--resume",
            path(&short),
            "--epochs",
            "4",
            "--data",
            path(moved.path()),
        ]),
        1,
        "not the data the run trained on",
    );
}

#[test]
fn train_limit_counts_training_images_and_validation_stays_put() {
    let data = dataset();
    let run = data.path().join("run");
    let output = ok(trainer(&fit_args(
        data.path(),
        &["--epochs", "1", "--train-limit", "30", "--out", path(&run)],
    )));
    assert!(output.contains("30 train, 20 validation"), "{output}");
    let record = info(&run);
    assert_eq!((record.train_images, record.val_images), (30, 20));
    // A limit above what there is takes all of it; it never eats the validation split.
    let all = data.path().join("all");
    ok(trainer(&fit_args(
        data.path(),
        &["--epochs", "1", "--train-limit", "500", "--out", path(&all)],
    )));
    let record = info(&all);
    assert_eq!((record.train_images, record.val_images), (60, 20));
}

#[test]
fn the_best_epoch_is_kept_and_patience_stops_early() {
    let data = dataset();
    let run = data.path().join("run");
    // A learning rate too small to change any prediction: validation accuracy never
    // improves on epoch 1's, so --patience 2 stops after epoch 3 of 8.
    let output = ok(trainer(&fit_args(
        data.path(),
        &[
            "--epochs",
            "8",
            "--lr",
            "1e-12",
            "--patience",
            "2",
            "--out",
            path(&run),
        ],
    )));
    assert!(output.contains("stopped early"), "{output}");
    let record = info(&run);
    assert_eq!(record.epochs.len(), 3);
    let best = record.best.as_ref().expect("a best epoch");
    assert_eq!(best.epoch, 1);
    assert!(run.join("best.mpk").is_file());
    let nothing = ok(trainer(&["fit", "--resume", path(&run)]));
    assert!(nothing.contains("stopped early after epoch 3"), "{nothing}");

    // `eval --best` uses best.mpk, and says so.
    let best_eval = ok(trainer(&[
        "eval",
        "--checkpoint",
        path(&run),
        "--best",
        "--data",
        path(data.path()),
    ]));
    assert!(best_eval.contains("best epoch 1 of 3"), "{best_eval}");
    let grid = data.path().join("best.png");
    let show_best = [
        "show",
        "--model",
        path(&run),
        "--best",
        "--data",
        path(data.path()),
        "--out",
        path(&grid),
    ];
    ok(trainer(&show_best));
    assert!(grid.is_file());
    // A damaged best.mpk is found by its checksum.
    std::fs::write(run.join("best.mpk"), b"not weights").unwrap();
    refused(
        &trainer(&["eval", "--checkpoint", path(&run), "--best"]),
        1,
        "best.mpk: checksum mismatch",
    );
    refused(&trainer(&show_best), 1, "best.mpk: checksum mismatch");
}

#[test]
fn a_divergence_before_the_first_epoch_leaves_nothing_behind() {
    let data = dataset();
    let run = data.path().join("new/run");
    let output = trainer(&fit_args(
        data.path(),
        &["--epochs", "2", "--lr", "1e30", "--out", path(&run)],
    ));
    refused(&output, 1, "training diverged");
    assert!(
        text(&output.stderr).contains("nothing was saved"),
        "{}",
        text(&output.stderr)
    );
    assert!(!data.path().join("new").exists(), "an empty run directory");
}

#[test]
fn weights_that_stop_being_finite_end_the_run_as_a_divergence() {
    // One batch an epoch (60 images, batch 600): its loss is computed before its step and
    // is finite; the step (learning rate 1e300) leaves weights that are not, which only
    // the validation loss shows. The epoch was saved with `null` for NaN in run.json and
    // exported, and the run exited 0 (issue 34).
    let data = dataset();
    let run = data.path().join("new/run");
    let export = data.path().join("model.onnx");
    let output = trainer(&[
        "fit",
        "--model",
        "mlp",
        "--batch",
        "600",
        "--val",
        "20",
        "--no-progress",
        "--data",
        path(data.path()),
        "--epochs",
        "1",
        "--lr",
        "1e300",
        "--out",
        path(&run),
        "--export",
        path(&export),
    ]);
    refused(
        &output,
        1,
        "training diverged: the validation loss became NaN at epoch 1",
    );
    assert!(!data.path().join("new").exists(), "an empty run directory");
    assert!(!export.exists(), "an export of a NaN model");
}

#[test]
fn a_relative_export_is_recorded_as_an_absolute_path() {
    // Stored as typed, a resume from another directory refused it or wrote elsewhere.
    let data = dataset();
    let run = data.path().join("run");
    ok(trainer_in(
        Some(data.path()),
        &fit_args(
            data.path(),
            &[
                "--epochs",
                "1",
                "--out",
                path(&run),
                "--export",
                "rel.onnx",
                "--export-q8",
                "rel.q8",
            ],
        ),
    ));
    let options = info(&run).options.expect("run.json records the options");
    let here = std::env::current_dir().unwrap();
    for (recorded, name) in [(options.export, "rel.onnx"), (options.export_q8, "rel.q8")] {
        let recorded = recorded.expect("recorded");
        assert!(recorded.is_absolute(), "{}", recorded.display());
        assert_eq!(recorded.file_name().unwrap(), name);
        assert!(recorded.exists(), "{}", recorded.display());
        assert!(
            !here.join(name).exists(),
            "written relative to the test's directory"
        );
    }
}

#[test]
fn fit_without_validation_images_is_refused() {
    // `--val 0` was accepted: every epoch's validation accuracy was 0, so `--patience`
    // stopped at once and the exports were epoch 1's.
    let data = dataset();
    let run = data.path().join("run");
    let mut args = fit_args(data.path(), &["--epochs", "2", "--out", path(&run)]);
    let at = args.iter().position(|a| *a == "--val").unwrap();
    args[at + 1] = "0";
    refused(&trainer(&args), 2, "--val 0 leaves no validation images");
    assert!(!run.exists());
    // And `--test-limit 0`, which recorded a test accuracy of 0.
    let output = trainer(&fit_args(
        data.path(),
        &["--epochs", "1", "--test-limit", "0", "--out", path(&run)],
    ));
    refused(&output, 2, "--test-limit 0 tests no image");
    assert!(!run.exists());
}

#[test]
fn eval_json_logits_and_output_paths() {
    let data = dataset();
    let run: PathBuf = data.path().join("run");
    ok(trainer(&fit_args(
        data.path(),
        &["--epochs", "1", "--out", path(&run)],
    )));
    let json = ok(trainer(&[
        "eval",
        "--checkpoint",
        path(&run),
        "--data",
        path(data.path()),
        "--json",
    ]));
    let document: serde_json::Value = serde_json::from_str(&json).expect("one JSON document");
    assert_eq!(document["images"], 20);
    let correct = document["correct"].as_u64().unwrap();
    assert_eq!(
        document["accuracy"].as_f64().unwrap(),
        correct as f64 / 20.0
    );
    let matrix: Vec<Vec<u64>> =
        serde_json::from_value(document["confusion_matrix"].clone()).unwrap();
    assert_eq!(matrix.iter().flatten().sum::<u64>(), 20);
    assert_eq!(
        (0..10).map(|c| matrix[c][c]).sum::<u64>(),
        correct,
        "the diagonal is the correct count"
    );
    assert_eq!(document["classes"].as_array().unwrap().len(), 10);
    assert_eq!(document["classes"][9]["class"], "Ankle boot");
    assert!(document["images_per_second"].as_f64().unwrap() > 0.0);

    // The table names the classes in full.
    let table = ok(trainer(&[
        "eval",
        "--checkpoint",
        path(&run),
        "--data",
        path(data.path()),
    ]));
    assert!(
        table.contains(" Ankle boot |") && table.contains("T-shirt/top |"),
        "{table}"
    );

    // Logits as plain decimals that read back as f32; a missing directory is refused
    // before any work, as for every output file.
    let logits = data.path().join("logits.csv");
    ok(trainer(&[
        "eval",
        "--checkpoint",
        path(&run),
        "--data",
        path(data.path()),
        "--logits",
        path(&logits),
    ]));
    let csv = std::fs::read_to_string(&logits).unwrap();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row.len(), 11);
    for value in &row[1..] {
        assert!(!value.contains('e'), "{value}");
        value.parse::<f32>().expect("a number");
    }
    refused(
        &trainer(&[
            "eval",
            "--checkpoint",
            path(&run),
            "--logits",
            path(&data.path().join("no/dir/l.csv")),
        ]),
        2,
        "does not exist",
    );
    // `export` without an output names both choices, on one line.
    refused(
        &trainer(&["export", "--checkpoint", path(&run)]),
        2,
        "--onnx <FILE>|--q8 <FILE>",
    );
    // `--from-onnx` quantizes an exported file again, here with 7-bit weights; it writes a
    // blob only, and refuses a file that is not ONNX by its name, writing nothing.
    let (onnx, blob) = (data.path().join("run.onnx"), data.path().join("run7.q8"));
    ok(trainer(&[
        "export",
        "--checkpoint",
        path(&run),
        "--data",
        path(data.path()),
        "--onnx",
        path(&onnx),
    ]));
    let said = ok(trainer(&[
        "export",
        "--from-onnx",
        path(&onnx),
        "--data",
        path(data.path()),
        "--q8",
        path(&blob),
        "--weight-bits",
        "7",
    ]));
    assert!(said.contains("7-bit weights"), "{said}");
    let bytes = std::fs::read(&blob).unwrap();
    let plan = fmnist_runtime::Plan::new(&bytes).unwrap();
    let largest = plan
        .model()
        .layers
        .iter()
        .filter_map(fmnist_runtime::blob::Layer::weights)
        .flatten()
        .map(|&w| (w as i8).unsigned_abs())
        .max();
    assert_eq!(largest, Some(64), "the mlp's linear layers, 7-bit");
    refused(
        &trainer(&["export", "--from-onnx", path(&onnx), "--onnx", path(&blob)]),
        2,
        "cannot be used with",
    );
    let not_onnx = data.path().join("not.onnx");
    std::fs::write(&not_onnx, b"\xff\xff not a protobuf").unwrap();
    let out = data.path().join("out.q8");
    refused(
        &trainer(&[
            "export",
            "--from-onnx",
            path(&not_onnx),
            "--data",
            path(data.path()),
            "--q8",
            path(&out),
        ]),
        1,
        "not.onnx",
    );
    assert!(!out.exists());
}

/// `--teacher`: a run distils from an ONNX file, records its checksum and settings, is
/// extended without naming the teacher again, and refuses a changed teacher file, a
/// teacher that is not an exported model, settings out of range and distillation options
/// without a teacher.
#[test]
fn a_run_distils_from_a_teacher_file_it_records_and_checks() {
    let data = dataset();
    // A one-epoch run `name` with `seed`, exported to `name.onnx`.
    let exported = |name: &str, seed: &str| {
        let file = data.path().join(format!("{name}.onnx"));
        let (dir, seed_option) = (data.path().join(name), ["--seed", seed]);
        let mut args = vec![
            "--epochs",
            "1",
            "--out",
            path(&dir),
            "--export",
            path(&file),
        ];
        args.extend_from_slice(&seed_option);
        ok(trainer(&fit_args(data.path(), &args)));
        file
    };
    let teacher = exported("teacher", "42");
    let sha = fmnist_trainer::util::sha256::sha256_hex(&std::fs::read(&teacher).unwrap());
    let run = data.path().join("student");
    let student = |extra: &[&str]| {
        let mut args = vec!["--out", path(&run), "--teacher", path(&teacher)];
        args.extend_from_slice(extra);
        trainer(&fit_args(data.path(), &args))
    };
    let said = ok(student(&["--epochs", "1", "--distill-temperature", "2"]));
    assert!(
        said.contains(&format!("teacher: {}", teacher.display())),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "distilled from teacher {} (weight 0.9, temperature 2)",
            &sha[..12]
        )),
        "{said}"
    );
    let distill = info(&run)
        .recipe
        .distill
        .expect("the recipe records the teacher");
    assert_eq!(
        (
            distill.teacher_sha256.as_str(),
            distill.weight,
            distill.temperature
        ),
        (sha.as_str(), 0.9, 2.0)
    );

    // Extended without --teacher: the run's own file is used.
    let resume = |epochs: &str| trainer(&["fit", "--resume", path(&run), "--epochs", epochs]);
    ok(resume("2"));
    assert_eq!(info(&run).epochs.len(), 2);
    // A teacher named relative to where a run started is found when it is resumed from
    // another working directory.
    let relative = data.path().join("relative");
    ok(trainer_in(
        Some(data.path()),
        &fit_args(
            data.path(),
            &[
                "--epochs",
                "1",
                "--out",
                "relative",
                "--teacher",
                "teacher.onnx",
            ],
        ),
    ));
    let elsewhere = tempfile::tempdir().unwrap();
    ok(trainer_in(
        Some(elsewhere.path()),
        &["fit", "--resume", path(&relative), "--epochs", "2"],
    ));
    assert_eq!(info(&relative).epochs.len(), 2);
    // Another temperature on resume is another run.
    let changed = trainer(&[
        "fit",
        "--resume",
        path(&run),
        "--epochs",
        "3",
        "--teacher",
        path(&teacher),
        "--distill-temperature",
        "3",
    ]);
    refused(&changed, 2, "--distill-temperature");
    // A teacher file that changed since (another model's) is refused, and nothing is
    // trained.
    std::fs::copy(exported("other", "7"), &teacher).unwrap();
    let changed = resume("3");
    assert_eq!(changed.status.code(), Some(1), "{}", text(&changed.stderr));
    assert!(
        text(&changed.stderr).contains("not the teacher the run distils from"),
        "{}",
        text(&changed.stderr)
    );
    assert_eq!(info(&run).epochs.len(), 2);

    let fresh = data.path().join("fresh");
    let fresh_args = |extra: &[&str]| {
        let mut args = vec!["--epochs", "1", "--out", path(&fresh)];
        args.extend_from_slice(extra);
        trainer(&fit_args(data.path(), &args))
    };
    let csv = data.path().join("train.csv");
    std::fs::write(&csv, "label,pixel1\n").unwrap();
    let not_onnx = fresh_args(&["--teacher", path(&csv)]);
    assert_eq!(not_onnx.status.code(), Some(1));
    assert!(
        text(&not_onnx.stderr).contains("train.csv: not a teacher"),
        "{}",
        text(&not_onnx.stderr)
    );
    refused(
        &fresh_args(&["--teacher", path(&teacher), "--distill-weight", "1.5"]),
        2,
        "--distill-weight must be in (0, 1]",
    );
    refused(&fresh_args(&["--distill-weight", "0.5"]), 2, "--teacher");
    assert!(!fresh.exists());
}
