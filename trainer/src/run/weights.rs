//! A run's weights: `model.mpk` and `best.mpk` written with their checksums, read back
//! verified, and decoded without letting a corrupt file panic inside burn.

use super::*;

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
