//! Finding and opening the real library, and resolving its functions.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::{Shim, candidate};

impl<const N: usize> Shim<N> {
    /// Finds, opens and resolves the real library; on failure, fills every
    /// function with its fallback and keeps why, for the first fallback
    /// called to say.
    pub(crate) fn load(&self) -> Option<PathBuf> {
        let own = own_image();
        let (candidates, searched) = self.candidates();
        let mut refused = Vec::new();
        for path in candidates {
            match self.open(&path, own.as_ref()) {
                Ok(handle) => {
                    self.resolve(handle);
                    self.mirror(handle);
                    return Some(path);
                }
                Err(why) => refused.push(format!("{}: {why}", path.display())),
            }
        }
        for (i, real) in self.real.iter().enumerate() {
            real.store(self.fallback(i).cast_mut(), Ordering::Release);
        }
        let soname = self.spec.soname;
        let mut what = format!("cannot load the real {soname}");
        if refused.is_empty() {
            what.push_str(&format!(" (not found in {searched})"));
        } else {
            what.push_str(&format!(" ({})", refused.join("; ")));
        }
        // Said at the first call that needs the real library (`unavailable`):
        // a shim whose backend implements every function a host calls stays
        // quiet.
        let _ = self.missing.set(format!(
            "{what}; set {}=/full/path/to/{}; every call fails until then",
            self.spec.real_path_var.to_string_lossy(),
            self.real_file_hint()
        ));
        None
    }

    /// How the real library's file is named, for the diagnostic's hint: the
    /// soname for a versioned library, whose every install has a file of
    /// that name (`libcudart.so.12`); else `<stem>.<version>`, as the driver
    /// names its files (`libcuda.so.535.261.03`), whose `libcuda.so.1` may
    /// well be this shim.
    fn real_file_hint(&self) -> String {
        real_file_hint(self.spec.soname, self.spec.version_node.is_some())
    }

    /// Copies every mirrored data object's bytes from the real library into
    /// the shim's own storage: code bound to the shim's copy (another
    /// library's instance of a C++ vtable, typeinfo or template static the
    /// real one exports too) sees the real contents.
    fn mirror(&self, handle: *mut libc::c_void) {
        for d in self.spec.data {
            let real = self.lookup(handle, d.name);
            if real.is_null() || real.cast::<u8>().cast_const() == d.addr {
                continue;
            }
            // SAFETY: `real` is the real library's object of this name, at
            // least `size` bytes (the manifest's size is the real `st_size`);
            // `addr` is the shim's own writable storage of `size` bytes.
            unsafe { std::ptr::copy_nonoverlapping(real.cast::<u8>(), d.addr.cast_mut(), d.size) };
        }
    }

    /// Resolves every function in the real library. A function with no
    /// prototype (a C++ export no header declares: a template instance the
    /// real library shares with others) that this release of it lacks goes
    /// to the same function in another loaded library, as the loader would
    /// have bound it without the shim.
    fn resolve(&self, handle: *mut libc::c_void) {
        for (i, slot) in self.real.iter().enumerate() {
            let mut real = self.lookup(handle, self.spec.names.get(i));
            if real.is_null() && self.spec.tracers[i].0.is_null() {
                real = elsewhere(self.spec.names.get(i));
            }
            let target = if real.is_null() {
                self.fallback(i).cast_mut()
            } else {
                real.cast::<()>()
            };
            slot.store(target, Ordering::Release);
        }
    }

    /// `name` in the library `handle`: `name@node` when the library is
    /// versioned (never another version's function), else the plain name.
    fn lookup(&self, handle: *mut libc::c_void, name: &CStr) -> *mut libc::c_void {
        match self.spec.version_node {
            // SAFETY: `handle` is a live dlopen handle; both strings are NUL-terminated.
            Some(node) => unsafe { libc::dlvsym(handle, name.as_ptr(), node.as_ptr()) },
            // SAFETY: as above.
            None => unsafe { libc::dlsym(handle, name.as_ptr()) },
        }
    }

    /// Opens `path` and checks it is a real library, not this shim.
    fn open(&self, path: &Path, own: Option<&OwnImage>) -> Result<*mut libc::c_void, String> {
        const ITSELF: &str = "it is this shim itself (forwarding to it would loop forever)";
        if let (Some(own), Some(theirs)) = (own, dev_ino(path))
            && own.dev_ino == Some(theirs)
        {
            return Err(ITSELF.to_string());
        }
        // A FIFO would block dlopen forever and a truncated file kill the
        // host with SIGBUS at its first touch: check the headers first.
        candidate::check(
            path,
            &candidate::Expected {
                soname: self.spec.soname,
                version_node: self.spec.version_node,
            },
        )?;
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| "path contains a NUL byte".to_string())?;
        // RTLD_LOCAL keeps the real library out of the global scope, so the
        // host's symbols keep binding to the shim; RTLD_DEEPBIND (a library
        // whose data the shim mirrors) binds the real library's references
        // to its own exports to its own definitions, not the shim's.
        let deep = if self.spec.mirror_data {
            libc::RTLD_DEEPBIND
        } else {
            0
        };
        // SAFETY: a NUL-terminated path.
        let handle =
            unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL | deep) };
        if handle.is_null() {
            // SAFETY: dlerror returns a NUL-terminated message or null.
            let err = unsafe { libc::dlerror() };
            let why = if err.is_null() {
                "dlopen failed".to_string()
            } else {
                unsafe { CStr::from_ptr(err) }
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(why);
        }
        let probe = self.spec.names.iter().find_map(|name| {
            let p = self.lookup(handle, name);
            (!p.is_null()).then_some(p)
        });
        let refuse = |why: String| {
            // SAFETY: the handle came from dlopen above and nothing uses it.
            unsafe { libc::dlclose(handle) };
            Err(why)
        };
        let Some(probe) = probe else {
            return refuse(match self.spec.version_node {
                Some(node) => format!(
                    "exports no function with version {}",
                    node.to_string_lossy()
                ),
                None => "exports none of the library's functions".to_string(),
            });
        };
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads the address.
        if let Some(own) = own
            && unsafe { libc::dladdr(probe, &mut info) } != 0
            && info.dli_fbase == own.base
        {
            return refuse(ITSELF.to_string());
        }
        // Another copy of a shim (a second build, another major's file
        // renamed, a user's shim) would forward back to us: both would loop.
        if carries_shim_note(probe) {
            return refuse(
                "it is a cudastub shim, not the real library (it carries the .note.cudastub marker; \
                 forwarding to it could loop forever)"
                    .to_string(),
            );
        }
        Ok(handle)
    }

    /// The files to try, in order, and a description of where they were looked for.
    ///
    /// The library's override variable (`CUDASTUB_REAL_CUBLAS`), if set, is
    /// the only candidate. Otherwise each directory of the manifest's search
    /// list (`library.search`; `$VAR/dir` entries are skipped while `VAR` is
    /// unset) contributes its files named `<stem>.<digits>[.<digits>…]`,
    /// where the stem is the soname less its number (`libcudart.so`,
    /// `libcuda.so`): first those whose first number is the soname's
    /// (`libcudart.so.12.9.79`, then `libcudart.so.12`), highest first, then
    /// the others, highest first. The others are how the driver's files are
    /// named (`libcuda.so.535.261.03` behind the soname `libcuda.so.1`); for
    /// a runtime they are another major, which the soname check refuses.
    /// Paths stay bytes end to end: a directory whose name is not UTF-8 is
    /// searched as it is. Set-user-ID and other secure-execution processes
    /// see none of these variables (`secure_getenv`).
    fn candidates(&self) -> (Vec<PathBuf>, String) {
        let var = self.spec.real_path_var;
        if let Some(path) = secure_env(var) {
            let path = PathBuf::from(path);
            let named = format!("{}={}", var.to_string_lossy(), path.display());
            return (vec![path], named);
        }
        let dirs: Vec<PathBuf> = self
            .spec
            .search
            .iter()
            .filter_map(|entry| match entry.strip_prefix('$') {
                None => Some(PathBuf::from(entry)),
                Some(rest) => {
                    let (var, dir) = rest.split_once('/')?;
                    let value = CString::new(var).ok().and_then(|v| secure_env(&v))?;
                    Some(Path::new(&value).join(dir))
                }
            })
            .collect();
        let found = dirs
            .iter()
            .flat_map(|dir| files_named_like(dir, self.spec.soname))
            .collect();
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        (found, searched.join(", "))
    }
}

/// The files of `dir` named like the real library of `soname`, in the
/// order they are tried (see [`Shim::candidates`]).
fn files_named_like(dir: &Path, soname: &str) -> Vec<PathBuf> {
    let (stem, major) = soname_parts(soname);
    let mut versioned: Vec<(bool, Vec<u64>, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let version = file_version(name.as_bytes(), stem)?;
            let same_major = version.first().copied() == major;
            Some((same_major, version, e.path()))
        })
        .collect();
    versioned.sort();
    versioned.into_iter().rev().map(|(_, _, p)| p).collect()
}

/// See [`Shim::real_file_hint`].
fn real_file_hint(soname: &str, versioned: bool) -> String {
    match soname_parts(soname) {
        (stem, Some(_)) if !versioned => format!("{}.<version>", String::from_utf8_lossy(stem)),
        _ => soname.to_string(),
    }
}

/// A soname's stem and number: `libcudart.so.12` is (`libcudart.so`,
/// `Some(12)`); a soname with no number is its own stem.
fn soname_parts(soname: &str) -> (&[u8], Option<u64>) {
    match soname.rsplit_once('.') {
        Some((stem, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (stem.as_bytes(), n.parse().ok())
        }
        _ => (soname.as_bytes(), None),
    }
}

/// The numbers of a file named `<stem>.<digits>[.<digits>…]`
/// (`libcuda.so.535.261.03` is `[535, 261, 3]`), or `None`.
fn file_version(name: &[u8], stem: &[u8]) -> Option<Vec<u64>> {
    let rest = name.strip_prefix(stem)?.strip_prefix(b".")?;
    rest.split(|b| *b == b'.')
        .map(|part| {
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            // Digits only, so UTF-8; a number too large to be a version is no version.
            std::str::from_utf8(part).ok()?.parse().ok()
        })
        .collect()
}

/// The shim's own file and load address, to refuse loading itself.
struct OwnImage {
    base: *mut libc::c_void,
    dev_ino: Option<(u64, u64)>,
}

fn own_image() -> Option<OwnImage> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address and fills `info`. This function
    // is linked into the shim, so its address lies in the shim's image.
    if unsafe { libc::dladdr(own_image as *const libc::c_void, &mut info) } == 0
        || info.dli_fname.is_null()
    {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated file name.
    let file = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(OwnImage {
        base: info.dli_fbase,
        dev_ino: dev_ino(Path::new(OsStr::from_bytes(file.to_bytes()))),
    })
}

/// Keeps this shim loaded for the rest of the process (`RTLD_NODELETE`):
/// once initialised it holds the real library's handle, an open trace file
/// and an exit handler, and a host that `dlclose`s and `dlopen`s it again
/// gets this same, initialised copy back instead of a fresh one that would
/// open them all again.
pub(crate) fn pin_own_image() {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: as in `own_image`.
    if unsafe { libc::dladdr(pin_own_image as *const libc::c_void, &mut info) } == 0
        || info.dli_fname.is_null()
    {
        return;
    }
    // SAFETY: the shim's own, already loaded file name; RTLD_NOLOAD only
    // looks it up and raises its flags. The handle is kept on purpose.
    unsafe {
        libc::dlopen(
            info.dli_fname,
            libc::RTLD_LAZY | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
        )
    };
}

/// `true` when the loaded object containing `addr` carries the ELF note of
/// a cudastub shim ([`crate::SHIM_NOTE_NAME`]) in one of its `PT_NOTE`
/// segments, which are mapped with the object.
fn carries_shim_note(addr: *const libc::c_void) -> bool {
    struct Search {
        addr: usize,
        found: bool,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info and our `Search`.
        let (info, search) = unsafe { (&*info, &mut *data.cast::<Search>()) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: the loader's program headers of a loaded object.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        let base = info.dlpi_addr as usize;
        let contains = phdrs.iter().any(|p| {
            let start = base.wrapping_add(p.p_vaddr as usize);
            p.p_type == libc::PT_LOAD
                && search.addr >= start
                && search.addr - start < p.p_memsz as usize
        });
        if !contains {
            return 0;
        }
        search.found = phdrs.iter().filter(|p| p.p_type == libc::PT_NOTE).any(|p| {
            let align = if p.p_align == 8 { 8 } else { 4 };
            // SAFETY: a PT_NOTE segment of a loaded object lies in its mapped
            // PT_LOAD segments (allocated note sections).
            let notes = unsafe {
                std::slice::from_raw_parts(
                    base.wrapping_add(p.p_vaddr as usize) as *const u8,
                    p.p_memsz as usize,
                )
            };
            has_shim_note(notes, align)
        });
        1
    }
    let mut search = Search {
        addr: addr as usize,
        found: false,
    };
    // SAFETY: `visit` matches the callback type and only uses `search`.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut search as *mut Search).cast()) };
    search.found
}

/// `true` when the note entries in `notes` include the shim note.
fn has_shim_note(mut notes: &[u8], align: usize) -> bool {
    let word = |b: &[u8], at: usize| -> Option<usize> {
        let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_ne_bytes(bytes) as usize)
    };
    let pad = |n: usize| n.div_ceil(align) * align;
    while let (Some(namesz), Some(descsz), Some(kind)) =
        (word(notes, 0), word(notes, 4), word(notes, 8))
    {
        let name = notes.get(12..12 + namesz);
        if name == Some(crate::SHIM_NOTE_NAME) && kind == crate::SHIM_NOTE_TYPE as usize {
            return true;
        }
        let next = 12usize
            .saturating_add(pad(namesz))
            .saturating_add(pad(descsz));
        match notes.get(next..) {
            Some(rest) if next > 0 => notes = rest,
            _ => break,
        }
    }
    false
}

fn dev_ino(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

unsafe extern "C" {
    /// glibc 2.17+; the `libc` crate does not declare it.
    fn secure_getenv(name: *const libc::c_char) -> *mut libc::c_char;
}

/// `secure_getenv`, as bytes: unset in set-user-ID and other
/// secure-execution processes; an empty value counts as unset. Paths are
/// never converted to text, so one that is not UTF-8 is used as it is.
pub(crate) fn secure_env(name: &CStr) -> Option<OsString> {
    // SAFETY: a NUL-terminated name; the result is copied before any other
    // environment access.
    let value = unsafe { secure_getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    let bytes = unsafe { CStr::from_ptr(value) }.to_bytes();
    (!bytes.is_empty()).then(|| OsStr::from_bytes(bytes).to_os_string())
}

/// `name` defined in a library loaded after this shim in the global scope
/// (`RTLD_NEXT`), when that is no cudastub shim: a C++ template instance
/// every library that uses it defines alike. Null when there is none.
/// (No `dlopen` here: opening an object the loader is still initialising
/// would run its constructors now, in the middle of this shim's loading.)
fn elsewhere(name: &CStr) -> *mut libc::c_void {
    // SAFETY: a NUL-terminated name; RTLD_NEXT searches the objects after
    // this one (the shim: the runtime is linked into it).
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    if p.is_null() || carries_shim_note(p.cast_const()) {
        return std::ptr::null_mut();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real 535 driver's files (`scripts/fetch-fixtures`): the soname
    /// links and the files they point to, `lib*.so.535.261.03`.
    fn driver_fixtures() -> PathBuf {
        // The workspace's `target/fixtures`, from the crate in the
        // repository or unpacked under `target/check-packages/`.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .flat_map(|a| {
                [
                    a.join("target/fixtures/driver/lib"),
                    a.join("fixtures/driver/lib"),
                ]
            })
            .find(|d| d.join("libcuda.so.535.261.03").is_file())
            .unwrap_or_else(|| Path::new("target/fixtures/driver/lib").to_path_buf());
        assert!(
            dir.join("libcuda.so.535.261.03").is_file(),
            "{} lacks the real driver: run scripts/fetch-fixtures",
            dir.display()
        );
        dir
    }

    /// Issue 20, item 3: the driver and NVML are searched by their real
    /// file names (`libcuda.so.535.261.03`), not only `libcuda.so.1.x.y`:
    /// with the shim installed as `libcuda.so.1` in the driver's directory,
    /// the driver's own file is next, and it passes the checks made before
    /// `dlopen`.
    #[test]
    fn the_driver_is_found_by_its_real_file_name() {
        let dir = driver_fixtures();
        for (soname, real) in [
            ("libcuda.so.1", "libcuda.so.535.261.03"),
            ("libnvidia-ml.so.1", "libnvidia-ml.so.535.261.03"),
        ] {
            let found = files_named_like(&dir, soname);
            assert_eq!(
                found,
                vec![dir.join(soname), dir.join(real)],
                "the soname's own file first, then the driver's"
            );
            let expected = candidate::Expected {
                soname,
                version_node: None,
            };
            assert_eq!(candidate::check(&dir.join(real), &expected), Ok(()));
            let other = if soname == "libcuda.so.1" {
                "libnvidia-ml.so.1"
            } else {
                "libcuda.so.1"
            };
            let wrong = candidate::Expected {
                soname: other,
                version_node: None,
            };
            assert_eq!(
                candidate::check(&dir.join(real), &wrong),
                Err(format!("its soname is {soname}, not {other}"))
            );
        }
    }

    /// The hint names a file that exists: the runtime's soname (every
    /// install has it), the driver's `libcuda.so.<version>`.
    #[test]
    fn the_hint_names_the_real_file() {
        assert_eq!(
            real_file_hint("libcuda.so.1", false),
            "libcuda.so.<version>"
        );
        assert_eq!(
            real_file_hint("libnvidia-ml.so.1", false),
            "libnvidia-ml.so.<version>"
        );
        assert_eq!(real_file_hint("libcudart.so.12", true), "libcudart.so.12");
    }

    #[test]
    fn file_versions() {
        assert_eq!(
            file_version(b"libcuda.so.535.261.03", b"libcuda.so"),
            Some(vec![535, 261, 3])
        );
        assert_eq!(file_version(b"libcuda.so.1", b"libcuda.so"), Some(vec![1]));
        for name in [
            "libcuda.so",
            "libcuda.so.",
            "libcuda.so.1.",
            "libcuda.so.1.bak",
            "libcuda.so.1..2",
            "libcudart.so.12",
        ] {
            assert_eq!(file_version(name.as_bytes(), b"libcuda.so"), None, "{name}");
        }
    }
}
