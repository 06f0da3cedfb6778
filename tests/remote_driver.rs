//! The remote GPU with the real driver (535, no GPU here) loaded in this
//! test process. A test binary of its own: the driver loaded here would be
//! the runtime's too (a later `dlopen("libcuda.so.1")` finds it by its
//! soname), and `tests/remote.rs` compares the server with a direct
//! runtime that has no driver.

use std::ffi::{CString, c_int, c_void};
use std::path::PathBuf;

use cudastub_remote::client::{CallError, Client};
use cudastub_tests::{RemoteServer, remote, remote_plan, repo_root, tempdir};

fn driver_dir() -> PathBuf {
    repo_root().join("target/fixtures/driver/lib")
}

/// The pinned real driver, loaded in this process: `symbol(name)`.
fn real_driver() -> impl Fn(&str) -> *mut c_void {
    let path = CString::new(
        driver_dir()
            .join("libcuda.so.1")
            .as_os_str()
            .as_encoded_bytes(),
    )
    .expect("path");
    // SAFETY: dlopen of the pinned real driver.
    let real = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!real.is_null(), "cannot load the real driver");
    let real = real as usize;
    move |name: &str| {
        let n = CString::new(name).expect("name");
        // SAFETY: a valid handle and name.
        let f = unsafe { libc::dlsym(real as *mut c_void, n.as_ptr()) };
        assert!(!f.is_null(), "no {name}");
        f
    }
}

/// A server of the real driver and a client of it.
fn driver_server(dir: &tempfile::TempDir) -> (RemoteServer, Client) {
    let socket = dir.path().join("gpu.sock");
    let server = RemoteServer::start(&format!("unix:{}", socket.display()), &driver_dir(), None);
    let client = Client::connect(&server.endpoint, "", remote_plan(12)).expect("connect");
    (server, client)
}

/// The driver's `cuLaunchKernel` with its arguments packed in `extra`
/// (`CU_LAUNCH_PARAM_BUFFER_POINTER`/`_SIZE`): the list crosses as its
/// buffer and the server makes it anew, so the remote call returns what
/// the real driver (535, no GPU here) returns directly; a list the client
/// cannot read as such is refused on the client, naming why.
#[test]
fn driver_launches_cross_with_their_packed_arguments() {
    let dir = tempdir();
    let (_server, mut client) = driver_server(&dir);
    let symbol = real_driver();
    type Init = unsafe extern "C" fn(u32) -> c_int;
    type Launch = unsafe extern "C" fn(
        *mut c_void,
        u32,
        u32,
        u32,
        u32,
        u32,
        u32,
        u32,
        *mut c_void,
        *mut *mut c_void,
        *mut *mut c_void,
    ) -> c_int;
    // SAFETY: the driver's prototypes of these two.
    let (init, launch) = unsafe {
        (
            std::mem::transmute::<*mut c_void, Init>(symbol("cuInit")),
            std::mem::transmute::<*mut c_void, Launch>(symbol("cuLaunchKernel")),
        )
    };
    let flags: u32 = 0;
    // SAFETY: the driver checks its argument.
    let direct_init = unsafe { init(flags) };
    let remote_init =
        remote(&mut client, "cuda", "cuInit", &[(&raw const flags).cast()]).expect("cuInit");
    assert_eq!(remote_init as c_int, direct_init, "cuInit");
    // The kernel's arguments packed: an int and a pointer.
    let mut packed = [0u8; 16];
    packed[..4].copy_from_slice(&7i32.to_le_bytes());
    let mut size: usize = packed.len();
    // `CU_LAUNCH_PARAM_BUFFER_POINTER`, `_BUFFER_SIZE`: numbers as pointers.
    let key = std::ptr::without_provenance_mut::<c_void>;
    let mut extra: [*mut c_void; 5] = [
        key(1),
        packed.as_mut_ptr().cast(),
        key(2),
        (&raw mut size).cast(),
        std::ptr::null_mut(),
    ];
    let (f, one, zero): (*mut c_void, u32, u32) = (std::ptr::null_mut(), 1, 0);
    let (stream, params): (*mut c_void, *mut *mut c_void) =
        (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: the driver checks its arguments before any launch.
    let direct = unsafe { launch(f, 1, 1, 1, 1, 1, 1, 0, stream, params, extra.as_mut_ptr()) };
    let extra_ptr = extra.as_mut_ptr();
    let args: Vec<*const u8> = vec![
        (&raw const f).cast(),
        (&raw const one).cast(),
        (&raw const one).cast(),
        (&raw const one).cast(),
        (&raw const one).cast(),
        (&raw const one).cast(),
        (&raw const one).cast(),
        (&raw const zero).cast(),
        (&raw const stream).cast(),
        (&raw const params).cast(),
        (&raw const extra_ptr).cast(),
    ];
    let remote_launch =
        remote(&mut client, "cuda", "cuLaunchKernel", &args).expect("cuLaunchKernel");
    assert_eq!(remote_launch as c_int, direct, "cuLaunchKernel with extra");
    // No arguments at all (a kernel without parameters): the list is its
    // end alone.
    let mut end_only: [*mut c_void; 1] = [std::ptr::null_mut()];
    // SAFETY: as above.
    let direct_end = unsafe {
        launch(
            f,
            1,
            1,
            1,
            1,
            1,
            1,
            0,
            stream,
            params,
            end_only.as_mut_ptr(),
        )
    };
    let end_ptr = end_only.as_mut_ptr();
    let mut end_args = args.clone();
    end_args[10] = (&raw const end_ptr).cast();
    let remote_end =
        remote(&mut client, "cuda", "cuLaunchKernel", &end_args).expect("an empty list");
    assert_eq!(
        remote_end as c_int, direct_end,
        "cuLaunchKernel with an empty extra"
    );
    // A key the client does not know: refused before anything is sent.
    // SAFETY: the list's first key, in our own array.
    unsafe { extra_ptr.write(key(7)) };
    let err = remote(&mut client, "cuda", "cuLaunchKernel", &args).expect_err("an unknown key");
    assert!(
        matches!(&err, CallError::Unsupported(why) if why.contains("`extra`") && why.contains("0x7")),
        "{err}"
    );
}

/// The driver's unified copies (`cuMemcpy`, `cuMemcpyAsync`) leave each
/// side to its address: the client sends the address with what it can
/// read there, and the server takes it as its device memory only where
/// its driver says so. Here (no GPU) none is: host memory crosses by value
/// and the call returns what the real driver returns directly; memory the
/// client cannot read is refused, never read in the server's process.
#[test]
fn unified_copies_take_the_side_their_address_says() {
    let dir = tempdir();
    let (_server, mut client) = driver_server(&dir);
    let symbol = real_driver();
    type Init = unsafe extern "C" fn(u32) -> c_int;
    type Copy = unsafe extern "C" fn(u64, u64, usize) -> c_int;
    type CopyAsync = unsafe extern "C" fn(u64, u64, usize, *mut c_void) -> c_int;
    // SAFETY: the driver's prototypes of these three.
    let (init, copy, copy_async) = unsafe {
        (
            std::mem::transmute::<*mut c_void, Init>(symbol("cuInit")),
            std::mem::transmute::<*mut c_void, Copy>(symbol("cuMemcpy")),
            std::mem::transmute::<*mut c_void, CopyAsync>(symbol("cuMemcpyAsync")),
        )
    };
    let flags: u32 = 0;
    // SAFETY: the driver checks its argument.
    let direct_init = unsafe { init(flags) };
    let remote_init =
        remote(&mut client, "cuda", "cuInit", &[(&raw const flags).cast()]).expect("cuInit");
    assert_eq!(remote_init as c_int, direct_init, "cuInit");
    let src = [7u8; 64];
    let mut dst = [0u8; 64];
    let (src_at, dst_at, len) = (src.as_ptr() as u64, dst.as_mut_ptr() as u64, src.len());
    let stream: *mut c_void = std::ptr::null_mut();
    // SAFETY: host memory of ours, as long as the copy.
    let (direct, direct_async) = unsafe {
        (
            copy(dst_at, src_at, len),
            copy_async(dst_at, src_at, len, stream),
        )
    };
    let args: [*const u8; 3] = [
        (&raw const dst_at).cast(),
        (&raw const src_at).cast(),
        (&raw const len).cast(),
    ];
    let got = remote(&mut client, "cuda", "cuMemcpy", &args).expect("cuMemcpy");
    assert_eq!(got as c_int, direct, "cuMemcpy, host to host");
    let async_args: [*const u8; 4] = [args[0], args[1], args[2], (&raw const stream).cast()];
    let got = remote(&mut client, "cuda", "cuMemcpyAsync", &async_args).expect("cuMemcpyAsync");
    assert_eq!(got as c_int, direct_async, "cuMemcpyAsync, host to host");
    // A source or destination this process cannot read goes as an address
    // alone, and it is no device memory of the server's either: refused,
    // naming it.
    let unmapped: u64 = 0x10;
    let bad_src: [*const u8; 3] = [args[0], (&raw const unmapped).cast(), args[2]];
    let bad_dst: [*const u8; 4] = [
        (&raw const unmapped).cast(),
        args[1],
        args[2],
        async_args[3],
    ];
    for (name, param, args) in [
        ("cuMemcpy", "`src`", &bad_src[..]),
        ("cuMemcpyAsync", "`dst`", &bad_dst[..]),
    ] {
        let err = remote(&mut client, "cuda", name, args).expect_err("an unreadable address");
        assert!(
            matches!(&err, CallError::Refused(why) if why.starts_with(name) && why.contains(param) && why.contains("0x10 is neither memory the client could read nor device memory")),
            "{err}"
        );
    }
}
