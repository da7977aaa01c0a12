//! The desktop path: ONNX files (as `trainer export` writes them) run through tract-onnx.
//! The file is translated and optimised once at load; classifying runs the plan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;

use crate::classes::{CLASS_COUNT, IMAGE_PIXELS, IMAGE_SIDE};

mod graph;
pub use graph::{Work, OPERATORS};

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
    /// A tensor the graph states or makes (an initializer, a constant, any node's
    /// output, as the graph check propagates shapes from the input `[1, 1, 28, 28]`) has
    /// more elements than [`MAX_TENSOR_ELEMENTS`]; refused before tract reads the graph.
    #[error("{}: {what} has {elements} elements, more than the {} accepted", path.display(), MAX_TENSOR_ELEMENTS)]
    TooLarge {
        /// The ONNX file.
        path: PathBuf,
        /// Which tensor, by node or initializer name.
        what: String,
        /// Its element count (saturated at `u64::MAX`).
        elements: u64,
    },
    /// The graph has more nodes than [`MAX_NODES`], control flow (`If`, `Loop`,
    /// `Scan`) whose steps the file does not bound, more than [`MAX_MACS`]
    /// multiply-accumulates per image, or more than [`MAX_TOTAL_ELEMENTS`] elements in
    /// all its tensors: work that a small file could state without limit. Refused from
    /// the protobuf, before tract reads the graph.
    #[error("{}: {problem}", path.display())]
    TooComplex {
        /// The ONNX file.
        path: PathBuf,
        /// What is over the limit.
        problem: String,
    },
    /// The graph uses an operator outside [`OPERATORS`], gives one an attribute or an
    /// input it cannot take (a stride of 0, a permutation that repeats an axis, a shape
    /// that is not a constant the check can follow, strings), or is not well formed (an
    /// input made by no node before it). Refused from the protobuf, before tract reads
    /// the graph.
    #[error("{}: {problem}", path.display())]
    Graph {
        /// The ONNX file.
        path: PathBuf,
        /// What is wrong, naming the node.
        problem: String,
    },
    /// tract panicked at one of its steps (`what`); the panic was caught.
    #[error("{}: {what}: tract failed ({message})", path.display())]
    Panic {
        /// The ONNX file.
        path: PathBuf,
        /// The step.
        what: &'static str,
        /// The panic's message.
        message: String,
    },
    /// tract needed more than [`MAX_MODEL_MEMORY`] at one of its steps (`what`): a graph
    /// whose constants fold, or whose run grows, to more than that. Enforced where
    /// [`crate::budget::Budgeted`] is the global allocator (the `runtime` binary).
    #[error("{}: {what}: needs more than the {} MiB of memory allowed", path.display(), MAX_MODEL_MEMORY >> 20)]
    Memory {
        /// The ONNX file.
        path: PathBuf,
        /// The step.
        what: &'static str,
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
    /// The `temperature` metadata is not a number from 0.01 to 100
    /// ([`crate::engine::MIN_TEMPERATURE`], [`crate::engine::MAX_TEMPERATURE`]).
    #[error("metadata temperature `{0}` is not a number from 0.01 to 100")]
    Temperature(String),
    /// The pixels given are not whole 28x28 images.
    #[error("input of {0} bytes is not a whole number of 28x28 images")]
    Pixels(usize),
    /// The model's output for one image is not `[1, 10]`.
    #[error("output shape {0:?}, expected [1, 10]")]
    OutputShape(Vec<usize>),
    /// The model's logits for an image are not all finite (NaN or infinite): no class or
    /// probability can be drawn from them.
    #[error("the model's output is not finite for image {image} (logits {logits:?})")]
    NotFinite {
        /// The image's index (0 for the first) in the call.
        image: usize,
        /// Its logits.
        logits: Vec<f32>,
    },
}

/// The most nodes an ONNX graph may have: the shipped convnets have 10 to 20; tract's
/// load time grows faster than the node count (a chain of 4,000 `Relu` took 79-109 s, of
/// 20,000 more than 300 s).
pub const MAX_NODES: usize = 1_000;

/// The most elements any tensor stated or made by the graph may have: 16M (64 MB of
/// f32). The shipped convnets' largest tensor has well under 1M. Checked on the file's
/// protobuf, shapes propagated from the input, before tract sees the graph: tract folds
/// constants at load and sizes its buffers from the shapes, so a few bytes of
/// `ConstantOfShape` or `Pad` would otherwise allocate gigabytes (and a refused plain
/// `Vec` aborts the process).
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 24;

/// The most elements of all the graph's tensors together (initializers, constants and
/// every node's output): 32M, 128 MB of f32. Three 15M-float initializers, each under
/// [`MAX_TENSOR_ELEMENTS`], took 451 MB and then aborted the process.
pub const MAX_TOTAL_ELEMENTS: u64 = 1 << 25;

/// The most multiply-accumulates per image an ONNX graph may cost: 2x10^8, as the int8
/// engine's default `Limits::max_macs`. Convolutions and matrix products count their
/// MACs, pools one per window element, every other node one per output element;
/// constant subgraphs, which tract computes at load, count too. The largest shipped model needs
/// 2.6x10^7 (`wide.onnx`). Twenty 4096x4096 `MatMul`s in a 2 KB file took 45 s per image.
pub const MAX_MACS: u64 = 200_000_000;

/// The most dimensions a tensor may have: 8 (image classifiers use 4; an `Unsqueeze` of
/// 996 axes aborted the process).
pub const MAX_RANK: usize = 8;

/// The most memory tract may hold, on the calling thread, while it reads, translates and
/// optimises a model or runs it on one call's images: 256 MiB. The shipped models take a
/// few megabytes; a tensor at [`MAX_TENSOR_ELEMENTS`] takes 64 MiB as f32. This bounds
/// what the shape check cannot read from the file (a broadcast or a product of
/// constants, a shape computed by arithmetic), where [`crate::budget::Budgeted`] is the
/// global allocator.
pub const MAX_MODEL_MEMORY: usize = 256 << 20;

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
    temperature: f32,
    work: Work,
}

impl OnnxClassifier {
    /// Loads `path`, checks that it maps `[N, 1, 28, 28]` floats to `[N, 10]` logits, and
    /// optimises it for one image (`N = 1`).
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let read = |source| OnnxError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut crate::dataset::open_checked(path).map_err(read)?,
            &mut bytes,
        )
        .map_err(read)?;
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
        let onnx = tract_onnx::onnx();
        let proto = guard(path, "cannot read the protobuf", || {
            onnx.proto_model_for_read(&mut &bytes[..])
        })?
        .map_err(|e| {
            tract_error(
                "neither an int8 blob (no FMQ8 magic) nor a readable ONNX model",
                e,
            )
        })?;
        let work = graph::check(&proto).map_err(|refusal| refusal.into_error(path))?;
        let mut model = guard(path, "cannot translate the model", || {
            onnx.model_for_proto_model(&proto)
        })?
        .map_err(|e| {
            tract_error(
                "neither an int8 blob (no FMQ8 magic) nor a readable ONNX model",
                e,
            )
        })?;
        drop(proto);
        let metadata = metadata_of(&model);
        let (input_scale, temperature) = scales(&metadata).map_err(error)?;
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
        let plan = guard(
            path,
            "cannot be prepared for [N,1,28,28] float input",
            || {
                model
                    .into_typed()
                    .and_then(|m| m.set_symbols(&one))
                    .and_then(|m| m.into_optimized())
                    .and_then(|m| m.into_runnable())
            },
        )?
        .map_err(|e| tract_error("cannot be prepared for [N,1,28,28] float input", e))?;
        Ok(OnnxClassifier {
            path: path.to_path_buf(),
            plan,
            metadata,
            input_scale,
            temperature,
            work,
        })
    }

    /// What the graph check measured: nodes, multiply-accumulates per image, elements.
    pub fn work(&self) -> Work {
        self.work
    }

    /// The file's `metadata_props`.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// The softmax temperature of the file's `temperature` metadata (written by `trainer
    /// export` and `trainer calibrate`), 1 when it has none: the probabilities are
    /// `softmax(logits / temperature)`.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// Calibrated class probabilities of one image's logits: `softmax(logits /
    /// temperature)`.
    pub fn probabilities(&self, logits: &[f32; CLASS_COUNT]) -> [f32; CLASS_COUNT] {
        crate::metrics::softmax(&logits.map(|l| l / self.temperature))
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
        guard(&self.path, "cannot run the model", || {
            let mut all = Vec::with_capacity(count * CLASS_COUNT);
            // One state for the whole call: its scratch memory is reused from image to
            // image.
            let mut state = self.plan.spawn().map_err(tract_error)?;
            for (index, image) in scaled.chunks(IMAGE_PIXELS).enumerate() {
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
                if !logits.iter().all(|l| l.is_finite()) {
                    return Err(OnnxError::Interface {
                        path: self.path.clone(),
                        problem: InterfaceProblem::NotFinite {
                            image: index,
                            logits: logits.iter().copied().collect(),
                        },
                    });
                }
                all.extend(logits.iter().copied());
            }
            Ok(all)
        })?
    }
}

/// The `metadata_props` of a model tract read, by key.
fn metadata_of(model: &InferenceModel) -> HashMap<String, String> {
    model
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
        .collect()
}

/// The input scale (the dataset's 1/255 when the file states none) and the softmax
/// temperature (1 when none) of a file's metadata, each checked.
fn scales(metadata: &HashMap<String, String>) -> Result<(f32, f32), InterfaceProblem> {
    let input_scale = match metadata.get("input_scale") {
        Some(text) => text
            .parse::<f32>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .ok_or_else(|| InterfaceProblem::InputScale(text.clone()))?,
        None => crate::classes::INPUT_SCALE,
    };
    let temperature = match metadata.get("temperature") {
        Some(text) => text
            .trim()
            .parse::<f32>()
            .ok()
            .filter(|t| {
                (crate::engine::MIN_TEMPERATURE..=crate::engine::MAX_TEMPERATURE).contains(t)
            })
            .ok_or_else(|| InterfaceProblem::Temperature(text.clone()))?,
        None => 1.0,
    };
    Ok((input_scale, temperature))
}

impl graph::Refusal {
    /// The error naming `path` for this refusal.
    fn into_error(self, path: &Path) -> OnnxError {
        let path = path.to_path_buf();
        match self {
            graph::Refusal::TooLarge(what, elements) => OnnxError::TooLarge {
                path,
                what,
                elements,
            },
            graph::Refusal::TooComplex(problem) => OnnxError::TooComplex { path, problem },
            graph::Refusal::Graph(problem) => OnnxError::Graph { path, problem },
        }
    }
}

/// Runs one of tract's steps within [`MAX_MODEL_MEMORY`], turning a refused allocation
/// into [`OnnxError::Memory`] (whatever the step made of it) and a panic inside it into
/// [`OnnxError::Panic`]. (The panic hook still runs: a program that exits from its hook
/// should let this thread's panics unwind.)
fn guard<T>(path: &Path, what: &'static str, step: impl FnOnce() -> T) -> Result<T, OnnxError> {
    let (caught, refused) = crate::budget::within(MAX_MODEL_MEMORY, || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(step))
    });
    if refused {
        return Err(OnnxError::Memory {
            path: path.to_path_buf(),
            what,
        });
    }
    caught.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        OnnxError::Panic {
            path: path.to_path_buf(),
            what,
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_a_step_becomes_an_error() {
        let err = guard(Path::new("m.onnx"), "loading", || -> u8 {
            panic!("boom {}", 7)
        })
        .unwrap_err();
        assert!(
            matches!(&err, OnnxError::Panic { what: "loading", message, .. } if message == "boom 7"),
            "{err}"
        );
        assert_eq!(err.to_string(), "m.onnx: loading: tract failed (boom 7)");
        assert_eq!(guard(Path::new("m.onnx"), "x", || 3).unwrap(), 3);
    }
}
