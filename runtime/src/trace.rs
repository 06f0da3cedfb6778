//! Tracing.
//!
//! `CUDASTUB_TRACE=1` writes one line per call; `CUDASTUB_TRACE=summary`
//! prints a table per function at exit; `all` does both. Lines go to stderr,
//! or to the file named by `CUDASTUB_TRACE_FILE` (appended to).
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
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::load::secure_env;
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

type Sink = Mutex<Box<dyn std::io::Write + Send>>;

/// The tracing state of one shim: mode, output and per-function counters.
pub struct TraceState<const N: usize> {
    mode: OnceLock<TraceMode>,
    sink: OnceLock<Sink>,
    calls: [AtomicU64; N],
    errors: [AtomicU64; N],
    nanos: [AtomicU64; N],
}

impl<const N: usize> TraceState<N> {
    pub(crate) const fn new() -> Self {
        TraceState {
            mode: OnceLock::new(),
            sink: OnceLock::new(),
            calls: [const { AtomicU64::new(0) }; N],
            errors: [const { AtomicU64::new(0) }; N],
            nanos: [const { AtomicU64::new(0) }; N],
        }
    }
}

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    // SAFETY: gettid has no preconditions.
    static TID: i64 = unsafe { libc::syscall(libc::SYS_gettid) };
}

impl<const N: usize> Shim<N> {
    pub(crate) fn trace_mode(&self) -> TraceMode {
        *self.trace.mode.get_or_init(|| {
            let off = TraceMode {
                lines: false,
                summary: false,
            };
            let Some(value) = secure_env(c"CUDASTUB_TRACE") else {
                return off;
            };
            let mode = match value.as_str() {
                "0" | "off" => off,
                "1" | "lines" | "on" => TraceMode {
                    lines: true,
                    summary: false,
                },
                "summary" => TraceMode {
                    lines: false,
                    summary: true,
                },
                "all" => TraceMode {
                    lines: true,
                    summary: true,
                },
                other => {
                    say(&format!(
                        "CUDASTUB_TRACE={other} is not one of 1, summary, all, 0; tracing stays off"
                    ));
                    off
                }
            };
            if mode.summary {
                // SAFETY: registering a plain extern "C" function.
                unsafe { libc::atexit(self.spec.summary_at_exit) };
            }
            mode
        })
    }

    fn sink(&self) -> &Sink {
        self.trace.sink.get_or_init(|| {
            let out: Box<dyn std::io::Write + Send> = match secure_env(c"CUDASTUB_TRACE_FILE") {
                None => Box::new(std::io::stderr()),
                Some(path) => match std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                {
                    Ok(f) => Box::new(f),
                    Err(e) => {
                        say(&format!(
                            "cannot open CUDASTUB_TRACE_FILE={path}: {e}; tracing to stderr"
                        ));
                        Box::new(std::io::stderr())
                    }
                },
            };
            Mutex::new(out)
        })
    }

    /// Starts tracing call `index`, or `None` when this thread is already
    /// inside a traced call of this shim (or is exiting).
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
        let mut rows: Vec<(u64, u64, u64, &CStr)> = (0..N)
            .filter_map(|i| {
                let calls = t.calls[i].load(Ordering::Relaxed);
                (calls > 0).then(|| {
                    (
                        t.nanos[i].load(Ordering::Relaxed),
                        calls,
                        t.errors[i].load(Ordering::Relaxed),
                        self.spec.names[i],
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
        if let Ok(mut out) = self.sink().lock() {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

/// One traced call in progress.
pub struct TraceCall<'a, const N: usize> {
    shim: &'a Shim<N>,
    index: usize,
    start: Instant,
}

impl<const N: usize> TraceCall<'_, N> {
    /// Ends the call: counts it and, in line mode, writes its line.
    pub fn finish(self, status: Option<i64>, describe: impl FnOnce(&mut TraceLine)) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
        let (shim, i) = (self.shim, self.index);
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
            let mut line = TraceLine {
                text: String::with_capacity(192),
                first_arg: true,
            };
            let tid = TID.try_with(|t| *t).unwrap_or(0);
            let _ = write!(
                line.text,
                "cudastub[{tid}] {}(",
                shim.spec.names[i].to_str().unwrap_or("?")
            );
            describe(&mut line);
            let _ = writeln!(line.text, " {}.{:03}us", nanos / 1000, nanos % 1000);
            if let Ok(mut out) = shim.sink().lock() {
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
    ///
    /// # Safety
    /// `p` is null or points to a NUL-terminated string.
    pub unsafe fn c_str(&mut self, p: *const libc::c_char) {
        if p.is_null() {
            self.text.push_str("NULL");
            return;
        }
        // SAFETY: the caller promises a NUL-terminated string.
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
