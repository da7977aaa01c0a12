//! One classify interface over both model formats, recognised from the file's content:
//! the int8 blob (magic `FMQ8`) runs on the engine, anything else is tried as ONNX (tract).

use std::path::Path;

use crate::classes::{CLASS_COUNT, IMAGE_PIXELS};
use crate::engine::fast::FastPlan;
use crate::engine::Plan;
use crate::onnx::OnnxClassifier;

/// A loaded model of either format.
pub enum Classifier<'a> {
    /// The int8 engine over a blob, with this CPU's fastest kernels (boxed: a plan holds
    /// its layer list inline).
    Int8(Box<FastPlan<'a>>),
    /// tract over an ONNX file.
    Onnx(OnnxClassifier),
}

/// A model file that could not be loaded. Names the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct LoadError {
    /// The file.
    pub path: std::path::PathBuf,
    /// What is wrong.
    pub problem: String,
}

impl<'a> Classifier<'a> {
    /// Loads a model from its bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &'a [u8], path: &Path) -> Result<Self, LoadError> {
        if bytes.starts_with(&crate::blob::MAGIC) {
            Plan::new(bytes)
                .map(|plan| Classifier::Int8(Box::new(FastPlan::new(plan))))
                .map_err(|e| LoadError {
                    path: path.to_path_buf(),
                    problem: format!("int8 blob refused: {e}"),
                })
        } else {
            OnnxClassifier::from_bytes(bytes, path)
                .map(Classifier::Onnx)
                .map_err(|e| LoadError {
                    path: path.to_path_buf(),
                    problem: format!(
                        "neither an int8 blob (no FMQ8 magic) nor a usable ONNX model: {}",
                        e.problem
                    ),
                })
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

    /// Class probabilities (softmax of the logits) of each image in `pixels` (28x28 u8
    /// images back to back).
    pub fn probabilities(&self, pixels: &[u8]) -> Result<Vec<[f32; CLASS_COUNT]>, String> {
        match self {
            Classifier::Int8(plan) => {
                let mut arena = vec![0u8; plan.arena_bytes()];
                pixels
                    .chunks(IMAGE_PIXELS)
                    .map(|image| {
                        plan.classify(image, &mut arena)
                            .map(|l| l.probabilities())
                            .map_err(|e| e.to_string())
                    })
                    .collect()
            }
            Classifier::Onnx(onnx) => {
                let logits = onnx.logits(pixels).map_err(|e| e.problem)?;
                Ok(logits.chunks(CLASS_COUNT).map(softmax).collect())
            }
        }
    }
}

fn softmax(logits: &[f32]) -> [f32; CLASS_COUNT] {
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let mut out = [0f32; CLASS_COUNT];
    for (o, l) in out.iter_mut().zip(logits) {
        *o = (l - max).exp();
    }
    let sum: f32 = out.iter().sum();
    out.map(|v| v / sum)
}
