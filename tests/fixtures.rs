//! The fixture trees work as a CUDA toolchain on a machine with no GPU: nvcc
//! 13.5 builds programs against either runtime, those programs need
//! `libcudart.so.N` with every symbol at version `libcudart.so.N`, and they
//! run (the runtime reports its version without a driver).

use std::path::Path;
use std::process::Command;

use cudastub_tests::{Runtime, fixtures, read_elf, run, tempdir};

/// A program with a kernel launch, so that it calls the `__cuda*`
/// registration and launch entry points as every nvcc-built program does.
const PROGRAM: &str = r#"
#include <cstdio>
#include <cuda_runtime.h>

__global__ void kernel(int *out) { *out = 1; }

int main() {
    int version = 0;
    if (cudaRuntimeGetVersion(&version) != cudaSuccess) return 1;
    kernel<<<1, 1>>>(nullptr);
    (void)cudaGetLastError();
    std::printf("%d\n", version);
    return 0;
}
"#;

/// Builds PROGRAM with nvcc 13.5 against `runtime`'s headers and library.
fn build_with_nvcc(runtime: &Runtime, dir: &Path) -> std::path::PathBuf {
    let f = fixtures();
    let source = dir.join("program.cu");
    std::fs::write(&source, PROGRAM).unwrap();
    let binary = dir.join("program");
    // User -I/-L come before the nvcc tree's own, so the 12.9 headers and
    // libcudart.so.12 win for a CUDA 12 program.
    let include = format!("-I{}", runtime.include.display());
    let lib = format!("-L{}", runtime.lib_dir.display());
    run(Command::new(f.nvcc())
        .args(["-arch=sm_80", "-cudart", "shared", &include, &lib])
        .arg(&source)
        .arg("-o")
        .arg(&binary))
    .expect_success();
    binary
}

#[test]
fn nvcc_builds_and_runs_programs_for_both_runtimes() {
    for runtime in fixtures().runtimes() {
        let dir = tempdir();
        let binary = build_with_nvcc(runtime, dir.path());
        let image = read_elf(&binary);
        assert!(
            image.needed.contains(&runtime.soname),
            "{} should NEED {}: {:?}",
            binary.display(),
            runtime.soname,
            image.needed
        );
        let required: Vec<_> = image.requirements_from(&runtime.soname).collect();
        for name in [
            "cudaRuntimeGetVersion",
            "__cudaRegisterFatBinary",
            "__cudaRegisterFunction",
            "__cudaLaunchKernel",
        ] {
            assert!(
                required.iter().any(|s| s.name == name),
                "a program built by nvcc for {} should require {name}: {:?}",
                runtime.soname,
                required
                    .iter()
                    .map(|s| s.versioned_name())
                    .collect::<Vec<_>>()
            );
        }
        let unversioned: Vec<_> = required
            .iter()
            .filter(|s| s.version_name() != Some(runtime.soname.as_str()))
            .map(|s| s.versioned_name())
            .collect();
        assert!(
            unversioned.is_empty(),
            "symbols required from {} at another version: {unversioned:?}",
            runtime.soname
        );

        let out = run(Command::new(&binary)
            .env("LD_LIBRARY_PATH", &runtime.lib_dir)
            .env("LD_BIND_NOW", "1"));
        out.expect_success();
        let (major, minor) = runtime.release.split_once('.').unwrap();
        let minor = minor.split('.').next().unwrap();
        let expected = major.parse::<u32>().unwrap() * 1000 + minor.parse::<u32>().unwrap() * 10;
        assert_eq!(
            out.stdout.trim(),
            expected.to_string(),
            "cudaRuntimeGetVersion of {}: {out}",
            runtime.library.display()
        );
    }
}
