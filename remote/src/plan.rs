//! How one function's call crosses to the server: its *plan*, computed from
//! the manifest (prototype, parameter roles, type layouts) by
//! `cudastub_codegen::remote`, the same on the client and on the server.
//!
//! A plan says, per parameter, how its value travels in the C ABI (so the
//! server can call the real function with no per-function code) and what
//! crosses the wire: the value itself (numbers, handles, device addresses),
//! or the host memory behind a pointer (read before the call, written back
//! after), sized by the role's size rule evaluated on the client.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::abi::{ArgClass, RetClass};

/// One function's plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallPlan {
    /// The exported name.
    pub name: String,
    /// One per parameter, in order.
    pub params: Vec<ParamPlan>,
    /// What it returns.
    pub ret: RetPlan,
    /// Whether the result is needed when the call returns.
    pub class: Class,
    /// Why the call cannot be sent (an unknown role, a callback, …); such a
    /// call fails with the library's "not supported" status.
    pub unsupported: Option<String>,
    /// The real library keeps pointers to what the call is given (a
    /// registration: the module image, the kernel's name, for a lookup at
    /// first launch): the server keeps it for the session.
    pub keeps_arguments: bool,
    /// The parameter that is a stream, if any: host memory is not sent to
    /// a stream being captured into a graph (the graph would read the
    /// server's copy, gone or stale, each time it runs).
    pub stream: Option<u16>,
    /// Its step in a graph's life, for the host memory the graph's copies
    /// read and write (see [`crate::wire::GraphHost`]).
    pub graph: Option<GraphStep>,
}

/// A call's step in a graph's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GraphStep {
    /// Ends a stream capture: the graph (the output parameter `graph`)
    /// has the copies captured.
    EndCapture {
        /// The graph's parameter (an output).
        graph: u16,
    },
    /// Makes an executable graph (the output `exec`) of graph `graph`.
    Instantiate {
        /// The executable graph's parameter (an output).
        exec: u16,
        /// The graph's parameter.
        graph: u16,
    },
    /// Updates executable graph `exec` to graph `graph`.
    Update {
        /// The executable graph's parameter.
        exec: u16,
        /// The graph's parameter.
        graph: u16,
    },
    /// Destroys graph `graph`.
    DestroyGraph {
        /// The graph's parameter.
        graph: u16,
    },
    /// Destroys executable graph `exec`.
    DestroyExec {
        /// The executable graph's parameter.
        exec: u16,
    },
    /// Resets the device or destroys a context: its graphs and events go
    /// with it.
    Reset,
    /// Launches executable graph `exec` on stream `stream`.
    Launch {
        /// The executable graph's parameter.
        exec: u16,
        /// The stream's parameter.
        stream: u16,
    },
    /// Makes graph `clone` (an output) a copy of graph `graph`.
    Clone {
        /// The clone's parameter (an output).
        clone: u16,
        /// The original's parameter.
        graph: u16,
    },
    /// Adds a copy of graph `child` to graph `graph`, as a node.
    AddChild {
        /// The parent graph's parameter.
        graph: u16,
        /// The child graph's parameter.
        child: u16,
    },
    /// Sets a child graph node of executable graph `exec` to a copy of
    /// graph `child` (refused where either copies host memory: which
    /// copies the node had is not followed).
    ExecChild {
        /// The executable graph's parameter.
        exec: u16,
        /// The child graph's parameter.
        child: u16,
    },
    /// Copies host memory on a stream (its stream parameter is
    /// [`CallPlan::stream`]): a capture records the copy, which then
    /// reads or writes that memory each time the graph runs.
    StreamCopy {
        /// The parameters (bit `i` for parameter `i`) whose memory is
        /// copied; any other (a struct of attributes) is read as the call
        /// runs.
        buffers: u64,
    },
    /// Adds or sets a graph's copy node: the node keeps the addresses it
    /// is given.
    CopyNode,
}

/// The call class of the manifest (`cudastub_codegen::roles::CallClass`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Class {
    /// Its results are needed when it returns.
    Call,
    /// Returns nothing useful (a launch, an async copy).
    Async,
    /// Waits for earlier work.
    Sync,
    /// Answerable without the library.
    Local,
}

/// One parameter's plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamPlan {
    /// The parameter's name (for diagnostics).
    pub name: String,
    /// The bytes of the value as passed (8 for a pointer).
    pub size: u32,
    /// An integer whose value sign-extends (for sizes read from it).
    pub signed: bool,
    /// How the value travels in the C ABI.
    pub abi: ArgClass,
    /// What crosses the wire.
    pub wire: Wire,
}

/// What crosses the wire for one parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wire {
    /// The value itself: a number, a handle, a device address.
    Value,
    /// Host memory behind a pointer: `count` elements of `elem` bytes.
    Host {
        /// Read by the call, written, or both.
        dir: Dir,
        /// The bytes of one element.
        elem: u32,
        /// How many elements.
        count: Count,
        /// Null is allowed (and then nothing crosses).
        nullable: bool,
        /// Offsets in each element of fields holding a host address
        /// (`win32HandleMetaData`, `srcHost`): sent only as null, as an
        /// address of the client's means nothing to the server; in memory
        /// the call writes (`out`), returned as null, as one of the
        /// server's means nothing to the client.
        addresses: Vec<u32>,
        /// Arrays a struct the call reads points to, counted by a field
        /// beside the pointer (`attrs`, `numAttrs`): they cross with it,
        /// and the server points the struct at its own copies.
        nested: Vec<Nested>,
    },
    /// A `const char **` the call sets to a string of the library's own (an
    /// error's description, a kernel's name): its text crosses back, and
    /// the client points the caller at a copy kept for the process's life.
    OutString {
        /// Null is allowed.
        nullable: bool,
    },
    /// A NUL-terminated string the call reads.
    InString {
        /// Null is allowed.
        nullable: bool,
    },
    /// A host address naming a kernel or device variable of a registered
    /// module: the server stands in an address of its own, made when the
    /// call `registers` it (`__cudaRegisterFunction`) and looked up after.
    Symbol {
        /// The call registers the symbol.
        registers: bool,
    },
    /// A module image: `__cudaRegisterFatBinary`'s wrapper, a fat binary,
    /// an ELF cubin or PTX text, sized by its own header.
    Image,
    /// A launch's argument array: each argument's bytes, as many as the
    /// kernel's parameter has (the server's `cuFuncGetParamInfo`), the
    /// kernel being parameter `by`'s value.
    KernelArgs {
        /// The parameter naming the kernel.
        by: u16,
        /// What that parameter is.
        kernel: KernelRef,
        /// Null is allowed (a kernel with no parameters).
        nullable: bool,
    },
    /// `cuLaunchKernel`'s `extra`: `CU_LAUNCH_PARAM_BUFFER_POINTER` and
    /// `CU_LAUNCH_PARAM_BUFFER_SIZE` pairs up to `CU_LAUNCH_PARAM_END`, the
    /// kernel's arguments packed in one buffer: the buffer crosses (at most
    /// [`MAX_LAUNCH_BUFFER`] bytes), and the server makes the list anew
    /// around its copy.
    LaunchExtra,
    /// A graph kernel node's parameters (`cudaKernelNodeParams`), read by
    /// the call: a struct of `size` bytes naming its kernel (the field at
    /// `func`, as `kernel` says) and pointing to its argument array (the
    /// field at `args`), each argument as long as the kernel's parameter
    /// (asked of the server as for a launch); the field at `extra` must be
    /// null. The server points its copy of the struct at its own stand-in
    /// for the kernel and its copies of the arguments.
    KernelNode {
        /// The struct's bytes.
        size: u32,
        /// The kernel's field.
        func: u32,
        /// What that field is.
        kernel: KernelRef,
        /// The argument array's field.
        args: u32,
        /// The `extra` field.
        extra: u32,
    },
    /// Memory on the side the pointer mode of handle parameter `handle`
    /// says ([`PointerMode`]): host memory as `host` says in the host mode,
    /// a device address (a value) in the device mode. The server checks the
    /// mode itself before the call.
    ByMode {
        /// The handle's parameter.
        handle: u16,
        /// What crosses in the host mode.
        host: Box<Wire>,
    },
    /// One scalar on the side a descriptor's pointer mode says, of the
    /// descriptor's scale type (cuBLASLt's `alpha` and `beta`): the server
    /// asks the real library for both attributes, before the call, of the
    /// descriptor as it is then. The client sends the address and the
    /// bytes there it can read, up to the largest scale type's.
    ByDescriptor {
        /// The descriptor's parameter.
        desc: u16,
        /// `status get(desc, attr, void *buf, size_t size, size_t *written)`.
        get: String,
        /// The attribute holding the pointer mode.
        mode: i64,
        /// The pointer modes in which the scalar is host memory; in any
        /// other it is a device address (or unread).
        host_modes: Vec<i64>,
        /// The attribute holding the scale type.
        scale: i64,
        /// The bytes of one scalar of each scale type.
        sizes: BTreeMap<i64, u64>,
    },
    /// Memory on the side another parameter's value says (a
    /// `cudaMemcpyKind`): host memory as `host` says for the values of
    /// `host_when`, a device address (a value) for those of `device_when`;
    /// for those of `address_when` (`cudaMemcpyDefault`) the address says:
    /// the client sends it with the bytes there it can read (an input's),
    /// and the server's driver says whether it is the server's device
    /// memory — else it is the client's host memory.
    Sided {
        /// The parameter that decides.
        by: u16,
        /// Its values for which the memory is the host's.
        host_when: Vec<i64>,
        /// Its values for which it is the device's.
        device_when: Vec<i64>,
        /// Its values for which the address says.
        address_when: Vec<i64>,
        /// What crosses when it is the host's (a [`Wire::Host`]).
        host: Box<Wire>,
    },
    /// Memory whose side its address alone says (unified addressing: the
    /// driver's `cuMemcpy`, `cudaMemcpyWithAttributesAsync`), as for a
    /// [`Wire::Sided`] parameter's `address_when`: the client sends the
    /// address with the bytes there it can read (an input's), and the
    /// server's driver says whether it is the server's device memory —
    /// else it is the client's host memory, as `host` says.
    Addressed {
        /// What crosses when it is the host's (a [`Wire::Host`]).
        host: Box<Wire>,
    },
    /// A function of the client's that the library calls later, from its
    /// own thread (a host function or callback on a stream), with the
    /// client's data pointer (parameter `data`) among its arguments. The
    /// client sends a number of its own for the pair; the server stands
    /// in a trampoline of its own that records each call, and the client
    /// makes those calls when an answer brings them (see
    /// `wire::Reply::Return`'s `callbacks`).
    Callback {
        /// The parameter holding the data pointer the callback is given.
        data: u16,
        /// The bytes of each of the callback's own parameters (integers
        /// or handles, 1..=8 bytes); the data pointer's is 8.
        params: Vec<u32>,
        /// Which of the callback's parameters is the data pointer.
        data_at: u16,
    },
}

impl Wire {
    /// The direction of the host memory this wire may carry (`None` for a
    /// value or an input string).
    pub fn host_dir(&self) -> Option<Dir> {
        match self {
            Wire::Host { dir, .. } => Some(*dir),
            Wire::OutString { .. } => Some(Dir::Out),
            Wire::Sided { host, .. } | Wire::ByMode { host, .. } | Wire::Addressed { host } => {
                host.host_dir()
            }
            Wire::Value
            | Wire::InString { .. }
            | Wire::Symbol { .. }
            | Wire::Image
            | Wire::KernelArgs { .. }
            | Wire::Callback { .. } => None,
            Wire::ByDescriptor { .. } | Wire::KernelNode { .. } | Wire::LaunchExtra => {
                Some(Dir::In)
            }
        }
    }
}

impl Wire {
    /// The most bytes a [`Wire::ByDescriptor`] scalar may need (0 for any
    /// other wire).
    pub fn probe_len(&self) -> u64 {
        match self {
            Wire::ByDescriptor { sizes, .. } => sizes.values().copied().max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// The most bytes of a launch's packed arguments (`cuLaunchKernel`'s
/// `extra` buffer; CUDA's own limit is 32,764).
pub const MAX_LAUNCH_BUFFER: usize = 64 << 10;

/// An array a struct points to: the pointer's offset, its elements' bytes,
/// and the offset and width of the field counting them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nested {
    /// The pointer's offset in the struct.
    pub at: u32,
    /// The bytes of one element.
    pub elem: u32,
    /// The count's offset in the struct.
    pub count_at: u32,
    /// The count's bytes (1, 2, 4 or 8; unsigned).
    pub count_width: u32,
}

impl Nested {
    /// The bytes of the array `bytes` (the struct) points to, by its count
    /// (`None`: the struct is too short or the size overflows).
    pub fn len_in(&self, bytes: &[u8]) -> Option<u64> {
        let at = self.count_at as usize;
        let field = bytes.get(at..at + self.count_width as usize)?;
        let mut b = [0u8; 8];
        b[..field.len()].copy_from_slice(field);
        u64::from_le_bytes(b).checked_mul(u64::from(self.elem))
    }

    /// The pointer's value in `bytes`.
    pub fn pointer_in(&self, bytes: &[u8]) -> Option<u64> {
        let at = self.at as usize;
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    }
}

/// The first byte offset in `bytes` (elements of `elem` bytes) where one of
/// the `addresses` fields of an element is not null.
pub fn address_at(bytes: &[u8], elem: u32, addresses: &[u32]) -> Option<usize> {
    if addresses.is_empty() || elem == 0 {
        return None;
    }
    bytes.chunks(elem as usize).enumerate().find_map(|(i, e)| {
        addresses.iter().find_map(|&at| {
            let field = e.get(at as usize..at as usize + 8)?;
            field
                .iter()
                .any(|b| *b != 0)
                .then_some(i * elem as usize + at as usize)
        })
    })
}

/// How a launch names its kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KernelRef {
    /// The host address of its stub (`cudaLaunchKernel`'s `func`).
    Symbol,
    /// A `cudaKernel_t` / `CUkernel` (`__cudaLaunchKernel`'s `kernel`).
    Kernel,
    /// A `CUfunction` (`cuLaunchKernel`'s `f`).
    Function,
}

/// The direction of host memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dir {
    /// Read by the call: sent.
    In,
    /// Written by the call: received.
    Out,
    /// Both.
    InOut,
}

/// How many elements: the product of the factors (one when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count(pub Vec<Factor>);

/// One factor of a [`Count`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Factor {
    /// A constant.
    Const(u64),
    /// The value of parameter `i`.
    Param(u16),
    /// The integer parameter `i` points to, of `width` bytes.
    Deref {
        /// The parameter.
        param: u16,
        /// The bytes of the integer.
        width: u8,
    },
    /// The bytes the value of enum parameter `param` selects.
    Of {
        /// The parameter.
        param: u16,
        /// Bytes per value.
        sizes: BTreeMap<i64, u64>,
    },
    /// `(height - 1) * pitch + width` (a 2D copy), from three parameters.
    Rows {
        /// The distance between rows.
        pitch: u16,
        /// The bytes of a row.
        width: u16,
        /// The number of rows.
        height: u16,
    },
}

/// What a function returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetPlan {
    /// Nothing.
    Void,
    /// A number (a status), `size` bytes.
    Value {
        /// Its bytes.
        size: u32,
    },
    /// A `const char *` the library owns (an error's name): its text
    /// crosses, and the client keeps a copy for the caller.
    String,
}

impl RetPlan {
    /// How the server's call returns it.
    pub fn abi(self) -> RetClass {
        match self {
            RetPlan::Void => RetClass::Void,
            RetPlan::Value { .. } | RetPlan::String => RetClass::Integer,
        }
    }
}

/// The status values a library's calls return when they cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statuses {
    /// Success: only then does the client receive what the call wrote (a
    /// failed call leaves its outputs as the caller had them).
    pub success: i64,
    /// The real library could not be loaded (on the server).
    pub library_missing: i64,
    /// The real library lacks the function.
    pub symbol_missing: i64,
    /// The call cannot be sent (unknown roles), or the server is gone.
    pub not_supported: i64,
}

/// Every function of one library in one major.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryPlan {
    /// The library's manifest name (`cudart`).
    pub library: String,
    /// The real file's soname.
    pub soname: String,
    /// Its version node, if its symbols are versioned.
    pub version_node: Option<String>,
    /// The statuses of failed calls, for libraries that return one.
    pub statuses: Option<Statuses>,
    /// The functions, in the manifest's order.
    pub functions: Vec<CallPlan>,
    /// How a handle's pointer mode is told and set, for the parameters it
    /// decides the side of ([`Wire::ByMode`]).
    pub pointer_mode: Option<PointerMode>,
}

/// A library's pointer mode (cuBLAS's `cublasPointerMode_t`): per handle,
/// whether scalars such as a GEMM's alpha are host memory or device
/// addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointerMode {
    /// `status get(handle, int *mode)`: what the server asks.
    pub get: String,
    /// The function index of `status set(handle, int mode)`: what the
    /// client watches (the mode of a handle never set is the host's).
    pub set: u32,
    /// The function index of `status destroy(handle)`: a destroyed
    /// handle's mode is forgotten (its address may come back as another
    /// handle's).
    pub destroy: Option<u32>,
    /// The mode's value for device addresses.
    pub device: i64,
}

/// Everything one major's client and server must agree on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MajorPlan {
    /// The CUDA major.
    pub major: u32,
    /// Its libraries.
    pub libraries: Vec<LibraryPlan>,
}

impl MajorPlan {
    /// A fingerprint of the plan (FNV-1a over its encoding): a client and a
    /// server built from different manifests refuse each other.
    pub fn fingerprint(&self) -> u64 {
        let bytes = postcard::to_stdvec(self).unwrap_or_default();
        bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// The encoding of several majors' plans (a server hands them to its
    /// sessions).
    pub fn encode_all(plans: &[MajorPlan]) -> Vec<u8> {
        postcard::to_stdvec(plans).unwrap_or_default()
    }

    /// Reads what [`MajorPlan::encode_all`] wrote.
    pub fn decode_all(bytes: &[u8]) -> Result<Vec<MajorPlan>, String> {
        postcard::from_bytes(bytes).map_err(|e| e.to_string())
    }

    /// The library and function index of `name` in library `library`.
    pub fn find(&self, library: &str, name: &str) -> Option<(u16, u32)> {
        let (li, lib) = self
            .libraries
            .iter()
            .enumerate()
            .find(|(_, l)| l.library == library)?;
        let fi = lib.functions.iter().position(|f| f.name == name)?;
        Some((u16::try_from(li).ok()?, u32::try_from(fi).ok()?))
    }
}
