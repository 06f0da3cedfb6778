//! The call model: what each parameter of a function *is*, beyond its C type.
//!
//! A prototype says `int *count`; a role says "an output: one `int` the
//! function writes". Every parameter of every function of every (library,
//! major) has a [`Role`] in the manifest (`roles:`), or the explicit
//! [`Role::Unknown`]; every function has a [`CallClass`] (`class:`). Code
//! that must understand a call — the tracer printing outputs after it, a
//! backend copying host data to another process — reads roles, never guesses
//! from types. A function with an unknown role is *incomplete*: nothing is
//! generated from its roles.
//!
//! Roles come from three places, strongest first:
//! 1. a function's own `roles:` kept by hand (`roles_source: overlay`);
//! 2. the library's `import.role_rules` (data: `cublas*`'s `alpha` is a
//!    scalar in the space the pointer mode says);
//! 3. the structural rules of [`infer`] (`const char *` is an input string,
//!    `T *` to a scalar is one output, `CUdeviceptr` a device address, …).
//!
//! `cudastub roles` applies 2 and 3 to every function not kept by hand and
//! writes the result into the manifests, where reviewers read it.
//!
//! # The text form
//!
//! One role is a few words (`out buffer size=*numNodes nullable`):
//!
//! | role | meaning |
//! |---|---|
//! | `value` | a number, enum, flag set or struct passed by value |
//! | `handle` / `stream` | a library object by value (`stream`: a stream); `destroy` when the call ends it |
//! | `device` | a device address by value (`CUdeviceptr`, `void *devPtr`): never read on the host |
//! | `symbol` | a host address naming a registered kernel or device variable |
//! | `address` | an address the call does not read through (memory registered, looked up: host or device) |
//! | `callback data=P` | a function the library calls back, with its user data in `P` |
//! | `userdata` | a value passed back to a callback untouched |
//! | `in|out|inout TARGET …` | a pointer the call reads, writes or both |
//! | `unknown` | not known: the function is incomplete |
//!
//! `TARGET` is `scalar` (one element), `struct` (one struct, copied by its
//! layout), `string` (NUL-terminated; an output needs `size=`), `buffer`
//! (`size=` elements of the pointee, bytes for `void`), `handle`/`stream`
//! (an object the call returns; `create` when it makes a new one), `device`
//! (a device address the call returns), `address` (a host address the call
//! returns), `kernel-args` (a launch's argument array: sizes from the
//! kernel's parameter info), `fatbinary` (a module image, sized by its own
//! header), `launch-extra` (`cuLaunchKernel`'s `extra` list) or
//! `kernel-node` (a graph kernel node's parameters: the struct, its kernel
//! `func` and its `kernelParams`, sized by the kernel's parameters). Options:
//! `size=EXPR` — factors joined by `*`, each a number, a parameter, `*P`
//! (the value `P` points to), `rows(PITCH,WIDTH,HEIGHT)` (a 2D copy's
//! `(HEIGHT - 1) * PITCH + WIDTH` bytes) or `of(P)` (the bytes the value of
//! enum parameter `P` selects, from the library's `import.value_sizes`
//! table: `cuPointerGetAttribute`'s `data` is 8 bytes for
//! `CU_POINTER_ATTRIBUTE_CONTEXT`, 4 for `CU_POINTER_ATTRIBUTE_IS_MANAGED`);
//! `space=` `host` (the default), `device`, `managed`, `any` (unified addressing: the address says), `pointer-mode`
//! (cuBLAS's mode of the handle), `pointer-mode(P)` (the mode of descriptor
//! `P`, cuBLASLt's: a `scalar` there is one of `P`'s scale type) or a
//! parameter that decides (a `cudaMemcpyKind`); `nullable`; `create` (a
//! returned object is new).

use std::collections::BTreeMap;
use std::fmt;

use crate::ctype::{CType, Decl, Prototype};
use crate::manifest::{Major, TypeDef};

/// What one parameter is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not known: the function is incomplete.
    Unknown,
    /// A value passed by value.
    Value,
    /// A library object passed by value (a handle, or a stream).
    Handle {
        /// A stream (`cudaStream_t`, `CUstream`).
        stream: bool,
        /// Whether the call ends the object's life.
        life: Life,
    },
    /// A device address by value.
    Device,
    /// A host address that names a registered kernel or device variable.
    Symbol,
    /// An address by value that the call does not read through (memory
    /// being registered, unregistered or looked up: host or device).
    Address,
    /// A callback, with the parameter carrying its user data.
    Callback {
        /// The user-data parameter, if there is one.
        data: Option<String>,
    },
    /// User data handed back to a callback.
    UserData,
    /// A pointer the call reads or writes through.
    Pointer(Pointer),
}

/// Whether a call makes, uses or ends a library object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Life {
    /// Uses it.
    #[default]
    Use,
    /// Makes it (an output).
    Create,
    /// Ends it.
    Destroy,
}

/// A pointer parameter's role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointer {
    /// Read, written, or both.
    pub dir: Dir,
    /// What it points to.
    pub target: Target,
    /// How many elements, where that is not one.
    pub size: Option<Size>,
    /// Where the memory lives.
    pub space: Space,
    /// Null is allowed.
    pub nullable: bool,
    /// For an object returned: made by this call or not.
    pub life: Life,
}

/// The direction of a pointer parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The call reads it.
    In,
    /// The call writes it.
    Out,
    /// The call reads and writes it.
    InOut,
}

/// What a pointer parameter points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One element of the pointee type.
    Scalar,
    /// One struct, copied by its layout.
    Struct,
    /// A NUL-terminated string (an output string has a size).
    String,
    /// `size` elements of the pointee type (bytes for `void`).
    Buffer,
    /// A library object (or, `stream`, a stream) the call returns.
    Handle {
        /// A stream.
        stream: bool,
    },
    /// A device address the call returns.
    Device,
    /// A host address the call returns.
    Address,
    /// A kernel launch's argument array: its sizes come from the kernel.
    KernelArgs,
    /// A module image, sized by its own header.
    Fatbinary,
    /// `cuLaunchKernel`'s `extra`: `CU_LAUNCH_PARAM_*` pairs up to
    /// `CU_LAUNCH_PARAM_END`.
    LaunchExtra,
    /// A kernel node's parameters (`cudaKernelNodeParams`): a struct whose
    /// `func` names the kernel and whose `kernelParams` is its argument
    /// array, sized by the kernel's parameters.
    KernelNode,
}

/// Where the memory behind a pointer lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Space {
    /// Host memory (the default).
    Host,
    /// Device memory.
    Device,
    /// Managed memory, either side.
    Managed,
    /// Either side, as the address itself says (unified addressing).
    Any,
    /// cuBLAS's pointer mode of the handle decides.
    PointerMode,
    /// The pointer mode of a descriptor parameter decides, and the
    /// descriptor's scale type is the scalar's type (cuBLASLt's
    /// `cublasLtMatmulDesc_t`): written `pointer-mode(PARAM)`.
    DescriptorMode(String),
    /// The value of another parameter decides (a `cudaMemcpyKind`).
    Param(String),
}

/// A size: the product of its factors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Size(pub Vec<Factor>);

/// One factor of a [`Size`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Factor {
    /// A constant.
    Const(u64),
    /// The value of a parameter.
    Param(String),
    /// The value a pointer parameter points to (`*numNodes`).
    Deref(String),
    /// The bytes a 2D copy touches: `height` rows of `width` bytes,
    /// `pitch` apart (`(height - 1) * pitch + width`), written
    /// `rows(pitch,width,height)`.
    Rows {
        /// The distance between rows.
        pitch: String,
        /// The bytes of a row.
        width: String,
        /// The number of rows.
        height: String,
    },
    /// The bytes the value of an enum parameter selects (an attribute's
    /// value size), from the library's `import.value_sizes` table; written
    /// `of(P)`.
    Of(String),
}

/// How a call relates to the work it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum CallClass {
    /// An ordinary call: its results are needed when it returns.
    #[default]
    Call,
    /// Returns nothing useful: it starts work (a launch, an async copy) whose
    /// errors may be reported by a later call, as CUDA itself does.
    Async,
    /// Waits for earlier work (and reports its errors).
    Sync,
    /// Answerable without the library (an error's name).
    Local,
}

impl CallClass {
    /// The manifest's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CallClass::Call => "call",
            CallClass::Async => "async",
            CallClass::Sync => "sync",
            CallClass::Local => "local",
        }
    }

    /// Parses the manifest's spelling.
    pub fn parse(text: &str) -> Result<CallClass, String> {
        match text {
            "call" => Ok(CallClass::Call),
            "async" => Ok(CallClass::Async),
            "sync" => Ok(CallClass::Sync),
            "local" => Ok(CallClass::Local),
            _ => Err(format!(
                "unknown call class `{text}` (expected call, async, sync or local)"
            )),
        }
    }
}

impl Role {
    /// `true` unless the role is unknown.
    pub fn is_known(&self) -> bool {
        !matches!(self, Role::Unknown)
    }

    /// The pointer role, if this is one.
    pub fn pointer(&self) -> Option<&Pointer> {
        match self {
            Role::Pointer(p) => Some(p),
            _ => None,
        }
    }

    /// `true` for a pointer the call writes through (in host memory or not).
    pub fn is_output(&self) -> bool {
        self.pointer().is_some_and(|p| p.dir != Dir::In)
    }

    /// The parameters this role refers to (sizes, spaces, user data).
    pub fn references(&self) -> Vec<&str> {
        match self {
            Role::Callback { data: Some(d) } => vec![d.as_str()],
            Role::Pointer(p) => {
                let mut out: Vec<&str> = p
                    .size
                    .iter()
                    .flat_map(|s| &s.0)
                    .flat_map(|f| match f {
                        Factor::Param(n) | Factor::Deref(n) | Factor::Of(n) => {
                            vec![n.as_str()]
                        }
                        Factor::Rows {
                            pitch,
                            width,
                            height,
                        } => vec![pitch.as_str(), width.as_str(), height.as_str()],
                        Factor::Const(_) => Vec::new(),
                    })
                    .collect();
                if let Space::Param(n) | Space::DescriptorMode(n) = &p.space {
                    out.push(n);
                }
                out
            }
            _ => Vec::new(),
        }
    }

    /// Parses one role's text (see the module documentation).
    pub fn parse(text: &str) -> Result<Role, String> {
        let mut words = text.split_whitespace();
        let Some(first) = words.next() else {
            return Err("empty role (write `unknown` when it is not known)".into());
        };
        let rest: Vec<&str> = words.collect();
        let no_options = |role: Role| {
            if rest.is_empty() {
                Ok(role)
            } else {
                Err(format!("role `{first}` takes no option `{}`", rest[0]))
            }
        };
        match first {
            "unknown" => no_options(Role::Unknown),
            "value" => no_options(Role::Value),
            "device" => no_options(Role::Device),
            "symbol" => no_options(Role::Symbol),
            "address" => no_options(Role::Address),
            "userdata" => no_options(Role::UserData),
            "handle" | "stream" => {
                let life = match rest.as_slice() {
                    [] => Life::Use,
                    ["destroy"] => Life::Destroy,
                    [other, ..] => {
                        return Err(format!(
                            "role `{first}` takes only `destroy`, not `{other}`"
                        ));
                    }
                };
                Ok(Role::Handle {
                    stream: first == "stream",
                    life,
                })
            }
            "callback" => match rest.as_slice() {
                [] => Ok(Role::Callback { data: None }),
                [opt] => match opt.strip_prefix("data=") {
                    Some(p) if is_name(p) => Ok(Role::Callback {
                        data: Some(p.to_string()),
                    }),
                    _ => Err(format!("role `callback` takes `data=PARAM`, not `{opt}`")),
                },
                _ => Err("role `callback` takes one option, `data=PARAM`".into()),
            },
            "in" | "out" | "inout" => {
                let dir = match first {
                    "in" => Dir::In,
                    "out" => Dir::Out,
                    _ => Dir::InOut,
                };
                parse_pointer(dir, &rest).map(Role::Pointer)
            }
            other => Err(format!(
                "unknown role `{other}` (expected value, handle, stream, device, symbol, address, callback, userdata, in, out, inout or unknown)"
            )),
        }
    }
}

fn is_name(s: &str) -> bool {
    crate::ctype::is_identifier(s)
}

fn parse_pointer(dir: Dir, words: &[&str]) -> Result<Pointer, String> {
    let Some((target, options)) = words.split_first() else {
        return Err("a pointer role needs a target: scalar, struct, string, buffer, handle, stream, device, address, kernel-args, fatbinary, launch-extra or kernel-node".into());
    };
    let target = match *target {
        "scalar" => Target::Scalar,
        "struct" => Target::Struct,
        "string" => Target::String,
        "buffer" => Target::Buffer,
        "handle" => Target::Handle { stream: false },
        "stream" => Target::Handle { stream: true },
        "device" => Target::Device,
        "address" => Target::Address,
        "kernel-args" => Target::KernelArgs,
        "fatbinary" => Target::Fatbinary,
        "launch-extra" => Target::LaunchExtra,
        "kernel-node" => Target::KernelNode,
        other => {
            return Err(format!(
                "unknown pointer target `{other}` (expected scalar, struct, string, buffer, handle, stream, device, address, kernel-args, fatbinary, launch-extra or kernel-node)"
            ));
        }
    };
    let mut p = Pointer {
        dir,
        target,
        size: None,
        space: Space::Host,
        nullable: false,
        life: Life::Use,
    };
    for opt in options {
        if let Some(expr) = opt.strip_prefix("size=") {
            p.size = Some(parse_size(expr)?);
        } else if let Some(space) = opt.strip_prefix("space=") {
            p.space = match space {
                "host" => Space::Host,
                "device" => Space::Device,
                "managed" => Space::Managed,
                "any" => Space::Any,
                "pointer-mode" => Space::PointerMode,
                mode if mode
                    .strip_prefix("pointer-mode(")
                    .and_then(|m| m.strip_suffix(')'))
                    .is_some_and(is_name) =>
                {
                    Space::DescriptorMode(mode["pointer-mode(".len()..mode.len() - 1].to_string())
                }
                param if is_name(param) => Space::Param(param.to_string()),
                other => return Err(format!("unknown space `{other}`")),
            };
        } else if *opt == "nullable" {
            p.nullable = true;
        } else if *opt == "create" {
            p.life = Life::Create;
        } else {
            return Err(format!(
                "unknown option `{opt}` (expected size=EXPR, space=SPACE, nullable or create)"
            ));
        }
    }
    match (p.target, &p.size, p.dir) {
        (Target::Buffer, None, _) => Err("a `buffer` needs `size=`".into()),
        (Target::String, None, Dir::Out | Dir::InOut) => {
            Err("an output `string` needs `size=` (the buffer's length)".into())
        }
        (Target::Buffer | Target::String, Some(_), _) | (_, None, _) => {
            if p.life == Life::Create && !matches!(p.target, Target::Handle { .. }) {
                return Err("`create` is for a returned `handle` or `stream`".into());
            }
            Ok(p)
        }
        (_, Some(_), _) => Err("`size=` is for a `buffer` or a `string`".into()),
    }
}

fn parse_size(expr: &str) -> Result<Size, String> {
    let factors = expr
        .split('*')
        .enumerate()
        .map(|(i, f)| {
            // `*P` is a factor P dereferenced: the empty text before it is
            // the `*` of `a**P` or a leading `*`.
            Ok(f.to_string()).and_then(|f: String| if f.is_empty() { Err(i) } else { Ok(f) })
        })
        .collect::<Vec<Result<String, usize>>>();
    let mut out = Vec::new();
    let mut deref = false;
    for f in factors {
        match f {
            Err(_) => {
                if deref {
                    return Err(format!("size `{expr}`: `**` dereferences twice"));
                }
                deref = true;
            }
            Ok(text) => {
                let rows = text
                    .strip_prefix("rows(")
                    .and_then(|t| t.strip_suffix(')'))
                    .map(|t| t.split(',').map(str::to_string).collect::<Vec<_>>());
                let of = text.strip_prefix("of(").and_then(|t| t.strip_suffix(')'));
                let factor = if let Some(name) = of {
                    if deref || !is_name(name) {
                        return Err(format!(
                            "size `{expr}`: `of(PARAM)` takes one parameter, not dereferenced"
                        ));
                    }
                    Factor::Of(name.to_string())
                } else if let Some(parts) = rows {
                    match parts.as_slice() {
                        [p, w, h] if !deref && [p, w, h].iter().all(|n| is_name(n)) => {
                            Factor::Rows {
                                pitch: p.clone(),
                                width: w.clone(),
                                height: h.clone(),
                            }
                        }
                        _ => {
                            return Err(format!(
                                "size `{expr}`: `rows(PITCH,WIDTH,HEIGHT)` takes three parameters"
                            ));
                        }
                    }
                } else if let Ok(n) = text.parse::<u64>() {
                    if deref {
                        return Err(format!("size `{expr}`: a number cannot be dereferenced"));
                    }
                    Factor::Const(n)
                } else if is_name(&text) {
                    if deref {
                        Factor::Deref(text)
                    } else {
                        Factor::Param(text)
                    }
                } else {
                    return Err(format!(
                        "size `{expr}`: `{text}` is neither a number nor a parameter"
                    ));
                };
                deref = false;
                out.push(factor);
            }
        }
    }
    if deref || out.is_empty() {
        return Err(format!("size `{expr}` ends without a factor"));
    }
    Ok(Size(out))
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, factor) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("*")?;
            }
            match factor {
                Factor::Const(n) => write!(f, "{n}")?,
                Factor::Param(p) => f.write_str(p)?,
                Factor::Deref(p) => write!(f, "*{p}")?,
                Factor::Of(p) => write!(f, "of({p})")?,
                Factor::Rows {
                    pitch,
                    width,
                    height,
                } => write!(f, "rows({pitch},{width},{height})")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Unknown => f.write_str("unknown"),
            Role::Value => f.write_str("value"),
            Role::Device => f.write_str("device"),
            Role::Symbol => f.write_str("symbol"),
            Role::Address => f.write_str("address"),
            Role::UserData => f.write_str("userdata"),
            Role::Handle { stream, life } => {
                f.write_str(if *stream { "stream" } else { "handle" })?;
                if *life == Life::Destroy {
                    f.write_str(" destroy")?;
                }
                Ok(())
            }
            Role::Callback { data } => {
                f.write_str("callback")?;
                if let Some(d) = data {
                    write!(f, " data={d}")?;
                }
                Ok(())
            }
            Role::Pointer(p) => {
                f.write_str(match p.dir {
                    Dir::In => "in ",
                    Dir::Out => "out ",
                    Dir::InOut => "inout ",
                })?;
                f.write_str(match p.target {
                    Target::Scalar => "scalar",
                    Target::Struct => "struct",
                    Target::String => "string",
                    Target::Buffer => "buffer",
                    Target::Handle { stream: false } => "handle",
                    Target::Handle { stream: true } => "stream",
                    Target::Device => "device",
                    Target::Address => "address",
                    Target::KernelArgs => "kernel-args",
                    Target::Fatbinary => "fatbinary",
                    Target::LaunchExtra => "launch-extra",
                    Target::KernelNode => "kernel-node",
                })?;
                if let Some(s) = &p.size {
                    write!(f, " size={s}")?;
                }
                match &p.space {
                    Space::Host => {}
                    Space::Device => f.write_str(" space=device")?,
                    Space::Managed => f.write_str(" space=managed")?,
                    Space::Any => f.write_str(" space=any")?,
                    Space::PointerMode => f.write_str(" space=pointer-mode")?,
                    Space::DescriptorMode(d) => write!(f, " space=pointer-mode({d})")?,
                    Space::Param(n) => write!(f, " space={n}")?,
                }
                if p.nullable {
                    f.write_str(" nullable")?;
                }
                if p.life == Life::Create {
                    f.write_str(" create")?;
                }
                Ok(())
            }
        }
    }
}

/// The manifest's text of a function's roles: `count: out scalar; flags: value`,
/// one entry per parameter, in order.
pub fn roles_text(params: &[Decl], roles: &[Role]) -> String {
    params
        .iter()
        .zip(roles)
        .map(|(p, r)| format!("{}: {r}", p.name))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses a function's roles text against its prototype: one entry per
/// parameter, named and in order, each referring only to parameters that
/// exist.
pub fn parse_roles(text: &str, proto: &Prototype) -> Result<Vec<Role>, String> {
    if proto.unknown_params && text.trim().is_empty() {
        return Ok(Vec::new());
    }
    if proto.unknown_params {
        return Err(format!(
            "`{}` has unknown parameters `(...)`: it has no roles",
            proto.name
        ));
    }
    let entries: Vec<&str> = if text.trim().is_empty() {
        Vec::new()
    } else {
        text.split(';').map(str::trim).collect()
    };
    if entries.len() != proto.params.len() {
        return Err(format!(
            "`{}` has {} parameters but {} roles",
            proto.name,
            proto.params.len(),
            entries.len()
        ));
    }
    let mut roles = Vec::with_capacity(entries.len());
    for (entry, param) in entries.iter().zip(&proto.params) {
        let Some((name, role)) = entry.split_once(':') else {
            return Err(format!("role `{entry}`: expected `PARAM: ROLE`"));
        };
        if name.trim() != param.name {
            return Err(format!(
                "role for `{}` where parameter `{}` of `{}` comes",
                name.trim(),
                param.name,
                proto.name
            ));
        }
        let role = Role::parse(role.trim()).map_err(|e| format!("`{}`: {e}", param.name))?;
        for r in role.references() {
            if !proto.params.iter().any(|p| p.name == r) {
                return Err(format!(
                    "`{}`: `{r}` is not a parameter of `{}`",
                    param.name, proto.name
                ));
            }
        }
        roles.push(role);
    }
    Ok(roles)
}

/// Every factor of every size in `roles`.
fn size_factors(roles: &[Role]) -> impl Iterator<Item = &Factor> {
    roles
        .iter()
        .filter_map(Role::pointer)
        .flat_map(|p| p.size.iter().flat_map(|s| &s.0))
}

/// Checks that every size `of(P)` in `roles` can be computed in this major:
/// `P` is an enum and `value_sizes` gives a size for each of its values
/// (a CUDA release that adds an attribute must say how big its value is).
pub fn check_value_sizes(
    proto: &Prototype,
    roles: &[Role],
    types: &Major,
    value_sizes: &BTreeMap<String, BTreeMap<String, u64>>,
) -> Result<(), String> {
    // A descriptor's scalar is one of its scale type (`cudaDataType_t`).
    const SCALE: &str = "cudaDataType_t";
    if roles
        .iter()
        .filter_map(Role::pointer)
        .any(|p| matches!(p.space, Space::DescriptorMode(_)))
    {
        let Some(TypeDef::Enum { values, .. }) = types.types.get(&format!("enum {SCALE}")) else {
            return Err(format!("`pointer-mode(…)`: no `{SCALE}` in this major"));
        };
        let Some(sizes) = value_sizes.get(SCALE) else {
            return Err(format!(
                "`pointer-mode(…)`: `import.value_sizes` has no table for `{SCALE}`"
            ));
        };
        complete(SCALE, values, sizes)?;
    }
    let of = size_factors(roles).filter_map(|f| match f {
        Factor::Of(n) => Some(n),
        _ => None,
    });
    for name in of {
        let Some(param) = proto.params.iter().find(|p| &p.name == name) else {
            return Err(format!("`of({name})`: no parameter `{name}`"));
        };
        let spelled = param.ty.base.as_str();
        let resolved = types.resolve(&param.ty);
        let Some(TypeDef::Enum { values, .. }) = types.types.get(&resolved.base) else {
            return Err(format!(
                "`of({name})`: `{name}` is a `{}`, not an enum",
                param.ty
            ));
        };
        let Some(sizes) = value_sizes.get(spelled) else {
            return Err(format!(
                "`of({name})`: `import.value_sizes` has no table for `{spelled}`"
            ));
        };
        complete(spelled, values, sizes)?;
    }
    Ok(())
}

/// `import.value_sizes.{spelled}` gives a size for every one of `values`.
fn complete(
    spelled: &str,
    values: &BTreeMap<String, i64>,
    sizes: &BTreeMap<String, u64>,
) -> Result<(), String> {
    let missing: Vec<&str> = values
        .keys()
        .filter(|v| !sizes.contains_key(*v))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "`import.value_sizes.{spelled}` gives no size for {}",
            missing.join(", ")
        ))
    }
}

/// A library's rule, from its manifest's `import.role_rules`: the role (or
/// call class) of the parameters (or functions) its globs match.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleRule {
    /// Functions it applies to (a glob; `*` for all).
    pub function: String,
    /// Parameters it applies to (a glob), for a role rule.
    pub param: Option<String>,
    /// The parameter's C type as the prototype spells it (a glob), if given.
    pub type_glob: Option<String>,
    /// The role it gives.
    pub role: Option<Role>,
    /// The call class it gives.
    pub class: Option<CallClass>,
}

impl RoleRule {
    fn matches_function(&self, name: &str) -> bool {
        glob_match(&self.function, name)
    }

    fn matches_param(&self, p: &Decl) -> bool {
        self.param
            .as_deref()
            .is_some_and(|g| glob_match(g, &p.name))
            && self
                .type_glob
                .as_deref()
                .is_none_or(|g| glob_match(g, &p.ty.to_string()))
    }
}

fn glob_match(pattern: &str, text: &str) -> bool {
    glob::Pattern::new(pattern).is_ok_and(|p| p.matches(text))
}

/// What inference needs to know about a (library, major).
pub struct InferContext<'a> {
    /// The major's types.
    pub types: &'a Major,
    /// The library's rules.
    pub rules: &'a [RoleRule],
    /// The library's status type (`cudaError_t`), if it has one.
    pub status_type: Option<&'a str>,
}

/// The roles and call class of `proto` by the library's rules, then the
/// structural rules; a parameter no rule knows is [`Role::Unknown`].
pub fn infer(cx: &InferContext, proto: &Prototype) -> (Vec<Role>, CallClass) {
    let fname = proto.name.as_str();
    let rules: Vec<&RoleRule> = cx
        .rules
        .iter()
        .filter(|r| r.matches_function(fname))
        .collect();
    let by_rule: Vec<Option<Role>> = proto
        .params
        .iter()
        .map(|p| {
            rules
                .iter()
                .filter(|r| r.matches_param(p))
                .find_map(|r| r.role.clone())
        })
        .collect();
    let mut roles: Vec<Role> = proto
        .params
        .iter()
        .zip(&by_rule)
        .map(|(p, rule)| rule.clone().unwrap_or_else(|| structural(cx, proto, p)))
        .collect();
    // A count another parameter's size reads through its pointer is read
    // and written: the capacity in, the number filled out (unless a rule
    // says otherwise).
    let derefs: Vec<String> = size_factors(&roles)
        .filter_map(|f| match f {
            Factor::Deref(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    for ((p, role), rule) in proto.params.iter().zip(roles.iter_mut()).zip(&by_rule) {
        if rule.is_none()
            && derefs.contains(&p.name)
            && let Role::Pointer(ptr) = role
            && ptr.target == Target::Scalar
        {
            ptr.dir = Dir::InOut;
        }
    }
    let class = class_of(cx, proto, &roles);
    (roles, class)
}

/// The call class of `proto` with these roles: the library's rule, else
/// the structural rules.
pub fn class_of(cx: &InferContext, proto: &Prototype, roles: &[Role]) -> CallClass {
    cx.rules
        .iter()
        .filter(|r| r.param.is_none() && r.matches_function(&proto.name))
        .find_map(|r| r.class)
        .unwrap_or_else(|| structural_class(cx, proto, roles))
}

/// Words in a function name that say the call makes the objects it returns.
const CREATES: &[&str] = &[
    "Create",
    "Instantiate",
    "Load",
    "Register",
    "Alloc",
    "Malloc",
    "Add",
    "Clone",
    "Import",
    "Open",
    "Init",
    "Retain",
];

/// Words in a function name that say the call ends the object it is given.
const DESTROYS: &[&str] = &[
    "Destroy",
    "Release",
    "Free",
    "Unregister",
    "Unload",
    "Shutdown",
];

/// Names of a `void *` / `void **` that hold a device address.
const DEVICE_NAMES: &[&str] = &[
    "devPtr",
    "dptr",
    "dPtr",
    "devicePtr",
    "pDevice",
    "dstDevice",
    "srcDevice",
    "dst_device",
    "dptrs",
];

/// Names of a `void *` handed back to a callback.
const USER_DATA_NAMES: &[&str] = &[
    "userData",
    "user_data",
    "userdata",
    "pUserData",
    "data",
    "arg",
    "callbackData",
    "ctx",
    "ptr",
];

fn structural(cx: &InferContext, proto: &Prototype, p: &Decl) -> Role {
    let fname = proto.name.as_str();
    let ty = &p.ty;
    let resolved = cx.types.resolve(ty);
    // Device addresses are integers with a name that says so.
    if ty.pointers.is_empty() && ty.base.starts_with("CUdeviceptr") {
        return Role::Device;
    }
    if !resolved.is_pointer() {
        return match cx.types.types.get(&resolved.base) {
            Some(TypeDef::FunctionPointer(_)) => Role::Callback {
                data: user_data_param(proto),
            },
            _ => Role::Value,
        };
    }
    if let Some(stream) = handle_kind(cx, &resolved)
        && (ty.pointers.is_empty() || is_handle_target(cx, &resolved.base))
    {
        let life = if destroys(fname) && first_handle(cx, proto) == Some(&p.name) {
            Life::Destroy
        } else {
            Life::Use
        };
        return Role::Handle { stream, life };
    }
    // The pointee as written (`const cudaGraphNode_t *` points to a const
    // handle), then resolved.
    let written_pointee = CType {
        is_const: ty.is_const,
        base: ty.base.clone(),
        pointers: ty.pointers[..ty.pointers.len().saturating_sub(1)].to_vec(),
    };
    let is_const = if ty.pointers.is_empty() {
        // A typedef of a pointer (`cudaArray_const_t`) passed by value.
        resolved.is_const && resolved.pointers.len() == 1
    } else if ty.pointers.len() == 1 {
        ty.is_const
    } else {
        ty.pointers[ty.pointers.len() - 2]
    };
    let pointee = if ty.pointers.is_empty() {
        CType {
            is_const: resolved.is_const,
            base: resolved.base.clone(),
            pointers: resolved.pointers[..resolved.pointers.len() - 1].to_vec(),
        }
    } else {
        cx.types.resolve(&written_pointee)
    };
    let name = p.name.as_str();
    let dir = if is_const { Dir::In } else { Dir::Out };
    // A device address the call returns (`CUdeviceptr *dptr`).
    if written_pointee.pointers.is_empty() && written_pointee.base.starts_with("CUdeviceptr") {
        return match count_param(proto, p) {
            Some(_) => Role::Unknown,
            None => pointer(dir, Target::Device, None, Space::Host),
        };
    }
    // A pointer to a library object: one returned, or an array of them.
    if let Some(stream) = handle_kind(cx, &pointee)
        && (written_pointee.pointers.is_empty() || is_handle_target(cx, &pointee.base))
    {
        if let Some(count) = count_param(proto, p) {
            let nullable = matches!(count, Factor::Deref(_));
            let mut r = pointer(dir, Target::Buffer, Some(Size(vec![count])), Space::Host);
            if let Role::Pointer(ptr) = &mut r {
                ptr.nullable = nullable;
            }
            return r;
        }
        let mut r = pointer(dir, Target::Handle { stream }, None, Space::Host);
        if let Role::Pointer(ptr) = &mut r
            && dir == Dir::Out
            && contains_any(fname, CREATES)
        {
            ptr.life = Life::Create;
        }
        return r;
    }
    // `void *`: the type says nothing, the name may.
    if pointee.base == "void" && pointee.pointers.is_empty() {
        if DEVICE_NAMES.contains(&name) {
            return Role::Device;
        }
        if USER_DATA_NAMES.contains(&name) && has_callback(cx, proto) {
            return Role::UserData;
        }
        if name == "dptr_out" {
            // `cudaGraphMemFreeNodeGetParams(node, void *dptr_out)`: the
            // call writes a device address there.
            return pointer(Dir::Out, Target::Device, None, Space::Host);
        }
        if matches!(name, "func" | "symbol" | "entryFuncAddr" | "hostFun") {
            return Role::Symbol;
        }
        if matches!(name, "fatCubin" | "image" | "code") && is_const || name == "fatCubin" {
            return pointer(Dir::In, Target::Fatbinary, None, Space::Host);
        }
        if let Some(r) = copy_buffer(proto, p, is_const) {
            return r;
        }
        if matches!(name, "pHost" | "hostPtr" | "ptr" | "p") && fname.contains("Host") {
            return Role::Address;
        }
        return Role::Unknown;
    }
    // `void **`.
    if pointee.base == "void" && pointee.pointers.len() == 1 && !is_const {
        return match name {
            n if DEVICE_NAMES.contains(&n) || n == "dptr_out" => {
                pointer(Dir::Out, Target::Device, None, Space::Host)
            }
            "args" | "kernelParams" => Role::Pointer(Pointer {
                nullable: true,
                ..match pointer(Dir::In, Target::KernelArgs, None, Space::Host) {
                    Role::Pointer(p) => p,
                    _ => unreachable!("pointer() makes a pointer role"),
                }
            }),
            "extra" => Role::Pointer(Pointer {
                nullable: true,
                ..match pointer(Dir::In, Target::LaunchExtra, None, Space::Host) {
                    Role::Pointer(p) => p,
                    _ => unreachable!("pointer() makes a pointer role"),
                }
            }),
            "fatCubinHandle" => Role::Handle {
                stream: false,
                life: Life::Use,
            },
            "pHost" | "ptr" | "pp" if fname.contains("Host") => {
                pointer(Dir::Out, Target::Address, None, Space::Host)
            }
            "ptr" if contains_any(fname, &["Malloc", "Alloc"]) => {
                pointer(Dir::Out, Target::Device, None, Space::Host)
            }
            "funcPtr" | "fptr" | "pfn" => pointer(Dir::Out, Target::Address, None, Space::Host),
            _ => Role::Unknown,
        };
    }
    // Strings.
    if pointee.base == "char" && pointee.pointers.is_empty() {
        if is_const {
            return pointer(Dir::In, Target::String, None, Space::Host);
        }
        return match length_param(proto, p) {
            Some(len) => pointer(Dir::Out, Target::String, Some(Size(vec![len])), Space::Host),
            None => Role::Unknown,
        };
    }
    if pointee.is_pointer() {
        // `const char **pStr`, `const cudaGraphNode_t **deps_out`: the call
        // returns the address of memory it owns.
        return if is_const {
            Role::Unknown
        } else {
            pointer(Dir::Out, Target::Address, None, Space::Host)
        };
    }
    let count = count_param(proto, p);
    if pointee.is_pointer() || pointee.base == "void" {
        return Role::Unknown;
    }
    if let Some(count) = count {
        let nullable = matches!(count, Factor::Deref(_));
        let mut r = pointer(dir, Target::Buffer, Some(Size(vec![count])), Space::Host);
        if let Role::Pointer(ptr) = &mut r {
            ptr.nullable = nullable;
        }
        return r;
    }
    let target = match cx.types.types.get(&pointee.base) {
        // A struct, with its layout or not (the manifest records layouts
        // only where a prototype needs them: `import.layouts` adds more).
        Some(TypeDef::Aggregate(_)) | Some(TypeDef::Opaque) => Target::Struct,
        None if pointee.base.starts_with("struct ") || pointee.base.starts_with("union ") => {
            Target::Struct
        }
        Some(TypeDef::FunctionPointer(_)) => return Role::Unknown,
        _ => Target::Scalar,
    };
    pointer(dir, target, None, Space::Host)
}

/// `true` when a typedef of the major names a pointer to `base`
/// (`typedef struct CUstream_st *cudaStream_t`): `base` is a library object
/// used through handles, not a struct whose layout is merely unrecorded.
fn is_handle_target(cx: &InferContext, base: &str) -> bool {
    cx.types.types.values().any(|t| {
        matches!(t, TypeDef::Typedef(target) if target.base == base && target.pointers.len() == 1)
    })
}

fn pointer(dir: Dir, target: Target, size: Option<Size>, space: Space) -> Role {
    Role::Pointer(Pointer {
        dir,
        target,
        size,
        space,
        nullable: false,
        life: Life::Use,
    })
}

/// `true` when the call ends the object it is given: its API's name ends
/// with a word of [`DESTROYS`] (`cudaStreamDestroy`, `cuModuleUnload`,
/// `cudaGraphicsUnregisterResource` is not: it ends with `Resource`), or is
/// a `Free` of an array (`cudaFreeArray`). Not `cudaFreeAsync`, whose stream
/// lives on, nor `nvmlDeviceFreezeNvLinkUtilizationCounter`.
fn destroys(name: &str) -> bool {
    let api = crate::view::api_name(name);
    DESTROYS.iter().any(|w| api.ends_with(w))
        || api.ends_with("FreeArray")
        || api.ends_with("FreeMipmappedArray")
}

fn contains_any(name: &str, words: &[&str]) -> bool {
    words.iter().any(|w| name.contains(w))
}

/// `Some(is_stream)` when `resolved` is a library object: a pointer to a
/// struct whose layout is not part of the API.
fn handle_kind(cx: &InferContext, resolved: &CType) -> Option<bool> {
    if resolved.pointers.len() != 1 || resolved.is_builtin() || resolved.base == "void" {
        return None;
    }
    let base = &resolved.base;
    let opaque = match cx.types.types.get(base) {
        Some(TypeDef::Opaque) => true,
        Some(TypeDef::Aggregate(_)) => false,
        None => base.starts_with("struct "),
        _ => false,
    };
    opaque.then(|| base == "struct CUstream_st")
}

fn first_handle<'p>(cx: &InferContext, proto: &'p Prototype) -> Option<&'p String> {
    proto
        .params
        .iter()
        .find(|q| handle_kind(cx, &cx.types.resolve(&q.ty)).is_some())
        .map(|q| &q.name)
}

fn has_callback(cx: &InferContext, proto: &Prototype) -> bool {
    proto.params.iter().any(|q| {
        let r = cx.types.resolve(&q.ty);
        !r.is_pointer()
            && matches!(
                cx.types.types.get(&r.base),
                Some(TypeDef::FunctionPointer(_))
            )
    })
}

fn user_data_param(proto: &Prototype) -> Option<String> {
    proto
        .params
        .iter()
        .find(|q| {
            USER_DATA_NAMES.contains(&q.name.as_str())
                && q.ty.base == "void"
                && q.ty.pointers.len() == 1
        })
        .map(|q| q.name.clone())
}

/// An integer parameter: by value, or (for a count the call updates) a
/// pointer to one.
fn integer_param<'p>(proto: &'p Prototype, name: &str) -> Option<(&'p Decl, bool)> {
    let q = proto.params.iter().find(|q| q.name == name)?;
    let integer = q.ty.is_builtin() && q.ty.base != "float" && q.ty.base != "double"
        || matches!(
            q.ty.base.as_str(),
            "size_t" | "uint32_t" | "uint64_t" | "int32_t" | "int64_t"
        );
    match q.ty.pointers.len() {
        0 if integer => Some((q, false)),
        1 if integer && !q.ty.is_const => Some((q, true)),
        _ => None,
    }
}

/// The parameter counting the elements of array parameter `p`: `numNodes`
/// for `nodes`, `numDependencies` for `pDependencies`, `infoCount` for
/// `infos`; `*P` when it is a pointer (a count the call fills).
fn count_param(proto: &Prototype, p: &Decl) -> Option<Factor> {
    let name = p.name.as_str();
    // `pDependencies` → `Dependencies`.
    let stem = match name.strip_prefix('p') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_uppercase()) => rest,
        _ => name,
    };
    let mut bases = vec![stem.to_string()];
    for suffix in ["Data", "Array", "List", "Ptrs"] {
        if let Some(b) = stem.strip_suffix(suffix)
            && !b.is_empty()
        {
            bases.push(b.to_string());
        }
    }
    let mut singulars = Vec::new();
    for b in &bases {
        if let Some(s) = b.strip_suffix("ies") {
            singulars.push(format!("{s}y"));
        } else if let Some(s) = b.strip_suffix('s') {
            singulars.push(s.to_string());
        }
        singulars.push(b.clone());
    }
    let mut candidates = Vec::new();
    for s in &singulars {
        let upper = upper_first(s);
        let lower = lower_first(s);
        let plural = if let Some(y) = upper.strip_suffix('y') {
            format!("{y}ies")
        } else {
            format!("{upper}s")
        };
        candidates.extend([
            format!("num{upper}"),
            format!("num{plural}"),
            format!("{lower}Count"),
            format!("{lower}sCount"),
            format!("n{upper}"),
            format!("num_{lower}"),
            format!("{lower}_count"),
        ]);
    }
    // Then the names a lone count goes by (`nvmlDeviceGetAccountingPids`'s
    // `count`, `cudaSetValidDevices`'s `len`), when the array is not the
    // count itself.
    // Not where another count is there too (`numAttributes`): which array
    // each counts is then not for a name rule to guess.
    let other_counts = proto
        .params
        .iter()
        .any(|q| q.name.starts_with("num") && q.name != "numDevices");
    if !other_counts {
        candidates.extend(
            [
                "count",
                "len",
                "length",
                "numDevices",
                "cpuSetSize",
                "nodeSetSize",
                "arraySize",
            ]
            .iter()
            .filter(|n| **n != name)
            .map(|n| n.to_string()),
        );
    }
    candidates.into_iter().find_map(|c| {
        integer_param(proto, &c).map(|(q, by_pointer)| {
            if by_pointer {
                Factor::Deref(q.name.clone())
            } else {
                Factor::Param(q.name.clone())
            }
        })
    })
}

/// The length of an output string `p`: a by-value integer named like one.
fn length_param(proto: &Prototype, p: &Decl) -> Option<Factor> {
    let upper = upper_first(&p.name);
    let names = [
        "len".to_string(),
        "length".to_string(),
        "size".to_string(),
        "bufferSize".to_string(),
        "bufSize".to_string(),
        format!("{}Length", p.name),
        format!("{}Size", p.name),
        format!("{}Len", p.name),
        format!("len{upper}"),
        format!("length{upper}"),
    ];
    names.iter().find_map(|n| {
        integer_param(proto, n).map(|(q, by_pointer)| {
            if by_pointer {
                Factor::Deref(q.name.clone())
            } else {
                Factor::Param(q.name.clone())
            }
        })
    })
}

/// A copy's `void *dst` / `const void *src` with a byte count (and, for the
/// runtime's copies, a `kind` that says where each side lives).
fn copy_buffer(proto: &Prototype, p: &Decl, is_const: bool) -> Option<Role> {
    let name = p.name.as_str();
    let host_side = name.ends_with("Host") || name == "pHost" || name == "hostPtr";
    let copy_side = matches!(name, "dst" | "src") || host_side;
    if !copy_side {
        return None;
    }
    // A copy between devices (`cudaMemcpyPeer`): both sides are device
    // addresses, named by the device they are on.
    let device_param = if name == "dst" {
        "dstDevice"
    } else {
        "srcDevice"
    };
    if !host_side && integer_param(proto, device_param).is_some() {
        return Some(Role::Device);
    }
    let space = if host_side {
        Space::Host
    } else if proto.params.iter().any(|q| q.name == "kind") {
        Space::Param("kind".into())
    } else {
        return None;
    };
    // A 2D copy reads `height` rows of its pitch; others, a byte count.
    let pitch = if name.starts_with('d') {
        "dpitch"
    } else {
        "spitch"
    };
    let factors = if integer_param(proto, pitch).is_some()
        && integer_param(proto, "height").is_some()
        && integer_param(proto, "width").is_some()
    {
        vec![Factor::Rows {
            pitch: pitch.into(),
            width: "width".into(),
            height: "height".into(),
        }]
    } else {
        let bytes = ["count", "ByteCount", "size", "bytes", "sizeInBytes"]
            .iter()
            .find_map(|n| {
                integer_param(proto, n)
                    .filter(|(_, ptr)| !ptr)
                    .map(|(q, _)| q)
            })?;
        vec![Factor::Param(bytes.name.clone())]
    };
    let dir = if is_const { Dir::In } else { Dir::Out };
    Some(pointer(dir, Target::Buffer, Some(Size(factors)), space))
}

fn structural_class(cx: &InferContext, proto: &Prototype, roles: &[Role]) -> CallClass {
    let name = proto.name.as_str();
    let returns = cx.types.resolve(&proto.returns);
    // An error's name or description, from its value alone.
    let values_only = roles.iter().all(|r| *r == Role::Value);
    if values_only
        && (returns.is_c_string() && !proto.params.is_empty()
            || name.contains("ErrorString")
            || name.contains("ErrorName"))
    {
        return CallClass::Local;
    }
    if name.contains("Synchronize") {
        return CallClass::Sync;
    }
    // Host memory the call writes. An async copy's destination on the side
    // its `cudaMemcpyKind` or its address says is not: host-bound copies are what a backend
    // must wait for, the others start work like a launch (a remote client
    // queues such a call only when nothing comes back to the host).
    let sided_copy = name.contains("Memcpy") && name.contains("Async");
    let outputs = roles.iter().any(|r| {
        r.pointer().is_some_and(|p| {
            p.dir != Dir::In
                && !matches!(p.space, Space::Device)
                && !(sided_copy && matches!(p.space, Space::Param(_) | Space::Any))
        }) || *r == Role::Unknown
    });
    let has_stream = roles
        .iter()
        .any(|r| matches!(r, Role::Handle { stream: true, .. }));
    let returns_status =
        cx.status_type.is_some_and(|s| proto.returns.base == s) || proto.returns.is_void();
    if !outputs
        && returns_status
        && (has_stream || name.contains("Launch"))
        && !name.contains("Query")
        && !name.contains("Destroy")
        // A copy may write host memory through a struct (`cudaMemcpy3DAsync`)
        // or a unified address: its results are needed.
        && (!name.contains("Memcpy") || sided_copy)
    {
        return CallClass::Async;
    }
    CallClass::Call
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// Infers the roles and class of every function of `m` again, except those
/// kept by hand (`roles_overlay`) whose roles still fit their prototype.
/// Returns how many (function, major) entries changed.
pub fn refresh(m: &mut crate::manifest::Manifest) -> usize {
    let status_type = m.library.status.as_ref().map(|s| s.type_name.clone());
    let mut changed = 0;
    for f in &mut m.functions {
        for (major, fm) in &mut f.majors {
            let Some(facts) = m.majors.get(major) else {
                continue;
            };
            if fm.proto.unknown_params {
                if !fm.roles.is_empty() {
                    fm.roles.clear();
                    changed += 1;
                }
                continue;
            }
            if f.roles_overlay && fm.roles.len() == fm.proto.params.len() {
                continue;
            }
            let cx = InferContext {
                types: facts,
                rules: &m.import.role_rules,
                status_type: status_type.as_deref(),
            };
            let (roles, class) = infer(&cx, &fm.proto);
            if roles != fm.roles || class != fm.class {
                fm.roles = roles;
                fm.class = class;
                changed += 1;
            }
        }
    }
    changed
}

/// How complete the roles of one (library, major) are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completeness {
    /// Functions every parameter of which has a known role.
    pub complete: usize,
    /// Every function.
    pub total: usize,
    /// Parameters with a known role.
    pub known_params: usize,
    /// Every parameter (of functions whose parameters are known).
    pub params: usize,
    /// How many functions are in each call class.
    pub classes: BTreeMap<CallClass, usize>,
}

impl Completeness {
    /// Complete functions as a percentage of all.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            100.0 * self.complete as f64 / self.total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_text_reads_back() {
        for text in [
            "unknown",
            "value",
            "handle",
            "handle destroy",
            "stream",
            "stream destroy",
            "device",
            "symbol",
            "address",
            "callback",
            "callback data=userData",
            "userdata",
            "out scalar",
            "in string",
            "out string size=len",
            "in buffer size=count space=kind",
            "out buffer size=*numNodes nullable",
            "in buffer size=n*elemSize space=device",
            "out buffer size=rows(dpitch,width,height) space=kind",
            "in scalar space=pointer-mode",
            "out handle create",
            "out stream create",
            "out device",
            "in kernel-args",
            "in fatbinary",
            "in launch-extra nullable",
            "address",
            "in buffer size=n space=any",
            "inout struct",
            "out buffer size=of(attribute)",
        ] {
            let role = Role::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(role.to_string(), text);
        }
    }

    #[test]
    fn bad_roles_are_refused() {
        for (text, why) in [
            ("", "empty"),
            ("outt scalar", "unknown role"),
            ("out", "needs a target"),
            ("out buffer", "needs `size=`"),
            ("out string", "needs `size=`"),
            ("out scalar size=n", "is for a `buffer`"),
            ("in buffer size=", "ends without"),
            ("in buffer size=**n", "twice"),
            ("in buffer size=*3", "cannot be dereferenced"),
            ("value nullable", "takes no option"),
            ("out scalar create", "`create` is for"),
            ("in buffer size=n space=a-b", "unknown space"),
            ("out buffer size=of(a,b)", "takes one parameter"),
            ("out buffer size=*of(a)", "takes one parameter"),
        ] {
            let err = Role::parse(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    /// `of(P)` needs a size for every value of `P`'s enum in the major, so
    /// that a release adding an attribute makes `cudastub check` fail until
    /// the table says how big its value is.
    #[test]
    fn value_sizes_cover_every_enumerator() {
        let proto = crate::ctype::parse_prototype(
            "CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr)",
        )
        .expect("prototype");
        let roles = parse_roles(
            "data: out buffer size=of(attribute); attribute: value; ptr: device",
            &proto,
        )
        .expect("roles");
        let mut major = Major {
            imported: Vec::new(),
            types: BTreeMap::new(),
            overlay_types: Default::default(),
        };
        major.types.insert(
            "CUpointer_attribute".into(),
            TypeDef::Typedef(CType::named("enum CUpointer_attribute_enum")),
        );
        major.types.insert(
            "enum CUpointer_attribute_enum".into(),
            TypeDef::Enum {
                repr: "unsigned int".into(),
                values: [
                    ("CU_POINTER_ATTRIBUTE_CONTEXT".into(), 1),
                    ("CU_POINTER_ATTRIBUTE_MAPPED".into(), 13),
                ]
                .into_iter()
                .collect(),
            },
        );
        let mut sizes = BTreeMap::new();
        let err = check_value_sizes(&proto, &roles, &major, &sizes).expect_err("no table");
        assert!(err.contains("no table for `CUpointer_attribute`"), "{err}");
        sizes.insert(
            "CUpointer_attribute".to_string(),
            [("CU_POINTER_ATTRIBUTE_CONTEXT".to_string(), 8)]
                .into_iter()
                .collect(),
        );
        let err = check_value_sizes(&proto, &roles, &major, &sizes).expect_err("one missing");
        assert!(
            err.ends_with("gives no size for CU_POINTER_ATTRIBUTE_MAPPED"),
            "{err}"
        );
        sizes
            .get_mut("CUpointer_attribute")
            .expect("table")
            .insert("CU_POINTER_ATTRIBUTE_MAPPED".into(), 4);
        check_value_sizes(&proto, &roles, &major, &sizes).expect("complete table");
        let not_enum = parse_roles(
            "data: out buffer size=of(ptr); attribute: value; ptr: device",
            &proto,
        )
        .expect("roles");
        let err = check_value_sizes(&proto, &not_enum, &major, &sizes).expect_err("not an enum");
        assert!(err.contains("not an enum"), "{err}");
    }
}
