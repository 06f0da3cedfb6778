//! Prototypes and types from C headers: bindgen parses the headers, and its
//! Rust output is read back with `syn` into the manifest's C spelling.
//!
//! bindgen runs with C naming (`struct_X`, `union_X`, `enum_X::Type`), so
//! that every C spelling survives the trip: `struct cudaMemLocation` and the
//! typedef `dim3` stay distinct. Layouts come from bindgen's own layout
//! assertions, which clang computed.

use std::collections::BTreeMap;
use std::path::Path;

use syn::{Expr, ForeignItem, Item, Lit, Type};

use crate::ctype::{CType, Decl, Prototype};
use crate::manifest::{Field, Layout, TypeDef};

/// Everything one header parse declared.
#[derive(Default, Debug)]
pub struct Declarations {
    /// Functions by name.
    pub functions: BTreeMap<String, Prototype>,
    /// Types by C spelling (`dim3`, `struct dim3`, `enum cudaError`).
    pub types: BTreeMap<String, TypeDef>,
}

/// Runs bindgen over `header` with the include directories and macros, and
/// reads back what it declared.
pub fn parse_header(
    header: &Path,
    include_dirs: &[&Path],
    defines: &[String],
) -> Result<Declarations, String> {
    let mut args: Vec<String> = include_dirs
        .iter()
        .map(|d| format!("-I{}", d.display()))
        .collect();
    args.extend(defines.iter().map(|d| format!("-D{d}")));
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_args(args)
        .c_naming(true)
        .default_enum_style(bindgen::EnumVariation::ModuleConsts)
        .generate_comments(false)
        .layout_tests(true)
        .derive_debug(false)
        .generate()
        .map_err(|e| format!("bindgen failed on {}: {e}", header.display()))?;
    let file = syn::parse_file(&bindings.to_string())
        .map_err(|e| format!("cannot read bindgen's output for {}: {e}", header.display()))?;
    Ok(read_items(&file.items))
}

fn read_items(items: &[Item]) -> Declarations {
    let mut d = Declarations::default();
    let mut layouts: BTreeMap<String, (u64, u64, BTreeMap<String, u64>)> = BTreeMap::new();
    let mut aggregates: Vec<(String, Vec<(String, Type)>)> = Vec::new();
    for item in items {
        match item {
            Item::ForeignMod(m) => {
                for fi in &m.items {
                    if let ForeignItem::Fn(f) = fi
                        && let Some(p) =
                            prototype(&f.sig.ident.to_string(), &f.sig.inputs, &f.sig.output)
                    {
                        d.functions.insert(p.name.clone(), p);
                    }
                }
            }
            Item::Type(t) => {
                let name = t.ident.to_string();
                if let Some(def) = typedef(&t.ty) {
                    d.types.insert(name, def);
                }
            }
            Item::Struct(s) => {
                let fields = match &s.fields {
                    syn::Fields::Named(n) => n
                        .named
                        .iter()
                        .map(|f| {
                            (
                                f.ident.as_ref().map(|i| i.to_string()).unwrap_or_default(),
                                f.ty.clone(),
                            )
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                aggregates.push((s.ident.to_string(), fields));
            }
            Item::Union(u) => {
                let fields = u
                    .fields
                    .named
                    .iter()
                    .map(|f| {
                        (
                            f.ident.as_ref().map(|i| i.to_string()).unwrap_or_default(),
                            f.ty.clone(),
                        )
                    })
                    .collect();
                aggregates.push((u.ident.to_string(), fields));
            }
            Item::Mod(m) => {
                let name = m.ident.to_string();
                // `enum_X` for `enum X`; a bare name for `typedef enum { … } X`.
                if let Some((_, content)) = &m.content {
                    let c_name = match name.strip_prefix("enum_") {
                        Some(tag) => format!("enum {}", anon_name(tag)),
                        None => name.clone(),
                    };
                    read_enum(&mut d, c_name, content);
                }
            }
            Item::Const(c) if c.ident == "_" => read_layout_assertions(&c.expr, &mut layouts),
            // `typedef enum X Y;` comes out as `pub use self::enum_X::Type as Y;`.
            Item::Use(u) => {
                if let Some((tag, alias)) = enum_alias(&u.tree) {
                    d.types.insert(
                        alias,
                        TypeDef::Typedef(CType::named(format!("enum {}", anon_name(&tag)))),
                    );
                }
            }
            _ => {}
        }
    }
    // Sizes by C spelling, for fields bindgen asserts no offset for
    // (anonymous members).
    let sizes: BTreeMap<String, (u64, u64)> = layouts
        .iter()
        .filter_map(|(rust, (size, align, _))| Some((tag_name(rust)?, (*size, *align))))
        .collect();
    for (rust_name, fields) in aggregates {
        let Some(c_name) = tag_name(&rust_name) else {
            continue;
        };
        let Some((size, align, offsets)) = layouts.get(&rust_name) else {
            // Incomplete types have no layout assertions.
            d.types.insert(c_name, TypeDef::Opaque);
            continue;
        };
        if fields
            .iter()
            .any(|(n, _)| n == "_unused" || n.starts_with("_bitfield"))
        {
            d.types.insert(c_name, TypeDef::Opaque);
            continue;
        }
        let is_union = c_name.starts_with("union ");
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        for (name, ty) in fields {
            let (ty, array) = match &ty {
                Type::Array(a) => (ctype(&a.elem), array_len(&a.len)),
                other => (ctype(other), None),
            };
            let Some(ty) = ty else { continue };
            let Some((fsize, falign)) = size_align(&ty, &d.types, &sizes) else {
                continue;
            };
            let offset = match offsets.get(&name) {
                Some(o) => *o,
                None if is_union => 0,
                None => cursor.div_ceil(falign) * falign,
            };
            cursor = offset + fsize * array.unwrap_or(1);
            out.push(Field {
                offset,
                decl: Decl {
                    ty,
                    name: c_identifier(&name),
                    array,
                },
            });
        }
        d.types.insert(
            c_name,
            TypeDef::Aggregate(Layout {
                size: *size,
                align: *align,
                fields: out,
            }),
        );
    }
    d
}

/// `self::enum_X::Type as Y` → (`X`, `Y`).
fn enum_alias(tree: &syn::UseTree) -> Option<(String, String)> {
    let mut tree = tree;
    let mut tag = None;
    loop {
        match tree {
            syn::UseTree::Path(p) => {
                if let Some(t) = p.ident.to_string().strip_prefix("enum_") {
                    tag = Some(t.to_string());
                }
                tree = &p.tree;
            }
            syn::UseTree::Rename(r) if r.ident == "Type" => {
                return Some((tag?, r.rename.to_string()));
            }
            _ => return None,
        }
    }
}

fn read_enum(d: &mut Declarations, c_name: String, items: &[Item]) {
    let mut repr = None;
    let mut values = BTreeMap::new();
    for item in items {
        match item {
            Item::Type(t) if t.ident == "Type" => repr = ctype(&t.ty).map(|t| t.base),
            Item::Const(c) => {
                if let Some(v) = int_value(&c.expr) {
                    values.insert(c.ident.to_string(), v);
                }
            }
            _ => {}
        }
    }
    if let Some(repr) = repr {
        d.types.insert(c_name, TypeDef::Enum { repr, values });
    }
}

fn int_value(e: &Expr) -> Option<i64> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Int(i) => i.base10_parse::<i64>().ok(),
            _ => None,
        },
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => int_value(&u.expr).map(|v| -v),
        Expr::Paren(p) => int_value(&p.expr),
        Expr::Cast(c) => int_value(&c.expr),
        _ => None,
    }
}

/// Reads `["Size of X"][size_of::<X>() - 12usize];` and friends.
fn read_layout_assertions(
    e: &Expr,
    layouts: &mut BTreeMap<String, (u64, u64, BTreeMap<String, u64>)>,
) {
    let Expr::Block(b) = e else { return };
    for stmt in &b.block.stmts {
        let expr = match stmt {
            syn::Stmt::Expr(e, _) => e,
            _ => continue,
        };
        let Expr::Index(ix) = expr else { continue };
        let Expr::Array(arr) = &*ix.expr else {
            continue;
        };
        let Some(Expr::Lit(label)) = arr.elems.first() else {
            continue;
        };
        let Lit::Str(label) = &label.lit else {
            continue;
        };
        let Expr::Binary(bin) = &*ix.index else {
            continue;
        };
        let Some(value) = int_value(&bin.right).and_then(|v| u64::try_from(v).ok()) else {
            continue;
        };
        let label = label.value();
        if let Some(name) = label.strip_prefix("Size of ") {
            layouts.entry(name.to_string()).or_default().0 = value;
        } else if let Some(name) = label.strip_prefix("Alignment of ") {
            layouts.entry(name.to_string()).or_default().1 = value;
        } else if let Some(rest) = label.strip_prefix("Offset of field: ")
            && let Some((name, field)) = rest.split_once("::")
        {
            layouts
                .entry(name.to_string())
                .or_default()
                .2
                .insert(field.to_string(), value);
        }
    }
}

/// Size and alignment of a C type on LP64 targets.
fn size_align(
    ty: &CType,
    types: &BTreeMap<String, TypeDef>,
    aggregates: &BTreeMap<String, (u64, u64)>,
) -> Option<(u64, u64)> {
    if ty.is_pointer() {
        return Some((8, 8));
    }
    let fixed = match ty.base.as_str() {
        "char" | "signed char" | "unsigned char" | "_Bool" | "int8_t" | "uint8_t" => 1,
        "short" | "unsigned short" | "int16_t" | "uint16_t" => 2,
        "int" | "unsigned int" | "float" | "int32_t" | "uint32_t" => 4,
        "long" | "unsigned long" | "long long" | "unsigned long long" | "double" | "size_t"
        | "ssize_t" | "uintptr_t" | "intptr_t" | "int64_t" | "uint64_t" => 8,
        base => {
            return match types.get(base) {
                Some(TypeDef::Typedef(t)) => size_align(t, types, aggregates),
                Some(TypeDef::Enum { repr, .. }) => {
                    size_align(&CType::named(repr.clone()), types, aggregates)
                }
                Some(TypeDef::FunctionPointer(_)) => Some((8, 8)),
                _ => aggregates.get(base).copied(),
            };
        }
    };
    Some((fixed, fixed))
}

fn array_len(e: &Expr) -> Option<u64> {
    int_value(e).and_then(|v| u64::try_from(v).ok())
}

fn prototype(
    name: &str,
    inputs: &syn::punctuated::Punctuated<syn::FnArg, syn::token::Comma>,
    output: &syn::ReturnType,
) -> Option<Prototype> {
    let returns = match output {
        syn::ReturnType::Default => CType::named("void"),
        syn::ReturnType::Type(_, t) => ctype(t)?,
    };
    let mut params = Vec::new();
    for (i, arg) in inputs.iter().enumerate() {
        let syn::FnArg::Typed(pt) = arg else {
            return None;
        };
        let pname = match &*pt.pat {
            syn::Pat::Ident(id) => c_identifier(&id.ident.to_string()),
            _ => format!("arg{}", i + 1),
        };
        params.push(Decl {
            ty: ctype(&pt.ty)?,
            name: pname,
            array: None,
        });
    }
    Some(Prototype {
        returns,
        name: name.to_string(),
        params,
    })
}

fn bare_fn_prototype(f: &syn::TypeFnPtr) -> Option<Prototype> {
    let returns = match &f.output {
        syn::ReturnType::Default => CType::named("void"),
        syn::ReturnType::Type(_, t) => ctype(t)?,
    };
    let mut params = Vec::new();
    for (i, arg) in f.inputs.iter().enumerate() {
        let name = arg.name.as_ref().map_or_else(
            || format!("arg{}", i + 1),
            |(n, _)| c_identifier(&n.to_string()),
        );
        params.push(Decl {
            ty: ctype(&arg.ty)?,
            name,
            array: None,
        });
    }
    Some(Prototype {
        returns,
        name: String::new(),
        params,
    })
}

fn typedef(ty: &Type) -> Option<TypeDef> {
    if let Some(f) = option_fn(ty) {
        return bare_fn_prototype(f).map(TypeDef::FunctionPointer);
    }
    ctype(ty).map(TypeDef::Typedef)
}

/// `::std::option::Option<unsafe extern "C" fn(..)>` → the `fn` type.
fn option_fn(ty: &Type) -> Option<&syn::TypeFnPtr> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(Type::FnPtr(f)) => Some(f),
        _ => None,
    }
}

/// A Rust type from bindgen's output, spelled in C.
fn ctype(ty: &Type) -> Option<CType> {
    match ty {
        Type::Ptr(p) => {
            let mut inner = ctype(&p.elem)?;
            if matches!(p.mutability, syn::PointerMutability::Const(_)) {
                match inner.pointers.last_mut() {
                    Some(last) => *last = true,
                    None => inner.is_const = true,
                }
            }
            inner.pointers.push(false);
            Some(inner)
        }
        Type::Path(p) => {
            let segs: Vec<String> = p
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            let last = segs.last()?.as_str();
            if segs.len() >= 2 && last == "Type" {
                let module = &segs[segs.len() - 2];
                return Some(CType::named(match module.strip_prefix("enum_") {
                    Some(tag) => format!("enum {}", anon_name(tag)),
                    None => module.clone(),
                }));
            }
            if option_fn(ty).is_some() {
                // An inline function pointer; the CUDA headers always name them.
                return None;
            }
            let base = match last {
                "c_void" => "void",
                "c_char" => "char",
                "c_schar" => "signed char",
                "c_uchar" => "unsigned char",
                "c_short" => "short",
                "c_ushort" => "unsigned short",
                "c_int" => "int",
                "c_uint" => "unsigned int",
                "c_long" => "long",
                "c_ulong" => "unsigned long",
                "c_longlong" => "long long",
                "c_ulonglong" => "unsigned long long",
                "c_float" | "f32" => "float",
                "c_double" | "f64" => "double",
                "usize" => "size_t",
                "isize" => "ssize_t",
                "u8" => "uint8_t",
                "u16" => "uint16_t",
                "u32" => "uint32_t",
                "u64" => "uint64_t",
                "i8" => "int8_t",
                "i16" => "int16_t",
                "i32" => "int32_t",
                "i64" => "int64_t",
                "bool" => "_Bool",
                other => {
                    return Some(CType::named(
                        tag_name(other).unwrap_or_else(|| other.to_string()),
                    ));
                }
            };
            Some(CType::named(base))
        }
        Type::Tuple(t) if t.elems.is_empty() => Some(CType::named("void")),
        _ => None,
    }
}

/// `struct_dim3` → `struct dim3`; `union_X__bindgen_ty_1` → `union X__anon_1`.
fn tag_name(rust: &str) -> Option<String> {
    for tag in ["struct", "union", "enum"] {
        if let Some(rest) = rust.strip_prefix(tag).and_then(|r| r.strip_prefix('_')) {
            return Some(format!("{tag} {}", anon_name(rest)));
        }
    }
    None
}

/// bindgen's names for anonymous members, in the manifest's spelling.
fn anon_name(s: &str) -> String {
    s.replace("__bindgen_ty_", "__anon_")
        .replace("__bindgen_anon_", "__anon_")
}

/// Undoes bindgen's renaming of C names that are Rust keywords (`type` → `type_`).
fn c_identifier(rust: &str) -> String {
    const RUST_KEYWORDS: &[&str] = &[
        "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
        "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
        "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
        "ref", "return", "self", "static", "struct", "super", "trait", "true", "try", "type",
        "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
    ];
    let name = anon_name(rust);
    match name.strip_suffix('_') {
        Some(stem) if RUST_KEYWORDS.contains(&stem) => stem.to_string(),
        _ => name,
    }
}
