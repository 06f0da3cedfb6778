//! The per-architecture assembly of a shim, behind one seam.
//!
//! Three pieces of a shim cannot be written in Rust: the exported trampoline
//! (one indirect jump through its slot, whatever the signature), the lazy
//! stub each slot starts at, and the common entry those stubs jump to, which
//! saves every argument register, initialises the shim and retries the
//! call. A fourth is the ELF note that marks every shim, in the assembler's
//! syntax. An architecture is one file here implementing [`Arch`]; the shim
//! emitter only asks for these pieces by name. x86-64 is the only one today.

use proc_macro2::{Ident, TokenStream};

mod x86_64;

/// The assembly pieces of one architecture.
pub trait Arch {
    /// The exported trampoline `name`: jumps through `slots[index]`. When
    /// `version_node` is given, the export gets the default version
    /// `name@@node` by a `.symver` directive inside the trampoline's own asm.
    fn trampoline(
        &self,
        name: &Ident,
        version_node: Option<&str>,
        slots: &TokenStream,
        index: usize,
    ) -> TokenStream;

    /// The lazy stub `stub` of slot `index`: passes the index to `entry`.
    fn lazy_stub(&self, stub: &Ident, index: usize, entry: &TokenStream) -> TokenStream;

    /// The common entry `name` of the lazy stubs: saves every argument
    /// register and the whole vector state, calls `init` (an
    /// `extern "C" fn(index: u32) -> *const ()` returning where the call
    /// goes), restores everything and jumps there.
    fn lazy_entry(&self, name: &Ident, init: &TokenStream) -> TokenStream;

    /// The bytes between two fallback stubs (see [`Arch::fallback_stubs`]).
    fn fallback_stride(&self) -> usize;

    /// The naked function `name` holding one fallback stub per slot, each
    /// [`Arch::fallback_stride`] bytes after the previous one, so that the
    /// runtime finds stub `i` by address and no table of them is needed.
    /// Stub `i` passes its index to `entry` (an
    /// `extern "C" fn(first_argument: u64, index: u32) -> u64`, with the
    /// call's first argument kept in place), or, where `typed[i]` is given,
    /// jumps to that typed fallback instead.
    fn fallback_stubs(
        &self,
        name: &Ident,
        entry: &TokenStream,
        typed: &[Option<TokenStream>],
    ) -> TokenStream;

    /// An item placing the ELF note that marks a cudastub shim (section
    /// `.note.cudastub`, name `cudastub`, type 1, a 4-byte descriptor 1) in
    /// the library, so that another shim never takes it for the real
    /// library.
    fn shim_note(&self) -> TokenStream;
}

/// The architecture named as in `CARGO_CFG_TARGET_ARCH` (`x86_64`).
pub fn for_target(arch: &str) -> Result<&'static dyn Arch, String> {
    match arch {
        "x86_64" => Ok(&x86_64::X86_64),
        other => Err(format!(
            "cudastub cannot generate shims for target architecture `{other}` (supported: x86_64); \
             an architecture is one file in codegen/src/emit/arch/"
        )),
    }
}

/// The architecture a build script is building for (`CARGO_CFG_TARGET_ARCH`),
/// else the one this code runs on.
pub fn current() -> Result<&'static dyn Arch, String> {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH")
        .unwrap_or_else(|_| std::env::consts::ARCH.to_string());
    for_target(&arch)
}
