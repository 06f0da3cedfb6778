//! Proving a built library: its exports, read from the ELF file, against
//! what the manifest says a major must export.
//!
//! The check is on the file, never on the build that made it: a version
//! script can be silently ignored by a linker, and the only evidence that
//! matters is what the dynamic loader will see.

use std::fmt;

use crate::elf::{ElfImage, SymbolKind, Versioning};
use crate::manifest::Manifest;

/// One way a library differs from what it should be.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Difference {
    /// The soname is not the expected one.
    WrongSoname {
        expected: String,
        found: Option<String>,
    },
    /// The version definitions are not exactly the base plus the node.
    WrongVersionDefinitions {
        expected: Vec<String>,
        found: Vec<String>,
    },
    /// A function the manifest lists is not exported.
    Missing { symbol: String },
    /// An export the manifest does not list.
    Extra { symbol: String },
    /// An export without any version.
    Unversioned { symbol: String },
    /// An export with a hidden version (`name@node`).
    Hidden { symbol: String },
    /// An export with another version node than the expected one.
    WrongVersion {
        symbol: String,
        expected: String,
        found: String,
    },
    /// An export that is not a function.
    NotAFunction { symbol: String, kind: String },
}

impl Difference {
    /// A short name for the kind of difference, used to group reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Difference::WrongSoname { .. } => "wrong soname",
            Difference::WrongVersionDefinitions { .. } => "wrong version definitions",
            Difference::Missing { .. } => "missing",
            Difference::Extra { .. } => "extra",
            Difference::Unversioned { .. } => "unversioned",
            Difference::Hidden { .. } => "hidden",
            Difference::WrongVersion { .. } => "wrong version",
            Difference::NotAFunction { .. } => "not a function",
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::WrongSoname { expected, found } => {
                write!(
                    f,
                    "soname is {}, expected {expected}",
                    found.as_deref().unwrap_or("(none)")
                )
            }
            Difference::WrongVersionDefinitions { expected, found } => {
                write!(
                    f,
                    "version definitions are [{}], expected [{}]",
                    found.join(", "),
                    expected.join(", ")
                )
            }
            Difference::Missing { symbol } => write!(f, "{symbol} is not exported"),
            Difference::Extra { symbol } => {
                write!(f, "{symbol} is exported but not in the manifest")
            }
            Difference::Unversioned { symbol } => {
                write!(f, "{symbol} is exported without a version")
            }
            Difference::Hidden { symbol } => {
                write!(f, "{symbol} is exported as a hidden (non-default) version")
            }
            Difference::WrongVersion {
                symbol,
                expected,
                found,
            } => write!(f, "{symbol} has version {found}, expected {expected}"),
            Difference::NotAFunction { symbol, kind } => {
                write!(f, "{symbol} is a {kind} symbol, not a function")
            }
        }
    }
}

/// The result of checking one library against a major of the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestAudit {
    /// The major checked against.
    pub major: u32,
    /// Exports found.
    pub exports: usize,
    /// Every difference, sorted.
    pub differences: Vec<Difference>,
}

impl ManifestAudit {
    /// `true` when the library is exactly what the manifest says.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Checks `image` against major `major` of `m`: soname, version
/// definitions, and every export a `FUNC` with the default version.
pub fn against_manifest(image: &ElfImage, m: &Manifest, major: u32) -> ManifestAudit {
    let soname = m.library.soname_of(major);
    let node = m.library.version_node_of(major);
    let mut differences = Vec::new();
    if image.soname.as_deref() != Some(soname.as_str()) {
        differences.push(Difference::WrongSoname {
            expected: soname.clone(),
            found: image.soname.clone(),
        });
    }
    // The real libraries define the base (the soname) and the node.
    let expected_defs = vec![soname.clone(), node.clone()];
    let found_defs: Vec<String> = image.version_defs.iter().map(|d| d.name.clone()).collect();
    if found_defs != expected_defs || !image.version_defs.first().is_some_and(|d| d.base) {
        differences.push(Difference::WrongVersionDefinitions {
            expected: expected_defs,
            found: found_defs,
        });
    }
    let wanted = m.symbols_of(major);
    let mut exported: Vec<&str> = Vec::new();
    for s in &image.exports {
        exported.push(&s.name);
        if wanted.binary_search(&s.name.as_str()).is_err() {
            differences.push(Difference::Extra {
                symbol: s.versioned_name(),
            });
            continue;
        }
        if s.kind != SymbolKind::Func {
            differences.push(Difference::NotAFunction {
                symbol: s.name.clone(),
                kind: s.kind.to_string(),
            });
        }
        match &s.version {
            Versioning::Default(v) if *v == node => {}
            Versioning::Default(v) => differences.push(Difference::WrongVersion {
                symbol: s.name.clone(),
                expected: node.clone(),
                found: v.clone(),
            }),
            Versioning::Hidden(_) => differences.push(Difference::Hidden {
                symbol: s.versioned_name(),
            }),
            Versioning::None => differences.push(Difference::Unversioned {
                symbol: s.name.clone(),
            }),
        }
    }
    exported.sort_unstable();
    for w in wanted {
        if exported.binary_search(&w).is_err() {
            differences.push(Difference::Missing {
                symbol: format!("{w}@@{node}"),
            });
        }
    }
    differences.sort();
    ManifestAudit {
        major,
        exports: image.exports.len(),
        differences,
    }
}
