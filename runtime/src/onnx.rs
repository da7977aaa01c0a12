//! The desktop path: ONNX files (as `trainer export` writes them) run through tract-onnx.
//! The file is translated and optimised once at load; classifying runs the plan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::bail;

use crate::classes::{CLASS_COUNT, IMAGE_PIXELS, IMAGE_SIDE};

/// An ONNX file that could not be loaded or run. Names the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct OnnxError {
    /// The ONNX file.
    pub path: PathBuf,
    /// What went wrong, as tract reports it (its whole cause chain on one line).
    pub problem: String,
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
        let bytes = std::fs::read(path).map_err(|e| OnnxError {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// As [`OnnxClassifier::load`], from the file's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, OnnxError> {
        let error = |problem: String| OnnxError {
            path: path.to_path_buf(),
            problem,
        };
        let tract_error = |context: &str, e: TractError| error(format!("{context}: {e:#}"));
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(|e| tract_error("not a readable ONNX model", e))?;
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
                .ok_or_else(|| {
                    error(format!(
                        "metadata input_scale `{text}` is not a positive number"
                    ))
                })?,
            None => 1.0 / 255.0,
        };
        if model.inputs.len() != 1 || model.outputs.len() != 1 {
            return Err(error(format!(
                "expected one input and one output, found {} and {}",
                model.inputs.len(),
                model.outputs.len()
            )));
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
            return Err(OnnxError {
                path: self.path.clone(),
                problem: format!(
                    "input of {} bytes is not a whole number of 28x28 images",
                    pixels.len()
                ),
            });
        }
        let scaled: Vec<f32> = pixels
            .iter()
            .map(|&p| f32::from(p) * self.input_scale)
            .collect();
        let run = || -> TractResult<Vec<f32>> {
            let mut all = Vec::with_capacity(count * CLASS_COUNT);
            // One state for the whole call: its scratch memory is reused from image to image.
            let mut state = self.plan.spawn()?;
            for image in scaled.chunks(IMAGE_PIXELS) {
                let input = Tensor::from_shape(&[1, 1, IMAGE_SIDE, IMAGE_SIDE], image)?;
                let outputs = state.run(tvec!(input.into()))?;
                let output = outputs[0].try_as_plain_ram()?;
                let logits = output.to_array_view::<f32>()?;
                if logits.shape() != [1, CLASS_COUNT] {
                    bail!(
                        "output shape {:?}, expected [1, {CLASS_COUNT}]",
                        logits.shape()
                    );
                }
                all.extend(logits.iter().copied());
            }
            Ok(all)
        };
        run().map_err(|e| OnnxError {
            path: self.path.clone(),
            problem: format!("{e:#}"),
        })
    }
}
