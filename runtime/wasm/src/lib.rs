//! The int8 engine for WebAssembly hosts (browsers, Node): plain exported functions over
//! static buffers, no bindings generator. A host:
//!
//! 1. loads a model: `fmnist_load_shipped()` (the `edge` blob built in), or writes a blob
//!    into `fmnist_blob_buffer(len)` and calls `fmnist_load(len)`;
//! 2. writes 784 pixels (28x28, row-major, 0 = black background) at `fmnist_pixels()`, or
//!    any picture's RGBA pixels into `fmnist_rgba_buffer(width, height)` and calls
//!    `fmnist_prepare(width, height)`, which writes the 784 pixels as `runtime classify`
//!    makes them;
//! 3. calls `fmnist_classify()` and reads the integer logits at `fmnist_logits()`, the
//!    probabilities at `fmnist_probabilities()`.
//!
//! Functions that can fail return 0 or a negative status; `fmnist_message()` and
//! `fmnist_message_len()` then give the reason in UTF-8. `fmnist_info()` (and its `_len`)
//! describe the loaded model as JSON. `www/fmnist.js` wraps all this.

use std::cell::UnsafeCell;

use fmnist_runtime::engine::KERNELS;
use fmnist_runtime::preprocess::{self, Invert};
use fmnist_runtime::{Limits, Plan, CLASS_COUNT, IMAGE_PIXELS};

/// The `edge` model, built in.
static SHIPPED: &[u8] = include_bytes!("../../../models/edge.q8");

/// The largest blob accepted: 1 MiB (the shipped blobs are 26-99 KB).
const MAX_BLOB: usize = 1 << 20;

/// The engine's arena: 1 MiB (the shipped `edge` needs 24 KB with the SIMD kernels'
/// scratch); a blob that needs more is refused at load.
const MAX_ARENA: usize = 1 << 20;

/// The largest picture `fmnist_prepare` takes: 4096x4096 pixels, as `runtime classify`.
const MAX_PICTURE_PIXELS: usize = preprocess::MAX_PIXELS as usize;

/// A buffer of the module's single thread (`wasm32-unknown-unknown` without the atomics
/// feature has no other threads).
struct Static<T>(UnsafeCell<T>);

// SAFETY: the module runs on one thread; each exported function takes what it needs for
// its own duration and hands out only raw pointers, which the host uses between calls.
unsafe impl<T> Sync for Static<T> {}

impl<T> Static<T> {
    const fn new(value: T) -> Self {
        Static(UnsafeCell::new(value))
    }
    /// The value, for the duration of one exported call.
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut T {
        // SAFETY: one thread, and no exported function calls another or keeps the
        // reference past its return.
        unsafe { &mut *self.0.get() }
    }
}

/// The blob written by the host, and the engine's working memory: all zeros, so that
/// they take no room in the module (a static holding a `Vec` is written out whole).
static BLOB: Static<[u8; MAX_BLOB]> = Static::new([0; MAX_BLOB]);
static ARENA: Static<[u8; MAX_ARENA]> = Static::new([0; MAX_ARENA]);

struct State {
    pixels: [u8; IMAGE_PIXELS],
    logits: [i32; CLASS_COUNT],
    probabilities: [f32; CLASS_COUNT],
    /// The loaded model, over `blob` or [`SHIPPED`].
    plan: Option<Plan<'static>>,
    rgba: Vec<u8>,
    message: String,
    info: String,
}

static STATE: Static<State> = Static::new(State {
    pixels: [0; IMAGE_PIXELS],
    logits: [0; CLASS_COUNT],
    probabilities: [0.0; CLASS_COUNT],
    plan: None,
    rgba: Vec::new(),
    message: String::new(),
    info: String::new(),
});

/// Status codes.
const OK: i32 = 0;
const BAD_MODEL: i32 = -1;
const NO_MODEL: i32 = -2;
const TOO_LARGE: i32 = -3;
const FAILED: i32 = -4;

fn fail(state: &mut State, status: i32, message: String) -> i32 {
    state.message = message;
    status
}

/// A JSON string literal of `text`.
fn json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Validates `bytes` as the model to classify with.
fn load(state: &mut State, bytes: &'static [u8]) -> i32 {
    state.plan = None;
    let limits = Limits {
        max_arena_bytes: MAX_ARENA,
        ..Limits::DEFAULT
    };
    let plan = match Plan::with_limits(bytes, limits) {
        Ok(plan) => plan,
        Err(error) => {
            return fail(
                state,
                BAD_MODEL,
                format!("not a model this engine runs: {error}"),
            )
        }
    };
    if plan.arena_bytes() > MAX_ARENA {
        return fail(
            state,
            BAD_MODEL,
            format!(
                "the model needs {} bytes of arena, more than the {MAX_ARENA} here",
                plan.arena_bytes()
            ),
        );
    }
    let model = plan.model();
    let classes: Vec<String> = model.class_names.iter().map(|n| json(n)).collect();
    state.info = format!(
        "{{\"kind\":{},\"classes\":[{}],\"macs\":{},\"arena_bytes\":{},\"kernels\":{},\
         \"temperature\":{},\"bytes\":{}}}",
        json(model.kind),
        classes.join(","),
        model.macs,
        plan.arena_bytes(),
        json(KERNELS),
        model.temperature,
        bytes.len()
    );
    state.plan = Some(plan);
    OK
}

/// Loads the built-in `edge` model. Returns 0, or a negative status.
#[no_mangle]
pub extern "C" fn fmnist_load_shipped() -> i32 {
    load(STATE.get(), SHIPPED)
}

/// Where the host writes a blob of `len` bytes before [`fmnist_load`]; null when `len` is
/// over 1 MiB.
#[no_mangle]
pub extern "C" fn fmnist_blob_buffer(len: usize) -> *mut u8 {
    let state = STATE.get();
    if len > MAX_BLOB {
        return core::ptr::null_mut();
    }
    // The current model reads this buffer: it goes before the host writes.
    state.plan = None;
    BLOB.get().as_mut_ptr()
}

/// Loads the blob of `len` bytes written at [`fmnist_blob_buffer`]. Returns 0, or a
/// negative status (the message says why).
#[no_mangle]
pub extern "C" fn fmnist_load(len: usize) -> i32 {
    let state = STATE.get();
    if len > MAX_BLOB {
        return fail(
            state,
            TOO_LARGE,
            format!("{len} bytes, more than the {MAX_BLOB} accepted"),
        );
    }
    // SAFETY: `blob` lives as long as the module; it is written only through
    // `fmnist_blob_buffer`, which first drops the plan that reads it.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(BLOB.get().as_ptr(), len) };
    load(state, bytes)
}

/// The 784 pixels [`fmnist_classify`] reads.
#[no_mangle]
pub extern "C" fn fmnist_pixels() -> *mut u8 {
    STATE.get().pixels.as_mut_ptr()
}

/// Where the host writes a picture's RGBA pixels (`width` x `height` x 4 bytes, rows top
/// to bottom) before [`fmnist_prepare`]; null when the picture is empty or over 4096x4096
/// pixels.
#[no_mangle]
pub extern "C" fn fmnist_rgba_buffer(width: u32, height: u32) -> *mut u8 {
    let state = STATE.get();
    let pixels = width as usize * height as usize;
    if pixels == 0 || pixels > MAX_PICTURE_PIXELS {
        return core::ptr::null_mut();
    }
    state.rgba.clear();
    state.rgba.resize(pixels * 4, 0);
    state.rgba.as_mut_ptr()
}

/// Turns the RGBA picture at [`fmnist_rgba_buffer`] into the 784 pixels at
/// [`fmnist_pixels`], as `runtime classify` does any image: gray (transparency over
/// white), inverted when its border is mostly light, trimmed, its longest side scaled to
/// 28, centred. Returns 0, or a negative status.
#[no_mangle]
pub extern "C" fn fmnist_prepare(width: u32, height: u32) -> i32 {
    let state = STATE.get();
    let rgba = std::mem::take(&mut state.rgba);
    let Some(picture) = image::RgbaImage::from_raw(width, height, rgba) else {
        return fail(
            state,
            FAILED,
            "the RGBA buffer does not hold that picture".into(),
        );
    };
    let picture = image::DynamicImage::ImageRgba8(picture);
    state.pixels = preprocess::prepare(&picture, Invert::Auto);
    OK
}

/// Classifies the pixels at [`fmnist_pixels`] with the loaded model: returns the class
/// index (0-9), or a negative status. The logits and probabilities are then at
/// [`fmnist_logits`] and [`fmnist_probabilities`].
#[no_mangle]
pub extern "C" fn fmnist_classify() -> i32 {
    let state = STATE.get();
    let Some(plan) = &state.plan else {
        return fail(state, NO_MODEL, "no model is loaded".into());
    };
    match plan.classify(&state.pixels, ARENA.get()) {
        Ok(logits) => {
            state.logits = logits.values;
            state.probabilities = logits.probabilities();
            logits.class() as i32
        }
        Err(error) => fail(state, FAILED, format!("{error}")),
    }
}

/// The last classification's integer logits, in class order.
#[no_mangle]
pub extern "C" fn fmnist_logits() -> *const i32 {
    STATE.get().logits.as_ptr()
}

/// The last classification's calibrated probabilities, in class order.
#[no_mangle]
pub extern "C" fn fmnist_probabilities() -> *const f32 {
    STATE.get().probabilities.as_ptr()
}

/// The reason of the last failure (UTF-8, [`fmnist_message_len`] bytes).
#[no_mangle]
pub extern "C" fn fmnist_message() -> *const u8 {
    STATE.get().message.as_ptr()
}

/// See [`fmnist_message`].
#[no_mangle]
pub extern "C" fn fmnist_message_len() -> usize {
    STATE.get().message.len()
}

/// The loaded model as JSON (UTF-8, [`fmnist_info_len`] bytes): kind, class names,
/// multiply-accumulates per image, arena bytes, kernels, temperature, blob bytes.
#[no_mangle]
pub extern "C" fn fmnist_info() -> *const u8 {
    STATE.get().info.as_ptr()
}

/// See [`fmnist_info`].
#[no_mangle]
pub extern "C" fn fmnist_info_len() -> usize {
    STATE.get().info.len()
}
