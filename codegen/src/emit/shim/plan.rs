//! What a shim does with each function: its [`Policy`], gathered in a [`Plan`].

use std::collections::BTreeMap;
use std::sync::Arc;

use proc_macro2::TokenStream;

use crate::ctype::Prototype;
use crate::view::{Export, LibraryMajor};

/// The prefix of C implementations: `cudastub_impl_cudaGetDeviceCount`
/// implements `cudaGetDeviceCount`. The prefix keeps them from clashing with
/// the exported names, and the link keeps them local to the shim.
pub const C_PREFIX: &str = "cudastub_impl_";

/// How a shim answers calls to one function.
///
/// The set is open: [`Policy::Custom`] takes any [`PolicyEmitter`], so a new
/// kind of backend (remoting, recording, fault injection) is one
/// implementation of that trait, not an edit of the emitter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Jump to the real library's function.
    Forward,
    /// Return the named status value (e.g. `cudaErrorNotSupported`) after a
    /// one-time diagnostic; other return types get their failure value.
    Fail(String),
    /// Call the Rust function `<module>::<snake_case name>` of the crate.
    Rust,
    /// Call the C function `cudastub_impl_<name>` from the crate's C sources.
    C,
    /// Jump to the real library's function; only when the real library (or
    /// the function) is missing, call the Rust implementation instead. A
    /// stand-in that answers by itself on a machine with no real library,
    /// and is transparent where there is one.
    Fallback,
    /// A policy of the crate's own (see [`PolicyEmitter`]).
    Custom(CustomPolicy),
}

/// What a [`PolicyEmitter`] is given for one function.
pub struct PolicyContext<'a> {
    /// The export.
    pub export: &'a Export<'a>,
    /// Its slot.
    pub index: u32,
    /// Its parameters as Rust (`count: *mut ::core::ffi::c_int`), in the
    /// generated module's scope (types are `types::NAME`).
    pub params: Vec<TokenStream>,
    /// Its argument names as Rust identifiers, in order.
    pub args: Vec<TokenStream>,
    /// Its Rust return type (`-> types::cudaError_t`), empty for `void`.
    pub returns: TokenStream,
}

/// What a [`PolicyEmitter`] generates for one function.
pub struct Emitted {
    /// Items for the generated module `custom` (a function, a static).
    pub items: TokenStream,
    /// The function the slot points to, as a path from inside `custom` (an
    /// item of `items`); `None` for the real function.
    pub target: Option<TokenStream>,
}

/// A kind of backend: what the shim generates for each function given a
/// policy of this kind. Generated items can call the shim's runtime
/// (`super::SHIM`), its typed callers (`super::real::NAME`,
/// `super::via_shim::NAME`, generated when [`PolicyEmitter::calls_real`]),
/// and read the function's parameter roles from [`PolicyContext::export`].
pub trait PolicyEmitter: std::fmt::Debug + Send + Sync {
    /// The policy in words, for messages (`recorded`).
    fn describe(&self) -> String;
    /// Why this policy cannot serve the function, if it cannot (its roles
    /// are unknown, say).
    fn refuse(&self, _export: &Export) -> Option<String> {
        None
    }
    /// Whether generated items call the typed `real::` / `via_shim::` callers.
    fn calls_real(&self) -> bool {
        false
    }
    /// The items and target of one function.
    fn emit(&self, cx: &PolicyContext) -> Emitted;
}

/// A [`PolicyEmitter`] as a [`Policy`]: compared by identity.
#[derive(Clone, Debug)]
pub struct CustomPolicy(pub Arc<dyn PolicyEmitter>);

impl PartialEq for CustomPolicy {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CustomPolicy {}

impl Policy {
    /// A policy of the crate's own.
    pub fn custom(emitter: impl PolicyEmitter + 'static) -> Policy {
        Policy::Custom(CustomPolicy(Arc::new(emitter)))
    }

    /// `true` for a policy that calls a Rust or C implementation.
    pub fn implements(&self) -> bool {
        matches!(self, Policy::Rust | Policy::C | Policy::Fallback)
    }

    /// Parses `forward`, `fail:STATUS`, `rust`, `c` or `fallback`.
    pub fn parse(text: &str) -> Result<Policy, String> {
        match text.split_once(':') {
            None if text == "forward" => Ok(Policy::Forward),
            None if text == "rust" => Ok(Policy::Rust),
            None if text == "c" => Ok(Policy::C),
            None if text == "fallback" => Ok(Policy::Fallback),
            Some(("fail", status)) if !status.is_empty() => Ok(Policy::Fail(status.to_string())),
            _ => Err(format!(
                "unknown policy `{text}` (expected forward, fail:STATUS, rust, c or fallback)"
            )),
        }
    }
}

/// The text form [`Policy::parse`] reads.
impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::Forward => f.write_str("forward"),
            Policy::Fail(status) => write!(f, "fail:{status}"),
            Policy::Rust => f.write_str("rust"),
            Policy::C => f.write_str("c"),
            Policy::Fallback => f.write_str("fallback"),
            Policy::Custom(c) => f.write_str(&c.0.describe()),
        }
    }
}

/// The Rust name of the implementation of `c_name` in the backend module:
/// `cudaGetDeviceCount` → `cuda_get_device_count`.
///
/// One rule, chosen so that distinct exports never share a Rust name and
/// the name can be guessed from the C one:
///
/// - Leading underscores are kept: `__cudaLaunchKernel` →
///   `__cuda_launch_kernel` (not `cuda_launch_kernel`, which is
///   `cudaLaunchKernel`'s).
/// - Every `_` of the C name is kept, so suffixes stay verbatim:
///   `cublasSgemm_v2_64` → `cublas_sgemm_v2_64`, `cudaMemcpy2D_ptds` →
///   `cuda_memcpy_2d_ptds`.
/// - Between underscores, a word starts at a capital after a lowercase
///   letter (`cudaGet` → `cuda_get`) and at the last capital of a run of
///   capitals followed by a lowercase letter (`GLRegister` →
///   `gl_register`, `VDPAUSet` → `vdpau_set`); everything is lowercased.
///   (So cuBLAS's `cublasHSHgemvBatched` is `cublas_hs_hgemv_batched`: a
///   precision prefix before a lowercase routine looks like `GLRegister`.)
/// - Digits belong to the word they follow (`cublasDnrm2` →
///   `cublas_dnrm2`, `L2Cache` → `l2_cache`, `P2PAttribute` →
///   `p2p_attribute`), except a dimension: digits and `D` after a lowercase
///   letter and before a capital or the end are a word of their own
///   (`cudaMemcpy2DToArray` → `cuda_memcpy_2d_to_array`, `cudaMalloc3D` →
///   `cuda_malloc_3d`).
///
/// The rule is only case folding and word breaks, so two names could in
/// principle meet (`fooBar` and `foo_bar`); no two exports of any library
/// and major of the manifest do, and a test keeps it so.
pub fn rust_impl_name(c_name: &str) -> String {
    let body = c_name.trim_start_matches('_');
    let mut out = c_name[..c_name.len() - body.len()].to_string();
    for (i, segment) in body.split('_').enumerate() {
        if i > 0 {
            out.push('_');
        }
        out.push_str(&segment_words(segment).join("_"));
    }
    out
}

/// The lowercased words of one `_`-free part of a C name (see [`rust_impl_name`]).
fn segment_words(segment: &str) -> Vec<String> {
    let c: Vec<char> = segment.chars().collect();
    // A digit takes the case of the letter before its run: `L2C` is one run
    // of capitals, `m2E` a lowercase word followed by a capital.
    let mut upper = vec![false; c.len()];
    for i in 0..c.len() {
        upper[i] = if c[i].is_ascii_digit() {
            i > 0 && upper[i - 1]
        } else {
            c[i].is_ascii_uppercase()
        };
    }
    let is_cap = |i: usize| c[i].is_ascii_uppercase();
    let mut breaks = vec![false; c.len() + 1];
    let mut i = 1;
    while i < c.len() {
        if c[i].is_ascii_digit() && c[i - 1].is_ascii_lowercase() {
            // A dimension: `2D`, `3D`, before a capital or the end.
            let mut j = i;
            while j < c.len() && c[j].is_ascii_digit() {
                j += 1;
            }
            if j < c.len() && c[j] == 'D' && (j + 1 == c.len() || is_cap(j + 1)) {
                breaks[i] = true;
                breaks[j + 1] = true;
                i = j + 2;
                continue;
            }
        }
        if is_cap(i) {
            let next_lower = i + 1 < c.len() && c[i + 1].is_ascii_lowercase();
            if !upper[i - 1] || next_lower {
                breaks[i] = true;
            }
        }
        i += 1;
    }
    let mut words = Vec::new();
    let mut word = String::new();
    for (i, ch) in c.iter().enumerate() {
        if breaks[i] && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        word.push(ch.to_ascii_lowercase());
    }
    if !word.is_empty() || words.is_empty() {
        words.push(word);
    }
    words
}

/// Everything that decides what a shim does, beyond the manifest.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The policy of every function not named in `policies`.
    pub default_policy: Policy,
    /// Per-function policies.
    pub policies: BTreeMap<String, Policy>,
    /// The module holding Rust implementations, as a path (`crate::backend`).
    pub rust_module: String,
    /// Per-thread variants answered by another variant's implementation.
    pub routes: BTreeMap<String, Route>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            default_policy: Policy::Forward,
            policies: BTreeMap::new(),
            rust_module: "crate::backend".to_string(),
            routes: BTreeMap::new(),
        }
    }
}

impl Plan {
    /// Checks the plan against `view`: every named function exists in its
    /// major, is implementable if implemented, and every status value is
    /// known. Returns every error, sorted; an unknown name or status says
    /// which existing one is closest.
    pub fn check(&self, view: &LibraryMajor) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let m = view.manifest;
        let names = view.functions.iter().map(|f| f.name);
        for name in self.policies.keys() {
            if view.functions.iter().all(|f| f.name != name) {
                let elsewhere: Vec<String> = m
                    .function(name)
                    .map(|f| f.majors.keys().map(u32::to_string).collect())
                    .unwrap_or_default();
                let hint = did_you_mean(name, names.clone());
                errors.push(if elsewhere.is_empty() {
                    format!(
                        "`{name}` is not a function of {} in any major{hint}",
                        view.library
                    )
                } else {
                    format!(
                        "`{name}` is not a function of major {} (it is in major {}){hint}",
                        view.major,
                        elsewhere.join(", ")
                    )
                });
            }
        }
        if self.default_policy == Policy::Forward {
            for family in view.families() {
                let by_default: Vec<&str> = family
                    .variants
                    .iter()
                    .copied()
                    .filter(|v| !self.policies.contains_key(*v))
                    .collect();
                let decided = family
                    .variants
                    .iter()
                    .find(|v| *self.policy(v) != Policy::Forward);
                if let (Some(decided), false) = (decided, by_default.is_empty()) {
                    errors.push(format!(
                        "`{decided}` is {}, but other variants of the API `{}` would be left forwarded: {}; name the API to give every variant the policy, or give those theirs by name",
                        describe(self.policy(decided)),
                        family.api,
                        by_default
                            .iter()
                            .map(|v| format!("`{v}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        for (name, policy) in &self.policies {
            let unknown = view
                .functions
                .iter()
                .any(|f| f.name == name && f.proto.unknown_params);
            if unknown && policy.implements() {
                errors.push(format!(
                    "`{name}` cannot be implemented: its parameters are unknown (`(...)` in the manifest); it can only be forwarded or failed"
                ));
            }
            if let (Policy::Custom(c), Some(f)) = (policy, view.function(name))
                && let Some(why) = c.0.refuse(f)
            {
                errors.push(format!("`{name}` cannot be {}: {why}", c.0.describe()));
            }
        }
        for p in self
            .policies
            .values()
            .chain(std::iter::once(&self.default_policy))
        {
            if let Policy::Fail(status) = p {
                match &view.status {
                    None => errors.push(format!(
                        "policy fail:{status}: the manifest declares no status type"
                    )),
                    Some(s) if !s.values.iter().any(|(n, _)| n == status) => errors.push(format!(
                        "unknown status `{status}` for major {}{}",
                        view.major,
                        did_you_mean(status, s.values.iter().map(|(n, _)| *n))
                    )),
                    Some(_) => {}
                }
            }
        }
        errors.sort();
        errors.dedup();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The policy of function `name`.
    pub fn policy(&self, name: &str) -> &Policy {
        self.policies.get(name).unwrap_or(&self.default_policy)
    }

    /// The export whose implementation answers `name`: itself, or for a
    /// routed per-thread variant the variant it is the per-thread form of.
    pub fn implementation_of<'n>(&'n self, name: &'n str) -> &'n str {
        self.routes.get(name).map_or(name, |r| r.to.as_str())
    }
}

/// A policy in words, for messages.
fn describe(policy: &Policy) -> String {
    match policy {
        Policy::Forward => "forwarded".into(),
        Policy::Fail(status) => format!("failed with {status}"),
        Policy::Rust => "implemented in Rust".into(),
        Policy::C => "implemented in C".into(),
        Policy::Fallback => {
            "forwarded, implemented in Rust where the real library is missing".into()
        }
        Policy::Custom(c) => c.0.describe(),
    }
}

/// `; did you mean `X`?` with the candidate closest to `wrong` by edit
/// distance (the first in order among equals), or nothing without candidates.
pub fn did_you_mean<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(wrong, c), c))
        .min()
        .map(|(_, c)| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// What a [`PolicyRule`] applies to.
#[derive(Clone)]
pub enum Selector {
    /// One function, by its exact name.
    Name(String),
    /// Every function whose name matches a glob: `*` any text, `?` one
    /// character, `[…]` one of a set (the [`glob`] crate's syntax). A glob
    /// that matches no function of the major is an error.
    Glob(String),
    /// Every function the predicate accepts (none is not an error).
    Where(Arc<dyn Fn(&FunctionInfo) -> bool + Send + Sync>),
}

impl Selector {
    /// A glob if `text` has a glob character (`*`, `?`, `[`: never part of
    /// a C name), else an exact name.
    pub fn from_text(text: &str) -> Selector {
        if text.contains(['*', '?', '[']) {
            Selector::Glob(text.to_string())
        } else {
            Selector::Name(text.to_string())
        }
    }
}

impl std::fmt::Debug for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Name(n) => f.debug_tuple("Name").field(n).finish(),
            Selector::Glob(g) => f.debug_tuple("Glob").field(g).finish(),
            Selector::Where(_) => f.write_str("Where(..)"),
        }
    }
}

/// What a predicate of [`Selector::Where`] sees of a function.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct FunctionInfo<'a> {
    /// The exported name (`cudaMemcpyAsync_ptsz`).
    pub name: &'a str,
    /// The API it is a variant of (`cudaMemcpyAsync`, see [`crate::view::api_name`]).
    pub api: &'a str,
    /// Its kind in the manifest (`api`, `internal`, `per-thread`, `interop`).
    pub kind: &'a str,
    /// `true` when it returns the library's status type.
    pub returns_status: bool,
    /// `true` when its parameters are unknown (`(...)`): it can only be
    /// forwarded or failed.
    pub unknown_params: bool,
    /// Its prototype in the major being built.
    pub prototype: &'a Prototype,
}

impl<'a> FunctionInfo<'a> {
    /// What a predicate sees of `f`.
    pub fn of(f: &Export<'a>) -> Self {
        FunctionInfo {
            name: f.name,
            api: crate::view::api_name(f.name),
            kind: f.kind,
            returns_status: f.returns_status,
            unknown_params: f.proto.unknown_params,
            prototype: f.proto,
        }
    }
}

/// One policy given to some functions, as a build script states it.
#[derive(Clone, Debug)]
pub struct PolicyRule {
    /// The functions it applies to.
    pub selector: Selector,
    /// Their policy.
    pub policy: Policy,
}

/// A per-thread variant answered by the implementation of the variant it
/// is the per-thread form of (see [`resolve`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The export whose implementation answers (`cudaMemcpyAsync` for
    /// `cudaMemcpyAsync_ptsz`).
    pub to: String,
    /// The stream parameter, mapped from the default stream (null) to the
    /// per-thread stream (`cudaStreamPerThread`, `CU_STREAM_PER_THREAD`)
    /// before the call; `None` when the function takes no stream.
    pub stream: Option<String>,
}

/// The stream handle types of the CUDA libraries: null is the default
/// stream, and `0x2` is the per-thread one in both (`cudaStreamPerThread`,
/// `CU_STREAM_PER_THREAD`).
pub const STREAM_TYPES: [&str; 2] = ["cudaStream_t", "CUstream"];

/// How a rule selected a function; a higher rank wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// A glob or a predicate.
    Pattern,
    /// The name of its API (`cudaGetDeviceProperties` for every variant).
    Api,
    /// Its own exported name.
    Exact,
}

/// Resolves `rules` into per-function policies of `view`, and the
/// per-thread variants that share an implementation.
///
/// Precedence: a rule naming a function exactly beats a rule naming its
/// API, which beats every glob and predicate, whatever their order; among
/// equals the later rule wins. A name is an API's when the major exports
/// several variants of it ([`crate::view::api_name`]), or only suffixed
/// ones: `cudaGetDeviceProperties` in 12 selects the legacy export and
/// `cudaGetDeviceProperties_v2`. Unknown exact names are kept, for
/// [`Plan::check`] to report.
///
/// A per-thread variant (`X_ptsz`, `X_ptds`) implemented by an API name,
/// a glob or a predicate, with the same policy and prototype as `X`, is
/// answered by `X`'s implementation, its one stream parameter mapped from
/// the default stream to the per-thread one (a `_ptds` function without a
/// stream parameter is called as is); named exactly, it has its own. So
/// does a `_ptsz` variant with no stream parameter or several, whose
/// per-thread meaning a parameter cannot carry (`cuLaunchKernelEx_ptsz`,
/// `cudaGetDriverEntryPoint_ptsz`, `cuStreamCopyAttributes_ptsz`). Every
/// other variant has its own implementation with its own types.
///
/// Errors: a glob that does not parse or matches no function of the major;
/// an API implemented with a variant whose parameters are unknown; an API
/// whose variants would be partly forwarded by default (the trap of
/// implementing `cudaGetDeviceProperties_v2` while old binaries still reach
/// the real `cudaGetDeviceProperties`): each names the variants.
pub fn resolve(rules: &[PolicyRule], view: &LibraryMajor) -> Resolved {
    let mut chosen: BTreeMap<String, (Rank, Policy)> = BTreeMap::new();
    let mut errors = Vec::new();
    let families = view.families();
    let family = |name: &str| {
        families
            .iter()
            .find(|f| f.api == name && (f.variants.len() > 1 || f.variants != [name]))
    };
    let mut choose = |name: &str, rank: Rank, policy: &Policy| {
        let keep = chosen.get(name).is_some_and(|(r, _)| *r > rank);
        if !keep {
            chosen.insert(name.to_string(), (rank, policy.clone()));
        }
    };
    for rule in rules {
        match &rule.selector {
            Selector::Name(name) => match family(name) {
                Some(f) => {
                    for v in &f.variants {
                        choose(v, Rank::Api, &rule.policy);
                    }
                }
                None => choose(name, Rank::Exact, &rule.policy),
            },
            Selector::Glob(text) => match glob::Pattern::new(text) {
                Err(e) => errors.push(format!("`{text}` is not a valid glob: {e}")),
                Ok(pattern) => {
                    let mut any = false;
                    for f in view.functions.iter().filter(|f| pattern.matches(f.name)) {
                        choose(f.name, Rank::Pattern, &rule.policy);
                        any = true;
                    }
                    if !any {
                        errors.push(format!(
                            "`{text}` matches no function of {} major {}",
                            view.library, view.major
                        ));
                    }
                }
            },
            Selector::Where(accepts) => {
                for f in &view.functions {
                    if accepts(&FunctionInfo::of(f)) {
                        choose(f.name, Rank::Pattern, &rule.policy);
                    }
                }
            }
        }
    }
    // An API implemented with a variant of unknown parameters: refused.
    for (name, (rank, policy)) in chosen.iter_mut() {
        let unknown = view.function(name).is_some_and(|f| f.proto.unknown_params);
        if unknown && *rank == Rank::Api && policy.implements() {
            let api = crate::view::api_name(name);
            errors.push(format!(
                "the API `{api}` is {}, but its variant `{name}` has unknown parameters (`(...)`) and would be left forwarded: forward or fail it by name",
                describe(policy)
            ));
            *policy = Policy::Forward;
        }
    }
    let policies: BTreeMap<String, Policy> = chosen
        .iter()
        .map(|(n, (_, p))| (n.clone(), p.clone()))
        .collect();
    let mut routes = BTreeMap::new();
    for (name, (rank, policy)) in &chosen {
        if *rank == Rank::Exact || !matches!(policy, Policy::Rust | Policy::C) {
            continue;
        }
        let Some(variant) = view.function(name) else {
            continue;
        };
        if !crate::view::is_per_thread(name) {
            continue;
        }
        let base = &name[..name.len() - "_ptsz".len()];
        let Some(partner) = view.function(base) else {
            continue;
        };
        if policies.get(base) != Some(policy) || !same_types(variant.proto, partner.proto) {
            continue;
        }
        let streams: Vec<&str> = variant
            .proto
            .params
            .iter()
            .filter(|p| p.ty.pointers.is_empty() && STREAM_TYPES.contains(&p.ty.base.as_str()))
            .map(|p| p.name.as_str())
            .collect();
        // The per-thread meaning must be one stream parameter, or a `_ptds`
        // function's implicit default stream. A `_ptsz` variant with none
        // keeps it elsewhere (`cuLaunchKernelEx_ptsz`'s config struct,
        // `cudaGetDriverEntryPoint_ptsz`'s answer), and one with several
        // (`cuStreamCopyAttributes_ptsz`) is ambiguous: those have their own.
        let stream = match streams.as_slice() {
            [one] => Some(one.to_string()),
            [] if name.ends_with("_ptds") => None,
            _ => continue,
        };
        routes.insert(
            name.clone(),
            Route {
                to: base.to_string(),
                stream,
            },
        );
    }
    Resolved {
        policies,
        routes,
        errors,
    }
}

/// What [`resolve`] makes of the rules.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// The policy of every function a rule selected.
    pub policies: BTreeMap<String, Policy>,
    /// Per-thread variants answered by another variant's implementation.
    pub routes: BTreeMap<String, Route>,
    /// Every error of the rules.
    pub errors: Vec<String>,
}

/// `true` when two prototypes take and return the same types (names aside).
fn same_types(a: &Prototype, b: &Prototype) -> bool {
    a.returns == b.returns
        && a.unknown_params == b.unknown_params
        && a.params.len() == b.params.len()
        && a.params.iter().zip(&b.params).all(|(x, y)| x.ty == y.ty)
}
