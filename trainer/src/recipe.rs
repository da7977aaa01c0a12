//! How a model is trained: optimiser, schedule, regularisation. Each model kind has a
//! default; the command line overrides any part.

use crate::model::ModelKind;

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam, epsilon 1e-8 (Paddle's and PyTorch's default; burn's is 1e-5).
    Adam,
    /// AdamW: Adam with decoupled weight decay.
    Adamw,
}

/// The learning-rate schedule over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The same rate for every step (the seed's).
    Constant,
    /// One-cycle: linear warm-up over the first 15% of steps from lr/25 to lr, then
    /// cosine annealing to lr/1000.
    OneCycle,
    /// Cosine annealing from lr to lr/1000, no warm-up.
    Cosine,
}

/// Everything that decides how a model is trained.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recipe {
    /// Passes over the training split.
    pub epochs: usize,
    /// Images per training step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Decoupled weight decay (AdamW only).
    pub weight_decay: f64,
    /// The learning-rate schedule.
    pub schedule: Schedule,
    /// Label smoothing of the training loss, 0 for none.
    pub label_smoothing: f32,
    /// Random shifts and horizontal flips of training images.
    pub augment: bool,
}

impl Recipe {
    /// The default recipe of a model kind: the seed's for `mlp` and `cnn` (Adam 1e-4,
    /// batch 300, 5 epochs, no augmentation), one tuned for accuracy for `edge`.
    pub fn default_for(kind: ModelKind) -> Recipe {
        match kind {
            ModelKind::Mlp | ModelKind::Cnn => Recipe {
                epochs: 5,
                batch: 300,
                lr: 1e-4,
                optimizer: OptimizerKind::Adam,
                weight_decay: 0.0,
                schedule: Schedule::Constant,
                label_smoothing: 0.0,
                augment: false,
            },
            ModelKind::Edge => Recipe {
                epochs: 36,
                batch: 128,
                lr: 3e-3,
                optimizer: OptimizerKind::Adamw,
                weight_decay: 0.05,
                schedule: Schedule::OneCycle,
                label_smoothing: 0.1,
                augment: true,
            },
        }
    }

    /// The learning rate of step `step` (0-based) of `total` steps.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let total = total.max(1) as f64;
        let t = step as f64 / total;
        let floor = self.lr / 1000.0;
        let cosine = |progress: f64| {
            floor + (self.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        };
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => cosine(t),
            Schedule::OneCycle => {
                const WARMUP: f64 = 0.15;
                if t < WARMUP {
                    let start = self.lr / 25.0;
                    start + (self.lr - start) * t / WARMUP
                } else {
                    cosine((t - WARMUP) / (1.0 - WARMUP))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cycle_warms_up_peaks_and_anneals() {
        let recipe = Recipe::default_for(ModelKind::Edge);
        let total = 1000;
        let lr = |s| recipe.lr_at(s, total);
        assert!((lr(0) - recipe.lr / 25.0).abs() < 1e-12);
        assert!((lr(150) - recipe.lr).abs() < 1e-9);
        assert!(lr(100) < lr(150) && lr(500) < lr(150) && lr(999) < lr(500));
        assert!(lr(999) < recipe.lr / 100.0);
    }

    #[test]
    fn seed_recipe_is_constant() {
        let recipe = Recipe::default_for(ModelKind::Cnn);
        assert_eq!(recipe.lr_at(0, 10), recipe.lr_at(9, 10));
        assert_eq!((recipe.epochs, recipe.batch, recipe.lr), (5, 300, 1e-4));
    }
}
