//! The check of an ONNX file's graph before tract reads it: every tensor's shape is
//! propagated from the classifier's input `[1, 1, 28, 28]`, node by node, with checked
//! arithmetic, and the work is counted. tract folds constants and plans buffers from the
//! shapes it infers, and some of its buffers are plain `Vec`s, whose failed allocation
//! aborts the process: a shape it would infer too large must be refused here, first.
//!
//! Only the operators of [`OPERATORS`] are accepted, each with its attributes checked
//! (strides, dilations, pads, permutations, axes, scales). A shape given by another tensor
//! (`Reshape`, `Expand`, `Tile`, `Pad`, `Resize`, `ConstantOfShape`, `Slice`, `TopK`...)
//! must be a constant this check can follow: stated in the file, or computed from
//! constants and `Shape` by the small integer operators exporters use.

use std::collections::HashMap;

use tract_onnx::pb;

use super::{MAX_MACS, MAX_NODES, MAX_RANK, MAX_TENSOR_ELEMENTS, MAX_TOTAL_ELEMENTS};
use crate::classes::IMAGE_SIDE;

/// The operators (of the default `ai.onnx` domain) the check follows, so the only ones
/// accepted: what PyTorch, Keras (tf2onnx) and Paddle exports of image classifiers use,
/// float and quantized. Control flow (`If`, `Loop`, `Scan`), data-dependent shapes
/// (`NonZero`), random generators and functions are not among them.
#[rustfmt::skip]
pub const OPERATORS: &[&str] = &[
    "Abs", "Add", "And", "ArgMax", "ArgMin", "AveragePool", "BatchNormalization", "Cast",
    "Ceil", "Celu", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvInteger",
    "Cos", "DequantizeLinear", "Div", "Dropout", "DynamicQuantizeLinear", "Elu", "Equal",
    "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather", "Gelu", "Gemm",
    "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater", "GreaterOrEqual",
    "HardSigmoid", "HardSwish", "Hardmax", "Identity", "InstanceNormalization", "IsInf",
    "IsNaN", "LRN", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log",
    "LogSoftmax", "LpPool", "MatMul", "MatMulInteger", "Max", "MaxPool", "Mean", "Min",
    "Mish", "Mod", "Mul", "Neg", "Not", "Or", "PRelu", "Pad", "Pow", "QLinearConv",
    "QLinearMatMul", "QuantizeLinear", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum",
    "ReduceSumSquare", "Relu", "Reshape", "Resize", "Round", "Selu", "Shape", "Sigmoid",
    "Sign", "Sin", "Size", "Slice", "Softmax", "Softplus", "Softsign", "Split", "Sqrt",
    "Squeeze", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu", "Tile", "TopK", "Transpose",
    "Unsqueeze", "Upsample", "Where", "Xor",
];

/// What the check found wrong.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Refusal {
    /// A tensor (named) has more elements than [`MAX_TENSOR_ELEMENTS`] (saturated count).
    TooLarge(String, u64),
    /// Too much work or too many tensors: nodes, control flow, MACs, elements in all.
    TooComplex(String),
    /// Something the runtime does not accept or that is not valid ONNX.
    Graph(String),
}

/// What the check measured of a graph it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Work {
    /// Nodes in the graph.
    pub nodes: usize,
    /// Multiply-accumulates per image of the convolutions and matrix products, plus one
    /// per output element (per window element for pools) of every other node; constant
    /// subgraphs, which tract folds at load, included.
    pub macs: u64,
    /// Elements of all the initializers, constants and node outputs together.
    pub elements: u64,
}

/// A tensor as the check knows it: its dimensions and, when it is small (at most 64
/// elements) and computable from constants, its values.
#[derive(Debug, Clone, PartialEq)]
struct Value {
    dims: Vec<u64>,
    data: Option<Data>,
}

#[derive(Debug, Clone, PartialEq)]
enum Data {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
}

/// The most elements whose values are kept: enough for any shape.
const KEPT: u64 = 64;

fn count(dims: &[u64]) -> u64 {
    dims.iter().fold(1u64, |n, &d| n.saturating_mul(d))
}

impl Value {
    fn shape(dims: Vec<u64>) -> Value {
        Value { dims, data: None }
    }
    fn with(dims: Vec<u64>, data: Option<Data>) -> Value {
        let data = data.filter(|d| d.len() as u64 == count(&dims) && count(&dims) <= KEPT);
        Value { dims, data }
    }
    fn elements(&self) -> u64 {
        count(&self.dims)
    }
    fn rank(&self) -> usize {
        self.dims.len()
    }
    fn ints(&self) -> Option<&[i64]> {
        match &self.data {
            Some(Data::Ints(v)) => Some(v),
            _ => None,
        }
    }
    fn floats(&self) -> Option<Vec<f64>> {
        match &self.data {
            Some(Data::Floats(v)) => Some(v.clone()),
            Some(Data::Ints(v)) => Some(v.iter().map(|&i| i as f64).collect()),
            None => None,
        }
    }
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Data::Ints(v) => v.len(),
            Data::Floats(v) => v.len(),
        }
    }
}

/// ONNX element types accepted in tensors: numbers and booleans (not strings, complex
/// numbers or the 8-bit and 4-bit float formats).
fn numeric(data_type: i32) -> bool {
    matches!(data_type, 1..=7 | 9..=13 | 16)
}

/// Checks `model`'s main graph for the classifier's input; see the module's text.
pub(super) fn check(model: &pb::ModelProto) -> Result<Work, Refusal> {
    let Some(graph) = &model.graph else {
        return Err(Refusal::Graph("the file has no graph".into()));
    };
    if graph.node.len() > MAX_NODES {
        return Err(Refusal::TooComplex(format!(
            "{} nodes, more than the {MAX_NODES} accepted",
            graph.node.len()
        )));
    }
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .unwrap_or(1);
    let mut check = Check {
        values: HashMap::new(),
        work: Work {
            nodes: graph.node.len(),
            ..Work::default()
        },
        opset,
    };
    if !graph.sparse_initializer.is_empty() {
        return Err(Refusal::Graph(
            "sparse initializers are not supported".into(),
        ));
    }
    for tensor in &graph.initializer {
        let value = stated(tensor, &format!("initializer `{}`", tensor.name))?;
        check.define(
            &tensor.name,
            value,
            &format!("initializer `{}`", tensor.name),
        )?;
    }
    // Older exporters list the initializers among the inputs too: the image is the input
    // that is not one.
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !check.values.contains_key(&i.name))
        .collect();
    if let [input] = inputs[..] {
        let side = IMAGE_SIDE as u64;
        check.define(
            &input.name,
            Value::shape(vec![1, 1, side, side]),
            "the input",
        )?;
    }
    // Otherwise the classifier's own check names the number of inputs.
    for node in &graph.node {
        check.node(node)?;
    }
    for output in &graph.output {
        if !check.values.contains_key(&output.name) {
            return Err(Refusal::Graph(format!(
                "the graph's output `{}` is made by no node",
                output.name
            )));
        }
    }
    Ok(check.work)
}

/// A tensor stated in the file (an initializer or a constant).
fn stated(tensor: &pb::TensorProto, what: &str) -> Result<Value, Refusal> {
    if !numeric(tensor.data_type) {
        return Err(Refusal::Graph(format!(
            "{what} is of element type {}: only numbers are accepted",
            tensor.data_type
        )));
    }
    if tensor.data_location == Some(1) || !tensor.external_data.is_empty() {
        return Err(Refusal::Graph(format!(
            "{what} keeps its data in another file, which is not read"
        )));
    }
    if tensor.dims.len() > MAX_RANK {
        return Err(Refusal::Graph(format!(
            "{what} has {} dimensions, more than the {MAX_RANK} accepted",
            tensor.dims.len()
        )));
    }
    let dims = tensor
        .dims
        .iter()
        .map(|&d| u64::try_from(d))
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|_| Refusal::Graph(format!("{what} has a negative dimension")))?;
    let elements = count(&dims);
    if elements > MAX_TENSOR_ELEMENTS {
        return Err(Refusal::TooLarge(what.to_string(), elements));
    }
    let data = (elements <= KEPT).then(|| stated_values(tensor)).flatten();
    Ok(Value::with(dims, data))
}

/// The values of a small stated tensor, from its typed field or its raw data.
fn stated_values(t: &pb::TensorProto) -> Option<Data> {
    let raw = |size: usize| t.raw_data.chunks_exact(size);
    Some(match t.data_type {
        7 if t.int64_data.is_empty() => Data::Ints(
            raw(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
                .collect(),
        ),
        7 => Data::Ints(t.int64_data.clone()),
        6 if t.int32_data.is_empty() => Data::Ints(
            raw(4)
                .map(|b| i64::from(i32::from_le_bytes(b.try_into().unwrap_or_default())))
                .collect(),
        ),
        6 => Data::Ints(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
        1 if t.float_data.is_empty() => Data::Floats(
            raw(4)
                .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap_or_default())))
                .collect(),
        ),
        1 => Data::Floats(t.float_data.iter().map(|&v| f64::from(v)).collect()),
        11 if t.double_data.is_empty() => Data::Floats(
            raw(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()))
                .collect(),
        ),
        11 => Data::Floats(t.double_data.clone()),
        _ => return None,
    })
}

struct Check {
    values: HashMap<String, Value>,
    work: Work,
    opset: i64,
}

impl Check {
    /// Records a tensor, counting its elements against both caps.
    fn define(&mut self, name: &str, value: Value, what: &str) -> Result<(), Refusal> {
        let elements = value.elements();
        if elements > MAX_TENSOR_ELEMENTS {
            return Err(Refusal::TooLarge(what.to_string(), elements));
        }
        if value.rank() > MAX_RANK {
            return Err(Refusal::Graph(format!(
                "{what} would have {} dimensions, more than the {MAX_RANK} accepted",
                value.rank()
            )));
        }
        self.work.elements = self.work.elements.saturating_add(elements);
        if self.work.elements > MAX_TOTAL_ELEMENTS {
            return Err(Refusal::TooComplex(format!(
                "{what} takes the graph's tensors over {MAX_TOTAL_ELEMENTS} elements in all"
            )));
        }
        if name.is_empty() {
            return Ok(());
        }
        if self.values.insert(name.to_string(), value).is_some() {
            return Err(Refusal::Graph(format!("{what}: `{name}` is defined twice")));
        }
        Ok(())
    }

    fn node(&mut self, node: &pb::NodeProto) -> Result<(), Refusal> {
        let label = format!(
            "node `{}` ({})",
            if node.name.is_empty() {
                node.output.first().map(String::as_str).unwrap_or("")
            } else {
                &node.name
            },
            node.op_type
        );
        let graph = |problem: String| Refusal::Graph(format!("{label}: {problem}"));
        accepted(node, &label)?;
        let mut inputs = Vec::with_capacity(node.input.len());
        for name in &node.input {
            if name.is_empty() {
                inputs.push(None);
                continue;
            }
            match self.values.get(name) {
                Some(value) => inputs.push(Some(value)),
                None => {
                    return Err(graph(format!(
                        "input `{name}` is made by no node before it"
                    )))
                }
            }
        }
        let node_in = Node {
            node,
            inputs,
            opset: self.opset,
        };
        let (outputs, macs) = node_in.infer().map_err(graph)?;
        if node
            .output
            .iter()
            .skip(outputs.len())
            .any(|o| !o.is_empty())
        {
            return Err(graph(format!(
                "{} outputs, where the operator gives {}",
                node.output.len(),
                outputs.len()
            )));
        }
        // Sizes first: an output too large is named as such, whatever its work.
        for (name, value) in node.output.iter().zip(outputs) {
            self.define(name, value, &label)?;
        }
        self.work.macs = self.work.macs.saturating_add(macs);
        if self.work.macs > MAX_MACS {
            return Err(Refusal::TooComplex(format!(
                "{label} takes the graph over {MAX_MACS} multiply-accumulates per image \
                 (onnx::MAX_MACS)"
            )));
        }
        Ok(())
    }
}

/// Whether `node` (named `label`) is one this runtime accepts: no control flow, an
/// operator of [`OPERATORS`] in the default domain, no tensors in attributes but a
/// Constant's value, checked as an initialiser is.
fn accepted(node: &pb::NodeProto, label: &str) -> Result<(), Refusal> {
    let graph = |problem: String| Refusal::Graph(format!("{label}: {problem}"));
    if matches!(node.op_type.as_str(), "If" | "Loop" | "Scan") {
        return Err(Refusal::TooComplex(format!(
            "{label} is a {}: control flow, whose steps this runtime does not bound, is \
             refused",
            node.op_type
        )));
    }
    if !(node.domain.is_empty() || node.domain == "ai.onnx")
        || !OPERATORS.contains(&node.op_type.as_str())
    {
        let domain = if node.domain.is_empty() {
            String::new()
        } else {
            format!(" of domain `{}`", node.domain)
        };
        return Err(graph(format!(
            "operator{domain} not among those this runtime accepts (onnx::OPERATORS)"
        )));
    }
    // Tensors stated in attributes (a Constant's value), named after the node.
    for attribute in &node.attribute {
        if let Some(tensor) = &attribute.t {
            stated(tensor, label)?;
        }
        if !attribute.tensors.is_empty()
            || attribute.sparse_tensor.is_some()
            || !attribute.sparse_tensors.is_empty()
        {
            return Err(graph(format!(
                "attribute `{}` holds tensors no accepted operator takes",
                attribute.name
            )));
        }
    }
    Ok(())
}

/// One node with its inputs' values, for [`Node::infer`].
struct Node<'a> {
    node: &'a pb::NodeProto,
    inputs: Vec<Option<&'a Value>>,
    opset: i64,
}

mod compute;
mod layout;
mod rules;
