//! Builds a libcuda.so.1 whose device queries answer from the one virtual
//! GPU of the `device` crate; everything else goes to the real driver.

use cudastub_codegen::emit::shim::ShimBuild;

fn main() {
    let shim = ShimBuild::standard()
        .library("cuda")
        .default_major(12)
        .implement([
            "cuInit",
            "cuDriverGetVersion",
            "cuDeviceGetCount",
            "cuDeviceGet",
            "cuDeviceGetName",
            "cuDeviceGetAttribute",
            "cuDeviceTotalMem",
            "cuDeviceTotalMem_v2",
            "cuDeviceGetUuid",
            "cuDeviceGetUuid_v2",
            "cuDeviceGetPCIBusId",
            // ggml asks it of a device that supports virtual memory management.
            "cuMemGetAllocationGranularity",
        ]);
    if let Err(e) = shim.build() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
