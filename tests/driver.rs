//! The driver and NVML shims (`libcuda.so.1`, `libnvidia-ml.so.1`) against
//! the real 535.261.03 libraries of Debian's `libcuda1` and `libnvidia-ml1`
//! and the GPU machine's 580.159.04 export lists (codegen/api/exports/): exact,
//! unversioned export sets with the real data objects; a consumer that
//! prints the same through the shims as directly; `cuGetProcAddress`
//! handing out the shim's own entries; the real runtimes reaching the
//! driver shim; and the importer and diff on these unversioned libraries.

mod shim_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use cudastub_codegen::audit::{self, Difference};
use cudastub_codegen::catalog::Catalog;
use cudastub_codegen::elf::{ElfImage, SymbolKind, Versioning};
use cudastub_codegen::import::{ImportRequest, import};
use cudastub_tests::{index_path, run_cudastub};
use shim_support::{
    MAJORS, c_compiler, c_source, dist_dir, real_lib, run_checked, runtime, scratch, text,
};

/// (manifest name, soname, override variable, the 580.159.04 export list).
const LIBRARIES: [(&str, &str, &str, &str); 2] = [
    (
        "cuda",
        "libcuda.so.1",
        "CUDASTUB_REAL_CUDA",
        "codegen/api/exports/libcuda.so.1-580.159.04.txt",
    ),
    (
        "nvml",
        "libnvidia-ml.so.1",
        "CUDASTUB_REAL_NVML",
        "codegen/api/exports/libnvidia-ml.so.1-580.159.04.txt",
    ),
];

/// The directory of the real 535.261.03 driver libraries.
fn driver_dir() -> PathBuf {
    let dir = cudastub_tests::repo_root().join("target/fixtures/driver/lib");
    assert!(
        dir.join("libcuda.so.1").is_file() && dir.join("libnvidia-ml.so.1").is_file(),
        "{} lacks the driver libraries: run scripts/fetch-fixtures",
        dir.display()
    );
    dir
}

/// The names of an export list.
fn export_list(path: &str) -> BTreeSet<String> {
    let path = cudastub_tests::repo_root().join(path);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_driver_and_nvml_shims_export_the_real_set_and_the_580_lists_unversioned() {
    let catalog = Catalog::load(&index_path()).expect("the index loads");
    for major in MAJORS {
        for (name, soname, _, list) in LIBRARIES {
            let entry = catalog.library(name).expect("library in the index");
            let shim = ElfImage::read(&dist_dir(major).join(soname)).expect("read the shim");
            let real = ElfImage::read(&driver_dir().join(soname)).expect("read the real library");
            let what = format!("dist/{major}/{soname}");
            assert_eq!(shim.soname.as_deref(), Some(soname), "{what}: soname");
            assert!(
                shim.version_defs.is_empty(),
                "{what} defines versions: {:?}",
                shim.version_defs
            );
            let manifest = audit::against_manifest(&shim, &entry.manifest, major);
            assert!(
                manifest.is_clean(),
                "{what} differs from its manifest: {:?}",
                manifest.differences
            );
            // Exactly the 535 library's exports and the 580 list's names.
            let newer = export_list(list);
            let real_names: BTreeSet<String> =
                real.exports.iter().map(|s| s.name.clone()).collect();
            let ours: BTreeSet<String> = shim.exports.iter().map(|s| s.name.clone()).collect();
            let want: BTreeSet<String> = real_names.union(&newer).cloned().collect();
            assert_eq!(
                ours, want,
                "{what}: exports are not the 535 set plus the 580 list"
            );
            assert!(
                real_names.is_subset(&newer),
                "{list} is not a superset of the 535 library's exports"
            );
            for s in &shim.exports {
                assert_eq!(
                    s.version,
                    Versioning::None,
                    "{what}: {} is versioned",
                    s.versioned_name()
                );
            }
            // Against the real library, only the 580 additions differ, and
            // they are additions: same types, same data sizes, no version;
            // notes, not errors, since the manifest imported 580 on purpose.
            let differences =
                audit::against_reference(&shim, &real, Some((&entry.manifest, major)));
            let extra: BTreeSet<String> = newer.difference(&real_names).cloned().collect();
            for d in &differences {
                match d {
                    Difference::Added {
                        found,
                        since,
                        reference_release,
                    } if extra.contains(&found.name)
                        && since == "580.159.04"
                        && reference_release == "535.261.03" =>
                    {
                        assert_eq!(d.severity(), audit::Severity::Note, "{what}: {d}");
                    }
                    other => panic!("{what} differs from the real {soname}: {other:?}"),
                }
            }
            assert_eq!(differences.len(), extra.len(), "{what}: the 580 additions");
        }
    }
    // The driver's data objects are data of the real sizes.
    let shim = ElfImage::read(&dist_dir(13).join("libcuda.so.1")).expect("read the shim");
    let real = ElfImage::read(&driver_dir().join("libcuda.so.1")).expect("read");
    let objects: Vec<_> = real
        .exports
        .iter()
        .filter(|s| s.kind == SymbolKind::Object)
        .collect();
    assert_eq!(
        objects.len(),
        20,
        "the 535 driver exports 20 cudbg* objects"
    );
    for o in objects {
        let ours = shim
            .exports
            .iter()
            .find(|s| s.name == o.name)
            .expect("exported");
        assert_eq!((ours.kind, ours.size), (o.kind, o.size), "{}", o.name);
    }
    let injection = shim
        .exports
        .iter()
        .find(|s| s.name == "cudbgInjectionPath")
        .expect("cudbgInjectionPath");
    assert_eq!((injection.kind, injection.size), (SymbolKind::Object, 4096));
}

/// tests/c/driver.c linked against the real libcuda.so.1 and libnvidia-ml.so.1.
fn driver_consumer(major: u32, dir: &Path) -> PathBuf {
    let exe = dir.join(format!("driver{major}"));
    let mut cc = Command::new(c_compiler());
    cc.arg("-o")
        .arg(&exe)
        .arg(c_source("driver.c"))
        .arg(format!("-I{}", runtime(major).join("include").display()))
        .arg(driver_dir().join("libcuda.so.1"))
        .arg(driver_dir().join("libnvidia-ml.so.1"))
        .arg("-ldl");
    run_checked(cc, "compiling driver.c");
    exe
}

/// Runs `exe` with `path` as the library path and `env` set; every other
/// shim override variable removed.
fn run_in(exe: &Path, path: &str, env: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = Command::new(exe);
    cmd.env("LD_LIBRARY_PATH", path).env("LD_BIND_NOW", "1");
    for var in [
        "CUDASTUB_REAL_CUDA",
        "CUDASTUB_REAL_NVML",
        "CUDASTUB_REAL_CUDART",
        "CUDASTUB_TRACE",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
}

#[test]
fn a_driver_and_nvml_consumer_prints_the_same_through_the_shims() {
    let dir = scratch("driver-consumer");
    let real_cuda = driver_dir().join("libcuda.so.1");
    let real_nvml = driver_dir().join("libnvidia-ml.so.1");
    for major in MAJORS {
        let exe = driver_consumer(major, &dir);
        let direct = run_in(&exe, &driver_dir().to_string_lossy(), &[]);
        assert!(direct.status.success(), "direct: {}", text(&direct.stderr));
        let env = [
            ("CUDASTUB_REAL_CUDA", real_cuda.as_path()),
            ("CUDASTUB_REAL_NVML", real_nvml.as_path()),
        ];
        let shim = run_in(&exe, &dist_dir(major).to_string_lossy(), &env);
        assert!(shim.status.success(), "shim: {}", text(&shim.stderr));
        let out = text(&direct.stdout);
        assert_eq!(
            out,
            text(&shim.stdout),
            "major {major}: direct and shim differ"
        );
        assert!(
            !text(&shim.stderr).contains("cudastub:"),
            "the shims complained: {}",
            text(&shim.stderr)
        );
        // The real driver's answers with no GPU, and its choice of variants.
        for line in [
            "cuDriverGetVersion -> 0, 12020",
            "cuInit -> 100 CUDA_ERROR_NO_DEVICE",
            "cuGetProcAddress(cuMemAlloc, 12000, 0) -> 0 status 0: cuMemAlloc_v2, in the library cuInit binds to",
            "cuGetProcAddress(cuMemAlloc, 3000, 0) -> 0 status 0: cuMemAlloc, in the library cuInit binds to",
            "cuGetProcAddress(cuMemcpyHtoD, 12000, 2) -> 0 status 0: cuMemcpyHtoD_v2_ptds, in the library cuInit binds to",
            // 535 (CUDA 12.2) predates cuCtxCreate_v4 (12.5).
            "cuGetProcAddress(cuCtxCreate, 12050, 0) -> 0 status 0: cuCtxCreate_v3, in the library cuInit binds to",
            "cuGetProcAddress(cuGetProcAddress, 12000, 0) -> 0 status 0: cuGetProcAddress_v2, in the library cuInit binds to",
            "cuGetProcAddress(cuNoSuchFunction, 12000, 0) -> 0 status 1: (none)",
            "nvmlInit_v2 -> 9 (Driver Not Loaded)",
        ] {
            assert!(out.contains(line), "missing `{line}` in:\n{out}");
        }
        // Through the shims, every call is traced (the entries handed out
        // included) and bound to the shim.
        let mut traced = env.to_vec();
        traced.push(("CUDASTUB_TRACE", Path::new("1")));
        let trace = run_in(&exe, &dist_dir(major).to_string_lossy(), &traced);
        let err = text(&trace.stderr);
        for call in [
            "cuDriverGetVersion(",
            "cuInit(Flags=0) -> CUDA_ERROR_NO_DEVICE (100)",
            "cuGetProcAddress_v2(symbol=\"cuMemAlloc\"",
            "nvmlInit_v2() -> NVML_ERROR_DRIVER_NOT_LOADED (9)",
        ] {
            assert!(err.contains(call), "no `{call}` in the trace:\n{err}");
        }
        assert_eq!(text(&trace.stdout), out, "tracing changed the output");
    }
}

/// tests/c/entry_runtime.c: `cudaGetDeviceCount` and friends through the real runtime.
fn runtime_consumer(major: u32, dir: &Path) -> PathBuf {
    let exe = dir.join(format!("entry_runtime{major}"));
    let mut cc = Command::new(c_compiler());
    cc.arg("-o")
        .arg(&exe)
        .arg(c_source("entry_runtime.c"))
        .arg(format!("-I{}", runtime(major).join("include").display()))
        .arg(real_lib(major));
    run_checked(cc, "compiling entry_runtime.c");
    exe
}

/// A directory under `dir` holding the driver shim of `major` alone, to put
/// in front of the real runtime.
fn driver_shim_only(dir: &Path, major: u32) -> PathBuf {
    let only = dir.join(format!("driver-only-{major}"));
    std::fs::create_dir_all(&only).expect("mkdir");
    std::fs::copy(
        dist_dir(major).join("libcuda.so.1"),
        only.join("libcuda.so.1"),
    )
    .expect("copy the driver shim");
    only
}

#[test]
fn the_real_runtime_calls_the_driver_through_the_driver_shim() {
    let dir = scratch("driver-runtime");
    let real_cuda = driver_dir().join("libcuda.so.1");
    for major in MAJORS {
        let exe = runtime_consumer(major, &dir);
        let runtime_dir = real_lib(major).parent().expect("lib dir").to_path_buf();
        // The real runtime, the real driver; then the real runtime with the
        // driver shim first in the path.
        let direct_path = format!("{}:{}", driver_dir().display(), runtime_dir.display());
        let direct = run_in(&exe, &direct_path, &[]);
        let only_driver = driver_shim_only(&dir, major);
        let shim_path = format!("{}:{}", only_driver.display(), runtime_dir.display());
        let env = [
            ("CUDASTUB_REAL_CUDA", real_cuda.as_path()),
            ("CUDASTUB_TRACE", Path::new("1")),
        ];
        let shim = run_in(&exe, &shim_path, &env);
        assert_eq!(
            text(&direct.stdout),
            text(&shim.stdout),
            "major {major}: the runtime answers differently through the driver shim"
        );
        let out = text(&shim.stdout);
        // With no GPU: the 12.9 runtime gets as far as cuInit (no device);
        // the 13.5 runtime finds the 535 driver too old.
        let expected = if major == 12 {
            "cudaGetDeviceCount -> 100 cudaErrorNoDevice"
        } else {
            "cudaGetDeviceCount -> 35 cudaErrorInsufficientDriver"
        };
        assert!(
            out.contains(expected),
            "major {major}: expected `{expected}` in:\n{out}"
        );
        let trace = text(&shim.stderr);
        let mut calls = vec![
            "cuDriverGetVersion(",
            "cuGetProcAddress_v2(symbol=\"cuInit\"",
            "cuGetProcAddress_v2(symbol=\"cuDeviceGetCount\"",
        ];
        if major == 12 {
            calls.push("cuInit(Flags=0) -> CUDA_ERROR_NO_DEVICE (100)");
        }
        for call in calls {
            assert!(
                trace.contains(call),
                "major {major}: the runtime's `{call}` did not reach the driver shim:\n{trace}"
            );
        }
    }
}

#[test]
fn reimporting_the_driver_and_nvml_reproduces_the_checked_in_manifests() {
    let catalog = Catalog::load(&index_path()).expect("the index loads");
    for (name, soname, _, list) in LIBRARIES {
        let entry = catalog.library(name).expect("library in the index");
        let mut m = entry.manifest.clone();
        for major in MAJORS {
            let include = runtime(major).join("include");
            let request = |library: PathBuf, exports_list: bool, release: &str| ImportRequest {
                library,
                exports_list,
                major: Some(major),
                include_dirs: vec![include.clone()],
                release: release.to_string(),
            };
            let (next, _) = import(&m, &request(driver_dir().join(soname), false, "535.261.03"))
                .unwrap_or_else(|e| panic!("importing {soname} for {major}: {e}"));
            let list = cudastub_tests::repo_root().join(list);
            let (next, summary) = import(&next, &request(list, true, "580.159.04"))
                .unwrap_or_else(|e| panic!("importing the 580 list for {major}: {e}"));
            assert!(
                summary.added.is_empty()
                    && summary.removed.is_empty()
                    && summary.changed.is_empty(),
                "{name} {major}: re-importing changed the manifest: {summary}"
            );
            m = next;
        }
        assert!(
            m == entry.manifest,
            "{name}: re-importing changed the manifest"
        );
    }
}

#[test]
fn the_importer_needs_a_major_for_a_soname_every_major_shares() {
    let catalog = Catalog::load(&index_path()).expect("the index loads");
    let m = &catalog.library("cuda").expect("cuda").manifest;
    let err = import(
        m,
        &ImportRequest {
            library: driver_dir().join("libcuda.so.1"),
            exports_list: false,
            major: None,
            include_dirs: vec![runtime(13).join("include")],
            release: "535.261.03".into(),
        },
    )
    .expect_err("no major");
    assert!(
        err.to_string()
            .contains("`libcuda.so.1` serves every major; pass --major"),
        "{err}"
    );
    // A versioned library cannot be imported into an unversioned manifest.
    let err = import(
        m,
        &ImportRequest {
            library: real_lib(13),
            exports_list: false,
            major: Some(13),
            include_dirs: vec![runtime(13).join("include")],
            release: "535.261.03".into(),
        },
    )
    .expect_err("wrong library");
    assert!(
        err.to_string()
            .contains("soname `libcudart.so.13` is not the manifest's `libcuda.so.1`"),
        "{err}"
    );
}

#[test]
fn diff_shows_what_the_580_driver_adds_to_the_535_library() {
    let real = driver_dir().join("libcuda.so.1");
    let out = run_cudastub(
        [real.to_str().expect("utf-8 path"), "cuda-api.yaml#cuda/13"]
            .iter()
            .copied()
            .fold(vec!["diff"], |mut v, a| {
                v.push(a);
                v
            }),
    );
    assert_eq!(out.code, Some(1), "different surfaces: {out}");
    let added = export_list("codegen/api/exports/libcuda.so.1-580.159.04.txt").len() - 620;
    assert!(
        out.stdout.contains(&format!("added ({added}):")),
        "expected {added} added: {out}"
    );
    assert!(!out.stdout.contains("removed ("), "nothing removed: {out}");
    assert!(out.stdout.contains("+ cuCtxCreate_v4"), "{out}");
    assert!(
        out.stdout
            .contains("+ cudbgReportedDriverApiErrorSource (OBJECT)"),
        "{out}"
    );
}

#[test]
fn with_no_real_driver_the_runtime_through_dist_sees_a_stub_driver() {
    // This machine has no driver: directly, the real runtime finds no
    // libcuda.so.1 at all; through dist/N it finds the driver shim, which
    // cannot load a real driver and fails every call with
    // CUDA_ERROR_STUB_LIBRARY, as NVIDIA's stub libcuda.so does.
    let dir = scratch("driver-missing");
    let missing = dir.join("no-such-libcuda.so.1");
    for major in MAJORS {
        let exe = runtime_consumer(major, &dir);
        let runtime_dir = real_lib(major).parent().expect("lib dir").to_path_buf();
        let direct = run_in(&exe, &runtime_dir.to_string_lossy(), &[]);
        assert!(
            text(&direct.stdout).contains("cudaGetDeviceCount -> 35 cudaErrorInsufficientDriver"),
            "direct: {}",
            text(&direct.stdout)
        );
        let only_driver = driver_shim_only(&dir, major);
        let path = format!("{}:{}", only_driver.display(), runtime_dir.display());
        let out = run_in(&exe, &path, &[("CUDASTUB_REAL_CUDA", missing.as_path())]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("cudaGetDeviceCount -> 34 cudaErrorStubLibrary"),
            "major {major}: {stdout}"
        );
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("cudastub: "))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one diagnostic, naming the driver: {stderr}"
        );
        assert!(
            lines[0].contains("libcuda.so.1") && lines[0].contains("CUDASTUB_REAL_CUDA"),
            "{stderr}"
        );
        // The hint names the driver's real naming (libcuda.so.535.261.03),
        // not a `libcuda.so.1.x.y` no driver installs (issue 20, item 3).
        assert!(
            lines[0].contains("set CUDASTUB_REAL_CUDA=/full/path/to/libcuda.so.<version>;"),
            "{stderr}"
        );
    }
}
