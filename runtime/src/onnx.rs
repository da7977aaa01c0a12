//! The desktop path: ONNX files (as `trainer export` writes them) run through tract-onnx.
//! The file is translated and optimised once at load; classifying runs the plan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;

use crate::classes::{CLASS_COUNT, IMAGE_PIXELS, IMAGE_SIDE};

/// An ONNX file that could not be loaded or run. Names the file; tract's error, where
/// there is one, is its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The file could not be read.
    #[error("{}: cannot read", path.display())]
    Read {
        /// The ONNX file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// tract refused the model at one of its steps (`what`).
    #[error("{}: {what}", path.display())]
    Tract {
        /// The ONNX file.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// tract's error, with its cause chain.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The model is not a classifier of 28x28 images into 10 classes.
    #[error("{}: {problem}", path.display())]
    Interface {
        /// The ONNX file.
        path: PathBuf,
        /// What does not fit.
        problem: InterfaceProblem,
    },
}

/// How an ONNX model fails to be a Fashion-MNIST classifier.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InterfaceProblem {
    /// The graph has other than one input and one output.
    #[error("expected one input and one output, found {inputs} and {outputs}")]
    InputsOutputs {
        /// Inputs found.
        inputs: usize,
        /// Outputs found.
        outputs: usize,
    },
    /// The `input_scale` metadata is not a finite positive number.
    #[error("metadata input_scale `{0}` is not a positive number")]
    InputScale(String),
    /// The pixels given are not whole 28x28 images.
    #[error("input of {0} bytes is not a whole number of 28x28 images")]
    Pixels(usize),
    /// The model's output for one image is not `[1, 10]`.
    #[error("output shape {0:?}, expected [1, 10]")]
    OutputShape(Vec<usize>),
}

/// A loaded, optimised ONNX classifier for 28x28 u8 images.
///
/// The plan is optimised for one image at a time: tract runs it faster than a plan for a
/// symbolic batch `N` (which the file declares), and per image it is also faster than
/// tract on batches of 8 or 256, where it builds the whole im2col buffer up front
/// (benches/README.md has the figures).
pub struct OnnxClassifier {
    path: PathBuf,
    plan: Arc<TypedRunnableModel>,
    metadata: HashMap<String, String>,
    input_scale: f32,
}

impl OnnxClassifier {
    /// Loads `path`, checks that it maps `[N, 1, 28, 28]` floats to `[N, 10]` logits, and
    /// optimises it for one image (`N = 1`).
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// As [`OnnxClassifier::load`], from the file's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, OnnxError> {
        let error = |problem: InterfaceProblem| OnnxError::Interface {
            path: path.to_path_buf(),
            problem,
        };
        let tract_error = |what: &'static str, e: TractError| OnnxError::Tract {
            path: path.to_path_buf(),
            what,
            source: e.into(),
        };
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(|e| {
                tract_error(
                    "neither an int8 blob (no FMQ8 magic) nor a readable ONNX model",
                    e,
                )
            })?;
        let metadata: HashMap<String, String> = model
            .properties
            .iter()
            .filter_map(|(key, value)| {
                let key = key.strip_prefix("onnx.metadata_props.")?;
                let value = value
                    .try_as_plain_ram()
                    .ok()?
                    .to_scalar::<String>()
                    .ok()?
                    .clone();
                Some((key.to_string(), value))
            })
            .collect();
        let input_scale = match metadata.get("input_scale") {
            Some(text) => text
                .parse::<f32>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| error(InterfaceProblem::InputScale(text.clone())))?,
            None => crate::classes::INPUT_SCALE,
        };
        if model.inputs.len() != 1 || model.outputs.len() != 1 {
            return Err(error(InterfaceProblem::InputsOutputs {
                inputs: model.inputs.len(),
                outputs: model.outputs.len(),
            }));
        }
        let batch = model.symbols.sym("N");
        let fact = f32::fact(&[
            batch.to_dim(),
            1.into(),
            IMAGE_SIDE.into(),
            IMAGE_SIDE.into(),
        ]);
        model
            .set_input_fact(0, fact.into())
            .map_err(|e| tract_error("cannot set the input shape [N,1,28,28]", e))?;
        let one = HashMap::from([(batch, TDim::Val(1))]);
        let plan = model
            .into_typed()
            .and_then(|m| m.set_symbols(&one))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| tract_error("cannot be prepared for [N,1,28,28] float input", e))?;
        Ok(OnnxClassifier {
            path: path.to_path_buf(),
            plan,
            metadata,
            input_scale,
        })
    }

    /// The file's `metadata_props`.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// The logits of every image in `pixels` (28x28 u8 images back to back), 10 per image.
    pub fn logits(&self, pixels: &[u8]) -> Result<Vec<f32>, OnnxError> {
        let count = pixels.len() / IMAGE_PIXELS;
        if count == 0 || !pixels.len().is_multiple_of(IMAGE_PIXELS) {
            return Err(OnnxError::Interface {
                path: self.path.clone(),
                problem: InterfaceProblem::Pixels(pixels.len()),
            });
        }
        let scaled: Vec<f32> = pixels
            .iter()
            .map(|&p| f32::from(p) * self.input_scale)
            .collect();
        let tract_error = |source: TractError| OnnxError::Tract {
            path: self.path.clone(),
            what: "cannot run the model",
            source: source.into(),
        };
        let mut all = Vec::with_capacity(count * CLASS_COUNT);
        // One state for the whole call: its scratch memory is reused from image to image.
        let mut state = self.plan.spawn().map_err(tract_error)?;
        for image in scaled.chunks(IMAGE_PIXELS) {
            let output = Tensor::from_shape(&[1, 1, IMAGE_SIDE, IMAGE_SIDE], image)
                .and_then(|input| state.run(tvec!(input.into())))
                .map_err(tract_error)?;
            let logits = output[0]
                .try_as_plain_ram()
                .and_then(|o| o.to_array_view::<f32>().map(|v| v.to_owned()))
                .map_err(tract_error)?;
            if logits.shape() != [1, CLASS_COUNT] {
                return Err(OnnxError::Interface {
                    path: self.path.clone(),
                    problem: InterfaceProblem::OutputShape(logits.shape().to_vec()),
                });
            }
            all.extend(logits.iter().copied());
        }
        Ok(all)
    }
}
