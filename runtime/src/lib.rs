//! The run-time support of every shim cudastub generates: it loads the real
//! library on the first call and fills every slot with the real function, or
//! with a typed fallback; it also traces calls when asked to.
//!
//! Generated code (see `cudastub_codegen::emit::shim`) declares one
//! [`Shim`] static describing the library — its soname, version node,
//! override variable, search list, export names and slot tables — and calls
//! its methods. Nothing here knows which library it serves: the same code
//! runs `libcudart.so.12`, `libcublas.so.13` and a user's own shim. Every
//! shim links its own copy, so each library has its own state.
//!
//! Lazy-loading protocol. Every slot starts at a per-function lazy stub
//! (generated per architecture) that saves the argument registers and the
//! whole vector state, calls [`Shim::lazy_target`] (the first thread loads,
//! racing threads wait, later calls return at once), restores everything and
//! jumps to the target it returned, so the call proceeds as if it had gone
//! straight there. The first call may come from an ELF constructor
//! (nvcc-built programs register their kernels before `main`); nothing here
//! needs `main` to have run.
//!
//! What a slot finally holds is its function's *target* — the real function
//! (or its fallback), a Rust or C implementation, or a policy stub — or, when
//! `CUDASTUB_TRACE` is set, the function's tracing wrapper, which calls the
//! target. With tracing off nothing stands between the trampoline's jump and
//! the target.
//!
//! What the runtime guarantees its host (README, "Run-time guarantees"):
//! - it never aborts: every failure is one line on stderr and a failure
//!   value returned by the fallback; nothing here panics on a host's call;
//! - it never waits on itself: a call made on the loading thread while the
//!   real library loads (its constructor calling back) fails with the
//!   library-missing status instead of waiting for its own initialisation;
//!   a child forked while another thread was loading loads again itself
//!   instead of waiting for a thread it does not have; tracing takes no lock;
//! - it never blocks or faults on a bad candidate: a FIFO, a truncated
//!   copy or another library where the real one should be is refused before
//!   `dlopen` sees it (`candidate`), and the next candidate is tried;
//! - it fits a small thread stack: the loading runs on a private stack
//!   (`sys::on_loading_stack`), so a first call on a 16 KiB thread works;
//! - it keeps `errno`: loading, tracing and diagnostics leave the caller's
//!   `errno` (and the target's) as they found it;
//! - it loads once per process: at the first call the shim pins itself in
//!   memory (`RTLD_NODELETE`), so a host that `dlopen`s and `dlclose`s it in a
//!   loop reuses one loaded real library and one trace file instead of
//!   leaking one of each per cycle.

use std::cell::Cell;
use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};

mod candidate;
mod describe;
mod load;
pub mod remote;
mod sys;
mod trace;

pub use describe::{
    FunctionCode, Kind as TraceKind, MAX_SHOWN_BYTES, OutputKind, ParamCode, TraceArg, TraceTables,
    ValueCode,
};
pub use trace::{TraceCall, TraceLine, TraceState};

/// The ELF note every generated shim carries (section `.note.cudastub`):
/// its name. A candidate real library that carries it is another cudastub
/// shim and is refused, whatever its path. `cudastub_codegen::emit::arch`
/// writes the note with the same name, type and descriptor.
pub const SHIM_NOTE_NAME: &[u8] = b"cudastub\0";

/// The type of the shim note.
pub const SHIM_NOTE_TYPE: u32 = 1;

/// The per-thread default stream's handle, the same in the runtime
/// (`cudaStreamPerThread`) and the driver (`CU_STREAM_PER_THREAD`): what a
/// `_ptsz` variant's null stream means, when the variant is answered by the
/// implementation of its plain form.
pub const PER_THREAD_STREAM: usize = 0x2;

/// A code address in a static table.
#[repr(transparent)]
pub struct CodePtr(pub *const ());

// SAFETY: code addresses are immutable and callable from any thread.
unsafe impl Sync for CodePtr {}

/// One exported data object a shim mirrors ([`ShimSpec::data`]): its name,
/// the shim's own storage and its size.
pub struct DataMirror {
    /// The exported name.
    pub name: &'static CStr,
    /// The shim's storage of it (writable: `.bss` or an [`ExportedData`]).
    pub addr: *const u8,
    /// Its size in bytes.
    pub size: usize,
}

// SAFETY: the addresses are of statics that live as long as the process;
// they are only written once, while the shim loads the real library.
unsafe impl Sync for DataMirror {}

/// An exported variable of a shim, such as a `cudbg*` flag of
/// `libcuda.so.1`: storage of the real object's size, zero-filled, that the
/// host and a debugger may read and write. A shim cannot forward a variable
/// (its address is fixed when the host binds to it), so the real library's
/// own copy is never seen through the shim.
#[repr(transparent)]
pub struct ExportedData<T>(core::cell::UnsafeCell<T>);

// SAFETY: the shim itself never reads or writes the value; whoever does
// (a debugger, the host) synchronises as it would with the real variable.
unsafe impl<T> Sync for ExportedData<T> {}

impl<T> ExportedData<T> {
    /// The variable, holding `value`.
    pub const fn new(value: T) -> Self {
        ExportedData(core::cell::UnsafeCell::new(value))
    }

    /// Its address, for the host's code and tests.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// C strings stored one after another (each NUL-terminated) in one byte
/// string, found by offset: a table of names that costs no relocation per
/// entry, unlike an array of `&CStr`.
#[derive(Clone, Copy, Debug)]
pub struct CStrTable {
    /// The strings, each followed by its NUL.
    pub text: &'static [u8],
    /// Where each string starts in `text`.
    pub offsets: &'static [u32],
}

impl CStrTable {
    /// String `i` (empty when out of range).
    pub fn get(&self, i: usize) -> &'static CStr {
        self.offsets
            .get(i)
            .and_then(|o| self.text.get(*o as usize..))
            .and_then(|rest| CStr::from_bytes_until_nul(rest).ok())
            .unwrap_or(c"")
    }

    /// How many strings there are.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// `true` when there are none.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Every string, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'static CStr> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// What a fallback returns, by the code the generator gives each function
/// (`FailureValue::code` in cudastub-codegen).
pub mod failure {
    /// Nothing (`void`).
    pub const VOID: u8 = 0;
    /// The library's status: library or symbol missing.
    pub const STATUS: u8 = 1;
    /// The name of the status in the first argument (`cudaGetErrorName`).
    pub const STATUS_NAME: u8 = 2;
    /// A static message pointing to the diagnostic (another C string).
    pub const MESSAGE: u8 = 3;
    /// A null pointer.
    pub const NULL: u8 = 4;
    /// All-zero bytes, from a typed fallback of the shim's own.
    pub const ZERO: u8 = 5;
}

/// Why a call could not be forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The real library could not be found or loaded.
    LibraryMissing,
    /// The real library lacks this function (an older release).
    SymbolMissing,
}

/// What a generated shim says about itself: one library, one major, `N`
/// exports. Every table is in slot order.
pub struct ShimSpec<const N: usize> {
    /// The soname the shim is linked with, and the real library's
    /// (`libcublas.so.12`).
    pub soname: &'static str,
    /// The version node every export carries (`libcublas.so.12`); `None`
    /// for a library whose exports carry no version (`libcuda.so.1`).
    pub version_node: Option<&'static CStr>,
    /// The environment variable naming the real library's full path
    /// (`CUDASTUB_REAL_CUBLAS`).
    pub real_path_var: &'static CStr,
    /// Where to look for the real library: directories, or `$VAR/dir`.
    pub search: &'static [&'static str],
    /// The exports' names, in slot order.
    pub names: CStrTable,
    /// Known status values, for messages; their names are `status_names`.
    pub status_values: &'static [i64],
    /// The names of `status_values`, in the same order.
    pub status_names: CStrTable,
    /// The success status, for counting errors in traces.
    pub status_success: Option<i64>,
    /// Which functions return the status type.
    pub returns_status: &'static [bool; N],
    /// Where each exported trampoline jumps.
    pub slots: &'static [AtomicPtr<()>; N],
    /// The first fallback stub: stub `i`, where slot `i` points when the
    /// real library or function is missing, is `fallback_stride * i` bytes
    /// after it (generated assembly; no table of pointers).
    pub fallback_stubs: CodePtr,
    /// The bytes between two fallback stubs.
    pub fallback_stride: usize,
    /// What each function's fallback returns ([`failure`]).
    pub failures: &'static [u8; N],
    /// The status a fallback returns when the real library is missing, and
    /// when the function is.
    pub status_missing: [i64; 2],
    /// Each function's target by policy; null means the real function.
    pub targets: &'static [CodePtr; N],
    /// The tracing wrappers; null for a function whose parameters are
    /// unknown, which is never traced.
    pub tracers: &'static [CodePtr; N],
    /// The exported trampolines: what [`Shim::own_entry`] hands out in place
    /// of the real functions (`cuGetProcAddress`); empty for a library with
    /// no entry points, which needs none.
    pub entries: &'static [CodePtr],
    /// What the tracer shows of each function.
    pub trace_tables: &'static TraceTables,
    /// Whether any function needs the real library (forwarded, or called by
    /// an implementation); a shim whose every function is answered
    /// otherwise (a remote GPU's client) never loads it.
    pub needs_real: bool,
    /// The exported data objects to fill with the real library's contents
    /// when it is loaded (empty unless the manifest says `mirror_data`).
    pub data: &'static [DataMirror],
    /// The manifest's `eager_load`: the shim's ELF constructor loads the
    /// real library (see [`Shim::init`]), for a plugin whose constructors
    /// do its work.
    pub eager_load: bool,
    /// The manifest's `mirror_data`: the real library is loaded with
    /// `RTLD_DEEPBIND`, so that its references to its own exports bind to
    /// its own definitions (not the shim's copies), and [`ShimSpec::data`]
    /// is filled from it. It is loaded at the first call, as every real
    /// library: loading it from the shim's constructor, while the host's
    /// own libraries are still being loaded, would bind those to it.
    pub mirror_data: bool,
    /// Prints this shim's summary table; registered with `atexit` when
    /// `CUDASTUB_TRACE=summary` (a generated `extern "C"` function calling
    /// [`Shim::print_summary`]).
    pub summary_at_exit: extern "C" fn(),
}

/// The run-time state of one generated shim.
pub struct Shim<const N: usize> {
    spec: ShimSpec<N>,
    /// The per-function state, all zero until the first call: a static of
    /// its own, so that it lies in `.bss` and costs the file nothing (a
    /// field of this struct, whose spec holds pointers, would be stored in
    /// `.data`, zeros and all). Reached through `Deref`.
    tables: &'static ShimTables<N>,
    /// The loaded real library, or `None` when none could be loaded; unset
    /// while the first call is still loading it.
    real_path: OnceLock<Option<PathBuf>>,
    /// [`NOT_STARTED`], [`DONE`], or the process id of the process whose
    /// thread is loading (a forked child sees its parent's id there).
    state: AtomicI32,
    /// Why the real library could not be loaded: said once, at the first
    /// call that needed it (a backend's own functions never do).
    missing: OnceLock<String>,
    /// The `missing` line was printed.
    missing_said: AtomicBool,
    /// Where tracing goes, and how.
    trace_out: trace::TraceOutput,
}

/// A shim's per-function state (see [`Shim`]): every byte zero at start.
pub struct ShimTables<const N: usize> {
    /// Each function's real address, or its fallback.
    real: [AtomicPtr<()>; N],
    /// Each function's target (what an untraced slot holds).
    active: [AtomicPtr<()>; N],
    /// One flag per function: its missing-symbol message was printed.
    warned: [AtomicBool; N],
    /// One flag per function: its refusal message was printed.
    refused: [AtomicBool; N],
    trace: TraceState<N>,
}

impl<const N: usize> ShimTables<N> {
    /// The state before the first call.
    pub const fn new() -> Self {
        ShimTables {
            real: [const { AtomicPtr::new(std::ptr::null_mut()) }; N],
            active: [const { AtomicPtr::new(std::ptr::null_mut()) }; N],
            warned: [const { AtomicBool::new(false) }; N],
            refused: [const { AtomicBool::new(false) }; N],
            trace: TraceState::new(),
        }
    }
}

impl<const N: usize> Default for ShimTables<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> std::ops::Deref for Shim<N> {
    type Target = ShimTables<N>;
    fn deref(&self) -> &ShimTables<N> {
        self.tables
    }
}

impl<const N: usize> Shim<N> {
    /// The state of a shim described by `spec`, before its first call;
    /// `tables` is a static of its own (`ShimTables::new()`).
    pub const fn new(spec: ShimSpec<N>, tables: &'static ShimTables<N>) -> Self {
        Shim {
            spec,
            tables,
            real_path: OnceLock::new(),
            state: AtomicI32::new(NOT_STARTED),
            missing: OnceLock::new(),
            missing_said: AtomicBool::new(false),
            trace_out: trace::TraceOutput::new(),
        }
    }

    /// Initialises the shim (once per process) and returns where a call of
    /// function `index` goes: what its slot now holds, or its fallback when
    /// this call was made on the loading thread during the loading itself.
    /// The lazy stubs call it with every argument register saved.
    pub fn lazy_target(&self, index: u32) -> *const () {
        let i = index as usize;
        match self.ensure_init() {
            Init::Ready => self
                .spec
                .slots
                .get(i)
                .map_or(std::ptr::null(), |s| s.load(Ordering::Acquire).cast_const()),
            Init::Reentered => self.fallback(i),
        }
    }

    /// Loads the real library and fills every slot, once per process.
    pub fn init(&self) {
        let _ = self.ensure_init();
    }

    /// Fallback stub `i`.
    pub(crate) fn fallback(&self, i: usize) -> *const () {
        if i >= N {
            return std::ptr::null();
        }
        self.spec
            .fallback_stubs
            .0
            .wrapping_byte_add(self.spec.fallback_stride * i)
    }

    /// What function `index` returns when it cannot be forwarded, as the
    /// bits of its return register (the fallback stubs' answer); says why
    /// once. `first` is the call's first argument: the status a
    /// `cudaGetErrorName` names.
    pub fn fallback_value(&self, index: u32, first: u64) -> u64 {
        let failure = self.unavailable(index);
        self.failure_value(index, first, failure)
    }

    /// Calls function `index` on the remote GPU (`libcudastub-remote.so`,
    /// see [`remote`]) with the addresses of its arguments; returns its
    /// return register's bits. When the client library cannot be loaded,
    /// says so once and returns the library-missing failure. The caller's
    /// `errno` is kept.
    pub fn remote_call(&self, major: u32, index: u32, args: &[*const u8]) -> u64 {
        let _errno = sys::ErrnoGuard::new();
        match remote::call(major, self.spec.soname, index, args) {
            Some(value) => value,
            None => {
                // A status-name function's status is its first argument (a
                // 4-byte enum); no other function's first argument is read.
                let names_status =
                    self.spec.failures.get(index as usize) == Some(&failure::STATUS_NAME);
                let first = match args.first() {
                    // SAFETY: the generated caller passes its arguments'
                    // addresses, and this function's first is a status.
                    Some(p) if names_status && !p.is_null() => {
                        u64::from(unsafe { p.cast::<u32>().read_unaligned() })
                    }
                    _ => 0,
                };
                self.failure_value(index, first, Failure::LibraryMissing)
            }
        }
    }

    /// What function `index` returns for `failure`, as its return register's bits.
    fn failure_value(&self, index: u32, first: u64, failure: Failure) -> u64 {
        let code = self.spec.failures.get(index as usize).copied();
        match code {
            Some(failure::STATUS) => {
                let [library, symbol] = self.spec.status_missing;
                let v = match failure {
                    Failure::LibraryMissing => library,
                    Failure::SymbolMissing => symbol,
                };
                v as u64
            }
            Some(failure::STATUS_NAME) => {
                self.status_name(first as u32 as i32 as i64).as_ptr() as u64
            }
            Some(failure::MESSAGE) => {
                c"cudastub: this function is unavailable; see the message on stderr".as_ptr() as u64
            }
            _ => 0,
        }
    }

    /// The one-time initialisation. Other threads wait for the loading
    /// thread (on a futex, re-checking every 10 ms); the loading thread
    /// itself, re-entering from the real library's constructor, gets
    /// [`Init::Reentered`] instead of waiting on itself; in a child forked
    /// while its parent was loading, the first caller loads again.
    fn ensure_init(&self) -> Init {
        if self.state.load(Ordering::Acquire) == DONE {
            return Init::Ready;
        }
        // Searching, loading and waiting set errno; the caller's call must
        // not see it (nor `real::NAME`'s caller).
        let _errno = sys::ErrnoGuard::new();
        let me = self as *const Self as usize;
        loop {
            let state = self.state.load(Ordering::Acquire);
            if state == DONE {
                return Init::Ready;
            }
            if state != NOT_STARTED && LOADING.try_with(Cell::get).unwrap_or(0) == me {
                return Init::Reentered;
            }
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() };
            if state == NOT_STARTED || state != pid {
                // Not started; or started by the process this one was forked
                // from, whose loading thread does not exist here.
                if self
                    .state
                    .compare_exchange(state, pid, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    // Another shim's loading may be under way on this thread
                    // (a real library's constructor calling into it): its
                    // mark comes back after this one's.
                    let outer = LOADING.try_with(|l| l.replace(me)).unwrap_or(0);
                    sys::on_loading_stack(&mut || self.fill_slots());
                    let _ = LOADING.try_with(|l| l.set(outer));
                    self.state.store(DONE, Ordering::Release);
                    sys::futex_wake_all(&self.state);
                    return Init::Ready;
                }
                continue;
            }
            sys::futex_wait(&self.state, state, 10);
        }
    }

    fn fill_slots(&self) {
        let path = if self.spec.needs_real {
            self.load()
        } else {
            None
        };
        let _ = self.real_path.set(path);
        load::pin_own_image();
        let tracing = self.trace_mode().is_on();
        for i in 0..N {
            let own = self.spec.targets[i].0;
            let target = if own.is_null() {
                self.real[i].load(Ordering::Acquire)
            } else {
                own.cast_mut()
            };
            self.active[i].store(target, Ordering::Release);
            // A function whose parameters are unknown has no tracer (null):
            // it is forwarded untouched even while tracing.
            let tracer = self.spec.tracers[i].0;
            let slot = if tracing && !tracer.is_null() {
                tracer.cast_mut()
            } else {
                target
            };
            self.spec.slots[i].store(slot, Ordering::Release);
        }
    }

    /// The target of function `index` (for tracing wrappers).
    #[inline(never)]
    pub fn active(&self, index: u32) -> *const () {
        let i = index as usize;
        match self.ensure_init() {
            Init::Ready => self
                .active
                .get(i)
                .map_or(std::ptr::null(), |a| a.load(Ordering::Acquire).cast_const()),
            Init::Reentered => self.fallback(i),
        }
    }

    /// The real library's path, loading it on first use; `None` when none
    /// could be loaded. Says nothing: a backend asks it to choose between
    /// forwarding (`real::NAME`) and answering itself, without the
    /// missing-library line a fallback would print.
    pub fn real_library(&self) -> Option<&std::path::Path> {
        match self.ensure_init() {
            Init::Ready => self.real_path.get().and_then(|p| p.as_deref()),
            Init::Reentered => None,
        }
    }

    /// The real function `index`, or its fallback (for `real::NAME`).
    pub fn real(&self, index: u32) -> *const () {
        let i = index as usize;
        match self.ensure_init() {
            Init::Ready => self
                .real
                .get(i)
                .map_or(std::ptr::null(), |r| r.load(Ordering::Acquire).cast_const()),
            Init::Reentered => self.fallback(i),
        }
    }

    /// The shim's own entry for the real function at `real`, or `real`
    /// itself when it is none of the library's exports the shim has.
    ///
    /// `cuGetProcAddress` and the like return the address of the function a
    /// name and version select; the real library picks the variant (`_v2`,
    /// `_ptsz`, …) and this maps its choice back to the shim's export of the
    /// same function, so that calls made through the pointer pass through
    /// the shim (traced, or reaching a backend's implementation) exactly as
    /// calls made by name. The real library exports no two names at one
    /// address, so the match is exact. A pointer that is none of the exports
    /// (an internal function, another library's) is returned as it is.
    pub fn own_entry(&self, real: *mut core::ffi::c_void) -> *mut core::ffi::c_void {
        if real.is_null() || self.ensure_init() != Init::Ready {
            return real;
        }
        let real = real.cast::<()>();
        match self
            .real
            .iter()
            .position(|r| r.load(Ordering::Acquire) == real)
        {
            Some(i) => self
                .spec
                .entries
                .get(i)
                .map_or(real.cast(), |e| e.0.cast_mut().cast()),
            None => real.cast(),
        }
    }

    /// Called by a policy stub: reports once that the function is refused.
    pub fn refused(&self, index: u32, status: &str) {
        let i = index as usize;
        if i < N && !self.refused[i].swap(true, Ordering::Relaxed) {
            say(&format!(
                "{} is not supported by this shim; it returns {status}",
                self.spec.names.get(i).to_string_lossy()
            ));
        }
    }

    /// Called by a fallback: reports (once) why the call failed.
    pub fn unavailable(&self, index: u32) -> Failure {
        let i = index as usize;
        let first = i < N && !self.warned[i].swap(true, Ordering::Relaxed);
        let name = |i: usize| self.spec.names.get(i).to_string_lossy();
        match self.real_path.get() {
            None => {
                if first {
                    say(&format!(
                        "{} was called while {} was being loaded, on the loading thread \
                         (from the real library's constructor?); it fails as if the library were missing",
                        name(i),
                        self.spec.soname
                    ));
                }
                Failure::LibraryMissing
            }
            Some(None) => {
                if let Some(why) = self.missing.get()
                    && !self.missing_said.swap(true, Ordering::Relaxed)
                {
                    say(why);
                }
                Failure::LibraryMissing
            }
            Some(Some(path)) => {
                if first {
                    let versioned = match self.spec.version_node {
                        Some(node) => format!("{}@{}", name(i), node.to_string_lossy()),
                        None => name(i).to_string(),
                    };
                    say(&format!(
                        "{versioned} is missing from {} (an older release?); calls to it fail",
                        path.display()
                    ));
                }
                Failure::SymbolMissing
            }
        }
    }

    /// The name of a status value (`cudaErrorStubLibrary`), for fallbacks of
    /// functions that describe a status.
    pub fn status_name(&self, value: i64) -> &'static CStr {
        match self.spec.status_values.iter().position(|v| *v == value) {
            Some(i) => self.spec.status_names.get(i),
            None => c"unrecognized error code (cudastub: real library unavailable)",
        }
    }
}

/// The state of a shim whose first call has not come yet.
const NOT_STARTED: i32 = 0;
/// The state of an initialised shim.
const DONE: i32 = -1;

/// What [`Shim::ensure_init`] found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Init {
    /// Initialised: every slot holds its final target.
    Ready,
    /// This thread is the one initialising (a call from inside the loading).
    Reentered,
}

thread_local! {
    /// The shim this thread is initialising (its address), or 0.
    static LOADING: Cell<usize> = const { Cell::new(0) };
}

/// Writes one line to stderr with one `write(2)`: no lock (a thread forked
/// away while holding one cannot block us), `errno` kept, and a closed or
/// full stderr is not our host's problem.
fn say(message: &str) {
    let _errno = sys::ErrnoGuard::new();
    let line = format!("cudastub: {message}\n");
    let _ = sys::write_all(2, line.as_bytes());
}
