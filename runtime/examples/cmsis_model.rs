//! Writes an int8 blob's layers as a C header for the CMSIS-NN harness
//! (`benches/cortex-m/cmsis.c`):
//! the same weights and biases, our requantization as CMSIS-NN's (multiplier and shift,
//! `shift = -ours`), our unsigned activations as CMSIS-NN's signed ones (a value `x` is
//! stored as `x - 128`: input offset 128, output offset -128, ReLU as the clamp to
//! -128..127), the logits 2^8 smaller to fit 8 bits. Only the layers CMSIS-NN runs for `edge`-like models: convolutions with
//! ReLU, max pooling, flatten and the logits layer.
//!
//! ```text
//! cargo run --release -p fmnist-runtime --example cmsis_model -- models/edge.q8 > model.h
//! ```
use std::fmt::Write as _;
use std::process::ExitCode;

use fmnist_runtime::blob::{Layer, Output, Requant};
use fmnist_runtime::Plan;

fn ints(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn array<T: std::fmt::Display>(out: &mut String, ty: &str, name: &str, values: &[T]) {
    let _ = writeln!(out, "static const {ty} {name}[{}] = {{", values.len());
    for row in values.chunks(24) {
        let row: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        let _ = writeln!(out, "    {},", row.join(", "));
    }
    let _ = writeln!(out, "}};");
}

/// `extra`: a further right shift (the logits, 2^8 smaller so that they fit CMSIS-NN's
/// 8-bit output; the class is their argmax either way, up to ties).
fn requant(out: &mut String, index: usize, requant: &Requant<'_>, extra: i32) {
    array(out, "int32_t", &format!("bias{index}"), &ints(requant.bias));
    array(
        out,
        "int32_t",
        &format!("mult{index}"),
        &ints(requant.multiplier),
    );
    let shifts: Vec<i32> = requant
        .shift
        .iter()
        .map(|&s| -i32::from(s as i8) - extra)
        .collect();
    array(out, "int32_t", &format!("shift{index}"), &shifts);
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: cmsis_model BLOB > model.h");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = match Plan::new(&bytes) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = String::new();
    let mut table = Vec::new();
    let _ = writeln!(
        out,
        "/* {path}: written by benches/cortex-m/cmsis_model.rs */"
    );
    let _ = writeln!(out, "#include <stdint.h>");
    let mut shape = [28usize, 28, 1];
    for (index, layer) in plan.model().layers.iter().enumerate() {
        match layer {
            Layer::Conv(conv) => {
                if conv.requant.output != Output::Relu {
                    eprintln!("{path}: layer {index}: only ReLU convolutions are mapped");
                    return ExitCode::FAILURE;
                }
                let weights: Vec<i8> = conv.weights.iter().map(|&w| w as i8).collect();
                array(&mut out, "int8_t", &format!("weights{index}"), &weights);
                requant(&mut out, index, &conv.requant, 0);
                let (k, p) = (usize::from(conv.kernel), usize::from(conv.padding));
                let out_c = usize::from(conv.out_channels);
                let side = |s: usize| s + 2 * p - k + 1;
                table.push(format!(
                    "    {{LAYER_CONV, {}, {}, {}, {out_c}, {k}, {p}, weights{index}, bias{index}, mult{index}, shift{index}}},",
                    shape[0], shape[1], shape[2]
                ));
                shape = [side(shape[0]), side(shape[1]), out_c];
            }
            Layer::MaxPool { size } => {
                let size = usize::from(*size);
                table.push(format!(
                    "    {{LAYER_POOL, {}, {}, {}, {}, {size}, 0, 0, 0, 0, 0}},",
                    shape[0], shape[1], shape[2], shape[2]
                ));
                shape = [shape[0] / size, shape[1] / size, shape[2]];
            }
            Layer::Flatten => shape = [1, 1, shape.iter().product()],
            Layer::Linear(linear) => {
                if linear.requant.output != Output::Logits {
                    eprintln!("{path}: layer {index}: only the logits layer is mapped");
                    return ExitCode::FAILURE;
                }
                let weights: Vec<i8> = linear.weights.iter().map(|&w| w as i8).collect();
                array(&mut out, "int8_t", &format!("weights{index}"), &weights);
                requant(&mut out, index, &linear.requant, 8);
                table.push(format!(
                    "    {{LAYER_LINEAR, 1, 1, {}, {}, 1, 0, weights{index}, bias{index}, mult{index}, shift{index}}},",
                    linear.inputs, linear.outputs
                ));
            }
        }
    }
    let _ = writeln!(out, "#define LAYER_COUNT {}", table.len());
    let _ = writeln!(out, "#define MACS {}", plan.model().macs);
    let _ = writeln!(out, "static const struct layer layers[LAYER_COUNT] = {{");
    for row in table {
        let _ = writeln!(out, "{row}");
    }
    let _ = writeln!(out, "}};");
    print!("{out}");
    ExitCode::SUCCESS
}
