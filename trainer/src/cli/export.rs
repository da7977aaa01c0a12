//! `trainer export` (a run's model as ONNX and/or an int8 blob, or an ONNX file quantized
//! again) and `trainer calibrate` (the temperature of exported files).

use std::path::{Path, PathBuf};

use clap::Args;
use fmnist_runtime::dataset::{self, Split};
use fmnist_trainer::export::{self, Exports};
use fmnist_trainer::run;
use fmnist_trainer::say;
use fmnist_trainer::usage::{check_writable, UsageError};
use fmnist_trainer::util::files;

use super::DataArgs;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("outputs").required(true).multiple(true).args(["onnx", "q8"]))]
#[command(group = clap::ArgGroup::new("source").required(true).args(["checkpoint", "from_onnx"]))]
pub struct ExportArgs {
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
pub struct CalibrateArgs {
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

pub fn export_run(args: &ExportArgs) -> anyhow::Result<()> {
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

pub fn calibrate_files(args: &CalibrateArgs) -> anyhow::Result<()> {
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
