//! Hostile ONNX graphs written with tract-onnx's protobuf types (prost messages): shared
//! by `runtime/tests/onnx_limits.rs` (the library's shape check) and
//! `runtime/cli/tests/budgets.rs` (the binary's memory budget).
#![allow(dead_code)]

use prost::Message;
use tract_onnx::pb;

pub fn int64s(name: &str, values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: 7,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

pub fn node(
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

pub fn tensor_attribute(name: &str, tensor: pb::TensorProto) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Tensor as i32,
        t: Some(tensor),
        ..Default::default()
    }
}

pub fn one_float() -> pb::TensorProto {
    pb::TensorProto {
        dims: vec![1],
        data_type: 1,
        float_data: vec![1.0],
        ..Default::default()
    }
}

/// A model with the classifier's input `[N,1,28,28]`, these nodes and initializers, and
/// the output `out`.
pub fn model(nodes: Vec<pb::NodeProto>, initializer: Vec<pb::TensorProto>) -> Vec<u8> {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = |value| Dimension {
        value: Some(value),
        ..Default::default()
    };
    let input = pb::ValueInfoProto {
        name: "input".into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![
                        dim(Value::DimParam("N".into())),
                        dim(Value::DimValue(1)),
                        dim(Value::DimValue(28)),
                        dim(Value::DimValue(28)),
                    ],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(pb::GraphProto {
            name: "hostile".into(),
            node: nodes,
            initializer,
            input: vec![input],
            output: vec![pb::ValueInfoProto {
                name: "out".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// An `ints` attribute.
pub fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// An `int` attribute.
pub fn int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// A float tensor of these dimensions holding `values` (or no data, stated only).
pub fn floats(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

/// A one-element tensor of strings named `s`.
pub fn strings() -> pb::TensorProto {
    pb::TensorProto {
        name: "s".into(),
        dims: vec![1],
        data_type: 8,
        string_data: vec![b"x".to_vec()],
        ..Default::default()
    }
}

/// The few-hundred-byte files of issue 34 (items 1 and 2) that aborted or stalled the
/// runtime, by name: their shapes as tract infers them are huge, or their work.
pub fn aborted(name: &str) -> Vec<u8> {
    match name {
        // The input padded by 60,000 on each side: 14 GB at run time.
        "pad" => model(
            vec![node("Pad", &["input", "pads"], "out", vec![])],
            vec![int64s(
                "pads",
                &[0, 0, 60_000, 60_000, 0, 0, 60_000, 60_000],
            )],
        ),
        // A constant resized by 20,000 on each side, which tract folds at load.
        "resize-constant" => model(
            vec![node("Resize", &["c", "", "scales"], "out", vec![])],
            vec![
                floats("c", &[1, 1, 2, 2], &[1.0; 4]),
                floats("scales", &[4], &[1.0, 1.0, 20_000.0, 20_000.0]),
            ],
        ),
        // A convolution dilated and padded by 40,000.
        "dilated" => model(
            vec![node(
                "Conv",
                &["input", "w"],
                "out",
                vec![
                    ints("dilations", &[40_000, 40_000]),
                    ints("pads", &[40_000; 4]),
                ],
            )],
            vec![floats("w", &[1, 1, 2, 2], &[1.0; 4])],
        ),
        "transpose" => model(
            vec![node(
                "Transpose",
                &["input"],
                "out",
                vec![ints("perm", &[0, 0, 0, 0])],
            )],
            vec![],
        ),
        "unsqueeze" => model(
            vec![node("Unsqueeze", &["input", "axes"], "out", vec![])],
            vec![int64s("axes", &(0..996).collect::<Vec<i64>>())],
        ),
        "string-expand" => model(
            vec![node("Expand", &["s", "shape"], "out", vec![])],
            vec![strings(), int64s("shape", &[100, 100])],
        ),
        // Twenty 4096x4096 MatMuls after a 784x4096 one, weights made by ConstantOfShape:
        // 42-45 s per image.
        "matmuls" => {
            let mut nodes = vec![
                node("ConstantOfShape", &["square"], "w", vec![]),
                node("ConstantOfShape", &["tall"], "w0", vec![]),
                node("Flatten", &["input"], "x", vec![]),
                node("MatMul", &["x", "w0"], "m0", vec![]),
            ];
            for i in 1..=20 {
                let (input, output) = (format!("m{}", i - 1), format!("m{i}"));
                nodes.push(node("MatMul", &[&input, "w"], &output, vec![]));
            }
            model(
                nodes,
                vec![
                    int64s("square", &[4096, 4096]),
                    int64s("tall", &[784, 4096]),
                ],
            )
        }
        other => panic!("no hostile file {other}"),
    }
}
