use super::*;
use crate::backend::Cpu;
use crate::export::{fold, unfold};
use crate::model::{Classifier, ModelKind};
use burn::prelude::*;
use burn::tensor::Distribution;
use fmnist_runtime::IMAGE_SIDE;

#[test]
fn an_exported_file_reads_back_into_a_burn_model_with_the_same_logits() {
    let device = Default::default();
    for &kind in ModelKind::all() {
        let model = Classifier::<Cpu>::new(kind, &device);
        let folded = fold(&model, kind).expect("folds");
        let card = ModelCard {
            kind,
            parameters: 0,
            test_accuracy: None,
            training_command: "test".into(),
            temperature: Some(0.75),
        };
        let bytes = to_bytes(&folded, &card).expect("serialises");
        let back = unfold::<Cpu>(&read(&bytes).expect("reads back"), &device);
        let images = Tensor::<Cpu, 4>::random(
            [3, 1, IMAGE_SIDE, IMAGE_SIDE],
            Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let expected = crate::batch::to_f32_vec(model.forward(images.clone()));
        let got = crate::batch::to_f32_vec(back.forward(images));
        assert_eq!(expected.len(), 3 * fmnist_runtime::CLASS_COUNT);
        let worst = expected
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "{}: logits differ by {worst}", kind.name());
    }
    assert!(read(b"not an onnx file").is_err());
}

/// An exported `cnn` (two convolutions, a pool, a Gemm) as a protobuf to break.
fn exported_cnn() -> ModelProto {
    let device = Default::default();
    let kind = ModelKind::Cnn;
    let folded = fold(&Classifier::<Cpu>::new(kind, &device), kind).expect("folds");
    let card = ModelCard {
        kind,
        parameters: 0,
        test_accuracy: None,
        training_command: "test".into(),
        temperature: None,
    };
    model(&folded, &card)
}

fn node_of(proto: &mut ModelProto, op: &str) -> usize {
    proto
        .get_graph()
        .get_node()
        .iter()
        .position(|n| n.get_op_type() == op)
        .expect("the exporter writes it")
}

/// The initializer that input `input` of the first `op` node names.
fn initializer_of<'m>(proto: &'m mut ModelProto, op: &str, input: usize) -> &'m mut TensorProto {
    let at = node_of(proto, op);
    let name = proto.get_graph().get_node()[at].get_input()[input].clone();
    proto
        .mut_graph()
        .mut_initializer()
        .iter_mut()
        .find(|t| t.get_name() == name)
        .expect("an initializer")
}

/// Changes a float initializer's values, as float data or raw bytes, whichever holds
/// them.
fn edit_values(tensor: &mut TensorProto, edit: impl FnOnce(&mut Vec<f32>)) {
    if tensor.get_raw_data().is_empty() {
        edit(tensor.mut_float_data());
        return;
    }
    let mut values: Vec<f32> = tensor
        .get_raw_data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    edit(&mut values);
    tensor.set_raw_data(values.iter().flat_map(|v| v.to_le_bytes()).collect());
}

fn set_ints(proto: &mut ModelProto, op: &str, name: &str, values: &[i64]) {
    let at = node_of(proto, op);
    let node = &mut proto.mut_graph().mut_node()[at];
    node.mut_attribute().retain(|a| a.get_name() != name);
    node.mut_attribute().push(ints(name, values));
}

fn read_broken(proto: &ModelProto) -> String {
    let bytes = proto.write_to_bytes().expect("serialises");
    match read(&bytes) {
        Ok(_) => panic!("read a broken file"),
        Err(e) => {
            use std::fmt::Write;
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let _ = write!(text, ": {s}");
                source = s.source();
            }
            text
        }
    }
}

/// About 90 lines: a table of edits to an exported file, each with the error it must
/// give.
#[test]
fn what_the_reader_does_not_implement_or_cannot_fit_is_refused() {
    // Each was read before (issue 34): strides ignored, so a stride-2 model ran as
    // stride 1; short or long biases, a 5 x 1 kernel and wrapping dims reached burn
    // and panicked; a 1 x 1 convolution padded by 2^20 allocated 8.8 TB and aborted.
    type Break = Box<dyn Fn(&mut ModelProto)>;
    let breaks: Vec<(&str, Break)> = vec![
        (
            "strides [2, 2]",
            Box::new(|p| set_ints(p, "Conv", "strides", &[2, 2])),
        ),
        (
            "dilations [2, 2]",
            Box::new(|p| set_ints(p, "Conv", "dilations", &[2, 2])),
        ),
        (
            "padding 1048576 not below",
            Box::new(|p| set_ints(p, "Conv", "pads", &[1 << 20; 4])),
        ),
        (
            "pads [0, 1, 0, 1]",
            Box::new(|p| set_ints(p, "Conv", "pads", &[0, 1, 0, 1])),
        ),
        (
            "9 biases for 10 output channels",
            Box::new(|p| {
                let bias = initializer_of(p, "Conv", 2);
                edit_values(bias, |v| {
                    v.pop();
                });
                bias.set_dims(vec![9]);
            }),
        ),
        (
            "Conv weight dims [10, 1, 25, 1]",
            Box::new(|p| {
                initializer_of(p, "Conv", 1).set_dims(vec![10, 1, 25, 1]);
            }),
        ),
        (
            "11 biases for 10 outputs",
            Box::new(|p| {
                let bias = initializer_of(p, "Gemm", 2);
                edit_values(bias, |v| v.push(0.5));
                bias.set_dims(vec![11]);
            }),
        ),
        (
            "0 values for dims [4611686018427387904, 784]",
            Box::new(|p| {
                let weight = initializer_of(p, "Gemm", 1);
                edit_values(weight, Vec::clear);
                weight.set_dims(vec![1 << 62, 784]);
            }),
        ),
        (
            "not finite",
            Box::new(|p| {
                edit_values(initializer_of(p, "Conv", 1), |v| v[7] = f32::NAN);
            }),
        ),
        (
            "not finite",
            Box::new(|p| {
                edit_values(initializer_of(p, "Gemm", 2), |v| v[3] = f32::INFINITY);
            }),
        ),
        (
            "strides [1, 1], expected the window 2",
            Box::new(|p| set_ints(p, "MaxPool", "strides", &[1, 1])),
        ),
        (
            "transB = 1",
            Box::new(|p| {
                let at = node_of(p, "Gemm");
                let node = &mut p.mut_graph().mut_node()[at];
                node.mut_attribute().retain(|a| a.get_name() != "transB");
            }),
        ),
    ];
    assert!(read(&exported_cnn().write_to_bytes().unwrap()).is_ok());
    for (says, break_it) in breaks {
        let mut proto = exported_cnn();
        break_it(&mut proto);
        let message = read_broken(&proto);
        assert!(message.contains(says), "{says:?} not in: {message}");
    }
}
