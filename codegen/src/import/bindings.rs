//! Prototypes and types from C headers: bindgen parses the headers, and its
//! Rust output is read back with `syn` into the manifest's C spelling.
//!
//! bindgen runs with C naming (`struct_X`, `union_X`, `enum_X::Type`), so
//! that every C spelling survives the trip: `struct cudaMemLocation` and the
//! typedef `dim3` stay distinct. Layouts come from bindgen's own layout
//! assertions, which clang computed.
//!
//! A function pointer written inline (`int (*callback)(void *, void *)` as a
//! parameter or field) has no name in C; the manifest names it
//! `OWNER_MEMBER_fn` (`nvrtcSetFlowCallback_callback_fn`) and records it as a
//! `function_pointer` type like any named one. What the model cannot hold
//! (variadic functions, bit-fields, 128-bit integers, arrays of arrays) is
//! recorded in [`Declarations::unrepresentable`] with the reason, so the
//! importer can say why an export has no prototype instead of dropping it.

use std::collections::BTreeMap;
use std::path::Path;

use syn::{Expr, ForeignItem, Item, Lit, Type};

use crate::ctype::{CType, Decl, Prototype};
use crate::manifest::{Field, Language, Layout, TypeDef};

/// Everything one header parse declared.
#[derive(Default, Debug)]
pub struct Declarations {
    /// Functions by name.
    pub functions: BTreeMap<String, Prototype>,
    /// Types by C spelling (`dim3`, `struct dim3`, `enum cudaError`).
    pub types: BTreeMap<String, TypeDef>,
    /// Declarations the model cannot represent, by name, with the reason.
    pub unrepresentable: BTreeMap<String, String>,
}

/// Runs bindgen over `header`, after the `prelude` headers (`-include`), with
/// the include directories and macros, as
/// `language`, and reads back what it declared.
pub fn parse_header(
    header: &Path,
    include_dirs: &[&Path],
    prelude: &[String],
    defines: &[String],
    language: Language,
) -> Result<Declarations, String> {
    let mut args: Vec<String> = match language {
        Language::C => Vec::new(),
        // Only `-x c++` makes clang read a `.h` file as C++.
        Language::Cxx => vec!["-x".into(), "c++".into(), "-std=c++17".into()],
    };
    args.extend(include_dirs.iter().map(|d| format!("-I{}", d.display())));
    args.extend(defines.iter().map(|d| format!("-D{d}")));
    for p in prelude {
        args.extend(["-include".to_string(), p.clone()]);
    }
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
                    let ForeignItem::Fn(f) = fi else { continue };
                    // C++ functions (methods, operators of `__half`) are
                    // linked by mangled names: no C library exports them.
                    if has_mangled_link_name(&f.attrs) {
                        continue;
                    }
                    let name = f.sig.ident.to_string();
                    let read = if f.sig.variadic.is_some() {
                        Err(
                            "it is variadic (`...`), which a prototype of the manifest cannot say"
                                .to_string(),
                        )
                    } else {
                        prototype(&mut d.types, &name, &f.sig.inputs, &f.sig.output)
                    };
                    match read {
                        Ok(p) => {
                            d.functions.insert(name, p);
                        }
                        Err(why) => {
                            d.unrepresentable.insert(name, why);
                        }
                    }
                }
            }
            Item::Type(t) => {
                let name = t.ident.to_string();
                match typedef(&mut d.types, &name, &t.ty) {
                    Ok(def) => {
                        d.types.insert(name, def);
                    }
                    Err(why) => {
                        d.unrepresentable.insert(name, why);
                    }
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
            Item::Use(u) => match enum_alias(&u.tree) {
                Some((Some(tag), alias)) => {
                    d.types.insert(
                        alias,
                        TypeDef::Typedef(CType::named(format!("enum {}", anon_name(&tag)))),
                    );
                }
                // `typedef CUlaunchAttributeID CUstreamAttrID;`: a typedef of
                // an enum's typedef.
                Some((None, alias)) => {
                    if let syn::UseTree::Path(p) = &u.tree
                        && let syn::UseTree::Rename(r) = p.tree.as_ref()
                    {
                        d.types
                            .insert(alias, TypeDef::Typedef(CType::named(r.ident.to_string())));
                    }
                }
                None => {}
            },
            _ => {}
        }
    }
    // Sizes by C spelling, for fields bindgen asserts no offset for
    // (anonymous members).
    let sizes: BTreeMap<String, (u64, u64)> = layouts
        .iter()
        .map(|(rust, (size, align, _))| (c_aggregate_name(rust), (*size, *align)))
        .collect();
    for (rust_name, fields) in aggregates {
        // C names every aggregate with its tag; C++ (a `language: c++`
        // pass) does not, and there `__half` is the type's whole name.
        let c_name = c_aggregate_name(&rust_name);
        let Some((size, align, offsets)) = layouts.get(&rust_name) else {
            // Incomplete types have no layout assertions.
            d.types.insert(c_name, TypeDef::Opaque);
            continue;
        };
        if fields.iter().any(|(n, _)| n == "_unused") {
            d.types.insert(c_name, TypeDef::Opaque);
            continue;
        }
        match aggregate_layout(
            &mut d.types,
            &c_name,
            fields,
            (*size, *align),
            offsets,
            &sizes,
        ) {
            Ok(layout) => {
                d.types.insert(c_name, TypeDef::Aggregate(layout));
            }
            Err(why) => {
                // Through a pointer it needs no layout; by value the
                // importer reports `why`.
                d.types.insert(c_name.clone(), TypeDef::Opaque);
                d.unrepresentable.insert(c_name, why);
            }
        }
    }
    d
}

/// `struct_X` → `struct X`; a name with no tag (C++) stays as it is.
fn c_aggregate_name(rust: &str) -> String {
    tag_name(rust).unwrap_or_else(|| anon_name(rust))
}

/// The fields of one aggregate with their offsets.
fn aggregate_layout(
    types: &mut BTreeMap<String, TypeDef>,
    c_name: &str,
    fields: Vec<(String, Type)>,
    (size, align): (u64, u64),
    offsets: &BTreeMap<String, u64>,
    sizes: &BTreeMap<String, (u64, u64)>,
) -> Result<Layout, String> {
    if fields.iter().any(|(n, _)| n.starts_with("_bitfield")) {
        return Err("it has bit-fields, which a layout of the manifest cannot say".to_string());
    }
    let owner = c_name.rsplit(' ').next().unwrap_or(c_name).to_string();
    let is_union = c_name.starts_with("union ");
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    for (name, ty) in fields {
        let field = c_identifier(&name);
        let synth = format!("{owner}_{field}");
        let (ty, array) = match &ty {
            Type::Array(a) => (ctype(types, &synth, &a.elem), array_len(&a.len)),
            other => (ctype(types, &synth, other), None),
        };
        let ty = ty.map_err(|why| format!("field `{field}`: {why}"))?;
        let (fsize, falign) = size_align(&ty, &*types, sizes)
            .ok_or_else(|| format!("the size of field `{field}` (`{ty}`) is unknown"))?;
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
                name: field,
                array,
            },
        });
    }
    Ok(Layout {
        size,
        align,
        fields: out,
    })
}

/// `true` for a `#[link_name = "\u{1}_Z…"]` attribute: a C++ mangled name.
fn has_mangled_link_name(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("link_name")
            && matches!(&a.meta, syn::Meta::NameValue(nv)
                if matches!(&nv.value, Expr::Lit(l)
                    if matches!(&l.lit, Lit::Str(s) if s.value().trim_start_matches('\u{1}').starts_with("_Z"))))
    })
}

/// `self::enum_X::Type as Y` → (`Some(X)`, `Y`); `self::X as Y` (a typedef
/// of an enum's typedef) → (`None`, `Y`).
fn enum_alias(tree: &syn::UseTree) -> Option<(Option<String>, String)> {
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
                return Some((Some(tag?), r.rename.to_string()));
            }
            syn::UseTree::Rename(r) if tag.is_none() => {
                return Some((None, r.rename.to_string()));
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
            Item::Type(t) if t.ident == "Type" => {
                repr = ctype(&mut d.types, &c_name, &t.ty).ok().map(|t| t.base)
            }
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
                Some(TypeDef::Array { element, length }) => size_align(element, types, aggregates)
                    .map(|(size, align)| (size * length, align)),
                _ => aggregates.get(base).copied(),
            };
        }
    };
    Some((fixed, fixed))
}

fn array_len(e: &Expr) -> Option<u64> {
    int_value(e).and_then(|v| u64::try_from(v).ok())
}

/// A function's prototype; inline function pointers among its parameters
/// become types named `FUNCTION_PARAM_fn` in `types`.
fn prototype(
    types: &mut BTreeMap<String, TypeDef>,
    name: &str,
    inputs: &syn::punctuated::Punctuated<syn::FnArg, syn::token::Comma>,
    output: &syn::ReturnType,
) -> Result<Prototype, String> {
    let returns = match output {
        syn::ReturnType::Default => CType::named("void"),
        syn::ReturnType::Type(_, t) => ctype(types, &format!("{name}_return"), t)
            .map_err(|why| format!("its return type: {why}"))?,
    };
    let mut params = Vec::new();
    for (i, arg) in inputs.iter().enumerate() {
        let syn::FnArg::Typed(pt) = arg else {
            return Err("it has a `self` parameter (a C++ method)".to_string());
        };
        let pname = match &*pt.pat {
            syn::Pat::Ident(id) => c_identifier(&id.ident.to_string()),
            _ => format!("arg{}", i + 1),
        };
        let ty = ctype(types, &format!("{name}_{pname}"), &pt.ty)
            .map_err(|why| format!("parameter `{pname}`: {why}"))?;
        params.push(Decl {
            ty,
            name: pname,
            array: None,
        });
    }
    Ok(Prototype {
        returns,
        name: name.to_string(),
        params,
        unknown_params: false,
    })
}

/// The signature of a function pointer type; `owner` names the function
/// pointer types its own parameters write inline.
fn bare_fn_prototype(
    types: &mut BTreeMap<String, TypeDef>,
    owner: &str,
    f: &syn::TypeFnPtr,
) -> Result<Prototype, String> {
    if f.variadic.is_some() {
        return Err("a variadic (`...`) function pointer".to_string());
    }
    let returns = match &f.output {
        syn::ReturnType::Default => CType::named("void"),
        syn::ReturnType::Type(_, t) => ctype(types, &format!("{owner}_return"), t)?,
    };
    let mut params = Vec::new();
    for (i, arg) in f.inputs.iter().enumerate() {
        let name = arg.name.as_ref().map_or_else(
            || format!("arg{}", i + 1),
            |(n, _)| c_identifier(&n.to_string()),
        );
        params.push(Decl {
            ty: ctype(types, &format!("{owner}_{name}"), &arg.ty)?,
            name,
            array: None,
        });
    }
    Ok(Prototype {
        returns,
        name: String::new(),
        params,
        unknown_params: false,
    })
}

/// What `typedef … name;` defines.
fn typedef(
    types: &mut BTreeMap<String, TypeDef>,
    name: &str,
    ty: &Type,
) -> Result<TypeDef, String> {
    if let Some(f) = option_fn(ty) {
        return bare_fn_prototype(types, name, f).map(TypeDef::FunctionPointer);
    }
    if let Type::Array(a) = ty {
        let length = array_len(&a.len).ok_or("an array whose length is not a number")?;
        let element = ctype(types, name, &a.elem).map_err(|why| format!("its elements: {why}"))?;
        return Ok(TypeDef::Array { element, length });
    }
    ctype(types, name, ty).map(TypeDef::Typedef)
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
///
/// A function pointer written inline has no C name: it is recorded in
/// `types` as `SYNTH_fn` (`SYNTH` says whose parameter or field it is) and
/// named so.
fn ctype(types: &mut BTreeMap<String, TypeDef>, synth: &str, ty: &Type) -> Result<CType, String> {
    match ty {
        Type::Ptr(p) => {
            let mut inner = ctype(types, synth, &p.elem)?;
            if matches!(p.mutability, syn::PointerMutability::Const(_)) {
                match inner.pointers.last_mut() {
                    Some(last) => *last = true,
                    None => inner.is_const = true,
                }
            }
            inner.pointers.push(false);
            Ok(inner)
        }
        Type::Path(p) => {
            let segs: Vec<String> = p
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            let last = segs.last().ok_or("an empty type path")?.as_str();
            if segs.len() >= 2 && last == "Type" {
                let module = &segs[segs.len() - 2];
                return Ok(CType::named(match module.strip_prefix("enum_") {
                    Some(tag) => format!("enum {}", anon_name(tag)),
                    None => module.clone(),
                }));
            }
            if let Some(f) = option_fn(ty) {
                let name = format!("{synth}_fn");
                let def = TypeDef::FunctionPointer(bare_fn_prototype(types, synth, f)?);
                match types.get(&name) {
                    Some(existing) if *existing != def => {
                        return Err(format!(
                            "an inline function pointer, named `{name}`, but a different type has that name"
                        ));
                    }
                    _ => {
                        types.insert(name.clone(), def);
                    }
                }
                return Ok(CType::named(name));
            }
            if p.path.segments.iter().any(|s| !s.arguments.is_none()) {
                return Err(format!(
                    "bindgen's generic type `{}` has no C spelling",
                    quote::ToTokens::to_token_stream(ty)
                ));
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
                "u128" | "i128" | "f128" | "f16" => {
                    return Err(format!("bindgen's `{last}` has no type of the manifest"));
                }
                other => {
                    return Ok(CType::named(
                        tag_name(other).unwrap_or_else(|| other.to_string()),
                    ));
                }
            };
            Ok(CType::named(base))
        }
        Type::Tuple(t) if t.elems.is_empty() => Ok(CType::named("void")),
        Type::Array(_) => Err("an array of arrays (or an array where C has none)".to_string()),
        other => Err(format!(
            "bindgen's type `{}` has no C spelling",
            quote::ToTokens::to_token_stream(other)
        )),
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
