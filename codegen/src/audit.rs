//! Proving a built library: its exports, read from the ELF file, against
//! what the manifest says a major must export, against a real library of the
//! same major, and against what the programs that use it require.
//!
//! The check is on the file, never on the build that made it: a version
//! script can be silently ignored by a linker, and the only evidence that
//! matters is what the dynamic loader will see.
//!
//! Three checks, each producing [`Difference`]s, collected in a [`Report`]:
//!
//! - **manifest** ([`against_manifest`]): the soname; the version
//!   definitions are exactly the base (named after the soname) and the node,
//!   like the real library's; every function of the major is exported as a
//!   `FUNC` `name@@node`; nothing is missing, extra, hidden (`name@node`) or
//!   unversioned.
//! - **reference** ([`against_reference`]): a real library of the same major;
//!   the soname, the version definitions, and the name, type and version of
//!   every export are equal, except that an export a release newer than the
//!   reference's added, which the manifest imported, is a *note*
//!   ([`Difference::Added`]: the 580 driver's additions against the 535 driver).
//! - **consumer** ([`against_consumer`]): an executable or shared library that
//!   links against the soname. Every undefined symbol whose version
//!   requirement names the soname (`cudaMalloc@libcudart.so.12`) must be
//!   exported with that exact version, default or hidden, which is what the
//!   loader demands. An unversioned export does not count: glibc happens to
//!   accept it only because the node's name equals the soname (the base
//!   definition's name), and cudastub never relies on that.
//!
//! Consumers without version requirements: a program linked against a library
//! that had no version information carries a `DT_NEEDED` on the soname but no
//! `.gnu.version_r` entry for it, and its references bind by name alone. Such
//! a consumer gets a *warning* ([`Difference::UnversionedRequirements`]), and
//! its unversioned references to names the manifest knows (any major) are
//! checked by name: one the library does not export at all is an error. A
//! consumer of a library that is unversioned by design (`libcuda.so.1`,
//! `libnvidia-ml.so.1`) gets no such warning: it could not be otherwise. A
//! consumer that needs nothing from the soname is a warning too
//! ([`Difference::NotAConsumer`]): usually the wrong file or the wrong major.
//! A weak reference that cannot be met is a warning: the loader leaves it null.
//! Warnings are reported but do not make a library differ.
//!
//! # JSON report
//!
//! `cudastub audit --format json` prints one object ([`JsonAudit`]): for a
//! library, [`JsonReport`]; for a directory, [`JsonDirectoryReport`], its
//! totals and a `libraries` list of `JsonReport`s; when an input cannot be
//! read, [`crate::schema::JsonError`] (`"verdict": "error"`, exit 2). Schema
//! version 3, described by the JSON Schema `schemas/audit.schema.json` that
//! `cudastub generate` writes from these types. Every key is always present
//! (`null` where it does not apply); a new key may be added without bumping
//! the version, a key is never removed or changed in meaning without
//! bumping it.
//!
//! ```text
//! {
//!   "schema_version": 3,
//!   "library": "dist/12/libcudart.so.12",   // the audited file, as given
//!   "soname": "libcudart.so.12",            // its DT_SONAME, or null
//!   "exports": 435,                         // its defined dynamic symbols
//!   "verdict": "ok",                        // "ok" (no errors) or "different"
//!   "errors": 0,                            // findings of severity "error"
//!   "warnings": 0,                          // findings of severity "warning"
//!   "notes": 0,                             // findings of severity "note"
//!   "checks": [                             // what it was checked against, in order
//!     {"against": "manifest",  "path": "codegen/api/cudart.yaml", "major": 12, "compared": 435},
//!     {"against": "reference", "path": ".../libcudart.so.12", "major": null, "compared": 435},
//!     {"against": "consumer",  "path": "app", "major": null, "compared": 6}
//!   ],
//!   "findings": [
//!     {"severity": "error",            // "error", "warning" or "note"
//!      "against": "consumer",          // the check that found it
//!      "path": "app",                  // that check's file
//!      "kind": "unsatisfied",          // see Difference::id; says what `expected` and `found` hold
//!      "symbol": "cudaGetDeviceCount@libcudart.so.12",  // or null
//!      "expected": {"name": "cudaGetDeviceCount", "version": "libcudart.so.12", "weak": false},
//!      "found": [],
//!      "message": "cudaGetDeviceCount@libcudart.so.12 is required but not exported"}
//!   ]
//! }
//! ```
//!
//! `expected` and `found` are data, never prose; their shape depends on `kind`.
//! An *export* is `{"name", "version", "binding", "type"}`: `version` is
//! the version node or `null`, `binding` is `"default"` (`name@@node`),
//! `"hidden"` (`name@node`) or `"unversioned"`, `type` is `FUNC`, `OBJECT`, …
//!
//! | kind | expected | found |
//! |---|---|---|
//! | `wrong-soname` | the soname, or `null` (a reference without one) | the soname, or `null` when there is none |
//! | `wrong-version-definitions` | `[{"name", "base"}]` | `[{"name", "base"}]` |
//! | `missing` | the export | `null` |
//! | `extra` | `null` | the export |
//! | `unversioned`, `hidden` | the export as it should be | the export as it is |
//! | `wrong-version`, `wrong-type` | `[export]` | `[export]` (every version of the name) |
//! | `unsatisfied`, `weak-unsatisfied` | the requirement `{"name", "version", "weak"}` (`version` `null` for a consumer without version requirements) | `[export]` the library has under that name, `[]` for none |
//! | `unversioned-requirements` | `null` | `{"soname", "references"}` |
//! | `not-a-consumer` | `{"soname"}` | `null` |
//! | `added` (a note) | `{"since", "reference_release"}` | the export |
//! | `dangling-link` | `null` | `{"target"}` (a file of an audited directory links to nothing) |
//! | `absent-library` | `{"soname"}` a consumer needs | `null` (the audited directory has no such file) |
//!
//! `compared` counts the manifest's functions of the major, the reference's
//! exports, or the consumer's requirements on the soname (for an unversioned
//! consumer: its references to names the manifest knows). Findings are sorted
//! by check, then kind, then symbol.
//!
//! Schema version 1 had prose in `expected` and `found`
//! (`"libcudart.so.12 (base), libcudart.so.12"`, `"cudaFree (unversioned)"`);
//! version 2 printed an array of reports for a directory, and nothing on
//! standard output for an error.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::elf::{DynSymbol, ElfImage, SymbolKind, VersionDef, Versioning};
use crate::manifest::Manifest;
pub use crate::schema::SCHEMA_VERSION;
use crate::schema::{JsonExport, JsonVersionDefinition};

/// Whether a finding makes the library differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The library is not what it must be.
    Error,
    /// Worth knowing; the library may still be right.
    Warning,
    /// Expected, said for the record: an export the reference lacks that a
    /// newer release the manifest imported added.
    Note,
}

/// One way a library differs from what it should be. Exports are
/// [`DynSymbol`]s: what the file has, or what it should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// The soname is not the expected one (`None`: no soname at all).
    WrongSoname {
        expected: Option<String>,
        found: Option<String>,
    },
    /// The version definitions are not the expected ones (names and base flags).
    WrongVersionDefinitions {
        expected: Vec<VersionDef>,
        found: Vec<VersionDef>,
    },
    /// A symbol that must be exported is not.
    Missing { expected: DynSymbol },
    /// An export that should not be there.
    Extra { found: DynSymbol },
    /// An export without any version.
    Unversioned {
        expected: DynSymbol,
        found: DynSymbol,
    },
    /// An export with a hidden version (`name@node`).
    Hidden {
        expected: DynSymbol,
        found: DynSymbol,
    },
    /// A name exported with other versions than the expected ones.
    WrongVersion {
        name: String,
        expected: Vec<DynSymbol>,
        found: Vec<DynSymbol>,
    },
    /// A name exported as another symbol type (`OBJECT` for `FUNC`, …).
    WrongType {
        name: String,
        expected: Vec<DynSymbol>,
        found: Vec<DynSymbol>,
    },
    /// A consumer requires `required` (`name@version`, or `name` when it has
    /// no version requirement) and the library does not export it like
    /// that; `found` is what the library has under that name.
    Unsatisfied {
        required: DynSymbol,
        found: Vec<DynSymbol>,
    },
    /// Like [`Difference::Unsatisfied`], for a weak reference: the loader
    /// leaves it null instead of failing. A warning.
    WeakUnsatisfied {
        required: DynSymbol,
        found: Vec<DynSymbol>,
    },
    /// A consumer needs `soname` but has no version requirement on it: it
    /// was linked against an unversioned library and binds by name only.
    /// `references` is how many of its references name a function the
    /// manifest knows. A warning.
    UnversionedRequirements { soname: String, references: usize },
    /// A consumer that needs nothing from `soname`. A warning.
    NotAConsumer { soname: String },
    /// An export the reference lacks, added by `since`, a release newer
    /// than the reference's (`reference_release`, the newest `since` of the
    /// reference's exports) that the manifest imported on purpose: the 535
    /// driver against a shim of the 535 and 580 lists. A note.
    Added {
        found: DynSymbol,
        since: String,
        reference_release: String,
    },
    /// A file of an audited directory that is a symbolic link to nothing
    /// (`target`, as the link holds it): the loader cannot open it.
    DanglingLink { target: PathBuf },
    /// A consumer needs `soname`, one of the manifest's libraries, and the
    /// audited `directory` holds no file of that name: the loader looks for
    /// it elsewhere, or fails (a CUDA 12 program against `dist/13`).
    AbsentLibrary { soname: String, directory: PathBuf },
}

/// `name@version` for a requirement with a version, else `name`.
fn required_name(r: &DynSymbol) -> String {
    match r.version_name() {
        Some(v) => format!("{}@{v}", r.name),
        None => r.name.clone(),
    }
}

/// `FUNC, OBJECT`: the symbol types of a list of exports.
fn kinds(s: &[DynSymbol]) -> String {
    let k: Vec<String> = s.iter().map(DynSymbol::shape).collect();
    k.join(", ")
}

/// `a@@node, a@node2`: a list of exports as linkers write them.
fn versioned_names(s: &[DynSymbol]) -> String {
    let v: Vec<String> = s.iter().map(DynSymbol::versioned_name).collect();
    v.join(", ")
}

/// `libcudart.so.12 (base), libcudart.so.12`: version definitions in a message.
fn describe_definitions(defs: &[VersionDef]) -> String {
    let d: Vec<String> = defs
        .iter()
        .map(|d| {
            if d.base {
                format!("{} (base)", d.name)
            } else {
                d.name.clone()
            }
        })
        .collect();
    d.join(", ")
}

/// Two lists of version definitions name the same definitions, base flags
/// included (their indexes may differ).
fn same_definitions(a: &[VersionDef], b: &[VersionDef]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.base == y.base)
}

impl Difference {
    /// A short human name for the kind of difference, used to group reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Difference::WrongSoname { .. } => "wrong soname",
            Difference::WrongVersionDefinitions { .. } => "wrong version definitions",
            Difference::Missing { .. } => "missing",
            Difference::Extra { .. } => "extra",
            Difference::Unversioned { .. } => "unversioned",
            Difference::Hidden { .. } => "hidden",
            Difference::WrongVersion { .. } => "wrong version",
            Difference::WrongType { .. } => "wrong type",
            Difference::Unsatisfied { .. } => "unsatisfied",
            Difference::WeakUnsatisfied { .. } => "unsatisfied weak reference",
            Difference::UnversionedRequirements { .. } => "unversioned requirements",
            Difference::NotAConsumer { .. } => "not a consumer",
            Difference::Added { .. } => "expected addition",
            Difference::DanglingLink { .. } => "dangling link",
            Difference::AbsentLibrary { .. } => "absent library",
        }
    }

    /// The stable identifier of the kind, the JSON `kind`.
    pub fn id(&self) -> &'static str {
        match self {
            Difference::WrongSoname { .. } => "wrong-soname",
            Difference::WrongVersionDefinitions { .. } => "wrong-version-definitions",
            Difference::Missing { .. } => "missing",
            Difference::Extra { .. } => "extra",
            Difference::Unversioned { .. } => "unversioned",
            Difference::Hidden { .. } => "hidden",
            Difference::WrongVersion { .. } => "wrong-version",
            Difference::WrongType { .. } => "wrong-type",
            Difference::Unsatisfied { .. } => "unsatisfied",
            Difference::WeakUnsatisfied { .. } => "weak-unsatisfied",
            Difference::UnversionedRequirements { .. } => "unversioned-requirements",
            Difference::NotAConsumer { .. } => "not-a-consumer",
            Difference::Added { .. } => "added",
            Difference::DanglingLink { .. } => "dangling-link",
            Difference::AbsentLibrary { .. } => "absent-library",
        }
    }

    /// The order of kinds in a report: the declaration order above.
    fn rank(&self) -> u8 {
        match self {
            Difference::WrongSoname { .. } => 0,
            Difference::WrongVersionDefinitions { .. } => 1,
            Difference::Missing { .. } => 2,
            Difference::Extra { .. } => 3,
            Difference::Unversioned { .. } => 4,
            Difference::Hidden { .. } => 5,
            Difference::WrongVersion { .. } => 6,
            Difference::WrongType { .. } => 7,
            Difference::Unsatisfied { .. } => 8,
            Difference::WeakUnsatisfied { .. } => 9,
            Difference::UnversionedRequirements { .. } => 10,
            Difference::NotAConsumer { .. } => 11,
            Difference::Added { .. } => 12,
            Difference::DanglingLink { .. } => 13,
            Difference::AbsentLibrary { .. } => 14,
        }
    }

    /// [`Severity::Warning`] for the kinds that do not make a library wrong.
    pub fn severity(&self) -> Severity {
        match self {
            Difference::WeakUnsatisfied { .. }
            | Difference::UnversionedRequirements { .. }
            | Difference::NotAConsumer { .. } => Severity::Warning,
            Difference::Added { .. } => Severity::Note,
            _ => Severity::Error,
        }
    }

    /// The symbol concerned, as linkers write it (`name@@node`, `name@node`,
    /// `name`), if any.
    pub fn symbol(&self) -> Option<String> {
        match self {
            Difference::Missing { expected: s }
            | Difference::Extra { found: s }
            | Difference::Added { found: s, .. } => Some(s.versioned_name()),
            Difference::Unversioned { found, .. } => Some(found.name.clone()),
            Difference::Hidden { found, .. } => Some(found.versioned_name()),
            Difference::WrongVersion { name, .. } | Difference::WrongType { name, .. } => {
                Some(name.clone())
            }
            Difference::Unsatisfied { required, .. }
            | Difference::WeakUnsatisfied { required, .. } => Some(required_name(required)),
            Difference::WrongSoname { .. }
            | Difference::WrongVersionDefinitions { .. }
            | Difference::UnversionedRequirements { .. }
            | Difference::NotAConsumer { .. }
            | Difference::DanglingLink { .. } => None,
            Difference::AbsentLibrary { soname, .. } => Some(soname.clone()),
        }
    }

    /// What the JSON report says was expected and found (see the module
    /// documentation for the shape of each kind).
    pub fn to_json(&self) -> FindingDetail {
        let export = JsonExport::from_symbol;
        let exports = |s: &[DynSymbol]| s.iter().map(JsonExport::from_symbol).collect();
        let definitions = |d: &[VersionDef]| d.iter().map(JsonVersionDefinition::from).collect();
        match self {
            Difference::WrongSoname { expected, found } => FindingDetail::WrongSoname {
                expected: expected.clone(),
                found: found.clone(),
            },
            Difference::WrongVersionDefinitions { expected, found } => {
                FindingDetail::WrongVersionDefinitions {
                    expected: definitions(expected),
                    found: definitions(found),
                }
            }
            Difference::Missing { expected } => FindingDetail::Missing {
                expected: export(expected),
                found: (),
            },
            Difference::Extra { found } => FindingDetail::Extra {
                expected: (),
                found: export(found),
            },
            Difference::Unversioned { expected, found } => FindingDetail::Unversioned {
                expected: export(expected),
                found: export(found),
            },
            Difference::Hidden { expected, found } => FindingDetail::Hidden {
                expected: export(expected),
                found: export(found),
            },
            Difference::WrongVersion {
                expected, found, ..
            } => FindingDetail::WrongVersion {
                expected: exports(expected),
                found: exports(found),
            },
            Difference::WrongType {
                expected, found, ..
            } => FindingDetail::WrongType {
                expected: exports(expected),
                found: exports(found),
            },
            Difference::Unsatisfied { required, found } => FindingDetail::Unsatisfied {
                expected: JsonRequirement::from_symbol(required),
                found: exports(found),
            },
            Difference::WeakUnsatisfied { required, found } => FindingDetail::WeakUnsatisfied {
                expected: JsonRequirement::from_symbol(required),
                found: exports(found),
            },
            Difference::UnversionedRequirements { soname, references } => {
                FindingDetail::UnversionedRequirements {
                    expected: (),
                    found: JsonUnversionedNeed {
                        soname: soname.clone(),
                        references: *references,
                    },
                }
            }
            Difference::NotAConsumer { soname } => FindingDetail::NotAConsumer {
                expected: JsonNeed {
                    soname: soname.clone(),
                },
                found: (),
            },
            Difference::Added {
                found,
                since,
                reference_release,
            } => FindingDetail::Added {
                expected: JsonAddition {
                    since: since.clone(),
                    reference_release: reference_release.clone(),
                },
                found: export(found),
            },
            Difference::DanglingLink { target } => FindingDetail::DanglingLink {
                expected: (),
                found: JsonLink {
                    target: target.display().to_string(),
                },
            },
            Difference::AbsentLibrary { soname, .. } => FindingDetail::AbsentLibrary {
                expected: JsonNeed {
                    soname: soname.clone(),
                },
                found: (),
            },
        }
    }
}

/// Sorts differences by kind, then symbol, then message: the report order.
fn sort_differences(differences: &mut [Difference]) {
    differences.sort_by_cached_key(|d| (d.rank(), d.symbol(), d.to_string()));
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::WrongSoname { expected, found } => {
                write!(
                    f,
                    "soname is {}, expected {}",
                    found.as_deref().unwrap_or("(none)"),
                    expected.as_deref().unwrap_or("(none)")
                )
            }
            Difference::WrongVersionDefinitions { expected, found } => {
                write!(
                    f,
                    "version definitions are [{}], expected [{}]",
                    describe_definitions(found),
                    describe_definitions(expected)
                )
            }
            Difference::Missing { expected } => {
                write!(f, "{} is not exported", expected.versioned_name())
            }
            Difference::Extra { found } => {
                write!(
                    f,
                    "{} is exported but should not be",
                    found.versioned_name()
                )
            }
            Difference::Unversioned { found, .. } => {
                write!(f, "{} is exported without a version", found.name)
            }
            Difference::Hidden { found, .. } => write!(
                f,
                "{} is exported as a hidden (non-default) version",
                found.versioned_name()
            ),
            Difference::WrongVersion {
                name,
                expected,
                found,
            } => write!(
                f,
                "{name} is exported as {}, expected {}",
                versioned_names(found),
                versioned_names(expected)
            ),
            Difference::WrongType {
                name,
                expected,
                found,
            } => write!(
                f,
                "{name} is a {} symbol, expected {}",
                kinds(found),
                kinds(expected)
            ),
            Difference::Unsatisfied { required, found }
            | Difference::WeakUnsatisfied { required, found } => {
                let weak = if matches!(self, Difference::WeakUnsatisfied { .. }) {
                    "weakly "
                } else {
                    ""
                };
                write!(
                    f,
                    "{} is {weak}required but not exported",
                    required_name(required)
                )?;
                if found.is_empty() {
                    return Ok(());
                }
                let described: Vec<String> = found
                    .iter()
                    .map(|s| match s.version {
                        Versioning::None => format!("{} (unversioned)", s.name),
                        _ => s.versioned_name(),
                    })
                    .collect();
                write!(f, " (the library has {})", described.join(", "))
            }
            Difference::UnversionedRequirements { soname, references } => write!(
                f,
                "needs {soname} without any version requirement on it (linked against an \
                 unversioned library?): its {references} references to the library's functions \
                 bind by name only"
            ),
            Difference::NotAConsumer { soname } => write!(
                f,
                "needs nothing from {soname} (no DT_NEEDED entry, no versioned reference)"
            ),
            Difference::Added {
                found,
                since,
                reference_release,
            } => write!(
                f,
                "{} is not in the reference: added in {since}, newer than the reference \
                 ({reference_release}), as the manifest imported",
                found.versioned_name()
            ),
            Difference::DanglingLink { target } => write!(
                f,
                "a symbolic link to {}, which does not exist",
                target.display()
            ),
            Difference::AbsentLibrary { soname, directory } => write!(
                f,
                "needs {soname}, which {} does not hold",
                directory.display()
            ),
        }
    }
}

/// What a library was checked against.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Against {
    /// A major of a manifest file.
    Manifest { path: PathBuf, major: u32 },
    /// A real library.
    Reference { path: PathBuf },
    /// A program or library that links against it.
    Consumer { path: PathBuf },
    /// The directory audited, for what is wrong with one of its files.
    Directory { path: PathBuf },
}

impl Against {
    /// The JSON `against`: `manifest`, `reference` or `consumer`.
    pub fn kind(&self) -> CheckKind {
        match self {
            Against::Manifest { .. } => CheckKind::Manifest,
            Against::Reference { .. } => CheckKind::Reference,
            Against::Consumer { .. } => CheckKind::Consumer,
            Against::Directory { .. } => CheckKind::Directory,
        }
    }

    /// The file checked against.
    pub fn path(&self) -> &Path {
        match self {
            Against::Manifest { path, .. }
            | Against::Reference { path }
            | Against::Consumer { path }
            | Against::Directory { path } => path,
        }
    }
}

impl fmt::Display for Against {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Against::Manifest { path, major } => {
                write!(f, "against {} major {major}", path.display())
            }
            Against::Reference { path } => write!(f, "against {}", path.display()),
            Against::Consumer { path } => write!(f, "needed by {}", path.display()),
            Against::Directory { path } => write!(f, "in {}", path.display()),
        }
    }
}

/// The differences one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What the library was checked against.
    pub against: Against,
    /// How many symbols were compared (see the module's JSON schema).
    pub compared: usize,
    /// What differs, sorted by kind, then symbol.
    pub differences: Vec<Difference>,
}

/// Every check of one library: what `cudastub audit` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The audited file.
    pub library: PathBuf,
    /// Its soname.
    pub soname: Option<String>,
    /// How many symbols it exports.
    pub exports: usize,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
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

/// The result of checking a library against one consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerAudit {
    /// The consumer's requirements on the soname.
    pub requirements: usize,
    /// Every difference, sorted.
    pub differences: Vec<Difference>,
}

/// The exports of `image` named `name` (several only with several versions).
fn exports_named<'a>(image: &'a ElfImage, name: &str) -> &'a [DynSymbol] {
    let start = image.exports.partition_point(|s| s.name.as_str() < name);
    let end = start + image.exports[start..].partition_point(|s| s.name == name);
    &image.exports[start..end]
}

/// The export the manifest asks for: a global `FUNC` (or a data object of
/// its size) `name@@node`, or plain `name` when the library is unversioned.
fn wanted_export(m: &Manifest, major: u32, name: &str) -> DynSymbol {
    let data = m
        .data_of(major)
        .find(|d| d.name == name)
        .map(|d| d.size_of(major));
    DynSymbol {
        name: name.to_string(),
        kind: match data {
            Some(0) => SymbolKind::NoType,
            Some(_) => SymbolKind::Object,
            None => SymbolKind::Func,
        },
        weak: false,
        size: data.unwrap_or(0),
        version: match m.library.version_node_of(major) {
            Some(node) => Versioning::Default(node),
            None => Versioning::None,
        },
        required_from: None,
    }
}

/// Checks `image` against major `major` of `m`: soname, version
/// definitions, and every export a `FUNC` (or a data object of the
/// manifest's size) with the default version, or with none when the library
/// is unversioned.
pub fn against_manifest(image: &ElfImage, m: &Manifest, major: u32) -> ManifestAudit {
    let soname = m.library.soname_of(major);
    let node = m.library.version_node_of(major);
    let mut differences = Vec::new();
    if image.soname.as_deref() != Some(soname.as_str()) {
        differences.push(Difference::WrongSoname {
            expected: Some(soname.clone()),
            found: image.soname.clone(),
        });
    }
    // The real versioned libraries define the base (named after the
    // soname) and the node; the unversioned ones define nothing.
    let expected_defs = match &node {
        Some(node) => vec![
            VersionDef {
                index: 1,
                name: soname.clone(),
                base: true,
            },
            VersionDef {
                index: 2,
                name: node.clone(),
                base: false,
            },
        ],
        None => Vec::new(),
    };
    if !same_definitions(&image.version_defs, &expected_defs) {
        differences.push(Difference::WrongVersionDefinitions {
            expected: expected_defs,
            found: image.version_defs.clone(),
        });
    }
    let wanted = m.symbols_of(major);
    for s in &image.exports {
        if wanted.binary_search(&s.name.as_str()).is_err() {
            differences.push(Difference::Extra { found: s.clone() });
            continue;
        }
        let expected = wanted_export(m, major, &s.name);
        if s.shape() != expected.shape() {
            differences.push(Difference::WrongType {
                name: s.name.clone(),
                expected: vec![expected.clone()],
                found: vec![s.clone()],
            });
        }
        match &s.version {
            _ if s.version == expected.version => {}
            Versioning::Default(_) => differences.push(Difference::WrongVersion {
                name: s.name.clone(),
                expected: vec![expected],
                found: vec![s.clone()],
            }),
            Versioning::Hidden(_) if node.is_none() => differences.push(Difference::WrongVersion {
                name: s.name.clone(),
                expected: vec![expected],
                found: vec![s.clone()],
            }),
            Versioning::Hidden(_) => differences.push(Difference::Hidden {
                expected,
                found: s.clone(),
            }),
            Versioning::None => differences.push(Difference::Unversioned {
                expected,
                found: s.clone(),
            }),
        }
    }
    for w in wanted {
        if exports_named(image, w).is_empty() {
            differences.push(Difference::Missing {
                expected: wanted_export(m, major, w),
            });
        }
    }
    sort_differences(&mut differences);
    ManifestAudit {
        major,
        exports: image.exports.len(),
        differences,
    }
}

/// The release a real library is, as far as the manifest tells: the newest
/// `since` of major `major` among its exports. A real file says its release
/// only in its file name (`libcuda.so.535.261.03`), which a copy or the
/// soname link loses; the exports say it whatever the name.
pub fn reference_release(reference: &ElfImage, m: &Manifest, major: u32) -> Option<String> {
    reference
        .exports
        .iter()
        .filter_map(|s| m.since(major, &s.name))
        .max_by(|a, b| crate::manifest::compare_releases(a, b))
        .map(str::to_string)
}

/// Checks `image` against a real library: soname, version definitions, and
/// the name, type and version of every export equal. With `manifest` (the
/// manifest and major `image` was built from), an export the reference
/// lacks that a release newer than the reference's added
/// ([`reference_release`]) is a note, [`Difference::Added`]: a shim of the
/// 535 and 580 driver lists checked against the 535 driver.
pub fn against_reference(
    image: &ElfImage,
    reference: &ElfImage,
    manifest: Option<(&Manifest, u32)>,
) -> Vec<Difference> {
    let release =
        manifest.and_then(|(m, major)| Some((m, major, reference_release(reference, m, major)?)));
    let added = |s: &DynSymbol| -> Option<Difference> {
        let (m, major, release) = release.as_ref()?;
        let since = m.since(*major, &s.name)?;
        crate::manifest::compare_releases(since, release)
            .is_gt()
            .then(|| Difference::Added {
                found: s.clone(),
                since: since.to_string(),
                reference_release: release.clone(),
            })
    };
    let mut differences = Vec::new();
    if image.soname != reference.soname {
        differences.push(Difference::WrongSoname {
            expected: reference.soname.clone(),
            found: image.soname.clone(),
        });
    }
    if !same_definitions(&image.version_defs, &reference.version_defs) {
        differences.push(Difference::WrongVersionDefinitions {
            expected: reference.version_defs.clone(),
            found: image.version_defs.clone(),
        });
    }
    let names: BTreeSet<&str> = image
        .exports
        .iter()
        .chain(&reference.exports)
        .map(|s| s.name.as_str())
        .collect();
    for name in names {
        let ours = exports_named(image, name);
        let theirs = exports_named(reference, name);
        match (ours, theirs) {
            ([], theirs) => differences.extend(theirs.iter().map(|t| Difference::Missing {
                expected: t.clone(),
            })),
            (ours, []) => differences.extend(
                ours.iter()
                    .map(|o| added(o).unwrap_or_else(|| Difference::Extra { found: o.clone() })),
            ),
            (ours, theirs) => {
                let versions = |s: &[DynSymbol]| -> Vec<String> {
                    s.iter().map(DynSymbol::versioned_name).collect()
                };
                if versions(ours) != versions(theirs) {
                    differences.push(Difference::WrongVersion {
                        name: name.to_string(),
                        expected: theirs.to_vec(),
                        found: ours.to_vec(),
                    });
                }
                if kinds(ours) != kinds(theirs) {
                    differences.push(Difference::WrongType {
                        name: name.to_string(),
                        expected: theirs.to_vec(),
                        found: ours.to_vec(),
                    });
                }
            }
        }
    }
    sort_differences(&mut differences);
    differences
}

/// Checks that `image` meets what `consumer` requires from `soname` (see the
/// module documentation). `library_functions` are the names the manifest
/// knows, in any major: they tell which of an unversioned consumer's
/// references are meant for this library. `versioned`: whether the library
/// has a version node; a consumer of an unversioned one (`libcuda.so.1`,
/// `libnvidia-ml.so.1`) can have no version requirement on it, so it gets
/// no [`Difference::UnversionedRequirements`] warning, only the check by name.
pub fn against_consumer(
    image: &ElfImage,
    consumer: &ElfImage,
    soname: &str,
    library_functions: &BTreeSet<&str>,
    versioned: bool,
) -> ConsumerAudit {
    let mut differences = Vec::new();
    let unmet = |required: &DynSymbol| {
        let found = exports_named(image, &required.name).to_vec();
        let required = required.clone();
        if required.weak {
            Difference::WeakUnsatisfied { required, found }
        } else {
            Difference::Unsatisfied { required, found }
        }
    };
    let required: Vec<&DynSymbol> = consumer.requirements_from(soname).collect();
    let mut compared = required.len();
    for r in &required {
        let version = r.version_name().unwrap_or_default();
        let met = exports_named(image, &r.name)
            .iter()
            .any(|e| e.version_name() == Some(version));
        if !met {
            differences.push(unmet(r));
        }
    }
    if required.is_empty() {
        if consumer.needed.iter().any(|n| n == soname) {
            let references: Vec<&DynSymbol> = consumer
                .imports
                .iter()
                .filter(|s| {
                    s.version == Versioning::None && library_functions.contains(s.name.as_str())
                })
                .collect();
            compared = references.len();
            if versioned {
                differences.push(Difference::UnversionedRequirements {
                    soname: soname.to_string(),
                    references: references.len(),
                });
            }
            for s in references {
                if exports_named(image, &s.name).is_empty() {
                    differences.push(unmet(s));
                }
            }
        } else {
            differences.push(Difference::NotAConsumer {
                soname: soname.to_string(),
            });
        }
    }
    sort_differences(&mut differences);
    ConsumerAudit {
        requirements: compared,
        differences,
    }
}

impl Report {
    /// An empty report on `image`; add checks with the `check_*` methods.
    pub fn new(image: &ElfImage) -> Report {
        Report {
            library: image.path.clone(),
            soname: image.soname.clone(),
            exports: image.exports.len(),
            checks: Vec::new(),
        }
    }

    /// The report on `path`, a file of `directory` that is a symbolic link
    /// to `target`, which does not exist.
    pub fn dangling_link(path: &Path, target: PathBuf, directory: &Path) -> Report {
        Report {
            library: path.to_path_buf(),
            soname: None,
            exports: 0,
            checks: vec![Check {
                against: Against::Directory {
                    path: directory.to_path_buf(),
                },
                compared: 1,
                differences: vec![Difference::DanglingLink { target }],
            }],
        }
    }

    /// The report on `directory/soname`, which `consumer` needs and the
    /// directory does not hold.
    pub fn absent_library(directory: &Path, soname: &str, consumer: &Path) -> Report {
        Report {
            library: directory.join(soname),
            soname: Some(soname.to_string()),
            exports: 0,
            checks: vec![Check {
                against: Against::Consumer {
                    path: consumer.to_path_buf(),
                },
                compared: 1,
                differences: vec![Difference::AbsentLibrary {
                    soname: soname.to_string(),
                    directory: directory.to_path_buf(),
                }],
            }],
        }
    }

    /// Adds [`against_manifest`]; `path` is the manifest's file, for messages.
    pub fn check_manifest(&mut self, image: &ElfImage, m: &Manifest, path: &Path, major: u32) {
        let audit = against_manifest(image, m, major);
        self.checks.push(Check {
            against: Against::Manifest {
                path: path.to_path_buf(),
                major,
            },
            compared: m.symbols_of(major).len(),
            differences: audit.differences,
        });
    }

    /// Adds [`against_reference`]; `manifest` is the manifest and major
    /// `image` is checked against, which tell the additions of newer releases.
    pub fn check_reference(
        &mut self,
        image: &ElfImage,
        reference: &ElfImage,
        manifest: Option<(&Manifest, u32)>,
    ) {
        self.checks.push(Check {
            against: Against::Reference {
                path: reference.path.clone(),
            },
            compared: reference.exports.len(),
            differences: against_reference(image, reference, manifest),
        });
    }

    /// Adds [`against_consumer`] for the soname of `major` of `m`.
    pub fn check_consumer(
        &mut self,
        image: &ElfImage,
        consumer: &ElfImage,
        m: &Manifest,
        major: u32,
    ) {
        let names: BTreeSet<&str> = m.functions.iter().map(|f| f.name.as_str()).collect();
        let versioned = m.library.version_node_of(major).is_some();
        let audit = against_consumer(
            image,
            consumer,
            &m.library.soname_of(major),
            &names,
            versioned,
        );
        self.checks.push(Check {
            against: Against::Consumer {
                path: consumer.path.clone(),
            },
            compared: audit.requirements,
            differences: audit.differences,
        });
    }

    /// Every finding, with the check that made it, in report order.
    pub fn findings(&self) -> impl Iterator<Item = (&Against, &Difference)> {
        self.checks
            .iter()
            .flat_map(|c| c.differences.iter().map(move |d| (&c.against, d)))
    }

    /// How many findings have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings()
            .filter(|(_, d)| d.severity() == severity)
            .count()
    }

    /// `true` when no check found an error (warnings allowed).
    pub fn is_clean(&self) -> bool {
        self.count(Severity::Error) == 0
    }

    /// The first line of the text report: `FILE: OK — …` or `FILE: N differences`.
    pub fn verdict(&self) -> String {
        let errors = self.count(Severity::Error);
        let asides: Vec<String> = [
            (self.count(Severity::Warning), "warning"),
            (self.count(Severity::Note), "expected addition"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}{}", if n == 1 { "" } else { "s" }))
        .collect();
        let warnings = if asides.is_empty() {
            String::new()
        } else {
            format!(" ({})", asides.join(", "))
        };
        let library = self.library.display();
        if errors > 0 {
            let s = if errors == 1 { "" } else { "s" };
            return format!("{library}: {errors} difference{s}{warnings}");
        }
        let mut matched = Vec::new();
        let mut consumers = 0;
        let mut requirements = 0;
        for c in &self.checks {
            match &c.against {
                Against::Manifest { path, major } => {
                    matched.push(format!("{} major {major}", path.display()));
                }
                Against::Reference { path } => matched.push(path.display().to_string()),
                Against::Consumer { .. } => {
                    consumers += 1;
                    requirements += c.compared;
                }
                Against::Directory { .. } => {}
            }
        }
        let mut line = format!("{library}: OK — {} exports", self.exports);
        if !matched.is_empty() {
            let _ = write!(line, " match {}", matched.join(" and "));
        }
        if consumers > 0 {
            let joiner = if matched.is_empty() { "" } else { ";" };
            let s = if consumers == 1 { "" } else { "s" };
            let _ = write!(
                line,
                "{joiner} meet the {requirements} requirements of {consumers} consumer{s}"
            );
        }
        line.push_str(&warnings);
        line
    }

    /// The text report: the verdict, then the findings grouped by check and
    /// kind, a consumer's unsatisfied requirements first.
    pub fn to_text(&self) -> String {
        self.text(false)
    }

    /// The text report of `--quiet`: nothing for a library without errors;
    /// else the verdict and the errors, without the warnings.
    pub fn to_quiet_text(&self) -> String {
        if self.is_clean() {
            return String::new();
        }
        self.text(true)
    }

    fn text(&self, errors_only: bool) -> String {
        let mut o = self.verdict();
        o.push('\n');
        let mut groups: Vec<(&Against, &[Difference])> = self
            .checks
            .iter()
            .flat_map(|c| {
                c.differences
                    .chunk_by(|a, b| a.kind() == b.kind())
                    .map(move |group| (&c.against, group))
            })
            .collect();
        // What a consumer requires and the library lacks comes first (the
        // loader refuses `__cudaRegisterFatBinary@libcudart.so.12` missing
        // from a runtime); then the rest in check order (a stable sort).
        groups.sort_by_key(|(_, group)| !matches!(group[0], Difference::Unsatisfied { .. }));
        for (against, group) in groups {
            let first = &group[0];
            let severity = first.severity();
            if severity != Severity::Error && errors_only {
                continue;
            }
            let _ = writeln!(
                o,
                "{}{}, {} ({}):",
                match severity {
                    Severity::Error => "",
                    Severity::Warning => "warning: ",
                    Severity::Note => "note: ",
                },
                first.kind(),
                against,
                group.len()
            );
            for d in group {
                let _ = writeln!(o, "  {d}");
            }
        }
        o
    }

    /// The JSON report (see the module documentation for the schema).
    pub fn to_json(&self) -> JsonReport {
        JsonReport {
            schema_version: SCHEMA_VERSION,
            library: self.library.display().to_string(),
            soname: self.soname.clone(),
            exports: self.exports,
            verdict: if self.is_clean() {
                Verdict::Ok
            } else {
                Verdict::Different
            },
            errors: self.count(Severity::Error),
            warnings: self.count(Severity::Warning),
            notes: self.count(Severity::Note),
            checks: self
                .checks
                .iter()
                .map(|c| JsonCheck {
                    against: c.against.kind(),
                    path: c.against.path().display().to_string(),
                    major: match c.against {
                        Against::Manifest { major, .. } => Some(major),
                        _ => None,
                    },
                    compared: c.compared,
                })
                .collect(),
            findings: self
                .findings()
                .map(|(against, d)| JsonFinding {
                    severity: d.severity(),
                    against: against.kind(),
                    path: against.path().display().to_string(),
                    symbol: d.symbol(),
                    message: d.to_string(),
                    detail: d.to_json(),
                })
                .collect(),
        }
    }
}

/// The last line of `cudastub audit`: `2 libraries, 1 difference, 0
/// warnings`, and `, 87 expected additions` when there are any.
pub fn summary(reports: &[Report]) -> String {
    fn count(n: usize, one: &str, many: &str) -> String {
        format!("{n} {}", if n == 1 { one } else { many })
    }
    let total = |s| reports.iter().map(|r| r.count(s)).sum();
    let mut line = format!(
        "{}, {}, {}",
        count(reports.len(), "library", "libraries"),
        count(total(Severity::Error), "difference", "differences"),
        count(total(Severity::Warning), "warning", "warnings")
    );
    let notes = total(Severity::Note);
    if notes > 0 {
        let _ = write!(
            line,
            ", {}",
            count(notes, "expected addition", "expected additions")
        );
    }
    line
}

/// What `cudastub audit --format json` prints: always one object, told
/// apart by its keys: a library's report (`library`), a directory's
/// (`directory`), or the error that stopped the audit (`verdict` `error`,
/// exit 2).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum JsonAudit {
    /// The report on one library.
    One(JsonReport),
    /// The reports on every library of a directory.
    Directory(JsonDirectoryReport),
    /// Why there is no report.
    Error(crate::schema::JsonError),
}

/// The JSON report on a directory (`cudastub audit dist/12`): the totals,
/// and one [`JsonReport`] per library.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonDirectoryReport {
    /// Always 3 ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The audited directory, as given.
    pub directory: String,
    /// `ok` when no library has an error, else `different`.
    pub verdict: Verdict,
    /// Findings of severity `error`, over every library.
    pub errors: usize,
    /// Findings of severity `warning`, over every library.
    pub warnings: usize,
    /// Findings of severity `note`, over every library.
    pub notes: usize,
    /// The report on each library, sorted by file name.
    pub libraries: Vec<JsonReport>,
}

impl JsonDirectoryReport {
    /// The report on `directory` whose libraries' reports are `reports`.
    pub fn new(directory: &Path, reports: &[Report]) -> JsonDirectoryReport {
        let total = |s| reports.iter().map(|r: &Report| r.count(s)).sum();
        JsonDirectoryReport {
            schema_version: SCHEMA_VERSION,
            directory: directory.display().to_string(),
            verdict: if reports.iter().all(Report::is_clean) {
                Verdict::Ok
            } else {
                Verdict::Different
            },
            errors: total(Severity::Error),
            warnings: total(Severity::Warning),
            notes: total(Severity::Note),
            libraries: reports.iter().map(Report::to_json).collect(),
        }
    }
}

/// The JSON form of a [`Report`], schema version [`SCHEMA_VERSION`].
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonReport {
    /// Always 3 ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The audited file, as given.
    pub library: String,
    /// Its soname (`DT_SONAME`), or `null`.
    pub soname: Option<String>,
    /// How many symbols it exports (defined dynamic symbols).
    pub exports: usize,
    /// `ok` when no check found an error, else `different`.
    pub verdict: Verdict,
    /// Findings of severity `error`.
    pub errors: usize,
    /// Findings of severity `warning`.
    pub warnings: usize,
    /// Findings of severity `note`: expected, for the record.
    pub notes: usize,
    /// The checks, in the order they ran.
    pub checks: Vec<JsonCheck>,
    /// Every finding, by check, then kind, then symbol.
    pub findings: Vec<JsonFinding>,
}

/// The verdict of a [`JsonReport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No errors (warnings allowed).
    Ok,
    /// At least one error.
    Different,
}

/// What a check compared the library with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A major of a manifest.
    Manifest,
    /// A real library of the same major.
    Reference,
    /// A program or library that links against it.
    Consumer,
    /// The audited directory (a file of it that cannot be audited).
    Directory,
}

/// One check of a [`JsonReport`].
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonCheck {
    /// What the library was checked against.
    pub against: CheckKind,
    /// The file checked against.
    pub path: String,
    /// The manifest's major, else `null`.
    pub major: Option<u32>,
    /// How many symbols were compared: the manifest's functions of the
    /// major, the reference's exports, or the consumer's requirements.
    pub compared: usize,
}

/// One finding of a [`JsonReport`].
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonFinding {
    /// `error`, `warning` or `note`.
    pub severity: Severity,
    /// The check that found it.
    pub against: CheckKind,
    /// That check's file.
    pub path: String,
    /// The symbol concerned as linkers write it (`name@@node`, `name@node`,
    /// `name`), or `null`.
    pub symbol: Option<String>,
    /// The finding in words.
    pub message: String,
    /// `kind`, and what was `expected` and `found`.
    #[serde(flatten)]
    pub detail: FindingDetail,
}

/// The kind of a finding with what was expected and found, as data: the
/// shape of `expected` and `found` depends on `kind`.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FindingDetail {
    /// The soname is not the expected one.
    WrongSoname {
        /// The soname it should have, or `null` when the reference has none.
        expected: Option<String>,
        /// Its soname, or `null` when it has none.
        found: Option<String>,
    },
    /// The version definitions are not the expected ones.
    WrongVersionDefinitions {
        /// The definitions it should have, in order.
        expected: Vec<JsonVersionDefinition>,
        /// Its definitions, in order.
        found: Vec<JsonVersionDefinition>,
    },
    /// A symbol that must be exported is not.
    Missing {
        /// The export it should have.
        expected: JsonExport,
        /// Always `null`: nothing by that name.
        found: (),
    },
    /// An export that should not be there.
    Extra {
        /// Always `null`: nothing by that name should be exported.
        expected: (),
        /// The export.
        found: JsonExport,
    },
    /// An export without a version.
    Unversioned {
        /// The export as it should be.
        expected: JsonExport,
        /// The export as it is.
        found: JsonExport,
    },
    /// An export with a hidden version (`name@node`).
    Hidden {
        /// The export as it should be.
        expected: JsonExport,
        /// The export as it is.
        found: JsonExport,
    },
    /// A name exported with other versions than expected.
    WrongVersion {
        /// Every export of the name as it should be.
        expected: Vec<JsonExport>,
        /// Every export of the name as it is.
        found: Vec<JsonExport>,
    },
    /// A name exported as another symbol type.
    WrongType {
        /// Every export of the name as it should be.
        expected: Vec<JsonExport>,
        /// Every export of the name as it is.
        found: Vec<JsonExport>,
    },
    /// A consumer's requirement the library does not meet.
    Unsatisfied {
        /// The consumer's requirement.
        expected: JsonRequirement,
        /// What the library exports under that name; `[]` for nothing.
        found: Vec<JsonExport>,
    },
    /// A consumer's weak requirement the library does not meet (a warning).
    WeakUnsatisfied {
        /// The consumer's requirement.
        expected: JsonRequirement,
        /// What the library exports under that name; `[]` for nothing.
        found: Vec<JsonExport>,
    },
    /// A consumer that needs the soname without any version requirement (a warning).
    UnversionedRequirements {
        /// Always `null`.
        expected: (),
        /// The soname it needs, and how many of its references name the library's functions.
        found: JsonUnversionedNeed,
    },
    /// A consumer that needs nothing from the soname (a warning).
    NotAConsumer {
        /// The soname it should need.
        expected: JsonNeed,
        /// Always `null`.
        found: (),
    },
    /// An export the reference lacks that a release newer than the
    /// reference's added, which the manifest imported (a note).
    Added {
        /// The release that added it, and the reference's.
        expected: JsonAddition,
        /// The export.
        found: JsonExport,
    },
    /// A file of the audited directory that is a symbolic link to nothing.
    DanglingLink {
        /// Always `null`.
        expected: (),
        /// Where the link points.
        found: JsonLink,
    },
    /// A library a consumer needs that the audited directory does not hold.
    AbsentLibrary {
        /// The soname the consumer needs.
        expected: JsonNeed,
        /// Always `null`: no file of that name.
        found: (),
    },
}

/// Why an export the reference lacks is expected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonAddition {
    /// The manifest's earliest release that exports it (`580.159.04`).
    pub since: String,
    /// The reference's release, as the manifest tells it: the newest
    /// `since` of its exports (`535.261.03`).
    pub reference_release: String,
}

/// Where a symbolic link points.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonLink {
    /// The link's target, as the link holds it.
    pub target: String,
}

/// A consumer's requirement on a library: `name@version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonRequirement {
    /// The symbol's name.
    pub name: String,
    /// The version node it requires, or `null` for a consumer linked without version information.
    pub version: Option<String>,
    /// `true` for a weak reference (the loader leaves it null when unmet).
    pub weak: bool,
}

impl JsonRequirement {
    /// The requirement an undefined symbol of a consumer makes.
    pub fn from_symbol(s: &DynSymbol) -> JsonRequirement {
        JsonRequirement {
            name: s.name.clone(),
            version: s.version_name().map(str::to_string),
            weak: s.weak,
        }
    }
}

/// A soname a consumer should need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonNeed {
    /// The soname (`DT_NEEDED`).
    pub soname: String,
}

/// A consumer's need of a soname without version requirements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonUnversionedNeed {
    /// The soname (`DT_NEEDED`).
    pub soname: String,
    /// How many of its references name a function the manifest knows.
    pub references: usize,
}
