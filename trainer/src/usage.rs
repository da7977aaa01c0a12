//! Mistakes in how the tools were called, as opposed to bad data or files: `trainer` exits
//! with code 2 for these (1 for everything else that fails).

use std::path::{Path, PathBuf};

use crate::backend::DeviceKind;
use crate::config::recipe::RecipeError;

/// An error that is the user's usage, not the data's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// An output path that cannot be written, or would break an input or a run (the
    /// probes of [`crate::util::files`]).
    #[error(transparent)]
    File(#[from] crate::util::files::FileError),
    /// `--val` takes every training image.
    #[error("--val {0} leaves no training images")]
    NoTrainingImages(usize),
    /// `--val 0` for `trainer fit`, which judges every epoch on the validation split.
    #[error(
        "--val {0} leaves no validation images: fit judges every epoch, the best epoch and \
         --patience on them"
    )]
    NoValidationToJudge(usize),
    /// `--test-limit 0`: the test accuracy recorded would be of no image.
    #[error("--test-limit 0 tests no image (leave it out to test every image)")]
    NoTestImages,
    /// `--val 0` for `trainer calibrate`, which fits on the validation split.
    #[error("--val {0} leaves no validation images to fit the temperature on")]
    NoValidationImages(usize),
    /// `--device cuda` in a build without CUDA.
    #[error(
        "this trainer was built without CUDA; rebuild it with `cargo build --release --features cuda`"
    )]
    NoCuda,
    /// An option given with `--resume` that would make it another run.
    #[error(
        "{option}: --resume continues a run with its own options (only {changeable} may \
         change); remove it, or start a new run"
    )]
    ChangedOnResume {
        /// The option as written.
        option: String,
        /// The options that may change, as written (from [`crate::resume::RULES`]).
        changeable: String,
    },
    /// `--resume --epochs N` with fewer epochs than the run has trained.
    #[error("--epochs {epochs}: the run has already trained {done} epochs")]
    FewerEpochs {
        /// Asked for.
        epochs: usize,
        /// Trained.
        done: usize,
    },
    /// A new run's `--out` that holds a run.
    #[error(
        "{}: holds {what}; continue it with `trainer fit --resume {}` (add --epochs N to \
         extend it), give --force to replace it, or choose another --out",
        .dir.display(), .dir.display()
    )]
    RunExists {
        /// The run directory.
        dir: PathBuf,
        /// What it holds ("a finished mlp run (5 of 5 epochs)").
        what: String,
    },
    /// A new run's `--out` that holds the files of a run killed while it saved its first
    /// epoch (no `resume.state`): not resumable.
    #[error(
        "{}: holds the files of a run stopped before its first epoch was saved whole (there \
         is no resume.state), which cannot be resumed: give --force to replace it, or choose \
         another --out",
        .0.display()
    )]
    UnsavedRun(PathBuf),
    /// A recipe no run can train with.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// A picture named with an extension other than .png, .jpg or .jpeg.
    #[error("{}: name the picture .png (PNG) or .jpg/.jpeg (JPEG)", .0.display())]
    PictureFormat(PathBuf),
    /// `trainer show --start` at or past the end of the split.
    #[error("--start {start}: the {split} split has {images} images")]
    StartPastEnd {
        /// The first image asked for.
        start: usize,
        /// The split's name.
        split: &'static str,
        /// Its size.
        images: usize,
    },
}

/// Refuses `--device cuda` in a build without CUDA before any work is done.
pub fn check_device(device: DeviceKind) -> Result<(), UsageError> {
    if device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
        return Err(UsageError::NoCuda);
    }
    Ok(())
}

/// An output file must not be a directory, its directory must exist, and a file must be
/// creatable there: proven by creating and removing a probe file
/// ([`crate::util::files::probe_file`]), before any work.
pub fn check_writable(path: &Path) -> Result<(), UsageError> {
    Ok(crate::util::files::probe_file(path)?)
}
