//! End-to-end on the real Fashion-MNIST (the Debian package `dataset-fashion-mnist`, or the
//! directory in `FMNIST_DATA`): a few thousand images, so it stays fast.

mod common;

use common::data_dir;
use fmnist_runtime::dataset::{load_split, Split};
use fmnist_trainer::backend::Cpu;
use fmnist_trainer::config::recipe::Recipe;
use fmnist_trainer::model::ModelKind;
use fmnist_trainer::run;

#[test]
fn the_real_files_have_the_documented_sizes() {
    let dir = data_dir();
    let train = load_split(&dir, Split::Train).unwrap();
    let test = load_split(&dir, Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(test.class_counts(), [1000; 10]);
    let (fit, val) = train.split_last(1000);
    assert_eq!((fit.len(), val.len()), (59_000, 1000));
}

#[test]
fn edge_learns_real_images_and_its_checkpoint_predicts_the_same() {
    let dir = data_dir();
    let (train, val) = load_split(&dir, Split::Train)
        .unwrap()
        .truncated(3000)
        .split_last(500);
    let test = load_split(&dir, Split::Test).unwrap().truncated(1000);
    let run = tempfile::tempdir().unwrap();
    let mut recipe = Recipe::default_for(ModelKind::Edge);
    recipe.epochs = 2;
    recipe.batch = 64;
    let (info, model) = common::fit(ModelKind::Edge, recipe, 42, train, val, run.path());
    let device = Default::default();
    let evaluation = fmnist_trainer::eval::evaluate(
        &burn::module::AutodiffModule::valid(&model),
        &test,
        &device,
    );
    // Chance is 10%; two short epochs on 2,500 images reach well above 65%.
    assert!(
        evaluation.confusion.accuracy() > 0.65,
        "{}",
        evaluation.confusion
    );
    assert!(info.epochs[1].val_acc > 0.65, "{:?}", info.epochs);

    let (_, loaded) = run::load::<Cpu>(run.path(), &device).unwrap();
    let again = fmnist_trainer::eval::evaluate(&loaded, &test, &device);
    assert_eq!(again.predictions, evaluation.predictions);
}
