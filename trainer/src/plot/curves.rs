//! `curves.png`: loss, accuracy and learning rate by epoch, one panel each, with the
//! best validation epoch, the test accuracy and the recipe's schedule marked.

use plotters::coord::types::RangedCoordf64;

use super::*;

/// What `curves.png` shows above its panels: the model kind, the run directory, the
/// epochs and, once measured, the test accuracy.
pub(super) fn curves_title(info: &RunInfo, run_dir: &Path) -> String {
    let epochs = info.epochs.len();
    let mut title = format!(
        "{} in {}: {epochs} epoch{}",
        info.model.name(),
        run_dir.display(),
        if epochs == 1 { "" } else { "s" }
    );
    if let Some(accuracy) = info.test_accuracy {
        title.push_str(&format!(", test accuracy {:.2}%", accuracy * 100.0));
    }
    title
}

/// Why the training loss ends above the validation loss, when the recipe explains it:
/// label smoothing raises the training loss's floor, and augmented images are harder than
/// the plain ones validated on. `None` when the last epoch's training loss is not above its
/// validation loss, or the recipe has neither.
pub fn loss_note(info: &RunInfo) -> Option<String> {
    let last = info.epochs.last()?;
    if last.train_loss <= last.val_loss {
        return None;
    }
    let smoothing = info.recipe.label_smoothing > 0.0;
    let augment = info.recipe.augment;
    let why = match (smoothing, augment) {
        (true, true) => format!(
            "label smoothing {} and augmented images",
            info.recipe.label_smoothing
        ),
        (true, false) => format!("label smoothing {}", info.recipe.label_smoothing),
        (false, true) => "augmented images".to_string(),
        (false, false) => return None,
    };
    Some(format!(
        "Train loss above val loss: the training loss is measured with {why}; \
         the validation loss is plain cross-entropy on unchanged images."
    ))
}

/// `lo..hi` widened so that points at either end are drawn whole: by 12% of the span,
/// or around a single value by 10% of it (at least 1e-6). Non-finite values are ignored.
pub(super) fn padded_range(values: impl IntoIterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = if lo < hi {
        (hi - lo) * 0.12
    } else {
        (lo.abs() * 0.1).max(1e-6)
    };
    (lo - pad)..(hi + pad)
}

/// Decimal places that tell ticks over `span` apart.
pub(super) fn decimals(span: f64) -> usize {
    if span <= 0.0 || !span.is_finite() {
        return 2;
    }
    (1.0 - span.log10()).ceil().clamp(0.0, 8.0) as usize
}

/// Size of `curves.png`.
pub(super) const CURVES_SIZE: (u32, u32) = (1500, 500);

/// `curves.png`: three panels per epoch: the training and validation loss, the training and
/// validation accuracy with the best validation epoch ringed (and the test accuracy as a
/// dashed level once `info` has it), and the learning rate at the end of each epoch over
/// the rate each step was trained with ([`lr_series`]: a resume that stretched the
/// schedule shows as a jump, and as a dashed line at the epoch it resumed after). Its
/// title names the model kind and `run_dir`; a note under the panels explains a training
/// loss above the validation loss when the recipe's label smoothing or augmentation does
/// ([`loss_note`]). The epoch axis starts at the first step (0), so the warm-up shows,
/// and has half an epoch of room after the last, so a run of one epoch shows its points
/// whole.
///
/// Called after every epoch, and again at the end of a run once `info.test_accuracy` is set.
pub fn curves(path: &Path, info: &RunInfo, run_dir: &Path) -> anyhow::Result<()> {
    render_to(path, PictureFormat::Png, CURVES_SIZE, |root| {
        draw_curves(root, info, run_dir)
    })
}

/// [`curves`] for run directory `dir` (its `curves.png`), as training and resuming call
/// it: a picture that cannot be drawn is a warning (printed once per process), not the
/// end of a run whose weights and figures are already saved.
pub fn run_curves(dir: &Path, info: &RunInfo) {
    let path = dir.join(crate::run::CURVES_FILE);
    if let Err(e) = curves(&path, info, dir) {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!(
                "warning: cannot draw {}: {e:#}; training goes on without it",
                path.display()
            );
        }
    }
}

/// Draws `curves.png` onto `root`; returns the plotting area of each panel.
pub(super) fn draw_curves(
    root: &Area<'_>,
    info: &RunInfo,
    run_dir: &Path,
) -> anyhow::Result<Vec<PlotRect>> {
    let text = have_font();
    let body = title_and_note(root, info, run_dir, text)?;
    let last = info
        .epochs
        .iter()
        .map(|m| m.epoch)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x_range = 0.0..last + 0.5;
    let marks = Marks {
        best: info.best_epoch(),
        test: info.test_accuracy.filter(|a| a.is_finite()),
        lr: lr_series(info),
    };
    let frame = Frame {
        text,
        epochs: &info.epochs,
        // Ticks at whole epochs only: at most one per epoch, at most 12.
        x_ticks: (last as usize).clamp(1, 12),
        x_range,
    };
    let mut rects = Vec::new();
    for (area, panel) in body.split_evenly((1, 3)).iter().zip(PANELS) {
        rects.push(draw_panel(area, &frame, &panel, &marks)?);
    }
    Ok(rects)
}

/// The title above the panels and, when there is one, the loss note below them (only
/// with a font); the area left for the panels.
fn title_and_note<'a>(
    root: &Area<'a>,
    info: &RunInfo,
    run_dir: &Path,
    text: bool,
) -> anyhow::Result<Area<'a>> {
    if !text {
        return Ok(root.clone());
    }
    let (width, _) = root.dim_in_pixel();
    let (head, mut body) = root.split_vertically(34);
    centred_text(
        &head,
        &curves_title(info, run_dir),
        20.0,
        width - 20,
        &BLACK,
        (width as i32 / 2, 8),
    )?;
    if let Some(note) = loss_note(info) {
        let height = body.dim_in_pixel().1;
        let (panels, foot) = body.split_vertically(height - 26);
        centred_text(
            &foot,
            &note,
            14.0,
            width - 20,
            &RGBColor(90, 90, 90),
            (width as i32 / 2, 4),
        )?;
        body = panels;
    }
    Ok(body)
}

/// What the learning-rate panel draws besides each epoch's last rate: the rate each step
/// was trained with, and the epochs after which the run was resumed.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSeries {
    /// `(x, rate)` in epochs from the run's start: each epoch's steps from `x = k - 1` (its
    /// first step) to `x = k` (its last step's rate, held to the epoch's end), computed
    /// from the schedule the epoch followed ([`RunInfo::schedule_epochs_of`]). A resume
    /// that stretched the schedule shows as two points at the same `x`: the rate the old
    /// schedule ended the epoch with, the one the stretched schedule starts the next with.
    /// Epochs whose schedule is unknown (resumed runs of older trainers) have none.
    pub steps: Vec<(f64, f64)>,
    /// The epochs after which the run was resumed ([`RunInfo::resumed_after`]), as `x`.
    pub resumes: Vec<f64>,
}

/// The most points [`lr_series`] draws for a run (each epoch gets its share, at least its
/// first and last step).
const LR_POINTS: usize = 1200;

/// The learning rates `info`'s epochs were trained with, step by step, and its resumes:
/// see [`LrSeries`]. Without the run's training images (a run description made by hand),
/// an epoch is taken as 100 steps: the schedule's shape, not its exact steps.
pub fn lr_series(info: &RunInfo) -> LrSeries {
    let steps_per_epoch = info.steps_per_epoch().unwrap_or(100);
    let samples = (LR_POINTS / info.epochs.len().max(1)).clamp(2, steps_per_epoch.max(2));
    let mut steps = Vec::new();
    for m in &info.epochs {
        let Some(span) = info.schedule_epochs_of(m) else {
            continue;
        };
        let first = m.epoch.saturating_sub(1).saturating_mul(steps_per_epoch);
        let mut last_rate = m.lr;
        for j in 0..samples {
            // Steps 0, ..., steps_per_epoch - 1 of the epoch, evenly, both ends included.
            let s = j * (steps_per_epoch - 1) / (samples - 1);
            last_rate = info.lr_of_step(first.saturating_add(s), span, steps_per_epoch);
            let x = m.epoch.saturating_sub(1) as f64 + s as f64 / steps_per_epoch as f64;
            steps.push((x, last_rate));
        }
        steps.push((m.epoch as f64, last_rate));
    }
    LrSeries {
        steps,
        resumes: info
            .resumed_after()
            .into_iter()
            .map(|epoch| epoch as f64)
            .collect(),
    }
}

/// What every panel shares: whether text can be drawn, the epochs, the x axis.
struct Frame<'a> {
    text: bool,
    epochs: &'a [EpochMetrics],
    x_range: Range<f64>,
    x_ticks: usize,
}

/// What some panels mark besides their series: the best validation epoch and the test
/// accuracy (accuracy), the rate of each step and the resumes (learning rate).
struct Marks<'a> {
    best: Option<&'a EpochMetrics>,
    test: Option<f64>,
    lr: LrSeries,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Loss,
    Accuracy,
    LearningRate,
}

/// One panel: what it shows, its caption, its y axis's name, and its series (label,
/// figure, colour).
struct Panel {
    kind: Kind,
    caption: &'static str,
    y_name: &'static str,
    series: &'static [(&'static str, Pick, RGBColor)],
}

const PANELS: [Panel; 3] = [
    Panel {
        kind: Kind::Loss,
        caption: "loss",
        y_name: "cross-entropy",
        series: &[
            ("train", |m| m.train_loss, BLUE),
            ("val", |m| m.val_loss, RED),
        ],
    },
    Panel {
        kind: Kind::Accuracy,
        caption: "accuracy",
        y_name: "accuracy (%)",
        series: &[
            ("train", |m| m.train_acc, BLUE),
            ("val", |m| m.val_acc, RED),
        ],
    },
    Panel {
        kind: Kind::LearningRate,
        caption: "learning rate",
        y_name: "learning rate",
        series: &[("end of epoch", |m| m.lr, RGBColor(128, 0, 160))],
    },
];

type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws one panel (axes, its series and marks, its legend); returns its plotting area
/// in pixels.
fn draw_panel(
    area: &Area<'_>,
    frame: &Frame<'_>,
    panel: &Panel,
    marks: &Marks<'_>,
) -> anyhow::Result<PlotRect> {
    let (plot, legend_area) = if frame.text {
        let height = area.dim_in_pixel().1;
        area.split_vertically(height - 26)
    } else {
        (area.clone(), area.clone())
    };
    let mut values: Vec<f64> = frame
        .epochs
        .iter()
        .flat_map(|m| panel.series.iter().map(move |(_, pick, _)| pick(m)))
        .collect();
    match panel.kind {
        Kind::Accuracy => values.extend(marks.test),
        // Rates are compared with zero: a constant rate is a flat line above it.
        Kind::LearningRate => {
            values.push(0.0);
            values.extend(marks.lr.steps.iter().map(|&(_, lr)| lr));
        }
        Kind::Loss => {}
    }
    let y_range = padded_range(values);
    let mut builder = ChartBuilder::on(&plot);
    builder
        .margin(12)
        .margin_right(20)
        .x_label_area_size(if frame.text { 40 } else { 5 })
        .y_label_area_size(if frame.text { 65 } else { 5 });
    if frame.text {
        builder.caption(panel.caption, (FONT, 20));
    }
    let mut chart = builder
        .build_cartesian_2d(frame.x_range.clone(), y_range.clone())
        .or_err()?;
    draw_mesh(&mut chart, frame, panel, y_range.end - y_range.start)?;
    let mut keys = Vec::new();
    if panel.kind == Kind::LearningRate {
        mark_steps_and_resumes(&mut chart, &marks.lr, &y_range, &mut keys)?;
    }
    for &(label, pick, color) in panel.series {
        let points: Vec<(f64, f64)> = frame
            .epochs
            .iter()
            .map(|m| (m.epoch as f64, pick(m)))
            .filter(|(_, y)| y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .or_err()?;
        keys.push((Key::Line(color), label.to_string()));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .or_err()?;
    }
    if panel.kind == Kind::Accuracy {
        mark_best_and_test(&mut chart, frame, marks, &mut keys)?;
    }
    if frame.text {
        legend(&legend_area, &keys)?;
    }
    Ok(chart.plotting_area().get_pixel_range())
}

/// The axes, their labels and the grid of a panel whose y values span `span`.
fn draw_mesh(
    chart: &mut Chart<'_, '_>,
    frame: &Frame<'_>,
    panel: &Panel,
    span: f64,
) -> anyhow::Result<()> {
    let x_format = |x: &f64| {
        if (x - x.round()).abs() < 1e-9 && *x >= 0.0 {
            format!("{x:.0}")
        } else {
            String::new()
        }
    };
    let y_format = |y: &f64| match panel.kind {
        Kind::Accuracy => format!("{:.*}", decimals(span * 100.0), y * 100.0),
        Kind::LearningRate if *y == 0.0 => "0".to_string(),
        Kind::LearningRate => format!("{y:.1e}").replace(".0e", "e"),
        Kind::Loss => format!("{:.*}", decimals(span), y),
    };
    // The grid lines only without a font: any text, even empty, needs one.
    let none = |_: &f64| String::new();
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(frame.x_ticks).y_labels(8);
    if frame.text {
        mesh.x_desc("epoch")
            .y_desc(panel.y_name)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .axis_desc_style((FONT, 14));
    } else {
        mesh.x_label_formatter(&none)
            .y_label_formatter(&none)
            .disable_x_axis()
            .disable_y_axis();
    }
    mesh.draw().or_err()
}

/// The rate of each step (a thin line) and the resumes (dashed vertical lines) on the
/// learning-rate panel, whose y axis spans `y_range`, with their legend keys.
fn mark_steps_and_resumes(
    chart: &mut Chart<'_, '_>,
    lr: &LrSeries,
    y_range: &Range<f64>,
    keys: &mut Vec<(Key, String)>,
) -> anyhow::Result<()> {
    if !lr.steps.is_empty() {
        let color = RGBColor(180, 130, 215);
        chart
            .draw_series(LineSeries::new(
                lr.steps.iter().copied(),
                color.stroke_width(1),
            ))
            .or_err()?;
        keys.push((Key::Thin(color), "per step".to_string()));
    }
    let gray = RGBColor(110, 110, 110);
    for &x in &lr.resumes {
        chart
            .draw_series(DashedLineSeries::new(
                [(x, y_range.start), (x, y_range.end)],
                6,
                4,
                gray.stroke_width(1),
            ))
            .or_err()?;
    }
    if let Some(label) = match lr.resumes.as_slice() {
        [] => None,
        [x] => Some(format!("resumed after epoch {x}")),
        _ => Some("resumed".to_string()),
    } {
        keys.push((Key::Dashed(gray), label));
    }
    Ok(())
}

/// The best validation epoch (a ring) and the test accuracy (a dashed line) on the
/// accuracy panel, with their legend keys.
fn mark_best_and_test(
    chart: &mut Chart<'_, '_>,
    frame: &Frame<'_>,
    marks: &Marks<'_>,
    keys: &mut Vec<(Key, String)>,
) -> anyhow::Result<()> {
    if let Some(best) = marks.best {
        chart
            .draw_series([Circle::new(
                (best.epoch as f64, best.val_acc),
                8,
                BLACK.stroke_width(2),
            )])
            .or_err()?;
        let label = format!(
            "best val {:.2}% (epoch {})",
            best.val_acc * 100.0,
            best.epoch
        );
        keys.push((Key::Ring(BLACK), label));
    }
    if let Some(test) = marks.test {
        let green = RGBColor(0, 140, 0);
        chart
            .draw_series(DashedLineSeries::new(
                [(frame.x_range.start, test), (frame.x_range.end, test)],
                8,
                5,
                green.stroke_width(2),
            ))
            .or_err()?;
        keys.push((Key::Dashed(green), format!("test {:.2}%", test * 100.0)));
    }
    Ok(())
}
