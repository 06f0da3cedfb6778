//! The remote GPU's first slice: `cudastub serve` runs the real CUDA 12
//! runtime (the pinned fixture) in a server process, and a client with no
//! NVIDIA library calls it by the plans the manifests give. On this GPU-less
//! machine the real runtime answers without a driver: the remote answers
//! must be exactly the direct ones.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cudastub_remote::client::{Batching, CallError, Client};
use cudastub_remote::plan::MajorPlan;
use cudastub_tests::{
    RemoteServer, compile_c, cudastub, fixtures, remote, remote_plan, remote_returned, repo_root,
    run, run_cudastub, tempdir,
};

fn plan12() -> MajorPlan {
    remote_plan(12)
}

fn runtime_dir() -> PathBuf {
    fixtures().cuda12.lib_dir.clone()
}

fn remote_string(client: &mut Client, name: &str, status: c_int) -> String {
    let (l, f) = client.plan().find("cudart", name).expect("found");
    let arg = status;
    // SAFETY: one `int` argument.
    let r = unsafe { client.call(l, f, &[(&raw const arg).cast()]) }.expect("call");
    assert!(!r.string.is_null(), "{name} returned null");
    // SAFETY: a string the client keeps for the process's life.
    unsafe { CStr::from_ptr(r.string) }
        .to_string_lossy()
        .into_owned()
}

/// The real runtime, loaded in this process.
struct Direct(*mut c_void);

impl Direct {
    fn load() -> Direct {
        let path = CString::new(
            runtime_dir()
                .join("libcudart.so.12")
                .as_os_str()
                .as_encoded_bytes(),
        )
        .expect("path");
        // SAFETY: dlopen of the pinned real runtime.
        let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!h.is_null(), "cannot load the real runtime");
        Direct(h)
    }

    fn symbol(&self, name: &str) -> *mut c_void {
        let n = CString::new(name).expect("name");
        // SAFETY: a valid handle and name.
        let f = unsafe { libc::dlsym(self.0, n.as_ptr()) };
        assert!(!f.is_null(), "no {name}");
        f
    }

    fn int_out(&self, name: &str) -> (c_int, c_int) {
        let f: unsafe extern "C" fn(*mut c_int) -> c_int =
            // SAFETY: `cudaError_t f(int *)`.
            unsafe { std::mem::transmute(self.symbol(name)) };
        let mut v = -7;
        // SAFETY: a valid output.
        let status = unsafe { f(&mut v) };
        (status, v)
    }

    fn string(&self, name: &str, status: c_int) -> String {
        let f: unsafe extern "C" fn(c_int) -> *const c_char =
            // SAFETY: `const char *f(cudaError_t)`.
            unsafe { std::mem::transmute(self.symbol(name)) };
        // SAFETY: the runtime returns a static string.
        unsafe { CStr::from_ptr(f(status)) }
            .to_string_lossy()
            .into_owned()
    }
}

#[test]
fn a_client_with_no_nvidia_library_gets_the_real_runtimes_answers() {
    let dir = tempdir();
    let socket = dir.path().join("gpu.sock");
    let mut server =
        RemoteServer::start(&format!("unix:{}", socket.display()), &runtime_dir(), None);
    // The socket is the owner's alone.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&socket)
            .expect("the socket")
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "socket mode {mode:o}");
    let mut client = Client::connect(&server.endpoint, "", plan12()).expect("connect");
    // On this host the calls go on in shared memory; on the socket alone
    // (as `CUDASTUB_REMOTE_SHM=0` asks) they get the same answers.
    assert_eq!(client.transport(), "shared memory");
    let mut on_socket =
        Client::connect_with(&server.endpoint, "", plan12(), false).expect("connect");
    assert_eq!(on_socket.transport(), "Unix socket");
    let direct = Direct::load();
    for name in [
        "cudaRuntimeGetVersion",
        "cudaDriverGetVersion",
        "cudaGetDeviceCount",
    ] {
        let (status, value) = direct.int_out(name);
        let mut got: c_int = -7;
        let out: *mut c_int = &mut got;
        let got_status = remote(&mut client, "cudart", name, &[(&raw const out).cast()])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((got_status as c_int, got), (status, value), "{name}");
        got = -7;
        let got_status = remote(&mut on_socket, "cudart", name, &[(&raw const out).cast()])
            .unwrap_or_else(|e| panic!("{name} on the socket: {e}"));
        assert_eq!((got_status as c_int, got), (status, value), "{name}");
        // Strings the runtime returns cross as text.
        for f in ["cudaGetErrorString", "cudaGetErrorName"] {
            assert_eq!(
                remote_string(&mut client, f, status),
                direct.string(f, status),
                "{f}({status})"
            );
        }
    }
    let (_, version) = direct.int_out("cudaRuntimeGetVersion");
    assert_eq!(version, 12090, "the pinned 12.9 runtime");
    // A null output: the real runtime's own answer to it.
    let null: *mut c_int = std::ptr::null_mut();
    let f: unsafe extern "C" fn(*mut c_int) -> c_int =
        // SAFETY: `cudaError_t cudaGetDeviceCount(int *)`.
        unsafe { std::mem::transmute(direct.symbol("cudaGetDeviceCount")) };
    // SAFETY: the runtime checks its argument.
    let direct_null = unsafe { f(null) };
    let remote_null = remote(
        &mut client,
        "cudart",
        "cudaGetDeviceCount",
        &[(&raw const null).cast()],
    )
    .expect("call");
    assert_eq!(remote_null as c_int, direct_null);
    // cuBLAS is in the fixture's directory too: its answer crosses.
    let (kind, mut value): (c_int, c_int) = (0, -7);
    let out: *mut c_int = &mut value;
    let status = remote(
        &mut client,
        "cublas",
        "cublasGetProperty",
        &[(&raw const kind).cast(), (&raw const out).cast()],
    )
    .expect("call");
    assert_eq!((status, value), (0, 12), "cublasGetProperty(MAJOR_VERSION)");
    // A library the server does not have (NVML, on a machine with no
    // driver): the library's own status for it.
    let plan = plan12();
    let (l, _) = plan.find("nvml", "nvmlInit_v2").expect("nvml");
    let missing = plan.libraries[l as usize]
        .statuses
        .clone()
        .expect("statuses")
        .library_missing;
    let status = remote(&mut client, "nvml", "nvmlInit_v2", &[]).expect("call");
    assert_eq!(status as i64, missing, "NVML_ERROR_LIBRARY_NOT_FOUND");
    // What a plan cannot send yet is refused on the client, naming why
    // (before reading any argument).
    let err = remote(
        &mut client,
        "cudart",
        "cudaDeviceRegisterAsyncNotification",
        &[std::ptr::null(); 4],
    )
    .expect_err("a callback given the library's own memory is not sent");
    assert!(
        matches!(&err, CallError::Unsupported(why) if why.starts_with("cudaDeviceRegisterAsyncNotification") && why.contains("callback")),
        "{err}"
    );
    // The server killed: a call in shared memory fails as on a socket,
    // soon (the socket closing is what the waiting client looks at).
    server.kill();
    the_next_call_fails_at_once(&mut client);
}

/// With the server killed, the next call fails with the transport's error
/// within seconds: no hang.
fn the_next_call_fails_at_once(client: &mut Client) {
    let started = Instant::now();
    let mut v: c_int = 0;
    let out: *mut c_int = &mut v;
    let err = remote(
        client,
        "cudart",
        "cudaRuntimeGetVersion",
        &[(&raw const out).cast()],
    )
    .expect_err("the server is gone");
    assert!(matches!(err, CallError::Transport(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not hang: {:?}",
        started.elapsed()
    );
}

/// A client of the protocol before this one (its hello had no
/// shared-memory field) is told why it is refused, in the reply it reads.
#[test]
fn a_client_of_another_protocol_is_told_why() {
    use std::io::Write;
    let dir = tempdir();
    let socket = dir.path().join("gpu.sock");
    let _server = RemoteServer::start(&format!("unix:{}", socket.display()), &runtime_dir(), None);
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    // Protocol 2's hello, as postcard wrote it: variant 0, protocol 2, an
    // empty token, major 12, a fingerprint; nothing after.
    let body = [0u8, 2, 0, 12, 1];
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).expect("hello");
    let reply: cudastub_remote::wire::Reply = cudastub_remote::wire::receive(&mut stream)
        .expect("read")
        .expect("a reply");
    // Protocol 2 numbered `Refused` 4, as this one does.
    let mut encoded = Vec::new();
    cudastub_remote::wire::frame_into(&mut encoded, &reply).expect("encode");
    assert_eq!(encoded[4], 4, "{reply:?}");
    assert!(
        matches!(&reply, cudastub_remote::wire::Reply::Refused(why)
            if why.contains(&format!("not a hello of protocol {}", cudastub_remote::wire::PROTOCOL))),
        "{reply:?}"
    );
}

#[test]
fn tcp_needs_the_token_and_a_dead_server_fails_calls_without_hanging() {
    let dir = tempdir();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").expect("token");
    // TCP without a token is refused at start.
    let out = Command::new(cudastub())
        .args(["serve", "--listen", "tcp://127.0.0.1:0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs --token-file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut server = RemoteServer::start("tcp://127.0.0.1:0", &runtime_dir(), Some(&token));
    let err = Client::connect(&server.endpoint, "wrong", plan12())
        .err()
        .expect("a wrong token is refused");
    assert!(err.to_string().contains("wrong token"), "{err}");
    let mut client = Client::connect(&server.endpoint, "s3cret", plan12()).expect("connect");
    let mut v: c_int = 0;
    let out: *mut c_int = &mut v;
    let status = remote(
        &mut client,
        "cudart",
        "cudaRuntimeGetVersion",
        &[(&raw const out).cast()],
    )
    .expect("call");
    assert_eq!((status, v), (0, 12090));
    server.kill();
    the_next_call_fails_at_once(&mut client);
}

/// `cudastub dist --remote`: a real C program, linked against NVIDIA's
/// runtime and cuBLAS, runs on the client libraries with the server serving
/// the real ones, prints what it prints directly, and the loader's own
/// trace shows that no NVIDIA library was loaded in its process.
#[test]
fn a_cuda_program_runs_on_the_remote_client_with_no_nvidia_library_loaded() {
    let dir = tempdir();
    let dist = dir.path().join("dist");
    let mut args: Vec<std::ffi::OsString> = vec!["dist".into(), "--remote".into()];
    for lib in ["cudart", "cublas", "cublasLt", "cuda", "nvml"] {
        args.extend(["--lib".into(), lib.into()]);
    }
    args.extend([
        "--major".into(),
        "12".into(),
        "--out".into(),
        dist.clone().into_os_string(),
    ]);
    run_cudastub(args).expect_success();
    let client_dir = dist.join("12");
    for file in [
        "libcudart.so.12",
        "libcublas.so.12",
        "libcublasLt.so.12",
        "libcuda.so.1",
        "libnvidia-ml.so.1",
        "libcudastub-remote.so",
    ] {
        assert!(
            client_dir.join(file).is_file(),
            "dist --remote laid out no {file}"
        );
    }
    let cuda12 = &fixtures().cuda12;
    let program = dir.path().join("remote_runtime");
    compile_c([
        repo_root().join("tests/c/remote_runtime.c").as_os_str(),
        "-I".as_ref(),
        cuda12.include.as_os_str(),
        "-L".as_ref(),
        cuda12.lib_dir.as_os_str(),
        "-lcudart".as_ref(),
        "-lcublas".as_ref(),
        "-o".as_ref(),
        program.as_os_str(),
    ]);
    let direct = run(Command::new(&program).env("LD_LIBRARY_PATH", &cuda12.lib_dir));
    assert_eq!(direct.code, Some(0), "{direct}");
    assert!(
        direct.stdout.contains("cudaRuntimeGetVersion: 0 12090"),
        "{direct}"
    );
    let socket = dir.path().join("gpu.sock");
    let server = RemoteServer::start(&format!("unix:{}", socket.display()), &cuda12.lib_dir, None);
    let remote = run(Command::new(&program)
        .env("LD_LIBRARY_PATH", &client_dir)
        .env("CUDASTUB_REMOTE", server.endpoint.to_string())
        .env("LD_DEBUG", "libs"));
    assert_eq!(remote.code, Some(0), "{remote}");
    assert_eq!(remote.stdout, direct.stdout, "remote and direct differ");
    // The loader's trace: every library it initialised is the client's or
    // the system's, none from the real runtime's directory.
    let inits: Vec<&str> = remote
        .stderr
        .lines()
        .filter_map(|l| l.split("calling init: ").nth(1))
        .collect();
    assert!(
        inits.iter().any(|l| l.ends_with("libcudastub-remote.so")),
        "{inits:?}"
    );
    let real = cuda12.lib_dir.to_string_lossy();
    for lib in &inits {
        assert!(
            !lib.starts_with(real.as_ref())
                && (lib.starts_with(client_dir.to_string_lossy().as_ref())
                    || !["cuda", "cublas", "nvidia"].iter().any(|n| lib.contains(n))),
            "an NVIDIA library was loaded in the client: {lib} ({inits:?})"
        );
    }
    // cuBLASLt's scalars, on the side and of the size the matmul
    // descriptor says (the server asks the real library): the same
    // statuses as directly, with a scalar at the very end of readable
    // memory too.
    let lt = dir.path().join("remote_cublaslt");
    compile_c([
        repo_root().join("tests/c/remote_cublaslt.c").as_os_str(),
        "-I".as_ref(),
        cuda12.include.as_os_str(),
        "-L".as_ref(),
        cuda12.lib_dir.as_os_str(),
        "-lcublasLt".as_ref(),
        "-o".as_ref(),
        lt.as_os_str(),
    ]);
    let direct = run(Command::new(&lt).env("LD_LIBRARY_PATH", &cuda12.lib_dir));
    assert_eq!(direct.code, Some(0), "{direct}");
    assert!(
        direct.stdout.contains("matmul, host scalars: 1\n") && !direct.stdout.contains("differs"),
        "{direct}"
    );
    let remote = run(Command::new(&lt)
        .env("LD_LIBRARY_PATH", &client_dir)
        .env("CUDASTUB_REMOTE", server.endpoint.to_string()));
    assert_eq!(remote.code, Some(0), "{remote}");
    assert_eq!(remote.stdout, direct.stdout, "remote and direct differ");
    assert_eq!(remote.stderr, "", "{remote}");
    // With no server named, each call is the library's own failure, said once.
    let alone = run(Command::new(&program).env("LD_LIBRARY_PATH", &client_dir));
    assert_eq!(alone.code, Some(0), "{alone}");
    assert!(
        alone
            .stdout
            .contains("cudaGetDeviceCount: 34 -7 cudaErrorStubLibrary"),
        "{alone}"
    );
    assert_eq!(
        alone.stderr.matches("set CUDASTUB_REMOTE=").count(),
        1,
        "{alone}"
    );
}

/// Kernels: an nvcc-built program registers its fat binary from a
/// constructor (the image crosses, sized by its own header), and launches
/// with `<<<>>>` (CUDA 13: `__cudaGetKernel`, `__cudaLaunchKernel`; the
/// stub's host address stands for the kernel, the server's stand-in
/// registered in its place). With no GPU the launch fails: what must hold is
/// that the remote run prints what the direct run prints, for both majors.
#[test]
fn nvcc_programs_register_and_launch_through_the_remote() {
    let dir = tempdir();
    let dist = dir.path().join("dist");
    run_cudastub([
        "dist".as_ref(),
        "--remote".as_ref(),
        "--lib".as_ref(),
        "cudart".as_ref(),
        "--lib".as_ref(),
        "cuda".as_ref(),
        "--out".as_ref(),
        dist.as_os_str(),
    ])
    .expect_success();
    for major in [12u32, 13] {
        let exe = dir.path().join(format!("kernel-{major}"));
        let mut nvcc = Command::new(fixtures().nvcc());
        nvcc.args(["-arch=sm_80", "-cudart", "shared", "-o"])
            .arg(&exe)
            .arg(repo_root().join("tests/c/kernel.cu"));
        let real_dir = if major == 12 {
            let rt = &fixtures().cuda12;
            nvcc.arg(format!("-I{}", rt.include.display()))
                .arg(format!("-L{}", rt.lib_dir.display()));
            rt.lib_dir.clone()
        } else {
            fixtures().nvcc13.join("lib")
        };
        let built = run(&mut nvcc);
        assert_eq!(built.code, Some(0), "nvcc: {built}");
        let direct = run(Command::new(&exe).env("LD_LIBRARY_PATH", &real_dir));
        assert_eq!(direct.code, Some(0), "{direct}");
        let socket = dir.path().join(format!("gpu-{major}.sock"));
        let server = RemoteServer::start(&format!("unix:{}", socket.display()), &real_dir, None);
        let remote = run(Command::new(&exe)
            .env("LD_LIBRARY_PATH", dist.join(major.to_string()))
            .env("CUDASTUB_REMOTE", server.endpoint.to_string()));
        assert_eq!(remote.code, Some(0), "CUDA {major}: {remote}");
        assert_eq!(
            remote.stdout, direct.stdout,
            "CUDA {major}: remote and direct differ\n{remote}"
        );
        assert!(
            !remote.stderr.contains("not supported by the remote GPU"),
            "CUDA {major}: a call of the program was not sent: {remote}"
        );
    }
}

/// The server trusts no length, side or launch a client sends: what the
/// plan says is checked against the other arguments before any call. A
/// hostile client speaking the protocol directly is refused, naming why,
/// and its session goes on.
#[test]
fn the_server_refuses_arguments_the_plan_does_not_allow() {
    use cudastub_remote::wire::{Arg, Deferred, GraphHost, Queued, Reply, Request, receive, send};
    use serde_bytes::ByteBuf;
    let dir = tempdir();
    let socket = dir.path().join("gpu.sock");
    let server = RemoteServer::start(&format!("unix:{}", socket.display()), &runtime_dir(), None);
    let plan = plan12();
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    send(
        &mut stream,
        &Request::Hello {
            protocol: cudastub_remote::wire::PROTOCOL,
            token: String::new(),
            major: 12,
            fingerprint: plan.fingerprint(),
            shared_memory: 0,
        },
    )
    .expect("hello");
    let welcome: Reply = receive(&mut stream).expect("read").expect("a reply");
    assert!(matches!(welcome, Reply::Welcome { .. }), "{welcome:?}");
    let (l, f) = plan.find("cudart", "cudaMemcpy").expect("cudaMemcpy");
    let value = |v: u64, n: usize| Arg::Value(ByteBuf::from(v.to_le_bytes()[..n].to_vec()));
    let mut call = |args: Vec<Arg>| -> Reply {
        send(
            &mut stream,
            &Request::Call {
                library: l,
                function: f,
                args,
                thread: 0,
                host: GraphHost::default(),
            },
        )
        .expect("send");
        receive(&mut stream).expect("read").expect("a reply")
    };
    // cudaMemcpy(dst, src, count, kind): 16 bytes sent where count says 1 MiB.
    let short = call(vec![
        value(0x1000, 8),
        Arg::Bytes(ByteBuf::from(vec![0u8; 16])),
        value(1 << 20, 8),
        value(1, 4), // cudaMemcpyHostToDevice
    ]);
    assert!(
        matches!(&short, Reply::Refused(why) if why.contains("16 bytes where the other arguments say 1048576")),
        "{short:?}"
    );
    // The source as an address of the server's own, in a host-to-device copy.
    let address = call(vec![
        value(0x1000, 8),
        value(0x7fff_0000, 8),
        value(16, 8),
        value(1, 4),
    ]);
    assert!(
        matches!(&address, Reply::Refused(why) if why.contains("where the side is 1")),
        "{address:?}"
    );
    // The address decides only for `cudaMemcpyDefault`; and then the
    // client's bytes must be all the copy reads (no device memory here).
    let probed = |n: usize| Arg::Probed {
        address: 0x7fff_0000,
        bytes: ByteBuf::from(vec![0u8; n]),
    };
    for (kind, dst, src, expected) in [
        (
            1,
            value(0x1000, 8),
            probed(16),
            "an address and its bytes where the side is not the address's",
        ),
        (
            4,
            probed(0),
            probed(8),
            "nor 16 bytes of host memory the client could read (8 were)",
        ),
        // An address alone (memory the client could not read), and no
        // device memory of the server's.
        (
            4,
            probed(0),
            value(0x1000, 8),
            "0x1000 is neither memory the client could read nor device memory",
        ),
    ] {
        let reply = call(vec![dst, src, value(16, 8), value(kind, 4)]);
        assert!(
            matches!(&reply, Reply::Refused(why) if why.contains("`src`") && why.contains(expected)),
            "{reply:?}"
        );
    }
    // An output shorter than the copy.
    let out = call(vec![
        Arg::Out(1),
        value(0x1000, 8),
        value(4096, 8),
        value(2, 4),
    ]);
    assert!(
        matches!(&out, Reply::Refused(why) if why.contains("1 bytes where the other arguments say 4096")),
        "{out:?}"
    );
    // A callback's number must be one: 8 bytes, never host memory (the
    // server never calls what a client names).
    let (hl, hf) = plan
        .find("cudart", "cudaLaunchHostFunc")
        .expect("cudaLaunchHostFunc");
    for (fn_arg, expected) in [
        (value(7, 4), "a callback's number of 4 bytes"),
        (
            Arg::Bytes(ByteBuf::from(vec![0xc3u8; 16])),
            "for a callback",
        ),
    ] {
        send(
            &mut stream,
            &Request::Call {
                library: hl,
                function: hf,
                args: vec![value(0, 8), fn_arg, value(0x1234, 8)],
                thread: 0,
                host: GraphHost::default(),
            },
        )
        .expect("send");
        let reply: Reply = receive(&mut stream).expect("read").expect("a reply");
        assert!(
            matches!(&reply, Reply::Refused(why) if why.contains("`fn`") && why.contains(expected)),
            "{reply:?}"
        );
    }
    // A thread number beyond what a session serves.
    send(
        &mut stream,
        &Request::Call {
            library: hl,
            function: hf,
            args: vec![value(0, 8), Arg::Null, value(0, 8)],
            thread: cudastub_remote::wire::MAX_THREADS,
            host: GraphHost::default(),
        },
    )
    .expect("send");
    let reply: Reply = receive(&mut stream).expect("read").expect("a reply");
    assert!(
        matches!(&reply, Reply::Refused(why) if why.contains("a session serves 1024 threads")),
        "{reply:?}"
    );
    // A queued call is checked the same: refused, it is reported with the
    // next answer as the runtime's "not supported".
    send(
        &mut stream,
        &Request::Queued(vec![Queued {
            library: l,
            function: f,
            args: vec![
                value(0x1000, 8),
                Arg::Bytes(ByteBuf::from(vec![0u8; 16])),
                value(1 << 20, 8),
                value(1, 4),
            ],
            thread: 0,
            host: GraphHost::default(),
        }]),
    )
    .expect("send");
    let memcpy = (l, f);
    // A GEMM's alpha as a device address, on a handle whose pointer mode
    // (the real cuBLAS's answer) is not the device's: refused.
    let (gl, gf) = plan.find("cublas", "cublasSgemm_v2").expect("found");
    let mut args = vec![value(0, 8), value(0, 4), value(0, 4)];
    args.extend([value(1, 4), value(1, 4), value(1, 4)]);
    args.push(value(0x7fff_0000, 8)); // alpha: "a device address"
    args.extend([value(0x1000, 8), value(1, 4), value(0x1000, 8), value(1, 4)]);
    args.push(Arg::Bytes(ByteBuf::from(1f32.to_le_bytes().to_vec()))); // beta
    args.extend([value(0x1000, 8), value(1, 4)]);
    send(
        &mut stream,
        &Request::Call {
            library: gl,
            function: gf,
            args,
            thread: 0,
            host: GraphHost::default(),
        },
    )
    .expect("send");
    let gemm: Reply = receive(&mut stream).expect("read").expect("a reply");
    assert!(
        matches!(&gemm, Reply::Refused(why) if why.contains("`alpha` sent as value of 8 bytes where the handle's pointer mode is")),
        "{gemm:?}"
    );
    // cuBLASLt's alpha: an address and what the client read there, never
    // more than the largest scalar; nothing else in its place.
    let (ll, lf) = plan.find("cublasLt", "cublasLtMatmul").expect("found");
    for (alpha, expected) in [
        (
            Arg::Probed {
                address: 0x7fff_0000,
                bytes: ByteBuf::from(vec![0u8; 17]),
            },
            "at most 16 bytes",
        ),
        (
            Arg::Bytes(ByteBuf::from(vec![0u8; 4])),
            "buffer of 4 bytes where an address",
        ),
    ] {
        let mut args = vec![value(0, 8), value(0, 8), alpha];
        args.extend((3..16).map(|_| value(0, 8)));
        send(
            &mut stream,
            &Request::Call {
                library: ll,
                function: lf,
                args,
                thread: 0,
                host: GraphHost::default(),
            },
        )
        .expect("send");
        let reply: Reply = receive(&mut stream).expect("read").expect("a reply");
        assert!(
            matches!(&reply, Reply::Refused(why) if why.contains("`alpha`") && why.contains(expected)),
            "{reply:?}"
        );
    }
    // A graph's copy node to host memory: the node would keep the address
    // of the server's copy, gone after the call.
    let (nl, nf) = plan
        .find("cudart", "cudaGraphAddMemcpyNode1D")
        .expect("found");
    send(
        &mut stream,
        &Request::Call {
            library: nl,
            function: nf,
            args: vec![
                Arg::Out(8),
                value(0, 8),
                Arg::Null,
                value(0, 8),
                Arg::Out(16),
                value(0x1000, 8),
                value(16, 8),
                value(2, 4), // cudaMemcpyDeviceToHost
            ],
            thread: 0,
            host: GraphHost::default(),
        },
    )
    .expect("send");
    let reply: Reply = receive(&mut stream).expect("read").expect("a reply");
    assert!(
        matches!(&reply, Reply::Refused(why) if why.contains("a graph's copy node from or to host memory")),
        "{reply:?}"
    );
    // A kernel node: its struct as long as its layout, no `extra`, a
    // kernel named, and arguments only as the kernel's parameters are.
    let (kl, kf) = plan
        .find("cudart", "cudaGraphAddKernelNode")
        .expect("found");
    let node = |len: usize, func: u64, extra: u64, args: usize| {
        let mut bytes = vec![0u8; len];
        if len >= 56 {
            bytes[..8].copy_from_slice(&func.to_le_bytes());
            bytes[48..56].copy_from_slice(&extra.to_le_bytes());
        }
        Arg::KernelNode {
            bytes: ByteBuf::from(bytes),
            args: vec![ByteBuf::from(vec![0u8; 8]); args],
        }
    };
    for (params, expected) in [
        (node(48, 0x5555_0000, 0, 0), "48 bytes for a struct of 56"),
        (node(56, 0x5555_0000, 0x1000, 0), "`extra` arguments"),
        (node(56, 0, 0, 0), "no kernel in `func`"),
        (
            node(56, 0x5555_0000, 0, 2),
            "a kernel whose parameters were never asked for",
        ),
    ] {
        send(
            &mut stream,
            &Request::Call {
                library: kl,
                function: kf,
                args: vec![Arg::Out(8), value(0, 8), Arg::Null, value(0, 8), params],
                thread: 0,
                host: GraphHost::default(),
            },
        )
        .expect("send");
        let reply: Reply = receive(&mut stream).expect("read").expect("a reply");
        assert!(
            matches!(&reply, Reply::Refused(why) if why.contains("`pNodeParams`") && why.contains(expected)),
            "{reply:?}"
        );
    }
    // The session goes on: a good call still answers.
    let (l, f) = plan.find("cudart", "cudaRuntimeGetVersion").expect("found");
    send(
        &mut stream,
        &Request::Call {
            library: l,
            function: f,
            args: vec![Arg::Out(4)],
            thread: 0,
            host: GraphHost::default(),
        },
    )
    .expect("send");
    let reply: Reply = receive(&mut stream).expect("read").expect("a reply");
    match reply {
        Reply::Return {
            value,
            outputs,
            deferred,
            ..
        } => {
            assert_eq!(value, 0);
            assert_eq!(outputs[0].1.as_ref(), 12090i32.to_le_bytes());
            let not_supported = 801; // cudaErrorNotSupported
            assert_eq!(
                deferred,
                vec![Deferred {
                    library: memcpy.0,
                    function: memcpy.1,
                    value: not_supported
                }]
            );
        }
        other => panic!("{other:?}"),
    }
    drop(server);
}

/// Calls of class `async` (launches, copies to the device, memsets) are
/// queued and sent with the next answered call; a failure is reported by
/// the next call of the library that waits for earlier work, as CUDA
/// reports a kernel's. Until an `async` call has succeeded (a server with
/// no device never gets there) every call is answered, so each returns
/// what a direct call returns.
#[test]
fn queued_calls_report_their_failures_at_the_next_wait() {
    let dir = tempdir();
    let socket = dir.path().join("gpu.sock");
    let server = RemoteServer::start(&format!("unix:{}", socket.display()), &runtime_dir(), None);
    let direct = Direct::load();
    type Memset = unsafe extern "C" fn(*mut c_void, c_int, usize, *mut c_void) -> c_int;
    type Wait = unsafe extern "C" fn(*mut c_void) -> c_int;
    // SAFETY: the runtime's prototypes of these two.
    let (memset, wait): (Memset, Wait) = unsafe {
        (
            std::mem::transmute::<*mut c_void, Memset>(direct.symbol("cudaMemsetAsync")),
            std::mem::transmute::<*mut c_void, Wait>(direct.symbol("cudaStreamSynchronize")),
        )
    };
    let device = 0x1000usize as *mut c_void;
    let stream: *mut c_void = std::ptr::null_mut();
    // SAFETY: with no device, neither touches the address.
    let (memset_status, wait_status) = unsafe { (memset(device, 7, 16, stream), wait(stream)) };
    assert_ne!(memset_status, 0, "no device here: the memset fails");
    let (value, count): (c_int, usize) = (7, 16);
    let memset_args: [*const u8; 4] = [
        (&raw const device).cast(),
        (&raw const value).cast(),
        (&raw const count).cast(),
        (&raw const stream).cast(),
    ];
    let wait_args: [*const u8; 1] = [(&raw const stream).cast()];
    let mut client = Client::connect(&server.endpoint, "", plan12()).expect("connect");
    // No `async` call has succeeded: each is answered, as directly.
    for _ in 0..2 {
        let r = remote_returned(&mut client, "cudart", "cudaMemsetAsync", &memset_args)
            .expect("memset");
        assert_eq!((r.value as c_int, r.deferred), (memset_status, None));
    }
    // Queued: it returns success at once, and its failure comes back with
    // the next answer.
    client.set_batching(Batching::On);
    for _ in 0..3 {
        let r = remote_returned(&mut client, "cudart", "cudaMemsetAsync", &memset_args)
            .expect("memset");
        assert_eq!((r.value, r.deferred), (0, None), "queued");
    }
    // A call that does not wait returns its own status.
    let mut n: c_int = -7;
    let out: *mut c_int = &mut n;
    let (direct_count_status, direct_count) = direct.int_out("cudaGetDeviceCount");
    let r = remote_returned(
        &mut client,
        "cudart",
        "cudaGetDeviceCount",
        &[(&raw const out).cast()],
    )
    .expect("count");
    assert_eq!(
        (r.value as c_int, n, r.deferred),
        (direct_count_status, direct_count, None)
    );
    // The wait reports the first queued failure, once.
    let r =
        remote_returned(&mut client, "cudart", "cudaStreamSynchronize", &wait_args).expect("wait");
    assert_eq!(r.value as c_int, wait_status, "the wait's own status");
    assert_eq!(
        r.deferred,
        Some(("cudaMemsetAsync".to_string(), memset_status as u64))
    );
    let r =
        remote_returned(&mut client, "cudart", "cudaStreamSynchronize", &wait_args).expect("wait");
    assert_eq!((r.value as c_int, r.deferred), (wait_status, None));
    drop(server);
}
