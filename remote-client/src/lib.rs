//! `libcudastub-remote.so`: the one client library of a remote GPU's
//! process. Every client shim of the process (`cudastub dist --remote`:
//! runtime, driver, cuBLAS, cuBLASLt, NVML) calls `cudastub_remote_call`
//! here, so they share one connection to the GPU server (named by
//! `CUDASTUB_REMOTE`, `unix:/path` or `tcp://host:port`, with the token in
//! `CUDASTUB_REMOTE_TOKEN`) and one server session, in program order.
//!
//! It never aborts or hangs its host: a server that cannot be reached, a
//! call that cannot be sent or a server that goes away is one line on
//! stderr (once per cause) and the library's own status for it: its "not
//! supported" status for a call that cannot be sent; for an unreachable or
//! lost server, the shim's own failure value (the "library missing"
//! status; a status's name for `cudaGetErrorName`).

use std::cell::UnsafeCell;
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Once;

use cudastub_remote::callback::Ready;
use cudastub_remote::client::{Batching, CallError, Client};
use cudastub_remote::plan::{CallPlan, LibraryPlan, MajorPlan, RetPlan};
use cudastub_remote::wire::Endpoint;

/// Every major's plans, computed from the manifests at build time.
static PLANS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plans.bin"));

/// The server's address.
pub const ENDPOINT_VARIABLE: &str = "CUDASTUB_REMOTE";
/// This library's file name, for messages.
const CLIENT: &str = "libcudastub-remote.so";

/// The token a TCP server requires.
pub const TOKEN_VARIABLE: &str = "CUDASTUB_REMOTE_TOKEN";

/// `0` makes every call wait for the server's answer: no call is queued
/// (see [`Batching`]).
pub const BATCH_VARIABLE: &str = "CUDASTUB_REMOTE_BATCH";

/// `0` keeps a client on a Unix socket off shared memory: its calls travel
/// on the socket (see `cudastub_remote::shm`).
pub const SHM_VARIABLE: &str = "CUDASTUB_REMOTE_SHM";

#[derive(Default)]
struct State {
    plans: Option<std::sync::Arc<Vec<MajorPlan>>>,
    /// The connection, the process that made it (a forked child makes its
    /// own: the parent's stream is the parent's) and its CUDA major (one per
    /// process: the session's plans are that major's).
    client: Option<(u32, u32, Client)>,
    /// Why the connection was lost: the session's GPU state went with it,
    /// so every later call fails at once rather than reach a new session
    /// that knows none of this process's handles.
    lost: Option<String>,
    /// What has been said, so each cause is said once.
    said: BTreeSet<String>,
}

/// The state, behind [`LOCK`].
struct Shared(UnsafeCell<Option<State>>);
// SAFETY: only touched while `LOCK` is held.
unsafe impl Sync for Shared {}
static STATE: Shared = Shared(UnsafeCell::new(None));

/// The lock of every call: a raw mutex, so that `fork` can take it before
/// and release it after in both processes (`pthread_atfork`): a child
/// forked while another thread is mid-call starts with it free instead of
/// locked forever, and makes its own connection.
struct RawLock(UnsafeCell<libc::pthread_mutex_t>);
// SAFETY: a pthread mutex is made to be shared between threads.
unsafe impl Sync for RawLock {}
static LOCK: RawLock = RawLock(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));
static AT_FORK: Once = Once::new();
static AT_EXIT: Once = Once::new();

extern "C" fn flush_at_exit() {
    // Another thread mid-call holds the lock: exit does not wait for it.
    // SAFETY: a valid, statically initialised mutex.
    if unsafe { libc::pthread_mutex_trylock(LOCK.0.get()) } != 0 {
        return;
    }
    let mut held = Held;
    let state = held.state();
    let pid = std::process::id();
    if let Some((p, _, client)) = state.client.as_mut()
        && *p == pid
    {
        let _ = client.flush();
    }
}

extern "C" fn lock() {
    // SAFETY: a valid, statically initialised mutex.
    unsafe { libc::pthread_mutex_lock(LOCK.0.get()) };
}

extern "C" fn unlock() {
    // SAFETY: held by this thread (taken by `lock`).
    unsafe { libc::pthread_mutex_unlock(LOCK.0.get()) };
}

extern "C" fn unlock_in_child() {
    // The parent's callbacks are the parent's to make.
    if let Ok(mut ready) = READY.try_lock() {
        ready.clear();
    }
    unlock();
}

/// Holds [`LOCK`] until dropped.
struct Held;

impl Held {
    fn take() -> Held {
        AT_FORK.call_once(|| {
            // SAFETY: registering handlers that take and release LOCK.
            unsafe { libc::pthread_atfork(Some(lock), Some(unlock), Some(unlock_in_child)) };
        });
        lock();
        Held
    }

    fn state(&mut self) -> &mut State {
        // SAFETY: LOCK is held for as long as `self` lives.
        unsafe { &mut *STATE.0.get() }.get_or_insert_with(State::default)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        unlock();
    }
}

/// Calls of the client's callbacks the server reported, not yet made.
static READY: std::sync::Mutex<std::collections::VecDeque<Ready>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());
/// Held while callbacks are made: one at a time, in the order reported,
/// and a call returns only once those reported before its answer have run
/// (whichever thread's answer brought them), as CUDA runs a stream's host
/// functions one after another and before a wait for the stream returns.
static RUNNER: std::sync::Mutex<()> = std::sync::Mutex::new(());
thread_local! {
    /// This thread is making a callback (which, against CUDA's rules,
    /// called CUDA): its own call leaves the rest to the outer loop.
    static RUNNING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes the reported callbacks' calls, without [`LOCK`] (a callback may
/// wait for another thread that calls).
fn run_ready() {
    if RUNNING.get() {
        return;
    }
    let _runner = RUNNER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    RUNNING.set(true);
    loop {
        let next = READY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front();
        let Some(ready) = next else { break };
        // SAFETY: the process's own callback, of the shape it registered.
        unsafe { ready.run() };
    }
    RUNNING.set(false);
}

/// The process whose poller runs, or 0 (changed only under [`LOCK`]; a
/// forked child, which has no poller thread, starts its own).
static POLLER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Starts the poller, under [`LOCK`], unless this process's runs.
fn start_poller() {
    let pid = std::process::id();
    if POLLER.swap(pid, std::sync::atomic::Ordering::SeqCst) == pid {
        return;
    }
    let started = std::thread::Builder::new()
        .name("cudastub-poll".into())
        .spawn(move || poll(pid));
    if started.is_err() {
        POLLER.store(0, std::sync::atomic::Ordering::SeqCst);
    }
}

/// While callbacks the process sent may still be called, asks the server
/// for their calls between the process's own calls (a call in flight
/// brings them itself), every millisecond while they come and up to every
/// 20 ms while none does, and makes them: a process that waits for its own
/// host function without calling CUDA (a flag it sets) is not left waiting
/// for ever. Stops, under [`LOCK`], once none is awaited, the connection
/// fails (the next call says so), or the process is another's.
fn poll(pid: u32) {
    let mut wait = std::time::Duration::from_millis(1);
    loop {
        std::thread::sleep(wait);
        // SAFETY: a valid, statically initialised mutex.
        if unsafe { libc::pthread_mutex_trylock(LOCK.0.get()) } != 0 {
            continue;
        }
        let mut held = Held;
        let state = held.state();
        let mut ready = Vec::new();
        let mut go_on = false;
        if state.lost.is_none()
            && let Some((p, _, client)) = state.client.as_mut()
            && *p == pid
            && client.awaits_callbacks()
            && client.poll().is_ok()
        {
            ready = client.take_ready();
            go_on = client.awaits_callbacks();
        }
        let fired = !ready.is_empty();
        if fired {
            READY
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(ready);
        }
        if !go_on {
            POLLER.store(0, std::sync::atomic::Ordering::SeqCst);
        }
        drop(held);
        if fired {
            run_ready();
        }
        if !go_on {
            return;
        }
        wait = if fired {
            std::time::Duration::from_millis(1)
        } else {
            (wait * 2).min(std::time::Duration::from_millis(20))
        };
    }
}

/// Thread numbers given up by threads that ended, for the next threads.
static FREE_NUMBERS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
static NEXT_NUMBER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A thread's number for the server (`Client::set_thread`), given up when
/// the thread ends (the server ends its thread for it): a later thread
/// takes it, so a process whose threads come and go keeps within the
/// server's limit.
struct ThreadNumber(u32);

impl Drop for ThreadNumber {
    fn drop(&mut self) {
        // Thread 0's calls are the session thread's own: its number is
        // never given to another thread.
        if self.0 == 0 {
            return;
        }
        // The server ends this thread's server thread (with its CUDA
        // state), so the next thread with this number starts afresh.
        let mut held = Held::take();
        let state = held.state();
        let pid = std::process::id();
        if let Some((p, _, client)) = state.client.as_mut()
            && *p == pid
        {
            // A session gone is found by the next call, which says so.
            let _ = client.end_thread(self.0);
        }
        drop(held);
        FREE_NUMBERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(self.0);
    }
}

thread_local! {
    static THREAD_NUMBER: ThreadNumber = {
        let free = FREE_NUMBERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        ThreadNumber(free.unwrap_or_else(|| {
            NEXT_NUMBER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        }))
    };
}

/// This thread's number: the first thread to call is 0, whose calls the
/// session's own thread makes. (A thread ending now, its number already
/// given up, is 0's.) The number freed last is taken first.
fn thread_number() -> u32 {
    THREAD_NUMBER.try_with(|n| n.0).unwrap_or(0)
}

fn say(state: &mut State, message: String) {
    if state.said.insert(message.clone()) {
        let _ = writeln!(std::io::stderr(), "cudastub: {message}");
    }
}

/// Calls function `function` of the library of `soname` in CUDA `major`.
///
/// # Safety
/// `soname` holds `soname_len` bytes; `args` holds `nargs` addresses, one
/// per parameter of the function, each of a value of its type; `ret` is
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cudastub_remote_call(
    major: u32,
    soname: *const u8,
    soname_len: usize,
    function: u32,
    args: *const *const u8,
    nargs: u32,
    ret: *mut u64,
) -> i32 {
    if soname.is_null() || ret.is_null() || (args.is_null() && nargs > 0) {
        return 1;
    }
    // The socket, the shared memory and the diagnostics set `errno`: the
    // caller's is as it was.
    let _errno = KeepErrno::new();
    // SAFETY: as the caller promises.
    let soname = unsafe { std::slice::from_raw_parts(soname, soname_len) };
    let args: &[*const u8] = if nargs == 0 {
        &[]
    } else {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts(args, nargs as usize) }
    };
    let mut held = Held::take();
    let state = held.state();
    // Shared, not copied: a call borrows its plan while the state changes.
    let plans = std::sync::Arc::clone(state.plans.get_or_insert_with(|| {
        std::sync::Arc::new(MajorPlan::decode_all(PLANS).unwrap_or_default())
    }));
    let found = plans.iter().find(|p| p.major == major).and_then(|plan| {
        let (li, lib) = plan
            .libraries
            .iter()
            .enumerate()
            .find(|(_, l)| l.soname.as_bytes() == soname)?;
        Some((li, lib, lib.functions.get(function as usize)?))
    });
    let Some((li, lib, f)) = found else {
        let soname = String::from_utf8_lossy(soname).into_owned();
        say(
            state,
            format!(
                "{soname} (CUDA {major}) asked for its function {function}, which this {CLIENT} does not know: the shim and the client library come from different cudastub builds"
            ),
        );
        return 1;
    };
    let result = call(state, major, li as u16, function, lib, f, args);
    // The client's callbacks the server's libraries called, in the order
    // the answers brought them (taken under the lock, so in answer order).
    if let Some((_, _, client)) = state.client.as_mut() {
        let ready = client.take_ready();
        if !ready.is_empty() {
            READY
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(ready);
        }
        // Callbacks to come: asked for even if the process calls no more.
        if client.awaits_callbacks() {
            start_poller();
        }
    }
    drop(held);
    run_ready();
    match result {
        Some(value) => {
            // SAFETY: as the caller promises.
            unsafe { ret.write(value) };
            0
        }
        // The shim answers with its own failure value.
        None => 2,
    }
}

/// The calling thread's `errno`, put back when dropped.
struct KeepErrno(libc::c_int);

impl KeepErrno {
    fn new() -> KeepErrno {
        // SAFETY: the calling thread's own errno location.
        KeepErrno(unsafe { *libc::__errno_location() })
    }
}

impl Drop for KeepErrno {
    fn drop(&mut self) {
        // SAFETY: as in `new`.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

/// What a call that cannot be sent returns: the library's "not supported"
/// status for a function that returns one; `None` (the shim's own failure
/// value: a status's name, null, 0) otherwise.
fn not_supported(lib: &LibraryPlan, f: &CallPlan) -> Option<u64> {
    match f.ret {
        RetPlan::Value { .. } => lib.statuses.as_ref().map(|s| s.not_supported as u64),
        RetPlan::String | RetPlan::Void => None,
    }
}

/// Host memory the client's process allocates, registers and frees itself:
/// pinned ("page-locked") memory is the server's concern (its own buffers),
/// so the client's is ordinary, page-aligned memory that every copy sends by
/// value. `None` for any other function.
///
/// # Safety
/// `args` as for [`cudastub_remote_call`].
unsafe fn local(name: &str, args: &[*const u8]) -> Option<u64> {
    // Both `cudaErrorMemoryAllocation` and `CUDA_ERROR_OUT_OF_MEMORY` are 2;
    // success is 0 for both.
    const OUT_OF_MEMORY: u64 = 2;
    const INVALID_VALUE: u64 = 1;
    // SAFETY (all reads): each argument is as the function's prototype says.
    let pointer = |i: usize| unsafe { args[i].cast::<*mut u8>().read_unaligned() };
    let size = |i: usize| unsafe { args[i].cast::<usize>().read_unaligned() };
    match name {
        "cudaMallocHost" | "cudaHostAlloc" | "cuMemAllocHost" | "cuMemAllocHost_v2"
        | "cuMemHostAlloc"
            if args.len() >= 2 =>
        {
            let out = pointer(0).cast::<*mut libc::c_void>();
            if out.is_null() {
                return Some(INVALID_VALUE);
            }
            let mut p: *mut libc::c_void = std::ptr::null_mut();
            // SAFETY: a valid output for posix_memalign.
            let rc = unsafe { libc::posix_memalign(&mut p, 4096, size(1).max(1)) };
            if rc != 0 {
                return Some(OUT_OF_MEMORY);
            }
            // SAFETY: the caller's output.
            unsafe { out.write_unaligned(p) };
            Some(0)
        }
        "cudaFreeHost" | "cuMemFreeHost" if !args.is_empty() => {
            // SAFETY: memory this library allocated (or null).
            unsafe { libc::free(pointer(0).cast()) };
            Some(0)
        }
        // Pinning memory the client sends by value changes nothing.
        "cudaHostRegister"
        | "cudaHostUnregister"
        | "cuMemHostRegister"
        | "cuMemHostRegister_v2"
        | "cuMemHostUnregister" => Some(0),
        _ => None,
    }
}

fn call(
    state: &mut State,
    major: u32,
    library: u16,
    function: u32,
    lib: &LibraryPlan,
    f: &CallPlan,
    args: &[*const u8],
) -> Option<u64> {
    // Host memory freed: graphs' copies no longer write there.
    if matches!(f.name.as_str(), "cudaFreeHost" | "cuMemFreeHost")
        && let (Some(a), Some((_, _, client))) = (args.first(), state.client.as_mut())
    {
        // SAFETY: the first argument is the pointer being freed, one this
        // library allocated (or null).
        let p = unsafe { a.cast::<*mut libc::c_void>().read_unaligned() };
        if !p.is_null() {
            // SAFETY: as above.
            let len = unsafe { libc::malloc_usable_size(p) };
            client.forget_host(p as u64, len as u64);
        }
    }
    // SAFETY: as the caller of `cudastub_remote_call` promises.
    if let Some(value) = unsafe { local(&f.name, args) } {
        return Some(value);
    }
    if let Some(why) = &f.unsupported {
        say(
            state,
            format!("{} is not supported by the remote GPU yet: {why}", f.name),
        );
        return not_supported(lib, f);
    }
    if state.lost.is_some() {
        return None;
    }
    let pid = std::process::id();
    if state.client.as_ref().is_none_or(|(p, _, _)| *p != pid) {
        state.client = None;
        match connect(state, major) {
            Ok(client) => state.client = Some((pid, major, client)),
            Err(why) => {
                // Said once, and final: a session that starts later would
                // know none of this process's earlier calls (its kernels'
                // registrations among them).
                say(state, why.clone());
                state.lost = Some(why);
                return None;
            }
        }
    }
    let (_, connected, client) = state.client.as_mut()?;
    if *connected != major {
        let why = format!(
            "{} of CUDA {major} was called in a process whose GPU session is CUDA {connected}'s: one major per process",
            f.name
        );
        say(state, why);
        return None;
    }
    client.set_thread(thread_number());
    // SAFETY: the shim passes one address per parameter (the plan's count
    // is checked by the client).
    match unsafe { client.call(library, function, args) } {
        Ok(r) => {
            if let Some((queued, status)) = &r.deferred {
                say(
                    state,
                    format!(
                        "{queued} failed on the GPU server with status {status} after it returned (it was queued); {} reports it",
                        f.name
                    ),
                );
            }
            Some(match f.ret {
                RetPlan::String => r.string as u64,
                _ => r.value,
            })
        }
        Err(CallError::Unsupported(why)) => {
            say(state, format!("not supported by the remote GPU: {why}"));
            not_supported(lib, f)
        }
        Err(CallError::Refused(why)) => {
            say(state, format!("the GPU server refused {}: {why}", f.name));
            not_supported(lib, f)
        }
        Err(e @ CallError::Transport(_)) => {
            state.client = None;
            let why = format!("{e}: the process's GPU state is gone; every call fails from now on");
            say(state, why.clone());
            state.lost = Some(why);
            None
        }
    }
}

fn connect(state: &State, major: u32) -> Result<Client, String> {
    let Some(address) = std::env::var_os(ENDPOINT_VARIABLE) else {
        return Err(format!(
            "this is a remote GPU client: set {ENDPOINT_VARIABLE}=unix:/path/to.sock or tcp://host:port (the GPU server, `cudastub serve`); every call fails until then"
        ));
    };
    let address = address.to_string_lossy();
    let endpoint =
        Endpoint::parse(&address).map_err(|e| format!("{ENDPOINT_VARIABLE}={address}: {e}"))?;
    let token = std::env::var(TOKEN_VARIABLE).unwrap_or_default();
    let plan = state
        .plans
        .as_ref()
        .and_then(|p| p.iter().find(|p| p.major == major))
        .cloned()
        .ok_or_else(|| format!("no plans for CUDA {major}"))?;
    let shared_memory = std::env::var_os(SHM_VARIABLE).is_none_or(|v| v != "0");
    let mut client = Client::connect_with(&endpoint, &token, plan, shared_memory).map_err(|e| {
        format!("the GPU server at {endpoint}: {e}; every call fails until it answers")
    })?;
    if std::env::var_os(BATCH_VARIABLE).is_some_and(|v| v == "0") {
        client.set_batching(Batching::Off);
    }
    // Calls still queued when the process ends are sent (work such as a
    // last kernel whose results nobody waits for still runs).
    AT_EXIT.call_once(|| {
        // SAFETY: registering a function that takes LOCK like any call.
        unsafe { libc::atexit(flush_at_exit) };
    });
    Ok(client)
}
