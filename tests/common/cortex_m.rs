//! Building for Cortex-M and running on QEMU's MPS2 boards, for `tests/cortex_m.rs` and
//! `tests/capi.rs` (included by path). `scripts/test.sh` installs what these need:
//! the `thumbv7em-none-eabihf` target, `qemu-system-arm`, `gcc-arm-none-eabi` and
//! `libnewlib-arm-none-eabi`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The Rust target of Cortex-M4F and M7 firmware.
pub const TARGET: &str = "thumbv7em-none-eabihf";

/// The emulated boards: QEMU machine and CPU.
pub const M4: (&str, &str) = ("mps2-an386", "cortex-m4");
pub const M7: (&str, &str) = ("mps2-an500", "cortex-m7");

/// The workspace root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails the test with the one command that installs what is missing.
fn require(program: &str, package: &str) {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{program} is missing: run scripts/test.sh (it installs {package}) or apt-get install -y {package}"
    );
}

/// Builds are serialised: two cargo builds of one target directory would wait on each
/// other's lock anyway, and the machine has two cores.
fn build_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn cargo(dir: &Path) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    // The firmware crates' own `.cargo/config.toml` applies from their directory; the
    // outer `cargo test`'s settings must not leak into the inner build.
    command
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    command
}

/// The `classify` firmware of `runtime/firmware/cortex-m`, built once per test run for
/// `kernels` (`"dsp"` or `"portable"`, `FMNIST_KERNELS`), release profile.
pub fn firmware(kernels: &'static str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(&'static str, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    if let Some((_, path)) = built.lock().unwrap().iter().find(|(k, _)| *k == kernels) {
        return path.clone();
    }
    let _lock = build_lock();
    let target_dir = root().join(format!("target/cortex-m-{kernels}"));
    let status = cargo(&root().join("runtime/firmware/cortex-m"))
        .args(["build", "--release", "--bin", "classify", "--target-dir"])
        .arg(&target_dir)
        .env("FMNIST_KERNELS", kernels)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo build of runtime/firmware/cortex-m failed (is the {TARGET} target installed? \
         scripts/test.sh adds it)"
    );
    let elf = target_dir.join(format!("{TARGET}/release/classify"));
    built.lock().unwrap().push((kernels, elf.clone()));
    elf
}

/// `libfmnist.a` (the C ABI, `runtime/firmware`) built for [`TARGET`], once per run.
pub fn arm_library() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let _lock = build_lock();
        let target_dir = root().join("target/ffi-arm");
        let status = cargo(root())
            .args(["build", "--release", "--lib", "--target", TARGET])
            .arg("--manifest-path")
            .arg(root().join("runtime/firmware/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "cargo build of libfmnist.a for {TARGET} failed"
        );
        target_dir.join(format!("{TARGET}/release/libfmnist.a"))
    })
}

/// Compiles C sources for the board's core with newlib's semihosting C library, the
/// MPS2 start-up code and linker script, and `libraries`.
pub fn arm_gcc(
    board: (&str, &str),
    sources: &[PathBuf],
    includes: &[PathBuf],
    libraries: &[&Path],
    output: &Path,
) {
    require(
        "arm-none-eabi-gcc",
        "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    );
    let fpu = if board.1 == "cortex-m7" {
        "fpv5-d16"
    } else {
        "fpv4-sp-d16"
    };
    let c = root().join("runtime/firmware/cortex-m/c");
    let mut command = Command::new("arm-none-eabi-gcc");
    command
        .args(["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-mthumb"])
        .arg(format!("-mcpu={}", board.1))
        .arg(format!("-mfpu={fpu}"))
        .args(["-mfloat-abi=hard", "--specs=rdimon.specs"])
        .args(["-Wl,--gc-sections", "-Wl,--no-warn-execstack", "-T"])
        .arg(c.join("mps2.ld"));
    for include in includes {
        command.arg("-I").arg(include);
    }
    command.args(sources).arg(c.join("startup.c"));
    command.args(libraries).arg("-o").arg(output);
    let status = command.status().expect("arm-none-eabi-gcc runs");
    assert!(
        status.success(),
        "arm-none-eabi-gcc failed for {}",
        output.display()
    );
}

/// Runs `elf` on `board` under QEMU with semihosting (`args`: the program's command line,
/// its name first) and returns its standard output; the program must exit 0 within 10
/// minutes.
pub fn qemu(board: (&str, &str), elf: &Path, args: &[&str]) -> String {
    require("qemu-system-arm", "qemu-system-arm");
    let mut semihosting = String::from("enable=on,target=native");
    for arg in args {
        assert!(
            !arg.contains(','),
            "a QEMU argument cannot hold a comma: {arg}"
        );
        semihosting.push_str(",arg=");
        semihosting.push_str(arg);
    }
    let child = Command::new("qemu-system-arm")
        .args(["-machine", board.0, "-cpu", board.1, "-nographic"])
        .args(["-icount", "shift=0", "-semihosting-config"])
        .arg(&semihosting)
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-arm runs");
    // A firmware that hangs must fail the test, not the CI run; the output is read as it
    // comes (a full pipe would stall QEMU).
    let pid = child.id().to_string();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    let out = match receiver.recv_timeout(Duration::from_secs(600)) {
        Ok(out) => out.expect("qemu's output is read"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            panic!("{} on {} ran for 10 minutes", elf.display(), board.0);
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} on {} failed ({}): {stdout}{}",
        elf.display(),
        board.0,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
