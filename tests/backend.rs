//! Backends and tracing: the virtual-gpu example built as a user would build
//! it, seen by a consumer linked against the real runtime; the tracer's
//! lines and summary; and the build-time errors a backend author meets.

mod shim_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cudastub_codegen::{audit, elf::ElfImage, manifest};
use shim_support::*;

#[test]
fn the_virtual_gpu_is_what_a_consumer_of_the_real_runtime_discovers() {
    let dir = scratch("virtual-gpu");
    for major in MAJORS {
        let exe = consumer(major, "enumerate.c", &dir);
        let real = real_lib(major);
        // Under the virtual GPU, the real runtime and (through the driver
        // shim) the real 535 driver, for what is forwarded.
        let driver = repo_root().join("target/fixtures/driver/lib/libcuda.so.1");
        let memory = dir.join("2048");
        let out = run_with(
            &exe,
            &virtual_gpu(major),
            &[
                ("CUDASTUB_REAL_CUDART", &real),
                ("CUDASTUB_REAL_CUDA", &driver),
                ("CUDASTUB_VGPU_NAME", Path::new("Test vGPU 8.6")),
                (
                    "CUDASTUB_VGPU_MEMORY_MIB",
                    Path::new(memory.file_name().expect("name")),
                ),
                ("CUDASTUB_VGPU_CC", Path::new("8.6")),
                ("CUDASTUB_VGPU_DRIVER_VERSION", Path::new("12345")),
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let bytes = 2048usize << 20;
        let expect = [
            "count cudaSuccess 1".to_string(),
            // The error state is the real runtime's, which cannot start
            // here (no GPU) and says so from every cudaGetLastError, as it
            // does with no virtual GPU; the same error as cudaMalloc's.
            if major == 12 {
                "last-error cudaErrorInitializationError".to_string()
            } else {
                "last-error cudaErrorInsufficientDriver".to_string()
            },
            format!("device 0 cudaSuccess name=\"Test vGPU 8.6\" memory={bytes} cc=8.6 sms=132"),
            "attribute cc-major cudaSuccess 8".to_string(),
            "set-device 1 cudaErrorInvalidDevice".to_string(),
            "get-device cudaSuccess 0".to_string(),
            format!("mem-info cudaSuccess free={bytes} total={bytes}"),
            // Forwarded to the real runtime.
            format!(
                "runtime-version cudaSuccess {}",
                if major == 12 { 12090 } else { 13050 }
            ),
            // Implemented in C.
            "driver-version cudaSuccess 12345".to_string(),
            // Forwarded: the real runtime's answer, over the driver shim
            // and the real 535 driver on a machine with no GPU; 13's
            // runtime finds the driver version the virtual driver reports
            // (12345 here) too old.
            if major == 12 {
                "malloc cudaErrorInitializationError 3".to_string()
            } else {
                "malloc cudaErrorInsufficientDriver 35".to_string()
            },
        ];
        for line in &expect {
            assert!(
                stdout.lines().any(|l| l == line),
                "major {major}: missing `{line}` in:\n{stdout}"
            );
        }
        if major == 12 {
            // The legacy entry point of CUDA 11 binaries is part of the API
            // the example implements: answered from the virtual GPU, in CUDA
            // 11's layout (whose name, memory and compute capability sit
            // where 12's do; tests/virtual_gpu.rs checks the bytes written).
            let legacy = stdout
                .lines()
                .find(|l| l.starts_with("legacy 0 "))
                .unwrap_or_else(|| panic!("no legacy line:\n{stdout}"));
            assert_eq!(
                legacy,
                format!("legacy 0 cudaSuccess name=\"Test vGPU 8.6\" memory={bytes} cc=8.6"),
                "the legacy cudaGetDeviceProperties of 12 is the backend's:\n{stdout}"
            );
        }
        let stderr = text(&out.stderr);
        assert_eq!(stderr.trim(), "", "{stderr}");
    }
}

#[test]
fn the_virtual_gpu_passes_the_manifest_audit() {
    for (manifest, soname) in [
        ("codegen/api/cudart.yaml", "libcudart.so.N"),
        ("codegen/api/cuda.yaml", "libcuda.so.1"),
        ("codegen/api/nvml.yaml", "libnvidia-ml.so.1"),
    ] {
        let m = manifest::load(&repo_root().join(manifest)).expect("manifest");
        for major in MAJORS {
            let soname = soname.replace('N', &major.to_string());
            let lib = virtual_gpu(major).join(&soname);
            let image = ElfImage::read(&lib).expect("read the example's library");
            let report = audit::against_manifest(&image, &m, major);
            assert!(
                report.differences.is_empty(),
                "{soname}, major {major}: {:?}",
                report.differences
            );
        }
    }
}

/// Runs `exe` through the plain shim with tracing; returns (stdout, stderr, trace file text).
fn traced(
    major: u32,
    exe: &Path,
    mode: &str,
    real: &Path,
    args: &[&str],
) -> (String, String, String) {
    let trace = exe.with_extension(format!("trace-{mode}"));
    let _ = std::fs::remove_file(&trace);
    let out = run_with(
        exe,
        &shim_dir(major),
        &[
            ("CUDASTUB_REAL_CUDART", real),
            ("CUDASTUB_TRACE", Path::new(mode)),
            ("CUDASTUB_TRACE_FILE", &trace),
        ],
        args,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    (
        text(&out.stdout),
        text(&out.stderr),
        std::fs::read_to_string(&trace).unwrap_or_default(),
    )
}

/// `cudastub[TID] NAME(ARGS) -> RET TIMEus`: the function and the rest.
fn parse_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("cudastub[")?;
    let (tid, rest) = rest.split_once("] ")?;
    tid.parse::<u64>().ok()?;
    let (name, rest) = rest.split_once('(')?;
    let (_, time) = rest.rsplit_once(' ')?;
    time.strip_suffix("us")?.parse::<f64>().ok()?;
    Some((name, rest))
}

#[test]
fn each_traced_call_is_one_line_with_decoded_arguments_and_named_result() {
    let dir = scratch("trace-lines");
    for major in MAJORS {
        let exe = consumer(major, "consumer.c", &dir);
        let (stdout, _, trace) = traced(major, &exe, "1", &real_lib(major), &[]);
        let names: Vec<&str> = trace
            .lines()
            .map(|l| {
                parse_line(l)
                    .unwrap_or_else(|| panic!("malformed trace line: {l}"))
                    .0
            })
            .collect();
        assert_eq!(
            names,
            [
                "cudaRuntimeGetVersion",
                "cudaDriverGetVersion",
                "cudaGetErrorString",
                "cudaGetErrorString",
                "cudaGetErrorName",
                "cudaGetDeviceCount"
            ],
            "each call once, in order:\n{trace}"
        );
        for needle in [
            "cudaGetErrorString(error=cudaErrorNoDevice (100)) -> \"no CUDA-capable device is detected\"",
            "cudaGetErrorName(error=cudaErrorUnknown (999)) -> \"cudaErrorUnknown\"",
            // A failed call wrote nothing: its output shows as the address.
            "cudaGetDeviceCount(count=0x",
            ") -> cudaErrorInsufficientDriver (35)",
            // Outputs of a successful call show as what the call wrote.
            &format!(
                "cudaRuntimeGetVersion(runtimeVersion={}) -> cudaSuccess (0)",
                if major == 12 { 12090 } else { 13050 }
            ),
            "cudaDriverGetVersion(driverVersion=0) -> cudaSuccess (0)",
        ] {
            assert!(
                trace.contains(needle),
                "`{needle}` not in the trace:\n{trace}"
            );
        }
        assert!(
            stdout.contains("cudaGetDeviceCount -> 35"),
            "tracing changed the results:\n{stdout}"
        );
    }
}

#[test]
fn traced_by_value_structs_show_their_fields() {
    let dir = scratch("trace-byvalue");
    for major in MAJORS {
        let exe = consumer(major, "byvalue.c", &dir);
        let fake = fake_lib(major, &dir);
        let (stdout, _, trace) = traced(major, &exe, "1", &fake, &["cudaMemset3D"]);
        assert!(
            stdout.contains("PASS cudaLaunchKernel round 1"),
            "tracing broke argument passing:\n{stdout}"
        );
        for needle in [
            "cudaLaunchKernel(func=0x1111, gridDim={x=3, y=5, z=7}, blockDim={x=12, y=13, z=17}, args=0x2222, sharedMem=13107, stream=0x4444) -> 77",
            "cudaMemset3D(pitchedDevPtr={ptr=0x6666, pitch=512, xsize=101, ysize=200}, value=90, extent={width=1000, height=2000, depth=3001}) -> 79",
            "cudaCreateChannelDesc(x=8, y=16, z=25, w=32, f=cudaChannelFormatKindFloat (2)) -> {x=9, y=17, z=26, w=33, f=cudaChannelFormatKindFloat (2)}",
            "__cudaPushCallConfiguration(gridDim={x=21, y=22, z=24}, blockDim={x=24, y=25, z=26}, sharedMem=27, stream=0x28) -> 7",
        ] {
            assert!(
                trace.contains(needle),
                "major {major}: `{needle}` not in the trace:\n{trace}"
            );
        }
    }
}

#[test]
fn the_summary_counts_every_call_and_error() {
    let dir = scratch("trace-summary");
    for major in MAJORS {
        let exe = consumer(major, "consumer.c", &dir);
        let (_, _, summary) = traced(major, &exe, "summary", &real_lib(major), &[]);
        let row = |name: &str| -> (u64, u64) {
            let line = summary
                .lines()
                .find(|l| l.ends_with(&format!("  {name}")))
                .unwrap_or_else(|| panic!("no row for {name}:\n{summary}"));
            let cols: Vec<&str> = line.split_whitespace().collect();
            (
                cols[2].parse().expect("calls"),
                cols[3].parse().expect("errors"),
            )
        };
        assert!(
            summary.starts_with(&format!("cudastub: API summary (libcudart.so.{major})\n")),
            "{summary}"
        );
        assert_eq!(row("cudaGetErrorString"), (2, 0));
        assert_eq!(row("cudaGetDeviceCount"), (1, 1), "35 is an error");
        assert_eq!(row("cudaRuntimeGetVersion"), (1, 0));
        assert_eq!(
            summary.lines().count(),
            2 + 5,
            "one row per function called:\n{summary}"
        );
    }
}

#[test]
fn sixteen_threads_tracing_at_once_write_whole_lines() {
    let dir = scratch("trace-threads");
    for major in MAJORS {
        let exe = consumer(major, "trace_threads.c", &dir);
        let (stdout, _, trace) = traced(major, &exe, "1", &real_lib(major), &[]);
        let calls: usize = stdout
            .trim()
            .strip_prefix("calls ")
            .and_then(|n| n.parse().ok())
            .expect("calls N");
        let lines: Vec<&str> = trace.lines().collect();
        assert_eq!(lines.len(), calls, "one line per call");
        for l in &lines {
            let (name, rest) =
                parse_line(l).unwrap_or_else(|| panic!("interleaved or malformed line: {l}"));
            assert!(
                matches!(name, "cudaRuntimeGetVersion" | "cudaGetErrorName"),
                "{l}"
            );
            assert!(rest.contains(") -> "), "{l}");
        }
    }
}

#[test]
fn an_implementation_calling_the_shim_is_traced_once() {
    let dir = scratch("trace-reentrant");
    for major in MAJORS {
        let exe = consumer(major, "enumerate.c", &dir);
        let trace = dir.join(format!("enumerate{major}.trace"));
        let out = run_with(
            &exe,
            &virtual_gpu(major),
            &[
                ("CUDASTUB_REAL_CUDART", &real_lib(major)),
                // No real driver, whatever this machine has.
                ("CUDASTUB_REAL_CUDA", Path::new("/nonexistent/libcuda.so.1")),
                ("CUDASTUB_TRACE", Path::new("1")),
                ("CUDASTUB_TRACE_FILE", &trace),
            ],
            &[],
        );
        assert!(out.status.success());
        let trace = std::fs::read_to_string(&trace).expect("trace file");
        // cudaGetDeviceProperties calls cudaGetDeviceCount through the shim; only
        // the consumer's own call is a line of its own.
        let count_lines = trace
            .lines()
            .filter(|l| l.contains("] cudaGetDeviceCount("))
            .count();
        assert_eq!(count_lines, 1, "{trace}");
        let props = if major == 12 {
            "] cudaGetDeviceProperties_v2("
        } else {
            "] cudaGetDeviceProperties("
        };
        assert!(
            trace
                .lines()
                .any(|l| l.contains(props) && l.contains("-> cudaSuccess (0)")),
            "{trace}"
        );
        // Forwarded to the real runtime, whose driver here is the driver
        // shim with no real driver beneath.
        assert!(
            trace.lines().any(|l| l.contains("] cudaMalloc(devPtr=0x")
                && l.contains("-> cudaErrorStubLibrary (34)")),
            "{trace}"
        );
    }
}

#[test]
fn an_unopenable_trace_file_falls_back_to_stderr() {
    let dir = scratch("trace-badfile");
    let exe = consumer(12, "consumer.c", &dir);
    let bad = dir.join("no/such/dir/trace.log");
    let out = run_with(
        &exe,
        &shim_dir(12),
        &[
            ("CUDASTUB_REAL_CUDART", &real_lib(12)),
            ("CUDASTUB_TRACE", Path::new("1")),
            ("CUDASTUB_TRACE_FILE", &bad),
        ],
        &[],
    );
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    let diagnostics: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("cudastub: "))
        .collect();
    assert_eq!(diagnostics.len(), 1, "{stderr}");
    assert!(
        diagnostics[0].contains("cannot open CUDASTUB_TRACE_FILE=")
            && diagnostics[0].contains("tracing to stderr"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| parse_line(l).is_some()).count(),
        6,
        "{stderr}"
    );
}

#[test]
fn without_cudastub_trace_nothing_is_traced() {
    let dir = scratch("trace-off");
    let exe = consumer(13, "consumer.c", &dir);
    let out = run_with(
        &exe,
        &shim_dir(13),
        &[("CUDASTUB_REAL_CUDART", &real_lib(13))],
        &[],
    );
    assert_eq!(text(&out.stderr), "");
}

/// A scratch crate whose `build.rs` configures a shim per `CASE`, with a
/// backend whose `cudaGetDeviceCount` takes `unsigned int *` instead of `int *`.
fn backend_crate(dir: &Path) -> PathBuf {
    let krate = dir.join("bad-backend");
    std::fs::create_dir_all(krate.join("src")).expect("mkdir");
    let codegen = repo_root().join("codegen");
    let manifest = repo_root().join("cuda-api.yaml");
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"bad-backend\"\nversion = \"0.0.0\"\nedition = \"2024\"\n[workspace]\n[lib]\ncrate-type = [\"cdylib\"]\n\
             [dependencies]\ncudastub-runtime = {{ path = {:?} }}\n[build-dependencies]\ncudastub-codegen = {{ path = {:?}, default-features = false }}\n",
            repo_root().join("runtime").display().to_string(),
            codegen.display().to_string()
        ),
    )
    .expect("Cargo.toml");
    std::fs::write(
        krate.join("build.rs"),
        format!(
            r#"use cudastub_codegen::emit::shim::ShimBuild;
fn main() {{
    println!("cargo:rerun-if-env-changed=CASE");
    let shim = ShimBuild::new({:?}).library("cudart").default_major(12);
    let shim = match std::env::var("CASE").unwrap_or_default().as_str() {{
        "signature" => shim.implement(["cudaGetDeviceCount"]),
        "absent" => shim.implement(["cudaGetDeviceProperties_v2"]),
        "nowhere" => shim.implement(["cudaFrobnicate"]),
        "status" => shim.fail(["cudaMalloc"], "cudaErrorBogus"),
        "policy" => shim.policy_str("cudaMalloc", "explode"),
        other => panic!("unknown CASE {{other}}"),
    }};
    if let Err(e) = shim.build() {{
        eprintln!("{{e}}");
        std::process::exit(1);
    }}
}}
"#,
            manifest.display().to_string()
        ),
    )
    .expect("build.rs");
    std::fs::write(
        krate.join("src/lib.rs"),
        "include!(concat!(env!(\"OUT_DIR\"), \"/cudastub_shim.rs\"));\nmod backend {\n    \
         pub unsafe extern \"C\" fn cuda_get_device_count(count: *mut u32) -> crate::types::cudaError_t {\n        \
         unsafe { *count = 1 };\n        0\n    }\n}\n",
    )
    .expect("lib.rs");
    krate
}

fn build_case(krate: &Path, case: &str, major: u32) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(krate)
        .args(["build", "--release", "--quiet"])
        .env("CASE", case)
        .env("CUDASTUB_MAJOR", major.to_string())
        .env(
            "CARGO_TARGET_DIR",
            repo_root().join("target/test-bad-backend"),
        )
        .output()
        .expect("run cargo");
    assert!(!out.status.success(), "case {case} built, but must not");
    text(&out.stderr)
}

#[test]
fn backend_mistakes_fail_the_build_with_a_message_that_names_them() {
    let krate = backend_crate(&scratch("compile-fail"));
    let stderr = build_case(&krate, "signature", 12);
    for needle in [
        "IMPLEMENTS_cudaGetDeviceCount",
        "expected fn pointer",
        "*mut i32",
        "found fn item",
        "*mut u32",
        "cuda_get_device_count",
    ] {
        assert!(
            stderr.contains(needle),
            "signature mismatch: `{needle}` not in:\n{stderr}"
        );
    }
    let stderr = build_case(&krate, "absent", 13);
    assert!(
        stderr.contains(
            "`cudaGetDeviceProperties_v2` is not a function of major 13 (it is in major 12)"
        ),
        "{stderr}"
    );
    let stderr = build_case(&krate, "nowhere", 12);
    assert!(
        stderr.contains("`cudaFrobnicate` is not a function of cudart in any major"),
        "{stderr}"
    );
    let stderr = build_case(&krate, "status", 12);
    assert!(
        stderr.contains("unknown status `cudaErrorBogus` for major 12"),
        "{stderr}"
    );
    let stderr = build_case(&krate, "policy", 12);
    assert!(
        stderr.contains("cudaMalloc: unknown policy `explode`"),
        "{stderr}"
    );
}
