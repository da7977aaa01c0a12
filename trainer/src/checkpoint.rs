//! A run directory: the model weights (`model.mpk`), what produced them (`run.json`), the
//! per-epoch metrics (`metrics.csv`) and their plot (`curves.png`). Every file is written
//! atomically after each epoch.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::module::Module;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};

use crate::fsutil::write_atomic;
use crate::model::{Classifier, Layer, LayerSpec, ModelKind};
use crate::recipe::Recipe;

/// The weights file inside a run directory.
pub const MODEL_FILE: &str = "model.mpk";
/// The description of the run inside a run directory.
pub const RUN_FILE: &str = "run.json";
/// Per-epoch metrics inside a run directory.
pub const METRICS_FILE: &str = "metrics.csv";
/// The loss and accuracy plot inside a run directory.
pub const CURVES_FILE: &str = "curves.png";

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

/// What a run directory says about its model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    pub options: Option<crate::fit::FitOptions>,
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
        }
    }
}

/// Writes the model and the run description into `dir`.
pub fn save<B: Backend>(dir: &Path, model: &Classifier<B>, info: &RunInfo) -> anyhow::Result<()> {
    let bytes = NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
        .record(model.clone().into_record(), ())
        .context("cannot serialise the model")?;
    write_atomic(&dir.join(MODEL_FILE), &bytes)?;
    save_info(dir, info)
}

/// Writes only `run.json` (after the test accuracy is known, for instance).
pub fn save_info(dir: &Path, info: &RunInfo) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(info).context("cannot serialise run.json")?;
    write_atomic(&dir.join(RUN_FILE), &json)
}

/// Loads a run directory: its description and its model, checked against the model kind.
pub fn load<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> anyhow::Result<(RunInfo, Classifier<B>)> {
    let run_path = dir.join(RUN_FILE);
    let text = std::fs::read(&run_path).with_context(|| {
        format!(
            "{}: cannot read (is {} a run directory from `trainer fit`?)",
            run_path.display(),
            dir.display()
        )
    })?;
    let info: RunInfo = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a valid run description", run_path.display()))?;
    let model_path: PathBuf = dir.join(MODEL_FILE);
    let bytes = std::fs::read(&model_path)
        .with_context(|| format!("{}: cannot read", model_path.display()))?;
    let model = model_from_bytes(&bytes, info.model, device)
        .with_context(|| format!("{}", model_path.display()))?;
    Ok((info, model))
}

/// A model of kind `kind` from the bytes of a `model.mpk`, checked against the kind.
pub fn model_from_bytes<B: Backend>(
    bytes: &[u8],
    kind: ModelKind,
    device: &B::Device,
) -> anyhow::Result<Classifier<B>> {
    let record = NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
        .load(bytes.to_vec(), device)
        .map_err(|e| anyhow::anyhow!("not a {} model: {e}", kind.name()))?;
    // burn's load_record panics when the record's layer kinds or count differ from the
    // model's; such a file is bad input, so the panic becomes an error (quietly).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let fresh = {
            let _rng = crate::model::lock_backend_rng();
            Classifier::new(kind, device)
        };
        fresh.load_record(record)
    }));
    std::panic::set_hook(hook);
    let model = loaded
        .map_err(|_| anyhow::anyhow!("its layers are not those of the {} model", kind.name()))?;
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
const RESUME_VERSION: u32 = 1;
const RESUME_MAGIC: &[u8; 8] = b"FMRESUME";

/// Writes the resume state of the epoch just completed.
pub fn save_resume<B: Backend>(
    dir: &Path,
    model: &Classifier<B>,
    optimizer: Vec<u8>,
    info: &RunInfo,
) -> anyhow::Result<()> {
    let state = ResumeState {
        version: RESUME_VERSION,
        info: serde_json::to_string(info).context("cannot serialise the run description")?,
        model: NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
            .record(model.clone().into_record(), ())
            .context("cannot serialise the model")?,
        optimizer,
        path: PathBuf::new(),
    };
    let mut bytes = RESUME_MAGIC.to_vec();
    bytes.extend(postcard::to_stdvec(&state).context("cannot serialise the resume state")?);
    write_atomic(&dir.join(RESUME_FILE), &bytes)
}

/// Reads the resume state of a run directory and its run description.
pub fn load_resume(dir: &Path) -> anyhow::Result<(RunInfo, ResumeState)> {
    let path = dir.join(RESUME_FILE);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "{}: cannot read (is {} a run directory from `trainer fit` with at least one \
             complete epoch?)",
            path.display(),
            dir.display()
        )
    })?;
    let payload = bytes
        .strip_prefix(RESUME_MAGIC)
        .with_context(|| format!("{}: not a resume state (bad magic bytes)", path.display()))?;
    let mut state: ResumeState = postcard::from_bytes(payload)
        .with_context(|| format!("{}: truncated or corrupt resume state", path.display()))?;
    if state.version != RESUME_VERSION {
        bail!(
            "{}: resume state version {}, this trainer reads version {RESUME_VERSION}",
            path.display(),
            state.version
        );
    }
    let info: RunInfo = serde_json::from_str(&state.info)
        .with_context(|| format!("{}: the run description does not parse", path.display()))?;
    state.path = path;
    Ok((info, state))
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
    #[error("layer {index} ({layer:?}) has the wrong kind or shape")]
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
