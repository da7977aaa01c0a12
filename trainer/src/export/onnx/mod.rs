//! ONNX export with `onnx-protobuf`: opset 13, a float input `image` of shape `[N, 1, 28, 28]`
//! (pixels / 255, symbolic batch `N`), an output `logits` of shape `[N, 10]`, weights as
//! initializers, batch norm folded into the convolutions.

use onnx_protobuf::{
    AttributeProto, AttributeProto_AttributeType, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorProto_DataType,
    TensorShapeProto, TensorShapeProto_Dimension, TypeProto, TypeProto_Tensor, ValueInfoProto,
};
use protobuf::Message;

use super::{FoldedConv, FoldedLayer, FoldedLinear, FoldedOp, ModelCard};
use crate::model::{ChainError, ModelKind, Shape};
use fmnist_runtime::{CLASS_NAMES, INPUT_SCALE};

/// The ONNX operator set the graph uses.
pub const OPSET: i64 = 13;
/// IR version 7 is the one that goes with opset 13.
pub const IR_VERSION: i64 = 7;
/// Name of the graph input.
pub const INPUT: &str = "image";
/// Name of the graph output.
pub const OUTPUT: &str = "logits";

/// The serialized ONNX model.
pub fn to_bytes(
    layers: &[FoldedLayer],
    card: &ModelCard,
) -> Result<Vec<u8>, protobuf::ProtobufError> {
    model(layers, card).write_to_bytes()
}

/// The ONNX model as a protobuf message.
pub fn model(layers: &[FoldedLayer], card: &ModelCard) -> ModelProto {
    let mut graph = GraphProto::new();
    graph.set_name(format!("fmnist_{}", card.kind.name()));
    // The graph's input and output shapes are the first layer's input and the last one's
    // output, after the symbolic batch.
    let dims = |shape: Shape| -> Vec<Option<usize>> {
        match shape {
            Shape::Map(dims) => std::iter::once(None).chain(dims.map(Some)).collect(),
            Shape::Flat(n) => vec![None, Some(n)],
        }
    };
    let input = layers
        .first()
        .map_or(crate::model::INPUT_SHAPE, |l| l.input);
    let output = layers
        .last()
        .map_or(crate::model::INPUT_SHAPE, |l| l.output);
    graph.mut_input().push(value_info(INPUT, &dims(input)));
    graph.mut_output().push(value_info(OUTPUT, &dims(output)));

    let mut current = INPUT.to_string();
    for (index, layer) in layers.iter().enumerate() {
        let last = index + 1 == layers.len();
        let output = if last {
            OUTPUT.to_string()
        } else {
            format!("x{index}")
        };
        let name = |suffix: &str| format!("l{index}_{suffix}");
        let node = match &layer.op {
            FoldedOp::Conv(FoldedConv {
                inputs,
                outputs,
                kernel,
                padding,
                weight,
                bias,
            }) => {
                let (k, p) = (*kernel as i64, *padding as i64);
                graph.mut_initializer().push(tensor(
                    &name("weight"),
                    &[*outputs, *inputs, *kernel, *kernel],
                    weight,
                ));
                graph
                    .mut_initializer()
                    .push(tensor(&name("bias"), &[*outputs], bias));
                let mut node = node(
                    "Conv",
                    &name("conv"),
                    &[&current, &name("weight"), &name("bias")],
                    &output,
                );
                node.mut_attribute().push(ints("kernel_shape", &[k, k]));
                node.mut_attribute().push(ints("pads", &[p, p, p, p]));
                node.mut_attribute().push(ints("strides", &[1, 1]));
                node.mut_attribute().push(ints("dilations", &[1, 1]));
                node.mut_attribute().push(int("group", 1));
                node
            }
            FoldedOp::Relu => node("Relu", &name("relu"), &[&current], &output),
            FoldedOp::LeakyRelu { slope } => {
                let mut node = node("LeakyRelu", &name("leaky_relu"), &[&current], &output);
                node.mut_attribute().push(float("alpha", *slope));
                node
            }
            FoldedOp::MaxPool { size } => {
                let s = *size as i64;
                let mut node = node("MaxPool", &name("max_pool"), &[&current], &output);
                node.mut_attribute().push(ints("kernel_shape", &[s, s]));
                // ONNX's strides default to 1, not to the kernel size.
                node.mut_attribute().push(ints("strides", &[s, s]));
                node.mut_attribute().push(ints("pads", &[0, 0, 0, 0]));
                node
            }
            FoldedOp::Flatten => {
                let mut node = node("Flatten", &name("flatten"), &[&current], &output);
                node.mut_attribute().push(int("axis", 1));
                node
            }
            FoldedOp::Linear(FoldedLinear {
                inputs,
                outputs,
                weight,
                bias,
            }) => {
                graph
                    .mut_initializer()
                    .push(tensor(&name("weight"), &[*outputs, *inputs], weight));
                graph
                    .mut_initializer()
                    .push(tensor(&name("bias"), &[*outputs], bias));
                let mut node = node(
                    "Gemm",
                    &name("linear"),
                    &[&current, &name("weight"), &name("bias")],
                    &output,
                );
                node.mut_attribute().push(int("transB", 1));
                node
            }
        };
        graph.mut_node().push(node);
        current = output;
    }

    let mut model = ModelProto::new();
    model.set_ir_version(IR_VERSION);
    let mut opset = OperatorSetIdProto::new();
    opset.set_domain(String::new());
    opset.set_version(OPSET);
    model.mut_opset_import().push(opset);
    model.set_producer_name("fmnist-trainer".into());
    model.set_producer_version(env!("CARGO_PKG_VERSION").into());
    model.set_model_version(1);
    model.set_doc_string(format!(
        "Fashion-MNIST classifier ({}). Input `{INPUT}`: float32 [N,1,28,28], pixel value / 255 \
         (0 = black background, garments light). Output `{OUTPUT}`: float32 [N,10] logits in class order.",
        card.kind.name()
    ));
    for (key, value) in metadata(card) {
        let mut entry = StringStringEntryProto::new();
        entry.set_key(key.into());
        entry.set_value(value);
        model.mut_metadata_props().push(entry);
    }
    model.set_graph(graph);
    model
}

/// The `metadata_props` entries.
pub fn metadata(card: &ModelCard) -> Vec<(&'static str, String)> {
    let names = serde_json::to_string(&CLASS_NAMES).unwrap_or_default();
    let mut entries = vec![
        ("class_names", names),
        ("input_scale", format!("{INPUT_SCALE:e}")),
        (
            "input_description",
            "float32 [N,1,28,28] = u8 pixel / 255, black background".into(),
        ),
        ("model_kind", card.kind.name().into()),
        ("parameter_count", card.parameters.to_string()),
        ("training_command", card.training_command.clone()),
    ];
    if let Some(accuracy) = card.test_accuracy {
        entries.push(("test_accuracy", format!("{accuracy:.4}")));
    }
    if let Some(temperature) = card.temperature {
        entries.push((
            crate::temperature::ONNX_KEY,
            crate::temperature::onnx_entry(temperature).take_value(),
        ));
    }
    entries
}

fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for dim in dims {
        let mut d = TensorShapeProto_Dimension::new();
        match dim {
            Some(size) => d.set_dim_value(*size as i64),
            None => d.set_dim_param("N".into()),
        }
        shape.mut_dim().push(d);
    }
    let mut tensor = TypeProto_Tensor::new();
    tensor.set_elem_type(TensorProto_DataType::FLOAT as i32);
    tensor.set_shape(shape);
    let mut ty = TypeProto::new();
    ty.set_tensor_type(tensor);
    let mut info = ValueInfoProto::new();
    info.set_name(name.into());
    info.set_field_type(ty);
    info
}

fn tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    let mut tensor = TensorProto::new();
    tensor.set_name(name.into());
    tensor.set_dims(dims.iter().map(|&d| d as i64).collect());
    tensor.set_data_type(TensorProto_DataType::FLOAT as i32);
    // raw_data is little-endian whatever the host.
    tensor.set_raw_data(values.iter().flat_map(|v| v.to_le_bytes()).collect());
    tensor
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
    let mut node = NodeProto::new();
    node.set_op_type(op.into());
    node.set_name(name.into());
    node.set_input(inputs.iter().map(|s| s.to_string()).collect());
    node.set_output(vec![output.to_string()].into());
    node
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    let mut attribute = AttributeProto::new();
    attribute.set_name(name.into());
    attribute.set_field_type(AttributeProto_AttributeType::INTS);
    attribute.set_ints(values.to_vec());
    attribute
}

fn int(name: &str, value: i64) -> AttributeProto {
    let mut attribute = AttributeProto::new();
    attribute.set_name(name.into());
    attribute.set_field_type(AttributeProto_AttributeType::INT);
    attribute.set_i(value);
    attribute
}

fn float(name: &str, value: f32) -> AttributeProto {
    let mut attribute = AttributeProto::new();
    attribute.set_name(name.into());
    attribute.set_field_type(AttributeProto_AttributeType::FLOAT);
    attribute.set_f(value);
    attribute
}

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
/// ([`super::unfold`]). Any other graph is refused with the reason.
pub fn read(bytes: &[u8]) -> Result<Vec<FoldedLayer>, ReadError> {
    layers(&ModelProto::parse_from_bytes(bytes).map_err(ReadError::NotOnnx)?)
}

/// The layers of a parsed file ([`read`]).
fn layers(model: &ModelProto) -> Result<Vec<FoldedLayer>, ReadError> {
    let graph = model.get_graph();
    let initialisers: std::collections::HashMap<&str, &TensorProto> = graph
        .get_initializer()
        .iter()
        .map(|t| (t.get_name(), t))
        .collect();
    let values = |name: &str| -> Result<(Vec<usize>, Vec<f32>), ReadError> {
        let t = initialisers
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
    };
    let ints = |node: &NodeProto, name: &str| -> Vec<usize> {
        node.get_attribute()
            .iter()
            .find(|a| a.get_name() == name)
            .map(|a| a.get_ints().iter().map(|&v| v.max(0) as usize).collect())
            .unwrap_or_default()
    };
    // An attribute the reader does not implement must hold the only value it implements
    // (absent: ONNX's default), or the file is refused rather than misread.
    let node_error = |op: &'static str, node: &NodeProto, problem: String| ReadError::Node {
        op,
        node: if node.get_name().is_empty() {
            node.get_output().first().cloned().unwrap_or_default()
        } else {
            node.get_name().to_string()
        },
        problem,
    };
    let all_equal = |node: &NodeProto, op: &'static str, name: &str, value: usize, len: usize| {
        let got = ints(node, name);
        if got.is_empty() || (got.len() == len && got.iter().all(|&v| v == value)) {
            Ok(())
        } else {
            Err(node_error(
                op,
                node,
                format!("{name} {got:?}: the reader implements {value} only"),
            ))
        }
    };
    let group = |node: &NodeProto| {
        node.get_attribute()
            .iter()
            .find(|a| a.get_name() == "group")
            .map_or(1, |a| a.get_i())
    };
    let ops = graph
        .get_node()
        .iter()
        .map(|node| {
            let input = |i: usize| node.get_input().get(i).map_or("", String::as_str);
            Ok(match node.get_op_type() {
                "Conv" => {
                    let (dims, weight) = values(input(1))?;
                    let (_, bias) = values(input(2))?;
                    let &[outputs, inputs, kernel, kernel_x] = dims.as_slice() else {
                        return Err(ReadError::WeightDims { op: "Conv", dims });
                    };
                    if kernel != kernel_x || kernel == 0 {
                        return Err(ReadError::WeightDims { op: "Conv", dims });
                    }
                    if bias.len() != outputs {
                        return Err(node_error(
                            "Conv",
                            node,
                            format!("{} biases for {outputs} output channels", bias.len()),
                        ));
                    }
                    all_equal(node, "Conv", "strides", 1, 2)?;
                    all_equal(node, "Conv", "dilations", 1, 2)?;
                    if group(node) != 1 {
                        return Err(node_error("Conv", node, "groups other than 1".into()));
                    }
                    let padding = ints(node, "pads").first().copied().unwrap_or(0);
                    all_equal(node, "Conv", "pads", padding, 4)?;
                    if padding >= kernel {
                        return Err(node_error(
                            "Conv",
                            node,
                            format!("padding {padding} not below the kernel side {kernel}"),
                        ));
                    }
                    FoldedOp::Conv(FoldedConv {
                        inputs,
                        outputs,
                        kernel,
                        padding,
                        weight,
                        bias,
                    })
                }
                "Relu" => FoldedOp::Relu,
                "LeakyRelu" => FoldedOp::LeakyRelu {
                    slope: node
                        .get_attribute()
                        .iter()
                        .find(|a| a.get_name() == "alpha")
                        .map_or(0.01, |a| a.get_f()),
                },
                "MaxPool" => {
                    let size = ints(node, "kernel_shape").first().copied().unwrap_or(1);
                    all_equal(node, "MaxPool", "kernel_shape", size, 2)?;
                    // The exporter writes strides equal to the window (ONNX's default is 1).
                    if ints(node, "strides") != [size, size] {
                        return Err(node_error(
                            "MaxPool",
                            node,
                            format!(
                                "strides {:?}, expected the window {size}",
                                ints(node, "strides")
                            ),
                        ));
                    }
                    all_equal(node, "MaxPool", "pads", 0, 4)?;
                    all_equal(node, "MaxPool", "dilations", 1, 2)?;
                    FoldedOp::MaxPool { size }
                }
                "Flatten" => FoldedOp::Flatten,
                "Gemm" => {
                    let (dims, weight) = values(input(1))?;
                    let (_, bias) = values(input(2))?;
                    let &[outputs, inputs] = dims.as_slice() else {
                        return Err(ReadError::WeightDims { op: "Gemm", dims });
                    };
                    if bias.len() != outputs {
                        return Err(node_error(
                            "Gemm",
                            node,
                            format!("{} biases for {outputs} outputs", bias.len()),
                        ));
                    }
                    let attribute =
                        |name: &str| node.get_attribute().iter().find(|a| a.get_name() == name);
                    let trans = |name: &str| attribute(name).map_or(0, |a| a.get_i());
                    let scale = |name: &str| attribute(name).map_or(1.0, |a| a.get_f());
                    if (
                        trans("transA"),
                        trans("transB"),
                        scale("alpha"),
                        scale("beta"),
                    ) != (0, 1, 1.0, 1.0)
                    {
                        return Err(node_error(
                            "Gemm",
                            node,
                            "the reader implements transB = 1, no transA, alpha = beta = 1 only"
                                .into(),
                        ));
                    }
                    FoldedOp::Linear(FoldedLinear {
                        inputs,
                        outputs,
                        weight,
                        bias,
                    })
                }
                other => return Err(ReadError::Operator(other.to_string())),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    FoldedLayer::chain(ops).map_err(ReadError::Chain)
}

#[cfg(test)]
mod tests;
