//! The libraries beyond the five (issue 21): cuDNN and its sub-libraries,
//! cuFFT, cuRAND, cuSOLVER, cuSPARSE, cuSPARSELt, NCCL, nvrtc, nvJitLink,
//! CUPTI, cuFile and NVTX, for CUDA 12 and 13, shimmed from their manifests.
//!
//! - Every shim of dist/MAJOR exports exactly what NVIDIA's file does
//!   (names, versions, `FUNC`/`OBJECT`, data objects' sizes), audited by
//!   `cudastub audit --reference` against the export list written from the
//!   real file (`codegen/api/exports/MAJOR/`): the large wheels are fetched
//!   only to import (`scripts/import-all`), so the list stands for them.
//! - For the small wheels the tests fetch (CUPTI, nvJitLink, cuFile, NVTX), the
//!   list is exactly what `cudastub exports` writes from the real file, and
//!   the audit passes against the real file too.
//! - Real calls pass through the shims to NVIDIA's libraries: the same
//!   answers directly and through dist/MAJOR; with the real cuFile missing,
//!   its status struct says so (`CU_FILE_DRIVER_NOT_INITIALIZED`), never
//!   success.

mod shim_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cudastub_codegen::catalog::Catalog;
use cudastub_tests::{index_path, repo_root, run_cudastub};
use shim_support::{MAJORS, c_compiler, c_source, dist_dir, run_checked, runtime, scratch, text};

/// The five libraries cudastub began with; every other library of the
/// index is one of issue 21's.
const FIRST_FIVE: [&str; 5] = ["cudart", "cublas", "cublasLt", "cuda", "nvml"];

/// The libraries of issue 21, by manifest name: every library of the index
/// beyond the five, so that adding one to the index adds it here.
fn libraries(catalog: &Catalog) -> Vec<String> {
    let names: Vec<String> = catalog
        .names()
        .into_iter()
        .filter(|n| !FIRST_FIVE.contains(n))
        .map(str::to_string)
        .collect();
    assert!(
        names.len() >= 20,
        "the index lists the libraries of issue 21: {names:?}"
    );
    names
}

/// The libraries whose wheels every test run fetches.
const FETCHED: [&str; 4] = ["cupti", "nvJitLink", "cufile", "nvtx3interop"];

/// The soname of `lib` at `major`, from its manifest.
fn soname(catalog: &Catalog, lib: &str, major: u32) -> String {
    catalog
        .library(lib)
        .unwrap_or_else(|e| panic!("{e}"))
        .manifest
        .library
        .soname_of(major)
}

/// `true` when NVIDIA ships `lib` for `major` (its manifest has the major).
fn has_major(catalog: &Catalog, lib: &str, major: u32) -> bool {
    catalog
        .library(lib)
        .unwrap_or_else(|e| panic!("{e}"))
        .manifest
        .majors
        .contains_key(&major)
}

fn export_list(major: u32, soname: &str) -> PathBuf {
    repo_root().join(format!("codegen/api/exports/{major}/{soname}.txt"))
}

#[test]
fn every_shim_exports_exactly_what_nvidia_ships() {
    let catalog = Catalog::load(&index_path()).expect("the index loads");
    for major in MAJORS {
        // cuDNN 9.19 for CUDA 13 ships no libcudnn_ext nor
        // libcudnn_engines_tensor_ir: those manifests have no major 13.
        for lib in libraries(&catalog)
            .iter()
            .map(String::as_str)
            .filter(|l| has_major(&catalog, l, major))
        {
            let soname = soname(&catalog, lib, major);
            let shim = dist_dir(major).join(&soname);
            let list = export_list(major, &soname);
            assert!(list.is_file(), "{} is missing", list.display());
            let out = run_cudastub([
                "audit".as_ref(),
                shim.as_os_str(),
                "--lib".as_ref(),
                lib.as_ref(),
                "--major".as_ref(),
                major.to_string().as_ref(),
                "--reference".as_ref(),
                list.as_os_str(),
            ]);
            assert_eq!(
                out.code,
                Some(0),
                "{lib} {major}: the shim differs from {}:\n{}{}",
                list.display(),
                out.stdout,
                out.stderr
            );
        }
    }
}

#[test]
fn the_fetched_libraries_lists_are_what_the_real_files_export() {
    let catalog = Catalog::load(&index_path()).expect("the index loads");
    for major in MAJORS {
        for lib in FETCHED {
            let soname = soname(&catalog, lib, major);
            let real = runtime(major).join("lib").join(&soname);
            assert!(
                real.is_file(),
                "{} is missing: run scripts/fetch-fixtures",
                real.display()
            );
            let written = run_cudastub(["exports".as_ref(), real.as_os_str()]);
            assert_eq!(written.code, Some(0), "{}", written.stderr);
            let list = std::fs::read_to_string(export_list(major, &soname)).unwrap();
            // The checked-in list adds the release as a comment.
            let body = |t: &str| -> Vec<String> {
                t.lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(str::to_string)
                    .collect()
            };
            assert_eq!(
                body(&written.stdout),
                body(&list),
                "{lib} {major}: the checked-in list is not the real file's; run scripts/import-all"
            );
            let out = run_cudastub([
                "audit".as_ref(),
                dist_dir(major).join(&soname).as_os_str(),
                "--lib".as_ref(),
                lib.as_ref(),
                "--major".as_ref(),
                major.to_string().as_ref(),
                "--reference".as_ref(),
                real.as_os_str(),
            ]);
            assert_eq!(
                out.code,
                Some(0),
                "{lib} {major}:\n{}{}",
                out.stdout,
                out.stderr
            );
        }
    }
}

/// tests/c/more_libs.c, built once per test run.
fn more_libs(dir: &Path) -> PathBuf {
    let exe = dir.join("more_libs");
    let mut cc = Command::new(c_compiler());
    cc.arg("-o")
        .arg(&exe)
        .arg(c_source("more_libs.c"))
        .arg("-ldl");
    run_checked(cc, "compiling more_libs.c");
    exe
}

fn run_more_libs(
    exe: &Path,
    major: u32,
    lib_dir: &Path,
    env: &[(String, PathBuf)],
) -> (String, String) {
    let mut cmd = Command::new(exe);
    cmd.arg(major.to_string())
        .env("LD_LIBRARY_PATH", lib_dir)
        .env_remove("CUDASTUB_TRACE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run more_libs");
    (text(&out.stdout), text(&out.stderr))
}

#[test]
fn real_calls_pass_through_the_shims_and_a_missing_cufile_never_looks_like_success() {
    let dir = scratch("libraries");
    let exe = more_libs(&dir);
    for major in MAJORS {
        let real_dir = runtime(major).join("lib");
        let catalog = Catalog::load(&index_path()).expect("the index loads");
        let reals: Vec<(String, PathBuf)> = FETCHED
            .iter()
            .map(|lib| {
                (
                    format!("CUDASTUB_REAL_{}", lib.to_uppercase()),
                    real_dir.join(soname(&catalog, lib, major)),
                )
            })
            .collect();
        let (direct, direct_err) = run_more_libs(&exe, major, &real_dir, &[]);
        assert!(
            direct.contains("cuptiGetVersion: status 0")
                && direct.contains("nvJitLinkVersion: status 0"),
            "major {major} direct:\n{direct}{direct_err}"
        );
        assert!(
            direct.contains(&format!("nvJitLinkVersion: status 0, {major}.")),
            "major {major}: nvJitLink's own major: {direct}"
        );
        assert!(
            direct.contains("nvtxRangePushA: -2, nvtxRangePop: -2"),
            "major {major}: NVTX with no tool: {direct}"
        );
        let (shim, shim_err) = run_more_libs(&exe, major, &dist_dir(major), &reals);
        assert_eq!(
            shim, direct,
            "major {major}: through the shims (stderr: {shim_err})"
        );

        // The real cuFile is missing: the shim's status struct says so.
        let mut missing = reals.clone();
        missing.retain(|(k, _)| k != "CUDASTUB_REAL_CUFILE");
        missing.push((
            "CUDASTUB_REAL_CUFILE".into(),
            dir.join("no-such-libcufile.so.0"),
        ));
        let (out, err) = run_more_libs(&exe, major, &dist_dir(major), &missing);
        // CU_FILE_DRIVER_NOT_INITIALIZED = 5001 (CUFILEOP_BASE_ERR + 1).
        assert!(
            out.contains("cuFileGetVersion: err 5001, cu_err 0, version -1"),
            "major {major}: a missing cuFile must say CU_FILE_DRIVER_NOT_INITIALIZED:\n{out}{err}"
        );
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("libcufile.so.0"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one diagnostic line naming libcufile.so.0:\n{err}"
        );
        assert!(
            out.contains("cuptiGetVersion: status 0"),
            "the other libraries still work:\n{out}"
        );
    }
}
