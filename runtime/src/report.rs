//! What `runtime eval` and `trainer eval` print: the confusion matrix with class names on
//! both axes, and the per-class figures (a classification report, as scikit-learn prints
//! one), which also serialise as JSON. `std` only.

use std::fmt::Write as _;

use crate::classes::{CLASS_COUNT, CLASS_NAMES};
use crate::metrics::Confusion;

/// One class's figures. A ratio with nothing to divide by (no image of the class, or no
/// image predicted as it) is `None`: printed "-" and `null`, not 0.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ClassFigures {
    /// The class's label (0..10).
    pub label: usize,
    /// Its name.
    pub class: &'static str,
    /// Images of this class (the row's sum).
    pub images: u32,
    /// Images predicted as this class (the column's sum).
    pub predicted: u32,
    /// Images of this class predicted as it.
    pub correct: u32,
    /// `correct / predicted`.
    pub precision: Option<f64>,
    /// `correct / images` (the class's accuracy).
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall.
    pub f1: Option<f64>,
}

fn ratio(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| f64::from(part) / f64::from(whole))
}

/// The figures of every class, in label order.
pub fn class_figures(confusion: &Confusion) -> [ClassFigures; CLASS_COUNT] {
    std::array::from_fn(|class| {
        let images: u32 = confusion.counts[class].iter().sum();
        let predicted: u32 = confusion.counts.iter().map(|row| row[class]).sum();
        let correct = confusion.counts[class][class];
        let precision = ratio(correct, predicted);
        let recall = ratio(correct, images);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        ClassFigures {
            label: class,
            class: CLASS_NAMES[class],
            images,
            predicted,
            correct,
            precision,
            recall,
            f1,
        }
    })
}

/// A percentage with two decimals, or "-" when undefined.
fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{:.2}%", v * 100.0))
}

/// Width of the row labels: the longest class name ("T-shirt/top").
const NAME_WIDTH: usize = 11;
/// Width of a count column: the longest header word ("T-shirt/", "Pullover") and a space.
const COLUMN_WIDTH: usize = 9;

/// A class name as a column header of two lines: long names break after a `/` or at a
/// space ("T-shirt/" "top", "Ankle" "boot"), short ones sit on the second line.
fn header_lines(name: &str) -> (&str, &str) {
    if name.len() < COLUMN_WIDTH {
        return ("", name);
    }
    match name.find(['/', ' ']) {
        Some(at) if name.as_bytes()[at] == b'/' => (&name[..=at], &name[at + 1..]),
        Some(at) => (&name[..at], &name[at + 1..]),
        None => ("", name),
    }
}

/// The confusion matrix: one row per true class, one column per predicted class, both
/// named in full.
pub fn confusion_table(confusion: &Confusion) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "confusion matrix (rows: true class, columns: predicted class)"
    );
    let headers: Vec<(&str, &str)> = CLASS_NAMES.iter().map(|n| header_lines(n)).collect();
    let _ = write!(text, "{:>NAME_WIDTH$} |", "");
    for (top, _) in &headers {
        let _ = write!(text, "{top:>COLUMN_WIDTH$}");
    }
    text.push('\n');
    let _ = write!(text, "{:>NAME_WIDTH$} |", "true class");
    for (_, bottom) in &headers {
        let _ = write!(text, "{bottom:>COLUMN_WIDTH$}");
    }
    text.push('\n');
    let _ = writeln!(
        text,
        "{}+{}",
        "-".repeat(NAME_WIDTH + 1),
        "-".repeat(COLUMN_WIDTH * CLASS_COUNT)
    );
    for (truth, row) in confusion.counts.iter().enumerate() {
        let _ = write!(text, "{:>NAME_WIDTH$} |", CLASS_NAMES[truth]);
        for count in row {
            let _ = write!(text, "{count:>COLUMN_WIDTH$}");
        }
        text.push('\n');
    }
    text
}

/// Precision, recall and F1 per class, then the overall accuracy.
pub fn class_table(confusion: &Confusion) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:>NAME_WIDTH$} | {:>6} {:>9} {:>9} {:>9}",
        "class", "images", "precision", "recall", "f1"
    );
    for (class, figures) in class_figures(confusion).iter().enumerate() {
        let _ = writeln!(
            text,
            "{:>NAME_WIDTH$} | {:>6} {:>9} {:>9} {:>9}",
            CLASS_NAMES[class],
            figures.images,
            percent(figures.precision),
            percent(figures.recall),
            percent(figures.f1)
        );
    }
    let _ = write!(
        text,
        "overall accuracy {:.2}% ({} of {})",
        confusion.accuracy() * 100.0,
        confusion.correct(),
        confusion.total()
    );
    text
}

impl core::fmt::Display for Confusion {
    /// The confusion matrix with class names on both axes, then precision, recall and F1
    /// per class and the overall accuracy.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}\n{}", confusion_table(self), class_table(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_ratios_are_dashes_and_names_are_whole() {
        let mut confusion = Confusion::default();
        confusion.record(0, 0);
        confusion.record(0, 6);
        confusion.record(9, 9);
        let figures = class_figures(&confusion);
        assert_eq!(figures[0].recall, Some(0.5));
        assert_eq!(figures[6].precision, Some(0.0));
        assert_eq!(figures[6].recall, None);
        assert_eq!(figures[6].f1, None);
        assert_eq!(figures[3].precision, None);
        let table = class_table(&confusion);
        assert!(
            table.contains("Dress |      0         -         -         -"),
            "{table}"
        );
        let matrix = confusion_table(&confusion);
        for name in CLASS_NAMES {
            assert!(matrix.contains(&format!("{name} |")), "{matrix}");
        }
        assert!(
            matrix.contains("T-shirt/") && matrix.contains("Pullover"),
            "{matrix}"
        );
        assert_eq!(header_lines("Ankle boot"), ("Ankle", "boot"));
        assert_eq!(header_lines("T-shirt/top"), ("T-shirt/", "top"));
        assert_eq!(header_lines("Pullover"), ("", "Pullover"));
    }
}
