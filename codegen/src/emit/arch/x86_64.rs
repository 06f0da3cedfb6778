//! x86-64 (System V): `jmp [rip + slot]` trampolines, and a lazy entry that
//! saves the six integer and eight vector argument registers, `rax` (the
//! vector count of variadic calls) and `r11` (the slot index).

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

    fn lazy_entry(&self, name: &Ident, init: &TokenStream, slots: &TokenStream) -> TokenStream {
        quote! {
            /// Saves the argument registers, initialises the shim, restores
            /// them and retries the call through slot `r11`.
            #[unsafe(naked)]
            pub(super) unsafe extern "C" fn #name() {
                ::core::arch::naked_asm!(
                    "push rbp",
                    "mov rbp, rsp",
                    "sub rsp, 192",
                    "mov [rsp], rdi",
                    "mov [rsp + 8], rsi",
                    "mov [rsp + 16], rdx",
                    "mov [rsp + 24], rcx",
                    "mov [rsp + 32], r8",
                    "mov [rsp + 40], r9",
                    "mov [rsp + 48], rax",
                    "mov [rsp + 56], r11",
                    "movdqu [rsp + 64], xmm0",
                    "movdqu [rsp + 80], xmm1",
                    "movdqu [rsp + 96], xmm2",
                    "movdqu [rsp + 112], xmm3",
                    "movdqu [rsp + 128], xmm4",
                    "movdqu [rsp + 144], xmm5",
                    "movdqu [rsp + 160], xmm6",
                    "movdqu [rsp + 176], xmm7",
                    "call {init}",
                    "mov rdi, [rsp]",
                    "mov rsi, [rsp + 8]",
                    "mov rdx, [rsp + 16]",
                    "mov rcx, [rsp + 24]",
                    "mov r8, [rsp + 32]",
                    "mov r9, [rsp + 40]",
                    "mov rax, [rsp + 48]",
                    "mov r11, [rsp + 56]",
                    "movdqu xmm0, [rsp + 64]",
                    "movdqu xmm1, [rsp + 80]",
                    "movdqu xmm2, [rsp + 96]",
                    "movdqu xmm3, [rsp + 112]",
                    "movdqu xmm4, [rsp + 128]",
                    "movdqu xmm5, [rsp + 144]",
                    "movdqu xmm6, [rsp + 160]",
                    "movdqu xmm7, [rsp + 176]",
                    "mov rsp, rbp",
                    "pop rbp",
                    "lea r10, [rip + {slots}]",
                    "jmp qword ptr [r10 + r11 * 8]",
                    init = sym #init,
                    slots = sym #slots,
                )
            }
        }
    }
}
