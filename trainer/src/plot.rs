//! Pictures: the loss/accuracy curves of a run, the notebook's 10x10 grid of images, and
//! one sample image of each class.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::anyhow;
use fmnist_runtime::dataset::LabeledImages;
use fmnist_runtime::{CLASS_NAMES, IMAGE_SIDE};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::checkpoint::EpochMetrics;
use crate::fsutil::write_atomic;

const FONT: &str = "sans-serif";

/// Picks one figure of an epoch.
type Pick = fn(&EpochMetrics) -> f64;

/// Registers a system TrueType font once; false when none is installed, in which case
/// pictures are drawn without text rather than not at all.
fn have_font() -> bool {
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

/// Renders into an RGB buffer with `draw`, then writes it as a PNG atomically.
fn render_png(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut rgb = vec![0u8; (width * height * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        area.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        draw(area.clone())?;
        area.present().map_err(|e| anyhow!("{e}"))?;
    }
    let image =
        image::RgbImage::from_raw(width, height, rgb).ok_or_else(|| anyhow!("bad image buffer"))?;
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    write_atomic(path, &png)
}

/// `curves.png`: loss (left) and accuracy (right) per epoch, train and validation.
pub fn curves(path: &Path, epochs: &[EpochMetrics]) -> anyhow::Result<()> {
    let text = have_font();
    render_png(path, (1000, 400), |root| {
        let panels = root.split_evenly((1, 2));
        let series: [(&str, Pick, Pick); 2] = [
            ("loss", |m| m.train_loss, |m| m.val_loss),
            ("accuracy", |m| m.train_acc, |m| m.val_acc),
        ];
        for (panel, (name, train, val)) in panels.iter().zip(series) {
            let values = epochs.iter().flat_map(|m| [train(m), val(m)]);
            let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (lo, hi) = if lo < hi {
                (lo, hi)
            } else {
                (lo - 0.5, lo + 0.5)
            };
            let pad = (hi - lo) * 0.1;
            let last = epochs.len().max(2) as f64;
            let mut builder = ChartBuilder::on(panel);
            builder
                .margin(15)
                .x_label_area_size(if text { 35 } else { 5 })
                .y_label_area_size(if text { 55 } else { 5 });
            if text {
                builder.caption(name, (FONT, 22));
            }
            let mut chart = builder
                .build_cartesian_2d(1.0..last, (lo - pad)..(hi + pad))
                .map_err(|e| anyhow!("{e}"))?;
            let mut mesh = chart.configure_mesh();
            mesh.x_desc("epoch")
                .x_labels(epochs.len().clamp(2, 12))
                .x_label_formatter(&|x| format!("{x:.0}"));
            if !text {
                mesh.disable_x_axis().disable_y_axis();
            }
            mesh.draw().map_err(|e| anyhow!("{e}"))?;
            for (label, pick, color) in [("train", train, BLUE), ("val", val, RED)] {
                let points: Vec<(f64, f64)> =
                    epochs.iter().map(|m| (m.epoch as f64, pick(m))).collect();
                let drawn = chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(|e| anyhow!("{e}"))?;
                if text {
                    drawn.label(label).legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                }
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| anyhow!("{e}"))?;
            }
            if text {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| anyhow!("{e}"))?;
            }
        }
        Ok(())
    })
}

/// The notebook's first figure: the first 100 images as a 10x10 grid in gray, each
/// captioned with its class. With `predictions`, wrong ones get a red frame and caption
/// "predicted (true)".
pub fn grid(path: &Path, set: &LabeledImages, predictions: Option<&[u8]>) -> anyhow::Result<()> {
    const SCALE: i32 = 3;
    const CELL_W: i32 = 28 * SCALE + 24;
    const CELL_H: i32 = 28 * SCALE + 30;
    let text = have_font();
    let count = set.len().min(100);
    render_png(path, ((CELL_W * 10) as u32, (CELL_H * 10) as u32), |root| {
        for index in 0..count {
            let (col, row) = ((index % 10) as i32, (index / 10) as i32);
            let (x0, y0) = (col * CELL_W + 12, row * CELL_H + 4);
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
                        .map_err(|e| anyhow!("{e}"))?;
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
                    .map_err(|e| anyhow!("{e}"))?;
            }
            if text {
                let caption = match predicted {
                    Some(p) if wrong => format!("{} ({})", CLASS_NAMES[p], CLASS_NAMES[truth]),
                    _ => CLASS_NAMES[truth].to_string(),
                };
                let color = if wrong { RED } else { BLACK };
                let style = TextStyle::from((FONT, 12).into_font()).color(&color);
                root.draw_text(&caption, &style, (x0 - 8, y0 + 28 * SCALE + 6))
                    .map_err(|e| anyhow!("{e}"))?;
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
}
