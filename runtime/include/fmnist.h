/*
 * fmnist.h: the C API of the Fashion-MNIST int8 engine (fmnist-runtime, feature `capi`).
 *
 * Link libfmnist.a, built from the repository's root with
 *   cargo build --manifest-path runtime/firmware/Cargo.toml --release --lib [--target T]
 * into runtime/firmware/target/release/libfmnist.a, or with --target (a Cortex-M4F or
 * M7: thumbv7em-none-eabihf) into runtime/firmware/target/T/release/libfmnist.a.
 * Link nothing else for it: it allocates nothing, needs no libm and calls no libc
 * function (the memcpy and memset it uses come inside the library). Every call checks
 * its pointers and lengths and returns a status.
 */

#ifndef FMNIST_H
#define FMNIST_H

/* Generated from runtime/src/capi.rs by cbindgen; do not edit (see tests/capi.rs). */

#include <stddef.h>
#include <stdint.h>

/*
 Pixels in one image: 28 x 28 bytes, row-major, 0 = black background (the dataset's
 convention).
 */
#define FMNIST_IMAGE_PIXELS 784

/*
 Number of classes.
 */
#define FMNIST_CLASS_COUNT 10

/*
 What a call did. `FMNIST_STATUS_OK` is 0; every other value is an error that
 [`fmnist_status_message`] describes.
 */
typedef enum FmnistStatus {
  /*
   Success.
   */
  FMNIST_STATUS_OK = 0,
  /*
   A required pointer argument was NULL.
   */
  FMNIST_STATUS_NULL_POINTER = 1,
  /*
   The blob is not an int8 model blob (too short, or malformed).
   */
  FMNIST_STATUS_NOT_A_BLOB = 2,
  /*
   The blob's magic bytes are not `FMQ8`.
   */
  FMNIST_STATUS_BAD_MAGIC = 3,
  /*
   The blob's format version is one this library does not read.
   */
  FMNIST_STATUS_UNSUPPORTED_VERSION = 4,
  /*
   The blob's CRC-32 does not match: it is corrupt.
   */
  FMNIST_STATUS_BAD_CHECKSUM = 5,
  /*
   The blob's model description does not decode.
   */
  FMNIST_STATUS_BAD_PAYLOAD = 6,
  /*
   A layer of the blob is inconsistent (shapes, tensor lengths, values out of range).
   */
  FMNIST_STATUS_BAD_LAYER = 7,
  /*
   The model does not end in 10 logits.
   */
  FMNIST_STATUS_NO_LOGITS = 8,
  /*
   The arena size the blob states is not the one its layers need.
   */
  FMNIST_STATUS_ARENA_MISMATCH = 9,
  /*
   The memory given to `fmnist_load` is smaller than `fmnist_memory_size` says.
   */
  FMNIST_STATUS_MEMORY_TOO_SMALL = 10,
  /*
   The image is not 784 bytes.
   */
  FMNIST_STATUS_BAD_INPUT = 11,
  /*
   Bytes follow the blob's envelope, or the model description inside it.
   */
  FMNIST_STATUS_TRAILING_BYTES = 12,
  /*
   The blob's `logit_scale` or `input_scale` is not a finite positive number (or is so
   large that logits would not be finite), or its `temperature` is not from 0.01 to 100.
   */
  FMNIST_STATUS_BAD_SCALE = 13,
  /*
   The model needs more arena than 16 MiB or more than 2x10^8 multiply-accumulates per
   image (the engine's default limits).
   */
  FMNIST_STATUS_OVER_LIMIT = 14,
  /*
   The multiply-accumulates per image the blob states are not those of its layers.
   */
  FMNIST_STATUS_MACS_MISMATCH = 15,
} FmnistStatus;

/*
 A loaded model: lives at the start of the caller's memory, followed by its arena.
 Opaque to C.

 NOT THREAD-SAFE: a handle holds its activation arena, which every classify call
 overwrites. Two threads classifying with one handle at the same time get wrong answers
 silently (no error is possible to detect it). Give each thread its own handle: call
 `fmnist_load` once per thread, each with its own memory (the blob may be shared).
 */
typedef struct FmnistModel FmnistModel;

/*
 One class of a prediction.
 */
typedef struct FmnistPrediction {
  /*
   Class index, 0..=9 (see `fmnist_class_name`).
   */
  uint32_t class_index;
  /*
   Softmax probability of the class, 0..=1, calibrated with the blob's temperature
   (`softmax(logit / temperature)`).
   */
  float probability;
  /*
   The class's logit, dequantized.
   */
  float logit;
} FmnistPrediction;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/*
 Validates a blob and writes to `*bytes` the memory `fmnist_load` needs for it: the
 model handle, alignment slack and the activation arena.

 # Safety
 `blob` must point to `blob_len` readable bytes; `bytes` must be writable.
 */
enum FmnistStatus fmnist_memory_size(const uint8_t *blob, size_t blob_len, size_t *bytes);

/*
 Validates a blob and sets `*model` to a handle placed in `memory`, which must be at
 least `fmnist_memory_size` bytes (any alignment). On error `*model` is set to NULL.
 The handle serves one thread at a time (see `FmnistModel`): one `fmnist_load` per
 thread, each with its own memory.

 # Safety
 `blob` must point to `blob_len` readable bytes and `memory` to `memory_len` writable
 bytes, both unchanged and alive for as long as the handle is used; `model` must be
 writable.
 */
enum FmnistStatus fmnist_load(const uint8_t *blob,
                              size_t blob_len,
                              uint8_t *memory,
                              size_t memory_len,
                              struct FmnistModel **model);

/*
 Bytes of activation arena the loaded model uses (part of `fmnist_memory_size`), or 0
 for a NULL handle.

 # Safety
 `model` must be NULL or a handle from `fmnist_load` whose memory is still valid.
 */
size_t fmnist_arena_size(const struct FmnistModel *model);

/*
 Classifies one image (784 bytes, see `FMNIST_IMAGE_PIXELS`) and writes the best class
 to `*best`.

 # Safety
 `model` must be a handle from `fmnist_load` (not used by another thread meanwhile),
 `pixels` must point to `pixels_len` readable bytes and `best` must be writable.
 */
enum FmnistStatus fmnist_classify(struct FmnistModel *model,
                                  const uint8_t *pixels,
                                  size_t pixels_len,
                                  struct FmnistPrediction *best);

/*
 Classifies one image and writes the `k` most likely classes, best first, to
 `top[0..k]` (`k` is capped at 10; equal scores keep class order).

 # Safety
 As `fmnist_classify`, and `top` must have room for `min(k, 10)` predictions.
 */
enum FmnistStatus fmnist_classify_top(struct FmnistModel *model,
                                      const uint8_t *pixels,
                                      size_t pixels_len,
                                      struct FmnistPrediction *top,
                                      size_t k);

/*
 A NUL-terminated English message for a status value (any value: unknown ones get a
 message too). The string is static.
 */
const char *fmnist_status_message(int32_t status);

/*
 The NUL-terminated name of class `class_index` ("T-shirt/top" ... "Ankle boot"), or
 NULL when it is not 0..=9. The string is static.
 */
const char *fmnist_class_name(uint32_t class_index);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* FMNIST_H */
