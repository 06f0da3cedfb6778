//! The shim never crashes, hangs, leaks or loses output, whatever its host
//! does (issue 12): each case below once failed (a crash, a hang killed by
//! the time limit, a leak, a lost errno) and is run against the shims that
//! `cudastub dist` builds, with a recording fake runtime behind them
//! (tests/c/robust_fake.c) driven by tests/c/robust.c and tests/c/dlcycle.c.
//! The command-line cases (FIFOs, full disks, closed pipes, blocked
//! destinations) run the `cudastub` binary. Every run has a time limit, so a
//! hang fails its test instead of stalling the suite.

mod shim_support;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cudastub_tests::{assert_untouched, fixtures, run_cudastub, snapshot, tempdir};
use shim_support::*;

/// How long one run may take before it counts as a hang.
const LIMIT_SECONDS: u32 = 60;

/// The fake runtime of `major` (tests/c/robust_fake.c), with the real
/// library's soname and version node.
fn fake(major: u32, dir: &Path) -> PathBuf {
    let lib = dir.join(format!("robust-fake{major}.so"));
    let script = dir.join(format!("robust-fake{major}.map"));
    std::fs::write(&script, format!("libcudart.so.{major} {{ global: *; }};\n"))
        .expect("write the fake's version script");
    let mut cc = Command::new(c_compiler());
    cc.args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(c_source("robust_fake.c"))
        .arg(format!("-Wl,--version-script={}", script.display()))
        .arg(format!("-Wl,-soname,libcudart.so.{major}"))
        .arg("-ldl");
    run_checked(cc, "compiling robust_fake.c");
    lib
}

/// tests/c/robust.c, linked against the real runtime of `major`.
fn host(major: u32, dir: &Path) -> PathBuf {
    let exe = dir.join(format!("robust{major}"));
    let mut cc = Command::new(c_compiler());
    cc.arg("-o")
        .arg(&exe)
        .arg(c_source("robust.c"))
        .arg(real_lib(major))
        .args(["-ldl", "-lpthread"]);
    run_checked(cc, "compiling robust.c");
    exe
}

/// Runs `exe args` with `lib_dir` first in the library path and `env`,
/// killed after [`LIMIT_SECONDS`] (`timeout -s KILL`: exit status 137).
fn run_limited(exe: &Path, lib_dir: &Path, env: &[(&str, &OsStr)], args: &[&str]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &LIMIT_SECONDS.to_string()])
        .arg(exe)
        .args(args)
        .env("LD_LIBRARY_PATH", lib_dir)
        .env("LD_BIND_NOW", "1")
        .env_remove("CUDASTUB_REAL_CUDART")
        .env_remove("CUDASTUB_TRACE")
        .env_remove("CUDASTUB_TRACE_FILE")
        .env_remove("CUDA_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
}

/// Panics with the output unless the run exited 0 (137: killed at the limit).
fn expect_success(out: &Output, what: &str) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let hint = if out.status.code() == Some(137) {
        format!(" (killed after {LIMIT_SECONDS} s: it hung)")
    } else {
        String::new()
    };
    assert!(
        out.status.success(),
        "{what}: {:?}{hint}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Item 1: tracing reads only `const char *` inputs, bounded and without
/// faulting. An unfilled 16-byte output buffer before a guard page, the same
/// bytes as an unterminated input string, and a code address passed as
/// `const char *` all show as addresses; real strings show as strings.
#[test]
fn tracing_never_reads_memory_the_api_does_not_promise() {
    let dir = scratch("robust-trace");
    for major in MAJORS {
        let fake = fake(major, &dir);
        let exe = host(major, &dir);
        let out = run_limited(
            &exe,
            &shim_dir(major),
            &[
                ("CUDASTUB_REAL_CUDART", fake.as_os_str()),
                ("CUDASTUB_TRACE", os("1")),
            ],
            &["trace"],
        );
        let (stdout, stderr) = expect_success(&out, &format!("major {major}, traced"));
        assert!(stdout.ends_with("done\n"), "{stdout}");
        let line = |name: &str| {
            stderr
                .lines()
                .find(|l| l.contains(&format!("] {name}(")))
                .unwrap_or_else(|| panic!("no trace line for {name}:\n{stderr}"))
                .to_string()
        };
        let pci = line("cudaDeviceGetPCIBusId");
        assert!(
            pci.contains("pciBusId=0x"),
            "an output buffer is an address: {pci}"
        );
        let by_id = line("cudaDeviceGetByPCIBusId");
        assert!(
            by_id.contains("pciBusId=0x"),
            "an unterminated string before unmapped memory is an address: {by_id}"
        );
        let register = line("__cudaRegisterFunction");
        assert!(
            register.contains("hostFun=0x")
                && register.contains("deviceFun=0x")
                && register.contains("deviceName=\"kernel_name\""),
            "a code address is an address, `char *` too, a name a string: {register}"
        );
        let error = line("cudaGetErrorString");
        assert!(error.contains("-> \"fake error string\""), "{error}");
    }
}

/// Item 2: two shim copies where the real library should be, one of them
/// the host's: each refuses the other (it carries the shim note) instead of
/// forwarding to it forever. Also when the host's shim is a third copy.
#[test]
fn shim_copies_in_the_search_path_refuse_each_other() {
    let dir = scratch("robust-two-shims");
    for major in MAJORS {
        let home = dir.join(format!("cuda{major}"));
        let lib64 = home.join("lib64");
        std::fs::create_dir_all(&lib64).expect("mkdir");
        let versioned = format!("libcudart.so.{major}.99.0");
        for name in [format!("libcudart.so.{major}"), versioned.clone()] {
            std::fs::copy(shim_lib(major), lib64.join(name)).expect("copy the shim");
        }
        let exe = host(major, &dir);
        for host_dir in [lib64.clone(), shim_dir(major)] {
            let out = run_limited(
                &exe,
                &host_dir,
                &[("CUDA_HOME", home.as_os_str())],
                &["version"],
            );
            let (stdout, stderr) = expect_success(&out, &format!("major {major}"));
            assert!(
                stdout.contains("cudaRuntimeGetVersion -> 34"),
                "no real library, so cudaErrorStubLibrary:\n{stdout}"
            );
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(
                stderr.contains(&format!("{versioned}: it is a cudastub shim")),
                "the diagnostic names the other shim:\n{stderr}"
            );
        }
    }
}

/// Item 3: the real library's constructor calls the shim back on the
/// loading thread: that call fails with the library-missing status and one
/// line, instead of waiting for the initialisation it is part of.
#[test]
fn a_call_from_the_real_library_constructor_fails_instead_of_deadlocking() {
    let dir = scratch("robust-callback");
    for major in MAJORS {
        let fake = fake(major, &dir);
        let exe = host(major, &dir);
        let out = run_limited(
            &exe,
            &shim_dir(major),
            &[
                ("CUDASTUB_REAL_CUDART", fake.as_os_str()),
                ("FAKE_CALL_BACK", os("1")),
            ],
            &["version"],
        );
        let (stdout, stderr) = expect_success(&out, &format!("major {major}"));
        assert!(
            stderr.contains("fake: call back cudaGetDeviceCount -> 34"),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "cudaGetDeviceCount was called while libcudart.so.{major} was being loaded"
            )),
            "{stderr}"
        );
        assert!(
            stdout.contains("cudaRuntimeGetVersion -> 0, version 4242"),
            "the load itself succeeds:\n{stdout}"
        );
    }
}

/// Item 4: a FIFO as the trace file, with no reader (whose open would block)
/// and with one (whose writes could): refused with one line, traced to stderr.
#[test]
fn a_fifo_as_trace_file_never_blocks() {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = scratch("robust-fifo");
    let fifo = dir.join("trace.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let major = 12;
    let fake = fake(major, &dir);
    let exe = host(major, &dir);
    for with_reader in [false, true] {
        // Held open for the run: a reader that never reads.
        let _reader = with_reader.then(|| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc_o_nonblock())
                .open(&fifo)
                .expect("open the FIFO for reading")
        });
        let out = run_limited(
            &exe,
            &shim_dir(major),
            &[
                ("CUDASTUB_REAL_CUDART", fake.as_os_str()),
                ("CUDASTUB_TRACE", os("1")),
                ("CUDASTUB_TRACE_FILE", fifo.as_os_str()),
            ],
            &["version"],
        );
        let (stdout, stderr) = expect_success(&out, &format!("reader {with_reader}"));
        assert!(stdout.contains("version 4242"), "{stdout}");
        let diagnostics: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("cudastub: "))
            .collect();
        assert_eq!(diagnostics.len(), 1, "{stderr}");
        assert!(
            diagnostics[0].contains("cannot open CUDASTUB_TRACE_FILE=")
                && diagnostics[0].contains("FIFO")
                && diagnostics[0].contains("tracing to stderr"),
            "{stderr}"
        );
        assert!(
            stderr.contains("] cudaRuntimeGetVersion("),
            "the line goes to stderr instead:\n{stderr}"
        );
    }
}

fn libc_o_nonblock() -> i32 {
    0o4000
}

/// Item 8: 2000 dlopen/call/dlclose cycles under a 64-descriptor limit,
/// tracing to a file: the shim stays loaded after its first initialisation
/// (RTLD_NODELETE), so the real library is loaded once, the trace file
/// opened once, and a missing library reported once.
#[test]
fn two_thousand_dlopen_dlclose_cycles_leak_nothing() {
    let dir = scratch("robust-dlcycle");
    let exe = dir.join("dlcycle");
    let mut cc = Command::new(c_compiler());
    cc.arg("-o")
        .arg(&exe)
        .arg(c_source("dlcycle.c"))
        .arg("-ldl");
    run_checked(cc, "compiling dlcycle.c");
    for major in MAJORS {
        let fake = fake(major, &dir);
        let trace = dir.join(format!("trace{major}.log"));
        let shim = shim_lib(major);
        let shim_arg = shim.to_str().expect("a UTF-8 path");
        let out = run_limited(
            &exe,
            &dir,
            &[
                ("CUDASTUB_REAL_CUDART", fake.as_os_str()),
                ("CUDASTUB_TRACE", os("1")),
                ("CUDASTUB_TRACE_FILE", trace.as_os_str()),
            ],
            &[shim_arg, "2000"],
        );
        let (stdout, stderr) = expect_success(&out, &format!("major {major}"));
        assert!(
            stdout.contains("first cycle -> 0, version 4242"),
            "{stdout}"
        );
        let counts = stdout
            .lines()
            .find_map(|l| l.strip_prefix("cycles 2000, descriptors before "))
            .unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
        let (before, after) = counts.split_once(" after ").expect("before N after M");
        let (before, after): (i64, i64) = (before.parse().unwrap(), after.parse().unwrap());
        assert!(
            after <= before + 1,
            "descriptors leaked: {before} before, {after} after 2000 cycles (one trace file allowed)"
        );
        assert_eq!(
            stderr.matches("fake: loaded").count(),
            1,
            "the real library must be loaded once:\n{stderr}"
        );
        let lines = std::fs::read_to_string(&trace).expect("the trace file");
        assert_eq!(lines.lines().count(), 2000, "one trace line per call");

        let missing = dir.join("no/such/libcudart.so");
        let out = run_limited(
            &exe,
            &dir,
            &[("CUDASTUB_REAL_CUDART", missing.as_os_str())],
            &[shim_arg, "2000"],
        );
        let (stdout, stderr) = expect_success(&out, &format!("major {major}, no library"));
        assert!(stdout.contains("first cycle -> 34"), "{stdout}");
        assert_eq!(
            stderr.matches("cannot load the real").count(),
            1,
            "one initialisation, one diagnostic:\n{stderr}"
        );
    }
}

/// Item 9: the first call (the lazy path, which loads the library through
/// glibc code that uses AVX and `vzeroupper`) reaches its target with every
/// bit of the caller's ymm0-7 and zmm0-7.
#[test]
fn the_first_call_arrives_with_the_callers_whole_vector_registers() {
    let dir = scratch("robust-vectors");
    for major in MAJORS {
        let fake = fake(major, &dir);
        let exe = host(major, &dir);
        for mode in ["ymm", "zmm"] {
            let out = run_limited(
                &exe,
                &shim_dir(major),
                &[("CUDASTUB_REAL_CUDART", fake.as_os_str())],
                &[mode],
            );
            let (stdout, _) = expect_success(&out, &format!("major {major}, {mode}"));
            if stdout.trim() == "unsupported" {
                eprintln!("this CPU has no {mode} registers: that case is not checked");
                continue;
            }
            assert!(
                stdout.contains(&format!("result 0, {mode}0-7 intact")),
                "major {major}:\n{stdout}"
            );
        }
    }
}

/// Item 10: fork() while another thread is inside the first call's loading
/// (the real library's constructor is slow): the child's first call loads
/// again in the child instead of waiting for a thread it does not have.
#[test]
fn a_child_forked_during_the_first_load_does_not_hang() {
    let dir = scratch("robust-fork");
    for major in MAJORS {
        let fake = fake(major, &dir);
        let exe = host(major, &dir);
        let out = run_limited(
            &exe,
            &shim_dir(major),
            &[
                ("CUDASTUB_REAL_CUDART", fake.as_os_str()),
                ("FAKE_SLEEP_MS", os("1500")),
            ],
            &["fork"],
        );
        let (stdout, _) = expect_success(&out, &format!("major {major}"));
        for expected in [
            "child -> 0, version 4242",
            "child exited 0",
            "thread -> 0, version 4242",
        ] {
            assert!(stdout.contains(expected), "missing `{expected}`:\n{stdout}");
        }
    }
}

/// Item 11: errno is the caller's after a first call that searched several
/// directories, and after traced calls whose trace writes fail (/dev/full);
/// the failing trace file is reported once.
#[test]
fn errno_survives_loading_and_a_failing_trace_file() {
    let dir = scratch("robust-errno");
    for major in MAJORS {
        let home = dir.join(format!("cuda{major}"));
        // $CUDA_HOME/lib64 does not exist: the search fails there first.
        std::fs::create_dir_all(home.join("lib")).expect("mkdir");
        std::fs::copy(
            fake(major, &dir),
            home.join("lib").join(format!("libcudart.so.{major}")),
        )
        .expect("copy the fake");
        let exe = host(major, &dir);
        let expected = "first call -> 0, version 4242, errno 4242\n\
                        call 2 -> 0, errno 4243\ncall 3 -> 0, errno 4244\ncall 4 -> 0, errno 4245\n";
        let plain = run_limited(
            &exe,
            &shim_dir(major),
            &[("CUDA_HOME", home.as_os_str())],
            &["errno"],
        );
        let (stdout, _) = expect_success(&plain, &format!("major {major}"));
        assert_eq!(stdout, expected, "major {major}, untraced");
        let traced = run_limited(
            &exe,
            &shim_dir(major),
            &[
                ("CUDA_HOME", home.as_os_str()),
                ("CUDASTUB_TRACE", os("1")),
                ("CUDASTUB_TRACE_FILE", os("/dev/full")),
            ],
            &["errno"],
        );
        let (stdout, stderr) = expect_success(&traced, &format!("major {major}, traced"));
        assert_eq!(stdout, expected, "major {major}, traced to /dev/full");
        let reports: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("cannot write to CUDASTUB_TRACE_FILE=/dev/full"))
            .collect();
        assert_eq!(reports.len(), 1, "one report for 4 lost lines:\n{stderr}");
    }
}

// ---------------------------------------------------------------------------
// The first call, with the real libraries (issue 20)

/// tests/c/first_call.c, linked against the real runtime, cuBLAS and
/// cuBLASLt of `major`, so that it requires their functions with their
/// versions.
fn first_call_host(major: u32, dir: &Path) -> PathBuf {
    let exe = dir.join(format!("first_call{major}"));
    let lib = real_lib(major)
        .parent()
        .expect("the real runtime has a directory")
        .to_path_buf();
    let mut cc = Command::new(c_compiler());
    cc.arg("-o")
        .arg(&exe)
        .arg(c_source("first_call.c"))
        .arg(real_lib(major))
        .arg(lib.join(format!("libcublas.so.{major}")))
        .arg(lib.join(format!("libcublasLt.so.{major}")))
        .args(["-ldl", "-lpthread"]);
    run_checked(cc, "compiling first_call.c");
    exe
}

/// The lines the shims printed (`cudastub: …`), trace lines excepted.
fn diagnostics(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("cudastub: "))
        .collect()
}

/// Four threads' first calls all returned `status`.
fn assert_four_threads(stdout: &str, status: &str, context: &str) {
    for t in 0..4 {
        assert!(
            stdout.contains(&format!("thread {t} -> {status}")),
            "{context}: thread {t} should return {status}:\n{stdout}"
        );
    }
}

/// Issue 20, item 1: a FIFO named by `CUDASTUB_REAL_CUDART`, whose open by
/// dlopen would block forever (and every other thread's first call with
/// it), is refused with one line; a FIFO named like a candidate in a
/// searched directory is passed over for the real library next to it.
#[test]
fn a_fifo_in_place_of_the_real_library_never_blocks() {
    let dir = scratch("robust-fifo-library");
    for major in MAJORS {
        let exe = first_call_host(major, &dir);
        let fifo = dir.join(format!("libcudart.so.{major}"));
        let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success());
        let out = run_limited(
            &exe,
            &shim_dir(major),
            &[("CUDASTUB_REAL_CUDART", fifo.as_os_str())],
            &["threads"],
        );
        let (stdout, stderr) = expect_success(&out, &format!("major {major}, variable"));
        assert_four_threads(&stdout, "34", &format!("major {major}"));
        let lines = diagnostics(&stderr);
        assert_eq!(lines.len(), 1, "one diagnostic:\n{stderr}");
        assert!(
            lines[0].contains(&format!("{}: it is a FIFO", fifo.display())),
            "{stderr}"
        );

        let lib64 = dir.join(format!("cuda{major}/lib64"));
        std::fs::create_dir_all(&lib64).expect("mkdir");
        let named = lib64.join(format!("libcudart.so.{major}.99"));
        let made = Command::new("mkfifo").arg(&named).status().expect("mkfifo");
        assert!(made.success());
        std::fs::copy(real_lib(major), lib64.join(format!("libcudart.so.{major}")))
            .expect("copy the real runtime");
        let home = lib64.parent().expect("a parent");
        let out = run_limited(
            &exe,
            &shim_dir(major),
            &[("CUDA_HOME", home.as_os_str())],
            &["threads"],
        );
        let (stdout, stderr) = expect_success(&out, &format!("major {major}, searched"));
        assert_four_threads(&stdout, "0", &format!("major {major}, searched"));
        assert_eq!(diagnostics(&stderr), Vec::<&str>::new(), "{stderr}");
    }
}

/// Issue 20, item 2: a truncated copy of the real runtime (an interrupted
/// install) next to a complete one, named higher, is refused before
/// `dlopen` — which would map it and kill the host with SIGBUS — and the
/// complete one is loaded; named by the variable, it is refused with one
/// line saying it is truncated. So is the other major's real library.
#[test]
fn a_truncated_real_library_is_refused_before_it_is_mapped() {
    let dir = scratch("robust-truncated");
    for major in MAJORS {
        let exe = first_call_host(major, &dir);
        let lib64 = dir.join(format!("cuda{major}/lib64"));
        std::fs::create_dir_all(&lib64).expect("mkdir");
        let real = std::fs::read(real_lib(major)).expect("read the real runtime");
        std::fs::write(lib64.join(format!("libcudart.so.{major}.1.0")), &real)
            .expect("write the complete copy");
        let cut = lib64.join(format!("libcudart.so.{major}.2.0"));
        std::fs::write(&cut, &real[..real.len() / 2]).expect("write the truncated copy");
        let home = lib64.parent().expect("a parent");
        let out = run_limited(
            &exe,
            &shim_dir(major),
            &[("CUDA_HOME", home.as_os_str())],
            &["threads"],
        );
        let (stdout, stderr) = expect_success(&out, &format!("major {major}, searched"));
        assert_four_threads(&stdout, "0", &format!("major {major}, searched"));
        assert_eq!(diagnostics(&stderr), Vec::<&str>::new(), "{stderr}");

        let other = if major == 12 { 13 } else { 12 };
        for (named, why) in [
            (cut.clone(), "it is truncated or corrupt".to_string()),
            (
                real_lib(other),
                format!("its soname is libcudart.so.{other}, not libcudart.so.{major}"),
            ),
        ] {
            let out = run_limited(
                &exe,
                &shim_dir(major),
                &[("CUDASTUB_REAL_CUDART", named.as_os_str())],
                &["threads"],
            );
            let (stdout, stderr) = expect_success(&out, &format!("major {major}, {why}"));
            assert_four_threads(&stdout, "34", &format!("major {major}, {why}"));
            let lines = diagnostics(&stderr);
            assert_eq!(lines.len(), 1, "one diagnostic:\n{stderr}");
            assert!(
                lines[0].contains(&format!("{}: {why}", named.display())),
                "{stderr}"
            );
        }
    }
}

/// Issue 20, item 9: paths that are not UTF-8 — `CUDA_HOME`,
/// `CUDASTUB_REAL_CUDART`, `CUDASTUB_TRACE_FILE` — are used as the bytes
/// they are, not converted (and then never found).
#[test]
fn paths_that_are_not_utf8_are_found() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = scratch("robust-not-utf8");
    let home = dir.join(OsStr::from_bytes(b"cuda-\xff\xfe"));
    let lib64 = home.join("lib64");
    std::fs::create_dir_all(&lib64).expect("mkdir");
    for major in MAJORS {
        let exe = first_call_host(major, &dir);
        let copy = lib64.join(format!("libcudart.so.{major}"));
        std::fs::copy(real_lib(major), &copy).expect("copy the real runtime");
        let trace = home.join(OsStr::from_bytes(b"trace-\xff.log"));
        let _ = std::fs::remove_file(&trace);
        for env in [
            vec![("CUDA_HOME", home.as_os_str())],
            vec![
                ("CUDASTUB_REAL_CUDART", copy.as_os_str()),
                ("CUDASTUB_TRACE", os("1")),
                ("CUDASTUB_TRACE_FILE", trace.as_os_str()),
            ],
        ] {
            let out = run_limited(&exe, &shim_dir(major), &env, &["threads"]);
            let (stdout, stderr) = expect_success(&out, &format!("major {major}, {env:?}"));
            assert_four_threads(&stdout, "0", &format!("major {major}, {env:?}"));
            assert_eq!(diagnostics(&stderr), Vec::<&str>::new(), "{stderr}");
        }
        let traced = std::fs::read_to_string(&trace).expect("the trace file");
        assert_eq!(
            traced.matches("] cudaRuntimeGetVersion(").count(),
            4,
            "{traced}"
        );
    }
}

/// Issue 20, item 10a: a trace line written by a forked child names the
/// child's thread, not the thread of the parent that forked it.
#[test]
fn a_forked_child_traces_under_its_own_thread_id() {
    let dir = scratch("robust-fork-trace");
    let major = 12;
    let exe = first_call_host(major, &dir);
    let real = real_lib(major);
    let out = run_limited(
        &exe,
        &shim_dir(major),
        &[
            ("CUDASTUB_REAL_CUDART", real.as_os_str()),
            ("CUDASTUB_TRACE", os("1")),
        ],
        &["fork-trace"],
    );
    let (stdout, stderr) = expect_success(&out, "fork-trace");
    assert!(stdout.contains("child exited 0"), "{stdout}");
    // The main thread's id is its process's id.
    let pid = |who: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(who)?.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `{who}` line:\n{stdout}"))
            .to_string()
    };
    let traced: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("] cudaRuntimeGetVersion("))
        .collect();
    assert_eq!(traced.len(), 2, "{stderr}");
    for (line, who) in traced.iter().zip(["parent ", "child "]) {
        assert!(
            line.starts_with(&format!("cudastub[{}] ", pid(who))),
            "the {who}'s line names its own thread ({}):\n{stderr}",
            pid(who)
        );
    }
}

/// Issue 20, item 10b: `CUDASTUB_TRACE_FILE=/dev/tty` in a process with no
/// terminal fails with ENXIO, as a FIFO with no reader does: the line says
/// the real reason instead of calling it a FIFO.
#[test]
fn a_trace_file_that_cannot_be_opened_is_reported_with_its_real_reason() {
    let dir = scratch("robust-tty");
    let major = 12;
    let exe = first_call_host(major, &dir);
    let real = real_lib(major);
    // setsid: a new session, so no controlling terminal whatever ran the tests.
    let out = Command::new("timeout")
        .args(["-s", "KILL", &LIMIT_SECONDS.to_string(), "setsid", "-w"])
        .arg(&exe)
        .arg("threads")
        .env("LD_LIBRARY_PATH", shim_dir(major))
        .env("CUDASTUB_REAL_CUDART", &real)
        .env("CUDASTUB_TRACE", "1")
        .env("CUDASTUB_TRACE_FILE", "/dev/tty")
        .stdin(Stdio::null())
        .output()
        .expect("run setsid");
    let (stdout, stderr) = expect_success(&out, "/dev/tty");
    assert_four_threads(&stdout, "0", "/dev/tty");
    let lines = diagnostics(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("cannot open CUDASTUB_TRACE_FILE=/dev/tty: No such device or address")
            && !lines[0].contains("FIFO"),
        "{stderr}"
    );
}

/// Issue 20, item 11: the first cuBLAS call — which loads the real cuBLAS,
/// constructors and all — works on a thread with a 16 KiB stack
/// (`PTHREAD_STACK_MIN`), as calling the real library there does: the
/// loading runs on a private stack, so the caller's pays only for the lazy
/// entry's saved registers.
#[test]
fn the_first_cublas_call_works_on_a_16_kib_thread_stack() {
    let dir = scratch("robust-small-stack");
    for major in MAJORS {
        let exe = first_call_host(major, &dir);
        let lib = real_lib(major).parent().expect("a directory").to_path_buf();
        let cublas = lib.join(format!("libcublas.so.{major}"));
        let env = [
            ("CUDASTUB_REAL_CUDART", real_lib(major).into_os_string()),
            ("CUDASTUB_REAL_CUBLAS", cublas.clone().into_os_string()),
            (
                "CUDASTUB_REAL_CUBLASLT",
                lib.join(format!("libcublasLt.so.{major}")).into_os_string(),
            ),
        ];
        let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        let expected = format!("cublasGetProperty -> 0, major {major}");
        // What the real library needs, without the shim in the way.
        let direct = run_limited(
            &exe,
            &shim_dir(major),
            &env,
            &[
                "dlopen-stack",
                "16384",
                cublas.to_str().expect("a UTF-8 path"),
            ],
        );
        let (stdout, _) = expect_success(&direct, &format!("major {major}, the real cuBLAS"));
        assert!(stdout.contains(&expected), "{stdout}");
        let shim = run_limited(&exe, &shim_dir(major), &env, &["stack", "16384"]);
        let (stdout, stderr) = expect_success(&shim, &format!("major {major}, through the shim"));
        assert!(stdout.contains(&expected), "{stdout}{stderr}");
    }
}

// ---------------------------------------------------------------------------
// The command line

/// `cudastub ARGS`, killed after the limit.
fn cudastub_limited(args: &[&OsStr], stdout: Stdio) -> Output {
    Command::new("timeout")
        .args(["-s", "KILL", &LIMIT_SECONDS.to_string()])
        .arg(cudastub_tests::cudastub())
        .args(args)
        .current_dir(repo_root())
        .stdout(stdout)
        .output()
        .expect("run cudastub")
}

/// Item 5: every command that reads a manifest or an index refuses a FIFO
/// (which would block) and a device (/dev/zero, which never ends), at once.
#[test]
fn manifest_readers_refuse_fifos_and_devices() {
    let dir = tempdir();
    let fifo = dir.path().join("manifest.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let index = dir.path().join("index.yaml");
    std::fs::write(&index, "libraries:\n  - manifest.fifo\n").expect("write the index");
    let lib = fixtures().cuda12.library.clone();
    let out = dir.path().join("out");
    let fifo_spec = format!("{}#12", fifo.display());
    let zero = Path::new("/dev/zero");
    let cases: Vec<(Vec<&OsStr>, &Path)> = vec![
        (vec![os("check"), os("--manifest"), fifo.as_os_str()], &fifo),
        (
            vec![os("check"), os("--manifest"), index.as_os_str()],
            &fifo,
        ),
        (
            vec![
                os("generate"),
                os("--manifest"),
                zero.as_os_str(),
                os("--out"),
                out.as_os_str(),
            ],
            zero,
        ),
        (
            vec![
                os("generate"),
                os("--check"),
                os("--manifest"),
                fifo.as_os_str(),
            ],
            &fifo,
        ),
        (vec![os("diff"), os(&fifo_spec), os("/dev/zero#12")], &fifo),
        (
            vec![
                os("audit"),
                lib.as_os_str(),
                os("--manifest"),
                fifo.as_os_str(),
            ],
            &fifo,
        ),
        (
            vec![
                os("dist"),
                os("--manifest"),
                zero.as_os_str(),
                os("--out"),
                out.as_os_str(),
            ],
            zero,
        ),
    ];
    for (args, named) in cases {
        let result = cudastub_limited(&args, Stdio::piped());
        let stderr = text(&result.stderr);
        assert_eq!(
            result.status.code(),
            Some(2),
            "{args:?} (137: it hung):\n{stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "{}: error: cannot read the manifest: not a regular file",
                named.display()
            )),
            "{args:?}:\n{stderr}"
        );
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }
}

/// The version scripts and shim crates `generate` would write, as a
/// scratch tree whose files are all stale (so that a rewrite would show).
fn stale_generated_tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempdir();
    let out = dir.path().join("versionscripts");
    let crates = dir.path().join("crates");
    let outcome = run_cudastub([
        os("generate"),
        os("--out"),
        out.as_os_str(),
        os("--crates"),
        crates.as_os_str(),
        os("--schemas"),
        dir.path().join("schemas").as_os_str(),
    ]);
    outcome.expect_success();
    for file in snapshot(dir.path()).keys() {
        std::fs::write(dir.path().join(file), "stale\n").expect("make a file stale");
    }
    (dir, out, crates)
}

/// A library that drops a major (cuDNN 9.19 ships no `libcudnn_ext` for
/// CUDA 13) leaves generated files the manifests no longer give: `generate
/// --check` names each one, `generate` removes them (and the crate left
/// empty), and a file cudastub did not generate is left alone.
#[test]
fn generate_removes_what_the_manifests_no_longer_give() {
    let dir = tempdir();
    let out = dir.path().join("versionscripts");
    let crates = dir.path().join("crates");
    let schemas = dir.path().join("schemas");
    let args = |check: bool| {
        let mut a = vec![os("generate")];
        if check {
            a.push(os("--check"));
        }
        a.extend([
            os("--out"),
            out.as_os_str(),
            os("--crates"),
            crates.as_os_str(),
            os("--schemas"),
            schemas.as_os_str(),
        ]);
        a
    };
    run_cudastub(args(false)).expect_success();
    run_cudastub(args(true)).expect_success();
    // What an earlier manifest gave: a crate, a version script and its list.
    let gone = crates.join("cudnn_ext-14");
    std::fs::create_dir(&gone).expect("mkdir");
    let mark =
        "# @generated by cudastub from cuda-api.yaml. Do not edit: run `cudastub generate`.\n";
    std::fs::write(gone.join("Cargo.toml"), format!("{mark}[package]\n")).expect("write");
    let map = out.join("libcudnn_ext.so.9.cuda14.map");
    let list = out.join("libcudnn_ext.so.9.cuda14.symbols");
    std::fs::write(&map, mark).expect("write");
    std::fs::write(&list, "cudnnCausalConv1dForward@@libcudnn_ext.so.9\n").expect("write");
    // A crate of the user's own, next to the generated ones.
    let own = crates.join("mine");
    std::fs::create_dir(&own).expect("mkdir");
    std::fs::write(own.join("Cargo.toml"), "[package]\nname = \"mine\"\n").expect("write");

    let check = run_cudastub(args(true));
    check.expect_code(1);
    for p in [gone.join("Cargo.toml"), map.clone(), list.clone()] {
        assert!(
            check.stdout.contains(&format!(
                "{}: generated, but the manifests no longer give it",
                p.display()
            )),
            "{check}"
        );
    }
    assert!(!check.stdout.contains("mine"), "{check}");
    assert!(gone.join("Cargo.toml").is_file(), "--check removed a file");

    let write = run_cudastub(args(false));
    write.expect_success();
    assert!(
        write.stdout.contains(&format!("removed {}", map.display())),
        "{write}"
    );
    assert!(!gone.exists(), "the emptied crate is left: {write}");
    assert!(!map.exists() && !list.exists(), "{write}");
    assert!(
        own.join("Cargo.toml").is_file(),
        "the user's crate was removed"
    );
    run_cudastub(args(true)).expect_success();
}

/// Item 6: one destination of `generate` is a directory: nothing is
/// rewritten (every destination is checked before anything is written).
#[test]
fn generate_writes_nothing_when_one_destination_is_a_directory() {
    let (dir, out, crates) = stale_generated_tree();
    let blocked = out.join("libcudart.so.13.map");
    std::fs::remove_file(&blocked).expect("rm");
    std::fs::create_dir(&blocked).expect("mkdir in its place");
    std::fs::write(blocked.join("keep"), "").expect("a file inside");
    let before = snapshot(dir.path());
    let outcome = run_cudastub([
        os("generate"),
        os("--out"),
        out.as_os_str(),
        os("--crates"),
        crates.as_os_str(),
        os("--schemas"),
        dir.path().join("schemas").as_os_str(),
    ]);
    outcome.expect_code(2);
    assert!(
        outcome.stderr.contains(&format!(
            "{}: error: cannot write: it is a directory",
            blocked.display()
        )),
        "{outcome}"
    );
    assert_eq!(outcome.stdout, "", "nothing reported written");
    assert_untouched(dir.path(), &before, &outcome);
}

/// Items 6 and 7: `generate > /dev/full` exits 2 with a message, and
/// nothing is written: the report is printed before the files are renamed
/// into place, and a failed report removes the temporaries.
#[test]
fn generate_to_a_full_stdout_writes_nothing() {
    let (dir, out, crates) = stale_generated_tree();
    let fresh = dir.path().join("new");
    let before = snapshot(dir.path());
    let schemas = dir.path().join("schemas");
    for (out, crates, schemas) in [
        (&out, &crates, &schemas),
        (
            &fresh.join("vs"),
            &fresh.join("crates"),
            &fresh.join("schemas"),
        ),
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full");
        let result = cudastub_limited(
            &[
                os("generate"),
                os("--out"),
                out.as_os_str(),
                os("--crates"),
                crates.as_os_str(),
                os("--schemas"),
                schemas.as_os_str(),
            ],
            Stdio::from(full),
        );
        let stderr = text(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("standard output: error: cannot write: No space left on device"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_untouched(dir.path(), &before, &stderr);
        assert!(!fresh.exists(), "directories created for nothing were left");
    }
}

/// Item 6: `dist --out D` with `D/13` a plain file fails before building or
/// writing anything: `D/12` is not created.
#[test]
fn dist_checks_every_destination_before_writing() {
    let dir = tempdir();
    let out = dir.path().join("dist");
    std::fs::create_dir(&out).expect("mkdir");
    std::fs::write(out.join("13"), "a file where a directory goes\n").expect("write");
    let before = snapshot(dir.path());
    let outcome = run_cudastub([os("dist"), os("--out"), out.as_os_str()]);
    outcome.expect_code(2);
    assert!(
        outcome.stderr.contains(&format!(
            "cannot write: {} is not a directory",
            out.join("13").display()
        )),
        "{outcome}"
    );
    assert!(!out.join("12").exists(), "dist wrote major 12: {outcome}");
    assert_untouched(dir.path(), &before, &outcome);
}

/// Item 7: a reader that went away ends the output quietly (no panic, no
/// message), and the command keeps its own exit code.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let lib = fixtures().cuda12.library.clone();
    let cases: Vec<(Vec<&OsStr>, i32)> = vec![
        (vec![os("check")], 0),
        (vec![os("generate"), os("--check")], 0),
        (
            vec![
                os("diff"),
                os("cuda-api.yaml#cudart/12"),
                os("cuda-api.yaml#cudart/13"),
            ],
            1,
        ),
        (
            vec![os("audit"), lib.as_os_str(), os("--format"), os("json")],
            0,
        ),
        (vec![os("--help")], 0),
    ];
    for (args, code) in cases {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let result = cudastub_limited(&args, Stdio::from(writer));
        let stderr = text(&result.stderr);
        assert_eq!(result.status.code(), Some(code), "{args:?}:\n{stderr}");
        assert_eq!(stderr, "", "{args:?}: a closed pipe is not an error");
    }
}

/// Item 7: any other output error (a full disk) is exit 2 with a message,
/// never a panic (101) or a silent success (0) with the report lost.
#[test]
fn an_unwritable_stdout_is_exit_2_with_a_message() {
    let lib = fixtures().cuda12.library.clone();
    let cases: Vec<Vec<&OsStr>> = vec![
        vec![os("check")],
        vec![os("generate"), os("--check")],
        vec![
            os("diff"),
            os("cuda-api.yaml#cudart/12"),
            os("cuda-api.yaml#cudart/13"),
        ],
        vec![os("audit"), lib.as_os_str(), os("--format"), os("json")],
        vec![os("audit"), lib.as_os_str()],
        vec![os("--version")],
    ];
    for args in cases {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full");
        let result = cudastub_limited(&args, Stdio::from(full));
        let stderr = text(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{args:?}:\n{stderr}");
        assert!(
            stderr.contains("cannot write") && stderr.contains("No space left on device"),
            "{args:?}:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}:\n{stderr}");
    }
}

// ---------------------------------------------------------------------------
// Reproducible builds

/// The files of the checkout (tracked, and untracked but not ignored).
fn checkout_files() -> Vec<PathBuf> {
    let out = Command::new("git")
        .current_dir(repo_root())
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .expect("run git ls-files");
    assert!(
        out.status.success(),
        "git ls-files failed: this test needs a git checkout"
    );
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .filter(|p| repo_root().join(p).is_file())
        .collect()
}

/// Copies `seed` (a cargo release directory) to `target/release` under
/// `root`, so that only the crates at the new path are compiled again.
fn seed_target(seed: &Path, target: &Path) {
    if !seed.is_dir() {
        return;
    }
    std::fs::create_dir_all(target).expect("mkdir");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(seed)
        .arg(target.join("release"))
        .status()
        .expect("cp -a");
    assert!(copied.success(), "seeding {} failed", target.display());
}

/// `cargo build --release --quiet ARGS` in `dir`, with its own target directory.
fn cargo_build(dir: &Path, args: &[&str], env: &[(&str, &str)]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .args(["build", "--release", "--quiet"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building in {}:\n{}",
        dir.display(),
        text(&out.stderr)
    );
}

/// A library built in a checkout: its path there and its bytes.
type Built = (String, Vec<u8>);

/// Item 14: the same commit built in two checkouts at different paths gives
/// byte-identical standard shims, with neither checkout's path inside.
/// A user's own shim crate (examples/virtual-gpu) must not hold its
/// checkout's path either: its runtime dependency lies outside its
/// workspace, so cargo hands rustc the runtime's absolute path, which a
/// panic location in the runtime once embedded. (Its bytes still differ
/// between paths: cargo hashes such a dependency's absolute path into its
/// symbol names, which changes code layout. A git or registry dependency,
/// as users have, does not.) Each copy's target directories are seeded with
/// this checkout's builds, so that only the crates at the new path are
/// compiled again.
#[test]
fn shims_are_the_same_bytes_from_checkouts_at_two_paths() {
    let base = repo_root().join("target/test-repro");
    let _ = std::fs::remove_dir_all(&base);
    let files = checkout_files();
    let target = cudastub_tests::target_dir();
    let mut built: Vec<(PathBuf, Vec<Built>)> = Vec::new();
    for name in ["a", "checkout-at-a-longer-path"] {
        let root = base.join(name);
        for f in &files {
            let to = root.join(f);
            std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
            std::fs::copy(repo_root().join(f), &to).expect("copy a source file");
        }
        seed_target(&target.join("release"), &root.join("target"));
        cargo_build(
            &root,
            &[
                "-p",
                "cudastub-shim-cudart-12",
                "-p",
                "cudastub-shim-cudart-13",
            ],
            &[],
        );
        let example = root.join("examples/virtual-gpu");
        seed_target(
            &dist_build_dir(
                &target.join("virtual-gpu"),
                &repo_root().join("examples/virtual-gpu"),
                12,
            )
            .join("release"),
            &example.join("target"),
        );
        cargo_build(&example, &[], &[("CUDASTUB_MAJOR", "12")]);
        let mut libs: Vec<Built> = MAJORS
            .iter()
            .map(|m| format!("target/release/libcudart_{m}.so"))
            .collect::<Vec<_>>()
            .into_iter()
            .chain(["examples/virtual-gpu/target/release/libcudart.so".to_string()])
            .map(|rel| {
                let bytes = std::fs::read(root.join(&rel))
                    .unwrap_or_else(|e| panic!("{rel} in {}: {e}", root.display()));
                (rel, bytes)
            })
            .collect();
        libs.sort();
        built.push((root, libs));
    }
    let (a, b) = (&built[0], &built[1]);
    for ((name, bytes_a), (_, bytes_b)) in a.1.iter().zip(&b.1) {
        if name.starts_with("examples/") {
            continue;
        }
        assert!(
            bytes_a == bytes_b,
            "{name}: built in {} and {}, the bytes differ",
            a.0.display(),
            b.0.display()
        );
    }
    for (root, libs) in [a, b] {
        let needle = root.to_string_lossy().into_owned();
        for (name, bytes) in libs {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{name} contains its checkout's path {needle}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}
