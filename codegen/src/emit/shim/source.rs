//! The Rust source of a shim for one (library, major).
//!
//! What is generated, per function `i` (see `FunctionItems`):
//! - an exported naked trampoline that jumps through slot `i`, with the
//!   export's version given inside its own asm (see [`super::super::arch`]);
//! - a lazy stub, the slot's initial value: it initialises the shim once
//!   (argument registers and vector state saved) and continues to the target;
//! - the function's target, by its [`Policy`]: the real function, a Rust or
//!   C implementation, or a stub returning a fixed status;
//! - a typed fallback, used when the real library or the function is
//!   missing: it reports once and returns the prototype's failure value;
//! - a tracing wrapper, installed in the slot only when `CUDASTUB_TRACE` is set;
//! - typed callers `real::NAME` (the real function) and `via_shim::NAME`
//!   (through the slot), for implementations that call the library (only in
//!   a shim that implements something).
//!
//! The shim's state and logic live in the `cudastub-runtime` crate: the
//! generated code declares one `SHIM` static describing the library and its
//! tables, and calls its methods.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::super::arch::Arch;
use super::super::generated_banner;
use super::super::rust_types::{RustNames, field_ident};
use super::super::trace::TraceGen;
use super::plan::{C_PREFIX, Plan, Policy, rust_impl_name};
use crate::view::{Export, FailureValue, LibraryMajor};

/// Everything generated for one function, built in one place
/// ([`function_items`]) and laid out into modules and tables by [`source`].
struct FunctionItems {
    /// `exports::NAME`, the exported trampoline.
    trampoline: TokenStream,
    /// `lazy::lazy_i`.
    lazy_stub: TokenStream,
    /// `prototypes::NAME`, its function type (none when the parameters are unknown).
    prototype: Option<TokenStream>,
    /// `fallbacks::NAME`, a typed fallback, for a function whose failure
    /// value is all zero bytes of its return type (the others share the
    /// runtime's, through their fallback stub).
    fallback: Option<TokenStream>,
    /// How the runtime's fallback answers (`FailureValue::code`).
    failure_code: u8,
    /// Where the fallback stub jumps instead, for a function answered by an
    /// implementation when the real library is missing (`Policy::Fallback`).
    missing_target: Option<TokenStream>,
    /// `custom::…`, a custom policy's items.
    custom_items: Option<TokenStream>,
    /// `policy_fail::NAME`, for a `fail:` policy.
    fail_stub: Option<TokenStream>,
    /// `entry_points::NAME`, for a forwarded entry point (`cuGetProcAddress`).
    entry_wrapper: Option<TokenStream>,
    /// `implementations::IMPLEMENTS_NAME`, for a Rust implementation.
    impl_check: Option<TokenStream>,
    /// The C implementation's declaration, for a C implementation.
    c_decl: Option<TokenStream>,
    /// `per_thread::NAME`, for a per-thread variant answered by another
    /// variant's implementation with its stream mapped.
    per_thread: Option<TokenStream>,
    /// `real::NAME` (none when the parameters are unknown).
    real_caller: Option<TokenStream>,
    /// `via_shim::NAME` (none when the parameters are unknown).
    shim_caller: Option<TokenStream>,
    /// `tracers::NAME` (none when the parameters are unknown).
    tracer: Option<TokenStream>,
    /// Its entry in `TARGETS`.
    target: TokenStream,
    /// Its entry in `RETURNS_STATUS`.
    returns_status: bool,
    /// Whether it calls the real function (forwarded, or where the real
    /// library is present).
    forwards: bool,
}

/// What every function's items need to know about the shim.
struct Context<'a> {
    view: &'a LibraryMajor<'a>,
    plan: &'a Plan,
    arch: &'a dyn Arch,
    names: &'a RustNames<'a>,
    rust_module: syn::Path,
}

/// Generates the complete Rust source of a shim for `view` following `plan`.
pub fn source(view: &LibraryMajor, plan: &Plan, arch: &dyn Arch) -> Result<String, String> {
    plan.check(view).map_err(|e| e.join("\n"))?;
    let names = RustNames::new(view.facts);
    let cx = Context {
        view,
        plan,
        arch,
        names: &names,
        rust_module: syn::parse_str(&plan.rust_module)
            .map_err(|e| format!("rust module `{}`: {e}", plan.rust_module))?,
    };
    let mut tracer = TraceGen::new(view, &names);
    let items = view
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| function_items(&cx, &mut tracer, i, f))
        .collect::<Result<Vec<_>, _>>()?;

    let count = items.len();
    let trampolines = items.iter().map(|f| &f.trampoline);
    let lazy_stubs = items.iter().map(|f| &f.lazy_stub);
    let prototypes = items.iter().filter_map(|f| f.prototype.as_ref());
    let fallbacks = items.iter().filter_map(|f| f.fallback.as_ref());
    let custom_items = items.iter().filter_map(|f| f.custom_items.as_ref());
    let failure_codes = items.iter().map(|f| f.failure_code);
    let typed_fallbacks: Vec<Option<TokenStream>> = items
        .iter()
        .zip(&view.functions)
        .map(|(item, f)| {
            let name = field_ident(f.name);
            item.missing_target.clone().or_else(|| {
                item.fallback
                    .as_ref()
                    .map(|_| quote!(super::fallbacks::#name))
            })
        })
        .collect();
    let fallback_stubs = cx.arch.fallback_stubs(
        &format_ident!("fallback_stubs"),
        &quote!(super::glue::fallback),
        &typed_fallbacks,
    );
    let fallback_stride = cx.arch.fallback_stride();
    let fail_stubs = items.iter().filter_map(|f| f.fail_stub.as_ref());
    let entry_wrappers = items.iter().filter_map(|f| f.entry_wrapper.as_ref());
    let entry_refs = view.functions.iter().map(|f| {
        let name = field_ident(f.name);
        quote!(::cudastub_runtime::CodePtr(exports::#name as *const ()))
    });
    let impl_checks = items.iter().filter_map(|f| f.impl_check.as_ref());
    let per_thread = items.iter().filter_map(|f| f.per_thread.as_ref());
    let c_decls: Vec<_> = items.iter().filter_map(|f| f.c_decl.as_ref()).collect();
    let real_callers = items.iter().filter_map(|f| f.real_caller.as_ref());
    let shim_callers = items.iter().filter_map(|f| f.shim_caller.as_ref());
    let tracers = items.iter().filter_map(|f| f.tracer.as_ref());
    let targets = items.iter().map(|f| &f.target);
    let returns_status = items.iter().map(|f| f.returns_status);
    let lazy_refs = (0..count).map(|i| {
        let stub = format_ident!("lazy_{}", i);
        quote!(::core::sync::atomic::AtomicPtr::new(lazy::#stub as *mut ()))
    });
    let tracer_refs = view.functions.iter().map(|f| {
        let name = field_ident(f.name);
        if f.proto.unknown_params {
            quote!(::cudastub_runtime::CodePtr(::core::ptr::null()))
        } else {
            quote!(::cudastub_runtime::CodePtr(tracers::#name as *const ()))
        }
    });

    let types = names.types_module();
    let soname = &view.soname;
    let node_c = match &view.version_node {
        Some(node) => {
            let c = c_string(node)?;
            quote!(Some(#c))
        }
        None => quote!(None),
    };
    let library = view.library;
    let major = view.major;
    let release = view.facts.imported.last().cloned().unwrap_or_default();
    let search = view.search();
    let real_path_var = c_string(view.real_path_variable())?;
    let status_values: Vec<i64> = view
        .status
        .iter()
        .flat_map(|s| &s.values)
        .map(|(_, v)| *v)
        .collect();
    let status_names = c_string_table(view.status.iter().flat_map(|s| &s.values).map(|(n, _)| *n))?;
    let names = c_string_table(view.functions.iter().map(|f| f.name))?;
    // Only a library that hands out its own exports' addresses
    // (`cuGetProcAddress`) needs the table of them.
    let has_entry_points = view.functions.iter().any(|f| f.entry_point.is_some());
    let entry_refs: Vec<TokenStream> = if has_entry_points {
        entry_refs.collect()
    } else {
        Vec::new()
    };
    let entry_count = entry_refs.len();
    let status_missing = match &view.status {
        Some(s) => {
            let lib = format_ident!("{}", s.codes.library_missing);
            let sym = format_ident!("{}", s.codes.symbol_missing);
            quote!([types::#lib as i64, types::#sym as i64])
        }
        None => quote!([0, 0]),
    };
    let success = match &view.status {
        Some(s) => {
            let id = format_ident!("{}", s.codes.success);
            quote!(Some(types::#id as i64))
        }
        None => quote!(None),
    };
    let c_block = if c_decls.is_empty() {
        quote!()
    } else {
        quote! {
            /// The C implementations, from the crate's C sources (`cudastub_impl_NAME`).
            #[allow(non_snake_case, unused_imports, clippy::all)]
            pub mod c_implementations {
                use super::types;
                unsafe extern "C" {
                    #(#c_decls)*
                }
            }
        }
    };
    // The typed callers serve implementations; a shim that only forwards and
    // fails has no code to call them, and leaving them out halves its build.
    let implements = std::iter::once(&plan.default_policy)
        .chain(plan.policies.values())
        .any(|p| match p {
            Policy::Custom(c) => c.0.calls_real(),
            other => other.implements(),
        });
    let callers = if implements {
        quote! {
            /// The real library's functions, typed (loading it on first use).
            #[allow(non_snake_case, unused_imports, clippy::missing_safety_doc, clippy::all, dead_code)]
            pub mod real {
                use super::types;
                #(#real_callers)*
            }

            /// Every export called through the shim's own slot, typed.
            #[allow(non_snake_case, unused_imports, clippy::missing_safety_doc, clippy::all, dead_code)]
            pub mod via_shim {
                use super::types;
                #(#shim_callers)*
            }
        }
    } else {
        quote!()
    };
    let needs_real = implements || items.iter().any(|f| f.forwards);
    let data_objects = view
        .data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            data_object(
                i,
                &d.name,
                d.size_of(view.major),
                view.version_node.as_deref(),
            )
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mirror_data = view.manifest.library.mirror_data;
    // The mirrored data objects: in a versioned library each is reached
    // through a hidden alias of its assembly definition (`cudastub_data_N`).
    let mirrored: Vec<(usize, &crate::manifest::DataObject)> = if mirror_data {
        view.data
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, d)| d.size_of(view.major) > 0)
            .collect()
    } else {
        Vec::new()
    };
    let mirror_count = mirrored.len();
    let aliases: Vec<proc_macro2::Ident> = mirrored
        .iter()
        .filter(|_| view.version_node.is_some())
        .map(|(i, _)| format_ident!("cudastub_data_{}", i))
        .collect();
    let mirrors = mirrored
        .iter()
        .map(|(i, d)| {
            let name = c_string(&d.name)?;
            let size = d.size_of(view.major) as usize;
            let addr = if view.version_node.is_some() {
                let alias = format_ident!("cudastub_data_{}", i);
                quote!(&raw const data_aliases::#alias)
            } else {
                let ident = field_ident(&d.name);
                quote!((&raw const data::#ident).cast::<u8>())
            };
            Ok(quote!(::cudastub_runtime::DataMirror { name: #name, addr: #addr, size: #size }))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let eager_load = view.manifest.library.eager_load;
    let eager_init = eager_load.then(|| {
        quote! {
            /// `eager_load`: the real library is loaded with the shim, so that
            /// its constructors run (a plugin's registration).
            #[used]
            #[unsafe(link_section = ".init_array")]
            static EAGER_LOAD: extern "C" fn() = {
                extern "C" fn eager_load() {
                    SHIM.init();
                }
                eager_load
            };
        }
    });
    let mirror_table = quote! {
        /// The data objects filled from the real library (`mirror_data`).
        static DATA_MIRRORS: [::cudastub_runtime::DataMirror; #mirror_count] = [#(#mirrors),*];
        /// The hidden aliases of the assembly-defined data objects.
        #[allow(dead_code)]
        mod data_aliases {
            unsafe extern "C" {
                #(pub(super) static #aliases: u8;)*
            }
        }
    };
    let trace_tables = tracer.tables(count);
    let entry = format_ident!("lazy_entry");
    let lazy_entry = cx.arch.lazy_entry(&entry, &quote!(super::glue::init));
    let shim_note = cx.arch.shim_note();
    let tokens = quote! {
        #types

        /// The typed prototype of every export, for code that calls or implements them.
        #[allow(non_camel_case_types, non_snake_case, unused_imports, dead_code, clippy::all)]
        pub mod prototypes {
            use super::types;
            #(#prototypes)*
        }

        /// The major this shim was generated for.
        pub const MAJOR: u32 = #major;
        /// The newest release of the library the manifest's major was
        /// imported from (`12.9.79`): the one whose exports the shim has.
        pub const RELEASE: &str = #release;
        /// The soname the shim is linked with.
        pub const SONAME: &str = #soname;
        /// The library's short name, for messages.
        pub const LIBRARY: &str = #library;
        /// The number of exports.
        pub const FUNCTION_COUNT: usize = #count;
        /// The exports' names, in slot order.
        pub static NAMES: ::cudastub_runtime::CStrTable = #names;
        /// Which functions return the status type.
        pub static RETURNS_STATUS: [bool; FUNCTION_COUNT] = [#(#returns_status),*];

        /// Where each trampoline jumps: first a lazy stub, then the target (or its tracer).
        static SLOTS: [::core::sync::atomic::AtomicPtr<()>; FUNCTION_COUNT] = [#(#lazy_refs),*];
        /// How each function's fallback answers (`cudastub_runtime::failure`).
        static FAILURES: [u8; FUNCTION_COUNT] = [#(#failure_codes),*];
        /// Each function's target by policy; null means the real function.
        static TARGETS: [::cudastub_runtime::CodePtr; FUNCTION_COUNT] = [#(#targets),*];
        /// The tracing wrappers, in slot order.
        static TRACERS: [::cudastub_runtime::CodePtr; FUNCTION_COUNT] = [#(#tracer_refs),*];
        /// The exported trampolines, in slot order (what entry points hand out).
        static ENTRIES: [::cudastub_runtime::CodePtr; #entry_count] = [#(#entry_refs),*];

        /// The shim's run-time state (cudastub-runtime).
        /// The shim's per-function state (zero until the first call: `.bss`).
        static SHIM_TABLES: ::cudastub_runtime::ShimTables<FUNCTION_COUNT> = ::cudastub_runtime::ShimTables::new();

        pub static SHIM: ::cudastub_runtime::Shim<FUNCTION_COUNT> = ::cudastub_runtime::Shim::new(::cudastub_runtime::ShimSpec {
            soname: SONAME,
            version_node: #node_c,
            real_path_var: #real_path_var,
            search: &[#(#search),*],
            names: NAMES,
            status_values: &[#(#status_values),*],
            status_names: #status_names,
            status_success: #success,
            returns_status: &RETURNS_STATUS,
            slots: &SLOTS,
            fallback_stubs: ::cudastub_runtime::CodePtr(stubs::fallback_stubs as *const ()),
            fallback_stride: #fallback_stride,
            failures: &FAILURES,
            status_missing: #status_missing,
            targets: &TARGETS,
            tracers: &TRACERS,
            entries: &ENTRIES,
            trace_tables: &trace_tables::TRACE_TABLES,
            summary_at_exit: glue::summary_at_exit,
            needs_real: #needs_real,
            data: &DATA_MIRRORS,
            mirror_data: #mirror_data,
            eager_load: #eager_load,
        }, &SHIM_TABLES);
        #mirror_table
        #eager_init

        // Marks this library as a cudastub shim (cudastub_runtime::SHIM_NOTE_NAME).
        #shim_note

        /// The entry points the runtime and the lazy stubs need.
        mod glue {
            /// Loads the real library and fills the slots, once; returns
            /// where call `index` goes.
            pub(super) extern "C" fn init(index: u32) -> *const () {
                super::SHIM.lazy_target(index)
            }
            /// Prints the trace summary.
            pub(super) extern "C" fn summary_at_exit() {
                super::SHIM.print_summary();
            }
            /// Where the fallback stubs go: the failure value of function
            /// `index` (whose first argument, a status to name, is `first`).
            pub(super) extern "C" fn fallback(first: u64, index: u32) -> u64 {
                super::SHIM.fallback_value(index, first)
            }
        }

        /// Exported data objects: zero-filled variables of the real sizes (a
        /// variable cannot be forwarded; see the README).
        #[allow(non_upper_case_globals)]
        pub mod data {
            #(#data_objects)*
        }

        /// Exported trampolines: one indirect jump each.
        #[allow(non_snake_case, clippy::missing_safety_doc)]
        pub mod exports {
            use super::SLOTS;
            #(#trampolines)*
        }

        #[allow(non_snake_case, clippy::missing_safety_doc)]
        mod lazy {
            #lazy_entry
            #(#lazy_stubs)*
        }

        /// One stub per function, where its slot points when it cannot be
        /// forwarded (`Shim::fallback_value` answers).
        #[allow(clippy::missing_safety_doc)]
        mod stubs {
            #fallback_stubs
        }

        /// Items of the crate's own policies (`Policy::Custom`).
        #[allow(non_snake_case, unused_imports, clippy::missing_safety_doc, clippy::all, dead_code)]
        pub mod custom {
            use super::types;
            #(#custom_items)*
        }

        /// Typed stand-ins for functions that cannot be forwarded and
        /// return all-zero values (structs, numbers).
        #[allow(non_snake_case, unused_imports, clippy::missing_safety_doc, clippy::all)]
        pub mod fallbacks {
            use super::types;
            #(#fallbacks)*
        }

        /// Forwarded entry points (`cuGetProcAddress`): the real function,
        /// then the address it returns mapped to the shim's own export.
        #[allow(non_snake_case, unused_imports, clippy::missing_safety_doc, clippy::all)]
        pub mod entry_points {
            use super::types;
            #(#entry_wrappers)*
        }

        /// Stubs of functions whose policy is to fail.
        #[allow(non_snake_case, unused_imports, clippy::missing_safety_doc, clippy::all, dead_code)]
        pub mod policy_fail {
            use super::types;
            #(#fail_stubs)*
        }

        /// Compile-time proof that each Rust implementation has the manifest's prototype.
        #[allow(non_upper_case_globals, dead_code)]
        pub mod implementations {
            #(#impl_checks)*
        }

        /// Per-thread variants answered by the implementation of the variant
        /// they are the per-thread form of: the default stream (null) becomes
        /// the per-thread stream (0x2) before the call.
        #[allow(non_snake_case, unused_imports, clippy::missing_safety_doc, clippy::all)]
        pub mod per_thread {
            use super::types;
            #(#per_thread)*
        }

        #c_block

        #callers

        /// Tracing wrappers, installed in the slots only when tracing is on.
        #[allow(non_snake_case, unused_variables, unused_imports, clippy::missing_safety_doc, clippy::all)]
        pub mod tracers {
            use super::types;
            #(#tracers)*
        }

        /// Value tables and formatters the tracers decode arguments with.
        #[allow(non_snake_case, non_upper_case_globals, unused_imports, clippy::all, dead_code)]
        pub mod trace_tables {
            use super::types;
            #trace_tables
        }
    };
    let file = syn::parse2::<syn::File>(tokens)
        .map_err(|e| format!("generated code does not parse: {e}"))?;
    let mut out = generated_banner("//");
    out.push_str(&prettyplease::unparse(&file));
    Ok(out)
}

/// An exported variable of `size` bytes, aligned like the real one would be
/// (the largest of 8, 4, 2, 1 dividing its size) so that its symbol has
/// exactly the real `st_size`. In a versioned library it is defined in
/// assembly with its `.symver` beside it (a Rust static cannot carry a
/// version); size 0 is a bare `NOTYPE` label, as the linker's own
/// `__bss_start`, `_edata` and `_end` that some libraries export.
fn data_object(
    index: usize,
    name: &str,
    size: u64,
    version_node: Option<&str>,
) -> Result<TokenStream, String> {
    let ident = field_ident(name);
    let (element, width): (TokenStream, u64) = match size {
        s if s % 8 == 0 => (quote!(u64), 8),
        s if s % 4 == 0 => (quote!(u32), 4),
        s if s % 2 == 0 => (quote!(u16), 2),
        _ => (quote!(u8), 1),
    };
    if let Some(node) = version_node {
        let asm = if size == 0 {
            format!(
                ".pushsection .data.cudastub_labels,\"aw\",@progbits\n.globl {name}\n{name}:\n.symver {name}, {name}@@@{node}\n.popsection"
            )
        } else {
            format!(
                ".pushsection .bss.cudastub_data.{name},\"aw\",@nobits\n.p2align {align}\n.globl {name}\n.type {name}, @object\n.size {name}, {size}\n.globl cudastub_data_{index}\n.hidden cudastub_data_{index}\n{name}:\ncudastub_data_{index}:\n.zero {size}\n.symver {name}, {name}@@@{node}\n.popsection",
                align = width.trailing_zeros()
            )
        };
        return Ok(quote! {
            ::core::arch::global_asm!(#asm);
        });
    }
    if size == 0 {
        return Err(format!(
            "`{name}` is a label of 0 bytes in an unversioned library: only a versioned one can export it"
        ));
    }
    let len = Literal::usize_unsuffixed((size / width) as usize);
    let doc = format!(" `{name}`: {size} bytes.");
    Ok(quote! {
        #[doc = #doc]
        #[unsafe(no_mangle)]
        pub static #ident: ::cudastub_runtime::ExportedData<[#element; #len]> =
            ::cudastub_runtime::ExportedData::new([0; #len]);
    })
}

/// A `cudastub_runtime::CStrTable` of `strings`: one byte string, offsets.
fn c_string_table<'s>(strings: impl Iterator<Item = &'s str>) -> Result<TokenStream, String> {
    let mut text = Vec::new();
    let mut offsets = Vec::new();
    for s in strings {
        if s.contains('\0') {
            return Err(format!("`{s}` contains a NUL byte"));
        }
        offsets.push(text.len() as u32);
        text.extend_from_slice(s.as_bytes());
        text.push(0);
    }
    let text = Literal::byte_string(&text);
    Ok(quote!(::cudastub_runtime::CStrTable { text: #text, offsets: &[#(#offsets),*] }))
}

fn c_string(s: &str) -> Result<Literal, String> {
    std::ffi::CString::new(s)
        .map(|c| Literal::c_string(&c))
        .map_err(|e| format!("`{s}`: {e}"))
}

/// Builds every item of function `index`.
fn function_items(
    cx: &Context,
    tracer: &mut TraceGen,
    index: usize,
    f: &Export,
) -> Result<FunctionItems, String> {
    let names = cx.names;
    let name = field_ident(f.name);
    let index_u32 = index as u32;
    let proto = f.proto;
    // With unknown parameters, nothing typed is generated: the function is
    // forwarded untouched, and its fallback and fail stub take no arguments
    // (they only return a value, which is ABI-correct whatever was passed).
    let typed = !proto.unknown_params;
    let doc = format!(" `{proto}`");
    let params = names.params(proto);
    let ret = names.return_type(&proto.returns);
    let args: Vec<_> = proto.params.iter().map(|p| field_ident(&p.name)).collect();

    let jump = cx.arch.trampoline(
        &name,
        cx.view.version_node.as_deref(),
        &quote!(SLOTS),
        index,
    );
    let trampoline = quote! {
        #[doc = #doc]
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn #name() {
            #jump
        }
    };
    let lazy_stub = cx
        .arch
        .lazy_stub(&format_ident!("lazy_{}", index), index, &quote!(lazy_entry));
    let fn_type = names.fn_type(proto);
    let prototype = typed.then(|| {
        quote! {
            #[doc = #doc]
            pub type #name = #fn_type;
        }
    });

    let missing = failure(cx, f, |s| {
        let lib = format_ident!("{}", s.library_missing);
        let sym = format_ident!("{}", s.symbol_missing);
        quote! {
            match __failure {
                ::cudastub_runtime::Failure::LibraryMissing => types::#lib,
                ::cudastub_runtime::Failure::SymbolMissing => types::#sym,
            }
        }
    });
    let failure_code = match (&f.failure, &cx.view.status) {
        (FailureValue::Status, None) => FailureValue::Zero.code(),
        (other, _) => other.code(),
    };
    let fallback = (failure_code == FailureValue::Zero.code()).then(|| {
        quote! {
            #[allow(unused_variables)]
            pub unsafe extern "C" fn #name(#(#params),*) #ret {
                let __failure = super::SHIM.unavailable(#index_u32);
                #missing
            }
        }
    });

    let (mut fail_stub, mut impl_check, mut c_decl, mut entry_wrapper, mut per_thread) =
        (None, None, None, None, None);
    let (mut missing_target, mut custom_items) = (None, None);
    let mut forwards = matches!(cx.plan.policy(f.name), Policy::Forward | Policy::Fallback);
    let target = match cx.plan.policy(f.name) {
        Policy::Forward if typed && f.entry_point.is_some() => {
            let pointer = field_ident(f.entry_point.unwrap_or_default());
            entry_wrapper = Some(quote! {
                #[doc = #doc]
                /// Calls the real function, then hands out the shim's own entry
                /// for the export it returned (`Shim::own_entry`).
                pub unsafe extern "C" fn #name(#(#params),*) #ret {
                    // SAFETY: the real function has this prototype.
                    let __f: super::prototypes::#name = unsafe { ::core::mem::transmute(super::SHIM.real(#index_u32)) };
                    let __r = unsafe { __f(#(#args),*) };
                    if !#pointer.is_null() {
                        // SAFETY: the caller passed a writable `void **`.
                        unsafe { *#pointer = super::SHIM.own_entry(*#pointer) };
                    }
                    __r
                }
            });
            quote!(::cudastub_runtime::CodePtr(entry_points::#name as *const ()))
        }
        Policy::Forward => quote!(::cudastub_runtime::CodePtr(::core::ptr::null())),
        Policy::Fail(status) => {
            let code = format_ident!("{}", status);
            let value = failure(cx, f, |_| quote!(types::#code));
            fail_stub = Some(quote! {
                #[allow(unused_variables)]
                pub unsafe extern "C" fn #name(#(#params),*) #ret {
                    let __failure = super::SHIM.refused(#index_u32, #status);
                    #value
                }
            });
            quote!(::cudastub_runtime::CodePtr(policy_fail::#name as *const ()))
        }
        Policy::Rust => {
            let module = &cx.rust_module;
            let implementer = cx.plan.implementation_of(f.name);
            let rust_name = field_ident(&rust_impl_name(implementer));
            match per_thread_adapter(cx, f, &quote!(#module::#rust_name)) {
                Some(adapter) => {
                    per_thread = Some(adapter);
                    quote!(::cudastub_runtime::CodePtr(per_thread::#name as *const ()))
                }
                None => {
                    let check = format_ident!("IMPLEMENTS_{}", f.name);
                    let check_doc = format!(
                        " `{}::{}` implements `{proto}`.",
                        cx.plan.rust_module,
                        rust_impl_name(implementer)
                    );
                    impl_check = Some(quote! {
                        #[doc = #check_doc]
                        pub const #check: super::prototypes::#name = #module::#rust_name;
                    });
                    quote!(::cudastub_runtime::CodePtr(implementations::#check as *const ()))
                }
            }
        }
        Policy::Fallback => {
            // The real function; the fallback stub jumps to the Rust
            // implementation instead of the runtime's failure value.
            let module = &cx.rust_module;
            let rust_name = field_ident(&rust_impl_name(f.name));
            let check = format_ident!("IMPLEMENTS_{}", f.name);
            let check_doc = format!(
                " `{}::{}` implements `{proto}` where the real library is missing.",
                cx.plan.rust_module,
                rust_impl_name(f.name)
            );
            impl_check = Some(quote! {
                #[doc = #check_doc]
                pub const #check: super::prototypes::#name = #module::#rust_name;
            });
            missing_target = Some(quote!(#module::#rust_name));
            quote!(::cudastub_runtime::CodePtr(::core::ptr::null()))
        }
        Policy::Custom(custom) => {
            let emitted = custom.0.emit(&super::plan::PolicyContext {
                export: f,
                index: index_u32,
                params: params.clone(),
                args: args.iter().map(|a| quote!(#a)).collect(),
                returns: ret.clone(),
            });
            custom_items = Some(emitted.items);
            match emitted.target {
                Some(path) => quote!(::cudastub_runtime::CodePtr(custom::#path as *const ())),
                None => {
                    forwards = true;
                    quote!(::cudastub_runtime::CodePtr(::core::ptr::null()))
                }
            }
        }
        Policy::C => {
            let implementer = cx.plan.implementation_of(f.name);
            let c_name = format_ident!("{C_PREFIX}{implementer}");
            if implementer == f.name {
                c_decl = Some(quote! {
                    #[doc = #doc]
                    pub fn #c_name(#(#params),*) #ret;
                });
            }
            match per_thread_adapter(cx, f, &quote!(super::c_implementations::#c_name)) {
                Some(adapter) => {
                    per_thread = Some(adapter);
                    quote!(::cudastub_runtime::CodePtr(per_thread::#name as *const ()))
                }
                None => {
                    quote!(::cudastub_runtime::CodePtr(c_implementations::#c_name as *const ()))
                }
            }
        }
    };

    let real_caller = typed.then(|| quote! {
        #[doc = #doc]
        /// Calls the real library's function (or its fallback when the library lacks it).
        pub unsafe fn #name(#(#params),*) #ret {
            // SAFETY: the real function has this prototype.
            let __f: super::prototypes::#name = unsafe { ::core::mem::transmute(super::SHIM.real(#index_u32)) };
            unsafe { __f(#(#args),*) }
        }
    });
    let shim_caller = typed.then(|| quote! {
        #[doc = #doc]
        /// Calls the function through the shim's own slot (policy, implementation, tracing).
        pub unsafe fn #name(#(#params),*) #ret {
            // SAFETY: the exported trampoline forwards with this prototype.
            let __f: super::prototypes::#name = unsafe { ::core::mem::transmute(super::exports::#name as *const ()) };
            unsafe { __f(#(#args),*) }
        }
    });
    Ok(FunctionItems {
        trampoline,
        lazy_stub,
        prototype,
        fallback,
        failure_code,
        missing_target,
        custom_items,
        fail_stub,
        entry_wrapper,
        impl_check,
        c_decl,
        per_thread,
        real_caller,
        shim_caller,
        tracer: typed.then(|| tracer.wrapper(index_u32, f)),
        target,
        returns_status: f.returns_status,
        forwards,
    })
}

/// For a per-thread variant routed to another variant's implementation
/// `target` and taking a stream: the adapter mapping the default stream to
/// the per-thread one. `None` when the variant is called directly.
fn per_thread_adapter(cx: &Context, f: &Export, target: &TokenStream) -> Option<TokenStream> {
    let stream = field_ident(cx.plan.routes.get(f.name)?.stream.as_ref()?);
    let name = field_ident(f.name);
    let params = cx.names.params(f.proto);
    let ret = cx.names.return_type(&f.proto.returns);
    let args = f.proto.params.iter().map(|p| field_ident(&p.name));
    let doc = format!(
        " `{}` through `{}`, the default stream made the per-thread one.",
        f.name,
        cx.plan.implementation_of(f.name)
    );
    Some(quote! {
        #[doc = #doc]
        pub unsafe extern "C" fn #name(#(#params),*) #ret {
            // Null + 0x2 bytes: `cudaStreamPerThread` / `CU_STREAM_PER_THREAD`,
            // of the handle's own pointer type.
            let #stream = if #stream.is_null() {
                #stream.wrapping_byte_add(::cudastub_runtime::PER_THREAD_STREAM)
            } else {
                #stream
            };
            unsafe { #target(#(#args),*) }
        }
    })
}

/// The statements a stub ends with: the failure value of the function's
/// return type; `status` gives the value for the status type.
fn failure(
    cx: &Context,
    f: &Export,
    status: impl Fn(&crate::manifest::StatusCodes) -> TokenStream,
) -> TokenStream {
    let value = match &f.failure {
        FailureValue::Void => quote!(),
        FailureValue::Status => match &cx.view.status {
            Some(s) => match &s.codes.field {
                // A status struct (cuFile's `CUfileError_t`): the code in
                // its field, every other field zero.
                Some(field) => {
                    let ty = cx.names.rust_type(&f.proto.returns);
                    let field = field_ident(field);
                    let code = status(s.codes);
                    quote! {{
                        // SAFETY: all-zero is a valid value of a C struct.
                        let mut __status: #ty = unsafe { ::core::mem::zeroed() };
                        __status.#field = #code;
                        __status
                    }}
                }
                None => status(s.codes),
            },
            None => quote!(unsafe { ::core::mem::zeroed() }),
        },
        FailureValue::StatusName { param } => {
            let p = field_ident(param);
            quote!(super::SHIM.status_name(#p as i64).as_ptr())
        }
        FailureValue::Message => {
            quote!(c"cudastub: this function is unavailable; see the message on stderr".as_ptr())
        }
        FailureValue::Null => quote!(::core::ptr::null_mut()),
        FailureValue::Zero => {
            let ty = cx.names.rust_type(&f.proto.returns);
            // All-zero is a valid value of every C scalar and aggregate.
            quote!(unsafe { ::core::mem::zeroed::<#ty>() })
        }
    };
    quote!(let _ = __failure; #value)
}
