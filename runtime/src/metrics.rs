//! Classification quality: a confusion matrix and what follows from it. `no_std`; the
//! table rendering is on `std` only.

use crate::classes::CLASS_COUNT;

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// `counts[truth][predicted]`.
    pub counts: [[u32; CLASS_COUNT]; CLASS_COUNT],
}

impl Confusion {
    /// Records one prediction. Out-of-range classes are ignored (they cannot be counted).
    pub fn record(&mut self, truth: usize, predicted: usize) {
        if truth < CLASS_COUNT && predicted < CLASS_COUNT {
            self.counts[truth][predicted] += 1;
        }
    }

    /// Adds another matrix's counts to this one.
    pub fn merge(&mut self, other: &Confusion) {
        for (row, other_row) in self.counts.iter_mut().zip(&other.counts) {
            for (cell, other_cell) in row.iter_mut().zip(other_row) {
                *cell += other_cell;
            }
        }
    }

    /// Number of predictions recorded.
    pub fn total(&self) -> u32 {
        self.counts.iter().flatten().sum()
    }

    /// Number of correct predictions.
    pub fn correct(&self) -> u32 {
        (0..CLASS_COUNT).map(|c| self.counts[c][c]).sum()
    }

    /// Fraction correct, 0 when nothing was recorded.
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct(), self.total())
    }

    /// Per-class recall: of the images of class `c`, the fraction predicted as `c`.
    pub fn class_accuracy(&self) -> [f64; CLASS_COUNT] {
        core::array::from_fn(|c| ratio(self.counts[c][c], self.counts[c].iter().sum()))
    }

    /// The off-diagonal cells, largest first: `(truth, predicted, count)`, at most `N`.
    pub fn top_confusions<const N: usize>(&self) -> heapless::Vec<(usize, usize, u32), N> {
        let mut top: heapless::Vec<(usize, usize, u32), N> = heapless::Vec::new();
        for truth in 0..CLASS_COUNT {
            for predicted in (0..CLASS_COUNT).filter(|&p| p != truth) {
                let count = self.counts[truth][predicted];
                if count == 0 {
                    continue;
                }
                let at = top
                    .iter()
                    .position(|&(_, _, c)| c < count)
                    .unwrap_or(top.len());
                if at < N {
                    if top.is_full() {
                        top.pop();
                    }
                    // Cannot fail: there is room after the pop above.
                    let _ = top.insert(at, (truth, predicted, count));
                }
            }
        }
        top
    }
}

/// Index of the largest value (the first of equal maxima; 0 for an empty slice).
pub fn argmax<T: PartialOrd>(values: &[T]) -> usize {
    (0..values.len()).fold(0, |best, i| if values[i] > values[best] { i } else { best })
}

/// A score [`ranking`] orders: integer logits, or real-valued ones (in IEEE total order,
/// so that a NaN ranks somewhere rather than breaking the sort). Compared in their own
/// type: no conversion to `f64`, which a Cortex-M4 computes in software.
pub trait Score: Copy {
    /// `self` against `other`.
    fn order(self, other: Self) -> core::cmp::Ordering;
}

impl Score for i32 {
    fn order(self, other: i32) -> core::cmp::Ordering {
        self.cmp(&other)
    }
}

impl Score for f32 {
    fn order(self, other: f32) -> core::cmp::Ordering {
        self.total_cmp(&other)
    }
}

impl Score for f64 {
    fn order(self, other: f64) -> core::cmp::Ordering {
        self.total_cmp(&other)
    }
}

/// The classes from the highest score to the lowest; equal scores keep class order. The
/// one top-k of the crate: [`crate::Logits::top`], the C ABI and the CLI use it.
pub fn ranking<T: Score>(scores: &[T; CLASS_COUNT]) -> [usize; CLASS_COUNT] {
    let mut order: [usize; CLASS_COUNT] = core::array::from_fn(|c| c);
    // `sort_unstable_by` is in core (`sort_by` needs alloc); the class index breaks ties.
    order.sort_unstable_by(|&a, &b| scores[b].order(scores[a]).then(a.cmp(&b)));
    order
}

/// Softmax probabilities of real-valued logits, in class order. The one softmax of the
/// crate: the int8 engine's [`crate::Logits::probabilities`] and the ONNX path use it.
pub fn softmax(logits: &[f32; CLASS_COUNT]) -> [f32; CLASS_COUNT] {
    // `f32::max` is a call to libm's `fmaxf` on cores without VMAXNM (Cortex-M4, M7); this
    // is the same maximum (a NaN never replaces a number) in compares.
    let max = logits
        .iter()
        .fold(f32::NEG_INFINITY, |max, &l| if l > max { l } else { max });
    let exps = logits.map(|l| libm::expf(l - max));
    let sum: f32 = exps.iter().sum();
    exps.map(|e| e / sum)
}

fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_per_class_and_top_confusions() {
        let mut m = Confusion::default();
        for _ in 0..3 {
            m.record(6, 0); // shirt taken for T-shirt
        }
        m.record(6, 2);
        m.record(6, 6);
        m.record(1, 1);
        m.record(11, 1); // ignored
        assert_eq!((m.total(), m.correct()), (6, 2));
        assert!((m.accuracy() - 2.0 / 6.0).abs() < 1e-12);
        assert!((m.class_accuracy()[6] - 0.2).abs() < 1e-12);
        assert_eq!(m.class_accuracy()[3], 0.0);
        let top = m.top_confusions::<1>();
        assert_eq!(top.as_slice(), &[(6, 0, 3)]);
        let mut sum = m;
        sum.merge(&m);
        assert_eq!(sum.total(), 12);
        let table = m.to_string();
        assert!(
            table.contains("Shirt") && table.contains("33.33%"),
            "{table}"
        );
    }
}
