use super::*;
use burn::backend::Flex;

fn totals(kind: ModelKind) -> (usize, usize) {
    let rows = summarize(&kind.layers()).unwrap();
    (
        rows.iter().map(|r| r.params).sum(),
        rows.iter().map(|r| r.macs).sum(),
    )
}

#[test]
fn notebook_models_have_the_notebook_parameter_counts() {
    assert_eq!(totals(ModelKind::Mlp).0, 101_770);
    assert_eq!(totals(ModelKind::Cnn).0, 25_290);
}

#[test]
fn edge_fits_the_microcontroller_budget() {
    for kind in [ModelKind::Edge, ModelKind::Edge14] {
        let (params, macs) = totals(kind);
        assert!(params <= 100_000, "{kind:?}: {params} params");
        assert!(macs <= 10_000_000, "{kind:?}: {macs} MACs");
    }
    // The figures the doc comments give.
    assert_eq!(totals(ModelKind::Edge), (97_066, 6_443_712));
    assert_eq!(totals(ModelKind::Edge14), (97_066, 9_153_216));
    assert_eq!(totals(ModelKind::Wide), (369_226, 25_531_776));
}

#[test]
fn burn_modules_match_the_specs() {
    let device = Default::default();
    let _rng = lock_backend_rng();
    for &kind in ModelKind::all() {
        let model = Classifier::<Flex>::new(kind, &device);
        // burn also counts batch norm's running mean and variance as parameters.
        let running: usize = kind
            .layers()
            .iter()
            .map(|l| match l {
                LayerSpec::BatchNorm { features } => 2 * features,
                _ => 0,
            })
            .sum();
        assert_eq!(model.num_params(), totals(kind).0 + running, "{kind:?}");
        let logits = model.forward(Tensor::zeros([3, 1, 28, 28], &device));
        assert_eq!(logits.dims(), [3, CLASS_COUNT], "{kind:?}");
    }
}

#[test]
fn batch_norm_matches_burns() {
    use burn::backend::Autodiff;
    use burn::module::AutodiffModule;
    type B = Autodiff<Flex>;
    let device = Default::default();
    let _rng = lock_backend_rng();
    let bn = BatchNormConfig::new(3).init::<B>(&device);
    let x = Tensor::<B, 4>::random(
        [4, 3, 5, 5],
        burn::tensor::Distribution::Normal(2.0, 3.0),
        &device,
    );
    let ours = batch_norm(&bn, x.clone());
    let theirs = bn.forward(x);
    ours.into_data()
        .assert_approx_eq::<f32>(&theirs.into_data(), burn::tensor::Tolerance::absolute(1e-4));
    // The inference path (running statistics) matches burn's too.
    let inference = bn.valid();
    let x = Tensor::<Flex, 4>::random([2, 3, 5, 5], burn::tensor::Distribution::Default, &device);
    batch_norm(&inference, x.clone())
        .into_data()
        .assert_approx_eq::<f32>(
            &inference.forward(x).into_data(),
            burn::tensor::Tolerance::absolute(1e-4),
        );
}

#[test]
fn summarize_rejects_layers_that_do_not_chain() {
    let bad = [LayerSpec::Linear {
        inputs: 784,
        outputs: 10,
    }];
    assert!(summarize(&bad)
        .unwrap_err()
        .to_string()
        .contains("cannot follow"));
    let short = [LayerSpec::Flatten];
    assert_eq!(
        summarize(&short).unwrap_err().to_string(),
        "the model ends in an output of shape 784, not 10 logits"
    );
}
