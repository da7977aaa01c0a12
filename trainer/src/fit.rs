//! `trainer fit` as a library: the options a run starts with ([`FitOptions`], kept in
//! `run.json` so that `trainer fit --resume` continues with exactly them), the data they
//! select, the training, the final test and the exports.

use std::path::{Path, PathBuf};

use anyhow::bail;
use burn::tensor::backend::AutodiffBackend;
use fmnist_runtime::dataset::{self, LabeledImages, Split};

use crate::config::options::FitOptions;
use crate::distill::Teacher;
use crate::export::{self, Exports};
use crate::model::{summary_text, Classifier};
use crate::run::{self, ResumeState, RunInfo, BEST_FILE, MODEL_FILE, RESUME_FILE, RUN_FILE};
use crate::train::{self, Output, Splits};
use crate::usage::{self, UsageError};
use crate::util::files;

/// Whether `dir` holds a run: any of `run.json`, `model.mpk`, `resume.state`.
pub fn holds_run(dir: &Path) -> bool {
    [RUN_FILE, MODEL_FILE, RESUME_FILE]
        .iter()
        .any(|file| std::fs::symlink_metadata(dir.join(file)).is_ok())
}

/// The directory of a new run. `--out` that holds a run is refused unless `force` (the old
/// run's files are then removed when the new run is ready to train); without `--out`, the
/// first of `runs/<model>`, `runs/<model>-2`, ... that holds no run, saying so when it is
/// not the first.
pub fn new_run_dir(options: &FitOptions, force: bool) -> anyhow::Result<PathBuf> {
    match &options.out {
        Some(dir) => {
            // A run set aside by a replacing `fit --force` that was killed before its
            // first epoch was saved: the directory holds it again.
            if !holds_run(dir) {
                files::put_back(dir)?;
            }
            if holds_run(dir) && !force {
                // Killed during its first epoch's saves: nothing there can be resumed.
                if std::fs::symlink_metadata(dir.join(RESUME_FILE)).is_err() {
                    return Err(UsageError::UnsavedRun(dir.clone()).into());
                }
                return Err(UsageError::RunExists {
                    dir: dir.clone(),
                    what: describe_run(dir),
                }
                .into());
            }
            Ok(dir.clone())
        }
        None => {
            let base = options.out_dir();
            let dir = (1..)
                .map(|n| {
                    if n == 1 {
                        base.clone()
                    } else {
                        PathBuf::from(format!("{}-{n}", base.display()))
                    }
                })
                .find(|dir| !holds_run(dir) && !files::run_locked(dir))
                .unwrap_or(base.clone());
            if dir != base {
                crate::say!(
                    "{} holds an earlier run; this run goes to {}",
                    base.display(),
                    dir.display()
                );
            }
            Ok(dir)
        }
    }
}

/// "a finished run (5 of 5 epochs)", "an unfinished run (2 of 5 epochs)", or "the files of
/// a run" when its `run.json` cannot be read.
fn describe_run(dir: &Path) -> String {
    match run::load_info(dir) {
        Ok(info) if info.finished() => format!(
            "a finished {} run ({} of {} epochs)",
            info.model.name(),
            info.epochs.len(),
            info.recipe.epochs
        ),
        Ok(info) => format!(
            "an unfinished {} run ({} of {} epochs)",
            info.model.name(),
            info.epochs.len(),
            info.recipe.epochs
        ),
        Err(_) => "the files of a run".into(),
    }
}

/// A run ready to train: its description, data and outputs.
pub struct Prepared {
    /// The run description (with the epochs so far, when resumed).
    pub info: RunInfo,
    /// The state to continue from, when resumed.
    pub state: Option<ResumeState>,
    /// Training and validation images.
    pub splits: Splits,
    /// Test images, evaluated at the end.
    pub test: LabeledImages,
    /// Run directory and progress bars.
    pub output: Output,
    /// Files to export to at the end.
    pub exports: Exports,
    /// The teacher to distil from, if the recipe distils.
    pub teacher: Option<Teacher>,
    /// The directories [`prepare`] created for the run (removed again when the run ends
    /// before its first epoch is saved).
    pub created: Vec<PathBuf>,
}

/// Checks `options` (usage errors before any data is read), loads the data and describes
/// the run: a fresh one started by `command` in `options.out` (which [`new_run_dir`] chose;
/// with `force`, the files of a run already there are removed once the data is loaded), or
/// the continuation of `resume`. Prints the model, recipe and data.
pub fn prepare(
    options: &FitOptions,
    command: String,
    progress: bool,
    resume: Option<(RunInfo, ResumeState)>,
    force: bool,
) -> anyhow::Result<Prepared> {
    usage::check_device(options.device)?;
    #[cfg(feature = "cuda")]
    if options.device == crate::backend::DeviceKind::Cuda {
        let count = crate::gpu::preflight()?;
        crate::say!("CUDA: {count} device(s)");
    }
    let recipe = options
        .recipe
        .apply(options.model)
        .map_err(UsageError::from)?;
    // Refuse a path we cannot write before an hour of training, not after: each is proven
    // writable by creating and removing a probe file.
    for path in options.export.iter().chain(&options.export_q8) {
        usage::check_writable(path)?;
    }
    let out = options.out_dir();
    // An export onto the run's own files, its teacher, or onto the other export.
    let outputs: Vec<&Path> = options
        .export
        .iter()
        .chain(&options.export_q8)
        .map(PathBuf::as_path)
        .collect();
    let teacher: Vec<&Path> = options.teacher.iter().map(PathBuf::as_path).collect();
    files::check_outputs(&outputs, &teacher, Some((&out, &crate::run::RUN_FILES[..])))?;
    let created = files::probe_dir(&out)?;
    if let Err(error) = files::lock_run(&out) {
        // Another run's lock file is not ours to remove.
        files::remove_created(&created);
        return Err(error);
    }
    crate::run::report_temporaries(&out)?;
    let fresh = resume.is_none();
    let prepared = prepare_in(options, command, progress, resume, recipe, out.clone());
    match prepared {
        Ok(mut prepared) => {
            if fresh && force && holds_run(&out) {
                // Set aside, not removed: the old run comes back if the new one saves
                // nothing (a divergence, an error, Ctrl-C before the first epoch).
                crate::say!(
                    "replacing the run in {} (--force) once this run's first epoch is saved",
                    out.display()
                );
                files::set_aside(&out, &run::RUN_FILES)?;
            }
            prepared.created = created;
            Ok(prepared)
        }
        Err(error) => {
            // Nothing was written: leave no empty run directory behind.
            if !holds_run(&out) {
                files::remove_unsaved_run(&out, &created);
            }
            Err(error)
        }
    }
}

fn prepare_in(
    options: &FitOptions,
    command: String,
    progress: bool,
    resume: Option<(RunInfo, ResumeState)>,
    recipe: crate::config::recipe::Recipe,
    out: PathBuf,
) -> anyhow::Result<Prepared> {
    // Whether it is the recipe's teacher is checked where training starts
    // (`train::fit`/`resume`), for every caller.
    let teacher = options.teacher.as_deref().map(Teacher::load).transpose()?;
    if options.val == 0 {
        return Err(UsageError::NoValidationToJudge(options.val).into());
    }
    if options.test_limit == Some(0) {
        return Err(UsageError::NoTestImages.into());
    }
    let (train_split, val_split, test) = load_data(options)?;
    if train_split.is_empty() {
        return Err(UsageError::NoTrainingImages(options.val).into());
    }
    let data_sha256 = run::data_sha256(&train_split, &val_split);
    let (mut info, state) = match resume {
        Some((info, state)) => (info, Some(state)),
        None => {
            let mut recipe = recipe;
            recipe.distill = teacher
                .as_ref()
                .map(|teacher| options.recipe.distillation(teacher.sha256.clone()));
            let mut info = RunInfo::new(
                options.model,
                recipe,
                options.seed,
                options.device.backend_name(),
                command,
            );
            info.options = Some(options.clone());
            (info, None)
        }
    };
    check_same_data(&info, options, (&train_split, &val_split), &data_sha256)?;
    info.data_sha256 = Some(data_sha256);
    info.train_images = train_split.len();
    info.val_images = val_split.len();
    announce(
        &info,
        options,
        teacher.as_ref(),
        (&train_split, &val_split, &test),
        &out,
    );
    Ok(Prepared {
        info,
        state,
        splits: Splits {
            train: train_split,
            val: val_split,
        },
        test,
        output: Output { dir: out, progress },
        exports: Exports {
            onnx: options.export.clone(),
            q8: options.export_q8.clone(),
            weight_bits: options.weight_bits,
        },
        teacher,
        created: Vec::new(),
    })
}

/// A resumed run's data must be the data it trained on: as many images (a fresh run
/// records 0 + 0) and the same checksum.
fn check_same_data(
    info: &RunInfo,
    options: &FitOptions,
    (train_split, val_split): (&LabeledImages, &LabeledImages),
    data_sha256: &str,
) -> anyhow::Result<()> {
    if (info.train_images, info.val_images) != (0, 0)
        && (info.train_images, info.val_images) != (train_split.len(), val_split.len())
    {
        bail!(
            "the run trained on {} + {} images, the data in {} now gives {} + {}",
            info.train_images,
            info.val_images,
            options.data.display(),
            train_split.len(),
            val_split.len()
        );
    }
    if info
        .data_sha256
        .as_ref()
        .is_some_and(|sha| sha != data_sha256)
    {
        bail!(
            "{}: not the data the run trained on (the checksum of its {} + {} images differs \
             from the one {RUN_FILE} records)",
            options.data.display(),
            train_split.len(),
            val_split.len()
        );
    }
    Ok(())
}

/// Prints what is about to be trained: the model, the recipe, the teacher, the data.
fn announce(
    info: &RunInfo,
    options: &FitOptions,
    teacher: Option<&Teacher>,
    (train_split, val_split, test): (&LabeledImages, &LabeledImages, &LabeledImages),
    out: &Path,
) {
    // The run's own model kind (a resumed run's options are checked to name it too).
    crate::say!("{}", summary_text(info.model));
    crate::say!("recipe: {}", info.recipe);
    if let Some(teacher) = teacher {
        crate::say!(
            "teacher: {} ({}, SHA-256 {})",
            teacher.path.display(),
            teacher.describe(),
            teacher.sha256
        );
    }
    crate::say!(
        "data: {} train, {} validation (the last {} of the training file{}), {} test images \
         from {}; backend {}; run directory {}",
        train_split.len(),
        val_split.len(),
        val_split.len(),
        match options.train_limit {
            Some(limit) => format!("; --train-limit {limit} takes the first {limit} of the rest"),
            None => String::new(),
        },
        test.len(),
        options.data.display(),
        info.backend,
        out.display()
    );
}

/// Trains (or continues) a prepared run on backend `B`, tests it, records the test
/// accuracy in `run.json`, prints the results and writes the exports. A run stopped early
/// by `--patience` is tested and exported with its best epoch's weights.
pub fn run<B: AutodiffBackend>(prepared: &mut Prepared, device: &B::Device) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let before = prepared.info.epochs.len();
    let model = train_prepared::<B>(prepared, device)?;
    let info = &mut prepared.info;
    let seconds = started.elapsed().as_secs_f64();
    let ran = info.epochs.len() - before;
    let model = burn::module::AutodiffModule::valid(&model);
    let model = if info.stopped_early() {
        let best = info.best.as_ref().map_or(0, |b| b.epoch);
        crate::say!(
            "stopped early: validation accuracy did not improve for {} epochs; testing and \
             exporting epoch {best}'s weights ({BEST_FILE})",
            info.epochs_since_best()
        );
        run::load_best::<B::InnerBackend>(&prepared.output.dir, info, device)?
    } else {
        model
    };
    let evaluation = crate::eval::evaluate(&model, &prepared.test, device);
    info.test_accuracy = Some(evaluation.confusion.accuracy());
    run::save_info(&prepared.output.dir, info)?;
    let dir = &prepared.output.dir;
    crate::plot::run_curves(dir, info);
    let (first, last) = (before + 1, info.epochs.len());
    if ran > 0 {
        crate::say!(
            "trained {} in {} ({}/epoch)",
            match ran {
                1 => format!("1 epoch (epoch {last})"),
                _ if before == 0 => format!("{ran} epochs"),
                _ => format!("{ran} epochs ({first}-{last})"),
            },
            crate::util::seconds_text(seconds),
            crate::util::seconds_text(seconds / ran as f64)
        );
    }
    crate::say!(
        "test: loss {:.4}\n{}",
        evaluation.loss,
        evaluation.confusion
    );
    if let Some(line) = crate::eval::confusions_line(&evaluation.confusion) {
        crate::say!("{line}");
    }
    export::write_all(
        &model,
        info,
        &prepared.exports,
        &prepared.splits.train,
        &prepared.splits.val,
        &prepared.test,
        device,
    )?;
    crate::say!("run directory: {}", prepared.output.dir.display());
    Ok(())
}

/// Trains or continues `prepared`'s run; a failure before any epoch was saved puts back
/// the run it was to replace and leaves no empty run directory.
fn train_prepared<B: AutodiffBackend>(
    prepared: &mut Prepared,
    device: &B::Device,
) -> anyhow::Result<Classifier<B>> {
    let info = &mut prepared.info;
    let trained = match &prepared.state {
        None => train::fit::<B>(
            info,
            &prepared.splits,
            &prepared.output,
            prepared.teacher.as_ref(),
            device,
        ),
        Some(state) => train::resume::<B>(
            info,
            state,
            &prepared.splits,
            &prepared.output,
            prepared.teacher.as_ref(),
            device,
        ),
    };
    match trained {
        Ok(model) => Ok(model),
        Err(error) => {
            if info.epochs.is_empty() {
                // No epoch was saved: the run this one was to replace comes back, and no
                // empty run directory is left behind.
                files::put_back(&prepared.output.dir)?;
                if !holds_run(&prepared.output.dir) {
                    files::remove_unsaved_run(&prepared.output.dir, &prepared.created);
                }
            }
            Err(error)
        }
    }
}

/// The training split (the first `--train-limit` images before the validation split), the
/// validation split (the last `--val` images of the training file, whatever the limit) and
/// the test images (the first `--test-limit`).
fn load_data(
    options: &FitOptions,
) -> anyhow::Result<(LabeledImages, LabeledImages, LabeledImages)> {
    let (train, val) = dataset::load_split(&options.data, Split::Train)?.split_last(options.val);
    let train = match options.train_limit {
        Some(limit) => train.truncated(limit),
        None => train,
    };
    let test = dataset::load_split(&options.data, Split::Test)?;
    let test = match options.test_limit {
        Some(limit) => test.truncated(limit),
        None => test,
    };
    Ok((train, val, test))
}
