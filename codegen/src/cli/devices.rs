//! `cudastub devices DIR`: what a CUDA program would see with DIR (a
//! `dist/N` stand-in) first on its library path, asked of the runtime, the
//! driver and NVML as a program asks them. The tutorial's last step, with
//! no CUDA program, compiler or headers.
//!
//! The libraries are loaded in a child process (this program, run again),
//! for two reasons. `LD_LIBRARY_PATH` is read once, when a process starts,
//! and a real runtime a shim forwards to opens `libcuda.so.1` by name: only
//! a process started with DIR first finds DIR's driver shim, as the
//! program would. And a library that faults takes the child down, not this
//! command, which then says so. In the child each library is opened by its
//! full path in DIR, so nothing else on the machine can stand in for it.
//!
//! Every call's status is printed by name (`CUDA_ERROR_STUB_LIBRARY (34)`),
//! the names from the standard manifests' status enums: a failing driver
//! shim cannot be asked for its own error names.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use cudastub_codegen::catalog::Catalog;
use cudastub_codegen::diag::{Diagnostic, Diagnostics};
use cudastub_codegen::manifest::{Manifest, TypeDef};

use super::output;

/// Set in the child's environment: the child probes, the parent waits.
const CHILD_VARIABLE: &str = "CUDASTUB_DEVICES_CHILD";

/// The most devices listed per library: a stand-in answering a huge count
/// still gets a bounded report.
const MAX_DEVICES: c_int = 16;

unsafe extern "C" {
    fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
}

/// `RTLD_NOW | RTLD_GLOBAL`: global, so that the runtime shim's real
/// runtime, opening `libcuda.so.1` by name, binds to the driver shim
/// already loaded from DIR.
const RTLD_NOW_GLOBAL: c_int = 0x2 | 0x100;

/// `cudastub devices DIR`: runs the probe in a child with DIR first on
/// `LD_LIBRARY_PATH`; in that child, probes. Exit 0 when the probe ran
/// (whatever the calls answered), 2 when it could not.
pub fn devices(dir: &Path) -> Result<u8, Diagnostics> {
    if !dir.is_dir() {
        return Err(Diagnostic::file(dir, "not a directory (a stand-in such as dist/12)").into());
    }
    if std::env::var_os(CHILD_VARIABLE).is_some() {
        return probe(dir);
    }
    let exe = std::env::current_exe()
        .map_err(|e| Diagnostic::file(Path::new("cudastub"), format!("cannot find itself: {e}")))?;
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| Diagnostic::file(dir, format!("cannot read: {e}")))?;
    let mut path = dir.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(old);
    }
    let status = std::process::Command::new(exe)
        .arg("devices")
        .arg(&dir)
        .env("LD_LIBRARY_PATH", path)
        .env(CHILD_VARIABLE, "1")
        .status()
        .map_err(|e| Diagnostic::file(&dir, format!("cannot run the probe: {e}")))?;
    match status.code() {
        Some(code) => Ok(u8::try_from(code).unwrap_or(2)),
        None => {
            use std::os::unix::process::ExitStatusExt as _;
            Err(Diagnostic::file(
                &dir,
                format!(
                    "a library in it crashed the probe (signal {})",
                    status.signal().unwrap_or(0)
                ),
            )
            .into())
        }
    }
}

/// One opened library, and how to name its statuses.
struct Opened {
    handle: *mut c_void,
    /// Status value → name, from the manifest's status enum.
    statuses: BTreeMap<i64, String>,
    /// Every enum constant of the major (`cudaDevAttrComputeCapabilityMajor`).
    constants: BTreeMap<String, i64>,
}

impl Opened {
    /// Opens `file` with the facts of `library`'s `major` in the manifests.
    fn open(file: &Path, catalog: &Catalog, library: &str, major: u32) -> Result<Opened, String> {
        let path = CString::new(file.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: a NUL-terminated path; loading runs the library's
        // constructors, which is what this command is for.
        let handle = unsafe { dlopen(path.as_ptr(), RTLD_NOW_GLOBAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns null or a NUL-terminated string.
            let why = unsafe { dlerror() };
            return Err(if why.is_null() {
                "cannot load it".into()
            } else {
                unsafe { CStr::from_ptr(why) }
                    .to_string_lossy()
                    .into_owned()
            });
        }
        let manifest = catalog.library(library).ok().map(|e| &e.manifest);
        let (statuses, constants) = manifest.map(|m| enums(m, major)).unwrap_or_default();
        Ok(Opened {
            handle,
            statuses,
            constants,
        })
    }

    /// The address of `name`, or `None`.
    fn address(&self, name: &str) -> Option<*mut c_void> {
        let c = CString::new(name).ok()?;
        // SAFETY: a handle from dlopen and a NUL-terminated name.
        let p = unsafe { dlsym(self.handle, c.as_ptr()) };
        (!p.is_null()).then_some(p)
    }

    /// `NAME (value)` for a status.
    fn status(&self, value: i64) -> String {
        match self.statuses.get(&value) {
            Some(name) => format!("{name} ({value})"),
            None => format!("status {value}"),
        }
    }
}

/// The status names and every enum constant of `major` of `m`.
fn enums(m: &Manifest, major: u32) -> (BTreeMap<i64, String>, BTreeMap<String, i64>) {
    let Some(facts) = m.majors.get(&major) else {
        return Default::default();
    };
    let success = m.library.status.as_ref().map(|s| s.success.as_str());
    let mut statuses = BTreeMap::new();
    let mut constants = BTreeMap::new();
    for t in facts.types.values() {
        if let TypeDef::Enum { values, .. } = t {
            if success.is_some_and(|s| values.contains_key(s)) {
                for (name, v) in values {
                    // Aliases share a value: the first name in order stays.
                    statuses.entry(*v).or_insert_with(|| name.clone());
                }
            }
            constants.extend(values.iter().map(|(n, v)| (n.clone(), *v)));
        }
    }
    (statuses, constants)
}

/// The file in `dir` a program would load for `prefix` (`libcudart.so.`):
/// the highest major when several are there.
fn find(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let major = name.strip_prefix(prefix)?.parse().ok()?;
            Some((major, e.path()))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// `char name[len]` as text, up to its NUL.
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Binds `$name` to the function `$name` of `$lib` as `$ty`, or prints
/// that it is missing and runs `$missing`.
macro_rules! function {
    ($out:ident, $lib:expr, $name:literal, $ty:ty, $missing:expr) => {
        match $lib.address($name) {
            // SAFETY: the export of that name has this C prototype in
            // every major (the manifest's).
            Some(p) => unsafe { std::mem::transmute::<*mut c_void, $ty>(p) },
            None => {
                $out.push_str(concat!("  ", $name, ": not exported\n"));
                $missing
            }
        }
    };
}

/// In the child: opens each library of `dir` and prints what it answers.
fn probe(dir: &Path) -> Result<u8, Diagnostics> {
    let catalog = Catalog::standard()?;
    let mut out = String::new();
    let runtime = find(dir, "libcudart.so.");
    let major = runtime
        .as_ref()
        .and_then(|p| p.extension()?.to_str()?.parse().ok())
        .unwrap_or(12);
    // The driver and NVML first: the runtime's real library, if it is
    // loaded, then finds the driver shim by its soname.
    let driver = dir.join("libcuda.so.1");
    let nvml = dir.join("libnvidia-ml.so.1");
    let mut sections = Vec::new();
    for (what, library, file) in [
        ("driver", "cuda", Some(driver)),
        ("NVML", "nvml", Some(nvml)),
        ("runtime", "cudart", runtime),
    ] {
        let mut text = String::new();
        match file.filter(|f| f.is_file()) {
            None => text.push_str(&format!("{what}: no library in {}\n", dir.display())),
            Some(file) => match Opened::open(&file, &catalog, library, major) {
                Err(why) => text.push_str(&format!("{what} {}: {why}\n", file.display())),
                Ok(lib) => {
                    text.push_str(&format!("{what} {}\n", file.display()));
                    match library {
                        "cuda" => driver_calls(&lib, &mut text),
                        "nvml" => nvml_calls(&lib, &mut text),
                        _ => runtime_calls(&lib, &mut text),
                    }
                }
            },
        }
        sections.push((what, text));
    }
    // Printed as a program's user thinks of them: runtime, driver, NVML.
    sections.sort_by_key(|(what, _)| ["runtime", "driver", "NVML"].iter().position(|w| w == what));
    for (_, text) in sections {
        out.push_str(&text);
    }
    output::print(&out)?;
    Ok(0)
}

/// `cudaGetDeviceCount`, then per device its properties and capability.
fn runtime_calls(lib: &Opened, out: &mut String) {
    type Count = unsafe extern "C" fn(*mut c_int) -> c_int;
    type Props = unsafe extern "C" fn(*mut u8, c_int) -> c_int;
    type Attr = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;
    let count = function!(out, lib, "cudaGetDeviceCount", Count, return);
    let mut n: c_int = 0;
    // SAFETY: the prototype of cudaGetDeviceCount.
    let status = unsafe { count(&mut n) };
    out.push_str(&format!(
        "  cudaGetDeviceCount -> {}: {n} device{}\n",
        lib.status(status.into()),
        if n == 1 { "" } else { "s" }
    ));
    if status != 0 {
        return;
    }
    // 12's headers call the `_v2`; 13 has only the plain one. `name` and
    // `totalGlobalMem` sit at the same offsets in CUDA 11's, 12's and 13's
    // `cudaDeviceProp` (0 and 288); 4096 bytes hold any of them.
    let (props_name, props) = match lib.address("cudaGetDeviceProperties_v2") {
        Some(p) => ("cudaGetDeviceProperties_v2", Some(p)),
        None => (
            "cudaGetDeviceProperties",
            lib.address("cudaGetDeviceProperties"),
        ),
    };
    let attribute = lib.address("cudaDeviceGetAttribute");
    for device in 0..n.min(MAX_DEVICES) {
        if let Some(p) = props {
            // SAFETY: the prototype of cudaGetDeviceProperties(_v2).
            let props = unsafe { std::mem::transmute::<*mut c_void, Props>(p) };
            let mut buf = vec![0u8; 4096];
            // SAFETY: a buffer larger than any major's struct.
            let status = unsafe { props(buf.as_mut_ptr(), device) };
            let total = u64::from_ne_bytes(buf[288..296].try_into().unwrap_or_default());
            out.push_str(&format!(
                "  {props_name}(device {device}) -> {}",
                lib.status(status.into())
            ));
            if status == 0 {
                out.push_str(&format!(": {}, {} MiB", text(&buf[..256]), total >> 20));
            }
            out.push('\n');
        }
        if let Some(p) = attribute {
            // SAFETY: the prototype of cudaDeviceGetAttribute.
            let attribute = unsafe { std::mem::transmute::<*mut c_void, Attr>(p) };
            let names = [
                "cudaDevAttrComputeCapabilityMajor",
                "cudaDevAttrComputeCapabilityMinor",
            ];
            // SAFETY: the prototype of cudaDeviceGetAttribute.
            let cc = capability(lib, names, |v, a| unsafe { attribute(v, a, device) });
            out.push_str(&format!(
                "  cudaDeviceGetAttribute(device {device}) -> {cc}\n"
            ));
        }
    }
}

/// The compute capability from an attribute call `get(value, attribute)`
/// of the attributes named `names` (major, minor; their values from the
/// manifest): `CUDA_SUCCESS (0): compute capability 9.0`, or the failing
/// status.
fn capability(lib: &Opened, names: [&str; 2], get: impl Fn(*mut c_int, c_int) -> c_int) -> String {
    let mut parts = [0 as c_int; 2];
    for (i, name) in names.into_iter().enumerate() {
        let Some(&attr) = lib.constants.get(name) else {
            return format!("{name}: unknown attribute");
        };
        let status = get(&mut parts[i], attr as c_int);
        if status != 0 {
            return lib.status(status.into());
        }
    }
    format!(
        "{}: compute capability {}.{}",
        lib.status(0),
        parts[0],
        parts[1]
    )
}

/// `cuInit`, `cuDeviceGetCount`, then per device its name, memory and capability.
fn driver_calls(lib: &Opened, out: &mut String) {
    type Init = unsafe extern "C" fn(c_uint) -> c_int;
    type Count = unsafe extern "C" fn(*mut c_int) -> c_int;
    type Get = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
    type Name = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
    type Total = unsafe extern "C" fn(*mut usize, c_int) -> c_int;
    type Attr = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;
    let init = function!(out, lib, "cuInit", Init, return);
    // SAFETY: the prototype of cuInit.
    let status = unsafe { init(0) };
    out.push_str(&format!("  cuInit -> {}\n", lib.status(status.into())));
    let count = function!(out, lib, "cuDeviceGetCount", Count, return);
    let mut n: c_int = 0;
    // SAFETY: the prototype of cuDeviceGetCount.
    let status = unsafe { count(&mut n) };
    out.push_str(&format!(
        "  cuDeviceGetCount -> {}: {n} device{}\n",
        lib.status(status.into()),
        if n == 1 { "" } else { "s" }
    ));
    if status != 0 {
        return;
    }
    let get = function!(out, lib, "cuDeviceGet", Get, return);
    let name = function!(out, lib, "cuDeviceGetName", Name, return);
    let total = function!(out, lib, "cuDeviceTotalMem_v2", Total, return);
    let attribute = function!(out, lib, "cuDeviceGetAttribute", Attr, return);
    for ordinal in 0..n.min(MAX_DEVICES) {
        let mut device: c_int = 0;
        // SAFETY: the prototypes of the driver's device queries.
        let status = unsafe { get(&mut device, ordinal) };
        if status != 0 {
            out.push_str(&format!(
                "  cuDeviceGet({ordinal}) -> {}\n",
                lib.status(status.into())
            ));
            continue;
        }
        let mut buf = [0u8; 256];
        let status = unsafe { name(buf.as_mut_ptr().cast(), 256, device) };
        out.push_str(&format!(
            "  cuDeviceGetName(device {ordinal}) -> {}",
            lib.status(status.into())
        ));
        if status == 0 {
            out.push_str(&format!(": {}", text(&buf)));
        }
        let mut bytes: usize = 0;
        let status = unsafe { total(&mut bytes, device) };
        out.push_str(&format!(
            "\n  cuDeviceTotalMem_v2(device {ordinal}) -> {}",
            lib.status(status.into())
        ));
        if status == 0 {
            out.push_str(&format!(": {} MiB", bytes >> 20));
        }
        let names = [
            "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR",
            "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR",
        ];
        // SAFETY: the prototype of cuDeviceGetAttribute.
        let cc = capability(lib, names, |v, a| unsafe { attribute(v, a, device) });
        out.push_str(&format!(
            "\n  cuDeviceGetAttribute(device {ordinal}) -> {cc}\n"
        ));
    }
}

/// `nvmlInit_v2`, `nvmlDeviceGetCount_v2`, then per device its name and memory.
fn nvml_calls(lib: &Opened, out: &mut String) {
    type Init = unsafe extern "C" fn() -> c_int;
    type Count = unsafe extern "C" fn(*mut c_uint) -> c_int;
    type Handle = unsafe extern "C" fn(c_uint, *mut *mut c_void) -> c_int;
    type Name = unsafe extern "C" fn(*mut c_void, *mut c_char, c_uint) -> c_int;
    type Memory = unsafe extern "C" fn(*mut c_void, *mut [u64; 3]) -> c_int;
    let init = function!(out, lib, "nvmlInit_v2", Init, return);
    // SAFETY: the prototype of nvmlInit_v2.
    let status = unsafe { init() };
    out.push_str(&format!("  nvmlInit_v2 -> {}\n", lib.status(status.into())));
    let count = function!(out, lib, "nvmlDeviceGetCount_v2", Count, return);
    let mut n: c_uint = 0;
    // SAFETY: the prototype of nvmlDeviceGetCount_v2.
    let status = unsafe { count(&mut n) };
    out.push_str(&format!(
        "  nvmlDeviceGetCount_v2 -> {}: {n} device{}\n",
        lib.status(status.into()),
        if n == 1 { "" } else { "s" }
    ));
    if status != 0 {
        return;
    }
    let handle = function!(out, lib, "nvmlDeviceGetHandleByIndex_v2", Handle, return);
    let name = function!(out, lib, "nvmlDeviceGetName", Name, return);
    let memory = function!(out, lib, "nvmlDeviceGetMemoryInfo", Memory, return);
    for index in 0..n.min(MAX_DEVICES as c_uint) {
        let mut device: *mut c_void = std::ptr::null_mut();
        // SAFETY: the prototypes of NVML's device queries.
        let status = unsafe { handle(index, &mut device) };
        if status != 0 {
            out.push_str(&format!(
                "  nvmlDeviceGetHandleByIndex_v2({index}) -> {}\n",
                lib.status(status.into())
            ));
            continue;
        }
        let mut buf = [0u8; 96];
        let status = unsafe { name(device, buf.as_mut_ptr().cast(), 96) };
        out.push_str(&format!(
            "  nvmlDeviceGetName(device {index}) -> {}",
            lib.status(status.into())
        ));
        if status == 0 {
            out.push_str(&format!(": {}", text(&buf)));
        }
        // nvmlMemory_t: total, free, used.
        let mut mem = [0u64; 3];
        let status = unsafe { memory(device, &mut mem) };
        out.push_str(&format!(
            "\n  nvmlDeviceGetMemoryInfo(device {index}) -> {}",
            lib.status(status.into())
        ));
        if status == 0 {
            out.push_str(&format!(": {} MiB total", mem[0] >> 20));
        }
        out.push('\n');
    }
}
