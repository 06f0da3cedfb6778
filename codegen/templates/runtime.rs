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
//! What a slot finally holds is its function's *target* — the real function
//! (or its fallback), a Rust or C implementation, or a policy stub — or, when
//! `CUDASTUB_TRACE` is set, the function's tracing wrapper, which calls the
//! target. With tracing off nothing stands between the trampoline's jump and
//! the target.
//!
//! The runtime never aborts its host: every failure is one line on stderr
//! and a failure value returned by the fallback.

use std::cell::Cell;
use std::ffi::{CStr, CString, OsStr};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use super::{
    FALLBACKS, FUNCTION_COUNT, NAMES, RETURNS_STATUS, SEARCH, SLOTS, SONAME, STATUS_NAMES, STATUS_SUCCESS, TARGETS, TRACERS,
    VERSION_NODE,
};

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
static REAL_PATH: OnceLock<Option<PathBuf>> = OnceLock::new();

/// The runtime, once initialised: real functions resolved, slots filled.
static INIT: OnceLock<()> = OnceLock::new();

/// Each function's real address, or its fallback.
static REAL: [AtomicPtr<()>; FUNCTION_COUNT] = [const { AtomicPtr::new(std::ptr::null_mut()) }; FUNCTION_COUNT];

/// Each function's target (what an untraced slot holds).
static ACTIVE: [AtomicPtr<()>; FUNCTION_COUNT] = [const { AtomicPtr::new(std::ptr::null_mut()) }; FUNCTION_COUNT];

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
    INIT.get_or_init(init);
}

fn init() {
    REAL_PATH.get_or_init(load);
    let mode = trace_mode();
    for i in 0..FUNCTION_COUNT {
        let own = TARGETS[i].0;
        let target = if own.is_null() { REAL[i].load(Ordering::Acquire) } else { own.cast_mut() };
        ACTIVE[i].store(target, Ordering::Release);
        let slot = if mode.is_on() { TRACERS[i].0.cast_mut() } else { target };
        SLOTS[i].store(slot, Ordering::Release);
    }
}

/// The target of function `index` (for tracing wrappers).
pub fn active(index: u32) -> *const () {
    INIT.get_or_init(init);
    ACTIVE[index as usize].load(Ordering::Acquire)
}

/// The real function `index`, or its fallback (for `real::NAME`).
pub fn real(index: u32) -> *const () {
    INIT.get_or_init(init);
    REAL[index as usize].load(Ordering::Acquire)
}

/// Called by a policy stub: reports once that the function is refused.
pub fn refused(index: u32, status: &str) {
    static REFUSED: [AtomicBool; FUNCTION_COUNT] = [const { AtomicBool::new(false) }; FUNCTION_COUNT];
    let i = index as usize;
    if i < FUNCTION_COUNT && !REFUSED[i].swap(true, Ordering::Relaxed) {
        say(&format!("{} is not supported by this shim; it returns {status}", NAMES[i].to_string_lossy()));
    }
}

/// Called by a fallback: reports (once) why the call failed.
pub fn unavailable(index: u32) -> Failure {
    match REAL_PATH.get_or_init(load) {
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
    for (real, fallback) in REAL.iter().zip(FALLBACKS.iter()) {
        real.store(fallback.0.cast_mut(), Ordering::Release);
    }
    let mut what = format!("cannot load the real {SONAME}");
    if refused.is_empty() {
        what.push_str(&format!(" (not found in {searched})"));
    } else {
        what.push_str(&format!(" ({})", refused.join("; ")));
    }
    say(&format!(
        "{what}; set {}=/full/path/to/{SONAME}.x.y; every call fails until then",
        REAL_LIB_VAR.to_string_lossy()
    ));
    None
}

/// Resolves every function in the real library.
fn fill(handle: *mut libc::c_void) {
    for (i, slot) in REAL.iter().enumerate() {
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
/// `CUDASTUB_REAL_LIB`, if set, is the only candidate. Otherwise each
/// directory of the manifest's search list (`library.search`; `$VAR/dir`
/// entries are skipped while `VAR` is unset) contributes its fully versioned
/// `SONAME.x.y` (highest first), then `SONAME` itself. Set-user-ID and other
/// secure-execution processes see neither variable (`secure_getenv`).
fn candidates() -> (Vec<PathBuf>, String) {
    if let Some(path) = secure_env(REAL_LIB_VAR) {
        return (vec![PathBuf::from(&path)], format!("{}={path}", REAL_LIB_VAR.to_string_lossy()));
    }
    let dirs: Vec<PathBuf> = SEARCH
        .iter()
        .filter_map(|entry| match entry.strip_prefix('$') {
            None => Some(PathBuf::from(entry)),
            Some(rest) => {
                let (var, dir) = rest.split_once('/')?;
                let value = CString::new(var).ok().and_then(|v| secure_env(&v))?;
                Some(Path::new(&value).join(dir))
            }
        })
        .collect();
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

// ---------------------------------------------------------------------------
// Tracing
//
// `CUDASTUB_TRACE=1` writes one line per call; `CUDASTUB_TRACE=summary`
// prints a table per function at exit; `all` does both. Lines go to stderr,
// or to the file named by `CUDASTUB_TRACE_FILE` (appended to).
//
// Re-entrancy: a thread-local depth counter marks a thread that is inside a
// traced call. A nested call on that thread — a backend implementation
// calling the runtime through the shim, or anything the target calls back
// into — runs untraced, so a call is logged once, by its outermost entry, and
// the tracer never waits on itself: the only lock is the output's, held
// while one finished line is written, with no runtime call inside.

/// What tracing does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceMode {
    lines: bool,
    summary: bool,
}

impl TraceMode {
    fn is_on(self) -> bool {
        self.lines || self.summary
    }
}

static MODE: OnceLock<TraceMode> = OnceLock::new();
static SINK: OnceLock<Mutex<Box<dyn std::io::Write + Send>>> = OnceLock::new();
static CALLS: [AtomicU64; FUNCTION_COUNT] = [const { AtomicU64::new(0) }; FUNCTION_COUNT];
static ERRORS: [AtomicU64; FUNCTION_COUNT] = [const { AtomicU64::new(0) }; FUNCTION_COUNT];
static NANOS: [AtomicU64; FUNCTION_COUNT] = [const { AtomicU64::new(0) }; FUNCTION_COUNT];

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    // SAFETY: gettid has no preconditions.
    static TID: i64 = unsafe { libc::syscall(libc::SYS_gettid) };
}

fn trace_mode() -> TraceMode {
    *MODE.get_or_init(|| {
        let off = TraceMode { lines: false, summary: false };
        let Some(value) = secure_env(c"CUDASTUB_TRACE") else { return off };
        let mode = match value.as_str() {
            "0" | "off" => off,
            "1" | "lines" | "on" => TraceMode { lines: true, summary: false },
            "summary" => TraceMode { lines: false, summary: true },
            "all" => TraceMode { lines: true, summary: true },
            other => {
                say(&format!("CUDASTUB_TRACE={other} is not one of 1, summary, all, 0; tracing stays off"));
                off
            }
        };
        if mode.summary {
            // SAFETY: registering a plain extern "C" function.
            unsafe { libc::atexit(print_summary) };
        }
        mode
    })
}

fn sink() -> &'static Mutex<Box<dyn std::io::Write + Send>> {
    SINK.get_or_init(|| {
        let out: Box<dyn std::io::Write + Send> = match secure_env(c"CUDASTUB_TRACE_FILE") {
            None => Box::new(std::io::stderr()),
            Some(path) => match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    say(&format!("cannot open CUDASTUB_TRACE_FILE={path}: {e}; tracing to stderr"));
                    Box::new(std::io::stderr())
                }
            },
        };
        Mutex::new(out)
    })
}

/// One traced call in progress.
pub struct TraceCall {
    index: usize,
    start: Instant,
}

impl TraceCall {
    /// Starts tracing call `index`, or `None` when this thread is already
    /// inside a traced call (or is exiting).
    pub fn enter(index: u32) -> Option<TraceCall> {
        let outermost = DEPTH
            .try_with(|d| {
                let depth = d.get();
                d.set(depth + 1);
                depth == 0
            })
            .ok()?;
        if !outermost {
            let _ = DEPTH.try_with(|d| d.set(d.get() - 1));
            return None;
        }
        Some(TraceCall { index: index as usize, start: Instant::now() })
    }

    /// Ends the call: counts it and, in line mode, writes its line.
    pub fn finish(self, status: Option<i64>, describe: impl FnOnce(&mut TraceLine)) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
        let i = self.index;
        let failed = RETURNS_STATUS[i] && status.is_some() && status != STATUS_SUCCESS;
        let mode = trace_mode();
        if mode.summary {
            CALLS[i].fetch_add(1, Ordering::Relaxed);
            NANOS[i].fetch_add(nanos, Ordering::Relaxed);
            if failed {
                ERRORS[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        if mode.lines {
            let mut line = TraceLine { text: String::with_capacity(192), first_arg: true };
            let tid = TID.try_with(|t| *t).unwrap_or(0);
            let _ = write!(line.text, "cudastub[{tid}] {}(", NAMES[i].to_str().unwrap_or("?"));
            describe(&mut line);
            let _ = writeln!(line.text, " {}.{:03}us", nanos / 1000, nanos % 1000);
            if let Ok(mut out) = sink().lock() {
                let _ = out.write_all(line.text.as_bytes());
                let _ = out.flush();
            }
        }
    }
}

/// The text of one trace line, built by the generated decoders.
pub struct TraceLine {
    text: String,
    first_arg: bool,
}

impl TraceLine {
    /// Starts argument `name`.
    pub fn arg(&mut self, name: &str) {
        if !self.first_arg {
            self.text.push_str(", ");
        }
        self.first_arg = false;
        self.text.push_str(name);
        self.text.push('=');
    }

    /// Closes the argument list; the return value follows.
    pub fn returned(&mut self) {
        self.text.push_str(") -> ");
    }

    /// Starts field `name` of an aggregate.
    pub fn field(&mut self, name: &str) {
        if !self.text.ends_with('{') {
            self.text.push_str(", ");
        }
        self.text.push_str(name);
        self.text.push('=');
    }

    /// Opens an aggregate or array.
    pub fn open(&mut self, c: char) {
        self.text.push(c);
    }

    /// Closes an aggregate or array.
    pub fn close(&mut self, c: char) {
        self.text.push(c);
    }

    /// Appends text as is.
    pub fn raw(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// An integer.
    pub fn int(&mut self, v: i128) {
        let _ = write!(self.text, "{v}");
    }

    /// A floating-point number.
    pub fn float(&mut self, v: f64) {
        let _ = write!(self.text, "{v}");
    }

    /// A pointer, in hex.
    pub fn ptr(&mut self, p: *const libc::c_void) {
        if p.is_null() {
            self.text.push_str("NULL");
        } else {
            let _ = write!(self.text, "{p:p}");
        }
    }

    /// A C string: its address and up to 64 characters of it.
    pub fn c_str(&mut self, p: *const libc::c_char) {
        if p.is_null() {
            self.text.push_str("NULL");
            return;
        }
        // SAFETY: a non-null `const char *` argument of the C API is a string.
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy();
        let shown: String = s.chars().take(64).collect();
        let _ = write!(self.text, "{shown:?}");
        if shown.len() < s.len() {
            self.text.push_str("...");
        }
    }

    /// An enum value: its name where known, and its number.
    pub fn enumerated(&mut self, v: i64, names: &[(i64, &str)]) {
        let _ = match names.iter().find(|(n, _)| *n == v) {
            Some((_, name)) => write!(self.text, "{name} ({v})"),
            None => write!(self.text, "{v}"),
        };
    }

    /// Raw bytes, in hex (at most 32 shown).
    pub fn bytes(&mut self, b: &[u8]) {
        self.text.push_str("0x");
        for byte in b.iter().take(32) {
            let _ = write!(self.text, "{byte:02x}");
        }
        if b.len() > 32 {
            let _ = write!(self.text, "...({} bytes)", b.len());
        }
    }
}

/// Prints the per-function table at exit (`CUDASTUB_TRACE=summary`).
extern "C" fn print_summary() {
    let mut rows: Vec<(u64, u64, u64, &CStr)> = (0..FUNCTION_COUNT)
        .filter_map(|i| {
            let calls = CALLS[i].load(Ordering::Relaxed);
            (calls > 0).then(|| (NANOS[i].load(Ordering::Relaxed), calls, ERRORS[i].load(Ordering::Relaxed), NAMES[i]))
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.3.cmp(b.3)));
    let total: u64 = rows.iter().map(|r| r.0).sum::<u64>().max(1);
    let mut text = String::from("cudastub: API summary\n Time(%)    Total (us)      Calls     Errors    Mean (us)  Name\n");
    for (nanos, calls, errors, name) in rows {
        text.push_str(&format!(
            "{:8.1} {:13.3} {:10} {:10} {:12.3}  {}\n",
            nanos as f64 * 100.0 / total as f64,
            nanos as f64 / 1000.0,
            calls,
            errors,
            nanos as f64 / 1000.0 / calls as f64,
            name.to_string_lossy()
        ));
    }
    if let Ok(mut out) = sink().lock() {
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}
