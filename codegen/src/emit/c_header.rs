//! The C header of a shim's C implementations: `cudastub_impl.h`.
//!
//! It declares the `cudastub_impl_NAME` prototype of every function the
//! shim implements in C, and defines every C type those prototypes reach,
//! from the manifest's types of the major: enums with their values,
//! typedefs, function pointer types, and structs and unions with their
//! fields, whose size, alignment and offsets are asserted against the
//! layout the manifest recorded (`_Static_assert`, `static_assert` in C++). A C file that includes
//! it gets a compile error for an implementation whose prototype differs,
//! instead of a shim that calls it with the wrong arguments.
//!
//! The header stands in for NVIDIA's headers: a file includes one or the
//! other, since both define the same types.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::generated_banner;
use super::shim::plan::C_PREFIX;
use crate::ctype::{CType, Decl, Prototype};
use crate::manifest::{Major, TypeDef, sorted_values};

/// The file name of the header in `OUT_DIR`.
pub const HEADER_NAME: &str = "cudastub_impl.h";

/// The header declaring `cudastub_impl_NAME` for each prototype of
/// `implemented` (functions of one major whose types are in `major`), for
/// the library `library` at major `major_number`.
pub fn c_header(
    library: &str,
    major_number: u32,
    major: &Major,
    implemented: &[&Prototype],
) -> String {
    let mut w = Writer {
        major,
        declared: BTreeSet::new(),
        complete: BTreeSet::new(),
        tags: BTreeSet::new(),
        enums: BTreeMap::new(),
        body: String::new(),
    };
    for p in implemented {
        w.prototype_types(p);
    }
    let mut out = generated_banner("//");
    let guard = "CUDASTUB_IMPL_H";
    let _ = write!(
        out,
        "// The C implementations of the {library} shim, major {major_number}: the\n\
         // `{C_PREFIX}NAME` prototypes and the C types they use, from the manifest.\n\
         #ifndef {guard}\n#define {guard}\n\n\
         #include <stddef.h>\n#include <stdint.h>\n#include <sys/types.h>\n\n\
         #ifdef __cplusplus\n\
         #define CUDASTUB_LAYOUT(check, what) static_assert(check, what)\n\
         #define CUDASTUB_ALIGNOF(type) alignof(type)\n\
         extern \"C\" {{\n\
         #else\n\
         #define CUDASTUB_LAYOUT(check, what) _Static_assert(check, what)\n\
         #define CUDASTUB_ALIGNOF(type) _Alignof(type)\n\
         #endif\n\n"
    );
    // Tags first: any order of definitions may then point to any of them.
    for tag in &w.tags {
        let _ = writeln!(out, "{tag};");
    }
    if !w.tags.is_empty() {
        out.push('\n');
    }
    for text in w.enums.values() {
        out.push_str(text);
    }
    out.push_str(&w.body);
    for p in implemented {
        let mut decl = (*p).clone();
        decl.name = format!("{C_PREFIX}{}", p.name);
        let _ = writeln!(out, "{decl};");
    }
    let _ = write!(
        out,
        "\n#ifdef __cplusplus\n}}\n#endif\n\n#endif /* {guard} */\n"
    );
    out
}

/// Emits type definitions in an order C accepts: a type is declared
/// before its name is used, and complete before it is used by value.
struct Writer<'a> {
    major: &'a Major,
    /// Typedef names emitted.
    declared: BTreeSet<String>,
    /// Aggregates and typedefs whose definition is complete.
    complete: BTreeSet<String>,
    /// `struct X` / `union X` to declare up front.
    tags: BTreeSet<String>,
    /// Enum definitions, by tag (they depend on nothing).
    enums: BTreeMap<String, String>,
    /// Typedefs and aggregates, in dependency order.
    body: String,
}

impl Writer<'_> {
    fn prototype_types(&mut self, p: &Prototype) {
        self.use_type(&p.returns);
        for d in &p.params {
            self.use_type(&d.ty);
        }
    }

    /// Makes `ty` usable: its name declared, and complete when used by value.
    fn use_type(&mut self, ty: &CType) {
        self.need(&ty.base, ty.pointers.is_empty());
    }

    fn need(&mut self, base: &str, by_value: bool) {
        if base.starts_with("struct ") || base.starts_with("union ") {
            self.tags.insert(base.to_string());
            if by_value {
                self.define(base);
            }
            return;
        }
        if base.starts_with("enum ") {
            self.define(base);
            return;
        }
        if !self.major.types.contains_key(base) {
            // A builtin (`int`, `size_t`, `uint32_t`): the includes have it.
            return;
        }
        self.define(base);
        if by_value && let Some(TypeDef::Typedef(target)) = self.major.types.get(base) {
            let target = target.clone();
            self.need(&target.base, target.pointers.is_empty());
        }
    }

    /// Emits the definition of `name` (a typedef name, `struct X`,
    /// `union X` or `enum X`) after everything it needs.
    fn define(&mut self, name: &str) {
        if self.complete.contains(name) || self.declared.contains(name) {
            return;
        }
        let Some(def) = self.major.types.get(name) else {
            return;
        };
        match def {
            TypeDef::Enum { repr: _, values } => {
                let mut text = format!("{name} {{\n");
                for (v, n) in sorted_values(values) {
                    let _ = writeln!(text, "    {v} = {n},");
                }
                text.push_str("};\n\n");
                self.enums.insert(name.to_string(), text);
                self.complete.insert(name.to_string());
            }
            TypeDef::Opaque => {
                // Only ever pointed to: its forward declaration is enough.
                self.complete.insert(name.to_string());
            }
            TypeDef::Aggregate(layout) => {
                // Marked first: C has no by-value cycles, and pointers to
                // this type only need the tag declared up front.
                self.complete.insert(name.to_string());
                for f in &layout.fields {
                    let by_value = f.decl.ty.pointers.is_empty();
                    self.need(&f.decl.ty.base, by_value);
                }
                let mut text = format!("{name} {{\n");
                for f in &layout.fields {
                    let _ = writeln!(text, "    {};", f.decl);
                }
                // The recorded alignment may exceed the fields' (`float2`).
                let _ = writeln!(text, "}} __attribute__((aligned({})));", layout.align);
                let _ = writeln!(
                    text,
                    "CUDASTUB_LAYOUT(sizeof({name}) == {} && CUDASTUB_ALIGNOF({name}) == {}, \"the layout of `{name}` in the manifest\");",
                    layout.size, layout.align
                );
                for f in &layout.fields {
                    let _ = writeln!(
                        text,
                        "CUDASTUB_LAYOUT(offsetof({name}, {}) == {}, \"`{name}.{}` in the manifest\");",
                        f.decl.name, f.offset, f.decl.name
                    );
                }
                text.push('\n');
                self.body.push_str(&text);
            }
            TypeDef::Typedef(target) => {
                self.declared.insert(name.to_string());
                // Its target's name must exist; by-value completeness is
                // asked for by whoever uses the typedef by value.
                self.need(&target.base, false);
                let decl = Decl {
                    ty: target.clone(),
                    name: name.to_string(),
                    array: None,
                };
                let _ = writeln!(self.body, "typedef {decl};\n");
            }
            TypeDef::Array { element, length } => {
                self.declared.insert(name.to_string());
                self.need(&element.base, element.pointers.is_empty());
                let decl = Decl {
                    ty: element.clone(),
                    name: name.to_string(),
                    array: Some(*length),
                };
                let _ = writeln!(self.body, "typedef {decl};\n");
            }
            TypeDef::FunctionPointer(p) => {
                self.declared.insert(name.to_string());
                self.prototype_types(p);
                let mut sig = p.clone();
                sig.name = format!("(*{name})");
                let _ = writeln!(self.body, "typedef {sig};\n");
            }
        }
    }
}
