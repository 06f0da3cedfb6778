//! C types of one major as Rust: the `types` module of a generated shim.
//!
//! Every type a prototype names gets a Rust definition with the same C ABI:
//! typedefs become aliases, enums an integer alias plus one constant per
//! value, aggregates `#[repr(C)]` structs or unions whose size, alignment and
//! field offsets are asserted at compile time against the layout the manifest
//! recorded from the headers, and types only ever pointed to become opaque.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

use crate::ctype::{CType, Decl, Prototype};
use crate::manifest::{Major, TypeDef, sorted_values};

/// Maps the C type names of one major to Rust names.
pub struct RustNames<'a> {
    major: &'a Major,
}

impl<'a> RustNames<'a> {
    /// Names for the types of `major`.
    pub fn new(major: &'a Major) -> Self {
        RustNames { major }
    }

    /// The Rust identifier of a C type name (`struct dim3` → `dim3`).
    ///
    /// A tag keeps its bare name unless a typedef of that name means
    /// something else; `typedef struct X X` then needs no alias at all.
    pub fn type_ident(&self, c_name: &str) -> Ident {
        match c_name
            .split_once(' ')
            .filter(|(tag, _)| matches!(*tag, "struct" | "union" | "enum"))
        {
            Some((tag, name)) => {
                let clash = match self.major.types.get(name) {
                    Some(TypeDef::Typedef(t)) => {
                        t.base != c_name || !t.pointers.is_empty() || t.is_const
                    }
                    Some(_) => true,
                    None => false,
                };
                if clash {
                    format_ident!("{tag}_{name}")
                } else {
                    ident(name)
                }
            }
            None => ident(c_name),
        }
    }

    /// A C type as a Rust type.
    pub fn rust_type(&self, ty: &CType) -> TokenStream {
        let mut out = self.base(&ty.base);
        for (i, _) in ty.pointers.iter().enumerate() {
            let pointee_const = if i == 0 {
                ty.is_const
            } else {
                ty.pointers[i - 1]
            };
            out = if pointee_const {
                quote!(*const #out)
            } else {
                quote!(*mut #out)
            };
        }
        out
    }

    /// A return type: nothing for `void`.
    pub fn return_type(&self, ty: &CType) -> TokenStream {
        if ty.is_void() {
            quote!()
        } else {
            let t = self.rust_type(ty);
            quote!(-> #t)
        }
    }

    /// `name: Type, …` for a prototype's parameters.
    pub fn params(&self, p: &Prototype) -> Vec<TokenStream> {
        p.params
            .iter()
            .map(|d| {
                let name = field_ident(&d.name);
                let ty = self.rust_type(&d.ty);
                quote!(#name: #ty)
            })
            .collect()
    }

    /// `unsafe extern "C" fn(params) -> ret`.
    pub fn fn_type(&self, p: &Prototype) -> TokenStream {
        let params = self.params(p);
        let ret = self.return_type(&p.returns);
        quote!(unsafe extern "C" fn(#(#params),*) #ret)
    }

    fn base(&self, base: &str) -> TokenStream {
        match base {
            "void" => quote!(::core::ffi::c_void),
            "char" => quote!(::core::ffi::c_char),
            "signed char" => quote!(::core::ffi::c_schar),
            "unsigned char" => quote!(::core::ffi::c_uchar),
            "short" => quote!(::core::ffi::c_short),
            "unsigned short" => quote!(::core::ffi::c_ushort),
            "int" => quote!(::core::ffi::c_int),
            "unsigned int" | "unsigned" => quote!(::core::ffi::c_uint),
            "long" => quote!(::core::ffi::c_long),
            "unsigned long" => quote!(::core::ffi::c_ulong),
            "long long" => quote!(::core::ffi::c_longlong),
            "unsigned long long" => quote!(::core::ffi::c_ulonglong),
            "float" => quote!(f32),
            "double" => quote!(f64),
            "_Bool" => quote!(bool),
            "size_t" | "uintptr_t" => quote!(usize),
            "ssize_t" | "intptr_t" => quote!(isize),
            "int8_t" => quote!(i8),
            "int16_t" => quote!(i16),
            "int32_t" => quote!(i32),
            "int64_t" => quote!(i64),
            "uint8_t" => quote!(u8),
            "uint16_t" => quote!(u16),
            "uint32_t" => quote!(u32),
            "uint64_t" => quote!(u64),
            other => {
                let id = self.type_ident(other);
                quote!(types::#id)
            }
        }
    }

    /// The `types` module: one definition per C type of the major.
    pub fn types_module(&self) -> TokenStream {
        let mut items = Vec::new();
        for (name, def) in &self.major.types {
            let id = self.type_ident(name);
            match def {
                TypeDef::Typedef(target) => {
                    // `typedef struct X X;` is the tag itself in Rust.
                    let names_a_tag = target.base.starts_with("struct ")
                        || target.base.starts_with("union ")
                        || target.base.starts_with("enum ");
                    if names_a_tag
                        && target.pointers.is_empty()
                        && !target.is_const
                        && self.type_ident(&target.base) == id
                    {
                        continue;
                    }
                    let t = self.rust_type(target);
                    items.push(quote!(pub type #id = #t;));
                }
                TypeDef::FunctionPointer(p) => {
                    let f = self.fn_type(p);
                    items.push(quote!(pub type #id = ::core::option::Option<#f>;));
                }
                TypeDef::Enum { repr, values } => {
                    let r = self.rust_type(&CType::named(repr.clone()));
                    items.push(quote!(pub type #id = #r;));
                    for (vname, v) in sorted_values(values) {
                        let vid = ident(vname);
                        let lit = enum_literal(repr, v);
                        items.push(quote!(pub const #vid: #id = #lit;));
                    }
                }
                TypeDef::Array { element, length } => {
                    let t = self.rust_type(element);
                    let n = *length as usize;
                    items.push(quote!(pub type #id = [#t; #n];));
                }
                TypeDef::Opaque => {
                    items.push(quote! {
                        #[repr(C)]
                        pub struct #id { _opaque: [u8; 0] }
                    });
                }
                TypeDef::Aggregate(layout) => {
                    let fields: Vec<TokenStream> =
                        layout.fields.iter().map(|f| self.field(&f.decl)).collect();
                    let is_union = name.starts_with("union ");
                    let kw = if is_union {
                        quote!(union)
                    } else {
                        quote!(struct)
                    };
                    // The recorded alignment, always: C may align a type
                    // above its fields' (`float2` is 8, `double2` 16), and
                    // `align(N)` never lowers what the fields need.
                    let align = layout.align as usize;
                    let repr_align = proc_macro2::Literal::usize_unsuffixed(align);
                    items.push(quote! {
                        #[repr(C, align(#repr_align))]
                        #[derive(Clone, Copy)]
                        pub #kw #id { #(#fields),* }
                    });
                    let size = layout.size as usize;
                    let offsets = layout.fields.iter().map(|f| {
                        let fid = field_ident(&f.decl.name);
                        let off = f.offset as usize;
                        quote!(::core::mem::offset_of!(#id, #fid) == #off)
                    });
                    let message = format!(
                        "the Rust layout of `{name}` differs from the C layout in the manifest"
                    );
                    items.push(quote! {
                        const _: () = assert!(
                            ::core::mem::size_of::<#id>() == #size && ::core::mem::align_of::<#id>() == #align #(&& #offsets)*,
                            #message
                        );
                    });
                }
            }
        }
        quote! {
            /// The C types of this major's prototypes, with their C layouts.
            #[allow(non_camel_case_types, non_snake_case, non_upper_case_globals, unused_imports, dead_code, clippy::all)]
            pub mod types {
                use super::types;
                #(#items)*
            }
        }
    }

    fn field(&self, d: &Decl) -> TokenStream {
        let id = field_ident(&d.name);
        let ty = self.rust_type(&d.ty);
        match d.array {
            Some(n) => {
                let n = n as usize;
                quote!(pub #id: [#ty; #n])
            }
            None => quote!(pub #id: #ty),
        }
    }
}

fn enum_literal(repr: &str, v: i64) -> TokenStream {
    let unsigned = repr.starts_with("unsigned") || repr.starts_with("uint");
    if unsigned && v < 0 {
        // C converts to the unsigned type; so does `as`.
        let lit = proc_macro2::Literal::i64_unsuffixed(v);
        quote!((#lit) as _)
    } else {
        let lit = proc_macro2::Literal::i64_unsuffixed(v);
        quote!(#lit)
    }
}

/// An identifier for a C name; Rust keywords become raw identifiers
/// (`r#match`: a `#[no_mangle]` item of that name exports `match`), and the
/// few without a raw form (`self`, …) get a `_` appended, which only
/// parameters and fields may: the manifest rejects exports of those names
/// ([`crate::manifest::NOT_RAW_IDENTIFIERS`]).
pub fn field_ident(name: &str) -> Ident {
    if crate::manifest::NOT_RAW_IDENTIFIERS.contains(&name) {
        return format_ident!("{name}_");
    }
    // `gen` is reserved from edition 2024 on, which syn does not know.
    if name != "gen" && syn::parse_str::<Ident>(name).is_ok() {
        Ident::new(name, Span::call_site())
    } else {
        Ident::new_raw(name, Span::call_site())
    }
}

fn ident(name: &str) -> Ident {
    field_ident(name)
}
