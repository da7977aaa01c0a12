//! The bottom layer: files written atomically and read with limits, output probes with
//! their own error type, and SHA-256 checksums. Imports nothing of this crate.

pub mod files;
pub mod sha256;
