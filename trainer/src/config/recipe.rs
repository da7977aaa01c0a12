//! How a model is trained: optimiser, schedule, regularisation. Each model kind has a
//! default; the command line overrides any part ([`RecipeOverrides`]), and every recipe a
//! run trains with passes [`Recipe::validate`].

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
    /// The same rate for every step (the notebook's).
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
    /// Threads per training step, each running a replica of the model on its share of the
    /// batch (data parallelism: the gradients are summed, batch-norm statistics are those
    /// of each share and their running averages are averaged). 1 in runs written before
    /// the option existed.
    #[serde(default = "one")]
    pub replicas: usize,
    /// Knowledge distillation from a teacher (`--teacher`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<Distillation>,
}

fn one() -> usize {
    1
}

/// The most replicas a recipe may ask for.
pub const MAX_REPLICAS: usize = 64;

/// The default number of replicas: the two cores of the machine the project is measured
/// on. Fixed rather than taken from the machine, so that a run's figures do not depend on
/// where it ran (more replicas than cores only time-share).
pub const DEFAULT_REPLICAS: usize = 2;

impl Recipe {
    /// The default recipe of a model kind: the notebook's for `mlp` and `cnn` (Adam 1e-4,
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
                replicas: DEFAULT_REPLICAS,
                distill: None,
            },
            ModelKind::Edge | ModelKind::Wide | ModelKind::Edge14 => Recipe {
                epochs: 36,
                batch: 128,
                lr: 3e-3,
                optimizer: OptimizerKind::Adamw,
                weight_decay: 0.05,
                schedule: Schedule::OneCycle,
                label_smoothing: 0.1,
                augment: true,
                replicas: DEFAULT_REPLICAS,
                distill: None,
            },
        }
    }

    /// Refuses a recipe no run can train with, naming the command-line option.
    pub fn validate(&self) -> Result<(), RecipeError> {
        if self.epochs == 0 {
            Err(RecipeError::Epochs)
        } else if self.batch == 0 {
            Err(RecipeError::Batch)
        } else if !(self.lr.is_finite() && self.lr > 0.0) {
            Err(RecipeError::LearningRate)
        } else if !(0.0..1.0).contains(&self.label_smoothing) {
            Err(RecipeError::LabelSmoothing)
        } else if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            Err(RecipeError::WeightDecay)
        } else if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            Err(RecipeError::Replicas)
        } else if self.distill.as_ref().is_some_and(|d| !d.is_valid()) {
            Err(RecipeError::Distillation)
        } else {
            Ok(())
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

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptimizerKind::Adam => "Adam",
            OptimizerKind::Adamw => "AdamW",
        })
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Schedule::Constant => "constant",
            Schedule::OneCycle => "one-cycle",
            Schedule::Cosine => "cosine",
        })
    }
}

/// How the tools print a learning rate or another positive figure that spans many orders
/// of magnitude: to 4 significant digits (a resumed run's rate, 0.0010034663329797301,
/// prints as `0.001003`), plainly between 0.001 and 10000 (`0.003`), in scientific
/// notation otherwise (`1e-4`, `2.5e-5`, `1e30`); no trailing zeros.
pub fn format_lr(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    // Rounded to 4 significant digits, then printed in the shortest form that reads back.
    let rounded: f64 = format!("{value:.3e}").parse().unwrap_or(value);
    if (1e-3..1e4).contains(&rounded.abs()) {
        format!("{rounded}")
    } else {
        format!("{rounded:e}")
    }
}

/// One line, as `trainer fit` prints it: "AdamW, 36 epochs, batch 128, lr 0.003 one-cycle,
/// weight decay 0.05, label smoothing 0.1, augmentation".
impl std::fmt::Display for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, {} epoch{}, batch {}, lr {} {}",
            self.optimizer,
            self.epochs,
            if self.epochs == 1 { "" } else { "s" },
            self.batch,
            format_lr(self.lr),
            self.schedule
        )?;
        if self.optimizer == OptimizerKind::Adamw {
            write!(f, ", weight decay {}", format_lr(self.weight_decay))?;
        }
        if self.label_smoothing > 0.0 {
            write!(f, ", label smoothing {}", self.label_smoothing)?;
        }
        f.write_str(if self.augment {
            ", augmentation (shifts, flips)"
        } else {
            ", no augmentation"
        })?;
        if self.replicas != 1 {
            write!(f, ", {} replicas", self.replicas)?;
        }
        match &self.distill {
            Some(d) => write!(
                f,
                ", distilled from teacher {} (weight {}, temperature {})",
                d.teacher_sha256.get(..12).unwrap_or(&d.teacher_sha256),
                d.weight,
                d.temperature
            ),
            None => Ok(()),
        }
    }
}

/// A recipe no run can train with (exit code 2 from `trainer`: it is the user's usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecipeError {
    /// No epochs.
    #[error("--epochs must be at least 1")]
    Epochs,
    /// Empty batches.
    #[error("--batch must be at least 1")]
    Batch,
    /// A learning rate that is not a positive number.
    #[error("--lr must be a positive number")]
    LearningRate,
    /// Label smoothing outside [0, 1).
    #[error("--label-smoothing must be in [0, 1)")]
    LabelSmoothing,
    /// Negative or not a number.
    #[error("--weight-decay must be zero or positive")]
    WeightDecay,
    /// No replica, or more than [`MAX_REPLICAS`].
    #[error("--replicas must be between 1 and {MAX_REPLICAS}")]
    Replicas,
    /// `--distill-weight` outside (0, 1].
    #[error("--distill-weight must be in (0, 1]")]
    DistillWeight,
    /// `--distill-temperature` outside [[`DISTILL_MIN_TEMPERATURE`],
    /// [`DISTILL_MAX_TEMPERATURE`]].
    #[error(
        "--distill-temperature must be from {} to {}",
        DISTILL_MIN_TEMPERATURE,
        DISTILL_MAX_TEMPERATURE
    )]
    DistillTemperature,
    /// A recorded distillation with settings out of range or a malformed checksum.
    #[error("the run's distillation settings are out of range")]
    Distillation,
}

/// The parts of a recipe given on the command line; the rest is the model kind's default.
/// In `run.json`, a field it does not know is refused (a damaged name is not a missing
/// option).
#[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeOverrides {
    /// Epochs [default: 5 for mlp/cnn, 36 for edge/wide].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per training step [default: 300 for mlp/cnn, 128 for edge/wide].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Peak learning rate [default: 1e-4 for mlp/cnn, 3e-3 for edge/wide].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Optimiser [default: adam for mlp/cnn, adamw for edge/wide].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Decoupled weight decay, AdamW only [default: 0.05 for edge/wide].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule [default: constant for mlp/cnn, one-cycle for edge/wide].
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Label smoothing of the training loss [default: 0 for mlp/cnn, 0.1 for edge/wide].
    #[arg(long)]
    pub label_smoothing: Option<f32>,
    /// Turn off the random shifts and flips (on by default for edge and wide).
    #[arg(long)]
    pub no_augment: bool,
    /// Turn on the random shifts and flips for any model.
    #[arg(long, conflicts_with = "no_augment")]
    pub augment: bool,
    /// Threads per training step, each running a replica of the model on its share of the
    /// batch: data parallelism, gradients summed (the same as one replica up to float
    /// rounding; batch norm normalises each share by its own statistics) [default: 2].
    #[arg(long, value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<usize>,
    /// With --teacher: the weight of the teacher's soft targets in the loss, the labels'
    /// being 1 minus it [default: 0.9].
    #[arg(long, value_name = "W", requires = "teacher")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill_weight: Option<f32>,
    /// With --teacher: the softmax temperature of the soft targets [default: 4].
    #[arg(long, value_name = "T", requires = "teacher")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill_temperature: Option<f32>,
}

impl RecipeOverrides {
    /// The distillation weight and temperature, given or default (used with a teacher).
    pub fn distill_settings(&self) -> (f32, f32) {
        (
            self.distill_weight.unwrap_or(DISTILL_WEIGHT),
            self.distill_temperature.unwrap_or(DISTILL_TEMPERATURE),
        )
    }

    /// The distillation of these overrides from the teacher file with checksum
    /// `teacher_sha256`.
    pub fn distillation(&self, teacher_sha256: String) -> Distillation {
        let (weight, temperature) = self.distill_settings();
        Distillation {
            teacher_sha256,
            weight,
            temperature,
        }
    }

    /// The default recipe of `kind` with these overrides, validated; without distillation,
    /// which needs the teacher's file (`trainer fit` adds it).
    pub fn apply(&self, kind: ModelKind) -> Result<Recipe, RecipeError> {
        let mut recipe = Recipe::default_for(kind);
        recipe.epochs = self.epochs.unwrap_or(recipe.epochs);
        recipe.batch = self.batch.unwrap_or(recipe.batch);
        recipe.lr = self.lr.unwrap_or(recipe.lr);
        recipe.optimizer = self.optimizer.unwrap_or(recipe.optimizer);
        recipe.weight_decay = self.weight_decay.unwrap_or(recipe.weight_decay);
        recipe.schedule = self.schedule.unwrap_or(recipe.schedule);
        recipe.label_smoothing = self.label_smoothing.unwrap_or(recipe.label_smoothing);
        recipe.augment = (recipe.augment || self.augment) && !self.no_augment;
        recipe.replicas = self.replicas.unwrap_or(recipe.replicas);
        recipe.validate()?;
        let (weight, temperature) = self.distill_settings();
        check_settings(weight, temperature)?;
        Ok(recipe)
    }
}

// The distillation's settings: part of the recipe.

/// The weight of the distillation term when `--distill-weight` is not given.
pub const DISTILL_WEIGHT: f32 = 0.9;

/// The softmax temperature of the distillation term when `--distill-temperature` is not
/// given.
pub const DISTILL_TEMPERATURE: f32 = 4.0;

/// The highest temperature accepted: beyond it the soft targets are uniform to float
/// precision.
pub const DISTILL_MAX_TEMPERATURE: f32 = 100.0;
/// The lowest temperature accepted: below it, logits divided by `T` leave f32's range
/// (1e-45 made them infinite and the loss NaN, reported as a divergence blaming
/// `--lr`); distillation uses 1 to 20.
pub const DISTILL_MIN_TEMPERATURE: f32 = 0.01;

/// What a run distils from: the teacher's checksum, the weight and the temperature. Part
/// of the recipe.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distillation {
    /// SHA-256 of the teacher's file.
    pub teacher_sha256: String,
    /// The weight `w` of the distillation term, in (0, 1].
    pub weight: f32,
    /// The softmax temperature `T`, in [[`DISTILL_MIN_TEMPERATURE`], [`DISTILL_MAX_TEMPERATURE`]].
    pub temperature: f32,
}

impl Distillation {
    /// Whether the weight, the temperature and the checksum's form are in range.
    pub fn is_valid(&self) -> bool {
        check_settings(self.weight, self.temperature).is_ok()
            && crate::util::sha256::is_sha256_hex(&self.teacher_sha256)
    }
}

/// Refuses a weight outside (0, 1] or a temperature outside [[`DISTILL_MIN_TEMPERATURE`],
/// [`DISTILL_MAX_TEMPERATURE`]],
/// naming the command-line option.
pub fn check_settings(weight: f32, temperature: f32) -> Result<(), RecipeError> {
    if !(weight > 0.0 && weight <= 1.0) {
        Err(RecipeError::DistillWeight)
    } else if !(DISTILL_MIN_TEMPERATURE..=DISTILL_MAX_TEMPERATURE).contains(&temperature) {
        Err(RecipeError::DistillTemperature)
    } else {
        Ok(())
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
    fn recipes_print_as_words_not_debug_structs() {
        let edge = Recipe::default_for(ModelKind::Edge).to_string();
        assert_eq!(
            edge,
            "AdamW, 36 epochs, batch 128, lr 0.003 one-cycle, weight decay 0.05, label \
             smoothing 0.1, augmentation (shifts, flips), 2 replicas"
        );
        let mut cnn = Recipe::default_for(ModelKind::Cnn);
        cnn.epochs = 1;
        cnn.replicas = 1;
        assert_eq!(
            cnn.to_string(),
            "Adam, 1 epoch, batch 300, lr 1e-4 constant, no augmentation"
        );
        assert_eq!(format_lr(1e30), "1e30");
        assert_eq!(format_lr(0.05), "0.05");
        assert_eq!(format_lr(2.5e-5), "2.5e-5");
    }

    #[test]
    fn learning_rates_print_to_four_significant_digits() {
        // The first rate of a run extended on resume (issue 36).
        assert_eq!(format_lr(0.0010034663329797301), "0.001003");
        assert_eq!(format_lr(0.0029999999999999996), "0.003");
        assert_eq!(format_lr(3e-3), "0.003");
        assert_eq!(format_lr(1234.5678), "1235");
        assert_eq!(format_lr(1.2345678e-5), "1.235e-5");
        assert_eq!(format_lr(9.99996e-4), "0.001");
        assert_eq!(format_lr(1e-4), "1e-4");
        assert_eq!(format_lr(0.0), "0");
        assert_eq!(format_lr(-0.00123456), "-0.001235");
    }

    #[test]
    fn notebook_recipe_is_constant() {
        let recipe = Recipe::default_for(ModelKind::Cnn);
        assert_eq!(recipe.lr_at(0, 10), recipe.lr_at(9, 10));
        assert_eq!((recipe.epochs, recipe.batch, recipe.lr), (5, 300, 1e-4));
    }

    #[test]
    fn overrides_replace_defaults_and_are_validated() {
        let overrides = RecipeOverrides {
            epochs: Some(2),
            lr: Some(1e-3),
            no_augment: true,
            ..Default::default()
        };
        let recipe = overrides.apply(ModelKind::Edge).unwrap();
        assert_eq!((recipe.epochs, recipe.lr, recipe.augment), (2, 1e-3, false));
        assert_eq!(recipe.batch, Recipe::default_for(ModelKind::Edge).batch);
        let augment = RecipeOverrides {
            augment: true,
            ..Default::default()
        };
        assert!(augment.apply(ModelKind::Mlp).unwrap().augment);
        for (bad, error) in [
            (
                RecipeOverrides {
                    epochs: Some(0),
                    ..Default::default()
                },
                RecipeError::Epochs,
            ),
            (
                RecipeOverrides {
                    batch: Some(0),
                    ..Default::default()
                },
                RecipeError::Batch,
            ),
            (
                RecipeOverrides {
                    lr: Some(f64::NAN),
                    ..Default::default()
                },
                RecipeError::LearningRate,
            ),
            (
                RecipeOverrides {
                    label_smoothing: Some(1.0),
                    ..Default::default()
                },
                RecipeError::LabelSmoothing,
            ),
            (
                RecipeOverrides {
                    weight_decay: Some(-0.1),
                    ..Default::default()
                },
                RecipeError::WeightDecay,
            ),
        ] {
            assert_eq!(bad.apply(ModelKind::Cnn), Err(error));
        }
    }
}
