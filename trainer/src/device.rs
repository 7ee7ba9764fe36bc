//! Choosing the compute device from `--device cpu|cuda[:N]`. CUDA needs the `cuda` cargo feature;
//! without it, or without a usable GPU, the choice fails with an error that says which.

use candle_core::Device;
use thiserror::Error;

/// Why a device could not be opened.
#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("unknown device `{0}` (expected cpu, cuda or cuda:N)")]
    Unknown(String),
    #[error("device `{0}`: this build has no CUDA support (rebuild with `--features cuda`, see scripts/build-cuda.sh)")]
    NoCudaSupport(String),
    #[error("device `{spec}`: no usable CUDA GPU ({reason})")]
    Unavailable { spec: String, reason: String },
}

/// The GPU ordinal of `cuda` / `cuda:N`, or `None` for other specs.
fn cuda_ordinal(spec: &str) -> Option<Result<usize, DeviceError>> {
    if spec == "cuda" {
        return Some(Ok(0));
    }
    let n = spec.strip_prefix("cuda:")?;
    Some(
        n.parse::<usize>()
            .map_err(|_| DeviceError::Unknown(spec.to_string())),
    )
}

/// Opens the device a `--device` value names.
pub fn parse_device(spec: &str) -> Result<Device, DeviceError> {
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let Some(ordinal) = cuda_ordinal(spec) else {
        return Err(DeviceError::Unknown(spec.to_string()));
    };
    let ordinal = ordinal?;
    open_cuda(spec, ordinal)
}

#[cfg(feature = "cuda")]
fn open_cuda(spec: &str, ordinal: usize) -> Result<Device, DeviceError> {
    // Candle reports driver errors (no device, no driver) as errors; some CUDA failures panic
    // inside the bindings, so a panic is turned into the same error.
    let opened = std::panic::catch_unwind(|| Device::new_cuda(ordinal));
    match opened {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => Err(DeviceError::Unavailable {
            spec: spec.to_string(),
            reason: first_line(&e.to_string()),
        }),
        Err(_) => Err(DeviceError::Unavailable {
            spec: spec.to_string(),
            reason: "the CUDA driver failed while opening the device".into(),
        }),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(spec: &str, _ordinal: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::NoCudaSupport(spec.to_string()))
}

#[cfg(feature = "cuda")]
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

/// A short name of a device for logs and reports (`cpu`, `cuda:0`).
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert!(matches!(parse_device("cpu"), Ok(Device::Cpu)));
        assert!(matches!(parse_device("gpu"), Err(DeviceError::Unknown(_))));
        assert!(matches!(
            parse_device("cuda:x"),
            Err(DeviceError::Unknown(_))
        ));
        #[cfg(not(feature = "cuda"))]
        assert!(matches!(
            parse_device("cuda:1"),
            Err(DeviceError::NoCudaSupport(_))
        ));
    }
}
