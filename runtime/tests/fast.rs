//! The vector kernels (`FastPlan`) give exactly the portable engine's logits: on the
//! shipped models and on random models of awkward shapes (channel counts that are not
//! multiples of 16, filters whose tap count is not a multiple of 4, every padding).

use fmnist_runtime::{FastPlan, Isa, Plan, IMAGE_PIXELS};

#[path = "common/random_model.rs"]
mod random_model;
use random_model::{images, taps, two_convolutions, Rng, Tensors};

/// Every vector ISA this CPU runs gives the portable logits on every image.
fn assert_same_logits(bytes: &[u8], pixels: &[u8], what: &str) {
    let plan = Plan::new(bytes).expect("valid blob");
    let mut arena = vec![0u8; plan.arena_bytes()];
    let portable: Vec<_> = pixels
        .as_chunks::<IMAGE_PIXELS>()
        .0
        .iter()
        .map(|image| plan.classify(image, &mut arena).expect("classifies"))
        .collect();
    // The comparison means something only if the logits vary from image to image.
    let distinct: std::collections::HashSet<_> = portable.iter().map(|l| l.values).collect();
    assert!(
        distinct.len() * 2 > portable.len(),
        "{what}: only {} different logit vectors for {} images",
        distinct.len(),
        portable.len()
    );
    for isa in Isa::ALL.into_iter().skip(1) {
        if !isa.supported() {
            eprintln!("{what}: this CPU lacks {}, not compared", isa.name());
            continue;
        }
        let fast = FastPlan::with_isa(plan.clone(), isa);
        assert_eq!(fast.isa(), isa);
        // The kernels' scratch memory follows the plan's activations in the arena; an arena
        // of the plan's size works too (the scratch is then this thread's own), one byte
        // less than the plan's is refused.
        let mut arena = vec![0u8; fast.arena_bytes()];
        assert!(fast.arena_bytes() >= plan.arena_bytes());
        let first = &pixels.as_chunks::<IMAGE_PIXELS>().0[0];
        let mut plan_sized = vec![0u8; plan.arena_bytes()];
        assert_eq!(
            fast.classify(first, &mut plan_sized),
            Ok(portable[0]),
            "{what}: an arena of Plan::arena_bytes"
        );
        assert!(matches!(
            fast.classify(first, &mut plan_sized[1..]),
            Err(fmnist_runtime::EngineError::ArenaTooSmall { .. })
        ));
        let images = pixels.as_chunks::<IMAGE_PIXELS>().0;
        for (i, (image, expected)) in images.iter().zip(&portable).enumerate() {
            let got = fast.classify(image, &mut arena).expect("classifies");
            assert_eq!(
                *expected,
                got,
                "{what}, image {i}: {} differs from portable",
                isa.name()
            );
        }
    }
    // In batches (layer by layer through every image of a batch; 40 images in batches of
    // 16 and 5 leave a short last batch and a full one), on every tier: the same logits,
    // in order.
    let some = &pixels[..pixels.len().min(40 * IMAGE_PIXELS)];
    for isa in Isa::ALL.into_iter().filter(|isa| isa.supported()) {
        let fast = FastPlan::with_isa(plan.clone(), isa);
        for size in [5, 16] {
            let mut arena = vec![0u8; fast.batch_arena_bytes(size)];
            let mut logits = vec![fmnist_runtime::Logits::default(); size];
            let mut batched = Vec::new();
            for batch in some.chunks(size * IMAGE_PIXELS) {
                let slots = &mut logits[..batch.len() / IMAGE_PIXELS];
                fast.classify_batch(batch, &mut arena, slots)
                    .expect("classifies");
                batched.extend_from_slice(slots);
            }
            assert!(
                batched == portable[..batched.len()],
                "{what}: {} in batches of {size} differs from portable one by one",
                isa.name()
            );
        }
    }
    // On several threads (shares of unequal length with 3): the same logits, in order.
    let fast = FastPlan::new(plan);
    for threads in [2, 3] {
        let all = fast.classify_all(pixels, threads).expect("classifies");
        assert!(
            all == portable,
            "{what}: classify_all on {threads} threads ({}) differs from one by one",
            fast.isa().name()
        );
    }
}

#[test]
fn classify_all_refuses_a_partial_last_image_and_takes_none() {
    let plan = Plan::new(include_bytes!("../../models/cnn.q8")).expect("valid blob");
    let fast = FastPlan::new(plan);
    let pixels = images(&mut Rng(7), 40);
    // 39 whole images and 100 bytes of a 40th, split over 3 threads: the error names the
    // short piece, whichever thread met it.
    let short = &pixels[..39 * IMAGE_PIXELS + 100];
    assert_eq!(
        fast.classify_all(short, 3),
        Err(fmnist_runtime::EngineError::BadInput { given: 100 })
    );
    assert_eq!(fast.classify_all(&[], 2), Ok(Vec::new()));
    // More threads asked than there are images for: the same answers.
    assert_eq!(
        fast.classify_all(&pixels, 8).expect("classifies"),
        fast.classify_all(&pixels, 1).expect("classifies")
    );
}

#[test]
fn classify_batch_checks_its_sizes_and_leaves_the_logits_on_error() {
    use fmnist_runtime::{EngineError, Logits};
    let plan = Plan::new(include_bytes!("../../models/edge.q8")).expect("valid blob");
    let pixels = images(&mut Rng(11), 4);
    for isa in Isa::ALL.into_iter().filter(|isa| isa.supported()) {
        let fast = FastPlan::with_isa(plan.clone(), isa);
        let scratch = fast.arena_bytes() - plan.arena_bytes();
        // AMX runs a batch layer by layer: one plan arena per image; the other tiers
        // image by image, in one. The kernels' scratch once.
        let arenas = if isa == Isa::AmxInt8 { 4 } else { 1 };
        assert_eq!(
            fast.batch_arena_bytes(4),
            arenas * plan.arena_bytes() + scratch,
            "{isa:?}"
        );
        assert_eq!(fast.batch_arena_bytes(1), fast.arena_bytes());
        assert_eq!(fast.batch_arena_bytes(0), scratch);
        let huge = fast.batch_arena_bytes(usize::MAX);
        assert_eq!(huge == usize::MAX, isa == Isa::AmxInt8, "{isa:?}");
        let mut arena = vec![0u8; fast.batch_arena_bytes(4)];
        let untouched = [Logits::default(); 4];
        let mut logits = untouched;
        // 4 slots, 3.5 images; 4 slots, 5 images: refused, nothing written.
        for given in [3 * IMAGE_PIXELS + 392, 5 * IMAGE_PIXELS] {
            let pixels: Vec<u8> = pixels.iter().copied().cycle().take(given).collect();
            assert_eq!(
                fast.classify_batch(&pixels, &mut arena, &mut logits),
                Err(EngineError::BadInput { given })
            );
            assert_eq!(logits, untouched);
        }
        let short = fast.batch_arena_bytes(4) - 1;
        assert_eq!(
            fast.classify_batch(&pixels, &mut arena[..short], &mut logits),
            Err(EngineError::ArenaTooSmall {
                needed: short + 1,
                given: short
            })
        );
        assert_eq!(logits, untouched);
        // An empty batch needs only the scratch, and does nothing.
        assert_eq!(
            fast.classify_batch(&[], &mut arena[..scratch], &mut []),
            Ok(())
        );
        // A whole batch: each image's logits, with the model's scale and temperature.
        fast.classify_batch(&pixels, &mut arena, &mut logits)
            .expect("classifies");
        let mut one = vec![0u8; fast.arena_bytes()];
        for (image, got) in pixels.as_chunks::<IMAGE_PIXELS>().0.iter().zip(&logits) {
            assert_eq!(*got, fast.classify(image, &mut one).expect("classifies"));
            assert_eq!(got.scale, plan.model().logit_scale);
        }
    }
}

#[test]
fn shipped_models_give_identical_logits() {
    let mut rng = Rng(0x5eed);
    let mut pixels = images(&mut rng, 300);
    // The real test images, when the dataset is installed.
    let test = std::path::Path::new("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
    if let Ok(real) = fmnist_runtime::dataset::read_idx_images(test) {
        pixels.extend_from_slice(&real[..2000 * IMAGE_PIXELS]);
    }
    for (name, bytes) in [
        ("cnn.q8", &include_bytes!("../../models/cnn.q8")[..]),
        ("edge.q8", &include_bytes!("../../models/edge.q8")[..]),
        ("edge7.q8", &include_bytes!("../../models/edge7.q8")[..]),
    ] {
        assert_same_logits(bytes, &pixels, name);
    }
}

#[test]
fn the_best_kernels_are_chosen_and_any_supported_ones_can_be_asked_for() {
    let plan = Plan::new(include_bytes!("../../models/edge.q8")).expect("valid blob");
    let best = Isa::detect();
    assert!(best.supported());
    assert_eq!(FastPlan::new(plan.clone()).isa(), best);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if Isa::AmxInt8.supported() {
            // AMX's CPUID bits are not in std's stable detection: `supported` reads them.
            assert_eq!(best, Isa::AmxInt8);
        } else if has!("avx512vnni") && has!("avx512bw") && has!("avx512vl") {
            assert_eq!(best, Isa::Avx512Vnni);
        } else if has!("avxvnni") {
            assert_eq!(best, Isa::AvxVnni);
        } else if has!("avx2") {
            assert_eq!(best, Isa::Avx2);
        }
    }
    for isa in Isa::ALL {
        let expected = if isa.supported() { isa } else { Isa::Portable };
        assert_eq!(FastPlan::with_isa(plan.clone(), isa).isa(), expected);
    }
}

/// Weights the AVX2 tier multiplies byte-wise, at the edge of what it may: 7-bit ones
/// (`-64..=64`, the extremes often), or pairs of the blob's consecutive taps with
/// `|w0| + |w1| = 128` exactly (any `w0`, -128 included), the largest sums `vpmaddubsw`
/// must not saturate: with inputs of 255, 32,640.
fn bytewise_weights(rng: &mut Rng, n: usize, pairs_at_the_limit: bool) -> Vec<u8> {
    let mut weights: Vec<i8> = (0..n)
        .map(|_| match rng.below(4) {
            0 => 64,
            1 => -64,
            _ => (rng.below(129) as i32 - 64) as i8,
        })
        .collect();
    if pairs_at_the_limit {
        for pair in weights.chunks_exact_mut(2) {
            let w0 = rng.next() as i8;
            // 0..=128; +128 is no i8, so with w0 = 0 the partner is -128.
            let rest = 128 - i32::from(w0.unsigned_abs());
            let w1 = if rest == 128 || rng.below(2) == 0 {
                -rest
            } else {
                rest
            };
            pair.copy_from_slice(&[w0, w1 as i8]);
        }
    }
    weights.into_iter().map(|w| w as u8).collect()
}

#[test]
fn bytewise_avx2_layers_give_identical_logits() {
    let mut rng = Rng(7);
    let mut pixels = images(&mut rng, 45);
    // Saturated images too: every input byte 255, so the largest pair sums occur.
    pixels.extend(std::iter::repeat_n(255u8, 3 * IMAGE_PIXELS));
    let shapes = [
        (16, 3, 1, 32, 3, 1, 2),
        (12, 3, 1, 20, 3, 1, 2),
        (7, 4, 1, 70, 2, 0, 4),
    ];
    for (case, &shape) in shapes.iter().enumerate() {
        let [t1, t2, t3] = taps(shape);
        let (c1, c2) = (shape.0, shape.3);
        let mut layer = |taps: usize, channels: usize, shift: (i64, i64), limit: bool| {
            let mut tensors = Tensors::random(&mut rng, taps, channels, shift);
            tensors.weights = bytewise_weights(&mut rng, taps * channels, limit);
            tensors
        };
        // Case 0: every layer 7-bit; case 1: the pairs at the limit in the second
        // convolution (12 input channels, a multiple of 4: the kernels pair its taps as
        // the blob orders them), 7-bit elsewhere; case 2: 7-bit convolutions and 8-bit
        // logits (one layer left to the 16-bit kernels).
        let first = layer(t1, c1, (6, 9), false);
        let second = layer(t2, c2, (8, 13), case == 1);
        let logits = if case == 2 {
            Tensors::random(&mut rng, t3, 10, (12, 16))
        } else {
            layer(t3, 10, (12, 16), false)
        };
        let bytes = two_convolutions(shape, &first, &second, &logits);
        let plan = Plan::new(&bytes).expect("valid blob");
        if Isa::Avx2.supported() {
            let expected = if case == 2 { 2 } else { 3 };
            assert_eq!(
                FastPlan::with_isa(plan.clone(), Isa::Avx2).bytewise_layers(),
                expected,
                "case {case}"
            );
        }
        assert_eq!(FastPlan::with_isa(plan, Isa::Portable).bytewise_layers(), 0);
        assert_same_logits(&bytes, &pixels, &format!("byte-wise model {case}"));
    }
}

#[test]
fn random_models_of_awkward_shapes_give_identical_logits() {
    let mut rng = Rng(42);
    let pixels = images(&mut rng, 60);
    // (channels 1, kernel 1, padding 1, channels 2, kernel 2, padding 2, pool)
    let shapes = [
        (10, 5, 0, 20, 5, 0, 2),
        (16, 3, 1, 33, 3, 1, 2),
        (3, 1, 0, 17, 3, 2, 3),
        (7, 4, 1, 70, 2, 0, 4),
        (48, 3, 2, 5, 1, 0, 2),
        // Pools that drop the last rows and columns (26 / 3, 27 / 2), fused into the
        // convolution by the AVX-512 and AMX kernels; 20 channels: a partial block.
        (8, 3, 1, 16, 3, 0, 3),
        (5, 3, 1, 20, 2, 0, 2),
    ];
    for (case, &shape) in shapes.iter().enumerate() {
        let [t1, t2, t3] = taps(shape);
        let first = Tensors::random(&mut rng, t1, shape.0, (6, 9));
        let second = Tensors::random(&mut rng, t2, shape.3, (8, 13));
        let logits = Tensors::random(&mut rng, t3, 10, (12, 16));
        let bytes = two_convolutions(shape, &first, &second, &logits);
        assert_same_logits(&bytes, &pixels, &format!("random model {case}"));
    }
}
