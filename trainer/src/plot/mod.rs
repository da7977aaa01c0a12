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
    font_bytes().is_some()
}

/// The bytes of the font [`have_font`] registered, if any.
fn font_bytes() -> Option<&'static [u8]> {
    #[cfg(test)]
    if tests::NO_FONT.with(std::cell::Cell::get) {
        return None;
    }
    static FOUND: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let candidates = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        ];
        candidates.iter().find_map(|path| {
            std::fs::read(path)
                .ok()
                .map(|bytes| &*Box::leak(bytes.into_boxed_slice()))
                .filter(|bytes| {
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
    let left = x as f64 - text::advance(&text, size) / 2.0;
    text::draw(area, &text, size, color, (left, y))
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
    // The labels' middles on the keys' line.
    let top = y
        - (FONT, SIZE)
            .into_font()
            .box_size("0")
            .map_or(0, |(_, h)| h as i32)
            / 2;
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
        text::draw(area, label, SIZE, &BLACK, ((x + SAMPLE + 6) as f64, top))?;
        x += w + GAP;
    }
    Ok(())
}

mod curves;
mod grid;
mod text;

pub use curves::{curves, loss_note, lr_series, run_curves, LrSeries};
pub use grid::{caption, grid, samples, GridSplit};

#[cfg(test)]
mod tests {
    use super::curves::*;
    use super::grid::*;
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
                schedule_epochs: None,
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

    /// A one-cycle run of 2 epochs (4 steps each) extended on resume to 4: epochs 1-2
    /// followed the 2-epoch schedule, 3-4 the stretched one, as training computed them.
    fn resumed_run() -> RunInfo {
        let mut recipe = Recipe::default_for(ModelKind::Edge14);
        recipe.batch = 25;
        let mut info = RunInfo::new(ModelKind::Edge14, recipe, 42, "flex", "test".into());
        info.train_images = 100;
        for epoch in 1..=4usize {
            let span = if epoch <= 2 { 2 } else { 4 };
            info.epochs.push(EpochMetrics {
                epoch,
                train_loss: 1.0,
                train_acc: 0.5,
                val_loss: 1.0,
                val_acc: 0.5,
                lr: info.lr_of_step(epoch * 4 - 1, span, 4),
                seconds: 1.0,
                schedule_epochs: Some(span),
            });
        }
        info.recipe.epochs = 4;
        info.resumed
            .push("trainer fit --resume runs/edge14 --epochs 4 (after epoch 2)".into());
        info
    }

    #[test]
    fn the_learning_rate_panel_draws_the_rates_each_epoch_used_and_the_resume() {
        let info = resumed_run();
        let recipe = info.recipe.clone();
        let lr = lr_series(&info);
        assert_eq!(lr.resumes, [2.0]);
        // From the first step (x = 0), the warm-up's start, lr/25.
        assert_eq!(lr.steps[0], (0.0, recipe.lr / 25.0));
        // Every step of every epoch, and its end (x = k) at the rate the epoch records.
        assert_eq!(lr.steps.len(), 4 * 5);
        for m in &info.epochs {
            let end = m.epoch as f64;
            assert!(lr.steps.contains(&(end, m.lr)), "epoch {}", m.epoch);
        }
        // Epochs 1-2 on the 2-epoch schedule: step 5 (epoch 2's second) is past the
        // warm-up's peak (at 15% of 8 steps), not on the stretched one's warm-up.
        let two = |step| info.lr_of_step(step, 2, 4);
        let stretched = |step| info.lr_of_step(step, 4, 4);
        assert_eq!(lr.steps[6], (1.25, two(5)));
        assert_ne!(two(5), stretched(5));
        // At the resume, the rate jumps: epoch 2 ended near the floor of its schedule,
        // epoch 3 starts high on the stretched one.
        let at_two: Vec<f64> = lr
            .steps
            .iter()
            .filter(|p| p.0 == 2.0)
            .map(|p| p.1)
            .collect();
        assert_eq!(at_two, [info.epochs[1].lr, stretched(8)]);
        assert!(stretched(8) > 10.0 * info.epochs[1].lr, "{at_two:?}");
        // A run of an older trainer: resumed, its epochs recording no schedule. Those
        // after the last resume followed the recipe's; those before are not drawn.
        let mut old = info.clone();
        for m in &mut old.epochs {
            m.schedule_epochs = None;
        }
        let steps = lr_series(&old).steps;
        assert_eq!(steps, lr.steps[10..].to_vec());
        old.resumed.clear();
        old.recipe.epochs = 2;
        old.epochs.truncate(2);
        assert_eq!(lr_series(&old).steps, lr.steps[..10].to_vec());
    }

    #[test]
    fn a_resume_is_a_dashed_line_in_the_learning_rate_panel() {
        let info = resumed_run();
        let (image, rects) = render(CURVES_SIZE, |root| {
            draw_curves(root, &info, Path::new("runs/edge14"))
        })
        .unwrap();
        let (xs, ys) = &rects[2];
        // The x axis runs from 0 to 4.5 epochs: the resume (after epoch 2) at 2/4.5.
        let x = xs.start + ((xs.end - xs.start) as f64 * 2.0 / 4.5).round() as i32;
        let gray = |x: i32| {
            (ys.start..ys.end)
                .filter(|&y| image.get_pixel(x as u32, y as u32).0 == [110, 110, 110])
                .count()
        };
        let dashes = (x - 1..=x + 1).map(gray).max().unwrap();
        assert!(
            dashes > (ys.end - ys.start) as usize / 3,
            "{dashes} gray pixels at x = {x}"
        );
        // No resume, no line.
        let mut fresh = info.clone();
        fresh.resumed.clear();
        let (image, _) = render(CURVES_SIZE, |root| {
            draw_curves(root, &fresh, Path::new("runs/edge14"))
        })
        .unwrap();
        let gray = |x: i32| {
            (ys.start..ys.end)
                .filter(|&y| image.get_pixel(x as u32, y as u32).0 == [110, 110, 110])
                .count()
        };
        assert_eq!((x - 1..=x + 1).map(gray).max(), Some(0));
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
