//! `cudastub dist`: build shims with cargo, lay them out as
//! `DIR/<major>/<soname>` and audit each against its manifest.
//!
//! Two front ends share the lay-out: [`standard`] builds the standard shim
//! crates of this repository (`shim/*`) in one cargo run; [`package`]
//! builds a user's shim crate once per major and completes each directory
//! with the standard forward-only shims of the libraries it does not build,
//! generated into a scratch workspace, since outside this repository
//! `shim/*` does not exist.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use cudastub_codegen::audit;
use cudastub_codegen::catalog::Catalog;
use cudastub_codegen::diag::{Diagnostic, Diagnostics};
use cudastub_codegen::elf::ElfImage;
use cudastub_codegen::emit::crates::{self, CrateSource};
use cudastub_codegen::emit::shim::MAJOR_VARIABLE;
use cudastub_codegen::emit::shim::plan::did_you_mean;
use cudastub_codegen::view::LibraryMajor;

use super::{EXIT_DIFFERENT, load, output, staging, table, warn};

/// One library to lay out.
struct Shim<'a> {
    /// Its library and major.
    view: LibraryMajor<'a>,
    /// `DIR/<major>/<soname>`.
    dest: PathBuf,
    /// The file cargo built.
    built: PathBuf,
    /// Who built it: `standard`, or `crate NAME`.
    origin: String,
}

/// A cdylib cargo built.
struct Cdylib {
    /// Its package's name.
    package: String,
    /// The `.so` file.
    file: PathBuf,
}

/// `cudastub dist [--manifest M] [--lib L]... [--major N]... [--out DIR]`:
/// the standard shim crates next to the manifest, in one cargo run.
pub fn standard(
    manifest_path: &Path,
    out: &Path,
    libs: &[String],
    majors: &[u32],
    remote: bool,
) -> Result<u8, Diagnostics> {
    let catalog = load(manifest_path)?;
    for name in libs {
        catalog
            .library(name)
            .map_err(|e| Diagnostic::file(manifest_path, e))?;
    }
    let views: Vec<_> = catalog
        .views()
        .into_iter()
        .filter(|v| libs.is_empty() || libs.iter().any(|l| l == v.library))
        .filter(|v| majors.is_empty() || majors.contains(&v.major))
        .collect();
    // A library with no status has no remote client (see
    // `LibraryMajor::has_remote_client`): left out, said once per library.
    let (views, left_out): (Vec<_>, Vec<_>) = views
        .into_iter()
        .partition(|v| !remote || v.has_remote_client());
    let mut skipped: Vec<String> = left_out.iter().map(|v| v.soname.clone()).collect();
    skipped.dedup();
    if !skipped.is_empty() {
        warn(&format!(
            "cudastub: no remote client for {} (no status to fail a call with): left out",
            skipped.join(", ")
        ));
    }
    if views.is_empty() {
        return Err(Diagnostic::file(manifest_path, "no library has the majors asked for").into());
    }
    let workspace = manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dests = destinations(out, &views)?;
    let flavor = if remote {
        Flavor::Remote
    } else {
        Flavor::Forward
    };
    let (built, client) = build_standard(workspace, &views, None, flavor)?;
    // A remote client directory also holds the process's one client library.
    let mut extras = Vec::new();
    if let Some(client) = client {
        let dirs: std::collections::BTreeSet<PathBuf> = views
            .iter()
            .map(|v| out.join(v.major.to_string()))
            .collect();
        for dir in dirs {
            let dest = dir.join(cudastub_runtime_client_file());
            staging::check_destination(&dest).map_err(Diagnostics::from)?;
            extras.push((dest, client.clone()));
        }
    }
    let laid: Vec<PathBuf> = dests
        .iter()
        .chain(extras.iter().map(|(d, _)| d))
        .cloned()
        .collect();
    let shims = views
        .into_iter()
        .zip(dests)
        .zip(built)
        .map(|((view, dest), built)| Shim {
            view,
            dest,
            built,
            origin: "standard".into(),
        })
        .collect();
    let code = lay_out(shims, extras, false)?;
    if code == 0 && libs.is_empty() {
        warn_leftovers(&laid);
    }
    Ok(code)
}

/// One warning line for each library file in a directory just laid out
/// that is none of its shims: left by an earlier build whose manifests gave
/// it (a library that has since dropped that major). It is not removed (the
/// directory may hold the user's own files), but a stand-in directory should
/// not serve it unnoticed.
fn warn_leftovers(laid: &[PathBuf]) {
    let dirs: std::collections::BTreeSet<&Path> = laid.iter().filter_map(|p| p.parent()).collect();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut left: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                name.starts_with("lib") && name.contains(".so") && !laid.contains(p)
            })
            .collect();
        left.sort();
        for p in left {
            warn(&format!(
                "{}: not a shim of the manifests (left by an earlier build?); remove it so that the directory serves only these",
                p.display()
            ));
        }
    }
}

/// The client library's file name in a remote client directory (what
/// `cudastub_runtime::remote::CLIENT_FILE` loads).
fn cudastub_runtime_client_file() -> &'static str {
    "libcudastub-remote.so"
}

/// Which shim crates a build uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// The forward-only shims (`shim/<library>-<major>`).
    Forward,
    /// The remote GPU's client shims (`shim/<library>-<major>-remote`), and
    /// the client library.
    Remote,
}

/// `cudastub dist --package SPEC [--lib L]... [--major N]... [--out DIR]`.
pub fn package(
    spec: &Path,
    out: &Path,
    libs: &[String],
    majors: &[u32],
) -> Result<u8, Diagnostics> {
    // A directory that is not a crate (a plain `vgpu/` next to the package
    // `vgpu`) does not hide the package of that name.
    let is_crate = spec.join("Cargo.toml").is_file();
    let manifest = if is_crate {
        spec.join("Cargo.toml")
    } else if let Some(name) = package_name_of(spec)
        && (!spec.exists() || spec.is_dir())
    {
        match member_manifest(name) {
            Ok(found) => found,
            // A directory that is no crate: its error says so.
            Err(_) if spec.is_dir() => spec.join("Cargo.toml"),
            Err(e) => return Err(e.into()),
        }
    } else if spec.is_dir() {
        spec.join("Cargo.toml")
    } else {
        spec.to_path_buf()
    };
    if !manifest.is_file() || manifest.file_name() != Some(OsStr::new("Cargo.toml")) {
        return Err(Diagnostic::file(
            spec,
            "no Cargo.toml: --package takes the directory of a shim crate or of a workspace of them",
        )
        .into());
    }
    let dir = manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let catalog = Catalog::standard()?;
    let known: Vec<u32> = catalog
        .views()
        .iter()
        .map(|v| v.major)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if let Some(m) = majors.iter().find(|m| !known.contains(m)) {
        return Err(Diagnostic::file(
            &catalog.path,
            format!(
                "the standard manifests have no major {m} (they have {})",
                known
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into());
    }
    for name in libs {
        catalog
            .library(name)
            .map_err(|e| Diagnostic::file(spec, format!("--lib: {e}")))?;
    }
    let views: Vec<_> = catalog
        .views()
        .into_iter()
        .filter(|v| majors.is_empty() || majors.contains(&v.major))
        .collect();
    let dests = destinations(out, &views)?;
    let metadata = Metadata::read(&manifest)?;
    let scratch = metadata
        .target_directory
        .join("cudastub-dist")
        .join(workspace_key(&metadata.workspace_root));

    // The crate, once per major, each into its own target directory: the
    // majors never overwrite each other and every rebuild is incremental.
    let mut from_crate: BTreeMap<usize, (PathBuf, String)> = BTreeMap::new();
    // The file names of every cdylib the crate built.
    let mut user_files: Vec<std::ffi::OsString> = Vec::new();
    let built_majors: Vec<u32> = views
        .iter()
        .map(|v| v.major)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for &major in &built_majors {
        let mut args = vec!["build".to_string(), "--release".into()];
        if metadata.workspace_root == canonical(dir) {
            args.push("--workspace".into());
        }
        let target = scratch.join(major.to_string());
        let env = [
            (MAJOR_VARIABLE, major.to_string().into()),
            ("CARGO_TARGET_DIR", target.into_os_string()),
        ];
        let what = format!(
            "{} for major {major} ({MAJOR_VARIABLE}={major})",
            canonical(dir).file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            )
        );
        for lib in cargo_build(&what, dir, &args, &env)? {
            user_files.extend(lib.file.file_name().map(ToOwned::to_owned));
            let image =
                ElfImage::read(&lib.file).map_err(|e| Diagnostic::file(&lib.file, e.message))?;
            let Some(soname) = image.soname else {
                return Err(Diagnostic::file(
                    &lib.file,
                    format!(
                        "package `{}` built a library with no soname (the shim's build.rs sets it)",
                        lib.package
                    ),
                )
                .into());
            };
            let Some(i) = views
                .iter()
                .position(|v| v.major == major && v.soname == soname)
            else {
                let standard: Vec<&str> = views
                    .iter()
                    .filter(|v| v.major == major)
                    .map(|v| v.soname.as_str())
                    .collect();
                return Err(Diagnostic::file(
                    &lib.file,
                    format!(
                        "soname `{soname}` (package `{}`, major {major}) is no standard library's; they are {}",
                        lib.package,
                        standard.join(", ")
                    ),
                )
                .into());
            };
            if let Some((other, _)) = from_crate.get(&i) {
                return Err(Diagnostic::file(
                    &lib.file,
                    format!(
                        "soname `{soname}` is built twice for major {major} (also {})",
                        other.display()
                    ),
                )
                .into());
            }
            from_crate.insert(i, (lib.file, format!("crate {}", lib.package)));
        }
    }

    // The rest: the standard forward-only shims, generated into a scratch
    // workspace with the crate's own cudastub-runtime and cudastub-codegen,
    // built in one cargo run in the first major's target directory, whose
    // dependencies the crate's build has already compiled.
    let missing: Vec<LibraryMajor> = views
        .iter()
        .enumerate()
        .filter(|(i, v)| {
            !from_crate.contains_key(i) && (libs.is_empty() || libs.iter().any(|l| l == v.library))
        })
        .map(|(_, v)| v.clone())
        .collect();
    let mut forward = Vec::new();
    if !missing.is_empty() {
        let workspace = scratch.join("forward");
        write_forward_workspace(&workspace, &catalog, &metadata)?;
        // A cdylib's file has no hash in its name: a crate whose library is
        // named like a standard shim's (`cudart_12`) would be overwritten by
        // it in a shared target directory, and found fresh by cargo after.
        // The standard shims then get a target directory of their own.
        let standard_files: Vec<String> = missing
            .iter()
            .map(|v| format!("lib{}.so", crates::target_name(v.library, v.major)))
            .collect();
        let clash = user_files.iter().any(|f| {
            standard_files
                .iter()
                .any(|s| f.as_os_str() == OsStr::new(s))
        });
        let target = if clash {
            workspace.join("target")
        } else {
            scratch.join(built_majors[0].to_string())
        };
        forward = build_standard(&workspace, &missing, Some(&target), Flavor::Forward)?.0;
    }
    let mut forward = forward.into_iter();
    let mut shims = Vec::new();
    for (i, (view, dest)) in views.into_iter().zip(dests).enumerate() {
        let (built, origin) = match from_crate.remove(&i) {
            Some(from) => from,
            // A standard library `--lib` leaves out.
            None if !libs.is_empty() && !libs.iter().any(|l| l == view.library) => continue,
            None => match forward.next() {
                Some(built) => (built, "standard".into()),
                None => return Err(Diagnostic::file(&dest, "internal error: not built").into()),
            },
        };
        shims.push(Shim {
            view,
            dest,
            built,
            origin,
        });
    }
    lay_out(shims, Vec::new(), true)
}

/// `DIR/<major>/<soname>` of each view, every one checked writable before
/// anything is built.
fn destinations(out: &Path, views: &[LibraryMajor]) -> Result<Vec<PathBuf>, Diagnostics> {
    let dests: Vec<PathBuf> = views
        .iter()
        .map(|v| out.join(v.major.to_string()).join(&v.soname))
        .collect();
    let errors: Vec<Diagnostic> = dests
        .iter()
        .filter_map(|d| staging::check_destination(d).err())
        .collect();
    if errors.is_empty() {
        Ok(dests)
    } else {
        Err(Diagnostics(errors))
    }
}

/// Builds the standard shim crates of `views` (forward-only, or the remote
/// GPU's clients with the client library) in `workspace` in one cargo run
/// (cargo builds them in parallel); returns each one's file, in order, and
/// the client library's.
fn build_standard(
    workspace: &Path,
    views: &[LibraryMajor],
    target: Option<&Path>,
    flavor: Flavor,
) -> Result<(Vec<PathBuf>, Option<PathBuf>), Diagnostic> {
    let packages: Vec<String> = views
        .iter()
        .map(|v| match flavor {
            Flavor::Forward => crates::package_name(v.library, v.major),
            Flavor::Remote => crates::remote_package_name(v.library, v.major),
        })
        .collect();
    let client = (flavor == Flavor::Remote).then_some(CLIENT_PACKAGE);
    let mut args = vec!["build".to_string(), "--release".into()];
    for p in packages.iter().map(String::as_str).chain(client) {
        args.extend(["-p".into(), p.to_string()]);
    }
    let env: Vec<(&str, std::ffi::OsString)> = target
        .map(|t| ("CARGO_TARGET_DIR", t.as_os_str().to_owned()))
        .into_iter()
        .collect();
    let what = format!(
        "{} standard {} shim{}: {}",
        views.len(),
        match flavor {
            Flavor::Forward => "forward-only",
            Flavor::Remote => "remote GPU client",
        },
        if views.len() == 1 { "" } else { "s" },
        describe(views)
    );
    let built = cargo_build(&what, workspace, &args, &env)?;
    let file_of = |p: &str| {
        built
            .iter()
            .find(|b| b.package == p)
            .map(|b| b.file.clone())
            .ok_or_else(|| Diagnostic::file(workspace, format!("cargo built no library for {p}")))
    };
    let files = packages
        .iter()
        .map(|p| file_of(p))
        .collect::<Result<Vec<_>, _>>()?;
    let client = client.map(file_of).transpose()?;
    Ok((files, client))
}

/// The client library's package (`remote-client/`).
const CLIENT_PACKAGE: &str = "cudastub-remote-client";

/// The scratch directory of one workspace under `<target>/cudastub-dist`:
/// its directory name and a hash of its canonical path. Two workspaces that
/// share a target directory (`CARGO_TARGET_DIR`) and build a library of the
/// same name must not share one: a cdylib has no hash in its file name, so
/// the second build overwrites the first's `release/libcudart.so`, and when
/// the first crate is built again cargo finds it fresh and reports the
/// other crate's file as its own.
fn workspace_key(root: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    // FNV-1a, 64 bits: stable across Rust versions, unlike `DefaultHasher`.
    let hash = root
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{name}-{hash:016x}")
}

/// `cublas 12, cublasLt 12, cudart 13`: the (library, major) pairs of a build.
fn describe(views: &[LibraryMajor]) -> String {
    let pairs: Vec<String> = views
        .iter()
        .map(|v| format!("{} {}", v.library, v.major))
        .collect();
    pairs.join(", ")
}

/// Runs `cargo ARGS --message-format=json-render-diagnostics` in `dir`
/// (its diagnostics go to our stderr) and returns every cdylib it built.
/// `what` names what is built: cargo's own `Finished … in 56s` does not, and
/// `dist --package` runs cargo once per major and once more for the
/// standard shims, so a long build says which part it is in and how long
/// each took.
fn cargo_build(
    what: &str,
    dir: &Path,
    args: &[String],
    env: &[(&str, std::ffi::OsString)],
) -> Result<Vec<Cdylib>, Diagnostic> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    warn(&format!("cudastub: building {what}"));
    let started = std::time::Instant::now();
    let output = std::process::Command::new(&cargo)
        .current_dir(dir)
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Diagnostic::file(dir, format!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(Diagnostic::file(
            dir,
            format!("`cargo {}` failed (building {what})", args.join(" ")),
        ));
    }
    warn(&format!(
        "cudastub: built {what} in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let mut built = Vec::new();
    for v in String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .filter(|v| {
            v["target"]["crate_types"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "cdylib"))
        })
    {
        let package_id = v["package_id"].as_str().unwrap_or_default().to_string();
        let Some(file) = v["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .find(|f| f.ends_with(".so"))
        else {
            continue;
        };
        built.push(Cdylib {
            package: package_name(&package_id),
            file: PathBuf::from(file),
        });
    }
    Ok(built)
}

/// The package name of a cargo package id: `path+file:///src/x#name@0.1.0`,
/// `registry+https://…#name@0.1.0`, or the old `name 0.1.0 (source)`.
fn package_name(id: &str) -> String {
    match id.rsplit_once('#') {
        Some((path, rest)) => match rest.split_once('@') {
            Some((name, _)) => name.to_string(),
            // `path+file:///src/name#0.1.0`: the name is the directory's.
            None => path.rsplit('/').next().unwrap_or(path).to_string(),
        },
        None => id.split(' ').next().unwrap_or(id).to_string(),
    }
}

/// `spec` as a package name, as cargo's `-p` takes one: a single path
/// component of letters, digits, `-` and `_`.
fn package_name_of(spec: &Path) -> Option<&str> {
    let name = spec.to_str()?;
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(name)
}

/// The Cargo.toml of the package `name` of the workspace the current
/// directory is in, as `cargo build -p NAME` would find it there.
fn member_manifest(name: &str) -> Result<PathBuf, Diagnostic> {
    let here = std::env::current_dir()
        .map_err(|e| Diagnostic::file(Path::new(name), format!("no current directory: {e}")))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(&cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| Diagnostic::file(&here, format!("cannot run cargo: {e}")))?;
    let not_found = |why: String, hint: String| {
        Diagnostic::file(
            Path::new(name),
            format!(
                "no such directory, and {why} (--package takes the directory of a shim \
                 crate or workspace, or the name of a package of the current workspace){hint}"
            ),
        )
    };
    if !output.status.success() {
        // Cargo's own first error line says why (no Cargo.toml above the
        // directory, or a broken one).
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why = stderr
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or("`cargo metadata` failed");
        return Err(not_found(
            format!(
                "no package of that name can be looked for from {}: {why}",
                here.display()
            ),
            String::new(),
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| Diagnostic::file(&here, format!("`cargo metadata` printed no JSON: {e}")))?;
    let packages = v["packages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut members: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    members.sort_unstable();
    if let Some(found) = packages
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["manifest_path"].as_str())
    {
        return Ok(PathBuf::from(found));
    }
    Err(not_found(
        format!(
            "the workspace at {} has no package `{name}`",
            v["workspace_root"].as_str().unwrap_or("?"),
        ),
        did_you_mean(name, members),
    ))
}

/// What `cargo metadata` says of the user's crate.
struct Metadata {
    /// Its workspace's root directory.
    workspace_root: PathBuf,
    /// Its workspace's target directory (`CARGO_TARGET_DIR` if set).
    target_directory: PathBuf,
    /// The `cudastub-runtime` it resolves, if any.
    runtime: Option<CrateSource>,
    /// The `cudastub-codegen` it resolves, if any.
    codegen: Option<CrateSource>,
}

impl Metadata {
    fn read(manifest: &Path) -> Result<Metadata, Diagnostic> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = std::process::Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(manifest)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| Diagnostic::file(manifest, format!("cannot run cargo: {e}")))?;
        if !output.status.success() {
            return Err(Diagnostic::file(manifest, "`cargo metadata` failed"));
        }
        let v: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
            Diagnostic::file(manifest, format!("`cargo metadata` printed no JSON: {e}"))
        })?;
        let path = |key: &str| {
            v[key].as_str().map(PathBuf::from).ok_or_else(|| {
                Diagnostic::file(manifest, format!("`cargo metadata` gave no {key}"))
            })
        };
        let source = |name: &str| {
            let p = v["packages"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == name)?;
            Some(match p["source"].as_str() {
                None => CrateSource::Path(
                    Path::new(p["manifest_path"].as_str()?)
                        .parent()?
                        .to_path_buf(),
                ),
                Some(s) if s.starts_with("git+") => {
                    let (url, rev) = s["git+".len()..].split_once('#')?;
                    CrateSource::Git {
                        url: url.split('?').next().unwrap_or(url).to_string(),
                        rev: rev.to_string(),
                    }
                }
                Some(_) => CrateSource::Version(p["version"].as_str()?.to_string()),
            })
        };
        Ok(Metadata {
            workspace_root: canonical(&path("workspace_root")?),
            target_directory: path("target_directory")?,
            runtime: source("cudastub-runtime"),
            codegen: source("cudastub-codegen"),
        })
    }
}

/// `path` made absolute and free of links, where it can be.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Writes the scratch workspace of every standard shim crate into
/// `workspace` (each file only when it changed, so cargo rebuilds nothing
/// it need not), with the user's lock file, so that its dependencies
/// resolve to the versions the user's build compiled.
fn write_forward_workspace(
    workspace: &Path,
    catalog: &Catalog,
    metadata: &Metadata,
) -> Result<(), Diagnostic> {
    // A crate that depends on neither is built with this tool's own release.
    let own = || CrateSource::Version(env!("CARGO_PKG_VERSION").to_string());
    let runtime = metadata.runtime.clone().unwrap_or_else(own);
    let codegen = metadata.codegen.clone().unwrap_or_else(own);
    let mut files: Vec<(PathBuf, Vec<u8>)> =
        crates::forward_workspace(&catalog.views(), &runtime, &codegen)
            .into_iter()
            .map(|f| (workspace.join(f.path), f.contents.into_bytes()))
            .collect();
    if let Ok(lock) = std::fs::read(metadata.workspace_root.join("Cargo.lock")) {
        files.push((workspace.join("Cargo.lock"), lock));
    }
    for (path, bytes) in files {
        if std::fs::read(&path).is_ok_and(|old| old == bytes) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Diagnostic::file(parent, format!("cannot create: {e}")))?;
        }
        std::fs::write(&path, bytes)
            .map_err(|e| Diagnostic::file(&path, format!("cannot write: {e}")))?;
    }
    Ok(())
}

/// Copies every built library to a temporary next to its destination,
/// audits each there against its manifest from its ELF file, prints the
/// table, then renames them all into place: nothing is laid out unless
/// every library could be and every audit is clean (exit 1 when one
/// differs, with nothing written).
fn lay_out(
    shims: Vec<Shim>,
    extras: Vec<(PathBuf, PathBuf)>,
    show_origin: bool,
) -> Result<u8, Diagnostics> {
    let mut contents = Vec::new();
    let files = shims
        .iter()
        .map(|s| (&s.dest, &s.built))
        .chain(extras.iter().map(|(dest, built)| (dest, built)));
    for (dest, built) in files {
        let bytes = std::fs::read(built)
            .map_err(|e| Diagnostic::file(built, format!("cannot read: {e}")))?;
        contents.push((dest.clone(), bytes));
    }
    let staged = staging::Staged::new(contents)?;
    let mut rows = Vec::new();
    let mut failed = false;
    let mut problems = String::new();
    for shim in &shims {
        let dest = &shim.dest;
        let image = match staged.temporary(dest).map(ElfImage::read) {
            Some(Ok(image)) => image,
            Some(Err(e)) => return Err(Diagnostic::file(dest, e.message).into()),
            None => return Err(Diagnostic::file(dest, "internal error: not staged").into()),
        };
        let report = audit::against_manifest(&image, shim.view.manifest, shim.view.major);
        for d in &report.differences {
            problems.push_str(&format!("{}: {d}\n", dest.display()));
        }
        failed |= !report.is_clean();
        let mut row = vec![
            shim.view.major.to_string(),
            shim.view.library.to_string(),
            dest.display().to_string(),
            image.soname.clone().unwrap_or_else(|| "(none)".into()),
            image.version_nodes().join(","),
            report.exports.to_string(),
            if report.is_clean() {
                "yes".into()
            } else {
                format!("NO ({} differences)", report.differences.len())
            },
        ];
        if show_origin {
            row.push(shim.origin.clone());
        }
        rows.push(row);
    }
    for (dest, _) in &extras {
        let image = match staged.temporary(dest).map(ElfImage::read) {
            Some(Ok(image)) => image,
            Some(Err(e)) => return Err(Diagnostic::file(dest, e.message).into()),
            None => return Err(Diagnostic::file(dest, "internal error: not staged").into()),
        };
        let major = dest
            .parent()
            .and_then(Path::file_name)
            .map(|m| m.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut row = vec![
            major,
            "(remote client)".into(),
            dest.display().to_string(),
            image.soname.clone().unwrap_or_else(|| "(none)".into()),
            image.version_nodes().join(","),
            image.exports.len().to_string(),
            "(not a CUDA library)".into(),
        ];
        if show_origin {
            row.push("standard".into());
        }
        rows.push(row);
    }
    if !problems.is_empty() {
        warn(problems.trim_end());
    }
    rows.sort();
    let mut header = vec![
        "major",
        "library",
        "file",
        "soname",
        "version node",
        "exports",
        "matches manifest",
    ];
    if show_origin {
        header.push("from");
    }
    // Printed before the rename: an unwritable stdout leaves nothing laid out.
    output::print(&table(&header, &rows))?;
    if failed {
        // A library that failed its audit is never laid out, nor the rest:
        // the directory would be a stand-in with a wrong library in it.
        // (The staged temporaries are removed when `staged` is dropped.)
        warn("nothing was laid out: a library differs from its manifest");
        return Ok(EXIT_DIFFERENT);
    }
    staged.commit()?;
    Ok(0)
}
