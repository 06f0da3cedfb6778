//! Builds a libnvidia-ml.so.1 that lists the one virtual GPU of the
//! `device` crate; everything else goes to the real NVML.

use cudastub_codegen::emit::shim::ShimBuild;

fn main() {
    let shim = ShimBuild::standard()
        .library("nvml")
        .default_major(12)
        .implement([
            // APIs: `nvmlInit` is `nvmlInit` and `nvmlInit_v2`, each
            // implemented (src/backend.rs); `nvmlDeviceGetMemoryInfo` is
            // also `_v2`, with its own struct.
            "nvmlInit",
            "nvmlShutdown",
            "nvmlDeviceGetCount",
            "nvmlDeviceGetHandleByIndex",
            "nvmlDeviceGetName",
            "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetUUID",
            // `nvmlDeviceGetPciInfo`, `_v2` and `_v3` (which nvml.h names
            // `nvmlDeviceGetPciInfo`): each fills only its own struct.
            "nvmlDeviceGetPciInfo",
            "nvmlDeviceGetCudaComputeCapability",
            "nvmlSystemGetDriverVersion",
        ]);
    if let Err(e) = shim.build() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
