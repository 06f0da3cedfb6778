//! The standard shim crates: one small generated crate per (library, major)
//! under `shim/<library>-<major>/`, so that one `cargo build` builds every
//! shim at once, in parallel. Each is a `build.rs` calling
//! [`super::shim::ShimBuild`] with its library and major, and a `lib.rs`
//! that includes the generated source.

use std::path::PathBuf;

use heck::ToSnakeCase;

use super::generated_banner;
use super::versionscript::GeneratedFile;
use crate::catalog::Catalog;
use crate::view::LibraryMajor;

/// The directory of the standard shim crates, relative to the index.
pub const SHIM_DIR: &str = "shim";

/// The cargo package name of a standard shim: `cudastub-shim-cublas-12`.
pub fn package_name(library: &str, major: u32) -> String {
    format!("cudastub-shim-{}-{major}", library.to_lowercase())
}

/// The cargo library target's name: `cublas_lt_12` (built as `libcublas_lt_12.so`).
pub fn target_name(library: &str, major: u32) -> String {
    format!("{}_{major}", library.to_snake_case())
}

/// The crate directory of a standard shim, relative to the index: `shim/cublas-12`.
pub fn crate_dir(library: &str, major: u32) -> PathBuf {
    PathBuf::from(SHIM_DIR).join(format!("{}-{major}", library.to_lowercase()))
}

/// The files of one standard shim crate, relative to the index's directory.
pub fn files(view: &LibraryMajor, index_file: &str) -> Vec<GeneratedFile> {
    let (library, major) = (view.library, view.major);
    let dir = crate_dir(library, major);
    let soname = &view.soname;
    let cargo = format!(
        "{banner}[package]
name = \"{package}\"
description = \"{soname}: every export of the real library, versioned as NVIDIA's, forwarded with one jump\"
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
publish = false

[lib]
name = \"{target}\"
crate-type = [\"cdylib\"]
path = \"lib.rs\"
# The shim is proved by reading its ELF file (tests/), not by unit tests:
# building it as a test harness would only compile it twice.
test = false
doctest = false
bench = false

[dependencies]
cudastub-runtime.workspace = true

[build-dependencies]
cudastub-codegen.workspace = true
",
        banner = generated_banner("#"),
        package = package_name(library, major),
        target = target_name(library, major),
    );
    let build = format!(
        "{banner}//! Generates {soname} from {index_file}.

fn main() {{
    let shim = cudastub_codegen::emit::shim::ShimBuild::new(\"../../{index_file}\")
        .library(\"{library}\")
        .major({major});
    if let Err(e) = shim.build() {{
        eprintln!(\"{{e}}\");
        std::process::exit(1);
    }}
}}
",
        banner = generated_banner("//"),
    );
    let versioned = match &view.version_node {
        Some(node) => format!("versioned `@@{node}`"),
        None => "unversioned, as the real library's".to_string(),
    };
    let lib = format!(
        "{banner}//! `{soname}`: every export of the real library, {versioned},
//! forwarded to the real library with one jump (see `build.rs`).

include!(concat!(env!(\"OUT_DIR\"), \"/cudastub_shim.rs\"));
",
        banner = generated_banner("//"),
    );
    vec![
        GeneratedFile {
            path: dir.join("Cargo.toml"),
            contents: cargo,
        },
        GeneratedFile {
            path: dir.join("build.rs"),
            contents: build,
        },
        GeneratedFile {
            path: dir.join("lib.rs"),
            contents: lib,
        },
    ]
}

/// The crates of every (library, major) of `catalog`.
pub fn all_files(catalog: &Catalog) -> Vec<GeneratedFile> {
    let index_file = catalog
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    catalog
        .views()
        .iter()
        .flat_map(|v| files(v, &index_file))
        .collect()
}
