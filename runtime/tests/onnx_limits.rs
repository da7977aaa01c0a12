//! ONNX files whose graph states or makes huge tensors (issue 12, item 8): refused from
//! the protobuf, before tract folds constants (30000x30000 took 3.5 GB at load;
//! 100000x100000 and 2^31-sized dimensions panicked inside tract).
#![cfg(feature = "tract")]

use std::path::Path;

use fmnist_runtime::onnx::{
    OnnxClassifier, OnnxError, MAX_MACS, MAX_NODES, MAX_RANK, MAX_TENSOR_ELEMENTS,
    MAX_TOTAL_ELEMENTS,
};
use tract_onnx::pb;

#[path = "common/onnx_graph.rs"]
mod onnx_graph;
use onnx_graph::{
    aborted, floats, int, int64s, ints, model, node, one_float, strings, tensor_attribute,
};

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
        vec![
            pb::TensorProto {
                name: "one".into(),
                ..one_float()
            },
            int64s("shape", &[50_000, 50_000]),
        ],
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

/// Issue 34, item 1: files of a few hundred bytes whose shapes, as tract infers them, are
/// huge; tract made some of those buffers as plain `Vec`s, whose refused allocation aborted
/// the process (exit 134). The graph check propagates every shape from the input
/// `[1, 1, 28, 28]` with checked arithmetic and refuses them before tract reads the graph.
#[test]
fn shapes_tract_would_infer_too_large_are_refused_before_it_reads_the_graph() {
    let pad = |input: &str, pads: &[i64]| {
        model(
            vec![node("Pad", &[input, "pads"], "out", vec![])],
            vec![int64s("pads", pads), floats("c", &[1, 1, 2, 2], &[1.0; 4])],
        )
    };
    let side = 28 + 120_000u64;
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        // The input padded by 60,000 on each side: 14 GB at run time.
        ("pad.onnx", aborted("pad"), side * side),
        // A constant padded, or resized, which tract folds at load.
        (
            "pad-constant.onnx",
            pad("c", &[0, 0, 30_000, 30_000, 0, 0, 30_000, 30_000]),
            60_002 * 60_002,
        ),
        (
            "resize-constant.onnx",
            aborted("resize-constant"),
            40_000 * 40_000,
        ),
        // A convolution dilated and padded by 40,000.
        ("dilated.onnx", aborted("dilated"), 40_028 * 40_028),
        (
            "tile.onnx",
            model(
                vec![node("Tile", &["input", "repeats"], "out", vec![])],
                vec![int64s("repeats", &[1, 1, 5_000, 5_000])],
            ),
            140_000 * 140_000,
        ),
    ];
    for (name, bytes, expected) in cases {
        assert!(bytes.len() < 400, "{name}: {} bytes", bytes.len());
        match OnnxClassifier::from_bytes(&bytes, Path::new(name)) {
            Err(err @ OnnxError::TooLarge { elements, .. }) => {
                assert_eq!(elements, expected, "{name}: {err}");
                assert!(err.to_string().starts_with(name), "{err}");
            }
            Err(other) => panic!("{name}: refused for another reason: {other}"),
            Ok(_) => panic!("{name}: accepted"),
        }
    }
    // Three initializers of 15M floats, each under the cap, together over the total
    // (451 MB of RSS, then the abort, as a 180 MB file; here stated without data).
    let stated = |name: &str| floats(name, &[15_000_000], &[]);
    let bytes = model(
        vec![
            node("Add", &["a", "b"], "ab", vec![]),
            node("Add", &["ab", "c"], "out", vec![]),
        ],
        vec![stated("a"), stated("b"), stated("c")],
    );
    match OnnxClassifier::from_bytes(&bytes, Path::new("three.onnx")) {
        Err(err @ OnnxError::TooComplex { .. }) => {
            let text = err.to_string();
            assert!(
                text.contains("initializer `c`")
                    && text.contains(&format!("over {MAX_TOTAL_ELEMENTS} elements in all")),
                "{text}"
            );
        }
        other => panic!("{:?}", other.err()),
    }
}

/// What the check refuses as not followable or not valid: each was an abort, a panic
/// or a silently wrong shape inside tract.
#[test]
fn operators_and_attributes_the_check_cannot_follow_are_refused() {
    let string = strings();
    let one = |op: &str, inputs: &[&str], attributes| node(op, inputs, "out", attributes);
    let unsqueeze_why =
        format!("996 axes would make 1000 dimensions, more than the {MAX_RANK} accepted");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "transpose",
            aborted("transpose"),
            "perm [0, 0, 0, 0] is not a permutation of 4 axes",
        ),
        ("unsqueeze", aborted("unsqueeze"), &unsqueeze_why),
        (
            "string-expand",
            aborted("string-expand"),
            "initializer `s` is of element type 8: only numbers are accepted",
        ),
        (
            "string-constant-of-shape",
            model(
                vec![one(
                    "ConstantOfShape",
                    &["shape"],
                    vec![tensor_attribute(
                        "value",
                        pb::TensorProto {
                            name: String::new(),
                            ..string
                        },
                    )],
                )],
                vec![int64s("shape", &[100, 100])],
            ),
            "(ConstantOfShape) is of element type 8",
        ),
        (
            "cast-to-string",
            model(vec![one("Cast", &["input"], vec![int("to", 8)])], vec![]),
            "cast to element type 8",
        ),
        (
            "lrn",
            model(vec![one("LRN", &["input"], vec![int("size", 0)])], vec![]),
            "size 0 is not a positive window",
        ),
        (
            "resize",
            model(
                vec![one("Resize", &["input", "", "scales"], vec![])],
                vec![floats("scales", &[4], &[1.0, 1.0, -2.0, 2.0])],
            ),
            "scale -2 is not a positive number",
        ),
        (
            "topk",
            model(
                vec![pb::NodeProto {
                    output: vec!["out".into(), "indices".into()],
                    ..one("TopK", &["input", "k"], vec![])
                }],
                vec![int64s("k", &[1_000_000_000])],
            ),
            "K = 1000000000 is outside 0..=28",
        ),
        (
            "dilation",
            model(
                vec![one(
                    "Conv",
                    &["input", "w"],
                    vec![ints("dilations", &[1_000, 1])],
                )],
                vec![floats("w", &[1, 1, 2, 2], &[1.0; 4])],
            ),
            "a window reaching 1001 does not fit the 28 pixels of axis 2",
        ),
        (
            "stride",
            model(
                vec![one("Conv", &["input", "w"], vec![ints("strides", &[0, 1])])],
                vec![floats("w", &[1, 1, 2, 2], &[1.0; 4])],
            ),
            "stride 0 is not positive",
        ),
        (
            "nonzero",
            model(vec![one("NonZero", &["input"], vec![])], vec![]),
            "(NonZero): operator not among those this runtime accepts",
        ),
        (
            "domain",
            model(
                vec![pb::NodeProto {
                    domain: "com.example".into(),
                    ..one("Relu", &["input"], vec![])
                }],
                vec![],
            ),
            "operator of domain `com.example` not among",
        ),
        (
            "external",
            model(
                vec![one("Add", &["input", "w"], vec![])],
                vec![pb::TensorProto {
                    data_location: Some(1),
                    ..floats("w", &[1], &[])
                }],
            ),
            "initializer `w` keeps its data in another file",
        ),
        (
            "reshape",
            model(
                vec![
                    one("Cast", &["input"], vec![int("to", 7)]),
                    node("Reshape", &["input", "out"], "r", vec![]),
                ],
                vec![],
            ),
            "input 1 (`out`) is not an integer constant this check can follow",
        ),
        (
            "order",
            model(
                vec![
                    node("Relu", &["later"], "out", vec![]),
                    node("Relu", &["input"], "later", vec![]),
                ],
                vec![],
            ),
            "input `later` is made by no node before it",
        ),
    ];
    for (name, bytes, why) in cases {
        match OnnxClassifier::from_bytes(&bytes, Path::new("g.onnx")) {
            Err(err @ OnnxError::Graph { .. }) => {
                let text = err.to_string();
                assert!(
                    text.starts_with("g.onnx: node `") || text.starts_with("g.onnx: "),
                    "{text}"
                );
                assert!(text.contains(why), "{name}: {text}");
            }
            Err(other) => panic!("{name}: refused for another reason: {other}"),
            Ok(_) => panic!("{name}: accepted"),
        }
    }
}

/// Issue 34, item 2: ONNX work is counted before tract runs anything. Twenty 4096x4096
/// `MatMul`s in a 2 KB file took 42-45 s per image.
#[test]
fn onnx_work_is_counted_and_bounded() {
    let bytes = aborted("matmuls");
    assert!(bytes.len() < 2_000, "{} bytes", bytes.len());
    let started = std::time::Instant::now();
    match OnnxClassifier::from_bytes(&bytes, Path::new("matmuls.onnx")) {
        Err(err @ OnnxError::TooComplex { .. }) => {
            // ConstantOfShape: 16.8M + 3.2M; MatMul 0: 3.2M; each next one 16.8M: the
            // eleventh takes the sum to 208M.
            let text = err.to_string();
            assert!(
                text.contains(&format!(
                    "node `m11` (MatMul) takes the graph over {MAX_MACS}"
                )),
                "{text}"
            );
        }
        other => panic!("{:?}", other.err()),
    }
    assert!(started.elapsed().as_secs() < 2);

    // A graph as PyTorch exports `x.view(x.size(0), -1)`: Shape, Gather, Unsqueeze,
    // Concat, Reshape. Its shapes are followed and its work is exactly what it computes.
    let scalar_zero = pb::TensorProto {
        name: "zero".into(),
        data_type: 7,
        int64_data: vec![0],
        ..Default::default()
    };
    let bias: Vec<f32> = (0..10).map(|i| i as f32 - 4.5).collect();
    let bytes = model(
        vec![
            node(
                "Conv",
                &["input", "k", "kb"],
                "c",
                vec![ints("pads", &[1; 4])],
            ),
            node("Relu", &["c"], "r", vec![]),
            node(
                "MaxPool",
                &["r"],
                "p",
                vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            ),
            node("Shape", &["p"], "dims", vec![]),
            node("Gather", &["dims", "zero"], "n", vec![]),
            node("Unsqueeze", &["n", "axes"], "n1", vec![]),
            node(
                "Concat",
                &["n1", "minus_one"],
                "shape",
                vec![int("axis", 0)],
            ),
            node("Reshape", &["p", "shape"], "flat", vec![]),
            node(
                "Gemm",
                &["flat", "fc", "fcb"],
                "out",
                vec![int("transB", 1)],
            ),
        ],
        vec![
            floats("k", &[4, 1, 3, 3], &[0.1; 36]),
            floats("kb", &[4], &[0.0; 4]),
            scalar_zero,
            int64s("axes", &[0]),
            int64s("minus_one", &[-1]),
            floats("fc", &[10, 784], &[0.0; 7840]),
            floats("fcb", &[10], &bias),
        ],
    );
    let classifier = OnnxClassifier::from_bytes(&bytes, Path::new("torch.onnx"))
        .unwrap_or_else(|e| panic!("{e}"));
    let work = classifier.work();
    // Conv 4x28x28 outputs of 9 taps, Relu 3,136, MaxPool 784 outputs of 4, Gather 1,
    // Concat 2, Gemm 10x784.
    assert_eq!(work.macs, 28_224 + 3_136 + 3_136 + 1 + 2 + 7_840);
    assert_eq!(work.nodes, 9);
    let logits = classifier.logits(&[7; 784]).unwrap();
    assert_eq!(logits, bias);
}
