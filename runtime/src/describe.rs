//! Trace lines described by data: what each parameter of a function is, and
//! how to show it, in tables of plain numbers that the generated tracing
//! wrappers point the runtime to ([`TraceCall::finish_described`]).
//!
//! The wrappers only collect the addresses of their arguments
//! ([`TraceArg::of`]); all decoding is this module's code, shared by every
//! function of every shim. The tables hold numbers and offsets into one
//! string, not pointers, so they cost no relocation and stay small.
//!
//! Outputs come from the call model's roles: a parameter the call writes
//! through (`int *count`, a returned handle, an output string) is shown by
//! its value *after* the call — and only when the call succeeded, so that a
//! buffer the call did not fill is never read. Reads of caller memory go
//! through `process_vm_readv` and cannot fault.

use crate::sys;
use crate::trace::{TraceCall, TraceLine};

/// The largest output value shown by value (a bigger struct shows its address).
pub const MAX_SHOWN_BYTES: usize = 256;

/// How a value of some C type is shown (numbered in declaration order,
/// from 0: the generated tables name kinds by number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Nothing useful to show (`?`).
    Opaque,
    /// A signed integer.
    Signed,
    /// An unsigned integer (or `_Bool`).
    Unsigned,
    /// `float` or `double`.
    Float,
    /// A pointer, function pointer or handle: its address.
    Ptr,
    /// A `const char *`: the string, read safely.
    CStr,
    /// An enum: [`TraceTables::enums`]`[index]`, signed.
    Enum,
    /// An enum whose underlying type is unsigned.
    EnumUnsigned,
    /// A struct or union: [`TraceTables::aggregates`]`[index]`.
    Aggregate,
}

impl Kind {
    /// The kind numbered `k` (its discriminant); [`Kind::Opaque`] for any other.
    pub const fn from_u8(k: u8) -> Kind {
        match k {
            1 => Kind::Signed,
            2 => Kind::Unsigned,
            3 => Kind::Float,
            4 => Kind::Ptr,
            5 => Kind::CStr,
            6 => Kind::Enum,
            7 => Kind::EnumUnsigned,
            8 => Kind::Aggregate,
            _ => Kind::Opaque,
        }
    }
}

/// A [`Kind`] and the table entry it refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueCode {
    /// How to show it.
    pub kind: Kind,
    /// The enum or aggregate table index (0 otherwise).
    pub index: u16,
}

/// What the call writes through a pointer parameter, shown after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OutputKind {
    /// Nothing: the address, as passed.
    None,
    /// One value of [`ParamCode::out_size`] bytes ([`ParamCode::out`]).
    Value,
    /// A C string the call wrote into the caller's buffer.
    String,
}

/// One parameter.
#[derive(Clone, Copy, Debug)]
pub struct ParamCode {
    /// Its name: an offset into [`TraceTables::strings`] (NUL-terminated there).
    pub name: u32,
    /// How its own value is shown.
    pub value: ValueCode,
    /// What the call writes through it.
    pub output: OutputKind,
    /// How the written value is shown.
    pub out: ValueCode,
    /// The written value's size in bytes.
    pub out_size: u16,
}

impl ParamCode {
    /// A parameter from plain numbers: its name's offset, how its value is
    /// shown ([`Kind`] number and table index), what the call writes through
    /// it ([`OutputKind`] number), and how that is shown and its size.
    pub const fn new(
        name: u32,
        kind: u8,
        index: u16,
        output: u8,
        out_kind: u8,
        out_index: u16,
        out_size: u16,
    ) -> ParamCode {
        ParamCode {
            name,
            value: ValueCode {
                kind: Kind::from_u8(kind),
                index,
            },
            output: match output {
                1 => OutputKind::Value,
                2 => OutputKind::String,
                _ => OutputKind::None,
            },
            out: ValueCode {
                kind: Kind::from_u8(out_kind),
                index: out_index,
            },
            out_size,
        }
    }
}

/// One function: its parameters are `params[first..first + count]`.
#[derive(Clone, Copy, Debug)]
pub struct FunctionCode {
    /// Its first parameter in [`TraceTables::params`].
    pub first: u32,
    /// How many parameters it has.
    pub count: u16,
    /// How its result is shown; `None` for `void`.
    pub returns: Option<ValueCode>,
}

impl FunctionCode {
    /// A function from plain numbers: its first parameter and how many, and
    /// how its result is shown ([`Kind`] number and table index; `returns`
    /// false for `void`).
    pub const fn new(first: u32, count: u16, returns: bool, kind: u8, index: u16) -> FunctionCode {
        FunctionCode {
            first,
            count,
            returns: if returns {
                Some(ValueCode {
                    kind: Kind::from_u8(kind),
                    index,
                })
            } else {
                None
            },
        }
    }
}

/// One shim's trace tables.
#[derive(Debug)]
pub struct TraceTables {
    /// Every name, NUL-terminated, one after the other.
    pub strings: &'static str,
    /// Enum value tables: (value, offset of its name).
    pub enums: &'static [&'static [(i64, u32)]],
    /// Aggregate formatters.
    pub aggregates: &'static [fn(&mut TraceLine, *const u8)],
    /// Every function's parameters, in slot order.
    pub params: &'static [ParamCode],
    /// Every function, by slot.
    pub functions: &'static [FunctionCode],
}

impl TraceTables {
    /// The name at `offset`.
    pub fn name(&self, offset: u32) -> &'static str {
        let rest = self.strings.get(offset as usize..).unwrap_or("");
        rest.split('\0').next().unwrap_or("")
    }

    /// Shows enum value `v` of table `index`: its name where known, and its number.
    pub fn show_enum(&self, line: &mut TraceLine, v: i64, index: u16) {
        let table = self.enums.get(usize::from(index)).copied().unwrap_or(&[]);
        match table.iter().find(|(n, _)| *n == v) {
            Some((_, name)) => line.named_value(self.name(*name), v),
            None => line.int(i128::from(v)),
        }
    }

    /// Shows the value whose bytes are `b`.
    pub fn show(&self, line: &mut TraceLine, value: ValueCode, b: &[u8]) {
        match value.kind {
            Kind::Signed => line.int(integer(b, true)),
            Kind::Unsigned => line.int(integer(b, false)),
            Kind::Float => match b.len() {
                4 => line.float(f64::from(f32::from_le_bytes(
                    b.try_into().unwrap_or([0; 4]),
                ))),
                8 => line.float(f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
                _ => line.raw("?"),
            },
            Kind::Ptr => line.ptr(integer(b, false) as usize as *const libc::c_void),
            Kind::CStr => line.c_str(integer(b, false) as usize as *const libc::c_char),
            Kind::Enum => self.show_enum(line, integer(b, true) as i64, value.index),
            Kind::EnumUnsigned => self.show_enum(line, integer(b, false) as i64, value.index),
            Kind::Aggregate => match self.aggregates.get(usize::from(value.index)) {
                Some(f) => f(line, b.as_ptr()),
                None => line.raw("?"),
            },
            Kind::Opaque => line.raw("?"),
        }
    }
}

/// A buffer aligned for any C type the tracer shows by value.
#[repr(C, align(16))]
struct Aligned([u8; MAX_SHOWN_BYTES]);

/// The address and size of one argument (or the result) of a traced call.
#[derive(Clone, Copy, Debug)]
pub struct TraceArg {
    addr: *const u8,
    size: usize,
}

impl TraceArg {
    /// No value: a `void` function's result.
    pub const VOID: TraceArg = TraceArg {
        addr: core::ptr::null(),
        size: 0,
    };

    /// `v`'s bytes.
    #[inline(always)]
    pub fn of<T>(v: &T) -> TraceArg {
        TraceArg {
            addr: (v as *const T).cast(),
            size: core::mem::size_of::<T>(),
        }
    }

    fn bytes(&self) -> &[u8] {
        if self.size == 0 {
            return &[];
        }
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

impl<const N: usize> crate::Shim<N> {
    /// Starts a traced call of function `index`: where it goes, and the
    /// call in progress (`None` when this thread is already inside a traced
    /// call of this shim: the call then goes untraced).
    #[inline(never)]
    pub fn trace_begin(&self, index: u32) -> (*const (), Option<TraceCall<'_, N>>) {
        let target = self.active(index);
        (target, self.trace_enter(index))
    }
}

impl<const N: usize> TraceCall<'_, N> {
    /// Ends the call and writes its line from the shim's trace tables: each
    /// argument by its value, an output by what the call wrote (when it
    /// succeeded), then the result (`TraceArg::VOID` for none).
    #[inline(never)]
    pub fn finish_described(self, args: &[TraceArg], result: TraceArg) {
        let tables = self.tables();
        let status = self
            .returns_status()
            .then(|| integer(result.bytes(), true) as i64);
        let succeeded = self.succeeded(status);
        let Some(function) = tables.functions.get(self.index()) else {
            return self.finish(status, |_| {});
        };
        let first = function.first as usize;
        let params = tables
            .params
            .get(first..first + usize::from(function.count))
            .unwrap_or(&[]);
        self.finish(status, |line| {
            for (p, a) in params.iter().zip(args) {
                line.arg(tables.name(p.name));
                let bytes = a.bytes();
                let pointer = integer(bytes, false) as usize;
                match p.output {
                    _ if !succeeded || pointer == 0 => tables.show(line, p.value, bytes),
                    OutputKind::None => tables.show(line, p.value, bytes),
                    OutputKind::String => line.c_str(pointer as *const libc::c_char),
                    OutputKind::Value => {
                        let size = usize::from(p.out_size);
                        // Aligned as any C type: a struct formatter takes a
                        // reference to its type from these bytes.
                        let mut aligned = Aligned([0u8; MAX_SHOWN_BYTES]);
                        let buf = &mut aligned.0;
                        let read = buf
                            .get_mut(..size)
                            .is_some_and(|out| sys::read_bytes(pointer, out));
                        match buf.get(..size) {
                            Some(out) if read => tables.show(line, p.out, out),
                            _ => tables.show(line, p.value, bytes),
                        }
                    }
                }
            }
            line.returned();
            match function.returns {
                Some(v) if result.size > 0 => tables.show(line, v, result.bytes()),
                _ => line.raw("void"),
            }
        });
    }
}

/// A tracing wrapper: calls the function's active target and hands its
/// arguments and result to [`TraceCall::finish_described`]. One invocation
/// per function, generated:
/// `cudastub_runtime::tracer!(SHIM, 7, cudaGetDeviceCount(count: *mut c_int) -> cudaError_t);`
#[macro_export]
macro_rules! tracer {
    ($shim:path, $index:literal, $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            let (target, call) = $shim.trace_begin($index);
            // SAFETY: the active target has this function's prototype.
            let target: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { ::core::mem::transmute(target) };
            let Some(call) = call else {
                return unsafe { target($($arg),*) };
            };
            let result = unsafe { target($($arg),*) };
            call.finish_described(&[$($crate::TraceArg::of(&$arg)),*], $crate::TraceArg::of(&result));
            result
        }
    };
    ($shim:path, $index:literal, $name:ident($($arg:ident: $ty:ty),*)) => {
        pub unsafe extern "C" fn $name($($arg: $ty),*) {
            let (target, call) = $shim.trace_begin($index);
            // SAFETY: the active target has this function's prototype.
            let target: unsafe extern "C" fn($($ty),*) = unsafe { ::core::mem::transmute(target) };
            let Some(call) = call else {
                return unsafe { target($($arg),*) };
            };
            unsafe { target($($arg),*) };
            call.finish_described(&[$($crate::TraceArg::of(&$arg)),*], $crate::TraceArg::VOID);
        }
    };
}
