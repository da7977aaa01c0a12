//! `runtime classify`: image files, folders or standard input, each prepared as the
//! dataset was made and classified, one line (or one JSON document) for all.

use super::*;

#[derive(Args)]
pub(crate) struct ClassifyArgs {
    /// Image files or directories; `-` reads one image from standard input (64 MiB at most,
    /// as for files).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArg,
    /// Show the K most likely classes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=10))]
    top: u8,
    /// One JSON document on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Always invert gray levels (by default: when the background is light).
    #[arg(long, conflicts_with = "no_invert")]
    invert: bool,
    /// Never invert gray levels.
    #[arg(long)]
    no_invert: bool,
    /// Also show each image's inference time (the model call alone, without reading and
    /// preparing the image), in microseconds.
    #[arg(long)]
    timing: bool,
}

pub(crate) fn classify(args: &ClassifyArgs) -> anyhow::Result<u8> {
    let (bytes, name) = model_bytes(&args.model)?;
    let model = load(&bytes, &name, args.model.kernels)?;
    let invert = match (args.invert, args.no_invert) {
        (true, _) => Invert::Yes,
        (_, true) => Invert::No,
        _ => Invert::Auto,
    };
    let files = expand(&args.images);
    if files.is_empty() {
        anyhow::bail!(
            "no image files in {}",
            args.images
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if files.iter().filter(|f| is_stdin(f)).count() > 1 {
        return Err(Usage("`-` (standard input) can be given once".into()).into());
    }
    let mut failed = 0usize;
    let mut results = Vec::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for file in &files {
        let shown_name = if is_stdin(file) {
            STDIN_NAME.to_string()
        } else {
            file.display().to_string()
        };
        let outcome = classify_one(&model, file, &shown_name, invert);
        match outcome {
            Ok((probabilities, micros)) => {
                let order = fmnist_runtime::metrics::ranking(&probabilities);
                let top = &order[..usize::from(args.top)];
                if args.json {
                    results.push(json_result(&shown_name, &probabilities, top, micros, args));
                } else {
                    let line = text_line(&shown_name, &probabilities, top, micros, args);
                    if let Err(e) = writeln!(out, "{line}") {
                        // A reader that has gone ends quietly; a full disk is a failure.
                        return stdout_failure(e);
                    }
                }
            }
            Err(problem) => {
                failed += 1;
                if args.json {
                    results.push(serde_json::json!({"file": shown_name, "error": problem}));
                } else {
                    eprintln!("error: {problem}");
                }
            }
        }
    }
    if args.json {
        let document =
            serde_json::json!({"model": name, "format": model.format(), "results": results});
        if let Err(e) = writeln!(out, "{}", serde_json::to_string_pretty(&document)?) {
            return stdout_failure(e);
        }
    }
    if let Err(e) = out.flush() {
        return stdout_failure(e);
    }
    Ok(if failed > 0 { EXIT_FAILURE } else { 0 })
}

/// One image's probabilities and the model call's time in microseconds, or the problem
/// (naming the file).
fn classify_one(
    model: &Classifier,
    file: &Path,
    shown_name: &str,
    invert: Invert,
) -> Result<([f32; 10], f64), String> {
    let pixels = read_image(file, invert)?;
    let started = std::time::Instant::now();
    let probabilities = model
        .probabilities(&pixels)
        .map_err(|e| format!("{shown_name}: {:#}", anyhow::Error::new(e)))?;
    let micros = started.elapsed().as_secs_f64() * 1e6;
    let first = probabilities
        .first()
        .copied()
        .ok_or_else(|| format!("{shown_name}: the model gave no output"))?;
    Ok((first, micros))
}

/// One image's entry of `--json`'s `results`.
fn json_result(
    shown_name: &str,
    probabilities: &[f32; 10],
    top: &[usize],
    micros: f64,
    args: &ClassifyArgs,
) -> serde_json::Value {
    let mut result = serde_json::json!({
        "file": shown_name,
        "class": CLASS_NAMES[top[0]],
        "label": top[0],
        "probability": probabilities[top[0]],
        "top": top.iter().map(|&c| serde_json::json!({"class": CLASS_NAMES[c], "label": c, "probability": probabilities[c]})).collect::<Vec<_>>(),
    });
    if args.timing {
        result["inference_us"] = serde_json::json!(micros);
    }
    result
}

/// One image's line: its name, the top classes with their probabilities, the time.
fn text_line(
    shown_name: &str,
    probabilities: &[f32; 10],
    top: &[usize],
    micros: f64,
    args: &ClassifyArgs,
) -> String {
    let shown: Vec<String> = top
        .iter()
        .map(|&c| format!("{} {:.1}%", CLASS_NAMES[c], probabilities[c] * 100.0))
        .collect();
    let timing = if args.timing {
        format!(" (inference {micros:.1} us)")
    } else {
        String::new()
    };
    format!("{shown_name}: {}{timing}", shown.join(", "))
}

/// Whether a file's name says it is an image (PNG, JPEG, GIF, BMP, TIFF, WebP, PNM).
pub(crate) fn is_image_name(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        [
            "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "pgm", "ppm", "pnm",
        ]
        .contains(&e.to_ascii_lowercase().as_str())
    })
}

/// The image files named: files as given, directories expanded to their image files.
pub(crate) fn expand(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        match std::fs::read_dir(path) {
            Ok(entries) if path.is_dir() => {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && is_image_name(p))
                    .collect();
                found.sort();
                files.extend(found);
            }
            _ => files.push(path.clone()),
        }
    }
    files
}

/// How standard input is named in `classify`'s output and errors.
const STDIN_NAME: &str = "<stdin>";

/// Whether `path` is `-`, standard input.
pub(crate) fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// One image's pixels, prepared for the model; an error is one line naming the file.
pub(crate) fn read_image(file: &Path, invert: Invert) -> Result<[u8; IMAGE_PIXELS], String> {
    if is_stdin(file) {
        return read_stdin_image(invert).map_err(|e| format!("{e:#}"));
    }
    regular_file(file).map_err(|e| format!("{e:#}"))?;
    preprocess::load(file, invert).map_err(|e| format!("{:#}", anyhow::Error::new(e)))
}

/// Reads one image from standard input, at most [`preprocess::MAX_FILE_BYTES`] as for a
/// file, and prepares it exactly as a file: through a private temporary file and
/// [`preprocess::load`], so that the same decoders, limits and preparation apply.
fn read_stdin_image(invert: Invert) -> anyhow::Result<[u8; IMAGE_PIXELS]> {
    use std::io::Read;
    let cap = preprocess::MAX_FILE_BYTES;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("{STDIN_NAME}: cannot read: {e}"))?;
    if bytes.len() as u64 > cap {
        anyhow::bail!("{STDIN_NAME}: more than the {cap} bytes read as an image");
    }
    if bytes.is_empty() {
        anyhow::bail!("{STDIN_NAME}: empty, no image");
    }
    let mut file = tempfile::NamedTempFile::new()
        .map_err(|e| anyhow::anyhow!("{STDIN_NAME}: cannot make a temporary file: {e}"))?;
    file.write_all(&bytes)
        .and_then(|()| file.flush())
        .map_err(|e| anyhow::anyhow!("{STDIN_NAME}: cannot write a temporary file: {e}"))?;
    let temporary = file.path().display().to_string();
    preprocess::load(file.path(), invert).map_err(|e| {
        // The decoder's message names the temporary file; the user gave standard input.
        anyhow::anyhow!(
            "{}",
            format!("{:#}", anyhow::Error::new(e)).replace(&temporary, STDIN_NAME)
        )
    })
}
