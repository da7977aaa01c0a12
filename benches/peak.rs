//! This core's ceiling: how many `vpdpbusd` (int8, 64 multiply-accumulates each) and
//! `vfmadd` (f32, 16 each) 512-bit instructions it retires per second, on 16 independent
//! accumulators (enough to hide their latency). benches/README.md states the GMAC/s every
//! path reaches against these.
//!
//! With AMX-INT8 it times `tdpbusd` on resident tiles and in the engine's pass (tile
//! loads included).
//!
//! On AVX2 cores it also measures the clock (a chain of dependent adds) and the steps an
//! int8 kernel can be built from: `vpmaddwd` + `vpaddd` (exact for any i8 weights: the
//! engine's AVX2 tier) and `vpmaddubsw` + `vpmaddwd` + `vpaddd` (the byte-wise step, whose
//! 16-bit pair sums saturate unless the weights are kept to 7 bits, as oneDNN does on
//! AVX2), each on 12 independent accumulators, in inline assembly so that nothing is
//! hoisted.
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

/// The AVX2 probes: each runs its step `iterations` times on 12 accumulators.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::asm;

    /// 12 dependent scalar adds per iteration: 12 cycles.
    pub fn clock(iterations: u64) {
        // SAFETY: register arithmetic only.
        unsafe {
            asm!(
                "2:",
                "add {a}, 1", "add {a}, 1", "add {a}, 1", "add {a}, 1",
                "add {a}, 1", "add {a}, 1", "add {a}, 1", "add {a}, 1",
                "add {a}, 1", "add {a}, 1", "add {a}, 1", "add {a}, 1",
                "dec {n}", "jnz 2b",
                n = inout(reg) iterations => _, a = inout(reg) 0u64 => _,
                options(nostack, nomem),
            );
        }
    }

    macro_rules! step {
        ($name:ident, $($line:literal),+) => {
            /// # Safety
            /// The CPU has AVX2.
            pub unsafe fn $name(iterations: u64) {
                // SAFETY: register arithmetic only, on AVX2 registers the caller has.
                unsafe {
                    asm!(
                        "vpcmpeqw ymm12, ymm12, ymm12", "vpcmpeqw ymm13, ymm13, ymm13",
                        "vpcmpeqw ymm14, ymm14, ymm14",
                        "2:",
                        $($line),+,
                        "dec {n}", "jnz 2b",
                        n = inout(reg) iterations => _,
                        out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                        out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                        out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                        out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                        options(nostack, nomem),
                    );
                }
            }
        };
    }

    // 16 multiply-accumulates per pair (8 lanes x 2 products).
    step!(
        exact,
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm0, ymm0, ymm15",
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm1, ymm1, ymm15",
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm2, ymm2, ymm15",
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm3, ymm3, ymm15",
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm4, ymm4, ymm15",
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm5, ymm5, ymm15",
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm6, ymm6, ymm15",
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm7, ymm7, ymm15",
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm8, ymm8, ymm15",
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm9, ymm9, ymm15",
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm10, ymm10, ymm15",
        "vpmaddwd ymm15, ymm12, ymm13",
        "vpaddd ymm11, ymm11, ymm15"
    );

    // 32 multiply-accumulates per triple (32 byte products).
    step!(
        bytewise,
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm0, ymm0, ymm15",
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm1, ymm1, ymm15",
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm2, ymm2, ymm15",
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm3, ymm3, ymm15",
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm4, ymm4, ymm15",
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm5, ymm5, ymm15",
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm6, ymm6, ymm15",
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm7, ymm7, ymm15",
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm8, ymm8, ymm15",
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm9, ymm9, ymm15",
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm10, ymm10, ymm15",
        "vpmaddubsw ymm15, ymm12, ymm13",
        "vpmaddwd ymm15, ymm15, ymm14",
        "vpaddd ymm11, ymm11, ymm15"
    );
}

/// The AMX probes (inline assembly: Rust has no stable AMX intrinsics), with every tile
/// configured as 16 rows of 64 bytes: `tdpbusd` (16 x 16 x 64 = 16,384 multiply-
/// accumulates) on 4 accumulator tiles with resident operands, and the engine's pass,
/// which loads two pixel tiles and two weight tiles (from L1) per 4 products.
#[cfg(target_arch = "x86_64")]
mod amx {
    use std::arch::asm;

    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    #[repr(C, align(64))]
    pub struct Operands(pub [u8; 8192]);

    /// # Safety
    /// The CPU has AMX-INT8 and the process may use it (`Isa::AmxInt8.supported()`).
    pub unsafe fn configure() {
        let mut config = [0u8; 64];
        config[0] = 1;
        for t in 0..8 {
            config[16 + 2 * t] = 64;
            config[48 + t] = 16;
        }
        let config = TileConfig(config);
        // SAFETY: a valid palette-1 configuration.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly)) };
    }

    /// # Safety
    /// As `configure`, which ran on this thread.
    pub unsafe fn resident(iterations: u64) {
        for _ in 0..iterations {
            // SAFETY: tile registers only.
            unsafe {
                asm!(
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm4, tmm7",
                    "tdpbusd tmm2, tmm5, tmm6",
                    "tdpbusd tmm3, tmm5, tmm7",
                    options(nostack, nomem)
                )
            };
        }
    }

    /// # Safety
    /// As `configure`, which ran on this thread.
    pub unsafe fn with_loads(iterations: u64, operands: &Operands) {
        let at = operands.0.as_ptr();
        for i in 0..iterations as usize {
            let k = (i % 2) * 4096;
            // SAFETY: four 1,024-byte tiles within the 8,192 bytes of `operands`.
            unsafe {
                asm!(
                    "tileloadd tmm4, [{a} + {s}*1]",
                    "tileloadd tmm5, [{b} + {s}*1]",
                    "tileloadd tmm6, [{c} + {s}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm2, tmm5, tmm6",
                    "tileloadd tmm7, [{d} + {s}*1]",
                    "tdpbusd tmm1, tmm4, tmm7",
                    "tdpbusd tmm3, tmm5, tmm7",
                    a = in(reg) at.add(k),
                    b = in(reg) at.add(k + 1024),
                    c = in(reg) at.add(k + 2048),
                    d = in(reg) at.add(k + 3072),
                    s = in(reg) 64usize,
                    options(nostack, readonly)
                )
            };
        }
    }
}

/// Seconds per call of `run(iterations)`: the best of many short runs, so that a busy
/// machine's other processes are left out.
fn best_seconds(iterations: u64, run: impl Fn(u64)) -> f64 {
    (0..400)
        .map(|_| {
            let started = Instant::now();
            run(iterations);
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[cfg(target_arch = "x86_64")]
fn avx2_steps() {
    const ITERATIONS: u64 = 100_000;
    let clock = 12.0 * ITERATIONS as f64 / best_seconds(ITERATIONS, avx2::clock);
    println!("clock (dependent adds): {:.2} GHz", clock / 1e9);
    for (name, macs, run) in [
        (
            "vpmaddwd + vpaddd ymm (exact int8, the AVX2 tier)",
            16.0,
            avx2::exact as unsafe fn(u64),
        ),
        (
            "vpmaddubsw + vpmaddwd + vpaddd ymm (7-bit weights)",
            32.0,
            avx2::bytewise,
        ),
    ] {
        // SAFETY: the caller checked AVX2.
        let seconds = best_seconds(ITERATIONS, |n| unsafe { run(n) });
        let steps = 12.0 * ITERATIONS as f64 / seconds;
        println!(
            "{name}: {:.2} steps per cycle = {:.1} MAC per cycle = {:.0} GMAC/s",
            steps / clock,
            steps * macs / clock,
            steps * macs / 1e9
        );
    }
}

#[cfg(target_arch = "x86_64")]
fn amx_steps() {
    const ITERATIONS: u64 = 2_000;
    let operands = amx::Operands([1; 8192]);
    // SAFETY: the caller checked that the process may use AMX.
    unsafe { amx::configure() };
    for (name, seconds) in [
        (
            "tdpbusd, resident tiles",
            // SAFETY: configured above, on this thread.
            best_seconds(ITERATIONS, |n| unsafe { amx::resident(n) }),
        ),
        (
            "tdpbusd, the engine's pass (1 tile load per product)",
            // SAFETY: as above.
            best_seconds(ITERATIONS, |n| unsafe { amx::with_loads(n, &operands) }),
        ),
    ] {
        let products = 4.0 * ITERATIONS as f64 / seconds;
        println!(
            "{name}: {:.1} ns per tdpbusd = {:.0} GMAC/s",
            1e9 / products,
            products * 16_384.0 / 1e9
        );
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
        if std::arch::is_x86_feature_detected!("avx2") {
            avx2_steps();
        }
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
        if fmnist_runtime::Isa::AmxInt8.supported() {
            amx_steps();
        } else {
            println!("tdpbusd (AMX-INT8): not on this CPU, or not allowed by the system");
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    println!("the peak probe measures x86-64 only");
}
