//! Knowledge distillation (Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
//! Network", 2015): a student learns from a teacher's softened probabilities as well as
//! from the labels. `trainer fit --teacher FILE` takes the teacher from a file this trainer
//! exported, run beside the student on the same augmented images: an ONNX file (read back
//! with [`crate::export::onnx::read`], run by burn on the inference backend) or an int8
//! blob (run by the runtime's int8 engine, 3.4-4.2x faster for `wide` on this project's
//! AVX2 CPU: the teacher's share of a distilled epoch shrinks accordingly), and trains on
//!
//! `(1 - w) * CE(student, labels) + w * T^2 * KL(softmax(teacher / T) || softmax(student / T))`
//!
//! where `w` is `--distill-weight` and `T` is `--distill-temperature`; the `T^2` keeps the
//! soft targets' gradients on the scale of the labels' as `T` grows.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::AutodiffBackend;
use fmnist_runtime::{blob, FastPlan, Plan, CLASS_COUNT, INPUT_SCALE};

use crate::config::recipe::Distillation;
use crate::export::FoldedLayer;
use crate::model::Classifier;

/// The largest teacher file read (the `wide` model's ONNX file is 1.5 MB, its blob 0.4 MB).
pub const MAX_TEACHER_BYTES: u64 = 64 << 20;

/// A teacher: a model file this trainer exported.
#[derive(Debug, Clone)]
pub struct Teacher {
    /// Where it was read from.
    pub path: PathBuf,
    /// The SHA-256 of the file, which the run records and a resumed run checks.
    pub sha256: String,
    /// The model.
    pub form: TeacherForm,
    /// Its trainable parameters.
    pub parameters: usize,
}

/// What a teacher file holds.
#[derive(Debug, Clone)]
pub enum TeacherForm {
    /// The layers of an ONNX file, run in float by burn.
    Float(Vec<FoldedLayer>),
    /// An int8 blob (checked by the engine when read), run by the int8 engine.
    Int8(Vec<u8>),
}

impl Teacher {
    /// Reads the teacher at `path` (a regular file of at most [`MAX_TEACHER_BYTES`]): an
    /// int8 blob, recognised by its magic, or an ONNX file; every error names the file.
    pub fn load(path: &Path) -> anyhow::Result<Teacher> {
        let bytes = crate::util::files::read_regular(path, MAX_TEACHER_BYTES)?;
        let sha256 = crate::util::sha256::sha256_hex(&bytes);
        let (form, parameters) = if bytes.starts_with(&blob::MAGIC) {
            let parameters = Plan::new(&bytes)
                .with_context(|| format!("{}: int8 blob refused", path.display()))?
                .model()
                .parameters as usize;
            (TeacherForm::Int8(bytes), parameters)
        } else {
            let layers = crate::export::onnx::read(&bytes).with_context(|| {
                format!(
                    "{}: not a teacher (an ONNX file or int8 blob written by `trainer export`)",
                    path.display()
                )
            })?;
            let specs: Vec<_> = layers.iter().map(|layer| layer.op.spec()).collect();
            let parameters = crate::model::summarize(&specs)
                .map_or(0, |rows| rows.iter().map(|row| row.params).sum());
            (TeacherForm::Float(layers), parameters)
        };
        Ok(Teacher {
            path: path.to_path_buf(),
            sha256,
            form,
            parameters,
        })
    }

    /// What the teacher is, for the message that names it: "float ONNX, 369,226
    /// parameters" or "int8 blob, 369,226 parameters".
    pub fn describe(&self) -> String {
        let form = match &self.form {
            TeacherForm::Float(_) => "float ONNX",
            TeacherForm::Int8(_) => "int8 blob",
        };
        format!(
            "{form}, {} parameters",
            crate::model::thousands(self.parameters)
        )
    }
}

/// The teacher's model and the distillation's weight and temperature, as training uses
/// them.
pub struct Distiller<'a, B: Backend> {
    /// The teacher, ready to run.
    model: TeacherModel<'a, B>,
    /// `w`.
    pub weight: f32,
    /// `T`.
    pub temperature: f32,
}

enum TeacherModel<'a, B: Backend> {
    Float(Classifier<B>),
    Int8(Box<FastPlan<'a>>),
}

impl<'a, B: Backend> Distiller<'a, B> {
    /// The distiller of `recipe` from `teacher`, which must be the file the recipe names.
    pub fn new(
        recipe: &Distillation,
        teacher: &'a Teacher,
        device: &B::Device,
    ) -> anyhow::Result<Self> {
        if teacher.sha256 != recipe.teacher_sha256 {
            bail!(
                "{}: not the teacher the run distils from (its SHA-256 is {}, the run's \
                 teacher has {})",
                teacher.path.display(),
                teacher.sha256,
                recipe.teacher_sha256
            );
        }
        let model = match &teacher.form {
            TeacherForm::Float(layers) => {
                TeacherModel::Float(crate::export::unfold(layers, device))
            }
            TeacherForm::Int8(bytes) => TeacherModel::Int8(Box::new(FastPlan::new(
                Plan::new(bytes)
                    .with_context(|| format!("{}: int8 blob refused", teacher.path.display()))?,
            ))),
        };
        Ok(Distiller {
            model,
            weight: recipe.weight,
            temperature: recipe.temperature,
        })
    }

    /// The teacher's logits `[n, 10]` for `images` `[n, 1, 28, 28]` (pixels scaled by
    /// [`INPUT_SCALE`], which the int8 engine takes back to bytes exactly).
    pub fn logits(&self, images: Tensor<B, 4>) -> anyhow::Result<Tensor<B, 2>> {
        let plan = match &self.model {
            TeacherModel::Float(model) => return Ok(model.forward(images)),
            TeacherModel::Int8(plan) => plan,
        };
        let device = images.device();
        let n = images.dims()[0];
        let pixels: Vec<u8> = crate::batch::to_f32_vec(images)
            .iter()
            .map(|&v| (v / INPUT_SCALE).round().clamp(0.0, 255.0) as u8)
            .collect();
        let mut arena = vec![0u8; plan.arena_bytes()];
        let mut logits = Vec::with_capacity(n * CLASS_COUNT);
        for image in pixels.as_chunks::<{ fmnist_runtime::IMAGE_PIXELS }>().0 {
            logits.extend(plan.classify(image, &mut arena)?.real());
        }
        Ok(Tensor::from_data(
            TensorData::new(logits, [n, CLASS_COUNT]),
            &device,
        ))
    }
}

/// The training loss of `logits` with the teacher's logits for the same images:
/// `(1 - w) * label_loss + w * T^2 * KL(softmax(teacher / T) || softmax(logits / T))`,
/// the KL divergence averaged over the batch.
pub fn loss<B: AutodiffBackend>(
    distiller: &Distiller<'_, B::InnerBackend>,
    logits: Tensor<B, 2>,
    teacher_logits: Tensor<B::InnerBackend, 2>,
    label_loss: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let t = distiller.temperature;
    let kl = divergence(logits, teacher_logits, t);
    label_loss * (1.0 - distiller.weight) + kl * (distiller.weight * t * t)
}

/// The mean over the batch of `KL(softmax(teacher / t) || softmax(student / t))`; the
/// teacher's side is a constant.
pub fn divergence<B: AutodiffBackend>(
    student: Tensor<B, 2>,
    teacher: Tensor<B::InnerBackend, 2>,
    t: f32,
) -> Tensor<B, 1> {
    let [n, classes] = student.dims();
    debug_assert_eq!(classes, CLASS_COUNT);
    let teacher = teacher.div_scalar(t);
    let p = Tensor::<B, 2>::from_inner(softmax(teacher.clone(), 1));
    let log_p = Tensor::<B, 2>::from_inner(log_softmax(teacher, 1));
    let log_q = log_softmax(student.div_scalar(t), 1);
    (p * (log_p - log_q)).sum().div_scalar(n.max(1) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::recipe::{check_settings, DISTILL_MAX_TEMPERATURE, DISTILL_MIN_TEMPERATURE};
    use burn::backend::{Autodiff, Flex};

    type B = Autodiff<Flex>;

    fn logits(rows: &[[f32; CLASS_COUNT]]) -> Tensor<Flex, 2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(
            TensorData::new(flat, [rows.len(), CLASS_COUNT]),
            &Default::default(),
        )
    }

    #[test]
    fn temperatures_that_overflow_the_logits_are_refused() {
        // 1e-45 was accepted: logits / T were infinite, the loss NaN, and the run ended
        // as a divergence blaming --lr.
        for (temperature, ok) in [
            (1e-45, false),
            (0.0099, false),
            (DISTILL_MIN_TEMPERATURE, true),
            (4.0, true),
            (DISTILL_MAX_TEMPERATURE, true),
            (100.5, false),
            (f32::NAN, false),
        ] {
            assert_eq!(
                check_settings(0.9, temperature).is_ok(),
                ok,
                "{temperature}"
            );
        }
    }

    #[test]
    fn the_divergence_is_zero_for_the_teachers_logits_and_matches_a_hand_computation() {
        let a = [[0.5, -1.0, 2.0, 0.0, 0.3, 1.1, -0.2, 0.0, 0.7, -2.0]; 2];
        let same = divergence::<B>(Tensor::from_inner(logits(&a)), logits(&a), 2.0);
        assert!(same.into_scalar().abs() < 1e-6);

        // Two images: one whose student is uniform, one equal to the teacher; the mean is
        // half of the first's KL(p || uniform) = sum p ln p + ln 10.
        let mut b = a;
        b[0] = [0.0; CLASS_COUNT];
        let t = 2.0f32;
        let scaled: Vec<f64> = a[0].iter().map(|&v| f64::from(v / t)).collect();
        let total: f64 = scaled.iter().map(|v| v.exp()).sum();
        let expected = 0.5
            * (scaled
                .iter()
                .map(|v| {
                    let p = v.exp() / total;
                    p * p.ln()
                })
                .sum::<f64>()
                + (CLASS_COUNT as f64).ln());
        let got = divergence::<B>(Tensor::from_inner(logits(&b)), logits(&a), t).into_scalar();
        assert!(
            (f64::from(got) - expected).abs() < 1e-5,
            "{got} vs {expected}"
        );
    }

    #[test]
    fn out_of_range_settings_are_not_valid() {
        let good = Distillation {
            teacher_sha256: "ab".repeat(32),
            weight: 0.9,
            temperature: 4.0,
        };
        assert!(good.is_valid());
        for bad in [
            Distillation {
                weight: 0.0,
                ..good.clone()
            },
            Distillation {
                weight: 1.5,
                ..good.clone()
            },
            Distillation {
                temperature: 0.0,
                ..good.clone()
            },
            Distillation {
                temperature: f32::NAN,
                ..good.clone()
            },
            Distillation {
                teacher_sha256: "AB".repeat(32),
                ..good.clone()
            },
            Distillation {
                teacher_sha256: "ab".into(),
                ..good.clone()
            },
        ] {
            assert!(!bad.is_valid(), "{bad:?}");
        }
    }
}
