//! x86-64 (System V): `jmp [rip + slot]` trampolines, and a lazy entry that
//! saves the six integer argument registers, `rax` (the vector count of
//! variadic calls) and the whole vector state: with `xsave` (x87, SSE, AVX
//! and AVX-512 components: every bit of `ymm`/`zmm`, the mask registers) where
//! the OS enabled it, else `fxsave`. Saving only `xmm0`–`xmm7` is not enough:
//! loading calls glibc, whose AVX routines end with `vzeroupper`, and a
//! first call would then reach its target with the upper halves zeroed.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::Arch;

/// The x86-64 assembly.
pub struct X86_64;

impl Arch for X86_64 {
    fn trampoline(
        &self,
        name: &Ident,
        version_node: Option<&str>,
        slots: &TokenStream,
        index: usize,
    ) -> TokenStream {
        let offset = index * 8;
        // The directive sits in the function's own asm so that it lands in
        // the object file that defines the symbol: in a global_asm! block,
        // rustc may put it in another codegen unit, where it versions a
        // reference instead and the export silently stays unversioned.
        // The symbol's name: a keyword's raw identifier (`r#match`) without `r#`.
        let name = syn::ext::IdentExt::unraw(name);
        let symver = version_node
            .map(|node| format!(".symver {name}, {name}@@@{node}"))
            .unwrap_or_default();
        quote! {
            ::core::arch::naked_asm!(#symver, "jmp qword ptr [rip + {slots} + {offset}]", slots = sym #slots, offset = const #offset)
        }
    }

    fn lazy_stub(&self, stub: &Ident, index: usize, entry: &TokenStream) -> TokenStream {
        let index = index as u32;
        quote! {
            #[unsafe(naked)]
            pub(super) unsafe extern "C" fn #stub() {
                ::core::arch::naked_asm!("mov r11d, {index}", "jmp {entry}", index = const #index, entry = sym #entry)
            }
        }
    }

    fn lazy_entry(&self, name: &Ident, init: &TokenStream) -> TokenStream {
        quote! {
            /// Saves the argument registers and the vector state, asks the
            /// runtime where call `r11` goes (initialising the shim once),
            /// restores everything and jumps there.
            #[unsafe(naked)]
            pub(super) unsafe extern "C" fn #name() {
                ::core::arch::naked_asm!(
                    "push rbp",
                    "mov rbp, rsp",
                    "push rdi",
                    "push rsi",
                    "push rdx",
                    "push rcx",
                    "push r8",
                    "push r9",
                    "push rax",
                    "push r11",
                    // cpuid clobbers rbx, which is callee-saved.
                    "push rbx",
                    "mov eax, 1",
                    "cpuid",
                    // CPUID.1:ECX.OSXSAVE: the OS manages the state with xsave.
                    "bt ecx, 27",
                    "jnc 2f",
                    // CPUID.(EAX=0xD, ECX=0):EBX: the save area's size for the enabled components.
                    "mov eax, 0xd",
                    "xor ecx, ecx",
                    "cpuid",
                    "sub rsp, rbx",
                    "and rsp, -64",
                    // xsave writes only XSTATE_BV of the header; the rest must be zero for xrstor.
                    "xor eax, eax",
                    "mov [rsp + 512], rax",
                    "mov [rsp + 520], rax",
                    "mov [rsp + 528], rax",
                    "mov [rsp + 536], rax",
                    "mov [rsp + 544], rax",
                    "mov [rsp + 552], rax",
                    "mov [rsp + 560], rax",
                    "mov [rsp + 568], rax",
                    // x87, SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM.
                    "mov eax, 0xe7",
                    "xor edx, edx",
                    "xsave [rsp]",
                    "mov edi, [rbp - 64]",
                    "call {init}",
                    "mov r11, rax",
                    "mov eax, 0xe7",
                    "xor edx, edx",
                    "xrstor [rsp]",
                    "jmp 3f",
                    "2:",
                    "sub rsp, 512",
                    "and rsp, -16",
                    "fxsave [rsp]",
                    "mov edi, [rbp - 64]",
                    "call {init}",
                    "mov r11, rax",
                    "fxrstor [rsp]",
                    "3:",
                    "lea rsp, [rbp - 72]",
                    "pop rbx",
                    // The slot index is not restored: r11 holds the target.
                    "add rsp, 8",
                    "pop rax",
                    "pop r9",
                    "pop r8",
                    "pop rcx",
                    "pop rdx",
                    "pop rsi",
                    "pop rdi",
                    "pop rbp",
                    "jmp r11",
                    init = sym #init,
                )
            }
        }
    }

    fn fallback_stride(&self) -> usize {
        16
    }

    fn fallback_stubs(
        &self,
        name: &Ident,
        entry: &TokenStream,
        typed: &[Option<TokenStream>],
    ) -> TokenStream {
        // `mov esi, imm32` (5 bytes) and `jmp rel32` (5), or a `jmp rel32`
        // alone, each padded to 16 bytes: stub `i` is at `name + 16 * i`.
        // The first argument (rdi) stays: a `cudaGetErrorName`'s fallback
        // answers from it.
        let mut lines: Vec<String> = Vec::new();
        let mut operands: Vec<TokenStream> = Vec::new();
        for (i, t) in typed.iter().enumerate() {
            lines.push(".balign 16".into());
            match t {
                Some(path) => {
                    let op = quote::format_ident!("t{}", i);
                    lines.push(format!("jmp {{{op}}}"));
                    operands.push(quote!(#op = sym #path));
                }
                None => {
                    lines.push(format!("mov esi, {i}"));
                    lines.push("jmp {entry}".into());
                }
            }
        }
        // A stub that jumps to the entry names it: otherwise the operand
        // would be unused, which the assembler macro refuses; and an empty
        // table still needs one instruction to be a function.
        let entry_operand = typed
            .iter()
            .any(Option::is_none)
            .then(|| quote!(entry = sym #entry,));
        if lines.is_empty() {
            lines.push("ud2".into());
        }
        quote! {
            /// The fallback stubs, 16 bytes apart, in slot order.
            #[unsafe(naked)]
            pub(super) unsafe extern "C" fn #name() {
                ::core::arch::naked_asm!(#(#lines,)* #entry_operand #(#operands),*)
            }
        }
    }

    fn shim_note(&self) -> TokenStream {
        // The note's name, type and descriptor are what the runtime looks
        // for (cudastub_runtime::SHIM_NOTE_NAME, SHIM_NOTE_TYPE). "R"
        // (SHF_GNU_RETAIN) keeps the unreferenced section from --gc-sections.
        quote! {
            ::core::arch::global_asm!(
                ".pushsection .note.cudastub, \"aR\", @note",
                ".balign 4",
                ".long 9",
                ".long 4",
                ".long 1",
                ".asciz \"cudastub\"",
                ".balign 4",
                ".long 1",
                ".popsection",
            );
        }
    }
}
