//! Resuming a run directory: `resume.state` is verified whole (checksum, description,
//! weights, optimiser state) and checked against the rest of the directory before anything
//! is trained.
//!
//! `resume.state` is written last after every epoch, so it is the one source the rest is
//! checked against: `run.json` must describe the same run (model kind, seed, recipe,
//! options, data sizes, the epochs both hold); if it describes another run, resume refuses
//! and says which file disagrees. A `run.json` or `model.mpk` that is missing, unreadable,
//! corrupt, or of another epoch of the same run (a run killed between writing them) is
//! rewritten from `resume.state`, and resume says so. Temporary files a killed run left are
//! removed when the run is prepared ([`crate::fit::prepare`]).

use std::path::Path;

use anyhow::{anyhow, bail, Context};

use crate::backend::CpuTrain;
use crate::config::options::FitOptions;
use crate::run::{
    self, ResumeState, RunInfo, BEST_FILE, MAX_MODEL_BYTES, METRICS_FILE, MODEL_FILE, RESUME_FILE,
    RUN_FILE,
};
use crate::usage::UsageError;
use crate::util::files::{self, read_regular, write_atomic};

/// A run to continue, checked, with what had to be repaired to continue it.
pub struct Resume {
    /// The options the run was started with, writing into its directory.
    pub options: FitOptions,
    /// The run description of its last complete epoch.
    pub info: RunInfo,
    /// Its resume state.
    pub state: ResumeState,
    /// What was repaired, one line each.
    pub notes: Vec<String>,
}

/// Opens the run in `dir` for `trainer fit --resume`: see the module documentation.
pub fn open_resume(dir: &Path) -> anyhow::Result<Resume> {
    let (mut info, state) = run::load_resume(dir)?;
    let options = resume_options(dir, &info, &state)?;
    check_state(&info, &state)?;
    let mut notes = reconcile(dir, &mut info, &state)?;
    notes.extend(check_best(dir, &mut info, &state)?);
    Ok(Resume {
        options,
        info,
        state,
        notes,
    })
}

/// Decodes the weights and the optimiser state of `state` (on the CPU backend) and checks
/// them against the model kind, so that nothing fails once training has started.
fn check_state(info: &RunInfo, state: &ResumeState) -> anyhow::Result<()> {
    let device = Default::default();
    let model = run::model_from_bytes::<CpuTrain>(&state.model, info.model, &device)
        .with_context(|| format!("{}: bad model state", state.path.display()))?;
    let steps = if info.train_images == 0 {
        usize::MAX
    } else {
        run::steps_taken(info, info.train_images)
    };
    run::check_optimizer::<CpuTrain>(&state.optimizer, &info.recipe, &model, steps, &device)
        .with_context(|| format!("{}: bad optimiser state", state.path.display()))
}

/// Checks `best.mpk` against the best epoch `info` records. Damaged or missing, it is
/// rewritten from `state` when the best epoch is the last one (the state holds its
/// weights); otherwise the record is dropped and the next epoch starts a new best, and the
/// returned note says so.
fn check_best(
    dir: &Path,
    info: &mut RunInfo,
    state: &ResumeState,
) -> anyhow::Result<Option<String>> {
    let Some(best) = info.best.clone() else {
        return Ok(None);
    };
    let path = dir.join(BEST_FILE);
    let bytes = read_regular(&path, MAX_MODEL_BYTES);
    if bytes
        .as_ref()
        .is_ok_and(|bytes| crate::util::sha256::sha256_hex(bytes) == best.sha256)
    {
        return Ok(None);
    }
    let why = match bytes {
        Err(error) => format!("{error:#}"),
        Ok(_) => format!(
            "{}: not the weights of epoch {} (checksum mismatch)",
            path.display(),
            best.epoch
        ),
    };
    if best.epoch == info.epochs.len()
        && crate::util::sha256::sha256_hex(&state.model) == best.sha256
    {
        write_atomic(&path, &state.model)?;
        return Ok(Some(format!("{why}; rewritten from {RESUME_FILE}")));
    }
    info.best = None;
    Ok(Some(format!(
        "{why}; the best epoch's weights are lost, the best checkpoint starts again with the \
         next epoch"
    )))
}

/// How `run` (from `run.json`) differs from `info` (from `resume.state`) in what makes a
/// run that run, if it does.
pub fn difference(run: &RunInfo, info: &RunInfo) -> Option<String> {
    let field = |what: &str, ours: String, theirs: String| {
        Some(format!("its {what} is {ours}, {RUN_FILE} says {theirs}"))
    };
    if run.model != info.model {
        return field(
            "model kind",
            info.model.name().into(),
            run.model.name().into(),
        );
    }
    if run.seed != info.seed {
        return field("seed", info.seed.to_string(), run.seed.to_string());
    }
    // A resume may extend the run and change where its data lies and what happens at
    // its end: a run.json written before or after such a resume is of the same run.
    let lengthless = |info: &RunInfo| {
        let mut recipe = info.recipe.clone();
        recipe.epochs = 0;
        recipe
    };
    if lengthless(run) != lengthless(info) {
        return field("recipe", info.recipe.to_string(), run.recipe.to_string());
    }
    let fixed = |info: &RunInfo| info.options.clone().map(fixed);
    if fixed(run) != fixed(info) {
        return Some(format!("its options are not those {RUN_FILE} records"));
    }
    if (run.train_images, run.val_images) != (info.train_images, info.val_images) {
        return field(
            "data",
            format!("{} + {} images", info.train_images, info.val_images),
            format!("{} + {}", run.train_images, run.val_images),
        );
    }
    if run.backend != info.backend {
        return field("backend", info.backend.clone(), run.backend.clone());
    }
    let both = run.epochs.len().min(info.epochs.len());
    if let Some(epoch) = (0..both).find(|&e| run.epochs[e] != info.epochs[e]) {
        return Some(format!(
            "its epoch {} has other figures than {RUN_FILE}'s",
            epoch + 1
        ));
    }
    None
}

/// Checks `run.json` and `model.mpk` against the resume state; rewrites from it what is
/// missing, damaged or of another epoch, refuses what belongs to another run. Returns what
/// was rewritten.
fn reconcile(dir: &Path, info: &mut RunInfo, state: &ResumeState) -> anyhow::Result<Vec<String>> {
    let run_path = dir.join(RUN_FILE);
    let model_path = dir.join(MODEL_FILE);
    let epoch = info.epochs.len();
    let model_file = read_regular(&model_path, MAX_MODEL_BYTES);
    let run_file = if std::fs::symlink_metadata(&run_path).is_err() {
        Err(anyhow!("{}: missing", run_path.display()))
    } else {
        run::load_info(dir)
    };
    let mut notes = Vec::new();
    let from_state = format!("rewritten from {RESUME_FILE} (epoch {epoch})");
    let rewrite_run = match &run_file {
        Ok(run) => {
            if let Some(difference) = difference(run, info) {
                let model_agrees = model_file
                    .as_ref()
                    .is_ok_and(|bytes| run::verify_model(bytes, run).is_ok());
                bail!(
                    "{}: not the run in {}: {difference}{}; refusing to resume (move the \
                     file that does not belong away)",
                    state.path.display(),
                    dir.display(),
                    if model_agrees {
                        format!(" (and {MODEL_FILE} is the one {RUN_FILE} records)")
                    } else {
                        String::new()
                    }
                );
            }
            if run.epochs.len() != epoch || run.model_sha256 != info.model_sha256 {
                notes.push(format!(
                    "{}: records {} epoch(s), {RESUME_FILE} {epoch} (the run stopped between \
                     writing them); {from_state}",
                    run_path.display(),
                    run.epochs.len()
                ));
                true
            } else {
                // The test of the run's end, which `resume.state` (written after each
                // epoch) does not hold: without it, the run was stopped before it.
                info.test_accuracy = run.test_accuracy;
                false
            }
        }
        Err(error) => {
            notes.push(format!("{error:#}; {from_state}"));
            true
        }
    };
    let model_ok = model_file
        .as_ref()
        .is_ok_and(|bytes| run::verify_model(bytes, info).is_ok());
    if !model_ok {
        let why = match &model_file {
            Err(error) => format!("{error:#}"),
            Ok(_) => format!(
                "{}: not the weights of {RESUME_FILE}'s epoch {epoch} (corrupt, or \
                 written after it)",
                model_path.display()
            ),
        };
        write_atomic(&model_path, &state.model)?;
        notes.push(format!("{why}; {from_state}"));
    }
    if rewrite_run {
        run::save_info(dir, info)?;
        write_atomic(
            &dir.join(METRICS_FILE),
            run::metrics_csv(&info.epochs).as_bytes(),
        )?;
        crate::plot::run_curves(dir, info);
    }
    Ok(notes)
}

/// What `trainer fit --resume` does with an option of `trainer fit` given again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnResume {
    /// It may change: the run's length (`--epochs`, to extend it), where its data and
    /// teacher now lie (checked by checksum), what happens at the end, `--patience`.
    Changes,
    /// It must say what the run already does, or it is refused.
    Fixed,
    /// As [`OnResume::Fixed`], but not compared between a run's own files: where the run
    /// directory is (a run may be moved).
    Place,
}

/// One option of `trainer fit` (its clap id) and how `--resume` treats it, with how to
/// copy it from one set of options to another and to clear it. [`RULES`] has one for
/// every option; the copying, the check and the error message are built from it.
pub struct OptionRule {
    /// The clap id (the field's name).
    pub id: &'static str,
    /// What `--resume` does with it.
    pub on_resume: OnResume,
    copy: fn(&mut FitOptions, &FitOptions),
    /// Clears it (to its default), for options that are not [`OnResume::Fixed`].
    forget: Option<fn(&mut FitOptions)>,
}

impl OptionRule {
    /// The option as written on the command line: `--export-q8`.
    pub fn flag(&self) -> String {
        format!("--{}", self.id.replace('_', "-"))
    }
}

/// A rule for the option at `$field` of [`FitOptions`], of clap id `$id`.
macro_rules! rule {
    ($id:literal, Fixed, $($field:ident).+) => {
        OptionRule {
            id: $id,
            on_resume: OnResume::Fixed,
            copy: |to, from| to.$($field).+ = from.$($field).+.clone(),
            forget: None,
        }
    };
    ($id:literal, $on:ident, $($field:ident).+) => {
        OptionRule {
            id: $id,
            on_resume: OnResume::$on,
            copy: |to, from| to.$($field).+ = from.$($field).+.clone(),
            forget: Some(|options| options.$($field).+ = Default::default()),
        }
    };
}

/// Every option of `trainer fit` and what `--resume` does with it: the one place these
/// rules are written (`tests` below fails for an option without one).
pub const RULES: &[OptionRule] = &[
    rule!("model", Fixed, model),
    rule!("epochs", Changes, recipe.epochs),
    rule!("batch", Fixed, recipe.batch),
    rule!("lr", Fixed, recipe.lr),
    rule!("optimizer", Fixed, recipe.optimizer),
    rule!("weight_decay", Fixed, recipe.weight_decay),
    rule!("schedule", Fixed, recipe.schedule),
    rule!("label_smoothing", Fixed, recipe.label_smoothing),
    rule!("no_augment", Fixed, recipe.no_augment),
    rule!("augment", Fixed, recipe.augment),
    rule!("replicas", Fixed, recipe.replicas),
    rule!("distill_weight", Fixed, recipe.distill_weight),
    rule!("distill_temperature", Fixed, recipe.distill_temperature),
    rule!("teacher", Changes, teacher),
    rule!("seed", Fixed, seed),
    rule!("out", Place, out),
    rule!("data", Changes, data),
    rule!("val", Fixed, val),
    rule!("train_limit", Fixed, train_limit),
    rule!("test_limit", Changes, test_limit),
    rule!("device", Fixed, device),
    rule!("export", Changes, export),
    rule!("export_q8", Changes, export_q8),
    rule!("weight_bits", Changes, weight_bits),
    rule!("patience", Changes, patience),
];

/// The options `--resume` lets change, as written: `--epochs, --teacher, ... and
/// --patience`.
pub fn changeable() -> String {
    let flags: Vec<String> = RULES
        .iter()
        .filter(|rule| rule.on_resume == OnResume::Changes)
        .map(OptionRule::flag)
        .collect();
    match flags.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => flags.concat(),
    }
}

/// `options` without what `--resume` may change and without the run directory: what is
/// the same in every file of one run.
pub fn fixed(mut options: FitOptions) -> FitOptions {
    for forget in RULES.iter().filter_map(|rule| rule.forget) {
        forget(&mut options);
    }
    options
}

/// The options to continue a run with: the run's own (`stored`), with the options given on
/// the command line (`given`, of which `ids` lists the clap ids and how each was written)
/// that [`RULES`] lets change. Any other option given must say what the run already does,
/// or it is refused, named as written.
pub fn merge_resume_options(
    stored: &FitOptions,
    given: &FitOptions,
    ids: &[(String, String)],
) -> Result<FitOptions, UsageError> {
    let refused = |shown: &String| UsageError::ChangedOnResume {
        option: shown.clone(),
        changeable: changeable(),
    };
    let mut merged = stored.clone();
    for (id, shown) in ids {
        let rule = RULES
            .iter()
            .find(|rule| rule.id == id)
            .ok_or_else(|| refused(shown))?;
        if rule.on_resume == OnResume::Changes {
            (rule.copy)(&mut merged, given);
        } else {
            let mut one = stored.clone();
            (rule.copy)(&mut one, given);
            if !one.same_run(stored) {
                return Err(refused(shown));
            }
        }
    }
    Ok(merged)
}

/// Opens the run in `dir` to continue it ([`crate::resume::open_resume`]: every file
/// verified, what can be repaired from `resume.state` repaired) and says what was repaired.
pub fn open(dir: &Path) -> anyhow::Result<Resume> {
    if dir.is_dir() {
        files::lock_run(dir)?;
    }
    let resume = crate::resume::open_resume(dir)?;
    crate::run::report_temporaries(dir)?;
    for note in &resume.notes {
        crate::say!("{note}");
    }
    Ok(resume)
}

/// What `trainer fit --resume` does with an opened run and the options to continue it with
/// (see [`merge_resume_options`]).
pub enum Continuation {
    /// Train on: the options, the run description (its recipe extended to `--epochs`), the
    /// resume state.
    Train(Box<(FitOptions, RunInfo, ResumeState)>),
    /// Every epoch is done, or the run stopped early: nothing to train (said on stdout).
    Finished,
}

/// Continues the run `resume` with `options`: `--epochs` beyond the run's extends it
/// (schedules that depend on the run's length are stretched over the new length, and
/// the first new epoch's learning rate is printed); fewer epochs than it has trained are
/// refused; a run with nothing left to train is reported, not trained again. `command`
/// is recorded in the run's `resumed` list.
pub fn continue_run(
    resume: Resume,
    options: FitOptions,
    command: &str,
    dir: &Path,
) -> anyhow::Result<Continuation> {
    let mut info = resume.info;
    let done = info.epochs.len();
    let epochs = options
        .recipe
        .apply(options.model)
        .map_err(UsageError::from)?
        .epochs;
    if epochs < done {
        return Err(UsageError::FewerEpochs { epochs, done }.into());
    }
    if epochs != info.recipe.epochs {
        change_length(&mut info, epochs);
    }
    info.options = Some(options.clone());
    if info.finished() && info.test_accuracy.is_none() {
        // Killed after its last epoch was saved, before the test and the exports: they
        // are what is left to do.
        crate::say!(
            "{}: the run trained its {done} epochs but was stopped before it was tested and \
             exported: testing and exporting it now",
            dir.display()
        );
        info.resumed.push(format!("{command} (after epoch {done})"));
        return Ok(Continuation::Train(Box::new((options, info, resume.state))));
    }
    if info.finished() {
        say_finished(&info, &options, dir);
        return Ok(Continuation::Finished);
    }
    info.resumed.push(format!("{command} (after epoch {done})"));
    // Tested again at the new end (an extended run's epochs must not carry the old test).
    info.test_accuracy = None;
    crate::say!(
        "resuming {} after epoch {done} of {}",
        dir.display(),
        info.recipe.epochs
    );
    Ok(Continuation::Train(Box::new((options, info, resume.state))))
}

/// Sets the run's length to `epochs` epochs and says so: schedules that depend on the
/// length are stretched over the new one, and the first new epoch's learning rate is
/// printed.
fn change_length(info: &mut RunInfo, epochs: usize) {
    let done = info.epochs.len();
    let steps = info.train_images.div_ceil(info.recipe.batch).max(1);
    let ended = info.epochs.last().map_or(info.recipe.lr, |m| m.lr);
    let mut extended = info.recipe.clone();
    extended.epochs = epochs;
    crate::say!(
        "{} the run from {} to {epochs} epochs{}",
        if epochs > info.recipe.epochs {
            "extending"
        } else {
            "shortening"
        },
        info.recipe.epochs,
        if extended.schedule == crate::config::recipe::Schedule::Constant {
            String::new()
        } else {
            format!(
                "; the {} schedule now spans {epochs} epochs: epoch {} starts at lr {} \
                 (epoch {done} ended at {})",
                extended.schedule,
                done + 1,
                crate::config::recipe::format_lr(extended.lr_at(done * steps, epochs * steps)),
                crate::config::recipe::format_lr(ended)
            )
        }
    );
    info.recipe = extended;
}

/// Says that a finished run (all epochs, or stopped early) has nothing to train, and how
/// to train on or export it.
fn say_finished(info: &RunInfo, options: &FitOptions, dir: &Path) {
    let done = info.epochs.len();
    let how = if info.stopped_early() {
        format!(
            "stopped early after epoch {done} (--patience {}: no improvement since epoch \
             {}); give a larger --patience to train on",
            options.patience.unwrap_or(0),
            info.best_epoch().map_or(0, |m| m.epoch)
        )
    } else {
        format!(
            "has trained all {done} epochs; extend it with `trainer fit --resume {} \
             --epochs N`",
            dir.display()
        )
    };
    crate::say!(
        "{}: nothing to train: the run {how}{}",
        dir.display(),
        info.test_accuracy
            .map(|a| format!(" (test accuracy {:.2}%)", 100.0 * a))
            .unwrap_or_default()
    );
    if options.export.is_some() || options.export_q8.is_some() {
        crate::say!(
            "to export it: trainer export --checkpoint {} --onnx FILE --q8 FILE",
            dir.display()
        );
    }
}

/// The options to continue the run in `dir` with: those it was started with (from its
/// resume state's run description), writing into `dir`.
pub fn resume_options(
    dir: &Path,
    info: &RunInfo,
    state: &ResumeState,
) -> anyhow::Result<FitOptions> {
    let Some(options) = &info.options else {
        bail!(
            "{}: the run was started by an older trainer that did not record its options \
             in run.json ({:?}); it cannot be resumed, start it again",
            state.path.display(),
            info.command
        );
    };
    Ok(FitOptions {
        out: Some(dir.to_path_buf()),
        ..options.clone()
    })
}

#[cfg(test)]
mod rule_tests;
