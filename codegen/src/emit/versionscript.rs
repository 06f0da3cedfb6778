//! The per-(library, major) version script and symbol list (`versionscripts/`).
//!
//! The `.map` file is an explicit linker version script that any C or Rust
//! shim build can pass to the linker as is; the `.symbols` file is the list
//! reviewers diff, one `name@@node` line per export, like glibc's ABI lists.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::generated_banner;
use crate::catalog::Catalog;
use crate::view::LibraryMajor;

/// One generated file: where it goes and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Path relative to the output directory.
    pub path: PathBuf,
    /// Full contents.
    pub contents: String,
}

/// `libcudart.so.12 { global: …; local: *; };`, or for an unversioned
/// library the anonymous `{ global: …; local: *; };`.
pub fn version_script(view: &LibraryMajor) -> String {
    let mut o = generated_banner("#");
    match &view.version_node {
        Some(node) => {
            let _ = writeln!(o, "{node} {{\n  global:");
        }
        None => o.push_str("{\n  global:\n"),
    }
    for name in view.export_names() {
        let _ = writeln!(o, "    {name};");
    }
    o.push_str("  local:\n    *;\n};\n");
    o
}

/// One `name@@node` line per export (plain `name` when the library is
/// unversioned), functions and data objects, sorted.
pub fn symbol_list(view: &LibraryMajor) -> String {
    let mut o = String::new();
    for name in view.export_names() {
        let _ = writeln!(o, "{}", view.versioned(name));
    }
    o
}

/// The two files of one (library, major).
pub fn files(view: &LibraryMajor) -> [GeneratedFile; 2] {
    [
        GeneratedFile {
            path: PathBuf::from(format!("{}.map", view.file_stem())),
            contents: version_script(view),
        },
        GeneratedFile {
            path: PathBuf::from(format!("{}.symbols", view.file_stem())),
            contents: symbol_list(view),
        },
    ]
}

/// Every file `cudastub generate` writes into `versionscripts/`.
pub fn all_files(catalog: &Catalog) -> Vec<GeneratedFile> {
    catalog.views().iter().flat_map(files).collect()
}
