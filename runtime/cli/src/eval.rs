//! `runtime eval`: a model on a labelled set: confusion matrix, per-class figures,
//! accuracy and speed (or one JSON document).

use super::*;

#[derive(Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    model: ModelArg,
    /// A data directory (its test split) or a CSV file with a label column.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// Evaluate only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// One JSON document on stdout instead of text: accuracy, per-class figures, confusion
    /// matrix, images per second.
    #[arg(long)]
    json: bool,
}

pub(crate) fn eval(args: &EvalArgs) -> anyhow::Result<u8> {
    let (bytes, name) = model_bytes(&args.model)?;
    let model = load(&bytes, &name, args.model.kernels)?;
    // The dataset readers refuse a named pipe or a device themselves.
    let set = match dataset::load_path(&args.data, Split::Test) {
        Err(error @ dataset::DatasetError::NoLabels { .. }) => {
            return Err(anyhow::anyhow!(
                "{error}; `runtime predict --data {} --out FILE` writes predictions for it",
                args.data.display()
            ))
        }
        other => other?,
    };
    let set = match args.limit {
        Some(limit) => set.truncated(limit),
        None => set,
    };
    if set.is_empty() {
        anyhow::bail!("{}: no images", args.data.display());
    }
    let started = std::time::Instant::now();
    let mut confusion = Confusion::default();
    let bar = progress_bar(set.len());
    for (chunk_index, chunk) in set.images.chunks(CHUNK * IMAGE_PIXELS).enumerate() {
        let probabilities = model.probabilities(chunk)?;
        for (i, p) in probabilities.iter().enumerate() {
            let predicted = fmnist_runtime::metrics::argmax(p);
            confusion.record(usize::from(set.labels[chunk_index * CHUNK + i]), predicted);
        }
        bar.inc(probabilities.len() as u64);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let images = set.len() as f64;
    let kind = model.kind().unwrap_or("unknown kind");
    if args.json {
        let document = serde_json::json!({
            "model": name,
            "format": model.format(),
            "kind": model.kind(),
            "data": args.data.display().to_string(),
            "images": set.len(),
            "correct": confusion.correct(),
            "accuracy": confusion.accuracy(),
            "classes": fmnist_runtime::report::class_figures(&confusion),
            "confusion_matrix": confusion.counts,
            "seconds": seconds,
            "images_per_second": images / seconds,
            "us_per_image": seconds * 1e6 / images,
        });
        return emit(&format!("{}\n", serde_json::to_string_pretty(&document)?));
    }
    let mut text = String::new();
    writeln!(text, "model: {name} ({}, {kind})", model.format())?;
    writeln!(
        text,
        "data: {} images from {}",
        set.len(),
        args.data.display()
    )?;
    writeln!(text)?;
    writeln!(text, "{confusion}")?;
    writeln!(
        text,
        "{} images in {seconds:.2} s: {:.0} images/s, {:.1} us per image",
        set.len(),
        images / seconds,
        seconds * 1e6 / images
    )?;
    emit(&text)
}
