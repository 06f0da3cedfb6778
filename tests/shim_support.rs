//! Helpers for the tests that build and run shims: fixture paths, the
//! shims built by `cudastub dist`, C test programs, running with a library path.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub use cudastub_tests::{c_compiler, repo_root};

/// The majors of the manifest.
pub const MAJORS: [u32; 2] = [12, 13];

/// The unpacked pinned runtime of `major` (`target/fixtures/cudaN`).
pub fn runtime(major: u32) -> PathBuf {
    let rt = cudastub_tests::fixtures().runtime(major);
    rt.include
        .parent()
        .expect("include/ has a parent")
        .to_path_buf()
}

/// The pinned real `libcudart.so.N`.
pub fn real_lib(major: u32) -> PathBuf {
    cudastub_tests::fixtures().runtime(major).library.clone()
}

/// A scratch directory under target/, kept for inspection after a failure.
pub fn scratch(name: &str) -> PathBuf {
    let dir = repo_root().join("target/test-shim").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The runtime and cuBLAS shims of `major`, without the driver and NVML
/// shims: what the runtime tests compare with a direct run on this machine,
/// which has no driver. (With the driver shim in the path and no real
/// driver, the real runtime's driver is the driver shim, whose every call
/// returns `CUDA_ERROR_STUB_LIBRARY`: the runtime then answers
/// `cudaErrorStubLibrary` instead of `cudaErrorInsufficientDriver`, as with
/// NVIDIA's own stub `libcuda.so`; tests/driver.rs covers that.)
pub fn shim_dir(major: u32) -> PathBuf {
    static DIRS: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    DIRS[(major - 12) as usize]
        .get_or_init(|| {
            let dir = repo_root().join(format!("target/test-shim/dist-runtime/{major}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the runtime shim dir");
            for lib in ["cudart", "cublas", "cublasLt"] {
                let name = format!("lib{lib}.so.{major}");
                std::fs::copy(dist_dir(major).join(&name), dir.join(&name))
                    .unwrap_or_else(|e| panic!("copy {name}: {e}"));
            }
            dir
        })
        .clone()
}

/// Builds every shim once with the README's main command, into
/// target/test-shim/dist; the directory of `major` holds all five.
pub fn dist_dir(major: u32) -> PathBuf {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    let dist = DIST.get_or_init(|| {
        let out = repo_root().join("target/test-shim/dist");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(repo_root())
            .args([
                "run",
                "--release",
                "--quiet",
                "--bin",
                "cudastub",
                "--",
                "dist",
                "--out",
            ])
            .arg(&out)
            .status()
            .expect("run cudastub dist");
        assert!(status.success(), "`cudastub dist` failed");
        out
    });
    dist.join(major.to_string())
}

/// The virtual GPU's three shims (examples/virtual-gpu: runtime, driver,
/// NVML) of `major`, as `cudastub dist --package` built them for
/// [`virtual_gpu_dist`] (no second build); returns `target/virtual-gpu-N/lib`
/// holding only `libcudart.so.N`, `libcuda.so.1` and `libnvidia-ml.so.1`.
pub fn virtual_gpu(major: u32) -> PathBuf {
    static BUILT: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILT[(major - 12) as usize]
        .get_or_init(|| {
            let dist = virtual_gpu_dist(major);
            let dir = repo_root().join(format!("target/virtual-gpu-{major}/lib"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("mkdir");
            for soname in VIRTUAL_GPU_LIBRARIES {
                let soname = soname.replace('N', &major.to_string());
                std::fs::copy(dist.join(&soname), dir.join(&soname))
                    .unwrap_or_else(|e| panic!("copy {soname}: {e}"));
            }
            dir
        })
        .clone()
}

/// The sonames the example's crates build (`N`: the major).
pub const VIRTUAL_GPU_LIBRARIES: [&str; 3] =
    ["libcudart.so.N", "libcuda.so.1", "libnvidia-ml.so.1"];

/// Cargo's target directory for the example's builds, which
/// tests/dist_package.rs shares: `cudastub dist --package` builds each
/// workspace into its own `cudastub-dist/<name>-<hash>/{12,13}` (and the
/// standard forward-only shims' scratch workspace, `…/forward`).
pub fn package_target() -> PathBuf {
    cudastub_tests::target_dir().join("virtual-gpu")
}

/// Where `cudastub dist --package` builds major `major` of the workspace at
/// `workspace` in cargo's target directory `target`:
/// `cudastub-dist/<dir name>-<FNV-1a 64 of its canonical path>/<major>`,
/// as the README documents.
pub fn dist_build_dir(target: &Path, workspace: &Path, major: u32) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let root = workspace
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", workspace.display()));
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
    target
        .join("cudastub-dist")
        .join(format!("{name}-{hash:016x}"))
        .join(major.to_string())
}

/// A whole CUDA `major` stand-in, `target/virtual-gpu-dist/N`: the README's
/// `cudastub dist --package virtual-gpu` in the example's directory (the
/// package's name, so its workspace), run once for both
/// majors, which builds the virtual GPU's three shims and completes each
/// directory with the standard forward-only cuBLAS and cuBLASLt shims.
pub fn virtual_gpu_dist(major: u32) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let base = repo_root().join("target/virtual-gpu-dist");
            let _ = std::fs::remove_dir_all(&base);
            let outcome = cudastub_tests::run(
                Command::new(cudastub_tests::cudastub())
                    .current_dir(repo_root().join("examples/virtual-gpu"))
                    .env("CARGO_TARGET_DIR", package_target())
                    .args(["dist", "--package", "virtual-gpu"])
                    // The five libraries' stand-in: completed with cuBLAS
                    // and cuBLASLt only (not the 21 libraries beyond them,
                    // which the test suite builds once, in `dist`).
                    .args(["--lib", "cublas", "--lib", "cublasLt", "--out"])
                    .arg(&base),
            );
            outcome.expect_success();
            // Each cargo run says what it builds: the crate per major, then
            // the standard shims that complete the directories.
            for line in [
                "cudastub: building virtual-gpu for major 12 (CUDASTUB_MAJOR=12)",
                "cudastub: building virtual-gpu for major 13 (CUDASTUB_MAJOR=13)",
                "cudastub: building 4 standard forward-only shims: cublas 12, cublas 13, cublasLt 12, cublasLt 13",
            ] {
                assert!(outcome.stderr.contains(line), "`{line}` expected: {outcome}");
            }
            for m in MAJORS {
                for (library, from) in [
                    ("cudart", "crate virtual-gpu-runtime"),
                    ("cuda", "crate virtual-gpu-driver"),
                    ("nvml", "crate virtual-gpu-nvml"),
                    ("cublas", "standard"),
                    ("cublasLt", "standard"),
                ] {
                    assert!(
                        outcome.stdout.lines().any(|l| {
                            let cells: Vec<&str> = l.split_whitespace().collect();
                            cells.first() == Some(&m.to_string().as_str())
                                && cells.get(1) == Some(&library)
                                && l.contains("  yes  ")
                                && l.ends_with(from)
                        }),
                        "{library} {m} should come from {from}, audited clean: {outcome}"
                    );
                }
            }
            base
        })
        .join(major.to_string())
}

/// The built shim of `major`.
pub fn shim_lib(major: u32) -> PathBuf {
    shim_dir(major).join(format!("libcudart.so.{major}"))
}

/// A test program's source in tests/c/.
pub fn c_source(name: &str) -> PathBuf {
    repo_root().join("tests/c").join(name)
}

/// Runs `cmd`, failing the test with its output if it fails.
pub fn run_checked(mut cmd: Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Compiles a consumer C program against the real `libcudart.so.N`, so that
/// its binary requires each function it calls with version `libcudart.so.N`.
pub fn consumer(major: u32, source: &str, dir: &Path) -> PathBuf {
    let exe = dir.join(format!("{}{major}", source.trim_end_matches(".c")));
    let rt = runtime(major);
    let mut cc = Command::new(c_compiler());
    cc.arg("-o")
        .arg(&exe)
        .arg(c_source(source))
        .arg(format!("-I{}", rt.join("include").display()))
        .arg(real_lib(major))
        .args(["-ldl", "-lpthread"]);
    run_checked(cc, &format!("compiling {source}"));
    exe
}

/// The recording stand-in for the real runtime (tests/c/fake_cudart.c).
pub fn fake_lib(major: u32, dir: &Path) -> PathBuf {
    let lib = dir.join(format!("fake{major}.so"));
    let script = dir.join("fake.map");
    std::fs::write(&script, format!("libcudart.so.{major} {{ global: *; }};\n"))
        .expect("write fake.map");
    let mut cc = Command::new(c_compiler());
    cc.args(["-shared", "-fPIC"])
        .arg(format!("-DMAJOR={major}"))
        .arg(format!("-I{}", runtime(major).join("include").display()))
        .arg("-o")
        .arg(&lib)
        .arg(c_source("fake_cudart.c"))
        .arg(format!("-Wl,--version-script={}", script.display()))
        .arg(format!("-Wl,-soname,libcudart.so.{major}"));
    run_checked(cc, "compiling the fake runtime");
    lib
}

/// Runs `exe` with the library directory `lib_dir` first in the search path
/// and every symbol bound at start (`LD_BIND_NOW=1`, so a missing version
/// fails at once), plus extra environment.
pub fn run_with(exe: &Path, lib_dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env("LD_LIBRARY_PATH", lib_dir)
        .env("LD_BIND_NOW", "1")
        .env_remove("CUDASTUB_REAL_CUDART")
        .env_remove("CUDA_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
}

/// Bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
