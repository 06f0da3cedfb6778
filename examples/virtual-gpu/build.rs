//! Builds a libcudart.so.N that answers device discovery itself.

use cudastub_codegen::emit::shim::ShimBuild;

fn main() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../cuda-api.yaml");
    let shim = ShimBuild::new(manifest).library("cudart").default_major(12);
    let major = shim.selected_major().unwrap_or_else(|e| panic!("{e}"));
    // Every variant of cudaGetDeviceProperties this major exports.
    let properties: &[&str] = match major {
        12 => &["cudaGetDeviceProperties", "cudaGetDeviceProperties_v2"],
        _ => &["cudaGetDeviceProperties"],
    };
    let shim = shim
        // Answered in Rust (src/backend.rs, named by `rust_impl_name`).
        .implement(["cudaGetDeviceCount", "cudaGetDevice", "cudaSetDevice", "cudaDeviceGetAttribute", "cudaMemGetInfo"])
        .implement(properties.iter().copied())
        // Answered in C (src/driver_version.c, `cudastub_impl_` prefix, declared in
        // the generated cudastub_impl.h).
        .implement_in_c(["cudaDriverGetVersion"])
        .c_source("src/driver_version.c")
        // A virtual device has no memory to give out.
        .fail(["cudaMalloc", "cudaFree", "cudaMallocHost", "cudaMallocManaged"], "cudaErrorNotSupported");
    // Everything else is forwarded to the real runtime (the default policy).
    if let Err(e) = shim.build() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
