//! This core's ceiling: how many `vpdpbusd` (int8, 64 multiply-accumulates each) and
//! `vfmadd` (f32, 16 each) 512-bit instructions it retires per second, on 16 independent
//! accumulators (enough to hide their latency). benches/README.md states the GMAC/s every
//! path reaches against these.
//!
//! ```text
//! cargo bench --bench peak
//! ```

use std::time::Instant;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has AVX-512 F and VNNI.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn int8(iterations: u64) -> i32 {
        let mut acc = [_mm512_set1_epi32(1); 16];
        let x = std::hint::black_box(_mm512_set1_epi32(0x0101_0101));
        let w = std::hint::black_box(_mm512_set1_epi32(0x0101_0101));
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm512_dpbusd_epi32(*a, x, w);
            }
        }
        _mm512_reduce_add_epi32(
            acc.iter()
                .fold(_mm512_setzero_si512(), |s, &a| _mm512_add_epi32(s, a)),
        )
    }

    /// # Safety
    /// The CPU has AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn f32(iterations: u64) -> f32 {
        let mut acc = [_mm512_set1_ps(1.0); 16];
        let x = std::hint::black_box(_mm512_set1_ps(1.000_000_1));
        let w = std::hint::black_box(_mm512_set1_ps(0.999_999_9));
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, w);
            }
        }
        _mm512_reduce_add_ps(
            acc.iter()
                .fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a)),
        )
    }
}

fn rate(name: &str, macs_per_instruction: f64, run: impl Fn(u64) -> f64) {
    const ITERATIONS: u64 = 20_000_000;
    let best = (0..3)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(run(ITERATIONS));
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let instructions = ITERATIONS as f64 * 16.0 / best;
    println!(
        "{name}: {:.2} G instructions/s = {:.0} GMAC/s",
        instructions / 1e9,
        instructions * macs_per_instruction / 1e9
    );
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vnni") {
            // SAFETY: feature detected above.
            rate("vpdpbusd zmm (int8)", 64.0, |n| {
                f64::from(unsafe { x86::int8(n) })
            });
        } else {
            println!("vpdpbusd zmm (int8): no AVX-512 VNNI on this CPU");
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: feature detected above.
            rate("vfmadd231ps zmm (f32)", 16.0, |n| {
                f64::from(unsafe { x86::f32(n) })
            });
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    println!("the peak probe measures x86-64 only");
}
