//! `cudastub import`: refresh one major of a manifest from a real library and
//! its headers.
//!
//! The symbol set and versions come from the library's ELF file; prototypes
//! from the headers the manifest's `import` section lists (bindgen, once per
//! preprocessor pass); functions no header declares keep the prototype kept
//! by hand in the manifest (`source: overlay`). Importing is a merge: an
//! older release never drops what a newer one added, and each function
//! records the earliest imported release that exports it.

mod bindings;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::ctype::{CType, Prototype};
use crate::diag::Diagnostic;
use crate::elf::{ElfImage, SymbolKind, Versioning};
use crate::manifest::{
    Function, FunctionInMajor, Layout, Major, Manifest, OVERLAY, TypeDef, proto_types,
};

pub use bindings::{Declarations, parse_header};

/// What to import.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    /// The real library (`libcudart.so.12` or `libcudart.so.12.9.79`), or
    /// with `exports_list`, a list of its exports.
    pub library: PathBuf,
    /// `library` is a text file of export names, one a line (`#` comments),
    /// read from a release no fixture ships (the GPU machine's driver): its
    /// names are functions, except those the manifest already knows as data.
    pub exports_list: bool,
    /// The major to update; needed when the soname does not tell it (a
    /// library that serves every major, `libcuda.so.1`, or an export list).
    pub major: Option<u32>,
    /// Include directories that hold the manifest's headers and what they include.
    pub include_dirs: Vec<PathBuf>,
    /// The library's release (`12.9.79`, `12.9.3.13`): dotted decimal
    /// numbers, the first of them the library's major. The file name cannot
    /// be trusted to carry it (the wheels ship `libcublas.so.12` alone).
    pub release: String,
}

/// What an import changed in one major.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// The major imported.
    pub major: u32,
    /// The release imported.
    pub release: String,
    /// Exports new to this major (functions and data objects).
    pub added: Vec<String>,
    /// Exports this major no longer has.
    pub removed: Vec<String>,
    /// Functions whose prototype changed: (name, old, new).
    pub changed: Vec<(String, String, String)>,
    /// How many prototypes came from headers and from the overlay.
    pub from_headers: usize,
    /// See `from_headers`.
    pub from_overlay: usize,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "major {} from release {}: {} added, {} removed, {} changed signature ({} prototypes from headers, {} from the overlay)",
            self.major,
            self.release,
            self.added.len(),
            self.removed.len(),
            self.changed.len(),
            self.from_headers,
            self.from_overlay
        )?;
        for a in &self.added {
            writeln!(f, "  + {a}")?;
        }
        for r in &self.removed {
            writeln!(f, "  - {r}")?;
        }
        for (n, old, new) in &self.changed {
            writeln!(f, "  ~ {n}\n      was: {old}\n      now: {new}")?;
        }
        Ok(())
    }
}

/// Checks the syntax of a release: dotted decimal numbers (`12.9.79`).
pub fn parse_release(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text
            .split('.')
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()));
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a release: expected dotted decimal numbers such as 12.9.79"
        ))
    }
}

pub use crate::manifest::compare_releases;

/// The exports an import reads: functions, and data objects with their sizes.
struct ReadExports {
    major: u32,
    functions: BTreeSet<String>,
    /// Data object → size; `None` from an export list (the manifest's size stays).
    data: BTreeMap<String, Option<u64>>,
}

/// The major of an import: `--major`, else the soname's; they must agree.
fn import_major(
    manifest: &Manifest,
    lib: &Path,
    soname: Option<&str>,
    asked: Option<u32>,
) -> Result<u32, Diagnostic> {
    let pattern = &manifest.library.soname;
    let of_soname = match soname {
        Some(s) if manifest.library.fixed_soname() => {
            if !manifest.library.serves(s) {
                return Err(Diagnostic::file(
                    lib,
                    format!("soname `{s}` is not the manifest's `{pattern}`"),
                ));
            }
            None
        }
        Some(s) => Some(manifest.library.major_of_soname(s).ok_or_else(|| {
            Diagnostic::file(
                lib,
                format!("soname `{s}` does not match the manifest's pattern `{pattern}`"),
            )
        })?),
        None => None,
    };
    match (of_soname, asked) {
        (Some(s), Some(a)) if s != a => Err(Diagnostic::file(
            lib,
            format!("--major {a}, but its soname says major {s}"),
        )),
        (Some(m), _) | (None, Some(m)) => Ok(m),
        (None, None) => Err(Diagnostic::file(
            lib,
            format!(
                "cannot tell which major to update: `{pattern}` serves every major; pass --major"
            ),
        )),
    }
}

/// Reads the exports of a real library's ELF file.
fn read_elf(manifest: &Manifest, req: &ImportRequest) -> Result<ReadExports, Diagnostic> {
    let lib = &req.library;
    let image = ElfImage::read(lib)?;
    let soname = image
        .soname
        .clone()
        .ok_or_else(|| Diagnostic::file(lib, "has no DT_SONAME, so its major cannot be known"))?;
    let major = import_major(manifest, lib, Some(&soname), req.major)?;
    let node = manifest.library.version_node_of(major);
    let mut read = ReadExports {
        major,
        functions: BTreeSet::new(),
        data: BTreeMap::new(),
    };
    let wanted = match &node {
        Some(n) => Versioning::Default(n.clone()),
        None => Versioning::None,
    };
    for s in &image.exports {
        if s.version != wanted {
            let message = match &node {
                Some(n) => format!("export `{}` is not `{}@@{n}`", s.versioned_name(), s.name),
                None => format!(
                    "export `{}` carries a version, but the manifest's library has no `version_node` (its exports are unversioned)",
                    s.versioned_name()
                ),
            };
            return Err(Diagnostic::file(lib, message));
        }
        match s.kind {
            SymbolKind::Func => {
                read.functions.insert(s.name.clone());
            }
            SymbolKind::Object if s.size > 0 => {
                read.data.insert(s.name.clone(), Some(s.size));
            }
            // A bare label (the linker's `__bss_start`, `_edata`, `_end`,
            // exported by libnvtx3interop): a data object of 0 bytes.
            SymbolKind::NoType if s.size == 0 => {
                read.data.insert(s.name.clone(), Some(0));
            }
            _ => {
                return Err(Diagnostic::file(
                    lib,
                    format!(
                        "export `{}` is a {} symbol of {} bytes; only functions and sized data objects are supported",
                        s.name, s.kind, s.size
                    ),
                ));
            }
        }
    }
    Ok(read)
}

/// Reads an export list: one name a line; blank lines and `#` comments skipped.
fn read_list(manifest: &Manifest, req: &ImportRequest) -> Result<ReadExports, Diagnostic> {
    let lib = &req.library;
    let text = crate::catalog::read_text(lib)?;
    let major = import_major(manifest, lib, None, req.major)?;
    let mut read = ReadExports {
        major,
        functions: BTreeSet::new(),
        data: BTreeMap::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if !crate::ctype::is_identifier(name) {
            return Err(Diagnostic::at(
                lib,
                i as u64 + 1,
                1,
                format!(
                    "`{}` is not an export name (one C identifier a line)",
                    crate::manifest::excerpt(name, 0)
                ),
            ));
        }
        if manifest.data.iter().any(|d| d.name == name) {
            read.data.insert(name.to_string(), None);
        } else {
            read.functions.insert(name.to_string());
        }
    }
    Ok(read)
}

/// Imports one library into `manifest`, returning the new manifest.
pub fn import(
    manifest: &Manifest,
    req: &ImportRequest,
) -> Result<(Manifest, ImportSummary), Diagnostic> {
    let lib = &req.library;
    let read = if req.exports_list {
        read_list(manifest, req)?
    } else {
        read_elf(manifest, req)?
    };
    let major = read.major;
    let release =
        parse_release(&req.release).map_err(|e| Diagnostic::file(lib, format!("--release {e}")))?;
    // A library named after the CUDA major has releases of that major; one
    // named per major has releases of its own major, the soname's last
    // number (cuFFT 11.4 for CUDA 12: `libcufft.so.11`); one that serves
    // every major (the driver) has its own release numbers.
    let soname = manifest.library.soname_of(major);
    let release_major = match &manifest.library.soname {
        _ if manifest.library.fixed_soname() => None,
        crate::manifest::Naming::Pattern(_) => Some(major.to_string()),
        crate::manifest::Naming::PerMajor(_) => soname.rsplit('.').next().map(str::to_string),
    };
    if let Some(want) = release_major
        && release.split('.').next() != Some(want.as_str())
    {
        return Err(Diagnostic::file(
            lib,
            format!(
                "--release {release:?} is not a release of major {major} (soname {soname}): its first number must be {want}"
            ),
        ));
    }
    let exports = read.functions;

    let headers = parse_headers(manifest, req, major)?;
    let old = manifest.majors.get(&major);
    let newest = old.is_none_or(|m| {
        m.imported
            .iter()
            .all(|r| compare_releases(&release, r) != std::cmp::Ordering::Less)
    });

    let mut summary = ImportSummary {
        major,
        release: release.clone(),
        ..Default::default()
    };
    let mut functions: BTreeMap<String, Function> = manifest
        .functions
        .iter()
        .map(|f| (f.name.clone(), f.clone()))
        .collect();
    let mut missing = Vec::new();
    for name in &exports {
        let existing = functions.get(name).and_then(|f| f.majors.get(&major));
        // This major's overlay, else the headers, else another major's overlay
        // (a prototype kept by hand serves until this major has its own).
        let own_overlay = existing
            .filter(|e| e.source == OVERLAY)
            .map(|e| e.proto.clone());
        let other_overlay = || {
            functions
                .get(name)
                .and_then(|f| f.majors.values().find(|e| e.source == OVERLAY))
                .map(|e| e.proto.clone())
        };
        let (source, proto) = match (own_overlay, headers.functions.get(name)) {
            (Some(p), _) => (OVERLAY.to_string(), p),
            (None, Some((header, p))) => (header.clone(), p.clone()),
            (None, None) => match (other_overlay(), &manifest.import.undeclared) {
                (Some(p), _) => (OVERLAY.to_string(), p),
                (None, Some(_)) => {
                    match crate::ctype::parse_prototype(&format!("void {name}(...)")) {
                        Ok(p) => (crate::manifest::UNDECLARED.to_string(), p),
                        Err(_) => {
                            missing.push(name.clone());
                            continue;
                        }
                    }
                }
                (None, None) => {
                    missing.push(name.clone());
                    continue;
                }
            },
        };
        if source == OVERLAY {
            summary.from_overlay += 1;
        } else {
            summary.from_headers += 1;
        }
        let since = match existing {
            Some(e) if compare_releases(&e.since, &release).is_lt() => e.since.clone(),
            _ => release.clone(),
        };
        let (source, proto) = match existing {
            Some(e) if !newest => (e.source.clone(), e.proto.clone()),
            _ => (source, proto),
        };
        match existing {
            None => summary.added.push(name.clone()),
            Some(e) if e.proto != proto => {
                summary
                    .changed
                    .push((name.clone(), e.proto.to_string(), proto.to_string()))
            }
            Some(_) => {}
        }
        // A prototype kept by hand keeps the kind written with it (no
        // header says what it is); name rules still come first.
        let kept_kind = functions
            .get(name)
            .filter(|_| source == OVERLAY)
            .map(|f| f.kind.clone());
        let default_kind = headers
            .kinds
            .get(name)
            .cloned()
            .or(kept_kind)
            .or_else(|| {
                (source == crate::manifest::UNDECLARED)
                    .then(|| manifest.import.undeclared.clone())
                    .flatten()
            })
            .unwrap_or_else(|| default_kind(manifest));
        let kept_roles = existing
            .filter(|e| e.proto == proto)
            .map(|e| (e.roles.clone(), e.class));
        let entry = functions.entry(name.clone()).or_insert_with(|| Function {
            name: name.clone(),
            kind: manifest.kind_of(name, &default_kind),
            majors: BTreeMap::new(),
            roles_overlay: false,
        });
        entry.kind = manifest.kind_of(name, &default_kind);
        // Roles kept by hand stay while the prototype does; the rest are
        // inferred again once the major's types are known (below).
        let (roles, class) = match kept_roles {
            Some(kept) if entry.roles_overlay => kept,
            _ => (Vec::new(), Default::default()),
        };
        entry.majors.insert(
            major,
            FunctionInMajor {
                since,
                source,
                proto,
                roles,
                class,
            },
        );
    }
    if !missing.is_empty() {
        // A header that declares an export the model cannot represent says
        // so: the overlay is the way out there too, but the reason matters.
        let (unrepresentable, undeclared): (Vec<&String>, Vec<&String>) = missing
            .iter()
            .partition(|n| headers.unrepresentable.contains_key(*n));
        let mut message = format!(
            "no prototype for {} export(s) of major {major}",
            missing.len()
        );
        // The names come from the input (an export list may hold anything):
        // each is cut to its start, and at most a screenful is listed.
        const MAX_NAMES: usize = 50;
        let echo = |name: &str| crate::manifest::excerpt(name, 0);
        if !undeclared.is_empty() {
            let mut names: Vec<String> =
                undeclared.iter().take(MAX_NAMES).map(|n| echo(n)).collect();
            if undeclared.len() > MAX_NAMES {
                names.push(format!("and {} more", undeclared.len() - MAX_NAMES));
            }
            message += &format!(
                "; no listed header declares {}: {}",
                undeclared.len(),
                names.join(", ")
            );
        }
        for name in unrepresentable.into_iter().take(MAX_NAMES) {
            let (header, why) = &headers.unrepresentable[name];
            message += &format!(
                "; {header} declares `{}`, but it cannot be represented: {why}",
                echo(name)
            );
        }
        message += "; add each to the manifest with `source: overlay` (a data object goes under `data:` with its size)";
        return Err(Diagnostic::file(lib, message));
    }
    // A function this release lacks stays if an older release of the major
    // exported it (old binaries still need it); one that only this release
    // was said to export, and no longer does, goes.
    for f in functions.values_mut() {
        if let Some(e) = f.majors.get(&major)
            && !exports.contains(&f.name)
            && e.since == release
        {
            summary.removed.push(f.name.clone());
            f.majors.remove(&major);
        }
    }
    functions.retain(|_, f| !f.majors.is_empty());

    let mut imported: Vec<String> = old.map(|m| m.imported.clone()).unwrap_or_default();
    if !imported.contains(&release) {
        imported.push(release.clone());
    }
    imported.sort_by(|a, b| compare_releases(a, b));

    let mut out = manifest.clone();
    out.functions = functions.into_values().collect();
    merge_data(&mut out, &read.data, major, &release, &mut summary)
        .map_err(|e| Diagnostic::file(lib, e))?;
    let protos: Vec<&Prototype> = out.functions_of(major).map(|(_, m)| &m.proto).collect();
    let previous = if newest {
        BTreeMap::new()
    } else {
        old.map(|m| m.types.clone()).unwrap_or_default()
    };
    let unrepresentable_types: BTreeMap<String, String> = headers
        .unrepresentable
        .iter()
        .map(|(name, (header, why))| (name.clone(), format!("{why} (in {header})")))
        .collect();
    // Hand-kept types (legacy layouts no header of the major declares) stay
    // as they are, in full, whichever release is imported.
    let overlay: BTreeMap<String, TypeDef> = old
        .map(|m| {
            m.overlay_types
                .iter()
                .filter_map(|n| Some((n.clone(), m.types.get(n)?.clone())))
                .collect()
        })
        .unwrap_or_default();
    let types = type_closure(
        &protos,
        &manifest.import.layouts,
        &overlay,
        &previous,
        &headers.types,
        &unrepresentable_types,
    )
    .map_err(|e| Diagnostic::file(lib, e))?;
    let overlay_types = overlay.into_keys().collect();
    out.majors.insert(
        major,
        Major {
            imported,
            types,
            overlay_types,
        },
    );
    crate::roles::refresh(&mut out);
    Ok((out, summary))
}

/// Merges the data objects one import read into `m` (like functions: the
/// earliest release stays `since`; one only this release was said to export,
/// and no longer does, goes).
fn merge_data(
    m: &mut Manifest,
    read: &BTreeMap<String, Option<u64>>,
    major: u32,
    release: &str,
    summary: &mut ImportSummary,
) -> Result<(), String> {
    for (name, size) in read {
        if m.functions.iter().any(|f| &f.name == name) {
            return Err(format!(
                "`{name}` is a data object here but a function in the manifest"
            ));
        }
        match m.data.iter_mut().find(|d| &d.name == name) {
            Some(d) => {
                if let Some(size) = size {
                    d.sizes.insert(major, *size);
                    d.source = crate::manifest::FROM_ELF.to_string();
                } else if !d.sizes.contains_key(&major) {
                    // An export list says no size: the other majors' serves.
                    let other = d.sizes.values().next().copied().unwrap_or(0);
                    d.sizes.insert(major, other);
                }
                match d.since.get(&major) {
                    Some(s) if compare_releases(s, release).is_le() => {}
                    _ => {
                        if !d.since.contains_key(&major) {
                            summary.added.push(name.clone());
                        }
                        d.since.insert(major, release.to_string());
                    }
                }
            }
            None => {
                let size = size.ok_or_else(|| {
                    format!("no size for data object `{name}`: add it under `data:` with `source: overlay`")
                })?;
                summary.added.push(name.clone());
                m.data.push(crate::manifest::DataObject {
                    name: name.clone(),
                    sizes: BTreeMap::from([(major, size)]),
                    source: crate::manifest::FROM_ELF.to_string(),
                    since: BTreeMap::from([(major, release.to_string())]),
                });
            }
        }
    }
    for d in &mut m.data {
        if !read.contains_key(&d.name) && d.since.get(&major).is_some_and(|s| s == release) {
            summary.removed.push(d.name.clone());
            d.since.remove(&major);
        }
    }
    m.data.retain(|d| !d.since.is_empty());
    m.data.sort_by(|a, b| a.name.cmp(&b.name));
    summary.added.sort();
    summary.removed.sort();
    Ok(())
}

fn default_kind(m: &Manifest) -> String {
    m.import
        .headers
        .first()
        .map_or_else(|| "api".to_string(), |h| h.kind.clone())
}

/// What the headers declared, merged over headers and passes.
struct HeaderFacts {
    /// Function → (declaring header, prototype); the first header and pass win.
    functions: BTreeMap<String, (String, Prototype)>,
    /// Function → kind of its declaring header.
    kinds: BTreeMap<String, String>,
    /// Every type any parse declared; the first definition wins.
    types: BTreeMap<String, TypeDef>,
    /// Declarations no parse could represent: name → (header, why).
    unrepresentable: BTreeMap<String, (String, String)>,
}

fn parse_headers(
    manifest: &Manifest,
    req: &ImportRequest,
    major: u32,
) -> Result<HeaderFacts, Diagnostic> {
    let dirs: Vec<&Path> = req.include_dirs.iter().map(PathBuf::as_path).collect();
    let mut facts = HeaderFacts {
        functions: BTreeMap::new(),
        kinds: BTreeMap::new(),
        types: BTreeMap::new(),
        unrepresentable: BTreeMap::new(),
    };
    for pass in &manifest.import.passes {
        for spec in manifest
            .import
            .headers
            .iter()
            .filter(|h| h.ships_with(major))
        {
            let Some(path) = dirs
                .iter()
                .map(|d| d.join(&spec.file))
                .find(|p| p.is_file())
            else {
                let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                return Err(Diagnostic::file(
                    Path::new(&spec.file),
                    format!("header not found in {}", searched.join(", ")),
                ));
            };
            let decls =
                bindings::parse_header(&path, &dirs, &spec.prelude, &pass.defines, pass.language)
                    .map_err(|e| Diagnostic::file(&path, e))?;
            for (name, proto) in decls.functions {
                if !facts.functions.contains_key(&name) {
                    facts.kinds.insert(name.clone(), spec.kind.clone());
                    facts.functions.insert(name, (spec.file.clone(), proto));
                }
            }
            for (name, def) in decls.types {
                facts.types.entry(name).or_insert(def);
            }
            for (name, why) in decls.unrepresentable {
                facts
                    .unrepresentable
                    .entry(name)
                    .or_insert_with(|| (spec.file.clone(), why));
            }
        }
    }
    Ok(facts)
}

/// The aggregate `base` names through its typedefs (no pointer among them),
/// when it has a layout and can be represented.
fn pointee_layout<'a>(
    base: &str,
    overlay: &'a BTreeMap<String, TypeDef>,
    previous: &'a BTreeMap<String, TypeDef>,
    declared: &'a BTreeMap<String, TypeDef>,
    unrepresentable: &BTreeMap<String, String>,
) -> Option<&'a Layout> {
    let mut base = base.to_string();
    for _ in 0..16 {
        if unrepresentable.contains_key(&base) {
            return None;
        }
        let def = [overlay, declared, previous]
            .into_iter()
            .find_map(|m| m.get(&base).filter(|d| !matches!(d, TypeDef::Opaque)))?;
        match def {
            TypeDef::Typedef(t) if t.pointers.is_empty() => base = t.base.clone(),
            TypeDef::Aggregate(l) => return Some(l),
            _ => return None,
        }
    }
    None
}

/// The types `protos` need: every type they name, followed through typedefs;
/// full layouts for aggregates used by value and for those a parameter
/// points to directly (`CUmemAllocationProp *prop`: a backend that sends or
/// checks the call's memory needs its size and fields) where the headers
/// define them, `opaque` for the rest of those only pointed to (handles). The hand-kept `overlay` types win over everything and keep
/// their full layout; `previous` wins over `declared` where it has the type.
///
/// A type may be reached first through a pointer and later by value
/// (`cuComplex *x`, then `cuComplex alpha`): the by-value visit walks it
/// again, through every typedef, so that the aggregate at the end gets its
/// full layout instead of staying opaque.
fn type_closure(
    protos: &[&Prototype],
    layouts: &[String],
    overlay: &BTreeMap<String, TypeDef>,
    previous: &BTreeMap<String, TypeDef>,
    declared: &BTreeMap<String, TypeDef>,
    unrepresentable: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, TypeDef>, String> {
    let mut out: BTreeMap<String, TypeDef> = BTreeMap::new();
    // Types already walked by value, and those walked only through pointers.
    let mut by_value_seen: BTreeSet<String> = BTreeSet::new();
    let mut pointer_seen: BTreeSet<String> = BTreeSet::new();
    let mut work: Vec<(CType, bool)> = protos
        .iter()
        .flat_map(|p| proto_types(p))
        .map(|t| (t.clone(), t.pointers.is_empty()))
        .collect();
    // What a parameter points to directly, in full where it has a layout
    // (walked as if by value: a later visit through a pointer keeps it).
    let pointees: BTreeSet<String> = protos
        .iter()
        .flat_map(|p| p.params.iter())
        .filter(|d| d.ty.pointers.len() == 1)
        .map(|d| d.ty.base.clone())
        .filter(|base| pointee_layout(base, overlay, previous, declared, unrepresentable).is_some())
        .collect();
    work.extend(pointees.into_iter().map(|b| (CType::named(b), true)));
    // Types asked for in full are walked as if passed by value.
    work.extend(
        layouts
            .iter()
            .chain(overlay.keys())
            .map(|l| (CType::named(l.clone()), true)),
    );
    while let Some((ty, by_value)) = work.pop() {
        let base = ty.base.clone();
        if ty.is_builtin() || crate::manifest::STANDARD_TYPES.contains(&base.as_str()) {
            continue;
        }
        let by_value = by_value && ty.pointers.is_empty();
        let first_visit = if by_value {
            by_value_seen.insert(base.clone())
        } else {
            !by_value_seen.contains(&base) && pointer_seen.insert(base.clone())
        };
        if !first_visit {
            continue;
        }
        // An older import's opaque entry cannot serve a use by value.
        let def = overlay
            .get(&base)
            .or_else(|| previous.get(&base))
            .filter(|d| !(by_value && matches!(d, TypeDef::Opaque)))
            .or_else(|| declared.get(&base))
            .ok_or_else(|| match unrepresentable.get(&base) {
                Some(why) => format!("type `{base}` is used but cannot be represented: {why}"),
                None => format!("type `{base}` is used but no header defines it"),
            })?;
        if by_value
            && matches!(def, TypeDef::Opaque)
            && let Some(why) = unrepresentable.get(&base)
        {
            return Err(format!(
                "type `{base}` is used by value but its layout cannot be represented: {why}"
            ));
        }
        let def = match def {
            TypeDef::Aggregate(_) if !by_value && !overlay.contains_key(&base) => TypeDef::Opaque,
            other => other.clone(),
        };
        match &def {
            TypeDef::Typedef(target) => {
                let mut t = target.clone();
                t.pointers.extend(ty.pointers.iter().copied());
                work.push((t, by_value));
            }
            TypeDef::FunctionPointer(p) => work.extend(
                proto_types(p)
                    .into_iter()
                    .map(|t| (t.clone(), t.pointers.is_empty())),
            ),
            TypeDef::Aggregate(l) => work.extend(
                l.fields
                    .iter()
                    .map(|f| (f.decl.ty.clone(), f.decl.ty.pointers.is_empty())),
            ),
            // The elements of an array are part of it.
            TypeDef::Array { element, .. } => {
                work.push((element.clone(), element.pointers.is_empty()))
            }
            TypeDef::Enum { .. } | TypeDef::Opaque => {}
        }
        out.insert(base, def);
    }
    Ok(out)
}
