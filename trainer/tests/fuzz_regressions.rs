//! The `rundir` fuzz target's checks (`fuzz/checks_trainer.rs`) without nightly or
//! libFuzzer: on the files of a real run (its seeds) and on every input kept in
//! `fuzz/regressions/rundir/`. With `FMNIST_WRITE_SEEDS=DIR` the seeds are also written to
//! DIR (`fuzz/seed.sh` seeds the corpus so).

use std::path::Path;

use fmnist_trainer::backend::CpuTrain;
use fmnist_trainer::config::recipe::Recipe;
use fmnist_trainer::model::ModelKind;
use fmnist_trainer::run::{self, RunInfo};
use fmnist_trainer::synthetic;
use fmnist_trainer::train::{self, Output, Splits};

#[path = "../../fuzz/checks_trainer.rs"]
mod checks_trainer;

/// The seeds: a one-epoch cnn run's `model.mpk` (mode 0), its `resume.state` payload (mode
/// 1) and whole file (mode 2), its `run.json` (mode 3).
fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let kind = ModelKind::Cnn;
    let mut recipe = Recipe::default_for(kind);
    recipe.epochs = 1;
    recipe.batch = 20;
    let mut info = RunInfo::new(kind, recipe, 1, "flex", "seed".into());
    info.train_images = 40;
    info.val_images = 10;
    let splits = Splits {
        train: synthetic::images(40, 1),
        val: synthetic::images(10, 2),
    };
    let out = Output {
        dir: dir.path().to_path_buf(),
        progress: false,
    };
    train::fit::<CpuTrain>(&mut info, &splits, &out, None, &Default::default()).unwrap();
    let file = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let state = file(run::RESUME_FILE);
    vec![
        (
            "model".into(),
            [&[0u8][..], &file(run::MODEL_FILE)].concat(),
        ),
        (
            "state-payload".into(),
            [&[1u8][..], &state[8 + 1 + 32..]].concat(),
        ),
        ("state-whole".into(), [&[2u8][..], &state].concat()),
        ("run".into(), [&[3u8][..], &file(run::RUN_FILE)].concat()),
    ]
}

#[test]
fn rundir_seeds_and_regressions_replay() {
    let seeds = seeds();
    if let Some(dir) = std::env::var_os("FMNIST_WRITE_SEEDS") {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(Path::new(&dir).join(name), bytes).unwrap();
        }
    }
    for (name, bytes) in &seeds {
        eprintln!("seed {name}");
        checks_trainer::rundir(bytes);
    }
    // The seeds are valid files: each loads (a panic or error here is a broken seed).
    let state = &seeds[2].1[1..];
    let (info, state) = run::resume_from_bytes(state).unwrap();
    run::model_from_bytes::<CpuTrain>(&state.model, info.model, &Default::default()).unwrap();
    run::info_from_bytes(&seeds[3].1[1..]).unwrap();

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/rundir");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions/rundir exists") {
        let path = entry.unwrap().path();
        eprintln!("{}", path.display());
        checks_trainer::rundir(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count > 0);
}
