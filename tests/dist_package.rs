//! `cudastub dist --package`: a user's shim crate in a workspace of its own
//! (the README's tutorial, "a virtual GPU from an empty crate", taken from
//! the README itself, written under target/test-shim, which our workspace
//! excludes, and depending on this checkout by path as the README's does), built from the standard manifests shipped in
//! cudastub-codegen (`ShimBuild::standard()`) for both majors, laid out as `OUT/<major>/<soname>`
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

/// Writes `files` (path relative to `dir`, contents) under `dir`.
fn write_files(dir: &Path, files: &[(&str, String)]) {
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
}

/// The README's tutorial crate ("a virtual GPU from an empty crate"): each
/// fenced block after a `<!-- tutorial: PATH -->` line is the file PATH.
fn tutorial_files() -> Vec<(String, String)> {
    let readme = repo_root().join("README.md");
    let text = std::fs::read_to_string(&readme).expect("read README.md");
    let mut files = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .strip_prefix("<!-- tutorial: ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "README: `{path}` is not followed by a code block"
        );
        let mut body = String::new();
        for l in lines.by_ref().take_while(|l| *l != "```") {
            body.push_str(l);
            body.push('\n');
        }
        files.push((path.to_string(), body));
    }
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["Cargo.toml", "build.rs", "src/lib.rs", "src/backend.rs"],
        "the README tutorial's files"
    );
    files
}

/// The README tutorial's crate in `dir`, verbatim but for where the
/// cudastub checkout is (`../cudastub` there, this repository here).
fn user_crate(dir: &Path) {
    let root = format!("{}/", repo_root().display());
    let files: Vec<(String, String)> = tutorial_files()
        .into_iter()
        .map(|(path, body)| (path, body.replace("\"../cudastub/", &format!("\"{root}"))))
        .collect();
    assert!(
        files[0].1.contains(&format!("path = \"{root}runtime\"")),
        "the tutorial's Cargo.toml depends on the checkout's runtime/:\n{}",
        files[0].1
    );
    let files: Vec<(&str, String)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    write_files(dir, &files);
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

/// tests/c/tutorial.c, built with the headers of `major`, run on `lib`.
fn tutorial_answers(major: u32, lib: &Path, scratch: &Path) -> String {
    let exe = scratch.join(format!("tutorial{major}"));
    let mut cc = Command::new(c_compiler());
    cc.args(["-O1", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(shim_support::c_source("tutorial.c"))
        .arg(format!(
            "-I{}",
            shim_support::runtime(major).join("include").display()
        ))
        .arg("-ldl");
    run_checked(cc, "compiling tutorial.c");
    let mut cmd = Command::new(&exe);
    cmd.arg(lib)
        .env_remove("CUDASTUB_REAL_CUDART")
        .env_remove("CUDA_HOME");
    text(&run_checked(cmd, "running tutorial.c").stdout)
}

#[test]
fn a_crate_outside_the_repository_becomes_a_whole_cuda_stand_in_per_major() {
    // The example, built by `dist --package` into the same cargo target
    // directory as the tutorial's crate below, whose runtime has the same
    // file name, libcudart.so.
    let example_runtime = || {
        std::fs::read(shim_support::virtual_gpu_dist(12).join("libcudart.so.12"))
            .expect("read the example's runtime")
    };
    let example_before = example_runtime();
    let work = tempfile::tempdir().expect("a temporary directory");
    // At a fixed path, so that its builds stay incremental across runs.
    let spec = shim_support::scratch("dist-package").join("my-vgpu");
    user_crate(&spec);
    let out = work.path().join("out");
    let outcome = dist(
        &package_target(),
        &[
            "--package".as_ref(),
            spec.as_os_str(),
            // Completed with the other four of the five (`--lib`): the 21
            // libraries beyond them are built once, by the suite's `dist`.
            "--lib".as_ref(),
            "cublas".as_ref(),
            "--lib".as_ref(),
            "cublasLt".as_ref(),
            "--lib".as_ref(),
            "cuda".as_ref(),
            "--lib".as_ref(),
            "nvml".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    outcome.expect_success();
    let catalog = Catalog::standard().expect("the standard manifests load");
    let five = |v: &&cudastub_codegen::view::LibraryMajor| {
        ["cudart", "cublas", "cublasLt", "cuda", "nvml"].contains(&v.library)
    };
    for major in MAJORS {
        let dir = out.join(major.to_string());
        let mut sonames: Vec<String> = catalog
            .views()
            .iter()
            .filter(|v| v.major == major)
            .filter(five)
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
        for view in catalog
            .views()
            .iter()
            .filter(|v| v.major == major)
            .filter(five)
        {
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
                "crate my-vgpu"
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
        // The runtime is the tutorial's, built for this major: one virtual
        // H100, each ABI of cudaGetDeviceProperties filling its own struct
        // (12's legacy export CUDA 11's 728 bytes), with no real runtime.
        let answers = tutorial_answers(
            major,
            &dir.join(format!("libcudart.so.{major}")),
            work.path(),
        );
        let line = |label: &str, bytes: usize| {
            format!("{label} 0 bytes={bytes} name=NVIDIA H100 80GB HBM3 cc=9.0 sms=132")
        };
        let expected = if major == 12 {
            [
                "count 0 1".to_string(),
                line("legacy", 728),
                line("current", 1032),
            ]
        } else {
            [
                "count 0 1".to_string(),
                line("current", 1008),
                "v2 absent".to_string(),
            ]
        };
        assert_eq!(
            answers.lines().collect::<Vec<_>>(),
            expected,
            "the tutorial's runtime of major {major}"
        );
    }
    // The majors were built apart, so neither overwrote the other.
    for major in MAJORS {
        let built = shim_support::dist_build_dir(&package_target(), &spec, major)
            .join("release/libcudart.so");
        assert!(
            built.is_file(),
            "major {major}'s build is kept in its own target directory: {}",
            built.display()
        );
    }
    // Nor did the tutorial's crate overwrite the example's runtime, though
    // both are a libcudart.so built in one cargo target directory: laid out
    // again, the example's (which cargo finds fresh) is still its own.
    // (A shared `cudastub-dist/12` gave the tutorial's file in its place,
    // and the virtual GPU's runtime answered cudaDeviceGetAttribute with
    // the real runtime's error 34.)
    let again = work.path().join("again");
    dist(
        &package_target(),
        &[
            "--package".as_ref(),
            repo_root().join("examples/virtual-gpu").as_os_str(),
            "--lib".as_ref(),
            "cublas".as_ref(),
            "--lib".as_ref(),
            "cublasLt".as_ref(),
            "--major".as_ref(),
            "12".as_ref(),
            "--out".as_ref(),
            again.as_os_str(),
        ],
    )
    .expect_success();
    let example_after =
        std::fs::read(again.join("12/libcudart.so.12")).expect("read the example's runtime again");
    let tutorial =
        std::fs::read(out.join("12/libcudart.so.12")).expect("read the tutorial's runtime");
    assert_ne!(
        example_before, tutorial,
        "the two crates build different runtimes"
    );
    assert!(
        example_after == example_before,
        "the example's runtime laid out after the tutorial's build is the example's"
    );
}

#[test]
fn a_package_name_the_current_workspace_lacks_is_an_error_with_did_you_mean() {
    let work = tempfile::tempdir().expect("a temporary directory");
    let out = work.path().join("out");
    let outcome = run(Command::new(cudastub())
        .current_dir(repo_root().join("examples/virtual-gpu"))
        .args(["dist", "--package", "virtual-gpu-runtme", "--out"])
        .arg(&out));
    outcome.expect_code(2);
    let root = repo_root().join("examples/virtual-gpu");
    assert!(
        outcome.stderr.contains(&format!(
            "virtual-gpu-runtme: error: no such directory, and the workspace at {} has no \
             package `virtual-gpu-runtme` (--package takes the directory of a shim crate or \
             workspace, or the name of a package of the current workspace); did you mean \
             `virtual-gpu-runtime`?",
            root.canonicalize().expect("canonical").display()
        )),
        "{outcome}"
    );
    assert!(!out.exists(), "nothing is laid out: {outcome}");
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
            // Completed with the five's standard shims only.
            "--lib".as_ref(),
            "cublas".as_ref(),
            "--lib".as_ref(),
            "cublasLt".as_ref(),
            "--major".as_ref(),
            "12".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    outcome.expect_code(2);
    let built: PathBuf = shim_support::dist_build_dir(&target, &spec, 12).join("release/libodd.so");
    assert!(
        outcome.stderr.contains(&format!(
            "{}: error: soname `libodd.so.7` (package `odd`, major 12) is no standard library's",
            built.display()
        )),
        "{outcome}"
    );
    assert!(!out.exists(), "nothing is laid out: {outcome}");
}

/// A crate `name` in `dir` whose cdylib is named `lib_name` and has the
/// soname `soname`, exporting one function (`odd`) and nothing of CUDA.
fn plain_cdylib(dir: &Path, name: &str, lib_name: &str, soname: &str, workspace: bool) {
    let workspace = if workspace { "\n[workspace]\n" } else { "" };
    write_files(
        dir,
        &[
            (
                "Cargo.toml",
                format!(
                    "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
                     [lib]\nname = \"{lib_name}\"\ncrate-type = [\"cdylib\"]\n{workspace}"
                ),
            ),
            (
                "build.rs",
                format!(
                    "fn main() {{\n    println!(\"cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}\");\n}}\n"
                ),
            ),
            (
                "src/lib.rs",
                "#[unsafe(no_mangle)]\npub extern \"C\" fn odd() -> i32 {\n    7\n}\n".into(),
            ),
        ],
    );
}

#[test]
fn a_package_name_is_found_although_a_plain_directory_has_that_name() {
    // `dist --package vgpu` failed with "no Cargo.toml" when a directory
    // `vgpu/` that is no crate sat in the current directory.
    let work = tempfile::tempdir().expect("a temporary directory");
    let ws = work.path().join("ws");
    write_files(
        &ws,
        &[(
            "Cargo.toml",
            "[workspace]\nresolver = \"3\"\nmembers = [\"crates/vgpu\"]\n".into(),
        )],
    );
    plain_cdylib(
        &ws.join("crates/vgpu"),
        "vgpu",
        "vgpu",
        "libodd.so.7",
        false,
    );
    std::fs::create_dir(ws.join("vgpu")).expect("mkdir vgpu");
    let out = work.path().join("out");
    let outcome = run(Command::new(cudastub())
        .current_dir(&ws)
        .env("CARGO_TARGET_DIR", ws.join("target"))
        .args(["dist", "--package", "vgpu", "--major", "12", "--out"])
        .arg(&out));
    // Found and built: its soname is then the error.
    outcome.expect_code(2);
    assert!(
        outcome
            .stderr
            .contains("soname `libodd.so.7` (package `vgpu`, major 12) is no standard library's"),
        "{outcome}"
    );
    assert!(!out.exists(), "nothing is laid out: {outcome}");
}

#[test]
fn a_crate_named_like_a_standard_shim_is_not_overwritten_and_a_failed_audit_writes_nothing() {
    // A crate whose library is named `cudart_12` (here building a
    // libcublas.so.12 that exports nothing of cuBLAS): the standard
    // cudart shim, built in the same target directory, overwrote its file,
    // and the wrong file was laid out although its audit said NO.
    let work = tempfile::tempdir().expect("a temporary directory");
    let spec = work.path().join("clash");
    plain_cdylib(&spec, "clash", "cudart_12", "libcublas.so.12", true);
    // The checkout's run-time support and code generator, as the tutorial's
    // crate has them: the standard shims are built with these, from the
    // versions the example's lock file pins (nothing is fetched).
    let root = repo_root().display().to_string();
    let toml = spec.join("Cargo.toml");
    let text = std::fs::read_to_string(&toml).expect("read Cargo.toml");
    std::fs::write(
        &toml,
        format!(
            "{text}
[dependencies]
cudastub-runtime = {{ path = \"{root}/runtime\" }}

             [build-dependencies]
cudastub-codegen = {{ path = \"{root}/codegen\", default-features = false }}
"
        ),
    )
    .expect("write Cargo.toml");
    std::fs::copy(
        repo_root().join("examples/virtual-gpu/Cargo.lock"),
        spec.join("Cargo.lock"),
    )
    .expect("copy the example's Cargo.lock");
    let out = work.path().join("out");
    let target = package_target();
    let outcome = dist(
        &target,
        &[
            "--package".as_ref(),
            spec.as_os_str(),
            // Completed with the five's standard shims only.
            "--lib".as_ref(),
            "cublas".as_ref(),
            "--lib".as_ref(),
            "cublasLt".as_ref(),
            "--major".as_ref(),
            "12".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    outcome.expect_code(1);
    let built = shim_support::dist_build_dir(&target, &spec, 12).join("release/libcudart_12.so");
    let image = ElfImage::read(&built).unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(
        image.soname.as_deref(),
        Some("libcublas.so.12"),
        "the crate's own file was overwritten by the standard runtime shim: {outcome}"
    );
    let row = outcome
        .stdout
        .lines()
        .find(|l| l.contains("libcublas.so.12 ") && l.ends_with("crate clash"))
        .unwrap_or_else(|| panic!("no row for the crate's cuBLAS: {outcome}"));
    assert!(row.contains(" NO ("), "its audit differs: {row}");
    assert!(
        !out.exists(),
        "nothing is laid out when an audit differs: {outcome}"
    );
}
