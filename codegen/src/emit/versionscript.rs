//! The per-major version script and symbol list (`versionscripts/`).
//!
//! The `.map` file is an explicit linker version script that any C or Rust
//! shim build can pass to the linker as is; the `.symbols` file is the list
//! reviewers diff, one `name@@node` line per export, like glibc's ABI lists.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::generated_banner;
use crate::manifest::Manifest;

/// One generated file: where it goes and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Path relative to the output directory.
    pub path: PathBuf,
    /// Full contents.
    pub contents: String,
}

/// `libcudart.so.12 { global: …; local: *; };` for `major`.
pub fn version_script(m: &Manifest, major: u32) -> String {
    let node = m.library.version_node_of(major);
    let mut o = generated_banner("#");
    let _ = writeln!(o, "{node} {{\n  global:");
    for name in m.symbols_of(major) {
        let _ = writeln!(o, "    {name};");
    }
    o.push_str("  local:\n    *;\n};\n");
    o
}

/// One `name@@node` line per export of `major`, sorted.
pub fn symbol_list(m: &Manifest, major: u32) -> String {
    let node = m.library.version_node_of(major);
    let mut o = String::new();
    for name in m.symbols_of(major) {
        let _ = writeln!(o, "{name}@@{node}");
    }
    o
}

/// Every file `cudastub generate` writes into `versionscripts/`.
pub fn files(m: &Manifest) -> Vec<GeneratedFile> {
    m.majors
        .keys()
        .flat_map(|&major| {
            let soname = m.library.soname_of(major);
            [
                GeneratedFile {
                    path: Path::new(&format!("{soname}.map")).to_path_buf(),
                    contents: version_script(m, major),
                },
                GeneratedFile {
                    path: Path::new(&format!("{soname}.symbols")).to_path_buf(),
                    contents: symbol_list(m, major),
                },
            ]
        })
        .collect()
}
