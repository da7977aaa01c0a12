//! ONNX export with `onnx-protobuf`: opset 13, a float input `image` of shape `[N, 1, 28, 28]`
//! (pixels / 255, symbolic batch `N`), an output `logits` of shape `[N, 10]`, weights as
//! initializers, batch norm folded into the convolutions.

use onnx_protobuf::{
    AttributeProto, AttributeProto_AttributeType, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorProto_DataType,
    TensorShapeProto, TensorShapeProto_Dimension, TypeProto, TypeProto_Tensor, ValueInfoProto,
};
use protobuf::Message;

mod read;
pub use read::{read, read_with_kind, ReadError};

use super::{FoldedConv, FoldedLayer, FoldedLinear, FoldedOp, ModelCard};
use crate::model::Shape;
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
        let node = layer_node(&mut graph, index, layer, &current, &output);
        graph.mut_node().push(node);
        current = output;
    }

    with_header(graph, card)
}

/// The node of layer `index` (input `current`, output `output`), its weights added to
/// `graph`'s initialisers. About 80 lines: one arm per layer kind, each its node's
/// attributes in the order ONNX lists them, which reads better whole than split.
fn layer_node(
    graph: &mut GraphProto,
    index: usize,
    layer: &FoldedLayer,
    current: &str,
    output: &str,
) -> NodeProto {
    let name = |suffix: &str| format!("l{index}_{suffix}");
    match &layer.op {
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
                &[current, &name("weight"), &name("bias")],
                output,
            );
            node.mut_attribute().push(ints("kernel_shape", &[k, k]));
            node.mut_attribute().push(ints("pads", &[p, p, p, p]));
            node.mut_attribute().push(ints("strides", &[1, 1]));
            node.mut_attribute().push(ints("dilations", &[1, 1]));
            node.mut_attribute().push(int("group", 1));
            node
        }
        FoldedOp::Relu => node("Relu", &name("relu"), &[current], output),
        FoldedOp::LeakyRelu { slope } => {
            let mut node = node("LeakyRelu", &name("leaky_relu"), &[current], output);
            node.mut_attribute().push(float("alpha", *slope));
            node
        }
        FoldedOp::MaxPool { size } => {
            let s = *size as i64;
            let mut node = node("MaxPool", &name("max_pool"), &[current], output);
            node.mut_attribute().push(ints("kernel_shape", &[s, s]));
            // ONNX's strides default to 1, not to the kernel size.
            node.mut_attribute().push(ints("strides", &[s, s]));
            node.mut_attribute().push(ints("pads", &[0, 0, 0, 0]));
            node
        }
        FoldedOp::Flatten => {
            let mut node = node("Flatten", &name("flatten"), &[current], output);
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
                &[current, &name("weight"), &name("bias")],
                output,
            );
            node.mut_attribute().push(int("transB", 1));
            node
        }
    }
}
/// The model around `graph`: IR version, opset, producer, description and metadata.
fn with_header(graph: GraphProto, card: &ModelCard) -> ModelProto {
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

#[cfg(test)]
mod tests;
