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

/// `nvmlPciInfo_t` of today's nvml.h, which `nvmlDeviceGetPciInfo_v3`
/// fills: 68 bytes.
#[repr(C)]
struct PciInfo {
    /// The ids, laid out as in every older version of the struct.
    ids: PciIds,
    /// `busId`: `00000000:01:00.0`.
    bus_id: [u8; 32],
}

/// The first 36 bytes of `nvmlPciInfo_t`, alike in every version of it:
/// `busIdLegacy` (the older structs' `busId`), domain, bus, device, the
/// PCI device and vendor id, and the subsystem id. All that the older entry
/// points `nvmlDeviceGetPciInfo` and `_v2` fill, since their callers' structs
/// may end sooner than today's (the first had four reserved words where
/// today's has a 32-byte `busId`).
#[repr(C)]
struct PciIds {
    bus_id_legacy: [u8; 16],
    domain: u32,
    bus: u32,
    device: u32,
    pci_device_id: u32,
    pci_sub_system_id: u32,
}

/// A NUL-terminated C string of `text` in `N` bytes.
fn c_chars<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0; N];
    let n = text.len().min(N - 1);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

fn pci_ids() -> PciIds {
    PciIds {
        bus_id_legacy: c_chars(&device::pci_bus_id()),
        domain: device::PCI_DOMAIN as u32,
        bus: device::PCI_BUS as u32,
        device: device::PCI_DEVICE as u32,
        pci_device_id: device::PCI_DEVICE_ID,
        pci_sub_system_id: device::PCI_SUBSYSTEM_ID,
    }
}

/// `nvmlDeviceGetPciInfo_v3`: the whole of today's struct.
pub unsafe extern "C" fn nvml_device_get_pci_info_v3(
    device: nvmlDevice_t,
    pci: *mut types::nvmlPciInfo_t,
) -> nvmlReturn_t {
    if device != handle() || pci.is_null() {
        return types::NVML_ERROR_INVALID_ARGUMENT;
    }
    unsafe {
        pci.cast::<PciInfo>().write(PciInfo {
            ids: pci_ids(),
            bus_id: c_chars(&device::nvml_pci_bus_id()),
        })
    };
    types::NVML_SUCCESS
}

/// `nvmlDeviceGetPciInfo_v2`: the ids only (see [`PciIds`]).
pub unsafe extern "C" fn nvml_device_get_pci_info_v2(
    device: nvmlDevice_t,
    pci: *mut types::nvmlPciInfo_t,
) -> nvmlReturn_t {
    if device != handle() || pci.is_null() {
        return types::NVML_ERROR_INVALID_ARGUMENT;
    }
    unsafe { pci.cast::<PciIds>().write(pci_ids()) };
    types::NVML_SUCCESS
}

/// `nvmlDeviceGetPciInfo` (the first entry point): the ids only.
pub unsafe extern "C" fn nvml_device_get_pci_info(
    device: nvmlDevice_t,
    pci: *mut types::nvmlPciInfo_t,
) -> nvmlReturn_t {
    unsafe { nvml_device_get_pci_info_v2(device, pci) }
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
