//! Checking a candidate real library before `dlopen` sees it.
//!
//! `dlopen` trusts the file it is given: it blocks forever opening a FIFO,
//! and it maps a truncated library whole, so that the first touch of a page
//! past the end of the file kills the host with `SIGBUS`, long after
//! `dlopen` returned. So a candidate must be a regular file whose ELF
//! headers describe a shared object of this machine whose `PT_LOAD`
//! segments all lie inside the file, whose soname (where it has one) is the
//! shim's, and which defines the shim's version node where the library is
//! versioned. Only headers are read, with `pread(2)` on a descriptor opened
//! `O_NONBLOCK`: a few hundred bytes, nothing mapped, no wait.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The ELF machine of the shim's own architecture (`None`: not checked).
#[cfg(target_arch = "x86_64")]
const MACHINE: Option<u16> = Some(62);
#[cfg(target_arch = "aarch64")]
const MACHINE: Option<u16> = Some(183);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const MACHINE: Option<u16> = None;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_STRTAB: u64 = 5;
const DT_SONAME: u64 = 14;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;

/// More program headers, dynamic entries or version definitions than any
/// real library has: a header claiming more is corrupt.
const MAX_PHDRS: usize = 256;
const MAX_DYNAMIC: u64 = 64 * 1024;
const MAX_VERDEFS: u64 = 256;
/// The longest soname or version name compared.
const MAX_NAME: usize = 256;

/// What the shim requires of its real library.
pub(crate) struct Expected<'a> {
    /// The soname (`libcudart.so.12`).
    pub(crate) soname: &'a str,
    /// The version node every export carries, for a versioned library.
    pub(crate) version_node: Option<&'a CStr>,
}

/// Checks that `path` is a complete shared library of this machine with the
/// expected soname and version node; the reason when it is not, for the
/// diagnostic (`it is a FIFO`, `it is truncated: …`).
pub(crate) fn check(path: &Path, expected: &Expected<'_>) -> Result<(), String> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| "the path contains a NUL byte".to_string())?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a writable `stat`.
    if unsafe { libc::stat(c_path.as_ptr(), &mut st) } != 0 {
        return Err(crate::sys::strerror(crate::sys::errno()));
    }
    not_regular(st.st_mode)?;
    // SAFETY: as above; O_NONBLOCK keeps a FIFO that replaced the file since
    // the stat from blocking the open, and O_NOCTTY a terminal from becoming
    // the host's controlling terminal.
    let fd = unsafe {
        libc::open(
            c_path.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY,
        )
    };
    if fd < 0 {
        return Err(crate::sys::strerror(crate::sys::errno()));
    }
    let file = File { fd };
    // SAFETY: `fd` is open; `st` is writable.
    if unsafe { libc::fstat(file.fd, &mut st) } != 0 {
        return Err(crate::sys::strerror(crate::sys::errno()));
    }
    not_regular(st.st_mode)?;
    file.check(st.st_size as u64, expected)
}

/// `Err` naming the file type when `mode` is not a regular file's.
fn not_regular(mode: libc::mode_t) -> Result<(), String> {
    let what = match mode & libc::S_IFMT {
        libc::S_IFREG => return Ok(()),
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFDIR => "a directory",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "not a regular file",
    };
    Err(format!("it is {what}, not a library"))
}

/// An open candidate, closed on drop.
struct File {
    fd: i32,
}

impl Drop for File {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, used by nobody else.
        unsafe { libc::close(self.fd) };
    }
}

/// The fields of `Elf64_Phdr` the check needs.
struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

impl File {
    /// `len` bytes at `offset`; `None` when the file has fewer.
    fn read(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let rest = buf.get_mut(done..)?;
            // SAFETY: `rest` is a live, writable buffer of `rest.len()` bytes.
            let n = unsafe {
                libc::pread(
                    self.fd,
                    rest.as_mut_ptr().cast(),
                    rest.len(),
                    i64::try_from(offset.checked_add(done as u64)?).ok()?,
                )
            };
            match n {
                n if n > 0 => done += n as usize,
                n if n < 0 && crate::sys::errno() == libc::EINTR => continue,
                _ => return None,
            }
        }
        Some(buf)
    }

    fn check(&self, size: u64, expected: &Expected<'_>) -> Result<(), String> {
        const NOT_ELF: &str = "it is not an ELF shared library";
        let header = self.read(0, 64).ok_or(NOT_ELF)?;
        if header.get(..4) != Some(b"\x7fELF".as_slice()) {
            return Err(NOT_ELF.into());
        }
        // ELFCLASS64, ELFDATA2LSB, ET_DYN, this machine.
        if header.get(4..6) != Some([2u8, 1].as_slice()) || u16_at(&header, 16) != Some(3) {
            return Err("it is not a 64-bit little-endian ELF shared library".into());
        }
        if MACHINE.is_some_and(|m| u16_at(&header, 18) != Some(m)) {
            return Err("it is a library for another machine".into());
        }
        let phoff = u64_at(&header, 32).ok_or(NOT_ELF)?;
        let phentsize = u16_at(&header, 54).ok_or(NOT_ELF)?;
        let phnum = usize::from(u16_at(&header, 56).ok_or(NOT_ELF)?);
        if phentsize != 56 || phnum == 0 || phnum > MAX_PHDRS {
            return Err("its ELF header is corrupt (program header table)".into());
        }
        let table_end = phoff.checked_add(56 * phnum as u64);
        let table = match table_end {
            Some(end) if end <= size => self.read(phoff, 56 * phnum),
            _ => None,
        }
        .ok_or_else(|| truncated("its program headers", table_end, size))?;
        let segments: Vec<Segment> = table
            .chunks_exact(56)
            .map(|p| Segment {
                kind: u32_at(p, 0).unwrap_or(0),
                offset: u64_at(p, 8).unwrap_or(0),
                vaddr: u64_at(p, 16).unwrap_or(0),
                filesz: u64_at(p, 32).unwrap_or(0),
                memsz: u64_at(p, 40).unwrap_or(0),
            })
            .collect();
        let mut loads = 0;
        for s in segments
            .iter()
            .filter(|s| matches!(s.kind, PT_LOAD | PT_DYNAMIC))
        {
            let end = s.offset.checked_add(s.filesz);
            if end.is_none_or(|end| end > size) {
                return Err(truncated("a segment", end, size));
            }
            if s.kind == PT_LOAD {
                if s.filesz > s.memsz {
                    return Err(
                        "its ELF header is corrupt (a segment larger in the file than in memory)"
                            .into(),
                    );
                }
                loads += 1;
            }
        }
        if loads == 0 {
            return Err("it has no loadable segment".into());
        }
        let dynamic = segments
            .iter()
            .find(|s| s.kind == PT_DYNAMIC)
            .ok_or("it has no dynamic section (not a shared library)")?;
        self.check_dynamic(&segments, dynamic, expected)
    }

    /// Checks the soname and the version definitions named in the dynamic section.
    fn check_dynamic(
        &self,
        segments: &[Segment],
        dynamic: &Segment,
        expected: &Expected<'_>,
    ) -> Result<(), String> {
        let len = dynamic.filesz.min(MAX_DYNAMIC) as usize / 16 * 16;
        let table = self
            .read(dynamic.offset, len)
            .ok_or("its dynamic section cannot be read")?;
        let (mut strtab, mut soname, mut verdef, mut verdefnum) = (None, None, None, 0);
        for entry in table.chunks_exact(16) {
            let (tag, value) = (u64_at(entry, 0).unwrap_or(0), u64_at(entry, 8).unwrap_or(0));
            match tag {
                DT_NULL => break,
                DT_STRTAB => strtab = Some(value),
                DT_SONAME => soname = Some(value),
                DT_VERDEF => verdef = Some(value),
                DT_VERDEFNUM => verdefnum = value,
                _ => {}
            }
        }
        // A virtual address to its offset in the file, inside a PT_LOAD.
        let file_offset = |vaddr: u64| {
            segments
                .iter()
                .filter(|s| s.kind == PT_LOAD)
                .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)
                .map(|s| vaddr - s.vaddr + s.offset)
        };
        let strtab = strtab.and_then(file_offset);
        let string = |offset: u64| -> Option<Vec<u8>> {
            let at = strtab?.checked_add(offset)?;
            let mut bytes = self.read_upto(at, MAX_NAME + 1)?;
            let nul = bytes.iter().position(|b| *b == 0)?;
            bytes.truncate(nul);
            Some(bytes)
        };
        if let Some(offset) = soname {
            let name = string(offset).ok_or("its soname cannot be read")?;
            if name != expected.soname.as_bytes() {
                return Err(format!(
                    "its soname is {}, not {}",
                    String::from_utf8_lossy(&name),
                    expected.soname
                ));
            }
        }
        let Some(node) = expected.version_node else {
            return Ok(());
        };
        let node = node.to_bytes();
        let missing = || {
            format!(
                "it defines no version {} (not this library, or another major)",
                String::from_utf8_lossy(node)
            )
        };
        let mut at = verdef.and_then(file_offset).ok_or_else(missing)?;
        for _ in 0..verdefnum.min(MAX_VERDEFS) {
            // Elf64_Verdef: vd_aux at 12, vd_next at 16; Elf64_Verdaux: vda_name at 0.
            let entry = self.read(at, 20).ok_or_else(missing)?;
            let aux = u32_at(&entry, 12).unwrap_or(0);
            let next = u32_at(&entry, 16).unwrap_or(0);
            let name = at
                .checked_add(u64::from(aux))
                .and_then(|a| self.read(a, 4))
                .and_then(|n| u32_at(&n, 0))
                .and_then(|n| string(u64::from(n)));
            if name.as_deref() == Some(node) {
                return Ok(());
            }
            if next == 0 {
                break;
            }
            at = at.checked_add(u64::from(next)).ok_or_else(missing)?;
        }
        Err(missing())
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the file).
    fn read_upto(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` is a live, writable buffer of `len` bytes.
        let n = unsafe {
            libc::pread(
                self.fd,
                buf.as_mut_ptr().cast(),
                len,
                i64::try_from(offset).ok()?,
            )
        };
        buf.truncate(usize::try_from(n).ok()?);
        Some(buf)
    }
}

/// The reason for a part that ends past the end of the file.
fn truncated(what: &str, end: Option<u64>, size: u64) -> String {
    match end {
        Some(end) => format!(
            "it is truncated or corrupt: {what} ends at byte {end}, the file has {size} (an incomplete copy?)"
        ),
        None => format!("it is corrupt: {what} lies beyond any file"),
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
