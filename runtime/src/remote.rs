//! The remote GPU's link. A client shim (`cudastub dist --remote`) answers
//! every call through `libcudastub-remote.so`, the one client library of the
//! process: every shim of the process (runtime, driver, cuBLAS, NVML) shares
//! its single connection to the GPU server, so their calls reach one server
//! session, in program order. The shim finds it next to itself (else on the
//! loader's path), once, and calls its `cudastub_remote_call`.

use std::ffi::{CStr, CString, c_void};
use std::path::Path;
use std::sync::OnceLock;

/// The client library's file name.
pub const CLIENT_FILE: &str = "libcudastub-remote.so";

/// The client library's entry point: calls function `function` of the
/// library of `soname` (`soname_len` bytes, not NUL-terminated) in CUDA
/// `major`, with `nargs` argument addresses; writes the return register's
/// bits to `ret` and returns 0, or returns nonzero (having said why) for the
/// shim to answer with its own failure value.
pub type RemoteCall = unsafe extern "C" fn(
    major: u32,
    soname: *const u8,
    soname_len: usize,
    function: u32,
    args: *const *const u8,
    nargs: u32,
    ret: *mut u64,
) -> i32;

/// The entry point's symbol.
pub const ENTRY: &CStr = c"cudastub_remote_call";

static LINK: OnceLock<Option<RemoteCall>> = OnceLock::new();

/// Calls through the client library; `None` when it cannot be loaded (said
/// once) or does not know the function.
pub(crate) fn call(major: u32, soname: &str, function: u32, args: &[*const u8]) -> Option<u64> {
    let entry = (*LINK.get_or_init(link))?;
    let mut ret = 0u64;
    let nargs = u32::try_from(args.len()).ok()?;
    // SAFETY: the entry point's contract, with valid argument addresses
    // from the generated caller.
    let rc = unsafe {
        entry(
            major,
            soname.as_ptr(),
            soname.len(),
            function,
            args.as_ptr(),
            nargs,
            &mut ret,
        )
    };
    (rc == 0).then_some(ret)
}

/// Loads the client library: next to this shim first, then by the loader's
/// search.
fn link() -> Option<RemoteCall> {
    let mut tried = Vec::new();
    let beside = own_dir().map(|d| d.join(CLIENT_FILE));
    let candidates = beside
        .iter()
        .map(|p| p.as_os_str().as_encoded_bytes().to_vec())
        .chain(std::iter::once(CLIENT_FILE.as_bytes().to_vec()));
    for name in candidates {
        let Ok(c) = CString::new(name) else {
            continue;
        };
        // SAFETY: dlopen with a valid C string.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            tried.push(dl_error());
            continue;
        }
        // SAFETY: a valid handle and symbol name.
        let f = unsafe { libc::dlsym(handle, ENTRY.as_ptr()) };
        if f.is_null() {
            tried.push(format!(
                "{}: no {}",
                c.to_string_lossy(),
                ENTRY.to_string_lossy()
            ));
            continue;
        }
        // SAFETY: the client library defines the entry with this signature.
        return Some(unsafe { std::mem::transmute::<*mut c_void, RemoteCall>(f) });
    }
    super::say(&format!(
        "this is a remote GPU client, but {CLIENT_FILE} cannot be loaded ({}); every call fails",
        tried.join("; ")
    ));
    None
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a valid C string.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-null and NUL-terminated.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// The directory of the shim's own file.
fn own_dir() -> Option<std::path::PathBuf> {
    // SAFETY: dladdr only reads the address and fills `info`.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(own_dir as *const c_void, &mut info) } == 0 || info.dli_fname.is_null()
    {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated file name.
    let file = unsafe { CStr::from_ptr(info.dli_fname) };
    let path =
        Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(file.to_bytes()));
    path.parent().map(Path::to_path_buf)
}
