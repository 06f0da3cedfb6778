//! The shim's runtime (template `codegen/templates/runtime.rs`, emitted into
//! every generated shim): it loads the real library on the first call and
//! fills every slot with the real function, or with a typed fallback.
//!
//! Lazy-loading protocol. Every slot starts at a per-function lazy stub that
//! puts the function's index in `r11` and jumps to [`resolve_and_retry`].
//! That saves every argument register, calls [`resolve_all`] (a `OnceLock`:
//! the first thread loads, racing threads wait, later calls return at
//! once), restores the registers and jumps through the now-filled slot, so
//! the call proceeds as if it had gone straight to the real function. The
//! first call may come from an ELF constructor (nvcc-built programs register
//! their kernels before `main`); nothing here needs `main` to have run.
//!
//! The runtime never aborts its host: every failure is one line on stderr
//! and a failure value returned by the fallback.

use std::ffi::{CStr, CString, OsStr};
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{FALLBACKS, FUNCTION_COUNT, NAMES, SLOTS, SONAME, STATUS_NAMES, VERSION_NODE};

#[cfg(not(target_arch = "x86_64"))]
compile_error!("cudastub shims support x86_64 only");

/// The environment variable naming the real library's full path.
pub const REAL_LIB_VAR: &CStr = c"CUDASTUB_REAL_LIB";

/// A code address in a static table.
#[repr(transparent)]
pub struct CodePtr(pub *const ());

// SAFETY: code addresses are immutable and callable from any thread.
unsafe impl Sync for CodePtr {}

/// Why a call could not be forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The real library could not be found or loaded.
    LibraryMissing,
    /// The real library lacks this function (an older release).
    SymbolMissing,
}

/// The loaded real library, or `None` when none could be loaded.
static REAL: OnceLock<Option<PathBuf>> = OnceLock::new();

/// One flag per function: its missing-symbol message was printed.
static WARNED: [AtomicBool; FUNCTION_COUNT] = [const { AtomicBool::new(false) }; FUNCTION_COUNT];

/// Saves the argument registers, loads the library once, restores them and
/// retries the call through slot `r11`.
#[unsafe(naked)]
pub unsafe extern "C" fn resolve_and_retry() {
    core::arch::naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "sub rsp, 192",
        "mov [rsp], rdi",
        "mov [rsp + 8], rsi",
        "mov [rsp + 16], rdx",
        "mov [rsp + 24], rcx",
        "mov [rsp + 32], r8",
        "mov [rsp + 40], r9",
        "mov [rsp + 48], rax",
        "mov [rsp + 56], r11",
        "movdqu [rsp + 64], xmm0",
        "movdqu [rsp + 80], xmm1",
        "movdqu [rsp + 96], xmm2",
        "movdqu [rsp + 112], xmm3",
        "movdqu [rsp + 128], xmm4",
        "movdqu [rsp + 144], xmm5",
        "movdqu [rsp + 160], xmm6",
        "movdqu [rsp + 176], xmm7",
        "call {resolve}",
        "mov rdi, [rsp]",
        "mov rsi, [rsp + 8]",
        "mov rdx, [rsp + 16]",
        "mov rcx, [rsp + 24]",
        "mov r8, [rsp + 32]",
        "mov r9, [rsp + 40]",
        "mov rax, [rsp + 48]",
        "mov r11, [rsp + 56]",
        "movdqu xmm0, [rsp + 64]",
        "movdqu xmm1, [rsp + 80]",
        "movdqu xmm2, [rsp + 96]",
        "movdqu xmm3, [rsp + 112]",
        "movdqu xmm4, [rsp + 128]",
        "movdqu xmm5, [rsp + 144]",
        "movdqu xmm6, [rsp + 160]",
        "movdqu xmm7, [rsp + 176]",
        "mov rsp, rbp",
        "pop rbp",
        "lea r10, [rip + {slots}]",
        "jmp qword ptr [r10 + r11 * 8]",
        resolve = sym resolve_all,
        slots = sym SLOTS,
    )
}

/// Loads the real library and fills every slot, once per process.
pub extern "C" fn resolve_all() {
    REAL.get_or_init(load);
}

/// Called by a fallback: reports (once) why the call failed.
pub fn unavailable(index: u32) -> Failure {
    match REAL.get_or_init(load) {
        None => Failure::LibraryMissing,
        Some(path) => {
            let i = index as usize;
            if i < FUNCTION_COUNT && !WARNED[i].swap(true, Ordering::Relaxed) {
                say(&format!(
                    "{}@{} is missing from {} (an older release?); calls to it fail",
                    NAMES[i].to_string_lossy(),
                    VERSION_NODE.to_string_lossy(),
                    path.display()
                ));
            }
            Failure::SymbolMissing
        }
    }
}

/// The name of a status value (`cudaErrorStubLibrary`), for fallbacks of
/// functions that describe a status.
pub fn status_name(value: i64) -> &'static CStr {
    STATUS_NAMES.iter().find(|(v, _)| *v == value).map_or(c"unrecognized error code (cudastub: real library unavailable)", |(_, n)| n)
}

/// Writes one line to stderr; a closed stderr is not our host's problem.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "cudastub: {message}");
}

fn load() -> Option<PathBuf> {
    let own = own_image();
    let (candidates, searched) = candidates();
    let mut refused = Vec::new();
    for path in candidates {
        match open(&path, own.as_ref()) {
            Ok(handle) => {
                fill(handle);
                return Some(path);
            }
            Err(why) => refused.push(format!("{}: {why}", path.display())),
        }
    }
    for (slot, fallback) in SLOTS.iter().zip(FALLBACKS.iter()) {
        slot.store(fallback.0.cast_mut(), Ordering::Release);
    }
    let mut what = format!("cannot load the real {SONAME}");
    if refused.is_empty() {
        what.push_str(&format!(" (not found in {searched})"));
    } else {
        what.push_str(&format!(" ({})", refused.join("; ")));
    }
    say(&format!(
        "{what}; set {}=/full/path/to/{SONAME}.x.y (or CUDA_HOME); every call fails until then",
        REAL_LIB_VAR.to_string_lossy()
    ));
    None
}

/// Fills every slot from the real library.
fn fill(handle: *mut libc::c_void) {
    for (i, slot) in SLOTS.iter().enumerate() {
        // SAFETY: `handle` is a live dlopen handle; both strings are NUL-terminated.
        let real = unsafe { libc::dlvsym(handle, NAMES[i].as_ptr(), VERSION_NODE.as_ptr()) };
        let target = if real.is_null() { FALLBACKS[i].0.cast_mut() } else { real.cast::<()>() };
        slot.store(target, Ordering::Release);
    }
}

/// The shim's own file and load address, to refuse loading itself.
struct OwnImage {
    base: *mut libc::c_void,
    dev_ino: Option<(u64, u64)>,
}

fn own_image() -> Option<OwnImage> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address and fills `info`.
    if unsafe { libc::dladdr(resolve_all as *const libc::c_void, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated file name.
    let file = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(OwnImage { base: info.dli_fbase, dev_ino: dev_ino(Path::new(OsStr::from_bytes(file.to_bytes()))) })
}

fn dev_ino(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Opens `path` and checks it is a real library, not this shim.
fn open(path: &Path, own: Option<&OwnImage>) -> Result<*mut libc::c_void, String> {
    const ITSELF: &str = "it is this shim itself (forwarding to it would loop forever)";
    if let (Some(own), Some(theirs)) = (own, dev_ino(path))
        && own.dev_ino == Some(theirs)
    {
        return Err(ITSELF.to_string());
    }
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| "path contains a NUL byte".to_string())?;
    // SAFETY: a NUL-terminated path; RTLD_LOCAL keeps the real library out of
    // the global scope, so the host's symbols keep binding to the shim.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a NUL-terminated message or null.
        let err = unsafe { libc::dlerror() };
        let why = if err.is_null() { "dlopen failed".to_string() } else { unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned() };
        return Err(why);
    }
    let probe = NAMES.iter().find_map(|name| {
        // SAFETY: live handle, NUL-terminated strings.
        let p = unsafe { libc::dlvsym(handle, name.as_ptr(), VERSION_NODE.as_ptr()) };
        (!p.is_null()).then_some(p)
    });
    let refuse = |why: String| {
        // SAFETY: the handle came from dlopen above and nothing uses it.
        unsafe { libc::dlclose(handle) };
        Err(why)
    };
    let Some(probe) = probe else {
        return refuse(format!("exports no function with version {}", VERSION_NODE.to_string_lossy()));
    };
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address.
    if let Some(own) = own
        && unsafe { libc::dladdr(probe, &mut info) } != 0
        && info.dli_fbase == own.base
    {
        return refuse(ITSELF.to_string());
    }
    Ok(handle)
}

/// The files to try, in order, and a description of where they were looked for.
///
/// `CUDASTUB_REAL_LIB`, if set, is the only candidate; set-user-ID and other
/// secure-execution processes ignore it (`secure_getenv`) and `CUDA_HOME`.
/// Otherwise each directory of the search list contributes its fully
/// versioned `SONAME.x.y` (highest first), then `SONAME` itself.
fn candidates() -> (Vec<PathBuf>, String) {
    if let Some(path) = secure_env(REAL_LIB_VAR) {
        return (vec![PathBuf::from(&path)], format!("{}={path}", REAL_LIB_VAR.to_string_lossy()));
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(home) = secure_env(c"CUDA_HOME") {
        dirs.push(Path::new(&home).join("lib64"));
        dirs.push(Path::new(&home).join("lib"));
    }
    for d in ["/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu", "/lib64"] {
        dirs.push(PathBuf::from(d));
    }
    let mut found = Vec::new();
    for dir in &dirs {
        let mut versioned: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let rest = name.to_str()?.strip_prefix(SONAME)?.strip_prefix('.')?.to_string();
                let version: Option<Vec<u64>> = rest.split('.').map(|p| p.parse().ok()).collect();
                Some((version?, e.path()))
            })
            .collect();
        versioned.sort();
        found.extend(versioned.into_iter().rev().map(|(_, p)| p));
        let plain = dir.join(SONAME);
        if plain.exists() {
            found.push(plain);
        }
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    (found, searched.join(", "))
}

unsafe extern "C" {
    /// glibc 2.17+; the `libc` crate does not declare it.
    fn secure_getenv(name: *const libc::c_char) -> *mut libc::c_char;
}

/// `secure_getenv`: unset in set-user-ID and other secure-execution processes.
fn secure_env(name: &CStr) -> Option<String> {
    // SAFETY: a NUL-terminated name; the result is copied before any other
    // environment access.
    let value = unsafe { secure_getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    let s = unsafe { CStr::from_ptr(value) }.to_string_lossy().into_owned();
    (!s.is_empty()).then_some(s)
}
