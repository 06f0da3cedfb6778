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
//! (generated per architecture) that saves every argument register, calls
//! [`Shim::init`] (a `OnceLock`: the first thread loads, racing threads wait,
//! later calls return at once), restores the registers and jumps through the
//! now-filled slot, so the call proceeds as if it had gone straight to its
//! target. The first call may come from an ELF constructor (nvcc-built
//! programs register their kernels before `main`); nothing here needs `main`
//! to have run.
//!
//! What a slot finally holds is its function's *target* — the real function
//! (or its fallback), a Rust or C implementation, or a policy stub — or, when
//! `CUDASTUB_TRACE` is set, the function's tracing wrapper, which calls the
//! target. With tracing off nothing stands between the trampoline's jump and
//! the target.
//!
//! The runtime never aborts its host: every failure is one line on stderr
//! and a failure value returned by the fallback.

use std::ffi::CStr;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

mod load;
mod trace;

pub use trace::{TraceCall, TraceLine, TraceState};

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

/// What a generated shim says about itself: one library, one major, `N`
/// exports. Every table is in slot order.
pub struct ShimSpec<const N: usize> {
    /// The soname the shim is linked with, and the real library's
    /// (`libcublas.so.12`).
    pub soname: &'static str,
    /// The version node every export carries (`libcublas.so.12`).
    pub version_node: &'static CStr,
    /// The environment variable naming the real library's full path
    /// (`CUDASTUB_REAL_CUBLAS`).
    pub real_path_var: &'static CStr,
    /// Where to look for the real library: directories, or `$VAR/dir`.
    pub search: &'static [&'static str],
    /// The exports' names.
    pub names: &'static [&'static CStr; N],
    /// Known status values and their names, for messages.
    pub status_names: &'static [(i64, &'static CStr)],
    /// The success status, for counting errors in traces.
    pub status_success: Option<i64>,
    /// Which functions return the status type.
    pub returns_status: &'static [bool; N],
    /// Where each exported trampoline jumps.
    pub slots: &'static [AtomicPtr<()>; N],
    /// The typed fallbacks, used where the real library or function is missing.
    pub fallbacks: &'static [CodePtr; N],
    /// Each function's target by policy; null means the real function.
    pub targets: &'static [CodePtr; N],
    /// The tracing wrappers; null for a function whose parameters are
    /// unknown, which is never traced.
    pub tracers: &'static [CodePtr; N],
    /// Prints this shim's summary table; registered with `atexit` when
    /// `CUDASTUB_TRACE=summary` (a generated `extern "C"` function calling
    /// [`Shim::print_summary`]).
    pub summary_at_exit: extern "C" fn(),
}

/// The run-time state of one generated shim.
pub struct Shim<const N: usize> {
    spec: ShimSpec<N>,
    /// The loaded real library, or `None` when none could be loaded.
    real_path: OnceLock<Option<PathBuf>>,
    /// The runtime, once initialised: real functions resolved, slots filled.
    init: OnceLock<()>,
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

impl<const N: usize> Shim<N> {
    /// The state of a shim described by `spec`, before its first call.
    pub const fn new(spec: ShimSpec<N>) -> Self {
        Shim {
            spec,
            real_path: OnceLock::new(),
            init: OnceLock::new(),
            real: [const { AtomicPtr::new(std::ptr::null_mut()) }; N],
            active: [const { AtomicPtr::new(std::ptr::null_mut()) }; N],
            warned: [const { AtomicBool::new(false) }; N],
            refused: [const { AtomicBool::new(false) }; N],
            trace: TraceState::new(),
        }
    }

    /// Loads the real library and fills every slot, once per process. The
    /// lazy stubs call it.
    pub fn init(&self) {
        self.init.get_or_init(|| self.fill_slots());
    }

    fn fill_slots(&self) {
        self.real_path.get_or_init(|| self.load());
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
    pub fn active(&self, index: u32) -> *const () {
        self.init();
        self.active[index as usize].load(Ordering::Acquire)
    }

    /// The real function `index`, or its fallback (for `real::NAME`).
    pub fn real(&self, index: u32) -> *const () {
        self.init();
        self.real[index as usize].load(Ordering::Acquire)
    }

    /// Called by a policy stub: reports once that the function is refused.
    pub fn refused(&self, index: u32, status: &str) {
        let i = index as usize;
        if i < N && !self.refused[i].swap(true, Ordering::Relaxed) {
            say(&format!(
                "{} is not supported by this shim; it returns {status}",
                self.spec.names[i].to_string_lossy()
            ));
        }
    }

    /// Called by a fallback: reports (once) why the call failed.
    pub fn unavailable(&self, index: u32) -> Failure {
        match self.real_path.get_or_init(|| self.load()) {
            None => Failure::LibraryMissing,
            Some(path) => {
                let i = index as usize;
                if i < N && !self.warned[i].swap(true, Ordering::Relaxed) {
                    say(&format!(
                        "{}@{} is missing from {} (an older release?); calls to it fail",
                        self.spec.names[i].to_string_lossy(),
                        self.spec.version_node.to_string_lossy(),
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
        self.spec
            .status_names
            .iter()
            .find(|(v, _)| *v == value)
            .map_or(
                c"unrecognized error code (cudastub: real library unavailable)",
                |(_, n)| n,
            )
    }
}

/// Writes one line to stderr; a closed stderr is not our host's problem.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "cudastub: {message}");
}
