//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};

use fmnist_runtime::dataset::{LabeledImages, DEFAULT_DATA_DIR};
use fmnist_trainer::backend::CpuTrain;
use fmnist_trainer::config::recipe::Recipe;
use fmnist_trainer::model::ModelKind;
use fmnist_trainer::run::RunInfo;
use fmnist_trainer::train::{self, Output, Splits};

/// The real dataset: `FMNIST_DATA`, or the Debian package's directory.
pub fn data_dir() -> PathBuf {
    let dir =
        PathBuf::from(std::env::var("FMNIST_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into()));
    assert!(
        dir.is_dir(),
        "{} is missing: run scripts/test.sh (it installs dataset-fashion-mnist) or set FMNIST_DATA",
        dir.display()
    );
    dir
}

/// Trains `kind` with `recipe` on `train`/`val` into `dir` (seed `seed`) and returns the run.
pub fn fit(
    kind: ModelKind,
    recipe: Recipe,
    seed: u64,
    train: LabeledImages,
    val: LabeledImages,
    dir: &Path,
) -> (RunInfo, fmnist_trainer::model::Classifier<CpuTrain>) {
    let mut info = RunInfo::new(
        kind,
        recipe,
        seed,
        "flex",
        format!("trainer fit --model {}", kind.name()),
    );
    info.train_images = train.len();
    info.val_images = val.len();
    let out = Output {
        dir: dir.to_path_buf(),
        progress: false,
    };
    let model = train::fit::<CpuTrain>(
        &mut info,
        &Splits { train, val },
        &out,
        None,
        &Default::default(),
    )
    .unwrap();
    (info, model)
}
