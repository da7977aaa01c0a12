//! `resume.state`: the weights, the optimiser state and `run.json` of the last complete
//! epoch in one file with its own SHA-256, written last after every epoch, and the checks
//! of what it holds against the model (shapes, parameter ids, steps).

use super::*;

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

/// What is done with the optimiser a recipe names, whichever of Adam and AdamW it is: the
/// two are different types, so the caller's code is a generic method, called by
/// [`with_optimizer`].
pub trait WithOptimizer<B: AutodiffBackend> {
    /// What the work gives back.
    type Output;
    /// The work, with a fresh optimiser.
    fn apply<S>(self, optim: OptimizerAdaptor<S, Classifier<B>, B>) -> Self::Output
    where
        S: SimpleOptimizer<B::InnerBackend> + MomentShapes<B::InnerBackend>;
}

/// Builds the optimiser `recipe` names (the one place that does: Adam or AdamW, epsilon
/// 1e-8 as Paddle and PyTorch, AdamW's decoupled weight decay) and hands it to `work`.
pub fn with_optimizer<B: AutodiffBackend, W: WithOptimizer<B>>(
    recipe: &Recipe,
    work: W,
) -> W::Output {
    match recipe.optimizer {
        OptimizerKind::Adam => work.apply(
            AdamConfig::new()
                .with_epsilon(1e-8)
                .init::<B, Classifier<B>>(),
        ),
        OptimizerKind::Adamw => work.apply(
            AdamWConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(recipe.weight_decay as f32)
                .init::<B, Classifier<B>>(),
        ),
    }
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
    struct Check<'a, B: AutodiffBackend> {
        bytes: &'a [u8],
        model: &'a Classifier<B>,
        max_steps: usize,
        device: &'a B::Device,
    }
    impl<B: AutodiffBackend> WithOptimizer<B> for Check<'_, B> {
        type Output = anyhow::Result<()>;
        fn apply<S>(self, optim: OptimizerAdaptor<S, Classifier<B>, B>) -> Self::Output
        where
            S: SimpleOptimizer<B::InnerBackend> + MomentShapes<B::InnerBackend>,
        {
            restore_optimizer(optim, self.bytes, self.model, self.max_steps, self.device).map(drop)
        }
    }
    let check = Check {
        bytes,
        model,
        max_steps,
        device,
    };
    with_optimizer(recipe, check)
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
