//! A `libcuda.so.1` presenting the one virtual GPU of the `device` crate to
//! consumers that ask the driver directly (`cuDeviceGet`,
//! `cuDeviceGetAttribute`, …); every other call is forwarded to the real
//! driver.

include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs"));

mod backend;
