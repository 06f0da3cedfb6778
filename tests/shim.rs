//! The shim, built from the checked-in manifest, against the real CUDA
//! runtimes of the pinned wheels: its ELF file, consumers linked against the
//! real runtime running through it, argument passing, failure paths and
//! concurrent first calls. No GPU is needed: without a driver the real
//! runtime answers `cudaErrorInsufficientDriver`, and so must the shim.

mod shim_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cudastub_codegen::elf::ElfImage;
use shim_support::*;

#[test]
fn exports_equal_the_real_library() {
    for major in MAJORS {
        let real = ElfImage::read(&real_lib(major)).expect("read the real runtime");
        let shim = ElfImage::read(&shim_lib(major)).expect("read the shim");
        let node = format!("libcudart.so.{major}");
        assert_eq!(
            shim.soname.as_deref(),
            Some(node.as_str()),
            "soname of the {major} shim"
        );
        let defs = |i: &ElfImage| {
            i.version_defs
                .iter()
                .map(|d| (d.index, d.name.clone(), d.base))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            defs(&shim),
            defs(&real),
            "version definitions of the {major} shim"
        );
        let exports = |i: &ElfImage| {
            i.exports
                .iter()
                .map(|s| (s.versioned_name(), s.kind, s.weak))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            exports(&shim),
            exports(&real),
            "exports of the {major} shim differ from the real library"
        );
        let expected = if major == 12 { 435 } else { 458 };
        assert_eq!(shim.exports.len(), expected);
        assert!(
            shim.exports
                .iter()
                .all(|s| s.versioned_name().ends_with(&format!("@@{node}")))
        );
    }
}

#[test]
fn c_consumer_through_the_shim_prints_what_the_real_runtime_prints() {
    let dir = scratch("consumer");
    for major in MAJORS {
        let exe = consumer(major, "consumer.c", &dir);
        let direct = run_with(&exe, &runtime(major).join("lib"), &[], &[]);
        let real = real_lib(major);
        let shimmed = run_with(
            &exe,
            &shim_dir(major),
            &[("CUDASTUB_REAL_CUDART", &real)],
            &[],
        );
        assert!(
            direct.status.success() && shimmed.status.success(),
            "{}",
            text(&shimmed.stderr)
        );
        let expected_version = if major == 12 { "12090" } else { "13050" };
        let direct_out = text(&direct.stdout);
        assert!(
            direct_out.contains(&format!("version {expected_version}")),
            "direct run: {direct_out}"
        );
        assert!(
            direct_out.contains("cudaGetDeviceCount -> 35"),
            "no driver here, so 35 is expected: {direct_out}"
        );
        assert!(direct_out.contains("no CUDA-capable device is detected"));
        assert_eq!(
            text(&shimmed.stdout),
            direct_out,
            "major {major}: output through the shim differs"
        );
        assert_eq!(
            text(&shimmed.stderr),
            "",
            "the shim printed something on a good run"
        );
    }
}

/// nvcc 13.5 from the wheels, `-cudart shared`; for 12, the 12.9 headers and runtime.
fn nvcc_program(major: u32, dir: &Path) -> PathBuf {
    let nvcc = repo_root().join("target/fixtures/nvcc13/bin/nvcc");
    assert!(
        nvcc.is_file(),
        "{} is missing: run scripts/fetch-fixtures",
        nvcc.display()
    );
    let exe = dir.join(format!("kernel{major}"));
    let mut cmd = Command::new(&nvcc);
    cmd.args(["-arch=sm_80", "-cudart", "shared", "-o"])
        .arg(&exe)
        .arg(c_source("kernel.cu"));
    if major == 12 {
        let rt = runtime(12);
        cmd.arg(format!("-I{}", rt.join("include").display()))
            .arg(format!("-L{}", rt.join("lib").display()));
    }
    run_checked(cmd, "nvcc");
    let needed = ElfImage::read(&exe).expect("read the nvcc program").needed;
    assert!(
        needed.contains(&format!("libcudart.so.{major}")),
        "the nvcc program needs {needed:?}"
    );
    exe
}

#[test]
fn nvcc_program_registers_and_launches_through_the_shim() {
    let dir = scratch("nvcc");
    for major in MAJORS {
        let exe = nvcc_program(major, &dir);
        let real_dir = if major == 12 {
            runtime(12).join("lib")
        } else {
            repo_root().join("target/fixtures/nvcc13/lib")
        };
        let direct = run_with(&exe, &real_dir, &[], &[]);
        let real = real_dir.join(format!("libcudart.so.{major}"));
        let mut cmd = Command::new(&exe);
        cmd.env("LD_LIBRARY_PATH", shim_dir(major))
            .env("LD_BIND_NOW", "1")
            .env("CUDASTUB_REAL_CUDART", &real)
            .env("LD_DEBUG", "bindings");
        let shimmed = cmd.output().expect("run the nvcc program");
        assert!(direct.status.success() && shimmed.status.success());
        let out = text(&direct.stdout);
        assert!(
            out.contains("launch cudaErrorInsufficientDriver"),
            "direct run: {out}"
        );
        assert_eq!(
            text(&shimmed.stdout),
            out,
            "major {major}: the nvcc program's output through the shim differs"
        );
        // The program's own references must bind to the shim, or this proves nothing.
        let bindings = text(&shimmed.stderr);
        let shim = shim_lib(major).canonicalize().expect("canonical shim path");
        for symbol in [
            "__cudaRegisterFatBinary",
            "__cudaRegisterFunction",
            "__cudaRegisterFatBinaryEnd",
            "__cudaLaunchKernel",
            "__cudaPushCallConfiguration",
        ] {
            let bound = bindings.lines().any(|l| {
                l.contains(&format!("binding file {}", exe.display()))
                    && l.contains(&format!("`{symbol}' [libcudart.so.{major}]"))
                    && l.contains(&format!(
                        "to {}",
                        shim_dir(major)
                            .join(format!("libcudart.so.{major}"))
                            .display()
                    ))
            });
            assert!(
                bound,
                "major {major}: {symbol} of the nvcc program is not bound to the shim {}",
                shim.display()
            );
        }
    }
}

#[test]
fn by_value_arguments_and_struct_returns_arrive_byte_for_byte() {
    let dir = scratch("byvalue");
    let cases = [
        "cudaLaunchKernel",
        "__cudaPushCallConfiguration",
        "cudaIpcOpenMemHandle",
        "cudaMemset3D",
        "cudaCreateChannelDesc",
        "cudaMemAdvise",
    ];
    for major in MAJORS {
        let exe = consumer(major, "byvalue.c", &dir);
        let fake = fake_lib(major, &dir);
        // The test program itself, straight against the fake: it must pass there too.
        let fake_dir = dir.join(format!("fake{major}"));
        std::fs::create_dir_all(&fake_dir).expect("mkdir");
        std::fs::copy(&fake, fake_dir.join(format!("libcudart.so.{major}"))).expect("copy fake");
        let direct = run_with(
            &exe,
            &fake_dir,
            &[(
                "CUDASTUB_REAL_CUDART",
                &fake_dir.join(format!("libcudart.so.{major}")),
            )],
            &[cases[0], "direct"],
        );
        assert!(
            direct.status.success(),
            "the recording test fails even without the shim: {}",
            text(&direct.stdout)
        );
        for first in cases {
            let out = run_with(
                &exe,
                &shim_dir(major),
                &[("CUDASTUB_REAL_CUDART", &fake)],
                &[first],
            );
            let stdout = text(&out.stdout);
            assert!(
                out.status.success(),
                "major {major}, first call {first}:\n{stdout}{}",
                text(&out.stderr)
            );
            assert_eq!(
                stdout.lines().filter(|l| l.starts_with("PASS")).count(),
                cases.len() + 1,
                "major {major}, first call {first}:\n{stdout}"
            );
            assert!(
                stdout.starts_with(&format!("PASS {first} round 1\nPASS {first} round 2\n")),
                "{stdout}"
            );
        }
    }
}

#[test]
fn a_missing_library_gives_one_line_and_cuda_error_stub_library() {
    let dir = scratch("missing-lib");
    for major in MAJORS {
        let exe = consumer(major, "consumer.c", &dir);
        let nowhere = dir.join("no/such/libcudart.so");
        let out = run_with(
            &exe,
            &shim_dir(major),
            &[("CUDASTUB_REAL_CUDART", &nowhere)],
            &[],
        );
        assert!(
            out.status.success(),
            "the consumer must not die: {:?}",
            out.status
        );
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("cudaRuntimeGetVersion -> 34, version -1"),
            "cudaErrorStubLibrary (34) expected, output untouched:\n{stdout}"
        );
        assert!(stdout.contains("cudaGetDeviceCount -> 34"), "{stdout}");
        assert!(
            stdout.contains("cudaGetErrorName(999) = cudaErrorUnknown"),
            "a valid error name expected:\n{stdout}"
        );
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr.lines().count(),
            1,
            "exactly one diagnostic line expected:\n{stderr}"
        );
        assert!(
            stderr.starts_with("cudastub: cannot load the real libcudart.so."),
            "{stderr}"
        );
        assert!(
            stderr.contains(&nowhere.display().to_string())
                && stderr.contains("CUDASTUB_REAL_CUDART"),
            "{stderr}"
        );
    }
}

#[test]
fn a_missing_function_gives_one_line_and_cuda_error_symbol_not_found() {
    let dir = scratch("missing-symbol");
    for major in MAJORS {
        // The fake runtime has cudaRuntimeGetVersion but none of the others the consumer calls.
        let fake = fake_lib(major, &dir);
        let exe = consumer(major, "consumer.c", &dir);
        let out = run_with(
            &exe,
            &shim_dir(major),
            &[("CUDASTUB_REAL_CUDART", &fake)],
            &[],
        );
        assert!(out.status.success());
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("cudaRuntimeGetVersion -> 0, version 4242"),
            "{stdout}"
        );
        assert!(
            stdout.contains("cudaGetDeviceCount -> 500, count -1"),
            "cudaErrorSymbolNotFound (500) expected:\n{stdout}"
        );
        let stderr = text(&out.stderr);
        let missing: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("cudastub:"))
            .collect();
        assert!(
            missing.iter().any(|l| l.contains(&format!(
                "cudaGetDeviceCount@libcudart.so.{major} is missing from {}",
                fake.display()
            ))),
            "{stderr}"
        );
        // cudaGetErrorString is called twice but reported once.
        assert_eq!(
            missing
                .iter()
                .filter(|l| l.contains("cudaGetErrorString@"))
                .count(),
            1,
            "{stderr}"
        );
    }
}

#[test]
fn the_shim_refuses_to_forward_to_itself() {
    let dir = scratch("itself");
    for major in MAJORS {
        let exe = consumer(major, "consumer.c", &dir);
        // Directly, and through a symbolic link to it.
        let link = dir.join(format!("link-to-shim.so.{major}"));
        std::os::unix::fs::symlink(shim_lib(major), &link).expect("symlink");
        for target in [shim_lib(major), link] {
            let out = run_with(
                &exe,
                &shim_dir(major),
                &[("CUDASTUB_REAL_CUDART", &target)],
                &[],
            );
            assert!(out.status.success());
            assert!(
                text(&out.stdout).contains("cudaRuntimeGetVersion -> 34"),
                "{}",
                text(&out.stdout)
            );
            let stderr = text(&out.stderr);
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains("it is this shim itself"), "{stderr}");
        }
    }
}

#[test]
fn the_search_list_prefers_the_fully_versioned_file() {
    let dir = scratch("search");
    for major in MAJORS {
        // CUDA_HOME/lib64 holds the real runtime as libcudart.so.N.x.y and the
        // fake as plain libcudart.so.N: the versioned file must win.
        let home = dir.join(format!("cuda{major}"));
        let lib64 = home.join("lib64");
        std::fs::create_dir_all(&lib64).expect("mkdir");
        std::fs::copy(
            real_lib(major),
            lib64.join(format!("libcudart.so.{major}.9.79")),
        )
        .expect("copy");
        std::fs::copy(
            fake_lib(major, &dir),
            lib64.join(format!("libcudart.so.{major}")),
        )
        .expect("copy");
        let exe = consumer(major, "consumer.c", &dir);
        let out = run_with(&exe, &shim_dir(major), &[("CUDA_HOME", &home)], &[]);
        let expected = if major == 12 {
            "version 12090"
        } else {
            "version 13050"
        };
        assert!(
            text(&out.stdout).contains(expected),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

#[test]
fn sixty_four_threads_racing_their_first_call_load_the_library_once() {
    let dir = scratch("threads");
    for major in MAJORS {
        let exe = consumer(major, "threads.c", &dir);
        let fake = fake_lib(major, &dir);
        for _ in 0..5 {
            let out = run_with(
                &exe,
                &shim_dir(major),
                &[("CUDASTUB_REAL_CUDART", &fake)],
                &[],
            );
            let stdout = text(&out.stdout);
            assert!(
                stdout.contains("threads 64 result 0 version 4242 all-equal yes"),
                "{stdout}{}",
                text(&out.stderr)
            );
            assert!(
                stdout.contains("loads 1"),
                "the library must be loaded once:\n{stdout}"
            );
        }
        let out = run_with(
            &exe,
            &shim_dir(major),
            &[("CUDASTUB_REAL_CUDART", &real_lib(major))],
            &[],
        );
        let expected = if major == 12 { 12090 } else { 13050 };
        assert!(
            text(&out.stdout).contains(&format!("version {expected} all-equal yes")),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn set_user_id_programs_ignore_cudastub_real_lib() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("secure");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for major in MAJORS {
        let fake = fake_lib(major, &dir);
        // LD_LIBRARY_PATH is ignored in secure execution too: find the shim by RUNPATH.
        let exe = dir.join(format!("consumer-setuid{major}"));
        let mut cc = Command::new(c_compiler());
        cc.arg("-o")
            .arg(&exe)
            .arg(c_source("consumer.c"))
            .arg(real_lib(major))
            .arg(format!(
                "-Wl,-rpath,{}",
                shim_dir(major).canonicalize().expect("shim dir").display()
            ));
        run_checked(cc, "compiling the set-user-ID consumer");
        let run_as_nobody = |setuid: bool| {
            let mode = if setuid { 0o4755 } else { 0o755 };
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let out = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&exe)
                .env("CUDASTUB_REAL_CUDART", &fake)
                .env("LD_BIND_NOW", "1")
                .env_remove("CUDA_HOME")
                .output()
                .expect("run setpriv");
            (text(&out.stdout), text(&out.stderr))
        };
        // Without set-user-ID the variable is honoured (the fake answers 4242) …
        let (stdout, stderr) = run_as_nobody(false);
        assert!(
            stdout.contains("version 4242"),
            "the control run should use the fake:\n{stdout}{stderr}"
        );
        // … with it (real uid nobody, effective uid root), it is ignored.
        let (stdout, stderr) = run_as_nobody(true);
        assert!(
            !stdout.contains("version 4242") && !stderr.contains("fake: loaded"),
            "a set-user-ID program loaded CUDASTUB_REAL_CUDART:\n{stdout}{stderr}"
        );
        assert!(
            stdout.contains("cudaRuntimeGetVersion ->"),
            "the program did not run:\n{stdout}{stderr}"
        );
    }
}
