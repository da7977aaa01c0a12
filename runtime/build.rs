//! Chooses the int8 kernels `Plan::classify` compiles to: on ARMv7E-M (Cortex-M4, M7;
//! `thumbv7em-*` targets, or any ARM target built with `-C target-feature=+dsp`, such as
//! a Cortex-M33 with the DSP extension) the DSP-extension kernels (`cfg(fmnist_dsp)`,
//! `engine::dsp`), elsewhere the portable ones. Stable Rust does not expose
//! `target_feature = "dsp"` to `cfg`, hence this script. `FMNIST_KERNELS=portable`
//! builds the portable kernels on any target (to measure them against the DSP ones).
use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fmnist_dsp)");
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
}
