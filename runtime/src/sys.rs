//! The few system interfaces the runtime uses, wrapped so that they never
//! panic, never block without bound and never fault: `errno` kept for the
//! caller, whole-buffer writes to a descriptor, a futex to wait on, and a
//! read of memory that may not be mapped.

use std::ffi::c_void;
use std::sync::atomic::AtomicI32;

/// The calling thread's `errno`.
pub(crate) fn errno() -> i32 {
    // SAFETY: `__errno_location` returns the thread's own errno slot.
    unsafe { *libc::__errno_location() }
}

/// Restores the caller's `errno` when dropped: everything the shim does
/// between a call's entry and its target (loading, tracing, diagnostics)
/// leaves `errno` as the caller and the target left it.
pub(crate) struct ErrnoGuard(i32);

impl ErrnoGuard {
    pub(crate) fn new() -> Self {
        ErrnoGuard(errno())
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        // SAFETY: as in `errno`.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

/// Writes all of `bytes` to `fd` with `write(2)`, retrying after signals
/// and short writes; the error number on failure. One call writes a whole
/// line, so lines from several threads never interleave (`O_APPEND` files,
/// and pipes up to `PIPE_BUF`).
pub(crate) fn write_all(fd: i32, mut bytes: &[u8]) -> Result<(), i32> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live buffer of `bytes.len()` bytes.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            match errno() {
                libc::EINTR => continue,
                e => return Err(e),
            }
        }
        if n == 0 {
            return Err(libc::EIO);
        }
        bytes = bytes.get(n as usize..).unwrap_or(&[]);
    }
    Ok(())
}

/// The text of an error number (`No space left on device`).
pub(crate) fn strerror(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

/// Waits until `word` no longer holds `expected`, or `timeout_ms` passed,
/// or a signal came: the caller re-checks in a loop.
pub(crate) fn futex_wait(word: &AtomicI32, expected: i32, timeout_ms: i64) {
    let timeout = libc::timespec {
        tv_sec: timeout_ms / 1000,
        tv_nsec: (timeout_ms % 1000) * 1_000_000,
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAIT only reads it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &timeout as *const libc::timespec,
        );
    }
}

/// Wakes every thread waiting on `word`.
pub(crate) fn futex_wake_all(word: &AtomicI32) {
    // SAFETY: as in `futex_wait`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// A chunk of memory never straddles a 4096-byte boundary, so that it lies
/// in one page whatever the page size.
const CHUNK: usize = 4096;

/// Copies the bytes at `addr` into `buf` up to and including the first NUL,
/// or until `buf` is full, without ever faulting: memory that is not mapped
/// or not readable ends the copy. Returns how many bytes were copied. It
/// reads page by page and stops at the NUL's page: no page beyond the
/// string's end is touched.
///
/// `process_vm_readv(2)` on this process does the reading, so an unmapped
/// address is an `EFAULT`, not a `SIGSEGV`. Where that call is not allowed
/// (seccomp), nothing is read and the caller shows the address only.
pub(crate) fn read_c_string(addr: usize, buf: &mut [u8]) -> usize {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut done = 0;
    while done < buf.len() {
        let at = addr.wrapping_add(done);
        let in_chunk = CHUNK - at % CHUNK;
        let want = in_chunk.min(buf.len() - done);
        let Some(dest) = buf.get_mut(done..done + want) else {
            break;
        };
        let local = libc::iovec {
            iov_base: dest.as_mut_ptr().cast::<c_void>(),
            iov_len: want,
        };
        let remote = libc::iovec {
            iov_base: at as *mut c_void,
            iov_len: want,
        };
        // SAFETY: `local` is our own writable buffer; the kernel checks `remote`.
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        if n <= 0 {
            break;
        }
        let n = n as usize;
        if let Some(nul) = dest.iter().take(n).position(|b| *b == 0) {
            return done + nul + 1;
        }
        done += n;
        if n < want {
            break;
        }
    }
    done
}

/// Copies `buf.len()` bytes from `addr` in this process into `buf`, without
/// ever faulting (as [`read_c_string`]); `false` when any of them cannot be
/// read, and nothing should be shown.
pub(crate) fn read_bytes(addr: usize, buf: &mut [u8]) -> bool {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<c_void>(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` is our own writable buffer; the kernel checks `remote`.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    usize::try_from(n).is_ok_and(|n| n == buf.len())
}

/// The private stack the first call's loading runs on: as much as glibc
/// gives a new thread by default, reserved but not committed (only the
/// pages the real library's constructors touch are ever backed).
const LOADING_STACK_BYTES: usize = 8 << 20;

/// Runs `f` on a private stack of [`LOADING_STACK_BYTES`] below a guard
/// page, and unmaps it after; on the caller's stack when it cannot be mapped.
///
/// The first call of a function loads the real library on whatever thread
/// makes it, and `dlopen` runs the library's constructors there: a host
/// thread created with a small stack (16 KiB, `PTHREAD_STACK_MIN`) that
/// could make the call directly would overflow when the shim's loading adds
/// its own frames and the lazy entry's vector save area. On this stack the
/// loading costs the caller's stack only those and a few words. A debugger's
/// backtrace taken during the loading stops at the switch.
pub(crate) fn on_loading_stack(f: &mut dyn FnMut()) {
    #[cfg(target_arch = "x86_64")]
    {
        const GUARD: usize = 64 * 1024;
        let total = LOADING_STACK_BYTES + GUARD;
        // SAFETY: a fresh private anonymous mapping, owned here.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base != libc::MAP_FAILED {
            // An overflow faults on the guard instead of writing below it.
            // SAFETY: the lowest GUARD bytes of our own mapping.
            unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) };
            let top = (base as usize + total) & !15;
            extern "C" fn call(f: *mut c_void) {
                // SAFETY: `f` is the `&mut &mut dyn FnMut()` passed below,
                // alive for the whole call.
                let f = unsafe { &mut *f.cast::<&mut dyn FnMut()>() };
                f();
            }
            let mut f = f;
            // SAFETY: `top` is the 16-byte aligned end of a writable
            // mapping, so the callee starts with the ABI's alignment; r12
            // (callee-saved, so kept by `call`) holds the caller's stack
            // pointer across it, and every caller-saved register is
            // declared clobbered.
            unsafe {
                core::arch::asm!(
                    "mov r12, rsp",
                    "mov rsp, {top}",
                    "call {call}",
                    "mov rsp, r12",
                    top = in(reg) top,
                    call = in(reg) call as extern "C" fn(*mut c_void),
                    in("rdi") (&mut f as *mut &mut dyn FnMut()).cast::<c_void>(),
                    out("r12") _,
                    clobber_abi("C"),
                );
                libc::munmap(base, total);
            }
            return;
        }
    }
    f();
}
