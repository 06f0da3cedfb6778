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
            // APIs: each names every ABI variant, implemented with its own
            // types (`cuDeviceTotalMem` takes `unsigned int *`, `_v2`
            // `size_t *`); `cuGetProcAddress` hands out the variant a
            // caller's CUDA version asks for.
            "cuDeviceTotalMem",
            "cuDeviceGetUuid",
            "cuDeviceGetPCIBusId",
            // ggml asks it of a device that supports virtual memory management.
            "cuMemGetAllocationGranularity",
        ]);
    if let Err(e) = shim.build() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
