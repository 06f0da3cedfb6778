//! The runtime's view of the virtual device. Each function here implements
//! the export of the same name in snake_case (`cudaGetDeviceCount` →
//! `cuda_get_device_count`, see `cudastub_codegen::emit::shim::rust_impl_name`)
//! with the manifest's prototype for the major being built; a mismatch does
//! not compile. The facts come from the `device` crate, shared with the
//! driver and NVML shims.

use std::ffi::{c_char, c_int, c_void};
use std::cell::Cell;

use crate::types::{self, cudaDeviceProp, cudaError_t};

thread_local! {
    /// The calling thread's current device, as CUDA keeps it: per thread.
    static CURRENT: Cell<c_int> = const { Cell::new(0) };
    /// The calling thread's last error (of the calls answered here), as
    /// CUDA keeps it: per thread, taken by `cudaGetLastError`.
    static LAST_ERROR: Cell<cudaError_t> = const { Cell::new(types::cudaSuccess) };
}

/// Returns `error`, kept as the calling thread's last error.
fn failed(error: cudaError_t) -> cudaError_t {
    LAST_ERROR.set(error);
    error
}

/// Whether a real runtime was found: then registration and the error state
/// are its own. Asking says nothing when there is none.
fn real_runtime() -> bool {
    crate::SHIM.real_library().is_some()
}

/// With a real runtime, starts it (and through it the real driver's
/// `cuInit`) on the first device query, as the consumer's own query would
/// have: a consumer that goes on to call the driver itself (ggml's
/// `cuDeviceGet`) finds it initialised, and forwarded work runs on the real
/// GPU. Its answer is not used. A real runtime that cannot start (no
/// usable driver) reports that failure from every `cudaGetLastError`,
/// started or not, as it does with no virtual GPU (measured with the 12.9
/// runtime: `cudaErrorNoDevice` on every call, first to last).
fn start_real() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        if real_runtime() {
            let mut count = 0;
            let _ = unsafe { crate::real::cudaGetDeviceCount(&mut count) };
        }
    });
}

/// `cudaGetDeviceCount`: one device.
pub unsafe extern "C" fn cuda_get_device_count(count: *mut c_int) -> cudaError_t {
    start_real();
    if count.is_null() {
        return types::cudaErrorInvalidValue;
    }
    unsafe { *count = device::COUNT };
    types::cudaSuccess
}

/// `cudaGetDevice`.
pub unsafe extern "C" fn cuda_get_device(device: *mut c_int) -> cudaError_t {
    start_real();
    if device.is_null() {
        return types::cudaErrorInvalidValue;
    }
    unsafe { *device = CURRENT.get() };
    types::cudaSuccess
}

/// `cudaSetDevice`: only device 0 exists; the current device and the
/// error are the calling thread's.
pub unsafe extern "C" fn cuda_set_device(ordinal: c_int) -> cudaError_t {
    start_real();
    if !device::exists(ordinal.into()) {
        return failed(types::cudaErrorInvalidDevice);
    }
    CURRENT.set(ordinal);
    types::cudaSuccess
}

/// `cudaMemGetInfo`: all of the device's memory is free.
pub unsafe extern "C" fn cuda_mem_get_info(free: *mut usize, total: *mut usize) -> cudaError_t {
    start_real();
    if free.is_null() || total.is_null() {
        return types::cudaErrorInvalidValue;
    }
    unsafe {
        *free = device::config().memory;
        *total = device::config().memory;
    }
    types::cudaSuccess
}

/// `cudaDeviceGetAttribute` (the runtime's codes are the driver's).
pub unsafe extern "C" fn cuda_device_get_attribute(
    value: *mut c_int,
    attr: types::cudaDeviceAttr,
    ordinal: c_int,
) -> cudaError_t {
    start_real();
    if value.is_null() {
        return types::cudaErrorInvalidValue;
    }
    if !device::exists(ordinal.into()) {
        return types::cudaErrorInvalidDevice;
    }
    match device::attribute(attr.into()) {
        Some(v) => {
            unsafe { *value = v };
            types::cudaSuccess
        }
        // One the virtual device does not describe: the real GPU's, when
        // there is one, else an error.
        None if real_runtime() => unsafe {
            crate::real::cudaDeviceGetAttribute(value, attr, ordinal)
        },
        None => types::cudaErrorInvalidValue,
    }
}

/// `cudaDeviceGetPCIBusId`: `0000:01:00.0`.
pub unsafe extern "C" fn cuda_device_get_pci_bus_id(
    bus_id: *mut c_char,
    len: c_int,
    ordinal: c_int,
) -> cudaError_t {
    start_real();
    if !device::exists(ordinal.into()) {
        return types::cudaErrorInvalidDevice;
    }
    match unsafe { device::copy_c_string(&device::pci_bus_id(), bus_id, len.max(0) as usize) } {
        true => types::cudaSuccess,
        false => types::cudaErrorInvalidValue,
    }
}

/// Checks a `cudaGetDeviceProperties*` call before anything is written.
fn check_properties_call(null: bool, ordinal: c_int) -> Result<(), cudaError_t> {
    if null {
        return Err(types::cudaErrorInvalidValue);
    }
    // An implementation may call the runtime: `crate::via_shim::NAME` goes
    // through this shim's own slot (its policy, implementation and tracing;
    // a nested call is not traced again), `crate::real::NAME` straight to
    // the real library.
    let mut count = 0;
    let status = unsafe { crate::via_shim::cudaGetDeviceCount(&mut count) };
    if status != types::cudaSuccess {
        return Err(status);
    }
    if ordinal < 0 || ordinal >= count {
        return Err(types::cudaErrorInvalidDevice);
    }
    Ok(())
}

/// Zeroes a `cudaDeviceProp` of any layout (CUDA 11's `_v1`, 12's, 13's)
/// and fills the fields every layout has, by name.
macro_rules! fill_common {
    ($prop:expr) => {{
        let c = device::config();
        let a = |code: i64| device::attribute(code).unwrap_or(0);
        $prop.write(std::mem::zeroed());
        let p = &mut *$prop;
        for (dst, src) in p.name.iter_mut().zip(c.name.bytes().take(255)) {
            *dst = src as _;
        }
        (&raw mut p.uuid).cast::<[u8; 16]>().write(device::UUID);
        p.totalGlobalMem = c.memory;
        p.sharedMemPerBlock = a(8) as usize;
        p.regsPerBlock = a(12);
        p.warpSize = a(10);
        p.memPitch = a(11) as usize;
        p.maxThreadsPerBlock = a(1);
        p.maxThreadsDim = [a(2), a(3), a(4)];
        p.maxGridSize = [a(5), a(6), a(7)];
        p.totalConstMem = a(9) as usize;
        p.major = c.major;
        p.minor = c.minor;
        p.textureAlignment = a(14) as usize;
        p.texturePitchAlignment = 32;
        p.multiProcessorCount = a(16);
        p.integrated = a(18);
        p.canMapHostMemory = a(19);
        p.surfaceAlignment = a(30) as usize;
        p.concurrentKernels = a(31);
        p.ECCEnabled = a(32);
        p.pciBusID = a(33);
        p.pciDeviceID = a(34);
        p.pciDomainID = a(50);
        p.asyncEngineCount = a(40);
        p.unifiedAddressing = a(41);
        p.memoryBusWidth = a(37);
        p.l2CacheSize = a(38);
        p.maxThreadsPerMultiProcessor = a(39);
        p.streamPrioritiesSupported = a(78);
        p.globalL1CacheSupported = a(79);
        p.localL1CacheSupported = a(80);
        p.sharedMemPerMultiprocessor = a(81) as usize;
        p.regsPerMultiprocessor = a(82);
        p.managedMemory = a(83);
        p.concurrentManagedAccess = a(89);
        p.computePreemptionSupported = a(90);
        p.canUseHostPointerForRegisteredMem = a(91);
        p.cooperativeLaunch = a(95);
        p.sharedMemPerBlockOptin = a(97) as usize;
        p.maxBlocksPerMultiProcessor = a(106);
        p.reservedSharedMemPerBlock = a(111) as usize;
        p
    }};
}

/// The current `cudaDeviceProp` of the major being built (1032 bytes in 12,
/// 1008 in 13).
unsafe fn fill(prop: *mut cudaDeviceProp, ordinal: c_int) -> cudaError_t {
    if let Err(status) = check_properties_call(prop.is_null(), ordinal) {
        return status;
    }
    let a = |code: i64| device::attribute(code).unwrap_or(0);
    unsafe {
        let p = fill_common!(prop);
        p.memoryPoolsSupported = a(115);
        p.clusterLaunch = a(120);
        #[cfg(cudastub_major = "12")]
        {
            p.clockRate = a(13);
            p.memoryClockRate = a(36);
            p.deviceOverlap = a(15);
        }
    }
    types::cudaSuccess
}

/// `cudaGetDeviceProperties`: in 13 the current layout; in 12 the legacy
/// entry point of CUDA 11 binaries, whose `cudaDeviceProp` is CUDA 11's
/// (728 bytes, `cudaDeviceProp_v1` in the manifest): writing 12's 1032
/// bytes there would overrun the caller's struct.
#[cfg(not(cudastub_major = "12"))]
pub unsafe extern "C" fn cuda_get_device_properties(
    prop: *mut cudaDeviceProp,
    ordinal: c_int,
) -> cudaError_t {
    start_real();
    unsafe { fill(prop, ordinal) }
}

/// `cudaGetDeviceProperties` of 12: CUDA 11's layout (see above).
#[cfg(cudastub_major = "12")]
pub unsafe extern "C" fn cuda_get_device_properties(
    prop: *mut types::cudaDeviceProp_v1,
    ordinal: c_int,
) -> cudaError_t {
    start_real();
    if let Err(status) = check_properties_call(prop.is_null(), ordinal) {
        return status;
    }
    let a = |code: i64| device::attribute(code).unwrap_or(0);
    unsafe {
        let p = fill_common!(prop);
        p.clockRate = a(13);
        p.memoryClockRate = a(36);
        p.deviceOverlap = a(15);
    }
    types::cudaSuccess
}

/// `cudaGetDeviceProperties_v2` (12): what 12's headers call
/// `cudaGetDeviceProperties`.
#[cfg(cudastub_major = "12")]
pub unsafe extern "C" fn cuda_get_device_properties_v2(
    prop: *mut cudaDeviceProp,
    ordinal: c_int,
) -> cudaError_t {
    start_real();
    unsafe { fill(prop, ordinal) }
}

// Answered only where there is no real runtime (`.fallback` in build.rs):
// where there is one, these calls go to it untouched.

/// `cudaGetLastError`: the calling thread's last error (a failed
/// `cudaSetDevice`), reset to success.
pub unsafe extern "C" fn cuda_get_last_error() -> cudaError_t {
    LAST_ERROR.replace(types::cudaSuccess)
}

/// `cudaPeekAtLastError`: as `cudaGetLastError`, without the reset.
pub unsafe extern "C" fn cuda_peek_at_last_error() -> cudaError_t {
    LAST_ERROR.get()
}

/// `cudaRuntimeGetVersion`: the release the manifest's major was imported from.
pub unsafe extern "C" fn cuda_runtime_get_version(version: *mut c_int) -> cudaError_t {
    if version.is_null() {
        return types::cudaErrorInvalidValue;
    }
    // `12.9.79` is 12090: major × 1000 + minor × 10.
    let mut parts = crate::RELEASE
        .split('.')
        .map(|p| p.parse::<c_int>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    unsafe { *version = major * 1000 + minor * 10 };
    types::cudaSuccess
}

// Kernel registration, called by nvcc-built code's ELF constructors (and
// destructors): with no real runtime nothing is registered (nothing can
// run), and the module handle is a dummy.

/// The handle `__cudaRegisterFatBinary` gives out with no real runtime.
static mut DUMMY_HANDLE: *mut c_void = std::ptr::null_mut();

/// `__cudaRegisterFatBinary`.
pub unsafe extern "C" fn __cuda_register_fat_binary(_fat_cubin: *mut c_void) -> *mut *mut c_void {
    &raw mut DUMMY_HANDLE
}

/// `__cudaRegisterFatBinaryEnd`.
pub unsafe extern "C" fn __cuda_register_fat_binary_end(_handle: *mut *mut c_void) {}

/// `__cudaUnregisterFatBinary`.
pub unsafe extern "C" fn __cuda_unregister_fat_binary(_handle: *mut *mut c_void) {}

/// `__cudaRegisterFunction`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn __cuda_register_function(
    _handle: *mut *mut c_void,
    _host_fun: *const c_char,
    _device_fun: *mut c_char,
    _device_name: *const c_char,
    _thread_limit: c_int,
    _tid: *mut types::uint3,
    _bid: *mut types::uint3,
    _b_dim: *mut types::dim3,
    _g_dim: *mut types::dim3,
    _w_size: *mut c_int,
) {
}

/// `__cudaRegisterVar`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn __cuda_register_var(
    _handle: *mut *mut c_void,
    _host_var: *mut c_char,
    _device_address: *mut c_char,
    _device_name: *const c_char,
    _ext: c_int,
    _size: usize,
    _constant: c_int,
    _global: c_int,
) {
}

/// `__cudaRegisterManagedVar`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn __cuda_register_managed_var(
    _handle: *mut *mut c_void,
    _host_var_ptr_address: *mut *mut c_void,
    _device_address: *mut c_char,
    _device_name: *const c_char,
    _ext: c_int,
    _size: usize,
    _constant: c_int,
    _global: c_int,
) {
}

/// `__cudaRegisterHostVar`.
pub unsafe extern "C" fn __cuda_register_host_var(
    _handle: *mut *mut c_void,
    _device_name: *const c_char,
    _host_var: *mut c_char,
    _size: usize,
) {
}

// Host functions and stream callbacks, answered only where there is no real
// runtime (`.fallback` in build.rs). The virtual device never has work
// queued on a stream, so a stream has always reached the host function
// enqueued on it: it runs at once, before the call returns (CUDA runs it on
// a thread of its own; nothing else runs on the virtual device meanwhile).

/// `cudaLaunchHostFunc`.
pub unsafe extern "C" fn cuda_launch_host_func(
    _stream: types::cudaStream_t,
    r#fn: types::cudaHostFn_t,
    user_data: *mut c_void,
) -> cudaError_t {
    let Some(f) = r#fn else {
        return types::cudaErrorInvalidValue;
    };
    // SAFETY: the caller's host function, with the caller's data.
    unsafe { f(user_data) };
    types::cudaSuccess
}

/// `cudaStreamAddCallback`: `flags` must be 0, as CUDA requires.
pub unsafe extern "C" fn cuda_stream_add_callback(
    stream: types::cudaStream_t,
    callback: types::cudaStreamCallback_t,
    user_data: *mut c_void,
    flags: std::ffi::c_uint,
) -> cudaError_t {
    let Some(f) = callback else {
        return types::cudaErrorInvalidValue;
    };
    if flags != 0 {
        return types::cudaErrorInvalidValue;
    }
    // SAFETY: the caller's callback, with the caller's stream and data.
    unsafe { f(stream, types::cudaSuccess, user_data) };
    types::cudaSuccess
}

// The per-thread default stream's variants: the same on the virtual device.
pub use cuda_launch_host_func as cuda_launch_host_func_ptsz;
pub use cuda_stream_add_callback as cuda_stream_add_callback_ptsz;

/// `cudaLaunchHostFunc_v2` (13): any `syncMode` is the same here, as the
/// function runs before the call returns.
#[cfg(not(cudastub_major = "12"))]
pub unsafe extern "C" fn cuda_launch_host_func_v2(
    stream: types::cudaStream_t,
    r#fn: types::cudaHostFn_t,
    user_data: *mut c_void,
    _sync_mode: std::ffi::c_uint,
) -> cudaError_t {
    // SAFETY: as the caller promises.
    unsafe { cuda_launch_host_func(stream, r#fn, user_data) }
}

#[cfg(not(cudastub_major = "12"))]
pub use cuda_launch_host_func_v2 as cuda_launch_host_func_v2_ptsz;
