//! Export lists: the dynamic-linking surface of a real library as text, so
//! that a library whose file is too large to fetch in every test run
//! (cuDNN's 1 GB of sub-libraries, NCCL, cuSOLVER, …) is still checked
//! exactly. `cudastub exports LIBRARY` writes one from the real file; every
//! command that reads a library (`audit --reference`, `diff`, `import`)
//! also reads a list in its place.
//!
//! ```text
//! # cudastub export list: the dynamic exports of a real library
//! soname libcufft.so.12
//! version libcufft.so.12 base
//! version libcufft.so.12
//! cufftCreate FUNC - @@libcufft.so.12
//! cufft_version OBJECT 4 @@libcufft.so.12
//! ncclGetVersion FUNC - -
//! ```
//!
//! One export a line, sorted by name then version: its name, its type, its
//! size for a data object (`-` for code, whose size is the toolchain's),
//! and its version: `@@node` (default), `@node` (hidden) or `-` (none); a
//! trailing `weak` marks `STB_WEAK`. `soname` and the `version` lines
//! (version definitions, in index order; `base` marks the file's own name)
//! come first. Lines starting with `#` are comments. The file names the
//! real library only in comments: a list stands for its file wherever one
//! is read.

use std::fmt::Write as _;
use std::path::Path;

use crate::diag::Diagnostic;
use crate::elf::{DynSymbol, ElfImage, SymbolKind, VersionDef, Versioning};

/// The first line of every export list: how a reader tells one from an ELF file.
pub const MAGIC: &str = "# cudastub export list";

/// The most lines a list may have (cuDNN's graph library, the largest, has
/// about 2,400 exports).
const MAX_LINES: usize = 1 << 20;

/// `true` when `data` starts like an export list.
pub fn is_export_list(data: &[u8]) -> bool {
    data.starts_with(MAGIC.as_bytes())
}

/// Writes `image`'s exports as a list; `about` becomes comment lines
/// (where the file came from).
pub fn write(image: &ElfImage, about: &[String]) -> String {
    let mut o = format!("{MAGIC}: the dynamic exports of a real library (`cudastub exports`)\n");
    for line in about {
        let _ = writeln!(o, "# {line}");
    }
    if let Some(soname) = &image.soname {
        let _ = writeln!(o, "soname {soname}");
    }
    for d in &image.version_defs {
        let base = if d.base { " base" } else { "" };
        let _ = writeln!(o, "version {}{base}", d.name);
    }
    let mut exports: Vec<&DynSymbol> = image.exports.iter().collect();
    exports.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    for s in exports {
        let size = match s.kind {
            SymbolKind::Object => s.size.to_string(),
            _ => "-".to_string(),
        };
        let version = match &s.version {
            Versioning::None => "-".to_string(),
            Versioning::Default(n) => format!("@@{n}"),
            Versioning::Hidden(n) => format!("@{n}"),
        };
        let weak = if s.weak { " weak" } else { "" };
        let _ = writeln!(o, "{} {} {size} {version}{weak}", s.name, s.kind);
    }
    o
}

/// Parses a list read from `path` into the image it stands for (no
/// imports, no `DT_NEEDED`). Every error names the file and line.
pub fn parse(path: &Path, text: &str) -> Result<ElfImage, Diagnostic> {
    let mut image = ElfImage {
        path: path.to_path_buf(),
        soname: None,
        needed: Vec::new(),
        version_defs: Vec::new(),
        exports: Vec::new(),
        imports: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        if i >= MAX_LINES {
            return Err(Diagnostic::file(
                path,
                format!("more than {MAX_LINES} lines"),
            ));
        }
        let fail = |m: String| Diagnostic::file(path, format!("line {}: {m}", i + 1));
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        match words.as_slice() {
            ["soname", name] => {
                if image.soname.replace(name.to_string()).is_some() {
                    return Err(fail("a second `soname` line".into()));
                }
            }
            ["version", name, rest @ ..] => {
                let base = match rest {
                    [] => false,
                    ["base"] => true,
                    _ => return Err(fail(format!("`{line}`: expected `version NAME [base]`"))),
                };
                let index = u16::try_from(image.version_defs.len() + 1)
                    .map_err(|_| fail("too many version definitions".into()))?;
                image.version_defs.push(VersionDef {
                    index,
                    name: name.to_string(),
                    base,
                });
            }
            [name, kind, size, version, rest @ ..] => {
                let weak = match rest {
                    [] => false,
                    ["weak"] => true,
                    _ => return Err(fail(format!("`{line}`: unexpected `{}`", rest.join(" ")))),
                };
                let kind = match *kind {
                    "FUNC" => SymbolKind::Func,
                    "IFUNC" => SymbolKind::IFunc,
                    "OBJECT" => SymbolKind::Object,
                    "NOTYPE" => SymbolKind::NoType,
                    other => match other.strip_prefix("TYPE").and_then(|n| n.parse().ok()) {
                        Some(n) => SymbolKind::Other(n),
                        None => return Err(fail(format!("unknown symbol type `{other}`"))),
                    },
                };
                let size = match *size {
                    "-" => 0,
                    n => n
                        .parse()
                        .map_err(|_| fail(format!("size `{n}` is not a number")))?,
                };
                let version = if *version == "-" {
                    Versioning::None
                } else if let Some(n) = version.strip_prefix("@@") {
                    Versioning::Default(n.to_string())
                } else if let Some(n) = version.strip_prefix('@') {
                    Versioning::Hidden(n.to_string())
                } else {
                    return Err(fail(format!(
                        "version `{version}` is none of `@@NODE`, `@NODE`, `-`"
                    )));
                };
                if let Some(v) = version_name(&version)
                    && !image.version_defs.iter().any(|d| d.name == v)
                {
                    return Err(fail(format!("version `{v}` has no `version` line")));
                }
                image.exports.push(DynSymbol {
                    name: name.to_string(),
                    kind,
                    weak,
                    size,
                    version,
                    required_from: None,
                });
            }
            _ => {
                return Err(fail(format!(
                    "`{line}`: expected `soname NAME`, `version NAME [base]` or `NAME TYPE SIZE VERSION [weak]`"
                )));
            }
        }
    }
    if image.exports.is_empty() {
        return Err(Diagnostic::file(path, "an export list with no exports"));
    }
    image
        .exports
        .sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    Ok(image)
}

fn version_name(v: &Versioning) -> Option<&str> {
    match v {
        Versioning::None => None,
        Versioning::Default(n) | Versioning::Hidden(n) => Some(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_reads_back_as_the_image_it_was_written_from() {
        let text = format!(
            "{MAGIC}\nsoname libx.so.1\nversion libx.so.1 base\nversion libx.so.1\n\
             b OBJECT 16 @@libx.so.1\na FUNC - @@libx.so.1 weak\nc FUNC - -\n"
        );
        let image = parse(Path::new("x.txt"), &text).unwrap();
        assert_eq!(image.soname.as_deref(), Some("libx.so.1"));
        assert_eq!(image.version_nodes(), ["libx.so.1"]);
        let names: Vec<String> = image
            .exports
            .iter()
            .map(DynSymbol::versioned_name)
            .collect();
        assert_eq!(names, ["a@@libx.so.1", "b@@libx.so.1", "c"]);
        assert!(image.exports[0].weak);
        assert_eq!(image.exports[1].shape(), "OBJECT (16 bytes)");
        let again = parse(Path::new("x.txt"), &write(&image, &[])).unwrap();
        assert_eq!(again.exports, image.exports);
        assert_eq!(again.version_defs, image.version_defs);
    }

    #[test]
    fn a_bad_line_is_named() {
        for (text, want) in [
            (
                "a FUNC - @@nowhere\n",
                "line 2: version `nowhere` has no `version` line",
            ),
            ("a THING - -\n", "line 2: unknown symbol type `THING`"),
            ("a OBJECT x -\n", "line 2: size `x` is not a number"),
            ("a FUNC\n", "line 2: `a FUNC`: expected"),
            ("", "no exports"),
        ] {
            let e = parse(Path::new("l.txt"), &format!("{MAGIC}\n{text}")).unwrap_err();
            assert!(e.to_string().contains(want), "{text:?}: {e}");
        }
    }
}
