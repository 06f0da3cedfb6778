//! Builds a libcudart.so.N that answers device discovery itself, from the
//! one virtual GPU of the `device` crate.

use cudastub_codegen::emit::shim::ShimBuild;

fn main() {
    let shim = ShimBuild::standard().library("cudart").default_major(12);
    let shim = shim
        // Answered in Rust (src/backend.rs, named by `rust_impl_name`).
        .implement([
            "cudaGetDeviceCount",
            "cudaGetDevice",
            "cudaSetDevice",
            "cudaDeviceGetAttribute",
            "cudaDeviceGetPCIBusId",
            "cudaMemGetInfo",
            // An API: every ABI variant of it, each with its own types. In
            // 12 that is the legacy `cudaGetDeviceProperties` (CUDA 11's
            // struct) and `cudaGetDeviceProperties_v2`; in 13 the one.
            "cudaGetDeviceProperties",
        ])
        // Kernel registration (ELF constructors of nvcc-built code), the
        // error state, the runtime version and host functions: forwarded
        // when a real runtime is there, answered in Rust only when not.
        .fallback([
            "__cudaRegister*",
            "__cudaUnregisterFatBinary",
            "cudaGetLastError",
            "cudaPeekAtLastError",
            "cudaRuntimeGetVersion",
            // Host functions: run at once on a device with no queued work.
            "cudaLaunchHostFunc",
            "cudaStreamAddCallback",
        ])
        // `__cudaRegisterUnifiedTable` has unknown parameters: forwarded.
        .forward(["__cudaRegisterUnifiedTable"])
        // Answered in C (src/driver_version.c, `cudastub_impl_` prefix, declared in
        // the generated cudastub_impl.h).
        .implement_in_c(["cudaDriverGetVersion"])
        .c_source("src/driver_version.c")
        // The cc::Build is ours to configure: the device crate's default
        // driver version, which the driver shim reports too.
        .c_build(|cc| {
            cc.define(
                "VGPU_DRIVER_VERSION",
                device::DRIVER_VERSION.to_string().as_str(),
            );
        });
    // Everything else is forwarded to the real runtime (the default policy):
    // with a real GPU, allocations, copies and launches are the real
    // runtime's; with none, each fails with the error of a missing runtime.
    if let Err(e) = shim.build() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
