//! A `libnvidia-ml.so.1` listing the one virtual GPU of the `device` crate
//! (what nvidia-smi-like tools and schedulers ask); every other call is
//! forwarded to the real NVML.

include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs"));

mod backend;
