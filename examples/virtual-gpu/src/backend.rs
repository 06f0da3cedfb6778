//! The virtual device. Each function here implements the export of the same
//! name in snake_case (`cudaGetDeviceCount` → `cuda_get_device_count`, see
//! `cudastub_codegen::emit::shim::rust_impl_name`) with
//! the manifest's prototype for the major being built; a mismatch does not
//! compile.

use std::ffi::c_int;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::types::{self, cudaDeviceProp, cudaError_t};

/// What the virtual device looks like.
struct Config {
    name: String,
    memory: usize,
    major: c_int,
    minor: c_int,
}

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let (major, minor) = var("CUDASTUB_VGPU_CC")
            .and_then(|cc| {
                let (a, b) = cc.split_once('.')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .unwrap_or((9, 0));
        Config {
            name: var("CUDASTUB_VGPU_NAME").unwrap_or_else(|| "cudastub virtual GPU".to_string()),
            memory: var("CUDASTUB_VGPU_MEMORY_MIB").and_then(|m| m.parse::<usize>().ok()).unwrap_or(16 * 1024) << 20,
            major,
            minor,
        }
    })
}

const MULTIPROCESSORS: c_int = 132;
static CURRENT: AtomicI32 = AtomicI32::new(0);

/// `cudaGetDeviceCount`: one device.
pub unsafe extern "C" fn cuda_get_device_count(count: *mut c_int) -> cudaError_t {
    if count.is_null() {
        return types::cudaErrorInvalidValue;
    }
    unsafe { *count = 1 };
    types::cudaSuccess
}

/// `cudaGetDevice`.
pub unsafe extern "C" fn cuda_get_device(device: *mut c_int) -> cudaError_t {
    if device.is_null() {
        return types::cudaErrorInvalidValue;
    }
    unsafe { *device = CURRENT.load(Ordering::Relaxed) };
    types::cudaSuccess
}

/// `cudaSetDevice`: only device 0 exists.
pub unsafe extern "C" fn cuda_set_device(device: c_int) -> cudaError_t {
    if device != 0 {
        return types::cudaErrorInvalidDevice;
    }
    CURRENT.store(device, Ordering::Relaxed);
    types::cudaSuccess
}

/// `cudaMemGetInfo`: all of the configured memory is free.
pub unsafe extern "C" fn cuda_mem_get_info(free: *mut usize, total: *mut usize) -> cudaError_t {
    if free.is_null() || total.is_null() {
        return types::cudaErrorInvalidValue;
    }
    unsafe {
        *free = config().memory;
        *total = config().memory;
    }
    types::cudaSuccess
}

/// `cudaDeviceGetAttribute`, for the attributes discovery asks about.
pub unsafe extern "C" fn cuda_device_get_attribute(value: *mut c_int, attr: types::cudaDeviceAttr, device: c_int) -> cudaError_t {
    if value.is_null() {
        return types::cudaErrorInvalidValue;
    }
    if device != 0 {
        return types::cudaErrorInvalidDevice;
    }
    let c = config();
    let v = match attr {
        types::cudaDevAttrComputeCapabilityMajor => c.major,
        types::cudaDevAttrComputeCapabilityMinor => c.minor,
        types::cudaDevAttrMultiProcessorCount => MULTIPROCESSORS,
        types::cudaDevAttrWarpSize => 32,
        types::cudaDevAttrMaxThreadsPerBlock => 1024,
        _ => return types::cudaErrorInvalidValue,
    };
    unsafe { *value = v };
    types::cudaSuccess
}

/// Fills the fields every layout of `cudaDeviceProp` has at the same
/// offsets, from `name` to `minor`, and nothing past them.
///
/// # Safety
/// `prop` points to a writable `cudaDeviceProp` of at least that prefix.
unsafe fn fill_prefix(prop: *mut cudaDeviceProp) {
    let c = config();
    unsafe {
        let name = &raw mut (*prop).name;
        (*name).fill(0);
        for (dst, src) in (*name).iter_mut().zip(c.name.bytes().take(255)) {
            *dst = src as _;
        }
        (&raw mut (*prop).totalGlobalMem).write(c.memory);
        (&raw mut (*prop).sharedMemPerBlock).write(48 << 10);
        (&raw mut (*prop).regsPerBlock).write(65536);
        (&raw mut (*prop).warpSize).write(32);
        (&raw mut (*prop).maxThreadsPerBlock).write(1024);
        (&raw mut (*prop).maxThreadsDim).write([1024, 1024, 64]);
        (&raw mut (*prop).maxGridSize).write([c_int::MAX, 65535, 65535]);
        (&raw mut (*prop).totalConstMem).write(64 << 10);
        (&raw mut (*prop).major).write(c.major);
        (&raw mut (*prop).minor).write(c.minor);
    }
}

/// The current layout: zero everything, then fill.
unsafe fn fill(prop: *mut cudaDeviceProp, device: c_int) -> cudaError_t {
    if prop.is_null() {
        return types::cudaErrorInvalidValue;
    }
    // An implementation may call the runtime: `crate::via_shim::NAME` goes
    // through this shim's own slot (its policy, implementation and tracing;
    // a nested call is not traced again), `crate::real::NAME` straight to
    // the real library.
    let mut count = 0;
    let status = unsafe { crate::via_shim::cudaGetDeviceCount(&mut count) };
    if status != types::cudaSuccess {
        return status;
    }
    if device < 0 || device >= count {
        return types::cudaErrorInvalidDevice;
    }
    unsafe {
        prop.write(std::mem::zeroed());
        fill_prefix(prop);
        (*prop).multiProcessorCount = MULTIPROCESSORS;
        (*prop).maxThreadsPerMultiProcessor = 2048;
        (*prop).l2CacheSize = 50 << 20;
        (*prop).memoryBusWidth = 5120;
        (*prop).unifiedAddressing = 1;
        (*prop).managedMemory = 1;
        (*prop).concurrentKernels = 1;
    }
    types::cudaSuccess
}

/// `cudaGetDeviceProperties`. In 12 the plain name is the legacy entry
/// point for binaries built against CUDA 11, whose struct is shorter: only
/// the common prefix is written there.
#[cfg(not(cudastub_major = "12"))]
pub unsafe extern "C" fn cuda_get_device_properties(prop: *mut cudaDeviceProp, device: c_int) -> cudaError_t {
    unsafe { fill(prop, device) }
}

/// `cudaGetDeviceProperties` (12, legacy layout): the common prefix only.
#[cfg(cudastub_major = "12")]
pub unsafe extern "C" fn cuda_get_device_properties(prop: *mut cudaDeviceProp, device: c_int) -> cudaError_t {
    if prop.is_null() {
        return types::cudaErrorInvalidValue;
    }
    if device != 0 {
        return types::cudaErrorInvalidDevice;
    }
    unsafe { fill_prefix(prop) };
    types::cudaSuccess
}

/// `cudaGetDeviceProperties_v2` (12): the current layout.
#[cfg(cudastub_major = "12")]
pub unsafe extern "C" fn cuda_get_device_properties_v2(prop: *mut cudaDeviceProp, device: c_int) -> cudaError_t {
    unsafe { fill(prop, device) }
}
