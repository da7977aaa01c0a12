//! Root package: owns the workspace-level tests and benchmarks.
