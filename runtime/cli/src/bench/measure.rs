//! The timed calls: each thread's caller, warm-up and measured loop, the threads run
//! together, and the latencies they kept pooled into one set of figures.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use fmnist_runtime::onnx::OnnxClassifier;
use fmnist_runtime::{FastPlan, Logits};

use super::inputs::Pool;
use super::report::Latency;
use super::*;

/// The most latencies kept, all threads together (8 MiB).
const MAX_SAMPLES: usize = 1 << 20;
/// How often the progress bar is moved.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The nearest-rank percentile `p` (0 to 100) of `sorted` (ascending): the smallest value
/// that at least `p`% of the values are at most, `sorted[ceil(p * n / 100) - 1]`, the
/// first value for `p` = 0; `None` for no values. Always one of the values, never an
/// interpolation between two.
fn percentile(sorted: &[u64], p: u32) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let p = u128::from(p.min(100));
    let rank = (p * n as u128).div_ceil(100).max(1);
    Some(sorted[rank as usize - 1])
}

/// One thread's way to run a call.
enum Caller<'m> {
    /// An int8 plan of the thread's own, with its arena and logits allocated once.
    Int8 {
        plan: Box<FastPlan<'m>>,
        arena: Vec<u8>,
        logits: Vec<Logits>,
    },
    /// tract's plan, shared; each call spawns its own state.
    Onnx(&'m OnnxClassifier),
}

impl<'m> Caller<'m> {
    fn new(model: &'m Classifier<'m>, batch: usize) -> anyhow::Result<Caller<'m>> {
        Ok(match model {
            Classifier::Int8(plan) => {
                let arena_bytes = plan.batch_arena_bytes(batch);
                if arena_bytes == usize::MAX {
                    anyhow::bail!("a batch of {batch} needs more memory than can be addressed");
                }
                Caller::Int8 {
                    plan: plan.clone(),
                    arena: vec![0u8; arena_bytes],
                    logits: vec![Logits::default(); batch],
                }
            }
            Classifier::Onnx(onnx) => Caller::Onnx(onnx),
        })
    }

    /// Classifies `pixels` (one batch).
    fn call(&mut self, pixels: &[u8]) -> anyhow::Result<()> {
        match self {
            Caller::Int8 {
                plan,
                arena,
                logits,
            } => {
                plan.classify_batch(pixels, arena, logits)?;
                std::hint::black_box(&logits);
            }
            Caller::Onnx(onnx) => {
                std::hint::black_box(onnx.logits(pixels)?);
            }
        }
        Ok(())
    }
}

/// When a thread stops.
#[derive(Clone, Copy)]
pub(super) enum Until {
    /// After this long.
    Elapsed(Duration),
    /// After this many calls.
    Calls(u64),
}

/// When the measured run ends, how long each thread warms up first, and when each thread
/// stops (one for each thread).
pub(super) struct Schedule {
    pub(super) until: Until,
    pub(super) warmup: Until,
    pub(super) per_thread: Vec<Until>,
}

/// The latencies of one thread's calls.
struct Samples {
    /// Calls timed.
    count: u64,
    /// Their total, exact.
    total_ns: u128,
    min_ns: u64,
    max_ns: u64,
    /// Every latency, or a uniform sample of `cap` of them (reservoir sampling).
    kept: Vec<u64>,
    cap: usize,
    /// The reservoir's random state (xorshift64).
    random: u64,
}

impl Samples {
    fn new(cap: usize, seed: u64) -> Samples {
        Samples {
            count: 0,
            total_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            kept: Vec::new(),
            cap: cap.max(1),
            random: seed | 1,
        }
    }

    fn record(&mut self, ns: u64) {
        self.count += 1;
        self.total_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
        if self.kept.len() < self.cap {
            self.kept.push(ns);
        } else {
            // Algorithm R: the n-th latency replaces a kept one with probability cap / n.
            self.random ^= self.random << 13;
            self.random ^= self.random >> 7;
            self.random ^= self.random << 17;
            let slot = self.random % self.count;
            if let Some(kept) = self.kept.get_mut(slot as usize) {
                *kept = ns;
            }
        }
    }
}

/// What one thread measured.
struct Run {
    samples: Samples,
    warmup_calls: u64,
    warmup: Duration,
    started: Instant,
    ended: Instant,
}

/// What every thread shares.
struct Shared<'p> {
    pool: &'p Pool,
    warmup: Until,
    /// Each thread's latency cap.
    cap: usize,
    /// Every thread starts measuring together, after its warm-up.
    barrier: &'p Barrier,
    bar: &'p indicatif::ProgressBar,
}

/// One thread's warm-up and measured calls, starting at image `start` of the pool; the
/// first thread moves the progress bar.
fn run_thread(
    caller: &mut Caller<'_>,
    shared: &Shared<'_>,
    until: Until,
    start: usize,
    first: bool,
) -> anyhow::Result<Run> {
    let pool = shared.pool;
    let mut image = start;
    let warmup_started = Instant::now();
    let mut warmup_calls = 0u64;
    let warmed = loop {
        let done = match shared.warmup {
            Until::Elapsed(duration) => warmup_started.elapsed() >= duration,
            Until::Calls(calls) => warmup_calls >= calls,
        };
        if done {
            break Ok(());
        }
        if let Err(error) = caller.call(pool.batch(image)) {
            break Err(error);
        }
        image = pool.next(image);
        warmup_calls += 1;
    };
    let warmup = warmup_started.elapsed();
    // Every thread reaches the barrier, even one that failed, so that none waits forever.
    shared.barrier.wait();
    warmed?;
    let mut samples = Samples::new(shared.cap, 0x5851_f42d_4c95_7f2d ^ start as u64);
    let started = Instant::now();
    let mut moved = started;
    loop {
        if let Until::Calls(calls) = until {
            if samples.count >= calls {
                break;
            }
        }
        let pixels = pool.batch(image);
        let before = Instant::now();
        caller.call(pixels)?;
        let after = Instant::now();
        samples.record(u64::try_from((after - before).as_nanos()).unwrap_or(u64::MAX));
        image = pool.next(image);
        if let Until::Elapsed(duration) = until {
            if after - started >= duration {
                break;
            }
        }
        if first && after - moved >= PROGRESS_EVERY {
            moved = after;
            shared.bar.set_position(match until {
                Until::Elapsed(_) => (after - started).as_millis() as u64,
                Until::Calls(_) => samples.count,
            });
        }
    }
    let ended = Instant::now();
    Ok(Run {
        samples,
        warmup_calls,
        warmup,
        started,
        ended,
    })
}

/// Runs `schedule`'s threads on `pool` in batches of `batch`, each thread with a caller of
/// its own and starting at its own image, behind a progress bar: what they measured,
/// pooled, or the first error of a thread.
pub(super) fn measure(
    model: &Classifier<'_>,
    pool: &Pool,
    batch: usize,
    schedule: &Schedule,
) -> anyhow::Result<Measured> {
    let threads = schedule.per_thread.len();
    let per_thread = &schedule.per_thread;
    let bar = match schedule.until {
        Until::Elapsed(duration) => progress_bar(duration.as_millis() as usize),
        Until::Calls(_) => match per_thread[0] {
            Until::Calls(calls) => progress_bar(calls as usize),
            Until::Elapsed(_) => progress_bar(0),
        },
    };
    let barrier = Barrier::new(threads);
    let shared = Shared {
        pool,
        warmup: schedule.warmup,
        cap: MAX_SAMPLES / threads,
        barrier: &barrier,
        bar: &bar,
    };
    let mut callers = (0..threads)
        .map(|_| Caller::new(model, batch))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runs = run_threads(&mut callers, &shared, per_thread);
    bar.finish_and_clear();
    let runs = runs.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Measured::pool(&runs, batch))
}

/// Each caller's [`run_thread`] until its entry of `per_thread`, thread `t` of `n`
/// starting at image `t * images / n` of the pool.
fn run_threads(
    callers: &mut [Caller<'_>],
    shared: &Shared<'_>,
    per_thread: &[Until],
) -> Vec<anyhow::Result<Run>> {
    let threads = callers.len();
    let images = shared.pool.images;
    let starts: Vec<usize> = (0..threads).map(|t| t * images / threads).collect();
    if threads == 1 {
        // On the main thread, where a panic in tract is caught and reported as the other
        // commands report it.
        return vec![run_thread(&mut callers[0], shared, per_thread[0], 0, true)];
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = callers
            .iter_mut()
            .zip(per_thread.iter().zip(&starts))
            .enumerate()
            .map(|(t, (caller, (&until, &start)))| {
                scope.spawn(move || run_thread(caller, shared, until, start, t == 0))
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| match worker.join() {
                Ok(run) => run,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// What the threads measured, pooled.
pub(super) struct Measured {
    /// Calls timed, all threads together.
    pub(super) calls: u64,
    /// Images in those calls.
    pub(super) images: u64,
    pub(super) warmup_calls: u64,
    /// The longest thread's warm-up.
    pub(super) warmup_seconds: f64,
    /// From the first thread's start to the last thread's end.
    pub(super) seconds: f64,
    /// Latencies kept for the percentiles (every call's, or a uniform sample).
    pub(super) samples: usize,
    /// Per call: minimum, mean and maximum exact, percentiles of the latencies kept.
    pub(super) latency: Latency,
}

impl Measured {
    /// `runs` (at least one), pooled over the threads; calls of `batch` images.
    fn pool(runs: &[Run], batch: usize) -> Measured {
        let calls: u64 = runs.iter().map(|r| r.samples.count).sum();
        let warmup_seconds = runs
            .iter()
            .map(|r| r.warmup.as_secs_f64())
            .fold(0.0, f64::max);
        let started = runs.iter().map(|r| r.started).min().expect("a thread");
        let ended = runs.iter().map(|r| r.ended).max().expect("a thread");
        let mut kept: Vec<u64> = runs
            .iter()
            .flat_map(|r| r.samples.kept.iter().copied())
            .collect();
        kept.sort_unstable();
        let total_ns: u128 = runs.iter().map(|r| r.samples.total_ns).sum();
        let us = |ns: u64| ns as f64 / 1e3;
        let at = |p| us(percentile(&kept, p).unwrap_or(0));
        let latency = Latency {
            min: us(runs.iter().map(|r| r.samples.min_ns).min().unwrap_or(0)),
            mean: total_ns as f64 / calls.max(1) as f64 / 1e3,
            p50: at(50),
            p90: at(90),
            p99: at(99),
            max: us(runs.iter().map(|r| r.samples.max_ns).max().unwrap_or(0)),
        };
        Measured {
            calls,
            images: calls * batch as u64,
            warmup_calls: runs.iter().map(|r| r.warmup_calls).sum(),
            warmup_seconds,
            seconds: (ended - started).as_secs_f64(),
            samples: kept.len(),
            latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 0), Some(7));
        assert_eq!(percentile(&[7], 99), Some(7));
        let ten: Vec<u64> = (1..=10).collect();
        // ceil(p * 10 / 100)-th value.
        assert_eq!(percentile(&ten, 0), Some(1));
        assert_eq!(percentile(&ten, 10), Some(1));
        assert_eq!(percentile(&ten, 11), Some(2));
        assert_eq!(percentile(&ten, 50), Some(5));
        assert_eq!(percentile(&ten, 90), Some(9));
        assert_eq!(percentile(&ten, 91), Some(10));
        assert_eq!(percentile(&ten, 100), Some(10));
        // Never an interpolation, and exact where floating point would round up.
        let hundred: Vec<u64> = (1..=100).map(|v| v * 10).collect();
        assert_eq!(percentile(&hundred, 99), Some(990));
        assert_eq!(percentile(&hundred, 50), Some(500));
        let four = [10, 20, 30, 40];
        assert_eq!(percentile(&four, 50), Some(20));
        assert_eq!(percentile(&four, 51), Some(30));
        assert_eq!(percentile(&four, 150), Some(40));
    }

    #[test]
    fn the_reservoir_keeps_at_most_its_cap_and_exact_extremes() {
        let mut samples = Samples::new(100, 42);
        for ns in 1..=10_000u64 {
            samples.record(ns);
        }
        assert_eq!(samples.count, 10_000);
        assert_eq!(samples.kept.len(), 100);
        assert_eq!((samples.min_ns, samples.max_ns), (1, 10_000));
        assert_eq!(samples.total_ns, 10_000 * 10_001 / 2);
        // A uniform sample: its median is near the middle.
        let mut kept = samples.kept.clone();
        kept.sort_unstable();
        let median = percentile(&kept, 50).unwrap();
        assert!((2_500..=7_500).contains(&median), "{median}");
    }
}
