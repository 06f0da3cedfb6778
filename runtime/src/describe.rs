//! Trace lines described by data: what each parameter of a function is, and
//! how to show it, in one static table per function that the generated
//! tracing wrappers pass to [`TraceCall::finish_described`].
//!
//! The wrappers only collect the addresses of their arguments
//! ([`TraceArg::of`]); all decoding is this module's code, shared by every
//! function of every shim. Outputs come from the call model's roles: a
//! parameter the call writes through (`int *count`, a returned handle, an
//! output string) is shown by its value *after* the call — and only when
//! the call succeeded, so that a buffer the call did not fill is never read.
//! Reads of caller memory go through `process_vm_readv` and cannot fault.

use crate::sys;
use crate::trace::{MAX_STRING_BYTES, TraceCall, TraceLine};

/// The largest output value shown by value (a bigger struct shows its address).
pub const MAX_SHOWN_BYTES: usize = 256;

/// How a value of some C type is shown, from its bytes.
#[derive(Clone, Copy, Debug)]
pub enum Value {
    /// An integer (or `_Bool`) of the given signedness.
    Int {
        /// Signed.
        signed: bool,
    },
    /// `float` or `double`.
    Float,
    /// A pointer (or a function pointer, or a handle): its address.
    Ptr,
    /// A `const char *`: the string, read safely.
    CStr,
    /// An enum: its name from the table, and its number.
    Enum {
        /// Its values, by value then name.
        names: &'static [(i64, &'static str)],
        /// Whether its underlying type is signed.
        signed: bool,
    },
    /// A struct or union, shown by its generated formatter.
    Aggregate(fn(&mut TraceLine, *const u8)),
    /// A value with nothing useful to show (`?`).
    Opaque,
}

/// What the call writes through a pointer parameter, shown after it.
#[derive(Clone, Copy, Debug)]
pub enum Output {
    /// Nothing shown after the call: the address, before.
    None,
    /// One value of `size` bytes at the pointer (a count, a handle, a small
    /// struct, a returned string's address).
    Value {
        /// How to show it.
        value: Value,
        /// Its size in bytes.
        size: u32,
    },
    /// A C string the call wrote into the caller's buffer.
    String,
}

/// One parameter.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Its C name.
    pub name: &'static str,
    /// How its own value is shown.
    pub value: Value,
    /// What the call writes through it.
    pub output: Output,
}

/// One function's trace description.
#[derive(Clone, Copy, Debug)]
pub struct Described {
    /// Its parameters, in order.
    pub params: &'static [Param],
    /// How its return value is shown (`None` for `void`).
    pub returns: Option<Value>,
}

/// The address and size of one argument (or the result) of a traced call.
#[derive(Clone, Copy, Debug)]
pub struct TraceArg {
    addr: *const u8,
    size: usize,
}

impl TraceArg {
    /// `v`'s bytes.
    #[inline(always)]
    pub fn of<T>(v: &T) -> TraceArg {
        TraceArg {
            addr: (v as *const T).cast(),
            size: core::mem::size_of::<T>(),
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: made by `of` from a live reference the caller holds for
        // the duration of the `finish_described` call.
        unsafe { core::slice::from_raw_parts(self.addr, self.size) }
    }
}

/// The integer in `b` (little-endian, at most 16 bytes).
fn integer(b: &[u8], signed: bool) -> i128 {
    let mut v: u128 = 0;
    for (i, byte) in b.iter().take(16).enumerate() {
        v |= u128::from(*byte) << (8 * i);
    }
    let bits = 8 * b.len().min(16) as u32;
    if signed && bits > 0 && bits < 128 && v >> (bits - 1) & 1 == 1 {
        (v | (u128::MAX << bits)) as i128
    } else {
        v as i128
    }
}

/// Shows the value whose bytes are `b`.
pub fn show(line: &mut TraceLine, value: Value, b: &[u8]) {
    match value {
        Value::Int { signed } => line.int(integer(b, signed)),
        Value::Float => match b.len() {
            4 => line.float(f64::from(f32::from_le_bytes(
                b.try_into().unwrap_or([0; 4]),
            ))),
            8 => line.float(f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
            _ => line.raw("?"),
        },
        Value::Ptr => line.ptr(integer(b, false) as usize as *const libc::c_void),
        Value::CStr => line.c_str(integer(b, false) as usize as *const libc::c_char),
        Value::Enum { names, signed } => line.enumerated(integer(b, signed) as i64, names),
        Value::Aggregate(f) => f(line, b.as_ptr()),
        Value::Opaque => line.raw("?"),
    }
}

impl<const N: usize> TraceCall<'_, N> {
    /// Ends the call and writes its line from `described`: each argument by
    /// its value, an output by what the call wrote (when it succeeded), then
    /// the result.
    pub fn finish_described(
        self,
        described: &'static Described,
        args: &[TraceArg],
        result: Option<TraceArg>,
        status: Option<i64>,
    ) {
        let succeeded = self.succeeded(status);
        self.finish(status, |line| {
            for (p, a) in described.params.iter().zip(args) {
                line.arg(p.name);
                let bytes = a.bytes();
                let pointer = integer(bytes, false) as usize;
                match p.output {
                    _ if !succeeded || pointer == 0 => show(line, p.value, bytes),
                    Output::None => show(line, p.value, bytes),
                    Output::String => line.c_str(pointer as *const libc::c_char),
                    Output::Value { value, size } => {
                        let mut buf = [0u8; MAX_SHOWN_BYTES];
                        let read = match buf.get_mut(..size as usize) {
                            Some(out) => sys::read_bytes(pointer, out),
                            None => false,
                        };
                        match buf.get(..size as usize) {
                            Some(out) if read => show(line, value, out),
                            _ => show(line, p.value, bytes),
                        }
                    }
                }
            }
            line.returned();
            match (described.returns, result) {
                (Some(v), Some(r)) => show(line, v, r.bytes()),
                _ => line.raw("void"),
            }
        });
    }
}

const _: () = assert!(MAX_STRING_BYTES < MAX_SHOWN_BYTES);
