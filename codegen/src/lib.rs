//! cudastub's code generator: one manifest of a versioned library's exports
//! (`cuda-api.yaml`) in, version scripts, symbol lists and Rust shims out.
//!
//! # A shim of your own
//!
//! A shim is a `cdylib` crate whose `build.rs` calls [`emit::shim::ShimBuild`].
//! This `build.rs` builds `libcudart.so.12` (or `.13` with
//! `CUDASTUB_MAJOR=13`) exporting every function of the real runtime, each
//! `name@@libcudart.so.N`, forwarded with one jump; the implemented and
//! failing functions are optional:
//!
//! ```no_run
//! // build.rs
//! use cudastub_codegen::emit::shim::ShimBuild;
//!
//! fn main() {
//!     let shim = ShimBuild::standard()                 // the manifests shipped in this crate
//!         .library("cudart")                           // or cublas, cublasLt, cuda, nvml
//!         .default_major(12)                           // CUDASTUB_MAJOR overrides it
//!         .implement(["cudaGetDeviceCount"])           // Rust: crate::backend::cuda_get_device_count
//!         .fail(["cudaMalloc"], "cudaErrorNotSupported"); // everything else is forwarded
//!     shim.build().unwrap_or_else(|e| panic!("{e}"));
//! }
//! ```
//!
//! The standard manifests (`codegen/api/*.yaml`, indexed by `codegen/api/cuda-api.yaml`) are
//! part of this crate, so a shim crate needs no copy of them; a manifest of
//! your own is `ShimBuild::new("my-lib.yaml")`.
//!
//! The crate's `Cargo.toml` links the run-time support, and uses this crate
//! without default features (no libclang, no CUDA headers, no network):
//!
//! ```toml
//! [lib]
//! name = "cudart"               # target/release/libcudart.so
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! cudastub-runtime = "0.1"
//!
//! [build-dependencies]
//! cudastub-codegen = { version = "0.1", default-features = false }
//! ```
//!
//! and its `src/lib.rs` includes what `build.rs` generated, next to the
//! module of Rust implementations:
//!
//! ```ignore
//! include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs"));
//! mod backend; // pub unsafe extern "C" fn cuda_get_device_count(count: *mut c_int) -> cudaError_t
//! ```
//!
//! The `cudastub` command line tool (feature `cli`, on by default) is the
//! same library behind a command line: `cudastub generate` writes the
//! version scripts and the standard shim crates, `cudastub dist --package
//! DIR` builds your shim crate for every major and completes each
//! `dist/<major>/` with the standard forward-only shims of the libraries it
//! does not build, `cudastub audit` proves a built library from its ELF
//! file, `cudastub diff` compares two releases.
//!
//! # Modules
//!
//! - [`manifest`] is the model: what a symbol, a major and a prototype are,
//!   loaded and validated with file:line:column errors; [`catalog`] loads the
//!   index of several libraries' manifests (the standard ones:
//!   [`catalog::Catalog::standard`]), and [`view`] is one (library,
//!   major) as every emitter sees it.
//! - [`elf`] reads what a real shared library exports, with its versions.
//! - [`audit`] proves a built library against the manifest, a real library
//!   and its consumers; [`diff`] compares two export surfaces and the C
//!   types their prototypes use. Both print JSON reports whose JSON Schemas
//!   come from [`schema`].
//! - [`emit`] turns a manifest into version scripts, symbol lists, the
//!   standard shim crates and the Rust source of a shim; `build.rs` files
//!   call [`emit::shim`] directly.
//! - `import` (feature `import`) refreshes a manifest from a real library and
//!   its headers.

pub mod audit;
pub mod catalog;
pub mod ctype;
pub mod diag;
pub mod diff;
pub mod elf;
pub mod emit;
pub mod export_list;
#[cfg(feature = "import")]
pub mod import;
pub mod manifest;
#[cfg(feature = "remote")]
pub mod remote;
pub mod roles;
pub mod schema;
pub mod view;

/// The `cc` crate [`emit::shim::ShimBuild`] compiles C sources with, so that a
/// build script configures it (`ShimBuild::c_build`) without depending on a
/// matching version itself.
pub use cc;

/// The `proc-macro2` and `quote` crates a [`emit::shim::PolicyEmitter`] of a
/// build script builds its items with.
pub use proc_macro2;
pub use quote;
