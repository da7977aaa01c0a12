//! Reading back what [`super::model`] writes: the layers of an exporter-written ONNX file,
//! each attribute checked against what the reader implements.

use onnx_protobuf::{AttributeProto, ModelProto, NodeProto, TensorProto, TensorProto_DataType};
use protobuf::Message;

use crate::export::{FoldedConv, FoldedLayer, FoldedLinear, FoldedOp};
use crate::model::{ChainError, ModelKind};

/// Why an ONNX file is not one [`read`] takes back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The bytes are not an ONNX protobuf.
    #[error("not ONNX")]
    NotOnnx(#[source] protobuf::ProtobufError),
    /// A node names a weight the graph does not have.
    #[error("no initialiser `{0}`")]
    MissingInitialiser(String),
    /// A weight is not float32.
    #[error("`{0}` is not float")]
    NotFloat(String),
    /// A weight's values do not fill its dimensions.
    #[error("`{name}`: {values} values for dims {dims:?}")]
    ValueCount {
        /// The initialiser.
        name: String,
        /// Values it holds.
        values: usize,
        /// Its dimensions.
        dims: Vec<usize>,
    },
    /// A weight of the wrong rank for its operator.
    #[error("{op} weight dims {dims:?}")]
    WeightDims {
        /// The operator.
        op: &'static str,
        /// The weight's dimensions.
        dims: Vec<usize>,
    },
    /// An operator this exporter never writes.
    #[error("operator {0} is not one this exporter writes")]
    Operator(String),
    /// The `model_kind` metadata is missing or names no kind this trainer has.
    #[error("its model_kind metadata ({0:?}) names no model kind this trainer has")]
    ModelKind(Option<String>),
    /// The layers do not chain from one image to 10 logits.
    #[error("the layers do not chain")]
    Chain(#[source] ChainError),
    /// A weight or bias holds a NaN or an infinity.
    #[error("`{0}` holds values that are not finite (NaN or infinite)")]
    NotFinite(String),
    /// A node's attributes or tensors are not what this exporter writes and the reader
    /// implements (a stride, a dilation, unequal pads, a bias of the wrong length...).
    #[error("{op} node `{node}`: {problem}")]
    Node {
        /// The operator.
        op: &'static str,
        /// The node's name or output.
        node: String,
        /// What is wrong.
        problem: String,
    },
}

/// [`read`], and the model kind the file records (its `model_kind` metadata), from one
/// parse.
pub fn read_with_kind(bytes: &[u8]) -> Result<(Vec<FoldedLayer>, ModelKind), ReadError> {
    let model = ModelProto::parse_from_bytes(bytes).map_err(ReadError::NotOnnx)?;
    let folded = layers(&model)?;
    let recorded = model
        .get_metadata_props()
        .iter()
        .find(|entry| entry.get_key() == "model_kind")
        .map(|entry| entry.get_value().to_string());
    let kind = recorded
        .as_deref()
        .and_then(|name| ModelKind::all().iter().find(|k| k.name() == name).copied())
        .ok_or(ReadError::ModelKind(recorded))?;
    Ok((folded, kind))
}

/// The layers of an ONNX file this exporter wrote (Conv, Relu, LeakyRelu, MaxPool,
/// Flatten, Gemm with float initialisers), with their shapes, for running it again in burn
/// ([`crate::export::unfold`]). Any other graph is refused with the reason.
pub fn read(bytes: &[u8]) -> Result<Vec<FoldedLayer>, ReadError> {
    layers(&ModelProto::parse_from_bytes(bytes).map_err(ReadError::NotOnnx)?)
}

/// The layers of a parsed file ([`read`]).
fn layers(model: &ModelProto) -> Result<Vec<FoldedLayer>, ReadError> {
    let graph = model.get_graph();
    let reader = Initialisers(
        graph
            .get_initializer()
            .iter()
            .map(|t| (t.get_name(), t))
            .collect(),
    );
    let ops = graph
        .get_node()
        .iter()
        .map(|node| {
            Ok(match node.get_op_type() {
                "Conv" => FoldedOp::Conv(reader.conv(node)?),
                "Relu" => FoldedOp::Relu,
                "LeakyRelu" => FoldedOp::LeakyRelu {
                    slope: attribute(node, "alpha").map_or(0.01, |a| a.get_f()),
                },
                "MaxPool" => FoldedOp::MaxPool {
                    size: max_pool(node)?,
                },
                "Flatten" => FoldedOp::Flatten,
                "Gemm" => FoldedOp::Linear(reader.gemm(node)?),
                other => return Err(ReadError::Operator(other.to_string())),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    FoldedLayer::chain(ops).map_err(ReadError::Chain)
}

/// A graph's initialisers by name.
struct Initialisers<'a>(std::collections::HashMap<&'a str, &'a TensorProto>);

impl Initialisers<'_> {
    /// The dimensions and values of initialiser `name`: float, as many values as its
    /// dimensions state, all finite.
    fn values(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), ReadError> {
        let t = self
            .0
            .get(name)
            .ok_or_else(|| ReadError::MissingInitialiser(name.to_string()))?;
        if t.get_data_type() != TensorProto_DataType::FLOAT as i32 {
            return Err(ReadError::NotFloat(name.to_string()));
        }
        let data: Vec<f32> = if t.get_raw_data().is_empty() {
            t.get_float_data().to_vec()
        } else {
            t.get_raw_data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        let dims: Vec<usize> = t.get_dims().iter().map(|&d| d.max(0) as usize).collect();
        // Checked: dims whose product wraps (2^62 x 784 is 0 in 64 bits) state no size.
        let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if count != Some(data.len()) {
            return Err(ReadError::ValueCount {
                name: name.to_string(),
                values: data.len(),
                dims,
            });
        }
        if !data.iter().all(|v| v.is_finite()) {
            return Err(ReadError::NotFinite(name.to_string()));
        }
        Ok((dims, data))
    }

    /// A `Conv` node: square kernel, stride and dilation 1, one group, equal padding below
    /// the kernel side, a bias per output channel.
    fn conv(&self, node: &NodeProto) -> Result<FoldedConv, ReadError> {
        let (dims, weight) = self.values(input(node, 1))?;
        let (_, bias) = self.values(input(node, 2))?;
        let &[outputs, inputs, kernel, kernel_x] = dims.as_slice() else {
            return Err(ReadError::WeightDims { op: "Conv", dims });
        };
        if kernel != kernel_x || kernel == 0 {
            return Err(ReadError::WeightDims { op: "Conv", dims });
        }
        if bias.len() != outputs {
            let problem = format!("{} biases for {outputs} output channels", bias.len());
            return Err(node_error("Conv", node, problem));
        }
        all_equal(node, "Conv", "strides", 1, 2)?;
        all_equal(node, "Conv", "dilations", 1, 2)?;
        if attribute(node, "group").map_or(1, |a| a.get_i()) != 1 {
            return Err(node_error("Conv", node, "groups other than 1".into()));
        }
        let padding = ints(node, "pads").first().copied().unwrap_or(0);
        all_equal(node, "Conv", "pads", padding, 4)?;
        if padding >= kernel {
            let problem = format!("padding {padding} not below the kernel side {kernel}");
            return Err(node_error("Conv", node, problem));
        }
        Ok(FoldedConv {
            inputs,
            outputs,
            kernel,
            padding,
            weight,
            bias,
        })
    }

    /// A `Gemm` node as the exporter writes it: `x W^T + b`.
    fn gemm(&self, node: &NodeProto) -> Result<FoldedLinear, ReadError> {
        let (dims, weight) = self.values(input(node, 1))?;
        let (_, bias) = self.values(input(node, 2))?;
        let &[outputs, inputs] = dims.as_slice() else {
            return Err(ReadError::WeightDims { op: "Gemm", dims });
        };
        if bias.len() != outputs {
            let problem = format!("{} biases for {outputs} outputs", bias.len());
            return Err(node_error("Gemm", node, problem));
        }
        let trans = |name: &str| attribute(node, name).map_or(0, |a| a.get_i());
        let scale = |name: &str| attribute(node, name).map_or(1.0, |a| a.get_f());
        if (
            trans("transA"),
            trans("transB"),
            scale("alpha"),
            scale("beta"),
        ) != (0, 1, 1.0, 1.0)
        {
            let problem = "the reader implements transB = 1, no transA, alpha = beta = 1 only";
            return Err(node_error("Gemm", node, problem.into()));
        }
        Ok(FoldedLinear {
            inputs,
            outputs,
            weight,
            bias,
        })
    }
}

/// A `MaxPool` node's window: square, strides equal to it (the exporter writes them; ONNX's
/// default is 1), no padding, no dilation.
fn max_pool(node: &NodeProto) -> Result<usize, ReadError> {
    let size = ints(node, "kernel_shape").first().copied().unwrap_or(1);
    all_equal(node, "MaxPool", "kernel_shape", size, 2)?;
    let strides = ints(node, "strides");
    if strides != [size, size] {
        let problem = format!("strides {strides:?}, expected the window {size}");
        return Err(node_error("MaxPool", node, problem));
    }
    all_equal(node, "MaxPool", "pads", 0, 4)?;
    all_equal(node, "MaxPool", "dilations", 1, 2)?;
    Ok(size)
}

/// The name of `node`'s input `i` ("" if it has none).
fn input(node: &NodeProto, i: usize) -> &str {
    node.get_input().get(i).map_or("", String::as_str)
}

fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.get_attribute().iter().find(|a| a.get_name() == name)
}

/// An integer-list attribute, negative values as 0 (empty when absent).
fn ints(node: &NodeProto, name: &str) -> Vec<usize> {
    attribute(node, name)
        .map(|a| a.get_ints().iter().map(|&v| v.max(0) as usize).collect())
        .unwrap_or_default()
}

/// The error of `node` (named by its name, or its first output) of operator `op`.
fn node_error(op: &'static str, node: &NodeProto, problem: String) -> ReadError {
    let name = if node.get_name().is_empty() {
        node.get_output().first().cloned().unwrap_or_default()
    } else {
        node.get_name().to_string()
    };
    ReadError::Node {
        op,
        node: name,
        problem,
    }
}

/// An attribute the reader does not implement must hold the only value it implements
/// (`len` times `value`; absent: ONNX's default), or the file is refused rather than
/// misread.
fn all_equal(
    node: &NodeProto,
    op: &'static str,
    name: &str,
    value: usize,
    len: usize,
) -> Result<(), ReadError> {
    let got = ints(node, name);
    if got.is_empty() || (got.len() == len && got.iter().all(|&v| v == value)) {
        Ok(())
    } else {
        let problem = format!("{name} {got:?}: the reader implements {value} only");
        Err(node_error(op, node, problem))
    }
}
