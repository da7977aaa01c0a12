//! Accuracy of the int8 engine on a labelled set (`std`).

use crate::dataset::LabeledImages;
use crate::engine::fast::FastPlan;
use crate::engine::EngineError;
use crate::metrics::Confusion;

/// Classifies every image of `set` with `plan`; returns the confusion matrix and the
/// predicted classes in order. The arena is the plan's size and every image of a
/// `LabeledImages` has 784 pixels, so an error would be a bug, reported as one.
pub fn evaluate(
    plan: &FastPlan<'_>,
    set: &LabeledImages,
) -> Result<(Confusion, Vec<u8>), EngineError> {
    let mut arena = vec![0u8; plan.arena_bytes()];
    let mut confusion = Confusion::default();
    let mut predictions = Vec::with_capacity(set.len());
    for index in 0..set.len() {
        let class = plan.classify(set.image(index), &mut arena)?.class();
        confusion.record(usize::from(set.labels[index]), class);
        // A class index is below CLASS_COUNT (10).
        predictions.push(class as u8);
    }
    Ok((confusion, predictions))
}
