//! Tracing.
//!
//! `CUDASTUB_TRACE=1` writes one line per call; `CUDASTUB_TRACE=summary`
//! prints a table per function at exit; `all` does both. Lines go to stderr,
//! or to the file named by `CUDASTUB_TRACE_FILE` (appended to).
//!
//! The trace never blocks or breaks its host: the file is opened
//! non-blocking and must be a regular file or a character device (a FIFO
//! with no reader would block the first call forever); each line is one
//! `write(2)` with no lock held, so lines stay whole and a thread forked away
//! mid-line blocks nobody; a failing write (a full disk) is reported once on
//! stderr and `errno` is left as the call left it. Arguments are read only
//! where the API promises memory: `const char *` inputs (and returned
//! strings), at most 64 bytes, through a read that cannot fault; output
//! buffers (`char *`) and everything else behind a pointer show as addresses.
//!
//! Re-entrancy: a thread-local depth counter marks a thread that is inside a
//! traced call. A nested call on that thread — a backend implementation
//! calling the runtime through the shim, or anything the target calls back
//! into — runs untraced, so a call is logged once, by its outermost entry, and
//! the tracer never waits on itself: the only lock is the output's, held
//! while one finished line is written, with no runtime call inside. The
//! counter belongs to this copy of the runtime, that is to one shim: a cuBLAS
//! call that calls the CUDA runtime is traced by both shims.

use std::cell::Cell;
use std::ffi::CStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::load::secure_env;
use crate::sys::{self, ErrnoGuard};
use crate::{Shim, say};

/// What tracing does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceMode {
    lines: bool,
    summary: bool,
}

impl TraceMode {
    pub(crate) fn is_on(self) -> bool {
        self.lines || self.summary
    }
}

/// Where trace lines go: a descriptor written with one `write(2)` per line.
struct Sink {
    fd: i32,
    /// `CUDASTUB_TRACE_FILE=…`, or `None` for stderr.
    file: Option<std::path::PathBuf>,
}

/// The tracing state of one shim: mode, output and per-function counters.
pub struct TraceState<const N: usize> {
    /// A failing write to the trace file was reported.
    write_failed: AtomicBool,
    calls: [AtomicU64; N],
    errors: [AtomicU64; N],
    nanos: [AtomicU64; N],
}

/// Where tracing goes and how, decided at the first call. Kept apart from
/// [`TraceState`], whose every byte is zero at start (`OnceLock` holds
/// uninitialised bytes, which would put the shim's tables in `.data`).
pub struct TraceOutput {
    mode: OnceLock<TraceMode>,
    sink: OnceLock<Sink>,
}

impl TraceOutput {
    pub(crate) const fn new() -> Self {
        TraceOutput {
            mode: OnceLock::new(),
            sink: OnceLock::new(),
        }
    }
}

impl<const N: usize> TraceState<N> {
    pub(crate) const fn new() -> Self {
        TraceState {
            write_failed: AtomicBool::new(false),
            calls: [const { AtomicU64::new(0) }; N],
            errors: [const { AtomicU64::new(0) }; N],
            nanos: [const { AtomicU64::new(0) }; N],
        }
    }
}

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The thread's id, and the process id it was read in: a child forked
    /// by this thread inherits the cell but is another thread, whose id is
    /// read again when the process id no longer matches.
    static TID: Cell<(i32, i64)> = const { Cell::new((0, 0)) };
}

/// The calling thread's id (`gettid`), cached per thread and per process.
fn thread_id() -> i64 {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    TID.try_with(|cell| {
        let (cached_pid, tid) = cell.get();
        if cached_pid == pid {
            return tid;
        }
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        cell.set((pid, tid));
        tid
    })
    .unwrap_or(0)
}

impl<const N: usize> Shim<N> {
    /// The mode, read once from `CUDASTUB_TRACE`. Computed without holding
    /// a lock (two racing threads compute the same value; one sets it), so
    /// that a child forked mid-computation never waits for it.
    pub(crate) fn trace_mode(&self) -> TraceMode {
        if let Some(mode) = self.trace_out.mode.get() {
            return *mode;
        }
        let off = TraceMode {
            lines: false,
            summary: false,
        };
        let value = secure_env(c"CUDASTUB_TRACE");
        let value = value.as_ref().map(|v| v.to_string_lossy());
        let mode = match value.as_deref() {
            None | Some("0" | "off") => off,
            Some("1" | "lines" | "on") => TraceMode {
                lines: true,
                summary: false,
            },
            Some("summary") => TraceMode {
                lines: false,
                summary: true,
            },
            Some("all") => TraceMode {
                lines: true,
                summary: true,
            },
            Some(other) => {
                if self.trace_out.mode.get().is_none() {
                    say(&format!(
                        "CUDASTUB_TRACE={other} is not one of 1, summary, all, 0; tracing stays off"
                    ));
                }
                off
            }
        };
        if self.trace_out.mode.set(mode).is_ok() && mode.summary {
            // SAFETY: registering a plain extern "C" function; the shim
            // stays loaded (`RTLD_NODELETE`), so it is there at exit.
            unsafe { libc::atexit(self.spec.summary_at_exit) };
        }
        self.trace_out.mode.get().copied().unwrap_or(off)
    }

    /// The output, opened at the first line. Like the mode, computed without
    /// a lock; a thread that loses the race closes its descriptor.
    fn sink(&self) -> &Sink {
        if let Some(sink) = self.trace_out.sink.get() {
            return sink;
        }
        let (sink, refusal) = open_sink();
        match self.trace_out.sink.set(sink) {
            // Only the thread whose sink is kept says why the file was
            // refused: threads racing their first traced call say it once.
            Ok(()) => {
                if let Some(why) = refusal {
                    say(&why);
                }
            }
            Err(lost) if lost.fd != 2 => {
                // SAFETY: our own descriptor, used by nobody.
                unsafe { libc::close(lost.fd) };
            }
            Err(_) => {}
        }
        self.trace_out.sink.get().unwrap_or(&STDERR)
    }

    /// Writes `text` (whole lines) to the trace; reports a failing trace
    /// file once. `errno` is kept.
    fn emit(&self, text: &str) {
        let _errno = ErrnoGuard::new();
        let sink = self.sink();
        if let Err(e) = sys::write_all(sink.fd, text.as_bytes())
            && let Some(file) = &sink.file
            && !self.trace.write_failed.swap(true, Ordering::Relaxed)
        {
            say(&format!(
                "cannot write to CUDASTUB_TRACE_FILE={}: {}; trace lines are being lost",
                file.display(),
                sys::strerror(e)
            ));
        }
    }

    /// Starts tracing call `index`, or `None` when this thread is already
    /// inside a traced call of this shim (or is exiting).
    #[inline(never)]
    pub fn trace_enter(&self, index: u32) -> Option<TraceCall<'_, N>> {
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
        Some(TraceCall {
            shim: self,
            index: index as usize,
            start: Instant::now(),
        })
    }

    /// Prints the per-function table (`CUDASTUB_TRACE=summary`); the
    /// generated `summary_at_exit` calls it at exit.
    pub fn print_summary(&self) {
        let t = &self.trace;
        let mut rows: Vec<(u64, u64, u64, &CStr)> = t
            .calls
            .iter()
            .zip(&t.nanos)
            .zip(&t.errors)
            .zip(self.spec.names.iter())
            .filter_map(|(((calls, nanos), errors), name)| {
                let calls = calls.load(Ordering::Relaxed);
                (calls > 0).then(|| {
                    (
                        nanos.load(Ordering::Relaxed),
                        calls,
                        errors.load(Ordering::Relaxed),
                        name,
                    )
                })
            })
            .collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.3.cmp(b.3)));
        let total: u64 = rows.iter().map(|r| r.0).sum::<u64>().max(1);
        let mut text = format!(
            "cudastub: API summary ({})\n Time(%)    Total (us)      Calls     Errors    Mean (us)  Name\n",
            self.spec.soname
        );
        for (nanos, calls, errors, name) in rows {
            let _ = writeln!(
                text,
                "{:8.1} {:13.3} {:10} {:10} {:12.3}  {}",
                nanos as f64 * 100.0 / total as f64,
                nanos as f64 / 1000.0,
                calls,
                errors,
                nanos as f64 / 1000.0 / calls as f64,
                name.to_string_lossy()
            );
        }
        self.emit(&text);
    }
}

static STDERR: Sink = Sink { fd: 2, file: None };

/// Opens `CUDASTUB_TRACE_FILE` for appending, without ever blocking
/// (`O_NONBLOCK`): a regular file or a character device (`/dev/null`) is
/// used; anything else (a FIFO, a socket, a directory) is refused, with
/// the line to say why, and tracing goes to stderr.
fn open_sink() -> (Sink, Option<String>) {
    let Some(path) = secure_env(c"CUDASTUB_TRACE_FILE").map(std::path::PathBuf::from) else {
        return (Sink { fd: 2, file: None }, None);
    };
    let refuse = |why: String| {
        let line = format!(
            "cannot open CUDASTUB_TRACE_FILE={}: {why}; tracing to stderr",
            path.display()
        );
        (Sink { fd: 2, file: None }, Some(line))
    };
    // Bytes, not text: a path that is not UTF-8 is opened as it is.
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return refuse("the path contains a NUL byte".into());
    };
    // SAFETY: a NUL-terminated path; O_NONBLOCK keeps open(2) from waiting
    // for a FIFO's reader.
    let fd = unsafe {
        libc::open(
            c_path.as_ptr(),
            libc::O_WRONLY
                | libc::O_CREAT
                | libc::O_APPEND
                | libc::O_CLOEXEC
                | libc::O_NONBLOCK
                | libc::O_NOCTTY,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        let e = sys::errno();
        // ENXIO is what a FIFO with no reader answers to O_NONBLOCK, but also
        // a device with nothing behind it (`/dev/tty` with no terminal):
        // only the file's type tells which.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path; `st` is writable.
        let fifo = unsafe { libc::stat(c_path.as_ptr(), &mut st) } == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFIFO;
        if e == libc::ENXIO && fifo {
            return refuse("it is a FIFO with no reader, and writing to it could block".into());
        }
        return refuse(sys::strerror(e));
    }
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open; `st` is writable.
    let kind = if unsafe { libc::fstat(fd, &mut st) } == 0 {
        st.st_mode & libc::S_IFMT
    } else {
        0
    };
    if kind != libc::S_IFREG && kind != libc::S_IFCHR {
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        let what = match kind {
            libc::S_IFIFO => "a FIFO",
            libc::S_IFSOCK => "a socket",
            libc::S_IFDIR => "a directory",
            _ => "not a regular file",
        };
        return refuse(format!("it is {what}, and writing to it could block"));
    }
    (
        Sink {
            fd,
            file: Some(path),
        },
        None,
    )
}

/// One traced call in progress.
pub struct TraceCall<'a, const N: usize> {
    shim: &'a Shim<N>,
    index: usize,
    start: Instant,
}

impl<const N: usize> TraceCall<'_, N> {
    /// The function's slot.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The shim's trace tables.
    pub(crate) fn tables(&self) -> &'static crate::TraceTables {
        self.shim.spec.trace_tables
    }

    /// `true` when the function returns the library's status.
    pub(crate) fn returns_status(&self) -> bool {
        self.shim
            .spec
            .returns_status
            .get(self.index)
            .copied()
            .unwrap_or(false)
    }

    /// `true` when the call did not fail: its status is the success value,
    /// or it returns no status.
    pub(crate) fn succeeded(&self, status: Option<i64>) -> bool {
        let returns_status = self
            .shim
            .spec
            .returns_status
            .get(self.index)
            .copied()
            .unwrap_or(false);
        !returns_status || status.is_none() || status == self.shim.spec.status_success
    }

    /// Ends the call: counts it and, in line mode, writes its line. The
    /// `errno` the call left is kept.
    pub fn finish(self, status: Option<i64>, describe: impl FnOnce(&mut TraceLine)) {
        let _errno = ErrnoGuard::new();
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
        let (shim, i) = (self.shim, self.index);
        // Always true (the generated wrappers pass their own index); it also
        // proves every index below in range, so no panic path is compiled in.
        if i >= N {
            return;
        }
        let failed =
            shim.spec.returns_status[i] && status.is_some() && status != shim.spec.status_success;
        let mode = shim.trace_mode();
        if mode.summary {
            let t = &shim.trace;
            t.calls[i].fetch_add(1, Ordering::Relaxed);
            t.nanos[i].fetch_add(nanos, Ordering::Relaxed);
            if failed {
                t.errors[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        if mode.lines {
            let mut line = TraceLine::new();
            let tid = thread_id();
            let _ = write!(
                line.text,
                "cudastub[{tid}] {}(",
                shim.spec.names.get(i).to_str().unwrap_or("?")
            );
            describe(&mut line);
            let _ = writeln!(line.text, " {}.{:03}us", nanos / 1000, nanos % 1000);
            shim.emit(&line.text);
        }
    }
}

/// The text of one trace line, built by the generated decoders.
pub struct TraceLine {
    text: String,
    first_arg: bool,
}

impl Default for TraceLine {
    fn default() -> Self {
        Self::new()
    }
}

/// The most bytes of a C string a trace line shows.
pub const MAX_STRING_BYTES: usize = 64;

impl TraceLine {
    /// An empty line.
    pub fn new() -> Self {
        TraceLine {
            text: String::with_capacity(192),
            first_arg: true,
        }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }

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

    /// A `const char *` the API promises to be a C string: up to
    /// `MAX_STRING_BYTES` (64) bytes of it, quoted, with `...` when longer.
    ///
    /// Never faults, whatever `p` is: the bytes are read with a copy that
    /// stops at unmapped memory and at the string's page (see
    /// `sys::read_c_string`). What is not printable text — unmapped memory,
    /// bytes that are not UTF-8 or hold control characters, such as a code
    /// address passed as `const char *` (`__cudaRegisterFunction`'s
    /// `hostFun`) — is shown as the address.
    pub fn c_str(&mut self, p: *const libc::c_char) {
        if p.is_null() {
            self.text.push_str("NULL");
            return;
        }
        let mut buf = [0u8; MAX_STRING_BYTES + 1];
        let n = sys::read_c_string(p as usize, &mut buf);
        let bytes = buf.get(..n).unwrap_or(&[]);
        let (body, whole) = match bytes.split_last() {
            Some((0, body)) => (body, true),
            _ => (bytes.get(..MAX_STRING_BYTES).unwrap_or(bytes), false),
        };
        // A string cut at the limit may end inside a character.
        let text = match std::str::from_utf8(body) {
            Ok(t) => Some(t),
            Err(e) if !whole && e.error_len().is_none() => {
                std::str::from_utf8(body.get(..e.valid_up_to()).unwrap_or(&[])).ok()
            }
            Err(_) => None,
        };
        let complete = whole || n > MAX_STRING_BYTES;
        match text {
            Some(t) if complete && !t.chars().any(|c| c.is_control() && c != '\t') => {
                let _ = write!(self.text, "{t:?}");
                if !whole {
                    self.text.push_str("...");
                }
            }
            _ => self.ptr(p.cast()),
        }
    }

    /// An enum value: its name where known, and its number.
    pub fn enumerated(&mut self, v: i64, names: &[(i64, &str)]) {
        let _ = match names.iter().find(|(n, _)| *n == v) {
            Some((_, name)) => write!(self.text, "{name} ({v})"),
            None => write!(self.text, "{v}"),
        };
    }

    /// A value with its name: `cudaSuccess (0)`.
    pub fn named_value(&mut self, name: &str, v: i64) {
        let _ = write!(self.text, "{name} ({v})");
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
