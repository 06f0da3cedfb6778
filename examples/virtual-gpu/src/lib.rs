//! The one virtual GPU: every fact the runtime, driver and NVML shims
//! answer with comes from here, so that the three agree.
//!
//! By default an "NVIDIA H100 80GB HBM3" (SXM5): compute capability 9.0,
//! 132 multiprocessors, 81559 MiB, a fixed UUID and PCI bus id 01:00.0.
//! Configured with `CUDASTUB_VGPU_NAME`, `CUDASTUB_VGPU_MEMORY_MIB`,
//! `CUDASTUB_VGPU_CC` (`major.minor`) and `CUDASTUB_VGPU_DRIVER_VERSION`
//! (the CUDA version the driver reports, `13000` for 13.0), read once.
//!
//! Attribute codes are the driver's `CU_DEVICE_ATTRIBUTE_*` values, which
//! the runtime's `cudaDevAttr*` share.

use std::sync::OnceLock;

/// The default name, as an H100 SXM5 reports it.
pub const H100_NAME: &str = "NVIDIA H100 80GB HBM3";
/// The default memory of an H100 80GB, in MiB.
pub const H100_MEMORY_MIB: usize = 81559;
/// The default CUDA driver version (a 580 driver: CUDA 13.0).
pub const DRIVER_VERSION: i32 = 13000;
/// The NVML driver version string.
pub const DRIVER_VERSION_TEXT: &str = "580.159.04";
/// Multiprocessors of an H100 SXM5.
pub const MULTIPROCESSORS: i32 = 132;
/// The UUID's 16 bytes; as text `GPU-5f7e2d4c-8b1a-4e6f-9c3d-2a7b8e1f0c5d`.
pub const UUID: [u8; 16] = [
    0x5f, 0x7e, 0x2d, 0x4c, 0x8b, 0x1a, 0x4e, 0x6f, 0x9c, 0x3d, 0x2a, 0x7b, 0x8e, 0x1f, 0x0c, 0x5d,
];
/// PCI location: domain, bus, device (function 0).
pub const PCI_DOMAIN: i32 = 0;
pub const PCI_BUS: i32 = 1;
pub const PCI_DEVICE: i32 = 0;
/// The PCI device id NVML reports (0x2330 is the H100 SXM5, vendor 0x10de).
pub const PCI_DEVICE_ID: u32 = 0x2330_10de;
/// The PCI subsystem id NVML reports (an H100 SXM5's, vendor 0x10de).
pub const PCI_SUBSYSTEM_ID: u32 = 0x16c1_10de;
/// How many devices there are.
pub const COUNT: i32 = 1;
/// The allocation granularity of the virtual memory management API.
pub const VMM_GRANULARITY: usize = 2 << 20;

/// What the environment configured.
pub struct Config {
    /// The device name.
    pub name: String,
    /// Total memory in bytes.
    pub memory: usize,
    /// Compute capability.
    pub major: i32,
    pub minor: i32,
    /// The CUDA version the driver supports (`cudaDriverGetVersion`).
    pub driver_version: i32,
}

/// The device, configured on first use.
pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let (major, minor) = var("CUDASTUB_VGPU_CC")
            .and_then(|cc| {
                let (a, b) = cc.split_once('.')?;
                Some((a.trim_ascii().parse().ok()?, b.trim_ascii().parse().ok()?))
            })
            .unwrap_or((9, 0));
        Config {
            name: var("CUDASTUB_VGPU_NAME").unwrap_or_else(|| H100_NAME.to_string()),
            memory: var("CUDASTUB_VGPU_MEMORY_MIB")
                .and_then(|m| m.trim_ascii().parse::<usize>().ok())
                .unwrap_or(H100_MEMORY_MIB)
                << 20,
            major,
            minor,
            driver_version: var("CUDASTUB_VGPU_DRIVER_VERSION")
                .and_then(|v| v.trim_ascii().parse().ok())
                .unwrap_or(DRIVER_VERSION),
        }
    })
}

/// Whether `ordinal` names the device.
pub fn exists(ordinal: i64) -> bool {
    (0..COUNT as i64).contains(&ordinal)
}

/// The UUID as NVML writes it: `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn uuid_text() -> String {
    let hex: Vec<String> = UUID.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        hex[0..4].concat(),
        hex[4..6].concat(),
        hex[6..8].concat(),
        hex[8..10].concat(),
        hex[10..16].concat()
    )
}

/// The PCI bus id as the runtime and driver write it (`0000:01:00.0`).
pub fn pci_bus_id() -> String {
    format!("{PCI_DOMAIN:04x}:{PCI_BUS:02x}:{PCI_DEVICE:02x}.0")
}

/// The PCI bus id as NVML writes it (`00000000:01:00.0`).
pub fn nvml_pci_bus_id() -> String {
    format!("{PCI_DOMAIN:08x}:{PCI_BUS:02x}:{PCI_DEVICE:02x}.0")
}

/// Copies `text` into the C buffer `dst` of `len` bytes with its NUL;
/// false (nothing written) when it does not fit.
///
/// # Safety
/// `dst` is null or writable for `len` bytes.
pub unsafe fn copy_c_string(text: &str, dst: *mut std::ffi::c_char, len: usize) -> bool {
    if dst.is_null() || len <= text.len() {
        return false;
    }
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), dst.cast::<u8>(), text.len());
        *dst.add(text.len()) = 0;
    }
    true
}

/// The value of a device attribute (a `CU_DEVICE_ATTRIBUTE_*` code, equal
/// to the runtime's `cudaDevAttr*`), as an H100 SXM5 answers it; `None`
/// for one the virtual device does not know.
pub fn attribute(code: i64) -> Option<i32> {
    let c = config();
    Some(match code {
        1 => 1024,             // MAX_THREADS_PER_BLOCK
        2 | 3 => 1024,         // MAX_BLOCK_DIM_X, _Y
        4 => 64,               // MAX_BLOCK_DIM_Z
        5 => i32::MAX,         // MAX_GRID_DIM_X
        6 | 7 => 65535,        // MAX_GRID_DIM_Y, _Z
        8 => 48 << 10,         // MAX_SHARED_MEMORY_PER_BLOCK
        9 => 64 << 10,         // TOTAL_CONSTANT_MEMORY
        10 => 32,              // WARP_SIZE
        11 => i32::MAX,        // MAX_PITCH
        12 => 65536,           // MAX_REGISTERS_PER_BLOCK
        13 => 1_980_000,       // CLOCK_RATE (kHz)
        14 => 512,             // TEXTURE_ALIGNMENT
        15 => 1,               // GPU_OVERLAP
        16 => MULTIPROCESSORS, // MULTIPROCESSOR_COUNT
        17 => 0,               // KERNEL_EXEC_TIMEOUT
        18 => 0,               // INTEGRATED
        19 => 1,               // CAN_MAP_HOST_MEMORY
        20 => 0,               // COMPUTE_MODE (default)
        30 => 512,             // SURFACE_ALIGNMENT
        31 => 1,               // CONCURRENT_KERNELS
        32 => 1,               // ECC_ENABLED
        33 => PCI_BUS,         // PCI_BUS_ID
        34 => PCI_DEVICE,      // PCI_DEVICE_ID
        35 => 0,               // TCC_DRIVER
        36 => 2_619_000,       // MEMORY_CLOCK_RATE (kHz)
        37 => 5120,            // GLOBAL_MEMORY_BUS_WIDTH
        38 => 50 << 20,        // L2_CACHE_SIZE
        39 => 2048,            // MAX_THREADS_PER_MULTIPROCESSOR
        40 => 3,               // ASYNC_ENGINE_COUNT
        41 => 1,               // UNIFIED_ADDRESSING
        50 => PCI_DOMAIN,      // PCI_DOMAIN_ID
        75 => c.major,         // COMPUTE_CAPABILITY_MAJOR
        76 => c.minor,         // COMPUTE_CAPABILITY_MINOR
        78 => 1,               // STREAM_PRIORITIES_SUPPORTED
        79 | 80 => 1,          // GLOBAL_L1_CACHE_SUPPORTED, LOCAL_L1_CACHE_SUPPORTED
        81 => 228 << 10,       // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        82 => 65536,           // MAX_REGISTERS_PER_MULTIPROCESSOR
        83 => 1,               // MANAGED_MEMORY
        84 => 0,               // MULTI_GPU_BOARD
        85 => 0,               // MULTI_GPU_BOARD_GROUP_ID
        86 => 0,               // HOST_NATIVE_ATOMIC_SUPPORTED
        88 => 0,               // PAGEABLE_MEMORY_ACCESS
        89 => 1,               // CONCURRENT_MANAGED_ACCESS
        90 => 1,               // COMPUTE_PREEMPTION_SUPPORTED
        91 => 1,               // CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM
        95 => 1,               // COOPERATIVE_LAUNCH
        97 => 227 << 10,       // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        102 => 1,              // VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED
        106 => 32,             // MAX_BLOCKS_PER_MULTIPROCESSOR
        111 => 1024,           // RESERVED_SHARED_MEMORY_PER_BLOCK
        115 => 1,              // MEMORY_POOLS_SUPPORTED
        120 => 1,              // CLUSTER_LAUNCH
        _ => return None,
    })
}
