//! The JSON reports of `cudastub audit` and `cudastub diff`: the pieces
//! both share, and their JSON Schemas.
//!
//! The reports are the Rust types [`crate::audit::JsonAudit`] and
//! [`crate::diff::JsonDiff`], serialized with serde. Their JSON Schemas are
//! derived from those same types (with `schemars`, feature `schema`), so a
//! field cannot change without its schema changing: `cudastub generate`
//! writes them to `schemas/audit.schema.json` and `schemas/diff.schema.json`,
//! `cudastub generate --check` fails when the checked-in ones are stale,
//! and the tests validate real reports against them.

use serde::Serialize;

use crate::elf::{DynSymbol, VersionDef, Versioning};

/// The `schema_version` of the JSON reports of `audit` and `diff`: 2 since
/// `expected`, `found`, `old` and `new` hold data instead of prose and
/// `diff` reports type changes; 3 since the audit of a directory is one
/// object (it was an array), findings may be notes, and an error that stops
/// either command is a JSON object on standard output too ([`JsonError`]).
pub const SCHEMA_VERSION: u32 = 3;

/// What `audit` and `diff` print in JSON when an input cannot be read (exit
/// 2), instead of a report: `{"schema_version": 3, "verdict": "error",
/// "diagnostics": [...]}`. The same errors go to standard error as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonError {
    /// Always 3 ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Always `error`: no report was made.
    pub verdict: ErrorVerdict,
    /// Every error, in the order found.
    pub diagnostics: Vec<JsonDiagnostic>,
}

/// The verdict of a [`JsonError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ErrorVerdict {
    /// An input could not be read or is invalid.
    Error,
}

/// One error: `{"file": "cuda-api.yaml", "line": 12, "column": 7, "message": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonDiagnostic {
    /// The file the error is about.
    pub file: String,
    /// Its 1-based line, or `null` when it concerns the whole file.
    pub line: Option<u64>,
    /// Its 1-based column, or `null` when unknown.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl JsonError {
    /// The JSON form of `errors`.
    pub fn new(errors: &crate::diag::Diagnostics) -> JsonError {
        JsonError {
            schema_version: SCHEMA_VERSION,
            verdict: ErrorVerdict::Error,
            diagnostics: errors
                .0
                .iter()
                .map(|d| JsonDiagnostic {
                    file: d.file.display().to_string(),
                    line: (d.line > 0).then_some(d.line),
                    column: (d.line > 0 && d.column > 0).then_some(d.column),
                    message: d.message.clone(),
                })
                .collect(),
        }
    }
}

/// An exported symbol as the reports show it:
/// `{"name": "cudaFree", "version": "libcudart.so.12", "binding": "default", "type": "FUNC", "size": null}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonExport {
    /// The symbol's name.
    pub name: String,
    /// The version node it is bound to, or `null` when unversioned.
    pub version: Option<String>,
    /// How the name binds to the version.
    pub binding: Binding,
    /// The symbol type: `FUNC`, `IFUNC`, `OBJECT`, `NOTYPE`, or `TYPEn`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For a data object (`OBJECT`), its size in bytes; `null` for code.
    pub size: Option<u64>,
}

/// How an export binds to its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Binding {
    /// `name@@node`: the default version, what new links bind to.
    Default,
    /// `name@node`: a hidden version, only for programs linked against it before.
    Hidden,
    /// `name`: no version at all (`version` is `null`).
    Unversioned,
}

impl JsonExport {
    /// The report form of an ELF symbol.
    pub fn from_symbol(s: &DynSymbol) -> JsonExport {
        let (version, binding) = match &s.version {
            Versioning::Default(v) => (Some(v.clone()), Binding::Default),
            Versioning::Hidden(v) => (Some(v.clone()), Binding::Hidden),
            Versioning::None => (None, Binding::Unversioned),
        };
        JsonExport {
            name: s.name.clone(),
            version,
            binding,
            kind: s.kind.to_string(),
            size: (s.kind == crate::elf::SymbolKind::Object).then_some(s.size),
        }
    }

    /// `name@@node`, `name@node` or `name`, as linkers write it.
    pub fn versioned_name(&self) -> String {
        match (&self.version, self.binding) {
            (Some(v), Binding::Default) => format!("{}@@{v}", self.name),
            (Some(v), Binding::Hidden) => format!("{}@{v}", self.name),
            _ => self.name.clone(),
        }
    }
}

/// A version definition: `{"name": "libcudart.so.12", "base": true}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JsonVersionDefinition {
    /// Its name.
    pub name: String,
    /// `true` for the base definition, named after the file's soname.
    pub base: bool,
}

impl From<&VersionDef> for JsonVersionDefinition {
    fn from(d: &VersionDef) -> Self {
        JsonVersionDefinition {
            name: d.name.clone(),
            base: d.base,
        }
    }
}

/// The directory the schemas are checked in to, relative to the index.
pub const SCHEMA_DIR: &str = "schemas";

/// The JSON Schema of `cudastub audit --format json`.
#[cfg(feature = "schema")]
pub fn audit_schema() -> serde_json::Value {
    finish(
        schemars::schema_for!(crate::audit::JsonAudit),
        "audit.schema.json",
        "cudastub audit report",
        "What `cudastub audit --format json` prints: one object, the report on one library, \
         the report on a directory (its libraries' reports inside), or the error that \
         stopped the audit. See codegen/src/audit.rs.",
    )
}

/// The JSON Schema of `cudastub diff --format json`.
#[cfg(feature = "schema")]
pub fn diff_schema() -> serde_json::Value {
    finish(
        schemars::schema_for!(crate::diff::JsonDiffOutput),
        "diff.schema.json",
        "cudastub diff report",
        "What `cudastub diff --format json` prints: the symbols and C types that \
         differ between two export surfaces, or the error that stopped the diff. \
         See codegen/src/diff.rs.",
    )
}

#[cfg(feature = "schema")]
fn finish(
    schema: schemars::Schema,
    file: &str,
    title: &str,
    description: &str,
) -> serde_json::Value {
    let mut value = serde_json::Value::from(schema);
    tidy(&mut value);
    if let Some(o) = value.as_object_mut() {
        o.insert(
            "$comment".into(),
            format!(
                "@generated by cudastub from its report types ({file}). Do not edit: run `cudastub generate`. schema_version {SCHEMA_VERSION}."
            )
            .into(),
        );
        o.insert("title".into(), title.into());
        o.insert("description".into(), description.into());
    }
    value
}

/// Every key of a report is always present (`null` where it does not
/// apply), so every property is required, `Option` fields included; and
/// descriptions come from doc comments, whose rustdoc links
/// (``[`JsonReport`]``) read as plain code.
#[cfg(feature = "schema")]
fn tidy(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(o) => {
            if let Some(Value::Object(properties)) = o.get_mut("properties")
                && let Some(version) = properties.get_mut("schema_version")
            {
                *version = serde_json::json!({
                    "const": SCHEMA_VERSION,
                    "description": "The version of this schema; bumped when a key is removed or changes meaning.",
                });
            }
            if let Some(Value::Object(properties)) = o.get("properties") {
                let required: Vec<Value> = properties.keys().cloned().map(Value::from).collect();
                o.insert("required".into(), Value::Array(required));
            }
            if let Some(Value::String(d)) = o.get_mut("description") {
                *d = d.replace("[`", "`").replace("`]", "`");
            }
            o.values_mut().for_each(tidy);
        }
        Value::Array(a) => a.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// The schema files `cudastub generate` writes, relative to [`SCHEMA_DIR`].
#[cfg(feature = "schema")]
pub fn files() -> Vec<crate::emit::versionscript::GeneratedFile> {
    [
        ("audit.schema.json", audit_schema()),
        ("diff.schema.json", diff_schema()),
    ]
    .into_iter()
    .map(|(name, schema)| crate::emit::versionscript::GeneratedFile {
        path: name.into(),
        contents: serde_json::to_string_pretty(&schema).expect("a schema always serializes") + "\n",
    })
    .collect()
}
