//! What a shim does with each function: its [`Policy`], gathered in a [`Plan`].

use std::collections::BTreeMap;

use heck::ToSnakeCase;

use crate::view::LibraryMajor;

/// The prefix of C implementations: `cudastub_impl_cudaGetDeviceCount`
/// implements `cudaGetDeviceCount`. The prefix keeps them from clashing with
/// the exported names, and the link keeps them local to the shim.
pub const C_PREFIX: &str = "cudastub_impl_";

/// How a shim answers calls to one function.
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
}

impl Policy {
    /// Parses `forward`, `fail:STATUS`, `rust` or `c`.
    pub fn parse(text: &str) -> Result<Policy, String> {
        match text.split_once(':') {
            None if text == "forward" => Ok(Policy::Forward),
            None if text == "rust" => Ok(Policy::Rust),
            None if text == "c" => Ok(Policy::C),
            Some(("fail", status)) if !status.is_empty() => Ok(Policy::Fail(status.to_string())),
            _ => Err(format!(
                "unknown policy `{text}` (expected forward, fail:STATUS, rust or c)"
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
        }
    }
}

/// The Rust name of an implementation of `c_name`: `cuda_get_device_count`.
pub fn rust_impl_name(c_name: &str) -> String {
    c_name.to_snake_case()
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
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            default_policy: Policy::Forward,
            policies: BTreeMap::new(),
            rust_module: "crate::backend".to_string(),
        }
    }
}

impl Plan {
    /// Checks the plan against `view`: every named function exists in its
    /// major and every status value is known.
    pub fn check(&self, view: &LibraryMajor) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let m = view.manifest;
        for name in self.policies.keys() {
            if view.functions.iter().all(|f| f.name != name) {
                let elsewhere: Vec<String> = m
                    .function(name)
                    .map(|f| f.majors.keys().map(u32::to_string).collect())
                    .unwrap_or_default();
                errors.push(if elsewhere.is_empty() {
                    format!(
                        "`{name}` is not a function of {} in any major",
                        view.library
                    )
                } else {
                    format!(
                        "`{name}` is not a function of major {} (it is in major {})",
                        view.major,
                        elsewhere.join(", ")
                    )
                });
            }
        }
        for (name, policy) in &self.policies {
            let unknown = view
                .functions
                .iter()
                .any(|f| f.name == name && f.proto.unknown_params);
            if unknown && matches!(policy, Policy::Rust | Policy::C) {
                errors.push(format!(
                    "`{name}` cannot be implemented: its parameters are unknown (`(...)` in the manifest); it can only be forwarded or failed"
                ));
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
                        "unknown status `{status}` for major {}",
                        view.major
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
}
