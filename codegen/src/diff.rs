//! Comparing two export surfaces: what a new release of a library adds,
//! removes and changes.
//!
//! Each side is a shared library file, or a major of a manifest written
//! `cuda-api.yaml#12`. Symbols are matched by name, not by `name@version`:
//! between majors every version node is renamed (`libcudart.so.12` →
//! `libcudart.so.13`), and what a reader wants to know is which functions came
//! and went. A symbol's version counts as changed only when it moves relative
//! to its side's own node (default `@@node` to hidden, unversioned, or to
//! another node). Between two manifests, a function whose prototype changed is
//! reported with both prototypes, and whether only parameter names differ
//! (the same ABI), and if so whether they are the same names in another
//! order: then the ABI is the same but the arguments changed meaning, as
//! `cudaGraphKernelNodeCopyAttributes(hSrc, hDst)` became `(hDst, hSrc)` in 13.
//!
//! # JSON report
//!
//! `cudastub diff --format json` prints one object, [`JsonDiff`]. Schema
//! version [`crate::audit::SCHEMA_VERSION`] (1), with the same rules as the
//! audit report: every key always present, `null` where it does not apply.
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "old": {"spec": "cuda-api.yaml#12", "kind": "manifest",   // or "library"
//!           "soname": "libcudart.so.12", "version_node": "libcudart.so.12",
//!           "major": 12,                                       // null for a library
//!           "symbols": 435},
//!   "new": {...},
//!   "verdict": "different",                                    // or "same"
//!   "counts": {"added": 53, "removed": 30, "changed": 15},
//!   "added":   [{"name": "cudaLogsCurrent", "symbol": "cudaLogsCurrent@@libcudart.so.13", "type": "FUNC"}],
//!   "removed": [{"name": "cudaThreadExit", "symbol": "cudaThreadExit@@libcudart.so.12", "type": "FUNC"}],
//!   "changed": [{"name": "cudaMemAdvise",
//!                "what": "prototype",                          // or "type", "version"
//!                "old": "cudaError_t cudaMemAdvise(…, int device)",
//!                "new": "cudaError_t cudaMemAdvise(…, struct cudaMemLocation location)",
//!                "param_names_only": false,                  // true: same ABI, renamed parameters
//!                "params_reordered": false}]                 // true: same names, another order
//! }
//! ```
//!
//! Every list is sorted by name (`changed`: by name, then `what`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::audit::SCHEMA_VERSION;
use crate::catalog::Catalog;
use crate::ctype::Prototype;
use crate::diag::{Diagnostic, Diagnostics};
use crate::elf::{ElfImage, SymbolKind, Versioning};
use crate::manifest::Manifest;

/// Where a surface came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A shared library file.
    Library,
    /// A major of a manifest.
    Manifest { major: u32 },
}

/// One exported symbol of a surface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurfaceSymbol {
    /// `FUNC`, `OBJECT`, …
    pub kind: SymbolKind,
    /// Its version.
    pub version: Versioning,
    /// Its prototype, on a manifest side.
    pub proto: Option<Prototype>,
}

/// The export surface of one side of a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Surface {
    /// How the side was written on the command line.
    pub spec: String,
    /// Library or manifest.
    pub origin: Origin,
    /// The soname.
    pub soname: Option<String>,
    /// The version node exports normally carry: the manifest's, or a
    /// library's only non-base version definition.
    pub version_node: Option<String>,
    /// Exports by name; a name exported under several versions has several.
    pub symbols: BTreeMap<String, Vec<SurfaceSymbol>>,
}

impl Surface {
    /// The surface of a library file.
    pub fn from_image(spec: &str, image: &ElfImage) -> Surface {
        let nodes = image.version_nodes();
        let mut symbols: BTreeMap<String, Vec<SurfaceSymbol>> = BTreeMap::new();
        for s in &image.exports {
            symbols
                .entry(s.name.clone())
                .or_default()
                .push(SurfaceSymbol {
                    kind: s.kind,
                    version: s.version.clone(),
                    proto: None,
                });
        }
        Surface {
            spec: spec.to_string(),
            origin: Origin::Library,
            soname: image.soname.clone(),
            version_node: (nodes.len() == 1).then(|| nodes[0].to_string()),
            symbols,
        }
    }

    /// The surface major `major` of `m` describes; an error when it has no such major.
    pub fn from_manifest(
        spec: &str,
        path: &Path,
        m: &Manifest,
        major: u32,
    ) -> Result<Surface, Diagnostic> {
        m.major(major).map_err(|e| Diagnostic::file(path, e))?;
        let node = m.library.version_node_of(major);
        let symbols = m
            .functions_of(major)
            .map(|(f, fm)| {
                (
                    f.name.clone(),
                    vec![SurfaceSymbol {
                        kind: SymbolKind::Func,
                        version: Versioning::Default(node.clone()),
                        proto: Some(fm.proto.clone()),
                    }],
                )
            })
            .collect();
        Ok(Surface {
            spec: spec.to_string(),
            origin: Origin::Manifest { major },
            soname: Some(m.library.soname_of(major)),
            version_node: Some(node),
            symbols,
        })
    }

    /// Reads a side written `LIBRARY`, `MANIFEST#MAJOR` or
    /// `INDEX#LIBRARY/MAJOR` (`cuda-api.yaml#cublas/12`).
    pub fn load(spec: &str) -> Result<Surface, Diagnostics> {
        match parse_spec(spec)? {
            Spec::Manifest(path, library, major) => {
                let catalog = Catalog::load(&path)?;
                let entry = catalog.pick(library.as_deref()).map_err(|e| {
                    Diagnostic::file(
                        &path,
                        format!("{e} as `{}#LIBRARY/{major}`", path.display()),
                    )
                })?;
                Ok(Surface::from_manifest(
                    spec,
                    &entry.path,
                    &entry.manifest,
                    major,
                )?)
            }
            Spec::Library(path) => Ok(Surface::from_image(spec, &ElfImage::read(&path)?)),
        }
    }

    /// How many symbols it exports (a name under several versions counts once per version).
    pub fn len(&self) -> usize {
        self.symbols.values().map(Vec::len).sum()
    }

    /// `true` when it exports nothing.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// A version as this side's node makes it: `@@node` for the default
    /// version of the side's node, so that renamed nodes compare equal.
    fn relative_version(&self, v: &Versioning) -> String {
        match v {
            Versioning::Default(n) if Some(n) == self.version_node.as_ref() => "@@node".into(),
            Versioning::Hidden(n) if Some(n) == self.version_node.as_ref() => "@node".into(),
            Versioning::Default(n) => format!("@@{n}"),
            Versioning::Hidden(n) => format!("@{n}"),
            Versioning::None => String::new(),
        }
    }
}

/// A side as written on the command line.
enum Spec {
    Library(PathBuf),
    Manifest(PathBuf, Option<String>, u32),
}

/// `FILE#DIGITS` and `FILE#NAME/DIGITS` are a manifest major; anything else
/// a library file.
fn parse_spec(spec: &str) -> Result<Spec, Diagnostic> {
    if let Some((path, rest)) = spec.rsplit_once('#')
        && !path.is_empty()
    {
        let (library, major) = match rest.rsplit_once('/') {
            Some((lib, major)) if crate::ctype::is_identifier(lib) => (Some(lib), major),
            _ => (None, rest),
        };
        if !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()) {
            let major = major.parse().map_err(|_| {
                Diagnostic::file(
                    Path::new(path),
                    format!("major `{major}` in `{spec}` is out of range"),
                )
            })?;
            return Ok(Spec::Manifest(
                PathBuf::from(path),
                library.map(str::to_string),
                major,
            ));
        }
    }
    Ok(Spec::Library(PathBuf::from(spec)))
}

/// What changed about a symbol both sides export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Its prototype (manifest sides only).
    Prototype,
    /// Its symbol type.
    Type,
    /// Its version relative to the side's node.
    Version,
}

/// A symbol that both sides export, differently.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// The symbol's name.
    pub name: String,
    /// What changed.
    pub what: ChangeKind,
    /// Before.
    pub old: String,
    /// After.
    pub new: String,
    /// For a prototype: `true` when only parameter names differ (same ABI).
    pub param_names_only: bool,
    /// With `param_names_only`: the same names in another order, so the
    /// arguments changed meaning while the ABI stayed the same.
    pub params_reordered: bool,
}

/// A symbol only one side exports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// `name@@node` as that side exports it.
    pub symbol: String,
    /// `FUNC`, `OBJECT`, …
    pub kind: SymbolKind,
}

/// What differs between two surfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurfaceDiff {
    /// The old side's spec, origin, soname, node and size.
    pub old: SideSummary,
    /// The new side's.
    pub new: SideSummary,
    /// Only in the new side, by name.
    pub added: Vec<Entry>,
    /// Only in the old side, by name.
    pub removed: Vec<Entry>,
    /// In both, different.
    pub changed: Vec<Change>,
}

/// A side of a diff, in brief.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideSummary {
    /// How it was written.
    pub spec: String,
    /// Library or manifest.
    pub origin: Origin,
    /// Its soname.
    pub soname: Option<String>,
    /// Its version node.
    pub version_node: Option<String>,
    /// How many symbols it exports.
    pub symbols: usize,
}

fn summary(s: &Surface) -> SideSummary {
    SideSummary {
        spec: s.spec.clone(),
        origin: s.origin.clone(),
        soname: s.soname.clone(),
        version_node: s.version_node.clone(),
        symbols: s.len(),
    }
}

fn entries(name: &str, symbols: &[SurfaceSymbol]) -> impl Iterator<Item = Entry> {
    symbols.iter().map(move |s| Entry {
        name: name.to_string(),
        symbol: versioned(name, &s.version),
        kind: s.kind,
    })
}

fn versioned(name: &str, v: &Versioning) -> String {
    match v {
        Versioning::None => name.to_string(),
        Versioning::Default(n) => format!("{name}@@{n}"),
        Versioning::Hidden(n) => format!("{name}@{n}"),
    }
}

/// `true` when two prototypes differ in parameter names only.
pub fn differ_in_param_names_only(a: &Prototype, b: &Prototype) -> bool {
    a != b
        && a.returns == b.returns
        && a.params.len() == b.params.len()
        && a.params
            .iter()
            .zip(&b.params)
            .all(|(x, y)| x.ty == y.ty && x.array == y.array)
}

/// `true` when two prototypes differ in parameter names only, and those
/// are the same names in another order (`(src, dst)` became `(dst, src)`).
pub fn params_reordered(a: &Prototype, b: &Prototype) -> bool {
    fn names(p: &Prototype) -> Vec<&str> {
        p.params.iter().map(|d| d.name.as_str()).collect()
    }
    let (mut x, mut y) = (names(a), names(b));
    x.sort_unstable();
    y.sort_unstable();
    differ_in_param_names_only(a, b) && x == y
}

/// Compares two surfaces by symbol name.
pub fn diff(old: &Surface, new: &Surface) -> SurfaceDiff {
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut changed = Vec::new();
    for (name, o) in &old.symbols {
        let Some(n) = new.symbols.get(name) else {
            removed.extend(entries(name, o));
            continue;
        };
        let kinds =
            |s: &[SurfaceSymbol]| -> Vec<String> { s.iter().map(|x| x.kind.to_string()).collect() };
        if kinds(o) != kinds(n) {
            changed.push(Change {
                name: name.clone(),
                what: ChangeKind::Type,
                old: kinds(o).join(", "),
                new: kinds(n).join(", "),
                param_names_only: false,
                params_reordered: false,
            });
        }
        let rel = |side: &Surface, s: &[SurfaceSymbol]| -> Vec<String> {
            s.iter()
                .map(|x| side.relative_version(&x.version))
                .collect()
        };
        if rel(old, o) != rel(new, n) {
            let shown = |s: &[SurfaceSymbol]| -> String {
                s.iter()
                    .map(|x| versioned(name, &x.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            changed.push(Change {
                name: name.clone(),
                what: ChangeKind::Version,
                old: shown(o),
                new: shown(n),
                param_names_only: false,
                params_reordered: false,
            });
        }
        if let ([o], [n]) = (o.as_slice(), n.as_slice())
            && let (Some(op), Some(np)) = (&o.proto, &n.proto)
            && op != np
        {
            changed.push(Change {
                name: name.clone(),
                what: ChangeKind::Prototype,
                old: op.to_string(),
                new: np.to_string(),
                param_names_only: differ_in_param_names_only(op, np),
                params_reordered: params_reordered(op, np),
            });
        }
    }
    for (name, n) in &new.symbols {
        if !old.symbols.contains_key(name) {
            added.extend(entries(name, n));
        }
    }
    changed.sort();
    SurfaceDiff {
        old: summary(old),
        new: summary(new),
        added,
        removed,
        changed,
    }
}

impl SurfaceDiff {
    /// `true` when nothing was added, removed or changed.
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// `OLD → NEW: 53 added, 30 removed, 15 changed` or `…: same (435 symbols)`.
    pub fn verdict(&self) -> String {
        let head = format!("{} → {}", self.old.spec, self.new.spec);
        if self.is_same() {
            return format!("{head}: same ({} symbols)", self.old.symbols);
        }
        format!(
            "{head}: {} added, {} removed, {} changed",
            self.added.len(),
            self.removed.len(),
            self.changed.len()
        )
    }

    /// The text report: the verdict, then added, removed and changed symbols.
    pub fn to_text(&self) -> String {
        let mut o = self.verdict();
        o.push('\n');
        for (title, list, mark) in [("added", &self.added, '+'), ("removed", &self.removed, '-')] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(o, "{title} ({}):", list.len());
            for e in list {
                let kind = if e.kind == SymbolKind::Func {
                    String::new()
                } else {
                    format!(" ({})", e.kind)
                };
                let _ = writeln!(o, "  {mark} {}{kind}", e.symbol);
            }
        }
        if !self.changed.is_empty() {
            let names_only = self.changed.iter().filter(|c| c.param_names_only).count();
            let _ = write!(o, "changed ({}", self.changed.len());
            if names_only > 0 {
                let _ = write!(o, ", {names_only} in parameter names only");
            }
            o.push_str("):\n");
            for c in &self.changed {
                let what = match c.what {
                    ChangeKind::Prototype if c.params_reordered => {
                        "prototype, the same parameter names in another order: same ABI, \
                         arguments changed meaning"
                    }
                    ChangeKind::Prototype if c.param_names_only => {
                        "prototype, parameter names only"
                    }
                    ChangeKind::Prototype => "prototype",
                    ChangeKind::Type => "type",
                    ChangeKind::Version => "version",
                };
                let _ = writeln!(
                    o,
                    "  ~ {} ({what})\n      old: {}\n      new: {}",
                    c.name, c.old, c.new
                );
            }
        }
        o
    }

    /// The JSON report (see the module documentation for the schema).
    pub fn to_json(&self) -> JsonDiff {
        let side = |s: &SideSummary| JsonSide {
            spec: s.spec.clone(),
            kind: match s.origin {
                Origin::Library => "library",
                Origin::Manifest { .. } => "manifest",
            },
            soname: s.soname.clone(),
            version_node: s.version_node.clone(),
            major: match s.origin {
                Origin::Manifest { major } => Some(major),
                Origin::Library => None,
            },
            symbols: s.symbols,
        };
        let entries = |l: &[Entry]| -> Vec<JsonEntry> {
            l.iter()
                .map(|e| JsonEntry {
                    name: e.name.clone(),
                    symbol: e.symbol.clone(),
                    kind: e.kind.to_string(),
                })
                .collect()
        };
        JsonDiff {
            schema_version: SCHEMA_VERSION,
            old: side(&self.old),
            new: side(&self.new),
            verdict: if self.is_same() { "same" } else { "different" },
            counts: JsonCounts {
                added: self.added.len(),
                removed: self.removed.len(),
                changed: self.changed.len(),
            },
            added: entries(&self.added),
            removed: entries(&self.removed),
            changed: self
                .changed
                .iter()
                .map(|c| JsonChange {
                    name: c.name.clone(),
                    what: c.what,
                    old: c.old.clone(),
                    new: c.new.clone(),
                    param_names_only: c.param_names_only,
                    params_reordered: c.params_reordered,
                })
                .collect(),
        }
    }
}

/// The JSON form of a [`SurfaceDiff`].
#[derive(Clone, Debug, Serialize)]
pub struct JsonDiff {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The old side.
    pub old: JsonSide,
    /// The new side.
    pub new: JsonSide,
    /// `same` or `different`.
    pub verdict: &'static str,
    /// How many symbols were added, removed and changed.
    pub counts: JsonCounts,
    /// Only in the new side.
    pub added: Vec<JsonEntry>,
    /// Only in the old side.
    pub removed: Vec<JsonEntry>,
    /// In both, different.
    pub changed: Vec<JsonChange>,
}

/// One side of a [`JsonDiff`].
#[derive(Clone, Debug, Serialize)]
pub struct JsonSide {
    /// As written on the command line.
    pub spec: String,
    /// `library` or `manifest`.
    pub kind: &'static str,
    /// Its soname, or `null`.
    pub soname: Option<String>,
    /// Its version node, or `null`.
    pub version_node: Option<String>,
    /// The manifest's major, or `null` for a library.
    pub major: Option<u32>,
    /// How many symbols it exports.
    pub symbols: usize,
}

/// The counts of a [`JsonDiff`].
#[derive(Clone, Debug, Serialize)]
pub struct JsonCounts {
    /// Symbols added.
    pub added: usize,
    /// Symbols removed.
    pub removed: usize,
    /// Changes to symbols in both.
    pub changed: usize,
}

/// An added or removed symbol of a [`JsonDiff`].
#[derive(Clone, Debug, Serialize)]
pub struct JsonEntry {
    /// Its name.
    pub name: String,
    /// `name@@node` as its side exports it.
    pub symbol: String,
    /// `FUNC`, `OBJECT`, …
    #[serde(rename = "type")]
    pub kind: String,
}

/// A changed symbol of a [`JsonDiff`].
#[derive(Clone, Debug, Serialize)]
pub struct JsonChange {
    /// Its name.
    pub name: String,
    /// `prototype`, `type` or `version`.
    pub what: ChangeKind,
    /// Before.
    pub old: String,
    /// After.
    pub new: String,
    /// `true` when only parameter names differ.
    pub param_names_only: bool,
    /// `true` when those names are the same, in another order.
    pub params_reordered: bool,
}
