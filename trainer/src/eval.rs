//! Evaluation of a float model on a labelled set: loss, confusion matrix, predictions and
//! logits, generic over the burn backend.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use fmnist_runtime::dataset::LabeledImages;
use fmnist_runtime::Confusion;

use crate::batch::batch;
use crate::model::Classifier;

/// Images per forward pass when evaluating (memory only; results do not depend on it).
pub const EVAL_BATCH: usize = 500;

/// Loss and confusion matrix of a model on a labelled set.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Mean cross-entropy (no label smoothing).
    pub loss: f64,
    /// Counts of (truth, prediction).
    pub confusion: Confusion,
    /// The predicted class of every image, in order.
    pub predictions: Vec<u8>,
    /// The logits of every image, 10 per image, in order.
    pub logits: Vec<f32>,
}

/// Evaluates `model` on every image of `set` (no augmentation, no gradients).
pub fn evaluate<B: Backend>(
    model: &Classifier<B>,
    set: &LabeledImages,
    device: &B::Device,
) -> Evaluation {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut confusion = Confusion::default();
    let mut predictions = Vec::with_capacity(set.len());
    let mut all_logits = Vec::with_capacity(set.len() * fmnist_runtime::CLASS_COUNT);
    let mut loss_sum = 0.0;
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks(EVAL_BATCH) {
        let (images, labels) = batch::<B>(set, chunk, None, device);
        let logits = model.forward(images);
        let loss = loss_fn.forward(logits.clone(), labels);
        loss_sum += f64::from(loss.into_scalar().elem::<f32>()) * chunk.len() as f64;
        let values = crate::batch::to_f32_vec(logits);
        for (&index, row) in chunk.iter().zip(values.chunks(fmnist_runtime::CLASS_COUNT)) {
            let predicted = fmnist_runtime::metrics::argmax(row);
            confusion.record(usize::from(set.labels[index]), predicted);
            predictions.push(predicted as u8);
        }
        all_logits.extend(values);
    }
    Evaluation {
        loss: if set.is_empty() {
            0.0
        } else {
            loss_sum / set.len() as f64
        },
        confusion,
        predictions,
        logits: all_logits,
    }
}

impl Evaluation {
    /// Every image's label and logits as CSV: a header `label,logit0..logit9`, then one row
    /// per image (`trainer eval --logits`). `labels` are the evaluated set's.
    pub fn logits_csv(&self, labels: &[u8]) -> String {
        let mut csv = String::from("label");
        for c in 0..fmnist_runtime::CLASS_COUNT {
            csv += &format!(",logit{c}");
        }
        csv.push('\n');
        for (label, row) in labels
            .iter()
            .zip(self.logits.chunks(fmnist_runtime::CLASS_COUNT))
        {
            // The shortest decimal that reads back as the same f32 (`-2.9927537`).
            let row: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            csv += &format!("{label},{}\n", row.join(","));
        }
        csv
    }
}

/// The five most frequent confusions as one line, `None` when there are none.
pub fn confusions_line(confusion: &Confusion) -> Option<String> {
    let names = fmnist_runtime::CLASS_NAMES;
    let pairs: Vec<String> = confusion
        .top_confusions::<5>()
        .iter()
        .map(|&(truth, predicted, count)| {
            format!("{} as {} ({count})", names[truth], names[predicted])
        })
        .collect();
    (!pairs.is_empty()).then(|| format!("most frequent mistakes: {}", pairs.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_csv_has_a_header_and_a_row_per_image() {
        let evaluation = Evaluation {
            loss: 0.0,
            confusion: Confusion::default(),
            predictions: vec![0, 1],
            logits: (0..20).map(|v| v as f32).collect(),
        };
        let csv = evaluation.logits_csv(&[3, 4]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("label,logit0,") && lines[0].ends_with(",logit9"));
        assert!(lines[2].starts_with("4,10,11,12,"), "{}", lines[2]);
    }
}
