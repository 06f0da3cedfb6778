//! The remote GPU's client policy: every function with typed parameters
//! hands the addresses of its arguments to the shim's runtime
//! (`Shim::remote_call`), which sends the call to the GPU server through
//! the process's one client library and returns its return register. The
//! client library knows, from the manifests' plans, what crosses the wire
//! for each parameter; the generated code knows nothing but the
//! function's slot.

use proc_macro2::TokenStream;
use quote::quote;

use super::plan::{Emitted, PolicyContext, PolicyEmitter};
use crate::manifest::TypeDef;
use crate::view::{Export, LibraryMajor};

/// Sends every call to the GPU server ([`super::ShimBuild::remote`]).
#[derive(Debug)]
pub struct RemotePolicy {
    /// The CUDA major the shim is for.
    pub major: u32,
}

impl PolicyEmitter for RemotePolicy {
    fn describe(&self) -> String {
        "sent to the GPU server".into()
    }

    fn emit(&self, cx: &PolicyContext) -> Emitted {
        let name = quote::format_ident!("{}", cx.export.name);
        let (params, args, returns) = (&cx.params, &cx.args, &cx.returns);
        let (major, index) = (self.major, cx.index);
        let count = args.len();
        let doc = format!(" `{}`, sent to the GPU server.", cx.export.proto);
        let ret = if cx.export.proto.returns.is_void() {
            quote!(let _ = __r;)
        } else {
            // Only the return type's own bytes of the register (at most 8:
            // larger returns are failed, see `needs_fail`).
            quote!(unsafe { ::core::mem::transmute_copy(&__r) })
        };
        let items: TokenStream = quote! {
            #[doc = #doc]
            #[allow(clippy::all, non_snake_case, unused_unsafe)]
            pub unsafe extern "C" fn #name(#(#params),*) #returns {
                let __args: [*const u8; #count] = [#((&raw const #args).cast::<u8>()),*];
                let __r = super::SHIM.remote_call(#major, #index, &__args);
                #ret
            }
        };
        Emitted {
            items,
            target: Some(quote!(#name)),
        }
    }
}

/// Whether a remote client cannot send `f` and fails it instead: its
/// parameters are unknown (`(...)`), or it returns what a register of 8
/// bytes does not hold (a struct of more, a float).
pub fn needs_fail(view: &LibraryMajor, f: &Export) -> bool {
    if f.proto.unknown_params {
        return true;
    }
    let returns = view.resolve(&f.proto.returns);
    if returns.is_pointer() || returns.is_void() {
        return false;
    }
    match view.facts.types.get(&returns.base) {
        Some(TypeDef::Aggregate(layout)) => layout.size > 8,
        _ => matches!(returns.base.as_str(), "float" | "double"),
    }
}
