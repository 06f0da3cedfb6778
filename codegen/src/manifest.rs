//! The manifest model: what a versioned library exports, per major version.
//!
//! `cuda-api.yaml` is the one source every output is generated from. This
//! module is the only place that knows its shape: it loads and validates the
//! YAML (every error names the file, line and column), and writes it back in
//! the one canonical layout (sorted, one function per entry) that
//! `cudastub import` produces and reviewers diff.
//!
//! Nothing here knows about CUDA: the soname and version-node patterns, the
//! status codes, the headers and the symbol kinds are all data in the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::ctype::{self, CType, Decl, Prototype};
use crate::diag::{Diagnostic, Diagnostics};
use crate::roles::{self, CallClass, InferContext, Role, RoleRule};

/// The placeholder in `soname` and `version_node` patterns.
pub const MAJOR_PLACEHOLDER: &str = "{major}";

/// Type names every C compiler knows without a header of the library.
pub const STANDARD_TYPES: &[&str] = &[
    "size_t",
    "ssize_t",
    "uintptr_t",
    "intptr_t",
    "int8_t",
    "int16_t",
    "int32_t",
    "int64_t",
    "uint8_t",
    "uint16_t",
    "uint32_t",
    "uint64_t",
];

/// The most pointer levels a type may have (`void ***` has 3): deeper types
/// would only exhaust the stack of the code that generates and compiles the
/// shim.
pub const MAX_POINTER_DEPTH: usize = 8;

/// The largest size of a struct or union, in bytes (the largest CUDA
/// structure, `cudaDeviceProp`, is about 1 KB).
pub const MAX_AGGREGATE_SIZE: u64 = 1 << 20;

/// The largest alignment of a struct or union, in bytes.
pub const MAX_AGGREGATE_ALIGN: u64 = 4096;

/// The most characters of the manifest's own text a message repeats (the
/// longest real prototypes have about 260); longer text is cut to its start
/// and the place the message is about.
pub const MAX_ECHO: usize = 300;

/// The Rust keywords that have no raw identifier (`r#self` is not allowed):
/// a shim's exports are Rust items named like the C symbol (other keywords
/// become raw identifiers, `r#match`, whose symbol is `match`), so a
/// function or data object of one of these names cannot be exported.
pub const NOT_RAW_IDENTIFIERS: &[&str] = &["self", "Self", "super", "crate", "_"];

/// The whole manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// Library-level facts that hold for every major.
    pub library: Library,
    /// How `cudastub import` reads the headers (hand-kept).
    pub import: ImportConfig,
    /// Per-major facts: soname, version node, imported releases, types.
    pub majors: BTreeMap<u32, Major>,
    /// Every exported function, sorted by name.
    pub functions: Vec<Function>,
    /// Every exported data object (variable), sorted by name.
    pub data: Vec<DataObject>,
}

/// Library-level facts.
#[derive(Clone, Debug, PartialEq)]
pub struct Library {
    /// Short name (`cudart`), used in messages and file names.
    pub name: String,
    /// The soname pattern, e.g. `libcudart.so.{major}`, a fixed soname
    /// (`libcuda.so.1`) for a library that serves every CUDA major, or one
    /// soname per major where the library's own major is not CUDA's
    /// (`libcufft.so.11` with CUDA 12, `libcufft.so.12` with 13).
    pub soname: Naming,
    /// The version node, named like the soname (pattern, fixed or per
    /// major); `None` for a library whose exports carry no version
    /// (`libcuda.so.1`, NVML).
    pub version_node: Option<Naming>,
    /// The environment variable that names the real library's full path
    /// (`CUDASTUB_REAL_CUDART`); each library has its own, so overriding one
    /// never redirects another.
    pub real_path_variable: String,
    /// The library's status-code convention, if it has one.
    pub status: Option<StatusCodes>,
    /// Where a shim looks for the real library, in order: absolute
    /// directories, or `$VAR/dir` (skipped when `VAR` is unset).
    pub search: Vec<String>,
    /// Functions that hand out the addresses of the library's own exports
    /// (`cuGetProcAddress`): a shim maps each address it returns to its own
    /// entry for the same export.
    pub entry_points: Vec<EntryPoint>,
    /// The shim opens the real library with `RTLD_DEEPBIND`, so that its
    /// references to its own exports bind to its own definitions, and
    /// copies every exported data object's bytes from it once loaded: for a
    /// library whose data objects are C++ vtables, typeinfo and template
    /// statics (cuFile, cuDNN's graph library) that the real library uses
    /// itself and other code may bind to the shim's copy of.
    pub mirror_data: bool,
    /// The shim loads the real library from its own ELF constructor, not at
    /// the first call: for a plugin whose constructors do its work (cuDNN's
    /// engine libraries register their engines with libcudnn_graph when
    /// loaded; their one C export is a dummy nobody calls).
    pub eager_load: bool,
}

/// A function that returns the address of one of the library's exports
/// through a `void **` parameter: `cuGetProcAddress_v2(symbol, pfn, …)`.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryPoint {
    /// The function (`cuGetProcAddress_v2`).
    pub function: String,
    /// Its `void **` parameter that receives the address (`pfn`).
    pub pointer: String,
}

/// How the library reports errors: which return type is a status code, and
/// which of its values a shim returns when it cannot forward a call.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusCodes {
    /// The status type, e.g. `cudaError_t`.
    pub type_name: String,
    /// The success value, e.g. `cudaSuccess`.
    pub success: String,
    /// Returned when the real library cannot be loaded.
    pub library_missing: String,
    /// Returned when the real library lacks the function.
    pub symbol_missing: String,
    /// Returned by functions a backend chose not to support.
    pub not_supported: String,
    /// Where the status is a field of a small struct the functions return
    /// (cuFile's `CUfileError_t { CUfileOpError err; CUresult cu_err; }`):
    /// the field (`err`), at offset 0 of a struct of at most 8 bytes, whose
    /// enum the codes above are values of. The other fields of a status a
    /// shim makes up are zero.
    pub field: Option<String>,
}

/// Hand-kept configuration of the header importer.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportConfig {
    /// The headers to parse, each with the kind of the functions it declares.
    pub headers: Vec<HeaderSpec>,
    /// Preprocessor configurations; every header is parsed once per pass.
    pub passes: Vec<Pass>,
    /// Name rules that override a header's kind; the first match wins.
    pub kinds: Vec<KindRule>,
    /// Types recorded with their full layout even where prototypes only
    /// point to them (`struct cudaDeviceProp`), for backends that fill them.
    pub layouts: Vec<String>,
    /// The library's own rules for parameter roles and call classes, tried
    /// before the structural rules (see [`crate::roles`]).
    pub role_rules: Vec<RoleRule>,
    /// The bytes each value of an enum selects, for sizes `of(P)`: the
    /// enum's name as prototypes spell it (`CUpointer_attribute`), then one
    /// size per enumerator (`CU_POINTER_ATTRIBUTE_CONTEXT: 8`; 0 where the
    /// value selects nothing, such as a `_MAX` sentinel).
    pub value_sizes: BTreeMap<String, BTreeMap<String, u64>>,
    /// The kind of the exports no header declares, for a library that has
    /// many (cuDNN's sub-libraries export thousands of C++ functions):
    /// `cudastub import` records each as `void NAME(...)` with `source:
    /// undeclared`, forwarded by the jump whatever its real signature,
    /// and re-derived at every import. Without it, such an export is an
    /// error until it gets a prototype kept by hand (`source: overlay`).
    pub undeclared: Option<String>,
}

/// The `source` of a function no header declares, recorded by the importer
/// under the manifest's `import.undeclared` kind.
pub const UNDECLARED: &str = "undeclared";

/// One header the importer parses.
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderSpec {
    /// File name relative to an include directory.
    pub file: String,
    /// Kind of the functions it declares (`api`, `interop`, …).
    pub kind: String,
    /// Headers included before it, for one that does not include what it
    /// uses (`cudaVDPAU.h` needs `cuda.h`).
    pub prelude: Vec<String>,
    /// The majors whose releases ship the header (NVTX's memory and payload
    /// extensions only come with CUDA 13's); empty: every major.
    pub majors: Vec<u32>,
}

impl HeaderSpec {
    /// `true` when the releases of `major` ship this header.
    pub fn ships_with(&self, major: u32) -> bool {
        self.majors.is_empty() || self.majors.contains(&major)
    }
}

/// One preprocessor configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Pass {
    /// Name shown in import summaries.
    pub name: String,
    /// Macros defined for this pass (`NAME` or `NAME=VALUE`).
    pub defines: Vec<String>,
    /// The language the headers are parsed as: C unless a pass asks for C++
    /// (declarations only visible under `__cplusplus`, such as cuBLAS's
    /// `__half` functions).
    pub language: Language,
}

/// The language a preprocessor pass parses the headers as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Language {
    /// C (`language: c`, the default).
    #[default]
    C,
    /// C++ (`language: c++`).
    Cxx,
}

impl Language {
    /// The manifest's spelling: `c` or `c++`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::C => "c",
            Language::Cxx => "c++",
        }
    }
}

/// A name rule for a function's kind.
#[derive(Clone, Debug, PartialEq)]
pub struct KindRule {
    /// The kind given to matching functions.
    pub kind: String,
    /// Matches names starting with this.
    pub prefix: Option<String>,
    /// Matches names ending with this.
    pub suffix: Option<String>,
}

impl KindRule {
    /// `true` when `name` matches every condition of the rule.
    pub fn matches(&self, name: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| name.starts_with(p))
            && self.suffix.as_deref().is_none_or(|s| name.ends_with(s))
    }
}

/// Per-major facts. The soname and version node are not stored: they come
/// from the library's patterns ([`Library::soname_of`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Major {
    /// Every release imported into this major, oldest first.
    pub imported: Vec<String>,
    /// The C types the prototypes of this major use, by C spelling
    /// (`dim3`, `struct dim3`, `enum cudaError`).
    pub types: BTreeMap<String, TypeDef>,
    /// The types no header of the major declares, kept by hand (`source:
    /// overlay`) and never overwritten by the importer: the legacy layouts
    /// of old ABIs, such as 12's `struct cudaDeviceProp_v1` (CUDA 11's
    /// `cudaDeviceProp`, which 12's legacy `cudaGetDeviceProperties` fills).
    pub overlay_types: BTreeSet<String>,
}

/// A C type the prototypes use.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeDef {
    /// `typedef TARGET NAME;`
    Typedef(CType),
    /// A function pointer `typedef`: its signature (with an empty name).
    FunctionPointer(Prototype),
    /// An enum: its underlying builtin type and its values.
    Enum {
        repr: String,
        values: BTreeMap<String, i64>,
    },
    /// A struct or union (the key says which) with its C layout.
    Aggregate(Layout),
    /// A struct only ever used through pointers: its layout is not needed.
    Opaque,
    /// An array `typedef`: `typedef unsigned int X[32];` is element
    /// `unsigned int`, length 32.
    Array { element: CType, length: u64 },
}

/// The C layout of a struct or union.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// `sizeof`.
    pub size: u64,
    /// `_Alignof`.
    pub align: u64,
    /// Fields in declaration order.
    pub fields: Vec<Field>,
}

/// One field of an aggregate.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// Byte offset.
    pub offset: u64,
    /// The declaration, e.g. `unsigned int x` or `char reserved[64]`.
    pub decl: Decl,
}

/// One exported function.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// The exported name.
    pub name: String,
    /// Its kind (`api`, `internal`, `per-thread`, `interop`, …).
    pub kind: String,
    /// Per major that exports it: since when, and its prototype.
    pub majors: BTreeMap<u32, FunctionInMajor>,
    /// Its roles and call class are kept by hand (`roles_source: overlay`):
    /// `cudastub roles` and `import` never recompute them.
    pub roles_overlay: bool,
}

/// One exported data object: a variable, such as `libcuda.so.1`'s `cudbg*`
/// flags that debuggers read and write. A shim cannot forward a variable: it
/// exports its own, of the real size, zero-filled.
#[derive(Clone, Debug, PartialEq)]
pub struct DataObject {
    /// The exported name.
    pub name: String,
    /// Its size in bytes (`st_size` of the real symbol) per major that
    /// exports it (a C++ vtable grows between cuDNN 9.19 and 9.28); 0 for a
    /// bare label of type `NOTYPE` (the linker's `_end`, which
    /// libnvtx3interop exports). The manifest writes one number when every
    /// major has the same.
    pub sizes: BTreeMap<u32, u64>,
    /// Where the size came from: `elf` (a real library) or `overlay` (kept by
    /// hand, for an object no imported file shows).
    pub source: String,
    /// Per major that exports it: the earliest imported release.
    pub since: BTreeMap<u32, String>,
}

impl DataObject {
    /// Its size in `major` (0 for a major that does not export it).
    pub fn size_of(&self, major: u32) -> u64 {
        self.sizes.get(&major).copied().unwrap_or(0)
    }
}

/// The `source` of a data object read from a real library's ELF file.
pub const FROM_ELF: &str = "elf";

/// A function as one major exports it.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionInMajor {
    /// The earliest imported release of this major that exports it.
    pub since: String,
    /// Where the prototype came from: a header file name, or `overlay`.
    pub source: String,
    /// The prototype.
    pub proto: Prototype,
    /// Each parameter's role, in order (see [`crate::roles`]); empty when
    /// the parameters are unknown (`(...)`).
    pub roles: Vec<Role>,
    /// What kind of call it is.
    pub class: CallClass,
}

/// An enum's values in the one order every output uses: by value, then name.
pub fn sorted_values(values: &BTreeMap<String, i64>) -> Vec<(&str, i64)> {
    let mut sorted: Vec<(&str, i64)> = values.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    sorted.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
    sorted
}

/// The `source` of a prototype kept by hand in the manifest.
pub const OVERLAY: &str = "overlay";

/// How a library names its soname or version node for each major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Naming {
    /// A pattern with `{major}` once (`libcudart.so.{major}`), or a fixed
    /// name every major shares (`libcuda.so.1`, `libcudnn.so.9`).
    Pattern(String),
    /// One name per major (`{12: libcufft.so.11, 13: libcufft.so.12}`): the
    /// library's own major is not CUDA's.
    PerMajor(BTreeMap<u32, String>),
}

impl Naming {
    /// The name of `major` (empty for a major a per-major map lacks, which
    /// a loaded manifest never has: every major is checked to be there).
    pub fn of(&self, major: u32) -> String {
        match self {
            Naming::Pattern(p) => p.replace(MAJOR_PLACEHOLDER, &major.to_string()),
            Naming::PerMajor(m) => m.get(&major).cloned().unwrap_or_default(),
        }
    }

    /// `true` when the name does not tell the major: a fixed name, or a
    /// map that gives some two majors the same name.
    pub fn is_fixed(&self) -> bool {
        match self {
            Naming::Pattern(p) => !p.contains(MAJOR_PLACEHOLDER),
            Naming::PerMajor(m) => {
                let names: BTreeSet<&String> = m.values().collect();
                names.len() < m.len()
            }
        }
    }

    /// The major `name` belongs to, when the name tells it.
    pub fn major_of(&self, name: &str) -> Option<u32> {
        if self.is_fixed() {
            return None;
        }
        match self {
            Naming::Pattern(p) => major_in_soname(p, name),
            Naming::PerMajor(m) => m.iter().find(|(_, n)| *n == name).map(|(k, _)| *k),
        }
    }

    /// `true` when `name` is this naming's for some major.
    pub fn names(&self, name: &str) -> bool {
        match self {
            Naming::Pattern(p) => p == name || major_in_soname(p, name).is_some(),
            Naming::PerMajor(m) => m.values().any(|n| n == name),
        }
    }
}

impl std::fmt::Display for Naming {
    /// The pattern, or the map as the manifest writes it (`{12: a, 13: b}`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Naming::Pattern(p) => f.write_str(p),
            Naming::PerMajor(m) => {
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                write!(f, "{{{}}}", parts.join(", "))
            }
        }
    }
}

impl Library {
    /// The soname of `major`.
    pub fn soname_of(&self, major: u32) -> String {
        self.soname.of(major)
    }

    /// The version node of `major`; `None` for an unversioned library.
    pub fn version_node_of(&self, major: u32) -> Option<String> {
        self.version_node.as_ref().map(|n| n.of(major))
    }

    /// `true` when the soname does not tell the major (`libcuda.so.1`
    /// serves every major; `libcudnn.so.9` is cuDNN's for CUDA 12 and 13).
    pub fn fixed_soname(&self) -> bool {
        self.soname.is_fixed()
    }

    /// The major a soname belongs to, if the soname tells it (never for a
    /// fixed soname, which every major shares).
    pub fn major_of_soname(&self, soname: &str) -> Option<u32> {
        self.soname.major_of(soname)
    }

    /// `true` when `soname` is this library's, for some major.
    pub fn serves(&self, soname: &str) -> bool {
        self.soname.names(soname)
    }
}

/// The major `soname` names, if it matches the soname `pattern`
/// (`libcudart.so.{major}`; never for a fixed one).
fn major_in_soname(pattern: &str, soname: &str) -> Option<u32> {
    let (prefix, suffix) = pattern.split_once(MAJOR_PLACEHOLDER)?;
    let digits = soname.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A library's name and soname pattern, read from the top of its manifest
/// without parsing the rest ([`peek_library`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryHead {
    /// The library's name (`cudart`).
    pub name: String,
    /// Its soname pattern (`libcudart.so.{major}`), fixed soname
    /// (`libcuda.so.1`) or per-major sonames.
    pub soname: Naming,
}

impl LibraryHead {
    /// `true` when `soname` is one of this library's: the fixed soname, the
    /// pattern with some major, or one of the per-major sonames.
    pub fn serves(&self, soname: &str) -> bool {
        self.soname.names(soname)
    }
}

/// A soname or version node as the manifest writes it: a string (pattern
/// or fixed name) or a map from major to name.
/// A data object's size: one for every major, or one per major.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    One(u64),
    PerMajor(BTreeMap<u32, u64>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawNaming {
    One(String),
    PerMajor(BTreeMap<u32, String>),
}

impl From<RawNaming> for Naming {
    fn from(raw: RawNaming) -> Naming {
        match raw {
            RawNaming::One(s) => Naming::Pattern(s),
            RawNaming::PerMajor(m) => Naming::PerMajor(m),
        }
    }
}

/// The name and soname of the library a manifest describes, from its
/// `library:` section alone: the lines from `library:` to the next
/// top-level key. Parsing a whole manifest (200–400 kB of YAML) is most of
/// what an audit of one library costs, so a command that needs one library
/// of an index looks at each manifest's head first. `None` when the text is
/// not laid out like that; then the caller parses the whole manifest, which
/// also reports any error.
pub fn peek_library(text: &str) -> Option<LibraryHead> {
    #[derive(Deserialize)]
    struct Top {
        library: Head,
    }
    #[derive(Deserialize)]
    struct Head {
        name: String,
        soname: RawNaming,
    }
    let start = if text.starts_with("library:") {
        0
    } else {
        text.find("\nlibrary:")? + 1
    };
    let section = &text[start..];
    // The section ends at the next line that starts a top-level key.
    let end = section
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            section[i..]
                .bytes()
                .next()
                .is_some_and(|b| !matches!(b, b' ' | b'\t' | b'#' | b'\n' | b'\r'))
        })
        .unwrap_or(section.len());
    let top: Top = serde_saphyr::from_str(&section[..end]).ok()?;
    Some(LibraryHead {
        name: top.library.name,
        soname: top.library.soname.into(),
    })
}

/// Compares release strings numerically, component by component.
pub fn compare_releases(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parts(a).cmp(&parts(b))
}

impl Manifest {
    /// The earliest imported release of `major` that exports `name` (a
    /// function or a data object), if `major` exports it.
    pub fn since(&self, major: u32, name: &str) -> Option<&str> {
        let function = self
            .functions
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.functions[i].majors.get(&major))
            .map(|f| f.since.as_str());
        function.or_else(|| {
            self.data
                .iter()
                .find(|d| d.name == name)
                .and_then(|d| d.since.get(&major))
                .map(String::as_str)
        })
    }

    /// The functions `major` exports, sorted by name, with their prototypes.
    pub fn functions_of(&self, major: u32) -> impl Iterator<Item = (&Function, &FunctionInMajor)> {
        self.functions
            .iter()
            .filter_map(move |f| f.majors.get(&major).map(|m| (f, m)))
    }

    /// The data objects `major` exports, sorted by name.
    pub fn data_of(&self, major: u32) -> impl Iterator<Item = &DataObject> {
        self.data
            .iter()
            .filter(move |d| d.since.contains_key(&major))
    }

    /// The sorted export names of `major`: functions and data objects.
    pub fn symbols_of(&self, major: u32) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .functions_of(major)
            .map(|(f, _)| f.name.as_str())
            .chain(self.data_of(major).map(|d| d.name.as_str()))
            .collect();
        names.sort_unstable();
        names
    }

    /// The sorted names of the functions `major` exports.
    pub fn function_names_of(&self, major: u32) -> Vec<&str> {
        self.functions_of(major)
            .map(|(f, _)| f.name.as_str())
            .collect()
    }

    /// The per-major facts, or an error naming the majors there are.
    pub fn major(&self, major: u32) -> Result<&Major, String> {
        self.majors.get(&major).ok_or_else(|| {
            let known: Vec<String> = self.majors.keys().map(u32::to_string).collect();
            format!(
                "the manifest has no major {major} (it has {})",
                known.join(", ")
            )
        })
    }

    /// Looks a function up by name.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.functions[i])
    }

    /// The kind a function gets from the name rules, else `default`.
    pub fn kind_of(&self, name: &str, default: &str) -> String {
        self.import
            .kinds
            .iter()
            .find(|r| r.matches(name))
            .map_or(default, |r| &r.kind)
            .to_string()
    }

    /// Follows typedefs of `major` from `ty` to the type it finally names.
    pub fn resolve(&self, major: u32, ty: &CType) -> CType {
        match self.majors.get(&major) {
            Some(m) => m.resolve(ty),
            None => ty.clone(),
        }
    }
}

impl Major {
    /// The enum type a status type's codes are values of: the status type
    /// itself, or with `field`, the type of that field of the status struct,
    /// which must be at offset 0 of a struct of at most 8 bytes (returned in
    /// one register, so that a code alone, zero-extended, is the status).
    pub fn status_enum(&self, type_name: &str, field: Option<&str>) -> Result<CType, String> {
        let resolved = self.resolve(&CType::named(type_name.to_string()));
        let Some(field) = field else {
            return Ok(resolved);
        };
        let layout = match self.types.get(&resolved.base) {
            Some(TypeDef::Aggregate(l)) if resolved.pointers.is_empty() => l,
            _ => {
                return Err(format!(
                    "status type `{type_name}` with `field: {field}` is not a struct"
                ));
            }
        };
        let Some(f) = layout.fields.iter().find(|f| f.decl.name == field) else {
            return Err(format!("status type `{type_name}` has no field `{field}`"));
        };
        if f.offset != 0 || layout.size > 8 {
            return Err(format!(
                "status field `{field}` must be at offset 0 of a struct of at most 8 bytes (it is at {} of {})",
                f.offset, layout.size
            ));
        }
        Ok(self.resolve(&f.decl.ty))
    }

    /// Follows this major's typedefs from `ty` to the type it finally names.
    pub fn resolve(&self, ty: &CType) -> CType {
        let mut cur = ty.clone();
        for _ in 0..32 {
            match self.types.get(&cur.base) {
                Some(TypeDef::Typedef(target)) => {
                    let mut next = target.clone();
                    next.is_const |= cur.is_const && target.pointers.is_empty();
                    next.pointers.extend(cur.pointers.iter().copied());
                    cur = next;
                }
                _ => break,
            }
        }
        cur
    }
}

// ---------------------------------------------------------------------------
// Loading

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    library: RawLibrary,
    import: RawImport,
    majors: BTreeMap<u32, Spanned<RawMajor>>,
    #[serde(default)]
    functions: Vec<RawFunction>,
    #[serde(default)]
    data: Vec<RawData>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    name: Spanned<String>,
    size: Spanned<RawSize>,
    source: String,
    since: Spanned<BTreeMap<u32, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLibrary {
    name: String,
    soname: Spanned<RawNaming>,
    version_node: Option<Spanned<RawNaming>>,
    real_path_variable: Spanned<String>,
    status: Option<RawStatus>,
    #[serde(default)]
    search: Vec<Spanned<String>>,
    #[serde(default)]
    entry_points: Vec<RawEntryPoint>,
    #[serde(default)]
    mirror_data: bool,
    #[serde(default)]
    eager_load: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntryPoint {
    function: Spanned<String>,
    pointer: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    #[serde(rename = "type")]
    type_name: Spanned<String>,
    success: Spanned<String>,
    library_missing: Spanned<String>,
    symbol_missing: Spanned<String>,
    not_supported: Spanned<String>,
    field: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImport {
    headers: Vec<RawHeader>,
    passes: Vec<RawPass>,
    #[serde(default)]
    kinds: Vec<RawKindRule>,
    #[serde(default)]
    layouts: Vec<String>,
    #[serde(default)]
    role_rules: Vec<Spanned<RawRoleRule>>,
    #[serde(default)]
    value_sizes: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(default)]
    undeclared: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoleRule {
    #[serde(default)]
    function: Option<String>,
    #[serde(default)]
    param: Option<String>,
    #[serde(default, rename = "type")]
    type_glob: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    class: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    file: String,
    kind: String,
    #[serde(default)]
    prelude: Vec<String>,
    #[serde(default)]
    majors: Vec<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPass {
    name: String,
    #[serde(default)]
    defines: Vec<String>,
    language: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKindRule {
    kind: String,
    prefix: Option<String>,
    suffix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMajor {
    #[serde(default)]
    imported: Vec<String>,
    #[serde(default)]
    types: BTreeMap<String, Spanned<RawType>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawType {
    typedef: Option<Spanned<String>>,
    function_pointer: Option<Spanned<String>>,
    #[serde(rename = "enum")]
    enum_repr: Option<String>,
    values: Option<BTreeMap<String, i64>>,
    size: Option<u64>,
    align: Option<u64>,
    fields: Option<Vec<RawField>>,
    opaque: Option<bool>,
    array: Option<Spanned<String>>,
    length: Option<u64>,
    source: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    offset: u64,
    decl: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    name: Spanned<String>,
    kind: String,
    since: Spanned<BTreeMap<u32, String>>,
    source: Spanned<RawPerMajor>,
    proto: Spanned<RawPerMajor>,
    #[serde(default)]
    roles: Option<Spanned<RawPerMajor>>,
    #[serde(default)]
    class: Option<Spanned<RawPerMajor>>,
    #[serde(default)]
    roles_source: Option<Spanned<String>>,
}

/// A value written once for every major, or once per major.
///
/// Each per-major entry keeps its own location, so that an error in one
/// major's prototype points at that line (an untagged enum would lose it).
enum RawPerMajor {
    All(String),
    ByMajor(BTreeMap<u32, Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawPerMajor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawPerMajor;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, or a map from major to string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RawPerMajor, E> {
                Ok(RawPerMajor::All(s.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawPerMajor, A::Error> {
                let mut by_major = BTreeMap::new();
                while let Some((major, value)) = map.next_entry::<u32, Spanned<String>>()? {
                    by_major.insert(major, value);
                }
                Ok(RawPerMajor::ByMajor(by_major))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Collects diagnostics while converting the raw YAML into the model.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn at<T>(&mut self, span: &Spanned<T>, message: impl Into<String>) {
        let loc = span.referenced;
        self.errors
            .push(Diagnostic::at(self.file, loc.line(), loc.column(), message));
    }

    /// Parses C text found at `span`; a parse error points into the string.
    /// A type with more than [`MAX_POINTER_DEPTH`] pointer levels is an
    /// error too, at its first pointer beyond the limit.
    fn parse<T: Typed>(
        &mut self,
        span: &Spanned<String>,
        f: fn(&str) -> Result<T, ctype::ParseError>,
    ) -> Option<T> {
        let loc = span.referenced;
        let (offset, message) = match f(&span.value) {
            Ok(v) => match v.types().iter().map(|t| t.pointers.len()).max() {
                Some(depth) if depth > MAX_POINTER_DEPTH => (
                    deep_pointer_offset(&span.value),
                    format!(
                        "a type with {depth} pointer levels (at most {MAX_POINTER_DEPTH} are allowed)"
                    ),
                ),
                _ => return Some(v),
            },
            Err(e) => (e.offset, e.message),
        };
        // A quoted scalar starts one column before its text (looked up only
        // for an error: finding the line is a scan of the file).
        let quote = u64::from(self.source_char_is_quote(loc));
        self.errors.push(Diagnostic::at(
            self.file,
            loc.line(),
            loc.column() + quote + offset as u64,
            format!("in `{}`: {message}", excerpt(&span.value, offset)),
        ));
        None
    }

    fn source_char_is_quote(&self, loc: serde_saphyr::Location) -> bool {
        let line = self
            .text
            .lines()
            .nth(loc.line().saturating_sub(1) as usize)
            .unwrap_or("");
        matches!(
            line.chars().nth(loc.column().saturating_sub(1) as usize),
            Some('"' | '\'')
        )
    }
}

/// What a parsed piece of C declares types with.
trait Typed {
    fn types(&self) -> Vec<&CType>;
}

impl Typed for Prototype {
    fn types(&self) -> Vec<&CType> {
        proto_types(self)
    }
}

impl Typed for CType {
    fn types(&self) -> Vec<&CType> {
        vec![self]
    }
}

impl Typed for Decl {
    fn types(&self) -> Vec<&CType> {
        vec![&self.ty]
    }
}

/// The byte offset of the first `*` beyond [`MAX_POINTER_DEPTH`] in one
/// run of pointers (`*`, `const` and spaces), or 0.
fn deep_pointer_offset(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut run, mut i) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'*' {
            run += 1;
            if run > MAX_POINTER_DEPTH {
                return i;
            }
        } else if b.is_ascii_alphanumeric() || b == b'_' {
            let start = i;
            while i + 1 < bytes.len()
                && (bytes[i + 1].is_ascii_alphanumeric() || bytes[i + 1] == b'_')
            {
                i += 1;
            }
            if &text[start..=i] != "const" {
                run = 0;
            }
        } else if b != b' ' {
            run = 0;
        }
        i += 1;
    }
    0
}

/// `text`, or when it is longer than [`MAX_ECHO`] characters its start and
/// the part around byte `offset`, with `…` where it was cut.
pub fn excerpt(text: &str, offset: usize) -> String {
    if text.chars().count() <= MAX_ECHO {
        return text.to_string();
    }
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let head_end = floor(MAX_ECHO / 3);
    let (from, to) = (
        floor(offset.saturating_sub(MAX_ECHO / 3)).max(head_end),
        floor(offset.saturating_add(MAX_ECHO / 3)),
    );
    let mut out = text[..head_end].to_string();
    if from > head_end {
        out.push('…');
    }
    out.push_str(&text[from..to.max(from)]);
    if to < text.len() {
        out.push('…');
    }
    out.push_str(&format!(" ({} bytes in all)", text.len()));
    out
}

/// A message cut to a few hundred characters: messages from the YAML
/// reader may quote the input (a 200 KB scalar) at length.
fn bounded(message: String) -> String {
    const MAX_MESSAGE: usize = 400;
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &message[..end], message.len())
}

/// Reads and validates a manifest file.
pub fn load(path: &Path) -> Result<Manifest, Diagnostics> {
    let text = crate::catalog::read_text(path)?;
    parse(path, &text)
}

/// Parses and validates manifest text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Manifest, Diagnostics> {
    let raw: RawManifest = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let message = e.without_snippet().to_string();
        // serde-saphyr appends its own location; ours leads the line instead.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .trim()
            .to_string();
        Diagnostics::from(Diagnostic::at(path, line.max(1), column, bounded(message)))
    })?;
    let mut ck = Checker {
        file: path,
        text,
        errors: Vec::new(),
    };
    let manifest = convert(&mut ck, raw);
    if ck.errors.is_empty() {
        Ok(manifest)
    } else {
        // A prototype shared by every major fails once per major: say it once.
        ck.errors
            .sort_by(|a, b| (a.line, a.column, &a.message).cmp(&(b.line, b.column, &b.message)));
        ck.errors.dedup();
        for e in &mut ck.errors {
            e.message = bounded(std::mem::take(&mut e.message));
        }
        Err(Diagnostics(ck.errors))
    }
}

/// Checks a soname or version node (`what`): a pattern has `{major}` at
/// most once; a per-major map names every major of the manifest with a
/// non-empty name. A version node (`soname` given) is written the way the
/// soname is: a pattern where the soname has one (with `{major}` where the
/// soname has it), a map where the soname is one.
fn check_naming(
    ck: &mut Checker,
    naming: &Spanned<RawNaming>,
    what: &str,
    soname: Option<&RawNaming>,
    majors: &BTreeSet<u32>,
) {
    match (&naming.value, soname) {
        (RawNaming::One(p), None) => {
            if p.matches(MAJOR_PLACEHOLDER).count() > 1 {
                ck.at(
                    naming,
                    format!("`{p}` must contain `{MAJOR_PLACEHOLDER}` at most once"),
                );
            }
        }
        (RawNaming::One(node), Some(RawNaming::One(soname))) => {
            let placeholders = soname.matches(MAJOR_PLACEHOLDER).count().min(1);
            if node.matches(MAJOR_PLACEHOLDER).count() != placeholders {
                let want = if placeholders == 0 {
                    "no `{major}`, like the soname"
                } else {
                    "`{major}` exactly once, like the soname"
                };
                ck.at(naming, format!("{what} `{node}` must contain {want}"));
            }
        }
        (RawNaming::PerMajor(_), Some(RawNaming::One(_)))
        | (RawNaming::One(_), Some(RawNaming::PerMajor(_))) => {
            ck.at(
                naming,
                format!("the {what} must be named like the soname: both one pattern, or both one name per major"),
            );
        }
        (RawNaming::PerMajor(map), _) => {
            for (major, name) in map {
                if name.is_empty() || name.contains(MAJOR_PLACEHOLDER) {
                    ck.at(
                        naming,
                        format!("{what} of major {major} must be a plain name, not `{name}`"),
                    );
                }
            }
            let missing: Vec<String> = majors
                .iter()
                .filter(|m| !map.contains_key(m))
                .map(u32::to_string)
                .collect();
            if !missing.is_empty() {
                ck.at(
                    naming,
                    format!(
                        "the {what} map names no {what} for major {} of `majors`",
                        missing.join(", ")
                    ),
                );
            }
        }
    }
}

fn convert(ck: &mut Checker, raw: RawManifest) -> Manifest {
    let lib = raw.library;
    // A soname names its major (`libcudart.so.{major}`), is one for every
    // major (`libcuda.so.1`), or is given per major (`libcufft.so.11` for
    // 12); a version node is named the same way as the soname.
    let majors: BTreeSet<u32> = raw.majors.keys().copied().collect();
    check_naming(ck, &lib.soname, "soname", None, &majors);
    if let Some(node) = &lib.version_node {
        check_naming(ck, node, "version node", Some(&lib.soname.value), &majors);
    }
    let status_spans = lib.status.as_ref().map(|s| {
        (
            s.type_name.clone(),
            s.field.as_ref().map(|f| f.value.clone()),
            [
                (s.success.clone(), "success"),
                (s.library_missing.clone(), "library_missing"),
                (s.symbol_missing.clone(), "symbol_missing"),
                (s.not_supported.clone(), "not_supported"),
            ],
        )
    });
    let status_type = lib.status.as_ref().map(|s| s.type_name.value.clone());
    let status = lib.status.map(|s| {
        for v in [
            &s.type_name,
            &s.success,
            &s.library_missing,
            &s.symbol_missing,
            &s.not_supported,
        ] {
            if !ctype::is_identifier(&v.value) {
                ck.at(v, format!("`{}` is not a valid C identifier", v.value));
            }
        }
        StatusCodes {
            type_name: s.type_name.value,
            success: s.success.value,
            library_missing: s.library_missing.value,
            symbol_missing: s.symbol_missing.value,
            not_supported: s.not_supported.value,
            field: s.field.map(|f| f.value),
        }
    });
    for dir in &lib.search {
        let var_ok = dir
            .value
            .strip_prefix('$')
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(var, _)| ctype::is_identifier(var));
        if !dir.value.starts_with('/') && !var_ok {
            ck.at(
                dir,
                format!(
                    "search directory `{}` is neither absolute nor `$VAR/…`",
                    dir.value
                ),
            );
        }
    }
    if !ctype::is_identifier(&lib.real_path_variable.value) {
        ck.at(
            &lib.real_path_variable,
            format!(
                "real_path_variable `{}` is not a valid environment variable name",
                lib.real_path_variable.value
            ),
        );
    }
    let library = Library {
        name: lib.name,
        soname: lib.soname.value.into(),
        version_node: lib.version_node.map(|n| n.value.into()),
        real_path_variable: lib.real_path_variable.value,
        status,
        search: lib.search.into_iter().map(|d| d.value).collect(),
        entry_points: Vec::new(),
        mirror_data: lib.mirror_data,
        eager_load: lib.eager_load,
    };
    let raw_entry_points = lib.entry_points;
    let mut passes = Vec::new();
    for p in raw.import.passes {
        let language = match p.language.as_ref().map(|l| l.value.as_str()) {
            None | Some("c") => Language::C,
            Some("c++") => Language::Cxx,
            Some(other) => {
                let span = p.language.as_ref().expect("matched Some");
                ck.at(
                    span,
                    format!(
                        "pass `{}` has language `{other}`; expected `c` or `c++`",
                        p.name
                    ),
                );
                Language::C
            }
        };
        passes.push(Pass {
            name: p.name,
            defines: p.defines,
            language,
        });
    }
    let import = ImportConfig {
        headers: raw
            .import
            .headers
            .into_iter()
            .map(|h| HeaderSpec {
                file: h.file,
                kind: h.kind,
                prelude: h.prelude,
                majors: h.majors,
            })
            .collect(),
        passes,
        kinds: raw
            .import
            .kinds
            .into_iter()
            .map(|k| KindRule {
                kind: k.kind,
                prefix: k.prefix,
                suffix: k.suffix,
            })
            .collect(),
        layouts: raw.import.layouts,
        role_rules: convert_role_rules(ck, raw.import.role_rules),
        value_sizes: raw.import.value_sizes,
        undeclared: raw.import.undeclared,
    };

    let mut majors = BTreeMap::new();
    for (number, raw_major) in raw.majors {
        let m = raw_major.value;
        let mut types = BTreeMap::new();
        let mut overlay_types = BTreeSet::new();
        let mut spans = BTreeMap::new();
        for (name, def) in m.types {
            spans.insert(name.clone(), def.referenced);
            match &def.value.source {
                Some(source) if source.value != OVERLAY => ck.at(
                    source,
                    format!(
                        "type source `{}` is not `{OVERLAY}` (a header's types carry no source)",
                        excerpt(&source.value, 0)
                    ),
                ),
                Some(_) => {
                    overlay_types.insert(name.clone());
                }
                None => {}
            }
            if let Some(t) = convert_type(ck, &name, &def) {
                types.insert(name, t);
            }
        }
        let major = Major {
            imported: m.imported,
            types,
            overlay_types,
        };
        check_type_cycles(ck, number, &major, &spans);
        majors.insert(number, major);
    }

    if let Some((type_span, field, values)) = &status_spans {
        check_status(ck, type_span, field.as_deref(), values, &majors);
    }

    let mut functions: Vec<Function> = Vec::new();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for rf in raw.functions {
        let name = rf.name.value.clone();
        if !ctype::is_identifier(&name) {
            ck.at(
                &rf.name,
                format!(
                    "function name `{}` is not a valid C identifier",
                    excerpt(&name, 0)
                ),
            );
            continue;
        }
        if NOT_RAW_IDENTIFIERS.contains(&name.as_str()) {
            ck.at(&rf.name, not_exportable("function", &name));
            continue;
        }
        if let Some(line) = seen.insert(name.clone(), rf.name.referenced.line()) {
            ck.at(
                &rf.name,
                format!("duplicate function `{name}` (first defined on line {line})"),
            );
            continue;
        }
        if rf.since.value.is_empty() {
            ck.at(
                &rf.since,
                format!("function `{name}` is in no major: `since` names none"),
            );
            continue;
        }
        let mut fmajors = BTreeMap::new();
        for (&major, since) in &rf.since.value {
            if !majors.contains_key(&major) {
                ck.at(
                    &rf.since,
                    format!(
                        "function `{name}` names major {major}, which `majors` does not define"
                    ),
                );
                continue;
            }
            let Some(source) = per_major(ck, &rf.source, major, "source", &name) else {
                continue;
            };
            let Some(span) = per_major(ck, &rf.proto, major, "proto", &name) else {
                continue;
            };
            let Some(proto) = ck.parse(&span, ctype::parse_prototype) else {
                continue;
            };
            if proto.name != name {
                ck.at(
                    &span,
                    format!(
                        "prototype declares `{}` but the function is `{name}`",
                        excerpt(&proto.name, 0)
                    ),
                );
                continue;
            }
            if let Some(dup) = first_duplicate(proto.params.iter().map(|p| p.name.as_str())) {
                ck.at(
                    &span,
                    format!("parameter name `{dup}` is used twice in `{name}`"),
                );
                continue;
            }
            // A major not imported yet has no types to check against.
            if !majors[&major].imported.is_empty() {
                check_types_defined(ck, &span, &majors[&major], major, proto_types(&proto));
            }
            let (roles, class) = function_roles(
                ck,
                &rf,
                major,
                &name,
                &proto,
                &majors[&major],
                &import,
                status_type.as_deref(),
            );
            fmajors.insert(
                major,
                FunctionInMajor {
                    since: since.clone(),
                    source: source.value,
                    proto,
                    roles,
                    class,
                },
            );
        }
        let optional = [(rf.roles.as_ref(), "roles"), (rf.class.as_ref(), "class")];
        let keys = [(Some(&rf.source), "source"), (Some(&rf.proto), "proto")]
            .into_iter()
            .chain(optional)
            .filter_map(|(k, what)| k.map(|k| (k, what)));
        for (key, what) in keys {
            if let RawPerMajor::ByMajor(map) = &key.value {
                for (m, entry) in map.iter().filter(|(m, _)| !rf.since.value.contains_key(m)) {
                    ck.at(
                        entry,
                        format!("`{what}` of `{name}` names major {m}, which its `since` does not"),
                    );
                }
            }
        }
        let roles_overlay = match &rf.roles_source {
            None => false,
            Some(src) if src.value == OVERLAY => true,
            Some(src) => {
                ck.at(
                    src,
                    format!(
                        "`roles_source` of `{name}` is `{}`; the only one is `{OVERLAY}`",
                        excerpt(&src.value, 0)
                    ),
                );
                false
            }
        };
        functions.push(Function {
            name,
            kind: rf.kind,
            majors: fmajors,
            roles_overlay,
        });
    }
    functions.sort_by(|a, b| a.name.cmp(&b.name));

    // An entry point is a function of some major with a `void **` parameter
    // of that name in every major.
    let mut library = library;
    for ep in raw_entry_points {
        let name = &ep.function.value;
        let Some(f) = functions.iter().find(|f| &f.name == name) else {
            ck.at(
                &ep.function,
                format!("entry point `{name}` is not a function of the library"),
            );
            continue;
        };
        let bad = f.majors.iter().find(|(_, fm)| {
            !fm.proto
                .params
                .iter()
                .any(|p| p.name == ep.pointer && p.ty.base == "void" && p.ty.pointers.len() == 2)
        });
        if let Some((major, _)) = bad {
            ck.at(
                &ep.function,
                format!(
                    "entry point `{name}` has no `void **{}` parameter in major {major}",
                    ep.pointer
                ),
            );
            continue;
        }
        library.entry_points.push(EntryPoint {
            function: name.clone(),
            pointer: ep.pointer,
        });
    }

    let mut data: Vec<DataObject> = Vec::new();
    for rd in raw.data {
        let name = rd.name.value.clone();
        if !ctype::is_identifier(&name) {
            ck.at(
                &rd.name,
                format!(
                    "data object name `{}` is not a valid C identifier",
                    excerpt(&name, 0)
                ),
            );
            continue;
        }
        if NOT_RAW_IDENTIFIERS.contains(&name.as_str()) {
            ck.at(&rd.name, not_exportable("data object", &name));
            continue;
        }
        if let Some(line) = seen.insert(name.clone(), rd.name.referenced.line()) {
            ck.at(
                &rd.name,
                format!("duplicate export `{name}` (first defined on line {line})"),
            );
            continue;
        }
        // Size 0: a bare label (`NOTYPE`), as the linker's `_end`.
        let sizes: BTreeMap<u32, u64> = match &rd.size.value {
            RawSize::One(n) => rd.since.value.keys().map(|m| (*m, *n)).collect(),
            RawSize::PerMajor(m) => m.clone(),
        };
        if let Some(n) = sizes.values().find(|n| **n > 1 << 24) {
            ck.at(
                &rd.size,
                format!(
                    "data object `{name}` has size {n}: expected 0 (a label) to 16777216 bytes"
                ),
            );
            continue;
        }
        if sizes.keys().ne(rd.since.value.keys()) {
            ck.at(
                &rd.size,
                format!("data object `{name}`: the sizes name other majors than `since`"),
            );
            continue;
        }
        if rd.source != FROM_ELF && rd.source != OVERLAY {
            ck.at(
                &rd.name,
                format!(
                    "data object `{name}` has source `{}`: expected `{FROM_ELF}` or `{OVERLAY}`",
                    rd.source
                ),
            );
            continue;
        }
        if rd.since.value.is_empty() {
            ck.at(
                &rd.since,
                format!("data object `{name}` is in no major: `since` names none"),
            );
            continue;
        }
        if let Some(m) = rd.since.value.keys().find(|m| !majors.contains_key(m)) {
            ck.at(
                &rd.since,
                format!("data object `{name}` names major {m}, which `majors` does not define"),
            );
            continue;
        }
        data.push(DataObject {
            name,
            sizes,
            source: rd.source,
            since: rd.since.value,
        });
    }
    data.sort_by(|a, b| a.name.cmp(&b.name));

    // Types referenced from other types must be defined too.
    let type_errors: Vec<(u32, String, String)> = majors
        .iter()
        .flat_map(|(&n, m)| {
            m.types.iter().flat_map(move |(key, def)| {
                type_refs(def)
                    .into_iter()
                    .filter(|t| !is_known(m, t))
                    .map(move |t| (n, key.clone(), t))
            })
        })
        .collect();
    for (n, key, missing) in type_errors {
        ck.errors.push(Diagnostic::at(
            ck.file,
            1,
            1,
            format!("type `{key}` of major {n} uses `{missing}`, which is not defined"),
        ));
    }
    Manifest {
        library,
        import,
        majors,
        functions,
        data,
    }
}

fn convert_role_rules(ck: &mut Checker, raw: Vec<Spanned<RawRoleRule>>) -> Vec<RoleRule> {
    let mut rules = Vec::new();
    for r in raw {
        let v = &r.value;
        let mut ok = true;
        for g in [&v.function, &v.param, &v.type_glob].into_iter().flatten() {
            if let Err(e) = glob::Pattern::new(g) {
                ck.at(
                    &r,
                    format!("role rule: `{}` is not a glob: {e}", excerpt(g, 0)),
                );
                ok = false;
            }
        }
        let role = match &v.role {
            Some(text) => match Role::parse(text) {
                Ok(role) => Some(role),
                Err(e) => {
                    ck.at(&r, format!("role rule: {e}"));
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let class = match &v.class {
            Some(text) => match CallClass::parse(text) {
                Ok(c) => Some(c),
                Err(e) => {
                    ck.at(&r, format!("role rule: {e}"));
                    ok = false;
                    None
                }
            },
            None => None,
        };
        match (&v.param, &role, &class) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            _ => {
                ck.at(
                    &r,
                    "role rule: give `param` and `role`, or `class` alone".to_string(),
                );
                ok = false;
            }
        }
        if ok {
            rules.push(RoleRule {
                function: v.function.clone().unwrap_or_else(|| "*".into()),
                param: v.param.clone(),
                type_glob: v.type_glob.clone(),
                role,
                class,
            });
        }
    }
    rules
}

/// A function's roles and class in `major`: as the manifest writes them,
/// else inferred (a manifest `cudastub roles` has not written yet).
#[allow(clippy::too_many_arguments)]
fn function_roles(
    ck: &mut Checker,
    rf: &RawFunction,
    major: u32,
    name: &str,
    proto: &Prototype,
    facts: &Major,
    import: &ImportConfig,
    status_type: Option<&str>,
) -> (Vec<Role>, CallClass) {
    let cx = InferContext {
        types: facts,
        rules: &import.role_rules,
        status_type,
    };
    let (mut roles, mut class) = if proto.unknown_params {
        (Vec::new(), CallClass::Call)
    } else {
        roles::infer(&cx, proto)
    };
    if let Some(raw) = &rf.roles
        && let Some(span) = per_major(ck, raw, major, "roles", name)
    {
        match roles::parse_roles(&span.value, proto) {
            Ok(r) => {
                class = roles::class_of(&cx, proto, &r);
                roles = r;
            }
            Err(e) => ck.at(&span, format!("roles of `{name}`: {e}")),
        }
        if let Err(e) = roles::check_value_sizes(proto, &roles, facts, &import.value_sizes) {
            ck.at(&span, format!("roles of `{name}` in major {major}: {e}"));
        }
    }
    if let Some(raw) = &rf.class
        && let Some(span) = per_major(ck, raw, major, "class", name)
    {
        match CallClass::parse(&span.value) {
            Ok(c) => class = c,
            Err(e) => ck.at(&span, format!("class of `{name}`: {e}")),
        }
    }
    (roles, class)
}

/// The value of `major`, with the location of its own text.
fn per_major(
    ck: &mut Checker,
    value: &Spanned<RawPerMajor>,
    major: u32,
    what: &str,
    name: &str,
) -> Option<Spanned<String>> {
    match &value.value {
        RawPerMajor::All(s) => Some(Spanned::new(s.clone(), value.referenced, value.defined)),
        RawPerMajor::ByMajor(map) => match map.get(&major) {
            Some(s) => Some(s.clone()),
            None => {
                ck.at(
                    value,
                    format!("`{what}` of `{name}` has no entry for major {major}"),
                );
                None
            }
        },
    }
}

fn convert_type(ck: &mut Checker, name: &str, def: &Spanned<RawType>) -> Option<TypeDef> {
    let t = &def.value;
    let valid_name = match name.split_once(' ') {
        Some((tag, rest)) => {
            matches!(tag, "struct" | "union" | "enum") && ctype::is_identifier(rest)
        }
        None => ctype::is_identifier(name),
    };
    if !valid_name {
        ck.at(
            def,
            format!(
                "type name `{}` is not a valid C type name",
                excerpt(name, 0)
            ),
        );
        return None;
    }
    let forms = [
        t.typedef.is_some(),
        t.function_pointer.is_some(),
        t.enum_repr.is_some(),
        t.size.is_some(),
        t.opaque == Some(true),
        t.array.is_some(),
    ];
    if forms.iter().filter(|b| **b).count() != 1 {
        ck.at(def, format!("type `{name}` must be exactly one of: typedef, function_pointer, enum, an aggregate (size/align/fields), opaque, array (with length)"));
        return None;
    }
    if t.length.is_some() && t.array.is_none() {
        ck.at(
            def,
            format!("type `{name}` has a length but is not an array"),
        );
        return None;
    }
    if let Some(element) = &t.array {
        let Some(length) = t.length else {
            ck.at(def, format!("array `{name}` needs a length"));
            return None;
        };
        return ck
            .parse(element, ctype::parse_type)
            .map(|element| TypeDef::Array { element, length });
    }
    if let Some(target) = &t.typedef {
        return ck.parse(target, ctype::parse_type).map(TypeDef::Typedef);
    }
    if let Some(sig) = &t.function_pointer {
        return ck
            .parse(sig, ctype::parse_prototype)
            .map(TypeDef::FunctionPointer);
    }
    if let Some(repr) = &t.enum_repr {
        let words: Vec<&str> = repr.split(' ').collect();
        let canonical = ctype::is_builtin_base(repr)
            .then(|| ctype::canonical_builtin(&words).ok())
            .flatten();
        let Some(repr) = canonical else {
            ck.at(def, format!("enum `{name}` has underlying type `{repr}`, which is not a builtin integer type"));
            return None;
        };
        let values = t.values.clone().unwrap_or_default();
        if let Some((lo, hi)) = builtin_range(repr) {
            for (n, v) in &values {
                // An unsigned type takes a negative value as C converts it.
                let unsigned = repr.split(' ').any(|w| w == "unsigned");
                let fits = (*v >= lo || (unsigned && *v >= -hi - 1)) && *v <= hi;
                if !fits {
                    ck.at(
                        def,
                        format!("enum `{name}`: value {n} = {v} does not fit its type `{repr}`"),
                    );
                    return None;
                }
            }
        }
        return Some(TypeDef::Enum {
            repr: repr.to_string(),
            values,
        });
    }
    if t.opaque == Some(true) {
        return Some(TypeDef::Opaque);
    }
    let (Some(size), Some(align)) = (t.size, t.align) else {
        ck.at(def, format!("aggregate `{name}` needs both size and align"));
        return None;
    };
    if !align.is_power_of_two() || size % align != 0 {
        ck.at(
            def,
            format!("aggregate `{name}` has size {size} and align {align}, which no C type has"),
        );
        return None;
    }
    if size > MAX_AGGREGATE_SIZE || align > MAX_AGGREGATE_ALIGN {
        ck.at(
            def,
            format!(
                "aggregate `{name}` has size {size} and align {align}: at most \
                 {MAX_AGGREGATE_SIZE} and {MAX_AGGREGATE_ALIGN} are allowed"
            ),
        );
        return None;
    }
    let mut fields = Vec::new();
    for f in t.fields.iter().flatten() {
        let decl = ck.parse(&f.decl, ctype::parse_decl)?;
        let length = decl.array.unwrap_or(1);
        if f.offset >= size.max(1) || length > size {
            ck.at(
                &f.decl,
                format!(
                    "field `{}` of `{name}` (offset {}, {length} element(s)) does not fit its size of {size} bytes",
                    decl.name, f.offset
                ),
            );
            return None;
        }
        fields.push(Field {
            offset: f.offset,
            decl,
        });
    }
    if let Some(dup) = first_duplicate(fields.iter().map(|f| f.decl.name.as_str())) {
        ck.at(
            def,
            format!("aggregate `{name}` has two fields named `{dup}`"),
        );
        return None;
    }
    Some(TypeDef::Aggregate(Layout {
        size,
        align,
        fields,
    }))
}

/// The error for an export named like a Rust keyword without a raw form.
fn not_exportable(what: &str, name: &str) -> String {
    format!(
        "{what} name `{name}` is a Rust keyword with no raw identifier (`r#{name}` is not \
         allowed), so a Rust shim cannot export it"
    )
}

/// Rejects the types of major `number` that are defined through
/// themselves: a typedef (or array or function pointer typedef) whose name
/// is reached again from its own definition, which C cannot declare and a
/// Rust type alias cannot expand; and a struct or union that contains
/// itself by value (directly, through typedefs and arrays, or through
/// other aggregates), which would have no finite size. A pointer to
/// itself is fine: `struct node { struct node *next; }`. Each cycle is
/// reported once, at the definition of its first type in name order.
fn check_type_cycles(
    ck: &mut Checker,
    number: u32,
    major: &Major,
    spans: &BTreeMap<String, serde_saphyr::Location>,
) {
    let is_alias = |name: &str| {
        matches!(
            major.types.get(name),
            Some(TypeDef::Typedef(_) | TypeDef::Array { .. } | TypeDef::FunctionPointer(_))
        )
    };
    // Names: a typedef name must be declared before it is used, at any
    // pointer level; a struct tag need not (it can be declared up front).
    let names = |name: &str| -> Vec<String> {
        if !is_alias(name) {
            return Vec::new();
        }
        let mut refs: Vec<String> = major
            .types
            .get(name)
            .map(type_refs)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| is_alias(r))
            .collect();
        refs.dedup();
        refs
    };
    let by_value = |name: &str| -> Vec<String> {
        let direct = |t: &CType| t.pointers.is_empty().then(|| t.base.clone());
        let refs: Vec<String> = match major.types.get(name) {
            Some(TypeDef::Typedef(t)) => direct(t).into_iter().collect(),
            Some(TypeDef::Array { element, .. }) => direct(element).into_iter().collect(),
            Some(TypeDef::Aggregate(l)) => {
                l.fields.iter().filter_map(|f| direct(&f.decl.ty)).collect()
            }
            _ => Vec::new(),
        };
        refs.into_iter()
            .filter(|r| major.types.contains_key(r))
            .collect()
    };
    // Each cycle starts at the type it is reported at: the first by name
    // (for a by-value cycle, the first aggregate: the one containing itself).
    let rotated = |mut cycle: Vec<String>, first: &dyn Fn(&String) -> bool| {
        let at = (0..cycle.len())
            .filter(|&i| first(&cycle[i]))
            .min_by_key(|&i| &cycle[i])
            .unwrap_or(0);
        cycle.rotate_left(at);
        cycle
    };
    let mut found = false;
    for cycle in cycles(major.types.keys(), names) {
        let cycle = rotated(cycle, &|_| true);
        found = true;
        let message = format!(
            "type `{}` of major {number} is defined through itself ({}): a typedef cannot name itself",
            excerpt(&cycle[0], 0),
            cycle_text(&cycle)
        );
        push_at_type(ck, spans, &cycle[0], message);
    }
    // A typedef cycle without pointers is a by-value cycle too: said once.
    if found {
        return;
    }
    let aggregate = |n: &String| matches!(major.types.get(n), Some(TypeDef::Aggregate(_)));
    for cycle in cycles(major.types.keys(), by_value) {
        let cycle = rotated(cycle, &aggregate);
        let message = format!(
            "type `{}` of major {number} contains itself by value ({}): only a pointer to it can be a field",
            excerpt(&cycle[0], 0),
            cycle_text(&cycle)
        );
        push_at_type(ck, spans, &cycle[0], message);
    }
}

/// `` `A` → `B` → `A` ``.
fn cycle_text(cycle: &[String]) -> String {
    cycle
        .iter()
        .chain(cycle.first())
        .map(|n| format!("`{}`", excerpt(n, 0)))
        .collect::<Vec<_>>()
        .join(" → ")
}

fn push_at_type(
    ck: &mut Checker,
    spans: &BTreeMap<String, serde_saphyr::Location>,
    name: &str,
    message: String,
) {
    let (line, column) = spans.get(name).map_or((1, 1), |l| (l.line(), l.column()));
    ck.errors
        .push(Diagnostic::at(ck.file, line, column, message));
}

/// The cycles of the graph whose nodes are `nodes` and whose edges are
/// `edges(node)`, each as its nodes from where the search entered it, found
/// by an iterative depth-first search (a manifest may chain thousands of
/// types: no recursion).
fn cycles<'a>(
    nodes: impl Iterator<Item = &'a String>,
    edges: impl Fn(&str) -> Vec<String>,
) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        OnPath,
        Done,
    }
    let mut state: BTreeMap<String, State> = BTreeMap::new();
    let mut found = Vec::new();
    for start in nodes {
        if state.contains_key(start) {
            continue;
        }
        // The path: each node with its edges and the next edge to follow.
        let mut path: Vec<(String, Vec<String>, usize)> = vec![(start.clone(), edges(start), 0)];
        state.insert(start.clone(), State::OnPath);
        while let Some((node, next, i)) = path.last_mut() {
            let Some(to) = next.get(*i).cloned() else {
                state.insert(node.clone(), State::Done);
                path.pop();
                continue;
            };
            *i += 1;
            match state.get(&to) {
                Some(State::Done) => {}
                Some(State::OnPath) => {
                    let from = path.iter().position(|(n, _, _)| *n == to).unwrap_or(0);
                    found.push(path[from..].iter().map(|(n, _, _)| n.clone()).collect());
                }
                None => {
                    state.insert(to.clone(), State::OnPath);
                    let e = edges(&to);
                    path.push((to, e, 0));
                }
            }
        }
    }
    found
}

/// The first name that occurs twice.
fn first_duplicate<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = BTreeSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}

/// The values a builtin integer type holds (LP64), where known.
fn builtin_range(repr: &str) -> Option<(i64, i64)> {
    let unsigned = repr.split(' ').any(|w| w == "unsigned");
    let bits = match repr
        .split(' ')
        .filter(|w| *w != "signed" && *w != "unsigned")
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["char"] => 8,
        ["short"] | ["short", "int"] => 16,
        [] | ["int"] => 32,
        ["long"] | ["long", "int"] | ["long", "long"] | ["long", "long", "int"] => 64,
        ["_Bool"] => return Some((0, 1)),
        _ => return None,
    };
    Some(match (unsigned, bits) {
        (_, 64) if unsigned => (0, i64::MAX),
        (true, b) => (0, (1i64 << b) - 1),
        (false, 64) => (i64::MIN, i64::MAX),
        (false, b) => (-(1i64 << (b - 1)), (1i64 << (b - 1)) - 1),
    })
}

/// Every status value the library section names must be a value of the
/// status type, an enum, in every imported major: the generated shims
/// return them by name.
fn check_status(
    ck: &mut Checker,
    type_span: &Spanned<String>,
    field: Option<&str>,
    values: &[(Spanned<String>, &str); 4],
    majors: &BTreeMap<u32, Major>,
) {
    for (n, major) in majors.iter().filter(|(_, m)| !m.imported.is_empty()) {
        let resolved = match major.status_enum(&type_span.value, field) {
            Ok(r) => r,
            Err(e) => {
                ck.at(type_span, format!("{e} in major {n}"));
                continue;
            }
        };
        match major.types.get(&resolved.base) {
            Some(TypeDef::Enum { values: known, .. }) if resolved.pointers.is_empty() => {
                for (span, role) in values {
                    if !known.contains_key(&span.value) {
                        ck.at(
                            span,
                            format!(
                                "status `{}` ({role}) is not a value of `{}` in major {n}",
                                excerpt(&span.value, 0),
                                resolved.base
                            ),
                        );
                    }
                }
            }
            _ => ck.at(
                type_span,
                format!(
                    "status type `{}` is not an enum of major {n}",
                    excerpt(&type_span.value, 0)
                ),
            ),
        }
    }
}

/// The types a prototype names.
pub fn proto_types(p: &Prototype) -> Vec<&CType> {
    std::iter::once(&p.returns)
        .chain(p.params.iter().map(|d| &d.ty))
        .collect()
}

/// The type names a type definition refers to: a typedef's target, a
/// function pointer's parameter and return types, an aggregate's field types.
pub fn type_refs(def: &TypeDef) -> Vec<String> {
    match def {
        TypeDef::Typedef(t) => vec![t.base.clone()],
        TypeDef::FunctionPointer(p) => proto_types(p).into_iter().map(|t| t.base.clone()).collect(),
        TypeDef::Aggregate(l) => l.fields.iter().map(|f| f.decl.ty.base.clone()).collect(),
        TypeDef::Array { element, .. } => vec![element.base.clone()],
        TypeDef::Enum { .. } | TypeDef::Opaque => Vec::new(),
    }
}

fn is_known(major: &Major, base: &str) -> bool {
    ctype::is_builtin_base(base) || STANDARD_TYPES.contains(&base) || major.types.contains_key(base)
}

fn check_types_defined(
    ck: &mut Checker,
    span: &Spanned<String>,
    major: &Major,
    number: u32,
    types: Vec<&CType>,
) {
    let missing: BTreeSet<&str> = types
        .iter()
        .map(|t| t.base.as_str())
        .filter(|b| !is_known(major, b))
        .collect();
    for m in missing {
        ck.at(
            span,
            format!("type `{m}` is used but not defined in the types of major {number}"),
        );
    }
}

// ---------------------------------------------------------------------------
// Writing

/// The header of every written manifest.
const HEADER: &str = "\
# The export surface of a versioned shared library, per major version.
# Generated by `cudastub import` from the real library and its headers.
# Hand-kept: `library`, `import`, and every prototype whose `source` is
# `overlay` (the importer never overwrites those). Everything else is
# regenerated; edit by re-importing, not by hand.
";

/// Writes a soname or version node of the `library:` section.
fn naming(o: &mut String, key: &str, n: &Naming) {
    match n {
        Naming::Pattern(p) => kv(o, 2, key, p),
        Naming::PerMajor(m) => {
            let _ = writeln!(o, "  {key}:");
            for (major, name) in m {
                let _ = writeln!(o, "    {major}: {}", quoted(name));
            }
        }
    }
}

/// Writes the manifest in its canonical layout.
pub fn to_yaml(m: &Manifest) -> String {
    let mut o = String::from(HEADER);
    o.push_str("\nlibrary:\n");
    kv(&mut o, 2, "name", &m.library.name);
    naming(&mut o, "soname", &m.library.soname);
    // No `version_node`: the exports carry no version.
    if let Some(node) = &m.library.version_node {
        naming(&mut o, "version_node", node);
    }
    kv(
        &mut o,
        2,
        "real_path_variable",
        &m.library.real_path_variable,
    );
    if !m.library.search.is_empty() {
        o.push_str("  search:\n");
        for dir in &m.library.search {
            let _ = writeln!(o, "    - {}", quoted(dir));
        }
    }
    if !m.library.entry_points.is_empty() {
        o.push_str("  entry_points:\n");
        for e in &m.library.entry_points {
            let _ = writeln!(
                o,
                "    - {{function: {}, pointer: {}}}",
                scalar(&e.function, true),
                scalar(&e.pointer, true)
            );
        }
    }
    if m.library.mirror_data {
        o.push_str("  mirror_data: true\n");
    }
    if m.library.eager_load {
        o.push_str("  eager_load: true\n");
    }
    if let Some(s) = &m.library.status {
        o.push_str("  status:\n");
        kv(&mut o, 4, "type", &s.type_name);
        kv(&mut o, 4, "success", &s.success);
        kv(&mut o, 4, "library_missing", &s.library_missing);
        kv(&mut o, 4, "symbol_missing", &s.symbol_missing);
        kv(&mut o, 4, "not_supported", &s.not_supported);
        if let Some(field) = &s.field {
            kv(&mut o, 4, "field", field);
        }
    }
    // An empty list is written `[]`: a bare `key:` would read back as null.
    o.push_str(&list_key(
        "\nimport:\n  headers",
        m.import.headers.is_empty(),
    ));
    for h in &m.import.headers {
        let prelude = if h.prelude.is_empty() {
            String::new()
        } else {
            let files: Vec<String> = h.prelude.iter().map(|p| scalar(p, true)).collect();
            format!(", prelude: [{}]", files.join(", "))
        };
        let majors = if h.majors.is_empty() {
            String::new()
        } else {
            let majors: Vec<String> = h.majors.iter().map(u32::to_string).collect();
            format!(", majors: [{}]", majors.join(", "))
        };
        let _ = writeln!(
            o,
            "    - {{file: {}, kind: {}{prelude}{majors}}}",
            scalar(&h.file, true),
            scalar(&h.kind, true)
        );
    }
    o.push_str(&list_key("  passes", m.import.passes.is_empty()));
    for p in &m.import.passes {
        let defines: Vec<String> = p.defines.iter().map(|d| scalar(d, true)).collect();
        // C, the default, is not written.
        let language = match p.language {
            Language::C => String::new(),
            other => format!(", language: {}", scalar(other.as_str(), true)),
        };
        let _ = writeln!(
            o,
            "    - {{name: {}{language}, defines: [{}]}}",
            scalar(&p.name, true),
            defines.join(", ")
        );
    }
    o.push_str(&list_key("  kinds", m.import.kinds.is_empty()));
    for k in &m.import.kinds {
        let mut parts = vec![format!("kind: {}", scalar(&k.kind, true))];
        if let Some(p) = &k.prefix {
            parts.push(format!("prefix: {}", scalar(p, true)));
        }
        if let Some(s) = &k.suffix {
            parts.push(format!("suffix: {}", scalar(s, true)));
        }
        let _ = writeln!(o, "    - {{{}}}", parts.join(", "));
    }
    if !m.import.layouts.is_empty() {
        let layouts: Vec<String> = m.import.layouts.iter().map(|l| scalar(l, true)).collect();
        let _ = writeln!(o, "  layouts: [{}]", layouts.join(", "));
    }
    if let Some(kind) = &m.import.undeclared {
        kv(&mut o, 2, "undeclared", kind);
    }
    if !m.import.role_rules.is_empty() {
        o.push_str("  role_rules:\n");
        for r in &m.import.role_rules {
            let mut parts = vec![format!("function: {}", quoted(&r.function))];
            if let Some(p) = &r.param {
                parts.push(format!("param: {}", quoted(p)));
            }
            if let Some(t) = &r.type_glob {
                parts.push(format!("type: {}", quoted(t)));
            }
            if let Some(role) = &r.role {
                parts.push(format!("role: {}", quoted(&role.to_string())));
            }
            if let Some(c) = r.class {
                parts.push(format!("class: {}", c.as_str()));
            }
            let _ = writeln!(o, "    - {{{}}}", parts.join(", "));
        }
    }
    if !m.import.value_sizes.is_empty() {
        o.push_str("  value_sizes:\n");
        for (ty, sizes) in &m.import.value_sizes {
            let _ = writeln!(o, "    {}:", scalar(ty, false));
            for (value, size) in sizes {
                let _ = writeln!(o, "      {}: {size}", scalar(value, false));
            }
        }
    }
    o.push_str("\nmajors:\n");
    for (n, major) in &m.majors {
        let _ = writeln!(o, "  {n}:");
        let imported: Vec<String> = major.imported.iter().map(|v| scalar(v, true)).collect();
        let _ = writeln!(o, "    imported: [{}]", imported.join(", "));
        o.push_str(if major.types.is_empty() {
            "    types: {}\n"
        } else {
            "    types:\n"
        });
        for (name, def) in &major.types {
            write_type(&mut o, name, def, major.overlay_types.contains(name));
        }
    }
    o.push_str(&list_key("\nfunctions", m.functions.is_empty()));
    for f in &m.functions {
        write_function(&mut o, f);
    }
    if !m.data.is_empty() {
        o.push_str("\ndata:\n");
        for d in &m.data {
            let since: Vec<String> = d
                .since
                .iter()
                .map(|(n, s)| format!("{n}: {}", scalar(s, true)))
                .collect();
            let _ = writeln!(o, "  - name: {}", scalar(&d.name, false));
            let mut sizes: Vec<u64> = d.sizes.values().copied().collect();
            sizes.dedup();
            match sizes.as_slice() {
                [one] => {
                    let _ = writeln!(o, "    size: {one}");
                }
                _ => {
                    let each: Vec<String> =
                        d.sizes.iter().map(|(m, n)| format!("{m}: {n}")).collect();
                    let _ = writeln!(o, "    size: {{{}}}", each.join(", "));
                }
            }
            let _ = writeln!(o, "    source: {}", scalar(&d.source, false));
            let _ = writeln!(o, "    since: {{{}}}", since.join(", "));
        }
    }
    o
}

/// `key:` followed by a block list, or `key: []` when the list is empty.
fn list_key(key: &str, empty: bool) -> String {
    if empty {
        format!("{key}: []\n")
    } else {
        format!("{key}:\n")
    }
}

fn write_type(o: &mut String, name: &str, def: &TypeDef, overlay: bool) {
    let key = scalar(name, false);
    // Inline forms end `, source: overlay}`; block forms get a line.
    let inline = if overlay {
        format!(", source: {OVERLAY}")
    } else {
        String::new()
    };
    let block = if overlay {
        format!("        source: {OVERLAY}\n")
    } else {
        String::new()
    };
    match def {
        TypeDef::Typedef(t) => {
            let _ = writeln!(
                o,
                "      {key}: {{typedef: {}{inline}}}",
                quoted(&t.to_string())
            );
        }
        TypeDef::FunctionPointer(p) => {
            let _ = writeln!(
                o,
                "      {key}: {{function_pointer: {}{inline}}}",
                quoted(&p.to_string())
            );
        }
        TypeDef::Opaque => {
            let _ = writeln!(o, "      {key}: {{opaque: true{inline}}}");
        }
        TypeDef::Array { element, length } => {
            let _ = writeln!(
                o,
                "      {key}: {{array: {}, length: {length}{inline}}}",
                quoted(&element.to_string())
            );
        }
        TypeDef::Enum { repr, values } => {
            let _ = writeln!(
                o,
                "      {key}:\n{block}        enum: {}",
                scalar(repr, false)
            );
            if values.is_empty() {
                o.push_str("        values: {}\n");
                return;
            }
            o.push_str("        values:\n");
            for (n, v) in sorted_values(values) {
                let _ = writeln!(o, "          {}: {v}", scalar(n, false));
            }
        }
        TypeDef::Aggregate(l) => {
            let _ = writeln!(
                o,
                "      {key}:\n{block}        size: {}\n        align: {}",
                l.size, l.align
            );
            if l.fields.is_empty() {
                o.push_str("        fields: []\n");
                return;
            }
            o.push_str("        fields:\n");
            for f in &l.fields {
                let _ = writeln!(
                    o,
                    "          - {{offset: {}, decl: {}}}",
                    f.offset,
                    quoted(&f.decl.to_string())
                );
            }
        }
    }
}

fn write_function(o: &mut String, f: &Function) {
    let _ = writeln!(o, "  - name: {}", scalar(&f.name, false));
    let _ = writeln!(o, "    kind: {}", scalar(&f.kind, false));
    let since: Vec<String> = f
        .majors
        .iter()
        .map(|(n, m)| format!("{n}: {}", scalar(&m.since, true)))
        .collect();
    let _ = writeln!(o, "    since: {{{}}}", since.join(", "));
    write_per_major(o, "source", f, |m| scalar(&m.source, false));
    write_per_major(o, "proto", f, |m| quoted(&m.proto.to_string()));
    if f.majors
        .values()
        .any(|m| !m.proto.params.is_empty() && !m.proto.unknown_params)
    {
        write_per_major(o, "roles", f, |m| {
            quoted(&roles::roles_text(&m.proto.params, &m.roles))
        });
    }
    // A class kept by hand is written even where it is `call`: absent, it
    // would be inferred again.
    if f.roles_overlay || f.majors.values().any(|m| m.class != CallClass::Call) {
        write_per_major(o, "class", f, |m| m.class.as_str().to_string());
    }
    if f.roles_overlay {
        let _ = writeln!(o, "    roles_source: {OVERLAY}");
    }
}

/// Writes `key: value` once when every major agrees, else one line per major.
fn write_per_major(
    o: &mut String,
    key: &str,
    f: &Function,
    render: impl Fn(&FunctionInMajor) -> String,
) {
    let values: Vec<(u32, String)> = f.majors.iter().map(|(n, m)| (*n, render(m))).collect();
    if values.windows(2).all(|w| w[0].1 == w[1].1) {
        let _ = writeln!(o, "    {key}: {}", values[0].1);
    } else {
        let _ = writeln!(o, "    {key}:");
        for (n, v) in values {
            let _ = writeln!(o, "      {n}: {v}");
        }
    }
}

fn kv(o: &mut String, indent: usize, key: &str, value: &str) {
    let _ = writeln!(o, "{:indent$}{key}: {}", "", scalar(value, false));
}

/// A YAML scalar: plain where that reads back as the same string, else quoted.
fn scalar(s: &str, in_flow: bool) -> String {
    let plain = !s.is_empty()
        && s.chars().next().is_some_and(|c| {
            c.is_ascii_alphabetic() || c == '_' || (c.is_ascii_digit() && s.contains('.'))
        })
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-+/".contains(c) || (c == ' ' && !in_flow))
        && !s.ends_with(' ')
        && !matches!(
            s,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
        && s.parse::<f64>().is_err();
    if plain { s.to_string() } else { quoted(s) }
}

/// A double-quoted YAML scalar.
fn quoted(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory, then a rename, so a failure never leaves a half-written file.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `to_yaml` writes reads back as the same manifest, empty lists included
    /// (found by the `manifest` fuzz target: a bare `headers:` read back as null).
    #[test]
    fn canonical_yaml_round_trips_with_empty_lists() {
        for text in [
            include_str!("../tests/fuzz-regressions/manifest/empty-headers-and-passes.yaml"),
            include_str!("../tests/fuzz-regressions/manifest/empty-kinds.yaml"),
            include_str!("../tests/fuzz-regressions/manifest/no-functions.yaml"),
        ] {
            let path = Path::new("regression.yaml");
            let m = parse(path, text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let written = to_yaml(&m);
            let reread = parse(path, &written).unwrap_or_else(|e| panic!("{e}\n{written}"));
            assert_eq!(reread, m, "{written}");
            assert_eq!(to_yaml(&reread), written);
        }
    }
}
