//! The manifest's entry point: every library cudastub builds shims for.
//!
//! An index names one manifest file per library, or another index whose
//! libraries it takes in; this crate ships the standard one,
//! `api/cuda-api.yaml` ([`Catalog::standard`]):
//!
//! ```yaml
//! libraries:
//!   - cudart.yaml
//!   - cublas.yaml
//! ```
//!
//! Paths are relative to the index. The repository's own entry point,
//! `cuda-api.yaml`, lists that index (`codegen/api/cuda-api.yaml`), so the
//! list of libraries is kept in one place. A single library's manifest (a
//! file with a `library:` section, as [`crate::manifest`] describes) is
//! accepted wherever an index is, as a catalog of one: a user's own manifest
//! needs no index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Diagnostics};
use crate::manifest::{self, Manifest};
use crate::view::LibraryMajor;

/// Every library of an index, each with its manifest.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// The index (or single manifest) this was loaded from.
    pub path: PathBuf,
    /// The libraries, in the index's order.
    pub libraries: Vec<CatalogEntry>,
    /// The indexes listed by this one (and by those), for `rerun-if-changed`.
    pub nested: Vec<PathBuf>,
}

/// One library of a catalog.
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    /// Its manifest file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    libraries: Vec<Spanned<String>>,
}

/// How deep indexes may list indexes: deeper is taken for a cycle.
const MAX_NESTING: usize = 8;

/// The standard index shipped in this crate: every library cudastub knows,
/// `api/cuda-api.yaml` in the crate's own directory (in a checkout, a
/// registry download or a git checkout alike), so that errors name the
/// real file and `rerun-if-changed` watches it.
pub fn standard_index() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("api/cuda-api.yaml")
}

/// The index a command reads when given none, in a checkout of cudastub:
/// `cuda-api.yaml` in the current directory.
pub const LOCAL_INDEX: &str = "cuda-api.yaml";

/// The index a command reads when given none: [`LOCAL_INDEX`] where the
/// current directory has one (a checkout of cudastub, whose manifests may be
/// ahead of an installed binary's), else [`standard_index`], so that an
/// installed `cudastub` audits, diffs and checks from any directory.
pub fn default_index() -> PathBuf {
    resolve_index(Path::new(LOCAL_INDEX))
}

/// `path`, unless it is the bare [`LOCAL_INDEX`] and the current directory
/// has none: then [`standard_index`]. Commands and `diff`'s
/// `cuda-api.yaml#cublas/12` read the same libraries outside a checkout.
pub fn resolve_index(path: &Path) -> PathBuf {
    if path == Path::new(LOCAL_INDEX) && !path.exists() {
        standard_index()
    } else {
        path.to_path_buf()
    }
}

/// The largest manifest or index read (the real ones are well under 1 MB).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Reads a manifest or index as text: a regular file of bounded size, so
/// that a FIFO or `/dev/zero` is an error rather than a hang. The file is
/// opened without blocking (`O_NONBLOCK`: a FIFO with no writer would
/// otherwise block the open itself) and its type checked on the open
/// descriptor, so it cannot be swapped for another between the check and
/// the read; the read stops after the limit whatever the size said.
pub fn read_text(path: &Path) -> Result<String, Diagnostic> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let cannot = |e: String| Diagnostic::file(path, format!("cannot read the manifest: {e}"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(|e| cannot(e.to_string()))?;
    let meta = file.metadata().map_err(|e| cannot(e.to_string()))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(cannot(what.to_string()));
    }
    let too_big = || {
        cannot(format!(
            "it is larger than the limit of {MAX_MANIFEST_BYTES} bytes"
        ))
    };
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(e.to_string()))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let column = upto.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
        Diagnostic::at(path, line, column, "the manifest is not valid UTF-8")
    })
}

/// `O_NONBLOCK` (Linux on x86-64 and AArch64; elsewhere no flag: the type
/// check still refuses a FIFO, after its open).
#[cfg(target_os = "linux")]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(not(target_os = "linux"))]
const O_NONBLOCK: i32 = 0;

/// `true` when the text's top level is an index (`libraries:`) rather than
/// one library's manifest. A line that starts with the top-level key says
/// so without parsing the file (a manifest is 200–900 kB of YAML, and a
/// command that needs one library of an index must not parse them all);
/// only a file laid out otherwise (flow style) is parsed to find out.
fn is_index(text: &str) -> bool {
    let top_level = |key: &str| {
        text.starts_with(key)
            || text
                .match_indices('\n')
                .any(|(i, _)| text[i + 1..].starts_with(key))
    };
    if top_level("libraries:") {
        return true;
    }
    if top_level("library:") {
        return false;
    }
    serde_saphyr::from_str::<BTreeMap<String, serde::de::IgnoredAny>>(text)
        .is_ok_and(|top| top.contains_key("libraries"))
}

impl Catalog {
    /// Loads an index and every manifest it names, or a single manifest.
    /// Every error of every file is reported.
    pub fn load(path: &Path) -> Result<Catalog, Diagnostics> {
        Catalog::load_where(path, |_| true)
    }

    /// Like [`Catalog::load`], but of an index's manifests parses only
    /// those whose library `keep` accepts, judged from their heads
    /// ([`manifest::peek_library`]); the others are left out of the catalog.
    /// A manifest whose head cannot be read that way is parsed whole and
    /// kept, so an error in it is still reported. An audit of one library
    /// reads one manifest instead of five.
    pub fn load_where(
        path: &Path,
        keep: impl Fn(&manifest::LibraryHead) -> bool,
    ) -> Result<Catalog, Diagnostics> {
        let text = read_text(path)?;
        if !is_index(&text) {
            let manifest = manifest::parse(path, &text)?;
            return Ok(Catalog {
                path: path.to_path_buf(),
                libraries: vec![CatalogEntry {
                    path: path.to_path_buf(),
                    manifest,
                }],
                nested: Vec::new(),
            });
        }
        let mut catalog = Catalog {
            path: path.to_path_buf(),
            libraries: Vec::new(),
            nested: Vec::new(),
        };
        let mut errors = Vec::new();
        catalog.take_index(path, &text, 0, &keep, &mut errors);
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(Diagnostics(errors))
        }
    }

    /// The standard manifests shipped in this crate ([`standard_index`]).
    pub fn standard() -> Result<Catalog, Diagnostics> {
        Catalog::load(&standard_index())
    }

    /// Adds the libraries of the index `path` (whose text is `text`), and of
    /// the indexes it lists, `depth` indexes down from the first.
    fn take_index(
        &mut self,
        path: &Path,
        text: &str,
        depth: usize,
        keep: &dyn Fn(&manifest::LibraryHead) -> bool,
        errors: &mut Vec<Diagnostic>,
    ) {
        let raw: RawIndex = match serde_saphyr::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                errors.push(Diagnostic::at(
                    path,
                    line.max(1),
                    column,
                    e.without_snippet().to_string(),
                ));
                return;
            }
        };
        if raw.libraries.is_empty() {
            errors.push(Diagnostic::at(path, 1, 1, "the index lists no libraries"));
        }
        let base = path.parent().unwrap_or(Path::new(""));
        for entry in &raw.libraries {
            let file = base.join(&entry.value);
            let loc = entry.referenced;
            let text = match read_text(&file) {
                Ok(text) => text,
                Err(d) => {
                    errors.push(d);
                    continue;
                }
            };
            if is_index(&text) {
                if depth + 1 >= MAX_NESTING {
                    errors.push(Diagnostic::at(
                        path,
                        loc.line(),
                        loc.column(),
                        format!(
                            "{} nests indexes more than {MAX_NESTING} deep (does it list itself?)",
                            file.display()
                        ),
                    ));
                    continue;
                }
                self.nested.push(file.clone());
                self.take_index(&file, &text, depth + 1, keep, errors);
                continue;
            }
            if manifest::peek_library(&text).is_some_and(|head| !keep(&head)) {
                continue;
            }
            match manifest::parse(&file, &text) {
                Ok(manifest) => {
                    if let Some(other) = self
                        .libraries
                        .iter()
                        .find(|l| l.manifest.library.name == manifest.library.name)
                    {
                        errors.push(Diagnostic::at(
                            path,
                            loc.line(),
                            loc.column(),
                            format!(
                                "library `{}` is listed twice ({} and {})",
                                manifest.library.name,
                                other.path.display(),
                                file.display()
                            ),
                        ));
                    }
                    self.libraries.push(CatalogEntry {
                        path: file,
                        manifest,
                    });
                }
                Err(d) => errors.extend(d.0),
            }
        }
    }

    /// The library named `name`, or an error naming those there are.
    pub fn library(&self, name: &str) -> Result<&CatalogEntry, String> {
        self.libraries
            .iter()
            .find(|l| l.manifest.library.name == name)
            .ok_or_else(|| {
                format!(
                    "{} has no library `{name}` (it has {})",
                    self.path.display(),
                    self.names().join(", ")
                )
            })
    }

    /// The only library, or `name` if given; an error when several could be meant.
    pub fn pick(&self, name: Option<&str>) -> Result<&CatalogEntry, String> {
        match (name, self.libraries.as_slice()) {
            (Some(n), _) => self.library(n),
            (None, [only]) => Ok(only),
            (None, _) => Err(format!(
                "{} describes several libraries ({}); name one",
                self.path.display(),
                self.names().join(", ")
            )),
        }
    }

    /// The library names, in the index's order.
    pub fn names(&self) -> Vec<&str> {
        self.libraries
            .iter()
            .map(|l| l.manifest.library.name.as_str())
            .collect()
    }

    /// The library and major whose soname is `soname` (`libcublas.so.12`).
    /// A soname every major shares (`libcuda.so.1`) gives the newest major:
    /// ask for another by number where the majors differ.
    pub fn by_soname(&self, soname: &str) -> Option<(&CatalogEntry, u32)> {
        self.libraries.iter().find_map(|l| {
            let library = &l.manifest.library;
            if library.fixed_soname() {
                let newest = *l.manifest.majors.keys().next_back()?;
                return library.serves(soname).then_some((l, newest));
            }
            let major = library.major_of_soname(soname)?;
            l.manifest.majors.contains_key(&major).then_some((l, major))
        })
    }

    /// Every (library, major) of the catalog, by library then major.
    pub fn views(&self) -> Vec<LibraryMajor<'_>> {
        self.libraries
            .iter()
            .flat_map(|l| {
                l.manifest
                    .majors
                    .keys()
                    .filter_map(|&n| LibraryMajor::new(&l.manifest, n).ok())
            })
            .collect()
    }

    /// Every file the catalog was read from, for `rerun-if-changed`.
    pub fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.path.as_path()];
        files.extend(self.nested.iter().map(PathBuf::as_path));
        files.extend(
            self.libraries
                .iter()
                .map(|l| l.path.as_path())
                .filter(|p| *p != self.path),
        );
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard index ships with the crate and names every library; the
    /// repository's entry point lists it, so both hold the same libraries.
    #[test]
    fn the_standard_index_is_the_repositorys() {
        let standard = Catalog::standard().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            standard.names(),
            [
                "cudart",
                "cublas",
                "cublasLt",
                "cuda",
                "nvml",
                "cudnn",
                "cudnn_graph",
                "cudnn_ops",
                "cudnn_cnn",
                "cudnn_adv",
                "cudnn_ext",
                "cudnn_heuristic",
                "cudnn_engines_precompiled",
                "cudnn_engines_runtime_compiled",
                "cudnn_engines_tensor_ir",
                "cufft",
                "curand",
                "cusolver",
                "cusparse",
                "cusparseLt",
                "nccl",
                "nvrtc",
                "nvJitLink",
                "cupti",
                "cufile",
                "nvtx3interop",
            ]
        );
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cuda-api.yaml");
        if root.is_file() {
            let repo = Catalog::load(&root).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(repo.names(), standard.names());
            assert_eq!(
                repo.nested,
                [root.parent().unwrap().join("codegen/api/cuda-api.yaml")]
            );
            assert!(repo.files().contains(&repo.nested[0].as_path()));
        }
    }

    /// An index that lists itself is an error naming it, not a hang.
    #[test]
    fn an_index_listing_itself_is_an_error() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let index = dir.path().join("loop.yaml");
        std::fs::write(&index, "libraries:\n  - loop.yaml\n").expect("write");
        let e = Catalog::load(&index).expect_err("a cycle").to_string();
        assert!(e.contains("loop.yaml:2:5: error:"), "{e}");
        assert!(e.contains("nests indexes more than 8 deep"), "{e}");
    }
}
