//! The cuBLAS and cuBLASLt shims against the real libraries of the pinned
//! wheels (nvidia-cublas-cu12 12.9.3.13, nvidia-cublas 13.10.0.20): exact
//! export sets, a real consumer that prints the same through the shims as
//! directly, each shim forwarding to its own real library in one process,
//! tracing that decodes `cublasStatus_t`, and the audit of a whole dist
//! directory against a consumer.

mod shim_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cudastub_codegen::audit;
use cudastub_codegen::catalog::Catalog;
use cudastub_codegen::elf::ElfImage;
use cudastub_tests::{index_path, run_cudastub};
use shim_support::{
    MAJORS, c_compiler, c_source, real_lib, run_checked, run_with, runtime, scratch, shim_dir, text,
};

/// The libraries of this file and their override variables.
const LIBRARIES: [(&str, &str); 2] = [
    ("cublas", "CUDASTUB_REAL_CUBLAS"),
    ("cublasLt", "CUDASTUB_REAL_CUBLASLT"),
];

/// The real `lib<name>.so.<major>` of the pinned wheel.
fn real(name: &str, major: u32) -> PathBuf {
    let lib = runtime(major)
        .join("lib")
        .join(format!("lib{name}.so.{major}"));
    assert!(
        lib.is_file(),
        "{} is missing: run scripts/fetch-fixtures",
        lib.display()
    );
    lib
}

/// tests/c/cublas.c, linked against the real runtime, cuBLAS and cuBLASLt of `major`.
fn consumer(major: u32, dir: &Path) -> PathBuf {
    let exe = dir.join(format!("cublas{major}"));
    let mut cc = Command::new(c_compiler());
    cc.arg("-o")
        .arg(&exe)
        .arg(c_source("cublas.c"))
        .arg(format!("-I{}", runtime(major).join("include").display()))
        .arg(real_lib(major))
        .arg(real("cublas", major))
        .arg(real("cublasLt", major));
    run_checked(cc, "compiling cublas.c");
    exe
}

/// Every override variable of `major` pointing at its real library.
fn real_paths(major: u32) -> Vec<(&'static str, PathBuf)> {
    let mut env = vec![("CUDASTUB_REAL_CUDART", real_lib(major))];
    env.extend(LIBRARIES.iter().map(|(n, var)| (*var, real(n, major))));
    env
}

fn env_refs<'a>(env: &'a [(&'static str, PathBuf)]) -> Vec<(&'static str, &'a Path)> {
    env.iter().map(|(k, v)| (*k, v.as_path())).collect()
}

#[test]
fn the_shims_export_exactly_what_the_real_libraries_export() {
    let catalog = Catalog::load(&index_path()).expect("the index loads");
    for major in MAJORS {
        for (name, _) in LIBRARIES {
            let entry = catalog.library(name).expect("library in the index");
            let soname = format!("lib{name}.so.{major}");
            let shim = ElfImage::read(&shim_dir(major).join(&soname)).expect("read the shim");
            let reference = ElfImage::read(&real(name, major)).expect("read the real library");
            let against_manifest = audit::against_manifest(&shim, &entry.manifest, major);
            assert!(
                against_manifest.is_clean(),
                "{soname} differs from the manifest: {:?}",
                against_manifest.differences
            );
            let against_real =
                audit::against_reference(&shim, &reference, Some((&entry.manifest, major)));
            assert!(
                against_real.is_empty(),
                "{soname} differs from the real library: {against_real:?}"
            );
            assert_eq!(shim.exports.len(), reference.exports.len(), "{soname}");
            assert!(
                shim.exports
                    .iter()
                    .all(|s| s.versioned_name() == format!("{}@@{soname}", s.name)),
                "every export of {soname} is name@@{soname}"
            );
        }
    }
}

#[test]
fn a_cublas_program_prints_the_same_through_the_shims() {
    for major in MAJORS {
        let dir = scratch(&format!("cublas-same-{major}"));
        let exe = consumer(major, &dir);
        let lib_dir = runtime(major).join("lib");
        let direct = run_with(&exe, &lib_dir, &[], &[]);
        assert!(direct.status.success(), "direct run: {direct:?}");
        let env = real_paths(major);
        let mut shimmed_env = env_refs(&env);
        let debug = dir.join("bindings");
        shimmed_env.push(("LD_DEBUG", Path::new("bindings")));
        shimmed_env.push(("LD_DEBUG_OUTPUT", &debug));
        let shimmed = run_with(&exe, &shim_dir(major), &shimmed_env, &[]);
        assert!(shimmed.status.success(), "through the shims: {shimmed:?}");
        assert_eq!(text(&shimmed.stdout), text(&direct.stdout), "major {major}");
        assert_eq!(text(&shimmed.stderr), "", "major {major}");
        let stdout = text(&direct.stdout);
        assert!(
            stdout.contains("cublasCreate -> 1 (CUBLAS_STATUS_NOT_INITIALIZED"),
            "with no GPU, cublasCreate fails with CUBLAS_STATUS_NOT_INITIALIZED: {stdout}"
        );
        let release = if major == 12 { "12.9.3" } else { "13.10.0" };
        assert!(
            stdout.contains(&format!("cublasGetProperty -> 0 0 0: {release}\n")),
            "cublasGetProperty forwarded returns the real release: {stdout}"
        );
        // The loader bound the program's calls to each shim, not to the real libraries.
        let bindings: String = std::fs::read_dir(&dir)
            .expect("read scratch dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("bindings"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        for (symbol, soname) in [
            ("cudaRuntimeGetVersion", format!("libcudart.so.{major}")),
            ("cublasCreate_v2", format!("libcublas.so.{major}")),
            ("cublasLtCreate", format!("libcublasLt.so.{major}")),
        ] {
            let shim = shim_dir(major).join(&soname);
            let bound = bindings.lines().any(|l| {
                l.contains(&format!(
                    "to {} [0]: normal symbol `{symbol}'",
                    shim.display()
                )) && l.contains(&format!("[{soname}]"))
            });
            assert!(
                bound,
                "{symbol} was not bound to {} with version {soname}",
                shim.display()
            );
        }
    }
}

#[test]
fn each_shim_forwards_to_its_own_real_library() {
    let major = 12;
    let dir = scratch("cublas-own-library");
    let exe = consumer(major, &dir);
    let nowhere = dir.join("no-such-libcublas.so.12");
    let mut env = real_paths(major);
    env.retain(|(k, _)| *k != "CUDASTUB_REAL_CUBLAS");
    env.push(("CUDASTUB_REAL_CUBLAS", nowhere.clone()));
    let out = run_with(&exe, &shim_dir(major), &env_refs(&env), &[]);
    assert!(out.status.success(), "{out:?}");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // The runtime and cuBLASLt shims still reach their own real libraries…
    assert!(
        stdout.contains("cudaRuntimeGetVersion -> 0, 12090\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cublasLtGetVersion -> 120903\n"),
        "{stdout}"
    );
    // …while cuBLAS alone, redirected to a missing file, fails with its
    // library-missing status, and says so once.
    assert!(
        stdout.contains("cublasGetProperty -> 1 1 1: -1.-1.-1\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "cublasCreate -> 1 (CUBLAS_STATUS_NOT_INITIALIZED: CUBLAS_STATUS_NOT_INITIALIZED)"
        ),
        "the fallback of cublasGetStatusString names the status: {stdout}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one diagnostic: {stderr}");
    assert!(
        lines[0].starts_with("cudastub: cannot load the real libcublas.so.12")
            && lines[0].contains(&nowhere.display().to_string())
            && lines[0].contains("set CUDASTUB_REAL_CUBLAS="),
        "{stderr}"
    );
}

#[test]
fn tracing_names_cublas_calls_and_decodes_their_status() {
    for major in MAJORS {
        let dir = scratch(&format!("cublas-trace-{major}"));
        let exe = consumer(major, &dir);
        let env = real_paths(major);
        let mut traced = env_refs(&env);
        traced.push(("CUDASTUB_TRACE", Path::new("1")));
        let out = run_with(&exe, &shim_dir(major), &traced, &[]);
        assert!(out.status.success(), "{out:?}");
        let stderr = text(&out.stderr);
        let line = |name: &str| -> &str {
            stderr
                .lines()
                .find(|l| l.contains(&format!("] {name}(")))
                .unwrap_or_else(|| panic!("no trace line for {name}:\n{stderr}"))
        };
        assert!(
            line("cublasCreate_v2").contains(") -> CUBLAS_STATUS_NOT_INITIALIZED (1) "),
            "{stderr}"
        );
        assert!(
            line("cublasGetProperty").contains("MAJOR_VERSION (0)")
                && line("cublasGetProperty").contains(") -> CUBLAS_STATUS_SUCCESS (0) "),
            "{stderr}"
        );
        assert!(
            line("cublasLtCreate").contains(") -> CUBLAS_STATUS_NOT_INITIALIZED (1) "),
            "{stderr}"
        );
        assert!(line("cudaRuntimeGetVersion").contains("-> cudaSuccess (0)"));
    }
}

#[test]
fn the_audit_of_a_dist_directory_checks_a_consumer_against_every_shim() {
    for major in MAJORS {
        let dir = scratch(&format!("cublas-audit-{major}"));
        let exe = consumer(major, &dir);
        let out = run_cudastub([
            "audit".as_ref(),
            shim_dir(major).as_os_str(),
            "--consumer".as_ref(),
            exe.as_os_str(),
        ]);
        out.expect_success();
        for soname in [
            format!("libcudart.so.{major}"),
            format!("libcublas.so.{major}"),
            format!("libcublasLt.so.{major}"),
        ] {
            let shim = shim_dir(major).join(&soname);
            assert!(
                out.stdout
                    .lines()
                    .any(|l| l.starts_with(&format!("{}: OK", shim.display()))
                        && l.contains("1 consumer")),
                "{soname} is checked against the consumer: {out}"
            );
        }
    }
}

#[test]
fn diff_of_cublas_12_and_13_agrees_with_the_real_libraries() {
    let spec = |m: u32| format!("cuda-api.yaml#cublas/{m}");
    let manifests = run_cudastub(["diff", &spec(12), &spec(13), "--format", "json"]);
    manifests.expect_code(1);
    let reals = run_cudastub([
        "diff".as_ref(),
        real("cublas", 12).as_os_str(),
        real("cublas", 13).as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    reals.expect_code(1);
    let counts = |o: &cudastub_tests::Outcome| -> (u64, u64) {
        let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
        (
            v["counts"]["added"].as_u64().expect("added"),
            v["counts"]["removed"].as_u64().expect("removed"),
        )
    };
    let (added, removed) = counts(&manifests);
    assert_eq!((added, removed), counts(&reals), "{manifests}");
    assert!(added > 0, "cuBLAS 13 adds functions: {manifests}");
}
