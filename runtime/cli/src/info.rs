//! `runtime info`: what a model file (or the built-in model) is and what it needs.

use super::*;

pub(crate) fn info(arg: &ModelArg) -> anyhow::Result<u8> {
    let (bytes, name) = model_bytes(arg)?;
    let model = load(&bytes, &name, arg.kernels)?;
    let mut text = String::new();
    writeln!(text, "file: {name} ({} bytes)", bytes.len())?;
    match &model {
        Classifier::Int8(plan) => blob_text(&mut text, plan, &bytes)?,
        Classifier::Onnx(onnx) => onnx_text(&mut text, onnx, &bytes, &name)?,
    }
    emit(&text)
}

/// An int8 blob: format, kind, work, arena, kernels, recorded accuracies, temperature,
/// layers.
fn blob_text(
    text: &mut String,
    plan: &fmnist_runtime::FastPlan<'_>,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let m = plan.model();
    match fmnist_runtime::blob::version(bytes) {
        Some(fmnist_runtime::blob::FORMAT_VERSION_1) => writeln!(
            text,
            "format: int8 blob, version 1 (no temperature: probabilities uncalibrated; \
             `trainer calibrate FILE` upgrades it)"
        )?,
        version => writeln!(
            text,
            "format: int8 blob, version {}",
            version.unwrap_or(fmnist_runtime::blob::FORMAT_VERSION)
        )?,
    }
    writeln!(text, "kind: {}", m.kind)?;
    writeln!(
        text,
        "parameters: {}, multiply-accumulates per image: {}",
        m.parameters, m.macs
    )?;
    let activations = plan.plan().arena_bytes();
    writeln!(
        text,
        "arena: {} bytes ({activations} for activations, as on firmware; {} of scratch for the {} kernels)",
        plan.arena_bytes(),
        plan.arena_bytes() - activations,
        plan.isa().name()
    )?;
    writeln!(text, "kernels: {}{}", plan.isa().name(), avx2_note(plan))?;
    let accuracy =
        |a: Option<f32>| a.map_or("not recorded".into(), |a| format!("{:.2}%", a * 100.0));
    writeln!(
        text,
        "test accuracy at export: float {}, int8 {}",
        accuracy(m.float_accuracy),
        accuracy(m.int8_accuracy)
    )?;
    writeln!(
        text,
        "calibrated on {} training images; input scale {:e}",
        m.calibration_images, m.input_scale
    )?;
    writeln!(
        text,
        "probabilities: softmax(logits / {}) (temperature{})",
        m.temperature,
        if m.temperature == 1.0 {
            ", 1 = uncalibrated"
        } else {
            " fitted on the validation split"
        }
    )?;
    writeln!(text, "layers:")?;
    for layer in &m.layers {
        writeln!(text, "  {}", layer_line(layer))?;
    }
    Ok(())
}

/// One layer of a blob, in words.
fn layer_line(layer: &fmnist_runtime::blob::Layer<'_>) -> String {
    match layer {
        fmnist_runtime::blob::Layer::Conv(c) => format!(
            "Conv {}->{} {}x{} pad {} on {}x{} ({})",
            c.in_channels,
            c.out_channels,
            c.kernel,
            c.kernel,
            c.padding,
            c.in_height,
            c.in_width,
            activation(c.requant.output)
        ),
        fmnist_runtime::blob::Layer::Linear(l) => {
            format!(
                "Linear {}->{} ({})",
                l.inputs,
                l.outputs,
                activation(l.requant.output)
            )
        }
        fmnist_runtime::blob::Layer::MaxPool { size } => {
            format!("MaxPool {size}x{size}")
        }
        fmnist_runtime::blob::Layer::Flatten => "Flatten".into(),
    }
}

/// An ONNX file: the work the graph check counted, its metadata and its graph.
fn onnx_text(
    text: &mut String,
    onnx: &fmnist_runtime::onnx::OnnxClassifier,
    bytes: &[u8],
    name: &str,
) -> anyhow::Result<()> {
    writeln!(text, "format: ONNX (run through tract)")?;
    let work = onnx.work();
    writeln!(
        text,
        "work: {} multiply-accumulates per image in {} nodes (at most {} accepted)",
        work.macs,
        work.nodes,
        fmnist_runtime::onnx::MAX_MACS
    )?;
    let mut keys: Vec<_> = onnx.metadata().iter().collect();
    keys.sort();
    if !keys.is_empty() {
        writeln!(text, "metadata:")?;
    }
    for (key, value) in keys {
        writeln!(text, "  {key}: {value}")?;
    }
    text.push_str(&describe::onnx(bytes).map_err(|e| anyhow::anyhow!("{name}: {e:#}"))?);
    Ok(())
}

/// What follows a layer's accumulation, in words.
fn activation(output: fmnist_runtime::blob::Output) -> String {
    use fmnist_runtime::blob::Output;
    match output {
        Output::Relu => "ReLU, u8 output".into(),
        Output::LeakyRelu { slope_q15 } => format!(
            "LeakyReLU with slope {}, i8 output",
            f64::from(slope_q15) / 32768.0
        ),
        Output::Logits => "i32 logits".into(),
    }
}

/// How the AVX2 tier multiplies the blob's layers: byte-wise where the weights allow
/// (7-bit weights), else widened to 16 bits, which a 7-bit blob would avoid.
fn avx2_note(plan: &fmnist_runtime::FastPlan<'_>) -> String {
    if plan.isa() != Isa::Avx2 {
        return String::new();
    }
    let hint = "a blob with 7-bit weights (`trainer export --weight-bits 7`) runs faster here";
    match (plan.bytewise_layers(), plan.accelerated_layers()) {
        (bytes, all) if bytes == all => {
            format!(" (byte-wise, `vpmaddubsw`, in all {all} layers it runs)")
        }
        (0, _) => format!(" (16-bit, `vpmaddwd`: the weights need 8 bits; {hint})"),
        (bytes, all) => {
            format!(" (byte-wise in {bytes} of {all} layers, 16-bit in the others; {hint})")
        }
    }
}
