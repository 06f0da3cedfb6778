//! `cudastub`: import a real library into the manifest, generate version
//! scripts from it, and check what was built.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use cudastub_codegen::diag::{Diagnostic, Diagnostics};
use cudastub_codegen::emit::versionscript;
use cudastub_codegen::manifest::{self, Manifest};

/// Exit code for differences found (`generate --check`, `audit`, `diff`).
const EXIT_DIFFERENT: u8 = 1;
/// Exit code for unreadable or invalid input.
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "cudastub",
    version,
    about = "Versioned CUDA runtime shims from one manifest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Refresh one major of the manifest from a real library and its headers.
    Import {
        /// The manifest to update.
        #[arg(long, default_value = "cuda-api.yaml")]
        manifest: PathBuf,
        /// The real library, e.g. .../lib/libcudart.so.12.
        #[arg(long)]
        library: PathBuf,
        /// Include directories holding the manifest's headers (and crt/).
        #[arg(long, num_args = 1.., required = true)]
        headers: Vec<PathBuf>,
        /// The library's release: dotted decimal numbers whose first is the library's major
        /// (12.9.79, 12.9.3.13). Required: a wheel's file name (libcublas.so.12) does not say it.
        #[arg(long, value_parser = release_arg)]
        release: String,
    },
    /// Write versionscripts/ from the manifest, or check that they are current.
    Generate {
        /// The manifest.
        #[arg(long, default_value = "cuda-api.yaml")]
        manifest: PathBuf,
        /// Where the version scripts and symbol lists go.
        #[arg(long, default_value = "versionscripts")]
        out: PathBuf,
        /// Write nothing; exit 1 naming the files that differ from what the manifest gives.
        #[arg(long)]
        check: bool,
    },
    /// Build the shim for every major and lay it out as dist/N/libcudart.so.N, audited.
    Dist {
        /// The manifest.
        #[arg(long, default_value = "cuda-api.yaml")]
        manifest: PathBuf,
        /// Where the libraries go.
        #[arg(long, default_value = "dist")]
        out: PathBuf,
        /// Only these majors (default: every major of the manifest).
        #[arg(long = "major")]
        majors: Vec<u32>,
    },
    /// Validate the manifest and print what it holds.
    Check {
        /// The manifest.
        #[arg(long, default_value = "cuda-api.yaml")]
        manifest: PathBuf,
    },
    /// Prove a built library against the manifest, a real library and its consumers.
    ///
    /// Exit 0 when everything matches (warnings allowed), 1 on any difference,
    /// 2 when an input cannot be read.
    Audit {
        /// The library to check, e.g. dist/12/libcudart.so.12.
        library: PathBuf,
        /// The manifest.
        #[arg(long, default_value = "cuda-api.yaml")]
        manifest: PathBuf,
        /// The major to check against (default: from the library's soname).
        #[arg(long)]
        major: Option<u32>,
        /// A real library of the same major: names, types and versions of all exports must be equal.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// An executable or library linked against the soname: the library must meet all its
        /// versioned requirements. Repeatable.
        #[arg(long = "consumer")]
        consumers: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Compare two export surfaces: symbols added, removed and changed.
    ///
    /// Each side is a library file or a manifest major written `cuda-api.yaml#12`.
    /// Exit 0 when they are the same, 1 when anything differs, 2 when an
    /// input cannot be read.
    Diff {
        /// The old side.
        old: String,
        /// The new side.
        new: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// How `audit` and `diff` print their report.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A verdict line, then the details, for people.
    Text,
    /// One JSON object with a `schema_version`, for programs.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn load(path: &Path) -> Result<Manifest, Diagnostics> {
    manifest::load(path)
}

fn run(command: Command) -> Result<u8, Diagnostics> {
    match command {
        Command::Import {
            manifest: path,
            library,
            headers,
            release,
        } => import(&path, library, headers, release),
        Command::Generate {
            manifest: path,
            out,
            check,
        } => generate(&load(&path)?, &out, check),
        Command::Dist {
            manifest: path,
            out,
            majors,
        } => dist(&path, &out, &majors),
        Command::Audit {
            library,
            manifest: path,
            major,
            reference,
            consumers,
            format,
        } => audit(
            &library,
            &path,
            major,
            reference.as_deref(),
            &consumers,
            format,
        ),
        Command::Diff { old, new, format } => diff(&old, &new, format),
        Command::Check { manifest: path } => {
            let m = load(&path)?;
            for (n, major) in &m.majors {
                println!(
                    "major {n}: {} functions, soname {}, version node {}, imported {}",
                    m.symbols_of(*n).len(),
                    major.soname,
                    major.version_node,
                    major.imported.join(", ")
                );
            }
            Ok(0)
        }
    }
}

/// `--release`'s syntax; the importer checks its major against the library.
fn release_arg(text: &str) -> Result<String, String> {
    #[cfg(feature = "import")]
    return cudastub_codegen::import::parse_release(text);
    #[cfg(not(feature = "import"))]
    Ok(text.to_string())
}

#[cfg(feature = "import")]
fn import(
    path: &Path,
    library: PathBuf,
    include_dirs: Vec<PathBuf>,
    release: String,
) -> Result<u8, Diagnostics> {
    use cudastub_codegen::import::{ImportRequest, import};
    let m = load(path)?;
    let (updated, summary) = import(
        &m,
        &ImportRequest {
            library,
            include_dirs,
            release,
        },
    )?;
    let text = manifest::to_yaml(&updated);
    // What we write must read back as what we meant: never leave a manifest
    // that the next command rejects.
    let reread = manifest::parse(path, &text)?;
    if reread != updated {
        return Err(Diagnostic::file(
            path,
            "internal error: the written manifest does not read back the same",
        )
        .into());
    }
    manifest::write_atomic(path, &text)
        .map_err(|e| Diagnostic::file(path, format!("cannot write: {e}")))?;
    print!("{summary}");
    Ok(0)
}

#[cfg(not(feature = "import"))]
fn import(path: &Path, _: PathBuf, _: Vec<PathBuf>, _: String) -> Result<u8, Diagnostics> {
    Err(Diagnostic::file(path, "this cudastub was built without the `import` feature").into())
}

fn generate(m: &Manifest, out: &Path, check: bool) -> Result<u8, Diagnostics> {
    let files = versionscript::files(m);
    if check {
        let stale: Vec<String> = files
            .iter()
            .map(|f| out.join(&f.path))
            .zip(&files)
            .filter(|(p, f)| {
                std::fs::read_to_string(p).ok().as_deref() != Some(f.contents.as_str())
            })
            .map(|(p, _)| p.display().to_string())
            .collect();
        if stale.is_empty() {
            println!("{} files in {} are up to date", files.len(), out.display());
            return Ok(0);
        }
        for s in &stale {
            eprintln!("{s}: stale: differs from what the manifest gives; run `cudastub generate`");
        }
        return Ok(EXIT_DIFFERENT);
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Diagnostic::file(out, format!("cannot create: {e}")))?;
    for f in &files {
        let path = out.join(&f.path);
        manifest::write_atomic(&path, &f.contents)
            .map_err(|e| Diagnostic::file(&path, format!("cannot write: {e}")))?;
        println!("wrote {}", path.display());
    }
    Ok(0)
}

/// Prints a report in `format`. A closed pipe (`cudastub audit … | head`)
/// ends the output quietly instead of panicking.
fn print_report(text: String, json: &impl serde::Serialize, format: Format) {
    use std::io::Write as _;
    let out = match format {
        Format::Text => text,
        Format::Json => {
            serde_json::to_string_pretty(json).expect("a report always serializes") + "\n"
        }
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
}

fn audit(
    library: &Path,
    manifest_path: &Path,
    major: Option<u32>,
    reference: Option<&Path>,
    consumers: &[PathBuf],
    format: Format,
) -> Result<u8, Diagnostics> {
    use cudastub_codegen::{audit::Report, elf::ElfImage};
    // Read every input first and report every unreadable one at once.
    let mut errors = Vec::new();
    let mut read = |path: &Path| ElfImage::read(path).map_err(|e| errors.push(e)).ok();
    let image = read(library);
    let reference = reference.and_then(&mut read);
    let consumers: Vec<ElfImage> = consumers.iter().filter_map(|c| read(c)).collect();
    let m = load(manifest_path).map_err(|d| errors.extend(d.0)).ok();
    let (Some(image), Some(m)) = (image, m) else {
        return Err(Diagnostics(errors));
    };
    if !errors.is_empty() {
        return Err(Diagnostics(errors));
    }
    let major = match major {
        Some(n) => n,
        None => image
            .soname
            .as_deref()
            .and_then(|s| m.library.major_of_soname(s))
            .ok_or_else(|| {
                Diagnostic::file(
                    library,
                    format!(
                        "cannot tell its major: its soname {} does not match `{}`; pass --major",
                        image.soname.as_deref().unwrap_or("(none)"),
                        m.library.soname
                    ),
                )
            })?,
    };
    m.major(major)
        .map_err(|e| Diagnostic::file(manifest_path, e))?;
    let mut report = Report::new(&image);
    report.check_manifest(&image, &m, manifest_path, major);
    if let Some(reference) = &reference {
        report.check_reference(&image, reference);
    }
    for consumer in &consumers {
        report.check_consumer(&image, consumer, &m, major);
    }
    print_report(report.to_text(), &report.to_json(), format);
    Ok(if report.is_clean() { 0 } else { EXIT_DIFFERENT })
}

fn diff(old: &str, new: &str, format: Format) -> Result<u8, Diagnostics> {
    use cudastub_codegen::diff::{Surface, diff};
    let (old, new) = match (Surface::load(old), Surface::load(new)) {
        (Ok(o), Ok(n)) => (o, n),
        (o, n) => {
            let errors = [o.err(), n.err()].into_iter().flatten();
            return Err(Diagnostics(errors.flat_map(|d| d.0).collect()));
        }
    };
    let d = diff(&old, &new);
    print_report(d.to_text(), &d.to_json(), format);
    Ok(if d.is_same() { 0 } else { EXIT_DIFFERENT })
}

/// Builds `cudastub-shim` for one major with cargo and returns the built file.
fn cargo_build_shim(workspace: &Path, major: u32) -> Result<PathBuf, Diagnostic> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(&cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "-p",
            "cudastub-shim",
            "--message-format=json-render-diagnostics",
        ])
        .env("CUDASTUB_MAJOR", major.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Diagnostic::file(workspace, format!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(Diagnostic::file(
            workspace,
            format!("building the shim for major {major} failed"),
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "cudart")
        .flat_map(|v| v["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "so"))
        .ok_or_else(|| Diagnostic::file(workspace, "cargo built no libcudart.so"))
}

fn dist(manifest_path: &Path, out: &Path, majors: &[u32]) -> Result<u8, Diagnostics> {
    use cudastub_codegen::{audit, elf::ElfImage};
    let m = load(manifest_path)?;
    let workspace = manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let majors: Vec<u32> = if majors.is_empty() {
        m.majors.keys().copied().collect()
    } else {
        majors.to_vec()
    };
    let mut rows = Vec::new();
    let mut failed = false;
    for &major in &majors {
        m.major(major)
            .map_err(|e| Diagnostic::file(manifest_path, e))?;
        let built = cargo_build_shim(workspace, major)?;
        let soname = m.library.soname_of(major);
        let dir = out.join(major.to_string());
        let dest = dir.join(&soname);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Diagnostic::file(&dir, format!("cannot create: {e}")))?;
        let bytes = std::fs::read(&built)
            .map_err(|e| Diagnostic::file(&built, format!("cannot read: {e}")))?;
        let tmp = dir.join(format!(".{soname}.tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::rename(&tmp, &dest))
            .map_err(|e| Diagnostic::file(&dest, format!("cannot write: {e}")))?;
        let image = ElfImage::read(&dest)?;
        let report = audit::against_manifest(&image, &m, major);
        for d in &report.differences {
            eprintln!("{}: {d}", dest.display());
        }
        failed |= !report.is_clean();
        let nodes = image.version_nodes().join(",");
        rows.push([
            major.to_string(),
            dest.display().to_string(),
            image.soname.clone().unwrap_or_else(|| "(none)".into()),
            nodes,
            report.exports.to_string(),
            if report.is_clean() {
                "yes".into()
            } else {
                format!("NO ({} differences)", report.differences.len())
            },
        ]);
    }
    print_table(
        &[
            "major",
            "file",
            "soname",
            "version node",
            "exports",
            "matches manifest",
        ],
        &rows,
    );
    Ok(if failed { EXIT_DIFFERENT } else { 0 })
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}
