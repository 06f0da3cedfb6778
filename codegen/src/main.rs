//! `cudastub`: import a real library into the manifest, generate version
//! scripts from it, and check what was built.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cudastub_codegen::diag::{Diagnostic, Diagnostics};
use cudastub_codegen::emit::versionscript;
use cudastub_codegen::manifest::{self, Manifest};

/// Exit code for differences found (`generate --check`).
const EXIT_DIFFERENT: u8 = 1;
/// Exit code for unreadable or invalid input.
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(name = "cudastub", version, about = "Versioned CUDA runtime shims from one manifest")]
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
        /// The library's release (12.9.79); read from the file name when it is libcudart.so.12.9.79.
        #[arg(long)]
        release: Option<String>,
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
    /// Validate the manifest and print what it holds.
    Check {
        /// The manifest.
        #[arg(long, default_value = "cuda-api.yaml")]
        manifest: PathBuf,
    },
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
        Command::Import { manifest: path, library, headers, release } => import(&path, library, headers, release),
        Command::Generate { manifest: path, out, check } => generate(&load(&path)?, &out, check),
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

#[cfg(feature = "import")]
fn import(path: &Path, library: PathBuf, include_dirs: Vec<PathBuf>, release: Option<String>) -> Result<u8, Diagnostics> {
    use cudastub_codegen::import::{ImportRequest, import};
    let m = load(path)?;
    let (updated, summary) = import(&m, &ImportRequest { library, include_dirs, release })?;
    let text = manifest::to_yaml(&updated);
    // What we write must read back as what we meant: never leave a manifest
    // that the next command rejects.
    let reread = manifest::parse(path, &text)?;
    if reread != updated {
        return Err(Diagnostic::file(path, "internal error: the written manifest does not read back the same").into());
    }
    manifest::write_atomic(path, &text).map_err(|e| Diagnostic::file(path, format!("cannot write: {e}")))?;
    print!("{summary}");
    Ok(0)
}

#[cfg(not(feature = "import"))]
fn import(path: &Path, _: PathBuf, _: Vec<PathBuf>, _: Option<String>) -> Result<u8, Diagnostics> {
    Err(Diagnostic::file(path, "this cudastub was built without the `import` feature").into())
}

fn generate(m: &Manifest, out: &Path, check: bool) -> Result<u8, Diagnostics> {
    let files = versionscript::files(m);
    if check {
        let stale: Vec<String> = files
            .iter()
            .map(|f| out.join(&f.path))
            .zip(&files)
            .filter(|(p, f)| std::fs::read_to_string(p).ok().as_deref() != Some(f.contents.as_str()))
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
    std::fs::create_dir_all(out).map_err(|e| Diagnostic::file(out, format!("cannot create: {e}")))?;
    for f in &files {
        let path = out.join(&f.path);
        manifest::write_atomic(&path, &f.contents).map_err(|e| Diagnostic::file(&path, format!("cannot write: {e}")))?;
        println!("wrote {}", path.display());
    }
    Ok(0)
}
