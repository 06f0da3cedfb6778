//! examples/virtual-gpu as one virtual GPU (an "NVIDIA H100 80GB HBM3" by
//! default) across the runtime, the driver and NVML, on this machine with no
//! GPU and no NVIDIA library installed:
//!
//! - the three shims describe the same device (name, compute capability,
//!   multiprocessors, memory, UUID bytes, PCI location, driver version), by the current and
//!   the older entry points, with the defaults and with the configuration
//!   variables (tests/c/vgpu_agree.c);
//! - the real `libggml-cuda.so` (llama.cpp's CUDA 12 build, the incident's
//!   consumer), loaded through ggml's own registry (tests/c/ggml_discover.c)
//!   with only the virtual GPU's CUDA 12 stand-in on the library path, lists
//!   one CUDA device, the H100 with its 81559 MiB, and logs compute
//!   capability 9.0, with nothing failing: no shim line on stderr, every
//!   traced call successful;
//! - the same virtual GPU served remotely (`cudastub serve --lib-dir`, a
//!   server with no GPU either): ggml's discovery and the three libraries'
//!   descriptions in a client process whose only CUDA libraries are the
//!   remote client's are those of the virtual GPU itself.

mod shim_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use cudastub_codegen::catalog::Catalog;

use shim_support::{
    c_compiler, c_source, dist_dir, repo_root, run_checked, runtime, scratch, text, virtual_gpu,
    virtual_gpu_dist,
};

const NAME: &str = "NVIDIA H100 80GB HBM3";
const MEMORY_MIB: usize = 81559;
const UUID_HEX: &str = "5f7e2d4c8b1a4e6f9c3d2a7b8e1f0c5d";
const UUID_TEXT: &str = "GPU-5f7e2d4c-8b1a-4e6f-9c3d-2a7b8e1f0c5d";

/// The pinned ggml libraries of the `inferna-cuda12` wheel.
fn ggml_dir() -> PathBuf {
    let dir = repo_root().join("target/fixtures/ggml-cuda12/lib");
    assert!(
        dir.join("libggml-cuda.so").is_file(),
        "{} is missing: run scripts/fetch-fixtures",
        dir.display()
    );
    // RPATH $ORIGIN: a CUDA library there would be loaded instead of the
    // virtual GPU's.
    for entry in std::fs::read_dir(&dir).expect("read ggml-cuda12/lib") {
        let name = entry.expect("dir entry").file_name();
        assert!(
            name.to_string_lossy().starts_with("libggml"),
            "{} holds {name:?}: only ggml's libraries belong there",
            dir.display()
        );
    }
    dir
}

/// tests/c/ggml_discover.c, linked with ggml's registry (libggml.so,
/// libggml-base.so; found through its RUNPATH).
fn ggml_discover() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let dir = scratch("virtual-gpu-ggml");
        let exe = dir.join("ggml_discover");
        let ggml = ggml_dir();
        let mut cc = Command::new(c_compiler());
        cc.args(["-O1", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&exe)
            .arg(c_source("ggml_discover.c"))
            .arg(format!("-L{}", ggml.display()))
            .args(["-lggml", "-lggml-base"])
            .arg(format!("-Wl,-rpath,{}", ggml.display()));
        run_checked(cc, "compiling ggml_discover.c");
        exe
    })
}

/// Runs `exe` with only `lib_dir` on the library path and no virtual-GPU
/// configuration but `env`; and with no real library to forward to, as on
/// a machine with no NVIDIA library installed, whatever this machine has:
/// each shim's real-library variable (`CUDASTUB_REAL_CUDART`, …) names a
/// file that does not exist, so a call that is not answered by the virtual
/// GPU fails with the shim's one-line diagnostic on stderr.
fn run_alone(exe: &Path, args: &[&Path], lib_dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args).env("LD_LIBRARY_PATH", lib_dir);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CUDASTUB_") || k.starts_with("GGML_") {
            cmd.env_remove(&k);
        }
    }
    let catalog = Catalog::standard().expect("the standard manifests load");
    for view in catalog.views() {
        cmd.env(
            view.real_path_variable(),
            "/nonexistent/no-nvidia-library-here",
        );
    }
    cmd.env_remove("CUDA_HOME")
        .env_remove("LD_PRELOAD")
        .env_remove("CUDA_VISIBLE_DEVICES");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
}

/// tests/c/vgpu_agree.c for `major`, linked against the three shims.
fn agree(major: u32, dir: &Path) -> PathBuf {
    let exe = dir.join(format!("vgpu_agree{major}"));
    let libs = virtual_gpu(major);
    let mut cc = Command::new(c_compiler());
    cc.args(["-O1", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(c_source("vgpu_agree.c"))
        .arg(format!("-I{}", runtime(major).join("include").display()))
        .arg(format!("-L{}", libs.display()))
        .arg(format!("-l:libcudart.so.{major}"))
        .args(["-l:libcuda.so.1", "-l:libnvidia-ml.so.1", "-ldl"]);
    run_checked(cc, "compiling vgpu_agree.c");
    exe
}

/// What vgpu_agree prints for a device of `name`, `mib` MiB and `cc`, with
/// a driver for CUDA `driver`, through the shims of `major`.
fn agreed_lines(major: u32, name: &str, mib: usize, cc: &str, driver: u32) -> Vec<String> {
    let bytes = mib << 20;
    let legacy = u32::try_from(bytes).unwrap_or(u32::MAX);
    // Each ABI of cudaGetDeviceProperties writes its own struct, no more:
    // 12's plain export CUDA 11's 728 bytes (`cudaDeviceProp_v1`), `_v2`
    // 12's 1032; 13's plain export 13's 1008 (13 has no `_v2`).
    let properties = |label: &str, size: usize| {
        format!("properties {label} 0 bytes={size} name={name} cc={cc} sms=132")
    };
    let properties = if major == 12 {
        [properties("legacy", 728), properties("current", 1032)]
    } else {
        [
            properties("current", 1008),
            "properties v2 absent".to_string(),
        ]
    };
    vec![
        format!(
            "runtime 0 count=1 name={name} memory={bytes} cc={cc} sms=132 uuid={UUID_HEX} pci=0000:01:00"
        ),
        format!("runtime-attributes 0 cc={cc} sms=132 pci=0000:01:00"),
        format!("runtime-memory 0 device=0 free={bytes} total={bytes} bus-id=0000:01:00.0"),
        format!(
            "driver 0 count=1 name={name} memory={bytes} cc={cc} sms=132 uuid={UUID_HEX} pci=0000:01:00"
        ),
        format!("nvml 0 count=1 name={name} memory={bytes} uuid={UUID_TEXT}"),
        // NVML_ERROR_ARGUMENT_VERSION_MISMATCH (25) for a wrong version.
        format!(
            "nvml-more 0 cc={cc} memory-v2={bytes} stale-version=25 pci=00000000:01:00.0 \
             legacy-pci=0000:01:00.0 at=0000:01:00 id=233010de"
        ),
        // nvmlPciInfo_t is 68 bytes; its older versions share the first 36.
        "nvml-pci-bytes 0 v1=36 v2=36 v3=68".to_string(),
        format!("legacy 0 0 memory32={legacy} uuid={UUID_HEX} count=1 same-handle=1"),
        format!("driver-version 0 0 runtime={driver} driver={driver}"),
        // The releases the manifests were imported from: 12.9.79, 13.5.37.
        format!(
            "runtime-version 0 {}",
            if major == 12 { 12090 } else { 13050 }
        ),
        properties[0].clone(),
        properties[1].clone(),
    ]
}

#[test]
fn the_runtime_the_driver_and_nvml_describe_one_h100() {
    let dir = scratch("virtual-gpu-agree");
    for major in shim_support::MAJORS {
        let exe = agree(major, &dir);
        let libs = virtual_gpu(major);
        let configured = [
            ("CUDASTUB_VGPU_NAME", "Test vGPU"),
            ("CUDASTUB_VGPU_MEMORY_MIB", "2048"),
            ("CUDASTUB_VGPU_CC", "8.6"),
            ("CUDASTUB_VGPU_DRIVER_VERSION", "12080"),
        ];
        // The runtime's cudaDriverGetVersion (in C) and the driver's (in
        // Rust) read the variable alike: blanks around a number are
        // allowed; what is no number is the default.
        let padded = [("CUDASTUB_VGPU_DRIVER_VERSION", " 12080 ")];
        let garbled = [("CUDASTUB_VGPU_DRIVER_VERSION", "12x")];
        for (env, expect) in [
            (&[][..], agreed_lines(major, NAME, MEMORY_MIB, "9.0", 13000)),
            (
                &configured[..],
                agreed_lines(major, "Test vGPU", 2048, "8.6", 12080),
            ),
            (
                &padded[..],
                agreed_lines(major, NAME, MEMORY_MIB, "9.0", 12080),
            ),
            (
                &garbled[..],
                agreed_lines(major, NAME, MEMORY_MIB, "9.0", 13000),
            ),
        ] {
            let out = run_alone(&exe, &[], &libs, env);
            let stdout = text(&out.stdout);
            assert!(
                out.status.success(),
                "major {major}: {stdout}{}",
                text(&out.stderr)
            );
            let lines: Vec<&str> = stdout.lines().collect();
            assert_eq!(lines, expect, "major {major}, {env:?}");
            // Nothing was forwarded: no real library was looked for.
            assert_eq!(text(&out.stderr), "", "major {major}, {env:?}");
        }
    }
}

/// A driver API a backend implements is what `cuGetProcAddress` hands out:
/// over the real driver (the 535 library; no GPU), the real driver picks the
/// variant for the caller's CUDA version, the shim returns its own export of
/// that variant, and the export answers from the backend: the virtual H100's
/// memory, through `cuDeviceTotalMem_v2` for CUDA 12 and the legacy 32-bit
/// `cuDeviceTotalMem` for CUDA 3.0.
#[test]
fn the_driver_variants_cu_get_proc_address_hands_out_reach_the_backend() {
    let dir = scratch("virtual-gpu-proc-address");
    let libs = virtual_gpu(12);
    let exe = dir.join("vgpu_proc_address");
    let mut cc = Command::new(c_compiler());
    cc.args(["-O1", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(c_source("vgpu_proc_address.c"))
        .arg(format!("-I{}", runtime(12).join("include").display()))
        .arg(format!("-L{}", libs.display()))
        .args(["-l:libcuda.so.1", "-ldl"]);
    run_checked(cc, "compiling vgpu_proc_address.c");
    let real = repo_root().join("target/fixtures/driver/lib/libcuda.so.1");
    assert!(
        real.exists(),
        "{} is missing: run scripts/fetch-fixtures",
        real.display()
    );
    let real = real.display().to_string();
    let out = run_alone(&exe, &[], &libs, &[("CUDASTUB_REAL_CUDA", &real)]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let bytes = MEMORY_MIB << 20;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "cuInit 0".to_string(),
            format!(
                "cuDeviceTotalMem@12000 -> 0 found=1 is-cuDeviceTotalMem_v2=1 call 0 bytes={bytes}"
            ),
            format!(
                "cuDeviceTotalMem@3000 -> 0 found=1 is-cuDeviceTotalMem=1 call 0 bytes={}",
                u32::MAX
            ),
            format!(
                "cuDeviceGetUuid@12000 -> 0 found=1 is-cuDeviceGetUuid_v2=1 call 0 uuid0={}",
                &UUID_HEX[..2]
            ),
        ]
    );
}

/// Runs ggml's discovery of the real libggml-cuda.so with only the virtual
/// GPU's CUDA 12 stand-in on the library path.
fn discover(env: &[(&str, &str)]) -> Output {
    let lib = ggml_dir().join("libggml-cuda.so");
    run_alone(ggml_discover(), &[&lib], &virtual_gpu_dist(12), env)
}

#[test]
fn ggml_lists_the_virtual_h100_with_no_gpu_and_no_cuda_installed() {
    let out = discover(&[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("load ok\n"), "{stdout}{stderr}");
    let devices: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("device "))
        .collect();
    let cuda: Vec<&&str> = devices
        .iter()
        .filter(|l| l.contains(" name=CUDA"))
        .collect();
    let bytes = MEMORY_MIB << 20;
    assert_eq!(
        cuda,
        [&format!(
            "device 0 name=CUDA0 description=\"{NAME}\" free={bytes} total={bytes} total_mib={MEMORY_MIB}"
        )
        .as_str()],
        "one CUDA device, the H100:\n{stdout}{stderr}"
    );
    // ggml_cuda_init's log.
    assert!(
        stderr.contains(&format!(
            "Device 0: {NAME}, compute capability 9.0, VMM: yes, VRAM: {MEMORY_MIB} MiB"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "found 1 CUDA devices (Total VRAM: {MEMORY_MIB} MiB)"
        )),
        "{stderr}"
    );
    // Nothing failed: no shim said a word, ggml reported no error.
    for line in stderr.lines() {
        assert!(
            !line.starts_with("cudastub:") && !line.contains("error") && !line.contains("failed"),
            "{line}\n{stderr}"
        );
    }
}

/// Every call ggml's discovery makes into the stand-in, from the trace:
/// (function, the trace line's result).
fn traced_calls(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("cudastub["))
        .filter_map(|l| {
            let (_, rest) = l.split_once("] ")?;
            let (name, _) = rest.split_once('(')?;
            let (_, result) = rest.rsplit_once(") -> ").unwrap_or((rest, ""));
            Some((name.to_string(), result.to_string()))
        })
        .collect()
}

#[test]
fn every_call_of_ggmls_discovery_is_answered_and_succeeds() {
    let out = discover(&[("CUDASTUB_TRACE", "1")]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let calls = traced_calls(&stderr);
    assert!(!calls.is_empty(), "no trace:\n{stderr}");
    let mut names: Vec<&str> = calls.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    eprintln!("ggml's discovery called: {}", names.join(" "));
    for (name, result) in &calls {
        assert!(
            !result.contains("Error") && !result.contains("ERROR"),
            "{name} -> {result}\n{stderr}"
        );
    }
    // The call model's outputs: what each call wrote, after it succeeded.
    for needle in [
        "cudaGetDeviceCount(count=1) -> cudaSuccess (0)",
        "cuDeviceGet(device=0, ordinal=0) -> CUDA_SUCCESS (0)",
        // cudaMemGetInfo(free, total): 81559 MiB in all.
        "total=85520809984) -> cudaSuccess (0)",
    ] {
        assert!(
            stderr.contains(needle),
            "`{needle}` not in the trace:\n{stderr}"
        );
    }
    for expected in [
        "__cudaRegisterFatBinary",
        "cudaGetDeviceCount",
        "cudaGetDeviceProperties_v2",
        "cuDeviceGet",
        "cuDeviceGetAttribute",
        "cudaMemGetInfo",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} not called: {names:?}"
        );
    }
}

/// `cudastub devices DIR`, with no NVIDIA library reachable (as [`run_alone`]).
fn devices(dir: &Path) -> (Output, String) {
    let out = run_alone(
        cudastub_tests::cudastub(),
        &[Path::new("devices"), dir],
        Path::new("/nonexistent"),
        &[],
    );
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "cudastub devices {}: {stdout}{}",
        dir.display(),
        text(&out.stderr)
    );
    (out, stdout)
}

/// The README tutorial's last step with no CUDA program: the virtual GPU's
/// stand-in shows the H100 through all three libraries; plain dist/12 with
/// no driver says why each library has no device, by status name.
#[test]
fn cudastub_devices_shows_what_a_program_would_see() {
    let (_, stdout) = devices(&virtual_gpu_dist(12));
    for line in [
        "  cudaGetDeviceCount -> cudaSuccess (0): 1 device".to_string(),
        format!(
            "  cudaGetDeviceProperties_v2(device 0) -> cudaSuccess (0): {NAME}, {MEMORY_MIB} MiB"
        ),
        "  cudaDeviceGetAttribute(device 0) -> cudaSuccess (0): compute capability 9.0".into(),
        "  cuInit -> CUDA_SUCCESS (0)".into(),
        "  cuDeviceGetCount -> CUDA_SUCCESS (0): 1 device".into(),
        format!("  cuDeviceGetName(device 0) -> CUDA_SUCCESS (0): {NAME}"),
        format!("  cuDeviceTotalMem_v2(device 0) -> CUDA_SUCCESS (0): {MEMORY_MIB} MiB"),
        "  cuDeviceGetAttribute(device 0) -> CUDA_SUCCESS (0): compute capability 9.0".into(),
        "  nvmlInit_v2 -> NVML_SUCCESS (0)".into(),
        "  nvmlDeviceGetCount_v2 -> NVML_SUCCESS (0): 1 device".into(),
        format!("  nvmlDeviceGetName(device 0) -> NVML_SUCCESS (0): {NAME}"),
        format!("  nvmlDeviceGetMemoryInfo(device 0) -> NVML_SUCCESS (0): {MEMORY_MIB} MiB total"),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "`{line}` expected from the virtual GPU:\n{stdout}"
        );
    }
    let (_, stdout) = devices(&dist_dir(12));
    for line in [
        "  cudaGetDeviceCount -> cudaErrorStubLibrary (34): 0 devices",
        "  cuInit -> CUDA_ERROR_STUB_LIBRARY (34)",
        "  cuDeviceGetCount -> CUDA_ERROR_STUB_LIBRARY (34): 0 devices",
        "  nvmlInit_v2 -> NVML_ERROR_LIBRARY_NOT_FOUND (12)",
        "  nvmlDeviceGetCount_v2 -> NVML_ERROR_LIBRARY_NOT_FOUND (12): 0 devices",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "`{line}` expected from plain dist/12 with no driver:\n{stdout}"
        );
    }
}

/// `cudastub dist --remote` for CUDA 12, once: the client's directory.
fn remote_client_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = scratch("virtual-gpu-remote-dist");
        cudastub_tests::run_cudastub([
            "dist".as_ref(),
            "--remote".as_ref(),
            "--major".as_ref(),
            "12".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
        .expect_success();
        out.join("12")
    })
}

/// A GPU server serving the virtual GPU's CUDA 12 directory, on a machine
/// with no NVIDIA library (each real-library variable names nothing).
fn virtual_gpu_server(socket: &Path) -> cudastub_tests::RemoteServer {
    let catalog = Catalog::standard().expect("the standard manifests load");
    let variables: Vec<String> = catalog
        .views()
        .iter()
        .map(|v| v.real_path_variable().to_string())
        .collect();
    let env: Vec<(&str, &str)> = variables
        .iter()
        .map(|v| (v.as_str(), "/nonexistent/no-nvidia-library-here"))
        .collect();
    cudastub_tests::RemoteServer::start_with(
        &format!("unix:{}", socket.display()),
        &virtual_gpu_dist(12),
        None,
        &env,
    )
}

/// The virtual H100 as a remote GPU: ggml's discovery (the real
/// libggml-cuda.so, its fat binary registered on the server) and the
/// runtime's, driver's and NVML's descriptions (vgpu_agree.c: properties of
/// both ABIs, attributes, memory, UUIDs, PCI) print exactly what they print
/// with the virtual GPU in the process itself, and nothing fails.
#[test]
fn the_virtual_h100_served_remotely_is_what_the_client_discovers() {
    let socket = cudastub_tests::tempdir();
    let server = virtual_gpu_server(&socket.path().join("gpu.sock"));
    let endpoint = server.endpoint.to_string();
    let remote_env = [("CUDASTUB_REMOTE", endpoint.as_str())];
    let lib = ggml_dir().join("libggml-cuda.so");
    let direct = discover(&[]);
    let took = |out: &Output| {
        text(&out.stderr)
            .lines()
            .find_map(|l| l.strip_prefix("discovery took ").map(str::to_string))
            .unwrap_or_else(|| "?".into())
    };
    // The first start sends ggml's fat binary whole; the server keeps it
    // by its hash, and later starts send the hash alone.
    let first = run_alone(ggml_discover(), &[&lib], remote_client_dir(), &remote_env);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let kept: Vec<u64> = std::fs::read_dir(server.module_cache())
        .expect("the module cache")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .collect();
    // One fat binary per translation unit of ggml-cuda, over 100 MiB in all.
    assert!(
        kept.len() > 50 && kept.iter().sum::<u64>() > 100 << 20,
        "ggml's fat binaries kept: {kept:?}"
    );
    let remote = run_alone(ggml_discover(), &[&lib], remote_client_dir(), &remote_env);
    let (stdout, stderr) = (text(&remote.stdout), text(&remote.stderr));
    assert_eq!(
        text(&first.stdout),
        stdout,
        "the first and a later start differ"
    );
    assert!(remote.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        text(&direct.stdout),
        "remote and direct differ:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "Device 0: {NAME}, compute capability 9.0, VMM: yes, VRAM: {MEMORY_MIB} MiB"
        )),
        "{stderr}"
    );
    for line in stderr.lines() {
        assert!(
            !line.starts_with("cudastub:") && !line.contains("error") && !line.contains("failed"),
            "{line}\n{stderr}"
        );
    }
    // On this host the calls went in shared memory; on the socket alone
    // ggml discovers the same.
    let socket_env = [
        ("CUDASTUB_REMOTE", endpoint.as_str()),
        ("CUDASTUB_REMOTE_SHM", "0"),
    ];
    let on_socket = run_alone(ggml_discover(), &[&lib], remote_client_dir(), &socket_env);
    assert!(on_socket.status.success(), "{}", text(&on_socket.stderr));
    assert_eq!(
        text(&on_socket.stdout),
        stdout,
        "shared memory and socket differ"
    );
    eprintln!(
        "ggml's discovery: remote {} (first start), {} (module cached, shared memory), {} (module cached, Unix socket); {} in the process",
        took(&first),
        took(&remote),
        took(&on_socket),
        took(&direct)
    );
    let dir = scratch("virtual-gpu-remote-agree");
    let exe = agree(12, &dir);
    let direct = run_alone(&exe, &[], &virtual_gpu(12), &[]);
    let remote = run_alone(&exe, &[], remote_client_dir(), &remote_env);
    assert!(direct.status.success(), "{}", text(&direct.stderr));
    assert!(
        remote.status.success(),
        "{}{}",
        text(&remote.stdout),
        text(&remote.stderr)
    );
    assert_eq!(
        text(&remote.stdout).lines().collect::<Vec<_>>(),
        agreed_lines(12, NAME, MEMORY_MIB, "9.0", 13000),
        "{}",
        text(&remote.stderr)
    );
    assert_eq!(text(&remote.stderr), "", "nothing said");
    drop(server);
}

/// A C program of tests/c/ built against the virtual GPU's CUDA 12 runtime;
/// run with it in the process, its output, which `expected` must be.
fn in_process(source: &str, expected: &str) -> PathBuf {
    let dir = scratch(&format!("virtual-gpu-{}", source.trim_end_matches(".c")));
    let exe = dir.join(source.trim_end_matches(".c"));
    let mut cc = Command::new(c_compiler());
    cc.args(["-O1", "-Wall", "-Wextra", "-Werror", "-pthread", "-o"])
        .arg(&exe)
        .arg(c_source(source))
        .arg(format!("-I{}", runtime(12).join("include").display()))
        .arg(format!("-L{}", virtual_gpu(12).display()))
        .arg("-l:libcudart.so.12");
    run_checked(cc, &format!("compiling {source}"));
    let direct = run_alone(&exe, &[], &virtual_gpu(12), &[]);
    assert!(direct.status.success(), "{}", text(&direct.stderr));
    assert_eq!(text(&direct.stdout), expected, "{source} in the process");
    exe
}

/// Runs `exe` through the remote client with the virtual GPU served, once
/// per set of extra variables: it must print `expected` and say nothing.
fn remote_prints(exe: &Path, expected: &str, variants: &[&[(&str, &str)]]) {
    let socket = cudastub_tests::tempdir();
    let server = virtual_gpu_server(&socket.path().join("gpu.sock"));
    let endpoint = server.endpoint.to_string();
    for extra in variants {
        let mut env = vec![("CUDASTUB_REMOTE", endpoint.as_str())];
        env.extend_from_slice(extra);
        let remote = run_alone(exe, &[], remote_client_dir(), &env);
        assert!(remote.status.success(), "{}", text(&remote.stderr));
        assert_eq!(
            text(&remote.stdout),
            expected,
            "{env:?}: {}",
            text(&remote.stderr)
        );
        assert_eq!(text(&remote.stderr), "", "nothing said");
    }
    drop(server);
}

/// Host functions and stream callbacks through the remote
/// (tests/c/remote_callbacks.c): the virtual GPU in the server runs them at
/// once (it has no queued work), each a stand-in of the server's; the client
/// makes the calls of its own functions, with their own data, in order,
/// before a later call returns — or, when the process waits for one without
/// calling CUDA, as its poller asks for them: it prints what the virtual
/// GPU in its own process prints, in shared memory, on the socket and with
/// batching off.
#[test]
fn host_functions_run_in_the_client_as_in_the_process() {
    let expected = "cudaLaunchHostFunc(NULL): 1\n\
                    cudaLaunchHostFunc: 0\n\
                    cudaLaunchHostFunc: 0\n\
                    cudaStreamAddCallback: 0\n\
                    cudaLaunchHostFunc: 0\n\
                    cudaGetDeviceCount: 0, 1 device(s)\n\
                    ran: 1 2 103 1\n\
                    cudaLaunchHostFunc: 0\n\
                    a host function waited for with no call: ran\n";
    let exe = in_process("remote_callbacks.c", expected);
    remote_prints(
        &exe,
        expected,
        &[
            &[],
            &[("CUDASTUB_REMOTE_SHM", "0")],
            &[("CUDASTUB_REMOTE_BATCH", "0")],
        ],
    );
}

/// CUDA's per-thread state through the remote (tests/c/remote_threads.c):
/// each client thread's calls are made on a server thread of its own, so a
/// thread's last error is its own, as with the virtual GPU in the process.
/// Threads that end give their number to the next (three threads in turn).
#[test]
fn each_client_thread_has_its_own_cuda_state_on_the_server() {
    let second = "second: cudaGetLastError 0\n\
                  second: cudaSetDevice(9) 101\n\
                  second: cudaPeekAtLastError 101\n\
                  second: cudaGetDevice 0, device 0\n";
    let expected = format!(
        "first: cudaSetDevice(7) 101\n{}first: cudaGetLastError 101\nfirst: cudaGetLastError again 0\n",
        second.repeat(3)
    );
    let exe = in_process("remote_threads.c", &expected);
    remote_prints(&exe, &expected, &[&[], &[("CUDASTUB_REMOTE_SHM", "0")]]);
}
