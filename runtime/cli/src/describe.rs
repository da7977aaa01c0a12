//! `runtime info` on an ONNX file: the graph as the file states it (inputs, outputs, opset,
//! nodes and their weight shapes), read from its protobuf once the runtime has loaded it.

use std::collections::HashMap;
use std::fmt::Write as _;

use tract_onnx::pb;
use tract_onnx::prelude::Framework;

/// ONNX's element type names (`TensorProto.DataType`).
fn type_name(elem_type: i32) -> String {
    match elem_type {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        other => return format!("type {other}"),
    }
    .to_string()
}

/// `[N, 1, 28, 28]`: fixed sizes as numbers, symbolic ones by name, unknown ones as `?`.
fn shape(dims: &[pb::tensor_shape_proto::Dimension]) -> String {
    use pb::tensor_shape_proto::dimension::Value;
    let dims: Vec<String> = dims
        .iter()
        .map(|d| match &d.value {
            Some(Value::DimValue(v)) => v.to_string(),
            Some(Value::DimParam(p)) if !p.is_empty() => p.clone(),
            _ => "?".into(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// `name: float32 [N, 1, 28, 28]`.
fn value_info(value: &pb::ValueInfoProto) -> String {
    use pb::type_proto::Value;
    let kind = match value.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Value::TensorType(tensor)) => format!(
            "{} {}",
            type_name(tensor.elem_type),
            tensor
                .shape
                .as_ref()
                .map_or_else(|| "(shape not stated)".into(), |s| shape(&s.dim))
        ),
        None => "(type not stated)".into(),
    };
    format!("{}: {kind}", value.name)
}

fn dims(dims: &[i64]) -> String {
    let dims: Vec<String> = dims.iter().map(i64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// The description of an ONNX file's graph; `bytes` is the file, already loaded by the
/// runtime (so a readable ONNX model).
pub fn onnx(bytes: &[u8]) -> anyhow::Result<String> {
    let proto = tract_onnx::onnx().proto_model_for_read(&mut &bytes[..])?;
    let mut text = String::new();
    let opsets: Vec<String> = proto
        .opset_import
        .iter()
        .map(|o| {
            let domain = if o.domain.is_empty() {
                "ai.onnx"
            } else {
                &o.domain
            };
            format!("{domain} {}", o.version)
        })
        .collect();
    writeln!(
        text,
        "ir version: {}; opset: {}",
        proto.ir_version,
        opsets.join(", ")
    )?;
    if !proto.producer_name.is_empty() {
        writeln!(
            text,
            "producer: {} {}",
            proto.producer_name, proto.producer_version
        )?;
    }
    let Some(graph) = &proto.graph else {
        writeln!(text, "graph: none")?;
        return Ok(text);
    };
    let initializers: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let parameters: i64 = graph
        .initializer
        .iter()
        .map(|t| t.dims.iter().product::<i64>())
        .sum();
    writeln!(text, "inputs:")?;
    // Older exporters list the initializers among the inputs too; they are weights.
    for input in graph
        .input
        .iter()
        .filter(|i| !initializers.contains_key(i.name.as_str()))
    {
        writeln!(text, "  {}", value_info(input))?;
    }
    writeln!(text, "outputs:")?;
    for output in &graph.output {
        writeln!(text, "  {}", value_info(output))?;
    }
    writeln!(
        text,
        "parameters: {parameters} in {} initializers",
        graph.initializer.len()
    )?;
    writeln!(text, "layers ({} nodes):", graph.node.len())?;
    for node in &graph.node {
        let weights: Vec<String> = node
            .input
            .iter()
            .filter_map(|name| initializers.get(name.as_str()))
            .map(|t| format!("{} {}", t.name, dims(&t.dims)))
            .collect();
        let mut line = node.op_type.clone();
        if !node.name.is_empty() {
            let _ = write!(line, " {}", node.name);
        }
        if !weights.is_empty() {
            let _ = write!(line, " ({})", weights.join(", "));
        }
        writeln!(text, "  {line}")?;
    }
    Ok(text)
}
