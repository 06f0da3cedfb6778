//! A generic caller for the x86-64 System V ABI: calls a C function whose
//! prototype is known only as data at run time (its arguments arrive as raw
//! bytes plus their ABI class, §3.2.3 of the System V AMD64 ABI).
//!
//! The arguments are first laid out into the registers and stack slots the
//! ABI gives them; the call itself then goes through one fixed-arity
//! function type that fills every argument register and [`STACK_SLOTS`]
//! stack slots. Passing more arguments than the callee reads
//! is harmless in System V: the callee ignores extra registers, and the
//! caller owns (and cleans) the stack area that holds the extra slots.
//!
//! A signed 8- or 16-bit argument must arrive sign-extended to 4 bytes (see
//! [`call`]): clang-built callees read it as a 32-bit value.
//!
//! Not covered: variadic callees (`al` is not set to the number of vector
//! registers used), arguments that need 16-byte stack alignment (`long
//! double`, `__int128` on the stack, over-aligned structs) and returns other
//! than `rax` (a struct returned in memory takes a hidden pointer: pass it as
//! the first `Integer` argument; `rax` then holds it again).

use serde::{Deserialize, Serialize};

/// General-purpose argument registers: rdi, rsi, rdx, rcx, r8, r9.
const INT_REGS: usize = 6;
/// SSE argument registers: xmm0 to xmm7.
const SSE_REGS: usize = 8;
/// How many eightbytes of arguments [`call`] can pass on the stack.
pub const STACK_SLOTS: usize = 32;

/// How one eightbyte of a small aggregate travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EightByte {
    /// In a general-purpose register (any integer or pointer in it, even
    /// beside a float).
    Integer,
    /// In an SSE register (only floats and doubles in it).
    Sse,
}

/// How one by-value argument travels (System V AMD64 ABI, §3.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArgClass {
    /// An integer, enum, bool or pointer: one general-purpose register (or stack slot).
    Integer,
    /// A float or double: one SSE register (or stack slot); a float is in the low 4 bytes.
    Sse,
    /// A struct or union of at most 16 bytes: its eightbytes' classes, in order (1 or 2).
    Small(Vec<EightByte>),
    /// Passed in memory: copied onto the stack, `size` bytes rounded up to 8.
    Memory {
        /// The aggregate's size in bytes.
        size: u32,
    },
}

/// What the function returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetClass {
    /// Nothing: [`call`] returns 0.
    Void,
    /// A value in `rax`: an integer, pointer or enum (only its own width is
    /// defined; the caller truncates), or the hidden pointer of a struct
    /// returned in memory.
    Integer,
}

/// Why a call could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum AbiError {
    /// The arguments need this many stack slots, more than [`STACK_SLOTS`].
    TooManyStackSlots(usize),
    /// Argument `index` has `got` bytes where its class takes `expected`
    /// (at most `expected`, for `Integer`, `Sse` and `Small`).
    WrongSize {
        /// The argument's position.
        index: usize,
        /// How many bytes its class takes (the most it takes, for
        /// `Integer`, `Sse` and `Small`).
        expected: usize,
        /// How many bytes it had.
        got: usize,
    },
    /// Argument `index` is a `Small` aggregate with `eightbytes` eightbytes,
    /// not 1 or 2.
    BadSmall {
        /// The argument's position.
        index: usize,
        /// How many eightbyte classes it had.
        eightbytes: usize,
    },
    /// Calls are made only on x86-64 Linux.
    Unsupported,
}

impl std::fmt::Display for AbiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbiError::TooManyStackSlots(n) => write!(
                f,
                "the arguments need {n} stack slots, more than the {STACK_SLOTS} supported"
            ),
            AbiError::WrongSize {
                index,
                expected,
                got,
            } => write!(f, "argument {index}: expected {expected} bytes, got {got}"),
            AbiError::BadSmall { index, eightbytes } => write!(
                f,
                "argument {index}: a small aggregate has 1 or 2 eightbytes, not {eightbytes}"
            ),
            AbiError::Unsupported => write!(f, "only x86-64 Linux"),
        }
    }
}

impl std::error::Error for AbiError {}

/// The registers and stack slots of one call, each an eightbyte.
#[derive(Debug, Default, PartialEq, Eq)]
struct Frame {
    int: [u64; INT_REGS],
    n_int: usize,
    /// Bit patterns of the SSE registers' low eightbytes.
    sse: [u64; SSE_REGS],
    n_sse: usize,
    stack: [u64; STACK_SLOTS],
    /// Slots used; may pass [`STACK_SLOTS`] (the rest are counted, not kept).
    n_stack: usize,
}

impl Frame {
    fn push_stack(&mut self, word: u64) {
        if let Some(slot) = self.stack.get_mut(self.n_stack) {
            *slot = word;
        }
        self.n_stack += 1;
    }

    /// Puts one eightbyte in the next register of its class, or on the
    /// stack once that class's registers are used up.
    fn push(&mut self, class: EightByte, word: u64) {
        match class {
            EightByte::Integer if self.n_int < INT_REGS => {
                self.int[self.n_int] = word;
                self.n_int += 1;
            }
            EightByte::Sse if self.n_sse < SSE_REGS => {
                self.sse[self.n_sse] = word;
                self.n_sse += 1;
            }
            _ => self.push_stack(word),
        }
    }
}

/// Little-endian eightbytes of `bytes`, the last one zero-padded.
fn words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes.chunks(8).map(|chunk| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(word)
    })
}

/// Assigns `args`, left to right, to registers and stack slots.
fn layout(args: &[(ArgClass, &[u8])]) -> Result<Frame, AbiError> {
    let mut frame = Frame::default();
    for (index, (class, bytes)) in args.iter().enumerate() {
        let wrong = |expected: usize| AbiError::WrongSize {
            index,
            expected,
            got: bytes.len(),
        };
        match class {
            ArgClass::Integer | ArgClass::Sse => {
                if bytes.is_empty() || bytes.len() > 8 {
                    return Err(wrong(8));
                }
                let eightbyte = if *class == ArgClass::Sse {
                    EightByte::Sse
                } else {
                    EightByte::Integer
                };
                words(bytes).for_each(|word| frame.push(eightbyte, word));
            }
            ArgClass::Small(classes) => {
                let n = classes.len();
                if !(1..=2).contains(&n) {
                    return Err(AbiError::BadSmall {
                        index,
                        eightbytes: n,
                    });
                }
                // Its bytes, zero-padded or not: as many eightbytes as classes.
                if bytes.len() <= 8 * (n - 1) || bytes.len() > 8 * n {
                    return Err(wrong(8 * n));
                }
                let ints = classes.iter().filter(|&&c| c == EightByte::Integer).count();
                let sses = n - ints;
                // All in registers, or all on the stack (the registers stay
                // free for later arguments).
                if frame.n_int + ints <= INT_REGS && frame.n_sse + sses <= SSE_REGS {
                    for (&c, word) in classes.iter().zip(words(bytes)) {
                        frame.push(c, word);
                    }
                } else {
                    words(bytes).for_each(|word| frame.push_stack(word));
                }
            }
            ArgClass::Memory { size } => {
                let size = *size as usize;
                if bytes.len() != size {
                    return Err(wrong(size));
                }
                words(bytes).for_each(|word| frame.push_stack(word));
            }
        }
    }
    if frame.n_stack > STACK_SLOTS {
        return Err(AbiError::TooManyStackSlots(frame.n_stack));
    }
    Ok(frame)
}

/// Calls `f` with `args` (each: its class and its bytes, little-endian, exactly
/// as the caller's C code would hold the value; an Integer/Sse arg is 1..=8 bytes,
/// zero-extended; a Small arg's bytes are the aggregate's bytes (len ≤ 16, padded
/// with zeros to whole eightbytes); a Memory arg's bytes are exactly `size`).
/// Returns rax (0 for Void).
///
/// A `Small` argument may also come unpadded (a 12-byte struct as its 12
/// bytes): it is padded here. Everything is checked before the call.
///
/// A signed 8- or 16-bit integer (`signed char`, `short`) must come as the
/// 4 bytes of its sign-extended `int` value: callees built by clang (or
/// rustc) assume the caller extended it to 32 bits, and an `Integer`'s bytes
/// are only zero-extended here.
///
/// # Safety
/// `f` must be a function whose C prototype matches `args` and `ret`.
pub unsafe fn call(
    f: *const std::ffi::c_void,
    args: &[(ArgClass, &[u8])],
    ret: RetClass,
) -> Result<u64, AbiError> {
    let frame = layout(args)?;
    // SAFETY: the caller vouches for `f`'s prototype; `frame` is its arguments.
    let rax = unsafe { invoke(f, &frame) }?;
    Ok(match ret {
        RetClass::Void => 0,
        RetClass::Integer => rax,
    })
}

/// Every argument register, then [`STACK_SLOTS`] stack slots. The SSE
/// arguments all fit in registers, so the trailing `u64`s are the stack
/// slots, in order.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[rustfmt::skip]
type Wide = unsafe extern "C" fn(
    u64, u64, u64, u64, u64, u64,
    f64, f64, f64, f64, f64, f64, f64, f64,
    u64, u64, u64, u64, u64, u64, u64, u64,
    u64, u64, u64, u64, u64, u64, u64, u64,
    u64, u64, u64, u64, u64, u64, u64, u64,
    u64, u64, u64, u64, u64, u64, u64, u64,
) -> u64;

/// Makes the call `frame` describes; returns rax.
///
/// # Safety
/// As for [`call`].
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe fn invoke(f: *const std::ffi::c_void, frame: &Frame) -> Result<u64, AbiError> {
    // SAFETY: a code address and a function pointer have the same
    // representation; the caller vouches that `f` is a function whose
    // arguments are a prefix of `Wide`'s in registers and stack slots.
    let wide = unsafe { std::mem::transmute::<*const std::ffi::c_void, Wide>(f) };
    let i = &frame.int;
    let x = frame.sse.map(f64::from_bits);
    let s = &frame.stack;
    // SAFETY: as above.
    #[rustfmt::skip]
    let rax = unsafe {
        wide(
            i[0], i[1], i[2], i[3], i[4], i[5],
            x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7],
            s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
            s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15],
            s[16], s[17], s[18], s[19], s[20], s[21], s[22], s[23],
            s[24], s[25], s[26], s[27], s[28], s[29], s[30], s[31],
        )
    };
    Ok(rax)
}

/// Calls are made only on x86-64 Linux.
///
/// # Safety
/// None needed: nothing is called.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
unsafe fn invoke(_f: *const std::ffi::c_void, _frame: &Frame) -> Result<u64, AbiError> {
    Err(AbiError::Unsupported)
}

#[cfg(all(test, target_arch = "x86_64", target_os = "linux"))]
mod tests {
    use super::*;
    use EightByte::{Integer as I, Sse as S};
    use std::ffi::c_void;

    /// The bytes of `v` as the caller's C code holds them.
    fn bytes<T: Copy>(v: T) -> Vec<u8> {
        // SAFETY: every test type is plain data without padding.
        unsafe { std::slice::from_raw_parts((&v as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    fn int<T: Copy>(v: T) -> (ArgClass, Vec<u8>) {
        (ArgClass::Integer, bytes(v))
    }

    fn sse<T: Copy>(v: T) -> (ArgClass, Vec<u8>) {
        (ArgClass::Sse, bytes(v))
    }

    fn small<T: Copy>(v: T, classes: &[EightByte]) -> (ArgClass, Vec<u8>) {
        (ArgClass::Small(classes.to_vec()), bytes(v))
    }

    fn mem<T: Copy>(v: T) -> (ArgClass, Vec<u8>) {
        let size = size_of::<T>() as u32;
        (ArgClass::Memory { size }, bytes(v))
    }

    fn try_call(f: *const c_void, args: &[(ArgClass, Vec<u8>)]) -> Result<u64, AbiError> {
        let args: Vec<(ArgClass, &[u8])> = args
            .iter()
            .map(|(class, bytes)| (class.clone(), bytes.as_slice()))
            .collect();
        // SAFETY: every test passes `f` the arguments of its prototype.
        unsafe { call(f, &args, RetClass::Integer) }
    }

    fn run(f: *const c_void, args: &[(ArgClass, Vec<u8>)]) -> u64 {
        try_call(f, args).unwrap()
    }

    /// Order-sensitive checksum.
    fn fold(words: &[u64]) -> u64 {
        words
            .iter()
            .fold(17u64, |acc, &w| acc.wrapping_mul(1_000_003).wrapping_add(w))
    }

    #[test]
    fn no_args() {
        extern "C" fn answer() -> u64 {
            0xC0FFEE
        }
        assert_eq!(run(answer as *const c_void, &[]), answer());
    }

    #[test]
    fn void_return_is_zero() {
        extern "C" fn store(p: *mut u64, v: u64) {
            // SAFETY: the test passes a valid pointer.
            unsafe { *p = v }
        }
        let mut cell = 0u64;
        let p: *mut u64 = &mut cell;
        let args = [int(p), int(42u64)];
        let args: Vec<(ArgClass, &[u8])> = args.iter().map(|(c, b)| (c.clone(), &b[..])).collect();
        // SAFETY: `store`'s prototype.
        let rax = unsafe { call(store as *const c_void, &args, RetClass::Void) };
        assert_eq!(rax, Ok(0));
        assert_eq!(cell, 42);
    }

    #[test]
    fn integers_of_different_widths() {
        extern "C" fn widths(a: u8, b: i32, c: u64) -> u64 {
            fold(&[a as u64, b as i64 as u64, c])
        }
        let (a, b, c) = (0xABu8, -123_456i32, 0xDEAD_BEEF_0123_4567u64);
        let args = [int(a), int(b), int(c)];
        assert_eq!(run(widths as *const c_void, &args), widths(a, b, c));
    }

    #[test]
    fn narrow_signed_integers_sign_extended_to_four_bytes() {
        // Clang-built callees (rustc's too) assume the caller extended an
        // 8- or 16-bit argument to 32 bits, so a negative one is sent as
        // the 4 bytes of its `int` promotion.
        extern "C" fn narrow(a: i8, b: i16, c: u16) -> u64 {
            fold(&[a as i64 as u64, b as i64 as u64, c as u64])
        }
        let (a, b, c) = (-5i8, -300i16, 0xFFFEu16);
        let args = [int(a as i32), int(b as i32), int(c)];
        assert_eq!(run(narrow as *const c_void, &args), narrow(a, b, c));
    }

    #[test]
    fn floats_and_doubles_among_integers() {
        extern "C" fn mixed(a: f32, n: i32, b: f64, m: u64, c: f32, d: f64) -> u64 {
            let x = ((a as f64 * 1000.0 + b) * 1000.0 + c as f64) * 1000.0 + d;
            fold(&[x as u64, n as i64 as u64, m])
        }
        let (a, n, b, m, c, d) = (1.5f32, -9i32, 2.25f64, 77u64, 3.75f32, 4.125f64);
        let args = [sse(a), int(n), sse(b), int(m), sse(c), sse(d)];
        assert_eq!(run(mixed as *const c_void, &args), mixed(a, n, b, m, c, d));
    }

    #[test]
    fn sse_bits_pass_unchanged() {
        extern "C" fn bits(a: f32, b: f64) -> u64 {
            fold(&[a.to_bits() as u64, b.to_bits()])
        }
        let a = f32::from_bits(0x7FA0_1234); // a signalling NaN with a payload
        let b = f64::from_bits(0x0000_0000_0000_0001); // the smallest subnormal
        let args = [sse(a), sse(b)];
        assert_eq!(run(bits as *const c_void, &args), bits(a, b));
    }

    #[test]
    fn nine_doubles_one_on_the_stack() {
        #[allow(clippy::too_many_arguments)]
        extern "C" fn nine(
            a: f64,
            b: f64,
            c: f64,
            d: f64,
            e: f64,
            f: f64,
            g: f64,
            h: f64,
            n: u32,
            i: f64,
        ) -> u64 {
            let words = [a, b, c, d, e, f, g, h, i].map(f64::to_bits);
            fold(&words) ^ n as u64
        }
        let v: Vec<f64> = (1..=9).map(|k| k as f64 * 1.25).collect();
        let mut args: Vec<_> = v[..8].iter().map(|&d| sse(d)).collect();
        args.push(int(5u32));
        args.push(sse(v[8]));
        let direct = nine(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], 5, v[8]);
        assert_eq!(run(nine as *const c_void, &args), direct);
    }

    #[test]
    fn ten_integers_four_on_the_stack() {
        #[allow(clippy::too_many_arguments)]
        extern "C" fn ten(
            a: u64,
            b: u32,
            c: u64,
            d: u16,
            e: u64,
            f: u64,
            g: u64,
            h: u8,
            i: u64,
            j: u32,
        ) -> u64 {
            fold(&[a, b as u64, c, d as u64, e, f, g, h as u64, i, j as u64])
        }
        let args = [
            int(1u64),
            int(2u32),
            int(3u64),
            int(4u16),
            int(5u64),
            int(6u64),
            int(u64::MAX - 7),
            int(8u8),
            int(9u64 << 40),
            int(10u32),
        ];
        let direct = ten(1, 2, 3, 4, 5, 6, u64::MAX - 7, 8, 9 << 40, 10);
        assert_eq!(run(ten as *const c_void, &args), direct);
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Dim3 {
        x: u32,
        y: u32,
        z: u32,
    }

    impl Dim3 {
        fn words(self) -> [u64; 3] {
            [self.x as u64, self.y as u64, self.z as u64]
        }
    }

    /// Like `cudaLaunchKernel(const void*, dim3, dim3, void**, size_t, cudaStream_t)`.
    extern "C" fn launch(
        func: *const c_void,
        grid: Dim3,
        block: Dim3,
        args: *mut *mut c_void,
        shared: usize,
        stream: *mut c_void,
    ) -> u64 {
        let mut words = vec![func as u64];
        words.extend(grid.words());
        words.extend(block.words());
        words.extend([args as u64, shared as u64, stream as u64]);
        fold(&words)
    }

    #[test]
    fn dim3_by_value_like_cuda_launch_kernel() {
        let func = 0x1000 as *const c_void;
        let grid = Dim3 { x: 640, y: 2, z: 1 };
        let block = Dim3 { x: 256, y: 1, z: 3 };
        let params = 0x7fff_0000_1230 as *mut *mut c_void;
        let stream = 0x5eed as *mut c_void;
        let args = [
            int(func),
            small(grid, &[I, I]),
            small(block, &[I, I]),
            int(params),
            int(4096usize),
            int(stream),
        ];
        let direct = launch(func, grid, block, params, 4096, stream);
        assert_eq!(run(launch as *const c_void, &args), direct);

        // The same with each Dim3 zero-padded to 16 bytes.
        let mut padded = args.clone();
        for index in [1, 2] {
            padded[index].1.resize(16, 0);
        }
        assert_eq!(run(launch as *const c_void, &padded), direct);
    }

    #[test]
    fn small_aggregate_goes_wholly_on_the_stack_when_registers_run_out() {
        extern "C" fn late(a: u64, b: u64, c: u64, d: u64, e: u64, dim: Dim3, f: u64) -> u64 {
            let mut words = vec![a, b, c, d, e];
            words.extend(dim.words());
            words.push(f);
            fold(&words)
        }
        let dim = Dim3 { x: 7, y: 8, z: 9 };
        let mut args: Vec<_> = (1..=5u64).map(int).collect();
        args.push(small(dim, &[I, I]));
        args.push(int(0xF00Du64)); // in r9, which the Dim3 left free
        assert_eq!(
            run(late as *const c_void, &args),
            late(1, 2, 3, 4, 5, dim, 0xF00D)
        );
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Float3 {
        x: f32,
        y: f32,
        z: f32,
    }

    impl Float3 {
        fn value(self) -> f64 {
            (self.x as f64 * 1000.0 + self.y as f64) * 1000.0 + self.z as f64
        }
    }

    #[test]
    fn three_floats_in_two_sse_registers() {
        extern "C" fn float3(n: u32, v: Float3, w: f32) -> u64 {
            fold(&[n as u64, (v.value() * 1000.0 + w as f64) as u64])
        }
        let v = Float3 {
            x: 1.0,
            y: 2.5,
            z: 3.0,
        };
        let args = [int(11u32), small(v, &[S, S]), sse(4.0f32)];
        assert_eq!(run(float3 as *const c_void, &args), float3(11, v, 4.0));
    }

    #[test]
    fn sse_aggregate_goes_wholly_on_the_stack_when_registers_run_out() {
        #[allow(clippy::too_many_arguments)]
        extern "C" fn late(
            a: f64,
            b: f64,
            c: f64,
            d: f64,
            e: f64,
            f: f64,
            g: f64,
            v: Float3,
            h: f64,
        ) -> u64 {
            let words = [a, b, c, d, e, f, g, v.value(), h].map(f64::to_bits);
            fold(&words)
        }
        let v = Float3 {
            x: 5.0,
            y: 6.0,
            z: 7.0,
        };
        let mut args: Vec<_> = (1..=7).map(|k| sse(k as f64)).collect();
        args.push(small(v, &[S, S]));
        args.push(sse(8.5f64)); // in xmm7, which the Float3 left free
        let direct = late(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, v, 8.5);
        assert_eq!(run(late as *const c_void, &args), direct);
    }

    #[test]
    fn float_beside_integer_in_one_eightbyte_is_integer() {
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Tagged {
            value: f32,
            tag: u32,
        }
        extern "C" fn tagged(d: f64, t: Tagged, n: u64) -> u64 {
            fold(&[
                d.to_bits(),
                (t.value as f64 * 1000.0) as u64,
                t.tag as u64,
                n,
            ])
        }
        let t = Tagged {
            value: 2.5,
            tag: 99,
        };
        let args = [sse(1.5f64), small(t, &[I]), int(3u64)];
        assert_eq!(run(tagged as *const c_void, &args), tagged(1.5, t, 3));
    }

    #[test]
    fn integer_and_sse_eightbytes_in_one_aggregate() {
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct IntThenDouble {
            n: u64,
            d: f64,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct DoubleThenInt {
            d: f64,
            n: u64,
        }
        extern "C" fn both(a: IntThenDouble, b: DoubleThenInt, c: u32) -> u64 {
            fold(&[a.n, a.d.to_bits(), b.d.to_bits(), b.n, c as u64])
        }
        let a = IntThenDouble { n: 5, d: 0.5 };
        let b = DoubleThenInt { d: -2.0, n: 6 };
        let args = [small(a, &[I, S]), small(b, &[S, I]), int(7u32)];
        assert_eq!(run(both as *const c_void, &args), both(a, b, 7));
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Extent {
        width: usize,
        height: usize,
        depth: usize,
    }

    #[test]
    fn extent_in_memory_then_an_integer() {
        // Like `cudaMalloc3D(cudaPitchedPtr*, cudaExtent)`, plus an integer after.
        extern "C" fn malloc3d(p: *mut u64, e: Extent, flags: u32) -> u64 {
            fold(&[
                p as u64,
                e.width as u64,
                e.height as u64,
                e.depth as u64,
                flags as u64,
            ])
        }
        let p = 0xAB00 as *mut u64;
        let e = Extent {
            width: 640,
            height: 480,
            depth: 3,
        };
        let args = [int(p), mem(e), int(0x10u32)];
        assert_eq!(run(malloc3d as *const c_void, &args), malloc3d(p, e, 0x10));
    }

    #[test]
    fn memory_argument_in_order_among_stack_integers() {
        #[allow(clippy::too_many_arguments)]
        extern "C" fn spilled(
            a: u64,
            b: u64,
            c: u64,
            d: u64,
            e: u64,
            f: u64,
            g: u64,
            ext: Extent,
            h: u64,
        ) -> u64 {
            let ext = [ext.width as u64, ext.height as u64, ext.depth as u64];
            fold(&[a, b, c, d, e, f, g, ext[0], ext[1], ext[2], h])
        }
        let e = Extent {
            width: 10,
            height: 20,
            depth: 30,
        };
        let mut args: Vec<_> = (1..=7u64).map(int).collect();
        args.push(mem(e));
        args.push(int(8u64));
        let direct = spilled(1, 2, 3, 4, 5, 6, 7, e, 8);
        assert_eq!(run(spilled as *const c_void, &args), direct);
    }

    #[test]
    fn exactly_thirty_two_stack_slots() {
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Big {
            words: [u64; 32],
        }
        extern "C" fn big(a: u64, b: Big, c: f32) -> u64 {
            fold(&b.words) ^ a ^ c.to_bits() as u64
        }
        let mut b = Big { words: [0; 32] };
        for (k, w) in b.words.iter_mut().enumerate() {
            *w = (k as u64 + 1) * 0x0101_0101;
        }
        let args = [int(9u64), mem(b), sse(0.75f32)];
        assert_eq!(run(big as *const c_void, &args), big(9, b, 0.75));
    }

    extern "C" fn never() -> u64 {
        0
    }

    #[test]
    fn too_many_stack_slots() {
        let mut args: Vec<_> = (0..6 + 33u64).map(int).collect();
        assert_eq!(
            try_call(never as *const c_void, &args),
            Err(AbiError::TooManyStackSlots(33))
        );
        args.truncate(6 + 30);
        args.push(mem([0u8; 17])); // 3 slots
        assert_eq!(
            try_call(never as *const c_void, &args),
            Err(AbiError::TooManyStackSlots(33))
        );
        let huge = vec![0u8; 1 << 20];
        let args = [(ArgClass::Memory { size: 1 << 20 }, huge)];
        assert_eq!(
            try_call(never as *const c_void, &args),
            Err(AbiError::TooManyStackSlots(1 << 17))
        );
    }

    #[test]
    fn wrong_sizes() {
        let f = never as *const c_void;
        let wrong = |index, expected, got| {
            Err(AbiError::WrongSize {
                index,
                expected,
                got,
            })
        };
        assert_eq!(try_call(f, &[(ArgClass::Integer, vec![])]), wrong(0, 8, 0));
        assert_eq!(try_call(f, &[int(1u64), int(2u128)]), wrong(1, 8, 16));
        assert_eq!(try_call(f, &[(ArgClass::Sse, vec![0; 9])]), wrong(0, 8, 9));
        assert_eq!(try_call(f, &[small(1u64, &[I, I])]), wrong(0, 16, 8));
        assert_eq!(try_call(f, &[small([0u8; 17], &[I, S])]), wrong(0, 16, 17));
        assert_eq!(try_call(f, &[small(1u128, &[I])]), wrong(0, 8, 16));
        let short = (ArgClass::Memory { size: 24 }, vec![0; 23]);
        assert_eq!(try_call(f, &[int(0u8), short]), wrong(1, 24, 23));
        for classes in [vec![], vec![I, I, I]] {
            let n = classes.len();
            let args = [(ArgClass::Small(classes), vec![0; 8])];
            let bad = AbiError::BadSmall {
                index: 0,
                eightbytes: n,
            };
            assert_eq!(try_call(f, &args), Err(bad));
        }
    }

    #[test]
    fn messages() {
        let wrong = AbiError::WrongSize {
            index: 2,
            expected: 24,
            got: 23,
        };
        assert_eq!(wrong.to_string(), "argument 2: expected 24 bytes, got 23");
        assert_eq!(AbiError::Unsupported.to_string(), "only x86-64 Linux");
        assert!(AbiError::TooManyStackSlots(40).to_string().contains("40"));
    }
}
