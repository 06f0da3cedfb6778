//! The driver's view of the virtual device (see the runtime's backend for
//! the naming rule). The driver does not insist on `cuInit` first: the
//! virtual runtime never initialises it, and consumers such as
//! `libggml-cuda.so` ask it for devices the runtime gave them.

use std::ffi::{c_char, c_int, c_uint};

use crate::types::{self, CUdevice, CUresult};

/// Whether a real driver was found (asking says nothing when none was).
fn real_driver() -> bool {
    crate::SHIM.real_library().is_some()
}

/// `cuInit`: the real driver is initialised too when there is one (for the
/// forwarded calls); the virtual device is there either way.
pub unsafe extern "C" fn cu_init(flags: c_uint) -> CUresult {
    if real_driver() {
        let _ = unsafe { crate::real::cuInit(flags) };
    }
    types::CUDA_SUCCESS
}

/// `cuDriverGetVersion`.
pub unsafe extern "C" fn cu_driver_get_version(version: *mut c_int) -> CUresult {
    if version.is_null() {
        return types::CUDA_ERROR_INVALID_VALUE;
    }
    unsafe { *version = device::config().driver_version };
    types::CUDA_SUCCESS
}

/// `cuDeviceGetCount`.
pub unsafe extern "C" fn cu_device_get_count(count: *mut c_int) -> CUresult {
    if count.is_null() {
        return types::CUDA_ERROR_INVALID_VALUE;
    }
    unsafe { *count = device::COUNT };
    types::CUDA_SUCCESS
}

/// `cuDeviceGet`: the handle of device N is N.
pub unsafe extern "C" fn cu_device_get(dev: *mut CUdevice, ordinal: c_int) -> CUresult {
    if dev.is_null() {
        return types::CUDA_ERROR_INVALID_VALUE;
    }
    if !device::exists(ordinal.into()) {
        return types::CUDA_ERROR_INVALID_DEVICE;
    }
    unsafe { *dev = ordinal };
    types::CUDA_SUCCESS
}

/// `cuDeviceGetName`: truncated to `len` bytes with its NUL, as the driver does.
pub unsafe extern "C" fn cu_device_get_name(
    name: *mut c_char,
    len: c_int,
    dev: CUdevice,
) -> CUresult {
    if name.is_null() || len <= 0 {
        return types::CUDA_ERROR_INVALID_VALUE;
    }
    if !device::exists(dev.into()) {
        return types::CUDA_ERROR_INVALID_DEVICE;
    }
    let text = &device::config().name;
    let n = text.len().min(len as usize - 1);
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), name.cast::<u8>(), n);
        *name.add(n) = 0;
    }
    types::CUDA_SUCCESS
}

/// `cuDeviceGetAttribute`.
pub unsafe extern "C" fn cu_device_get_attribute(
    value: *mut c_int,
    attrib: types::CUdevice_attribute,
    dev: CUdevice,
) -> CUresult {
    if value.is_null() {
        return types::CUDA_ERROR_INVALID_VALUE;
    }
    if !device::exists(dev.into()) {
        return types::CUDA_ERROR_INVALID_DEVICE;
    }
    match device::attribute(attrib.into()) {
        Some(v) => {
            unsafe { *value = v };
            types::CUDA_SUCCESS
        }
        // One the virtual device does not describe: the real GPU's, when
        // there is one (the real runtime asks for dozens at start-up and
        // fails to initialise on an error), else an error.
        None if real_driver() => unsafe { crate::real::cuDeviceGetAttribute(value, attrib, dev) },
        None => types::CUDA_ERROR_INVALID_VALUE,
    }
}

/// `cuDeviceTotalMem_v2`.
pub unsafe extern "C" fn cu_device_total_mem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
    if bytes.is_null() {
        return types::CUDA_ERROR_INVALID_VALUE;
    }
    if !device::exists(dev.into()) {
        return types::CUDA_ERROR_INVALID_DEVICE;
    }
    unsafe { *bytes = device::config().memory };
    types::CUDA_SUCCESS
}

/// `cuDeviceTotalMem` (CUDA 3.1's, `unsigned int`): the size when it fits,
/// else `UINT_MAX`.
pub unsafe extern "C" fn cu_device_total_mem(bytes: *mut c_uint, dev: CUdevice) -> CUresult {
    if bytes.is_null() {
        return types::CUDA_ERROR_INVALID_VALUE;
    }
    if !device::exists(dev.into()) {
        return types::CUDA_ERROR_INVALID_DEVICE;
    }
    unsafe { *bytes = c_uint::try_from(device::config().memory).unwrap_or(c_uint::MAX) };
    types::CUDA_SUCCESS
}

/// `cuDeviceGetUuid_v2`: the 16 bytes of the device's UUID.
pub unsafe extern "C" fn cu_device_get_uuid_v2(
    uuid: *mut types::CUuuid,
    dev: CUdevice,
) -> CUresult {
    if uuid.is_null() {
        return types::CUDA_ERROR_INVALID_VALUE;
    }
    if !device::exists(dev.into()) {
        return types::CUDA_ERROR_INVALID_DEVICE;
    }
    // CUuuid is `struct { char bytes[16]; }`.
    unsafe { uuid.cast::<[u8; 16]>().write(device::UUID) };
    types::CUDA_SUCCESS
}

/// `cuDeviceGetUuid`: the same bytes (a physical device has one UUID).
pub unsafe extern "C" fn cu_device_get_uuid(uuid: *mut types::CUuuid, dev: CUdevice) -> CUresult {
    unsafe { cu_device_get_uuid_v2(uuid, dev) }
}

/// `cuDeviceGetPCIBusId`: `0000:01:00.0`.
pub unsafe extern "C" fn cu_device_get_pci_bus_id(
    bus_id: *mut c_char,
    len: c_int,
    dev: CUdevice,
) -> CUresult {
    if !device::exists(dev.into()) {
        return types::CUDA_ERROR_INVALID_DEVICE;
    }
    match unsafe { device::copy_c_string(&device::pci_bus_id(), bus_id, len.max(0) as usize) } {
        true => types::CUDA_SUCCESS,
        false => types::CUDA_ERROR_INVALID_VALUE,
    }
}

/// `cuMemGetAllocationGranularity`: 2 MiB, minimum and recommended.
pub unsafe extern "C" fn cu_mem_get_allocation_granularity(
    granularity: *mut usize,
    prop: *const types::CUmemAllocationProp,
    _option: types::CUmemAllocationGranularity_flags,
) -> CUresult {
    if granularity.is_null() || prop.is_null() {
        return types::CUDA_ERROR_INVALID_VALUE;
    }
    unsafe { *granularity = device::VMM_GRANULARITY };
    types::CUDA_SUCCESS
}
