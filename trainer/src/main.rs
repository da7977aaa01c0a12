//! `trainer`: fit, evaluate and inspect Fashion-MNIST classifiers. A thin layer over the
//! `fmnist_trainer` library: `cli` parses and dispatches each command; this file maps
//! what ends it to an exit code.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use fmnist_trainer::config::recipe;
use fmnist_trainer::train;
use fmnist_trainer::usage::UsageError;
use fmnist_trainer::util::files;

mod cli;

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

fn main() -> ExitCode {
    // A bug should still end in one line and a documented exit code, not a backtrace and 101.
    std::panic::set_hook(Box::new(|info| {
        let what = info.to_string().replace('\n', " ");
        eprintln!("error: internal error ({what}); please report it");
        std::process::exit(i32::from(EXIT_FAILURE));
    }));
    let matches = match cli::Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => return usage_error(&error),
    };
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    match cli::run(cli, &matches) {
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
