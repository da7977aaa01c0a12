//! Accuracy of the int8 engine on a labelled set (`std`).

use crate::dataset::LabeledImages;
use crate::engine::fast::FastPlan;
use crate::metrics::Confusion;

/// Classifies every image of `set` with `plan`; returns the confusion matrix and the
/// predicted classes in order.
pub fn evaluate(plan: &FastPlan<'_>, set: &LabeledImages) -> (Confusion, Vec<u8>) {
    let mut arena = vec![0u8; plan.arena_bytes()];
    let mut confusion = Confusion::default();
    let mut predictions = Vec::with_capacity(set.len());
    for index in 0..set.len() {
        // The arena is the plan's size and every image has 784 pixels: cannot fail.
        let class = plan
            .classify(set.image(index), &mut arena)
            .map_or(usize::MAX, |l| l.class());
        confusion.record(usize::from(set.labels[index]), class);
        predictions.push(class.min(255) as u8);
    }
    (confusion, predictions)
}
