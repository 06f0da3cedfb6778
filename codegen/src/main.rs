//! `cudastub`: import a real library into the manifest, generate version
//! scripts from it, and check what was built.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use cudastub_codegen::catalog::{Catalog, default_index};
use cudastub_codegen::diag::{Diagnostic, Diagnostics};
use cudastub_codegen::emit::crates;
use cudastub_codegen::emit::versionscript::{self, GeneratedFile};
use cudastub_codegen::manifest;
use cudastub_codegen::schema;

/// Exit code for differences found (`generate --check`, `audit`, `diff`).
const EXIT_DIFFERENT: u8 = 1;
/// Exit code for unreadable or invalid input.
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "cudastub",
    version,
    about = "Versioned CUDA library shims from one manifest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Refresh one major of a library's manifest from a real library and its headers.
    Import {
        /// The manifest (or the index of manifests) to update.
        #[arg(long, default_value = "cuda-api.yaml")]
        manifest: PathBuf,
        /// The library to update, when the manifest is an index of several
        /// (default: the one whose soname the library file has).
        #[arg(long = "lib")]
        lib: Option<String>,
        /// The real library, e.g. .../lib/libcudart.so.12.
        #[arg(long, required_unless_present = "exports", conflicts_with = "exports")]
        library: Option<PathBuf>,
        /// Instead of a library, a list of its exports, one name a line (a
        /// release no fixture ships: codegen/api/exports/libcuda.so.1-580.159.04.txt).
        #[arg(long)]
        exports: Option<PathBuf>,
        /// The major to update: needed when the soname does not say it (a
        /// library that serves every major, such as libcuda.so.1, or --exports).
        #[arg(long)]
        major: Option<u32>,
        /// Include directories holding the manifest's headers (and crt/).
        #[arg(long, num_args = 1.., required = true)]
        headers: Vec<PathBuf>,
        /// The library's release: dotted decimal numbers whose first is the library's major
        /// (12.9.79, 12.9.3.13), or the driver's release (535.261.03) for a library that serves
        /// every major. Required: a wheel's file name (libcublas.so.12) does not say it.
        #[arg(long, value_parser = release_arg)]
        release: String,
    },
    /// Write versionscripts/, the shim crates and the report schemas, or check that they are current.
    Generate {
        /// The manifest.
        #[arg(long, default_value = "cuda-api.yaml")]
        manifest: PathBuf,
        /// Where the version scripts and symbol lists go.
        #[arg(long, default_value = "versionscripts")]
        out: PathBuf,
        /// Where the standard shim crates go, one per (library, major).
        #[arg(long, default_value = crates::SHIM_DIR)]
        crates: PathBuf,
        /// Where the JSON Schemas of the audit and diff reports go.
        #[arg(long, default_value = schema::SCHEMA_DIR)]
        schemas: PathBuf,
        /// Write nothing; print a unified diff of what would change and exit 1
        /// when anything would (exit 2 when an output directory does not exist).
        #[arg(long)]
        check: bool,
    },
    /// Build every shim in one cargo run and lay them out as dist/MAJOR/SONAME, audited.
    ///
    /// With --package DIR: build your own shim crate (or workspace) DIR for
    /// every major, and complete each dist/MAJOR with the standard
    /// forward-only shims of the libraries it does not build, so that
    /// dist/MAJOR is a whole CUDA stand-in. Exit 1 when a library does not
    /// match its manifest, 2 on errors; nothing is laid out unless every
    /// library could be.
    Dist {
        /// The manifest (default: cuda-api.yaml; with --package, the standard
        /// manifests shipped in cudastub-codegen).
        #[arg(long, conflicts_with = "package")]
        manifest: Option<PathBuf>,
        /// Where the libraries go.
        #[arg(long, default_value = "dist")]
        out: PathBuf,
        /// Only these libraries (default: every library of the manifest);
        /// with --package, the standard libraries that complete each
        /// directory (the package's own are always laid out).
        #[arg(long = "lib")]
        libs: Vec<String>,
        /// Only these majors (default: every major of each library).
        #[arg(long = "major")]
        majors: Vec<u32>,
        /// A directory with a Cargo.toml: your shim crate, or a workspace of
        /// them (one cdylib per library, each with the standard soname of
        /// the major it is built for, CUDASTUB_MAJOR=N); or, as cargo's -p,
        /// the name of a package of the current directory's workspace. Built into
        /// `<its target dir>/cudastub-dist/<dir name>-<path hash>/N`.
        #[arg(long)]
        package: Option<PathBuf>,
        /// Lay out a remote GPU's client instead: every library sends its
        /// calls to the GPU server named by CUDASTUB_REMOTE (`cudastub
        /// serve`) through libcudastub-remote.so, laid out beside them; no
        /// NVIDIA library is loaded.
        #[arg(long, conflicts_with = "package")]
        remote: bool,
    },
    /// Show what a CUDA program would see with DIR (a stand-in such as
    /// dist/12) first on its library path: the devices the runtime, the
    /// driver and NVML of DIR report, each call with its status.
    ///
    /// Loads DIR's libcudart.so.N, libcuda.so.1 and libnvidia-ml.so.1 in a
    /// child process started with DIR first on LD_LIBRARY_PATH. Exit 0 when
    /// the libraries could be asked (whatever they answered), 2 otherwise.
    Devices {
        /// The directory, e.g. dist/12.
        dir: PathBuf,
    },
    /// Serve the real NVIDIA libraries to remote clients: a process with no
    /// GPU calls them here, through the client shims (`CUDASTUB_REMOTE`).
    ///
    /// Each connection is served by a child process of its own. A Unix
    /// socket is created owner-only; TCP needs --token-file. Runs until
    /// killed.
    Serve {
        /// `unix:/path/to.sock` or `tcp://host:port` (port 0: any free one).
        #[arg(long)]
        listen: String,
        /// The directory of the real libraries (else the loader's search
        /// path); may be a stand-in's dist directory.
        #[arg(long)]
        lib_dir: Option<PathBuf>,
        /// A file holding the token clients must give (required for TCP).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Where module images (fat binaries) are kept by their hash, so a
        /// client sends each once, not at every start (default:
        /// $XDG_CACHE_HOME/cudastub/modules, else ~/.cache/cudastub/modules).
        #[arg(long)]
        module_cache: Option<PathBuf>,
        /// The most the module cache keeps, in MiB: as the server starts,
        /// the least recently used images beyond it are removed.
        #[arg(long, default_value_t = 8192, value_name = "MIB")]
        module_cache_mib: u64,
        /// The manifest (default: the standard manifests).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Internal: serve the connection on standard input with these plans.
        #[arg(long, hide = true)]
        session: Option<PathBuf>,
    },
    /// Validate the manifest and print what it holds, with how complete the
    /// parameter roles of each library and major are.
    Check {
        /// The manifest (default: ./cuda-api.yaml, else the standard
        /// manifests shipped with cudastub).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Infer every parameter's role and every function's call class again
    /// (the library's role_rules, then the structural rules) and write them
    /// into each library manifest; functions with `roles_source: overlay`
    /// keep theirs.
    Roles {
        /// The manifest (or the index of manifests).
        #[arg(long, default_value = "cuda-api.yaml")]
        manifest: PathBuf,
        /// Write nothing; exit 1 if a manifest's roles are not current.
        #[arg(long)]
        check: bool,
    },
    /// Prove a built library against the manifest, a real library and its consumers.
    ///
    /// LIBRARY may be a directory such as dist/12: then every shim in it is
    /// checked, and each consumer against every shim whose soname it needs.
    /// Exit 0 when everything matches (warnings allowed), 1 on any difference,
    /// 2 when an input cannot be read.
    Audit {
        /// The library to check, e.g. dist/12/libcudart.so.12, or a directory of them.
        library: PathBuf,
        /// The manifest (default: ./cuda-api.yaml, else the standard
        /// manifests shipped with cudastub).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The major to check against (default: from the library's soname).
        #[arg(long)]
        major: Option<u32>,
        /// The library of the manifest to check against (default: from the soname).
        #[arg(long = "lib")]
        lib: Option<String>,
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
        /// Text format: print only the libraries that differ, their errors
        /// (no warnings), and the summary line.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Compare two export surfaces: symbols added, removed and changed, and
    /// between manifests the C types their prototypes use.
    ///
    /// Each side is a library file or a manifest major written
    /// `cuda-api.yaml#cublas/12` (`codegen/api/cublas.yaml#12` for one library's manifest;
    /// outside a checkout, `cuda-api.yaml` is the standard manifests shipped with cudastub).
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
    /// Write the export list of a real library: its soname, version
    /// definitions and every export (name, type, a data object's size,
    /// version), as text that `audit --reference`, `diff` and `import`
    /// read in the file's place. For a library too large to fetch in every
    /// test run (codegen/api/exports/).
    Exports {
        /// The real library.
        library: PathBuf,
        /// Write the list here (atomically) instead of to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A comment line saying where the file came from (repeatable), e.g.
        /// `nvidia-cudnn-cu13 9.28.1.4`.
        #[arg(long)]
        about: Vec<String>,
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version go to stdout, usage errors to stderr.
            let code = e.exit_code();
            return match e.print() {
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe && code == 0 => {
                    warn(&format!(
                        "cudastub: error: cannot write to standard output: {err}"
                    ));
                    ExitCode::from(EXIT_BAD_INPUT)
                }
                _ => ExitCode::from(u8::try_from(code).unwrap_or(EXIT_BAD_INPUT)),
            };
        }
    };
    let result = run(cli.command).and_then(|code| output::finish().map(|()| code));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            warn(&e.to_string());
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// Writes a line to stderr. A stderr that cannot be written to is ignored:
/// the exit code still tells.
fn warn(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Standard output. Every report goes through [`output::print`]: a closed
/// pipe (`cudastub check | head -1`) ends the output quietly, as Unix tools
/// do, and the command goes on to its own exit code; any other write error
/// (`> /dev/full`) is exit 2 with a message, and nothing is written to
/// files after it.
mod output {
    use std::io::Write as _;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    use cudastub_codegen::diag::{Diagnostic, Diagnostics};

    /// The reader went away: nothing more is printed.
    static CLOSED: AtomicBool = AtomicBool::new(false);

    fn failed(e: &std::io::Error) -> Result<(), Diagnostics> {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
            return Ok(());
        }
        Err(Diagnostic::file(Path::new("standard output"), format!("cannot write: {e}")).into())
    }

    /// Prints `text` and flushes it, so that an error shows here and now.
    pub fn print(text: &str) -> Result<(), Diagnostics> {
        if CLOSED.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) => failed(&e),
        }
    }

    /// Flushes what is left at exit.
    pub fn finish() -> Result<(), Diagnostics> {
        if CLOSED.load(Ordering::Relaxed) {
            return Ok(());
        }
        match std::io::stdout().lock().flush() {
            Ok(()) => Ok(()),
            Err(e) => failed(&e),
        }
    }
}

fn load(path: &Path) -> Result<Catalog, Diagnostics> {
    Catalog::load(path)
}

fn run(command: Command) -> Result<u8, Diagnostics> {
    match command {
        Command::Import {
            manifest: path,
            lib,
            library,
            exports,
            major,
            headers,
            release,
        } => {
            let source = match (library, exports) {
                (Some(l), _) => (l, false),
                (None, Some(e)) => (e, true),
                (None, None) => unreachable!("clap requires --library or --exports"),
            };
            import(&path, lib.as_deref(), source, major, headers, release)
        }
        Command::Generate {
            manifest: path,
            out,
            crates,
            schemas,
            check,
        } => generate(
            &load(&path)?,
            &OutputDirs {
                versionscripts: out,
                crates,
                schemas,
            },
            check,
        ),
        Command::Dist {
            manifest,
            out,
            libs,
            majors,
            package,
            remote,
        } => match package {
            Some(package) => dist::package(&package, &out, &libs, &majors),
            None => dist::standard(
                &manifest.unwrap_or_else(|| "cuda-api.yaml".into()),
                &out,
                &libs,
                &majors,
                remote,
            ),
        },
        Command::Audit {
            library,
            manifest: path,
            major,
            lib,
            reference,
            consumers,
            format,
            quiet,
        } => json_error(
            format,
            audit(
                &library,
                &path.unwrap_or_else(default_index),
                AuditTarget { major, lib },
                reference.as_deref(),
                &consumers,
                format,
                quiet,
            ),
        ),
        Command::Diff { old, new, format } => json_error(format, diff(&old, &new, format)),
        Command::Exports {
            library,
            out,
            about,
        } => {
            let image = cudastub_codegen::elf::ElfImage::read(&library)?;
            let text = cudastub_codegen::export_list::write(&image, &about);
            match out {
                Some(path) => cudastub_codegen::manifest::write_atomic(&path, &text)
                    .map_err(|e| Diagnostic::file(&path, format!("cannot write: {e}")))?,
                None => output::print(&text)?,
            }
            Ok(0)
        }
        Command::Devices { dir } => devices::devices(&dir),
        Command::Serve {
            listen,
            lib_dir,
            token_file,
            module_cache,
            module_cache_mib,
            manifest,
            session,
        } => serve::serve(serve::Options {
            listen,
            lib_dir,
            token_file,
            module_cache,
            module_cache_mib,
            manifest,
            session,
        }),
        Command::Roles {
            manifest: path,
            check,
        } => roles(&path, check),
        Command::Check { manifest: path } => {
            let catalog = load(&path.unwrap_or_else(default_index))?;
            let mut text = String::new();
            for view in catalog.views() {
                text.push_str(&format!(
                    "{} major {}: {} functions, {} data objects, soname {}, version node {}, imported {}\n",
                    view.library,
                    view.major,
                    view.functions.len(),
                    view.data.len(),
                    view.soname,
                    view.version_node.as_deref().unwrap_or("(none: unversioned)"),
                    view.facts.imported.join(", ")
                ));
            }
            text.push_str(&completeness_table(&catalog));
            output::print(&text)?;
            Ok(0)
        }
    }
}

/// `cudastub roles`: refreshes (or with `check`, verifies) the roles of
/// every library manifest of the index at `path`.
fn roles(path: &Path, check: bool) -> Result<u8, Diagnostics> {
    let catalog = load(path)?;
    let mut stale = Vec::new();
    for entry in &catalog.libraries {
        let mut manifest = entry.manifest.clone();
        let changed = cudastub_codegen::roles::refresh(&mut manifest);
        let text = cudastub_codegen::manifest::to_yaml(&manifest);
        let current = cudastub_codegen::catalog::read_text(&entry.path)?;
        if text == current {
            continue;
        }
        if check {
            stale.push(format!(
                "{}: roles not current ({changed} entries differ); run `cudastub roles`",
                entry.path.display()
            ));
        } else {
            cudastub_codegen::manifest::write_atomic(&entry.path, &text).map_err(|e| {
                Diagnostics::from(Diagnostic::file(&entry.path, format!("cannot write: {e}")))
            })?;
            output::print(&format!(
                "{}: {changed} entries updated\n",
                entry.path.display()
            ))?;
        }
    }
    if stale.is_empty() {
        Ok(0)
    } else {
        eprintln!("{}", stale.join("\n"));
        Ok(1)
    }
}

/// The completeness of the roles, per library and major: a Markdown table.
fn completeness_table(catalog: &Catalog) -> String {
    let mut text = String::from(
        "\nparameter roles (complete: every parameter's role known):\n\n| library | major | complete functions | % | parameters known | async | sync | local |\n|---|---|---|---|---|---|---|---|\n",
    );
    for view in catalog.views() {
        let c = view.completeness();
        let class = |k| c.classes.get(&k).copied().unwrap_or(0);
        use cudastub_codegen::roles::CallClass;
        text.push_str(&format!(
            "| {} | {} | {} / {} | {:.1} | {} / {} | {} | {} | {} |\n",
            view.library,
            view.major,
            c.complete,
            c.total,
            c.percent(),
            c.known_params,
            c.params,
            class(CallClass::Async),
            class(CallClass::Sync),
            class(CallClass::Local),
        ));
    }
    text
}

/// Which library of the catalog `import` updates: `--lib`, else the one
/// whose soname pattern the library file's soname matches.
#[cfg(feature = "import")]
fn import_target<'a>(
    catalog: &'a Catalog,
    lib: Option<&str>,
    library: &Path,
) -> Result<&'a cudastub_codegen::catalog::CatalogEntry, Diagnostics> {
    if let Some(name) = lib {
        return catalog
            .library(name)
            .map_err(|e| Diagnostic::file(&catalog.path, e).into());
    }
    if catalog.libraries.len() == 1 {
        return Ok(&catalog.libraries[0]);
    }
    let image = cudastub_codegen::elf::ElfImage::read(library)?;
    let soname = image.soname.clone().unwrap_or_default();
    catalog
        .libraries
        .iter()
        .find(|l| {
            let library = &l.manifest.library;
            library.serves(&soname)
        })
        .ok_or_else(|| {
            Diagnostic::file(
                library,
                format!(
                    "its soname `{soname}` matches no library of {} ({}); pass --lib",
                    catalog.path.display(),
                    catalog.names().join(", ")
                ),
            )
            .into()
        })
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
    lib: Option<&str>,
    (library, exports_list): (PathBuf, bool),
    major: Option<u32>,
    include_dirs: Vec<PathBuf>,
    release: String,
) -> Result<u8, Diagnostics> {
    use cudastub_codegen::import::{ImportRequest, import};
    let catalog = load(path)?;
    if exports_list && lib.is_none() && catalog.libraries.len() > 1 {
        return Err(Diagnostic::file(
            &library,
            "an export list does not say its library; pass --lib",
        )
        .into());
    }
    // A directory of libraries (`target/fixtures/cuda12/lib`): the file of
    // the library's soname for the major, which the manifest names
    // (`libcufft.so.11` for 12).
    let library = match (library.is_dir(), lib, major) {
        (true, Some(name), Some(m)) => {
            let soname = catalog
                .library(name)
                .map_err(|e| Diagnostic::file(&catalog.path, e))?
                .manifest
                .library
                .soname_of(m);
            library.join(soname)
        }
        (true, _, _) => {
            return Err(Diagnostic::file(
                &library,
                "a directory of libraries needs --lib and --major to pick the file",
            )
            .into());
        }
        (false, _, _) => library,
    };
    let entry = import_target(&catalog, lib, &library)?;
    let path = entry.path.as_path();
    let (updated, summary) = import(
        &entry.manifest,
        &ImportRequest {
            library,
            exports_list,
            major,
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
    output::print(&summary.to_string())?;
    Ok(0)
}

#[cfg(not(feature = "import"))]
fn import(
    path: &Path,
    _: Option<&str>,
    _: (PathBuf, bool),
    _: Option<u32>,
    _: Vec<PathBuf>,
    _: String,
) -> Result<u8, Diagnostics> {
    Err(Diagnostic::file(path, "this cudastub was built without the `import` feature").into())
}

/// Where `generate` writes each kind of file.
struct OutputDirs {
    versionscripts: PathBuf,
    crates: PathBuf,
    schemas: PathBuf,
}

/// Every generated file, with its full path: the version scripts, the shim
/// crates and the report schemas, each under its directory.
fn generated_files(catalog: &Catalog, dirs: &OutputDirs) -> Vec<(PathBuf, GeneratedFile)> {
    let scripts = versionscript::all_files(catalog)
        .into_iter()
        .map(|f| (dirs.versionscripts.join(&f.path), f));
    let shim_crates = crates::all_files(catalog).into_iter().map(|f| {
        // Crate paths start with `shim/`; `--crates` replaces that directory.
        let rel = f
            .path
            .strip_prefix(crates::SHIM_DIR)
            .unwrap_or(&f.path)
            .to_path_buf();
        (dirs.crates.join(rel), f)
    });
    let schemas = schema::files()
        .into_iter()
        .map(|f| (dirs.schemas.join(&f.path), f));
    scripts.chain(shim_crates).chain(schemas).collect()
}

/// What `generate --check` says about one file: nothing when current, else
/// `missing` or a unified diff from the file to what the manifest gives.
fn check_file(path: &Path, wanted: &str) -> Result<Option<String>, Diagnostic> {
    // Never open what is not a regular file: a FIFO would block.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Ok(Some(format!(
            "{}: not a regular file; run `cudastub generate`\n",
            path.display()
        )));
    }
    let current = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(format!(
                "{}: missing; run `cudastub generate`\n",
                path.display()
            )));
        }
        Err(e) => return Err(Diagnostic::file(path, format!("cannot read: {e}"))),
    };
    if current == wanted {
        return Ok(None);
    }
    let shown = path.display().to_string();
    let diff = similar::TextDiff::from_lines(current.as_str(), wanted)
        .unified_diff()
        .context_radius(3)
        .header(&shown, &format!("{shown} (generated)"))
        .to_string();
    Ok(Some(format!(
        "{shown}: stale; run `cudastub generate`\n{diff}"
    )))
}

/// The mark every generated file carries near its start.
const GENERATED_MARK: &[u8] = b"@generated by cudastub";

/// Files under the output directories that cudastub generated (they carry
/// its mark) and that the manifests no longer give: a shim crate of a major
/// a library dropped, the version scripts of a removed library. Only regular
/// files are looked at (never a FIFO); the crates directory one crate deep;
/// the symbol lists by their `.symbols` name.
fn orphans(dirs: &OutputDirs, files: &[(PathBuf, GeneratedFile)]) -> Vec<PathBuf> {
    use std::io::Read as _;
    let wanted: std::collections::BTreeSet<&Path> =
        files.iter().map(|(p, _)| p.as_path()).collect();
    let entries = |dir: &Path| -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.sort();
        paths
    };
    let mut candidates = entries(&dirs.versionscripts);
    candidates.extend(entries(&dirs.schemas));
    for krate in entries(&dirs.crates) {
        if std::fs::symlink_metadata(&krate).is_ok_and(|m| m.is_dir()) {
            candidates.extend(entries(&krate));
        }
    }
    let marked = |path: &Path| -> bool {
        if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
            return false;
        }
        let mut head = Vec::with_capacity(512);
        std::fs::File::open(path)
            .and_then(|f| f.take(512).read_to_end(&mut head))
            .is_ok()
            && head
                .windows(GENERATED_MARK.len())
                .any(|w| w == GENERATED_MARK)
    };
    // The symbol lists carry no mark (a plain list to diff in review): in the
    // version scripts' directory, every `.symbols` file is cudastub's.
    let symbol_list = |path: &Path| -> bool {
        path.parent() == Some(dirs.versionscripts.as_path())
            && path.extension().is_some_and(|e| e == "symbols")
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
    };
    let mut found: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|p| !wanted.contains(p.as_path()) && (marked(p) || symbol_list(p)))
        .collect();
    found.sort();
    found.dedup();
    found
}

fn generate(catalog: &Catalog, dirs: &OutputDirs, check: bool) -> Result<u8, Diagnostics> {
    let files = generated_files(catalog, dirs);
    let orphans = orphans(dirs, &files);
    if check {
        // A mistyped directory is a bad argument, not a tree of stale files.
        let roots = [&dirs.versionscripts, &dirs.crates, &dirs.schemas];
        let errors: Vec<Diagnostic> = roots
            .into_iter()
            .filter(|d| !d.is_dir())
            .map(|d| {
                let why = if d.exists() {
                    "not a directory"
                } else {
                    "no such directory"
                };
                Diagnostic::file(d, format!("cannot check: {why}"))
            })
            .collect();
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        let mut stale = 0;
        let mut report = String::new();
        for (path, f) in &files {
            if let Some(text) = check_file(path, &f.contents)? {
                stale += 1;
                report.push_str(&text);
            }
        }
        for path in &orphans {
            stale += 1;
            report.push_str(&format!(
                "{}: generated, but the manifests no longer give it; run `cudastub generate` (which removes it)\n",
                path.display()
            ));
        }
        if stale == 0 {
            output::print(&format!("{} generated files are up to date\n", files.len()))?;
            return Ok(0);
        }
        // Like the reports: a closed pipe (`… --check | head`) ends it quietly.
        output::print(&report)?;
        warn(&format!(
            "{stale} of {} generated files differ from what the manifest gives; run `cudastub generate`",
            files.len()
        ));
        return Ok(EXIT_DIFFERENT);
    }
    // Nothing is written unless everything can be: every destination is
    // checked, then every file is written to a temporary next to it, the
    // report printed, and only then are the temporaries renamed into place.
    let staged = staging::Staged::new(
        files
            .iter()
            .map(|(p, f)| (p.clone(), f.contents.as_bytes().to_vec())),
    )?;
    let mut report: String = files
        .iter()
        .map(|(p, _)| format!("wrote {}\n", p.display()))
        .collect();
    for p in &orphans {
        report.push_str(&format!("removed {} (no longer generated)\n", p.display()));
    }
    // Printed before the rename: an unwritable stdout leaves nothing written.
    output::print(&report)?;
    staged.commit()?;
    let mut errors = Vec::new();
    for p in &orphans {
        if let Err(e) = std::fs::remove_file(p) {
            errors.push(Diagnostic::file(p, format!("cannot remove: {e}")));
        } else if let Some(parent) = p
            .parent()
            .filter(|d| d.parent() == Some(dirs.crates.as_path()))
        {
            // A crate left empty goes with its last file.
            let _ = std::fs::remove_dir(parent);
        }
    }
    if !errors.is_empty() {
        return Err(Diagnostics(errors));
    }
    Ok(0)
}

/// Writing several files all or nothing.
mod staging {
    use std::path::{Path, PathBuf};

    use cudastub_codegen::diag::{Diagnostic, Diagnostics};

    /// Files written to temporaries next to their destinations, not yet
    /// renamed into place.
    pub struct Staged {
        /// (temporary, destination), in order.
        files: Vec<(PathBuf, PathBuf)>,
        /// Directories created for them, parents first.
        created: Vec<PathBuf>,
    }

    /// Why `path` cannot be written: it is a directory, or one of its
    /// parents exists and is not a directory.
    pub fn check_destination(path: &Path) -> Result<(), Diagnostic> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(Diagnostic::file(
                path,
                "cannot write: it is a directory (remove it first)",
            ));
        }
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            match std::fs::metadata(d) {
                Ok(meta) if meta.is_dir() => return Ok(()),
                Ok(_) => {
                    return Err(Diagnostic::file(
                        path,
                        format!("cannot write: {} is not a directory", d.display()),
                    ));
                }
                Err(_) => dir = d.parent(),
            }
        }
        Ok(())
    }

    impl Staged {
        /// Checks every destination, then writes every file's bytes to a
        /// temporary in its destination's directory. On any error nothing
        /// is left behind: temporaries and created directories are removed.
        pub fn new(
            files: impl IntoIterator<Item = (PathBuf, Vec<u8>)>,
        ) -> Result<Staged, Diagnostics> {
            let files: Vec<(PathBuf, Vec<u8>)> = files.into_iter().collect();
            let errors: Vec<Diagnostic> = files
                .iter()
                .filter_map(|(p, _)| check_destination(p).err())
                .collect();
            if !errors.is_empty() {
                return Err(Diagnostics(errors));
            }
            let mut staged = Staged {
                files: Vec::new(),
                created: Vec::new(),
            };
            for (dest, bytes) in &files {
                staged.add(dest, bytes)?;
            }
            Ok(staged)
        }

        fn add(&mut self, dest: &Path, bytes: &[u8]) -> Result<(), Diagnostic> {
            let dir = dest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
            missing.reverse();
            for d in missing {
                if d.as_os_str().is_empty() {
                    continue;
                }
                std::fs::create_dir(d)
                    .map_err(|e| Diagnostic::file(d, format!("cannot create: {e}")))?;
                self.created.push(d.to_path_buf());
            }
            let name = dest.file_name().unwrap_or_default().to_string_lossy();
            let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
            let written = std::fs::write(&tmp, bytes);
            // Recorded before the result is looked at: a half-written
            // temporary is removed too.
            self.files.push((tmp, dest.to_path_buf()));
            written.map_err(|e| Diagnostic::file(dest, format!("cannot write: {e}")))
        }

        /// The temporary holding `dest`'s new bytes.
        pub fn temporary(&self, dest: &Path) -> Option<&Path> {
            self.files
                .iter()
                .find(|(_, d)| d == dest)
                .map(|(t, _)| t.as_path())
        }

        /// Renames every temporary into place.
        pub fn commit(mut self) -> Result<(), Diagnostics> {
            let files = std::mem::take(&mut self.files);
            self.created.clear();
            let mut errors = Vec::new();
            for (tmp, dest) in files {
                if let Err(e) = std::fs::rename(&tmp, &dest) {
                    let _ = std::fs::remove_file(&tmp);
                    errors.push(Diagnostic::file(&dest, format!("cannot write: {e}")));
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(Diagnostics(errors))
            }
        }
    }

    /// What was not committed is removed, whatever way the command ends.
    impl Drop for Staged {
        fn drop(&mut self) {
            for (tmp, _) in std::mem::take(&mut self.files) {
                let _ = std::fs::remove_file(tmp);
            }
            for d in std::mem::take(&mut self.created).iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// Prints a report in `format` (see [`output`]: a closed pipe ends it
/// quietly, any other write error is exit 2).
fn print_report(
    text: String,
    json: &impl serde::Serialize,
    format: Format,
) -> Result<(), Diagnostics> {
    let out = match format {
        Format::Text => text,
        Format::Json => match serde_json::to_string_pretty(json) {
            Ok(j) => j + "\n",
            Err(e) => {
                return Err(Diagnostic::file(
                    Path::new("standard output"),
                    format!("internal error: the report does not serialize: {e}"),
                )
                .into());
            }
        },
    };
    output::print(&out)
}

/// In JSON, an error that stops `audit` or `diff` is also a JSON object on
/// standard output (a program reading it gets JSON whatever happened); the
/// text goes to standard error as always.
fn json_error(format: Format, result: Result<u8, Diagnostics>) -> Result<u8, Diagnostics> {
    if let (Format::Json, Err(errors)) = (format, &result) {
        let json = schema::JsonError::new(errors);
        // What cannot be printed is reported by `output` as exit 2 anyway.
        let _ = print_report(String::new(), &json, Format::Json);
    }
    result
}

/// What `audit` checks a library against, when not told by its soname.
struct AuditTarget {
    major: Option<u32>,
    lib: Option<String>,
}

/// The library and major of the catalog `image` is checked against.
fn audit_target<'a>(
    catalog: &'a Catalog,
    image: &cudastub_codegen::elf::ElfImage,
    target: &AuditTarget,
) -> Result<(&'a cudastub_codegen::catalog::CatalogEntry, u32), Diagnostic> {
    let soname = image.soname.as_deref().unwrap_or("(none)");
    let by_soname = catalog.by_soname(soname);
    let entry = match (&target.lib, by_soname) {
        (Some(name), _) => catalog
            .library(name)
            .map_err(|e| Diagnostic::file(&catalog.path, e))?,
        (None, Some((entry, _))) => entry,
        (None, None) if catalog.libraries.len() == 1 => &catalog.libraries[0],
        (None, None) => {
            return Err(Diagnostic::file(
                &image.path,
                format!(
                    "its soname {soname} is none of {}'s libraries ({}); pass --lib and --major",
                    catalog.path.display(),
                    catalog.names().join(", ")
                ),
            ));
        }
    };
    let soname_major = by_soname
        .filter(|(e, _)| std::ptr::eq(*e, entry))
        .map(|(_, m)| m);
    let major = match target.major.or(soname_major) {
        Some(n) => n,
        None => entry.manifest.library.major_of_soname(soname).ok_or_else(|| {
            Diagnostic::file(
                &image.path,
                format!(
                    "cannot tell its major: its soname {soname} does not match `{}`; pass --major",
                    entry.manifest.library.soname
                ),
            )
        })?,
    };
    entry
        .manifest
        .major(major)
        .map_err(|e| Diagnostic::file(&entry.path, e))?;
    Ok((entry, major))
}

/// The manifests an audit of `images` needs: of an index, only the
/// libraries `lib` names or the images' sonames belong to (parsing a
/// manifest is most of an audit's time). When that leaves an image without
/// its library, the whole catalog, so that the error names every library.
fn audit_catalog(
    path: &Path,
    images: &[cudastub_codegen::elf::ElfImage],
    lib: Option<&str>,
) -> Result<Catalog, Diagnostics> {
    let sonames: Vec<&str> = images.iter().filter_map(|i| i.soname.as_deref()).collect();
    let catalog = Catalog::load_where(path, |head| {
        lib == Some(head.name.as_str()) || sonames.iter().any(|s| head.serves(s))
    })?;
    let complete = match lib {
        Some(name) => catalog.library(name).is_ok(),
        None => images.iter().all(|i| {
            i.soname
                .as_deref()
                .is_some_and(|s| catalog.by_soname(s).is_some())
        }),
    };
    if complete && !catalog.libraries.is_empty() {
        Ok(catalog)
    } else {
        load(path)
    }
}

/// A symbolic link to nothing, and where it points.
type DanglingLink = (PathBuf, PathBuf);

/// The shared libraries of a directory, sorted (dist/12 holds one per
/// soname), and its files named like one that are symbolic links to
/// nothing, with where they point.
fn libraries_in(dir: &Path) -> Result<(Vec<PathBuf>, Vec<DanglingLink>), Diagnostic> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Diagnostic::file(dir, format!("cannot read: {e}")))?;
    let mut files = Vec::new();
    let mut dangling = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(".so"))
        {
            continue;
        }
        if path.is_file() {
            files.push(path);
        } else if !path.exists()
            && let Ok(target) = std::fs::read_link(&path)
        {
            dangling.push((path, target));
        }
    }
    files.sort();
    dangling.sort();
    if files.is_empty() && dangling.is_empty() {
        return Err(Diagnostic::file(dir, "holds no shared library (*.so*)"));
    }
    Ok((files, dangling))
}

fn audit(
    library: &Path,
    manifest_path: &Path,
    target: AuditTarget,
    reference: Option<&Path>,
    consumers: &[PathBuf],
    format: Format,
    quiet: bool,
) -> Result<u8, Diagnostics> {
    use cudastub_codegen::audit::{self, JsonAudit, Report};
    use cudastub_codegen::elf::ElfImage;
    let directory = library.is_dir();
    let (libraries, dangling) = if directory {
        libraries_in(library)?
    } else {
        (vec![library.to_path_buf()], Vec::new())
    };
    // Read every input first and report every unreadable one at once.
    let mut errors = Vec::new();
    let mut read = |path: &Path| ElfImage::read(path).map_err(|e| errors.push(e)).ok();
    let images: Vec<ElfImage> = libraries.iter().filter_map(|l| read(l)).collect();
    let reference = reference.and_then(&mut read);
    let consumers: Vec<ElfImage> = consumers.iter().filter_map(|c| read(c)).collect();
    if !errors.is_empty() {
        // The index's own errors are reported too, without parsing every
        // manifest to match files that could not be read.
        if let Err(d) = Catalog::load_where(manifest_path, |_| false) {
            errors.extend(d.0);
        }
        return Err(Diagnostics(errors));
    }
    let catalog = audit_catalog(manifest_path, &images, target.lib.as_deref())?;
    if directory && reference.is_some() {
        return Err(
            Diagnostic::file(library, "--reference needs one library, not a directory").into(),
        );
    }
    let mut reports = Vec::new();
    for image in &images {
        // A library every major shares (libcuda.so.1) is checked, in a
        // directory named after a major (dist/12), against that major.
        let dir_major = directory
            .then(|| library.file_name()?.to_str()?.parse::<u32>().ok())
            .flatten();
        let target = AuditTarget {
            major: target.major.or(dir_major.filter(|m| {
                catalog
                    .by_soname(image.soname.as_deref().unwrap_or_default())
                    .is_some_and(|(e, _)| {
                        e.manifest.library.fixed_soname() && e.manifest.majors.contains_key(m)
                    })
            })),
            lib: target.lib.clone(),
        };
        let (entry, major) = audit_target(&catalog, image, &target)?;
        let m = &entry.manifest;
        let mut report = Report::new(image);
        report.check_manifest(image, m, &entry.path, major);
        if let Some(reference) = &reference {
            report.check_reference(image, reference, Some((m, major)));
        }
        let soname = m.library.soname_of(major);
        for consumer in &consumers {
            // In a directory, a consumer is checked against the shims it needs.
            let needs = consumer.needed.contains(&soname)
                || consumer.requirements_from(&soname).next().is_some();
            if !directory || needs {
                report.check_consumer(image, consumer, m, major);
            }
        }
        reports.push(report);
    }
    if directory {
        // What the loader would not find there: a link to nothing, and a
        // library of the manifest a consumer needs that is not there at all
        // (a CUDA 12 program against dist/13 needs libcudart.so.12).
        for (path, target) in dangling {
            reports.push(Report::dangling_link(&path, target, library));
        }
        for consumer in &consumers {
            let mut needed: std::collections::BTreeSet<&str> =
                consumer.needed.iter().map(String::as_str).collect();
            needed.extend(
                consumer
                    .imports
                    .iter()
                    .filter_map(|s| s.required_from.as_deref()),
            );
            for soname in needed {
                let name = library.join(soname);
                let there = name.exists() || name.symlink_metadata().is_ok();
                if !there && catalog.by_soname(soname).is_some() {
                    reports.push(Report::absent_library(library, soname, &consumer.path));
                }
            }
        }
        reports.sort_by(|a, b| a.library.cmp(&b.library));
    }
    let clean = reports.iter().all(Report::is_clean);
    let mut text: String = reports
        .iter()
        .map(|r| {
            if quiet {
                r.to_quiet_text()
            } else {
                r.to_text()
            }
        })
        .collect();
    text.push_str(&audit::summary(&reports));
    text.push('\n');
    let json = if directory {
        JsonAudit::Directory(audit::JsonDirectoryReport::new(library, &reports))
    } else {
        JsonAudit::One(reports[0].to_json())
    };
    print_report(text, &json, format)?;
    Ok(if clean { 0 } else { EXIT_DIFFERENT })
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
    print_report(d.to_text(), &d.to_json(), format)?;
    Ok(if d.is_same() { 0 } else { EXIT_DIFFERENT })
}

#[path = "cli/dist.rs"]
mod dist;

#[path = "cli/devices.rs"]
mod devices;

#[path = "cli/serve.rs"]
mod serve;

/// A table with aligned columns, one line per row.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut text = line(header.to_vec());
    for r in rows {
        text.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    text
}
