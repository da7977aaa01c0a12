//! `trainer`: fit, evaluate and inspect Fashion-MNIST classifiers. A thin layer over the
//! `fmnist_trainer` library: parse, dispatch, report.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use burn::tensor::backend::AutodiffBackend;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use fmnist_runtime::dataset::{self, Split, DEFAULT_DATA_DIR};
use fmnist_trainer::backend::DeviceKind;
use fmnist_trainer::config::options::FitOptions;
use fmnist_trainer::config::recipe;
use fmnist_trainer::export::{self, Exports};
use fmnist_trainer::fit;
use fmnist_trainer::model::{summary_text, ModelKind};
use fmnist_trainer::resume;
use fmnist_trainer::run;
use fmnist_trainer::train;
use fmnist_trainer::usage::{check_writable, UsageError};
use fmnist_trainer::util::files;
use fmnist_trainer::{plot, say};

/// Tensors of megabytes that live for one training step are reused from mimalloc's
/// segments instead of being mapped and unmapped by glibc on every allocation (docs/results.md,
/// "Speed against PyTorch").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for bad usage (clap's own, too).
const EXIT_USAGE: u8 = 2;
/// Exit code for everything else that failed: bad data, I/O, divergence.
const EXIT_FAILURE: u8 = 1;
/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;
/// Exit code of `--device cuda` where no CUDA GPU can be used (no driver, no device, no
/// NVRTC), found before any work.
const EXIT_NO_GPU: u8 = 3;

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Fit, evaluate and inspect Fashion-MNIST classifiers (burn)"
)]
#[command(
    after_help = "Exit codes: 0 success, 1 failure (bad data or files, divergence), 2 bad usage, \
                  3 no usable CUDA GPU for --device cuda (no driver, no device or no NVRTC), \
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
    /// Draw up to 100 images as a 10x10 grid (the notebook's first figure), with a model's
    /// predictions if given.
    Show(ShowArgs),
    /// Write a trained run's model as ONNX and/or an int8 blob for the runtime, or quantize an
    /// exported ONNX file again (`--from-onnx`, for example with `--weight-bits 7`).
    Export(ExportArgs),
    /// Fit the softmax temperature of exported files (int8 blobs, ONNX) on the validation
    /// split and rewrite each with it, atomically; upgrades format 1 blobs to format 2.
    Calibrate(CalibrateArgs),
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
    #[command(flatten)]
    options: FitOptions,
    /// No progress bars (they are off anyway when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
    /// Continue the run in DIR (killed, interrupted, diverged or finished) from its last
    /// complete epoch, with the options it was started with and the same data order,
    /// weights and optimiser state. --epochs N extends it to N epochs; --data may name
    /// where the same data now lies (checked by checksum); --export, --export-q8,
    /// --test-limit and --patience may be given; other options must repeat the run's own.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Replace the run an explicit --out holds (by default such a --out is refused;
    /// without --out, a run goes to the first of runs/<model>, runs/<model>-2, ... that
    /// holds no run).
    #[arg(long, conflicts_with = "resume")]
    force: bool,
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
    /// Use the run's best epoch by validation accuracy (best.mpk), not its last.
    #[arg(long)]
    best: bool,
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
    /// Also write every image's logits to this CSV file (label, then 10 logits per row);
    /// `-` writes them to standard output.
    #[arg(long, value_name = "FILE")]
    logits: Option<PathBuf>,
    /// Print the results as one JSON document (accuracy, loss, per-class figures,
    /// confusion matrix, images/s) instead of tables.
    #[arg(long)]
    json: bool,
    /// Where to run.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceKind,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("outputs").required(true).multiple(true).args(["onnx", "q8"]))]
#[command(group = clap::ArgGroup::new("source").required(true).args(["checkpoint", "from_onnx"]))]
struct ExportArgs {
    /// A run directory written by `trainer fit`.
    #[arg(long, value_name = "RUN_DIR")]
    checkpoint: Option<PathBuf>,
    /// Quantize the float model of an ONNX file this trainer exported instead of a run
    /// (batch norm already folded; its `model_kind` metadata names the kind). Only --q8.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["onnx", "best"])]
    from_onnx: Option<PathBuf>,
    /// Export the run's best epoch by validation accuracy (best.mpk), not its last.
    #[arg(long)]
    best: bool,
    /// The ONNX file to write (opset 13, input `image` [N,1,28,28] = pixels/255, output `logits` [N,10]).
    #[arg(long, value_name = "FILE")]
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
    /// The blob's weights: 8 bits (-127..=127 per channel), or 7 (-64..=64), which CPUs
    /// with AVX2 and no VNNI multiply byte-wise, faster; check the accuracy it prints.
    #[arg(long, value_enum, default_value = "8")]
    weight_bits: export::WeightBits,
}

#[derive(Args)]
struct CalibrateArgs {
    /// The exported files (int8 blob or ONNX as `trainer export` writes them), each
    /// rewritten in place. The fit reads the raw logits, so calibrating again gives the
    /// same temperature.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// The last N training images are the validation split (as in `fit`).
    #[arg(long, default_value_t = 1000)]
    val: usize,
}

#[derive(Args)]
struct ShowArgs {
    /// The picture to write: PNG for .png, JPEG for .jpg/.jpeg (other names are refused).
    #[arg(long, default_value = "grid.png")]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// A run directory: each image is captioned with its model's prediction; wrong ones are
    /// framed in red and captioned "pred X" over "true Y".
    #[arg(long, alias = "checkpoint", value_name = "RUN_DIR")]
    model: Option<PathBuf>,
    /// With --model: its best epoch by validation accuracy (best.mpk), not its last.
    #[arg(long, requires = "model")]
    best: bool,
    /// The images to draw [default: test with --model, so that the model is judged on images
    /// it was not trained on; train without, as the notebook's first figure].
    #[arg(long, value_enum)]
    split: Option<plot::GridSplit>,
    /// The index in the split of the first image drawn.
    #[arg(long, default_value_t = 0)]
    start: usize,
    /// How many images to draw, ten a row.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=100))]
    count: u16,
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
            DeviceKind::Cuda => match fmnist_trainer::gpu::preflight() {
                Err(no_gpu) => Err(no_gpu.into()),
                Ok(_) => {
                    type $B = fmnist_trainer::backend::GpuTrain;
                    let $device = Default::default();
                    $body
                }
            },
            #[cfg(not(feature = "cuda"))]
            DeviceKind::Cuda => Err(UsageError::NoCuda.into()),
        }
    };
}

fn main() -> ExitCode {
    // A bug should still end in one line and a documented exit code, not a backtrace and 101.
    std::panic::set_hook(Box::new(|info| {
        let what = info.to_string().replace('\n', " ");
        eprintln!("error: internal error ({what}); please report it");
        std::process::exit(i32::from(EXIT_FAILURE));
    }));
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => return usage_error(&error),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    match run(cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.is::<UsageError>()
                || error.is::<recipe::RecipeError>()
                || error.is::<files::FileError>()
            {
                ExitCode::from(EXIT_USAGE)
            } else if error.is::<train::Interrupted>() {
                ExitCode::from(EXIT_INTERRUPTED)
            } else if no_gpu(&error) {
                ExitCode::from(EXIT_NO_GPU)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}

/// Whether `error` says that no CUDA GPU can be used.
fn no_gpu(error: &anyhow::Error) -> bool {
    #[cfg(feature = "cuda")]
    return error.is::<fmnist_trainer::gpu::NoGpu>();
    #[cfg(not(feature = "cuda"))]
    return {
        let _ = error;
        false
    };
}

/// `--help` and `--version` as clap prints them; a usage error as one line on stderr:
/// clap's message (its lines joined), then the usage line it shows. Exit code 2.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand
    ) {
        eprintln!(
            "error: a command is needed (fit, eval, show, export, samples, info); see 'trainer --help'"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let rendered = error.render().to_string();
    let (mut message, mut usage) = (Vec::new(), None);
    for line in rendered.lines().map(str::trim) {
        if let Some(line) = line.strip_prefix("Usage: ") {
            usage = Some(line);
        } else if !(line.is_empty() || line.starts_with("tip:") || line.starts_with("For more")) {
            message.push(line);
        }
    }
    let usage = usage.map(|u| format!("; usage: {u}")).unwrap_or_default();
    eprintln!("{}{usage} (see --help)", message.join(" "));
    ExitCode::from(EXIT_USAGE)
}

fn run(cli: Cli, matches: &ArgMatches) -> anyhow::Result<()> {
    match cli.command {
        Command::Fit(args) => {
            let given = matches
                .subcommand_matches("fit")
                .map(options_given)
                .unwrap_or_default();
            fit(args, given)
        }
        Command::Eval(args) => on_backend!(args.device, B, device => eval_on::<B>(&args, &device)),
        Command::Show(args) => show(&args),
        Command::Export(args) => export_run(&args),
        Command::Calibrate(args) => calibrate_files(&args),
        Command::Samples { out, data } => {
            let test = dataset::load_split(&data.data, Split::Test)?;
            for (file, index) in plot::samples(&out, &test)? {
                let name = fmnist_runtime::CLASS_NAMES[usize::from(test.labels[index])];
                say!("{}: test image {index} ({name})", file.display());
            }
            Ok(())
        }
        Command::Info { model } => {
            say!("{}", summary_text(model));
            Ok(())
        }
    }
}

/// The options of `trainer fit` given on the command line other than `--resume`,
/// `--force` and `--no-progress`: their clap ids, and each as written (`--epochs 9`).
fn options_given(matches: &ArgMatches) -> Vec<(String, String)> {
    let command = Cli::command();
    let Some(fit) = command.find_subcommand("fit") else {
        return Vec::new();
    };
    fit.get_arguments()
        .filter(|arg| !matches!(arg.get_id().as_str(), "resume" | "no_progress" | "force"))
        .filter(|arg| {
            matches!(matches.try_get_raw(arg.get_id().as_str()), Ok(Some(_)))
                && matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
        })
        .map(|arg| {
            let id = arg.get_id().as_str();
            let flag = format!("--{}", arg.get_long().unwrap_or(id));
            if !arg.get_action().takes_values() {
                return (id.to_string(), flag);
            }
            let values: Vec<String> = matches
                .get_raw(id)
                .into_iter()
                .flatten()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            (id.to_string(), format!("{flag} {}", values.join(" ")))
        })
        .collect()
}

fn fit(args: FitArgs, given: Vec<(String, String)>) -> anyhow::Result<()> {
    // Ctrl-C stops training before the next batch; the run keeps its last complete epoch.
    // A second Ctrl-C ends the process at once.
    let _ = ctrlc::set_handler(|| {
        if train::INTERRUPTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    let progress = !args.no_progress && std::io::stderr().is_terminal();
    let command = std::iter::once("trainer".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    // The teacher and data as absolute paths: the run records them, and a resume from
    // another working directory finds them without naming them again.
    let args_options = args.options.with_absolute_paths();
    let (options, resume) = match &args.resume {
        None => {
            let out = fit::new_run_dir(&args_options, args.force)?;
            let options = FitOptions {
                out: Some(out),
                ..args_options
            };
            (options, None)
        }
        Some(dir) => {
            let resume = resume::open(dir)?;
            let options = resume::merge_resume_options(&resume.options, &args_options, &given)?;
            match resume::continue_run(resume, options, &command, dir)? {
                resume::Continuation::Finished => return Ok(()),
                resume::Continuation::Train(run) => {
                    let (options, info, state) = *run;
                    (options, Some((info, state)))
                }
            }
        }
    };
    let mut prepared = fit::prepare(&options, command, progress, resume, args.force)?;
    on_backend!(options.device, B, device => fit::run::<B>(&mut prepared, &device))
}

fn eval_on<B: AutodiffBackend>(args: &EvalArgs, device: &B::Device) -> anyhow::Result<()> {
    // `--logits -`: standard output.
    let logits_file = args.logits.as_deref().filter(|p| p.as_os_str() != "-");
    if let Some(path) = logits_file {
        check_writable(path)?;
        files::check_outputs(&[path], &[], Some((&args.checkpoint, &run::RUN_FILES[..])))?;
    }
    let (info, model) = run::load_run::<B::InnerBackend>(&args.checkpoint, args.best, device)?;
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
    let weights = match (&info.best, args.best) {
        (Some(best), true) => format!("best epoch {} of {}", best.epoch, info.epochs.len()),
        _ => match info.epochs.len() {
            1 => "trained 1 epoch".to_string(),
            n => format!("trained {n} epochs"),
        },
    };
    let started = std::time::Instant::now();
    let evaluation = fmnist_trainer::eval::evaluate(&model, &set, device);
    let seconds = started.elapsed().as_secs_f64();
    match (&args.logits, logits_file) {
        (_, Some(path)) => {
            files::write_output(path, evaluation.logits_csv(&set.labels).as_bytes())?
        }
        (Some(_), None) => {
            use std::io::Write;
            std::io::stdout()
                .lock()
                .write_all(evaluation.logits_csv(&set.labels).as_bytes())
                .context("writing the logits to stdout")?;
        }
        (None, None) => {}
    }
    // With `--logits -` the logits are stdout's; the summary goes to stderr.
    let to_stderr = args.logits.is_some() && logits_file.is_none();
    macro_rules! summary {
        ($($arg:tt)*) => {{
            if to_stderr {
                eprintln!($($arg)*);
            } else {
                say!($($arg)*);
            }
        }};
    }
    let confusion = &evaluation.confusion;
    if args.json {
        let document = serde_json::json!({
            "checkpoint": args.checkpoint.display().to_string(),
            "model": info.model.name(),
            "epochs": info.epochs.len(),
            "best": args.best,
            "epoch": match (&info.best, args.best) {
                (Some(best), true) => best.epoch,
                _ => info.epochs.len(),
            },
            "data": source.display().to_string(),
            "images": set.len(),
            "correct": confusion.correct(),
            "accuracy": confusion.accuracy(),
            "loss": evaluation.loss,
            "classes": fmnist_runtime::report::class_figures(confusion),
            "confusion_matrix": confusion.counts,
            "seconds": seconds,
            "images_per_second": set.len() as f64 / seconds,
        });
        summary!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    summary!(
        "model: {} from {} ({weights})",
        info.model.name(),
        args.checkpoint.display(),
    );
    summary!(
        "data: {} images from {}\nloss {:.4}\n\n{confusion}",
        set.len(),
        source.display(),
        evaluation.loss,
    );
    if let Some(line) = fmnist_trainer::eval::confusions_line(confusion) {
        summary!("{line}");
    }
    summary!(
        "{} images in {seconds:.2} s ({:.0} images/s)",
        set.len(),
        set.len() as f64 / seconds
    );
    Ok(())
}

fn export_run(args: &ExportArgs) -> anyhow::Result<()> {
    for path in args.onnx.iter().chain(&args.q8) {
        check_writable(path)?;
    }
    // Not onto the file read (`--from-onnx`), the run's own files, or each other.
    let outputs: Vec<&Path> = args
        .onnx
        .iter()
        .chain(&args.q8)
        .map(PathBuf::as_path)
        .collect();
    let source: Vec<&Path> = args.from_onnx.iter().map(PathBuf::as_path).collect();
    let run = args
        .checkpoint
        .as_deref()
        .map(|dir| (dir, &run::RUN_FILES[..]));
    files::check_outputs(&outputs, &source, run)?;
    // Both files get a temperature fitted on the validation split; the blob's activation
    // scales are calibrated on the training split.
    let splits = || -> anyhow::Result<_> {
        let (calibration, val) =
            dataset::load_split(&args.data.data, Split::Train)?.split_last(args.val);
        Ok((
            calibration,
            val,
            dataset::load_split(&args.data.data, Split::Test)?,
        ))
    };
    let (Some(checkpoint), None) = (&args.checkpoint, &args.from_onnx) else {
        let (calibration, val, test) = splits()?;
        let (Some(onnx), Some(q8)) = (&args.from_onnx, &args.q8) else {
            anyhow::bail!("--from-onnx writes only an int8 blob: give --q8 FILE");
        };
        let images = export::ExportImages {
            calibration: &calibration,
            val: &val,
            test: (!test.is_empty()).then_some(&test),
        };
        let (kind, report) = export::write_q8_from_onnx(onnx, images, args.weight_bits, q8)?;
        say!("{} model from {}", kind.name(), onnx.display());
        export::print_q8(q8, &report, images, args.weight_bits);
        return Ok(());
    };
    let device = Default::default();
    let (info, model) =
        run::load_run::<fmnist_trainer::backend::Cpu>(checkpoint, args.best, &device)?;
    say!(
        "{} model from {}{}",
        info.model.name(),
        checkpoint.display(),
        match (&info.best, args.best) {
            (Some(best), true) => format!(" (best epoch {} of {})", best.epoch, info.epochs.len()),
            _ => String::new(),
        }
    );
    let (calibration, val, test) = splits()?;
    let exports = Exports {
        onnx: args.onnx.clone(),
        q8: args.q8.clone(),
        weight_bits: args.weight_bits,
    };
    export::write_all(&model, &info, &exports, &calibration, &val, &test, &device)
}

fn calibrate_files(args: &CalibrateArgs) -> anyhow::Result<()> {
    for path in &args.files {
        check_writable(path)?;
    }
    let (_, val) = dataset::load_split(&args.data.data, Split::Train)?.split_last(args.val);
    if val.is_empty() {
        return Err(UsageError::NoValidationImages(args.val).into());
    }
    let test = dataset::load_split(&args.data.data, Split::Test)?;
    for path in &args.files {
        let fit = fmnist_trainer::export::calibrate::calibrate_file(path, &val, &test)?;
        say!("{}: {fit}", path.display());
    }
    Ok(())
}

fn show(args: &ShowArgs) -> anyhow::Result<()> {
    plot::PictureFormat::of(&args.out)?;
    check_writable(&args.out)?;
    let split = args.split.unwrap_or(match args.model {
        Some(_) => plot::GridSplit::Test,
        None => plot::GridSplit::Train,
    });
    let device = Default::default();
    let model = match &args.model {
        Some(dir) => Some(run::load_run::<fmnist_trainer::backend::Cpu>(
            dir, args.best, &device,
        )?),
        None => None,
    };
    let mut set = dataset::load_split(&args.data.data, split.split())?;
    if args.start >= set.len() {
        return Err(UsageError::StartPastEnd {
            start: args.start,
            split: split.name(),
            images: set.len(),
        }
        .into());
    }
    let end = set.len().min(args.start + usize::from(args.count));
    let pixels = fmnist_runtime::IMAGE_PIXELS;
    set.images = set.images[args.start * pixels..end * pixels].to_vec();
    set.labels = set.labels[args.start..end].to_vec();
    let mut title = format!(
        "{} images {}-{} of {}",
        split.name(),
        args.start,
        end - 1,
        args.data.data.display()
    );
    let predictions = match (&model, &args.model) {
        (Some((info, model)), Some(dir)) => {
            let evaluation = fmnist_trainer::eval::evaluate(model, &set, &device);
            let right = evaluation.confusion.correct();
            say!("{right} of {} right", set.len());
            title.push_str(&format!(
                "; {} model in {}: {right} of {} right (red frame: wrong; red \"pred\", black \"true\")",
                info.model.name(),
                dir.display(),
                set.len()
            ));
            Some(evaluation.predictions)
        }
        _ => None,
    };
    plot::grid(&args.out, &set, &title, predictions.as_deref())
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    say!("wrote {}", args.out.display());
    Ok(())
}
