//! NVML's view of the virtual device (see the runtime's backend for the
//! naming rule). Its handle is the address of a private static.

use std::ffi::{c_char, c_int, c_uint};

use crate::types::{self, nvmlDevice_t, nvmlReturn_t};

/// What `nvmlDevice_t` points to for the virtual device.
static HANDLE: u8 = 0;

fn handle() -> nvmlDevice_t {
    (&raw const HANDLE).cast_mut().cast()
}

/// `nvmlMemory_t` (v1): total, free and used bytes.
#[repr(C)]
struct Memory {
    total: u64,
    free: u64,
    used: u64,
}

/// `nvmlMemory_v2_t`: a version, then total, reserved, free and used bytes.
#[repr(C)]
struct MemoryV2 {
    version: u32,
    total: u64,
    reserved: u64,
    free: u64,
    used: u64,
}

/// `nvmlMemory_v2` of nvml.h: `NVML_STRUCT_VERSION(Memory, 2)`, the struct's
/// size with the version in the top byte.
const MEMORY_V2: u32 = std::mem::size_of::<MemoryV2>() as u32 | 2 << 24;

/// Whether the real NVML was found (asking says nothing when none was).
fn real_nvml() -> bool {
    crate::SHIM.real_library().is_some()
}

/// `nvmlInit_v2`: the real NVML is initialised too when there is one.
pub unsafe extern "C" fn nvml_init_v2() -> nvmlReturn_t {
    if real_nvml() {
        let _ = unsafe { crate::real::nvmlInit_v2() };
    }
    types::NVML_SUCCESS
}

/// `nvmlInit` (the version 1 entry point).
pub unsafe extern "C" fn nvml_init() -> nvmlReturn_t {
    unsafe { nvml_init_v2() }
}

/// `nvmlShutdown`.
pub unsafe extern "C" fn nvml_shutdown() -> nvmlReturn_t {
    if real_nvml() {
        let _ = unsafe { crate::real::nvmlShutdown() };
    }
    types::NVML_SUCCESS
}

/// `nvmlDeviceGetCount_v2`.
pub unsafe extern "C" fn nvml_device_get_count_v2(count: *mut c_uint) -> nvmlReturn_t {
    if count.is_null() {
        return types::NVML_ERROR_INVALID_ARGUMENT;
    }
    unsafe { *count = device::COUNT as c_uint };
    types::NVML_SUCCESS
}

/// `nvmlDeviceGetCount`.
pub unsafe extern "C" fn nvml_device_get_count(count: *mut c_uint) -> nvmlReturn_t {
    unsafe { nvml_device_get_count_v2(count) }
}

/// `nvmlDeviceGetHandleByIndex_v2`.
pub unsafe extern "C" fn nvml_device_get_handle_by_index_v2(
    index: c_uint,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    if device.is_null() || !device::exists(index.into()) {
        return types::NVML_ERROR_INVALID_ARGUMENT;
    }
    unsafe { *device = handle() };
    types::NVML_SUCCESS
}

/// `nvmlDeviceGetHandleByIndex`.
pub unsafe extern "C" fn nvml_device_get_handle_by_index(
    index: c_uint,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    unsafe { nvml_device_get_handle_by_index_v2(index, device) }
}

/// Writes `text` to an NVML string buffer.
unsafe fn string(
    device: nvmlDevice_t,
    text: &str,
    dst: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    if device != handle() || dst.is_null() {
        return types::NVML_ERROR_INVALID_ARGUMENT;
    }
    match unsafe { device::copy_c_string(text, dst, length as usize) } {
        true => types::NVML_SUCCESS,
        false => types::NVML_ERROR_INSUFFICIENT_SIZE,
    }
}

/// `nvmlDeviceGetName`.
pub unsafe extern "C" fn nvml_device_get_name(
    device: nvmlDevice_t,
    name: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    unsafe { string(device, &device::config().name, name, length) }
}

/// `nvmlDeviceGetUUID`: `GPU-5f7e2d4c-…`, the bytes of `cuDeviceGetUuid`.
pub unsafe extern "C" fn nvml_device_get_uuid(
    device: nvmlDevice_t,
    uuid: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    unsafe { string(device, &device::uuid_text(), uuid, length) }
}

/// `nvmlSystemGetDriverVersion`.
pub unsafe extern "C" fn nvml_system_get_driver_version(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    unsafe { string(handle(), device::DRIVER_VERSION_TEXT, version, length) }
}

/// `nvmlDeviceGetMemoryInfo` (v1): all of the memory is free.
pub unsafe extern "C" fn nvml_device_get_memory_info(
    device: nvmlDevice_t,
    memory: *mut types::nvmlMemory_t,
) -> nvmlReturn_t {
    if device != handle() || memory.is_null() {
        return types::NVML_ERROR_INVALID_ARGUMENT;
    }
    let total = device::config().memory as u64;
    unsafe {
        memory.cast::<Memory>().write(Memory {
            total,
            free: total,
            used: 0,
        })
    };
    types::NVML_SUCCESS
}

/// `nvmlDeviceGetMemoryInfo_v2`: the caller names the struct's version,
/// checked as the real NVML does.
pub unsafe extern "C" fn nvml_device_get_memory_info_v2(
    device: nvmlDevice_t,
    memory: *mut types::nvmlMemory_v2_t,
) -> nvmlReturn_t {
    if device != handle() || memory.is_null() {
        return types::NVML_ERROR_INVALID_ARGUMENT;
    }
    let memory = memory.cast::<MemoryV2>();
    if unsafe { (*memory).version } != MEMORY_V2 {
        return types::NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    let total = device::config().memory as u64;
    unsafe {
        memory.write(MemoryV2 {
            version: MEMORY_V2,
            total,
            reserved: 0,
            free: total,
            used: 0,
        })
    };
    types::NVML_SUCCESS
}

/// `nvmlDeviceGetCudaComputeCapability`.
pub unsafe extern "C" fn nvml_device_get_cuda_compute_capability(
    device: nvmlDevice_t,
    major: *mut c_int,
    minor: *mut c_int,
) -> nvmlReturn_t {
    if device != handle() || major.is_null() || minor.is_null() {
        return types::NVML_ERROR_INVALID_ARGUMENT;
    }
    unsafe {
        *major = device::config().major;
        *minor = device::config().minor;
    }
    types::NVML_SUCCESS
}
