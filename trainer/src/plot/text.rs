//! Text drawn glyph by glyph where the font puts each glyph. plotters 0.3.7 (its
//! `ab_glyph` fonts) draws each glyph's outline from the pen position truncated to a
//! pixel and drops the glyph's left side bearing, so that letters sit up to two pixels off
//! their places at the sizes of the pictures' notes and legends ("Tain l oss", issue 36).
//! Here each glyph is drawn alone, at the pen position plotters' own layout gives (kerning
//! included, measured at 16 times the size for sub-pixel precision) rounded to a pixel,
//! plus its bearing as the font states it (read with `ab_glyph`). A font that cannot be
//! read is drawn as plotters draws it.

use std::sync::OnceLock;

use super::*;

/// Draws `text` at `size` in `color` with the left of its layout box at `left` and its top
/// at `top` (as plotters' `HPos::Left`, `VPos::Top`).
pub(super) fn draw(
    area: &Area<'_>,
    text: &str,
    size: f64,
    color: &RGBColor,
    (left, top): (f64, i32),
) -> anyhow::Result<()> {
    let style = TextStyle::from((FONT, size).into_font())
        .color(color)
        .pos(Pos::new(HPos::Left, VPos::Top));
    let Some(metrics) = metrics() else {
        return area
            .draw_text(text, &style, (left.round() as i32, top))
            .or_err();
    };
    for (x, c) in placed(text, size, metrics) {
        let mut glyph = [0u8; 4];
        area.draw_text(
            c.encode_utf8(&mut glyph),
            &style,
            (x + left.round() as i32, top),
        )
        .or_err()?;
    }
    Ok(())
}

/// The width in pixels of `text` at `size` as the pen advances over it (kerning included),
/// to a sixteenth of a pixel; 0 without a font.
pub(super) fn advance(text: &str, size: f64) -> f64 {
    const PRECISION: f64 = 16.0;
    (FONT, size * PRECISION)
        .into_font()
        .box_size(text)
        .map_or(0.0, |(w, _)| w as f64 / PRECISION)
}

/// Each visible character of `text` at `size` with the pixel column (from the text's
/// pen origin) at which plotters must draw it for its outline to land where the font
/// puts it: the pen position rounded, plus the glyph's left side bearing (what plotters
/// drops), rounded down as the rasteriser rounds an outline's left edge.
fn placed(text: &str, size: f64, metrics: &Metrics) -> Vec<(i32, char)> {
    text.char_indices()
        .filter(|(_, c)| !c.is_whitespace())
        .map(|(at, c)| {
            let pen = advance(&text[..at], size);
            let bearing = f64::from(metrics.bearing(c)) * metrics.px_per_unit * size;
            (pen.round() as i32 + bearing.floor() as i32, c)
        })
        .collect()
}

/// What the font gives (read with `ab_glyph`, the crate plotters draws with): each
/// character's left side bearing, and the pixels per font unit at size 1.
struct Metrics {
    font: ab_glyph::FontRef<'static>,
    px_per_unit: f64,
}

impl Metrics {
    /// The left side bearing of `c`'s glyph in font units (that of the font's missing
    /// glyph for a character it lacks).
    fn bearing(&self, c: char) -> f32 {
        use ab_glyph::Font as _;
        self.font.h_side_bearing_unscaled(self.font.glyph_id(c))
    }
}

/// The registered font's metrics, once; `None` without a font or with one `ab_glyph`
/// cannot read.
fn metrics() -> Option<&'static Metrics> {
    use ab_glyph::Font as _;
    let bytes = font_bytes()?;
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            let font = ab_glyph::FontRef::try_from_slice(bytes).ok()?;
            // The scale plotters draws at, measured: ten M's at size 1000 against the
            // font's advance of M.
            let units = f64::from(font.h_advance_unscaled(font.glyph_id('M')));
            let pixels = (FONT, 1000.0).into_font().box_size("MMMMMMMMMM").ok()?.0;
            (units > 0.0).then(|| Metrics {
                px_per_unit: f64::from(pixels) / 10.0 / units / 1000.0,
                font,
            })
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gaps between the letters of a word drawn as [`draw`] draws it match the font's:
    /// in "l oss" (the footnote's "loss" as plotters drew it), the gap between `l` and `o`
    /// is no wider than the one between `o` and `s`.
    #[test]
    fn letters_sit_at_the_fonts_places() {
        let Some(metrics) = metrics() else {
            eprintln!("no font installed or its tables unread: nothing to measure");
            return;
        };
        // The DejaVu and Liberation fonts both have these, with bearings of their own.
        use ab_glyph::Font as _;
        for c in ['T', 'r', 'l', 'o', 'M'] {
            assert_ne!(metrics.font.glyph_id(c).0, 0, "{c}");
        }
        assert!(
            metrics.bearing('l') > metrics.bearing('T'),
            "l sits right of its pen"
        );
        let size = 13.0;
        let placed = placed("loss", size, metrics);
        assert_eq!(placed.len(), 4);
        // Drawn, the ink of each letter: its first and last inked column.
        let (image, ()) = render((120, 30), |area| {
            draw(area, "loss", size, &BLACK, (10.0, 5))
        })
        .unwrap();
        let ink = |from: u32, to: u32| -> Vec<u32> {
            (from..to)
                .filter(|&x| (0..30).any(|y| image.get_pixel(x, y).0[0] < 128))
                .collect()
        };
        let columns = ink(0, 120);
        // Runs of inked columns: one a letter ("l", "o", "s", "s").
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for x in columns {
            match runs.last_mut() {
                Some((_, end)) if *end + 1 == x => *end = x,
                _ => runs.push((x, x)),
            }
        }
        assert_eq!(runs.len(), 4, "{runs:?}");
        let gaps: Vec<i64> = runs
            .windows(2)
            .map(|w| i64::from(w[1].0) - i64::from(w[0].1))
            .collect();
        // The font's gaps between ink (bearings included) differ by at most a pixel from
        // one pair to the next at this size; plotters' own drawing made "l o" 2 px wider.
        let expected: Vec<f64> = {
            let px = metrics.px_per_unit * size;
            let ink_left = |i: usize, c: char| {
                advance(&"loss"[..i], size) + f64::from(metrics.bearing(c)) * px
            };
            let lefts: Vec<f64> = "loss".char_indices().map(|(i, c)| ink_left(i, c)).collect();
            let widths: Vec<f64> = runs.iter().map(|r| f64::from(r.1 - r.0 + 1)).collect();
            (0..3)
                .map(|i| lefts[i + 1] - (lefts[i] + widths[i]))
                .collect()
        };
        for (gap, want) in gaps.iter().zip(&expected) {
            assert!(
                (*gap as f64 - want).abs() <= 1.5,
                "gaps {gaps:?}, the font's {expected:?}"
            );
        }
    }
}
