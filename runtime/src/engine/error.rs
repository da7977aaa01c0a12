//! Why a blob was refused, and why a validated plan could not classify.

use core::fmt;

use crate::blob::{FORMAT_VERSION, FORMAT_VERSION_1};
use crate::classes::IMAGE_PIXELS;

/// Why a blob was refused. Nothing in a refused blob was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobError {
    /// The bytes are not a postcard envelope (too short, or malformed).
    NotABlob,
    /// The magic bytes are not `FMQ8`.
    BadMagic([u8; 4]),
    /// A format version this engine does not read.
    UnsupportedVersion(u16),
    /// The payload's CRC-32 differs from the one stated.
    BadChecksum {
        /// CRC-32 in the envelope.
        stated: u32,
        /// CRC-32 of the payload.
        computed: u32,
    },
    /// The payload does not decode as a model (or has more than 32 layers).
    BadPayload,
    /// Layer `index` is inconsistent: shapes that do not chain, wrong tensor lengths,
    /// values out of range.
    BadLayer {
        /// 0-based layer index.
        index: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// The model does not end in a linear layer producing 10 logits.
    NoLogits,
    /// The arena size the blob states is not the one its layers need.
    ArenaMismatch {
        /// Stated in the blob.
        stated: u32,
        /// Computed from the layers.
        required: u32,
    },
    /// Bytes follow the envelope, or the model description inside it: a blob is exactly
    /// one envelope around exactly one model.
    TrailingBytes {
        /// `"the envelope"` or `"the model description"`.
        after: &'static str,
        /// How many bytes follow it.
        count: usize,
    },
    /// A scale is unusable: `logit_scale` must be finite, positive and small enough that
    /// every logit stays finite; `input_scale` finite and positive; `temperature` within
    /// [`MIN_TEMPERATURE`](crate::engine::MIN_TEMPERATURE)..=[`MAX_TEMPERATURE`](crate::engine::MAX_TEMPERATURE).
    BadScale {
        /// `"logit_scale"`, `"input_scale"` or `"temperature"`.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// The model needs more than the [`Limits`](crate::engine::Limits) allow (arena bytes, or multiply-accumulates
    /// per image).
    OverLimit {
        /// `"arena bytes"` or `"multiply-accumulates per image"`.
        what: &'static str,
        /// What the layers need.
        needed: u64,
        /// The limit.
        limit: u64,
    },
    /// The multiply-accumulates per image the blob states are not those of its layers.
    MacsMismatch {
        /// Stated in the blob.
        stated: u32,
        /// Computed from the layers.
        computed: u64,
    },
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::NotABlob => write!(f, "truncated or corrupt: the envelope does not decode"),
            BlobError::BadMagic(m) => write!(f, "bad magic bytes {m:02x?}, expected \"FMQ8\""),
            BlobError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "blob format version {v}, this runtime reads versions {FORMAT_VERSION_1} and {FORMAT_VERSION}"
                )
            }
            BlobError::BadChecksum { stated, computed } => write!(
                f,
                "checksum mismatch (stated {stated:#010x}, computed {computed:#010x}): the blob is corrupt"
            ),
            BlobError::BadPayload => write!(f, "the model description does not decode"),
            BlobError::BadLayer { index, problem } => write!(f, "layer {index}: {problem}"),
            BlobError::NoLogits => write!(f, "the model does not end in 10 logits"),
            BlobError::ArenaMismatch { stated, required } => {
                write!(f, "the blob states an arena of {stated} bytes but its layers need {required}")
            }
            BlobError::TrailingBytes { after, count } => {
                write!(f, "{count} unexpected byte(s) after {after}")
            }
            BlobError::BadScale { field, problem } => write!(f, "{field}: {problem}"),
            BlobError::OverLimit { what, needed, limit } => {
                write!(f, "the model needs {needed} {what}, more than the limit of {limit}")
            }
            BlobError::MacsMismatch { stated, computed } => write!(
                f,
                "the blob states {stated} multiply-accumulates per image but its layers do {computed}"
            ),
        }
    }
}

/// Why classification could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// The arena is smaller than [`Plan::arena_bytes`](crate::engine::Plan::arena_bytes).
    ArenaTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// The input is not 784 pixels.
    BadInput {
        /// Bytes given.
        given: usize,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::ArenaTooSmall { needed, given } => {
                write!(f, "arena of {given} bytes, the model needs {needed}")
            }
            EngineError::BadInput { given } => {
                write!(f, "{given} input bytes, expected {IMAGE_PIXELS} (28x28)")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BlobError {}

#[cfg(feature = "std")]
impl std::error::Error for EngineError {}
