//! Tracing wrappers: one small typed function per export that calls the
//! function's target and hands the addresses of its arguments, with a static
//! description of the function (`DESC_<name>`), to the runtime, which writes
//! the line (`cudastub_runtime::TraceCall::finish_described`).
//!
//! The description comes from the C types (how to show each value) and the
//! call model's roles (which parameters are outputs, shown by what the call
//! wrote there). Decoding is the runtime's code, shared by every function:
//! per function only the wrapper and a table are generated.
//!
//! The wrappers are only ever installed in the slots when `CUDASTUB_TRACE`
//! is set; with tracing off the slots hold the targets themselves, so
//! tracing costs nothing then.

use std::collections::BTreeMap;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::rust_types::{RustNames, field_ident};
use crate::ctype::CType;
use crate::manifest::{TypeDef, sorted_values};
use crate::roles::{Dir, Role, Space, Target};
use crate::view::{Export, LibraryMajor};

/// Generates decoding code for the types of one (library, major).
pub struct TraceGen<'a> {
    view: &'a LibraryMajor<'a>,
    names: &'a RustNames<'a>,
    /// Enums whose value tables the generated code uses, by C name.
    pub enums: BTreeMap<String, TokenStream>,
    /// Aggregates whose formatters the generated code uses, by C name.
    pub aggregates: BTreeMap<String, TokenStream>,
    /// Each function's trace description, by export name.
    pub descriptions: BTreeMap<String, TokenStream>,
}

impl<'a> TraceGen<'a> {
    /// A generator for `view`.
    pub fn new(view: &'a LibraryMajor<'a>, names: &'a RustNames<'a>) -> Self {
        TraceGen {
            view,
            names,
            enums: BTreeMap::new(),
            aggregates: BTreeMap::new(),
            descriptions: BTreeMap::new(),
        }
    }

    fn types(&self) -> &'a BTreeMap<String, TypeDef> {
        &self.view.facts.types
    }

    /// Code appending the value of expression `v` (of C type `ty`) to `line`.
    pub fn value(&mut self, ty: &CType, v: TokenStream) -> TokenStream {
        let resolved = self.view.resolve(ty);
        if resolved.is_pointer() {
            if is_input_string(&resolved) {
                // A `const char *` is an input string (or a returned one);
                // the runtime reads at most 64 bytes, without faulting.
                return quote!(__line.c_str(#v as *const ::core::ffi::c_char););
            }
            // Anything else behind a pointer, output buffers (`char *`)
            // included, is not promised to hold anything: its address only.
            return quote!(__line.ptr(#v as *const ::core::ffi::c_void););
        }
        match self.types().get(&resolved.base) {
            Some(TypeDef::Enum { values, .. }) => {
                let table = self.enum_table(&resolved.base, values);
                quote!(__line.enumerated(#v as i64, #table);)
            }
            Some(TypeDef::Aggregate(_)) => {
                let f = self.aggregate_fn(&resolved.base);
                quote!(#f(__line, &#v as *const _ as *const u8);)
            }
            Some(TypeDef::FunctionPointer(_)) => {
                quote!(__line.ptr(#v.map_or(::core::ptr::null(), |f| f as *const ::core::ffi::c_void));)
            }
            Some(TypeDef::Opaque) | Some(TypeDef::Typedef(_)) | Some(TypeDef::Array { .. }) => {
                quote!(__line.raw("?");)
            }
            None => match resolved.base.as_str() {
                "float" | "double" => quote!(__line.float(#v as f64);),
                "_Bool" => quote!(__line.int(#v as i128);),
                "void" => quote!(__line.raw("void");),
                _ => quote!(__line.int(#v as i128);),
            },
        }
    }

    fn enum_table(&mut self, c_name: &str, values: &BTreeMap<String, i64>) -> TokenStream {
        let id = format_ident!("ENUM_{}", sanitize(c_name));
        if !self.enums.contains_key(c_name) {
            let entries = sorted_values(values).into_iter().map(|(n, v)| {
                let v = Literal::i64_unsuffixed(v);
                quote!((#v, #n))
            });
            self.enums.insert(
                c_name.to_string(),
                quote!(pub static #id: &[(i64, &str)] = &[#(#entries),*];),
            );
        }
        quote!(super::trace_tables::#id)
    }

    fn aggregate_fn(&mut self, c_name: &str) -> TokenStream {
        let id = format_ident!("fmt_{}", sanitize(c_name));
        if !self.aggregates.contains_key(c_name) {
            // Reserve the name first: aggregates may nest.
            self.aggregates
                .insert(c_name.to_string(), TokenStream::new());
            let Some(TypeDef::Aggregate(layout)) = self.types().get(c_name) else {
                return quote!(super::trace_tables::#id);
            };
            let rust = self.names.type_ident(c_name);
            let body = if c_name.starts_with("union ") {
                // Which member is live is not known: show the bytes.
                quote! {
                    // SAFETY: every byte of a C union value is initialised.
                    let bytes = unsafe { ::core::slice::from_raw_parts((v as *const types::#rust).cast::<u8>(), ::core::mem::size_of::<types::#rust>()) };
                    __line.bytes(bytes);
                }
            } else {
                let fields: Vec<TokenStream> = layout
                    .fields
                    .iter()
                    .map(|f| {
                        let fid = field_ident(&f.decl.name);
                        let label = &f.decl.name;
                        let value = match f.decl.array {
                            Some(_)
                                if matches!(
                                    f.decl.ty.base.as_str(),
                                    "char" | "unsigned char" | "signed char"
                                ) && !f.decl.ty.is_pointer() =>
                            {
                                quote!(__line.bytes(&v.#fid.map(|b| b as u8));)
                            }
                            Some(_) => {
                                let elem = self.value(&f.decl.ty, quote!(*e));
                                quote! {
                                    __line.open('[');
                                    for (i, e) in v.#fid.iter().enumerate() {
                                        if i > 0 { __line.raw(", "); }
                                        #elem
                                    }
                                    __line.close(']');
                                }
                            }
                            None => self.value(&f.decl.ty, quote!(v.#fid)),
                        };
                        quote! { __line.field(#label); #value }
                    })
                    .collect();
                quote! { __line.open('{'); #(#fields)* __line.close('}'); }
            };
            let func = quote! {
                pub fn #id(__line: &mut ::cudastub_runtime::TraceLine, v: *const u8) {
                    // SAFETY: the runtime passes the bytes of a `#rust` value.
                    let v = unsafe { &*(v as *const types::#rust) };
                    #body
                }
            };
            self.aggregates.insert(c_name.to_string(), func);
        }
        quote!(super::trace_tables::#id)
    }

    /// How the runtime shows a value of C type `ty`: a
    /// `cudastub_runtime::TraceValue` expression.
    pub fn value_desc(&mut self, ty: &CType) -> TokenStream {
        let resolved = self.view.resolve(ty);
        if resolved.is_pointer() {
            if is_input_string(&resolved) {
                return quote!(::cudastub_runtime::TraceValue::CStr);
            }
            return quote!(::cudastub_runtime::TraceValue::Ptr);
        }
        match self.types().get(&resolved.base) {
            Some(TypeDef::Enum { values, repr }) => {
                let table = self.enum_table(&resolved.base, values);
                let signed = !repr.starts_with("unsigned");
                quote!(::cudastub_runtime::TraceValue::Enum { names: #table, signed: #signed })
            }
            Some(TypeDef::Aggregate(_)) => {
                let f = self.aggregate_fn(&resolved.base);
                quote!(::cudastub_runtime::TraceValue::Aggregate(#f))
            }
            Some(TypeDef::FunctionPointer(_)) => quote!(::cudastub_runtime::TraceValue::Ptr),
            Some(TypeDef::Opaque) | Some(TypeDef::Typedef(_)) | Some(TypeDef::Array { .. }) => {
                quote!(::cudastub_runtime::TraceValue::Opaque)
            }
            None => match resolved.base.as_str() {
                "float" | "double" => quote!(::cudastub_runtime::TraceValue::Float),
                "void" => quote!(::cudastub_runtime::TraceValue::Opaque),
                b => {
                    let signed = !(b.starts_with("unsigned")
                        || b == "_Bool"
                        || b == "size_t"
                        || b == "uintptr_t"
                        || b.starts_with("uint"));
                    quote!(::cudastub_runtime::TraceValue::Int { signed: #signed })
                }
            },
        }
    }

    /// What the call writes through parameter `ty` whose role is `role`,
    /// shown after the call: a `cudastub_runtime::Output` expression.
    fn output_desc(&mut self, ty: &CType, role: Option<&Role>) -> TokenStream {
        let none = quote!(::cudastub_runtime::Output::None);
        let Some(Role::Pointer(p)) = role else {
            return none;
        };
        if p.dir == Dir::In || p.space != Space::Host {
            return none;
        }
        let resolved = self.view.resolve(ty);
        let Some((_, outer)) = resolved.pointers.split_last() else {
            return none;
        };
        let _ = outer;
        let pointee = CType {
            is_const: false,
            base: resolved.base.clone(),
            pointers: resolved.pointers[..resolved.pointers.len() - 1].to_vec(),
        };
        match p.target {
            Target::String => quote!(::cudastub_runtime::Output::String),
            Target::Scalar
            | Target::Struct
            | Target::Handle { .. }
            | Target::Device
            | Target::Address
                if !pointee.is_void() =>
            {
                if let Some(TypeDef::Aggregate(l)) = self.types().get(&pointee.base)
                    && pointee.pointers.is_empty()
                    && l.size > cudastub_runtime_max_shown()
                {
                    return none;
                }
                let value = self.value_desc(&pointee);
                let rust = self.names.rust_type(&pointee);
                quote!(::cudastub_runtime::Output::Value {
                    value: #value,
                    size: ::core::mem::size_of::<#rust>() as u32,
                })
            }
            _ => none,
        }
    }

    /// The tracing wrapper of function `index`; its description goes to
    /// [`TraceGen::descriptions`].
    pub fn wrapper(&mut self, index: u32, f: &Export) -> TokenStream {
        let proto = f.proto;
        let name = format_ident!("{}", proto.name);
        let params = self.names.params(proto);
        let ret = self.names.return_type(&proto.returns);
        let args: Vec<_> = proto.params.iter().map(|p| field_ident(&p.name)).collect();
        let described: Vec<TokenStream> = proto
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let label = &p.name;
                let value = self.value_desc(&p.ty);
                let output = self.output_desc(&p.ty, f.roles.get(i));
                quote!(::cudastub_runtime::Param { name: #label, value: #value, output: #output })
            })
            .collect();
        let (returns, result, status) = if proto.returns.is_void() {
            (quote!(None), quote!(None), quote!(None))
        } else {
            let v = self.value_desc(&proto.returns);
            let status = if f.returns_status {
                quote!(Some(__result as i64))
            } else {
                quote!(None)
            };
            (
                quote!(Some(#v)),
                quote!(Some(::cudastub_runtime::TraceArg::of(&__result))),
                status,
            )
        };
        let desc = format_ident!("DESC_{}", proto.name);
        self.descriptions.insert(
            proto.name.clone(),
            quote! {
                pub static #desc: ::cudastub_runtime::Described = ::cudastub_runtime::Described {
                    params: &[#(#described),*],
                    returns: #returns,
                };
            },
        );
        quote! {
            pub unsafe extern "C" fn #name(#(#params),*) #ret {
                // SAFETY: the active target has this function's prototype.
                let __target: super::prototypes::#name = unsafe { ::core::mem::transmute(super::SHIM.active(#index)) };
                let Some(__call) = super::SHIM.trace_enter(#index) else {
                    return unsafe { __target(#(#args),*) };
                };
                let __result = unsafe { __target(#(#args),*) };
                __call.finish_described(
                    &super::trace_tables::#desc,
                    &[#(::cudastub_runtime::TraceArg::of(&#args)),*],
                    #result,
                    #status,
                );
                __result
            }
        }
    }
}

/// The largest struct an output shows by value (`cudastub_runtime::MAX_SHOWN_BYTES`).
fn cudastub_runtime_max_shown() -> u64 {
    256
}

/// `const char *` (the pointer itself may be `const` too): a string the
/// caller hands in, or one the function returns. A plain `char *` is an
/// output buffer, unfilled when the call fails: never decoded.
pub fn is_input_string(ty: &CType) -> bool {
    ty.is_const && ty.base == "char" && ty.pointers.len() == 1
}

fn sanitize(c_name: &str) -> String {
    c_name.replace(' ', "_")
}
