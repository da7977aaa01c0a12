//! Mistakes in how the tools were called, as opposed to bad data or files: `trainer` exits
//! with code 2 for these (1 for everything else that fails).

use std::path::{Path, PathBuf};

use crate::backend::DeviceKind;
use crate::recipe::RecipeError;

/// An error that is the user's usage, not the data's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// An output file named by a directory.
    #[error("{}: is a directory, expected a file name", .0.display())]
    IsDirectory(PathBuf),
    /// An output file in a directory that does not exist.
    #[error("{}: the directory {} does not exist", .path.display(), .dir.display())]
    NoDirectory {
        /// The file.
        path: PathBuf,
        /// Its missing directory.
        dir: PathBuf,
    },
    /// `--val` takes every training image.
    #[error("--val {0} leaves no training images")]
    NoTrainingImages(usize),
    /// `--device cuda` in a build without CUDA.
    #[error(
        "this trainer was built without CUDA; rebuild it with `cargo build --release --features cuda`"
    )]
    NoCuda,
    /// Options given with `--resume`, which continues with the run's own.
    #[error("--resume continues a run with its own options; remove {}", .0.join(" "))]
    OptionsWithResume(Vec<String>),
    /// A recipe no run can train with.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
}

/// Refuses `--device cuda` in a build without CUDA before any work is done.
pub fn check_device(device: DeviceKind) -> Result<(), UsageError> {
    if device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
        return Err(UsageError::NoCuda);
    }
    Ok(())
}

/// An output file must not be a directory, and its directory must exist.
pub fn check_writable(path: &Path) -> Result<(), UsageError> {
    if path.is_dir() {
        return Err(UsageError::IsDirectory(path.to_path_buf()));
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(UsageError::NoDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        _ => Ok(()),
    }
}
