//! The C ABI over the int8 engine (feature `capi`), for firmware written in C.
//!
//! Everything lives in memory the caller owns: [`fmnist_memory_size`] says how many bytes a
//! blob needs, [`fmnist_load`] validates the blob and places the model handle and its
//! activation arena in that memory, [`fmnist_classify`] runs one image. Nothing allocates,
//! nothing reads outside the pointers and lengths it is given, and no Rust panic can cross
//! the boundary (the static library is built with `panic = "abort"`, and the engine
//! validates a blob completely before it runs it).
//!
//! `include/fmnist.h` is generated from this file by cbindgen; a test keeps it in sync.

use core::ffi::c_char;
use core::mem::{align_of, size_of};
use core::ptr;
use core::slice;

use crate::classes::CLASS_COUNT;
use crate::engine::{BlobError, EngineError, Logits, Plan};

/// Pixels in one image: 28 x 28 bytes, row-major, 0 = black background (the dataset's
/// convention).
pub const FMNIST_IMAGE_PIXELS: usize = 784;
/// Number of classes.
pub const FMNIST_CLASS_COUNT: usize = 10;

/// What a call did. `FMNIST_STATUS_OK` is 0; every other value is an error that
/// [`fmnist_status_message`] describes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FmnistStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullPointer = 1,
    /// The blob is not an int8 model blob (too short, or malformed).
    NotABlob = 2,
    /// The blob's magic bytes are not `FMQ8`.
    BadMagic = 3,
    /// The blob's format version is one this library does not read.
    UnsupportedVersion = 4,
    /// The blob's CRC-32 does not match: it is corrupt.
    BadChecksum = 5,
    /// The blob's model description does not decode.
    BadPayload = 6,
    /// A layer of the blob is inconsistent (shapes, tensor lengths, values out of range).
    BadLayer = 7,
    /// The model does not end in 10 logits.
    NoLogits = 8,
    /// The arena size the blob states is not the one its layers need.
    ArenaMismatch = 9,
    /// The memory given to `fmnist_load` is smaller than `fmnist_memory_size` says.
    MemoryTooSmall = 10,
    /// The image is not 784 bytes.
    BadInput = 11,
    /// Bytes follow the blob's envelope, or the model description inside it.
    TrailingBytes = 12,
    /// The blob's `logit_scale` or `input_scale` is not a finite positive number (or is so
    /// large that logits would not be finite), or its `temperature` is not from 0.01 to 100.
    BadScale = 13,
    /// The model needs more arena than 16 MiB or more than 2x10^8 multiply-accumulates per
    /// image (the engine's default limits).
    OverLimit = 14,
    /// The multiply-accumulates per image the blob states are not those of its layers.
    MacsMismatch = 15,
}

/// Message of each status, NUL-terminated, in status order.
const MESSAGES: [&str; 16] = [
    "ok\0",
    "a required pointer argument is NULL\0",
    "the blob is truncated or corrupt: its envelope does not decode\0",
    "bad magic bytes, expected \"FMQ8\"\0",
    "unsupported blob format version\0",
    "checksum mismatch: the blob is corrupt\0",
    "the model description does not decode\0",
    "a layer of the model is inconsistent\0",
    "the model does not end in 10 logits\0",
    "the arena size the blob states is not the one its layers need\0",
    "the memory given is smaller than fmnist_memory_size says\0",
    "the image is not 784 bytes (28x28)\0",
    "unexpected bytes after the blob's envelope or model description\0",
    "the blob's logit scale, input scale or temperature is not a usable number\0",
    "the model needs more arena or work per image than the limits allow\0",
    "the multiply-accumulate count the blob states is not the one its layers do\0",
];

/// Class names in label order, NUL-terminated.
const CLASS_NAMES_C: [&str; CLASS_COUNT] = [
    "T-shirt/top\0",
    "Trouser\0",
    "Pullover\0",
    "Dress\0",
    "Coat\0",
    "Sandal\0",
    "Shirt\0",
    "Sneaker\0",
    "Bag\0",
    "Ankle boot\0",
];

impl From<BlobError> for FmnistStatus {
    fn from(error: BlobError) -> FmnistStatus {
        match error {
            BlobError::NotABlob => FmnistStatus::NotABlob,
            BlobError::BadMagic(_) => FmnistStatus::BadMagic,
            BlobError::UnsupportedVersion(_) => FmnistStatus::UnsupportedVersion,
            BlobError::BadChecksum { .. } => FmnistStatus::BadChecksum,
            BlobError::BadPayload => FmnistStatus::BadPayload,
            BlobError::BadLayer { .. } => FmnistStatus::BadLayer,
            BlobError::NoLogits => FmnistStatus::NoLogits,
            BlobError::ArenaMismatch { .. } => FmnistStatus::ArenaMismatch,
            BlobError::TrailingBytes { .. } => FmnistStatus::TrailingBytes,
            BlobError::BadScale { .. } => FmnistStatus::BadScale,
            BlobError::OverLimit { .. } => FmnistStatus::OverLimit,
            BlobError::MacsMismatch { .. } => FmnistStatus::MacsMismatch,
        }
    }
}

impl From<EngineError> for FmnistStatus {
    fn from(error: EngineError) -> FmnistStatus {
        match error {
            EngineError::ArenaTooSmall { .. } => FmnistStatus::MemoryTooSmall,
            EngineError::BadInput { .. } => FmnistStatus::BadInput,
        }
    }
}

/// One class of a prediction.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FmnistPrediction {
    /// Class index, 0..=9 (see `fmnist_class_name`).
    pub class_index: u32,
    /// Softmax probability of the class, 0..=1, calibrated with the blob's temperature
    /// (`softmax(logit / temperature)`).
    pub probability: f32,
    /// The class's logit, dequantized.
    pub logit: f32,
}

/// A loaded model: lives at the start of the caller's memory, followed by its arena.
/// Opaque to C.
///
/// NOT THREAD-SAFE: a handle holds its activation arena, which every classify call
/// overwrites. Two threads classifying with one handle at the same time get wrong answers
/// silently (no error is possible to detect it). Give each thread its own handle: call
/// `fmnist_load` once per thread, each with its own memory (the blob may be shared).
pub struct FmnistModel {
    plan: Plan<'static>,
    arena: *mut u8,
    arena_len: usize,
}

/// Bytes from `address` to the next multiple of the handle's alignment.
fn padding(address: usize) -> usize {
    address.wrapping_neg() % align_of::<FmnistModel>()
}

/// The blob as a slice, or the status that refuses it.
///
/// # Safety
/// `blob` must point to `len` readable bytes that outlive the returned slice.
unsafe fn blob_slice<'a>(blob: *const u8, len: usize) -> Result<&'a [u8], FmnistStatus> {
    if blob.is_null() {
        return Err(FmnistStatus::NullPointer);
    }
    // SAFETY: non-null, and the caller promises `len` readable bytes.
    Ok(unsafe { slice::from_raw_parts(blob, len) })
}

fn status<T>(result: Result<T, FmnistStatus>) -> FmnistStatus {
    match result {
        Ok(_) => FmnistStatus::Ok,
        Err(status) => status,
    }
}

/// Validates a blob and writes to `*bytes` the memory `fmnist_load` needs for it: the
/// model handle, alignment slack and the activation arena.
///
/// # Safety
/// `blob` must point to `blob_len` readable bytes; `bytes` must be writable.
#[no_mangle]
pub unsafe extern "C" fn fmnist_memory_size(
    blob: *const u8,
    blob_len: usize,
    bytes: *mut usize,
) -> FmnistStatus {
    status((|| {
        if bytes.is_null() {
            return Err(FmnistStatus::NullPointer);
        }
        // SAFETY: the caller's promise.
        let plan = Plan::new(unsafe { blob_slice(blob, blob_len)? })?;
        let needed = size_of::<FmnistModel>() + align_of::<FmnistModel>() - 1 + plan.arena_bytes();
        // SAFETY: non-null and writable by the caller's promise.
        unsafe { bytes.write(needed) };
        Ok(())
    })())
}

/// Validates a blob and sets `*model` to a handle placed in `memory`, which must be at
/// least `fmnist_memory_size` bytes (any alignment). On error `*model` is set to NULL.
/// The handle serves one thread at a time (see `FmnistModel`): one `fmnist_load` per
/// thread, each with its own memory.
///
/// # Safety
/// `blob` must point to `blob_len` readable bytes and `memory` to `memory_len` writable
/// bytes, both unchanged and alive for as long as the handle is used; `model` must be
/// writable.
#[no_mangle]
pub unsafe extern "C" fn fmnist_load(
    blob: *const u8,
    blob_len: usize,
    memory: *mut u8,
    memory_len: usize,
    model: *mut *mut FmnistModel,
) -> FmnistStatus {
    if model.is_null() {
        return FmnistStatus::NullPointer;
    }
    // SAFETY: non-null and writable by the caller's promise.
    unsafe { model.write(ptr::null_mut()) };
    status((|| {
        if memory.is_null() {
            return Err(FmnistStatus::NullPointer);
        }
        // SAFETY: the caller promises the blob outlives every use of the handle.
        let plan = Plan::new(unsafe { blob_slice(blob, blob_len)? })?;
        let skip = padding(memory as usize);
        let arena_len = plan.arena_bytes();
        let needed = skip + size_of::<FmnistModel>() + arena_len;
        if memory_len < needed {
            return Err(FmnistStatus::MemoryTooSmall);
        }
        // SAFETY: `skip + size_of` bytes fit in `memory` (checked above), the address is
        // aligned for `FmnistModel`, and the arena that follows ends within `memory_len`.
        unsafe {
            let handle = memory.add(skip).cast::<FmnistModel>();
            handle.write(FmnistModel {
                plan,
                arena: memory.add(skip + size_of::<FmnistModel>()),
                arena_len,
            });
            model.write(handle);
        }
        Ok(())
    })())
}

/// Bytes of activation arena the loaded model uses (part of `fmnist_memory_size`), or 0
/// for a NULL handle.
///
/// # Safety
/// `model` must be NULL or a handle from `fmnist_load` whose memory is still valid.
#[no_mangle]
pub unsafe extern "C" fn fmnist_arena_size(model: *const FmnistModel) -> usize {
    // SAFETY: the caller's promise.
    unsafe { model.as_ref() }.map_or(0, |m| m.arena_len)
}

/// Runs the model on one image and returns its logits.
///
/// # Safety
/// As `fmnist_classify`.
unsafe fn run(
    model: *mut FmnistModel,
    pixels: *const u8,
    pixels_len: usize,
) -> Result<Logits, FmnistStatus> {
    // SAFETY: the caller's promise: NULL or a live handle, used by one thread at a time.
    let model = unsafe { model.as_mut() }.ok_or(FmnistStatus::NullPointer)?;
    // SAFETY: the caller's promise.
    let pixels = unsafe { blob_slice(pixels, pixels_len)? };
    let pixels: &crate::Image = pixels
        .try_into()
        .map_err(|_| EngineError::BadInput { given: pixels_len })?;
    // SAFETY: `fmnist_load` reserved `arena_len` bytes at `arena` inside the caller's
    // memory, which nothing else borrows while `model` is borrowed mutably.
    let arena = unsafe { slice::from_raw_parts_mut(model.arena, model.arena_len) };
    Ok(model.plan.classify(pixels, arena)?)
}

fn prediction(
    logits: &Logits,
    probabilities: &[f32; CLASS_COUNT],
    class: usize,
) -> FmnistPrediction {
    FmnistPrediction {
        class_index: class as u32,
        probability: probabilities[class],
        logit: logits.real()[class],
    }
}

/// Classifies one image (784 bytes, see `FMNIST_IMAGE_PIXELS`) and writes the best class
/// to `*best`.
///
/// # Safety
/// `model` must be a handle from `fmnist_load` (not used by another thread meanwhile),
/// `pixels` must point to `pixels_len` readable bytes and `best` must be writable.
#[no_mangle]
pub unsafe extern "C" fn fmnist_classify(
    model: *mut FmnistModel,
    pixels: *const u8,
    pixels_len: usize,
    best: *mut FmnistPrediction,
) -> FmnistStatus {
    // SAFETY: the caller's promise; `top` writes one element.
    unsafe { fmnist_classify_top(model, pixels, pixels_len, best, 1) }
}

/// Classifies one image and writes the `k` most likely classes, best first, to
/// `top[0..k]` (`k` is capped at 10; equal scores keep class order).
///
/// # Safety
/// As `fmnist_classify`, and `top` must have room for `min(k, 10)` predictions.
#[no_mangle]
pub unsafe extern "C" fn fmnist_classify_top(
    model: *mut FmnistModel,
    pixels: *const u8,
    pixels_len: usize,
    top: *mut FmnistPrediction,
    k: usize,
) -> FmnistStatus {
    status((|| {
        if top.is_null() {
            return Err(FmnistStatus::NullPointer);
        }
        // SAFETY: the caller's promise.
        let logits = unsafe { run(model, pixels, pixels_len)? };
        let probabilities = logits.probabilities();
        for (i, &(class, _)) in logits.top::<CLASS_COUNT>().iter().take(k).enumerate() {
            // SAFETY: `i < min(k, 10)`, which the caller promises `top` holds.
            unsafe { top.add(i).write(prediction(&logits, &probabilities, class)) };
        }
        Ok(())
    })())
}

/// A NUL-terminated English message for a status value (any value: unknown ones get a
/// message too). The string is static.
#[no_mangle]
pub extern "C" fn fmnist_status_message(status: i32) -> *const c_char {
    usize::try_from(status)
        .ok()
        .and_then(|i| MESSAGES.get(i))
        .map_or(c"unknown status".as_ptr(), |m| m.as_ptr().cast())
}

/// The NUL-terminated name of class `class_index` ("T-shirt/top" ... "Ankle boot"), or
/// NULL when it is not 0..=9. The string is static.
#[no_mangle]
pub extern "C" fn fmnist_class_name(class_index: u32) -> *const c_char {
    CLASS_NAMES_C
        .get(class_index as usize)
        .map_or(ptr::null(), |name| name.as_ptr().cast())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::CLASS_NAMES;

    #[test]
    fn tables_match_the_rust_names_and_every_status_has_a_message() {
        for (c, name) in CLASS_NAMES_C.iter().enumerate() {
            assert_eq!(name.strip_suffix('\0'), Some(CLASS_NAMES[c]));
        }
        assert!(MESSAGES.iter().all(|m| m.ends_with('\0') && m.len() > 1));
        assert_eq!(FmnistStatus::MacsMismatch as usize, MESSAGES.len() - 1);
    }

    #[test]
    fn padding_reaches_the_next_aligned_address() {
        let align = align_of::<FmnistModel>();
        for address in 0..3 * align {
            let skip = padding(address);
            assert!(
                skip < align && (address + skip).is_multiple_of(align),
                "{address}"
            );
        }
    }
}
