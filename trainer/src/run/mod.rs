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
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall-clock seconds the epoch took (training and validation).
    pub seconds: f64,
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

/// Writes the model and the run description into `dir`, recording the model's checksum in
/// `info`.
pub fn save<B: Backend>(
    dir: &Path,
    model: &Classifier<B>,
    info: &mut RunInfo,
) -> anyhow::Result<()> {
    save_bytes(dir, &model_bytes(model)?, info)
}

/// [`save`] of a model already serialised by [`model_bytes`].
pub fn save_bytes(dir: &Path, bytes: &[u8], info: &mut RunInfo) -> anyhow::Result<()> {
    info.model_sha256 = Some(sha256_hex(bytes));
    write_atomic(&dir.join(MODEL_FILE), bytes)?;
    save_info(dir, info)
}

/// The bytes of a model's `model.mpk`.
pub fn model_bytes<B: Backend>(model: &Classifier<B>) -> anyhow::Result<Vec<u8>> {
    NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
        .record(model.clone().into_record(), ())
        .context("cannot serialise the model")
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

/// Checks the bytes of a `model.mpk` against the checksum its run description records.
pub fn verify_model(bytes: &[u8], info: &RunInfo) -> anyhow::Result<()> {
    match &info.model_sha256 {
        None => bail!(
            "{RUN_FILE} records no checksum of {MODEL_FILE} (a run of a trainer before \
             checksums): the weights cannot be verified; train the run again"
        ),
        Some(sha) if *sha != sha256_hex(bytes) => bail!(
            "checksum mismatch: not the file {RUN_FILE} was written with (corrupt, or from \
             another run)"
        ),
        Some(_) => Ok(()),
    }
}

/// Loads a run directory: its description and its model, each verified (see the module
/// documentation).
pub fn load<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> anyhow::Result<(RunInfo, Classifier<B>)> {
    let info = load_info(dir)?;
    let model_path: PathBuf = dir.join(MODEL_FILE);
    let bytes = read_regular(&model_path, MAX_MODEL_BYTES)?;
    verify_model(&bytes, &info).with_context(|| model_path.display().to_string())?;
    let model = model_from_bytes(&bytes, info.model, device)
        .with_context(|| model_path.display().to_string())?;
    Ok((info, model))
}

/// Loads the best epoch's weights of a run ([`BEST_FILE`]), verified against the checksum
/// its description `info` records.
pub fn load_best<B: Backend>(
    dir: &Path,
    info: &RunInfo,
    device: &B::Device,
) -> anyhow::Result<Classifier<B>> {
    let path = dir.join(BEST_FILE);
    let Some(best) = &info.best else {
        bail!(
            "{}: {RUN_FILE} records no best epoch (a run of a trainer before best \
             checkpoints, or one whose {BEST_FILE} was lost)",
            path.display()
        );
    };
    let bytes = read_regular(&path, MAX_MODEL_BYTES)?;
    if sha256_hex(&bytes) != best.sha256 {
        bail!(
            "{}: checksum mismatch: not the weights of epoch {} that {RUN_FILE} records",
            path.display(),
            best.epoch
        );
    }
    model_from_bytes(&bytes, info.model, device).with_context(|| path.display().to_string())
}

/// [`load`], or with `best` the description and the best epoch's weights ([`load_best`]).
pub fn load_run<B: Backend>(
    dir: &Path,
    best: bool,
    device: &B::Device,
) -> anyhow::Result<(RunInfo, Classifier<B>)> {
    if !best {
        return load(dir, device);
    }
    let info = load_info(dir)?;
    let model = load_best(dir, &info, device)?;
    Ok((info, model))
}

/// Runs `decode`, turning a panic inside it into an error (quietly: the panic hook is
/// swapped out meanwhile, `trainer`'s own would end the process). burn's record decoding
/// panics on some malformed input (an invalid parameter id, a tensor whose data does not
/// fill its shape, layer kinds that differ from the model's).
pub fn guarded<T>(decode: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    static HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _swap = HOOK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode));
    std::panic::set_hook(hook);
    result.unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(anyhow!("the decoder failed ({})", what.replace('\n', " ")))
    })
}

/// A model of kind `kind` from the bytes of a `model.mpk`, decoded under [`guarded`] and
/// checked against the kind.
pub fn model_from_bytes<B: Backend>(
    bytes: &[u8],
    kind: ModelKind,
    device: &B::Device,
) -> anyhow::Result<Classifier<B>> {
    let model = guarded(|| {
        let record = NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
            .load(bytes.to_vec(), device)
            .map_err(|e| anyhow!("{e}"))?;
        let fresh = {
            let _rng = crate::model::lock_backend_rng();
            Classifier::new(kind, device)
        };
        Ok(fresh.load_record(record))
    })
    .map_err(|e| anyhow!("not a valid {} model: {e:#}", kind.name()))?;
    check_shapes(&model, kind)
        .with_context(|| format!("weights do not fit the {} model", kind.name()))?;
    Ok(model)
}

/// What `trainer fit --resume` continues from, in one file written atomically after every
/// epoch: the run description, the weights and the optimiser state of that epoch together,
/// so a kill at any moment leaves either the previous epoch's state or this one's.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ResumeState {
    /// Format version of this file.
    pub version: u32,
    /// `run.json` as of the epoch.
    pub info: String,
    /// The model's `model.mpk` bytes.
    pub model: Vec<u8>,
    /// The optimiser's record, MessagePack as burn writes it.
    pub optimizer: Vec<u8>,
    /// Where it was read from (not stored).
    #[serde(skip)]
    pub path: PathBuf,
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
/// Version 2: the magic bytes, the version byte, the SHA-256 of the rest, then the
/// postcard-encoded [`ResumeState`]. Version 1 (no checksum) is recognised and refused.
const RESUME_VERSION: u32 = 2;
const RESUME_MAGIC: &[u8; 8] = b"FMRESUME";
const DIGEST_BYTES: usize = 32;

/// Writes the resume state of the epoch just completed.
pub fn save_resume<B: Backend>(
    dir: &Path,
    model: &Classifier<B>,
    optimizer: Vec<u8>,
    info: &RunInfo,
) -> anyhow::Result<()> {
    write_atomic(
        &dir.join(RESUME_FILE),
        &resume_bytes(model_bytes(model)?, optimizer, info)?,
    )
}

/// The bytes of a `resume.state` holding `model` (the bytes of its `model.mpk`), the
/// optimiser's record and the run description (whose `model_sha256` is set to the model's).
pub fn resume_bytes(model: Vec<u8>, optimizer: Vec<u8>, info: &RunInfo) -> anyhow::Result<Vec<u8>> {
    let mut info = info.clone();
    info.model_sha256 = Some(sha256_hex(&model));
    let state = ResumeState {
        version: RESUME_VERSION,
        info: serde_json::to_string(&info).context("cannot serialise the run description")?,
        model,
        optimizer,
        path: PathBuf::new(),
    };
    let payload = postcard::to_stdvec(&state).context("cannot serialise the resume state")?;
    Ok(resume_envelope(&payload))
}

/// A `resume.state` file around `payload` (a postcard-encoded [`ResumeState`]): the magic
/// bytes, the version, the payload's SHA-256, the payload.
pub fn resume_envelope(payload: &[u8]) -> Vec<u8> {
    let mut bytes = RESUME_MAGIC.to_vec();
    bytes.push(RESUME_VERSION as u8);
    bytes.extend(Sha256::digest(payload));
    bytes.extend(payload);
    bytes
}

/// Reads the resume state of a run directory and its run description, verified: the
/// checksum, the version, the description ([`RunInfo::validate`]) and the weights'
/// checksum against it. The weights and the optimiser state are decoded later, by
/// [`model_from_bytes`] and [`restore_optimizer`].
pub fn load_resume(dir: &Path) -> anyhow::Result<(RunInfo, ResumeState)> {
    let path = dir.join(RESUME_FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        if RUN_FILES
            .iter()
            .any(|file| std::fs::symlink_metadata(dir.join(file)).is_ok())
        {
            bail!(
                "{}: missing: the run in {} was stopped before its first epoch was saved \
                 whole, and cannot be resumed; start it again with `trainer fit --out {} \
                 --force`",
                path.display(),
                dir.display(),
                dir.display()
            );
        }
        bail!(
            "{}: cannot read (is {} a run directory from `trainer fit` with at least one \
             complete epoch?)",
            path.display(),
            dir.display()
        );
    }
    let bytes = read_regular(&path, MAX_RESUME_BYTES)?;
    let (info, mut state) =
        resume_from_bytes(&bytes).with_context(|| path.display().to_string())?;
    state.path = path;
    Ok((info, state))
}

/// [`load_resume`] on the bytes of a `resume.state`.
pub fn resume_from_bytes(bytes: &[u8]) -> anyhow::Result<(RunInfo, ResumeState)> {
    let rest = bytes
        .strip_prefix(RESUME_MAGIC)
        .context("not a resume state (bad magic bytes)")?;
    let corrupt = "truncated or corrupt resume state";
    match rest.first() {
        Some(1) => {
            // Version 1 is postcard from the first byte on, without a checksum.
            postcard::from_bytes::<ResumeState>(rest).context(corrupt)?;
            bail!(
                "resume state version 1, written by a trainer before checksums: it cannot be \
                 verified, so it is not resumed; start the run again"
            );
        }
        Some(&version) if u32::from(version) == RESUME_VERSION => {}
        Some(version) => {
            bail!("resume state version {version}, this trainer reads version {RESUME_VERSION}")
        }
        None => bail!(corrupt),
    }
    let rest = &rest[1..];
    if rest.len() < DIGEST_BYTES {
        bail!(corrupt);
    }
    let (digest, payload) = rest.split_at(DIGEST_BYTES);
    if Sha256::digest(payload).as_slice() != digest {
        bail!("checksum mismatch: the resume state is corrupt");
    }
    let state: ResumeState = postcard::from_bytes(payload).context(corrupt)?;
    if state.version != RESUME_VERSION {
        bail!(corrupt);
    }
    let info: RunInfo =
        serde_json::from_str(&state.info).context("the run description does not parse")?;
    info.validate().context("the run description is invalid")?;
    if info.model_sha256.as_deref() != Some(sha256_hex(&state.model).as_str()) {
        bail!("the weights are not those its run description records");
    }
    Ok((info, state))
}

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

/// Every float parameter of a module: its id and shape.
struct ParamShapes(std::collections::HashMap<ParamId, Vec<usize>>);

impl<B: Backend> ModuleVisitor<B> for ParamShapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.insert(param.id, param.val().dims().to_vec());
    }
}

/// `optim` with the state decoded from `bytes` (the optimiser's record, as `resume.state`
/// holds it), under [`guarded`], after checking it against `model`: every entry belongs to
/// one of the model's parameters, its moments have that parameter's shape, and its step
/// count is at most `max_steps` (the steps the run has taken). A moment of another shape
/// would panic in the first step.
pub fn restore_optimizer<B, S>(
    optim: OptimizerAdaptor<S, Classifier<B>, B>,
    bytes: &[u8],
    model: &Classifier<B>,
    max_steps: usize,
    device: &B::Device,
) -> anyhow::Result<OptimizerAdaptor<S, Classifier<B>, B>>
where
    B: AutodiffBackend,
    S: SimpleOptimizer<B::InnerBackend> + MomentShapes<B::InnerBackend>,
{
    let record: <OptimizerAdaptor<S, Classifier<B>, B> as Optimizer<Classifier<B>, B>>::Record =
        guarded(|| {
            NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
                .load(bytes.to_vec(), device)
                .map_err(|e| anyhow!("{e}"))
        })?;
    let mut params = ParamShapes(Default::default());
    model.visit(&mut params);
    for (id, entry) in record.iter() {
        let AdaptorRecord::V1(entry) = entry;
        let Some(shape) = params.0.get(id) else {
            bail!("it holds a moment of parameter {id}, which the model does not have");
        };
        let (time, moments) = S::moments(entry);
        if let Some(bad) = moments.iter().find(|m| *m != shape) {
            bail!("a moment of parameter {id} has shape {bad:?}, the parameter {shape:?}");
        }
        if time > max_steps {
            bail!("parameter {id} has taken {time} steps, the run only {max_steps}");
        }
    }
    Ok(optim.load_record(record))
}

/// Checks the optimiser state of a resume state (its bytes, `bytes`) against `model`, with
/// the optimiser `recipe` names: see [`restore_optimizer`].
pub fn check_optimizer<B: AutodiffBackend>(
    bytes: &[u8],
    recipe: &Recipe,
    model: &Classifier<B>,
    max_steps: usize,
    device: &B::Device,
) -> anyhow::Result<()> {
    match recipe.optimizer {
        OptimizerKind::Adam => {
            let optim = AdamConfig::new().init::<B, Classifier<B>>();
            restore_optimizer(optim, bytes, model, max_steps, device).map(drop)
        }
        OptimizerKind::Adamw => {
            let optim = AdamWConfig::new().init::<B, Classifier<B>>();
            restore_optimizer(optim, bytes, model, max_steps, device).map(drop)
        }
    }
}

/// The training steps a run has taken after `info.epochs.len()` epochs of `train_images`.
pub fn steps_taken(info: &RunInfo, train_images: usize) -> usize {
    info.epochs
        .len()
        .saturating_mul(train_images.div_ceil(info.recipe.batch.max(1)))
}

/// A model whose layers do not match its kind's definition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShapeMismatch {
    /// Another number of layers.
    #[error("{found} layers, expected {expected}")]
    LayerCount {
        /// Layers in the model.
        found: usize,
        /// Layers in the definition.
        expected: usize,
    },
    /// A layer of another kind, or a tensor of another shape.
    #[error("layer {index} ({layer}) has the wrong kind or shape")]
    Layer {
        /// Position of the layer.
        index: usize,
        /// What the definition says it is.
        layer: LayerSpec,
    },
}

/// Checks every tensor's shape against the model kind's layer list, so a mismatched file
/// is an error here rather than a panic in the first forward pass.
pub fn check_shapes<B: Backend>(
    model: &Classifier<B>,
    kind: ModelKind,
) -> Result<(), ShapeMismatch> {
    let specs = kind.layers();
    if specs.len() != model.layers.len() {
        return Err(ShapeMismatch::LayerCount {
            found: model.layers.len(),
            expected: specs.len(),
        });
    }
    for (index, (spec, layer)) in specs.iter().zip(&model.layers).enumerate() {
        let ok = match (*spec, layer) {
            (
                LayerSpec::Conv {
                    inputs,
                    outputs,
                    kernel,
                    ..
                },
                Layer::Conv(conv),
            ) => {
                conv.weight.dims() == [outputs, inputs, kernel, kernel]
                    && conv.bias.as_ref().is_some_and(|b| b.dims() == [outputs])
            }
            (LayerSpec::BatchNorm { features }, Layer::BatchNorm(bn)) => {
                bn.gamma.dims() == [features]
                    && bn.beta.dims() == [features]
                    && bn.running_mean.value().dims() == [features]
                    && bn.running_var.value().dims() == [features]
            }
            (LayerSpec::Linear { inputs, outputs }, Layer::Linear(linear)) => {
                linear.weight.dims() == [inputs, outputs]
                    && linear.bias.as_ref().is_some_and(|b| b.dims() == [outputs])
            }
            (LayerSpec::Relu, Layer::Relu(_))
            | (LayerSpec::LeakyRelu { .. }, Layer::LeakyRelu(_))
            | (LayerSpec::MaxPool { .. }, Layer::MaxPool(_))
            | (LayerSpec::Flatten, Layer::Flatten(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(ShapeMismatch::Layer {
                index,
                layer: *spec,
            });
        }
    }
    Ok(())
}

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
