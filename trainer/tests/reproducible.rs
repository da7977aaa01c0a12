//! Same seed, same backend, same data: same result. Alone in its own test binary, because
//! burn-flex's multithreaded reductions can add in another order while other tests of the
//! same process share its thread pool (one `trainer fit` per process is not affected).

use fmnist_trainer::backend::CpuTrain;
use fmnist_trainer::config::recipe::Recipe;
use fmnist_trainer::model::ModelKind;
use fmnist_trainer::run::RunInfo;
use fmnist_trainer::synthetic;
use fmnist_trainer::train::{fit, Output, Splits};

fn figures(seed: u64) -> Vec<(f64, f64, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let mut recipe = Recipe::default_for(ModelKind::Edge);
    recipe.epochs = 2;
    recipe.batch = 20;
    let mut info = RunInfo::new(ModelKind::Edge, recipe, seed, "flex", "test".into());
    let splits = Splits {
        train: synthetic::images(200, 7),
        val: synthetic::images(50, 8),
    };
    let out = Output {
        dir: dir.path().to_path_buf(),
        progress: false,
    };
    fit::<CpuTrain>(&mut info, &splits, &out, None, &Default::default()).unwrap();
    info.epochs
        .iter()
        .map(|m| (m.train_loss, m.val_loss, m.val_acc))
        .collect()
}

#[test]
fn same_seed_same_result_other_seed_other_result() {
    let a = figures(5);
    assert_eq!(a, figures(5));
    assert_ne!(a, figures(6));
}
