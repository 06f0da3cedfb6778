//! The remote GPU's call plans ([`cudastub_remote::plan`]) from the
//! manifests: per function, how each parameter travels in the C ABI (from
//! its type and the major's layouts) and what crosses the wire (from its
//! role). A function whose roles are incomplete, or that needs what a plan
//! cannot say yet (callbacks, kernel arguments, memory on either side), gets
//! a plan that says why it cannot be sent.

use std::collections::BTreeMap;

use cudastub_remote::abi::{ArgClass, EightByte};
use cudastub_remote::plan::{
    CallPlan, Class, Count, Dir as WireDir, Factor as WireFactor, GraphStep, KernelRef,
    LibraryPlan, MajorPlan, Nested, ParamPlan, PointerMode, RetPlan, Statuses, Wire,
};

use crate::catalog::Catalog;
use crate::ctype::CType;
use crate::manifest::{Layout, TypeDef};
use crate::roles::{CallClass, Dir, Factor, Role, Space, Target};
use crate::view::{Export, LibraryMajor};

/// The plan of every library of `major` in the catalog, in catalog order.
pub fn major_plan(catalog: &Catalog, major: u32) -> MajorPlan {
    let libraries = catalog
        .views()
        .iter()
        .filter(|v| v.major == major)
        .map(library_plan)
        .collect();
    MajorPlan { major, libraries }
}

/// The plan of one library at one major.
pub fn library_plan(view: &LibraryMajor) -> LibraryPlan {
    let statuses = view.status.as_ref().and_then(|s| {
        let value = |name: &str| s.values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        Some(Statuses {
            success: value(&s.codes.success)?,
            library_missing: value(&s.codes.library_missing)?,
            symbol_missing: value(&s.codes.symbol_missing)?,
            not_supported: value(&s.codes.not_supported)?,
        })
    });
    LibraryPlan {
        library: view.library.to_string(),
        soname: view.soname.clone(),
        version_node: view.version_node.clone(),
        statuses,
        functions: view.functions.iter().map(|f| call_plan(view, f)).collect(),
        pointer_mode: pointer_mode(view),
    }
}

/// The getter and setter of the pointer mode that decides `space=pointer-mode`
/// (cuBLAS's, the one library that has one), when the library exports both.
fn pointer_mode(view: &LibraryMajor) -> Option<PointerMode> {
    const GET: &str = "cublasGetPointerMode_v2";
    const SET: &str = "cublasSetPointerMode_v2";
    const DESTROY: &str = "cublasDestroy_v2";
    const DEVICE: &str = "CUBLAS_POINTER_MODE_DEVICE";
    view.functions.iter().find(|f| f.name == GET)?;
    let set = view.functions.iter().position(|f| f.name == SET)?;
    let device = view.facts.types.values().find_map(|t| match t {
        TypeDef::Enum { values, .. } => values.get(DEVICE).copied(),
        _ => None,
    })?;
    Some(PointerMode {
        get: GET.to_string(),
        set: u32::try_from(set).ok()?,
        destroy: view
            .functions
            .iter()
            .position(|f| f.name == DESTROY)
            .and_then(|i| u32::try_from(i).ok()),
        device,
    })
}

/// The plan of one function.
pub fn call_plan(view: &LibraryMajor, f: &Export) -> CallPlan {
    let proto = f.proto;
    let mut unsupported = None;
    let mut why = |reason: String| {
        if unsupported.is_none() {
            unsupported = Some(reason);
        }
    };
    if proto.unknown_params {
        why("its parameters are unknown (`(...)`)".into());
    }
    // What the call returns is the server's own: managed memory the client
    // would touch on its host, an OS handle (a file descriptor) of the
    // server's process.
    if ["Managed", "ShareableHandle", "HandleForAddressRange"]
        .iter()
        .any(|w| f.name.contains(w))
    {
        why(
            "it returns what only the server's process can use (managed memory, an OS handle)"
                .into(),
        );
    }
    let index_of = |name: &str| {
        proto
            .params
            .iter()
            .position(|p| p.name == name)
            .and_then(|i| u16::try_from(i).ok())
    };
    let mut params = Vec::new();
    for (i, p) in proto.params.iter().enumerate() {
        let role = f.roles.get(i).unwrap_or(&Role::Unknown);
        let resolved = view.resolve(&p.ty);
        let (size, signed, abi) = match value_class(view, &resolved) {
            Ok(v) => v,
            Err(e) => {
                why(format!("`{}`: {e}", p.name));
                (8, false, ArgClass::Integer)
            }
        };
        let wire = match wire(view, f, &p.name, role, &resolved, &index_of) {
            Ok(w) => w,
            Err(e) => {
                why(format!("`{}`: {e}", p.name));
                Wire::Value
            }
        };
        params.push(ParamPlan {
            name: p.name.clone(),
            size,
            signed,
            abi,
            wire,
        });
    }
    let returns = view.resolve(&proto.returns);
    let ret = if returns.is_void() {
        RetPlan::Void
    } else if returns.is_pointer() {
        if returns.base == "char" && returns.pointers.len() == 1 {
            RetPlan::String
        } else {
            // An address of the server's (`__cudaRegisterFatBinary`'s
            // handle): the client only hands it back.
            RetPlan::Value { size: 8 }
        }
    } else {
        match value_class(view, &returns) {
            Ok((size, _, ArgClass::Integer)) => RetPlan::Value { size },
            _ => {
                why(format!("it returns `{}` by value", proto.returns));
                RetPlan::Value { size: 8 }
            }
        }
    };
    CallPlan {
        name: f.name.to_string(),
        params,
        ret,
        class: match f.class {
            CallClass::Call => Class::Call,
            CallClass::Async => Class::Async,
            CallClass::Sync => Class::Sync,
            CallClass::Local => Class::Local,
        },
        unsupported,
        keeps_arguments: f.name.starts_with("__cudaRegister"),
        stream: f
            .roles
            .iter()
            .position(|r| matches!(r, Role::Handle { stream: true, .. }))
            .and_then(|i| u16::try_from(i).ok()),
        graph: graph_step(f),
    }
}

/// The call's step in a graph's life, by the runtime's and the driver's
/// names, where its roles agree: the graph an ended capture makes (an
/// output handle), the executable graph made of a graph or updated to one,
/// the executable graph a launch runs on its stream, a graph's copy node;
/// and, by roles alone, a copy of host memory on a stream (a call with a
/// stream and bytes the host may hold), which a capture records.
fn graph_step(f: &Export) -> Option<GraphStep> {
    let name = f.name.strip_suffix("_ptsz").unwrap_or(f.name);
    let name = name.strip_suffix("_v2").unwrap_or(name);
    let role = |i: usize| f.roles.get(i);
    let out_handle = |i: usize| {
        role(i)
            .and_then(Role::pointer)
            .is_some_and(|p| p.dir == Dir::Out && p.target == Target::Handle { stream: false })
    };
    let handle = |i: usize| matches!(role(i), Some(Role::Handle { stream: false, .. }));
    let stream = |i: usize| matches!(role(i), Some(Role::Handle { stream: true, .. }));
    let step = if name.ends_with("StreamEndCapture") && out_handle(1) {
        GraphStep::EndCapture { graph: 1 }
    } else if name.contains("GraphInstantiate") && out_handle(0) && handle(1) {
        GraphStep::Instantiate { exec: 0, graph: 1 }
    } else if name.ends_with("GraphExecUpdate") && handle(0) && handle(1) {
        GraphStep::Update { exec: 0, graph: 1 }
    } else if name.ends_with("GraphLaunch") && handle(0) && stream(1) {
        GraphStep::Launch { exec: 0, stream: 1 }
    } else if name.ends_with("GraphClone") && out_handle(0) && handle(1) {
        GraphStep::Clone { clone: 0, graph: 1 }
    } else if name.ends_with("GraphAddChildGraphNode") && handle(1) && handle(4) {
        GraphStep::AddChild { graph: 1, child: 4 }
    } else if name.ends_with("GraphExecChildGraphNodeSetParams") && handle(0) && handle(2) {
        GraphStep::ExecChild { exec: 0, child: 2 }
    } else if name.ends_with("GraphExecDestroy") && handle(0) {
        GraphStep::DestroyExec { exec: 0 }
    } else if name.ends_with("GraphDestroy") && handle(0) {
        GraphStep::DestroyGraph { graph: 0 }
    } else if ["DeviceReset", "CtxDestroy", "PrimaryCtxReset", "ThreadExit"]
        .iter()
        .any(|w| name.ends_with(w))
    {
        GraphStep::Reset
    } else if name.contains("MemcpyNode") {
        GraphStep::CopyNode
    } else if let Some(buffers) = stream_copy_buffers(f) {
        GraphStep::StreamCopy { buffers }
    } else {
        return None;
    };
    Some(step)
}

/// The parameters (a bit each) of the host memory a call with a stream
/// copies, if any: bytes (`void *`, or a unified address), not an array or
/// struct the call reads as it runs.
fn stream_copy_buffers(f: &Export) -> Option<u64> {
    if !f
        .roles
        .iter()
        .any(|r| matches!(r, Role::Handle { stream: true, .. }))
    {
        return None;
    }
    let mut buffers = 0u64;
    for (i, (d, r)) in f.proto.params.iter().zip(f.roles.iter()).enumerate() {
        let bytes = d.ty.base == "void" && d.ty.pointers.len() == 1;
        let copied = r.pointer().is_some_and(|p| {
            p.target == Target::Buffer
                && (p.space == Space::Any
                    || bytes && matches!(p.space, Space::Host | Space::Param(_)))
        });
        if copied && i < 64 {
            buffers |= 1 << i;
        }
    }
    (buffers != 0).then_some(buffers)
}

/// What crosses the wire for a parameter with this role.
fn wire(
    view: &LibraryMajor,
    f: &Export,
    name: &str,
    role: &Role,
    resolved: &CType,
    index_of: &dyn Fn(&str) -> Option<u16>,
) -> Result<Wire, String> {
    match role {
        Role::Unknown => Err("its role is unknown".into()),
        Role::Value | Role::Handle { .. } | Role::Device => Ok(Wire::Value),
        Role::Address => Err("a host address the server cannot use".into()),
        Role::Symbol => Ok(Wire::Symbol {
            // `__cudaRegisterFunction`, `__cudaRegisterVar`: the calls that
            // make a symbol known.
            registers: f.name.starts_with("__cudaRegister"),
        }),
        Role::Callback { data: None } => Err(
            "a callback with no data pointer (one the library calls as the call runs: not sent)"
                .into(),
        ),
        Role::Callback { data: Some(d) } => {
            let data = index_of(d).ok_or_else(|| format!("no parameter `{d}`"))?;
            callback(view, resolved, data)
        }
        Role::UserData => Ok(Wire::Value),
        Role::Pointer(p) => {
            if p.space == Space::Device {
                return Ok(Wire::Value);
            }
            if let Space::Param(by) = &p.space {
                let host = Role::Pointer(crate::roles::Pointer {
                    space: Space::Host,
                    ..p.clone()
                });
                let host = wire(view, f, name, &host, resolved, index_of)?;
                return sided(view, f, by, p.dir, host, index_of);
            }
            if p.space == Space::Any {
                let host = Role::Pointer(crate::roles::Pointer {
                    space: Space::Host,
                    ..p.clone()
                });
                // A unified address may be typed as a device address (the
                // driver's `CUdeviceptr`): as host memory, bytes.
                let bytes = CType {
                    is_const: false,
                    base: "void".into(),
                    pointers: vec![false],
                };
                let as_host = if resolved.is_pointer() {
                    resolved
                } else if value_class(view, resolved).is_ok_and(|(size, ..)| size == 8) {
                    &bytes
                } else {
                    return Err("memory whose address says its side, not an address".into());
                };
                let host = wire(view, f, name, &host, as_host, index_of)?;
                if !matches!(host, Wire::Host { .. }) {
                    return Err("memory whose address says its side, not a buffer".into());
                }
                return Ok(Wire::Addressed {
                    host: Box::new(host),
                });
            }
            if let Space::DescriptorMode(desc) = &p.space {
                if p.target != Target::Scalar || p.dir != Dir::In {
                    return Err("a descriptor's pointer mode decides an input scalar only".into());
                }
                return descriptor_mode(view, f, name, desc, index_of);
            }
            if p.space == Space::PointerMode {
                let handle = f
                    .proto
                    .params
                    .iter()
                    .position(|q| q.name == "handle")
                    .and_then(|i| u16::try_from(i).ok())
                    .ok_or("a pointer mode with no `handle` parameter")?;
                if pointer_mode(view).is_none() {
                    return Err("a pointer mode the library cannot tell".into());
                }
                let host = Role::Pointer(crate::roles::Pointer {
                    space: Space::Host,
                    ..p.clone()
                });
                let host = wire(view, f, name, &host, resolved, index_of)?;
                return Ok(Wire::ByMode {
                    handle,
                    host: Box::new(host),
                });
            }
            if p.space != Space::Host {
                return Err(format!(
                    "memory whose side `{}` decides",
                    space_name(&p.space)
                ));
            }
            let dir = match p.dir {
                Dir::In => WireDir::In,
                Dir::Out => WireDir::Out,
                Dir::InOut => WireDir::InOut,
            };
            let pointee = pointee(resolved)?;
            match p.target {
                Target::String if p.dir == Dir::In => Ok(Wire::InString {
                    nullable: p.nullable,
                }),
                Target::String | Target::Buffer => {
                    let elem = if pointee.is_void() {
                        1
                    } else {
                        value_class(view, &pointee)?.0
                    };
                    let size = p
                        .size
                        .as_ref()
                        .ok_or_else(|| "a buffer with no size".to_string())?;
                    let count = size
                        .0
                        .iter()
                        .map(|factor| wire_factor(view, f, factor, index_of))
                        .collect::<Result<Vec<_>, String>>()?;
                    // A 2D copy writes `width` bytes of each row: the
                    // caller's bytes between (the pitch's padding) must
                    // come back as they were, so they are sent too.
                    let rows = count.iter().any(|c| matches!(c, WireFactor::Rows { .. }));
                    let dir = if rows && dir == WireDir::Out {
                        WireDir::InOut
                    } else {
                        dir
                    };
                    let mut addresses = Vec::new();
                    if p.dir != Dir::Out {
                        element_addresses(view, &pointee, &mut addresses);
                    }
                    Ok(Wire::Host {
                        dir,
                        elem,
                        count: Count(count),
                        nullable: p.nullable,
                        addresses,
                        nested: Vec::new(),
                    })
                }
                // `const char **`: a string of the library's own.
                Target::Address
                    if p.dir == Dir::Out
                        && pointee.pointers.len() == 1
                        && pointee.base == "char" =>
                {
                    Ok(Wire::OutString {
                        nullable: p.nullable,
                    })
                }
                Target::Address => Err("a host address the server cannot return".into()),
                Target::Scalar | Target::Struct | Target::Handle { .. } | Target::Device => {
                    let elem = value_class(view, &pointee)?.0;
                    let mut addresses = Vec::new();
                    if p.dir != Dir::Out {
                        element_addresses(view, &pointee, &mut addresses);
                    }
                    // Arrays a struct the call only reads points to cross
                    // with it; their pointers are no longer addresses to
                    // refuse.
                    let nested = if p.dir == Dir::In {
                        nested_arrays(view, &pointee)
                    } else {
                        Vec::new()
                    };
                    addresses.retain(|a| !nested.iter().any(|n| n.at == *a));
                    // A struct the call fills crosses both ways: the
                    // caller's bytes are where the library starts (a
                    // `version` field it reads; the tail an older ABI's
                    // smaller struct never had), and only the bytes the
                    // library changed are written back.
                    // A struct holding host addresses (an array the library
                    // fills, `procArray`) stays an output: zeroed on the
                    // server, never the caller's pointers.
                    let mut held = Vec::new();
                    element_addresses(view, &pointee, &mut held);
                    let dir =
                        if p.target == Target::Struct && dir == WireDir::Out && held.is_empty() {
                            WireDir::InOut
                        } else {
                            dir
                        };
                    // What the library writes there is an address of the
                    // server's (a host node's function, the stand-in of a
                    // callback): the server sends it back as null.
                    if p.target == Target::Struct && dir == WireDir::Out {
                        addresses = held;
                    }
                    Ok(Wire::Host {
                        dir,
                        elem,
                        count: Count::default(),
                        nullable: p.nullable,
                        addresses,
                        nested,
                    })
                }
                Target::KernelArgs => {
                    let (by, kernel) = kernel_of(f)
                        .ok_or_else(|| "kernel arguments of no named kernel".to_string())?;
                    Ok(Wire::KernelArgs {
                        by,
                        kernel,
                        nullable: p.nullable,
                    })
                }
                Target::Fatbinary => Ok(Wire::Image),
                Target::LaunchExtra => Ok(Wire::LaunchExtra),
                Target::KernelNode => kernel_node(view, &pointee),
            }
        }
    }
}

/// The offsets in one element of type `ty` that hold a host address: the
/// element itself when it is a pointer to data, else its fields'
/// ([`host_addresses`]).
fn element_addresses(view: &LibraryMajor, ty: &CType, out: &mut Vec<u32>) {
    let resolved = view.resolve(ty);
    if resolved.is_pointer() {
        if is_data_pointer(view, ty, &resolved) {
            out.push(0);
        }
    } else {
        host_addresses(view, &resolved, 0, out);
    }
}

/// The arrays struct `ty` points to with a count beside: a field `X` that
/// is a pointer to data of a known size, and an unsigned integer field
/// `numX` (`attrs`, `numAttrs`: a launch's attributes).
fn nested_arrays(view: &LibraryMajor, ty: &CType) -> Vec<Nested> {
    let resolved = view.resolve(ty);
    let Some(TypeDef::Aggregate(layout)) = view.facts.types.get(&resolved.base) else {
        return Vec::new();
    };
    layout
        .fields
        .iter()
        .filter_map(|field| {
            let declared = &field.decl.ty;
            let pointer = view.resolve(declared);
            if !pointer.is_pointer() || !is_data_pointer(view, declared, &pointer) {
                return None;
            }
            let mut target = pointer.clone();
            target.pointers.pop();
            let elem = value_class(view, &target).ok()?.0;
            let count_name = format!("num{}", upper_first(&field.decl.name));
            let count = layout.fields.iter().find(|c| c.decl.name == count_name)?;
            let (width, signed, _) = value_class(view, &view.resolve(&count.decl.ty)).ok()?;
            (!signed && width <= 8).then_some(Nested {
                at: u32::try_from(field.offset).ok()?,
                elem,
                count_at: u32::try_from(count.offset).ok()?,
                count_width: width,
            })
        })
        .collect()
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Whether `declared` (resolved: `resolved`, a pointer) points to data or
/// code: a handle is a typedef of a pointer to an opaque struct
/// (`cudaStream_t`); a `*` written in the declaration (`cudaLaunchAttribute
/// *attrs`, `void *ptr`) is an address.
fn is_data_pointer(view: &LibraryMajor, declared: &CType, resolved: &CType) -> bool {
    let mut target = resolved.clone();
    target.pointers.pop();
    let handle = declared.pointers.is_empty()
        && target.pointers.is_empty()
        && matches!(view.facts.types.get(&target.base), Some(TypeDef::Opaque));
    !handle
}

/// A callback the library calls later with its data pointer among the
/// arguments: `void` and, beside the data pointer (`void *`), only integers
/// and handles, which cross to the client by value.
fn callback(view: &LibraryMajor, resolved: &CType, data: u16) -> Result<Wire, String> {
    let Some(TypeDef::FunctionPointer(proto)) = view.facts.types.get(&resolved.base) else {
        return Err(format!(
            "`{}` is not a function pointer type",
            resolved.base
        ));
    };
    if !view.resolve(&proto.returns).is_void() {
        return Err(format!(
            "a callback returning `{}` (its answer is needed as the call runs: not sent)",
            proto.returns
        ));
    }
    let mut params = Vec::new();
    let mut data_at = None;
    for (i, q) in proto.params.iter().enumerate() {
        let r = view.resolve(&q.ty);
        if r.base == "void" && r.pointers.len() == 1 {
            if data_at.is_some() {
                return Err("a callback with two `void *` parameters".into());
            }
            data_at = Some(i);
            params.push(8);
            continue;
        }
        if r.is_pointer() && is_data_pointer(view, &q.ty, &r) {
            return Err(format!(
                "a callback given host memory of the library's (`{}`): not sent",
                q.ty
            ));
        }
        match value_class(view, &r) {
            Ok((size, _, ArgClass::Integer)) if size <= 8 => params.push(size),
            _ => return Err(format!("a callback's parameter of type `{}`", q.ty)),
        }
    }
    let data_at = data_at.ok_or("a callback with no `void *` for its data")?;
    let data_at = u16::try_from(data_at).map_err(|_| "a huge callback")?;
    cudastub_remote::callback::check_shape(&params, data_at)?;
    Ok(Wire::Callback {
        data,
        params,
        data_at,
    })
}

/// The offsets of the fields of aggregate `ty` (and of those nested in it)
/// that hold a host address: a pointer to data or code, not to an opaque
/// handle. A struct's bytes cross as they are: such a field is sent only
/// as null.
fn host_addresses(view: &LibraryMajor, ty: &CType, base: u64, out: &mut Vec<u32>) {
    let Some(TypeDef::Aggregate(layout)) = view.facts.types.get(&ty.base) else {
        return;
    };
    if ty.is_pointer() || out.len() > 64 {
        return;
    }
    for field in &layout.fields {
        let resolved = view.resolve(&field.decl.ty);
        let size = if resolved.is_pointer() {
            8
        } else if let Some(TypeDef::Aggregate(l)) = view.facts.types.get(&resolved.base) {
            l.size
        } else {
            value_class(view, &resolved).map_or(0, |v| u64::from(v.0))
        };
        for k in 0..field.decl.array.unwrap_or(1).min(64) {
            let at = base + field.offset + k * size;
            if resolved.is_pointer() {
                if is_data_pointer(view, &field.decl.ty, &resolved)
                    && let Ok(at) = u32::try_from(at)
                {
                    out.push(at);
                }
            } else if matches!(
                view.facts.types.get(&resolved.base),
                Some(TypeDef::FunctionPointer(_))
            ) {
                if let Ok(at) = u32::try_from(at) {
                    out.push(at);
                }
            } else {
                host_addresses(view, &resolved, at, out);
            }
        }
    }
}

/// The parameter naming a launch's kernel, and how: a symbol (a stub's host
/// address), a `cudaKernel_t` (`kernel`) or a `CUfunction` (`f`).
fn kernel_of(f: &Export) -> Option<(u16, KernelRef)> {
    f.roles
        .iter()
        .zip(&f.proto.params)
        .enumerate()
        .find_map(|(i, (role, p))| {
            let kernel = match role {
                Role::Symbol => KernelRef::Symbol,
                Role::Handle { .. } if p.name == "kernel" => KernelRef::Kernel,
                Role::Handle { .. } if matches!(p.name.as_str(), "f" | "hfunc") => {
                    KernelRef::Function
                }
                _ => return None,
            };
            Some((u16::try_from(i).ok()?, kernel))
        })
}

/// A pointer whose side the enum parameter `by` says (a `cudaMemcpyKind`):
/// by the names of its values, a source is the host's for `…HostTo…`, a
/// destination for `…ToHost`; the device's for the other directions;
/// neither for `…Default` (the address says).
fn sided(
    view: &LibraryMajor,
    f: &Export,
    by: &str,
    dir: Dir,
    host: Wire,
    index_of: &dyn Fn(&str) -> Option<u16>,
) -> Result<Wire, String> {
    let param = f
        .proto
        .params
        .iter()
        .find(|q| q.name == by)
        .ok_or_else(|| format!("no parameter `{by}`"))?;
    let resolved = view.resolve(&param.ty);
    let Some(TypeDef::Enum { values, .. }) = view.facts.types.get(&resolved.base) else {
        return Err(format!("`{by}` is not an enum"));
    };
    let (mut host_when, mut device_when, mut address_when) = (Vec::new(), Vec::new(), Vec::new());
    for (name, value) in values {
        // `cudaMemcpyDefault`: the addresses say (unified addressing).
        if name.ends_with("Default") {
            address_when.push(*value);
            continue;
        }
        // `cudaMemcpyHostToDevice`: the source's side, then the destination's.
        let Some((from, to)) = name.split_once("To") else {
            continue;
        };
        let side = match dir {
            Dir::In => from,
            Dir::Out | Dir::InOut => to,
        };
        if side.ends_with("Host") {
            host_when.push(*value);
        } else if side.ends_with("Device") {
            device_when.push(*value);
        }
    }
    if host_when.is_empty() || device_when.is_empty() {
        return Err(format!("`{by}`'s values do not say a side"));
    }
    host_when.sort_unstable();
    device_when.sort_unstable();
    address_when.sort_unstable();
    Ok(Wire::Sided {
        by: index_of(by).ok_or_else(|| format!("no parameter `{by}`"))?,
        host_when,
        device_when,
        address_when,
        host: Box::new(host),
    })
}

/// A kernel node's parameters (`pointee`, a struct): its fields `func`,
/// `kernelParams` and `extra`; the kernel named by a host address (`void
/// *func`: the runtime's symbol) or a `CUfunction` (the driver's).
fn kernel_node(view: &LibraryMajor, pointee: &CType) -> Result<Wire, String> {
    let resolved = view.resolve(pointee);
    let Some(TypeDef::Aggregate(layout)) = view.facts.types.get(&resolved.base) else {
        return Err(format!("`{pointee}` has no recorded layout"));
    };
    let field = |name: &str| {
        layout
            .fields
            .iter()
            .find(|f| f.decl.name == name)
            .ok_or_else(|| format!("`{pointee}` has no field `{name}`"))
    };
    let func = field("func")?;
    let kernel = if view.resolve(&func.decl.ty).is_pointer() && func.decl.ty.base == "void" {
        KernelRef::Symbol
    } else if func.decl.ty.base == "CUfunction" {
        KernelRef::Function
    } else {
        return Err(format!("a kernel named by a `{}`", func.decl.ty));
    };
    let offset = |name: &str| -> Result<u32, String> {
        u32::try_from(field(name)?.offset).map_err(|_| "a huge struct".to_string())
    };
    Ok(Wire::KernelNode {
        size: u32::try_from(layout.size).map_err(|_| "a huge struct".to_string())?,
        func: offset("func")?,
        kernel,
        args: offset("kernelParams")?,
        extra: offset("extra")?,
    })
}

/// One input scalar (`name`) whose side and type descriptor `desc` says,
/// by the library's own names (cuBLASLt's): the descriptor's type `XDesc_t`
/// has the getter `XDescGetAttribute` and the attributes `XDescAttributes_t`,
/// one ending `_POINTER_MODE` and one `_SCALE_TYPE`; the scale type is a
/// `cudaDataType_t`, its scalars' bytes in `import.value_sizes`; of the
/// library's `…PointerMode_t`, the modes named `…_POINTER_MODE_HOST` put
/// every scalar on the host and those ending `_{NAME}_HOST` (`_BETA_HOST`)
/// this one.
fn descriptor_mode(
    view: &LibraryMajor,
    f: &Export,
    name: &str,
    desc: &str,
    index_of: &dyn Fn(&str) -> Option<u16>,
) -> Result<Wire, String> {
    let param = f
        .proto
        .params
        .iter()
        .find(|q| q.name == desc)
        .ok_or_else(|| format!("no parameter `{desc}`"))?;
    let spelled = param.ty.base.as_str();
    let stem = spelled
        .strip_suffix("_t")
        .filter(|_| param.ty.pointers.is_empty())
        .ok_or_else(|| format!("`{desc}` is a `{}`, not a descriptor", param.ty))?;
    let get = format!("{stem}GetAttribute");
    if !view.functions.iter().any(|g| g.name == get) {
        return Err(format!("`{desc}`'s attributes: no `{get}`"));
    }
    let enum_values = |type_name: &str| {
        let resolved = view.resolve(&CType {
            is_const: false,
            base: type_name.to_string(),
            pointers: Vec::new(),
        });
        match view.facts.types.get(&resolved.base) {
            Some(TypeDef::Enum { values, .. }) => Some(values),
            _ => None,
        }
    };
    let attributes = enum_values(&format!("{stem}Attributes_t"))
        .ok_or_else(|| format!("`{desc}`'s attributes: no enum `{stem}Attributes_t`"))?;
    let attribute = |suffix: &str| {
        attributes
            .iter()
            .find(|(n, _)| n.ends_with(suffix))
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("`{stem}Attributes_t` has no `…{suffix}`"))
    };
    let (mode, scale) = (attribute("_POINTER_MODE")?, attribute("_SCALE_TYPE")?);
    let mut modes = view.facts.types.iter().filter_map(|(n, t)| match t {
        TypeDef::Enum { values, .. } if n.ends_with("PointerMode_t") => Some(values),
        _ => None,
    });
    let (Some(modes), None) = (modes.next(), modes.next()) else {
        return Err("not one `…PointerMode_t` enum in the library".into());
    };
    let own = format!("_{}_HOST", name.to_uppercase());
    let mut host_modes: Vec<i64> = modes
        .iter()
        .filter(|(n, _)| n.ends_with("_POINTER_MODE_HOST") || n.ends_with(&own))
        .map(|(_, v)| *v)
        .collect();
    host_modes.sort_unstable();
    host_modes.dedup();
    if host_modes.is_empty() {
        return Err("no pointer mode puts it on the host".into());
    }
    const SCALE: &str = "cudaDataType_t";
    let scale_types =
        enum_values(SCALE).ok_or_else(|| format!("the scale type: no enum `{SCALE}`"))?;
    let table = view
        .manifest
        .import
        .value_sizes
        .get(SCALE)
        .ok_or_else(|| format!("the scale type: `import.value_sizes` has no `{SCALE}`"))?;
    let sizes: BTreeMap<i64, u64> = scale_types
        .iter()
        .filter_map(|(n, v)| table.get(n).map(|s| (*v, *s)))
        .collect();
    Ok(Wire::ByDescriptor {
        desc: index_of(desc).ok_or_else(|| format!("no parameter `{desc}`"))?,
        get,
        mode,
        host_modes,
        scale,
        sizes,
    })
}

fn space_name(space: &Space) -> String {
    match space {
        Space::Host => "host".into(),
        Space::Device => "device".into(),
        Space::Managed => "managed".into(),
        Space::Any => "any".into(),
        Space::PointerMode => "pointer-mode".into(),
        Space::DescriptorMode(d) => format!("pointer-mode({d})"),
        Space::Param(p) => p.clone(),
    }
}

fn pointee(ty: &CType) -> Result<CType, String> {
    let Some((_, rest)) = ty.pointers.split_last() else {
        return Err(format!("`{ty}` is not a pointer"));
    };
    Ok(CType {
        is_const: false,
        base: ty.base.clone(),
        pointers: rest.to_vec(),
    })
}

fn wire_factor(
    view: &LibraryMajor,
    f: &Export,
    factor: &Factor,
    index_of: &dyn Fn(&str) -> Option<u16>,
) -> Result<WireFactor, String> {
    let idx = |name: &str| index_of(name).ok_or_else(|| format!("no parameter `{name}`"));
    let param_type = |name: &str| {
        f.proto
            .params
            .iter()
            .find(|p| p.name == name)
            .map(|p| view.resolve(&p.ty))
            .ok_or_else(|| format!("no parameter `{name}`"))
    };
    Ok(match factor {
        Factor::Const(n) => WireFactor::Const(*n),
        Factor::Param(p) => WireFactor::Param(idx(p)?),
        Factor::Deref(p) => {
            let width = value_class(view, &pointee(&param_type(p)?)?)?.0;
            WireFactor::Deref {
                param: idx(p)?,
                width: u8::try_from(width).map_err(|_| format!("`*{p}` is not an integer"))?,
            }
        }
        Factor::Of(p) => {
            let spelled = f
                .proto
                .params
                .iter()
                .find(|q| q.name == *p)
                .map(|q| q.ty.base.clone())
                .unwrap_or_default();
            let resolved = param_type(p)?;
            let Some(TypeDef::Enum { values, .. }) = view.facts.types.get(&resolved.base) else {
                return Err(format!("`of({p})`: not an enum"));
            };
            let table = view
                .manifest
                .import
                .value_sizes
                .get(&spelled)
                .ok_or_else(|| format!("`of({p})`: no size table"))?;
            let sizes: BTreeMap<i64, u64> = values
                .iter()
                .filter_map(|(name, v)| table.get(name).map(|s| (*v, *s)))
                .collect();
            WireFactor::Of {
                param: idx(p)?,
                sizes,
            }
        }
        Factor::Rows {
            pitch,
            width,
            height,
        } => WireFactor::Rows {
            pitch: idx(pitch)?,
            width: idx(width)?,
            height: idx(height)?,
        },
    })
}

/// The bytes, signedness and ABI class of a value of (resolved) type `ty`.
fn value_class(view: &LibraryMajor, ty: &CType) -> Result<(u32, bool, ArgClass), String> {
    if ty.is_pointer() {
        return Ok((8, false, ArgClass::Integer));
    }
    if let Some((size, signed, float)) = builtin(&ty.base) {
        let class = if float {
            ArgClass::Sse
        } else {
            ArgClass::Integer
        };
        return Ok((size, signed, class));
    }
    match view.facts.types.get(&ty.base) {
        Some(TypeDef::Enum { repr, .. }) => {
            let (size, signed, _) = builtin(repr).unwrap_or((4, true, false));
            Ok((size, signed, ArgClass::Integer))
        }
        Some(TypeDef::Aggregate(layout)) => {
            let size = u32::try_from(layout.size).map_err(|_| "a huge struct".to_string())?;
            Ok((size, false, aggregate_class(view, layout)?))
        }
        Some(TypeDef::FunctionPointer(_)) => Ok((8, false, ArgClass::Integer)),
        Some(TypeDef::Typedef(t)) => value_class(view, &view.resolve(t)),
        Some(TypeDef::Opaque) => Err(format!("`{}` has no recorded layout", ty.base)),
        Some(TypeDef::Array { .. }) => Err(format!("`{}` is an array", ty.base)),
        None => Err(format!("`{}` is not a known type", ty.base)),
    }
}

/// The System V class of a struct or union passed by value.
fn aggregate_class(view: &LibraryMajor, layout: &Layout) -> Result<ArgClass, String> {
    if layout.size > 16 || layout.size == 0 {
        return Ok(ArgClass::Memory {
            size: u32::try_from(layout.size).map_err(|_| "a huge struct".to_string())?,
        });
    }
    // Per eightbyte: integer if any scalar in it is not a float.
    let mut integer = [false; 2];
    let mut any = [false; 2];
    let mut visit = Vec::new();
    scalars(view, layout, 0, &mut visit)?;
    for (offset, size, float) in visit {
        if offset % size.max(1) != 0 {
            return Ok(ArgClass::Memory {
                size: layout.size as u32,
            });
        }
        let eb = (offset / 8) as usize;
        if eb < 2 {
            any[eb] = true;
            integer[eb] |= !float;
        }
    }
    let count = layout.size.div_ceil(8) as usize;
    Ok(ArgClass::Small(
        (0..count)
            .map(|i| {
                if integer[i] || !any[i] {
                    EightByte::Integer
                } else {
                    EightByte::Sse
                }
            })
            .collect(),
    ))
}

/// Every scalar of an aggregate: (offset, size, is a float).
fn scalars(
    view: &LibraryMajor,
    layout: &Layout,
    base: u64,
    out: &mut Vec<(u64, u64, bool)>,
) -> Result<(), String> {
    for field in &layout.fields {
        let ty = view.resolve(&field.decl.ty);
        let n = field.decl.array.unwrap_or(1);
        let (size, inner): (u64, Option<&Layout>) = if ty.is_pointer() {
            (8, None)
        } else if let Some(TypeDef::Aggregate(l)) = view.facts.types.get(&ty.base) {
            (l.size, Some(l))
        } else {
            (u64::from(value_class(view, &ty)?.0), None)
        };
        for k in 0..n {
            let offset = base + field.offset + k * size;
            match inner {
                Some(l) => scalars(view, l, offset, out)?,
                None => {
                    let float = !ty.is_pointer() && matches!(ty.base.as_str(), "float" | "double");
                    out.push((offset, size, float));
                }
            }
        }
    }
    Ok(())
}

/// (bytes, signed, float) of a builtin C type.
fn builtin(base: &str) -> Option<(u32, bool, bool)> {
    Some(match base {
        "char" | "signed char" | "int8_t" => (1, true, false),
        "unsigned char" | "uint8_t" | "_Bool" => (1, false, false),
        "short" | "int16_t" => (2, true, false),
        "unsigned short" | "uint16_t" => (2, false, false),
        "int" | "int32_t" => (4, true, false),
        "unsigned int" | "unsigned" | "uint32_t" => (4, false, false),
        "long" | "long long" | "int64_t" | "ssize_t" | "intptr_t" => (8, true, false),
        "unsigned long" | "unsigned long long" | "uint64_t" | "size_t" | "uintptr_t" => {
            (8, false, false)
        }
        "float" => (4, false, true),
        "double" => (8, false, true),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_cross_as_numbers_with_their_shapes() {
        let catalog = Catalog::standard().expect("the standard manifests");
        let plan = major_plan(&catalog, 13);
        let wire_of = |lib: &str, name: &str, param: usize| {
            let (li, fi) = plan.find(lib, name).expect("found");
            let f = &plan.libraries[li as usize].functions[fi as usize];
            (f.unsupported.clone(), f.params[param].wire.clone())
        };
        // `void (*)(void *userData)`, the data pointer parameter 2.
        assert_eq!(
            wire_of("cudart", "cudaLaunchHostFunc", 1),
            (
                None,
                Wire::Callback {
                    data: 2,
                    params: vec![8],
                    data_at: 0
                }
            )
        );
        // `void (*)(cudaStream_t, cudaError_t, void *)`.
        assert_eq!(
            wire_of("cudart", "cudaStreamAddCallback", 1),
            (
                None,
                Wire::Callback {
                    data: 2,
                    params: vec![8, 4, 8],
                    data_at: 2
                }
            )
        );
        assert_eq!(
            wire_of("cuda", "cuLaunchHostFunc", 1).1,
            Wire::Callback {
                data: 2,
                params: vec![8],
                data_at: 0
            }
        );
        // Given a struct of the library's, or called as the call runs: not sent.
        let (why, _) = wire_of("cudart", "cudaDeviceRegisterAsyncNotification", 1);
        assert!(why.is_some_and(|w| w.contains("host memory of the library's")));
        let (why, _) = wire_of("cuda", "cuOccupancyMaxPotentialBlockSize", 3);
        assert!(why.is_some());
        // A host node's parameters read back hold the server's stand-in
        // and its data: returned as null.
        match wire_of("cudart", "cudaGraphHostNodeGetParams", 1) {
            (None, Wire::Host { dir, addresses, .. }) => {
                assert_eq!((dir, addresses), (WireDir::Out, vec![0, 8]));
            }
            other => panic!("{other:?}"),
        }
        // Unified addresses: the address says the side, for the runtime's
        // pointers and the driver's `CUdeviceptr` alike; such a copy is
        // still queued (a host destination comes back in its answer).
        for (lib, name, class) in [
            ("cudart", "cudaMemcpyWithAttributesAsync", Class::Async),
            ("cuda", "cuMemcpy", Class::Call),
            ("cuda", "cuMemcpyAsync", Class::Async),
        ] {
            let (li, fi) = plan.find(lib, name).expect("found");
            let f = &plan.libraries[li as usize].functions[fi as usize];
            assert_eq!((&f.unsupported, f.class), (&None, class), "{name}");
            for (i, dir) in [(0, WireDir::Out), (1, WireDir::In)] {
                match &f.params[i].wire {
                    Wire::Addressed { host } => match host.as_ref() {
                        Wire::Host {
                            dir: d, elem: 1, ..
                        } => assert_eq!(*d, dir, "{name}"),
                        other => panic!("{name}: {other:?}"),
                    },
                    other => panic!("{name}: {other:?}"),
                }
            }
            // The copy's two pointers, not `attr` (read as the call runs).
            let buffers = (class == Class::Async).then_some(0b11);
            assert_eq!(
                f.graph,
                buffers.map(|buffers| GraphStep::StreamCopy { buffers }),
                "{name}"
            );
        }
    }

    #[test]
    fn the_runtime_plans_say_what_crosses() {
        let catalog = Catalog::standard().expect("the standard manifests");
        let plan = major_plan(&catalog, 12);
        let (li, fi) = plan.find("cudart", "cudaGetDeviceCount").expect("found");
        let f = &plan.libraries[li as usize].functions[fi as usize];
        assert_eq!(f.unsupported, None);
        assert_eq!(
            f.params[0].wire,
            Wire::Host {
                dir: WireDir::Out,
                elem: 4,
                count: Count::default(),
                nullable: false,
                addresses: Vec::new(),
                nested: Vec::new(),
            }
        );
        // The driver's allocation properties cross with their one host
        // address (a Windows handle's metadata) at its offset, sent only
        // as null; an access descriptor array has none.
        let (li, fi) = plan.find("cuda", "cuMemCreate").expect("found");
        let f = &plan.libraries[li as usize].functions[fi as usize];
        assert_eq!(f.unsupported, None);
        match &f.params[2].wire {
            Wire::Host {
                dir: WireDir::In,
                elem: 32,
                addresses,
                ..
            } => assert_eq!(addresses, &[16]),
            other => panic!("cuMemCreate's prop: {other:?}"),
        }
        // A launch's configuration: its attributes' array crosses with it
        // (counted by `numAttrs`); its stream is a handle.
        let (li, fi) = plan.find("cudart", "cudaLaunchKernelExC").expect("found");
        let f = &plan.libraries[li as usize].functions[fi as usize];
        match &f.params[0].wire {
            Wire::Host {
                elem: 56,
                addresses,
                nested,
                ..
            } => {
                assert!(addresses.is_empty(), "{addresses:?}");
                assert_eq!(
                    nested,
                    &[Nested {
                        at: 40,
                        elem: 72,
                        count_at: 48,
                        count_width: 4
                    }]
                );
            }
            other => panic!("cudaLaunchKernelExC's config: {other:?}"),
        }
        // A struct the call fills crosses both ways (its `version` read);
        // one holding the caller's array pointers stays an output, zeroed
        // on the server: the real NVML never writes through the caller's
        // address there.
        for (name, index, dir) in [
            ("nvmlDeviceGetMemoryInfo_v2", 1, WireDir::InOut),
            ("nvmlDeviceGetRunningProcessDetailList", 1, WireDir::Out),
        ] {
            let (li, fi) = plan.find("nvml", name).expect("found");
            let f = &plan.libraries[li as usize].functions[fi as usize];
            assert_eq!(f.params[index].wire.host_dir(), Some(dir), "{name}");
        }
        let (li, fi) = plan.find("cuda", "cuMemSetAccess").expect("found");
        let f = &plan.libraries[li as usize].functions[fi as usize];
        assert_eq!(f.unsupported, None);
        assert!(
            matches!(&f.params[2].wire, Wire::Host { elem: 12, addresses, .. } if addresses.is_empty()),
            "{:?}",
            f.params[2].wire
        );
        // A GEMM's scalars: host memory sized by the compute type in the
        // handle's host pointer mode, a device address in its device mode.
        let (li, fi) = plan.find("cublas", "cublasGemmEx").expect("found");
        let lib = &plan.libraries[li as usize];
        let f = &lib.functions[fi as usize];
        assert_eq!(f.unsupported, None);
        assert_eq!(f.class, Class::Async);
        let mode = lib
            .pointer_mode
            .as_ref()
            .expect("cuBLAS has a pointer mode");
        assert_eq!(mode.device, 1, "CUBLAS_POINTER_MODE_DEVICE");
        match &f.params[6].wire {
            Wire::ByMode { handle: 0, host } => match host.as_ref() {
                Wire::Host {
                    dir: WireDir::In,
                    elem: 1,
                    count,
                    ..
                } => assert!(
                    matches!(&count.0[..], [WireFactor::Of { param: 17, sizes }] if sizes.get(&68) == Some(&8)),
                    "{count:?}"
                ),
                other => panic!("alpha in the host mode: {other:?}"),
            },
            other => panic!("cublasGemmEx's alpha: {other:?}"),
        }
        // A kernel node's parameters: the kernel and its arguments cross.
        for (library, name, index, kernel) in [
            ("cudart", "cudaGraphAddKernelNode", 4, KernelRef::Symbol),
            (
                "cudart",
                "cudaGraphExecKernelNodeSetParams",
                2,
                KernelRef::Symbol,
            ),
            ("cuda", "cuGraphAddKernelNode", 4, KernelRef::Function),
        ] {
            let (li, fi) = plan.find(library, name).unwrap_or_else(|| panic!("{name}"));
            let f = &plan.libraries[li as usize].functions[fi as usize];
            assert_eq!(f.unsupported, None, "{name}");
            assert!(
                matches!(f.params[index].wire, Wire::KernelNode { func: 0, args: 40, extra: 48, kernel: k, .. } if k == kernel),
                "{name}: {:?}",
                f.params[index].wire
            );
        }
        // The driver's launches, `extra` and all.
        for name in ["cuLaunchKernel", "cuLaunchKernel_ptsz", "cuLaunchKernelEx"] {
            let (li, fi) = plan.find("cuda", name).unwrap_or_else(|| panic!("{name}"));
            let f = &plan.libraries[li as usize].functions[fi as usize];
            assert_eq!(f.unsupported, None, "{name}");
            assert_eq!(
                f.params.last().map(|p| &p.wire),
                Some(&Wire::LaunchExtra),
                "{name}"
            );
        }
        // A graph's life, for the host memory its copies use.
        for (library, name, step) in [
            (
                "cudart",
                "cudaStreamEndCapture",
                Some(GraphStep::EndCapture { graph: 1 }),
            ),
            (
                "cuda",
                "cuStreamEndCapture",
                Some(GraphStep::EndCapture { graph: 1 }),
            ),
            (
                "cudart",
                "cudaGraphInstantiate",
                Some(GraphStep::Instantiate { exec: 0, graph: 1 }),
            ),
            (
                "cudart",
                "cudaGraphInstantiateWithFlags",
                Some(GraphStep::Instantiate { exec: 0, graph: 1 }),
            ),
            (
                "cuda",
                "cuGraphInstantiateWithFlags",
                Some(GraphStep::Instantiate { exec: 0, graph: 1 }),
            ),
            (
                "cudart",
                "cudaGraphExecUpdate",
                Some(GraphStep::Update { exec: 0, graph: 1 }),
            ),
            (
                "cudart",
                "cudaGraphLaunch",
                Some(GraphStep::Launch { exec: 0, stream: 1 }),
            ),
            (
                "cudart",
                "cudaGraphLaunch_ptsz",
                Some(GraphStep::Launch { exec: 0, stream: 1 }),
            ),
            (
                "cuda",
                "cuGraphLaunch",
                Some(GraphStep::Launch { exec: 0, stream: 1 }),
            ),
            (
                "cudart",
                "cudaGraphDestroy",
                Some(GraphStep::DestroyGraph { graph: 0 }),
            ),
            (
                "cudart",
                "cudaGraphExecDestroy",
                Some(GraphStep::DestroyExec { exec: 0 }),
            ),
            (
                "cuda",
                "cuGraphDestroy",
                Some(GraphStep::DestroyGraph { graph: 0 }),
            ),
            ("cudart", "cudaDeviceReset", Some(GraphStep::Reset)),
            ("cuda", "cuCtxDestroy_v2", Some(GraphStep::Reset)),
            ("cuda", "cuDevicePrimaryCtxReset_v2", Some(GraphStep::Reset)),
            (
                "cudart",
                "cudaGraphClone",
                Some(GraphStep::Clone { clone: 0, graph: 1 }),
            ),
            (
                "cuda",
                "cuGraphClone",
                Some(GraphStep::Clone { clone: 0, graph: 1 }),
            ),
            (
                "cudart",
                "cudaGraphAddChildGraphNode",
                Some(GraphStep::AddChild { graph: 1, child: 4 }),
            ),
            (
                "cuda",
                "cuGraphAddChildGraphNode",
                Some(GraphStep::AddChild { graph: 1, child: 4 }),
            ),
            (
                "cudart",
                "cudaGraphExecChildGraphNodeSetParams",
                Some(GraphStep::ExecChild { exec: 0, child: 2 }),
            ),
            (
                "cudart",
                "cudaMemcpyAsync",
                Some(GraphStep::StreamCopy { buffers: 0b11 }),
            ),
            (
                "cudart",
                "cudaMemcpy2DAsync",
                Some(GraphStep::StreamCopy { buffers: 0b101 }),
            ),
            (
                "cuda",
                "cuMemcpyHtoDAsync_v2",
                Some(GraphStep::StreamCopy { buffers: 0b10 }),
            ),
            (
                "cuda",
                "cuMemcpyDtoHAsync_v2",
                Some(GraphStep::StreamCopy { buffers: 0b1 }),
            ),
            (
                "cudart",
                "cudaGraphAddMemcpyNode1D",
                Some(GraphStep::CopyNode),
            ),
            ("cudart", "cudaMemcpy", None),
            ("cudart", "cudaStreamBeginCaptureToGraph", None),
            ("cudart", "cudaGraphicsMapResources", None),
            ("cudart", "cudaMemsetAsync", None),
            ("cudart", "cudaLaunchKernel", None),
            ("cuda", "cuMemcpyDtoDAsync_v2", None),
            ("cudart", "cudaGraphCreate", None),
        ] {
            let (li, fi) = plan.find(library, name).unwrap_or_else(|| panic!("{name}"));
            let f = &plan.libraries[li as usize].functions[fi as usize];
            assert_eq!(f.graph, step, "{name}");
        }
        // cuBLASLt's scalars: the descriptor's pointer mode and scale type
        // decide, by the attributes the library names.
        let (li, fi) = plan.find("cublasLt", "cublasLtMatmul").expect("found");
        let f = &plan.libraries[li as usize].functions[fi as usize];
        assert_eq!(f.unsupported, None);
        for (i, host) in [(2, vec![0]), (7, vec![0, 4])] {
            match &f.params[i].wire {
                Wire::ByDescriptor {
                    desc: 1,
                    get,
                    mode: 2,
                    host_modes,
                    scale: 1,
                    sizes,
                } => {
                    assert_eq!(get, "cublasLtMatmulDescGetAttribute");
                    assert_eq!(host_modes, &host, "{}", f.params[i].name);
                    // CUDA_R_32F, CUDA_C_64F, CUDA_R_16F.
                    assert_eq!(
                        (sizes.get(&0), sizes.get(&5), sizes.get(&2)),
                        (Some(&4), Some(&16), Some(&2))
                    );
                    assert_eq!(f.params[i].wire.probe_len(), 16);
                }
                other => panic!("cublasLtMatmul's {}: {other:?}", f.params[i].name),
            }
        }
        let (li, fi) = plan
            .find("cublasLt", "cublasLtMatrixTransform")
            .expect("found");
        let f = &plan.libraries[li as usize].functions[fi as usize];
        assert_eq!(f.unsupported, None);
        assert!(
            matches!(&f.params[5].wire, Wire::ByDescriptor { desc: 1, get, mode: 1, scale: 0, .. } if get == "cublasLtMatrixTransformDescGetAttribute"),
            "{:?}",
            f.params[5].wire
        );
        let (li, fi) = plan.find("cudart", "cudaLaunchKernel").expect("found");
        let f = &plan.libraries[li as usize].functions[fi as usize];
        // dim3 by value: 12 bytes in two integer eightbytes.
        assert_eq!(
            f.params[1].abi,
            ArgClass::Small(vec![EightByte::Integer, EightByte::Integer])
        );
        assert_eq!(f.unsupported, None);
        assert_eq!(f.params[0].wire, Wire::Symbol { registers: false });
        assert_eq!(
            f.params[3].wire,
            Wire::KernelArgs {
                by: 0,
                kernel: KernelRef::Symbol,
                nullable: true
            }
        );
        // A copy's sides by its kind: the source is the host's for
        // HostToHost/HostToDevice, the destination for HostToHost/DeviceToHost.
        let (li, fi) = plan.find("cudart", "cudaMemcpy").expect("found");
        let f = &plan.libraries[li as usize].functions[fi as usize];
        assert_eq!(f.unsupported, None);
        match (&f.params[0].wire, &f.params[1].wire) {
            (
                Wire::Sided {
                    by: 3,
                    host_when: dst_host,
                    device_when: dst_device,
                    ..
                },
                Wire::Sided {
                    host_when: src_host,
                    device_when: src_device,
                    ..
                },
            ) => {
                assert_eq!((dst_host, dst_device), (&vec![0, 2], &vec![1, 3]));
                assert_eq!((src_host, src_device), (&vec![0, 1], &vec![2, 3]));
                match &f.params[1].wire {
                    Wire::Sided { address_when, .. } => assert_eq!(address_when, &vec![4]),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("cudaMemcpy's dst and src: {other:?}"),
        }
        let (li, fi) = plan.find("cudart", "cudaGetErrorString").expect("found");
        assert_eq!(
            plan.libraries[li as usize].functions[fi as usize].ret,
            RetPlan::String
        );
        let (li, _) = plan.find("cudart", "cudaMalloc").expect("found");
        let statuses = plan.libraries[li as usize]
            .statuses
            .clone()
            .expect("statuses");
        assert_eq!(statuses.library_missing, 34, "cudaErrorStubLibrary");
    }
}
