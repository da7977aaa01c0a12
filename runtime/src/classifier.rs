//! One classify interface over both model formats, recognised from the file's content:
//! the int8 blob (magic `FMQ8`) runs on the engine, anything else is tried as ONNX (tract).

use std::path::{Path, PathBuf};

use crate::classes::CLASS_COUNT;
use crate::engine::fast::{FastPlan, Isa};
use crate::engine::{BlobError, EngineError, Logits, Plan};
use crate::onnx::{OnnxClassifier, OnnxError};

/// A loaded model of either format.
pub enum Classifier<'a> {
    /// The int8 engine over a blob, with this CPU's fastest kernels (boxed: a plan holds
    /// its layer list inline).
    Int8(Box<FastPlan<'a>>),
    /// tract over an ONNX file.
    Onnx(OnnxClassifier),
}

/// A model file that could not be loaded. Names the file; the cause is its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file starts with the blob's magic but the engine refused it.
    #[error("{}: int8 blob refused", path.display())]
    Blob {
        /// The file.
        path: PathBuf,
        /// What the validator found.
        #[source]
        source: BlobError,
    },
    /// Not a blob (no `FMQ8` magic), and tract could not use it as ONNX.
    #[error(transparent)]
    Onnx(OnnxError),
}

/// An image that could not be classified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClassifyError {
    /// The int8 engine refused the input.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// tract could not run the model.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
}

impl<'a> Classifier<'a> {
    /// Loads a model from its bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &'a [u8], path: &Path) -> Result<Self, LoadError> {
        Classifier::with_kernels(bytes, path, Isa::detect())
    }

    /// As [`Classifier::from_bytes`], an int8 blob running `isa`'s kernels (the portable
    /// ones where this CPU lacks them, as [`FastPlan::with_isa`]); an ONNX file runs on
    /// tract whatever `isa` is.
    pub fn with_kernels(bytes: &'a [u8], path: &Path, isa: Isa) -> Result<Self, LoadError> {
        if bytes.starts_with(&crate::blob::MAGIC) {
            Plan::new(bytes)
                .map(|plan| Classifier::Int8(Box::new(FastPlan::with_isa(plan, isa))))
                .map_err(|source| LoadError::Blob {
                    path: path.to_path_buf(),
                    source,
                })
        } else {
            OnnxClassifier::from_bytes(bytes, path)
                .map(Classifier::Onnx)
                .map_err(LoadError::Onnx)
        }
    }

    /// "int8" or "onnx".
    pub fn format(&self) -> &'static str {
        match self {
            Classifier::Int8(_) => "int8",
            Classifier::Onnx(_) => "onnx",
        }
    }

    /// The model kind recorded in the file, if any.
    pub fn kind(&self) -> Option<&str> {
        match self {
            Classifier::Int8(plan) => Some(plan.model().kind),
            Classifier::Onnx(onnx) => onnx.metadata().get("model_kind").map(String::as_str),
        }
    }

    /// The softmax temperature the probabilities are calibrated with (1: uncalibrated).
    pub fn temperature(&self) -> f32 {
        match self {
            Classifier::Int8(plan) => plan.model().temperature,
            Classifier::Onnx(onnx) => onnx.temperature(),
        }
    }

    /// Class probabilities of each image in `pixels` (28x28 u8 images back to back):
    /// the softmax of the logits divided by the model's [`Classifier::temperature`]. The
    /// most probable class is the largest logit's, whatever the temperature.
    pub fn probabilities(&self, pixels: &[u8]) -> Result<Vec<[f32; CLASS_COUNT]>, ClassifyError> {
        match self {
            // Every core, each with its own arena; the same results in the same order.
            Classifier::Int8(plan) => Ok(plan
                .classify_all(pixels, 0)?
                .iter()
                .map(Logits::probabilities)
                .collect()),
            Classifier::Onnx(onnx) => {
                let logits = onnx.logits(pixels)?;
                Ok(logits
                    .chunks_exact(CLASS_COUNT)
                    .map(|l| {
                        let mut values = [0f32; CLASS_COUNT];
                        values.copy_from_slice(l);
                        onnx.probabilities(&values)
                    })
                    .collect())
            }
        }
    }
}
