//! A `libcudart.so.N` presenting the one virtual GPU of the `device` crate:
//! device discovery is answered here, allocation is refused, and every
//! other call is forwarded to the real CUDA runtime.

include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs"));

mod backend;
