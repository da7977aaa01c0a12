//! `trainer eval`: a run's accuracy, loss and confusion matrix on a set, as tables or JSON,
//! and optionally every image's logits.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use fmnist_runtime::dataset::{self, LabeledImages, Split, DEFAULT_DATA_DIR};
use fmnist_trainer::backend::DeviceKind;
use fmnist_trainer::eval::Evaluation;
use fmnist_trainer::run::{self, RunInfo};
use fmnist_trainer::say;
use fmnist_trainer::usage::check_writable;
use fmnist_trainer::util::files;

#[derive(Args)]
pub struct EvalArgs {
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
    pub device: DeviceKind,
}

pub fn eval_on<B: AutodiffBackend>(args: &EvalArgs, device: &B::Device) -> anyhow::Result<()> {
    // `--logits -`: standard output.
    let logits_file = args.logits.as_deref().filter(|p| p.as_os_str() != "-");
    if let Some(path) = logits_file {
        check_writable(path)?;
        files::check_outputs(&[path], &[], Some((&args.checkpoint, &run::RUN_FILES[..])))?;
    }
    let (info, model) = run::load_run::<B::InnerBackend>(&args.checkpoint, args.best, device)?;
    let (set, source) = evaluation_set(args)?;
    let started = std::time::Instant::now();
    let evaluation = fmnist_trainer::eval::evaluate(&model, &set, device);
    let seconds = started.elapsed().as_secs_f64();
    match (&args.logits, logits_file) {
        (_, Some(path)) => {
            files::write_output(path, evaluation.logits_csv(&set.labels).as_bytes())?
        }
        (Some(_), None) => std::io::stdout()
            .lock()
            .write_all(evaluation.logits_csv(&set.labels).as_bytes())
            .context("writing the logits to stdout")?,
        (None, None) => {}
    }
    let report = Report {
        args,
        info: &info,
        set: &set,
        source: &source,
        evaluation: &evaluation,
        seconds,
    };
    // With `--logits -` the logits are stdout's; the summary goes to stderr.
    let text = if args.json {
        report.json()?
    } else {
        report.text()
    };
    if args.logits.is_some() && logits_file.is_none() {
        eprintln!("{text}");
    } else {
        say!("{text}");
    }
    Ok(())
}

/// The images `--images`/`--labels` or `--data` name, cut to `--limit`, and where they
/// came from; an empty set is an error naming it.
fn evaluation_set(args: &EvalArgs) -> anyhow::Result<(LabeledImages, PathBuf)> {
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
    Ok((set, source))
}

/// What `trainer eval` found, to print.
struct Report<'a> {
    args: &'a EvalArgs,
    info: &'a RunInfo,
    set: &'a LabeledImages,
    source: &'a PathBuf,
    evaluation: &'a Evaluation,
    seconds: f64,
}

impl Report<'_> {
    /// The epoch whose weights were evaluated.
    fn epoch(&self) -> usize {
        match (&self.info.best, self.args.best) {
            (Some(best), true) => best.epoch,
            _ => self.info.epochs.len(),
        }
    }

    fn json(&self) -> anyhow::Result<String> {
        let confusion = &self.evaluation.confusion;
        let document = serde_json::json!({
            "checkpoint": self.args.checkpoint.display().to_string(),
            "model": self.info.model.name(),
            "epochs": self.info.epochs.len(),
            "best": self.args.best,
            "epoch": self.epoch(),
            "data": self.source.display().to_string(),
            "images": self.set.len(),
            "correct": confusion.correct(),
            "accuracy": confusion.accuracy(),
            "loss": self.evaluation.loss,
            "classes": fmnist_runtime::report::class_figures(confusion),
            "confusion_matrix": confusion.counts,
            "seconds": self.seconds,
            "images_per_second": self.set.len() as f64 / self.seconds,
        });
        Ok(serde_json::to_string_pretty(&document)?)
    }

    fn text(&self) -> String {
        let (info, set, confusion) = (self.info, self.set, &self.evaluation.confusion);
        let weights = match (&info.best, self.args.best) {
            (Some(best), true) => format!("best epoch {} of {}", best.epoch, info.epochs.len()),
            _ => match info.epochs.len() {
                1 => "trained 1 epoch".to_string(),
                n => format!("trained {n} epochs"),
            },
        };
        let mut text = format!(
            "model: {} from {} ({weights})\ndata: {} images from {}\nloss {:.4}\n\n{confusion}\n",
            info.model.name(),
            self.args.checkpoint.display(),
            set.len(),
            self.source.display(),
            self.evaluation.loss,
        );
        if let Some(line) = fmnist_trainer::eval::confusions_line(confusion) {
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str(&format!(
            "{} images in {:.2} s ({:.0} images/s)",
            set.len(),
            self.seconds,
            set.len() as f64 / self.seconds
        ));
        text
    }
}
