//! The desktop path: ONNX files (as `trainer export` writes them) run through tract-onnx.
//! The file is translated and optimised once at load; classifying runs the plan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tract_onnx::pb;
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
    /// A tensor the graph states or makes (an initializer, a constant, the shape given to
    /// `ConstantOfShape`, `Expand`, `Reshape`, `Tile`...) has more elements than
    /// [`MAX_TENSOR_ELEMENTS`]; refused before tract folds constants.
    #[error("{}: {what} has {elements} elements, more than the {} accepted", path.display(), MAX_TENSOR_ELEMENTS)]
    TooLarge {
        /// The ONNX file.
        path: PathBuf,
        /// Which tensor, by node or initializer name.
        what: String,
        /// Its element count (saturated at `u64::MAX`).
        elements: u64,
    },
    /// The graph has more nodes than [`MAX_NODES`] (in all its graphs together), or
    /// control flow (`Loop`, `Scan`) whose number of steps the file does not bound:
    /// work that grows without a limit a file this small could state. Refused from the
    /// protobuf, before tract reads the graph.
    #[error("{}: {problem}", path.display())]
    TooComplex {
        /// The ONNX file.
        path: PathBuf,
        /// What is over the limit.
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

/// The most nodes an ONNX graph may have, its subgraphs and functions included: the
/// shipped convnets have 10 to 20; tract's load time grows faster than the node count (a
/// chain of 4,000 `Relu` took 79-109 s, of 20,000 more than 300 s).
pub const MAX_NODES: usize = 1_000;

/// The most elements any tensor stated or shaped by the graph may have: 16M (64 MB of
/// f32). The shipped convnets' largest tensor has well under 1M. Checked on the file's
/// protobuf before tract sees the graph: tract folds constants at load, so a few bytes of
/// `ConstantOfShape` would otherwise allocate gigabytes.
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 24;

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
        check_sizes(&proto).map_err(|(what, elements)| OnnxError::TooLarge {
            path: path.to_path_buf(),
            what,
            elements,
        })?;
        check_work(&proto).map_err(|problem| OnnxError::TooComplex {
            path: path.to_path_buf(),
            problem,
        })?;
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
        let temperature = match metadata.get("temperature") {
            Some(text) => text
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|t| {
                    (crate::engine::MIN_TEMPERATURE..=crate::engine::MAX_TEMPERATURE).contains(t)
                })
                .ok_or_else(|| error(InterfaceProblem::Temperature(text.clone())))?,
            None => 1.0,
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
        })
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

/// Refuses graphs whose work the file does not bound: more than [`MAX_NODES`] nodes in
/// all, or control flow (`Loop`, `Scan`: a `Scan` over a 10M-long constant took 9 s per
/// image), which no classifier of 28x28 images needs.
fn check_work(model: &pb::ModelProto) -> Result<(), String> {
    fn count(graph: &pb::GraphProto, nodes: &mut usize) -> Result<(), String> {
        for node in &graph.node {
            *nodes += 1;
            if matches!(node.op_type.as_str(), "Loop" | "Scan") {
                return Err(format!(
                    "node `{}` is a {}: control flow, whose steps this runtime does not bound, \
                     is refused",
                    if node.name.is_empty() {
                        node.output.first().map(String::as_str).unwrap_or("")
                    } else {
                        &node.name
                    },
                    node.op_type
                ));
            }
            for attribute in &node.attribute {
                for graph in attribute.g.iter().chain(&attribute.graphs) {
                    count(graph, nodes)?;
                }
            }
        }
        Ok(())
    }
    let mut nodes = 0;
    if let Some(graph) = &model.graph {
        count(graph, &mut nodes)?;
    }
    for info in &model.training_info {
        for graph in [&info.initialization, &info.algorithm]
            .into_iter()
            .flatten()
        {
            count(graph, &mut nodes)?;
        }
    }
    for function in &model.functions {
        nodes += function.node.len();
    }
    if nodes > MAX_NODES {
        return Err(format!("{nodes} nodes, more than the {MAX_NODES} accepted"));
    }
    Ok(())
}

/// A tensor too large: its name and element count.
type Oversize = (String, u64);

/// The number of elements of a tensor of these dimensions (negative ones count as 1:
/// tract refuses them itself), saturated.
fn elements(dims: impl IntoIterator<Item = i64>) -> u64 {
    dims.into_iter()
        .fold(1u64, |n, d| n.saturating_mul(d.max(1) as u64))
}

fn bounded(what: impl FnOnce() -> String, count: u64) -> Result<(), Oversize> {
    if count > MAX_TENSOR_ELEMENTS {
        Err((what(), count))
    } else {
        Ok(())
    }
}

/// Checks every tensor the file states (initializers, constants, tensor attributes) and
/// every shape the graph gives from constants (`ConstantOfShape`, `Expand`, `Reshape`,
/// `Tile`, `Resize`'s sizes, `OneHot`'s depth, the `shape` attribute of the random
/// generators) against [`MAX_TENSOR_ELEMENTS`], in the main graph, its subgraphs, the
/// training graphs and the functions.
fn check_sizes(model: &pb::ModelProto) -> Result<(), Oversize> {
    let mut known = HashMap::new();
    if let Some(graph) = &model.graph {
        check_graph(graph, &mut known)?;
    }
    for info in &model.training_info {
        for graph in [&info.initialization, &info.algorithm]
            .into_iter()
            .flatten()
        {
            check_graph(graph, &mut known)?;
        }
    }
    for function in &model.functions {
        check_nodes(&function.node, &mut known)?;
    }
    Ok(())
}

/// Small integer constants by name: the values that shape inputs are read from.
type Known = HashMap<String, Vec<i64>>;

fn check_graph(graph: &pb::GraphProto, known: &mut Known) -> Result<(), Oversize> {
    for tensor in &graph.initializer {
        check_tensor(tensor, &tensor.name, known)?;
    }
    for sparse in &graph.sparse_initializer {
        bounded(
            || "a sparse initializer".into(),
            elements(sparse.dims.iter().copied()),
        )?;
    }
    check_nodes(&graph.node, known)
}

/// Checks a stated tensor's dimensions and records its values under `name` when it is a
/// small integer tensor.
fn check_tensor(tensor: &pb::TensorProto, name: &str, known: &mut Known) -> Result<(), Oversize> {
    let count = elements(tensor.dims.iter().copied());
    bounded(|| format!("tensor `{name}`"), count)?;
    if count <= 64 && !name.is_empty() {
        if let Some(values) = int_values(tensor) {
            known.insert(name.to_string(), values);
        }
    }
    Ok(())
}

/// The values of an INT64 or INT32 tensor, from its typed field or its raw data.
fn int_values(tensor: &pb::TensorProto) -> Option<Vec<i64>> {
    const INT32: i32 = 6;
    const INT64: i32 = 7;
    match tensor.data_type {
        INT64 if !tensor.int64_data.is_empty() => Some(tensor.int64_data.clone()),
        INT64 => Some(
            tensor
                .raw_data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect(),
        ),
        INT32 if !tensor.int32_data.is_empty() => {
            Some(tensor.int32_data.iter().map(|&v| i64::from(v)).collect())
        }
        INT32 => Some(
            tensor
                .raw_data
                .chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes"))))
                .collect(),
        ),
        _ => None,
    }
}

fn check_nodes(nodes: &[pb::NodeProto], known: &mut Known) -> Result<(), Oversize> {
    for node in nodes {
        let name = || {
            let name = if node.name.is_empty() {
                node.output.first().map(String::as_str).unwrap_or("")
            } else {
                &node.name
            };
            format!("node `{name}` ({})", node.op_type)
        };
        let output = node.output.first().cloned().unwrap_or_default();
        for attribute in &node.attribute {
            if let Some(tensor) = &attribute.t {
                // A `Constant`'s value is known under the node's output name.
                let as_name = if node.op_type == "Constant" {
                    output.as_str()
                } else {
                    ""
                };
                check_tensor(tensor, as_name, known).map_err(|(_, n)| (name(), n))?;
            }
            for tensor in &attribute.tensors {
                check_tensor(tensor, "", known).map_err(|(_, n)| (name(), n))?;
            }
            for sparse in attribute
                .sparse_tensor
                .iter()
                .chain(&attribute.sparse_tensors)
            {
                bounded(name, elements(sparse.dims.iter().copied()))?;
            }
            for graph in attribute.g.iter().chain(&attribute.graphs) {
                check_graph(graph, known)?;
            }
            match (node.op_type.as_str(), attribute.name.as_str()) {
                ("Constant", "value_ints") => {
                    bounded(name, attribute.ints.len() as u64)?;
                    known.insert(output.clone(), attribute.ints.clone());
                }
                ("Constant", "value_int") => {
                    known.insert(output.clone(), vec![attribute.i]);
                }
                ("Constant", "value_floats") => bounded(name, attribute.floats.len() as u64)?,
                ("RandomNormal" | "RandomUniform" | "EyeLike" | "ConstantOfShape", "shape") => {
                    bounded(name, elements(attribute.ints.iter().copied()))?
                }
                _ => {}
            }
        }
        // Inputs that give an output's shape (or one factor of its size).
        let shape_input = match node.op_type.as_str() {
            "ConstantOfShape" => Some(0),
            "Expand" | "Reshape" | "Tile" | "OneHot" => Some(1),
            "Resize" => Some(3),
            _ => None,
        };
        if let Some(values) = shape_input
            .and_then(|i| node.input.get(i))
            .and_then(|input| known.get(input))
        {
            bounded(name, elements(values.iter().copied()))?;
        }
        // Integer constants passed on unchanged, so that a shape built in steps is known.
        let passed: Option<Vec<i64>> = match node.op_type.as_str() {
            "Identity" | "Cast" | "Squeeze" | "Unsqueeze" | "Flatten" => node
                .input
                .first()
                .and_then(|input| known.get(input))
                .cloned(),
            "Concat" => node
                .input
                .iter()
                .map(|input| known.get(input).cloned())
                .collect::<Option<Vec<_>>>()
                .map(|parts| parts.concat()),
            "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" => arithmetic(
                &node.op_type,
                node.input.iter().map(|input| known.get(input)),
            ),
            _ => None,
        };
        if let Some(values) = passed.filter(|v| v.len() <= 64) {
            known.insert(output, values);
        }
    }
    Ok(())
}

/// Elementwise integer arithmetic on known values (the same length, or one of them a
/// single value): how a shape is computed from constants before `ConstantOfShape` or
/// `Expand`. Saturating, so that a product cannot wrap back under the cap; a division by
/// zero is not followed.
fn arithmetic<'a>(
    op: &str,
    mut inputs: impl Iterator<Item = Option<&'a Vec<i64>>>,
) -> Option<Vec<i64>> {
    let (a, b) = (inputs.next()??, inputs.next()??);
    let len = a.len().max(b.len());
    if inputs.next().is_some()
        || (a.len() != len && a.len() != 1)
        || (b.len() != len && b.len() != 1)
    {
        return None;
    }
    let at = |v: &Vec<i64>, i: usize| if v.len() == 1 { v[0] } else { v[i] };
    (0..len)
        .map(|i| {
            let (x, y) = (at(a, i), at(b, i));
            match op {
                "Add" => Some(x.saturating_add(y)),
                "Sub" => Some(x.saturating_sub(y)),
                "Mul" => Some(x.saturating_mul(y)),
                "Div" => x.checked_div(y),
                "Max" => Some(x.max(y)),
                "Min" => Some(x.min(y)),
                _ => None,
            }
        })
        .collect()
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
