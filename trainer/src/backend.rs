//! The burn backends, named in one place so a burn upgrade touches one file.

/// The CPU backend: burn-flex, burn's pure-Rust CPU backend (see docs/results.md, "Backends").
pub type Cpu = burn::backend::Flex;
/// The CPU backend with automatic differentiation, for training.
pub type CpuTrain = burn::backend::Autodiff<Cpu>;

/// The CUDA backend (feature `cuda`).
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda;
/// The CUDA backend with automatic differentiation, for training (feature `cuda`).
#[cfg(feature = "cuda")]
pub type GpuTrain = burn::backend::Autodiff<Gpu>;

/// Where to run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The CPU (burn-flex), always available.
    Cpu,
    /// The first CUDA GPU; needs a build with `--features cuda`.
    Cuda,
}

impl DeviceKind {
    /// The backend's name as recorded in run.json.
    pub fn backend_name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "flex",
            DeviceKind::Cuda => "cuda",
        }
    }
}
