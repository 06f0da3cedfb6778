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
//! Between two manifests, the C types the prototypes use are compared too
//! (see [`types`]): a struct or union whose size, alignment or field offsets
//! changed, fields added, removed or moved, enum values added, removed or
//! renumbered, a typedef that names another type. Each type change names the
//! functions of both sides whose prototypes use the type, directly or through
//! other types (`cudaMallocArray` reaches `enum cudaChannelFormatKind`
//! through `struct cudaChannelFormatDesc`), since those are the calls whose ABI moved
//! without their prototype's text changing: `struct cudaDeviceProp` shrinks
//! from 1032 to 1008 bytes between 12 and 13 while
//! `cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)` reads
//! the same. A library file has no types: then only symbols are compared.
//!
//! # JSON report
//!
//! `cudastub diff --format json` prints one object, [`JsonDiff`], described by
//! the JSON Schema `schemas/diff.schema.json`. Schema version
//! [`crate::schema::SCHEMA_VERSION`] (3), with the same rules as the audit
//! report: every key always present, `null` where it does not apply.
//!
//! ```text
//! {
//!   "schema_version": 3,
//!   "old": {"spec": "cuda-api.yaml#cudart/12", "kind": "manifest",   // or "library"
//!           "soname": "libcudart.so.12", "version_node": "libcudart.so.12",
//!           "major": 12,                                       // null for a library
//!           "symbols": 435,
//!           "types": 150},                                     // null for a library
//!   "new": {...},
//!   "verdict": "different",                                    // or "same"
//!   "counts": {"added": 53, "removed": 30, "changed": 22,
//!              "types_changed": 12, "types_added": 20, "types_removed": 3},
//!   "added":   [{"name": "cudaLogsCurrent", "symbol": "cudaLogsCurrent@@libcudart.so.13",
//!                "version": "libcudart.so.13", "binding": "default", "type": "FUNC"}],
//!   "removed": [...],
//!   "changed": [{"name": "cudaMemAdvise",
//!                "what": "prototype",                          // or "type", "version"
//!                "old": "cudaError_t cudaMemAdvise(…, int device)",
//!                "new": "cudaError_t cudaMemAdvise(…, struct cudaMemLocation location)",
//!                "param_names_only": false,                  // true: same ABI, renamed parameters
//!                "params_reordered": false}],                // true: same names, another order
//!   "types": {                                                 // null unless both sides are manifests
//!     "changed": [{"name": "struct cudaDeviceProp", "kind": "struct", "old_kind": "struct",
//!                  "size": {"old": 1032, "new": 1008},        // null: unchanged
//!                  "align": null,
//!                  "fields": [{"name": "clockRate", "change": "removed",
//!                              "old": {"offset": 348, "decl": "int clockRate"}, "new": null},
//!                             {"name": "multiProcessorCount", "change": "moved",
//!                              "old": {"offset": 388, "decl": "int multiProcessorCount"},
//!                              "new": {"offset": 384, "decl": "int multiProcessorCount"}}],
//!                  "values": [],                               // enums: {"name", "change", "old", "new"}
//!                  "underlying": null,                         // enums: {"old", "new"} underlying type
//!                  "definition": null,                         // typedefs, function pointers: {"old", "new"}
//!                  "functions": [{"name": "cudaChooseDevice", "via": []},
//!                                {"name": "cudaGetDeviceProperties", "via": []}]},
//!                 {"name": "enum cudaChannelFormatKind", …,
//!                  "values": [{"name": "cudaChannelFormatKindUnsigned8Packed422",
//!                              "change": "added", "old": null, "new": 32}],
//!                  "functions": [{"name": "cudaCreateChannelDesc", "via": []},
//!                                {"name": "cudaMallocArray",
//!                                 "via": ["struct cudaChannelFormatDesc"]}, …]}],
//!     "added": ["enum cudaAtomicOperation", …],
//!     "removed": ["struct cudaLaunchParams", …]
//!   }
//! }
//! ```
//!
//! `changed[].old` and `new` are the prototypes for `"what": "prototype"`,
//! and lists of exports (`{"name", "version", "binding", "type"}`, as in the
//! audit report) for `"type"` and `"version"`. A field's `change` is
//! `added`, `removed`, `moved` (same declaration, another offset) or
//! `changed` (another declaration, at the same or another offset); an enum
//! value's is `added`, `removed` or `renumbered`. `functions[].via` is the
//! chain of types between the prototype and the changed type, `[]` when the
//! prototype names it. Every list is sorted by name (`changed`: by name,
//! then `what`; fields in declaration order, removed ones where they were).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::Catalog;
use crate::ctype::Prototype;
use crate::diag::{Diagnostic, Diagnostics};
use crate::elf::{ElfImage, SymbolKind, Versioning};
use crate::manifest::Manifest;
use crate::schema::{JsonExport, SCHEMA_VERSION};

pub mod types;

use types::{TypeDiff, TypeTable};

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
    /// A data object's size in bytes (see [`crate::elf::DynSymbol::size`]).
    pub size: u64,
    /// Its version.
    pub version: Versioning,
    /// Its prototype, on a manifest side.
    pub proto: Option<Prototype>,
}

/// The export surface of one side of a diff.
#[derive(Clone, Debug, PartialEq)]
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
    /// The C types the prototypes use, on a manifest side.
    pub types: Option<TypeTable>,
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
                    size: s.size,
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
            types: None,
        }
    }

    /// The surface major `major` of `m` describes; an error when it has no such major.
    pub fn from_manifest(
        spec: &str,
        path: &Path,
        m: &Manifest,
        major: u32,
    ) -> Result<Surface, Diagnostic> {
        let facts = m.major(major).map_err(|e| Diagnostic::file(path, e))?;
        let node = m.library.version_node_of(major);
        let version = match &node {
            Some(n) => Versioning::Default(n.clone()),
            None => Versioning::None,
        };
        let functions = m.functions_of(major).map(|(f, fm)| {
            (
                f.name.clone(),
                vec![SurfaceSymbol {
                    kind: SymbolKind::Func,
                    size: 0,
                    version: version.clone(),
                    proto: Some(fm.proto.clone()),
                }],
            )
        });
        let data = m.data_of(major).map(|d| {
            (
                d.name.clone(),
                vec![SurfaceSymbol {
                    kind: if d.size_of(major) == 0 {
                        SymbolKind::NoType
                    } else {
                        SymbolKind::Object
                    },
                    size: d.size_of(major),
                    version: version.clone(),
                    proto: None,
                }],
            )
        });
        let symbols = functions.chain(data).collect();
        Ok(Surface {
            spec: spec.to_string(),
            origin: Origin::Manifest { major },
            soname: Some(m.library.soname_of(major)),
            version_node: node,
            symbols,
            types: Some(facts.types.clone()),
        })
    }

    /// Reads a side written `LIBRARY`, `MANIFEST#MAJOR` or
    /// `INDEX#LIBRARY/MAJOR` (`cuda-api.yaml#cublas/12`).
    pub fn load(spec: &str) -> Result<Surface, Diagnostics> {
        match parse_spec(spec)? {
            Spec::Manifest(path, library, major) => {
                // `cuda-api.yaml#…` outside a checkout: the shipped manifests.
                let path = crate::catalog::resolve_index(&path);
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

/// How a symbol both sides export differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeDetail {
    /// Another prototype.
    Prototype {
        /// Before.
        old: Prototype,
        /// After.
        new: Prototype,
        /// `true` when only parameter names differ (same ABI).
        param_names_only: bool,
        /// With `param_names_only`: the same names in another order, so the
        /// arguments changed meaning while the ABI stayed the same.
        params_reordered: bool,
    },
    /// Another symbol type; every export of the name on each side.
    Type {
        /// Before.
        old: Vec<JsonExport>,
        /// After.
        new: Vec<JsonExport>,
    },
    /// Another version relative to the side's node; every export of the
    /// name on each side.
    Version {
        /// Before.
        old: Vec<JsonExport>,
        /// After.
        new: Vec<JsonExport>,
    },
}

/// A symbol that both sides export, differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The symbol's name.
    pub name: String,
    /// What changed, before and after.
    pub detail: ChangeDetail,
}

impl Change {
    /// What changed.
    pub fn what(&self) -> ChangeKind {
        match self.detail {
            ChangeDetail::Prototype { .. } => ChangeKind::Prototype,
            ChangeDetail::Type { .. } => ChangeKind::Type,
            ChangeDetail::Version { .. } => ChangeKind::Version,
        }
    }

    /// `true` for a prototype whose parameter names alone changed.
    pub fn param_names_only(&self) -> bool {
        matches!(
            self.detail,
            ChangeDetail::Prototype {
                param_names_only: true,
                ..
            }
        )
    }
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
    /// A data object's size in bytes.
    pub size: u64,
    /// Its version.
    pub version: Versioning,
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
    /// The C types that differ, when both sides are manifests.
    pub types: Option<TypeDiff>,
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
    /// How many C types it defines, on a manifest side.
    pub types: Option<usize>,
}

fn summary(s: &Surface) -> SideSummary {
    SideSummary {
        spec: s.spec.clone(),
        origin: s.origin.clone(),
        soname: s.soname.clone(),
        version_node: s.version_node.clone(),
        symbols: s.len(),
        types: s.types.as_ref().map(BTreeMap::len),
    }
}

fn entries(name: &str, symbols: &[SurfaceSymbol]) -> impl Iterator<Item = Entry> {
    symbols.iter().map(move |s| Entry {
        name: name.to_string(),
        symbol: versioned(name, &s.version),
        kind: s.kind,
        size: s.size,
        version: s.version.clone(),
    })
}

fn versioned(name: &str, v: &Versioning) -> String {
    match v {
        Versioning::None => name.to_string(),
        Versioning::Default(n) => format!("{name}@@{n}"),
        Versioning::Hidden(n) => format!("{name}@{n}"),
    }
}

/// The report form of the exports of `name` on one side.
fn exports(name: &str, symbols: &[SurfaceSymbol]) -> Vec<JsonExport> {
    symbols
        .iter()
        .map(|s| {
            JsonExport::from_symbol(&crate::elf::DynSymbol {
                name: name.to_string(),
                kind: s.kind,
                weak: false,
                size: s.size,
                version: s.version.clone(),
                required_from: None,
            })
        })
        .collect()
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

/// Compares two surfaces by symbol name, and their types when both have them.
pub fn diff(old: &Surface, new: &Surface) -> SurfaceDiff {
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut changed = Vec::new();
    // The functions both sides export with a prototype: the users of types.
    let mut both: Vec<(&str, &Prototype, &Prototype)> = Vec::new();
    for (name, o) in &old.symbols {
        let Some(n) = new.symbols.get(name) else {
            removed.extend(entries(name, o));
            continue;
        };
        // A data object's size is part of its type: a stand-in of another
        // size is another variable.
        let kinds = |s: &[SurfaceSymbol]| -> Vec<(SymbolKind, u64)> {
            s.iter()
                .map(|x| {
                    (
                        x.kind,
                        if x.kind == SymbolKind::Object {
                            x.size
                        } else {
                            0
                        },
                    )
                })
                .collect()
        };
        if kinds(o) != kinds(n) {
            changed.push(Change {
                name: name.clone(),
                detail: ChangeDetail::Type {
                    old: exports(name, o),
                    new: exports(name, n),
                },
            });
        }
        let rel = |side: &Surface, s: &[SurfaceSymbol]| -> Vec<String> {
            s.iter()
                .map(|x| side.relative_version(&x.version))
                .collect()
        };
        if rel(old, o) != rel(new, n) {
            changed.push(Change {
                name: name.clone(),
                detail: ChangeDetail::Version {
                    old: exports(name, o),
                    new: exports(name, n),
                },
            });
        }
        if let ([o], [n]) = (o.as_slice(), n.as_slice())
            && let (Some(op), Some(np)) = (&o.proto, &n.proto)
        {
            both.push((name, op, np));
            if op != np {
                changed.push(Change {
                    name: name.clone(),
                    detail: ChangeDetail::Prototype {
                        old: op.clone(),
                        new: np.clone(),
                        param_names_only: differ_in_param_names_only(op, np),
                        params_reordered: params_reordered(op, np),
                    },
                });
            }
        }
    }
    for (name, n) in &new.symbols {
        if !old.symbols.contains_key(name) {
            added.extend(entries(name, n));
        }
    }
    changed.sort_by(|a, b| (&a.name, a.what()).cmp(&(&b.name, b.what())));
    let types = match (&old.types, &new.types) {
        (Some(o), Some(n)) => Some(types::diff_types(o, n, &both)),
        _ => None,
    };
    SurfaceDiff {
        old: summary(old),
        new: summary(new),
        added,
        removed,
        changed,
        types,
    }
}

impl SurfaceDiff {
    /// `true` when nothing was added, removed or changed, types included.
    pub fn is_same(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self
                .types
                .as_ref()
                .is_none_or(|t| t.changed.is_empty() && t.added.is_empty() && t.removed.is_empty())
    }

    /// `OLD → NEW: 53 added, 30 removed, 23 changed; types: 30 changed, 41 added, 4 removed`,
    /// or `…: same (435 symbols)`. Types are counted only between manifests.
    pub fn verdict(&self) -> String {
        let head = format!("{} → {}", self.old.spec, self.new.spec);
        if self.is_same() {
            return format!("{head}: same ({} symbols)", self.old.symbols);
        }
        let mut line = format!(
            "{head}: {} added, {} removed, {} changed",
            self.added.len(),
            self.removed.len(),
            self.changed.len()
        );
        if let Some(t) = &self.types {
            let _ = write!(
                line,
                "; types: {} changed, {} added, {} removed",
                t.changed.len(),
                t.added.len(),
                t.removed.len()
            );
        }
        line
    }

    /// The text report: the verdict, then added, removed and changed
    /// symbols, then changed, added and removed types.
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
            let names_only = self.changed.iter().filter(|c| c.param_names_only()).count();
            let _ = write!(o, "changed ({}", self.changed.len());
            if names_only > 0 {
                let _ = write!(o, ", {names_only} in parameter names only");
            }
            o.push_str("):\n");
            for c in &self.changed {
                let (what, old, new) = match &c.detail {
                    ChangeDetail::Prototype {
                        old,
                        new,
                        param_names_only,
                        params_reordered,
                    } => (
                        if *params_reordered {
                            "prototype, the same parameter names in another order: same ABI, \
                             arguments changed meaning"
                        } else if *param_names_only {
                            "prototype, parameter names only"
                        } else {
                            "prototype"
                        },
                        old.to_string(),
                        new.to_string(),
                    ),
                    ChangeDetail::Type { old, new } => {
                        let kinds = |l: &[JsonExport]| -> String {
                            let k: Vec<String> = l
                                .iter()
                                .map(|e| match e.size {
                                    Some(n) => format!("{} ({n} bytes)", e.kind),
                                    None => e.kind.clone(),
                                })
                                .collect();
                            k.join(", ")
                        };
                        ("type", kinds(old), kinds(new))
                    }
                    ChangeDetail::Version { old, new } => {
                        let names = |l: &[JsonExport]| -> String {
                            let v: Vec<String> = l.iter().map(JsonExport::versioned_name).collect();
                            v.join(", ")
                        };
                        ("version", names(old), names(new))
                    }
                };
                let _ = writeln!(
                    o,
                    "  ~ {} ({what})\n      old: {old}\n      new: {new}",
                    c.name
                );
            }
        }
        if let Some(t) = &self.types {
            if !t.changed.is_empty() {
                let _ = writeln!(o, "types changed ({}):", t.changed.len());
                for c in &t.changed {
                    o.push_str(&c.to_text());
                }
            }
            for (title, list, mark) in [
                ("types added", &t.added, '+'),
                ("types removed", &t.removed, '-'),
            ] {
                if list.is_empty() {
                    continue;
                }
                let _ = writeln!(o, "{title} ({}):", list.len());
                for name in list {
                    let _ = writeln!(o, "  {mark} {name}");
                }
            }
        }
        o
    }

    /// The JSON report (see the module documentation for the schema).
    pub fn to_json(&self) -> JsonDiff {
        let side = |s: &SideSummary| JsonSide {
            spec: s.spec.clone(),
            kind: match s.origin {
                Origin::Library => SideKind::Library,
                Origin::Manifest { .. } => SideKind::Manifest,
            },
            soname: s.soname.clone(),
            version_node: s.version_node.clone(),
            major: match s.origin {
                Origin::Manifest { major } => Some(major),
                Origin::Library => None,
            },
            symbols: s.symbols,
            types: s.types,
        };
        let entries = |l: &[Entry]| -> Vec<JsonEntry> {
            l.iter()
                .map(|e| JsonEntry {
                    symbol: e.symbol.clone(),
                    export: JsonExport::from_symbol(&crate::elf::DynSymbol {
                        name: e.name.clone(),
                        kind: e.kind,
                        weak: false,
                        size: e.size,
                        version: e.version.clone(),
                        required_from: None,
                    }),
                })
                .collect()
        };
        let types = self.types.as_ref();
        JsonDiff {
            schema_version: SCHEMA_VERSION,
            old: side(&self.old),
            new: side(&self.new),
            verdict: if self.is_same() {
                DiffVerdict::Same
            } else {
                DiffVerdict::Different
            },
            counts: JsonCounts {
                added: self.added.len(),
                removed: self.removed.len(),
                changed: self.changed.len(),
                types_changed: types.map(|t| t.changed.len()),
                types_added: types.map(|t| t.added.len()),
                types_removed: types.map(|t| t.removed.len()),
            },
            added: entries(&self.added),
            removed: entries(&self.removed),
            changed: self
                .changed
                .iter()
                .map(|c| JsonChange {
                    name: c.name.clone(),
                    detail: match &c.detail {
                        ChangeDetail::Prototype {
                            old,
                            new,
                            param_names_only,
                            params_reordered,
                        } => JsonChangeDetail::Prototype {
                            old: old.to_string(),
                            new: new.to_string(),
                            param_names_only: *param_names_only,
                            params_reordered: *params_reordered,
                        },
                        ChangeDetail::Type { old, new } => JsonChangeDetail::Type {
                            old: old.clone(),
                            new: new.clone(),
                            param_names_only: false,
                            params_reordered: false,
                        },
                        ChangeDetail::Version { old, new } => JsonChangeDetail::Version {
                            old: old.clone(),
                            new: new.clone(),
                            param_names_only: false,
                            params_reordered: false,
                        },
                    },
                })
                .collect(),
            types: self.types.clone(),
        }
    }
}

/// What `cudastub diff --format json` prints: the diff, or the error that
/// stopped it (`verdict` `error`, exit 2).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum JsonDiffOutput {
    /// The two sides compared.
    Diff(Box<JsonDiff>),
    /// Why there is no diff.
    Error(crate::schema::JsonError),
}

/// The JSON form of a [`SurfaceDiff`].
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonDiff {
    /// Always 3 ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The old side.
    pub old: JsonSide,
    /// The new side.
    pub new: JsonSide,
    /// `same` or `different`.
    pub verdict: DiffVerdict,
    /// How many symbols and types were added, removed and changed.
    pub counts: JsonCounts,
    /// Symbols only in the new side, by name.
    pub added: Vec<JsonEntry>,
    /// Symbols only in the old side, by name.
    pub removed: Vec<JsonEntry>,
    /// Symbols in both, different, by name then `what`.
    pub changed: Vec<JsonChange>,
    /// The C types that differ; `null` unless both sides are manifests.
    pub types: Option<TypeDiff>,
}

/// The verdict of a [`JsonDiff`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum DiffVerdict {
    /// Nothing differs.
    Same,
    /// Something was added, removed or changed.
    Different,
}

/// What a side of a diff is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum SideKind {
    /// A shared library file.
    Library,
    /// A major of a manifest.
    Manifest,
}

/// One side of a [`JsonDiff`].
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonSide {
    /// As written on the command line.
    pub spec: String,
    /// `library` or `manifest`.
    pub kind: SideKind,
    /// Its soname, or `null`.
    pub soname: Option<String>,
    /// Its version node, or `null`.
    pub version_node: Option<String>,
    /// The manifest's major, or `null` for a library.
    pub major: Option<u32>,
    /// How many symbols it exports.
    pub symbols: usize,
    /// How many C types the manifest defines for the major, or `null` for a library.
    pub types: Option<usize>,
}

/// The counts of a [`JsonDiff`].
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonCounts {
    /// Symbols added.
    pub added: usize,
    /// Symbols removed.
    pub removed: usize,
    /// Changes to symbols in both.
    pub changed: usize,
    /// Types changed, or `null` unless both sides are manifests.
    pub types_changed: Option<usize>,
    /// Types added, or `null` unless both sides are manifests.
    pub types_added: Option<usize>,
    /// Types removed, or `null` unless both sides are manifests.
    pub types_removed: Option<usize>,
}

/// An added or removed symbol of a [`JsonDiff`]: its export, and
/// `name@@node` as its side exports it.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonEntry {
    /// `name@@node`, `name@node` or `name`.
    pub symbol: String,
    /// `name`, `version`, `binding` and `type`.
    #[serde(flatten)]
    pub export: JsonExport,
}

/// A changed symbol of a [`JsonDiff`].
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonChange {
    /// Its name.
    pub name: String,
    /// `what` changed, `old` and `new`.
    #[serde(flatten)]
    pub detail: JsonChangeDetail,
}

/// What changed about a symbol: the shape of `old` and `new` depends on `what`.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "what", rename_all = "lowercase")]
pub enum JsonChangeDetail {
    /// Its prototype (manifest sides only).
    Prototype {
        /// The old prototype, as C.
        old: String,
        /// The new prototype, as C.
        new: String,
        /// `true` when only parameter names differ (same ABI).
        param_names_only: bool,
        /// `true` when those names are the same, in another order.
        params_reordered: bool,
    },
    /// Its symbol type.
    Type {
        /// Every export of the name in the old side.
        old: Vec<JsonExport>,
        /// Every export of the name in the new side.
        new: Vec<JsonExport>,
        /// Always `false`.
        param_names_only: bool,
        /// Always `false`.
        params_reordered: bool,
    },
    /// Its version, relative to its side's node.
    Version {
        /// Every export of the name in the old side.
        old: Vec<JsonExport>,
        /// Every export of the name in the new side.
        new: Vec<JsonExport>,
        /// Always `false`.
        param_names_only: bool,
        /// Always `false`.
        params_reordered: bool,
    },
}
