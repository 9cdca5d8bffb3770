//! Where Glassbox computes, named without tch so that the app needs no torch type: the GPU
//! when libtorch sees one, else the CPU, with the same results.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// The first GPU when libtorch sees one, else the CPU.
    pub fn auto() -> Device {
        tch::Device::cuda_if_available().into()
    }

    /// Whether libtorch sees a CUDA GPU on this machine.
    pub fn cuda_available() -> bool {
        tch::Cuda::is_available()
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("CPU"),
            Device::Cuda(i) => write!(f, "GPU (CUDA {i})"),
        }
    }
}

impl From<Device> for tch::Device {
    fn from(d: Device) -> tch::Device {
        match d {
            Device::Cpu => tch::Device::Cpu,
            Device::Cuda(i) => tch::Device::Cuda(i),
        }
    }
}

impl From<tch::Device> for Device {
    fn from(d: tch::Device) -> Device {
        match d {
            tch::Device::Cuda(i) => Device::Cuda(i),
            _ => Device::Cpu,
        }
    }
}

/// Memory one batch of work may take: a quarter of the machine's memory on the CPU (fixed
/// per machine, so batch sizes, and thus the floating-point results, do not change from run
/// to run with the free memory), 8 GiB on a GPU.
pub fn memory_for_batches(device: tch::Device) -> i64 {
    match device {
        tch::Device::Cpu => total_memory_bytes().unwrap_or(2 << 30) / 4,
        _ => 8 << 30,
    }
}

fn total_memory_bytes() -> Option<i64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
