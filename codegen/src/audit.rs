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
//!   every export are equal.
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
//! consumer that needs nothing from the soname is a warning too
//! ([`Difference::NotAConsumer`]): usually the wrong file or the wrong major.
//! A weak reference that cannot be met is a warning: the loader leaves it null.
//! Warnings are reported but do not make a library differ.
//!
//! # JSON report
//!
//! `cudastub audit --format json` prints one object, [`JsonReport`]. Schema
//! version 1; every key is always present (`null` where it does not apply);
//! a new key may be added without bumping the version, a key is never removed
//! or changed in meaning without bumping it.
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "library": "dist/12/libcudart.so.12",   // the audited file, as given
//!   "soname": "libcudart.so.12",            // its DT_SONAME, or null
//!   "exports": 435,                         // its defined dynamic symbols
//!   "verdict": "ok",                        // "ok" (no errors) or "different"
//!   "errors": 0,                            // findings of severity "error"
//!   "warnings": 0,                          // findings of severity "warning"
//!   "checks": [                             // what it was checked against, in order
//!     {"against": "manifest",  "path": "cuda-api.yaml", "major": 12, "compared": 435},
//!     {"against": "reference", "path": ".../libcudart.so.12", "major": null, "compared": 435},
//!     {"against": "consumer",  "path": "app", "major": null, "compared": 6}
//!   ],
//!   "findings": [
//!     {"severity": "error",            // "error" or "warning"
//!      "against": "consumer",          // the check that found it
//!      "path": "app",                  // that check's file
//!      "kind": "unsatisfied",          // see Difference::id
//!      "symbol": "cudaGetDeviceCount@libcudart.so.12",  // or null
//!      "expected": null,               // what should be there, or null
//!      "found": null,                  // what is there, or null
//!      "message": "cudaGetDeviceCount@libcudart.so.12 is required but not exported"}
//!   ]
//! }
//! ```
//!
//! `compared` counts the manifest's functions of the major, the reference's
//! exports, or the consumer's requirements on the soname (for an unversioned
//! consumer: its references to names the manifest knows). Findings are sorted
//! by check, then kind, then symbol.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::elf::{DynSymbol, ElfImage, SymbolKind, VersionDef, Versioning};
use crate::manifest::Manifest;

/// The `schema_version` of the JSON reports of `audit` and `diff`.
pub const SCHEMA_VERSION: u32 = 1;

/// Whether a finding makes the library differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The library is not what it must be.
    Error,
    /// Worth knowing; the library may still be right.
    Warning,
}

/// One way a library differs from what it should be.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Difference {
    /// The soname is not the expected one.
    WrongSoname {
        expected: String,
        found: Option<String>,
    },
    /// The version definitions are not the expected ones (`NAME (base)` marks the base).
    WrongVersionDefinitions {
        expected: Vec<String>,
        found: Vec<String>,
    },
    /// A symbol that must be exported is not (`name@@node`).
    Missing { symbol: String },
    /// An export that should not be there.
    Extra { symbol: String },
    /// An export without any version.
    Unversioned { symbol: String },
    /// An export with a hidden version (`name@node`).
    Hidden { symbol: String },
    /// An export with another version than the expected one.
    WrongVersion {
        symbol: String,
        expected: String,
        found: String,
    },
    /// An export of another symbol type (`OBJECT` for `FUNC`, …).
    WrongType {
        symbol: String,
        expected: String,
        found: String,
    },
    /// A consumer requires `symbol` (`name@version`, or `name` when it has no
    /// version requirement) and the library does not export it like that;
    /// `found` is what the library has under that name, if anything.
    Unsatisfied {
        symbol: String,
        found: Option<String>,
    },
    /// Like [`Difference::Unsatisfied`], for a weak reference: the loader
    /// leaves it null instead of failing. A warning.
    WeakUnsatisfied {
        symbol: String,
        found: Option<String>,
    },
    /// A consumer needs `soname` but has no version requirement on it: it
    /// was linked against an unversioned library and binds by name only.
    /// `references` is how many of its references name a function the
    /// manifest knows. A warning.
    UnversionedRequirements { soname: String, references: usize },
    /// A consumer that needs nothing from `soname`. A warning.
    NotAConsumer { soname: String },
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
        }
    }

    /// [`Severity::Warning`] for the kinds that do not make a library wrong.
    pub fn severity(&self) -> Severity {
        match self {
            Difference::WeakUnsatisfied { .. }
            | Difference::UnversionedRequirements { .. }
            | Difference::NotAConsumer { .. } => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// The symbol concerned, if any.
    pub fn symbol(&self) -> Option<&str> {
        match self {
            Difference::Missing { symbol }
            | Difference::Extra { symbol }
            | Difference::Unversioned { symbol }
            | Difference::Hidden { symbol }
            | Difference::WrongVersion { symbol, .. }
            | Difference::WrongType { symbol, .. }
            | Difference::Unsatisfied { symbol, .. }
            | Difference::WeakUnsatisfied { symbol, .. } => Some(symbol),
            Difference::WrongSoname { .. }
            | Difference::WrongVersionDefinitions { .. }
            | Difference::UnversionedRequirements { .. }
            | Difference::NotAConsumer { .. } => None,
        }
    }

    /// What should be there, where the kind says.
    pub fn expected(&self) -> Option<String> {
        match self {
            Difference::WrongSoname { expected, .. } => Some(expected.clone()),
            Difference::WrongVersionDefinitions { expected, .. } => Some(expected.join(", ")),
            Difference::WrongVersion { expected, .. } | Difference::WrongType { expected, .. } => {
                Some(expected.clone())
            }
            _ => None,
        }
    }

    /// What is there instead, where the kind says.
    pub fn found(&self) -> Option<String> {
        match self {
            Difference::WrongSoname { found, .. } => found.clone(),
            Difference::WrongVersionDefinitions { found, .. } => Some(found.join(", ")),
            Difference::WrongVersion { found, .. } | Difference::WrongType { found, .. } => {
                Some(found.clone())
            }
            Difference::Unsatisfied { found, .. } | Difference::WeakUnsatisfied { found, .. } => {
                found.clone()
            }
            _ => None,
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
            Difference::Extra { symbol } => write!(f, "{symbol} is exported but should not be"),
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
            } => write!(f, "{symbol} is exported as {found}, expected {expected}"),
            Difference::WrongType {
                symbol,
                expected,
                found,
            } => write!(f, "{symbol} is a {found} symbol, expected {expected}"),
            Difference::Unsatisfied { symbol, found }
            | Difference::WeakUnsatisfied { symbol, found } => {
                let weak = if matches!(self, Difference::WeakUnsatisfied { .. }) {
                    "weakly "
                } else {
                    ""
                };
                write!(f, "{symbol} is {weak}required but not exported")?;
                match found {
                    Some(found) => write!(f, " (the library has {found})"),
                    None => Ok(()),
                }
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
}

impl Against {
    /// The JSON `against`: `manifest`, `reference` or `consumer`.
    pub fn id(&self) -> &'static str {
        match self {
            Against::Manifest { .. } => "manifest",
            Against::Reference { .. } => "reference",
            Against::Consumer { .. } => "consumer",
        }
    }

    /// The file checked against.
    pub fn path(&self) -> &Path {
        match self {
            Against::Manifest { path, .. }
            | Against::Reference { path }
            | Against::Consumer { path } => path,
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

/// `NAME (base)` for the base definition, else `NAME`: how reports show a
/// version definition.
fn describe_definitions(defs: &[VersionDef]) -> Vec<String> {
    defs.iter()
        .map(|d| {
            if d.base {
                format!("{} (base)", d.name)
            } else {
                d.name.clone()
            }
        })
        .collect()
}

/// The exports of `image` named `name` (several only with several versions).
fn exports_named<'a>(image: &'a ElfImage, name: &str) -> &'a [DynSymbol] {
    let start = image.exports.partition_point(|s| s.name.as_str() < name);
    let end = start + image.exports[start..].partition_point(|s| s.name == name);
    &image.exports[start..end]
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
    // The real libraries define the base (named after the soname) and the node.
    let expected_defs = vec![format!("{soname} (base)"), node.clone()];
    let found_defs = describe_definitions(&image.version_defs);
    if found_defs != expected_defs {
        differences.push(Difference::WrongVersionDefinitions {
            expected: expected_defs,
            found: found_defs,
        });
    }
    let wanted = m.symbols_of(major);
    for s in &image.exports {
        if wanted.binary_search(&s.name.as_str()).is_err() {
            differences.push(Difference::Extra {
                symbol: s.versioned_name(),
            });
            continue;
        }
        if s.kind != SymbolKind::Func {
            differences.push(Difference::WrongType {
                symbol: s.name.clone(),
                expected: SymbolKind::Func.to_string(),
                found: s.kind.to_string(),
            });
        }
        match &s.version {
            Versioning::Default(v) if *v == node => {}
            Versioning::Default(_) => differences.push(Difference::WrongVersion {
                symbol: s.name.clone(),
                expected: format!("{}@@{node}", s.name),
                found: s.versioned_name(),
            }),
            Versioning::Hidden(_) => differences.push(Difference::Hidden {
                symbol: s.versioned_name(),
            }),
            Versioning::None => differences.push(Difference::Unversioned {
                symbol: s.name.clone(),
            }),
        }
    }
    for w in wanted {
        if exports_named(image, w).is_empty() {
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

/// Checks `image` against a real library: soname, version definitions, and
/// the name, type and version of every export equal.
pub fn against_reference(image: &ElfImage, reference: &ElfImage) -> Vec<Difference> {
    let mut differences = Vec::new();
    if image.soname != reference.soname {
        differences.push(Difference::WrongSoname {
            expected: reference.soname.clone().unwrap_or_else(|| "(none)".into()),
            found: image.soname.clone(),
        });
    }
    let expected_defs = describe_definitions(&reference.version_defs);
    let found_defs = describe_definitions(&image.version_defs);
    if found_defs != expected_defs {
        differences.push(Difference::WrongVersionDefinitions {
            expected: expected_defs,
            found: found_defs,
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
                symbol: t.versioned_name(),
            })),
            (ours, []) => differences.extend(ours.iter().map(|o| Difference::Extra {
                symbol: o.versioned_name(),
            })),
            (ours, theirs) => {
                let versions = |s: &[DynSymbol]| -> Vec<String> {
                    s.iter().map(DynSymbol::versioned_name).collect()
                };
                if versions(ours) != versions(theirs) {
                    differences.push(Difference::WrongVersion {
                        symbol: name.to_string(),
                        expected: versions(theirs).join(", "),
                        found: versions(ours).join(", "),
                    });
                }
                let kinds = |s: &[DynSymbol]| -> Vec<String> {
                    s.iter().map(|s| s.kind.to_string()).collect()
                };
                if kinds(ours) != kinds(theirs) {
                    differences.push(Difference::WrongType {
                        symbol: name.to_string(),
                        expected: kinds(theirs).join(", "),
                        found: kinds(ours).join(", "),
                    });
                }
            }
        }
    }
    differences.sort();
    differences
}

/// Checks that `image` meets what `consumer` requires from `soname` (see the
/// module documentation). `library_functions` are the names the manifest
/// knows, in any major: they tell which of an unversioned consumer's
/// references are meant for this library.
pub fn against_consumer(
    image: &ElfImage,
    consumer: &ElfImage,
    soname: &str,
    library_functions: &BTreeSet<&str>,
) -> ConsumerAudit {
    let mut differences = Vec::new();
    let found_as = |name: &str| -> Option<String> {
        let found = exports_named(image, name);
        if found.is_empty() {
            return None;
        }
        let described: Vec<String> = found
            .iter()
            .map(|s| match s.version {
                Versioning::None => format!("{} (unversioned)", s.name),
                _ => s.versioned_name(),
            })
            .collect();
        Some(described.join(", "))
    };
    let unmet = |symbol: String, weak: bool, found: Option<String>| {
        if weak {
            Difference::WeakUnsatisfied { symbol, found }
        } else {
            Difference::Unsatisfied { symbol, found }
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
            differences.push(unmet(
                format!("{}@{version}", r.name),
                r.weak,
                found_as(&r.name),
            ));
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
            differences.push(Difference::UnversionedRequirements {
                soname: soname.to_string(),
                references: references.len(),
            });
            for s in references {
                if exports_named(image, &s.name).is_empty() {
                    differences.push(unmet(s.name.clone(), s.weak, None));
                }
            }
        } else {
            differences.push(Difference::NotAConsumer {
                soname: soname.to_string(),
            });
        }
    }
    differences.sort();
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

    /// Adds [`against_reference`].
    pub fn check_reference(&mut self, image: &ElfImage, reference: &ElfImage) {
        self.checks.push(Check {
            against: Against::Reference {
                path: reference.path.clone(),
            },
            compared: reference.exports.len(),
            differences: against_reference(image, reference),
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
        let audit = against_consumer(image, consumer, &m.library.soname_of(major), &names);
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
        let warnings = self.count(Severity::Warning);
        let warnings = match warnings {
            0 => String::new(),
            1 => " (1 warning)".to_string(),
            n => format!(" ({n} warnings)"),
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

    /// The text report: the verdict, then the findings grouped by check and kind.
    pub fn to_text(&self) -> String {
        let mut o = self.verdict();
        o.push('\n');
        for c in &self.checks {
            for group in c.differences.chunk_by(|a, b| a.kind() == b.kind()) {
                let first = &group[0];
                let warning = if first.severity() == Severity::Warning {
                    "warning: "
                } else {
                    ""
                };
                let _ = writeln!(
                    o,
                    "{warning}{}, {} ({}):",
                    first.kind(),
                    c.against,
                    group.len()
                );
                for d in group {
                    let _ = writeln!(o, "  {d}");
                }
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
            verdict: if self.is_clean() { "ok" } else { "different" },
            errors: self.count(Severity::Error),
            warnings: self.count(Severity::Warning),
            checks: self
                .checks
                .iter()
                .map(|c| JsonCheck {
                    against: c.against.id(),
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
                    against: against.id(),
                    path: against.path().display().to_string(),
                    kind: d.id(),
                    symbol: d.symbol().map(str::to_string),
                    expected: d.expected(),
                    found: d.found(),
                    message: d.to_string(),
                })
                .collect(),
        }
    }
}

/// The JSON form of a [`Report`], schema version [`SCHEMA_VERSION`].
#[derive(Clone, Debug, Serialize)]
pub struct JsonReport {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The audited file.
    pub library: String,
    /// Its soname, or `null`.
    pub soname: Option<String>,
    /// How many symbols it exports.
    pub exports: usize,
    /// `ok` or `different`.
    pub verdict: &'static str,
    /// Findings of severity `error`.
    pub errors: usize,
    /// Findings of severity `warning`.
    pub warnings: usize,
    /// The checks, in order.
    pub checks: Vec<JsonCheck>,
    /// Every finding.
    pub findings: Vec<JsonFinding>,
}

/// One check of a [`JsonReport`].
#[derive(Clone, Debug, Serialize)]
pub struct JsonCheck {
    /// `manifest`, `reference` or `consumer`.
    pub against: &'static str,
    /// The file checked against.
    pub path: String,
    /// The manifest's major, else `null`.
    pub major: Option<u32>,
    /// How many symbols were compared.
    pub compared: usize,
}

/// One finding of a [`JsonReport`].
#[derive(Clone, Debug, Serialize)]
pub struct JsonFinding {
    /// `error` or `warning`.
    pub severity: Severity,
    /// The check that found it: `manifest`, `reference` or `consumer`.
    pub against: &'static str,
    /// That check's file.
    pub path: String,
    /// [`Difference::id`].
    pub kind: &'static str,
    /// The symbol concerned, or `null`.
    pub symbol: Option<String>,
    /// What should be there, or `null`.
    pub expected: Option<String>,
    /// What is there, or `null`.
    pub found: Option<String>,
    /// The finding in words.
    pub message: String,
}
