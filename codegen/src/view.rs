//! One library at one major: the view every emitter and check reads.
//!
//! A manifest describes a library across majors; almost everything generated
//! or checked concerns one (library, major) pair: its soname and version
//! node, the functions it exports with their prototypes, its status type and
//! what a call returns when it cannot be forwarded. [`LibraryMajor`] decides
//! each of these once, so that the shim emitter, the tracer, the version
//! scripts and the audit cannot disagree.

use crate::ctype::{CType, Prototype};
use crate::manifest::{DataObject, Major, Manifest, StatusCodes, TypeDef, sorted_values};

/// One library at one major.
#[derive(Clone, Debug)]
pub struct LibraryMajor<'a> {
    /// The whole manifest (library-level facts, other majors).
    pub manifest: &'a Manifest,
    /// The library's short name (`cublas`).
    pub library: &'a str,
    /// The major (12).
    pub major: u32,
    /// `libcublas.so.12`.
    pub soname: String,
    /// The version node every export carries (`libcublas.so.12`); `None`
    /// when the exports carry no version (`libcuda.so.1`).
    pub version_node: Option<String>,
    /// The per-major facts: imported releases and C types.
    pub facts: &'a Major,
    /// Every export of the major, sorted by name; slot `i` is `functions[i]`.
    pub functions: Vec<Export<'a>>,
    /// Every data object of the major, sorted by name.
    pub data: Vec<&'a DataObject>,
    /// The status convention, when the library has one.
    pub status: Option<Status<'a>>,
}

/// One export of a (library, major).
#[derive(Clone, Debug)]
pub struct Export<'a> {
    /// The exported name.
    pub name: &'a str,
    /// Its kind (`api`, `internal`, `per-thread`, …).
    pub kind: &'a str,
    /// The earliest imported release of the major that exports it.
    pub since: &'a str,
    /// Its prototype in this major.
    pub proto: &'a Prototype,
    /// `true` when it returns the library's status type.
    pub returns_status: bool,
    /// What it returns when it cannot be forwarded.
    pub failure: FailureValue,
    /// For an entry point (`cuGetProcAddress`), the `void **` parameter
    /// through which it returns an export's address.
    pub entry_point: Option<&'a str>,
    /// Each parameter's role (empty when the parameters are unknown).
    pub roles: &'a [crate::roles::Role],
    /// What kind of call it is.
    pub class: crate::roles::CallClass,
}

/// The status convention of a library at one major.
#[derive(Clone, Debug)]
pub struct Status<'a> {
    /// The names from the manifest (`cudaError_t`, `cudaSuccess`, …).
    pub codes: &'a StatusCodes,
    /// The status enum's values, by value then name (empty when the status
    /// type is not an enum of the major).
    pub values: Vec<(&'a str, i64)>,
}

/// What a function returns when its call cannot be forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureValue {
    /// It returns nothing.
    Void,
    /// The status type: the library-missing or symbol-missing status.
    Status,
    /// `const char *f(status)`: the status's own name (`cudaGetErrorName`,
    /// `cublasGetStatusString`), a valid answer that needs no library.
    StatusName {
        /// The parameter holding the status.
        param: String,
    },
    /// Another C string: a static message pointing to the diagnostic.
    Message,
    /// Another pointer: null.
    Null,
    /// Any other value (a scalar, or a struct or union by value): all zero
    /// bytes, valid for every C scalar and aggregate.
    Zero,
}

impl FailureValue {
    /// The code the runtime's shared fallback reads
    /// (`cudastub_runtime::failure`): which value it returns.
    pub fn code(&self) -> u8 {
        match self {
            FailureValue::Void => 0,
            FailureValue::Status => 1,
            FailureValue::StatusName { .. } => 2,
            FailureValue::Message => 3,
            FailureValue::Null => 4,
            FailureValue::Zero => 5,
        }
    }
}

impl<'a> LibraryMajor<'a> {
    /// `true` when a remote GPU client shim can stand for this library: its
    /// calls that cannot be sent must fail with the library's own status,
    /// so a library with none (NVTX, cuDNN's engine plugins) has no remote
    /// client (`dist --remote` leaves it out, saying so).
    pub fn has_remote_client(&self) -> bool {
        self.status.is_some()
    }

    /// The view of `major` of `manifest`, or an error naming the majors there are.
    pub fn new(manifest: &'a Manifest, major: u32) -> Result<Self, String> {
        let facts = manifest.major(major)?;
        let status = manifest.library.status.as_ref().map(|codes| {
            let resolved = facts
                .status_enum(&codes.type_name, codes.field.as_deref())
                .unwrap_or_else(|_| CType::named(codes.type_name.clone()));
            let values = match facts.types.get(&resolved.base) {
                Some(TypeDef::Enum { values, .. }) => sorted_values(values),
                _ => Vec::new(),
            };
            Status { codes, values }
        });
        let status_type = status.as_ref().map(|s| s.codes.type_name.as_str());
        let functions = manifest
            .functions_of(major)
            .map(|(f, fm)| {
                let returns_status = status_type.is_some_and(|s| is_plain(&fm.proto.returns, s));
                Export {
                    name: &f.name,
                    kind: &f.kind,
                    since: &fm.since,
                    proto: &fm.proto,
                    returns_status,
                    failure: failure_value(manifest, major, &fm.proto, status_type),
                    entry_point: manifest
                        .library
                        .entry_points
                        .iter()
                        .find(|e| e.function == f.name)
                        .map(|e| e.pointer.as_str()),
                    roles: &fm.roles,
                    class: fm.class,
                }
            })
            .collect();
        Ok(LibraryMajor {
            manifest,
            library: &manifest.library.name,
            major,
            soname: manifest.library.soname_of(major),
            version_node: manifest.library.version_node_of(major),
            facts,
            functions,
            data: manifest.data_of(major).collect(),
            status,
        })
    }

    /// The name of this (library, major)'s files in `versionscripts/`: the
    /// soname, which names the major (`libcudart.so.12`), or for a soname
    /// every major shares, the soname and the major (`libcuda.so.1.cuda12`).
    pub fn file_stem(&self) -> String {
        if self.manifest.library.fixed_soname() {
            format!("{}.cuda{}", self.soname, self.major)
        } else {
            self.soname.clone()
        }
    }

    /// Every export name, functions and data objects, sorted.
    pub fn export_names(&self) -> Vec<&'a str> {
        self.manifest.symbols_of(self.major)
    }

    /// `name@@node`, or `name` when the library is unversioned: how the
    /// export appears in `readelf` and in the `.symbols` lists.
    pub fn versioned(&self, name: &str) -> String {
        match &self.version_node {
            Some(node) => format!("{name}@@{node}"),
            None => name.to_string(),
        }
    }

    /// Every API of the major with its ABI variants, sorted by API name; an
    /// API exported under one name only is a family of one.
    pub fn families(&self) -> Vec<Family<'a>> {
        let mut by_api: std::collections::BTreeMap<&'a str, Vec<&'a str>> = Default::default();
        for f in &self.functions {
            by_api.entry(api_name(f.name)).or_default().push(f.name);
        }
        by_api
            .into_iter()
            .map(|(api, variants)| Family { api, variants })
            .collect()
    }

    /// The export `name`, if the major has it.
    pub fn function(&self, name: &str) -> Option<&Export<'a>> {
        self.functions
            .binary_search_by(|f| f.name.cmp(name))
            .ok()
            .map(|i| &self.functions[i])
    }

    /// Follows typedefs of this major from `ty` to the type it finally names.
    pub fn resolve(&self, ty: &CType) -> CType {
        self.manifest.resolve(self.major, ty)
    }

    /// The definition of a C type name of this major.
    pub fn type_def(&self, name: &str) -> Option<&'a TypeDef> {
        self.facts.types.get(name)
    }

    /// The environment variable naming the real library's path.
    pub fn real_path_variable(&self) -> &'a str {
        &self.manifest.library.real_path_variable
    }

    /// How complete the parameter roles of this (library, major) are.
    pub fn completeness(&self) -> crate::roles::Completeness {
        let mut c = crate::roles::Completeness::default();
        for f in &self.functions {
            c.total += 1;
            *c.classes.entry(f.class).or_default() += 1;
            if f.proto.unknown_params {
                continue;
            }
            c.params += f.roles.len();
            let known = f.roles.iter().filter(|r| r.is_known()).count();
            c.known_params += known;
            if known == f.roles.len() {
                c.complete += 1;
            }
        }
        c
    }

    /// Where a shim looks for the real library.
    pub fn search(&self) -> &'a [String] {
        &self.manifest.library.search
    }
}

/// The API an export is a variant of: its name without the ABI suffixes
/// `_ptsz`/`_ptds` (per-thread default stream), `_64` (cuBLAS's 64-bit
/// integers) and `_vN` (a later ABI), stripped from the end in any order.
///
/// `cudaGetDeviceProperties_v2` → `cudaGetDeviceProperties`,
/// `cuMemcpyHtoDAsync_v2_ptsz` → `cuMemcpyHtoDAsync`, `cublasSgemm_v2_64` →
/// `cublasSgemm`; a name with no such suffix is its own API.
pub fn api_name(export: &str) -> &str {
    let mut name = export;
    loop {
        let stripped = ["_ptsz", "_ptds", "_64"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .or_else(|| {
                let (head, tail) = name.rsplit_once("_v")?;
                (!tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit())).then_some(head)
            })
            .filter(|head| !head.is_empty() && !head.ends_with('_'));
        match stripped {
            Some(head) => name = head,
            None => return name,
        }
    }
}

/// `true` for a per-thread default stream variant (`_ptsz`, `_ptds`).
pub fn is_per_thread(export: &str) -> bool {
    export.ends_with("_ptsz") || export.ends_with("_ptds")
}

/// One API of a (library, major) and every ABI variant of it the major
/// exports (see [`api_name`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family<'a> {
    /// The API's name (`cudaGetDeviceProperties`), which may or may not be
    /// an export itself.
    pub api: &'a str,
    /// Its exports, sorted: `cudaGetDeviceProperties` (12's legacy ABI) and
    /// `cudaGetDeviceProperties_v2`.
    pub variants: Vec<&'a str>,
}

/// `true` for exactly `name`, with no pointer.
fn is_plain(ty: &CType, name: &str) -> bool {
    ty.base == name && ty.pointers.is_empty()
}

fn failure_value(
    m: &Manifest,
    major: u32,
    proto: &Prototype,
    status_type: Option<&str>,
) -> FailureValue {
    let returns = &proto.returns;
    if returns.is_void() {
        return FailureValue::Void;
    }
    if status_type.is_some_and(|s| is_plain(returns, s)) {
        return FailureValue::Status;
    }
    let resolved = m.resolve(major, returns);
    if resolved.is_c_string() {
        if let (Some(s), [param]) = (status_type, proto.params.as_slice())
            && is_plain(&param.ty, s)
        {
            return FailureValue::StatusName {
                param: param.name.clone(),
            };
        }
        return FailureValue::Message;
    }
    if resolved.is_pointer() {
        return FailureValue::Null;
    }
    FailureValue::Zero
}
