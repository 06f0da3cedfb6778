//! Comparing the C types of two manifest majors: what changed in each type
//! both define, and which functions reach it.
//!
//! Types match by their C spelling (`struct cudaDeviceProp`, `enum cudaError`,
//! `cudaStream_t`). Struct and union fields match by name, enum values by
//! name. A type is reported when its own definition differs; a struct that
//! holds a changed struct by value differs itself (its size and offsets
//! move) and is reported too, while one that only points to it is not: its
//! users are tied to the changed type through it instead (`via`). The
//! chains follow what the manifest records: an opaque struct (one only ever
//! used through pointers, with no fields recorded) ends a chain.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use serde::Serialize;

use crate::ctype::Prototype;
use crate::manifest::{self, Field, TypeDef};

/// The C types of one side, by C spelling.
pub type TypeTable = BTreeMap<String, TypeDef>;

/// What kind of definition a type has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum TypeKind {
    /// A struct with its layout.
    Struct,
    /// A union with its layout.
    Union,
    /// An enum.
    Enum,
    /// A `typedef` of another type.
    Typedef,
    /// A function pointer `typedef`.
    FunctionPointer,
    /// A struct only used through pointers: no layout recorded.
    Opaque,
    /// A `typedef` of an array (`typedef unsigned int X[32];`).
    Array,
}

impl TypeKind {
    /// The kind of `def`, named `name`.
    pub fn of(name: &str, def: &TypeDef) -> TypeKind {
        match def {
            TypeDef::Aggregate(_) if name.starts_with("union ") => TypeKind::Union,
            TypeDef::Aggregate(_) => TypeKind::Struct,
            TypeDef::Enum { .. } => TypeKind::Enum,
            TypeDef::Typedef(_) => TypeKind::Typedef,
            TypeDef::FunctionPointer(_) => TypeKind::FunctionPointer,
            TypeDef::Opaque => TypeKind::Opaque,
            TypeDef::Array { .. } => TypeKind::Array,
        }
    }

    /// `struct`, `function pointer`, …: how the text report says it.
    pub fn as_str(self) -> &'static str {
        match self {
            TypeKind::Struct => "struct",
            TypeKind::Union => "union",
            TypeKind::Enum => "enum",
            TypeKind::Typedef => "typedef",
            TypeKind::FunctionPointer => "function pointer",
            TypeKind::Opaque => "opaque",
            TypeKind::Array => "array",
        }
    }
}

/// A value before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Moved<T> {
    /// Before.
    pub old: T,
    /// After.
    pub new: T,
}

/// A field at its offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FieldAt {
    /// Byte offset.
    pub offset: u64,
    /// The declaration, as C: `int major`, `char reserved[56]`.
    pub decl: String,
}

impl From<&Field> for FieldAt {
    fn from(f: &Field) -> Self {
        FieldAt {
            offset: f.offset,
            decl: f.decl.to_string(),
        }
    }
}

/// How a field or an enum value changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum MemberChange {
    /// Only in the new type.
    Added,
    /// Only in the old type.
    Removed,
    /// A field: the same declaration at another offset.
    Moved,
    /// A field: another declaration (type or array length), at the same or another offset.
    Changed,
    /// An enum value: another number.
    Renumbered,
}

/// A field of a struct or union that was added, removed or changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FieldChange {
    /// The field's name.
    pub name: String,
    /// `added`, `removed`, `moved` or `changed`.
    pub change: MemberChange,
    /// The old field, or `null` when added.
    pub old: Option<FieldAt>,
    /// The new field, or `null` when removed.
    pub new: Option<FieldAt>,
}

/// An enum value that was added, removed or renumbered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ValueChange {
    /// The value's name.
    pub name: String,
    /// `added`, `removed` or `renumbered`.
    pub change: MemberChange,
    /// The old number, or `null` when added.
    pub old: Option<i64>,
    /// The new number, or `null` when removed.
    pub new: Option<i64>,
}

/// A function whose prototype uses a changed type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TypeUse {
    /// The function's name.
    #[serde(rename = "name")]
    pub function: String,
    /// The types between its prototype and the changed type, outermost
    /// first; `[]` when the prototype names the type itself.
    pub via: Vec<String>,
}

/// A type both sides define, differently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TypeChange {
    /// The type's C spelling: `struct cudaDeviceProp`, `cudaStream_t`.
    pub name: String,
    /// Its kind in the new side.
    pub kind: TypeKind,
    /// Its kind in the old side (the same as `kind` unless that changed).
    pub old_kind: TypeKind,
    /// `sizeof`, when it changed (`null` on a side without a layout); else `null`.
    pub size: Option<Moved<Option<u64>>>,
    /// `_Alignof`, when it changed (`null` on a side without a layout); else `null`.
    pub align: Option<Moved<Option<u64>>>,
    /// Fields added, removed, moved or changed, in declaration order.
    pub fields: Vec<FieldChange>,
    /// Enum values added, removed or renumbered, by name.
    pub values: Vec<ValueChange>,
    /// An enum's underlying type, when it changed; else `null`.
    pub underlying: Option<Moved<String>>,
    /// A typedef's target or a function pointer's signature, when it
    /// changed; else `null`.
    pub definition: Option<Moved<String>>,
    /// The functions both sides export whose prototypes use the type, by name.
    pub functions: Vec<TypeUse>,
}

/// What differs between the types of two sides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TypeDiff {
    /// Types both sides define, differently, by name.
    pub changed: Vec<TypeChange>,
    /// Types only the new side defines, by name.
    pub added: Vec<String>,
    /// Types only the old side defines, by name.
    pub removed: Vec<String>,
}

/// The target of a typedef or the signature of a function pointer, as C.
fn definition_text(def: &TypeDef) -> Option<String> {
    match def {
        TypeDef::Typedef(t) => Some(t.to_string()),
        TypeDef::FunctionPointer(p) => Some(p.to_string()),
        TypeDef::Array { element, length } => Some(format!("{element} [{length}]")),
        _ => None,
    }
}

fn layout_of(def: &TypeDef) -> Option<&manifest::Layout> {
    match def {
        TypeDef::Aggregate(l) => Some(l),
        _ => None,
    }
}

fn moved<T: PartialEq>(old: T, new: T) -> Option<Moved<T>> {
    (old != new).then_some(Moved { old, new })
}

/// The fields that differ, in the new declaration order, each removed
/// field right after the last field before it that the new type kept.
fn field_changes(old: &[Field], new: &[Field]) -> Vec<FieldChange> {
    let old_by_name: BTreeMap<&str, &Field> =
        old.iter().map(|f| (f.decl.name.as_str(), f)).collect();
    let new_index: BTreeMap<&str, usize> = new
        .iter()
        .enumerate()
        .map(|(i, f)| (f.decl.name.as_str(), i))
        .collect();
    // Sorted by (position in the new order, removed after kept, old position).
    type Place = (Option<usize>, bool, usize);
    let mut keyed: Vec<(Place, FieldChange)> = Vec::new();
    for (j, f) in new.iter().enumerate() {
        let old_field = old_by_name.get(f.decl.name.as_str());
        let change = match old_field {
            None => MemberChange::Added,
            Some(o) if o.decl != f.decl => MemberChange::Changed,
            Some(o) if o.offset != f.offset => MemberChange::Moved,
            Some(_) => continue,
        };
        keyed.push((
            (Some(j), false, 0),
            FieldChange {
                name: f.decl.name.clone(),
                change,
                old: old_field.map(|o| FieldAt::from(*o)),
                new: Some(f.into()),
            },
        ));
    }
    for (i, f) in old.iter().enumerate() {
        if new_index.contains_key(f.decl.name.as_str()) {
            continue;
        }
        let anchor = old[..i]
            .iter()
            .rev()
            .find_map(|p| new_index.get(p.decl.name.as_str()).copied());
        keyed.push((
            (anchor, true, i),
            FieldChange {
                name: f.decl.name.clone(),
                change: MemberChange::Removed,
                old: Some(f.into()),
                new: None,
            },
        ));
    }
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, c)| c).collect()
}

fn value_changes(old: &BTreeMap<String, i64>, new: &BTreeMap<String, i64>) -> Vec<ValueChange> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (o, n) = (old.get(name).copied(), new.get(name).copied());
            let change = match (o, n) {
                (None, Some(_)) => MemberChange::Added,
                (Some(_), None) => MemberChange::Removed,
                (Some(a), Some(b)) if a != b => MemberChange::Renumbered,
                _ => return None,
            };
            Some(ValueChange {
                name: name.clone(),
                change,
                old: o,
                new: n,
            })
        })
        .collect()
}

/// How `old` became `new`, or `None` when they are the same.
fn compare(name: &str, old: &TypeDef, new: &TypeDef) -> Option<TypeChange> {
    if old == new {
        return None;
    }
    let (ol, nl) = (layout_of(old), layout_of(new));
    let (fields, values, underlying) = match (old, new) {
        (TypeDef::Aggregate(o), TypeDef::Aggregate(n)) => {
            (field_changes(&o.fields, &n.fields), Vec::new(), None)
        }
        (
            TypeDef::Enum {
                repr: or,
                values: ov,
            },
            TypeDef::Enum {
                repr: nr,
                values: nv,
            },
        ) => (
            Vec::new(),
            value_changes(ov, nv),
            moved(or.clone(), nr.clone()),
        ),
        _ => (Vec::new(), Vec::new(), None),
    };
    let definition = match (definition_text(old), definition_text(new)) {
        (None, None) => None,
        (o, n) => moved(
            o.unwrap_or_else(|| TypeKind::of(name, old).as_str().to_string()),
            n.unwrap_or_else(|| TypeKind::of(name, new).as_str().to_string()),
        ),
    };
    Some(TypeChange {
        name: name.to_string(),
        kind: TypeKind::of(name, new),
        old_kind: TypeKind::of(name, old),
        size: moved(ol.map(|l| l.size), nl.map(|l| l.size)),
        align: moved(ol.map(|l| l.align), nl.map(|l| l.align)),
        fields,
        values,
        underlying,
        definition,
        functions: Vec::new(),
    })
}

/// For every type a prototype reaches, the chain of types in between
/// (shortest first found, breadth first).
fn reached_types(proto: &Prototype, table: &TypeTable) -> BTreeMap<String, Vec<String>> {
    let mut reached: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut queue = VecDeque::new();
    for t in manifest::proto_types(proto) {
        if !reached.contains_key(&t.base) {
            reached.insert(t.base.clone(), Vec::new());
            queue.push_back(t.base.clone());
        }
    }
    while let Some(name) = queue.pop_front() {
        let Some(def) = table.get(&name) else {
            continue;
        };
        let mut via = reached[&name].clone();
        via.push(name.clone());
        for next in manifest::type_refs(def) {
            if !reached.contains_key(&next) {
                reached.insert(next.clone(), via.clone());
                queue.push_back(next);
            }
        }
    }
    reached
}

/// Compares the types of two sides and ties each change to the functions
/// of `functions` (name, old prototype, new prototype) that reach it.
pub fn diff_types(
    old: &TypeTable,
    new: &TypeTable,
    functions: &[(&str, &Prototype, &Prototype)],
) -> TypeDiff {
    let mut changed: Vec<TypeChange> = old
        .iter()
        .filter_map(|(name, o)| new.get(name).and_then(|n| compare(name, o, n)))
        .collect();
    if !changed.is_empty() {
        for (function, old_proto, new_proto) in functions {
            let in_new = reached_types(new_proto, new);
            let in_old = reached_types(old_proto, old);
            for c in &mut changed {
                if let Some(via) = in_new.get(&c.name).or_else(|| in_old.get(&c.name)) {
                    c.functions.push(TypeUse {
                        function: function.to_string(),
                        via: via.clone(),
                    });
                }
            }
        }
    }
    TypeDiff {
        changed,
        added: new
            .keys()
            .filter(|k| !old.contains_key(*k))
            .cloned()
            .collect(),
        removed: old
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `3 fields removed, 1 added, 40 moved`: the non-zero counts of a list of changes.
fn counts(changes: &[MemberChange], one: &str, many: &str) -> Option<String> {
    let order = [
        (MemberChange::Removed, "removed"),
        (MemberChange::Added, "added"),
        (MemberChange::Moved, "moved"),
        (MemberChange::Changed, "changed"),
        (MemberChange::Renumbered, "renumbered"),
    ];
    let parts: Vec<String> = order
        .iter()
        .map(|(kind, word)| (changes.iter().filter(|c| *c == kind).count(), word))
        .filter(|(n, _)| *n > 0)
        .enumerate()
        .map(|(i, (n, word))| {
            if i == 0 {
                format!("{} {word}", plural(n, one, many))
            } else {
                format!("{n} {word}")
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The first names of a list, then how many more: a type every function
/// uses (`enum cudaError`) would otherwise fill the screen.
fn list_some(names: &[&str]) -> String {
    const SHOWN: usize = 8;
    if names.len() <= SHOWN + 1 {
        return names.join(", ");
    }
    format!(
        "{}, and {} more",
        names[..SHOWN].join(", "),
        names.len() - SHOWN
    )
}

fn bytes(n: Option<u64>) -> String {
    n.map_or_else(|| "none".to_string(), |n| n.to_string())
}

impl TypeChange {
    /// `size 1032 → 1008 bytes; 14 fields removed, 1 added, 40 moved`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.kind != self.old_kind {
            parts.push(format!(
                "{} → {}",
                self.old_kind.as_str(),
                self.kind.as_str()
            ));
        }
        if let Some(s) = &self.size {
            parts.push(format!("size {} → {} bytes", bytes(s.old), bytes(s.new)));
        }
        if let Some(a) = &self.align {
            parts.push(format!("alignment {} → {}", bytes(a.old), bytes(a.new)));
        }
        let fields: Vec<MemberChange> = self.fields.iter().map(|f| f.change).collect();
        parts.extend(counts(&fields, "field", "fields"));
        let values: Vec<MemberChange> = self.values.iter().map(|v| v.change).collect();
        parts.extend(counts(&values, "value", "values"));
        if let Some(u) = &self.underlying {
            parts.push(format!("underlying type {} → {}", u.old, u.new));
        }
        if let Some(d) = &self.definition
            && self.kind == self.old_kind
        {
            parts.push(format!("{} → {}", d.old, d.new));
        }
        parts.join("; ")
    }

    /// The text report of one type: a summary line, its users, its members.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let kind = match self.kind {
            TypeKind::Struct | TypeKind::Union | TypeKind::Enum => String::new(),
            k => format!(" ({})", k.as_str()),
        };
        let _ = writeln!(o, "  ~ {}{kind}: {}", self.name, self.summary());
        if self.functions.is_empty() {
            o.push_str("      used by no function both sides export\n");
        } else {
            let _ = writeln!(
                o,
                "      used by {}",
                plural(self.functions.len(), "function", "functions")
            );
        }
        // One line per chain of types, the direct users first.
        let mut by_chain: BTreeMap<&[String], Vec<&str>> = BTreeMap::new();
        for u in &self.functions {
            by_chain
                .entry(u.via.as_slice())
                .or_default()
                .push(u.function.as_str());
        }
        for (via, names) in by_chain {
            let how = if via.is_empty() {
                "directly".to_string()
            } else {
                format!("through {}", via.join(" → "))
            };
            let _ = writeln!(o, "        {how}: {}", list_some(&names));
        }
        for f in &self.fields {
            let line = match (f.change, &f.old, &f.new) {
                (MemberChange::Added, _, Some(n)) => {
                    format!("+ {}, at offset {}", n.decl, n.offset)
                }
                (MemberChange::Removed, Some(old), _) => {
                    format!("- {}, at offset {}", old.decl, old.offset)
                }
                (MemberChange::Moved, Some(old), Some(n)) => {
                    format!("~ {}: offset {} → {}", n.decl, old.offset, n.offset)
                }
                (_, Some(old), Some(n)) if old.offset == n.offset => {
                    format!(
                        "~ {}: {} → {}, at offset {}",
                        f.name, old.decl, n.decl, n.offset
                    )
                }
                (_, Some(old), Some(n)) => format!(
                    "~ {}: {} at offset {} → {} at offset {}",
                    f.name, old.decl, old.offset, n.decl, n.offset
                ),
                _ => continue,
            };
            let _ = writeln!(o, "      {line}");
        }
        for v in &self.values {
            let line = match (v.old, v.new) {
                (None, Some(n)) => format!("+ {} = {n}", v.name),
                (Some(old), None) => format!("- {} = {old}", v.name),
                (Some(old), Some(n)) => format!("~ {}: {old} → {n}", v.name),
                (None, None) => continue,
            };
            let _ = writeln!(o, "      {line}");
        }
        if let Some(d) = &self.definition
            && self.kind != self.old_kind
        {
            let _ = writeln!(o, "      old: {}\n      new: {}", d.old, d.new);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctype::{parse_decl, parse_prototype, parse_type};
    use crate::manifest::Layout;

    fn aggregate(size: u64, align: u64, fields: &[(u64, &str)]) -> TypeDef {
        TypeDef::Aggregate(Layout {
            size,
            align,
            fields: fields
                .iter()
                .map(|(offset, decl)| Field {
                    offset: *offset,
                    decl: parse_decl(decl).expect("a field declaration"),
                })
                .collect(),
        })
    }

    fn table(types: &[(&str, TypeDef)]) -> TypeTable {
        types
            .iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect()
    }

    fn typedef(target: &str) -> TypeDef {
        TypeDef::Typedef(parse_type(target).expect("a type"))
    }

    #[test]
    fn unions_typedefs_function_pointers_and_kinds_are_compared() {
        let old = table(&[
            (
                "union u",
                aggregate(8, 8, &[(0, "long long a"), (0, "int b")]),
            ),
            ("handle_t", typedef("struct h *")),
            (
                "callback_t",
                TypeDef::FunctionPointer(
                    parse_prototype("void (void *data)").expect("a signature"),
                ),
            ),
            ("struct s", TypeDef::Opaque),
            ("same_t", typedef("int")),
        ]);
        let new = table(&[
            ("union u", aggregate(4, 4, &[(0, "int b"), (0, "float c")])),
            ("handle_t", typedef("struct h2 *")),
            (
                "callback_t",
                TypeDef::FunctionPointer(
                    parse_prototype("void (void *data, int status)").expect("a signature"),
                ),
            ),
            ("struct s", aggregate(4, 4, &[(0, "int x")])),
            ("same_t", typedef("int")),
        ]);
        let d = diff_types(&old, &new, &[]);
        let names: Vec<&str> = d.changed.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["callback_t", "handle_t", "struct s", "union u"]);

        let u = &d.changed[3];
        assert_eq!(u.kind, TypeKind::Union);
        assert_eq!(
            u.size,
            Some(Moved {
                old: Some(8),
                new: Some(4)
            })
        );
        assert_eq!(
            u.align,
            Some(Moved {
                old: Some(8),
                new: Some(4)
            })
        );
        let fields: Vec<(&str, MemberChange)> = u
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.change))
            .collect();
        assert_eq!(
            fields,
            [("a", MemberChange::Removed), ("c", MemberChange::Added)]
        );
        assert_eq!(
            u.summary(),
            "size 8 → 4 bytes; alignment 8 → 4; 1 field removed, 1 added"
        );

        let h = &d.changed[1];
        assert_eq!(h.kind, TypeKind::Typedef);
        assert_eq!(
            h.definition,
            Some(Moved {
                old: "struct h *".into(),
                new: "struct h2 *".into()
            })
        );
        assert_eq!(h.summary(), "struct h * → struct h2 *");
        assert_eq!(
            d.changed[0].summary(),
            "void (void *data) → void (void *data, int status)"
        );

        // An opaque struct that gained a layout changed kind.
        let s = &d.changed[2];
        assert_eq!((s.old_kind, s.kind), (TypeKind::Opaque, TypeKind::Struct));
        assert_eq!(
            s.summary(),
            "opaque → struct; size none → 4 bytes; alignment none → 4"
        );
    }

    #[test]
    fn removed_fields_stay_where_they_were() {
        let old = aggregate(
            16,
            4,
            &[
                (0, "int a"),
                (4, "int gone1"),
                (8, "int b"),
                (12, "int gone2"),
            ],
        );
        let new = aggregate(12, 4, &[(0, "int first"), (4, "int a"), (8, "int b")]);
        let d = diff_types(
            &table(&[("struct t", old)]),
            &table(&[("struct t", new)]),
            &[],
        );
        let order: Vec<(&str, MemberChange)> = d.changed[0]
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.change))
            .collect();
        assert_eq!(
            order,
            [
                ("first", MemberChange::Added),
                ("a", MemberChange::Moved),
                ("gone1", MemberChange::Removed),
                ("gone2", MemberChange::Removed),
            ]
        );
    }

    #[test]
    fn users_are_found_through_chains_of_types() {
        let types = |inner_size: u64| {
            table(&[
                ("config_t", typedef("struct config")),
                (
                    "struct config",
                    aggregate(16, 8, &[(0, "struct attr *attrs"), (8, "int count")]),
                ),
                ("struct attr", aggregate(inner_size, 4, &[(0, "int id")])),
                ("struct unrelated", TypeDef::Opaque),
            ])
        };
        let launch = parse_prototype("int launch(const config_t *config)").expect("a prototype");
        let direct = parse_prototype("int set(struct attr *a)").expect("a prototype");
        let other = parse_prototype("int other(struct unrelated *u)").expect("a prototype");
        let d = diff_types(
            &types(4),
            &types(8),
            &[
                ("launch", &launch, &launch),
                ("other", &other, &other),
                ("set", &direct, &direct),
            ],
        );
        assert_eq!(d.changed.len(), 1, "{:?}", d.changed);
        assert_eq!(
            d.changed[0].functions,
            [
                TypeUse {
                    function: "launch".into(),
                    via: vec!["config_t".into(), "struct config".into()],
                },
                TypeUse {
                    function: "set".into(),
                    via: vec![],
                },
            ]
        );
        let text = d.changed[0].to_text();
        assert!(
            text.contains("        through config_t → struct config: launch\n"),
            "{text}"
        );
        assert!(text.contains("        directly: set\n"), "{text}");
    }
}
