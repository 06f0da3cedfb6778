//! Shims: the Rust source of one (library, major) and the `build.rs` glue
//! that links it as a versioned shared library.
//!
//! - [`plan`]: what the shim does with each function ([`Policy`], [`Plan`]).
//! - [`source`]: the generated Rust source (trampolines, stubs, tracers),
//!   whose run-time logic is the `cudastub-runtime` crate.
//! - [`ShimBuild`]: the front end a crate's `build.rs` calls.
//!
//! Versions: rustc hands the linker its own anonymous version script; the
//! node-only script written here ([`node_script`]) plus a `.symver`
//! directive inside each trampoline is the combination seen to produce
//! `NAME@@NODE` (see cuda-facts.md). Tests read the ELF file to prove it.

use std::path::{Path, PathBuf};

use super::arch;
use super::generated_banner;
use crate::catalog::Catalog;
use crate::view::LibraryMajor;

pub mod plan;
pub mod source;

pub use plan::{C_PREFIX, Plan, Policy, rust_impl_name};

/// Generates the complete Rust source of a plain forwarding shim for `view`,
/// for the architecture this code runs on.
pub fn forwarding_source(view: &LibraryMajor) -> Result<String, String> {
    source::source(view, &Plan::default(), arch::current()?)
}

/// The node-only version script passed to the linker next to rustc's own;
/// none for an unversioned library, whose exports rustc's own script lists.
pub fn node_script(view: &LibraryMajor) -> Option<String> {
    let node = view.version_node.as_ref()?;
    Some(format!(
        "{}{node} {{ local: *; }};\n",
        generated_banner("#")
    ))
}

/// A shim build, configured in a crate's `build.rs`.
///
/// ```no_run
/// // build.rs of a crate with `crate-type = ["cdylib"]` and `cudastub-runtime`
/// // as a dependency; src/lib.rs does
/// // `include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs")); mod backend;`
/// use cudastub_codegen::emit::shim::ShimBuild;
/// let shim = ShimBuild::new("cuda-api.yaml").library("cudart").default_major(12);
/// let shim = shim.implement(["cudaGetDeviceCount"]).fail(["cudaMalloc"], "cudaErrorNotSupported");
/// shim.build().unwrap_or_else(|e| panic!("{e}"));
/// ```
#[derive(Clone, Debug)]
pub struct ShimBuild {
    manifest: PathBuf,
    library: Option<String>,
    default_major: Option<u32>,
    fixed_major: Option<u32>,
    plan: Plan,
    c_sources: Vec<PathBuf>,
    errors: Vec<String>,
}

/// The environment variable that picks the major of a build whose major
/// is not fixed.
pub const MAJOR_VARIABLE: &str = "CUDASTUB_MAJOR";

impl ShimBuild {
    /// A plain forwarding shim from the manifest (or index) at `manifest`.
    pub fn new(manifest: impl AsRef<Path>) -> Self {
        ShimBuild {
            manifest: manifest.as_ref().to_path_buf(),
            library: None,
            default_major: None,
            fixed_major: None,
            plan: Plan::default(),
            c_sources: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// The library to build, by its manifest name (`cudart`, `cublas`);
    /// needed when the manifest is an index of several.
    pub fn library(mut self, name: &str) -> Self {
        self.library = Some(name.to_string());
        self
    }

    /// The major built when `CUDASTUB_MAJOR` is not set.
    pub fn default_major(mut self, major: u32) -> Self {
        self.default_major = Some(major);
        self
    }

    /// Always build `major`, whatever `CUDASTUB_MAJOR` says (the standard
    /// shims: one crate per (library, major), all built in one cargo run).
    pub fn major(mut self, major: u32) -> Self {
        self.fixed_major = Some(major);
        self
    }

    /// The major this build is for: the fixed one, else `CUDASTUB_MAJOR`,
    /// else the default.
    pub fn selected_major(&self) -> Result<u32, String> {
        if let Some(m) = self.fixed_major {
            return Ok(m);
        }
        match std::env::var(MAJOR_VARIABLE) {
            Ok(v) => v
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("{MAJOR_VARIABLE}={v} is not a major version number")),
            Err(_) => self.default_major.ok_or_else(|| {
                format!("no major: set {MAJOR_VARIABLE} or call .default_major(N) or .major(N)")
            }),
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
        println!("cargo:rerun-if-env-changed={MAJOR_VARIABLE}");
        if !self.errors.is_empty() {
            return Err(self.errors.join("\n"));
        }
        let major = self.selected_major()?;
        let catalog = Catalog::load(&self.manifest).map_err(|e| e.to_string())?;
        for file in catalog.files() {
            println!("cargo:rerun-if-changed={}", file.display());
        }
        let entry = catalog.pick(self.library.as_deref())?;
        let view = LibraryMajor::new(&entry.manifest, major)
            .map_err(|e| format!("{}: {e}", entry.path.display()))?;
        let out_dir = PathBuf::from(
            std::env::var_os("OUT_DIR")
                .ok_or("OUT_DIR is not set: call this from a build script")?,
        );
        let src = source::source(&view, &self.plan, arch::current()?)
            .map_err(|e| format!("cudastub: {e}"))?;
        let src_path = out_dir.join("cudastub_shim.rs");
        crate::manifest::write_atomic(&src_path, &src)
            .map_err(|e| format!("{}: {e}", src_path.display()))?;
        let script = match node_script(&view) {
            Some(text) => {
                let path = out_dir.join(format!("{}.node.map", view.soname));
                crate::manifest::write_atomic(&path, &text)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Some(path)
            }
            None => None,
        };
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
        if let Some(script) = script {
            println!(
                "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
                script.display()
            );
        }
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{}", view.soname);
        println!("cargo:rustc-env={MAJOR_VARIABLE}={major}");
        // `#[cfg(cudastub_major = "12")]` selects code per major.
        let majors: Vec<String> = entry
            .manifest
            .majors
            .keys()
            .map(|k| format!("\"{k}\""))
            .collect();
        println!(
            "cargo:rustc-check-cfg=cfg(cudastub_major, values({}))",
            majors.join(", ")
        );
        println!("cargo:rustc-cfg=cudastub_major=\"{major}\"");
        Ok(src_path)
    }
}
