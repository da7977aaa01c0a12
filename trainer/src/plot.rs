//! Pictures: the loss/accuracy/learning-rate curves of a run, the notebook's 10x10 grid of
//! images, and one sample image of each class.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::anyhow;
use fmnist_runtime::dataset::{LabeledImages, Split};
use fmnist_runtime::{CLASS_NAMES, IMAGE_SIDE};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use crate::run::{EpochMetrics, RunInfo};
use crate::usage::UsageError;
use crate::util::files::write_atomic;

const FONT: &str = "sans-serif";

/// Picks one figure of an epoch.
type Pick = fn(&EpochMetrics) -> f64;

/// The drawing area of a picture being rendered.
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Pixel columns and rows of a chart's plotting area (inside its axes).
type PlotRect = (Range<i32>, Range<i32>);

/// Plotters' errors as anyhow's.
trait OrAnyhow<T> {
    fn or_err(self) -> anyhow::Result<T>;
}

impl<T, E: std::fmt::Display> OrAnyhow<T> for Result<T, E> {
    fn or_err(self) -> anyhow::Result<T> {
        self.map_err(|e| anyhow!("{e}"))
    }
}

/// Registers a system TrueType font once; false when none is installed, in which case
/// pictures are drawn without text rather than not at all.
fn have_font() -> bool {
    #[cfg(test)]
    if tests::NO_FONT.with(std::cell::Cell::get) {
        return false;
    }
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let candidates = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        ];
        candidates.iter().any(|path| {
            std::fs::read(path)
                .ok()
                .map(|bytes| &*Box::leak(bytes.into_boxed_slice()))
                .is_some_and(|bytes| {
                    plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok()
                })
        })
    })
}

/// The file format of a picture, named by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PictureFormat {
    /// `.png`.
    Png,
    /// `.jpg` or `.jpeg` (quality 90).
    Jpeg,
}

impl PictureFormat {
    /// The format `path`'s extension names (case-insensitive): PNG for `.png`, JPEG for
    /// `.jpg`/`.jpeg`; any other extension, or none, is a usage error.
    pub fn of(path: &Path) -> Result<PictureFormat, UsageError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("png") => Ok(PictureFormat::Png),
            Some("jpg" | "jpeg") => Ok(PictureFormat::Jpeg),
            _ => Err(UsageError::PictureFormat(path.to_path_buf())),
        }
    }

    fn encode(self, image: &image::RgbImage) -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        match self {
            PictureFormat::Png => image.write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )?,
            PictureFormat::Jpeg => {
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
                    .encode_image(image)?
            }
        }
        Ok(bytes)
    }
}

/// Renders into an RGB buffer of `width` x `height` on white with `draw`.
fn render<T>(
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<(image::RgbImage, T)> {
    let mut rgb = vec![0u8; (width * height * 3) as usize];
    let drawn = {
        let area = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        area.fill(&WHITE).or_err()?;
        let drawn = draw(&area)?;
        area.present().or_err()?;
        drawn
    };
    let image =
        image::RgbImage::from_raw(width, height, rgb).ok_or_else(|| anyhow!("bad image buffer"))?;
    Ok((image, drawn))
}

/// Renders with `draw` and writes the picture to `path` atomically in `format`.
fn render_to<T>(
    path: &Path,
    format: PictureFormat,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<()> {
    let (image, _) = render(size, draw)?;
    write_atomic(path, &format.encode(&image)?)
}

/// The width in pixels of `text` in the picture font at `size`, when a font is installed.
fn text_width(text: &str, size: f64) -> Option<u32> {
    if !have_font() {
        return None;
    }
    (FONT, size).into_font().box_size(text).ok().map(|(w, _)| w)
}

/// The largest font size from `size` down to 8 at which `text` fits in `width` pixels; at
/// size 8, `text` shortened with "…" until it fits. Without a font, `text` at `size`.
fn fit_text(text: &str, size: f64, width: u32) -> (String, f64) {
    let mut try_size = size;
    while try_size >= 8.0 {
        match text_width(text, try_size) {
            None => return (text.to_string(), size),
            Some(w) if w <= width => return (text.to_string(), try_size),
            Some(_) => try_size -= 1.0,
        }
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let short = format!("{}…", chars.iter().collect::<String>().trim_end());
        if text_width(&short, 8.0).is_none_or(|w| w <= width) {
            return (short, 8.0);
        }
    }
    (String::new(), 8.0)
}

/// Draws `text` with its top centred at `(x, y)`, in the font size at which it fits in
/// `width` pixels (see [`fit_text`]).
fn centred_text(
    area: &Area<'_>,
    text: &str,
    size: f64,
    width: u32,
    color: &RGBColor,
    (x, y): (i32, i32),
) -> anyhow::Result<()> {
    let (text, size) = fit_text(text, size, width);
    let style = TextStyle::from((FONT, size).into_font())
        .color(color)
        .pos(Pos::new(HPos::Center, VPos::Top));
    area.draw_text(&text, &style, (x, y)).or_err()
}

/// How a legend entry shows its series.
#[derive(Clone, Copy)]
enum Key {
    /// A line with a dot: a series per epoch.
    Line(RGBColor),
    /// A dashed line: a level across every epoch.
    Dashed(RGBColor),
    /// A thin line: a curve between epochs.
    Thin(RGBColor),
    /// A ring: one marked point.
    Ring(RGBColor),
}

/// Draws `entries` in a row centred in `area` (under a chart, where they hide no point).
fn legend(area: &Area<'_>, entries: &[(Key, String)]) -> anyhow::Result<()> {
    const SIZE: f64 = 13.0;
    const SAMPLE: i32 = 22;
    const GAP: i32 = 18;
    let widths: Vec<i32> = entries
        .iter()
        .map(|(_, label)| SAMPLE + 6 + text_width(label, SIZE).unwrap_or(0) as i32)
        .collect();
    let total = widths.iter().sum::<i32>() + GAP * (widths.len() as i32 - 1).max(0);
    let (width, height) = area.dim_in_pixel();
    let mut x = (width as i32 - total).max(0) / 2;
    let y = height as i32 / 2;
    let style = TextStyle::from((FONT, SIZE).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for ((key, label), w) in entries.iter().zip(widths) {
        match *key {
            Key::Line(color) => {
                area.draw(&PathElement::new(
                    [(x, y), (x + SAMPLE, y)],
                    color.stroke_width(2),
                ))
                .or_err()?;
                area.draw(&Circle::new((x + SAMPLE / 2, y), 4, color.filled()))
                    .or_err()?;
            }
            Key::Dashed(color) => {
                for dash in [0, 9, 18] {
                    area.draw(&PathElement::new(
                        [(x + dash, y), (x + (dash + 5).min(SAMPLE), y)],
                        color.stroke_width(2),
                    ))
                    .or_err()?;
                }
            }
            Key::Thin(color) => {
                area.draw(&PathElement::new(
                    [(x, y), (x + SAMPLE, y)],
                    color.stroke_width(1),
                ))
                .or_err()?;
            }
            Key::Ring(color) => {
                area.draw(&Circle::new((x + SAMPLE / 2, y), 7, color.stroke_width(2)))
                    .or_err()?;
            }
        }
        area.draw_text(label, &style, (x + SAMPLE + 6, y))
            .or_err()?;
        x += w + GAP;
    }
    Ok(())
}

/// What `curves.png` shows above its panels: the model kind, the run directory, the
/// epochs and, once measured, the test accuracy.
fn curves_title(info: &RunInfo, run_dir: &Path) -> String {
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
fn padded_range(values: impl IntoIterator<Item = f64>) -> Range<f64> {
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
fn decimals(span: f64) -> usize {
    if span <= 0.0 || !span.is_finite() {
        return 2;
    }
    (1.0 - span.log10()).ceil().clamp(0.0, 8.0) as usize
}

/// Size of `curves.png`.
const CURVES_SIZE: (u32, u32) = (1500, 500);

/// `curves.png`: three panels per epoch: the training and validation loss, the training and
/// validation accuracy with the best validation epoch ringed (and the test accuracy as a
/// dashed level once `info` has it), and the learning rate at the end of each epoch over
/// the recipe's schedule step by step. Its title names the model kind and `run_dir`; a
/// note under the panels explains a training loss above the validation loss when the
/// recipe's label smoothing or augmentation does ([`loss_note`]). The epoch axis has half
/// an epoch of room on each side, so a run of one epoch shows its points whole.
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
fn draw_curves(root: &Area<'_>, info: &RunInfo, run_dir: &Path) -> anyhow::Result<Vec<PlotRect>> {
    let text = have_font();
    let epochs = &info.epochs;
    let (width, _) = root.dim_in_pixel();
    let mut body = root.clone();
    if text {
        let (head, rest) = body.split_vertically(34);
        centred_text(
            &head,
            &curves_title(info, run_dir),
            20.0,
            width - 20,
            &BLACK,
            (width as i32 / 2, 8),
        )?;
        body = rest;
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
    }
    let panels = body.split_evenly((1, 3));
    let last = epochs.iter().map(|m| m.epoch).max().unwrap_or(1).max(1) as f64;
    let x_range = 0.5..last + 0.5;
    // Ticks at whole epochs only: at most one per epoch, at most 12.
    let x_ticks = (last as usize).clamp(1, 12);
    let best =
        epochs
            .iter()
            .filter(|m| m.val_acc.is_finite())
            .fold(None::<&EpochMetrics>, |best, m| match best {
                Some(b) if b.val_acc >= m.val_acc => Some(b),
                _ => Some(m),
            });
    let test = info.test_accuracy.filter(|a| a.is_finite());
    // The recipe's schedule step by step, between the epochs shown and within the run
    // planned: epoch k ends at x = k, as the rate of metrics.csv was read.
    let schedule_end = x_range.end.min(info.recipe.epochs as f64);
    let schedule: Vec<(f64, f64)> = if epochs.is_empty() || schedule_end <= x_range.start {
        Vec::new()
    } else {
        const STEPS: usize = 10_000;
        let planned = info.recipe.epochs.max(1) as f64;
        (0..=300)
            .map(|i| x_range.start + (schedule_end - x_range.start) * i as f64 / 300.0)
            .map(|x| {
                let step = (x / planned * STEPS as f64).round() as usize;
                (x, info.recipe.lr_at(step.min(STEPS), STEPS))
            })
            .collect()
    };
    let schedule_color = RGBColor(180, 130, 215);
    let mut rects = Vec::new();

    type Series = (&'static str, Pick, RGBColor);
    let panels_spec: [(&str, &str, Vec<Series>); 3] = [
        (
            "loss",
            "cross-entropy",
            vec![
                ("train", |m| m.train_loss, BLUE),
                ("val", |m| m.val_loss, RED),
            ],
        ),
        (
            "accuracy",
            "accuracy (%)",
            vec![
                ("train", |m| m.train_acc, BLUE),
                ("val", |m| m.val_acc, RED),
            ],
        ),
        (
            "learning rate",
            "learning rate",
            vec![("end of epoch", |m| m.lr, RGBColor(128, 0, 160))],
        ),
    ];
    for (panel, (name, y_name, series)) in panels.iter().zip(panels_spec) {
        let (panel, legend_area) = if text {
            let height = panel.dim_in_pixel().1;
            panel.split_vertically(height - 26)
        } else {
            (panel.clone(), panel.clone())
        };
        let mut keys = Vec::new();
        let accuracy = name == "accuracy";
        let learning_rate = name == "learning rate";
        let mut values: Vec<f64> = epochs
            .iter()
            .flat_map(|m| series.iter().map(move |(_, pick, _)| pick(m)))
            .collect();
        if accuracy {
            values.extend(test);
        }
        if learning_rate {
            // Rates are compared with zero: a constant rate is a flat line above it.
            values.push(0.0);
            values.extend(schedule.iter().map(|&(_, lr)| lr));
        }
        let y_range = padded_range(values);
        let span = y_range.end - y_range.start;
        let mut builder = ChartBuilder::on(&panel);
        builder
            .margin(12)
            .margin_right(20)
            .x_label_area_size(if text { 40 } else { 5 })
            .y_label_area_size(if text { 65 } else { 5 });
        if text {
            builder.caption(name, (FONT, 20));
        }
        let mut chart = builder
            .build_cartesian_2d(x_range.clone(), y_range.clone())
            .or_err()?;
        let x_format = |x: &f64| {
            if (x - x.round()).abs() < 1e-9 && *x >= 1.0 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        };
        let y_format = |y: &f64| {
            if accuracy {
                format!("{:.*}", decimals(span * 100.0), y * 100.0)
            } else if learning_rate {
                if *y == 0.0 {
                    "0".to_string()
                } else {
                    format!("{y:.1e}").replace(".0e", "e")
                }
            } else {
                format!("{:.*}", decimals(span), y)
            }
        };
        // The grid lines only without a font: any text, even empty, needs one.
        let none = |_: &f64| String::new();
        let mut mesh = chart.configure_mesh();
        mesh.x_labels(x_ticks).y_labels(8);
        if text {
            mesh.x_desc("epoch")
                .y_desc(y_name)
                .x_label_formatter(&x_format)
                .y_label_formatter(&y_format)
                .axis_desc_style((FONT, 14));
        } else {
            mesh.x_label_formatter(&none)
                .y_label_formatter(&none)
                .disable_x_axis()
                .disable_y_axis();
        }
        mesh.draw().or_err()?;
        if learning_rate && !schedule.is_empty() {
            chart
                .draw_series(LineSeries::new(
                    schedule.iter().copied(),
                    schedule_color.stroke_width(1),
                ))
                .or_err()?;
            keys.push((Key::Thin(schedule_color), "schedule (per step)".to_string()));
        }
        for (label, pick, color) in series {
            let points: Vec<(f64, f64)> = epochs
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
        if accuracy {
            if let Some(best) = best {
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
            if let Some(test) = test {
                let green = RGBColor(0, 140, 0);
                chart
                    .draw_series(DashedLineSeries::new(
                        [(x_range.start, test), (x_range.end, test)],
                        8,
                        5,
                        green.stroke_width(2),
                    ))
                    .or_err()?;
                keys.push((Key::Dashed(green), format!("test {:.2}%", test * 100.0)));
            }
        }
        if text {
            legend(&legend_area, &keys)?;
        }
        rects.push(chart.plotting_area().get_pixel_range());
    }
    Ok(rects)
}

/// Which split `trainer show` draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GridSplit {
    /// The 60,000 training images.
    Train,
    /// The 10,000 test images.
    Test,
}

impl GridSplit {
    /// The dataset split.
    pub fn split(self) -> Split {
        match self {
            GridSplit::Train => Split::Train,
            GridSplit::Test => Split::Test,
        }
    }

    /// "training" or "test".
    pub fn name(self) -> &'static str {
        match self {
            GridSplit::Train => "training",
            GridSplit::Test => "test",
        }
    }
}

/// The grid's cells: a 28x28 image at three times its size with a caption below.
const SCALE: i32 = 3;
const CELL_W: i32 = 28 * SCALE + 24;
/// Room for one caption line under an image.
const LINE_H: i32 = 15;
/// Caption font size, before shrinking to fit.
const CAPTION_SIZE: f64 = 12.0;
/// Height of the heading line above the grid.
const HEAD_H: i32 = 26;

/// The caption lines of a grid cell: the class when there is no prediction or it is right;
/// "pred X" and "true Y" on two lines when it is wrong. Each line is shortened (smaller
/// font, then "…") to fit the cell when drawn.
pub fn caption(truth: usize, predicted: Option<usize>) -> Vec<String> {
    let name = |class: usize| CLASS_NAMES.get(class).copied().unwrap_or("?");
    match predicted {
        Some(p) if p != truth => vec![format!("pred {}", name(p)), format!("true {}", name(truth))],
        _ => vec![name(truth).to_string()],
    }
}

/// The caption width available in a grid cell.
const CAPTION_W: u32 = (CELL_W - 4) as u32;

/// The notebook's first figure: `set`'s images (at most 100) as a grid ten wide in gray,
/// each captioned with its class, under a heading line `title`. With `predictions`, a wrong
/// one is framed in red and captioned "pred X" (red) over "true Y" (black); a right one
/// keeps its class in black. Written as PNG or JPEG as `path`'s extension says ([`PictureFormat::of`]).
pub fn grid(
    path: &Path,
    set: &LabeledImages,
    title: &str,
    predictions: Option<&[u8]>,
) -> anyhow::Result<()> {
    let format = PictureFormat::of(path)?;
    let text = have_font();
    let count = set.len().min(100);
    let rows = count.div_ceil(10).max(1) as i32;
    let lines = if predictions.is_some() { 2 } else { 1 };
    let cell_h = 4 + 28 * SCALE + 4 + lines * LINE_H + 6;
    let head = if text { HEAD_H } else { 0 };
    let size = ((CELL_W * 10) as u32, (head + cell_h * rows) as u32);
    render_to(path, format, size, |root| {
        if text {
            centred_text(
                root,
                title,
                14.0,
                size.0 - 10,
                &BLACK,
                (size.0 as i32 / 2, 6),
            )?;
        }
        for index in 0..count {
            let (col, row) = ((index % 10) as i32, (index / 10) as i32);
            let (x0, y0) = (col * CELL_W + 12, head + row * cell_h + 4);
            let image = set.image(index);
            for y in 0..IMAGE_SIDE as i32 {
                for x in 0..IMAGE_SIDE as i32 {
                    // The notebook's gray colormap: black background, light garment.
                    let v = image[(y * IMAGE_SIDE as i32 + x) as usize];
                    let rect = [
                        (x0 + x * SCALE, y0 + y * SCALE),
                        (x0 + (x + 1) * SCALE, y0 + (y + 1) * SCALE),
                    ];
                    root.draw(&Rectangle::new(rect, RGBColor(v, v, v).filled()))
                        .or_err()?;
                }
            }
            let truth = usize::from(set.labels[index]);
            let predicted = predictions
                .and_then(|p| p.get(index))
                .map(|&p| usize::from(p));
            let wrong = predicted.is_some_and(|p| p != truth);
            if wrong {
                let frame = [(x0 - 2, y0 - 2), (x0 + 28 * SCALE + 2, y0 + 28 * SCALE + 2)];
                root.draw(&Rectangle::new(frame, RED.stroke_width(3)))
                    .or_err()?;
            }
            if text {
                let centre = col * CELL_W + CELL_W / 2;
                for (line, caption) in caption(truth, predicted).iter().enumerate() {
                    // A wrong prediction in red, the truth under it in black.
                    let color = if wrong && line == 0 { RED } else { BLACK };
                    let y = y0 + 28 * SCALE + 5 + line as i32 * LINE_H;
                    centred_text(root, caption, CAPTION_SIZE, CAPTION_W, &color, (centre, y))?;
                }
            }
        }
        Ok(())
    })
}

/// Writes the first image of each class in `set` into `out` as a 28x28 gray PNG named by
/// its class (`trouser.png`, `t-shirt-top.png`, ...). Returns each file written with the
/// index of its image in `set`; a class without images is skipped.
pub fn samples(out: &Path, set: &LabeledImages) -> anyhow::Result<Vec<(PathBuf, usize)>> {
    let mut written = Vec::new();
    for (label, name) in CLASS_NAMES.iter().enumerate() {
        let Some(index) = set.labels.iter().position(|&l| usize::from(l) == label) else {
            continue;
        };
        let side = IMAGE_SIDE as u32;
        let image = image::GrayImage::from_raw(side, side, set.image(index).to_vec())
            .ok_or_else(|| anyhow!("bad image size"))?;
        let mut png = Vec::new();
        image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
        let file = out.join(format!(
            "{}.png",
            name.to_lowercase().replace(['/', ' '], "-")
        ));
        write_atomic(&file, &png)?;
        written.push((file, index));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::recipe::Recipe;
    use crate::model::ModelKind;

    #[test]
    fn samples_writes_the_first_image_of_each_class() {
        let dir = tempfile::tempdir().unwrap();
        let set = crate::synthetic::images(25, 3);
        let written = samples(dir.path(), &set).unwrap();
        assert_eq!(written.len(), 10);
        let (file, index) = &written[1];
        assert_eq!(file, &dir.path().join("trouser.png"));
        assert_eq!(*index, 1);
        let image = image::open(file).unwrap().to_luma8();
        assert_eq!(image.dimensions(), (28, 28));
        assert_eq!(image.as_raw().as_slice(), set.image(1));
    }

    fn run_info(kind: ModelKind, epochs: usize) -> RunInfo {
        let mut info = RunInfo::new(kind, Recipe::default_for(kind), 42, "flex", "test".into());
        for epoch in 1..=epochs {
            let e = epoch as f64;
            info.epochs.push(EpochMetrics {
                epoch,
                train_loss: 1.0 / e,
                train_acc: 0.6 + 0.05 * e,
                val_loss: 1.1 / e,
                val_acc: 0.62 + 0.04 * e - 0.01 * (e - 2.0).max(0.0) * 2.0,
                lr: 1e-3 * e,
                seconds: 1.0,
            });
        }
        info
    }

    #[test]
    fn picture_formats_follow_the_extension() {
        assert_eq!(
            PictureFormat::of(Path::new("g.png")).unwrap(),
            PictureFormat::Png
        );
        assert_eq!(
            PictureFormat::of(Path::new("d/g.PNG")).unwrap(),
            PictureFormat::Png
        );
        assert_eq!(
            PictureFormat::of(Path::new("g.jpg")).unwrap(),
            PictureFormat::Jpeg
        );
        assert_eq!(
            PictureFormat::of(Path::new("g.JPEG")).unwrap(),
            PictureFormat::Jpeg
        );
        for bad in ["g.gif", "g", "g.png.txt", "png"] {
            assert!(
                matches!(
                    PictureFormat::of(Path::new(bad)),
                    Err(UsageError::PictureFormat(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn grid_writes_jpeg_for_jpg_and_png_for_png() {
        let dir = tempfile::tempdir().unwrap();
        let set = crate::synthetic::images(30, 3);
        let predictions: Vec<u8> = set.labels.iter().map(|&l| (l + l % 2) % 10).collect();
        let jpg = dir.path().join("g.jpg");
        grid(&jpg, &set, "title", Some(&predictions)).unwrap();
        let bytes = std::fs::read(&jpg).unwrap();
        assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF], "a JPEG starts with SOI");
        assert_eq!(
            image::guess_format(&bytes).unwrap(),
            image::ImageFormat::Jpeg
        );
        let jpeg = image::load_from_memory(&bytes).unwrap();
        let png = dir.path().join("g.png");
        grid(&png, &set, "title", Some(&predictions)).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let png = image::load_from_memory(&bytes).unwrap();
        // Three rows of ten cells, each with two caption lines.
        assert_eq!((jpeg.width(), jpeg.height()), (png.width(), png.height()));
        assert_eq!(png.width(), 10 * CELL_W as u32);
        let head = if have_font() { HEAD_H } else { 0 };
        let cell_h = 4 + 28 * SCALE + 4 + 2 * LINE_H + 6;
        assert_eq!(png.height(), (head + 3 * cell_h) as u32);
        assert!(grid(&dir.path().join("g.gif"), &set, "title", None).is_err());
        assert!(!dir.path().join("g.gif").exists());
    }

    #[test]
    fn captions_say_prediction_and_truth_and_fit_their_cell() {
        assert_eq!(caption(3, None), ["Dress"]);
        assert_eq!(caption(3, Some(3)), ["Dress"]);
        assert_eq!(caption(0, Some(3)), ["pred Dress", "true T-shirt/top"]);
        if !have_font() {
            eprintln!("no font installed: captions are not drawn, nothing to measure");
            return;
        }
        for truth in 0..10 {
            for predicted in 0..10 {
                for line in caption(truth, Some(predicted)) {
                    let (text, size) = fit_text(&line, CAPTION_SIZE, CAPTION_W);
                    assert_eq!(text, line, "no class name needs shortening");
                    assert!(size >= 10.0, "{line}: font {size} too small");
                    assert!(text_width(&text, size).unwrap() <= CAPTION_W, "{line}");
                }
            }
        }
        // What does not fit at the smallest size is shortened with an ellipsis.
        let (text, size) = fit_text("a caption far too long for a cell of a grid", 12.0, 60);
        assert_eq!(size, 8.0);
        assert!(
            text.ends_with('…') && text_width(&text, size).unwrap() <= 60,
            "{text}"
        );
    }

    /// Asserts that every pixel of `color` in `image` within 12 pixels of one of `rects` is
    /// inside it, at least `inset` pixels from its edges (pixels farther away, such as the
    /// legends', are not the charts'); returns how many there are.
    fn pixels_well_inside(
        image: &image::RgbImage,
        color: [u8; 3],
        rects: &[PlotRect],
        inset: i32,
    ) -> usize {
        let mut count = 0;
        for (x, y, pixel) in image.enumerate_pixels() {
            if pixel.0 != color {
                continue;
            }
            let (x, y) = (x as i32, y as i32);
            let near = |(xs, ys): &&PlotRect| {
                (xs.start - 12..xs.end + 12).contains(&x)
                    && (ys.start - 12..ys.end + 12).contains(&y)
            };
            let Some(rect) = rects.iter().find(near) else {
                continue;
            };
            let (xs, ys) = rect;
            assert!(
                x >= xs.start + inset
                    && x < xs.end - inset
                    && y >= ys.start + inset
                    && y < ys.end - inset,
                "{color:?} at ({x}, {y}) on the edge of the panel {rect:?}"
            );
            count += 1;
        }
        count
    }

    #[test]
    fn one_epoch_points_are_drawn_whole_inside_their_panels() {
        let info = run_info(ModelKind::Mlp, 1);
        let (image, rects) = render(CURVES_SIZE, |root| {
            draw_curves(root, &info, Path::new("runs/mlp"))
        })
        .unwrap();
        assert_eq!(rects.len(), 3);
        // Train (blue) in the loss and accuracy panels: two whole dots of radius 4, neither
        // touching a panel's edge.
        let blue = pixels_well_inside(&image, [0, 0, 255], &rects, 3);
        assert!(blue >= 2 * 45, "{blue} blue pixels: dots clipped?");
        pixels_well_inside(&image, [255, 0, 0], &rects, 3);
        pixels_well_inside(&image, [128, 0, 160], &rects, 3);
    }

    #[test]
    fn curves_title_names_the_model_run_and_test_accuracy() {
        let mut info = run_info(ModelKind::Edge, 3);
        assert_eq!(
            curves_title(&info, Path::new("runs/edge")),
            "edge in runs/edge: 3 epochs"
        );
        info.test_accuracy = Some(0.9123);
        assert_eq!(
            curves_title(&info, Path::new("runs/edge")),
            "edge in runs/edge: 3 epochs, test accuracy 91.23%"
        );
    }

    #[test]
    fn the_loss_note_needs_a_reason_in_the_recipe() {
        // Validation loss above training loss: nothing to explain.
        let mut info = run_info(ModelKind::Edge, 3);
        assert_eq!(loss_note(&info), None);
        for m in &mut info.epochs {
            m.train_loss = m.val_loss + 0.1;
        }
        let note = loss_note(&info).unwrap();
        assert!(
            note.contains("label smoothing 0.1") && note.contains("augmented"),
            "{note}"
        );
        info.recipe.augment = false;
        assert!(!loss_note(&info).unwrap().contains("augmented"));
        info.recipe.label_smoothing = 0.0;
        assert_eq!(
            loss_note(&info),
            None,
            "the notebook's recipe has no reason"
        );
    }

    thread_local! {
        /// Set by a test on its own thread: [`have_font`] then answers as on a machine
        /// with no font installed (a GPU server's image, for one).
        pub(super) static NO_FONT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[test]
    fn without_a_font_curves_and_grids_are_drawn_without_text() {
        NO_FONT.with(|f| f.set(true));
        let dir = tempfile::tempdir().unwrap();
        let mut info = run_info(ModelKind::Edge, 3);
        info.test_accuracy = Some(0.85);
        let path = dir.path().join("curves.png");
        curves(&path, &info, dir.path()).unwrap();
        let image = image::open(&path).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), CURVES_SIZE);
        // The series are drawn: some pixels are neither white nor gray.
        assert!(image.pixels().any(|p| p[0] != p[1] || p[1] != p[2]));
        let set = crate::synthetic::images(12, 3);
        let grid_path = dir.path().join("grid.png");
        grid(&grid_path, &set, "title", Some(&[0; 12])).unwrap();
        let picture = image::open(&grid_path).unwrap();
        // No heading row without a font.
        assert_eq!(picture.width(), (CELL_W * 10) as u32);
        assert!(picture.height() < (HEAD_H + 2 * (4 + 28 * SCALE + 4 + 2 * LINE_H + 6)) as u32);
    }

    #[test]
    fn curves_are_drawn_for_runs_of_any_length() {
        let dir = tempfile::tempdir().unwrap();
        for epochs in [0, 1, 2, 36] {
            let mut info = run_info(ModelKind::Edge, epochs);
            info.test_accuracy = Some(0.85);
            let path = dir.path().join(format!("c{epochs}.png"));
            curves(&path, &info, dir.path()).unwrap();
            let image = image::open(&path).unwrap();
            assert_eq!((image.width(), image.height()), CURVES_SIZE);
        }
    }
}
