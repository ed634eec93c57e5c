//! The `--device cpu|cuda[:N]` choice. CPU is the default and the only backend CI builds; `cuda` needs the crate's
//! `cuda` feature, which passes through to candle's CUDA backend.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

/// A parsed `--device` value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// The CPU (default).
    #[default]
    Cpu,
    /// CUDA GPU with this ordinal (`cuda` = `cuda:0`).
    Cuda(usize),
}

/// Errors of parsing or opening a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The text is not `cpu`, `cuda` or `cuda:N`.
    #[error("invalid device {got:?}: expected cpu, cuda or cuda:N (N a GPU ordinal, e.g. cuda:1)")]
    Parse {
        /// The text given.
        got: String,
    },
    /// CUDA was asked for but this binary was built without it.
    #[error("device {spec} asked for, but this build has no CUDA support; rebuild with `cargo build --features cuda` or use --device cpu")]
    NoCudaSupport {
        /// The device asked for.
        spec: DeviceSpec,
    },
    /// The CUDA backend could not open the device.
    #[error("cannot open {spec}: {source}")]
    Open {
        /// The device asked for.
        spec: DeviceSpec,
        /// candle's error.
        source: candle_core::Error,
    },
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    /// Parses `cpu`, `cuda` or `cuda:N` (case-insensitive, surrounding spaces ignored).
    ///
    /// ```
    /// use cmr_nn::device::DeviceSpec;
    /// assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
    /// assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
    /// assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
    /// assert!("gpu".parse::<DeviceSpec>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim().to_ascii_lowercase();
        let parse_err = || DeviceError::Parse { got: s.to_owned() };
        match text.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => {
                let ordinal = text.strip_prefix("cuda:").ok_or_else(parse_err)?;
                ordinal.parse().map(DeviceSpec::Cuda).map_err(|_| parse_err())
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the candle device.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(ordinal) => {
                if !cfg!(feature = "cuda") {
                    return Err(DeviceError::NoCudaSupport { spec: self });
                }
                Device::new_cuda(ordinal).map_err(|source| DeviceError::Open { spec: self, source })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_open() {
        assert_eq!(" CUDA:2 ".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(2));
        assert_eq!(DeviceSpec::default().to_string(), "cpu");
        assert_eq!(DeviceSpec::Cuda(3).to_string().parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "metal"] {
            let msg = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(msg.contains(&format!("{bad:?}")) && msg.contains("cpu, cuda or cuda:N"), "{msg}");
        }
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        let msg = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(msg.contains("cuda:0") && msg.contains("--features cuda"), "{msg}");
    }
}
