//! `runtime`: classify 28x28 Fashion-MNIST images with an int8 blob or an ONNX model.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use fmnist_runtime::classifier::Classifier;
use fmnist_runtime::dataset::{self, Split, DEFAULT_DATA_DIR};
use fmnist_runtime::preprocess::{self, Invert};
use fmnist_runtime::{Confusion, Isa, CLASS_NAMES, IMAGE_PIXELS};

mod describe;
mod predict;

/// The system allocator, with the memory budget that bounds what tract may take while it
/// loads or runs an ONNX file (`fmnist_runtime::onnx::MAX_MODEL_MEMORY`).
#[global_allocator]
static ALLOCATOR: fmnist_runtime::budget::Budgeted<std::alloc::System> =
    fmnist_runtime::budget::Budgeted(std::alloc::System);

/// The shipped `edge` int8 model, used when no `--model` is given.
static DEFAULT_MODEL: &[u8] = include_bytes!("../../../models/edge.q8");
const DEFAULT_MODEL_NAME: &str = "models/edge.q8 (built in)";

/// Exit code of a failure: an unusable model, dataset or image file (with several images,
/// the others are still classified). The same as `trainer`'s; bad usage is clap's 2, as
/// in `trainer`.
const EXIT_FAILURE: u8 = 1;
/// Exit code of bad usage, as clap's.
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "runtime",
    version,
    about = "Classify Fashion-MNIST images with an int8 blob or an ONNX model"
)]
#[command(
    after_help = "Exit codes: 0 success; 1 failure (a model, data or image file that cannot be used; \
                  the other images are still classified); 2 bad usage. The same as trainer's."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify image files (PNG, JPEG, ...; any size and colour type) or every image in a directory.
    Classify(ClassifyArgs),
    /// Accuracy and confusion matrix on the test set or a CSV file.
    Eval(EvalArgs),
    /// Predict every image of a data file and write a submission CSV (`id,label`).
    Predict(PredictArgs),
    /// What a model file holds: kind, format, inputs and outputs, layers, sizes, recorded
    /// accuracy.
    Info {
        /// The model file (int8 blob or ONNX) [default: the built-in edge model].
        file: Option<PathBuf>,
        /// Describe an int8 blob as these kernels run it (see `classify --help`).
        #[arg(long, value_name = "NAME", value_parser = parse_kernels)]
        kernels: Option<Isa>,
    },
}

#[derive(Args)]
struct ModelArg {
    /// Model file: an int8 blob or an ONNX file, recognised from its content [default: the built-in edge model].
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Run an int8 blob with these kernels instead of the fastest this CPU has (the same
    /// results, bit for bit): portable, avx2, avx-vnni, avx512-vnni or amx-int8.
    #[arg(long, value_name = "NAME", value_parser = parse_kernels)]
    kernels: Option<Isa>,
}

/// An [`Isa`] by its name.
fn parse_kernels(name: &str) -> Result<Isa, String> {
    Isa::ALL
        .into_iter()
        .find(|isa| isa.name() == name)
        .ok_or_else(|| {
            let names: Vec<_> = Isa::ALL.iter().map(|isa| isa.name()).collect();
            format!(
                "no kernels are named {name:?}; the names: {}",
                names.join(", ")
            )
        })
}

#[derive(Args)]
struct ClassifyArgs {
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

#[derive(Args)]
struct EvalArgs {
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

#[derive(Args)]
struct PredictArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The images: a CSV file (the competition's `id,pixel1..pixel784` test data, or
    /// `label,pixel1..`, or pixels alone), an IDX image file (raw or gzipped), or a data
    /// directory (its test images). Ids are the `id` column when there is one, otherwise
    /// the row index counted from 0.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// The CSV file to write: a header `id,label`, then one row per image (the label is the
    /// predicted class index, 0..9). Written to a temporary file, renamed over FILE when
    /// complete.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

thread_local! {
    /// The message of the last panic on the main thread, for the report in `main`.
    static PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn main() -> ExitCode {
    // A bug should still end in one line and a documented exit code, not a backtrace and 101.
    // On the main thread the panic unwinds, so that the library can catch tract's panics
    // (as an ONNX load error); one that reaches `main` is reported below.
    std::panic::set_hook(Box::new(|info| {
        let what = info.to_string().replace('\n', " ");
        if std::thread::current().name() == Some("main") {
            PANIC.with(|panic| *panic.borrow_mut() = Some(what));
        } else {
            eprintln!("error: internal error ({what}); please report it");
            std::process::exit(i32::from(EXIT_FAILURE));
        }
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let result = std::panic::catch_unwind(|| match cli.command {
        Command::Classify(args) => classify(&args),
        Command::Eval(args) => eval(&args),
        Command::Predict(args) => predict(&args),
        Command::Info { file, kernels } => info(&ModelArg {
            model: file,
            kernels,
        }),
    });
    let Ok(result) = result else {
        let what = PANIC
            .with(|panic| panic.borrow_mut().take())
            .unwrap_or_default();
        eprintln!("error: internal error ({what}); please report it");
        return ExitCode::from(EXIT_FAILURE);
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.is::<Usage>() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}

/// `--help` and `--version` as clap prints them; a usage error as one line on stderr (clap's
/// first line, then the usage it shows), exit code 2.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // A closed stdout is no failure here either.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            eprintln!(
                "error: a command is needed (classify, eval, predict, info); see 'runtime --help'"
            );
            return ExitCode::from(EXIT_USAGE);
        }
        _ => {}
    }
    // clap's message, over several lines (the arguments missing, a tip), then its usage.
    let rendered = error.render().to_string();
    let lines: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:") && !l.starts_with("For more"))
        .collect();
    let message: Vec<&str> = lines
        .iter()
        .take_while(|l| !l.starts_with("Usage: "))
        .copied()
        .collect();
    let message = if message.is_empty() {
        "error: bad usage".to_string()
    } else {
        message.join(" ")
    };
    let usage = lines
        .iter()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(|u| format!("; usage: {u}"))
        .unwrap_or_default();
    eprintln!("{message}{usage} (see --help)");
    ExitCode::from(EXIT_USAGE)
}

/// The model's bytes and the name to show for it.
fn model_bytes(arg: &ModelArg) -> anyhow::Result<(std::borrow::Cow<'static, [u8]>, String)> {
    match &arg.model {
        Some(path) => {
            let bytes = read_file(path)?;
            Ok((bytes.into(), path.display().to_string()))
        }
        None => Ok((DEFAULT_MODEL.into(), DEFAULT_MODEL_NAME.to_string())),
    }
}

/// The model in `bytes`, run by `kernels` when given (an int8 blob's; this CPU must run them).
fn load<'a>(bytes: &'a [u8], name: &str, kernels: Option<Isa>) -> anyhow::Result<Classifier<'a>> {
    let Some(isa) = kernels else {
        return Ok(Classifier::from_bytes(bytes, Path::new(name))?);
    };
    if !isa.supported() {
        let runs: Vec<_> = Isa::ALL
            .into_iter()
            .filter(|isa| isa.supported())
            .map(Isa::name)
            .collect();
        anyhow::bail!(
            "--kernels {}: this CPU does not run them (it runs: {})",
            isa.name(),
            runs.join(", ")
        );
    }
    let model = Classifier::with_kernels(bytes, Path::new(name), isa)?;
    if let Classifier::Onnx(_) = model {
        anyhow::bail!(
            "--kernels {}: {name} is ONNX, which tract runs; the kernels are the int8 engine's",
            isa.name()
        );
    }
    Ok(model)
}

/// The image files named: files as given, directories expanded to their image files.
fn expand(paths: &[PathBuf]) -> Vec<PathBuf> {
    let is_image = |p: &Path| {
        p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            [
                "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "pgm", "ppm", "pnm",
            ]
            .contains(&e.to_ascii_lowercase().as_str())
        })
    };
    let mut files = Vec::new();
    for path in paths {
        match std::fs::read_dir(path) {
            Ok(entries) if path.is_dir() => {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && is_image(p))
                    .collect();
                found.sort();
                files.extend(found);
            }
            _ => files.push(path.clone()),
        }
    }
    files
}

fn classify(args: &ClassifyArgs) -> anyhow::Result<u8> {
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
        let outcome = read_image(file, invert).and_then(|pixels| {
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
        });
        match outcome {
            Ok((probabilities, micros)) => {
                let order = fmnist_runtime::metrics::ranking(&probabilities);
                let top = &order[..usize::from(args.top)];
                if args.json {
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
                    results.push(result);
                } else {
                    let shown: Vec<String> = top
                        .iter()
                        .map(|&c| format!("{} {:.1}%", CLASS_NAMES[c], probabilities[c] * 100.0))
                        .collect();
                    let timing = if args.timing {
                        format!(" (inference {micros:.1} us)")
                    } else {
                        String::new()
                    };
                    if let Err(e) = writeln!(out, "{shown_name}: {}{timing}", shown.join(", ")) {
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

fn eval(args: &EvalArgs) -> anyhow::Result<u8> {
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

fn predict(args: &PredictArgs) -> anyhow::Result<u8> {
    predict::check_out(&args.out)?;
    let (bytes, name) = model_bytes(&args.model)?;
    let model = load(&bytes, &name, args.model.kernels)?;
    let set = predict::load(&args.data)?;
    if set.ids.is_empty() {
        anyhow::bail!("{}: no images", args.data.display());
    }
    let started = std::time::Instant::now();
    let bar = progress_bar(set.ids.len());
    let mut labels = Vec::with_capacity(set.ids.len());
    for chunk in set.images.chunks(CHUNK * IMAGE_PIXELS) {
        let probabilities = model.probabilities(chunk)?;
        labels.extend(
            probabilities
                .iter()
                .map(|p| fmnist_runtime::metrics::argmax(p)),
        );
        bar.inc(probabilities.len() as u64);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    predict::write_submission(&args.out, &args.data, &set.ids, &labels)?;
    eprintln!(
        "{}: {} predictions by {name} (ids: {}), {seconds:.2} s",
        args.out.display(),
        labels.len(),
        set.id_source
    );
    Ok(0)
}

/// Images per model call in `eval` and `predict`.
const CHUNK: usize = 500;

/// A progress bar on stderr when it is a terminal, hidden otherwise.
fn progress_bar(len: usize) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(len as u64)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

fn info(arg: &ModelArg) -> anyhow::Result<u8> {
    let (bytes, name) = model_bytes(arg)?;
    let model = load(&bytes, &name, arg.kernels)?;
    let mut text = String::new();
    writeln!(text, "file: {name} ({} bytes)", bytes.len())?;
    match &model {
        Classifier::Int8(plan) => {
            let m = plan.model();
            match fmnist_runtime::blob::version(&bytes) {
                Some(fmnist_runtime::blob::FORMAT_VERSION_1) => writeln!(
                    text,
                    "format: int8 blob, version 1 (no temperature: probabilities uncalibrated; \
                     `trainer calibrate FILE` upgrades it)"
                )?,
                version => writeln!(
                    text,
                    "format: int8 blob, version {}",
                    version.unwrap_or(fmnist_runtime::blob::FORMAT_VERSION)
                )?,
            }
            writeln!(text, "kind: {}", m.kind)?;
            writeln!(
                text,
                "parameters: {}, multiply-accumulates per image: {}",
                m.parameters, m.macs
            )?;
            let activations = plan.plan().arena_bytes();
            writeln!(
        text,
                "arena: {} bytes ({activations} for activations, as on firmware; {} of scratch for the {} kernels)",
                plan.arena_bytes(),
                plan.arena_bytes() - activations,
                plan.isa().name()
            )?;
            writeln!(text, "kernels: {}{}", plan.isa().name(), avx2_note(plan))?;
            let accuracy =
                |a: Option<f32>| a.map_or("not recorded".into(), |a| format!("{:.2}%", a * 100.0));
            writeln!(
                text,
                "test accuracy at export: float {}, int8 {}",
                accuracy(m.float_accuracy),
                accuracy(m.int8_accuracy)
            )?;
            writeln!(
                text,
                "calibrated on {} training images; input scale {:e}",
                m.calibration_images, m.input_scale
            )?;
            writeln!(
                text,
                "probabilities: softmax(logits / {}) (temperature{})",
                m.temperature,
                if m.temperature == 1.0 {
                    ", 1 = uncalibrated"
                } else {
                    " fitted on the validation split"
                }
            )?;
            writeln!(text, "layers:")?;
            for layer in &m.layers {
                let line = match layer {
                    fmnist_runtime::blob::Layer::Conv(c) => format!(
                        "Conv {}->{} {}x{} pad {} on {}x{} ({})",
                        c.in_channels,
                        c.out_channels,
                        c.kernel,
                        c.kernel,
                        c.padding,
                        c.in_height,
                        c.in_width,
                        activation(c.requant.output)
                    ),
                    fmnist_runtime::blob::Layer::Linear(l) => {
                        format!(
                            "Linear {}->{} ({})",
                            l.inputs,
                            l.outputs,
                            activation(l.requant.output)
                        )
                    }
                    fmnist_runtime::blob::Layer::MaxPool { size } => {
                        format!("MaxPool {size}x{size}")
                    }
                    fmnist_runtime::blob::Layer::Flatten => "Flatten".into(),
                };
                writeln!(text, "  {line}")?;
            }
        }
        Classifier::Onnx(onnx) => {
            writeln!(text, "format: ONNX (run through tract)")?;
            let work = onnx.work();
            writeln!(
                text,
                "work: {} multiply-accumulates per image in {} nodes (at most {} accepted)",
                work.macs,
                work.nodes,
                fmnist_runtime::onnx::MAX_MACS
            )?;
            let mut keys: Vec<_> = onnx.metadata().iter().collect();
            keys.sort();
            if !keys.is_empty() {
                writeln!(text, "metadata:")?;
            }
            for (key, value) in keys {
                writeln!(text, "  {key}: {value}")?;
            }
            text.push_str(&describe::onnx(&bytes).map_err(|e| anyhow::anyhow!("{name}: {e:#}"))?);
        }
    }
    emit(&text)
}

/// What follows a layer's accumulation, in words.
fn activation(output: fmnist_runtime::blob::Output) -> String {
    use fmnist_runtime::blob::Output;
    match output {
        Output::Relu => "ReLU, u8 output".into(),
        Output::LeakyRelu { slope_q15 } => format!(
            "LeakyReLU with slope {}, i8 output",
            f64::from(slope_q15) / 32768.0
        ),
        Output::Logits => "i32 logits".into(),
    }
}

/// Writes `text` to stdout, its control characters other than line ends escaped (a
/// model's kind, metadata and names are the file's, and must not reach the terminal as
/// escape sequences); a reader that has gone (a closed pipe: `| head -1`) ends the command
/// quietly with success, as `classify` does; any other failure (a full disk) is an error.
fn emit(text: &str) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    match out
        .write_all(printable(text).as_bytes())
        .and_then(|()| out.flush())
    {
        Err(e) => stdout_failure(e),
        Ok(()) => Ok(0),
    }
}

/// What a failed write to stdout means: a closed pipe ends the command quietly with
/// success; anything else (`> /dev/full`: no space) is a failure, exit code 1.
fn stdout_failure(error: std::io::Error) -> anyhow::Result<u8> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(0)
    } else {
        Err(anyhow::anyhow!("writing to stdout: {error}"))
    }
}

/// `text` with every control character but the line end escaped as Rust writes it
/// (`\u{1b}` for ESC).
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// How standard input is named in `classify`'s output and errors.
const STDIN_NAME: &str = "<stdin>";

/// Whether `path` is `-`, standard input.
fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// One image's pixels, prepared for the model; an error is one line naming the file.
fn read_image(file: &Path, invert: Invert) -> Result<[u8; IMAGE_PIXELS], String> {
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

/// A usage error found after parsing (exit code 2).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Refuses anything but a regular file (or a link to one) before it is opened, as the
/// dataset readers do.
fn regular_file(path: &Path) -> anyhow::Result<()> {
    Ok(dataset::regular_file(path)?)
}

/// The largest model file read (int8 blob or ONNX): 64 MiB. The shipped models take
/// 26 KB to 1.5 MB; a larger file is refused on its size, before it is read.
const MAX_MODEL_BYTES: u64 = 64 << 20;

/// A model file's bytes, once it is known to be a regular file of at most
/// [`MAX_MODEL_BYTES`] (the size checked before reading and again while reading).
fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let file = dataset::open_regular(path)?;
    let size = file
        .metadata()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .len();
    let too_large = |size: u64| {
        anyhow::anyhow!(
            "{}: {size} bytes, more than the {MAX_MODEL_BYTES} read as a model",
            path.display()
        )
    };
    if size > MAX_MODEL_BYTES {
        return Err(too_large(size));
    }
    let mut bytes = Vec::new();
    file.take(MAX_MODEL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// How the AVX2 tier multiplies the blob's layers: byte-wise where the weights allow
/// (7-bit weights), else widened to 16 bits, which a 7-bit blob would avoid.
fn avx2_note(plan: &fmnist_runtime::FastPlan<'_>) -> String {
    if plan.isa() != Isa::Avx2 {
        return String::new();
    }
    let hint = "a blob with 7-bit weights (`trainer export --weight-bits 7`) runs faster here";
    match (plan.bytewise_layers(), plan.accelerated_layers()) {
        (bytes, all) if bytes == all => {
            format!(" (byte-wise, `vpmaddubsw`, in all {all} layers it runs)")
        }
        (0, _) => format!(" (16-bit, `vpmaddwd`: the weights need 8 bits; {hint})"),
        (bytes, all) => {
            format!(" (byte-wise in {bytes} of {all} layers, 16-bit in the others; {hint})")
        }
    }
}
