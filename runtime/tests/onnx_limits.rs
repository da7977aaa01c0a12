//! ONNX files whose graph states or makes huge tensors (issue 12, item 8): refused from
//! the protobuf, before tract folds constants (30000x30000 took 3.5 GB at load;
//! 100000x100000 and 2^31-sized dimensions panicked inside tract).
#![cfg(feature = "tract")]

use std::path::Path;

use fmnist_runtime::onnx::{OnnxClassifier, OnnxError, MAX_NODES, MAX_TENSOR_ELEMENTS};
use tract_onnx::pb;

#[path = "common/onnx_graph.rs"]
mod onnx_graph;
use onnx_graph::{int64s, model, node, one_float, tensor_attribute};

/// `ConstantOfShape([side, side])` followed by an `Add` of it to itself: what took 3.5 GB.
fn constant_of_shape(side: i64) -> Vec<u8> {
    model(
        vec![
            node(
                "ConstantOfShape",
                &["shape"],
                "big",
                vec![tensor_attribute("value", one_float())],
            ),
            node("Add", &["big", "big"], "out", vec![]),
        ],
        vec![int64s("shape", &[side, side])],
    )
}

fn refused(bytes: &[u8], expected_elements: u64) -> String {
    match OnnxClassifier::from_bytes(bytes, Path::new("hostile.onnx")) {
        Err(err @ OnnxError::TooLarge { elements, .. }) => {
            assert_eq!(elements, expected_elements, "{err}");
            let text = err.to_string();
            assert!(text.starts_with("hostile.onnx: "), "{text}");
            text
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn constant_of_shape_beyond_the_cap_is_refused_before_tract_folds_it() {
    let started = std::time::Instant::now();
    let text = refused(&constant_of_shape(30_000), 900_000_000);
    assert!(text.contains("ConstantOfShape"), "{text}");
    // tract allocated, then panicked at these.
    refused(&constant_of_shape(100_000), 10_000_000_000);
    refused(&constant_of_shape(1 << 31), 1 << 62);
    refused(&constant_of_shape(i64::MAX), u64::MAX);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_shape_built_in_steps_or_given_to_expand_is_checked() {
    // Concat of two Constants (value_ints and a tensor), then ConstantOfShape.
    let bytes = model(
        vec![
            node(
                "Constant",
                &[],
                "a",
                vec![pb::AttributeProto {
                    name: "value_ints".into(),
                    r#type: pb::attribute_proto::AttributeType::Ints as i32,
                    ints: vec![20_000],
                    ..Default::default()
                }],
            ),
            node(
                "Constant",
                &[],
                "b",
                vec![tensor_attribute("value", int64s("", &[20_000]))],
            ),
            node("Concat", &["a", "b"], "shape", vec![]),
            node("ConstantOfShape", &["shape"], "out", vec![]),
        ],
        vec![],
    );
    refused(&bytes, 400_000_000);
    // Expand of a small tensor to a huge shape.
    let bytes = model(
        vec![node("Expand", &["one", "shape"], "out", vec![])],
        vec![one_float(), int64s("shape", &[50_000, 50_000])],
    );
    refused(&bytes, 2_500_000_000);
    // A side computed by arithmetic on constants: 6000 * 2, then 12000 + 8000 - 0 / 1.
    let bytes = model(
        vec![
            node("Mul", &["half", "two"], "side", vec![]),
            node("Sub", &["side", "zero"], "side2", vec![]),
            node("Div", &["side2", "one"], "side3", vec![]),
            node("Add", &["side3", "extra"], "other", vec![]),
            node("Concat", &["side3", "other"], "shape", vec![]),
            node("ConstantOfShape", &["shape"], "out", vec![]),
        ],
        vec![
            int64s("half", &[6_000]),
            int64s("two", &[2]),
            int64s("zero", &[0]),
            int64s("one", &[1]),
            int64s("extra", &[8_000]),
        ],
    );
    refused(&bytes, 240_000_000);
    // A product that would wrap i64 saturates instead of passing under the cap.
    let bytes = model(
        vec![
            node("Mul", &["big", "big"], "side", vec![]),
            node("Expand", &["one", "side"], "out", vec![]),
        ],
        vec![int64s("big", &[1 << 32, 1 << 32]), int64s("one", &[1])],
    );
    refused(&bytes, u64::MAX);
}

#[test]
fn stated_tensors_beyond_the_cap_are_refused() {
    // An initializer, and a Constant's value, that state 30000x30000 with no data.
    let huge = pb::TensorProto {
        name: "w".into(),
        dims: vec![30_000, 30_000],
        data_type: 1,
        ..Default::default()
    };
    let bytes = model(
        vec![node("Identity", &["w"], "out", vec![])],
        vec![huge.clone()],
    );
    refused(&bytes, 900_000_000);
    let bytes = model(
        vec![node(
            "Constant",
            &[],
            "out",
            vec![tensor_attribute("value", huge)],
        )],
        vec![],
    );
    refused(&bytes, 900_000_000);
}

#[test]
fn tensors_at_the_cap_pass_the_check_and_shipped_models_load() {
    // 4096x4096 = the cap: not refused for its size (tract may still refuse the graph,
    // which is not a classifier).
    match OnnxClassifier::from_bytes(&constant_of_shape(4096), Path::new("x.onnx")) {
        Err(OnnxError::TooLarge { .. }) => panic!("refused at the cap"),
        _ => assert_eq!(4096 * 4096, MAX_TENSOR_ELEMENTS),
    }
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut loaded = 0;
    for entry in std::fs::read_dir(models).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "onnx") {
            OnnxClassifier::load(&path).unwrap_or_else(|e| panic!("{e}"));
            loaded += 1;
        }
    }
    assert!(loaded > 0);
}

/// Issue 34, item 2: work that grows without bound from a small file. A chain of `Relu`
/// nodes loaded in time growing much faster than its length (4,000: 79-109 s); a `Scan`
/// over a long constant took 9 s per image. Both are refused from the protobuf, at once.
#[test]
fn graphs_of_too_many_nodes_or_with_control_flow_are_refused() {
    let chain = |length: usize| {
        let mut nodes = Vec::with_capacity(length);
        for i in 0..length {
            let input = if i == 0 {
                "input".to_string()
            } else {
                format!("r{}", i - 1)
            };
            let output = if i + 1 == length {
                "out".to_string()
            } else {
                format!("r{i}")
            };
            nodes.push(node("Relu", &[&input], &output, vec![]));
        }
        model(nodes, vec![])
    };
    let started = std::time::Instant::now();
    match OnnxClassifier::from_bytes(&chain(MAX_NODES + 1), Path::new("chain.onnx")) {
        Err(err @ OnnxError::TooComplex { .. }) => {
            let text = err.to_string();
            assert!(
                text.contains("chain.onnx") && text.contains("1001 nodes"),
                "{text}"
            );
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("accepted"),
    }
    assert!(
        started.elapsed().as_secs() < 5,
        "refused only after tract read it"
    );
    // At the limit the count passes (the graph itself is no classifier: its output is
    // refused for its shape, not for its size).
    let at_limit = OnnxClassifier::from_bytes(&chain(MAX_NODES), Path::new("chain.onnx"));
    assert!(
        !matches!(at_limit, Err(OnnxError::TooComplex { .. })),
        "{:?}",
        at_limit.err()
    );

    let scan = model(vec![node("Scan", &["input"], "out", vec![])], vec![]);
    match OnnxClassifier::from_bytes(&scan, Path::new("scan.onnx")) {
        Err(err @ OnnxError::TooComplex { .. }) => {
            assert!(err.to_string().contains("is a Scan: control flow"), "{err}");
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("accepted"),
    }
}
