//! Tracing wrappers: one small typed function per export that calls the
//! function's target and hands the addresses of its arguments to the
//! runtime, which writes the line from the shim's `TRACE_TABLES`
//! (`cudastub_runtime::TraceCall::finish_described`).
//!
//! The tables come from the C types (how to show each value) and the call
//! model's roles (which parameters are outputs, shown by what the call wrote
//! there). They are plain numbers and offsets into one string — no pointer
//! per entry, so no relocation — and decoding is the runtime's code, shared
//! by every function: per function only the wrapper is generated.
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

/// Generates the trace tables and wrappers of one (library, major).
pub struct TraceGen<'a> {
    view: &'a LibraryMajor<'a>,
    names: &'a RustNames<'a>,
    /// Enums whose value tables the tables use, by C name: (index, table).
    enums: BTreeMap<String, (u16, TokenStream)>,
    /// Aggregates whose formatters the tables use, by C name: (index, formatter).
    aggregates: BTreeMap<String, (u16, TokenStream)>,
    /// Every name the tables refer to, NUL-terminated, one after another.
    strings: String,
    /// Where each name starts in `strings`.
    offsets: BTreeMap<String, u32>,
    /// Every function's parameters, in slot order.
    params: Vec<TokenStream>,
    /// Every function, by slot.
    functions: BTreeMap<u32, TokenStream>,
}

impl<'a> TraceGen<'a> {
    /// A generator for `view`.
    pub fn new(view: &'a LibraryMajor<'a>, names: &'a RustNames<'a>) -> Self {
        TraceGen {
            view,
            names,
            enums: BTreeMap::new(),
            aggregates: BTreeMap::new(),
            strings: String::new(),
            offsets: BTreeMap::new(),
            params: Vec::new(),
            functions: BTreeMap::new(),
        }
    }

    /// The offset of `name` in the tables' string.
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(o) = self.offsets.get(name) {
            return *o;
        }
        let o = self.strings.len() as u32;
        self.strings.push_str(name);
        self.strings.push('\0');
        self.offsets.insert(name.to_string(), o);
        o
    }

    /// The `trace_tables` module's items: enum tables, formatters and
    /// `TRACE_TABLES` itself, for a shim of `count` functions.
    pub fn tables(&self, count: usize) -> TokenStream {
        let mut enums: Vec<&(u16, TokenStream)> = self.enums.values().collect();
        enums.sort_by_key(|e| e.0);
        let enum_items = enums.iter().map(|e| &e.1);
        let enum_refs = enums.iter().map(|e| {
            let id = format_ident!("ENUM_{}", e.0);
            quote!(&#id)
        });
        let mut aggregates: Vec<&(u16, TokenStream)> = self.aggregates.values().collect();
        aggregates.sort_by_key(|a| a.0);
        let aggregate_items = aggregates.iter().map(|a| &a.1);
        let aggregate_refs = aggregates.iter().map(|a| {
            let id = format_ident!("fmt_{}", a.0);
            quote!(#id)
        });
        let params = &self.params;
        let functions = (0..count as u32).map(|i| {
            self.functions.get(&i).cloned().unwrap_or_else(|| {
                quote!(::cudastub_runtime::FunctionCode {
                    first: 0,
                    count: 0,
                    returns: None
                })
            })
        });
        let strings = &self.strings;
        quote! {
            use ::cudastub_runtime::{FunctionCode as F, ParamCode as P};
            #(#enum_items)*
            #(#aggregate_items)*
            /// Every name the trace tables refer to, NUL-terminated.
            pub static TRACE_STRINGS: &str = #strings;
            /// What the tracer shows of each function (cudastub-runtime).
            pub static TRACE_TABLES: ::cudastub_runtime::TraceTables = ::cudastub_runtime::TraceTables {
                strings: TRACE_STRINGS,
                enums: &[#(#enum_refs),*],
                aggregates: &[#(#aggregate_refs),*],
                params: &[#(#params),*],
                functions: &[#(#functions),*],
            };
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
                let index = self.enum_table(&resolved.base, values);
                quote!(super::trace_tables::TRACE_TABLES.show_enum(__line, #v as i64, #index);)
            }
            Some(TypeDef::Aggregate(_)) => {
                let f = format_ident!("fmt_{}", self.aggregate_fn(&resolved.base));
                quote!(super::trace_tables::#f(__line, &#v as *const _ as *const u8);)
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

    /// The index of `c_name`'s value table, made at its first use.
    fn enum_table(&mut self, c_name: &str, values: &BTreeMap<String, i64>) -> u16 {
        if let Some((i, _)) = self.enums.get(c_name) {
            return *i;
        }
        let index = self.enums.len() as u16;
        let id = format_ident!("ENUM_{}", index);
        let entries: Vec<TokenStream> = sorted_values(values)
            .into_iter()
            .map(|(n, v)| {
                let v = Literal::i64_unsuffixed(v);
                let o = self.intern(n);
                quote!((#v, #o))
            })
            .collect();
        let doc = format!(" `{c_name}`.");
        let n = entries.len();
        self.enums.insert(
            c_name.to_string(),
            (
                index,
                quote!(#[doc = #doc] pub static #id: [(i64, u32); #n] = [#(#entries),*];),
            ),
        );
        index
    }

    /// The index of `c_name`'s formatter, made at its first use.
    fn aggregate_fn(&mut self, c_name: &str) -> u16 {
        if let Some((i, _)) = self.aggregates.get(c_name) {
            return *i;
        }
        let index = self.aggregates.len() as u16;
        let id = format_ident!("fmt_{}", index);
        // Reserve the index first: aggregates may nest.
        self.aggregates
            .insert(c_name.to_string(), (index, TokenStream::new()));
        let Some(TypeDef::Aggregate(layout)) = self.types().get(c_name) else {
            return index;
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
        let doc = format!(" Shows a `{c_name}`.");
        let func = quote! {
            #[doc = #doc]
            pub fn #id(__line: &mut ::cudastub_runtime::TraceLine, v: *const u8) {
                // SAFETY: the runtime passes the bytes of a value of this type.
                let v = unsafe { &*(v as *const types::#rust) };
                #body
            }
        };
        self.aggregates.insert(c_name.to_string(), (index, func));
        index
    }

    /// How the runtime shows a value of C type `ty`: the number of its
    /// `cudastub_runtime::TraceKind` and its table index.
    fn value_code(&mut self, ty: &CType) -> (u8, u16) {
        // The discriminants of cudastub_runtime::TraceKind.
        const OPAQUE: u8 = 0;
        const SIGNED: u8 = 1;
        const UNSIGNED: u8 = 2;
        const FLOAT: u8 = 3;
        const PTR: u8 = 4;
        const CSTR: u8 = 5;
        const ENUM: u8 = 6;
        const ENUM_UNSIGNED: u8 = 7;
        const AGGREGATE: u8 = 8;
        let resolved = self.view.resolve(ty);
        if resolved.is_pointer() {
            return (
                if is_input_string(&resolved) {
                    CSTR
                } else {
                    PTR
                },
                0,
            );
        }
        match self.types().get(&resolved.base) {
            Some(TypeDef::Enum { values, repr }) => {
                let unsigned = repr.starts_with("unsigned");
                let index = self.enum_table(&resolved.base, values);
                (if unsigned { ENUM_UNSIGNED } else { ENUM }, index)
            }
            Some(TypeDef::Aggregate(_)) => (AGGREGATE, self.aggregate_fn(&resolved.base)),
            Some(TypeDef::FunctionPointer(_)) => (PTR, 0),
            Some(TypeDef::Opaque) | Some(TypeDef::Typedef(_)) | Some(TypeDef::Array { .. }) => {
                (OPAQUE, 0)
            }
            None => match resolved.base.as_str() {
                "float" | "double" => (FLOAT, 0),
                "void" => (OPAQUE, 0),
                b if b.starts_with("unsigned")
                    || b.starts_with("uint")
                    || matches!(b, "_Bool" | "size_t") =>
                {
                    (UNSIGNED, 0)
                }
                _ => (SIGNED, 0),
            },
        }
    }

    /// What the call writes through parameter `ty` whose role is `role`, to
    /// show after the call: the number of its `OutputKind`, how it is shown,
    /// and its size in bytes (an expression).
    fn output_code(&mut self, ty: &CType, role: Option<&Role>) -> (u8, (u8, u16), TokenStream) {
        const NONE: u8 = 0;
        const VALUE: u8 = 1;
        const STRING: u8 = 2;
        let none = (NONE, (0, 0), quote!(0));
        let Some(Role::Pointer(p)) = role else {
            return none;
        };
        if p.dir == Dir::In || p.space != Space::Host {
            return none;
        }
        let resolved = self.view.resolve(ty);
        if resolved.pointers.is_empty() {
            return none;
        }
        let pointee = CType {
            is_const: false,
            base: resolved.base.clone(),
            pointers: resolved.pointers[..resolved.pointers.len() - 1].to_vec(),
        };
        match p.target {
            Target::String => (STRING, (0, 0), quote!(0)),
            Target::Scalar
            | Target::Struct
            | Target::Handle { .. }
            | Target::Device
            | Target::Address
                if !pointee.is_void() =>
            {
                if let Some(TypeDef::Aggregate(l)) = self.types().get(&pointee.base)
                    && pointee.pointers.is_empty()
                    && l.size > MAX_SHOWN_BYTES
                {
                    return none;
                }
                let value = self.value_code(&pointee);
                let size = match (self.types().get(&pointee.base), pointee.pointers.is_empty()) {
                    (Some(TypeDef::Aggregate(l)), true) => {
                        let n = Literal::u64_unsuffixed(l.size);
                        quote!(#n)
                    }
                    _ => {
                        let rust = self.names.rust_type(&pointee);
                        quote!(::core::mem::size_of::<#rust>() as u16)
                    }
                };
                (VALUE, value, size)
            }
            _ => none,
        }
    }

    /// The tracing wrapper of function `index`; its entry in the tables is
    /// recorded (call it in slot order).
    pub fn wrapper(&mut self, index: u32, f: &Export) -> TokenStream {
        let proto = f.proto;
        let name = field_ident(&proto.name);
        let params = self.names.params(proto);
        let first = self.params.len() as u32;
        for (i, p) in proto.params.iter().enumerate() {
            let label = self.intern(&p.name);
            let (kind, index) = self.value_code(&p.ty);
            let (output, (out_kind, out_index), out_size) = self.output_code(&p.ty, f.roles.get(i));
            self.params.push(
                quote!(P::new(#label, #kind, #index, #output, #out_kind, #out_index, #out_size)),
            );
        }
        let count = proto.params.len() as u16;
        let (returns, (kind, ret_index)) = if proto.returns.is_void() {
            (false, (0, 0))
        } else {
            (true, self.value_code(&proto.returns))
        };
        self.functions.insert(
            index,
            quote!(F::new(#first, #count, #returns, #kind, #ret_index)),
        );
        if proto.returns.is_void() {
            quote!(::cudastub_runtime::tracer!(super::SHIM, #index, #name(#(#params),*));)
        } else {
            let ret = self.names.rust_type(&proto.returns);
            quote!(::cudastub_runtime::tracer!(super::SHIM, #index, #name(#(#params),*) -> #ret);)
        }
    }
}

/// The largest struct an output shows by value (`cudastub_runtime::MAX_SHOWN_BYTES`).
const MAX_SHOWN_BYTES: u64 = 256;

/// `const char *` (the pointer itself may be `const` too): a string the
/// caller hands in, or one the function returns. A plain `char *` is an
/// output buffer, unfilled when the call fails: never decoded.
pub fn is_input_string(ty: &CType) -> bool {
    ty.is_const && ty.base == "char" && ty.pointers.len() == 1
}
