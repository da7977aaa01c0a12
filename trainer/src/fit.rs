//! `trainer fit` as a library: the options a run starts with ([`FitOptions`], kept in
//! `run.json` so that `trainer fit --resume` continues with exactly them), the data they
//! select, the training, the final test and the exports.

use std::path::{Path, PathBuf};

use anyhow::bail;
use burn::tensor::backend::AutodiffBackend;
use fmnist_runtime::dataset::{self, LabeledImages, Split, DEFAULT_DATA_DIR};

use crate::backend::DeviceKind;
use crate::checkpoint::{self, ResumeState, RunInfo};
use crate::export::{self, Exports};
use crate::fsutil;
use crate::model::{summary_text, ModelKind};
use crate::recipe::RecipeOverrides;
use crate::train::{self, Output, Splits};
use crate::usage::{self, UsageError};

/// The options of `trainer fit`, as given on the command line and as `run.json` keeps them.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize, serde::Deserialize)]
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
    /// Use only the first N training images (before the validation split); for quick runs.
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
}

impl FitOptions {
    /// The run directory: `--out`, else `runs/<model>`.
    pub fn out_dir(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(self.model.name()))
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
}

/// Checks `options` (usage errors before any data is read), loads the data and describes
/// the run: a fresh one started by `command`, or the continuation of `resume`. Prints the
/// model, recipe and data.
pub fn prepare(
    options: &FitOptions,
    command: String,
    progress: bool,
    resume: Option<(RunInfo, ResumeState)>,
) -> anyhow::Result<Prepared> {
    usage::check_device(options.device)?;
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
    let created = fsutil::probe_dir(&out)?;
    let removed = fsutil::remove_temporaries(&out)?;
    if removed > 0 {
        println!(
            "removed {removed} temporary file(s) a killed run left in {}",
            out.display()
        );
    }
    let prepared = prepare_in(options, command, progress, resume, recipe, out);
    if prepared.is_err() {
        // Nothing was written: leave no empty run directory behind.
        fsutil::remove_created(&created);
    }
    prepared
}

fn prepare_in(
    options: &FitOptions,
    command: String,
    progress: bool,
    resume: Option<(RunInfo, ResumeState)>,
    recipe: crate::recipe::Recipe,
    out: PathBuf,
) -> anyhow::Result<Prepared> {
    let (train_set, test) = load_train_test(options)?;
    let (train_split, val_split) = train_set.split_last(options.val);
    if train_split.is_empty() {
        return Err(UsageError::NoTrainingImages(options.val).into());
    }
    let (mut info, state) = match resume {
        Some((info, state)) => (info, Some(state)),
        None => {
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
    info.train_images = train_split.len();
    info.val_images = val_split.len();
    // The run's own model kind (a resumed run's options are checked to name it too).
    println!("{}", summary_text(info.model));
    let r = &info.recipe;
    println!(
        "recipe: {:?}, {} epochs, batch {}, lr {}, {:?} schedule, weight decay {}, label smoothing {}, augment {}",
        r.optimizer, r.epochs, r.batch, r.lr, r.schedule, r.weight_decay, r.label_smoothing, r.augment
    );
    println!(
        "data: {} train, {} validation, {} test images from {}; backend {}; run directory {}",
        train_split.len(),
        val_split.len(),
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
        },
    })
}

/// Trains (or continues) a prepared run on backend `B`, tests it, records the test
/// accuracy in `run.json`, prints the results and writes the exports.
pub fn run<B: AutodiffBackend>(prepared: &mut Prepared, device: &B::Device) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let info = &mut prepared.info;
    let model = match &prepared.state {
        None => train::fit::<B>(info, &prepared.splits, &prepared.output, device)?,
        Some(state) => train::resume::<B>(info, state, &prepared.splits, &prepared.output, device)?,
    };
    let trained = started.elapsed().as_secs_f64();
    let model = burn::module::AutodiffModule::valid(&model);
    let evaluation = train::evaluate(&model, &prepared.test, device);
    info.test_accuracy = Some(evaluation.confusion.accuracy());
    checkpoint::save_info(&prepared.output.dir, info)?;
    println!(
        "trained {} epochs in {:.1} s ({:.1} s/epoch)",
        info.epochs.len(),
        trained,
        trained / info.epochs.len().max(1) as f64
    );
    println!(
        "test: loss {:.4}\n{}",
        evaluation.loss, evaluation.confusion
    );
    if let Some(line) = train::confusions_line(&evaluation.confusion) {
        println!("{line}");
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
    println!("run directory: {}", prepared.output.dir.display());
    Ok(())
}

/// Opens the run in `dir` to continue it ([`crate::rundir::open_resume`]: every file
/// verified, what can be repaired from `resume.state` repaired) and says what was repaired
/// and where the run continues. Returns the options to continue with, the run description
/// and the resume state.
pub fn resume(dir: &Path) -> anyhow::Result<(FitOptions, (RunInfo, ResumeState))> {
    let resume = crate::rundir::open_resume(dir)?;
    for note in &resume.notes {
        println!("{note}");
    }
    println!(
        "resuming {} after epoch {} of {}",
        dir.display(),
        resume.info.epochs.len(),
        resume.info.recipe.epochs
    );
    Ok((resume.options, (resume.info, resume.state)))
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

fn load_train_test(options: &FitOptions) -> anyhow::Result<(LabeledImages, LabeledImages)> {
    let train = dataset::load_split(&options.data, Split::Train)?;
    let train = match options.train_limit {
        Some(limit) => train.truncated(limit),
        None => train,
    };
    let test = dataset::load_split(&options.data, Split::Test)?;
    let test = match options.test_limit {
        Some(limit) => test.truncated(limit),
        None => test,
    };
    Ok((train, test))
}
