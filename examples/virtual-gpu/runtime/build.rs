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
        // error state and the runtime version: forwarded when a real runtime
        // is there, answered (as no-ops) when not.
        .implement([
            "__cudaRegister*",
            "__cudaUnregisterFatBinary",
            "cudaGetLastError",
            "cudaPeekAtLastError",
            "cudaRuntimeGetVersion",
        ])
        // `__cudaRegisterUnifiedTable` has unknown parameters: forwarded.
        .forward(["__cudaRegisterUnifiedTable"])
        // Answered in C (src/driver_version.c, `cudastub_impl_` prefix, declared in
        // the generated cudastub_impl.h).
        .implement_in_c(["cudaDriverGetVersion"])
        .c_source("src/driver_version.c")
        // A virtual device has no memory to give out.
        .fail(
            [
                "cudaMalloc",
                "cudaFree",
                "cudaMallocHost",
                "cudaMallocManaged",
            ],
            "cudaErrorNotSupported",
        );
    // Everything else is forwarded to the real runtime (the default policy).
    if let Err(e) = shim.build() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
