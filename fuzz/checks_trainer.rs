//! What the `rundir` fuzz target checks: the trainer's run-directory loaders (`model.mpk`,
//! `resume.state`, `run.json`). Shared by the `cargo fuzz` target
//! (`fuzz_targets/rundir.rs`) and the trainer's test that replays the inputs it found
//! (`trainer/tests/fuzz_regressions.rs`). Kept apart from `checks.rs`, whose other targets
//! the runtime's tests replay without the trainer.
#![allow(dead_code)]

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use fmnist_trainer::backend::{Cpu, CpuTrain};
use fmnist_trainer::config::recipe::OptimizerKind;
use fmnist_trainer::model::{Classifier, ModelKind};
use fmnist_trainer::resume;
use fmnist_trainer::run::{self, RunInfo};

/// The first byte picks the file, the rest is its content:
/// - 0 mod 4: `model.mpk` bytes, decoded as each model kind; whatever decodes must have
///   its kind's shapes and classify an image into 10 finite logits;
/// - 1 mod 4: a `resume.state` payload, wrapped here in a valid header (magic, version,
///   SHA-256) so that mutations reach the decoding instead of stopping at the checksum;
/// - 2 mod 4: a whole `resume.state` file as a run directory holds it;
/// - 3 mod 4: `run.json` bytes; whatever validates must survive a round trip unchanged.
///
/// For a resume state that loads, the weights and the optimiser state are decoded and
/// checked as `trainer fit --resume` does; when both pass, one training step with the
/// restored optimiser must not panic (a moment of the wrong shape did).
///
/// Any panic that escapes is a finding: the loaders catch the decoder's own.
pub fn rundir(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => model_file(rest),
        1 => resume_state(&run::resume_envelope(rest)),
        2 => resume_state(rest),
        _ => run_file(rest),
    }
}

fn model_file(bytes: &[u8]) {
    let device = Default::default();
    for kind in [ModelKind::Mlp, ModelKind::Cnn, ModelKind::Edge] {
        let Ok(model) = run::model_from_bytes::<Cpu>(bytes, kind, &device) else {
            continue;
        };
        run::check_shapes(&model, kind).expect("a loaded model has its kind's shapes");
        let logits = model.forward(Tensor::zeros([1, 1, 28, 28], &device));
        assert_eq!(logits.dims(), [1, 10]);
    }
}

fn resume_state(bytes: &[u8]) {
    let Ok((info, state)) = run::resume_from_bytes(bytes) else {
        return;
    };
    let device = Default::default();
    let Ok(model) = run::model_from_bytes::<CpuTrain>(&state.model, info.model, &device) else {
        return;
    };
    let steps = if info.train_images == 0 {
        usize::MAX
    } else {
        run::steps_taken(&info, info.train_images)
    };
    match info.recipe.optimizer {
        OptimizerKind::Adam => {
            let optim = AdamConfig::new().init::<CpuTrain, Classifier<CpuTrain>>();
            if let Ok(optim) =
                run::restore_optimizer(optim, &state.optimizer, &model, steps, &device)
            {
                one_step(model, optim);
            }
        }
        OptimizerKind::Adamw => {
            let optim = AdamWConfig::new().init::<CpuTrain, Classifier<CpuTrain>>();
            if let Ok(optim) =
                run::restore_optimizer(optim, &state.optimizer, &model, steps, &device)
            {
                one_step(model, optim);
            }
        }
    }
}

fn one_step<O: Optimizer<Classifier<CpuTrain>, CpuTrain>>(
    model: Classifier<CpuTrain>,
    mut optim: O,
) {
    let device = Default::default();
    let images = Tensor::<CpuTrain, 4>::ones([1, 1, 28, 28], &device);
    let labels = Tensor::<CpuTrain, 1, Int>::zeros([1], &device);
    let logits = model.forward(images);
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits, labels);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optim.step(1e-3, model, grads);
    let logits = model
        .valid()
        .forward(Tensor::zeros([1, 1, 28, 28], &device));
    assert_eq!(logits.dims(), [1, 10]);
}

fn run_file(bytes: &[u8]) {
    let Ok(info) = run::info_from_bytes(bytes) else {
        return;
    };
    let json = serde_json::to_vec(&info).expect("a run description serialises");
    let again: RunInfo = run::info_from_bytes(&json).expect("and parses back");
    assert_eq!(again, info);
    assert!(resume::difference(&info, &info).is_none());
}
