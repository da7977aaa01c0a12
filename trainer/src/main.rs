//! `trainer`: fit, evaluate and inspect Fashion-MNIST classifiers. A thin layer over the
//! `fmnist_trainer` library: parse, dispatch, report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use burn::prelude::Backend;
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, Parser, Subcommand};
use fmnist_runtime::dataset::{self, LabeledImages, Split, DEFAULT_DATA_DIR};
use fmnist_trainer::backend::DeviceKind;
use fmnist_trainer::checkpoint::{self, RunInfo};
use fmnist_trainer::model::{summarize, ModelKind};
use fmnist_trainer::recipe::{OptimizerKind, Recipe, Schedule};
use fmnist_trainer::train::{self, Output, Splits};
use fmnist_trainer::{export, plot};

/// Exit code for bad usage (clap's own, too).
const EXIT_USAGE: u8 = 2;
/// Exit code for everything else that failed: bad data, I/O, divergence.
const EXIT_FAILURE: u8 = 1;
/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Fit, evaluate and inspect Fashion-MNIST classifiers (burn)"
)]
#[command(
    after_help = "Exit codes: 0 success, 1 failure (bad data or files, divergence), 2 bad usage, \
                  130 interrupted by Ctrl-C (resume with `trainer fit --resume DIR`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model; writes the checkpoint, metrics.csv and curves.png into --out.
    Fit(FitArgs),
    /// Accuracy and confusion matrix of a trained model on the test set or given files.
    Eval(EvalArgs),
    /// Draw the first 100 training images as a 10x10 grid (the seed's first figure).
    Show(ShowArgs),
    /// Write a trained run's model as ONNX and/or an int8 blob for the runtime.
    Export(ExportArgs),
    /// Write the first test image of each class as a 28x28 PNG named by its class.
    Samples {
        /// The directory to write into.
        #[arg(long, default_value = "models/samples")]
        out: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Print a model kind's layers, output shapes, parameters and multiply-accumulates.
    Info {
        /// The model kind.
        #[arg(long, value_enum, default_value = "edge")]
        model: ModelKind,
    },
}

#[derive(Args)]
struct FitArgs {
    /// The model kind.
    #[arg(long, value_enum, default_value = "edge")]
    model: ModelKind,
    /// Epochs [default: 5 for mlp/cnn, 36 for edge].
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per training step [default: 300 for mlp/cnn, 128 for edge].
    #[arg(long)]
    batch: Option<usize>,
    /// Peak learning rate [default: 1e-4 for mlp/cnn, 3e-3 for edge].
    #[arg(long)]
    lr: Option<f64>,
    /// Optimiser [default: adam for mlp/cnn, adamw for edge].
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerKind>,
    /// Decoupled weight decay, AdamW only [default: 0.05 for edge].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Learning-rate schedule [default: constant for mlp/cnn, one-cycle for edge].
    #[arg(long, value_enum)]
    schedule: Option<Schedule>,
    /// Label smoothing of the training loss [default: 0 for mlp/cnn, 0.1 for edge].
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// Turn off the random shifts and flips (on by default for edge only).
    #[arg(long)]
    no_augment: bool,
    /// Turn on the random shifts and flips for any model.
    #[arg(long, conflicts_with = "no_augment")]
    augment: bool,
    /// Seed of initialisation, shuffling and augmentation: same seed, backend and data give the same result.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run directory [default: runs/<model>].
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// The last N training images are the validation split.
    #[arg(long, default_value_t = 1000)]
    val: usize,
    /// Use only the first N training images (before the validation split); for quick runs.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate only the first N test images at the end.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Where to train.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceKind,
    /// Also write the trained model as ONNX to this file (see `trainer export`).
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
    /// Also write the trained model as an int8 blob for the runtime (see `trainer export`).
    #[arg(long, value_name = "FILE")]
    export_q8: Option<PathBuf>,
    /// No progress bars (they are off anyway when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
    /// Continue the run in DIR (killed, interrupted or diverged) from its last complete
    /// epoch, with the options it was started with and the same data order, weights and
    /// optimiser state; only --no-progress may be given with it.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
}

#[derive(Args)]
struct DataArgs {
    /// Directory with the IDX files (raw or .gz) or the competition's CSV files.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data: PathBuf,
}

#[derive(Args)]
struct EvalArgs {
    /// A run directory written by `trainer fit`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// A data directory (its test split is used) or a CSV file with a label column.
    #[arg(long, default_value = DEFAULT_DATA_DIR, conflicts_with = "images")]
    data: PathBuf,
    /// An IDX image file to evaluate on (with --labels).
    #[arg(long, requires = "labels")]
    images: Option<PathBuf>,
    /// The IDX label file that goes with --images.
    #[arg(long, requires = "images")]
    labels: Option<PathBuf>,
    /// Evaluate only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Also write every image's logits to this CSV file (label, then 10 logits per row).
    #[arg(long, value_name = "FILE")]
    logits: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceKind,
}

#[derive(Args)]
struct ExportArgs {
    /// A run directory written by `trainer fit`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The ONNX file to write (opset 13, input `image` [N,1,28,28] = pixels/255, output `logits` [N,10]).
    #[arg(long, value_name = "FILE", required_unless_present = "q8")]
    onnx: Option<PathBuf>,
    /// The int8 blob to write for the runtime (calibrated on training images, checked on
    /// the validation split and the test set).
    #[arg(long, value_name = "FILE")]
    q8: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// The last N training images are the validation split (as in `fit`).
    #[arg(long, default_value_t = 1000)]
    val: usize,
}

#[derive(Args)]
struct ShowArgs {
    /// The PNG to write.
    #[arg(long, default_value = "grid.png")]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// A run directory: wrong predictions of its model are framed in red.
    #[arg(long, alias = "checkpoint", value_name = "RUN_DIR")]
    model: Option<PathBuf>,
}

/// Runs `$body` with `$B` bound to the training backend of `$kind` and `$device` to its
/// default device. A macro, because the body is generic over the backend.
macro_rules! on_backend {
    ($kind:expr, $B:ident, $device:ident => $body:expr) => {
        match $kind {
            DeviceKind::Cpu => {
                type $B = fmnist_trainer::backend::CpuTrain;
                let $device = Default::default();
                $body
            }
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda => {
                type $B = fmnist_trainer::backend::GpuTrain;
                let $device = Default::default();
                $body
            }
            #[cfg(not(feature = "cuda"))]
            DeviceKind::Cuda => check_device(DeviceKind::Cuda),
        }
    };
}

/// An error that is the user's usage, not the data's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn main() -> ExitCode {
    // A bug should still end in one line and a documented exit code, not a backtrace and 101.
    std::panic::set_hook(Box::new(|info| {
        let what = info.to_string().replace('\n', " ");
        eprintln!("error: internal error ({what}); please report it");
        std::process::exit(i32::from(EXIT_FAILURE));
    }));
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.is::<UsageError>() {
                ExitCode::from(EXIT_USAGE)
            } else if error.is::<train::Interrupted>() {
                ExitCode::from(EXIT_INTERRUPTED)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Fit(args) => fit(args),
        Command::Eval(args) => on_backend!(args.device, B, device => eval_on::<B>(&args, &device)),
        Command::Show(args) => show(&args),
        Command::Export(args) => export_run(&args),
        Command::Samples { out, data } => samples(&out, &data.data),
        Command::Info { model } => {
            print_summary(model);
            Ok(())
        }
    }
}

fn fit(args: FitArgs) -> anyhow::Result<()> {
    // Ctrl-C stops training before the next batch; the run keeps its last complete epoch.
    // A second Ctrl-C ends the process at once.
    let _ = ctrlc::set_handler(|| {
        if train::INTERRUPTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    let Some(dir) = args.resume.clone() else {
        let argv = std::env::args().skip(1).collect();
        return fit_with(args, argv, None);
    };
    let extra: Vec<String> = std::env::args()
        .skip(2)
        .filter(|a| a != "--no-progress" && !a.starts_with("--resume") && Path::new(a) != dir)
        .collect();
    if !extra.is_empty() {
        return Err(UsageError(format!(
            "--resume continues a run with its own options; remove {}",
            extra.join(" ")
        ))
        .into());
    }
    let (info, state) = checkpoint::load_resume(&dir)?;
    let original =
        Cli::try_parse_from(std::iter::once("trainer".to_string()).chain(info.args.clone()))
            .ok()
            .and_then(|cli| match cli.command {
                Command::Fit(original) if original.resume.is_none() => Some(original),
                _ => None,
            })
            .with_context(|| {
                format!(
                    "{}: the command line of the run ({:?}) cannot be repeated",
                    state.path.display(),
                    info.args
                )
            })?;
    let original = FitArgs {
        out: Some(dir.clone()),
        no_progress: args.no_progress,
        ..original
    };
    println!(
        "resuming {} after epoch {} of {}",
        dir.display(),
        info.epochs.len(),
        info.recipe.epochs
    );
    let argv = info.args.clone();
    fit_with(original, argv, Some((info, state)))
}

/// A fresh run (`resume` None) or the continuation of a saved one.
fn fit_with(
    args: FitArgs,
    argv: Vec<String>,
    resume: Option<(RunInfo, checkpoint::ResumeState)>,
) -> anyhow::Result<()> {
    check_device(args.device)?;
    // Refuse a path we cannot write before an hour of training, not after.
    for path in args.export.iter().chain(&args.export_q8) {
        check_writable(path)?;
    }
    let recipe = recipe_from(&args)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(args.model.name()));
    let (train_set, test_set) = load_train_test(&args)?;
    let (train_split, val_split) = train_set.split_last(args.val);
    if train_split.is_empty() {
        return Err(UsageError(format!("--val {} leaves no training images", args.val)).into());
    }
    let command = std::iter::once("trainer".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let (mut info, state) = match resume {
        Some((info, state)) => (info, Some(state)),
        None => {
            let mut info = RunInfo::new(
                args.model,
                recipe,
                args.seed,
                args.device.backend_name(),
                command,
            );
            info.args = argv;
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
            args.data.data.display(),
            train_split.len(),
            val_split.len()
        );
    }
    info.train_images = train_split.len();
    info.val_images = val_split.len();
    print_summary(args.model);
    println!(
        "recipe: {:?}, {} epochs, batch {}, lr {}, {:?} schedule, weight decay {}, label smoothing {}, augment {}",
        info.recipe.optimizer,
        info.recipe.epochs,
        info.recipe.batch,
        info.recipe.lr,
        info.recipe.schedule,
        info.recipe.weight_decay,
        info.recipe.label_smoothing,
        info.recipe.augment
    );
    println!(
        "data: {} train, {} validation, {} test images from {}; backend {}; run directory {}",
        train_split.len(),
        val_split.len(),
        test_set.len(),
        args.data.data.display(),
        info.backend,
        out.display()
    );
    let splits = Splits {
        train: train_split,
        val: val_split,
    };
    let exports = Exports {
        onnx: args.export.clone(),
        q8: args.export_q8.clone(),
    };
    let output = Output {
        dir: out.clone(),
        progress: !args.no_progress && std::io::stderr().is_terminal(),
    };
    let state = state.as_ref();
    on_backend!(args.device, B, device => fit_on::<B>(&mut info, state, &splits, &output, &test_set, &exports, &device))?;
    println!("run directory: {}", out.display());
    Ok(())
}

fn fit_on<B: AutodiffBackend>(
    info: &mut RunInfo,
    state: Option<&checkpoint::ResumeState>,
    splits: &Splits,
    output: &Output,
    test: &LabeledImages,
    exports: &Exports,
    device: &B::Device,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let model = match state {
        None => train::fit::<B>(info, splits, output, device)?,
        Some(state) => train::resume::<B>(info, state, splits, output, device)?,
    };
    let trained = started.elapsed().as_secs_f64();
    let model = burn::module::AutodiffModule::valid(&model);
    let evaluation = train::evaluate(&model, test, device);
    info.test_accuracy = Some(evaluation.confusion.accuracy());
    checkpoint::save_info(&output.dir, info)?;
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
    print_confusions(&evaluation.confusion);
    write_exports(
        &model,
        info,
        exports,
        &splits.train,
        &splits.val,
        test,
        device,
    )
}

/// Files to export a trained model to.
struct Exports {
    onnx: Option<PathBuf>,
    q8: Option<PathBuf>,
}

fn write_exports<B: Backend>(
    model: &fmnist_trainer::model::Classifier<B>,
    info: &RunInfo,
    exports: &Exports,
    calibration: &LabeledImages,
    val: &LabeledImages,
    test: &LabeledImages,
    device: &B::Device,
) -> anyhow::Result<()> {
    if let Some(path) = &exports.onnx {
        export::write_onnx(model, info, path)?;
        println!(
            "wrote {} (ONNX, opset {})",
            path.display(),
            export::onnx::OPSET
        );
    }
    if let Some(path) = &exports.q8 {
        let test = (!test.is_empty()).then_some(test);
        let report = export::write_q8(model, info, calibration, val, test, path, device)?;
        println!(
            "wrote {} (int8 blob, {} bytes, arena {} bytes, calibrated on {} training images)",
            path.display(),
            report.bytes,
            report.arena_bytes,
            calibration.len().min(export::CALIBRATION_IMAGES)
        );
        println!(
            "  validation accuracy: float {:.2}%, int8 {:.2}%",
            report.float_val * 100.0,
            report.int8_val * 100.0
        );
        if let (Some(float), Some(int8)) = (report.float_test, report.int8_test) {
            println!(
                "  test accuracy:       float {:.2}%, int8 {:.2}%",
                float * 100.0,
                int8 * 100.0
            );
        }
        println!(
            "  float and int8 agree on {:.2}% of images",
            report.agreement * 100.0
        );
    }
    Ok(())
}

fn eval_on<B: AutodiffBackend>(args: &EvalArgs, device: &B::Device) -> anyhow::Result<()> {
    if let Some(path) = &args.logits {
        check_writable(path)?;
    }
    let (info, model) = checkpoint::load::<B::InnerBackend>(&args.checkpoint, device)?;
    let (set, source) = match (&args.images, &args.labels) {
        (Some(images), Some(labels)) => (dataset::load_idx_pair(images, labels)?, images.clone()),
        _ => (
            dataset::load_path(&args.data, Split::Test)?,
            args.data.clone(),
        ),
    };
    let set = match args.limit {
        Some(limit) => set.truncated(limit),
        None => set,
    };
    if set.is_empty() {
        bail!("{}: no images to evaluate", source.display());
    }
    println!(
        "model: {} from {} (trained {} epochs)",
        info.model.name(),
        args.checkpoint.display(),
        info.epochs.len()
    );
    let evaluation = train::evaluate(&model, &set, device);
    if let Some(path) = &args.logits {
        let mut csv = String::from("label");
        for c in 0..fmnist_runtime::CLASS_COUNT {
            csv += &format!(",logit{c}");
        }
        csv.push('\n');
        for (label, row) in set
            .labels
            .iter()
            .zip(evaluation.logits.chunks(fmnist_runtime::CLASS_COUNT))
        {
            let row: Vec<String> = row.iter().map(|v| format!("{v:.7e}")).collect();
            csv += &format!("{label},{}\n", row.join(","));
        }
        fmnist_trainer::fsutil::write_atomic(path, csv.as_bytes())?;
    }
    println!(
        "data: {} images from {}\nloss {:.4}\n{}",
        set.len(),
        source.display(),
        evaluation.loss,
        evaluation.confusion
    );
    print_confusions(&evaluation.confusion);
    Ok(())
}

fn export_run(args: &ExportArgs) -> anyhow::Result<()> {
    for path in args.onnx.iter().chain(&args.q8) {
        check_writable(path)?;
    }
    let device = Default::default();
    let (info, model) =
        checkpoint::load::<fmnist_trainer::backend::Cpu>(&args.checkpoint, &device)?;
    println!(
        "{} model from {}",
        info.model.name(),
        args.checkpoint.display()
    );
    let (calibration, val, test) = if args.q8.is_some() {
        let (train, val) = dataset::load_split(&args.data.data, Split::Train)?.split_last(args.val);
        (
            train,
            val,
            dataset::load_split(&args.data.data, Split::Test)?,
        )
    } else {
        Default::default()
    };
    let exports = Exports {
        onnx: args.onnx.clone(),
        q8: args.q8.clone(),
    };
    write_exports(&model, &info, &exports, &calibration, &val, &test, &device)
}

/// Refuses `--device cuda` in a build without CUDA before any work is done.
fn check_device(device: DeviceKind) -> anyhow::Result<()> {
    if device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
        return Err(UsageError(
            "this trainer was built without CUDA; rebuild it with `cargo build --release --features cuda`".into(),
        )
        .into());
    }
    Ok(())
}

/// An output file must not be a directory, and its directory must exist.
fn check_writable(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        return Err(UsageError(format!(
            "{}: is a directory, expected a file name",
            path.display()
        ))
        .into());
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(UsageError(format!(
            "{}: the directory {} does not exist",
            path.display(),
            dir.display()
        ))
        .into()),
        _ => Ok(()),
    }
}

fn samples(out: &Path, data: &Path) -> anyhow::Result<()> {
    let test = dataset::load_split(data, Split::Test)?;
    for (label, name) in fmnist_runtime::CLASS_NAMES.iter().enumerate() {
        let Some(index) = test.labels.iter().position(|&l| usize::from(l) == label) else {
            continue;
        };
        let image = image::GrayImage::from_raw(28, 28, test.image(index).to_vec())
            .ok_or_else(|| anyhow::anyhow!("bad image size"))?;
        let mut png = Vec::new();
        image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
        let file = out.join(format!(
            "{}.png",
            name.to_lowercase().replace(['/', ' '], "-")
        ));
        fmnist_trainer::fsutil::write_atomic(&file, &png)?;
        println!("{}: test image {index} ({name})", file.display());
    }
    Ok(())
}

fn show(args: &ShowArgs) -> anyhow::Result<()> {
    let set = dataset::load_split(&args.data.data, Split::Train)?.truncated(100);
    let predictions = match &args.model {
        Some(dir) => {
            let device = Default::default();
            let (_, model) = checkpoint::load::<fmnist_trainer::backend::Cpu>(dir, &device)?;
            let evaluation = train::evaluate(&model, &set, &device);
            println!("{} of {} right", evaluation.confusion.correct(), set.len());
            Some(evaluation.predictions)
        }
        None => None,
    };
    plot::grid(&args.out, &set, predictions.as_deref())
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}

fn recipe_from(args: &FitArgs) -> anyhow::Result<Recipe> {
    let mut recipe = Recipe::default_for(args.model);
    recipe.epochs = args.epochs.unwrap_or(recipe.epochs);
    recipe.batch = args.batch.unwrap_or(recipe.batch);
    recipe.lr = args.lr.unwrap_or(recipe.lr);
    recipe.optimizer = args.optimizer.unwrap_or(recipe.optimizer);
    recipe.weight_decay = args.weight_decay.unwrap_or(recipe.weight_decay);
    recipe.schedule = args.schedule.unwrap_or(recipe.schedule);
    recipe.label_smoothing = args.label_smoothing.unwrap_or(recipe.label_smoothing);
    recipe.augment = (recipe.augment || args.augment) && !args.no_augment;
    let problem = if recipe.epochs == 0 {
        Some("--epochs must be at least 1")
    } else if recipe.batch == 0 {
        Some("--batch must be at least 1")
    } else if !(recipe.lr.is_finite() && recipe.lr > 0.0) {
        Some("--lr must be a positive number")
    } else if !(0.0..1.0).contains(&recipe.label_smoothing) {
        Some("--label-smoothing must be in [0, 1)")
    } else if !(recipe.weight_decay.is_finite() && recipe.weight_decay >= 0.0) {
        Some("--weight-decay must be zero or positive")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(UsageError(problem.into()).into()),
        None => Ok(recipe),
    }
}

fn load_train_test(args: &FitArgs) -> anyhow::Result<(LabeledImages, LabeledImages)> {
    let train = dataset::load_split(&args.data.data, Split::Train)?;
    let train = match args.train_limit {
        Some(limit) => train.truncated(limit),
        None => train,
    };
    let test = dataset::load_split(&args.data.data, Split::Test)?;
    let test = match args.test_limit {
        Some(limit) => test.truncated(limit),
        None => test,
    };
    Ok((train, test))
}

fn print_summary(kind: ModelKind) {
    match summarize(&kind.layers()) {
        Ok(rows) => {
            println!("model {}:", kind.name());
            for row in &rows {
                println!(
                    "  {:<70} -> {:<16} params {:>7}  MACs {:>9}",
                    format!("{:?}", row.layer),
                    format!("{:?}", row.output),
                    row.params,
                    row.macs
                );
            }
            println!(
                "  total: {} parameters, {} multiply-accumulates per image",
                rows.iter().map(|r| r.params).sum::<usize>(),
                rows.iter().map(|r| r.macs).sum::<usize>()
            );
        }
        Err(problem) => println!("model {}: invalid layer list: {problem}", kind.name()),
    }
}

fn print_confusions(confusion: &fmnist_runtime::Confusion) {
    let names = fmnist_runtime::CLASS_NAMES;
    let pairs: Vec<String> = confusion
        .top_confusions::<5>()
        .iter()
        .map(|&(truth, predicted, count)| {
            format!("{} as {} ({count})", names[truth], names[predicted])
        })
        .collect();
    if !pairs.is_empty() {
        println!("most frequent mistakes: {}", pairs.join(", "));
    }
}
