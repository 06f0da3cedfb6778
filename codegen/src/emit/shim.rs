//! The Rust source of a shim for one major, and the `build.rs` glue that
//! links it as a versioned shared library.
//!
//! What is generated, per function `i` of the major:
//! - an exported naked trampoline, `jmp [rip + SLOTS + 8*i]`: one indirect
//!   jump, whatever the signature (by-value `dim3`, 64-byte IPC handles
//!   passed in memory, struct returns all pass through untouched);
//! - a `.symver NAME, NAME@@@NODE` directive, inside the trampoline's own
//!   asm, that gives the export its default version. rustc hands the linker
//!   its own anonymous version script; the node-only script written here plus
//!   these directives is the combination seen to produce `NAME@@NODE` (see
//!   cuda-facts.md). Tests read the ELF file to prove it;
//! - a lazy stub, the slot's initial value: it initialises the runtime once
//!   (all argument registers saved) and retries through the slot;
//! - the function's target, by its [`Policy`]: the real function, a Rust or
//!   C implementation, or a stub returning a fixed status;
//! - a typed fallback, used when the real library or the function is
//!   missing: it reports once and returns the prototype's failure value;
//! - a tracing wrapper, installed in the slot only when `CUDASTUB_TRACE` is set;
//! - typed callers `real::NAME` (the real function) and `via_shim::NAME`
//!   (through the slot), for implementations that call the runtime.
//!
//! The runtime (loading, `dlvsym`, tracing, diagnostics) is the template
//! `templates/runtime.rs`, emitted into the same file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use heck::ToSnakeCase;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::generated_banner;
use super::rust_types::{RustNames, field_ident};
use super::trace::TraceGen;
use crate::ctype::{CType, Prototype};
use crate::manifest::{Manifest, TypeDef};

/// The runtime every generated shim carries.
const RUNTIME_TEMPLATE: &str = include_str!("../../templates/runtime.rs");

/// The prefix of C implementations: `cudastub_impl_cudaGetDeviceCount`
/// implements `cudaGetDeviceCount`. The prefix keeps them from clashing with
/// the exported names, and the link keeps them local to the shim.
pub const C_PREFIX: &str = "cudastub_impl_";

/// How a shim answers calls to one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Jump to the real library's function.
    Forward,
    /// Return the named status value (e.g. `cudaErrorNotSupported`) after a
    /// one-time diagnostic; other return types get their failure value.
    Fail(String),
    /// Call the Rust function `<module>::<snake_case name>` of the crate.
    Rust,
    /// Call the C function `cudastub_impl_<name>` from the crate's C sources.
    C,
}

impl Policy {
    /// Parses `forward`, `fail:STATUS`, `rust` or `c`.
    pub fn parse(text: &str) -> Result<Policy, String> {
        match text.split_once(':') {
            None if text == "forward" => Ok(Policy::Forward),
            None if text == "rust" => Ok(Policy::Rust),
            None if text == "c" => Ok(Policy::C),
            Some(("fail", status)) if !status.is_empty() => Ok(Policy::Fail(status.to_string())),
            _ => Err(format!(
                "unknown policy `{text}` (expected forward, fail:STATUS, rust or c)"
            )),
        }
    }
}

/// The Rust name of an implementation of `c_name`: `cuda_get_device_count`.
pub fn rust_impl_name(c_name: &str) -> String {
    c_name.to_snake_case()
}

/// Everything that decides what a shim does, beyond the manifest.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The policy of every function not named in `policies`.
    pub default_policy: Policy,
    /// Per-function policies.
    pub policies: BTreeMap<String, Policy>,
    /// The module holding Rust implementations, as a path (`crate::backend`).
    pub rust_module: String,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            default_policy: Policy::Forward,
            policies: BTreeMap::new(),
            rust_module: "crate::backend".to_string(),
        }
    }
}

impl Plan {
    /// Checks the plan against major `major` of `m`: every named function
    /// exists in that major and every status value is known.
    pub fn check(&self, m: &Manifest, major: u32) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let symbols = m.symbols_of(major);
        for name in self.policies.keys() {
            if symbols.binary_search(&name.as_str()).is_err() {
                let elsewhere: Vec<String> = m
                    .function(name)
                    .map(|f| f.majors.keys().map(u32::to_string).collect())
                    .unwrap_or_default();
                errors.push(if elsewhere.is_empty() {
                    format!(
                        "`{name}` is not a function of {} in any major",
                        m.library.name
                    )
                } else {
                    format!(
                        "`{name}` is not a function of major {major} (it is in major {})",
                        elsewhere.join(", ")
                    )
                });
            }
        }
        let status_values = status_names(m, major);
        for p in self
            .policies
            .values()
            .chain(std::iter::once(&self.default_policy))
        {
            if let Policy::Fail(status) = p {
                if m.library.status.is_none() {
                    errors.push(format!(
                        "policy fail:{status}: the manifest declares no status type"
                    ));
                } else if !status_values.iter().any(|(_, n)| n == status) {
                    errors.push(format!("unknown status `{status}` for major {major}"));
                }
            }
        }
        errors.sort();
        errors.dedup();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn policy(&self, name: &str) -> &Policy {
        self.policies.get(name).unwrap_or(&self.default_policy)
    }
}

/// Generates the complete Rust source of a plain forwarding shim for `major`.
pub fn source(m: &Manifest, major: u32) -> Result<String, String> {
    source_with(m, major, &Plan::default())
}

/// Generates the complete Rust source of a shim for `major` following `plan`.
pub fn source_with(m: &Manifest, major: u32, plan: &Plan) -> Result<String, String> {
    plan.check(m, major).map_err(|e| e.join("\n"))?;
    let info = m.major(major)?;
    let names = RustNames::new(info);
    let functions: Vec<_> = m.functions_of(major).collect();
    let count = functions.len();
    let node = &info.version_node;
    let status_type = m.library.status.as_ref().map(|s| s.type_name.as_str());
    let rust_module: syn::Path = syn::parse_str(&plan.rust_module)
        .map_err(|e| format!("rust module `{}`: {e}", plan.rust_module))?;
    let mut tracer = TraceGen::new(m, major, &names);

    let mut trampolines = Vec::new();
    let mut lazy_stubs = Vec::new();
    let mut fallbacks = Vec::new();
    let mut fail_stubs = Vec::new();
    let mut prototypes = Vec::new();
    let mut real_callers = Vec::new();
    let mut shim_callers = Vec::new();
    let mut tracers = Vec::new();
    let mut impl_checks = Vec::new();
    let mut c_decls = Vec::new();
    let mut c_names = Vec::new();
    let mut lazy_refs = Vec::new();
    let mut fallback_refs = Vec::new();
    let mut target_refs = Vec::new();
    let mut tracer_refs = Vec::new();
    let mut returns_status = Vec::new();
    for (i, (f, fm)) in functions.iter().enumerate() {
        let name = format_ident!("{}", f.name);
        let lazy = format_ident!("lazy_{}", i);
        let index = i as u32;
        let offset = i * 8;
        let proto = &fm.proto;
        // The directive sits in the function's own asm so that it lands in the
        // object file that defines the symbol: in a global_asm! block, rustc
        // may put it in another codegen unit, where it versions a reference
        // instead and the export silently stays unversioned.
        let symver_line = format!(".symver {0}, {0}@@@{node}", f.name);
        let doc = format!(" `{proto}`");
        trampolines.push(quote! {
            #[doc = #doc]
            #[unsafe(naked)]
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn #name() {
                ::core::arch::naked_asm!(#symver_line, "jmp qword ptr [rip + {slots} + {offset}]", slots = sym SLOTS, offset = const #offset)
            }
        });
        lazy_stubs.push(quote! {
            #[unsafe(naked)]
            pub(super) unsafe extern "C" fn #lazy() {
                ::core::arch::naked_asm!("mov r11d, {index}", "jmp {common}", index = const #index, common = sym runtime::resolve_and_retry)
            }
        });
        lazy_refs.push(quote!(::core::sync::atomic::AtomicPtr::new(#lazy as *mut ())));
        let fn_type = names.fn_type(proto);
        prototypes.push(quote! {
            #[doc = #doc]
            pub type #name = #fn_type;
        });
        let params = names.params(proto);
        let ret = names.return_type(&proto.returns);
        let args: Vec<_> = proto.params.iter().map(|p| field_ident(&p.name)).collect();

        let missing = failure_value(m, major, &names, proto, |s| {
            let lib = format_ident!("{}", s.library_missing);
            let sym = format_ident!("{}", s.symbol_missing);
            quote! {
                match __failure {
                    super::runtime::Failure::LibraryMissing => types::#lib,
                    super::runtime::Failure::SymbolMissing => types::#sym,
                }
            }
        });
        fallbacks.push(quote! {
            #[allow(unused_variables)]
            pub unsafe extern "C" fn #name(#(#params),*) #ret {
                let __failure = super::runtime::unavailable(#index);
                #missing
            }
        });
        fallback_refs.push(quote!(runtime::CodePtr(fallbacks::#name as *const ())));

        let target = match plan.policy(&f.name) {
            Policy::Forward => quote!(runtime::CodePtr(::core::ptr::null())),
            Policy::Fail(status) => {
                let code = format_ident!("{}", status);
                let value = failure_value(m, major, &names, proto, |_| quote!(types::#code));
                let status_text = status.clone();
                fail_stubs.push(quote! {
                    #[allow(unused_variables)]
                    pub unsafe extern "C" fn #name(#(#params),*) #ret {
                        let __failure = super::runtime::refused(#index, #status_text);
                        #value
                    }
                });
                quote!(runtime::CodePtr(policy_fail::#name as *const ()))
            }
            Policy::Rust => {
                let rust_name = format_ident!("{}", rust_impl_name(&f.name));
                let check = format_ident!("IMPLEMENTS_{}", f.name);
                let check_doc = format!(
                    " `{}::{}` implements `{proto}`.",
                    plan.rust_module,
                    rust_impl_name(&f.name)
                );
                impl_checks.push(quote! {
                    #[doc = #check_doc]
                    pub const #check: super::prototypes::#name = #rust_module::#rust_name;
                });
                quote!(runtime::CodePtr(implementations::#check as *const ()))
            }
            Policy::C => {
                let c_name = format_ident!("{C_PREFIX}{}", f.name);
                c_decls.push(quote! {
                    #[doc = #doc]
                    pub fn #c_name(#(#params),*) #ret;
                });
                quote!(runtime::CodePtr(c_implementations::#c_name as *const ()))
            }
        };
        target_refs.push(target);

        real_callers.push(quote! {
            #[doc = #doc]
            /// Calls the real library's function (or its fallback when the library lacks it).
            pub unsafe fn #name(#(#params),*) #ret {
                // SAFETY: the real function has this prototype.
                let __f: super::prototypes::#name = unsafe { ::core::mem::transmute(super::runtime::real(#index)) };
                unsafe { __f(#(#args),*) }
            }
        });
        shim_callers.push(quote! {
            #[doc = #doc]
            /// Calls the function through the shim's own slot (policy, implementation, tracing).
            pub unsafe fn #name(#(#params),*) #ret {
                // SAFETY: the exported trampoline forwards with this prototype.
                let __f: super::prototypes::#name = unsafe { ::core::mem::transmute(super::exports::#name as *const ()) };
                unsafe { __f(#(#args),*) }
            }
        });
        tracers.push(tracer.wrapper(index, proto, status_type));
        tracer_refs.push(quote!(runtime::CodePtr(tracers::#name as *const ())));
        returns_status.push(
            status_type
                .is_some_and(|s| proto.returns.base == s && proto.returns.pointers.is_empty()),
        );

        let c_name =
            Literal::c_string(&std::ffi::CString::new(f.name.as_str()).map_err(|e| e.to_string())?);
        c_names.push(quote!(#c_name));
    }

    let types = names.types_module();
    let soname = &info.soname;
    let node_c =
        Literal::c_string(&std::ffi::CString::new(node.as_str()).map_err(|e| e.to_string())?);
    let library = &m.library.name;
    let search = &m.library.search;
    let status_entries = status_names(m, major).into_iter().map(|(v, n)| {
        let c = Literal::c_string(&std::ffi::CString::new(n.as_str()).unwrap_or_default());
        quote!((#v, #c))
    });
    let enum_tables = tracer.enums.values().cloned().collect::<Vec<_>>();
    let aggregate_fns = tracer.aggregates.values().cloned().collect::<Vec<_>>();
    let status_table = match status_type {
        Some(s) => {
            let resolved = m.resolve(major, &CType::named(s.to_string()));
            match info.types.get(&resolved.base) {
                Some(TypeDef::Enum { values, .. }) => {
                    let mut v: Vec<(&String, &i64)> = values.iter().collect();
                    v.sort_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)));
                    let entries = v.iter().map(|(n, v)| {
                        let v = Literal::i64_unsuffixed(**v);
                        quote!((#v, #n))
                    });
                    quote!(&[#(#entries),*])
                }
                _ => quote!(&[]),
            }
        }
        None => quote!(&[]),
    };
    let success = match &m.library.status {
        Some(s) => {
            let id = format_ident!("{}", s.success);
            quote!(Some(types::#id as i64))
        }
        None => quote!(None),
    };
    let c_block = if c_decls.is_empty() {
        quote!()
    } else {
        quote! {
            /// The C implementations, from the crate's C sources (`cudastub_impl_NAME`).
            #[allow(non_snake_case, clippy::all)]
            pub mod c_implementations {
                use super::types;
                unsafe extern "C" {
                    #(#c_decls)*
                }
            }
        }
    };
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
        /// Where to look for the real library: directories, or `$VAR/dir`.
        pub static SEARCH: &[&str] = &[#(#search),*];
        /// The version node every export carries.
        pub const VERSION_NODE: &::core::ffi::CStr = #node_c;
        /// The number of exports.
        pub const FUNCTION_COUNT: usize = #count;
        /// The exports' names, in slot order.
        pub static NAMES: [&::core::ffi::CStr; FUNCTION_COUNT] = [#(#c_names),*];
        /// Known status values and their names, for messages.
        pub static STATUS_NAMES: &[(i64, &::core::ffi::CStr)] = &[#(#status_entries),*];
        /// The success status, for counting errors in traces.
        pub const STATUS_SUCCESS: Option<i64> = #success;
        /// Which functions return the status type.
        pub static RETURNS_STATUS: [bool; FUNCTION_COUNT] = [#(#returns_status),*];

        /// Where each trampoline jumps: first a lazy stub, then the target (or its tracer).
        static SLOTS: [::core::sync::atomic::AtomicPtr<()>; FUNCTION_COUNT] = [#(#lazy_refs),*];
        /// The typed fallbacks, in slot order.
        static FALLBACKS: [runtime::CodePtr; FUNCTION_COUNT] = [#(#fallback_refs),*];
        /// Each function's target by policy; null means the real function.
        static TARGETS: [runtime::CodePtr; FUNCTION_COUNT] = [#(#target_refs),*];
        /// The tracing wrappers, in slot order.
        static TRACERS: [runtime::CodePtr; FUNCTION_COUNT] = [#(#tracer_refs),*];

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

        #c_block

        /// The real library's functions, typed (loading it on first use).
        #[allow(non_snake_case, clippy::missing_safety_doc, clippy::all, dead_code)]
        pub mod real {
            use super::types;
            #(#real_callers)*
        }

        /// Every export called through the shim's own slot, typed.
        #[allow(non_snake_case, clippy::missing_safety_doc, clippy::all, dead_code)]
        pub mod via_shim {
            use super::types;
            #(#shim_callers)*
        }

        /// Tracing wrappers, installed in the slots only when tracing is on.
        #[allow(non_snake_case, unused_variables, clippy::missing_safety_doc, clippy::all)]
        pub mod tracers {
            use super::types;
            #(#tracers)*
        }

        /// Value tables and formatters the tracers decode arguments with.
        #[allow(non_snake_case, non_upper_case_globals, unused_imports, clippy::all, dead_code)]
        pub mod trace_tables {
            use super::types;
            /// The status values, by name.
            pub static STATUS: &[(i64, &str)] = #status_table;
            #(#enum_tables)*
            #(#aggregate_fns)*
        }
    };
    let file = syn::parse2::<syn::File>(tokens)
        .map_err(|e| format!("generated code does not parse: {e}"))?;
    let mut out = generated_banner("//");
    out.push_str(&prettyplease::unparse(&file));
    out.push_str("\n#[allow(dead_code)]\nmod runtime {\n");
    out.push_str(RUNTIME_TEMPLATE);
    out.push_str("}\n");
    Ok(out)
}

/// The statements a stub ends with: the failure value of its prototype's
/// return type; `status` gives the value for the status type.
fn failure_value(
    m: &Manifest,
    major: u32,
    names: &RustNames,
    proto: &Prototype,
    status: impl Fn(&crate::manifest::StatusCodes) -> TokenStream,
) -> TokenStream {
    let returns = &proto.returns;
    if returns.is_void() {
        return quote!(let _ = __failure;);
    }
    if let Some(s) = &m.library.status
        && returns.base == s.type_name
        && returns.pointers.is_empty()
    {
        let value = status(s);
        return quote!(let _ = __failure; #value);
    }
    let resolved = m.resolve(major, returns);
    // `const char *f(status)` describes a status (cudaGetErrorName,
    // cudaGetErrorString): the status's own name is a valid answer.
    if let (true, Some(s), [param]) = (
        resolved.is_c_string(),
        &m.library.status,
        proto.params.as_slice(),
    ) && param.ty.base == s.type_name
        && param.ty.pointers.is_empty()
    {
        let p = field_ident(&param.name);
        return quote! {
            let _ = __failure;
            super::runtime::status_name(#p as i64).as_ptr()
        };
    }
    if resolved.is_c_string() {
        return quote! {
            let _ = __failure;
            c"cudastub: this function is unavailable; see the message on stderr".as_ptr()
        };
    }
    if resolved.is_pointer() {
        return quote!(let _ = __failure; ::core::ptr::null_mut());
    }
    let ty = names.rust_type(returns);
    if matches!(
        m.majors[&major].types.get(&resolved.base),
        Some(TypeDef::Aggregate(_))
    ) {
        // All-zero is a valid value of every C aggregate.
        return quote!(let _ = __failure; unsafe { ::core::mem::zeroed::<#ty>() });
    }
    quote!(let _ = __failure; 0 as #ty)
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

/// A shim build, configured in a crate's `build.rs`.
///
/// ```no_run
/// // build.rs of a crate with `crate-type = ["cdylib"]` and `libc` as a dependency
/// use cudastub_codegen::emit::shim::{Policy, ShimBuild};
/// let shim = ShimBuild::new("cuda-api.yaml").default_major(12);
/// let shim = shim.implement(["cudaGetDeviceCount"]).fail(["cudaMalloc"], "cudaErrorNotSupported");
/// shim.build().unwrap_or_else(|e| panic!("{e}"));
/// // src/lib.rs: include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs")); mod backend;
/// ```
#[derive(Clone, Debug)]
pub struct ShimBuild {
    manifest: PathBuf,
    default_major: u32,
    plan: Plan,
    c_sources: Vec<PathBuf>,
    errors: Vec<String>,
}

impl ShimBuild {
    /// A plain forwarding shim from the manifest at `manifest`.
    pub fn new(manifest: impl AsRef<Path>) -> Self {
        ShimBuild {
            manifest: manifest.as_ref().to_path_buf(),
            default_major: 12,
            plan: Plan::default(),
            c_sources: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// The major built when `CUDASTUB_MAJOR` is not set.
    pub fn default_major(mut self, major: u32) -> Self {
        self.default_major = major;
        self
    }

    /// The major this build is for: `CUDASTUB_MAJOR`, else the default.
    pub fn major(&self) -> Result<u32, String> {
        match std::env::var("CUDASTUB_MAJOR") {
            Ok(v) => v
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("CUDASTUB_MAJOR={v} is not a major version number")),
            Err(_) => Ok(self.default_major),
        }
    }

    /// The policy of every function not given one.
    pub fn default_policy(mut self, policy: Policy) -> Self {
        self.plan.default_policy = policy;
        self
    }

    /// Sets the policy of each named function.
    pub fn policy<'a>(mut self, names: impl IntoIterator<Item = &'a str>, policy: Policy) -> Self {
        for n in names {
            self.plan.policies.insert(n.to_string(), policy.clone());
        }
        self
    }

    /// Sets a policy from its text form (`forward`, `fail:STATUS`, `rust`, `c`);
    /// an unknown form fails the build.
    pub fn policy_str(mut self, name: &str, policy: &str) -> Self {
        match Policy::parse(policy) {
            Ok(p) => {
                self.plan.policies.insert(name.to_string(), p);
            }
            Err(e) => self.errors.push(format!("{name}: {e}")),
        }
        self
    }

    /// These functions are implemented in Rust, in the backend module.
    pub fn implement<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.policy(names, Policy::Rust)
    }

    /// These functions are implemented in C (`cudastub_impl_NAME`).
    pub fn implement_in_c<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.policy(names, Policy::C)
    }

    /// These functions fail with `status`.
    pub fn fail<'a>(self, names: impl IntoIterator<Item = &'a str>, status: &str) -> Self {
        self.policy(names, Policy::Fail(status.to_string()))
    }

    /// The module holding the Rust implementations (default `crate::backend`).
    pub fn rust_module(mut self, path: &str) -> Self {
        self.plan.rust_module = path.to_string();
        self
    }

    /// A C source file to compile into the shim (with the `cc` crate).
    pub fn c_source(mut self, path: impl AsRef<Path>) -> Self {
        self.c_sources.push(path.as_ref().to_path_buf());
        self
    }

    /// Generates `$OUT_DIR/cudastub_shim.rs`, writes the version script,
    /// compiles the C sources and prints the cargo directives. Call from
    /// `build.rs`; the crate includes the result with
    /// `include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs"));`.
    pub fn build(self) -> Result<PathBuf, String> {
        println!("cargo:rerun-if-changed={}", self.manifest.display());
        println!("cargo:rerun-if-env-changed=CUDASTUB_MAJOR");
        if !self.errors.is_empty() {
            return Err(self.errors.join("\n"));
        }
        let major = self.major()?;
        let m = crate::manifest::load(&self.manifest).map_err(|e| e.to_string())?;
        let out_dir = PathBuf::from(
            std::env::var_os("OUT_DIR")
                .ok_or("OUT_DIR is not set: call this from a build script")?,
        );
        let src = source_with(&m, major, &self.plan).map_err(|e| format!("cudastub: {e}"))?;
        let src_path = out_dir.join("cudastub_shim.rs");
        crate::manifest::write_atomic(&src_path, &src)
            .map_err(|e| format!("{}: {e}", src_path.display()))?;
        let script = out_dir.join(format!("{}.node.map", m.library.soname_of(major)));
        crate::manifest::write_atomic(&script, &node_script(&m, major))
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !self.c_sources.is_empty() {
            for s in &self.c_sources {
                println!("cargo:rerun-if-changed={}", s.display());
            }
            cc::Build::new()
                .files(&self.c_sources)
                .warnings(true)
                .try_compile("cudastub_c_backend")
                .map_err(|e| e.to_string())?;
        }
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
            script.display()
        );
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,-soname,{}",
            m.library.soname_of(major)
        );
        println!("cargo:rustc-env=CUDASTUB_MAJOR={major}");
        // `#[cfg(cudastub_major = "12")]` selects code per major.
        let majors: Vec<String> = m.majors.keys().map(|k| format!("\"{k}\"")).collect();
        println!(
            "cargo:rustc-check-cfg=cfg(cudastub_major, values({}))",
            majors.join(", ")
        );
        println!("cargo:rustc-cfg=cudastub_major=\"{major}\"");
        Ok(src_path)
    }
}

/// Everything a plain forwarding shim's `build.rs` does, for the major given
/// by `CUDASTUB_MAJOR` (else `default_major`). See [`ShimBuild`].
pub fn build(manifest_path: &Path, default_major: u32) -> Result<PathBuf, String> {
    ShimBuild::new(manifest_path)
        .default_major(default_major)
        .build()
}
