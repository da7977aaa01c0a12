//! `trainer fit`: a new run, or `--resume` of one (the rules: `fmnist_trainer::resume`).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory};
use fmnist_trainer::config::options::FitOptions;
use fmnist_trainer::{fit, resume, train};

use super::Cli;
use crate::EXIT_INTERRUPTED;

#[derive(Args)]
pub struct FitArgs {
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

/// The options of `trainer fit` given on the command line other than `--resume`,
/// `--force` and `--no-progress`: their clap ids, and each as written (`--epochs 9`).
pub fn options_given(matches: &ArgMatches) -> Vec<(String, String)> {
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

pub fn fit(args: FitArgs, given: Vec<(String, String)>) -> anyhow::Result<()> {
    let ended = fit_run(args, given);
    // However it ended (trained, nothing to train, an error, Ctrl-C), the run's lock goes
    // with its file: `.fit.lock` is there only while `fit` runs.
    fmnist_trainer::util::files::unlock_runs();
    ended
}

fn fit_run(args: FitArgs, given: Vec<(String, String)>) -> anyhow::Result<()> {
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
