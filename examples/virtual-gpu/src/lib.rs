//! A `libcudart.so.N` presenting one virtual GPU: device discovery is
//! answered here (configured with `CUDASTUB_VGPU_NAME`,
//! `CUDASTUB_VGPU_MEMORY_MIB`, `CUDASTUB_VGPU_CC`), allocation is refused,
//! and every other call is forwarded to the real CUDA runtime.

include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs"));

mod backend;
