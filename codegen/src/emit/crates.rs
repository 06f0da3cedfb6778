//! The standard shim crates: one small generated crate per (library, major)
//! under `shim/<library>-<major>/`, so that one `cargo build` builds every
//! shim at once, in parallel. Each is a `build.rs` calling
//! [`super::shim::ShimBuild`] with its library and major, and a `lib.rs`
//! that includes the generated source.
//!
//! The same crates, reading the standard manifests shipped in this crate,
//! make a scratch workspace of their own ([`forward_workspace`]): how
//! `cudastub dist --package` completes a user's shims outside this
//! repository, where `shim/` does not exist.

use std::path::PathBuf;

use heck::ToSnakeCase;

use super::generated_banner;
use super::versionscript::GeneratedFile;
use crate::catalog::Catalog;
use crate::view::LibraryMajor;

/// The directory of the standard shim crates, relative to the index.
pub const SHIM_DIR: &str = "shim";

/// The package name of a remote GPU's client shim: `cudastub-remote-shim-cudart-12`.
pub fn remote_package_name(library: &str, major: u32) -> String {
    format!("cudastub-remote-shim-{}-{major}", library.to_lowercase())
}

/// The library target's name of a remote client shim: `cudart_12_remote`
/// (its file must not be the forwarding shim's in a shared target directory).
pub fn remote_target_name(library: &str, major: u32) -> String {
    format!("{}_remote", target_name(library, major))
}

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

/// Where a generated shim crate's `build.rs` reads its manifest.
#[derive(Clone, Copy, Debug)]
pub enum ManifestSource<'a> {
    /// The index of this name in the workspace root, two directories up
    /// (`cuda-api.yaml`: the repository's own shim crates).
    Index(&'a str),
    /// The standard manifests shipped in cudastub-codegen
    /// (`ShimBuild::standard()`).
    Standard,
}

/// The files of one standard shim crate, relative to the workspace root.
pub fn files(view: &LibraryMajor, manifest: ManifestSource) -> Vec<GeneratedFile> {
    crate_files(view, manifest, false)
}

/// The files of one remote GPU client shim crate (`shim/cudart-12-remote`),
/// relative to the workspace root.
pub fn remote_files(view: &LibraryMajor, manifest: ManifestSource) -> Vec<GeneratedFile> {
    crate_files(view, manifest, true)
}

fn crate_files(view: &LibraryMajor, manifest: ManifestSource, remote: bool) -> Vec<GeneratedFile> {
    let (library, major) = (view.library, view.major);
    let soname = &view.soname;
    let lib_what = if remote {
        "sent to the GPU server through libcudastub-remote.so"
    } else {
        "forwarded to the real library with one jump"
    };
    let (dir, package, target, what, builder) = if remote {
        (
            PathBuf::from(SHIM_DIR).join(format!("{}-{major}-remote", library.to_lowercase())),
            remote_package_name(library, major),
            remote_target_name(library, major),
            "sent to the GPU server (a remote GPU's client: `cudastub dist --remote`)",
            "\n        .remote()",
        )
    } else {
        (
            crate_dir(library, major),
            package_name(library, major),
            target_name(library, major),
            "forwarded with one jump",
            "",
        )
    };
    let cargo = format!(
        "{banner}[package]
name = \"{package}\"
description = \"{soname}: every export of the real library, versioned as NVIDIA's, {what}\"
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
    );
    let (from, shim_build) = match manifest {
        ManifestSource::Index(index_file) => (
            index_file.to_string(),
            format!("ShimBuild::new(\"../../{index_file}\")"),
        ),
        ManifestSource::Standard => (
            "the standard manifests of cudastub-codegen".to_string(),
            "ShimBuild::standard()".to_string(),
        ),
    };
    let build = format!(
        "{banner}//! Generates {soname} from {from}.

fn main() {{
    let shim = cudastub_codegen::emit::shim::{shim_build}
        .library(\"{library}\")
        .major({major}){builder};
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
//! {lib_what} (see `build.rs`).

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
    let views = catalog.views();
    let source = ManifestSource::Index(&index_file);
    views
        .iter()
        .flat_map(|v| files(v, source))
        .chain(
            views
                .iter()
                .filter(|v| v.has_remote_client())
                .flat_map(|v| remote_files(v, source)),
        )
        .collect()
}

/// Where a dependency of a generated workspace comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrateSource {
    /// A local directory.
    Path(PathBuf),
    /// Exactly this version from crates.io.
    Version(String),
    /// A git repository at one commit.
    Git {
        /// The repository's URL.
        url: String,
        /// The commit.
        rev: String,
    },
}

impl CrateSource {
    /// The dependency as a TOML inline table, with `extra` keys
    /// (`default-features = false`) appended.
    pub fn toml(&self, extra: &str) -> String {
        let place = match self {
            CrateSource::Path(p) => format!("path = {}", toml_string(&p.to_string_lossy())),
            CrateSource::Version(v) => format!("version = {}", toml_string(&format!("={v}"))),
            CrateSource::Git { url, rev } => {
                format!("git = {}, rev = {}", toml_string(url), toml_string(rev))
            }
        };
        if extra.is_empty() {
            format!("{{ {place} }}")
        } else {
            format!("{{ {place}, {extra} }}")
        }
    }
}

/// A workspace of the standard shim crates of `views` reading the standard
/// manifests, whose `cudastub-runtime` and `cudastub-codegen` come from
/// `runtime` and `codegen` (the code generator without its default
/// features). Paths are relative to the workspace root.
pub fn forward_workspace(
    views: &[LibraryMajor],
    runtime: &CrateSource,
    codegen: &CrateSource,
) -> Vec<GeneratedFile> {
    let cargo = format!(
        "{banner}# The standard forward-only shims `cudastub dist --package` completes a
# user's shims with: one crate per (library, major), built in one cargo run.
[workspace]
resolver = \"3\"
members = [{members}]

[workspace.package]
version = \"{version}\"
edition = \"2024\"
rust-version = \"{rust_version}\"
license = \"MIT OR Apache-2.0\"

[workspace.dependencies]
cudastub-runtime = {runtime}
cudastub-codegen = {codegen}

[profile.release]
debug = false
",
        banner = generated_banner("#"),
        members = views
            .iter()
            .map(|v| format!("\"{}\"", crate_dir(v.library, v.major).display()))
            .collect::<Vec<_>>()
            .join(", "),
        version = env!("CARGO_PKG_VERSION"),
        rust_version = env!("CARGO_PKG_RUST_VERSION"),
        runtime = runtime.toml(""),
        codegen = codegen.toml("default-features = false"),
    );
    let mut files = vec![GeneratedFile {
        path: PathBuf::from("Cargo.toml"),
        contents: cargo,
    }];
    files.extend(
        views
            .iter()
            .flat_map(|v| self::files(v, ManifestSource::Standard)),
    );
    files
}

/// `text` as a TOML basic string, quoted.
fn toml_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
