//! `cudastub dist --package`: a user's shim crate, outside this repository,
//! built from the standard manifests shipped in cudastub-codegen
//! (`ShimBuild::standard()`) for both majors, laid out as `OUT/<major>/<soname>`
//! and completed with the standard forward-only shims, so that each
//! `OUT/<major>` is a whole CUDA stand-in; and the errors that stop it.

mod shim_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cudastub_codegen::audit;
use cudastub_codegen::catalog::Catalog;
use cudastub_codegen::elf::ElfImage;
use cudastub_tests::{Outcome, c_compiler, cudastub, repo_root, run};
use shim_support::{MAJORS, package_target, run_checked, text};

/// What the user's `cudaRuntimeGetVersion` answers for `major`.
fn fixed_version(major: u32) -> i32 {
    major as i32 * 1000 + 777
}

/// Writes `files` (path relative to `dir`, contents) under `dir`.
fn write_files(dir: &Path, files: &[(&str, String)]) {
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
}

/// A user's runtime shim crate in `dir`, depending on this repository's
/// crates by absolute path: `cudaRuntimeGetVersion` implemented in Rust,
/// everything else forwarded.
fn user_crate(dir: &Path) {
    let root = repo_root();
    let cargo = format!(
        r#"[package]
name = "my-cudart"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
name = "mycudart"
crate-type = ["cdylib"]

[dependencies]
cudastub-runtime = {{ path = "{runtime}" }}

[build-dependencies]
cudastub-codegen = {{ path = "{codegen}", default-features = false }}

# Its own workspace, wherever the temporary directory is.
[workspace]

[profile.release]
debug = false
"#,
        runtime = root.join("runtime").display(),
        codegen = root.join("codegen").display(),
    );
    let build = r#"fn main() {
    cudastub_codegen::emit::shim::ShimBuild::standard()
        .library("cudart")
        .default_major(12)
        .implement(["cudaRuntimeGetVersion"])
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
}
"#;
    let lib = r#"include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs"));
mod backend;
"#;
    let backend = r#"use std::ffi::c_int;

use crate::types::{self, cudaError_t};

/// A fixed answer per major: 12777, 13777.
pub unsafe extern "C" fn cuda_runtime_get_version(version: *mut c_int) -> cudaError_t {
    if version.is_null() {
        return types::cudaErrorInvalidValue;
    }
    unsafe { *version = crate::MAJOR as c_int * 1000 + 777 };
    types::cudaSuccess
}
"#;
    write_files(
        dir,
        &[
            ("Cargo.toml", cargo),
            ("build.rs", build.into()),
            ("src/lib.rs", lib.into()),
            ("src/backend.rs", backend.into()),
        ],
    );
    // The versions the example's builds in the shared target directory
    // compiled: nothing is resolved anew, nothing fetched.
    std::fs::copy(
        repo_root().join("examples/virtual-gpu/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .expect("copy the example's Cargo.lock");
}

/// `cudastub dist ARGS…` with cargo's target directory `target`.
fn dist(target: &Path, args: &[&std::ffi::OsStr]) -> Outcome {
    run(Command::new(cudastub())
        .env("CARGO_TARGET_DIR", target)
        .arg("dist")
        .args(args))
}

/// The files of `dir`, by name.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Calls `cudaRuntimeGetVersion` of `lib` through `dlopen` and returns what it
/// printed.
fn runtime_version(lib: &Path, scratch: &Path) -> String {
    let source = scratch.join("version.c");
    std::fs::write(
        &source,
        r#"#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    int (*get)(int *) = (int (*)(int *))dlsym(h, "cudaRuntimeGetVersion");
    if (!get) { fprintf(stderr, "%s\n", dlerror()); return 3; }
    int v = -1;
    int status = get(&v);
    printf("status %d version %d\n", status, v);
    return 0;
}
"#,
    )
    .expect("write version.c");
    let exe = scratch.join("version");
    let mut cc = Command::new(c_compiler());
    cc.arg("-o").arg(&exe).arg(&source).arg("-ldl");
    run_checked(cc, "compiling version.c");
    let mut cmd = Command::new(&exe);
    cmd.arg(lib)
        .env_remove("CUDASTUB_REAL_CUDART")
        .env_remove("CUDA_HOME");
    text(&run_checked(cmd, "calling cudaRuntimeGetVersion").stdout)
}

#[test]
fn a_crate_outside_the_repository_becomes_a_whole_cuda_stand_in_per_major() {
    let work = tempfile::tempdir().expect("a temporary directory");
    let spec = work.path().join("my-cudart");
    user_crate(&spec);
    let out = work.path().join("out");
    let outcome = dist(
        &package_target(),
        &[
            "--package".as_ref(),
            spec.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    outcome.expect_success();
    let catalog = Catalog::standard().expect("the standard manifests load");
    for major in MAJORS {
        let dir = out.join(major.to_string());
        let mut sonames: Vec<String> = catalog
            .views()
            .iter()
            .filter(|v| v.major == major)
            .map(|v| v.soname.clone())
            .collect();
        sonames.sort();
        assert_eq!(
            sonames,
            [
                "libcublas.so.N",
                "libcublasLt.so.N",
                "libcuda.so.1",
                "libcudart.so.N",
                "libnvidia-ml.so.1",
            ]
            .map(|s| s.replace('N', &major.to_string())),
            "the standard libraries of major {major}"
        );
        assert_eq!(names(&dir), sonames, "{}: {outcome}", dir.display());
        for view in catalog.views().iter().filter(|v| v.major == major) {
            let file = dir.join(&view.soname);
            let image = ElfImage::read(&file)
                .unwrap_or_else(|e| panic!("{}: {}", file.display(), e.message));
            let report = audit::against_manifest(&image, view.manifest, major);
            assert!(
                report.is_clean(),
                "{} does not match the standard manifest of {} major {major}: {:?}",
                file.display(),
                view.library,
                report.differences
            );
            let from = if view.library == "cudart" {
                "crate my-cudart"
            } else {
                "standard"
            };
            let row = outcome
                .stdout
                .lines()
                .find(|l| l.contains(&format!(" {} ", file.display())))
                .unwrap_or_else(|| panic!("no row for {}: {outcome}", file.display()));
            assert!(
                row.starts_with(&format!("{major} ")) && row.ends_with(from),
                "{} should come from {from}: {row}",
                file.display()
            );
        }
        // The runtime is the user's, built for this major: its own answer,
        // with no real runtime anywhere.
        let answer = runtime_version(&dir.join(format!("libcudart.so.{major}")), work.path());
        assert_eq!(
            answer,
            format!("status 0 version {}\n", fixed_version(major)),
            "the user's cudaRuntimeGetVersion of major {major}"
        );
    }
    // The majors were built apart, so neither overwrote the other.
    for major in MAJORS {
        assert!(
            package_target()
                .join(format!("cudastub-dist/{major}/release/libmycudart.so"))
                .is_file(),
            "major {major}'s build is kept in its own target directory"
        );
    }
}

#[test]
fn a_directory_without_cargo_toml_is_an_error_naming_it() {
    let work = tempfile::tempdir().expect("a temporary directory");
    let spec = work.path().join("not-a-crate");
    std::fs::create_dir(&spec).expect("mkdir");
    let out = work.path().join("out");
    let outcome = dist(
        work.path(),
        &[
            "--package".as_ref(),
            spec.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    outcome.expect_code(2);
    assert!(
        outcome
            .stderr
            .contains(&format!("{}: error: no Cargo.toml", spec.display())),
        "{outcome}"
    );
    assert!(!out.exists(), "nothing is laid out: {outcome}");
}

#[test]
fn a_cdylib_with_a_soname_no_standard_library_has_is_an_error_naming_both() {
    let work = tempfile::tempdir().expect("a temporary directory");
    let spec = work.path().join("odd");
    write_files(
        &spec,
        &[
            (
                "Cargo.toml",
                r#"[package]
name = "odd"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[workspace]
"#
                .into(),
            ),
            (
                "build.rs",
                r#"fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libodd.so.7");
}
"#
                .into(),
            ),
            (
                "src/lib.rs",
                "#[unsafe(no_mangle)]\npub extern \"C\" fn odd() -> i32 {\n    7\n}\n".into(),
            ),
        ],
    );
    let out = work.path().join("out");
    let target = work.path().join("target");
    let outcome = dist(
        &target,
        &[
            "--package".as_ref(),
            spec.as_os_str(),
            "--major".as_ref(),
            "12".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    outcome.expect_code(2);
    let built: PathBuf = target.join("cudastub-dist/12/release/libodd.so");
    assert!(
        outcome.stderr.contains(&format!(
            "{}: error: soname `libodd.so.7` (package `odd`, major 12) is no standard library's",
            built.display()
        )),
        "{outcome}"
    );
    assert!(!out.exists(), "nothing is laid out: {outcome}");
}
