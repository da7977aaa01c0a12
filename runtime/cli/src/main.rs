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

mod bench;
mod classify;
mod describe;
mod eval;
mod info;
mod predict;

/// The system allocator, with the memory budget that bounds what tract may take while it
/// loads or runs an ONNX file (`fmnist_runtime::onnx::MAX_MODEL_MEMORY`).
#[global_allocator]
static ALLOCATOR: fmnist_runtime::budget::Budgeted<std::alloc::System> =
    fmnist_runtime::budget::Budgeted(std::alloc::System);

/// The shipped `edge` int8 model, used when no `--model` is given.
static DEFAULT_MODEL: &[u8] = fmnist_runtime::models::EDGE;
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
    Classify(classify::ClassifyArgs),
    /// Accuracy and confusion matrix on the test set or a CSV file.
    Eval(eval::EvalArgs),
    /// Predict every image of a data file and write a submission CSV (`id,label`).
    Predict(predict::PredictArgs),
    /// Latency and throughput of a model, timed call by call (as benchmark_model, benchmark_app).
    Bench(bench::BenchArgs),
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
        Command::Classify(args) => classify::classify(&args),
        Command::Eval(args) => eval::eval(&args),
        Command::Predict(args) => predict::predict(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::Info { file, kernels } => info::info(&ModelArg {
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
                "error: a command is needed (classify, eval, predict, bench, info); see 'runtime --help'"
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
            if path.is_dir()
                && ["run.json", "model.mpk"]
                    .iter()
                    .any(|f| path.join(f).exists())
            {
                anyhow::bail!(
                    "{}: this is a training run directory (its model.mpk is a burn MessagePack \
                     checkpoint), which the runtime does not run: {}",
                    path.display(),
                    checkpoint_hint(path)
                );
            }
            let bytes = read_file(path)?;
            Ok((bytes.into(), path.display().to_string()))
        }
        None => Ok((DEFAULT_MODEL.into(), DEFAULT_MODEL_NAME.to_string())),
    }
}

/// Whether `bytes` are a burn record as `trainer fit` writes `model.mpk` and `best.mpk`
/// (burn's `NamedMpkBytesRecorder`): a MessagePack map (fixmap `0x80..=0x8f`, map16
/// `0xde`, map32 `0xdf`) whose first key is the string "metadata" (fixstr `0xa8`). A
/// run's `model.mpk` starts `83 a8 6d 65 74 61 64 61 74 61`: {"metadata", "item", ...}.
fn is_burn_record(bytes: &[u8]) -> bool {
    let key_at = match bytes.first() {
        Some(0x80..=0x8f) => 1,
        Some(0xde) => 3,
        Some(0xdf) => 5,
        _ => return false,
    };
    bytes
        .get(key_at..)
        .is_some_and(|rest| rest.starts_with(b"\xa8metadata"))
}

/// What to do with the training checkpoint of run directory `dir`.
fn checkpoint_hint(dir: &Path) -> String {
    format!(
        "export it with `trainer export --checkpoint {} --q8 FILE` or `--onnx FILE`",
        dir.display()
    )
}

/// The model in `bytes`, run by `kernels` when given (an int8 blob's; this CPU must run them).
fn load<'a>(bytes: &'a [u8], name: &str, kernels: Option<Isa>) -> anyhow::Result<Classifier<'a>> {
    if is_burn_record(bytes) {
        let path = Path::new(name);
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let best = path.file_name().is_some_and(|f| f == "best.mpk");
        anyhow::bail!(
            "{name}: this is a training checkpoint (burn MessagePack), which the runtime does \
             not run: {}{}",
            checkpoint_hint(dir),
            if best {
                " (with --best for best.mpk)"
            } else {
                ""
            }
        );
    }
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
