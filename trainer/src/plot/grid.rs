//! The sample grid of `trainer show` and the sample images of `trainer samples`.

use super::*;

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
pub(super) const SCALE: i32 = 3;
pub(super) const CELL_W: i32 = 28 * SCALE + 24;
/// Room for one caption line under an image.
pub(super) const LINE_H: i32 = 15;
/// Caption font size, before shrinking to fit.
pub(super) const CAPTION_SIZE: f64 = 12.0;
/// Height of the heading line above the grid.
pub(super) const HEAD_H: i32 = 26;

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
pub(super) const CAPTION_W: u32 = (CELL_W - 4) as u32;

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
