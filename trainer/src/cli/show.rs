//! `trainer show`: a grid of images, with a model's predictions if given.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use fmnist_runtime::dataset;
use fmnist_trainer::usage::{check_writable, UsageError};
use fmnist_trainer::{plot, run, say};

use super::DataArgs;

#[derive(Args)]
pub struct ShowArgs {
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

pub fn show(args: &ShowArgs) -> anyhow::Result<()> {
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
