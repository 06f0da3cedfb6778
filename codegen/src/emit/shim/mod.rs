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
use std::sync::Arc;

use super::arch;
use super::c_header;
use super::generated_banner;
use crate::catalog::Catalog;
use crate::view::LibraryMajor;

mod implementations;
pub mod plan;
pub mod remote;
pub mod source;

pub use plan::{
    C_PREFIX, CustomPolicy, Emitted, FunctionInfo, Plan, Policy, PolicyContext, PolicyEmitter,
    PolicyRule, Route, Selector, rust_impl_name,
};

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
/// use cudastub_codegen::emit::shim::{Policy, ShimBuild};
/// let shim = ShimBuild::standard().library("cudart").default_major(12);
/// let shim = shim
///     .implement(["cudaGetDeviceCount"])                    // crate::backend::cuda_get_device_count
///     .implement_in_c(["cudaDriverGetVersion"])             // cudastub_impl_cudaDriverGetVersion
///     .c_source("src/driver.c")                             // #include "cudastub_impl.h"
///     .c_build(|cc| { cc.define("VGPU", "1"); })
///     .fail(["cudaMalloc*"], "cudaErrorNotSupported")       // a glob
///     .forward(["cudaMallocHost"])                          // an exact name beats a glob
///     .policy_where(|f| f.kind == "interop", Policy::Fail("cudaErrorNotSupported".into()));
/// shim.build().unwrap_or_else(|e| panic!("{e}"));
/// ```
///
/// # Choosing functions
///
/// Every method that takes names (`implement`, `fail`, `policy`, …) takes
/// API names, exact export names or globs:
///
/// - **An API** is every ABI variant the major exports of one function:
///   `cudaGetDeviceProperties` is, in 12, the legacy export (which fills
///   CUDA 11's `cudaDeviceProp_v1`) and `cudaGetDeviceProperties_v2` (which
///   12's headers call); `cudaMemcpyAsync` is also `cudaMemcpyAsync_ptsz`;
///   `cuMemcpyHtoDAsync` is the legacy 32-bit export, `_v2` and `_v2_ptsz`
///   (see [`crate::view::api_name`]). Naming the API gives every variant
///   the policy. Implemented, each variant has its own implementation with
///   its own types (`cuda_get_device_properties`,
///   `cuda_get_device_properties_v2`), except that a per-thread variant
///   with the prototype of its plain form reaches that form's
///   implementation, the default stream (null) made the per-thread one
///   ([`Route`]; not a `_ptsz` variant with no or several stream
///   parameters, such as `cuLaunchKernelEx_ptsz`, which has its own). The driver's `cuGetProcAddress` hands out the shim's own
///   export of the variant the caller's CUDA version asks for, so those
///   calls reach the implementations too.
/// - **An exact name** of a variant gives that variant alone the policy
///   (and, implemented, its own implementation).
/// - **A glob**, a name with `*` (any text), `?` (one character) or `[…]`
///   (one of a set), selects exports and must match at least one function
///   of the major. [`ShimBuild::policy_where`] selects by a predicate over
///   [`FunctionInfo`] (`|f| f.name == "cudaGetDeviceProperties"` is the
///   legacy export alone, whose name is also its API's).
///
/// Precedence: an exact name beats an API name, which beats every glob and
/// predicate, whatever the order of the calls; among equals the later call
/// wins; functions no rule selects get the default policy.
///
/// **An API is decided whole.** When some variants of an API get a policy
/// and others would be forwarded only by default (implementing
/// `cudaGetDeviceProperties_v2` while CUDA 11 binaries still reach the real
/// legacy export; a glob `cudaMemcpy*Async` missing the `_ptsz` forms), the
/// build is refused with an error naming the variants left forwarded;
/// naming the API, or giving those variants a policy of their own
/// (`forward` included), accepts it. So is an API implemented with a
/// variant whose parameters are unknown (`(...)`).
///
/// # Errors
///
/// [`ShimBuild::build`] reports every mistake of the configuration at once,
/// one per line, sorted: an unknown policy text, a function or status that
/// does not exist (with the closest one that does), a glob that matches
/// nothing, a function that cannot be implemented. A function implemented
/// in C that no C source defines fails the link, naming
/// `cudastub_impl_NAME`: the shim is linked with `-z defs`, so no symbol is
/// left for the loader to miss.
#[derive(Clone, Debug)]
pub struct ShimBuild {
    manifest: PathBuf,
    library: Option<String>,
    default_major: Option<u32>,
    fixed_major: Option<u32>,
    plan: Plan,
    rules: Vec<PolicyRule>,
    c_sources: Vec<PathBuf>,
    cc: cc::Build,
    errors: Vec<String>,
    remote: bool,
}

/// The environment variable that picks the major of a build whose major
/// is not fixed.
pub const MAJOR_VARIABLE: &str = "CUDASTUB_MAJOR";

impl ShimBuild {
    /// A plain forwarding shim from the standard manifests shipped in this
    /// crate ([`crate::catalog::standard_index`]): the runtime, cuBLAS,
    /// cuBLASLt, the driver and NVML. Pick one with [`ShimBuild::library`].
    pub fn standard() -> Self {
        ShimBuild::new(crate::catalog::standard_index())
    }

    /// A plain forwarding shim from the manifest (or index) at `manifest`.
    pub fn new(manifest: impl AsRef<Path>) -> Self {
        ShimBuild {
            manifest: manifest.as_ref().to_path_buf(),
            library: None,
            default_major: None,
            fixed_major: None,
            plan: Plan::default(),
            rules: Vec::new(),
            c_sources: Vec::new(),
            cc: cc::Build::new(),
            errors: Vec::new(),
            remote: false,
        }
    }

    /// A remote GPU's client (`cudastub dist --remote`): every function is
    /// sent to the GPU server through `libcudastub-remote.so`, and the real
    /// library is never loaded. A function whose parameters are unknown, or
    /// whose return a register does not hold, fails with the library's
    /// "not supported" status. Rules given to the builder still apply.
    pub fn remote(mut self) -> Self {
        self.remote = true;
        self
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

    /// Sets the policy of each named function; a name with `*`, `?` or
    /// `[…]` is a glob (see [Choosing functions](Self#choosing-functions)).
    pub fn policy<'a>(mut self, names: impl IntoIterator<Item = &'a str>, policy: Policy) -> Self {
        for n in names {
            self.rules.push(PolicyRule {
                selector: Selector::from_text(n),
                policy: policy.clone(),
            });
        }
        self
    }

    /// Sets the policy of every function `accepts` selects, such as
    /// `|f| f.kind == "interop"` (see [Choosing functions](Self#choosing-functions)).
    pub fn policy_where(
        mut self,
        accepts: impl Fn(&FunctionInfo) -> bool + Send + Sync + 'static,
        policy: Policy,
    ) -> Self {
        self.rules.push(PolicyRule {
            selector: Selector::Where(Arc::new(accepts)),
            policy,
        });
        self
    }

    /// Sets a policy from its text form (`forward`, `fail:STATUS`, `rust`, `c`);
    /// an unknown form fails the build. `name` may be a glob.
    pub fn policy_str(mut self, name: &str, policy: &str) -> Self {
        match Policy::parse(policy) {
            Ok(p) => self = self.policy([name], p),
            Err(e) => self.errors.push(format!("{name}: {e}")),
        }
        self
    }

    /// These functions are forwarded to the real library (the default
    /// policy, unless changed): to exempt some functions from a glob.
    pub fn forward<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.policy(names, Policy::Forward)
    }

    /// These functions are implemented in Rust, in the backend module, under
    /// their [`rust_impl_name`].
    pub fn implement<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.policy(names, Policy::Rust)
    }

    /// These functions are implemented in C (`cudastub_impl_NAME`, declared
    /// in the generated `cudastub_impl.h`).
    pub fn implement_in_c<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.policy(names, Policy::C)
    }

    /// These functions are forwarded, and implemented in Rust (as
    /// [`ShimBuild::implement`]) only for when the real library or the
    /// function is missing: the stand-in answers by itself on a machine
    /// without the library and stays transparent where there is one.
    pub fn fallback<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.policy(names, Policy::Fallback)
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

    /// A C source file to compile into the shim (with the `cc` crate). It
    /// may `#include "cudastub_impl.h"`: `$OUT_DIR` is on its include path.
    pub fn c_source(mut self, path: impl AsRef<Path>) -> Self {
        self.c_sources.push(path.as_ref().to_path_buf());
        self
    }

    /// Configures the [`cc::Build`] that compiles the C sources: include
    /// directories, defines, flags (`|cc| { cc.include("inc").flag("-O3"); }`).
    /// [`c_source`](Self::c_source)'s files, `$OUT_DIR` as an include
    /// directory and warnings are added to it at build time.
    pub fn c_build(mut self, configure: impl FnOnce(&mut cc::Build)) -> Self {
        configure(&mut self.cc);
        self
    }

    /// Replaces the [`cc::Build`] that compiles the C sources (see
    /// [`c_build`](Self::c_build)); `cudastub_codegen::cc` is the version
    /// this crate uses.
    pub fn cc(mut self, build: cc::Build) -> Self {
        self.cc = build;
        self
    }

    /// The plan this build gives `view`: every function's policy after
    /// globs, predicates and precedence, or every configuration error
    /// (those of [`policy_str`](Self::policy_str) included).
    pub fn plan(&self, view: &LibraryMajor) -> Result<Plan, Vec<String>> {
        let mut rules = self.rules.clone();
        let mut base = self.plan.clone();
        let mut errors = self.errors.clone();
        if self.remote {
            base.default_policy = Policy::custom(remote::RemotePolicy { major: view.major });
            match &view.status {
                Some(status) => {
                    let failed: Vec<&str> = view
                        .functions
                        .iter()
                        .filter(|f| remote::needs_fail(view, f))
                        .map(|f| f.name)
                        .collect();
                    // Before the builder's own rules: theirs win among equals.
                    let fail = Policy::Fail(status.codes.not_supported.clone());
                    let own = std::mem::take(&mut rules);
                    rules = failed
                        .into_iter()
                        .map(|n| PolicyRule {
                            selector: Selector::from_text(n),
                            policy: fail.clone(),
                        })
                        .chain(own)
                        .collect();
                }
                None => errors.push(format!(
                    "{}: a remote client needs the library's status type",
                    view.soname
                )),
            }
        }
        let plan::Resolved {
            policies,
            routes,
            errors: resolved,
        } = plan::resolve(&rules, view);
        errors.extend(resolved);
        let plan = Plan {
            policies,
            routes,
            ..base
        };
        if let Err(e) = plan.check(view) {
            errors.extend(e);
        }
        if errors.is_empty() {
            Ok(plan)
        } else {
            Err(errors)
        }
    }

    /// Generates `$OUT_DIR/cudastub_shim.rs` and `$OUT_DIR/cudastub_impl.h`,
    /// writes the version script, compiles the C sources and prints the
    /// cargo directives. Call from `build.rs`; the crate includes the result
    /// with `include!(concat!(env!("OUT_DIR"), "/cudastub_shim.rs"));`.
    ///
    /// Every configuration error is reported at once, one per line, sorted.
    /// The header's path is printed as `cargo:impl_header=PATH` (available
    /// to dependents as `DEP_<links>_IMPL_HEADER` when the crate sets `links`).
    pub fn build(self) -> Result<PathBuf, String> {
        println!("cargo:rerun-if-changed={}", self.manifest.display());
        println!("cargo:rerun-if-env-changed={MAJOR_VARIABLE}");
        let mut errors = self.errors.clone();
        let major = self.selected_major();
        let catalog = Catalog::load(&self.manifest).map_err(|e| e.to_string());
        let (major, catalog) = match (major, catalog) {
            (Ok(m), Ok(c)) => (m, c),
            (m, c) => {
                errors.extend(m.err());
                errors.extend(c.err());
                return Err(report(errors));
            }
        };
        for file in catalog.files() {
            println!("cargo:rerun-if-changed={}", file.display());
        }
        let entry = match catalog.pick(self.library.as_deref()) {
            Ok(e) => e,
            Err(e) => {
                errors.push(e);
                return Err(report(errors));
            }
        };
        let view = match LibraryMajor::new(&entry.manifest, major) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("{}: {e}", entry.path.display()));
                return Err(report(errors));
            }
        };
        // `errors` holds only the builder's own here, which `plan` reports too.
        let plan = self.plan(&view).map_err(report)?;
        // A Rust implementation the crate lacks, named with its signature
        // (rustc would only say `cannot find value` in the generated file).
        if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
            let missing = implementations::missing(Path::new(&dir), &view, &plan);
            if !missing.is_empty() {
                return Err(report(missing));
            }
        }
        let out_dir = PathBuf::from(
            std::env::var_os("OUT_DIR")
                .ok_or("OUT_DIR is not set: call this from a build script")?,
        );
        let src =
            source::source(&view, &plan, arch::current()?).map_err(|e| format!("cudastub: {e}"))?;
        let src_path = out_dir.join("cudastub_shim.rs");
        crate::manifest::write_atomic(&src_path, &src)
            .map_err(|e| format!("{}: {e}", src_path.display()))?;
        let header = out_dir.join(c_header::HEADER_NAME);
        crate::manifest::write_atomic(&header, &impl_header(&view, &plan))
            .map_err(|e| format!("{}: {e}", header.display()))?;
        println!("cargo:impl_header={}", header.display());
        let script = match node_script(&view) {
            Some(text) => Some(write_node_script(&out_dir, &view.soname, &text)?),
            None => None,
        };
        if !self.c_sources.is_empty() {
            for s in &self.c_sources {
                println!("cargo:rerun-if-changed={}", s.display());
            }
            self.cc
                .clone()
                .files(&self.c_sources)
                .include(&out_dir)
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
        // A library that exports `_init` or `_fini` itself (cuFile 1.14):
        // the C start files' own hidden ones would collide with the shim's
        // trampolines, so they stay out, and the loader calls neither (no
        // DT_INIT/DT_FINI: the names given here are defined nowhere).
        if view
            .functions
            .iter()
            .any(|f| matches!(f.name, "_init" | "_fini"))
        {
            println!("cargo:rustc-cdylib-link-arg=-nostartfiles");
            println!("cargo:rustc-cdylib-link-arg=-Wl,-init,cudastub_no_dt_init");
            println!("cargo:rustc-cdylib-link-arg=-Wl,-fini,cudastub_no_dt_fini");
        }
        // Every symbol resolved at link time: a C implementation no source
        // defines is a link error naming it, not a shim the loader refuses.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,defs");
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

/// Whether `path` survives as a linker argument: a `cargo:` directive ends
/// at a newline, and `-Wl,` splits its argument at commas.
fn passes_as_link_arg(path: &Path) -> bool {
    path.to_str()
        .is_some_and(|p| !p.contains(['\n', '\r', ',']))
}

/// Writes the node script into `out_dir`, or, where that path cannot be
/// passed to the linker (a target directory with a newline or a comma in
/// its path), into the temporary directory under a name made of a hash of
/// its text (the text is the same for every build of the soname, so
/// concurrent builds write the same bytes); returns its path.
fn write_node_script(out_dir: &Path, soname: &str, text: &str) -> Result<PathBuf, String> {
    let mut path = out_dir.join(format!("{soname}.node.map"));
    if !passes_as_link_arg(&path) {
        // FNV-1a, 64 bits: stable across Rust versions.
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        path = std::env::temp_dir().join(format!("cudastub-{hash:016x}.node.map"));
        if !passes_as_link_arg(&path) {
            return Err(format!(
                "{}: neither this path nor the temporary directory's can be passed to the \
                 linker (a newline, a comma or invalid UTF-8 in it): set TMPDIR to a plain path",
                out_dir.display()
            ));
        }
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return Ok(path);
        }
    }
    crate::manifest::write_atomic(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The header of the functions `plan` implements in C (see [`c_header`]).
pub fn impl_header(view: &LibraryMajor, plan: &Plan) -> String {
    let implemented: Vec<_> = view
        .functions
        .iter()
        .filter(|f| *plan.policy(f.name) == Policy::C && !plan.routes.contains_key(f.name))
        .map(|f| f.proto)
        .collect();
    c_header::c_header(view.library, view.major, view.facts, &implemented)
}

/// Every configuration error, sorted, one per line.
fn report(mut errors: Vec<String>) -> String {
    errors.sort();
    errors.dedup();
    errors.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A newline in the target directory's path cut the version script's
    /// link argument (`cargo:` directives end at a newline): cudart, cuBLAS
    /// and cuBLASLt failed to link.
    #[test]
    fn the_node_script_is_written_where_the_linker_can_be_told_of_it() {
        let base = std::env::temp_dir().join(format!("cudastub-out-{}", std::process::id()));
        let out_dir = base.join("target\nwith, odd/out");
        std::fs::create_dir_all(&out_dir).expect("mkdir");
        let text = "# test\nlibx.so.1 { local: *; };\n";
        let path = write_node_script(&out_dir, "libx.so.1", text).expect("written");
        assert!(passes_as_link_arg(&path), "{}", path.display());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
        // A plain OUT_DIR keeps the script there.
        let plain = write_node_script(&base, "libx.so.1", text).expect("written");
        assert_eq!(plain, base.join("libx.so.1.node.map"));
        let _ = std::fs::remove_dir_all(&base);
    }
}
