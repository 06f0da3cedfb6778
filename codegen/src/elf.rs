//! What a shared library or executable exports and requires, read from its
//! ELF dynamic symbol table and GNU version sections.
//!
//! This is how cudastub checks the product instead of trusting the build: the
//! versions a loader sees are exactly what these sections say. Input may be
//! untrusted (any file a user points `audit` at): every malformed case is an
//! error naming the file, never a panic.

use std::path::{Path, PathBuf};

use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, Sym};
use object::{Endianness, FileKind, ReadCache, ReadRef};

use crate::diag::Diagnostic;

/// A symbol type, as far as a shim cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SymbolKind {
    /// `STT_FUNC`.
    Func,
    /// `STT_GNU_IFUNC`.
    IFunc,
    /// `STT_OBJECT`.
    Object,
    /// `STT_NOTYPE`.
    NoType,
    /// Anything else (`STT_TLS`, `STT_COMMON`, …), by number.
    Other(u8),
}

impl std::fmt::Display for SymbolKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SymbolKind::Func => f.write_str("FUNC"),
            SymbolKind::IFunc => f.write_str("IFUNC"),
            SymbolKind::Object => f.write_str("OBJECT"),
            SymbolKind::NoType => f.write_str("NOTYPE"),
            SymbolKind::Other(n) => write!(f, "TYPE{n}"),
        }
    }
}

/// How a symbol is versioned.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Versioning {
    /// No version information (index 0 or 1, or no version sections).
    None,
    /// `name@@node`: the default version, what new links bind to.
    Default(String),
    /// `name@node`: hidden, only for binaries linked against it before.
    Hidden(String),
}

/// One entry of the dynamic symbol table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynSymbol {
    /// The symbol's name.
    pub name: String,
    /// `FUNC`, `OBJECT`, …
    pub kind: SymbolKind,
    /// `true` for `STB_WEAK`.
    pub weak: bool,
    /// `st_size`: the bytes of a data object (for code, whatever the
    /// toolchain wrote; only compared for `OBJECT`s).
    pub size: u64,
    /// Its version.
    pub version: Versioning,
    /// For an undefined symbol: the file its version requirement names (`libcudart.so.12`).
    pub required_from: Option<String>,
}

impl DynSymbol {
    /// `name@@node`, `name@node` or `name`, as `readelf` and linkers write it.
    pub fn versioned_name(&self) -> String {
        match &self.version {
            Versioning::None => self.name.clone(),
            Versioning::Default(v) => format!("{}@@{v}", self.name),
            Versioning::Hidden(v) => format!("{}@{v}", self.name),
        }
    }

    /// The symbol type as exports are compared: `FUNC`, or for a data
    /// object its size too (`OBJECT (4 bytes)`), which a stand-in must match.
    pub fn shape(&self) -> String {
        match self.kind {
            SymbolKind::Object => format!("OBJECT ({} bytes)", self.size),
            kind => kind.to_string(),
        }
    }

    /// The version node's name, whether default or hidden.
    pub fn version_name(&self) -> Option<&str> {
        match &self.version {
            Versioning::None => None,
            Versioning::Default(v) | Versioning::Hidden(v) => Some(v),
        }
    }
}

/// A version definition (`SHT_GNU_verdef` entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionDef {
    /// Its index, the value `.gnu.version` uses for it.
    pub index: u16,
    /// Its name.
    pub name: String,
    /// `true` for the `VER_FLG_BASE` definition (the file's own name).
    pub base: bool,
}

/// The dynamic-linking view of an ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfImage {
    /// The file it was read from.
    pub path: PathBuf,
    /// `DT_SONAME`, if any.
    pub soname: Option<String>,
    /// `DT_NEEDED` entries, in order.
    pub needed: Vec<String>,
    /// Version definitions, by index.
    pub version_defs: Vec<VersionDef>,
    /// Defined global or weak symbols, sorted by name (the version nodes'
    /// own absolute symbols excluded).
    pub exports: Vec<DynSymbol>,
    /// Undefined symbols, sorted by name.
    pub imports: Vec<DynSymbol>,
}

impl ElfImage {
    /// Reads `path`; any problem is an error naming the file.
    pub fn read(path: &Path) -> Result<ElfImage, Diagnostic> {
        // Reading a FIFO or a device (`/dev/zero`) would block or never end:
        // only regular files (or links to them) are read.
        let meta = std::fs::metadata(path)
            .map_err(|e| Diagnostic::file(path, format!("cannot read: {e}")))?;
        if !meta.is_file() {
            let what = if meta.is_dir() {
                "a directory"
            } else {
                "not a regular file"
            };
            return Err(Diagnostic::file(
                path,
                format!("cannot read: {what}, not an ELF file"),
            ));
        }
        // Only the headers and the sections the dynamic view needs are
        // read, through a cache of the ranges asked for: a 4 GiB file (or a
        // sparse one) costs the size of those sections, not its own.
        let mut file = std::fs::File::open(path)
            .map_err(|e| Diagnostic::file(path, format!("cannot read: {e}")))?;
        // An export list (`cudastub exports`) stands for the file it was
        // written from.
        let mut head = [0u8; crate::export_list::MAGIC.len()];
        let n = std::io::Read::read(&mut file, &mut head)
            .map_err(|e| Diagnostic::file(path, format!("cannot read: {e}")))?;
        if crate::export_list::is_export_list(&head[..n]) {
            return read_export_list(path, meta.len());
        }
        let cache = ReadCache::new(file);
        Self::parse_from(path, &cache)
    }

    /// Parses ELF bytes (or an export list); `path` is only used in messages.
    pub fn parse(path: &Path, data: &[u8]) -> Result<ElfImage, Diagnostic> {
        if crate::export_list::is_export_list(data) {
            let text = std::str::from_utf8(data)
                .map_err(|_| Diagnostic::file(path, "an export list that is not UTF-8"))?;
            return crate::export_list::parse(path, text);
        }
        Self::parse_from(path, data)
    }

    /// Parses the ELF file `data` reads (bytes in memory, or a file read
    /// range by range); `path` is only used in messages.
    fn parse_from<'d, R: ReadRef<'d>>(path: &Path, data: R) -> Result<ElfImage, Diagnostic> {
        let fail = |m: String| Diagnostic::file(path, m);
        let len = data
            .len()
            .map_err(|()| fail("cannot read: its size is unknown".into()))?;
        if len == 0 {
            return Err(fail("an empty file, not an ELF file".into()));
        }
        let header_size = std::mem::size_of::<FileHeader64<Endianness>>();
        let ident = data
            .read_bytes_at(0, len.min(16))
            .map_err(|()| fail("cannot read its ELF header".into()))?;
        // A 32-bit header is shorter (52 bytes) and complete: that file is
        // 32-bit, not truncated, and the class check below says so.
        let is_32_bit = ident.get(4) == Some(&elf::ELFCLASS32);
        if len < header_size as u64 && ident.starts_with(&elf::ELFMAG) && !is_32_bit {
            return Err(fail(format!(
                "truncated: {len} bytes, shorter than a 64-bit ELF header ({header_size} bytes)"
            )));
        }
        match FileKind::parse(data) {
            Ok(FileKind::Elf64) => {}
            Ok(FileKind::Elf32) => {
                return Err(fail(
                    "a 32-bit ELF file; only 64-bit libraries are supported".into(),
                ));
            }
            Ok(other) => return Err(fail(format!("not an ELF file (looks like {other:?})"))),
            Err(_) => return Err(fail("not an ELF file".into())),
        }
        let header = FileHeader64::<Endianness>::parse(data)
            .map_err(|e| fail(format!("corrupt ELF header: {e}")))?;
        let endian = header
            .endian()
            .map_err(|e| fail(format!("corrupt ELF header: {e}")))?;
        if endian != Endianness::Little {
            return Err(fail("a big-endian ELF file; only little-endian (x86_64, aarch64) libraries are supported".into()));
        }
        let corrupt = |what: &str, e: object::read::Error| fail(format!("corrupt {what}: {e}"));
        // The section headers sit at the end of the file: a cut-off download
        // loses them first. Say so rather than "invalid offset".
        let shoff = header.e_shoff(endian);
        if shoff == 0 {
            return Err(fail(
                "no section headers: cannot find the dynamic symbol table".into(),
            ));
        }
        let shsize = u64::from(header.e_shentsize(endian)) * u64::from(header.e_shnum(endian));
        match shoff.checked_add(shsize) {
            Some(end) if end <= len => {}
            _ => {
                return Err(fail(format!(
                    "truncated or corrupt: the section header table at offset {shoff} \
                     ({shsize} bytes) lies beyond the end of the file ({len} bytes)"
                )));
            }
        }
        let sections = header
            .sections(endian, data)
            .map_err(|e| corrupt("section table", e))?;
        let Some((dynamic, strtab_index)) = sections
            .dynamic(endian, data)
            .map_err(|e| corrupt("dynamic section", e))?
        else {
            return Err(fail(
                "no dynamic section: not a shared library or dynamically linked executable".into(),
            ));
        };
        let dynstr = sections
            .strings(endian, data, strtab_index)
            .map_err(|e| corrupt("dynamic string table", e))?;
        let string = |offset: u64| -> Result<String, Diagnostic> {
            let offset = u32::try_from(offset)
                .map_err(|_| fail("corrupt dynamic section: string offset out of range".into()))?;
            dynstr
                .get(offset)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .map_err(|()| fail("corrupt dynamic section: string offset out of range".into()))
        };
        let mut soname = None;
        let mut needed = Vec::new();
        for d in dynamic {
            let tag = d.d_tag.get(endian);
            if tag == u64::from(elf::DT_NULL) {
                break;
            }
            let value = d.d_val.get(endian);
            match tag as u32 {
                elf::DT_SONAME => soname = Some(string(value)?),
                elf::DT_NEEDED => needed.push(string(value)?),
                _ => {}
            }
        }

        let symbols = sections
            .symbols(endian, data, elf::SHT_DYNSYM)
            .map_err(|e| corrupt("dynamic symbol table", e))?;
        if symbols.is_empty() {
            return Err(fail("no dynamic symbols".into()));
        }
        let versions = sections
            .versions(endian, data)
            .map_err(|e| corrupt("version sections", e))?;

        let mut version_defs = Vec::new();
        if let Some((mut defs, link)) = sections
            .gnu_verdef(endian, data)
            .map_err(|e| corrupt("version definitions", e))?
        {
            let strings = sections
                .strings(endian, data, link)
                .map_err(|e| corrupt("version definitions", e))?;
            while let Some((def, mut aux)) =
                defs.next().map_err(|e| corrupt("version definitions", e))?
            {
                let name = match aux.next().map_err(|e| corrupt("version definitions", e))? {
                    Some(a) => String::from_utf8_lossy(
                        a.name(endian, strings)
                            .map_err(|e| corrupt("version definitions", e))?,
                    )
                    .into_owned(),
                    None => String::new(),
                };
                version_defs.push(VersionDef {
                    index: def.vd_ndx.get(endian),
                    name,
                    base: def.vd_flags.get(endian) & elf::VER_FLG_BASE != 0,
                });
            }
        }

        let mut exports = Vec::new();
        let mut imports = Vec::new();
        for (index, sym) in symbols.enumerate() {
            if index.0 == 0 {
                continue;
            }
            let bind = sym.st_bind();
            if bind != elf::STB_GLOBAL && bind != elf::STB_WEAK && bind != elf::STB_GNU_UNIQUE {
                continue;
            }
            let name = String::from_utf8_lossy(
                symbols
                    .symbol_name(endian, sym)
                    .map_err(|e| corrupt("dynamic symbol names", e))?,
            )
            .into_owned();
            let kind = match sym.st_type() {
                elf::STT_FUNC => SymbolKind::Func,
                elf::STT_GNU_IFUNC => SymbolKind::IFunc,
                elf::STT_OBJECT => SymbolKind::Object,
                elf::STT_NOTYPE => SymbolKind::NoType,
                n => SymbolKind::Other(n),
            };
            let (version, required_from) = match &versions {
                None => (Versioning::None, None),
                Some(table) => {
                    let vi = table.version_index(endian, index);
                    match table
                        .version(vi)
                        .map_err(|e| corrupt("symbol versions", e))?
                    {
                        None => (Versioning::None, None),
                        Some(v) => {
                            let vname = String::from_utf8_lossy(v.name()).into_owned();
                            let file = v.file().map(|f| String::from_utf8_lossy(f).into_owned());
                            let versioning = if vi.is_hidden() {
                                Versioning::Hidden(vname)
                            } else {
                                Versioning::Default(vname)
                            };
                            (versioning, file)
                        }
                    }
                }
            };
            let entry = DynSymbol {
                name,
                kind,
                weak: bind == elf::STB_WEAK,
                size: sym.st_size(endian),
                version,
                required_from,
            };
            if sym.is_undefined(endian) {
                imports.push(entry);
            } else {
                // A version node's own absolute symbol is bookkeeping, not an export.
                let is_node_symbol = sym.st_shndx(endian) == elf::SHN_ABS
                    && version_defs.iter().any(|d| d.name == entry.name);
                if !is_node_symbol {
                    exports.push(entry);
                }
            }
        }
        exports.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
        imports.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
        Ok(ElfImage {
            path: path.to_path_buf(),
            soname,
            needed,
            version_defs,
            exports,
            imports,
        })
    }

    /// The non-base version definitions' names.
    pub fn version_nodes(&self) -> Vec<&str> {
        self.version_defs
            .iter()
            .filter(|d| !d.base)
            .map(|d| d.name.as_str())
            .collect()
    }

    /// The symbols this file requires from `file` (a soname), with the version it requires.
    pub fn requirements_from<'a>(
        &'a self,
        file: &'a str,
    ) -> impl Iterator<Item = &'a DynSymbol> + 'a {
        self.imports
            .iter()
            .filter(move |s| s.required_from.as_deref() == Some(file))
    }
}

/// The largest export list read (cuDNN's graph library's is about 200 kB).
const MAX_EXPORT_LIST: u64 = 64 << 20;

/// Reads the export list at `path`, `len` bytes long.
fn read_export_list(path: &Path, len: u64) -> Result<ElfImage, Diagnostic> {
    if len > MAX_EXPORT_LIST {
        return Err(Diagnostic::file(
            path,
            format!(
                "an export list of {len} bytes: more than the {MAX_EXPORT_LIST} a list may have"
            ),
        ));
    }
    let data =
        std::fs::read(path).map_err(|e| Diagnostic::file(path, format!("cannot read: {e}")))?;
    ElfImage::parse(path, &data)
}
