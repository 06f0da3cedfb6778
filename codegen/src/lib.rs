//! cudastub's code generator: one manifest of a versioned library's exports
//! (`cuda-api.yaml`) in, version scripts, symbol lists and Rust shims out.
//!
//! - [`manifest`] is the model: what a symbol, a major and a prototype are,
//!   loaded and validated with file:line:column errors.
//! - [`elf`] reads what a real shared library exports, with its versions.
//! - [`audit`] proves a built library against the manifest, a real library
//!   and its consumers; [`diff`] compares two export surfaces.
//! - [`emit`] turns a manifest into version scripts, symbol lists and the
//!   Rust source of a shim; `build.rs` files call [`emit::shim`] directly.
//! - `import` (feature `import`) refreshes a manifest from a real library and
//!   its headers.
//!
//! A shim's `build.rs` needs only this crate without default features (no
//! libclang, no CUDA headers, no network):
//!
//! ```no_run
//! // build.rs of a crate with `crate-type = ["cdylib"]` and `libc` as a dependency;
//! // its src/lib.rs does `include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs"));`
//! use cudastub_codegen::emit::shim::ShimBuild;
//! ShimBuild::new("../cuda-api.yaml").default_major(12).build().unwrap_or_else(|e| panic!("{e}"));
//! ```

pub mod audit;
pub mod catalog;
pub mod ctype;
pub mod diag;
pub mod diff;
pub mod elf;
pub mod emit;
#[cfg(feature = "import")]
pub mod import;
pub mod manifest;
pub mod view;
