//! The Rust source of a forwarding shim for one major, and the `build.rs`
//! glue that links it as a versioned shared library.
//!
//! What is generated, per function `i` of the major:
//! - an exported naked trampoline, `jmp [rip + SLOTS + 8*i]`: one indirect
//!   jump, whatever the signature (by-value `dim3`, 64-byte IPC handles
//!   passed in memory, struct returns all pass through untouched);
//! - a `.symver NAME, NAME@@@NODE` directive, inside the trampoline's own
//!   asm, that gives the export its default version. rustc hands the linker its own anonymous version
//!   script; the node-only script written here plus these directives is the
//!   combination seen to produce `NAME@@NODE` (see cuda-facts.md). Tests read
//!   the ELF file to prove it;
//! - a lazy stub, the slot's initial value: it loads the real library once
//!   (all argument registers saved) and retries through the slot;
//! - a typed fallback, installed when the real library or the function is
//!   missing: it reports once and returns the prototype's failure value.
//!
//! The runtime (loading, `dlvsym`, diagnostics) is the template
//! `templates/runtime.rs`, emitted into the same file.

use std::path::{Path, PathBuf};

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::generated_banner;
use super::rust_types::{RustNames, field_ident};
use crate::ctype::{CType, Prototype};
use crate::manifest::{Manifest, TypeDef};

/// The runtime every generated shim carries.
const RUNTIME_TEMPLATE: &str = include_str!("../../templates/runtime.rs");

/// Generates the complete Rust source of a forwarding shim for `major`.
pub fn source(m: &Manifest, major: u32) -> Result<String, String> {
    let info = m.major(major)?;
    let names = RustNames::new(info);
    let functions: Vec<_> = m.functions_of(major).collect();
    let count = functions.len();
    let node = &info.version_node;

    let mut trampolines = Vec::new();
    let mut lazy_stubs = Vec::new();
    let mut fallbacks = Vec::new();
    let mut prototypes = Vec::new();
    let mut c_names = Vec::new();
    let mut lazy_refs = Vec::new();
    let mut fallback_refs = Vec::new();
    for (i, (f, fm)) in functions.iter().enumerate() {
        let name = format_ident!("{}", f.name);
        let lazy = format_ident!("lazy_{}", i);
        let offset = i * 8;
        // The directive sits in the function's own asm so that it lands in the
        // object file that defines the symbol: in a global_asm! block, rustc
        // may put it in another codegen unit, where it versions a reference
        // instead and the export silently stays unversioned.
        let symver_line = format!(".symver {0}, {0}@@@{node}", f.name);
        let doc = format!(" `{}`", fm.proto);
        trampolines.push(quote! {
            #[doc = #doc]
            #[unsafe(naked)]
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn #name() {
                ::core::arch::naked_asm!(#symver_line, "jmp qword ptr [rip + {slots} + {offset}]", slots = sym SLOTS, offset = const #offset)
            }
        });
        let index = i as u32;
        lazy_stubs.push(quote! {
            #[unsafe(naked)]
            pub(super) unsafe extern "C" fn #lazy() {
                ::core::arch::naked_asm!("mov r11d, {index}", "jmp {common}", index = const #index, common = sym runtime::resolve_and_retry)
            }
        });
        lazy_refs.push(quote!(::core::sync::atomic::AtomicPtr::new(#lazy as *mut ())));
        let fn_type = names.fn_type(&fm.proto);
        prototypes.push(quote! {
            #[doc = #doc]
            pub type #name = #fn_type;
        });
        let params = names.params(&fm.proto);
        let ret = names.return_type(&fm.proto.returns);
        let value = failure_value(m, major, &names, &fm.proto);
        fallbacks.push(quote! {
            #[allow(unused_variables)]
            pub unsafe extern "C" fn #name(#(#params),*) #ret {
                let failure = super::runtime::unavailable(#index);
                #value
            }
        });
        fallback_refs.push(quote!(fallbacks::#name as *const ()));
        let c_name =
            Literal::c_string(&std::ffi::CString::new(f.name.as_str()).map_err(|e| e.to_string())?);
        c_names.push(quote!(#c_name));
    }

    let types = names.types_module();
    let soname = &info.soname;
    let node_c =
        Literal::c_string(&std::ffi::CString::new(node.as_str()).map_err(|e| e.to_string())?);
    let library = &m.library.name;
    let status_names = status_names(m, major);
    let status_entries = status_names.iter().map(|(v, n)| {
        let c = Literal::c_string(&std::ffi::CString::new(n.as_str()).unwrap_or_default());
        quote!((#v, #c))
    });
    let tokens = quote! {
        #types

        /// The typed prototype of every export, for code that calls or implements them.
        #[allow(non_camel_case_types, non_snake_case, dead_code, clippy::all)]
        pub mod prototypes {
            use super::types;
            #(#prototypes)*
        }

        /// The major this shim was generated for.
        pub const MAJOR: u32 = #major;
        /// The soname the shim is linked with.
        pub const SONAME: &str = #soname;
        /// The library's short name, for messages.
        pub const LIBRARY: &str = #library;
        /// The version node every export carries.
        pub const VERSION_NODE: &::core::ffi::CStr = #node_c;
        /// The number of exports.
        pub const FUNCTION_COUNT: usize = #count;
        /// The exports' names, in slot order.
        pub static NAMES: [&::core::ffi::CStr; FUNCTION_COUNT] = [#(#c_names),*];
        /// Known status values and their names, for messages.
        pub static STATUS_NAMES: &[(i64, &::core::ffi::CStr)] = &[#(#status_entries),*];

        /// Where each trampoline jumps: first a lazy stub, then the real function or a fallback.
        static SLOTS: [::core::sync::atomic::AtomicPtr<()>; FUNCTION_COUNT] = [#(#lazy_refs),*];

        /// The typed fallbacks, in slot order.
        static FALLBACKS: [runtime::CodePtr; FUNCTION_COUNT] = [#(runtime::CodePtr(#fallback_refs)),*];

        /// Exported trampolines: one indirect jump each.
        #[allow(non_snake_case, clippy::missing_safety_doc)]
        pub mod exports {
            use super::SLOTS;
            #(#trampolines)*
        }

        #[allow(non_snake_case, clippy::missing_safety_doc)]
        mod lazy {
            use super::runtime;
            #(#lazy_stubs)*
        }
        use lazy::*;

        /// Typed stand-ins for functions that cannot be forwarded.
        #[allow(non_snake_case, clippy::missing_safety_doc, clippy::all)]
        pub mod fallbacks {
            use super::types;
            #(#fallbacks)*
        }
    };
    let file = syn::parse2::<syn::File>(tokens)
        .map_err(|e| format!("generated code does not parse: {e}"))?;
    let mut out = generated_banner("//");
    out.push_str(&prettyplease::unparse(&file));
    out.push_str("\nmod runtime {\n");
    out.push_str(RUNTIME_TEMPLATE);
    out.push_str("}\n");
    Ok(out)
}

/// The statement a fallback ends with: the failure value of its return type.
fn failure_value(m: &Manifest, major: u32, names: &RustNames, proto: &Prototype) -> TokenStream {
    let returns = &proto.returns;
    if returns.is_void() {
        return quote!(let _ = failure;);
    }
    if let Some(status) = &m.library.status
        && returns.base == status.type_name
        && returns.pointers.is_empty()
    {
        let lib = format_ident!("{}", status.library_missing);
        let sym = format_ident!("{}", status.symbol_missing);
        return quote! {
            match failure {
                super::runtime::Failure::LibraryMissing => types::#lib,
                super::runtime::Failure::SymbolMissing => types::#sym,
            }
        };
    }
    let resolved = m.resolve(major, returns);
    // `const char *f(status)` describes a status (cudaGetErrorName,
    // cudaGetErrorString): the status's own name is a valid answer.
    if let (true, Some(status), [param]) = (
        resolved.is_c_string(),
        &m.library.status,
        proto.params.as_slice(),
    ) && param.ty.base == status.type_name
        && param.ty.pointers.is_empty()
    {
        let p = field_ident(&param.name);
        return quote! {
            let _ = failure;
            super::runtime::status_name(#p as i64).as_ptr()
        };
    }
    if resolved.is_c_string() {
        return quote! {
            let _ = failure;
            c"cudastub: the real library is unavailable; see the message on stderr".as_ptr()
        };
    }
    if resolved.is_pointer() {
        return quote!(let _ = failure; ::core::ptr::null_mut());
    }
    let ty = names.rust_type(returns);
    let is_aggregate = matches!(
        m.majors[&major].types.get(&resolved.base),
        Some(TypeDef::Aggregate(_))
    );
    if is_aggregate {
        // All-zero is a valid value of every C aggregate.
        return quote!(let _ = failure; unsafe { ::core::mem::zeroed::<#ty>() });
    }
    quote!(let _ = failure; 0 as #ty)
}

/// The values of the status enum, for diagnostics and tracing.
fn status_names(m: &Manifest, major: u32) -> Vec<(i64, String)> {
    let Some(status) = &m.library.status else {
        return Vec::new();
    };
    let resolved = m.resolve(major, &CType::named(status.type_name.clone()));
    match m
        .majors
        .get(&major)
        .and_then(|mj| mj.types.get(&resolved.base))
    {
        Some(TypeDef::Enum { values, .. }) => {
            let mut v: Vec<(i64, String)> = values.iter().map(|(n, v)| (*v, n.clone())).collect();
            v.sort();
            v
        }
        _ => Vec::new(),
    }
}

/// The node-only version script passed to the linker next to rustc's own.
pub fn node_script(m: &Manifest, major: u32) -> String {
    format!(
        "{}{} {{ local: *; }};\n",
        generated_banner("#"),
        m.library.version_node_of(major)
    )
}

/// Everything a shim's `build.rs` does, for the major given by the
/// `CUDASTUB_MAJOR` environment variable (else `default_major`):
/// generates `$OUT_DIR/cudastub_shim.rs`, writes the version script, and
/// prints the cargo directives (soname, version script, rerun triggers).
///
/// The crate includes the result with
/// `include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs"));`.
pub fn build(manifest_path: &Path, default_major: u32) -> Result<PathBuf, String> {
    println!("cargo:rerun-if-changed={}", manifest_path.display());
    println!("cargo:rerun-if-env-changed=CUDASTUB_MAJOR");
    let major = match std::env::var("CUDASTUB_MAJOR") {
        Ok(v) => v
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("CUDASTUB_MAJOR={v} is not a major version number"))?,
        Err(_) => default_major,
    };
    let m = crate::manifest::load(manifest_path).map_err(|e| e.to_string())?;
    let out_dir = PathBuf::from(
        std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set: call this from a build script")?,
    );
    let src = source(&m, major)?;
    let src_path = out_dir.join("cudastub_shim.rs");
    crate::manifest::write_atomic(&src_path, &src)
        .map_err(|e| format!("{}: {e}", src_path.display()))?;
    let script = out_dir.join(format!("{}.node.map", m.library.soname_of(major)));
    crate::manifest::write_atomic(&script, &node_script(&m, major))
        .map_err(|e| format!("{}: {e}", script.display()))?;
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        script.display()
    );
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,-soname,{}",
        m.library.soname_of(major)
    );
    println!("cargo:rustc-env=CUDASTUB_MAJOR={major}");
    Ok(src_path)
}
