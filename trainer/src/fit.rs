//! `trainer fit` as a library: the options a run starts with ([`FitOptions`], kept in
//! `run.json` so that `trainer fit --resume` continues with exactly them), the data they
//! select, the training, the final test and the exports.

use std::path::{Path, PathBuf};

use anyhow::bail;
use burn::tensor::backend::AutodiffBackend;
use fmnist_runtime::dataset::{self, LabeledImages, Split, DEFAULT_DATA_DIR};

use crate::backend::DeviceKind;
use crate::checkpoint::{self, ResumeState, RunInfo, BEST_FILE, MODEL_FILE, RESUME_FILE, RUN_FILE};
use crate::distill::Teacher;
use crate::export::{self, Exports};
use crate::fsutil;
use crate::model::{summary_text, ModelKind};
use crate::recipe::RecipeOverrides;
use crate::train::{self, Output, Splits};
use crate::usage::{self, UsageError};

/// The options of `trainer fit`, as given on the command line and as `run.json` keeps them
/// (where a field it does not know is refused, as in the rest of `run.json`).
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitOptions {
    /// The model kind.
    #[arg(long, value_enum, default_value = "edge")]
    pub model: ModelKind,
    /// The parts of the model kind's default recipe to replace.
    #[command(flatten)]
    pub recipe: RecipeOverrides,
    /// Seed of initialisation, shuffling and augmentation: same seed, backend and data give the same result.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Run directory (default: `runs/<model>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Directory with the IDX files (raw or .gz) or the competition's CSV files.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data: PathBuf,
    /// The last N training images are the validation split.
    #[arg(long, default_value_t = 1000)]
    pub val: usize,
    /// Train on only the first N training images; the validation split stays the last
    /// --val images of the training file. For quick runs.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Evaluate only the first N test images at the end.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Where to train.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// Also write the trained model as ONNX to this file (see `trainer export`).
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// Also write the trained model as an int8 blob for the runtime (see `trainer export`).
    #[arg(long, value_name = "FILE")]
    pub export_q8: Option<PathBuf>,
    /// The --export-q8 blob's weights: 8 bits, or 7, which CPUs with AVX2 and no VNNI
    /// multiply byte-wise, faster (as `trainer export --weight-bits`).
    #[arg(long, value_enum, default_value = "8", requires = "export_q8")]
    #[serde(default, skip_serializing_if = "export::WeightBits::is_eight")]
    pub weight_bits: export::WeightBits,
    /// Stop early when validation accuracy has not improved for N epochs; the test and the
    /// exports then use the best epoch's weights (kept as best.mpk in every run).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Distil from a teacher: an ONNX file or int8 blob written by `trainer export` (for
    /// example of a `wide` run; a blob runs about 4x faster, in the int8 engine), run beside
    /// the student on the same images; see --distill-weight and --distill-temperature. The
    /// run records the file's SHA-256 and a resumed run checks it.
    #[arg(long, value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<PathBuf>,
}

impl FitOptions {
    /// The run directory: `--out`, else `runs/<model>`.
    pub fn out_dir(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(self.model.name()))
    }

    /// Copies the option with clap id `id` from `from`; false for an id that is not one of
    /// these options.
    fn copy_option(&mut self, from: &FitOptions, id: &str) -> bool {
        let (to, r, f) = (&mut *self, &from.recipe, from);
        match id {
            "model" => to.model = f.model,
            "epochs" => to.recipe.epochs = r.epochs,
            "batch" => to.recipe.batch = r.batch,
            "lr" => to.recipe.lr = r.lr,
            "optimizer" => to.recipe.optimizer = r.optimizer,
            "weight_decay" => to.recipe.weight_decay = r.weight_decay,
            "schedule" => to.recipe.schedule = r.schedule,
            "label_smoothing" => to.recipe.label_smoothing = r.label_smoothing,
            "no_augment" => to.recipe.no_augment = r.no_augment,
            "augment" => to.recipe.augment = r.augment,
            "replicas" => to.recipe.replicas = r.replicas,
            "distill_weight" => to.recipe.distill_weight = r.distill_weight,
            "distill_temperature" => to.recipe.distill_temperature = r.distill_temperature,
            "teacher" => to.teacher.clone_from(&f.teacher),
            "seed" => to.seed = f.seed,
            "out" => to.out.clone_from(&f.out),
            "data" => to.data.clone_from(&f.data),
            "val" => to.val = f.val,
            "train_limit" => to.train_limit = f.train_limit,
            "test_limit" => to.test_limit = f.test_limit,
            "device" => to.device = f.device,
            "export" => to.export.clone_from(&f.export),
            "export_q8" => to.export_q8.clone_from(&f.export_q8),
            "weight_bits" => to.weight_bits = f.weight_bits,
            "patience" => to.patience = f.patience,
            _ => return false,
        }
        true
    }

    /// `self` with the teacher, data and export paths made absolute (against the working
    /// directory; a path that cannot be made so stays as given), so that a resume from
    /// another directory finds and writes the same files.
    pub fn with_absolute_paths(self) -> FitOptions {
        let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
        FitOptions {
            teacher: self.teacher.map(absolute),
            data: absolute(self.data),
            export: self.export.map(absolute),
            export_q8: self.export_q8.map(absolute),
            ..self
        }
    }

    /// Clears what [`CHANGEABLE_ON_RESUME`] lets change, and the run directory (a run may
    /// be moved): what is left is the same in every file of one run.
    pub fn forget_changeable(&mut self) {
        self.recipe.epochs = None;
        self.data = PathBuf::new();
        self.export = None;
        self.export_q8 = None;
        self.weight_bits = export::WeightBits::default();
        self.test_limit = None;
        self.patience = None;
        self.teacher = None;
        self.out = None;
    }

    /// Whether `self` and `other` train the same run: the same model, effective recipe
    /// (apart from its length), seed, data selection, device and run directory.
    fn same_run(&self, other: &FitOptions) -> bool {
        let recipe = |o: &FitOptions| {
            o.recipe.apply(o.model).ok().map(|mut r| {
                r.epochs = 0;
                r
            })
        };
        let dir = |o: &FitOptions| {
            let dir = o.out_dir();
            std::fs::canonicalize(&dir).unwrap_or(dir)
        };
        let distill = |o: &FitOptions| (o.teacher.is_some(), o.recipe.distill_settings());
        self.model == other.model
            && recipe(self) == recipe(other)
            && distill(self) == distill(other)
            && (self.seed, self.val, self.train_limit, self.device)
                == (other.seed, other.val, other.train_limit, other.device)
            && dir(self) == dir(other)
    }
}

/// The options `trainer fit --resume` lets change: the run's length (`--epochs`, to extend
/// it), where its data and teacher now lie (`--data`, `--teacher`, checked by checksum),
/// what happens at the end (`--export`, `--export-q8`, `--weight-bits`, `--test-limit`)
/// and `--patience`.
pub const CHANGEABLE_ON_RESUME: [&str; 8] = [
    "epochs",
    "data",
    "teacher",
    "export",
    "export_q8",
    "weight_bits",
    "test_limit",
    "patience",
];

/// The options to continue a run with: the run's own (`stored`), with the options given on
/// the command line (`given`, of which `ids` lists the clap ids and how each was written)
/// that [`CHANGEABLE_ON_RESUME`] allows. Any other option given must say what the run
/// already does, or it is refused, named as written.
pub fn merge_resume_options(
    stored: &FitOptions,
    given: &FitOptions,
    ids: &[(String, String)],
) -> Result<FitOptions, UsageError> {
    let mut merged = stored.clone();
    for (id, shown) in ids {
        let mut one = stored.clone();
        if !one.copy_option(given, id) {
            return Err(UsageError::ChangedOnResume(shown.clone()));
        }
        if CHANGEABLE_ON_RESUME.contains(&id.as_str()) {
            merged.copy_option(given, id);
        } else if !one.same_run(stored) {
            return Err(UsageError::ChangedOnResume(shown.clone()));
        }
    }
    Ok(merged)
}

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
                fsutil::put_back(dir)?;
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
                .find(|dir| !holds_run(dir) && !fsutil::run_locked(dir))
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
    match checkpoint::load_info(dir) {
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
    if options.device == DeviceKind::Cuda {
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
    fsutil::check_outputs(
        &outputs,
        &teacher,
        Some((&out, &crate::checkpoint::RUN_FILES[..])),
    )?;
    let created = fsutil::probe_dir(&out)?;
    if let Err(error) = fsutil::lock_run(&out) {
        // Another run's lock file is not ours to remove.
        fsutil::remove_created(&created);
        return Err(error);
    }
    report_temporaries(&out)?;
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
                fsutil::set_aside(&out, &checkpoint::RUN_FILES)?;
            }
            prepared.created = created;
            Ok(prepared)
        }
        Err(error) => {
            // Nothing was written: leave no empty run directory behind.
            if !holds_run(&out) {
                fsutil::remove_unsaved_run(&out, &created);
            }
            Err(error)
        }
    }
}

/// Removes the temporary files a killed run left in `dir`, saying so.
fn report_temporaries(dir: &Path) -> anyhow::Result<()> {
    let removed = fsutil::remove_temporaries(dir)?;
    if removed > 0 {
        crate::say!(
            "removed {removed} temporary file(s) a killed run left in {}",
            dir.display()
        );
    }
    Ok(())
}

fn prepare_in(
    options: &FitOptions,
    command: String,
    progress: bool,
    resume: Option<(RunInfo, ResumeState)>,
    recipe: crate::recipe::Recipe,
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
    let data_sha256 = checkpoint::data_sha256(&train_split, &val_split);
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
        .is_some_and(|sha| *sha != data_sha256)
    {
        bail!(
            "{}: not the data the run trained on (the checksum of its {} + {} images differs \
             from the one {RUN_FILE} records)",
            options.data.display(),
            train_split.len(),
            val_split.len()
        );
    }
    info.data_sha256 = Some(data_sha256);
    info.train_images = train_split.len();
    info.val_images = val_split.len();
    // The run's own model kind (a resumed run's options are checked to name it too).
    crate::say!("{}", summary_text(info.model));
    crate::say!("recipe: {}", info.recipe);
    if let Some(teacher) = &teacher {
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

/// Trains (or continues) a prepared run on backend `B`, tests it, records the test
/// accuracy in `run.json`, prints the results and writes the exports. A run stopped early
/// by `--patience` is tested and exported with its best epoch's weights.
pub fn run<B: AutodiffBackend>(prepared: &mut Prepared, device: &B::Device) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let info = &mut prepared.info;
    let before = info.epochs.len();
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
    let model = match trained {
        Ok(model) => model,
        Err(error) => {
            if info.epochs.is_empty() {
                // No epoch was saved: the run this one was to replace comes back, and no
                // empty run directory is left behind.
                fsutil::put_back(&prepared.output.dir)?;
                if !holds_run(&prepared.output.dir) {
                    fsutil::remove_unsaved_run(&prepared.output.dir, &prepared.created);
                }
            }
            return Err(error);
        }
    };
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
        checkpoint::load_best::<B::InnerBackend>(&prepared.output.dir, info, device)?
    } else {
        model
    };
    let evaluation = train::evaluate(&model, &prepared.test, device);
    info.test_accuracy = Some(evaluation.confusion.accuracy());
    checkpoint::save_info(&prepared.output.dir, info)?;
    let dir = &prepared.output.dir;
    crate::plot::run_curves(dir, info);
    let (first, last) = (before + 1, info.epochs.len());
    if ran > 0 {
        crate::say!(
            "trained {} in {seconds:.1} s ({:.1} s/epoch)",
            match ran {
                1 => format!("1 epoch (epoch {last})"),
                _ if before == 0 => format!("{ran} epochs"),
                _ => format!("{ran} epochs ({first}-{last})"),
            },
            seconds / ran as f64
        );
    }
    crate::say!(
        "test: loss {:.4}\n{}",
        evaluation.loss,
        evaluation.confusion
    );
    if let Some(line) = train::confusions_line(&evaluation.confusion) {
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

/// Opens the run in `dir` to continue it ([`crate::rundir::open_resume`]: every file
/// verified, what can be repaired from `resume.state` repaired) and says what was repaired.
pub fn open(dir: &Path) -> anyhow::Result<crate::rundir::Resume> {
    if dir.is_dir() {
        fsutil::lock_run(dir)?;
    }
    let resume = crate::rundir::open_resume(dir)?;
    report_temporaries(dir)?;
    for note in &resume.notes {
        crate::say!("{note}");
    }
    Ok(resume)
}

/// What `trainer fit --resume` does with an opened run and the options to continue it with
/// (see [`merge_resume_options`]).
pub enum Continuation {
    /// Train on: the options, the run description (its recipe extended to `--epochs`), the
    /// resume state.
    Train(Box<(FitOptions, RunInfo, ResumeState)>),
    /// Every epoch is done, or the run stopped early: nothing to train (said on stdout).
    Finished,
}

/// Continues the run `resume` with `options`: `--epochs` beyond the run's extends it
/// (schedules that depend on the run's length are stretched over the new length, and
/// the first new epoch's learning rate is printed); fewer epochs than it has trained are
/// refused; a run with nothing left to train is reported, not trained again. `command`
/// is recorded in the run's `resumed` list.
pub fn continue_run(
    resume: crate::rundir::Resume,
    options: FitOptions,
    command: &str,
    dir: &Path,
) -> anyhow::Result<Continuation> {
    let mut info = resume.info;
    let done = info.epochs.len();
    let epochs = options
        .recipe
        .apply(options.model)
        .map_err(UsageError::from)?
        .epochs;
    if epochs < done {
        return Err(UsageError::FewerEpochs { epochs, done }.into());
    }
    if epochs != info.recipe.epochs {
        let steps = info.train_images.div_ceil(info.recipe.batch).max(1);
        let ended = info.epochs.last().map_or(info.recipe.lr, |m| m.lr);
        let mut extended = info.recipe.clone();
        extended.epochs = epochs;
        crate::say!(
            "{} the run from {} to {epochs} epochs{}",
            if epochs > info.recipe.epochs {
                "extending"
            } else {
                "shortening"
            },
            info.recipe.epochs,
            if extended.schedule == crate::recipe::Schedule::Constant {
                String::new()
            } else {
                format!(
                    "; the {} schedule now spans {epochs} epochs: epoch {} starts at lr {} \
                     (epoch {done} ended at {})",
                    extended.schedule,
                    done + 1,
                    crate::recipe::format_lr(extended.lr_at(done * steps, epochs * steps)),
                    crate::recipe::format_lr(ended)
                )
            }
        );
        info.recipe = extended;
    }
    info.options = Some(options.clone());
    if info.finished() && info.test_accuracy.is_none() {
        // Killed after its last epoch was saved, before the test and the exports: they
        // are what is left to do.
        crate::say!(
            "{}: the run trained its {done} epochs but was stopped before it was tested and \
             exported: testing and exporting it now",
            dir.display()
        );
        info.resumed.push(format!("{command} (after epoch {done})"));
        return Ok(Continuation::Train(Box::new((options, info, resume.state))));
    }
    if info.finished() {
        let how = if info.stopped_early() {
            format!(
                "stopped early after epoch {done} (--patience {}: no improvement since epoch \
                 {}); give a larger --patience to train on",
                options.patience.unwrap_or(0),
                info.best_epoch().map_or(0, |m| m.epoch)
            )
        } else {
            format!(
                "has trained all {done} epochs; extend it with `trainer fit --resume {} \
                 --epochs N`",
                dir.display()
            )
        };
        crate::say!(
            "{}: nothing to train: the run {how}{}",
            dir.display(),
            info.test_accuracy
                .map(|a| format!(" (test accuracy {:.2}%)", 100.0 * a))
                .unwrap_or_default()
        );
        if options.export.is_some() || options.export_q8.is_some() {
            crate::say!(
                "to export it: trainer export --checkpoint {} --onnx FILE --q8 FILE",
                dir.display()
            );
        }
        return Ok(Continuation::Finished);
    }
    info.resumed.push(format!("{command} (after epoch {done})"));
    // Tested again at the new end (an extended run's epochs must not carry the old test).
    info.test_accuracy = None;
    crate::say!(
        "resuming {} after epoch {done} of {}",
        dir.display(),
        info.recipe.epochs
    );
    Ok(Continuation::Train(Box::new((options, info, resume.state))))
}

/// The options to continue the run in `dir` with: those it was started with (from its
/// resume state's run description), writing into `dir`.
pub fn resume_options(
    dir: &Path,
    info: &RunInfo,
    state: &ResumeState,
) -> anyhow::Result<FitOptions> {
    let Some(options) = &info.options else {
        bail!(
            "{}: the run was started by an older trainer that did not record its options \
             in run.json ({:?}); it cannot be resumed, start it again",
            state.path.display(),
            info.command
        );
    };
    Ok(FitOptions {
        out: Some(dir.to_path_buf()),
        ..options.clone()
    })
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
