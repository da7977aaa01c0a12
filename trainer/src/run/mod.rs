//! A run directory: the model weights (`model.mpk`), what produced them (`run.json`), the
//! per-epoch metrics (`metrics.csv`) and their plot (`curves.png`). Every file is written
//! atomically after each epoch.
//!
//! Nothing read back is trusted: `run.json` records the SHA-256 of `model.mpk`, and
//! `resume.state` carries the SHA-256 of its own contents; both are verified before
//! anything is decoded. Files are read only when they are regular files of plausible size;
//! the recorded recipe and options pass the command line's validation; the weights' record
//! is decoded under a guard that turns any failure of the decoder, a panic included, into
//! an error naming the file, and every tensor's shape is checked against the model kind
//! (the optimiser's moments too, see [`restore_optimizer`]).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::record::{AdaptorRecord, AdaptorRecordV1};
use burn::optim::{Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, SimpleOptimizer};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use sha2::{Digest, Sha256};

use crate::util::files;
use crate::util::sha256::{hex, is_sha256_hex, sha256_hex};

use fmnist_runtime::dataset::LabeledImages;

use crate::config::recipe::{OptimizerKind, Recipe};
use crate::model::{Classifier, Layer, LayerSpec, ModelKind};
use crate::util::files::{read_regular, write_atomic};

mod state;
mod weights;

pub use state::*;
pub use weights::*;

/// The weights file inside a run directory.
pub const MODEL_FILE: &str = "model.mpk";
/// The description of the run inside a run directory.
pub const RUN_FILE: &str = "run.json";
/// Per-epoch metrics inside a run directory.
pub const METRICS_FILE: &str = "metrics.csv";
/// The loss and accuracy plot inside a run directory.
pub const CURVES_FILE: &str = "curves.png";
/// The weights of the epoch with the best validation accuracy so far.
pub const BEST_FILE: &str = "best.mpk";

/// The largest `model.mpk` read (the largest model kind's is about 410 KB).
pub const MAX_MODEL_BYTES: u64 = 16 << 20;
/// The largest `run.json` read (about 200 bytes per epoch).
pub const MAX_RUN_BYTES: u64 = 16 << 20;
/// The largest `resume.state` read (weights, two moments per weight and `run.json`).
pub const MAX_RESUME_BYTES: u64 = 64 << 20;

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (with label smoothing if the recipe has it).
    pub train_loss: f64,
    /// Training accuracy over the epoch (on augmented images if the recipe augments).
    pub train_acc: f64,
    /// Validation loss (plain cross-entropy).
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_acc: f64,
    /// Learning rate at the end of the epoch (its last step's).
    pub lr: f64,
    /// Wall-clock seconds the epoch took (training and validation).
    pub seconds: f64,
    /// The run's length in epochs when this epoch was trained: the span of the schedule
    /// its steps followed (a resume with a larger `--epochs` stretches the schedule for
    /// the epochs after it, not those before), from which [`RunInfo::lr_of_step`] gives
    /// the rate of each of its steps. Absent in runs of older trainers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_epochs: Option<usize>,
}

/// What a run directory says about its model. Unknown fields are refused, so that a
/// damaged field name is an error rather than a field silently missing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    /// The model kind.
    pub model: ModelKind,
    /// The training recipe.
    pub recipe: Recipe,
    /// The seed of initialisation, shuffling and augmentation.
    pub seed: u64,
    /// The backend that trained it (e.g. "flex", "cuda").
    pub backend: String,
    /// Training and validation set sizes.
    pub train_images: usize,
    /// Validation set size.
    pub val_images: usize,
    /// Every completed epoch.
    pub epochs: Vec<EpochMetrics>,
    /// Test accuracy after the last epoch, once measured.
    pub test_accuracy: Option<f64>,
    /// The command line that produced the run (for information).
    pub command: String,
    /// The options of `trainer fit` that started the run, which `trainer fit --resume`
    /// continues with (absent in runs of older trainers and runs made through the library).
    #[serde(default)]
    pub options: Option<crate::config::options::FitOptions>,
    /// The SHA-256 of the `model.mpk` written with this description (lowercase hex), set by
    /// [`save`]; absent in runs of trainers before checksums, which are not loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    /// The SHA-256 of the training and validation images and labels the run trained on
    /// (see [`data_sha256`]); a resumed run must find the same data, wherever it now lies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
    /// The epoch with the best validation accuracy so far, whose weights are in
    /// [`BEST_FILE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<Best>,
    /// The commands that continued the run (`trainer fit --resume ...`), each with the epoch
    /// it continued after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed: Vec<String>,
}

/// The best epoch of a run so far, by validation accuracy (the first of equals).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Best {
    /// Its 1-based number.
    pub epoch: usize,
    /// Its validation accuracy.
    pub val_acc: f64,
    /// The SHA-256 of [`BEST_FILE`] (lowercase hex).
    pub sha256: String,
}

/// The SHA-256 (lowercase hex) of a run's data: the training split's images and labels,
/// then the validation split's, with their counts; the order of images matters.
pub fn data_sha256(train: &LabeledImages, val: &LabeledImages) -> String {
    let mut hasher = Sha256::new();
    for set in [train, val] {
        hasher.update((set.len() as u64).to_le_bytes());
        hasher.update(&set.images);
        hasher.update(&set.labels);
    }
    hex(&hasher.finalize())
}

impl RunInfo {
    /// A run about to start: no epochs yet, no test accuracy, set sizes to be filled in.
    pub fn new(
        model: ModelKind,
        recipe: Recipe,
        seed: u64,
        backend: &str,
        command: String,
    ) -> RunInfo {
        RunInfo {
            model,
            recipe,
            seed,
            backend: backend.into(),
            train_images: 0,
            val_images: 0,
            epochs: Vec::new(),
            test_accuracy: None,
            command,
            options: None,
            model_sha256: None,
            data_sha256: None,
            best: None,
            resumed: Vec::new(),
        }
    }

    /// The epoch with the best validation accuracy (the first of equals), if any.
    pub fn best_epoch(&self) -> Option<&EpochMetrics> {
        self.epochs.iter().filter(|m| m.val_acc.is_finite()).fold(
            None,
            |best: Option<&EpochMetrics>, m| match best {
                Some(b) if b.val_acc >= m.val_acc => Some(b),
                _ => Some(m),
            },
        )
    }

    /// The epochs after which the run was resumed, in order: the `N` of each
    /// `(after epoch N)` that ends an entry of [`RunInfo::resumed`] (one without it is
    /// skipped).
    pub fn resumed_after(&self) -> Vec<usize> {
        self.resumed
            .iter()
            .filter_map(|command| {
                let (_, tail) = command.rsplit_once("(after epoch ")?;
                tail.strip_suffix(')')?.parse().ok()
            })
            .collect()
    }

    /// Training steps per epoch: the training images in batches of the recipe's size
    /// (`None` while the run's training images are not recorded).
    pub fn steps_per_epoch(&self) -> Option<usize> {
        (self.train_images > 0).then(|| self.train_images.div_ceil(self.recipe.batch.max(1)))
    }

    /// The schedule's span that epoch `m` followed: the one it records, else (runs of
    /// older trainers) the recipe's own length when no resume came after `m` (a resume
    /// may have changed the length), else unknown.
    pub fn schedule_epochs_of(&self, m: &EpochMetrics) -> Option<usize> {
        let last_resume = self.resumed_after().into_iter().max().unwrap_or(0);
        m.schedule_epochs
            .or((m.epoch > last_resume).then_some(self.recipe.epochs))
    }

    /// The learning rate step `step` (0-based, from the run's start) was trained with,
    /// when the schedule spanned `schedule_epochs` epochs of `steps_per_epoch` steps: what
    /// the training loop computes.
    pub fn lr_of_step(&self, step: usize, schedule_epochs: usize, steps_per_epoch: usize) -> f64 {
        let recipe = Recipe {
            epochs: schedule_epochs,
            ..self.recipe.clone()
        };
        recipe.lr_at(step, steps_per_epoch.saturating_mul(schedule_epochs))
    }

    /// Epochs since the best one: how long validation accuracy has not improved.
    pub fn epochs_since_best(&self) -> usize {
        self.best_epoch()
            .map_or(0, |best| self.epochs.len().saturating_sub(best.epoch))
    }

    /// Whether the run stopped early: `--patience` epochs without improvement.
    pub fn stopped_early(&self) -> bool {
        let patience = self.options.as_ref().and_then(|o| o.patience);
        patience.is_some_and(|p| {
            self.epochs.len() < self.recipe.epochs && self.epochs_since_best() >= p
        })
    }

    /// Whether there is nothing left to train: every epoch of the recipe done, or stopped
    /// early.
    pub fn finished(&self) -> bool {
        self.epochs.len() >= self.recipe.epochs || self.stopped_early()
    }

    /// Refuses a description no run could have written: a recipe the command line would
    /// refuse, epochs out of order or beyond the recipe's, options that name another model
    /// kind, seed or recipe than the run's, a malformed checksum.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.recipe
            .validate()
            .map_err(|e| anyhow!("its recipe is invalid ({e})"))?;
        if self.epochs.len() > self.recipe.epochs {
            bail!(
                "it records {} epochs of a {}-epoch recipe",
                self.epochs.len(),
                self.recipe.epochs
            );
        }
        if let Some((index, m)) = self
            .epochs
            .iter()
            .enumerate()
            .find(|(index, m)| m.epoch != index + 1)
        {
            bail!("its epoch {} is numbered {}", index + 1, m.epoch);
        }
        if let Some(m) = self
            .epochs
            .iter()
            .find(|m| m.schedule_epochs.is_some_and(|n| n < m.epoch))
        {
            bail!(
                "its epoch {} was trained on a schedule of {} epochs",
                m.epoch,
                m.schedule_epochs.unwrap_or_default()
            );
        }
        if let Some(options) = &self.options {
            if options.model != self.model {
                bail!(
                    "its options name the {} model, the run is a {} run",
                    options.model.name(),
                    self.model.name()
                );
            }
            if options.seed != self.seed {
                bail!(
                    "its options give seed {}, the run has seed {}",
                    options.seed,
                    self.seed
                );
            }
            match options.recipe.apply(options.model) {
                Err(e) => bail!("its options are invalid ({e})"),
                Ok(mut recipe) => {
                    // The options name the teacher's file, the recipe records its checksum.
                    let sha = self
                        .recipe
                        .distill
                        .as_ref()
                        .map(|d| d.teacher_sha256.clone());
                    recipe.distill = options
                        .teacher
                        .as_ref()
                        .map(|_| options.recipe.distillation(sha.unwrap_or_default()));
                    if recipe != self.recipe {
                        bail!("its options give another recipe than the run's")
                    }
                }
            }
        }
        for (name, sha) in [
            ("model_sha256", self.model_sha256.as_deref()),
            ("data_sha256", self.data_sha256.as_deref()),
            ("best.sha256", self.best.as_ref().map(|b| b.sha256.as_str())),
        ] {
            if sha.is_some_and(|sha| !is_sha256_hex(sha)) {
                bail!("its {name} is not a SHA-256 in hexadecimal");
            }
        }
        if let Some(best) = &self.best {
            let recorded = self.epochs.get(best.epoch.wrapping_sub(1));
            if recorded.is_none_or(|m| m.val_acc != best.val_acc) {
                bail!(
                    "its best epoch ({}) is not one of its epochs or has another validation \
                     accuracy",
                    best.epoch
                );
            }
        }
        Ok(())
    }
}

/// Writes only `run.json` (after the test accuracy is known, for instance).
pub fn save_info(dir: &Path, info: &RunInfo) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(info).context("cannot serialise run.json")?;
    write_atomic(&dir.join(RUN_FILE), &json)
}

/// A run description from the bytes of a `run.json`, validated ([`RunInfo::validate`]).
pub fn info_from_bytes(bytes: &[u8]) -> anyhow::Result<RunInfo> {
    let info: RunInfo = serde_json::from_slice(bytes).context("not a valid run description")?;
    info.validate().context("not a valid run description")?;
    Ok(info)
}

/// Reads and validates the `run.json` of a run directory.
pub fn load_info(dir: &Path) -> anyhow::Result<RunInfo> {
    let run_path = dir.join(RUN_FILE);
    if std::fs::symlink_metadata(&run_path).is_err() {
        bail!(
            "{}: cannot read (is {} a run directory from `trainer fit`?)",
            run_path.display(),
            dir.display()
        );
    }
    let bytes = read_regular(&run_path, MAX_RUN_BYTES)?;
    info_from_bytes(&bytes).with_context(|| run_path.display().to_string())
}

/// The resume state's file inside a run directory.
pub const RESUME_FILE: &str = "resume.state";

/// The files of a run in its directory (besides its lock): no output of a command may
/// be one of them, and `fit --force` sets them aside.
pub const RUN_FILES: [&str; 6] = [
    RUN_FILE,
    MODEL_FILE,
    RESUME_FILE,
    BEST_FILE,
    METRICS_FILE,
    CURVES_FILE,
];

/// The moments of an optimiser's state for one parameter, as shapes.
pub trait MomentShapes<B: Backend>: SimpleOptimizer<B> {
    /// The step count and the shapes of every moment tensor of `record`.
    fn moments(record: &AdaptorRecordV1<Self, B>) -> (usize, Vec<Vec<usize>>);
}

macro_rules! moment_shapes {
    ($optimizer:ty) => {
        impl<B: Backend> MomentShapes<B> for $optimizer {
            fn moments(record: &AdaptorRecordV1<Self, B>) -> (usize, Vec<Vec<usize>>) {
                macro_rules! of {
                    ($state:expr) => {{
                        let m = &$state.momentum;
                        let mut shapes =
                            vec![m.moment_1.dims().to_vec(), m.moment_2.dims().to_vec()];
                        shapes.extend(m.max_moment_2.as_ref().map(|t| t.dims().to_vec()));
                        (m.time, shapes)
                    }};
                }
                match record {
                    AdaptorRecordV1::Rank0(s) => of!(s),
                    AdaptorRecordV1::Rank1(s) => of!(s),
                    AdaptorRecordV1::Rank2(s) => of!(s),
                    AdaptorRecordV1::Rank3(s) => of!(s),
                    AdaptorRecordV1::Rank4(s) => of!(s),
                    AdaptorRecordV1::Rank5(s) => of!(s),
                    AdaptorRecordV1::Rank6(s) => of!(s),
                    AdaptorRecordV1::Rank7(s) => of!(s),
                    AdaptorRecordV1::Rank8(s) => of!(s),
                }
            }
        }
    };
}
moment_shapes!(Adam);
moment_shapes!(AdamW);

/// `metrics.csv`: a header and one row per epoch.
pub fn metrics_csv(epochs: &[EpochMetrics]) -> String {
    let mut text = String::from("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n");
    for m in epochs {
        text += &format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.8},{:.2}\n",
            m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.lr, m.seconds
        );
    }
    text
}

/// Removes the temporary files a killed run left in `dir`, saying so.
pub fn report_temporaries(dir: &Path) -> anyhow::Result<()> {
    let removed = files::remove_temporaries(dir)?;
    if removed > 0 {
        crate::say!(
            "removed {removed} temporary file(s) a killed run left in {}",
            dir.display()
        );
    }
    Ok(())
}
