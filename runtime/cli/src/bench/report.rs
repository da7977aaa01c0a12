//! What a benchmark reports: the model, the CPU, the inputs and the pooled figures, as
//! one JSON document or as text.

use super::inputs::Inputs;
use super::measure::Measured;
use super::*;

/// Latencies in microseconds.
pub(super) struct Latency {
    pub(super) min: f64,
    pub(super) mean: f64,
    pub(super) p50: f64,
    pub(super) p90: f64,
    pub(super) p99: f64,
    pub(super) max: f64,
}

impl Latency {
    /// Every figure divided by `by` (per image of a batch).
    fn divided(&self, by: f64) -> Latency {
        Latency {
            min: self.min / by,
            mean: self.mean / by,
            p50: self.p50 / by,
            p90: self.p90 / by,
            p99: self.p99 / by,
            max: self.max / by,
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "min": self.min, "mean": self.mean, "p50": self.p50,
            "p90": self.p90, "p99": self.p99, "max": self.max,
        })
    }

    fn text(&self, out: &mut String, indent: &str) -> std::fmt::Result {
        for (name, value) in [
            ("Median:", self.p50),
            ("Average:", self.mean),
            ("Min:", self.min),
            ("P90:", self.p90),
            ("P99:", self.p99),
            ("Max:", self.max),
        ] {
            writeln!(out, "{indent}{name:<9}{value:>12.2} us")?;
        }
        Ok(())
    }
}

/// The CPU's model name, as Linux reports it.
fn cpu_name() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, name)| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

/// A benchmark's model, inputs and figures, to report.
pub(super) struct Report<'r> {
    /// The model's name, as the user named it.
    pub(super) name: &'r str,
    pub(super) model: &'r Classifier<'r>,
    pub(super) inputs: &'r Inputs,
    /// Images in the pool the calls cycled through.
    pub(super) pool_images: usize,
    /// Images per call.
    pub(super) batch: usize,
    pub(super) threads: usize,
    pub(super) measured: Measured,
}

impl Report<'_> {
    /// The kernels the calls ran on: the int8 plan's instruction set, or tract.
    fn kernels(&self) -> &'static str {
        match self.model {
            Classifier::Int8(plan) => plan.isa().name(),
            Classifier::Onnx(_) => "tract",
        }
    }

    /// Where the inputs come from, for display (none for synthetic images).
    fn source(&self) -> Option<String> {
        self.inputs.source.as_ref().map(|p| p.display().to_string())
    }

    fn per_image(&self) -> Latency {
        self.measured.latency.divided(self.batch as f64)
    }

    fn images_per_second(&self) -> f64 {
        self.measured.images as f64 / self.measured.seconds
    }

    fn calls_per_second(&self) -> f64 {
        self.measured.calls as f64 / self.measured.seconds
    }
}

/// `--json`: `report` as one JSON document on stdout.
pub(super) fn report_json(report: &Report<'_>) -> anyhow::Result<u8> {
    let measured = &report.measured;
    let document = serde_json::json!({
        "model": report.name,
        "format": report.model.format(),
        "kind": report.model.kind(),
        "kernels": report.kernels(),
        "cpu": cpu_name(),
        "cpu_kernels": Isa::detect().name(),
        "batch": report.batch,
        "threads": report.threads,
        "inputs": report.inputs.kind,
        "inputs_path": report.source(),
        "pool_images": report.pool_images,
        "warmup_iterations": measured.warmup_calls,
        "warmup_seconds": measured.warmup_seconds,
        "iterations": measured.calls,
        "images": measured.images,
        "seconds": measured.seconds,
        "latency_us": measured.latency.json(),
        "latency_per_image_us": report.per_image().json(),
        "latency_samples": measured.samples,
        "images_per_second": report.images_per_second(),
        "iterations_per_second": report.calls_per_second(),
    });
    emit(&format!("{}\n", serde_json::to_string_pretty(&document)?))
}

/// `report` as text on stdout: what was measured, then the latencies and the throughput.
pub(super) fn report_text(report: &Report<'_>) -> anyhow::Result<u8> {
    let mut text = String::new();
    describe_run(report, &mut text)?;
    writeln!(text)?;
    let batch = report.batch;
    let measured = &report.measured;
    let sampled = if (measured.samples as u64) < measured.calls {
        format!(
            " (percentiles of a uniform sample of {} calls)",
            measured.samples
        )
    } else {
        String::new()
    };
    writeln!(text, "Latency per call{sampled}:")?;
    measured.latency.text(&mut text, "    ")?;
    if batch > 1 {
        writeln!(text, "Latency per image (per call / {batch}):")?;
        report.per_image().text(&mut text, "    ")?;
    }
    writeln!(
        text,
        "Throughput: {:.0} images/s ({:.0} calls/s)",
        report.images_per_second(),
        report.calls_per_second()
    )?;
    emit(&text)
}

/// The text report's first lines: the model, the kernels and CPU, the inputs, the batch
/// and threads, the warm-up and the measured calls.
fn describe_run(report: &Report<'_>, text: &mut String) -> std::fmt::Result {
    let Report {
        name,
        model,
        inputs,
        pool_images,
        batch,
        threads,
        ref measured,
    } = *report;
    let kind = model.kind().unwrap_or("unknown kind");
    writeln!(text, "model:    {name} ({}, {kind})", model.format())?;
    writeln!(
        text,
        "kernels:  {} (this CPU's best: {}; {})",
        report.kernels(),
        Isa::detect().name(),
        cpu_name().as_deref().unwrap_or("CPU model unknown")
    )?;
    match &report.source() {
        Some(source) => writeln!(
            text,
            "inputs:   {pool_images} images of the {}{} {source}, cycled",
            inputs.kind,
            if inputs.kind == "test set" { " in" } else { "" }
        )?,
        None => writeln!(text, "inputs:   {pool_images} synthetic images, cycled")?,
    }
    writeln!(
        text,
        "batch:    {batch} image{} per call; threads: {threads}",
        if batch == 1 { "" } else { "s" }
    )?;
    writeln!(
        text,
        "warm-up:  {} calls in {:.2} s",
        measured.warmup_calls, measured.warmup_seconds
    )?;
    writeln!(
        text,
        "measured: {} calls, {} images in {:.2} s",
        measured.calls, measured.images, measured.seconds
    )
}
