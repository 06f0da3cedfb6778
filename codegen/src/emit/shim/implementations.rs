//! A readable error for a Rust implementation the crate does not define.
//!
//! Without this check, a function named in `ShimBuild::implement` that the
//! backend module lacks fails inside the generated file, as rustc's
//! ``cannot find value `cu_init` in module `crate::backend` ``. Before the
//! shim is compiled, the build reads the backend module's source (the
//! crate's `src/lib.rs` and the files its `mod` items name, with `syn`) and,
//! for every implemented function it does not define, names the C function
//! and prints the Rust signature to write.
//!
//! The check only ever adds errors it is sure of: a module it cannot find
//! or parse, or one that defines items by macro or re-exports them with
//! `use`, is left to rustc.

use std::path::{Path, PathBuf};

use quote::{format_ident, quote};

use super::plan::{Plan, Policy, rust_impl_name};
use crate::emit::rust_types::RustNames;
use crate::view::LibraryMajor;

/// One error per Rust implementation that the backend module of the crate
/// at `crate_dir` certainly lacks, with the signature to write.
pub fn missing(crate_dir: &Path, view: &LibraryMajor, plan: &Plan) -> Vec<String> {
    let Some(module) = plan.rust_module.strip_prefix("crate::") else {
        return Vec::new();
    };
    let Some((file, names)) = defined_functions(crate_dir, module) else {
        return Vec::new();
    };
    let rust_names = RustNames::new(view.facts);
    let mut errors = Vec::new();
    for f in &view.functions {
        let policy = plan.policy(f.name);
        if !matches!(policy, Policy::Rust | Policy::Fallback) {
            continue;
        }
        let implementer = plan.implementation_of(f.name);
        let rust = rust_impl_name(implementer);
        if names.contains(&rust) || implementer != f.name {
            continue;
        }
        let ident = format_ident!("{}", rust);
        let params = rust_names.params(f.proto);
        let ret = rust_names.return_type(&f.proto.returns);
        let item = quote!(pub unsafe extern "C" fn #ident(#(#params),*) #ret {});
        let signature = syn::parse2::<syn::File>(item)
            .map(|file| prettyplease::unparse(&file))
            .unwrap_or_default()
            .replace("types::", "crate::types::")
            .replace("crate::crate::", "crate::");
        // One line, as it would be written (prettyplease wraps long ones).
        let signature = signature
            .trim()
            .trim_end_matches("{}")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("( ", "(")
            .replace(", )", ")");
        errors.push(format!(
            "`{}` is implemented in Rust, but `{}::{rust}` is not defined in {}; write:\n    {signature}",
            f.name,
            plan.rust_module,
            file.display()
        ));
    }
    errors
}

/// The file holding module `path` (`backend`, `a::b`) of the crate, and
/// the names of the functions defined in it; `None` when that cannot be
/// told for sure.
fn defined_functions(crate_dir: &Path, path: &str) -> Option<(PathBuf, Vec<String>)> {
    let mut file = crate_dir.join("src/lib.rs");
    let mut items = parse(&file)?;
    // The directory where the current module's child modules live.
    let mut dir = crate_dir.join("src");
    for segment in path.split("::") {
        let m = items.into_iter().find_map(|item| match item {
            syn::Item::Mod(m) if m.ident == segment => Some(m),
            _ => None,
        })?;
        if has_path_attribute(&m.attrs) {
            return None;
        }
        match m.content {
            Some((_, inline)) => {
                items = inline;
                dir = dir.join(segment);
            }
            None => {
                let flat = dir.join(format!("{segment}.rs"));
                let nested = dir.join(segment).join("mod.rs");
                file = if flat.is_file() { flat } else { nested };
                items = parse(&file)?;
                dir = dir.join(segment);
            }
        }
    }
    let mut names = Vec::new();
    for item in &items {
        match item {
            syn::Item::Fn(f) => names.push(f.sig.ident.to_string()),
            // Functions made by a macro or brought in by `use`: not sure.
            syn::Item::Macro(_) | syn::Item::Use(_) if !is_private_use(item) => return None,
            _ => {}
        }
    }
    Some((file, names))
}

/// A `use` that brings nothing public in (`use crate::types::{…};`):
/// harmless to the check, unlike `pub use other::f;`.
fn is_private_use(item: &syn::Item) -> bool {
    matches!(item, syn::Item::Use(u) if matches!(u.vis, syn::Visibility::Inherited))
}

fn has_path_attribute(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("path"))
}

fn parse(file: &Path) -> Option<Vec<syn::Item>> {
    let text = std::fs::read_to_string(file).ok()?;
    syn::parse_file(&text).ok().map(|f| f.items)
}
