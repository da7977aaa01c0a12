//! The desktop path of the int8 engine (`std`): the same plan, with its convolutions and
//! logits layer run by AMX-INT8 tiles (the convolutions) and AVX-512 VNNI kernels when
//! the CPU has them, else by AVX-512 VNNI kernels, else by AVX-VNNI kernels, else by AVX2
//! kernels, else by the portable kernels (chosen at run time, so the default x86-64 build
//! keeps working everywhere).
//!
//! - `pack`: at load, [`FastPlan::new`] repacks each accelerated layer's weights once,
//!   on the heap, in the layout the vector instructions want.
//! - `source`: what a convolution's tiles read: the input itself, or a zero-bordered or
//!   "expanded" copy of it, read through a per-layer table of offsets.
//! - `amx`, `avx512`, `avxvnni` and `avx2`: the kernels of each instruction set. A NEON
//!   file for arm64 would sit beside them.
//!
//! Classification allocates nothing and keeps nothing large on the stack: the copies
//! (and the AVX2 kernels' 16-bit widened input) live in the scratch part of the caller's
//! arena, which [`FastPlan::arena_bytes`] includes (CMSIS-NN's buffer-size pattern).
//! Requantization is vectorised in 64-bit arithmetic, so every output byte and logit
//! equals the portable kernels' (`runtime/tests/fast.rs` compares every ISA on the
//! shipped models and on random models of awkward shapes). A max pool after a
//! convolution runs inside the convolution's kernel on the raw sums, before
//! requantization, which never decreases a value (`pack::Pool`); the pool layer then only
//! moves the pooled bytes (`Accelerator::pooled`).

mod pack;
mod source;
#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
use x86_64::amx;

/// A convolution kernel over a packed layer: input, output, scratch.
type ConvKernel = unsafe fn(&Packed, &[u8], &mut [u8], &mut [u8]);
/// A logits kernel over a packed layer: input, logits, scratch.
type LogitsKernel = unsafe fn(&Packed, &[u8], &mut [i32; CLASS_COUNT], &mut [u8]);
/// A max pooling kernel of `size` x `size` over u8 activations (`input` is the layer's
/// HWC shape): whether it ran (it may decline a shape).
type PoolKernel = unsafe fn([usize; 3], usize, &[u8], &mut [u8]) -> bool;

/// The kernels a tier registers (each tier's file defines its own; `x86_64::TIERS` lists
/// them): what a [`FastPlan`] of that ISA offers each layer to. Unsafe to call unless the
/// CPU has the tier's ISA.
struct Kernels {
    isa: Isa,
    conv: ConvKernel,
    /// For layers packed byte-wise (weights whose pairs fit `vpmaddubsw`), when the tier
    /// has such a kernel.
    conv_bytes: Option<ConvKernel>,
    logits: LogitsKernel,
    /// As `conv_bytes`, for the logits layer.
    logits_bytes: Option<LogitsKernel>,
    pool: PoolKernel,
}

use super::{Accelerator, EngineError, Kind, Logits, Plan, Step};
use crate::blob::{Layer, Output, QuantConv2d, QuantLinear};
use crate::classes::{Image, CLASS_COUNT, IMAGE_PIXELS};
use pack::{Geometry, Packed, LANES};

/// Which kernels a [`FastPlan`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// The portable kernels (no CPU-specific code).
    Portable,
    /// AVX2 for convolutions and the logits layer: `vpmaddwd` on bytes widened to 16
    /// bits, or `vpmaddubsw` on the bytes themselves for layers whose weights cannot
    /// saturate it (7-bit weights: `trainer export --weight-bits 7`); `vpmaxub` for max
    /// pooling.
    Avx2,
    /// AVX-VNNI (`vpdpbusd` in its VEX form, on 256-bit registers: Alder Lake and later
    /// Intel cores, AMD Zen 5) for convolutions and the logits layer; AVX2 for max
    /// pooling.
    AvxVnni,
    /// AVX-512 VNNI (`vpdpbusd`) for convolutions, max pooling and the logits layer.
    Avx512Vnni,
    /// AMX-INT8 tiles (`tdpbusd`: Sapphire Rapids and later Xeons) for the convolutions,
    /// AVX-512 VNNI for the rest. Asking whether the CPU runs it ([`Isa::supported`],
    /// [`Isa::detect`], so [`FastPlan::new`]) asks Linux, once per process, for AMX's
    /// register state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), which makes this process's
    /// signal frames about 8 KiB larger; other systems do not get this tier.
    AmxInt8,
}

impl Isa {
    /// Every tier, slowest first.
    pub const ALL: [Isa; 5] = [
        Isa::Portable,
        Isa::Avx2,
        Isa::AvxVnni,
        Isa::Avx512Vnni,
        Isa::AmxInt8,
    ];

    /// The best kernels this CPU runs.
    pub fn detect() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.supported())
            .unwrap_or(Isa::Portable)
    }

    /// Whether this CPU runs these kernels.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Isa::Portable => true,
                Isa::Avx2 => has!("avx2"),
                Isa::AvxVnni => has!("avx2") && has!("avxvnni"),
                Isa::Avx512Vnni => {
                    has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni")
                }
                Isa::AmxInt8 => Isa::Avx512Vnni.supported() && amx::available(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Isa::Portable
        }
    }

    /// A short name for reports ("portable", "avx2", "avx-vnni", "avx512-vnni",
    /// "amx-int8").
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avx-vnni",
            Isa::Avx512Vnni => "avx512-vnni",
            Isa::AmxInt8 => "amx-int8",
        }
    }
}

/// The fewest images [`FastPlan::classify_all`] gives a thread of its own.
pub const MIN_IMAGES_PER_THREAD: usize = 16;

/// Images per [`FastPlan::classify_batch`] call in [`FastPlan::classify_all`] (with AMX,
/// 16 measured as fast per image as 64, with a quarter of the arena).
const BATCH: usize = 16;

/// A validated model with the fastest kernels this CPU runs. Same results as
/// [`Plan::classify`], bit for bit.
#[derive(Debug, Clone)]
pub struct FastPlan<'a> {
    plan: Plan<'a>,
    isa: Isa,
    /// Per layer: its packed form, when an accelerated kernel runs it.
    packed: Vec<Option<Packed>>,
    /// Scratch bytes the kernels need after the plan's arena (the largest layer's).
    scratch_bytes: usize,
}

impl<'a> FastPlan<'a> {
    /// Packs `plan` for the best kernels of this CPU ([`Isa::detect`]).
    pub fn new(plan: Plan<'a>) -> FastPlan<'a> {
        FastPlan::with_isa(plan, Isa::detect())
    }

    /// Packs `plan` for `isa`; an ISA this CPU lacks falls back to [`Isa::Portable`].
    pub fn with_isa(plan: Plan<'a>, isa: Isa) -> FastPlan<'a> {
        let isa = if isa.supported() { isa } else { Isa::Portable };
        // The AVX2 kernels multiply 16-bit values (`vpmaddwd`): their weights are widened
        // once, here, and their scratch holds the widened input; layers whose weight pairs
        // cannot saturate `vpmaddubsw` keep their bytes and run the byte-wise kernels.
        let widened = isa == Isa::Avx2;
        let packed = match isa {
            Isa::Portable => Vec::new(),
            _ => plan
                .steps
                .iter()
                .zip(plan.model.layers.iter())
                .enumerate()
                .map(|(index, (step, layer))| {
                    let mut packed = pack(step, layer)?;
                    if widened {
                        packed.bytewise = packed.pairs_fit_16_bits();
                        if !packed.bytewise {
                            packed.weights = packed.weights.widened();
                        }
                    }
                    if let (Isa::AmxInt8, Layer::Conv(conv)) = (isa, layer) {
                        packed.tiles = packed.tiles(conv.weights);
                        if packed.tiles.is_some() {
                            // The tiles replace the VNNI layout: no kernel reads it.
                            packed.weights = Default::default();
                        }
                    }
                    // A max pool next runs on the raw sums (`Accelerator::pooled`) where the
                    // kernel takes its size: AMX tiles any, the AVX-512 kernel 2 x 2 and
                    // 3 x 3 windows in registers, the 256-bit ones 2 x 2.
                    if let Some(&Layer::MaxPool { size }) = plan.model.layers.get(index + 1) {
                        let size = usize::from(size);
                        let fused = match isa {
                            _ if packed.tiles.is_some() => true,
                            Isa::Avx512Vnni | Isa::AmxInt8 => size == 2 || size == 3,
                            _ => size == 2,
                        };
                        if fused {
                            packed.pool = packed.pool(size);
                        }
                    }
                    Some(packed)
                })
                .collect(),
        };
        let scratch_bytes = packed
            .iter()
            .flatten()
            .map(|p: &Packed| match &p.tiles {
                #[cfg(target_arch = "x86_64")]
                Some(tiles) => amx::scratch_bytes(tiles),
                _ => p.scratch_bytes(widened && !p.bytewise),
            } + p.pool.as_ref().map_or(0, |pool| pool.scratch_bytes(p.blocks)))
            .max()
            .unwrap_or(0);
        FastPlan {
            plan,
            isa,
            packed,
            scratch_bytes,
        }
    }

    /// The kernels in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The validated plan.
    pub fn plan(&self) -> &Plan<'a> {
        &self.plan
    }

    /// The model's description, as [`Plan::model`].
    pub fn model(&self) -> &crate::blob::Model<'a> {
        self.plan.model()
    }

    /// How many layers the vector kernels run (convolutions and the logits layer over u8
    /// activations); the portable kernels run the rest, and every layer for
    /// [`Isa::Portable`].
    pub fn accelerated_layers(&self) -> usize {
        self.packed.iter().flatten().count()
    }

    /// How many layers the AVX2 tier multiplies byte-wise (`vpmaddubsw`, twice the
    /// products per instruction of its 16-bit kernels): those whose weights cannot
    /// saturate a 16-bit pair sum, as 7-bit weights cannot. 0 for the other tiers.
    pub fn bytewise_layers(&self) -> usize {
        self.packed.iter().flatten().filter(|p| p.bytewise).count()
    }

    /// Heap bytes of the repacked layers (allocated once, by [`FastPlan::new`]).
    pub fn packed_bytes(&self) -> usize {
        self.packed
            .iter()
            .flatten()
            .map(|p| {
                p.weights.len()
                    + 4 * (p.bias.len() + p.multiplier.len() + p.offsets.len())
                    + 8 * (p.total_shift.len() + p.lanes.len())
                    + p.tiles
                        .as_ref()
                        .map_or(0, |t| t.weights.len() + 4 * t.starts.len())
            })
            .sum()
    }

    /// Bytes of arena [`FastPlan::classify`] needs: the plan's activations
    /// ([`Plan::arena_bytes`]) followed by the vector kernels' scratch memory.
    pub fn arena_bytes(&self) -> usize {
        self.plan.arena_bytes() + self.scratch_bytes
    }

    /// Classifies one image, as [`Plan::classify`], in `arena`: [`FastPlan::arena_bytes`]
    /// long, nothing is allocated; as long as [`Plan::arena_bytes`] (the size a caller of
    /// either plan may hold), the vector kernels run in a working memory of this thread's,
    /// allocated at its first such call and kept.
    pub fn classify(&self, pixels: &Image, arena: &mut [u8]) -> Result<Logits, EngineError> {
        if arena.len() >= self.plan.arena_bytes() && arena.len() < self.arena_bytes() {
            thread_local! {
                static SPARE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            return SPARE.with(|spare| {
                let mut spare = spare.borrow_mut();
                if spare.len() < self.arena_bytes() {
                    spare.resize(self.arena_bytes(), 0);
                }
                self.plan.run(pixels, &mut spare, self)
            });
        }
        self.plan.run(pixels, arena, self)
    }

    /// Bytes of arena [`FastPlan::classify_batch`] needs for `images` images: with AMX,
    /// which runs a batch layer by layer, one plan arena ([`Plan::arena_bytes`]) per
    /// image, on the other tiers one for all; then the kernels' scratch, which the images
    /// share (`usize::MAX` if that overflows).
    pub fn batch_arena_bytes(&self, images: usize) -> usize {
        self.plan
            .batch_arena_bytes(images, self.scratch_bytes, self.by_layer())
    }

    /// Classifies `logits.len()` images (784 pixels each, back to back in `pixels`) into
    /// `logits`, the same as [`FastPlan::classify`] one by one, bit for bit, with `arena`
    /// at least [`FastPlan::batch_arena_bytes`] long. On one thread, allocating nothing.
    ///
    /// With AMX the images go through the model layer by layer, all of them through one
    /// layer before the next, so that the tiles are set up once per layer for the whole
    /// batch (4-5% faster per image than one by one). The other tiers run one image
    /// after the other, which measured faster for them (by layer, a batch's activations
    /// leave L1 between layers: 10% slower with AVX-512).
    ///
    /// `pixels` of another length than 784 per logits slot gives
    /// [`EngineError::BadInput`], a short arena [`EngineError::ArenaTooSmall`]; `logits`
    /// is then left as it was.
    ///
    /// ```
    /// use fmnist_runtime::{FastPlan, Logits, Plan, IMAGE_PIXELS};
    ///
    /// let fast = FastPlan::new(Plan::new(include_bytes!("../../../models/edge.q8"))?);
    /// // Three images: black, white, black.
    /// let mut images = vec![0u8; 3 * IMAGE_PIXELS];
    /// images[IMAGE_PIXELS..2 * IMAGE_PIXELS].fill(255);
    /// let mut arena = vec![0u8; fast.batch_arena_bytes(3)];
    /// let mut logits = [Logits::default(); 3];
    /// fast.classify_batch(&images, &mut arena, &mut logits)?;
    /// assert_eq!(logits[0], logits[2]);
    /// assert_ne!(logits[0], logits[1]);
    /// // The same as one by one.
    /// let mut one = vec![0u8; fast.arena_bytes()];
    /// let white = images[IMAGE_PIXELS..2 * IMAGE_PIXELS].try_into()?;
    /// assert_eq!(logits[1], fast.classify(white, &mut one)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn classify_batch(
        &self,
        pixels: &[u8],
        arena: &mut [u8],
        logits: &mut [Logits],
    ) -> Result<(), EngineError> {
        self.plan
            .run_batch(pixels, arena, logits, self, self.by_layer())
    }

    /// Whether a batch runs layer by layer (AMX: the tile configuration is loaded once
    /// per layer for all the images), or image by image (the others: by layer, the
    /// batch's activations left L1, up to 10% slower).
    fn by_layer(&self) -> bool {
        self.isa == Isa::AmxInt8
    }

    /// Classifies many images (784 pixels each, back to back) on up to `threads` threads
    /// (0: as many as [`std::thread::available_parallelism`] reports), each with its own
    /// arena and a contiguous share of the images. The logits come back in image order,
    /// the same as [`FastPlan::classify`] gives one image at a time; an input whose length
    /// is not a multiple of 784 gives [`EngineError::BadInput`] for its last piece.
    ///
    /// Fewer than [`MIN_IMAGES_PER_THREAD`] images per thread run on fewer threads (a
    /// thread costs tens of microseconds to start, about one image's work).
    pub fn classify_all(&self, pixels: &[u8], threads: usize) -> Result<Vec<Logits>, EngineError> {
        let images = pixels.len().div_ceil(IMAGE_PIXELS);
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(images / MIN_IMAGES_PER_THREAD)
        .max(1);
        // Each thread's share in batches (`classify_batch`: faster with AMX), a partial
        // last image on its own (so that its error names its length).
        let run = |pixels: &[u8]| -> Result<Vec<Logits>, EngineError> {
            let (whole, rest) = pixels.split_at(pixels.len() / IMAGE_PIXELS * IMAGE_PIXELS);
            let mut arena = vec![0u8; self.batch_arena_bytes(BATCH)];
            let mut slots = [Logits::default(); BATCH];
            let mut logits = Vec::with_capacity(pixels.len().div_ceil(IMAGE_PIXELS));
            for batch in whole.chunks(BATCH * IMAGE_PIXELS) {
                let slots = &mut slots[..batch.len() / IMAGE_PIXELS];
                self.classify_batch(batch, &mut arena, slots)?;
                logits.extend_from_slice(slots);
            }
            if !rest.is_empty() {
                // Less than an image: refused as such (`BadInput`).
                logits.push(self.plan.run(rest, &mut arena, self)?);
            }
            Ok(logits)
        };
        if threads == 1 {
            return run(pixels);
        }
        let share = images.div_ceil(threads) * IMAGE_PIXELS;
        let parts: Vec<Result<Vec<Logits>, EngineError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = pixels
                .chunks(share)
                .map(|part| scope.spawn(move || run(part)))
                .collect();
            workers
                .into_iter()
                .map(|worker| match worker.join() {
                    Ok(result) => result,
                    // The kernels do not panic on any input Plan::new accepted; if one
                    // did, it is re-raised here as it would be on one thread.
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        });
        let mut logits = Vec::with_capacity(images);
        for part in parts {
            logits.extend(part?);
        }
        Ok(logits)
    }
}

/// The packed form of a layer the vector kernels run: convolutions and the logits layer
/// over u8 (ReLU) activations, with ReLU (or logits) outputs.
fn pack(step: &Step, layer: &Layer<'_>) -> Option<Packed> {
    if step.kind != Kind::U8 {
        return None;
    }
    let (weights, requant, taps, geometry) = match layer {
        Layer::Conv(conv) if conv.requant.output == Output::Relu => {
            let kernel = usize::from(conv.kernel);
            (
                conv.weights,
                &conv.requant,
                kernel * kernel * usize::from(conv.in_channels),
                Geometry::Conv {
                    input: step.input,
                    output: step.output,
                    kernel,
                    padding: usize::from(conv.padding),
                },
            )
        }
        Layer::Linear(linear) if linear.requant.output == Output::Logits => (
            linear.weights,
            &linear.requant,
            linear.inputs as usize,
            Geometry::Logits,
        ),
        _ => return None,
    };
    Some(Packed::new(weights, requant, taps, geometry))
}

impl Accelerator for FastPlan<'_> {
    fn scratch_bytes(&self) -> usize {
        self.scratch_bytes
    }

    fn conv(
        &self,
        index: usize,
        _: &Step,
        _: &QuantConv2d<'_>,
        input: &[u8],
        output: &mut [u8],
        scratch: &mut [u8],
    ) -> bool {
        let (Some(kernels), Some(Some(packed))) = (self.kernels(), self.packed.get(index)) else {
            return false;
        };
        let kernel = match kernels.conv_bytes {
            Some(bytes) if packed.bytewise => bytes,
            _ => kernels.conv,
        };
        // SAFETY: the tier's kernels are registered only for an ISA `with_isa` confirmed
        // (for AMX, `supported` asked the kernel for its state, and `begin_layer` loaded
        // this layer's tile configuration); `packed` was packed for it (its byte-wise form
        // only where `with_isa` checked that the weights' pairs fit); `scratch` is
        // `scratch_bytes` long, the most any layer needs.
        unsafe { kernel(packed, input, output, scratch) };
        true
    }

    fn logits(
        &self,
        index: usize,
        _: &Step,
        _: &QuantLinear<'_>,
        input: &[u8],
        logits: &mut [i32; CLASS_COUNT],
        scratch: &mut [u8],
    ) -> bool {
        let (Some(kernels), Some(Some(packed))) = (self.kernels(), self.packed.get(index)) else {
            return false;
        };
        let kernel = match kernels.logits_bytes {
            Some(bytes) if packed.bytewise => bytes,
            _ => kernels.logits,
        };
        // SAFETY: as in `conv`.
        unsafe { kernel(packed, input, logits, scratch) };
        true
    }

    fn begin_layer(&self, index: usize) {
        if self.tiled(index) {
            // SAFETY: AMX tiles exist only for an ISA `with_isa` confirmed.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                amx::configure()
            }
        }
    }

    fn end_layer(&self, index: usize) {
        if self.tiled(index) {
            // SAFETY: as in `begin_layer`.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                amx::release()
            }
        }
    }

    fn pooled(&self, index: usize) -> bool {
        matches!(self.packed.get(index), Some(Some(packed)) if packed.pool.is_some())
    }

    fn pool(&self, index: usize, _: &Step, _: u8, input: &[u8], output: &mut [u8]) -> bool {
        match (
            self.kernels(),
            self.plan.steps.get(index),
            self.plan.model.layers.get(index),
        ) {
            (Some(kernels), Some(step), Some(Layer::MaxPool { size })) => {
                // SAFETY: as in `conv`: the tier's ISA was confirmed.
                unsafe { (kernels.pool)(step.input, usize::from(*size), input, output) }
            }
            _ => false,
        }
    }
}

impl FastPlan<'_> {
    /// The kernels this plan's tier registered; `None` for the portable kernels.
    fn kernels(&self) -> Option<&'static Kernels> {
        #[cfg(target_arch = "x86_64")]
        return x86_64::TIERS.iter().copied().find(|k| k.isa == self.isa);
        #[cfg(not(target_arch = "x86_64"))]
        None
    }

    /// Whether layer `index` runs on AMX tiles.
    fn tiled(&self, index: usize) -> bool {
        self.isa == Isa::AmxInt8
            && matches!(self.packed.get(index), Some(Some(packed)) if packed.tiles.is_some())
    }
}

/// Bias and requantization of the logits from their raw dot products `sums`.
fn finish_logits(packed: &Packed, sums: &[i32; LANES], logits: &mut [i32; CLASS_COUNT]) {
    for (c, logit) in logits.iter_mut().enumerate() {
        *logit = super::kernels::requantize(
            sums[c].wrapping_add(packed.bias[c]),
            packed.multiplier[c],
            (packed.total_shift[c] - 31) as i32,
        );
    }
}
