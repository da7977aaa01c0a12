//! One training step: the batch forward and backward (cut across replicas when there are
//! several), the gradients and the batch norms' running statistics.

use super::*;

/// One training step's outcome: see [`step_gradients`].
pub(super) type Step = (f64, usize, GradientsParams, Vec<(ParamId, TensorData)>);

/// One training step's mean loss, correct count and gradients for the batch `images`,
/// `labels`, and the running statistics to give the model. With a `pool` of N > 1 threads
/// the batch is cut into N consecutive parts, each run forward and backward on its own
/// thread by a replica of `model` (the same weights,
/// its own autodiff graph); each part's loss is weighted by its share of the batch, so
/// the summed gradients are those of the whole batch's mean loss, up to float rounding
/// (batch norm, if any, normalises each part by its own statistics, as data-parallel
/// training does without synchronised batch norm). With a `distiller`, the loss is
/// [`distill::loss`] with the teacher's logits for the same images.
pub(super) fn step_gradients<B: AutodiffBackend>(
    model: &Classifier<B>,
    loss_fn: &burn::nn::loss::CrossEntropyLoss<B>,
    distiller: Option<&Distiller<'_, B::InnerBackend>>,
    images: Tensor<B, 4>,
    labels: Tensor<B, 1, Int>,
    pool: Option<&rayon::ThreadPool>,
) -> anyhow::Result<Step> {
    let n = labels.dims()[0];
    let part = |model: &Classifier<B>, images, labels| {
        part_gradients(model, loss_fn, distiller, images, labels, n)
    };
    let replicas = pool.map_or(1, rayon::ThreadPool::current_num_threads);
    let (Some(pool), true) = (pool, replicas > 1 && n >= replicas) else {
        let (loss, hits, grads) = part(model, images, labels)?;
        return Ok((loss, hits, grads, Vec::new()));
    };
    let inner = model.valid();
    let trained = trained_ids(model);
    let parts: Vec<_> = (0..replicas)
        .map(|r| {
            let range = r * n / replicas..(r + 1) * n / replicas;
            (
                images.clone().slice(range.clone()),
                labels.clone().slice(range),
            )
        })
        .collect();
    // One replica per thread of the pool: persistent threads keep their allocator caches
    // from step to step.
    let slots: Vec<_> = parts
        .into_iter()
        .map(|(images, labels)| {
            std::sync::Mutex::new(Some((
                images,
                labels,
                replica::<B>(inner.clone(), &trained),
            )))
        })
        .collect();
    let results = pool.broadcast(|context| {
        let taken = slots
            .get(context.index())
            .and_then(|slot| slot.lock().ok().and_then(|mut slot| slot.take()));
        taken.map(|(images, labels, replica)| {
            let result = part(&replica, images, labels);
            // Its running statistics (batch norm), synchronised on this thread.
            (result, replica.valid())
        })
    });
    let results: Vec<_> = results.into_iter().flatten().collect();
    let mut accumulator = burn::optim::GradientsAccumulator::new();
    let (mut loss, mut hits) = (0.0, 0);
    let mut states = Vec::with_capacity(replicas);
    for (result, inner) in results {
        let (part_loss, part_hits, grads) = result?;
        loss += part_loss;
        hits += part_hits;
        accumulator.accumulate(model, grads);
        states.push(inner);
    }
    Ok((
        loss,
        hits,
        accumulator.grads(),
        running_average(&states, &trained),
    ))
}

/// The loss (weighted by the part's share of a batch of `n`), correct count and gradients
/// of one part of a batch (all of it without replicas).
fn part_gradients<B: AutodiffBackend>(
    model: &Classifier<B>,
    loss_fn: &burn::nn::loss::CrossEntropyLoss<B>,
    distiller: Option<&Distiller<'_, B::InnerBackend>>,
    images: Tensor<B, 4>,
    labels: Tensor<B, 1, Int>,
    n: usize,
) -> anyhow::Result<(f64, usize, GradientsParams)> {
    let share = labels.dims()[0] as f32 / n as f32;
    let teacher_logits = distiller
        .map(|d| d.logits(images.clone().inner()))
        .transpose()?;
    let logits = model.forward(images);
    let mut loss = loss_fn.forward(logits.clone(), labels.clone());
    if let (Some(distiller), Some(teacher_logits)) = (distiller, teacher_logits) {
        loss = distill::loss(distiller, logits.clone(), teacher_logits, loss);
    }
    let hits = logits
        .argmax(1)
        .squeeze_dim::<1>(1)
        .equal(labels)
        .int()
        .sum();
    let grads = GradientsParams::from_grads((loss.clone() * share).backward(), model);
    Ok((
        f64::from(loss.into_scalar().elem::<f32>()) * f64::from(share),
        hits.into_scalar().elem::<i64>() as usize,
        grads,
    ))
}

/// The mean over `replicas` of every parameter that is not trained (the running
/// statistics of batch norm), by id.
pub(super) fn running_average<B: Backend>(
    replicas: &[Classifier<B>],
    trained: &std::collections::HashSet<ParamId>,
) -> Vec<(ParamId, TensorData)> {
    struct Collect<'a> {
        trained: &'a std::collections::HashSet<ParamId>,
        values: Vec<(ParamId, Vec<f32>, Vec<usize>)>,
        first: bool,
        index: usize,
    }
    impl<B: Backend> ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if self.trained.contains(&param.id) {
                return;
            }
            let value = param.val();
            let shape = value.dims().to_vec();
            let data = crate::batch::to_f32_vec(value);
            if self.first {
                self.values.push((param.id, data, shape));
            } else if let Some((_, sum, _)) = self.values.get_mut(self.index) {
                sum.iter_mut().zip(data).for_each(|(s, v)| *s += v);
            }
            self.index += 1;
        }
    }
    let mut collect = Collect {
        trained,
        values: Vec::new(),
        first: true,
        index: 0,
    };
    for replica in replicas {
        collect.index = 0;
        replica.visit(&mut collect);
        collect.first = false;
    }
    let count = replicas.len().max(1) as f32;
    collect
        .values
        .into_iter()
        .map(|(id, sum, shape)| {
            let mean: Vec<f32> = sum.into_iter().map(|v| v / count).collect();
            (id, TensorData::new(mean, shape))
        })
        .collect()
}

/// `model` with the untrained parameters named in `values` (running statistics) set to
/// those values.
pub(super) fn with_running<B: AutodiffBackend>(
    model: Classifier<B>,
    values: Vec<(ParamId, TensorData)>,
) -> Classifier<B> {
    if values.is_empty() {
        return model;
    }
    struct Set(std::collections::HashMap<ParamId, TensorData>);
    impl<B: Backend> ModuleMapper<B> for Set {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            let tensor = match self.0.remove(&id) {
                Some(data) => Tensor::from_data(data, &tensor.device()),
                None => tensor,
            };
            Param::from_mapped_value(id, tensor, mapper)
        }
    }
    model.map(&mut Set(values.into_iter().collect()))
}

/// The ids of the parameters of `model` that are trained (require gradients).
pub(super) fn trained_ids<B: AutodiffBackend>(
    model: &Classifier<B>,
) -> std::collections::HashSet<ParamId> {
    struct Trained(std::collections::HashSet<ParamId>);
    impl<B: Backend> ModuleVisitor<B> for Trained {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.val().is_require_grad() {
                self.0.insert(param.id);
            }
        }
    }
    let mut trained = Trained(Default::default());
    model.visit(&mut trained);
    trained.0
}

/// `model` on the autodiff backend again with fresh autodiff leaves (its own graph), the
/// parameters `trained` requiring gradients as in the model it was taken from
/// (`from_inner` alone does not carry that over for every parameter).
pub(super) fn replica<B: AutodiffBackend>(
    inner: <Classifier<B> as AutodiffModule<B>>::InnerModule,
    trained: &std::collections::HashSet<ParamId>,
) -> Classifier<B> {
    struct RequireGrad<'a>(&'a std::collections::HashSet<ParamId>);
    impl<B: Backend> ModuleMapper<B> for RequireGrad<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            let tensor = tensor.set_require_grad(self.0.contains(&id));
            Param::from_mapped_value(id, tensor, mapper)
        }
    }
    Classifier::<B>::from_inner(inner).map(&mut RequireGrad(trained))
}
