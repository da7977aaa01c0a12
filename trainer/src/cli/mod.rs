//! The commands: their arguments (clap) and what each does with the library. One module
//! a command group; `run` dispatches.

use std::path::PathBuf;

use clap::{ArgMatches, Args, Parser, Subcommand};
use fmnist_runtime::dataset::{self, Split, DEFAULT_DATA_DIR};
use fmnist_trainer::model::{summary_text, ModelKind};
use fmnist_trainer::{plot, say};

/// Runs `$body` with `$B` bound to the training backend of `$kind` and `$device` to its
/// default device. A macro, because the body is generic over the backend.
macro_rules! on_backend {
    ($kind:expr, $B:ident, $device:ident => $body:expr) => {
        match $kind {
            fmnist_trainer::backend::DeviceKind::Cpu => {
                type $B = fmnist_trainer::backend::CpuTrain;
                let $device = Default::default();
                $body
            }
            #[cfg(feature = "cuda")]
            fmnist_trainer::backend::DeviceKind::Cuda => match fmnist_trainer::gpu::preflight() {
                Err(no_gpu) => Err(no_gpu.into()),
                Ok(_) => {
                    type $B = fmnist_trainer::backend::GpuTrain;
                    let $device = Default::default();
                    $body
                }
            },
            #[cfg(not(feature = "cuda"))]
            fmnist_trainer::backend::DeviceKind::Cuda => {
                Err(fmnist_trainer::usage::UsageError::NoCuda.into())
            }
        }
    };
}

mod eval;
mod export;
mod fit;
mod show;

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
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model; writes the checkpoint, metrics.csv and curves.png into --out.
    Fit(fit::FitArgs),
    /// Accuracy and confusion matrix of a trained model on the test set or given files.
    Eval(eval::EvalArgs),
    /// Draw up to 100 images as a 10x10 grid (the notebook's first figure), with a model's
    /// predictions if given.
    Show(show::ShowArgs),
    /// Write a trained run's model as ONNX and/or an int8 blob for the runtime, or quantize an
    /// exported ONNX file again (`--from-onnx`, for example with `--weight-bits 7`).
    Export(export::ExportArgs),
    /// Fit the softmax temperature of exported files (int8 blobs, ONNX) on the validation
    /// split and rewrite each with it, atomically; upgrades format 1 blobs to format 2.
    Calibrate(export::CalibrateArgs),
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
        /// The model kind (the shipped `models/edge.*` are an `edge14`).
        #[arg(long, value_enum, default_value = "edge14")]
        model: ModelKind,
    },
}

#[derive(Args)]
pub struct DataArgs {
    /// Directory with the IDX files (raw or .gz) or the competition's CSV files.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data: PathBuf,
}

pub fn run(cli: Cli, matches: &ArgMatches) -> anyhow::Result<()> {
    match cli.command {
        Command::Fit(args) => {
            let given = matches
                .subcommand_matches("fit")
                .map(fit::options_given)
                .unwrap_or_default();
            fit::fit(args, given)
        }
        Command::Eval(args) => {
            on_backend!(args.device, B, device => eval::eval_on::<B>(&args, &device))
        }
        Command::Show(args) => show::show(&args),
        Command::Export(args) => export::export_run(&args),
        Command::Calibrate(args) => export::calibrate_files(&args),
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
