//! Whether a CUDA GPU can be used, checked before any work (feature `cuda`).
//!
//! burn's CUDA backend (cubecl-cuda over cudarc) loads the driver (`libcuda`) and NVRTC
//! at run time and panics deep inside the first tensor operation when either is missing.
//! [`preflight`] asks the same loader first, so that `trainer ... --device cuda` on a
//! machine without a GPU ends with one line naming the cause and exit code 3
//! ([`NoGpu`]), before any data is read.

/// Why no CUDA GPU can be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoGpu {
    /// `libcuda.so` could not be loaded.
    #[error(
        "no CUDA driver: libcuda.so could not be loaded (install the NVIDIA driver, or add \
         its directory to LD_LIBRARY_PATH)"
    )]
    NoDriver,
    /// `cuInit` failed.
    #[error("the CUDA driver did not start: {0}")]
    DriverInit(String),
    /// The driver sees no device.
    #[error("no CUDA device: the driver found no GPU")]
    NoDevice,
    /// `libnvrtc.so` could not be loaded.
    #[error(
        "NVRTC not found: libnvrtc.so could not be loaded (add the CUDA toolkit's lib \
         directory, or a Python environment's nvidia/cuda_nvrtc/lib, to LD_LIBRARY_PATH)"
    )]
    NoNvrtc,
}

/// The number of CUDA devices, once the driver and NVRTC are known to load and the
/// driver has started.
#[allow(unsafe_code)]
pub fn preflight() -> Result<usize, NoGpu> {
    // SAFETY: these only try to open the shared libraries by name (dlopen), as cubecl's
    // loader will; nothing from them is called.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(NoGpu::NoDriver);
    }
    cudarc::driver::result::init().map_err(|e| NoGpu::DriverInit(format!("{e:?}")))?;
    let count = cudarc::driver::result::device::get_count()
        .map_err(|e| NoGpu::DriverInit(format!("{e:?}")))?;
    if count < 1 {
        return Err(NoGpu::NoDevice);
    }
    // SAFETY: as above.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(NoGpu::NoNvrtc);
    }
    Ok(count as usize)
}
