//! Chooses the int8 kernels `Plan::classify` compiles to: on ARMv7E-M (Cortex-M4, M7;
//! `thumbv7em-*` targets, or any ARM target built with `-C target-feature=+dsp`, such as
//! a Cortex-M33 with the DSP extension) the DSP-extension kernels (`cfg(fmnist_dsp)`,
//! `engine::dsp`), on WebAssembly with SIMD (`+simd128`) the `simd128` kernels
//! (`cfg(fmnist_simd128)`, `engine::simd128`), elsewhere the portable ones. Stable Rust does not expose
//! `target_feature = "dsp"` to `cfg`, hence this script. `FMNIST_KERNELS=portable`
//! builds the portable kernels on any target (to measure them against the DSP ones).
use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fmnist_dsp)");
    println!("cargo::rustc-check-cfg=cfg(fmnist_simd128)");
    println!("cargo::rerun-if-env-changed=FMNIST_KERNELS");
    println!("cargo::rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap_or_default();
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let features: Vec<&str> = flags
        .split('\x1f')
        .flat_map(|flag| {
            flag.trim_start_matches("-C")
                .trim_start_matches("target-feature=")
                .split(',')
        })
        .collect();
    let dsp = arch == "arm"
        && !features.contains(&"-dsp")
        && (target.starts_with("thumbv7em") || features.contains(&"+dsp"));
    let portable = env::var("FMNIST_KERNELS").is_ok_and(|kernels| kernels == "portable");
    if dsp && !portable {
        println!("cargo::rustc-cfg=fmnist_dsp");
    }
    // WebAssembly built with `-C target-feature=+simd128`: `engine::simd128`.
    let simd128 = arch == "wasm32"
        && env::var("CARGO_CFG_TARGET_FEATURE")
            .is_ok_and(|features| features.split(',').any(|f| f == "simd128"));
    if simd128 && !portable {
        println!("cargo::rustc-cfg=fmnist_simd128");
    }
}
