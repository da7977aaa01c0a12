//! The C ABI: the header is the one cbindgen generates from the source, the static library
//! references no allocator and no libc I/O, and the C example and the Rust `no_std`
//! firmware example, built with the system's `cc`, agree with the engine on real images.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fmnist_runtime::capi::{
    fmnist_class_name, fmnist_classify, fmnist_classify_top, fmnist_load, fmnist_memory_size,
    fmnist_status_message, FmnistModel, FmnistPrediction, FmnistStatus,
};
use fmnist_runtime::dataset::{load_split, LabeledImages, Split, DEFAULT_DATA_DIR};
use fmnist_runtime::{Plan, CLASS_COUNT, IMAGE_PIXELS};

#[path = "common/cortex_m.rs"]
mod cortex_m;

const IMAGES: usize = 40;

/// The runtime crate's directory.
fn manifest_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime"))
}

fn shipped_blob() -> Vec<u8> {
    std::fs::read(manifest_dir().join("../models/edge.q8")).expect("models/edge.q8 is shipped")
}

fn test_images() -> &'static LabeledImages {
    static TEST: OnceLock<LabeledImages> = OnceLock::new();
    TEST.get_or_init(|| {
        let dir = std::env::var("FMNIST_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into());
        load_split(Path::new(&dir), Split::Test)
            .expect("run scripts/test.sh: it installs the dataset")
    })
}

#[test]
fn header_is_what_cbindgen_generates_from_the_source() {
    let config = cbindgen::Config::from_file(manifest_dir().join("cbindgen.toml"))
        .expect("cbindgen.toml reads");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(manifest_dir().join("src/capi.rs"))
        .generate()
        .expect("cbindgen parses src/capi.rs");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let header = manifest_dir().join("include/fmnist.h");
    if std::env::var_os("FMNIST_BLESS").is_some() {
        std::fs::write(&header, &generated).expect("include/fmnist.h is writable");
    }
    let checked_in = std::fs::read(&header).unwrap_or_default();
    assert!(
        checked_in == generated,
        "runtime/include/fmnist.h differs from src/capi.rs: \
         run `FMNIST_BLESS=1 cargo test --test capi` and commit the header"
    );
    let text = String::from_utf8(generated).expect("the header is UTF-8");
    for name in [
        "fmnist_load",
        "fmnist_classify_top",
        "FMNIST_STATUS_BAD_INPUT = 11",
    ] {
        assert!(text.contains(name), "{name} missing from the header");
    }
}

/// The status of each call, through the ABI exactly as C sees it.
#[test]
fn abi_checks_every_pointer_and_length() {
    let blob = shipped_blob();
    let mut needed = 0usize;
    let status = unsafe { fmnist_memory_size(blob.as_ptr(), blob.len(), &mut needed) };
    assert_eq!(status, FmnistStatus::Ok);
    let plan = Plan::new(&blob).unwrap();
    assert!(needed >= plan.arena_bytes() + std::mem::size_of::<FmnistModel>());

    let null_size = unsafe { fmnist_memory_size(std::ptr::null(), 10, &mut needed) };
    assert_eq!(null_size, FmnistStatus::NullPointer);
    let truncated = unsafe { fmnist_memory_size(blob.as_ptr(), blob.len() - 1, &mut needed) };
    assert_ne!(truncated, FmnistStatus::Ok);

    // Any alignment works; one byte less than needed is refused and leaves NULL.
    let mut memory = vec![0u8; needed + 1];
    let mut model: *mut FmnistModel = std::ptr::dangling_mut();
    let small = unsafe {
        fmnist_load(
            blob.as_ptr(),
            blob.len(),
            memory.as_mut_ptr().add(1),
            needed - 8,
            &mut model,
        )
    };
    assert_eq!(small, FmnistStatus::MemoryTooSmall);
    assert!(model.is_null());
    let loaded = unsafe {
        fmnist_load(
            blob.as_ptr(),
            blob.len(),
            memory.as_mut_ptr().add(1),
            needed,
            &mut model,
        )
    };
    assert_eq!(loaded, FmnistStatus::Ok);

    let test = test_images();
    let mut arena = vec![0u8; plan.arena_bytes()];
    let mut top = [FmnistPrediction {
        class_index: 99,
        probability: -1.0,
        logit: 0.0,
    }; CLASS_COUNT + 1];
    for i in 0..IMAGES {
        let pixels = test.image(i);
        let logits = plan.classify(pixels, &mut arena).unwrap();
        let status = unsafe {
            fmnist_classify_top(model, pixels.as_ptr(), IMAGE_PIXELS, top.as_mut_ptr(), 99)
        };
        assert_eq!(status, FmnistStatus::Ok);
        assert_eq!(top[0].class_index as usize, logits.class());
        assert_eq!(top[0].probability, logits.probabilities()[logits.class()]);
        assert!(top[..CLASS_COUNT]
            .windows(2)
            .all(|w| w[0].probability >= w[1].probability));
        let sum: f32 = top[..CLASS_COUNT].iter().map(|p| p.probability).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        assert_eq!(
            top[CLASS_COUNT].class_index, 99,
            "wrote past 10 predictions"
        );
    }

    let pixels = test.image(0);
    let short = unsafe { fmnist_classify(model, pixels.as_ptr(), 783, top.as_mut_ptr()) };
    assert_eq!(short, FmnistStatus::BadInput);
    let no_model =
        unsafe { fmnist_classify(std::ptr::null_mut(), pixels.as_ptr(), 784, top.as_mut_ptr()) };
    assert_eq!(no_model, FmnistStatus::NullPointer);
    let no_output = unsafe { fmnist_classify(model, pixels.as_ptr(), 784, std::ptr::null_mut()) };
    assert_eq!(no_output, FmnistStatus::NullPointer);

    let message = |s: i32| unsafe { std::ffi::CStr::from_ptr(fmnist_status_message(s)) };
    assert_eq!(
        message(11).to_str().unwrap(),
        "the image is not 784 bytes (28x28)"
    );
    assert_eq!(message(-3).to_str().unwrap(), "unknown status");
    assert_eq!(message(16).to_str().unwrap(), "unknown status");
    assert_eq!(
        message(FmnistStatus::OverLimit as i32).to_str().unwrap(),
        "the model needs more arena or work per image than the limits allow"
    );
    // One byte after the envelope: the engine's refusal, as C sees it.
    let mut longer = blob.clone();
    longer.push(0);
    let status = unsafe { fmnist_memory_size(longer.as_ptr(), longer.len(), &mut needed) };
    assert_eq!(status, FmnistStatus::TrailingBytes);
    let name = unsafe { std::ffi::CStr::from_ptr(fmnist_class_name(9)) };
    assert_eq!(name.to_str().unwrap(), "Ankle boot");
    assert!(fmnist_class_name(10).is_null());
}

/// Builds, once per test run, the static library for C (`libfmnist.a`) and the firmware
/// example, `no_std` with `panic = "abort"`, from their own workspace
/// (`runtime/firmware/`) into their own target directory (the outer `cargo test` holds
/// the main one).
fn firmware_builds() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target/ffi");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(&cargo)
            .current_dir(root)
            .args(["build", "--release", "--lib", "--example", "firmware"])
            .arg("--manifest-path")
            .arg(root.join("runtime/firmware/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build of runtime/firmware failed");
        (
            target.join("release/libfmnist.a"),
            target.join("release/examples/libfirmware.a"),
        )
    })
}

fn symbols(library: &Path) -> Vec<(String, String)> {
    let out = Command::new("nm")
        .arg("--format=posix")
        .arg(library)
        .output()
        .expect("nm (binutils) runs");
    assert!(out.status.success(), "nm {}", library.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        })
        .collect()
}

#[test]
fn static_libraries_reference_no_allocator_and_no_libc_io() {
    const FORBIDDEN: [&str; 16] = [
        "malloc",
        "calloc",
        "realloc",
        "free",
        "__rust_alloc",
        "__rust_dealloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rg_alloc",
        "printf",
        "fprintf",
        "sprintf",
        "snprintf",
        "puts",
        "fwrite",
        "write",
    ];
    let (library, firmware) = firmware_builds();
    for (path, exported) in [
        (library, "fmnist_classify_top"),
        (firmware, "firmware_main"),
    ] {
        let symbols = symbols(path);
        assert!(
            symbols
                .iter()
                .any(|(name, kind)| name == exported && kind == "T"),
            "{} does not define {exported}",
            path.display()
        );
        let bad: Vec<_> = symbols
            .iter()
            .filter(|(name, _)| FORBIDDEN.contains(&name.as_str()))
            .collect();
        assert!(bad.is_empty(), "{} references {bad:?}", path.display());
    }
}

/// `name[]` as a C array definition, as `xxd -i` writes one.
fn c_array(name: &str, bytes: &[u8]) -> String {
    let body: Vec<String> = bytes
        .chunks(24)
        .map(|row| {
            row.iter()
                .map(|b| format!("0x{b:02x},"))
                .collect::<String>()
        })
        .collect();
    format!(
        "static const uint8_t {name}[] = {{\n{}\n}};\nstatic const size_t {name}_len = {};\n",
        body.join("\n"),
        bytes.len()
    )
}

fn write_headers(dir: &Path, blob: &[u8]) {
    let test = test_images();
    std::fs::write(
        dir.join("edge_q8.h"),
        format!(
            "#include <stddef.h>\n#include <stdint.h>\n{}",
            c_array("edge_q8", blob)
        ),
    )
    .unwrap();
    let mut images = format!("#include <stddef.h>\n#include <stdint.h>\n#define IMAGE_COUNT {IMAGES}\nstatic const uint8_t images[IMAGE_COUNT][784] = {{\n");
    for i in 0..IMAGES {
        let row: String = test.image(i).iter().map(|b| format!("{b},")).collect();
        images.push_str(&format!("{{{row}}},\n"));
    }
    let labels: String = test.labels[..IMAGES]
        .iter()
        .map(|l| format!("{l},"))
        .collect();
    images.push_str(&format!(
        "}};\nstatic const uint8_t labels[IMAGE_COUNT] = {{{labels}}};\n"
    ));
    std::fs::write(dir.join("images.h"), images).unwrap();
}

fn compile_and_run(dir: &Path, source: &str, library: &Path) -> String {
    let program = dir.join(source.trim_end_matches(".c"));
    let status = Command::new("cc")
        .args(["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(manifest_dir().join("include"))
        .arg("-I")
        .arg(dir)
        .arg(manifest_dir().join("firmware/examples/c").join(source))
        .arg(library)
        .arg("-o")
        .arg(&program)
        .status()
        .expect("cc runs");
    assert!(status.success(), "cc {source} failed");
    let out = Command::new(&program).output().expect("the C program runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{source}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The shipped blob and the host engine's logits for the first [`IMAGES`] test images.
fn shipped_blob_and_logits() -> (Vec<u8>, Vec<fmnist_runtime::Logits>) {
    let blob = shipped_blob();
    let expected = {
        let plan = Plan::new(&blob).unwrap();
        let mut arena = vec![0u8; plan.arena_bytes()];
        let test = test_images();
        (0..IMAGES)
            .map(|i| plan.classify(test.image(i), &mut arena).unwrap())
            .collect()
    };
    (blob, expected)
}

#[test]
fn c_and_firmware_examples_agree_with_the_engine_on_every_image() {
    let (blob, expected) = shipped_blob_and_logits();

    let dir = tempfile::tempdir().unwrap();
    write_headers(dir.path(), &blob);
    let (library, firmware) = firmware_builds();

    let out = compile_and_run(dir.path(), "classify.c", library);
    check_c_example(&out, &blob, &expected);

    let out = compile_and_run(dir.path(), "firmware_host.c", firmware);
    let classes: Vec<String> = expected.iter().map(|l| l.class().to_string()).collect();
    let mut want = classes.join("\n");
    want.push_str(&format!("\nframes {IMAGES}\n"));
    assert_eq!(out, want);
}

/// The output of `classify.c` for the first [`IMAGES`] test images, whose logits on the
/// host engine are `expected`: the memory line, one line per image (class, name,
/// probability to 4 decimals, label), then the two error lines.
fn check_c_example(out: &str, blob: &[u8], expected: &[fmnist_runtime::Logits]) {
    let plan = Plan::new(blob).unwrap();
    let test = test_images();
    let mut lines = out.lines();
    let memory = lines.next().unwrap();
    println!("C example: {memory}");
    assert!(
        memory.ends_with(&format!("arena {}", plan.arena_bytes())),
        "{memory}"
    );
    for (i, logits) in expected.iter().enumerate() {
        let class = logits.class();
        let line = format!(
            "{i} {class} {} {:.4} {}",
            fmnist_runtime::CLASS_NAMES[class],
            logits.probabilities()[class],
            test.labels[i]
        );
        assert_eq!(lines.next(), Some(line.as_str()), "image {i}");
    }
    assert_eq!(
        lines.next(),
        Some("error 11 the image is not 784 bytes (28x28)")
    );
    let half = Plan::new(&blob[..blob.len() / 2]).unwrap_err();
    let code = FmnistStatus::from(half) as i32;
    let message = unsafe { std::ffi::CStr::from_ptr(fmnist_status_message(code)) };
    assert_eq!(
        lines.next(),
        Some(format!("error {code} {}", message.to_str().unwrap()).as_str())
    );
}

/// The same C program, compiled with `arm-none-eabi-gcc` against `libfmnist.a` built for
/// `thumbv7em-none-eabihf` (nothing but the C library and the start-up code linked
/// beside it), run on QEMU's Cortex-M4 and Cortex-M7 boards: the same output. The arena
/// is the DSP kernels' there, so the memory line is checked against the sizes the ARM
/// engine states, and every probability must print as on the host.
#[test]
fn c_example_on_an_emulated_m4_and_m7_prints_what_it_prints_on_the_host() {
    let (blob, expected) = shipped_blob_and_logits();
    let plan = Plan::new(&blob).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_headers(dir.path(), &blob);
    let library = cortex_m::arm_library();
    for board in [cortex_m::M4, cortex_m::M7] {
        let elf = dir.path().join(format!("classify-{}.elf", board.1));
        cortex_m::arm_gcc(
            board,
            &[manifest_dir().join("firmware/examples/c/classify.c")],
            &[manifest_dir().join("include"), dir.path().to_path_buf()],
            &[library],
            &elf,
        );
        let out = cortex_m::qemu(board, &elf, &["classify"]);
        // The ARM engine's arena holds the DSP kernels' columns too: the first line
        // states its own sizes; the rest is the host's output exactly.
        let (memory, rest) = out.split_once('\n').expect("output lines");
        let sizes: Vec<usize> = memory
            .split(' ')
            .filter_map(|field| field.parse().ok())
            .collect();
        assert!(
            memory.starts_with("memory ")
                && sizes.len() == 2
                && sizes[1] > plan.arena_bytes()
                && sizes[0] > sizes[1],
            "{}: {memory} (the host's arena: {})",
            board.0,
            plan.arena_bytes()
        );
        let host_memory = format!("memory 0 arena {}", plan.arena_bytes());
        check_c_example(&format!("{host_memory}\n{rest}"), &blob, &expected);
    }
}
