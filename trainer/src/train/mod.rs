//! The training loop, generic over the burn backend.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer, SimpleOptimizer};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use fmnist_runtime::dataset::LabeledImages;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::batch::batch;
use crate::distill::{self, Distiller, Teacher};
use crate::eval::evaluate;
use crate::model::Classifier;
use crate::plot;
use crate::run::{self, EpochMetrics, RunInfo};

mod step;
use step::*;

/// The data of a training run.
pub struct Splits {
    /// Images to fit.
    pub train: LabeledImages,
    /// Images to choose and report by, never fitted.
    pub val: LabeledImages,
}

/// Where and how to report progress.
pub struct Output {
    /// The run directory: checkpoint, metrics.csv, curves.png.
    pub dir: std::path::PathBuf,
    /// Show progress bars (off for tests and when stderr is not a terminal).
    pub progress: bool,
}

/// Set by Ctrl-C (see the `trainer` binary): training stops before the next batch, and
/// the run directory keeps the last complete epoch.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Training stopped because of [`INTERRUPTED`]; the run directory holds `saved` epochs.
#[derive(Debug)]
pub struct Interrupted {
    /// The epoch that was cut short.
    pub epoch: usize,
    /// Complete epochs saved.
    pub saved: usize,
    /// The run directory.
    pub dir: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Interrupted { epoch, saved, dir } = self;
        if *saved == 0 {
            write!(
                f,
                "interrupted during epoch {epoch}, before any epoch was complete: nothing was saved"
            )
        } else {
            write!(
                f,
                "interrupted during epoch {epoch}: {dir} holds the {saved} complete epoch(s); \
                 continue with `trainer fit --resume {dir}`"
            )
        }
    }
}

impl std::error::Error for Interrupted {}

/// Trains `info.model` with `info.recipe` from a fresh initialisation, saving the run
/// directory (and the state `--resume` needs) after every epoch, distilling from `teacher`
/// when the recipe says so (it must be the recipe's teacher). Returns the trained model.
pub fn fit<B: AutodiffBackend>(
    info: &mut RunInfo,
    splits: &Splits,
    out: &Output,
    teacher: Option<&Teacher>,
    device: &B::Device,
) -> anyhow::Result<Classifier<B>> {
    train(info, splits, out, None, teacher, device)
}

/// Continues a run from the state saved after its last complete epoch (`info` is the
/// state's run description): the same weights, optimiser moments, data order and
/// augmentation as if it had never stopped.
pub fn resume<B: AutodiffBackend>(
    info: &mut RunInfo,
    state: &run::ResumeState,
    splits: &Splits,
    out: &Output,
    teacher: Option<&Teacher>,
    device: &B::Device,
) -> anyhow::Result<Classifier<B>> {
    train(info, splits, out, Some(state), teacher, device)
}

fn train<B: AutodiffBackend>(
    info: &mut RunInfo,
    splits: &Splits,
    out: &Output,
    state: Option<&run::ResumeState>,
    teacher: Option<&Teacher>,
    device: &B::Device,
) -> anyhow::Result<Classifier<B>> {
    // Every path into training (the CLI, a resumed run, a library user) meets the same
    // checks as the command line's overrides.
    info.recipe.validate()?;
    let distiller = match (&info.recipe.distill, teacher) {
        (None, None) => None,
        (Some(recipe), Some(teacher)) => Some(Distiller::new(recipe, teacher, device)?),
        (Some(recipe), None) => bail!(
            "the run distils from a teacher (SHA-256 {}): give its file with --teacher",
            recipe.teacher_sha256
        ),
        (None, Some(teacher)) => bail!(
            "{}: the run does not distil from a teacher, and one cannot be added to it",
            teacher.path.display()
        ),
    };
    let model = match state {
        None => {
            let _guard = crate::model::lock_backend_rng();
            B::seed(device, info.seed);
            Classifier::<B>::new(info.model, device)
        }
        Some(state) => run::model_from_bytes(&state.model, info.model, device)
            .with_context(|| format!("{}: bad model state", state.path.display()))?,
    };
    let steps = run::steps_taken(info, splits.train.len());
    let recipe = info.recipe.clone();
    let training = Training {
        model,
        info,
        splits,
        out,
        state,
        steps,
        distiller: distiller.as_ref(),
        device,
    };
    run::with_optimizer(&recipe, training)
}

/// What [`train`] hands to the optimiser the recipe names.
struct Training<'a, 'd, B: AutodiffBackend> {
    model: Classifier<B>,
    info: &'a mut RunInfo,
    splits: &'a Splits,
    out: &'a Output,
    state: Option<&'a run::ResumeState>,
    steps: usize,
    distiller: Option<&'a Distiller<'d, B::InnerBackend>>,
    device: &'a B::Device,
}

impl<B: AutodiffBackend> run::WithOptimizer<B> for Training<'_, '_, B> {
    type Output = anyhow::Result<Classifier<B>>;
    fn apply<S>(self, optim: OptimizerAdaptor<S, Classifier<B>, B>) -> Self::Output
    where
        S: SimpleOptimizer<B::InnerBackend> + run::MomentShapes<B::InnerBackend>,
    {
        let optim = restore(optim, self.state, &self.model, self.steps, self.device)?;
        let Training {
            model,
            info,
            splits,
            out,
            distiller,
            device,
            ..
        } = self;
        run_epochs(model, optim, info, splits, out, distiller, device)
    }
}

/// The optimiser with the moments of `state`, if any, checked against `model` (see
/// [`run::restore_optimizer`]).
fn restore<B, S>(
    optim: OptimizerAdaptor<S, Classifier<B>, B>,
    state: Option<&run::ResumeState>,
    model: &Classifier<B>,
    max_steps: usize,
    device: &B::Device,
) -> anyhow::Result<OptimizerAdaptor<S, Classifier<B>, B>>
where
    B: AutodiffBackend,
    S: SimpleOptimizer<B::InnerBackend> + run::MomentShapes<B::InnerBackend>,
{
    let Some(state) = state else {
        return Ok(optim);
    };
    run::restore_optimizer(optim, &state.optimizer, model, max_steps, device)
        .with_context(|| format!("{}: bad optimiser state", state.path.display()))
}

/// What a diverged run leaves behind, for its error message.
fn last_good(info: &RunInfo, out: &Output) -> String {
    match info.epochs.len() {
        0 => "no epoch was complete, nothing was saved".to_string(),
        n => format!("{} holds the last good epoch ({n})", out.dir.display()),
    }
}

/// Trains the remaining epochs of `info`'s recipe, saving each. Longer than a function
/// should be (about 110 lines): the batch loop moves the model through the optimiser's
/// steps beside the progress bar and three running sums, which a function of its own would
/// take and hand back, eight values each way; the epoch's figures, its divergence check
/// and its resume point are functions below.
fn run_epochs<B: AutodiffBackend, O: Optimizer<Classifier<B>, B>>(
    mut model: Classifier<B>,
    mut optim: O,
    info: &mut RunInfo,
    splits: &Splits,
    out: &Output,
    distiller: Option<&Distiller<'_, B::InnerBackend>>,
    device: &B::Device,
) -> anyhow::Result<Classifier<B>> {
    let recipe = info.recipe.clone();
    if splits.train.is_empty() {
        bail!("no training images");
    }
    let smoothing = (recipe.label_smoothing > 0.0).then_some(recipe.label_smoothing);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing(smoothing)
        .init(device);
    let steps_per_epoch = splits.train.len().div_ceil(recipe.batch);
    let total_steps = steps_per_epoch * recipe.epochs;
    // The replicas' threads, for the whole run.
    let pool = replica_pool(recipe.replicas)?;
    let mut order: Vec<usize> = (0..splits.train.len()).collect();

    for epoch in info.epochs.len() + 1..=recipe.epochs {
        // A run that stopped early, resumed only to be tested and exported (it was killed
        // before that), trains no further.
        if info.stopped_early() {
            break;
        }
        let started = Instant::now();
        // Each epoch's order and augmentation depend only on (seed, epoch).
        let mut rng =
            StdRng::seed_from_u64(info.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch as u64);
        order.sort_unstable();
        order.shuffle(&mut rng);

        let bar = progress_bar(
            out.progress,
            steps_per_epoch as u64,
            &format!("epoch {epoch}/{}", recipe.epochs),
        );
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = recipe.lr;
        for (step_in_epoch, indices) in order.chunks(recipe.batch).enumerate() {
            let step = (epoch - 1) * steps_per_epoch + step_in_epoch;
            lr = recipe.lr_at(step, total_steps);
            let (images, labels) = batch::<B>(
                &splits.train,
                indices,
                recipe.augment.then_some(&mut rng),
                device,
            );
            if INTERRUPTED.load(Ordering::SeqCst) {
                bar.abandon();
                return Err(Interrupted {
                    epoch,
                    saved: info.epochs.len(),
                    dir: out.dir.display().to_string(),
                }
                .into());
            }
            let step = step_gradients(&model, &loss_fn, distiller, images, labels, pool.as_ref());
            let (batch_loss, hits, grads, running) = match step {
                Ok(step) => step,
                Err(error) => {
                    bar.abandon();
                    return Err(error.context("the teacher could not classify a batch"));
                }
            };
            model = optim.step(lr, with_running(model, running), grads);

            if !batch_loss.is_finite() {
                bar.abandon();
                bail!(
                    "training diverged: the loss became {batch_loss} at epoch {epoch}, batch {}; \
                     {} (try a lower --lr)",
                    step_in_epoch + 1,
                    last_good(info, out)
                );
            }
            loss_sum += batch_loss * indices.len() as f64;
            correct += hits;
            seen += indices.len();
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.4} acc {:.4}",
                loss_sum / seen as f64,
                correct as f64 / seen as f64
            ));
        }
        bar.finish_and_clear();

        let val = evaluate(&model.valid(), &splits.val, device);
        let metrics = EpochMetrics {
            seconds: started.elapsed().as_secs_f64(),
            ..epoch_metrics(info, out, epoch, (loss_sum, correct, seen), lr, &val)?
        };
        crate::say!(
            "Epoch: {epoch}  Loss train/val {:.4}/{:.4}  ACC train/val {:.4}/{:.4}  ({})",
            metrics.train_loss,
            metrics.val_loss,
            metrics.train_acc,
            metrics.val_acc,
            crate::util::seconds_text(metrics.seconds)
        );
        info.epochs.push(metrics);
        save_epoch(&model, info, &out.dir)?;
        save_resume_point(&model, &optim, info, out)?;
        if info.stopped_early() {
            break;
        }
    }
    Ok(model)
}

/// The threads the replicas of each batch run on (none for one replica), for the whole
/// run.
fn replica_pool(replicas: usize) -> anyhow::Result<Option<rayon::ThreadPool>> {
    if replicas == 1 {
        return Ok(None);
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(replicas)
        .thread_name(|index| format!("replica-{index}"))
        .build()
        .map(Some)
        .context("cannot start the replicas' threads")
}

/// The figures of epoch `epoch` from its batches' sums (loss, correct, seen), its last
/// learning rate, the schedule's span (the recipe's epochs now) and its validation, or a divergence: the last step can leave weights that
/// are not finite although every batch's loss (computed before its step) was, and the
/// validation loss shows it. Such an epoch is never saved or exported. `seconds` is left
/// for the caller.
fn epoch_metrics(
    info: &RunInfo,
    out: &Output,
    epoch: usize,
    (loss_sum, correct, seen): (f64, usize, usize),
    lr: f64,
    val: &crate::eval::Evaluation,
) -> anyhow::Result<EpochMetrics> {
    let train_loss = loss_sum / seen as f64;
    if !val.loss.is_finite() || !train_loss.is_finite() {
        bail!(
            "training diverged: the validation loss became {} at epoch {epoch} (the weights \
             are no longer finite); {} (try a lower --lr)",
            val.loss,
            last_good(info, out)
        );
    }
    Ok(EpochMetrics {
        epoch,
        train_loss,
        train_acc: correct as f64 / seen as f64,
        val_loss: val.loss,
        val_acc: val.confusion.accuracy(),
        lr,
        seconds: 0.0,
        schedule_epochs: Some(info.recipe.epochs),
    })
}

/// `resume.state` for the epoch just saved (written last), then the run a `fit --force`
/// replaces goes, once this run has saved an epoch.
fn save_resume_point<B: AutodiffBackend, O: Optimizer<Classifier<B>, B>>(
    model: &Classifier<B>,
    optim: &O,
    info: &RunInfo,
    out: &Output,
) -> anyhow::Result<()> {
    let optimizer = NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
        .record(optim.to_record(), ())
        .context("cannot serialise the optimiser state")?;
    run::save_resume(&out.dir, model, optimizer, info)?;
    crate::util::files::drop_set_aside(&out.dir)
}

/// Writes the epoch just pushed onto `info.epochs`: its weights as `model.mpk`, and as
/// `best.mpk` when its validation accuracy beats every earlier epoch's (written before
/// `run.json`, which records both checksums), `metrics.csv` and `curves.png`.
fn save_epoch<B: Backend>(
    model: &Classifier<B>,
    info: &mut RunInfo,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let bytes = run::model_bytes(model)?;
    if let Some(last) = info.epochs.last() {
        if info
            .best
            .as_ref()
            .is_none_or(|best| last.val_acc > best.val_acc)
        {
            crate::util::files::write_atomic(&dir.join(run::BEST_FILE), &bytes)?;
            info.best = Some(run::Best {
                epoch: last.epoch,
                val_acc: last.val_acc,
                sha256: crate::util::sha256::sha256_hex(&bytes),
            });
        }
    }
    run::save_bytes(dir, &bytes, info)?;
    crate::util::files::write_atomic(
        &dir.join(run::METRICS_FILE),
        run::metrics_csv(&info.epochs).as_bytes(),
    )?;
    plot::run_curves(dir, info);
    Ok(())
}

fn progress_bar(enabled: bool, len: u64, prefix: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuTrain};
    use crate::config::recipe::Recipe;
    use crate::model::ModelKind;
    use crate::synthetic;

    fn run_info(kind: ModelKind, seed: u64, epochs: usize) -> RunInfo {
        let mut recipe = Recipe::default_for(kind);
        recipe.epochs = epochs;
        recipe.batch = 20;
        recipe.lr = 3e-3;
        RunInfo::new(kind, recipe, seed, "flex", "test".into())
    }

    fn quick_fit(
        kind: ModelKind,
        seed: u64,
        dir: &std::path::Path,
    ) -> (RunInfo, Classifier<CpuTrain>) {
        let splits = Splits {
            train: synthetic::images(200, 7),
            val: synthetic::images(50, 8),
        };
        let out = Output {
            dir: dir.to_path_buf(),
            progress: false,
        };
        let mut info = run_info(kind, seed, 2);
        let model = fit::<CpuTrain>(&mut info, &splits, &out, None, &Default::default()).unwrap();
        (info, model)
    }

    #[test]
    fn learns_synthetic_classes_and_writes_the_run_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (info, model) = quick_fit(ModelKind::Mlp, 1, dir.path());
        assert_eq!(info.epochs.len(), 2);
        // Each epoch records the schedule it followed, from which its last step's rate,
        // the one it records, is computed again.
        let steps = 200usize.div_ceil(info.recipe.batch);
        for m in &info.epochs {
            assert_eq!(m.schedule_epochs, Some(2));
            let last = info.lr_of_step(m.epoch * steps - 1, 2, steps);
            assert_eq!(m.lr, last, "epoch {}", m.epoch);
        }
        let test = synthetic::images(100, 9);
        let evaluation = evaluate(&model.valid(), &test, &Default::default());
        assert!(
            evaluation.confusion.accuracy() > 0.9,
            "{}",
            evaluation.confusion
        );
        assert_eq!(evaluation.confusion.total(), 100);
        let csv = std::fs::read_to_string(dir.path().join(run::METRICS_FILE)).unwrap();
        assert_eq!(csv.lines().count(), 3, "{csv}");
        let png = std::fs::read(dir.path().join(run::CURVES_FILE)).unwrap();
        assert_eq!(&png[1..4], b"PNG");

        // The saved checkpoint predicts exactly what the model in memory predicts.
        let (loaded_info, loaded) = run::load::<Cpu>(dir.path(), &Default::default()).unwrap();
        assert_eq!(loaded_info, info);
        let again = evaluate(&loaded, &test, &Default::default());
        assert_eq!(again.predictions, evaluation.predictions);
        assert!((again.loss - evaluation.loss).abs() < 1e-6);
    }

    /// A student distilled with weight 1 learns its teacher's answers, not the labels: from
    /// a teacher whose logits are a trained model's moved on by one class (read back from
    /// the ONNX file and the int8 blob it was written to), the student predicts label + 1;
    /// without the teacher the same run predicts the labels. A teacher other than the
    /// recipe's is refused. About 100 lines: one story (teacher files, two runs, a wrong
    /// teacher) whose steps share their fixtures.
    #[test]
    fn a_distilled_student_learns_its_teachers_answers() {
        use crate::config::recipe::Distillation;
        use crate::distill::Teacher;
        use crate::export::{FoldedOp, ModelCard};
        let dir = tempfile::tempdir().unwrap();
        let (info, trained) = quick_fit(ModelKind::Mlp, 1, &dir.path().join("teacher"));
        let mut layers = crate::export::fold(&trained.valid(), ModelKind::Mlp).unwrap();
        let Some(FoldedOp::Linear(last)) = layers.last_mut().map(|l| &mut l.op) else {
            panic!("the mlp ends in a linear layer")
        };
        // Output k takes the weights of output k - 1.
        last.weight.rotate_right(last.inputs);
        last.bias.rotate_right(1);
        let path = dir.path().join("shifted.onnx");
        let card = ModelCard::of_run(&info);
        std::fs::write(
            &path,
            crate::export::onnx::to_bytes(&layers, &card).unwrap(),
        )
        .unwrap();
        let teacher = Teacher::load(&path).unwrap();
        let blob = {
            use crate::export::q8;
            let device = Default::default();
            let shifted = crate::export::unfold::<Cpu>(&layers, &device);
            let train = synthetic::images(200, 7);
            let ranges = q8::calibrate(&shifted, ModelKind::Mlp, &train, &device);
            let card = q8::BlobCard {
                kind: "mlp",
                parameters: 101_770,
                macs: 101_632,
                float_accuracy: None,
                int8_accuracy: None,
                calibration_images: ranges.images as u32,
                temperature: 1.0,
            };
            let bytes = q8::quantize(
                &layers,
                &ranges.maxima,
                crate::config::options::WeightBits::Eight,
            )
            .unwrap()
            .encode(&card)
            .unwrap();
            let path = dir.path().join("shifted.q8");
            std::fs::write(&path, bytes).unwrap();
            Teacher::load(&path).unwrap()
        };
        assert!(teacher
            .describe()
            .starts_with("float ONNX, 101,770 parameters"));
        assert!(
            blob.describe().starts_with("int8 blob"),
            "{}",
            blob.describe()
        );

        let splits = Splits {
            train: synthetic::images(200, 7),
            val: synthetic::images(50, 8),
        };
        let test = synthetic::images(100, 9);
        let student = |distill: Option<Distillation>, teacher: Option<&Teacher>, name: &str| {
            let out = Output {
                dir: dir.path().join(name),
                progress: false,
            };
            let mut info = run_info(ModelKind::Mlp, 2, 2);
            info.recipe.distill = distill;
            fit::<CpuTrain>(&mut info, &splits, &out, teacher, &Default::default())
                .map(|model| evaluate(&model.valid(), &test, &Default::default()))
        };
        let recipe = |teacher: &Teacher| Distillation {
            teacher_sha256: teacher.sha256.clone(),
            weight: 1.0,
            temperature: 2.0,
        };
        for (name, teacher) in [("onnx", &teacher), ("q8", &blob)] {
            let distilled = student(Some(recipe(teacher)), Some(teacher), name).unwrap();
            let shifted = distilled
                .predictions
                .iter()
                .zip(&test.labels)
                .filter(|&(&p, &l)| {
                    usize::from(p) == (usize::from(l) + 1) % fmnist_runtime::CLASS_COUNT
                })
                .count();
            assert!(shifted >= 90, "{name}: {shifted} of 100 follow the teacher");
        }
        let plain = student(None, None, "plain").unwrap();
        assert!(plain.confusion.accuracy() > 0.9);

        let other = Distillation {
            teacher_sha256: "0".repeat(64),
            ..recipe(&teacher)
        };
        let error = student(Some(other), Some(&teacher), "other").unwrap_err();
        assert!(format!("{error}").contains("not the teacher"), "{error}");
        let error = student(None, Some(&teacher), "none").unwrap_err();
        assert!(format!("{error}").contains("does not distil"), "{error}");
    }

    #[test]
    fn an_invalid_recipe_is_refused_before_training() {
        let dir = tempfile::tempdir().unwrap();
        let splits = Splits {
            train: synthetic::images(20, 7),
            val: synthetic::images(10, 8),
        };
        let out = Output {
            dir: dir.path().to_path_buf(),
            progress: false,
        };
        let mut info = run_info(ModelKind::Mlp, 1, 0);
        let error = fit::<CpuTrain>(&mut info, &splits, &out, None, &Default::default())
            .expect_err("zero epochs are refused");
        assert_eq!(
            error.downcast_ref::<crate::config::recipe::RecipeError>(),
            Some(&crate::config::recipe::RecipeError::Epochs)
        );
        assert!(!dir.path().join(run::RUN_FILE).exists());
    }

    #[test]
    fn a_checkpoint_of_another_model_kind_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (mut info, _) = quick_fit(ModelKind::Mlp, 1, dir.path());
        for kind in [ModelKind::Cnn, ModelKind::Edge] {
            info.model = kind;
            run::save_info(dir.path(), &info).unwrap();
            let error = run::load::<Cpu>(dir.path(), &Default::default()).unwrap_err();
            assert!(format!("{error:#}").contains(kind.name()), "{error:#}");
        }
        std::fs::write(dir.path().join(run::MODEL_FILE), b"garbage").unwrap();
        let error = run::load::<Cpu>(dir.path(), &Default::default()).unwrap_err();
        assert!(format!("{error:#}").contains("model.mpk"), "{error:#}");
    }
}
