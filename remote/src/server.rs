//! The GPU server: listens on a Unix socket (created owner-only) or a TCP
//! address (a token required), and runs each client connection in a child
//! process of its own, so that one client's crash or bad input never touches
//! another's GPU state, and a client that goes away takes its contexts and
//! memory with its child.
//!
//! A session (one child) answers calls by the major's [`MajorPlan`]: it
//! loads the real libraries, resolves each function by its exported name
//! (and version node), rebuilds the arguments — values as sent, host memory
//! in buffers of its own, never a client's address — calls the function
//! through [`crate::abi::call`], and sends back what the call wrote.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_void};
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use serde_bytes::ByteBuf;

use crate::abi::{self, ArgClass};
use crate::callback::{FiredList, StandIn};
use crate::mirror;
use crate::plan::{
    CallPlan, Count, Dir, Factor, GraphStep, KernelRef, LibraryPlan, MajorPlan, Wire,
};
use crate::shm::ShmStream;
use crate::wire::{self, Arg, Endpoint, GraphHost, Reply, Request};

/// Writes one diagnostic line to standard error; a closed standard error
/// (the server's terminal gone) never stops a session.
pub fn log(args: std::fmt::Arguments) {
    let _ = writeln!(io::stderr(), "{args}");
}

/// A listening server.
pub enum Listener {
    /// On a Unix socket (removed when dropped).
    Unix(UnixListener, PathBuf),
    /// On TCP.
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `endpoint`. A Unix socket is created with mode 0600 (a stale
    /// socket file at the path is replaced; any other file is an error).
    pub fn bind(endpoint: &Endpoint) -> io::Result<Listener> {
        match endpoint {
            Endpoint::Unix(path) => {
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    use std::os::unix::fs::FileTypeExt;
                    if meta.file_type().is_socket() {
                        std::fs::remove_file(path)?;
                    } else {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("{} exists and is not a socket", path.display()),
                        ));
                    }
                }
                // The socket is created owner-only: no window in which
                // another user could connect.
                // SAFETY: umask only changes this process's file mode mask.
                let old = unsafe { libc::umask(0o177) };
                let bound = UnixListener::bind(path);
                // SAFETY: as above.
                unsafe { libc::umask(old) };
                Ok(Listener::Unix(bound?, path.clone()))
            }
            Endpoint::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr)?)),
        }
    }

    /// The address clients reach (a TCP port of 0 becomes the real one).
    pub fn endpoint(&self) -> io::Result<Endpoint> {
        Ok(match self {
            Listener::Unix(_, p) => Endpoint::Unix(p.clone()),
            Listener::Tcp(l) => Endpoint::Tcp(l.local_addr()?.to_string()),
        })
    }

    /// Accepts connections forever, handing each to `spawn` (which starts
    /// the child that serves it) and reaping children as they end.
    pub fn run(
        &self,
        mut spawn: impl FnMut(std::os::fd::OwnedFd) -> io::Result<std::process::Child>,
    ) -> io::Result<()> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let live = Arc::new(AtomicUsize::new(0));
        loop {
            let accepted: io::Result<std::os::fd::OwnedFd> = match self {
                Listener::Unix(l, _) => l.accept().map(|(s, _)| s.into()),
                Listener::Tcp(l) => l.accept().and_then(|(s, _)| {
                    s.set_nodelay(true)?;
                    crate::client::keep_alive(&s);
                    Ok(s.into())
                }),
            };
            let fd = match accepted {
                Ok(fd) => fd,
                // Out of descriptors or memory for a moment: the server
                // keeps serving, and tries again.
                Err(e) => {
                    log(format_args!("cudastub serve: cannot accept: {e}"));
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
            };
            // A cap on sessions: connections (authenticated or not) cannot
            // make processes without end.
            if live.load(Ordering::Acquire) >= MAX_SESSIONS {
                log(format_args!(
                    "cudastub serve: {MAX_SESSIONS} sessions running: a connection is refused"
                ));
                continue;
            }
            match spawn(fd) {
                Ok(mut child) => {
                    live.fetch_add(1, Ordering::AcqRel);
                    let live = Arc::clone(&live);
                    let waiter = std::thread::Builder::new().spawn(move || {
                        // A session that dies (a real library's fault, a
                        // signal) is said: its client only sees the
                        // connection close.
                        if let Ok(status) = child.wait()
                            && !status.success()
                        {
                            log(format_args!(
                                "cudastub serve: session {} ended: {status}",
                                child.id()
                            ));
                        }
                        live.fetch_sub(1, Ordering::AcqRel);
                    });
                    if let Err(e) = waiter {
                        log(format_args!("cudastub serve: cannot watch a session: {e}"));
                    }
                }
                Err(e) => log(format_args!("cudastub serve: cannot start a session: {e}")),
            }
        }
    }
}

/// Limits how long a read on `socket` waits (`None`: forever).
pub fn receive_timeout(socket: &impl std::os::fd::AsRawFd, limit: Option<std::time::Duration>) {
    let t = limit.unwrap_or_default();
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(t.subsec_micros() as i32),
    };
    // SAFETY: setting a timeval option on a valid socket.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
}

/// The most sessions a server runs at once.
pub const MAX_SESSIONS: usize = 256;

/// How long a new connection has to say hello.
pub const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The plans, in an anonymous in-memory file that every session inherits
/// (nothing on disk to clean up or to be raced for): the file, and the path
/// a session reads them from (`/proc/self/fd/N`, the same `N` in the child).
pub fn share_plans(plans: &[MajorPlan]) -> io::Result<(std::fs::File, PathBuf)> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // Not close-on-exec: the sessions inherit it.
    // SAFETY: a valid C string; the flags are plain.
    let fd = unsafe { libc::memfd_create(c"cudastub-plans".as_ptr(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor this function owns.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(&MajorPlan::encode_all(plans))?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    Ok((file, path))
}

/// What a session needs to know.
pub struct SessionConfig {
    /// The plans the server has, per major.
    pub plans: Vec<MajorPlan>,
    /// Where the real libraries are (else the loader's search).
    pub lib_dir: Option<PathBuf>,
    /// The token a client must give (TCP), if any.
    pub token: Option<String>,
    /// Where module images are kept between sessions (by their hash), if
    /// anywhere.
    pub modules: Option<PathBuf>,
}

/// Module images kept between sessions, each in a file named by its BLAKE3
/// hash, which the server computed itself: a client names an image by
/// hash only after one sent it whole.
pub struct ModuleCache<'a>(pub Option<&'a Path>);

impl ModuleCache<'_> {
    fn path(&self, hash: &[u8; 32]) -> Option<PathBuf> {
        let name: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        self.0.map(|d| d.join(name))
    }

    /// Whether the image of `hash` is held.
    pub fn holds(&self, hash: &[u8; 32]) -> bool {
        self.path(hash).is_some_and(|p| p.is_file())
    }

    /// The image of `hash`.
    pub fn read(&self, hash: &[u8; 32]) -> io::Result<Vec<u8>> {
        std::fs::read(self.existing(hash)?)
    }

    /// The image of `hash`, mapped from its file rather than read: a
    /// session that registers a large library's images (ggml's 200 MB)
    /// copies none of them.
    fn map(&self, hash: &[u8; 32]) -> io::Result<crate::shm::Mapping> {
        let file = std::fs::File::open(self.existing(hash)?)?;
        // Its time is when it was last used: [`ModuleCache::prune`] keeps
        // the most recently used.
        let _ = file.set_modified(std::time::SystemTime::now());
        crate::shm::Mapping::private(&file)
    }

    /// Removes the least recently used images until those left hold at
    /// most `limit` bytes; returns how many were removed and the bytes
    /// left. Run by the server as it starts, before any session: a session
    /// never finds an image it was told is held gone (one it has mapped
    /// stays mapped even so). Files that are not images (other names, a
    /// partial write) are left alone.
    pub fn prune(&self, limit: u64) -> io::Result<(usize, u64)> {
        let Some(dir) = self.0 else {
            return Ok((0, 0));
        };
        let mut images = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let is_image = name.len() == 64
                && name
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
            let meta = entry.metadata()?;
            if is_image && meta.is_file() {
                images.push((meta.modified()?, meta.len(), entry.path()));
            }
        }
        images.sort();
        let mut total: u64 = images.iter().map(|(_, len, _)| len).sum();
        let mut removed = 0;
        for (_, len, path) in images {
            if total <= limit {
                break;
            }
            std::fs::remove_file(&path)?;
            total -= len;
            removed += 1;
        }
        Ok((removed, total))
    }

    fn existing(&self, hash: &[u8; 32]) -> io::Result<PathBuf> {
        self.path(hash)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no module cache"))
    }

    /// Keeps `image` (written whole under another name, then renamed: a
    /// reader never sees part of one).
    pub fn store(&self, image: &[u8]) {
        let hash = *blake3::hash(image).as_bytes();
        let Some(path) = self.path(&hash).filter(|p| !p.is_file()) else {
            return;
        };
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        let written =
            std::fs::write(&partial, image).and_then(|()| std::fs::rename(&partial, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&partial);
            log(format_args!(
                "cudastub serve: cannot keep a module in {}: {e}",
                path.display()
            ));
        }
    }
}

/// The function a session is in, for [`on_fault`]: its name's address and
/// length (names live as long as the session's plans).
static CURRENT: (
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicUsize,
) = (
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
);

fn in_call(name: &str) {
    use std::sync::atomic::Ordering::Relaxed;
    CURRENT.0.store(name.as_ptr() as usize, Relaxed);
    CURRENT.1.store(name.len(), Relaxed);
}

/// A fault in a session (a real library given what crashes it): one line
/// naming the call it was in, then the default action (the parent says the
/// signal; the client sees its connection close).
extern "C" fn on_fault(signal: libc::c_int) {
    use std::sync::atomic::Ordering::Relaxed;
    let (at, len) = (CURRENT.0.load(Relaxed), CURRENT.1.load(Relaxed));
    let line = b"cudastub serve: a session faulted in ";
    // SAFETY: write(2) is async-signal-safe; the name is the plan's, alive.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
        if at != 0 {
            libc::write(2, at as *const libc::c_void, len);
        }
        libc::write(2, b"\n".as_ptr().cast(), 1);
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Installs `on_fault` for the faults a real library may raise.
pub fn say_faults() {
    for signal in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL] {
        // SAFETY: a handler that only writes and re-raises.
        unsafe { libc::signal(signal, on_fault as *const () as libc::sighandler_t) };
    }
}

/// Serves one client on `stream` until it hangs up. Errors are the
/// transport's; a client's bad request is answered with [`Reply::Refused`].
/// `hello_done` is called once the client is welcomed (to lift the time
/// limit its hello had: [`receive_timeout`]). `shared_memory`, on a Unix
/// socket, takes the shared memory a client offers ([`ShmStream::accept`]
/// on the connection, with the rings' capacity): the session then goes on
/// in it.
pub fn session(
    stream: &mut (impl Read + Write),
    config: &SessionConfig,
    hello_done: &mut dyn FnMut(),
    shared_memory: Option<&mut dyn FnMut(u32) -> io::Result<ShmStream>>,
) -> io::Result<()> {
    let hello = match wire::receive_at_most::<Request>(stream, wire::MAX_HELLO) {
        Ok(Some(hello)) => hello,
        Ok(None) => return Ok(()),
        // A hello of another protocol (or not one at all) is told why,
        // in the words every protocol's client reads.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            wire::send(
                stream,
                &Reply::Refused(format!(
                    "not a hello of protocol {}, which this server speaks ({e})",
                    wire::PROTOCOL
                )),
            )?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let plan = match welcome(&hello, config) {
        Ok(plan) => plan,
        Err(why) => {
            wire::send(stream, &Reply::Refused(why))?;
            return Ok(());
        }
    };
    let capacity = match hello {
        Request::Hello { shared_memory, .. } => shared_memory,
        _ => 0,
    };
    let accept = shared_memory.filter(|_| crate::shm::valid_capacity(capacity));
    wire::send(
        stream,
        &Reply::Welcome {
            server: format!("cudastub {}", env!("CARGO_PKG_VERSION")),
            shared_memory: accept.is_some(),
        },
    )?;
    let mut session = Session {
        plan,
        config,
        libs: plan.libraries.iter().map(|_| None).collect(),
        symbols: HashMap::new(),
        kept: Vec::new(),
        kernels: HashMap::new(),
        symbol_of: HashMap::new(),
        deferred: Vec::new(),
        stand_ins: HashMap::new(),
        fired: FiredList::default(),
        mirrors: mirror::Mirrors::default(),
        reads: Vec::new(),
    };
    // The offer is still the hello's: under its time limit.
    if let Some(accept) = accept {
        match accept(capacity) {
            Ok(mut shm) => {
                wire::send(stream, &Reply::SharedMemory(None))?;
                hello_done();
                return session.serve(&mut shm);
            }
            Err(e) => wire::send(stream, &Reply::SharedMemory(Some(e.to_string())))?,
        }
    }
    hello_done();
    session.serve(stream)
}

/// Work for the thread of a client thread other than the first.
enum Work {
    Call(u16, u32, Vec<Arg>, GraphHost),
    Queued(wire::Queued),
}

/// The session, lent to one of its threads for one call.
struct Lent(*mut Session<'static>);
// SAFETY: `Session::serve` lends the session to one thread at a time and
// waits for it to give it back (its answer) before it touches it again.
unsafe impl Send for Lent {}

/// The thread making one client thread's calls (each client thread but
/// the first, whose calls the session's own thread makes).
struct Worker {
    work: std::sync::mpsc::Sender<(Lent, Work)>,
    done: std::sync::mpsc::Receiver<Option<Reply>>,
}

impl Worker {
    fn start(thread: u32) -> io::Result<Worker> {
        let (work, jobs) = std::sync::mpsc::channel::<(Lent, Work)>();
        let (answer, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("cudastub-t{thread}"))
            .spawn(move || {
                while let Ok((lent, work)) = jobs.recv() {
                    // SAFETY: lent for this call alone (see `Lent`).
                    let session = unsafe { &mut *lent.0 };
                    let reply = match work {
                        Work::Call(library, function, args, host) => {
                            Some(session.call(library, function, args, host))
                        }
                        Work::Queued(call) => {
                            session.queued(call);
                            None
                        }
                    };
                    if answer.send(reply).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker { work, done })
    }
}

impl Session<'_> {
    /// Does `work` on the thread of client thread `thread`: this one for
    /// the first (0), else a thread of the session's own for it, started
    /// at its first call. `Err`: why it cannot be done.
    fn on_thread(
        &mut self,
        workers: &mut HashMap<u32, Worker>,
        thread: u32,
        work: Work,
    ) -> Result<Option<Reply>, String> {
        if thread == 0 {
            return Ok(match work {
                Work::Call(library, function, args, host) => {
                    Some(self.call(library, function, args, host))
                }
                Work::Queued(call) => {
                    self.queued(call);
                    None
                }
            });
        }
        if thread >= wire::MAX_THREADS {
            return Err(format!(
                "client thread {thread}: a session serves {} threads",
                wire::MAX_THREADS
            ));
        }
        let worker = match workers.entry(thread) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                Worker::start(thread)
                    .map_err(|e| format!("no thread for client thread {thread}: {e}"))?,
            ),
        };
        let lent = Lent(std::ptr::from_mut(self).cast::<Session<'static>>());
        worker
            .work
            .send((lent, work))
            .map_err(|_| format!("the thread of client thread {thread} is gone"))?;
        worker
            .done
            .recv()
            .map_err(|_| format!("the thread of client thread {thread} is gone"))
    }

    /// Answers the client's requests on `stream` until it hangs up.
    fn serve(&mut self, stream: &mut (impl Read + Write)) -> io::Result<()> {
        let session = self;
        let mut workers = HashMap::new();
        while let Some(request) = wire::receive::<Request>(stream)? {
            let reply = match request {
                Request::Hello { .. } => Reply::Refused("a second hello".into()),
                Request::KernelParams { kernel, value } => session.kernel_params(kernel, value),
                Request::Call {
                    library,
                    function,
                    args,
                    thread,
                    host,
                } => match session
                    .on_thread(
                        &mut workers,
                        thread,
                        Work::Call(library, function, args, host),
                    )
                    .unwrap_or_else(|why| Some(Reply::Refused(why)))
                    .unwrap_or_else(|| Reply::Refused("no answer".into()))
                {
                    Reply::Return {
                        value,
                        string,
                        outputs,
                        ..
                    } => session.answer(value, string, outputs),
                    other => other,
                },
                Request::HasModule(hash) => Reply::HasModule(session.modules().holds(&hash)),
                Request::Poll => session.answer(0, None, Vec::new()),
                Request::ThreadEnded(thread) => {
                    // Its thread ends once it has made the calls it was
                    // given (its channel closed).
                    workers.remove(&thread);
                    continue;
                }
                Request::Queued(calls) => {
                    for call in calls {
                        let (library, function) = (call.library, call.function);
                        if let Err(why) =
                            session.on_thread(&mut workers, call.thread, Work::Queued(call))
                        {
                            log(format_args!("a queued call refused: {why}"));
                            session.refused_queued(library, function);
                        }
                    }
                    continue;
                }
            };
            wire::send(stream, &reply)?;
        }
        Ok(())
    }
}

impl Session<'_> {
    /// The answer to a call that returned `value` (with `string` and
    /// `outputs`), with what every answer carries: the queued calls'
    /// failures, the host functions that ran — taken first: a graph before
    /// one on its stream has run too, and its bytes come with them — and
    /// the host memory graphs use and wrote.
    fn answer(
        &mut self,
        value: u64,
        string: Option<ByteBuf>,
        outputs: Vec<(u16, ByteBuf)>,
    ) -> Reply {
        let callbacks = std::mem::take(
            &mut *self
                .fired
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let writes = self.finished_writes();
        Reply::Return {
            value,
            string,
            outputs,
            deferred: std::mem::take(&mut self.deferred),
            callbacks,
            mirrors: self.mirrors.take_told(),
            writes,
            reads: std::mem::take(&mut self.reads),
        }
    }
}

/// One client's state in its session.
struct Session<'a> {
    plan: &'a MajorPlan,
    config: &'a SessionConfig,
    /// Each library, once loaded (or why it could not be).
    libs: Vec<Option<Loaded>>,
    /// The client's symbols (host addresses of kernel stubs and device
    /// variables) and the server's addresses standing in for them.
    symbols: HashMap<u64, u64>,
    /// What the real libraries keep pointers to for the session's life:
    /// module images, their wrappers, the stand-in symbols.
    kept: Vec<Buffer>,
    /// The parameter sizes of each kernel the client asked about: a launch's
    /// arguments must be exactly these.
    kernels: HashMap<(KernelRef, u64), Vec<u32>>,
    /// Handles looked up for a symbol (`__cudaGetKernel`): the symbol's
    /// stand-in address, by handle.
    symbol_of: HashMap<u64, u64>,
    /// The first failure of a queued call per library, since the last
    /// answer.
    deferred: Vec<wire::Deferred>,
    /// The stand-ins of the client's callbacks, by the client's number:
    /// never freed, as the libraries may call one until the process ends
    /// (a host function still queued when the client goes away; a user
    /// object's destructor as the context is torn down). A child serves one
    /// session, so nothing accumulates beyond it.
    stand_ins: HashMap<u64, &'static StandIn>,
    /// Their calls since the last answer.
    fired: FiredList,
    /// The client's host memory that graphs read and write.
    mirrors: mirror::Mirrors,
    /// What executable graphs made since the last answer read, for the
    /// client.
    reads: Vec<(u64, Vec<(u64, u64)>)>,
}

/// The address given for a symbol the client never registered: registered
/// with nothing, so the real runtime answers as for an unknown kernel.
static UNREGISTERED: [u64; 8] = [0; 8];

/// Bytes the stand-in of one symbol has (the runtime may write a managed
/// variable's address there).
const SYMBOL_BYTES: usize = 64;

fn welcome<'a>(hello: &Request, config: &'a SessionConfig) -> Result<&'a MajorPlan, String> {
    let Request::Hello {
        protocol,
        token,
        major,
        fingerprint,
        ..
    } = hello
    else {
        return Err("the first message must be a hello".into());
    };
    if *protocol != wire::PROTOCOL {
        return Err(format!(
            "protocol {protocol}, but this server speaks {}",
            wire::PROTOCOL
        ));
    }
    if let Some(expected) = &config.token
        && !same_token(expected.as_bytes(), token.as_bytes())
    {
        return Err("wrong token".into());
    }
    let plan = config
        .plans
        .iter()
        .find(|p| p.major == *major)
        .ok_or_else(|| format!("this server has no CUDA {major} libraries"))?;
    if plan.fingerprint() != *fingerprint {
        return Err(format!(
            "the client's CUDA {major} manifests differ from the server's: use one cudastub version on both sides"
        ));
    }
    Ok(plan)
}

/// Compares tokens in time independent of where they differ.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// A real library, loaded (or why it could not be).
type Loaded = Result<*mut c_void, String>;

/// Loads the real library: from `dir` first, then by the loader's search
/// (a toolkit directory has the runtime and cuBLAS, the system the driver
/// and NVML).
fn load(lib: &LibraryPlan, dir: Option<&Path>) -> Loaded {
    let mut tried = Vec::new();
    let candidates = dir
        .map(|d| d.join(&lib.soname))
        .into_iter()
        .chain(std::iter::once(PathBuf::from(&lib.soname)));
    for path in candidates {
        let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
            tried.push(format!("{}: not a valid path", path.display()));
            continue;
        };
        // SAFETY: dlopen with a valid C string.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if !handle.is_null() {
            return Ok(handle);
        }
        tried.push(dl_error());
    }
    Err(tried.join("; "))
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a valid C string.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown dlopen error".into()
    } else {
        // SAFETY: non-null, NUL-terminated.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

fn symbol(handle: *mut c_void, name: &str, version: Option<&str>) -> Option<*const c_void> {
    let name = CString::new(name).ok()?;
    // SAFETY: a handle from dlopen and valid C strings.
    let f = unsafe {
        match version {
            Some(v) => {
                let v = CString::new(v).ok()?;
                libc::dlvsym(handle, name.as_ptr(), v.as_ptr())
            }
            None => libc::dlsym(handle, name.as_ptr()),
        }
    };
    (!f.is_null()).then_some(f as *const c_void)
}

fn returned(value: i64) -> Reply {
    Reply::Return {
        value: value as u64,
        string: None,
        outputs: Vec::new(),
        deferred: Vec::new(),
        callbacks: Vec::new(),
        mirrors: Vec::new(),
        writes: Vec::new(),
        reads: Vec::new(),
    }
}

impl Session<'_> {
    fn modules(&self) -> ModuleCache<'_> {
        ModuleCache(self.config.modules.as_deref())
    }

    /// Makes a queued call; keeps its failure (its status when that is not
    /// the library's success, the "not supported" status for a refusal)
    /// unless one of its library is kept already.
    fn queued(&mut self, call: wire::Queued) {
        let wire::Queued {
            library,
            function,
            args,
            host,
            ..
        } = call;
        let statuses = self
            .plan
            .libraries
            .get(usize::from(library))
            .and_then(|l| l.statuses.as_ref());
        let failed = match self.call(library, function, args, host) {
            Reply::Return { value, .. } => statuses
                .filter(|s| value != s.success as u64)
                .map(|_| value),
            Reply::Refused(why) => {
                log(format_args!("a queued call refused: {why}"));
                statuses.map(|s| s.not_supported as u64)
            }
            _ => None,
        };
        if let Some(value) = failed {
            self.keep_failure(library, function, value);
        }
    }

    /// A queued call refused before it was made: reported as the
    /// library's "not supported".
    fn refused_queued(&mut self, library: u16, function: u32) {
        let statuses = self
            .plan
            .libraries
            .get(usize::from(library))
            .and_then(|l| l.statuses.as_ref());
        if let Some(value) = statuses.map(|s| s.not_supported as u64) {
            self.keep_failure(library, function, value);
        }
    }

    /// Keeps a queued call's failure, unless one of its library is kept.
    fn keep_failure(&mut self, library: u16, function: u32, value: u64) {
        if !self.deferred.iter().any(|d| d.library == library) {
            self.deferred.push(wire::Deferred {
                library,
                function,
                value,
            });
        }
    }

    /// Puts the stand-in of the client's callback (argument `at`, the
    /// client's number for it) and its data pointer (argument `data`) in
    /// `args`. A null callback stays null.
    fn stand_in(
        &mut self,
        args: &mut [Arg],
        at: usize,
        data: u16,
        params: &[u32],
        data_at: u16,
    ) -> Result<(), String> {
        let id = match args.get(at) {
            Some(Arg::Null) => {
                args[at] = Arg::Value(ByteBuf::from(0u64.to_le_bytes().to_vec()));
                return Ok(());
            }
            Some(Arg::Value(b)) => u64::from_le_bytes(
                <[u8; 8]>::try_from(b.as_slice())
                    .map_err(|_| format!("a callback's number of {} bytes", b.len()))?,
            ),
            Some(other) => return Err(format!("a {} for a callback", arg_kind(other))),
            None => return Err("no callback argument".into()),
        };
        let data = usize::from(data);
        if data >= args.len() || data == at {
            return Err(format!("no data parameter {data}"));
        }
        let stand_in = match self.stand_ins.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => *e.get(),
            std::collections::hash_map::Entry::Vacant(e) => *e.insert(Box::leak(StandIn::new(
                id,
                params,
                data_at,
                self.fired.clone(),
            )?)),
        };
        if !stand_in.fits(params, data_at) {
            return Err(format!("callback {id} sent before with another shape"));
        }
        args[at] = Arg::Value(ByteBuf::from(stand_in.function().to_le_bytes().to_vec()));
        args[data] = Arg::Value(ByteBuf::from(stand_in.data().to_le_bytes().to_vec()));
        Ok(())
    }

    /// The handle of library `index`, loading it the first time.
    fn library(&mut self, index: usize) -> Result<*mut c_void, String> {
        let (lib, dir) = (&self.plan.libraries[index], self.config.lib_dir.as_deref());
        // Loaded once per session; a library that cannot be is said once.
        let loaded = self.libs[index].get_or_insert_with(|| {
            let loaded = load(lib, dir);
            if let Err(e) = &loaded {
                log(format_args!("cudastub serve: {}: {e}", lib.soname));
            }
            loaded
        });
        loaded.clone()
    }

    /// The function `name` of the library named `library` (`cudart`).
    fn function(&mut self, library: &str, name: &str) -> Result<*const c_void, String> {
        let index = self
            .plan
            .libraries
            .iter()
            .position(|l| l.library == library)
            .ok_or_else(|| format!("no {library} library"))?;
        let handle = self.library(index)?;
        let lib = &self.plan.libraries[index];
        symbol(handle, name, lib.version_node.as_deref())
            .ok_or_else(|| format!("{} has no {name}", lib.soname))
    }

    /// The sizes of a kernel's parameters, from the driver
    /// (`cuFuncGetParamInfo`, `cuKernelGetParamInfo`: driver 12.4 and later).
    fn kernel_params(&mut self, kernel: KernelRef, value: u64) -> Reply {
        match self.param_sizes(kernel, value) {
            Ok(sizes) => {
                self.kernels.insert((kernel, value), sizes.clone());
                Reply::ParamSizes(Some(sizes))
            }
            Err(why) => {
                log(format_args!("cudastub serve: a kernel's parameters: {why}"));
                Reply::ParamSizes(None)
            }
        }
    }

    fn param_sizes(&mut self, kernel: KernelRef, value: u64) -> Result<Vec<u32>, String> {
        match self.param_sizes_of(kernel, value) {
            // CUDA 12's runtime hands out kernel handles the driver does
            // not know (`__cudaGetKernel`): asked by the symbol instead.
            Err(_) if kernel == KernelRef::Kernel && self.symbol_of.contains_key(&value) => {
                let symbol = self.symbol_of[&value];
                let client = self
                    .symbols
                    .iter()
                    .find_map(|(c, s)| (*s == symbol).then_some(*c))
                    .ok_or("a kernel handle of no registered symbol")?;
                self.param_sizes_of(KernelRef::Symbol, client)
            }
            r => r,
        }
    }

    fn param_sizes_of(&mut self, kernel: KernelRef, value: u64) -> Result<Vec<u32>, String> {
        type ParamInfo = unsafe extern "C" fn(u64, usize, *mut usize, *mut usize) -> i32;
        type FuncBySymbol = unsafe extern "C" fn(*mut u64, u64) -> i32;
        let func = match kernel {
            KernelRef::Symbol => {
                let address = *self
                    .symbols
                    .get(&value)
                    .ok_or_else(|| format!("{value:#x} is no registered kernel"))?;
                let by_symbol = self.function("cudart", "cudaGetFuncBySymbol")?;
                // SAFETY: `cudaError_t cudaGetFuncBySymbol(cudaFunction_t *, const void *)`.
                let by_symbol: FuncBySymbol = unsafe { std::mem::transmute(by_symbol) };
                let mut f = 0u64;
                // SAFETY: a valid output and a registered symbol's stand-in.
                let rc = unsafe { by_symbol(&mut f, address) };
                if rc != 0 {
                    return Err(format!("cudaGetFuncBySymbol returned {rc}"));
                }
                f
            }
            KernelRef::Kernel | KernelRef::Function => value,
        };
        let name = match kernel {
            KernelRef::Kernel => "cuKernelGetParamInfo",
            KernelRef::Symbol | KernelRef::Function => "cuFuncGetParamInfo",
        };
        let info = self.function("cuda", name)?;
        // SAFETY: `CUresult cuFuncGetParamInfo(CUfunction, size_t, size_t *, size_t *)`
        // (and the same for `CUkernel`).
        let info: ParamInfo = unsafe { std::mem::transmute(info) };
        in_call(name);
        let mut sizes = Vec::new();
        // CUDA_ERROR_INVALID_VALUE: the index is past the last parameter.
        const PAST_THE_LAST: i32 = 1;
        for i in 0..4096 {
            let (mut offset, mut size) = (0usize, 0usize);
            // SAFETY: valid outputs; an index past the last is an error return.
            match unsafe { info(func, i, &mut offset, &mut size) } {
                0 => sizes
                    .push(u32::try_from(size).map_err(|_| "a parameter over 4 GiB".to_string())?),
                PAST_THE_LAST => return Ok(sizes),
                rc => return Err(format!("{name} returned {rc}")),
            }
        }
        Err("a kernel of over 4096 parameters".into())
    }

    fn call(&mut self, library: u16, function: u32, mut args: Vec<Arg>, host: GraphHost) -> Reply {
        // Module images: read back when named; kept when sent whole to a
        // parameter that is an image (a registration), not any bytes.
        let takes_image = self
            .plan
            .libraries
            .get(usize::from(library))
            .and_then(|l| l.functions.get(function as usize))
            .map(|f| {
                f.params
                    .iter()
                    .map(|p| p.wire == Wire::Image)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        // Cached images named by hash, mapped: by argument.
        let mut mapped: HashMap<usize, Buffer> = HashMap::new();
        for (i, arg) in args.iter_mut().enumerate() {
            match arg {
                Arg::Image { bytes, .. }
                    if bytes.len() >= crate::client::MODULE_CACHE_MIN
                        && takes_image.get(i) == Some(&true) =>
                {
                    self.modules().store(bytes);
                }
                Arg::Module { hash, .. } if takes_image.get(i) == Some(&true) => {
                    match self.modules().map(hash) {
                        Ok(m) => {
                            mapped.insert(i, Buffer::Mapped(m));
                        }
                        Err(e) => return Reply::Refused(format!("a module image not held: {e}")),
                    }
                }
                _ => {}
            }
        }
        let plan = self.plan;
        let Some(lib) = plan.libraries.get(usize::from(library)) else {
            return Reply::Refused(format!("no library {library}"));
        };
        let Some(f) = lib.functions.get(function as usize) else {
            return Reply::Refused(format!("no function {function} in {}", lib.library));
        };
        if let Some(why) = &f.unsupported {
            return Reply::Refused(format!("{} cannot be sent: {why}", f.name));
        }
        let statuses = lib.statuses.as_ref();
        let handle = match self.library(usize::from(library)) {
            Ok(h) => h,
            Err(e) => {
                return match statuses {
                    Some(s) => returned(s.library_missing),
                    None => Reply::Refused(format!("{} cannot be loaded: {e}", lib.soname)),
                };
            }
        };
        let Some(fp) = symbol(handle, &f.name, lib.version_node.as_deref()) else {
            return match statuses {
                Some(s) => returned(s.symbol_missing),
                None => Reply::Refused(format!("{} has no {}", lib.soname, f.name)),
            };
        };
        // The client's callbacks: the library gets a stand-in of the
        // session's in each one's place, and the stand-in as its data.
        for (i, p) in f.params.iter().enumerate() {
            if let Wire::Callback {
                data,
                params,
                data_at,
            } = &p.wire
                && let Err(why) = self.stand_in(&mut args, i, *data, params, *data_at)
            {
                return Reply::Refused(format!("{} `{}`: {why}", f.name, p.name));
            }
        }
        // From here on, the real libraries run for this call.
        in_call(&f.name);
        if let Some(mode) = &lib.pointer_mode
            && let Err(why) = check_pointer_mode(f, &args, mode, handle, lib)
        {
            return Reply::Refused(format!("{}: {why}", f.name));
        }
        // Memory whose side the address says (`cudaMemcpyDefault`): the
        // server's device memory by its driver's word, else the client's
        // host memory.
        let planned = f;
        let mut addressed: Option<CallPlan> = None;
        if f.params.iter().zip(&args).any(|(p, a)| match a {
            Arg::Probed { .. } => matches!(p.wire, Wire::Sided { .. } | Wire::Addressed { .. }),
            Arg::Value(_) => by_address_side(f, p, &args).is_some(),
            _ => false,
        }) {
            match self.by_address(f, &mut args) {
                Ok(m) => addressed = Some(m),
                Err(why) => return Reply::Refused(format!("{}: {why}", f.name)),
            }
        }
        let f = addressed.as_ref().unwrap_or(f);
        // A copy a stream capture records reads or writes host memory
        // each time the graph runs: the client's memory is not this
        // process's, so the graph copies from or to a mirror of the
        // session's (see `mirror`). What any other call reads as it runs (a
        // launch's configuration, a stream attribute, a scalar a pointer
        // mode puts on the host) is sent as ever.
        let mut made: Option<CallPlan> = None;
        let ptsz = f.name.ends_with("_ptsz");
        if let Some(stream) = f.stream
            && let Some(GraphStep::StreamCopy { buffers }) = f.graph
            && f.params.iter().zip(&args).enumerate().any(|(i, (p, a))| {
                buffers >> i & 1 == 1
                    && !matches!(p.wire, Wire::ByMode { .. } | Wire::ByDescriptor { .. })
                    && matches!(a, Arg::Bytes(_) | Arg::Out(_))
            })
            && let Ok(stream) = integer_arg(f, &args, stream)
            && let Some(capture) = self.capture_id(&lib.library, stream, ptsz)
        {
            match self.mirror_args(f, &mut args, &host.at, library, capture, buffers) {
                Ok(m) => made = Some(m),
                Err(why) => return Reply::Refused(format!("{}: {why}", f.name)),
            }
        }
        // A graph's launch: first the client's bytes now, for the mirrors
        // graphs read.
        if let Some(GraphStep::Launch { .. }) = f.graph {
            self.mirrors.refresh(&host.refresh);
        }
        // A descriptor's scalars: host memory or a device address, and as
        // long, as the descriptor says now (the real library's answer).
        if f.params
            .iter()
            .any(|p| matches!(p.wire, Wire::ByDescriptor { .. }))
        {
            match by_descriptor(made.as_ref().unwrap_or(f), &mut args, handle, lib) {
                Ok(r) => made = Some(r),
                Err(why) => return Reply::Refused(format!("{}: {why}", f.name)),
            }
        }
        let f = made.as_ref().unwrap_or(f);
        // A graph's copy node from or to host memory would keep the
        // address of this call's copy of it, gone when the call returns.
        if f.graph == Some(GraphStep::CopyNode)
            && planned.params.iter().zip(&args).any(|(p, a)| {
                matches!(p.wire, Wire::Sided { .. } | Wire::Addressed { .. })
                    && matches!(a, Arg::Bytes(_) | Arg::Out(_))
            })
        {
            return Reply::Refused(format!(
                "{}: a graph's copy node from or to host memory (not sent yet: only copies captured from a stream are)",
                f.name
            ));
        }
        // The handles a graph's step names, read before the call.
        let step_values: Vec<Option<u64>> = match f.graph {
            // The capture the call ends.
            Some(GraphStep::EndCapture { .. }) => vec![
                f.stream
                    .and_then(|i| integer_arg(f, &args, i).ok())
                    .and_then(|stream| self.capture_id(&lib.library, stream, ptsz)),
            ],
            Some(GraphStep::Instantiate { graph, .. } | GraphStep::Clone { graph, .. }) => {
                vec![integer_arg(f, &args, graph).ok()]
            }
            Some(GraphStep::AddChild { graph, child }) => vec![
                integer_arg(f, &args, graph).ok(),
                integer_arg(f, &args, child).ok(),
            ],
            Some(GraphStep::ExecChild { exec, child }) => vec![
                integer_arg(f, &args, exec).ok(),
                integer_arg(f, &args, child).ok(),
            ],
            Some(GraphStep::DestroyGraph { graph }) => vec![integer_arg(f, &args, graph).ok()],
            Some(GraphStep::DestroyExec { exec }) => vec![integer_arg(f, &args, exec).ok()],
            Some(GraphStep::Update { exec, graph }) => vec![
                integer_arg(f, &args, exec).ok(),
                integer_arg(f, &args, graph).ok(),
            ],
            Some(GraphStep::Launch { exec, stream }) => vec![
                integer_arg(f, &args, exec).ok(),
                integer_arg(f, &args, stream).ok(),
            ],
            _ => Vec::new(),
        };
        // An executable graph's child node set anew: which host memory the
        // node copied before is not followed.
        if let (Some(GraphStep::ExecChild { .. }), [Some(exec), Some(child)]) =
            (f.graph, step_values.as_slice())
            && (self.mirrors.exec_uses_any(*exec) || self.mirrors.graph_uses_any(*child))
        {
            return Reply::Refused(format!(
                "{}: a child graph node set anew in an executable graph whose graphs copy host memory (not followed)",
                f.name
            ));
        }
        let success = statuses.map(|s| s.success as u64);
        // The symbol a handle is looked up for (`__cudaGetKernel`'s
        // kernel stub), for the handle's parameter sizes when the driver
        // does not know it by itself (CUDA 12's runtime).
        let symbol = f
            .params
            .iter()
            .zip(&args)
            .find_map(|(p, a)| match (&p.wire, a) {
                (Wire::Symbol { .. }, Arg::Symbol(client)) => self.symbols.get(client).copied(),
                _ => None,
            });
        let reply = match invoke(
            f,
            fp,
            Received { args, mapped },
            success,
            &mut self.symbols,
            &mut self.kept,
            &self.kernels,
        ) {
            Ok(reply) => reply,
            Err(why) => Reply::Refused(format!("{}: {why}", f.name)),
        };
        if let (Some(symbol), Reply::Return { value, outputs, .. }) = (symbol, &reply)
            && success == Some(*value)
        {
            for (_, bytes) in outputs {
                if let Ok(handle) = <[u8; 8]>::try_from(bytes.as_slice()) {
                    self.symbol_of.insert(u64::from_le_bytes(handle), symbol);
                }
            }
        }
        if let (Some(step), Reply::Return { value, outputs, .. }) = (f.graph, &reply) {
            let ok = success == Some(*value);
            self.graph_step(step, ok, &step_values, outputs, library, &f.name);
        }
        reply
    }

    /// Follows a graph's life for its mirrors (see `mirror`): a call of
    /// step `step` of library `library` returned (`ok`: successfully) with
    /// `outputs`; `values` are the handles it named, as `Session::call`
    /// read them before the call.
    #[allow(clippy::too_many_arguments)]
    fn graph_step(
        &mut self,
        step: GraphStep,
        ok: bool,
        values: &[Option<u64>],
        outputs: &[(u16, ByteBuf)],
        library: u16,
        name: &str,
    ) {
        let output = |i: u16| {
            outputs
                .iter()
                .find(|(j, _)| *j == i)
                .and_then(|(_, b)| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map(u64::from_le_bytes)
        };
        match (step, values) {
            // `values`: the capture's id.
            (GraphStep::EndCapture { graph }, [Some(capture)]) => {
                self.mirrors.ended(*capture, output(graph).filter(|_| ok));
            }
            (GraphStep::Instantiate { exec, .. }, [Some(graph)]) if ok => {
                if let Some(exec) = output(exec) {
                    self.mirrors.instantiated(exec, *graph);
                    self.reads.push((exec, self.mirrors.reads_of(exec)));
                }
            }
            (GraphStep::Update { .. }, [Some(exec), Some(graph)]) if ok => {
                self.mirrors.instantiated(*exec, *graph);
                self.reads.push((*exec, self.mirrors.reads_of(*exec)));
            }
            (GraphStep::Clone { clone, .. }, [Some(graph)]) if ok => {
                if let Some(clone) = output(clone) {
                    self.mirrors.cloned(*graph, clone);
                }
            }
            (GraphStep::AddChild { .. }, [Some(graph), Some(child)]) if ok => {
                self.mirrors.nested(*graph, *child);
            }
            (GraphStep::DestroyGraph { .. }, [Some(graph)]) if ok => {
                self.mirrors.graph_destroyed(*graph);
            }
            (GraphStep::DestroyExec { .. }, [Some(exec)]) if ok => {
                self.mirrors.exec_destroyed(*exec);
            }
            (GraphStep::Reset, _) if ok => self.mirrors.context_gone(),
            (GraphStep::Launch { .. }, [Some(exec), Some(stream)]) if ok => {
                let lib = self.plan.libraries[usize::from(library)].library.clone();
                let ptsz = name.ends_with("_ptsz");
                // A graph launched into a capture is a child node of the
                // capture's graph: its copies are that graph's, run when
                // it runs (no event of this launch's).
                if let Some(capture) = self.capture_id(&lib, *stream, ptsz) {
                    self.mirrors.launched_in_capture(capture, *exec);
                    return;
                }
                if !self.mirrors.writes_any(*exec) {
                    return;
                }
                let Some(names) = event_functions(&lib, ptsz) else {
                    return;
                };
                let (Ok(create), Ok(record)) = (
                    self.function(&lib, names.create),
                    self.function(&lib, names.record),
                ) else {
                    return;
                };
                type Create = unsafe extern "C" fn(*mut u64, libc::c_uint) -> libc::c_int;
                type Record = unsafe extern "C" fn(u64, u64) -> libc::c_int;
                // SAFETY: `status create(event *, unsigned flags)` and
                // `status record(event, stream)`, the runtime's and the
                // driver's alike.
                let (create, record) = unsafe {
                    (
                        std::mem::transmute::<*const c_void, Create>(create),
                        std::mem::transmute::<*const c_void, Record>(record),
                    )
                };
                // Timing disabled: `cudaEventDisableTiming`, `CU_EVENT_DISABLE_TIMING`.
                const NO_TIMING: libc::c_uint = 2;
                let _relaxed = self.relax(&lib);
                let mut handle = 0u64;
                // SAFETY: our own output; then an event of ours and the
                // client's stream (a handle of this session).
                if unsafe { create(&mut handle, NO_TIMING) } == 0 {
                    if unsafe { record(handle, *stream) } == 0 {
                        self.mirrors
                            .launched(*exec, mirror::Event { library, handle });
                    } else if let Some(destroy) = self
                        .function(&lib, names.destroy)
                        .ok()
                        // SAFETY: `status destroy(event)`.
                        .map(|d| unsafe { std::mem::transmute::<*const c_void, Destroy>(d) })
                    {
                        // SAFETY: our event, never recorded.
                        unsafe { destroy(handle) };
                    }
                }
            }
            _ => {}
        }
    }

    /// The id of the capture stream `stream` of library `lib` is in, if it
    /// is being captured (`…StreamGetCaptureInfo`: the stream, the status
    /// and the id come first in every version; the later outputs, where a
    /// version has them, are given as null).
    fn capture_id(&mut self, lib: &str, stream: u64, ptsz: bool) -> Option<u64> {
        let name = match (lib, ptsz) {
            ("cudart", false) => "cudaStreamGetCaptureInfo",
            ("cudart", true) => "cudaStreamGetCaptureInfo_ptsz",
            ("cuda", false) => "cuStreamGetCaptureInfo",
            ("cuda", true) => "cuStreamGetCaptureInfo_ptsz",
            _ => return None,
        };
        let get = self.function(lib, name).ok()?;
        type Get = unsafe extern "C" fn(
            u64,
            *mut libc::c_int,
            *mut u64,
            *mut c_void,
            *mut c_void,
            *mut c_void,
            *mut c_void,
        ) -> libc::c_int;
        // SAFETY: as above: extra arguments past a version's last are
        // ignored (x86-64 System V), and null where a version reads them.
        let get = unsafe { std::mem::transmute::<*const c_void, Get>(get) };
        let (mut status, mut id) = (0, 0u64);
        let null = std::ptr::null_mut();
        // SAFETY: our own outputs; the client's stream.
        let rc = unsafe { get(stream, &mut status, &mut id, null, null, null, null) };
        // `…StreamCaptureStatusActive`.
        (rc == 0 && status == 1).then_some(id)
    }

    /// This thread in the relaxed stream-capture mode of library `lib`
    /// (`…ThreadExchangeStreamCaptureMode`) while the guard lives: the
    /// session's own calls (an event's, memory's) while the client's thread
    /// captures would otherwise be refused, and end its capture.
    fn relax(&mut self, lib: &str) -> Relaxed {
        let name = match lib {
            "cudart" => "cudaThreadExchangeStreamCaptureMode",
            "cuda" => "cuThreadExchangeStreamCaptureMode",
            _ => return Relaxed(None, 0),
        };
        let Ok(exchange) = self.function(lib, name) else {
            return Relaxed(None, 0);
        };
        // SAFETY: `status exchange(mode *)`, both libraries'.
        let exchange = unsafe { std::mem::transmute::<*const c_void, Exchange>(exchange) };
        // `cudaStreamCaptureModeRelaxed`, `CU_STREAM_CAPTURE_MODE_RELAXED`.
        let mut mode: libc::c_int = 2;
        // SAFETY: our own in-out value.
        if unsafe { exchange(&mut mode) } == 0 {
            Relaxed(Some(exchange), mode)
        } else {
            Relaxed(None, 0)
        }
    }

    /// `f` as this call makes it: each argument whose side the address
    /// says (a `cudaMemcpyDefault` copy's) is a device address where the
    /// server's driver says it is device memory of its own, else the
    /// client's host memory — the bytes the client read there for one the
    /// call reads, which must be all of them, or room for one it writes.
    /// The client's address is never taken for host memory of the
    /// server's.
    fn by_address(&mut self, f: &CallPlan, args: &mut [Arg]) -> Result<CallPlan, String> {
        // `CUresult cuPointerGetAttribute(void *data, CUpointer_attribute,
        // CUdeviceptr)`.
        type Get = unsafe extern "C" fn(*mut c_void, libc::c_int, u64) -> libc::c_int;
        let get = self
            .function("cuda", "cuPointerGetAttribute")
            .ok()
            // SAFETY: as above.
            .map(|g| unsafe { std::mem::transmute::<*const c_void, Get>(g) });
        // `CU_POINTER_ATTRIBUTE_MEMORY_TYPE`; `CU_MEMORYTYPE_DEVICE`,
        // `_ARRAY` and `_UNIFIED` (`_HOST` is host memory of the server's:
        // never the client's to name).
        const MEMORY_TYPE: libc::c_int = 2;
        let on_device = |address: u64| {
            get.is_some_and(|get| {
                let mut kind: libc::c_uint = 0;
                // SAFETY: our own output, four bytes as the attribute is;
                // the driver only looks the address up.
                let rc = unsafe { get((&raw mut kind).cast(), MEMORY_TYPE, address) };
                rc == 0 && matches!(kind, 2..=4)
            })
        };
        // (A lookup, but not one to disturb a capture going on.)
        let _relaxed = self.relax("cuda");
        let mut made = f.clone();
        for i in 0..made.params.len() {
            let name = made.params[i].name.clone();
            let host = match (by_address_side(f, &made.params[i], args), &args[i]) {
                (Some(host), _) => host?,
                (None, Arg::Probed { .. }) if matches!(made.params[i].wire, Wire::Sided { .. }) => {
                    return Err(format!(
                        "`{name}`: an address and its bytes where the side is not the address's"
                    ));
                }
                (None, _) => continue,
            };
            let (wire, arg) = match &args[i] {
                // Not the client's memory (it could not read it): the
                // server's device memory, or refused.
                Arg::Value(v) => {
                    let address = <[u8; 8]>::try_from(v.as_slice())
                        .map(u64::from_le_bytes)
                        .map_err(|_| format!("`{name}`: an address of {} bytes", v.len()))?;
                    if !on_device(address) {
                        return Err(format!(
                            "`{name}`: {address:#x} is neither memory the client could read nor device memory of the server's"
                        ));
                    }
                    made.params[i].wire = Wire::Value;
                    continue;
                }
                Arg::Probed { address, .. } if on_device(*address) => {
                    return Err(format!(
                        "`{name}`: {address:#x} is both memory of the client's and device memory of the server's (two processes' unified addresses met)"
                    ));
                }
                Arg::Probed { bytes, .. } => {
                    let Wire::Host {
                        dir, elem, count, ..
                    } = &host
                    else {
                        return Err(format!("`{name}`: no host side"));
                    };
                    let want = expected_len(f, *elem, count, args)?;
                    let arg = match dir {
                        Dir::Out => Arg::Out(want),
                        Dir::In | Dir::InOut if bytes.len() as u64 == want => {
                            Arg::Bytes(bytes.clone())
                        }
                        Dir::In | Dir::InOut => {
                            return Err(format!(
                                "`{name}`: neither device memory of the server's nor {want} bytes of host memory the client could read ({} were)",
                                bytes.len()
                            ));
                        }
                    };
                    (host, arg)
                }
                // Null: as the host side says (checked with the call).
                _ => continue,
            };
            made.params[i].wire = wire;
            args[i] = arg;
        }
        Ok(made)
    }

    /// `f` as stream capture `capture` records it: each host memory
    /// argument (a copy's source or destination) in a mirror of the
    /// session's, named by the client's address for it (`at`), checked as
    /// `invoke` would.
    fn mirror_args(
        &mut self,
        f: &CallPlan,
        args: &mut [Arg],
        at: &[(u16, u64)],
        library: u16,
        capture: u64,
        buffers: u64,
    ) -> Result<CallPlan, String> {
        let lib = self.plan.libraries[usize::from(library)].library.clone();
        let register = match lib.as_str() {
            "cudart" => self.function(&lib, "cudaHostRegister").ok(),
            "cuda" => self.function(&lib, "cuMemHostRegister_v2").ok(),
            _ => None,
        };
        let mut made = f.clone();
        for i in 0..made.params.len() {
            let p = &made.params[i];
            if buffers >> i & 1 == 0
                || matches!(p.wire, Wire::ByMode { .. } | Wire::ByDescriptor { .. })
                || !matches!(args[i], Arg::Bytes(_) | Arg::Out(_))
            {
                continue;
            }
            check_arg(f, &f.params[i], &args[i], args, &self.kernels)
                .map_err(|why| format!("argument {i} (`{}`): {why}", p.name))?;
            let client = at
                .iter()
                .find(|(j, _)| usize::from(*j) == i)
                .map(|(_, a)| *a)
                .ok_or_else(|| {
                    format!(
                        "`{}`: host memory in a stream capture, with no address of the client's",
                        p.name
                    )
                })?;
            let (len, bytes, sides) = match &args[i] {
                // Read; or (a 2D copy's destination) written, with the
                // bytes between its rows read.
                Arg::Bytes(b) => (
                    b.len(),
                    Some(b.to_vec()),
                    (true, p.wire.host_dir() == Some(Dir::InOut)),
                ),
                Arg::Out(n) => (
                    usize::try_from(*n)
                        .ok()
                        .filter(|n| *n <= wire::MAX_PAYLOAD)
                        .ok_or_else(|| format!("`{}`: an output of {n} bytes", p.name))?,
                    None,
                    (false, true),
                ),
                _ => continue,
            };
            let _relaxed = self.relax(&lib);
            let server =
                self.mirrors
                    .mirror(client, len, sides, bytes.as_deref(), capture, |len| {
                        host_memory(register, len)
                    })?;
            made.params[i].wire = Wire::Value;
            args[i] = Arg::Value(ByteBuf::from(server.to_le_bytes().to_vec()));
        }
        Ok(made)
    }

    /// The bytes graphs that have run wrote to mirrors, for the client;
    /// the events no mirror waits for any more are destroyed.
    fn finished_writes(&mut self) -> Vec<(u64, ByteBuf)> {
        let libraries = self.mirrors.pending_libraries();
        if libraries.is_empty() {
            return Vec::new();
        }
        type Query = unsafe extern "C" fn(u64) -> libc::c_int;
        let mut queries: HashMap<u16, (String, Query, Query)> = HashMap::new();
        for library in libraries {
            let lib = self.plan.libraries[usize::from(library)].library.clone();
            if let Some(names) = event_functions(&lib, false)
                && let (Ok(q), Ok(d)) = (
                    self.function(&lib, names.query),
                    self.function(&lib, names.destroy),
                )
            {
                // SAFETY: `status query(event)` and `status destroy(event)`,
                // both libraries'.
                let (q, d) = unsafe {
                    (
                        std::mem::transmute::<*const c_void, Query>(q),
                        std::mem::transmute::<*const c_void, Query>(d),
                    )
                };
                queries.insert(library, (lib, q, d));
            }
        }
        // `cudaErrorNotReady`, `CUDA_ERROR_NOT_READY`; the stream-capture
        // errors (900 to 910: asked while a capture goes on) say nothing
        // of the event.
        const NOT_READY: libc::c_int = 600;
        let mut out = Vec::new();
        for (library, (lib, query, destroy)) in queries {
            let _relaxed = self.relax(&lib);
            let (writes, finished) = self.mirrors.writes(|e| {
                if e.library != library {
                    return None;
                }
                // SAFETY: an event of ours.
                match unsafe { query(e.handle) } {
                    0 => Some(true),
                    NOT_READY | 900..=910 => None,
                    _ => Some(false),
                }
            });
            for e in finished {
                // SAFETY: an event of ours that nothing waits for.
                unsafe { destroy(e.handle) };
            }
            out.extend(writes);
        }
        out
    }
}

/// The functions that make, record, query and destroy an event.
struct EventFunctions {
    create: &'static str,
    record: &'static str,
    query: &'static str,
    destroy: &'static str,
}

/// [`EventFunctions`] of library `library` (the runtime or the driver),
/// recording on the per-thread default stream (`ptsz`) or not.
fn event_functions(library: &str, ptsz: bool) -> Option<EventFunctions> {
    Some(match library {
        "cudart" => EventFunctions {
            create: "cudaEventCreateWithFlags",
            record: if ptsz {
                "cudaEventRecord_ptsz"
            } else {
                "cudaEventRecord"
            },
            query: "cudaEventQuery",
            destroy: "cudaEventDestroy",
        },
        "cuda" => EventFunctions {
            create: "cuEventCreate",
            record: if ptsz {
                "cuEventRecord_ptsz"
            } else {
                "cuEventRecord"
            },
            query: "cuEventQuery",
            destroy: "cuEventDestroy_v2",
        },
        _ => return None,
    })
}

/// `status exchange(mode *)`: `…ThreadExchangeStreamCaptureMode`.
type Exchange = unsafe extern "C" fn(*mut libc::c_int) -> libc::c_int;
/// `status destroy(event)`.
type Destroy = unsafe extern "C" fn(u64) -> libc::c_int;

/// A thread's stream-capture mode made relaxed, and the one to put back
/// (see `Session::relax`).
struct Relaxed(Option<Exchange>, libc::c_int);

impl Drop for Relaxed {
    fn drop(&mut self) {
        if let Some(exchange) = self.0 {
            // SAFETY: as `Session::relax` found it: the mode as it was.
            unsafe { exchange(&mut self.1) };
        }
    }
}

/// `len` bytes (whole pages) of host memory of the session's own, for a
/// mirror: never freed (a graph may read it until the process ends), page-
/// locked by the library where it can be (`register`: `status
/// register(void *, size_t, unsigned flags)`), which a device reset undoes
/// without freeing it.
fn host_memory(register: Option<*const c_void>, len: usize) -> Option<*mut u8> {
    let mut p: *mut c_void = std::ptr::null_mut();
    // SAFETY: a valid output for posix_memalign.
    if unsafe { libc::posix_memalign(&mut p, 4096, len) } != 0 {
        return None;
    }
    if let Some(register) = register {
        // SAFETY: `cudaHostRegister` / `cuMemHostRegister_v2`, as named.
        let register: unsafe extern "C" fn(*mut c_void, usize, libc::c_uint) -> libc::c_int =
            unsafe { std::mem::transmute(register) };
        // SAFETY: `len` bytes of ours; a failure leaves them pageable.
        unsafe { register(p, len, 0) };
    }
    Some(p.cast())
}

/// Host memory of the server's own, aligned for any C type: allocated, or
/// a cached module image mapped from its file (page-aligned; no copy).
enum Buffer {
    Heap(Vec<u128>, usize),
    Mapped(crate::shm::Mapping),
}

impl Buffer {
    fn new(len: usize) -> Buffer {
        Buffer::Heap(vec![0u128; len.div_ceil(16)], len)
    }
    fn from_bytes(bytes: &[u8]) -> Buffer {
        let mut b = Buffer::new(bytes.len());
        b.bytes_mut().copy_from_slice(bytes);
        b
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            // SAFETY: the Vec holds at least `len` bytes; u8 has no alignment.
            Buffer::Heap(v, len) => unsafe {
                std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), *len)
            },
            // SAFETY: a private writable mapping of `len()` bytes, owned here.
            Buffer::Mapped(m) => unsafe { std::slice::from_raw_parts_mut(m.base(), m.len()) },
        }
    }
    fn address(&self) -> u64 {
        match self {
            Buffer::Heap(v, _) => v.as_ptr() as u64,
            Buffer::Mapped(m) => m.base() as u64,
        }
    }
}

/// A call's arguments as they came, and the cached module images the
/// arguments named by hash, mapped (by argument).
struct Received {
    args: Vec<Arg>,
    mapped: HashMap<usize, Buffer>,
}

/// A module image's argument: its address, or its wrapper's (made here,
/// pointing at it) when it came in one; both go to `images`.
fn image_value(wrapper: Option<(u32, u32)>, image: Buffer, images: &mut Vec<Buffer>) -> Vec<u8> {
    let mut address = image.address();
    images.push(image);
    if let Some((magic, version)) = wrapper {
        let mut w = Vec::with_capacity(24);
        w.extend_from_slice(&magic.to_le_bytes());
        w.extend_from_slice(&version.to_le_bytes());
        w.extend_from_slice(&address.to_le_bytes());
        w.extend_from_slice(&0u64.to_le_bytes());
        let wrapped = Buffer::from_bytes(&w);
        address = wrapped.address();
        images.push(wrapped);
    }
    address.to_le_bytes().to_vec()
}

/// Rebuilds the arguments of `f`, calls it, and collects what it wrote.
fn invoke(
    f: &CallPlan,
    fp: *const c_void,
    received: Received,
    success: Option<u64>,
    symbols: &mut HashMap<u64, u64>,
    kept: &mut Vec<Buffer>,
    kernels: &HashMap<(KernelRef, u64), Vec<u32>>,
) -> Result<Reply, String> {
    let Received { args, mut mapped } = received;
    if args.len() != f.params.len() {
        return Err(format!(
            "{} arguments for {} parameters",
            args.len(),
            f.params.len()
        ));
    }
    // Every argument as the plan says it must be, before anything is used:
    // host memory exactly as long as the other arguments say, a copy's side
    // as its kind says, a launch's arguments as the kernel's parameters.
    for (i, (p, arg)) in f.params.iter().zip(&args).enumerate() {
        check_arg(f, p, arg, &args, kernels)
            .map_err(|why| format!("argument {i} (`{}`): {why}", p.name))?;
    }
    let mut buffers: Vec<Option<Buffer>> = Vec::with_capacity(args.len());
    let mut values: Vec<Vec<u8>> = Vec::with_capacity(args.len());
    // What each parameter's argument turned out to be, for the outputs.
    let mut wires: Vec<&Wire> = Vec::with_capacity(args.len());
    // Memory the call reads and nobody keeps (launch arguments).
    let mut call_scratch: Vec<Buffer> = Vec::new();
    // Module images (and wrappers): kept only by a registration.
    let mut images: Vec<Buffer> = Vec::new();
    for (i, (p, arg)) in f.params.iter().zip(args).enumerate() {
        // A sided parameter is host memory or a value, as the client sent it.
        let wire = match (&p.wire, &arg) {
            (Wire::Sided { .. } | Wire::ByMode { .. } | Wire::Addressed { .. }, Arg::Value(_)) => {
                &Wire::Value
            }
            (
                Wire::Sided { host, .. } | Wire::ByMode { host, .. } | Wire::Addressed { host },
                _,
            ) => host.as_ref(),
            (w, _) => w,
        };
        wires.push(wire);
        // Host memory of the server's own: the argument is its address.
        let buffer = match (wire, &arg) {
            (Wire::Host { dir, .. }, Arg::Bytes(bytes)) if *dir != Dir::Out => {
                Some(Buffer::from_bytes(bytes))
            }
            // The struct, pointed at the server's copies of its arrays.
            (Wire::Host { nested, .. }, Arg::WithParts { bytes, parts }) => {
                let mut b = Buffer::from_bytes(bytes);
                for (n, part) in nested.iter().zip(parts) {
                    let at = n.at as usize;
                    let address = if part.is_empty() {
                        0
                    } else {
                        let copy = Buffer::from_bytes(part);
                        let address = copy.address();
                        call_scratch.push(copy);
                        address
                    };
                    b.bytes_mut()[at..at + 8].copy_from_slice(&address.to_le_bytes());
                }
                Some(b)
            }
            (Wire::InString { .. }, Arg::Bytes(bytes)) if bytes.last() == Some(&0) => {
                Some(Buffer::from_bytes(bytes))
            }
            (Wire::OutString { .. }, Arg::Out(8)) => Some(Buffer::new(8)),
            (Wire::Host { dir, .. }, Arg::Out(len)) if *dir == Dir::Out => {
                let len = usize::try_from(*len)
                    .ok()
                    .filter(|l| *l <= wire::MAX_FRAME)
                    .ok_or_else(|| format!("`{}`: an output of {len} bytes", p.name))?;
                Some(Buffer::new(len))
            }
            _ => None,
        };
        let value = match (wire, arg, &buffer) {
            (_, _, Some(b)) => b.address().to_le_bytes().to_vec(),
            (Wire::Symbol { registers }, Arg::Symbol(client), None) => {
                let address = match symbols.get(&client) {
                    Some(a) => *a,
                    None if *registers => {
                        let stand_in = Buffer::new(SYMBOL_BYTES);
                        let a = stand_in.address();
                        kept.push(stand_in);
                        symbols.insert(client, a);
                        a
                    }
                    None => UNREGISTERED.as_ptr() as u64,
                };
                address.to_le_bytes().to_vec()
            }
            // A registration keeps pointing into the image (and its
            // wrapper): then both live as long as the session.
            (Wire::Image, Arg::Image { wrapper, bytes }, None) => {
                image_value(wrapper, Buffer::from_bytes(&bytes), &mut images)
            }
            (Wire::Image, Arg::Module { wrapper, .. }, None) => {
                let image = mapped
                    .remove(&i)
                    .ok_or("a module image by hash, not mapped")?;
                image_value(wrapper, image, &mut images)
            }
            (Wire::KernelArgs { .. }, Arg::KernelArgs(list), None) => {
                // Each argument's copy, and the array of their addresses.
                let copies: Vec<Buffer> = list.iter().map(|b| Buffer::from_bytes(b)).collect();
                let pointers: Vec<u8> = copies
                    .iter()
                    .flat_map(|c| c.address().to_le_bytes())
                    .collect();
                // Never a dangling pointer, even for no arguments.
                let array = if pointers.is_empty() {
                    Buffer::new(8)
                } else {
                    Buffer::from_bytes(&pointers)
                };
                let address = array.address();
                call_scratch.extend(copies);
                call_scratch.push(array);
                address.to_le_bytes().to_vec()
            }
            (
                Wire::KernelNode {
                    func,
                    kernel,
                    args: at,
                    ..
                },
                Arg::KernelNode { bytes, args: list },
                None,
            ) => {
                // The struct, pointed at the server's stand-in for the
                // kernel and its copies of the arguments (the library copies
                // them into the node).
                let mut node = Buffer::from_bytes(&bytes);
                let (func, at) = (*func as usize, *at as usize);
                if *kernel == KernelRef::Symbol {
                    let client = u64::from_le_bytes(
                        node.bytes_mut()[func..func + 8]
                            .try_into()
                            .unwrap_or([0; 8]),
                    );
                    let server = symbols
                        .get(&client)
                        .copied()
                        .unwrap_or(UNREGISTERED.as_ptr() as u64);
                    node.bytes_mut()[func..func + 8].copy_from_slice(&server.to_le_bytes());
                }
                let array = if list.is_empty() {
                    0
                } else {
                    let copies: Vec<Buffer> = list.iter().map(|b| Buffer::from_bytes(b)).collect();
                    let pointers: Vec<u8> = copies
                        .iter()
                        .flat_map(|c| c.address().to_le_bytes())
                        .collect();
                    let array = Buffer::from_bytes(&pointers);
                    let address = array.address();
                    call_scratch.extend(copies);
                    call_scratch.push(array);
                    address
                };
                node.bytes_mut()[at..at + 8].copy_from_slice(&array.to_le_bytes());
                let address = node.address();
                call_scratch.push(node);
                address.to_le_bytes().to_vec()
            }
            (Wire::LaunchExtra, Arg::Bytes(packed), None) => {
                // `CU_LAUNCH_PARAM_BUFFER_POINTER`, its copy,
                // `CU_LAUNCH_PARAM_BUFFER_SIZE`, its size, `CU_LAUNCH_PARAM_END`.
                // (Never a dangling pointer, even for no arguments.)
                let copy = if packed.is_empty() {
                    Buffer::new(8)
                } else {
                    Buffer::from_bytes(&packed)
                };
                let size = Buffer::from_bytes(&(packed.len() as u64).to_le_bytes());
                let list: Vec<u8> = [1, copy.address(), 2, size.address(), 0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                let list = Buffer::from_bytes(&list);
                let address = list.address();
                call_scratch.extend([copy, size, list]);
                address.to_le_bytes().to_vec()
            }
            (
                Wire::Symbol { .. }
                | Wire::Image
                | Wire::KernelArgs { .. }
                | Wire::KernelNode { .. }
                | Wire::LaunchExtra,
                Arg::Null,
                None,
            ) => {
                vec![0; 8]
            }
            (Wire::Value | Wire::Callback { .. }, Arg::Value(bytes), None)
                if bytes.len() == p.size as usize =>
            {
                bytes.into_vec()
            }
            (Wire::Host { .. } | Wire::InString { .. }, Arg::Null, None) => vec![0; 8],
            (_, arg, None) => {
                return Err(format!(
                    "argument {i} (`{}`): a {} where the plan has no place for one",
                    p.name,
                    arg_kind(&arg)
                ));
            }
        };
        buffers.push(buffer);
        values.push(widen(p, value));
    }
    let call_args: Vec<(ArgClass, &[u8])> = f
        .params
        .iter()
        .zip(&values)
        .map(|(p, v)| (p.abi.clone(), v.as_slice()))
        .collect();
    // SAFETY: the plan was made from the function's prototype; every pointer
    // argument points into `buffers`, alive until after the call.
    let raw = unsafe { abi::call(fp, &call_args, f.ret.abi()) }.map_err(|e| e.to_string())?;
    // Only the return type's own bytes of the register are its value.
    let value = match f.ret {
        crate::plan::RetPlan::Value { size } if size < 8 => raw & ((1u64 << (size * 8)) - 1),
        _ => raw,
    };
    let string = match f.ret {
        crate::plan::RetPlan::String if value != 0 => {
            // SAFETY: the function returns a NUL-terminated string.
            let s = unsafe { CStr::from_ptr(value as *const libc::c_char) };
            Some(ByteBuf::from(s.to_bytes().to_vec()))
        }
        _ => None,
    };
    let mut outputs = Vec::new();
    // A failed call's outputs are not the caller's business: the real
    // library may not have touched them, and neither does the client.
    let failed =
        matches!(f.ret, crate::plan::RetPlan::Value { .. }) && success.is_some_and(|s| value != s);
    for (i, (wire, buffer)) in wires.iter().zip(buffers.iter_mut()).enumerate() {
        match (wire, buffer) {
            (
                Wire::Host {
                    dir,
                    elem,
                    addresses,
                    ..
                },
                Some(b),
            ) if *dir != Dir::In && !failed => {
                let mut bytes = b.bytes_mut().to_vec();
                // An address of this process's means nothing to the client:
                // sent as null.
                if *elem > 0 && !addresses.is_empty() {
                    for element in bytes.chunks_mut(*elem as usize) {
                        for &at in addresses {
                            if let Some(field) = element.get_mut(at as usize..at as usize + 8) {
                                field.fill(0);
                            }
                        }
                    }
                }
                outputs.push((i as u16, ByteBuf::from(bytes)));
            }
            // The text of the string the call pointed at (nothing for null;
            // also when it failed: `cuGetErrorString` sets null then).
            (Wire::OutString { .. }, Some(b)) => {
                let mut at = [0u8; 8];
                at.copy_from_slice(&b.bytes_mut()[..8]);
                let at = u64::from_le_bytes(at);
                let text = if at == 0 {
                    Vec::new()
                } else {
                    // SAFETY: the library set it to a NUL-terminated string.
                    unsafe { CStr::from_ptr(at as *const libc::c_char) }
                        .to_bytes_with_nul()
                        .to_vec()
                };
                outputs.push((i as u16, ByteBuf::from(text)));
            }
            _ => {}
        }
    }
    // A registration keeps pointers to what it was given (the kernel's
    // name, for a lookup at first launch): those live as long as the session.
    if f.keeps_arguments {
        kept.extend(buffers.into_iter().flatten());
        kept.append(&mut images);
    }
    Ok(Reply::Return {
        value,
        string,
        outputs,
        deferred: Vec::new(),
        callbacks: Vec::new(),
        mirrors: Vec::new(),
        writes: Vec::new(),
        reads: Vec::new(),
    })
}

/// `f` as this call makes it: each scalar whose side a descriptor's pointer
/// mode says ([`Wire::ByDescriptor`]) becomes host memory of its scale
/// type's size, from the bytes the client read there, or a device address,
/// as the real library says the descriptor is now; the client's address is
/// never used as one of this process's.
fn by_descriptor(
    f: &CallPlan,
    args: &mut [Arg],
    dl: *mut c_void,
    lib: &LibraryPlan,
) -> Result<CallPlan, String> {
    let mut made = f.clone();
    for (i, p) in made.params.iter_mut().enumerate() {
        let Wire::ByDescriptor {
            desc,
            get,
            mode,
            host_modes,
            scale,
            sizes,
        } = &p.wire
        else {
            continue;
        };
        let most = p.wire.probe_len();
        let (address, bytes) = match &args[i] {
            Arg::Null => {
                p.wire = Wire::Value;
                args[i] = Arg::Value(ByteBuf::from(vec![0u8; 8]));
                continue;
            }
            Arg::Probed { address, bytes } if bytes.len() as u64 <= most => {
                (*address, bytes.to_vec())
            }
            other => {
                return Err(format!(
                    "`{}`: a {} where an address and at most {most} bytes go",
                    p.name,
                    arg_kind(other)
                ));
            }
        };
        let descriptor = integer_arg(f, args, *desc)?;
        let getter = symbol(dl, get, lib.version_node.as_deref())
            .ok_or_else(|| format!("{} has no {get}", lib.soname))?;
        // SAFETY: `status get(desc, attr, void *buf, size_t size, size_t
        // *written)`, as the plan says.
        let getter: unsafe extern "C" fn(
            *mut c_void,
            u32,
            *mut c_void,
            usize,
            *mut usize,
        ) -> libc::c_int = unsafe { std::mem::transmute(getter) };
        let read = |attr: i64| {
            let (mut value, mut written) = (0i32, 0usize);
            // SAFETY: the client's descriptor (a handle of this session);
            // our own outputs, four bytes as both attributes are.
            let rc = unsafe {
                getter(
                    descriptor as *mut c_void,
                    attr as u32,
                    (&raw mut value).cast(),
                    4,
                    &mut written,
                )
            };
            (rc == 0).then_some(i64::from(value))
        };
        let on_host = read(*mode).is_none_or(|m| host_modes.contains(&m));
        if on_host {
            let mut copy = bytes;
            match read(*scale).and_then(|s| sizes.get(&s).copied()) {
                Some(need) if (copy.len() as u64) < need => {
                    return Err(format!(
                        "`{}`: {} bytes could be read at its address in the client; its scale type's have {need}",
                        p.name,
                        copy.len()
                    ));
                }
                Some(need) => copy.truncate(need as usize),
                // A descriptor the library does not answer for: room for
                // any scalar (the call itself reports the descriptor).
                None => copy.resize(most as usize, 0),
            }
            p.wire = Wire::Host {
                dir: Dir::In,
                elem: 1,
                count: Count(vec![Factor::Const(copy.len() as u64)]),
                nullable: false,
                addresses: Vec::new(),
                nested: Vec::new(),
            };
            args[i] = Arg::Bytes(ByteBuf::from(copy));
        } else {
            p.wire = Wire::Value;
            args[i] = Arg::Value(ByteBuf::from(address.to_le_bytes().to_vec()));
        }
    }
    Ok(made)
}

/// Each argument whose side a handle's pointer mode decides must be sent
/// as that mode says (a device address only in the device mode): the mode
/// is the real library's own answer, never the client's word.
fn check_pointer_mode(
    f: &CallPlan,
    args: &[Arg],
    mode: &crate::plan::PointerMode,
    dl: *mut c_void,
    lib: &crate::plan::LibraryPlan,
) -> Result<(), String> {
    for (p, arg) in f.params.iter().zip(args) {
        let Wire::ByMode { handle, .. } = &p.wire else {
            continue;
        };
        let sent_device = matches!(arg, Arg::Value(_));
        let named = integer_arg(f, args, *handle)?;
        let get = symbol(dl, &mode.get, lib.version_node.as_deref())
            .ok_or_else(|| format!("{} has no {}", lib.soname, mode.get))?;
        // SAFETY: `status get(handle, int *mode)`, as the plan says.
        let get: unsafe extern "C" fn(*mut c_void, *mut libc::c_int) -> libc::c_int =
            unsafe { std::mem::transmute(get) };
        let mut current: libc::c_int = -1;
        // SAFETY: the handle is the client's own to give; the output is ours.
        let rc = unsafe { get(named as *mut c_void, &mut current) };
        let device = rc == 0 && i64::from(current) == mode.device;
        if sent_device != device {
            return Err(format!(
                "`{}` sent as {} where the handle's pointer mode is {current} (status {rc})",
                p.name,
                arg_kind(arg)
            ));
        }
    }
    Ok(())
}

/// What an argument is, in words (never its bytes).
fn arg_kind(arg: &Arg) -> String {
    match arg {
        Arg::Value(b) => format!("value of {} bytes", b.len()),
        Arg::Null => "null pointer".into(),
        Arg::Bytes(b) => format!("buffer of {} bytes", b.len()),
        Arg::Out(n) => format!("output of {n} bytes"),
        Arg::Symbol(_) => "symbol".into(),
        Arg::Probed { bytes, .. } => format!("address with {} bytes read there", bytes.len()),
        Arg::Image { bytes, .. } => format!("module image of {} bytes", bytes.len()),
        Arg::Module { .. } => "module image by its hash".into(),
        Arg::WithParts { bytes, parts } => {
            format!(
                "struct of {} bytes with {} arrays",
                bytes.len(),
                parts.len()
            )
        }
        Arg::KernelArgs(l) => format!("list of {} kernel arguments", l.len()),
        Arg::KernelNode { bytes, args } => format!(
            "kernel node of {} bytes with {} arguments",
            bytes.len(),
            args.len()
        ),
    }
}

/// The integer value argument `i` was sent as (for sizes and sides).
fn integer_arg(f: &CallPlan, args: &[Arg], i: u16) -> Result<u64, String> {
    let (p, arg) = f
        .params
        .get(usize::from(i))
        .zip(args.get(usize::from(i)))
        .ok_or_else(|| format!("no parameter {i}"))?;
    let Arg::Value(bytes) = arg else {
        return Err(format!("`{}` was not sent as a value", p.name));
    };
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    let v = u64::from_le_bytes(b);
    Ok(if p.signed && n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
        v | (!0u64 << (n * 8))
    } else {
        v
    })
}

/// The bytes host memory must have by the plan's count, evaluated from the
/// other arguments as they were sent (as the client evaluated it).
fn expected_len(f: &CallPlan, elem: u32, count: &Count, args: &[Arg]) -> Result<u64, String> {
    let mut n: u64 = 1;
    for factor in &count.0 {
        let v = match factor {
            Factor::Const(c) => *c,
            Factor::Param(i) => integer_arg(f, args, *i)?,
            Factor::Deref { param, width } => match args.get(usize::from(*param)) {
                Some(Arg::Bytes(b)) if b.len() >= usize::from(*width) => {
                    let mut w = [0u8; 8];
                    let k = usize::from(*width).min(8);
                    w[..k].copy_from_slice(&b[..k]);
                    u64::from_le_bytes(w)
                }
                Some(Arg::Null) => 0,
                _ => return Err(format!("parameter {param} does not hold a count")),
            },
            Factor::Of { param, sizes } => {
                let v = integer_arg(f, args, *param)? as i64;
                sizes.get(&v).copied().unwrap_or(0)
            }
            Factor::Rows {
                pitch,
                width,
                height,
            } => {
                let (p, w, h) = (
                    integer_arg(f, args, *pitch)?,
                    integer_arg(f, args, *width)?,
                    integer_arg(f, args, *height)?,
                );
                if h == 0 {
                    0
                } else {
                    (h - 1)
                        .checked_mul(p)
                        .and_then(|r| r.checked_add(w))
                        .ok_or("a 2D size that overflows")?
                }
            }
        };
        n = n.checked_mul(v).ok_or("a size that overflows")?;
    }
    n.checked_mul(u64::from(elem))
        .ok_or_else(|| "a size that overflows".into())
}

/// Whether `arg` is what parameter `p`'s plan allows, given the others: the
/// server never trusts a length, a side or a launch's arguments it can check.
/// For a parameter whose side its address says (`space=any`, or a copy of
/// kind `cudaMemcpyDefault`): `Some` with its host side (an error where the
/// kind cannot be read); `None` for any other.
fn by_address_side(
    f: &CallPlan,
    p: &crate::plan::ParamPlan,
    args: &[Arg],
) -> Option<Result<Wire, String>> {
    match &p.wire {
        Wire::Addressed { host } => Some(Ok(host.as_ref().clone())),
        Wire::Sided {
            by,
            address_when,
            host,
            ..
        } if !address_when.is_empty() => match integer_arg(f, args, *by) {
            Ok(side) if address_when.contains(&(side as i64)) => Some(Ok(host.as_ref().clone())),
            Ok(_) => None,
            Err(why) => Some(Err(why)),
        },
        _ => None,
    }
}

fn check_arg(
    f: &CallPlan,
    p: &crate::plan::ParamPlan,
    arg: &Arg,
    args: &[Arg],
    kernels: &HashMap<(KernelRef, u64), Vec<u32>>,
) -> Result<(), String> {
    let wire = match &p.wire {
        Wire::Sided {
            by,
            host_when,
            device_when,
            address_when,
            host,
        } => {
            let side = integer_arg(f, args, *by)? as i64;
            match arg {
                Arg::Value(_) if device_when.contains(&side) => &Wire::Value,
                Arg::Bytes(_) | Arg::Out(_) | Arg::Null if host_when.contains(&side) => {
                    host.as_ref()
                }
                // (Resolved by `Session::by_address` before, but for null.)
                Arg::Null if address_when.contains(&side) => host.as_ref(),
                _ => return Err(format!("a {} where the side is {side}", arg_kind(arg))),
            }
        }
        // Resolved by `Session::by_address` before, but for null.
        Wire::Addressed { host } => match arg {
            Arg::Null => host.as_ref(),
            _ => return Err(format!("a {} where an address goes", arg_kind(arg))),
        },
        // The pointer mode was checked against the handle's before.
        Wire::ByMode { host, .. } => match arg {
            Arg::Value(_) => &Wire::Value,
            _ => host.as_ref(),
        },
        w => w,
    };
    match (wire, arg) {
        (Wire::Value | Wire::Callback { .. }, Arg::Value(b)) if b.len() == p.size as usize => {
            Ok(())
        }
        (Wire::Host { .. } | Wire::InString { .. } | Wire::OutString { .. }, Arg::Null) => Ok(()),
        (Wire::OutString { .. }, Arg::Out(8)) => Ok(()),
        (
            Wire::Host {
                dir,
                elem,
                count,
                addresses,
                nested,
                ..
            },
            _,
        ) => {
            let got = match (dir, arg) {
                (Dir::Out, Arg::Out(n)) => *n,
                (Dir::In | Dir::InOut, Arg::Bytes(b)) if nested.is_empty() => {
                    if let Some(at) = crate::plan::address_at(b, *elem, addresses) {
                        return Err(format!("a host address at byte {at}"));
                    }
                    b.len() as u64
                }
                // Each array exactly as long as its count says, and no
                // more than one struct.
                (Dir::In, Arg::WithParts { bytes, parts })
                    if !nested.is_empty() && parts.len() == nested.len() =>
                {
                    if let Some(at) = crate::plan::address_at(bytes, *elem, addresses) {
                        return Err(format!("a host address at byte {at}"));
                    }
                    if bytes.len() != *elem as usize {
                        return Err(format!("{} bytes for one struct of {elem}", bytes.len()));
                    }
                    for (n, part) in nested.iter().zip(parts) {
                        let want = n.len_in(bytes).ok_or("a struct too short for its count")?;
                        if part.len() as u64 != want
                            && !(part.is_empty() && n.pointer_in(bytes) == Some(0))
                        {
                            return Err(format!(
                                "an array of {} bytes where its count says {want}",
                                part.len()
                            ));
                        }
                    }
                    bytes.len() as u64
                }
                _ => return Err(format!("a {} for {dir:?} memory", arg_kind(arg))),
            };
            let want = expected_len(f, *elem, count, args)?;
            if got == want {
                Ok(())
            } else {
                Err(format!("{got} bytes where the other arguments say {want}"))
            }
        }
        (Wire::InString { .. }, Arg::Bytes(b)) if b.last() == Some(&0) => Ok(()),
        (Wire::Symbol { .. }, Arg::Symbol(_)) => Ok(()),
        (Wire::Image, Arg::Image { .. } | Arg::Module { .. } | Arg::Null) => Ok(()),
        (Wire::KernelArgs { .. } | Wire::KernelNode { .. } | Wire::LaunchExtra, Arg::Null) => {
            Ok(())
        }
        (Wire::LaunchExtra, Arg::Bytes(b)) if b.len() <= crate::plan::MAX_LAUNCH_BUFFER => Ok(()),
        (
            Wire::KernelNode {
                size,
                func,
                kernel,
                extra,
                ..
            },
            Arg::KernelNode { bytes, args: list },
        ) => {
            if bytes.len() != *size as usize {
                return Err(format!("{} bytes for a struct of {size}", bytes.len()));
            }
            let field = |at: u32| {
                let at = at as usize;
                u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
            };
            if field(*extra) != 0 {
                return Err("`extra` arguments".into());
            }
            if field(*func) == 0 {
                return Err("no kernel in `func`".into());
            }
            // The kernel's arguments, as its parameters are (none for a
            // kernel the real libraries do not know).
            match kernels.get(&(*kernel, field(*func))) {
                Some(sizes)
                    if list.len() == sizes.len()
                        && list.iter().zip(sizes).all(|(a, s)| a.len() == *s as usize) =>
                {
                    Ok(())
                }
                None if list.is_empty() => Ok(()),
                Some(_) => Err("arguments that are not the kernel's parameters".into()),
                None => Err("a kernel whose parameters were never asked for".into()),
            }
        }
        (Wire::KernelArgs { by, kernel, .. }, Arg::KernelArgs(list)) => {
            let named = match args.get(usize::from(*by)) {
                Some(Arg::Symbol(v)) => *v,
                Some(Arg::Value(_)) => integer_arg(f, args, *by)?,
                _ => return Err("no kernel named".into()),
            };
            let sizes = kernels
                .get(&(*kernel, named))
                .ok_or("a kernel whose parameters were never asked for")?;
            if list.len() == sizes.len()
                && list.iter().zip(sizes).all(|(a, s)| a.len() == *s as usize)
            {
                Ok(())
            } else {
                Err("arguments that are not the kernel's parameters".into())
            }
        }
        _ => Err(format!(
            "a {} where the plan has no place for one",
            arg_kind(arg)
        )),
    }
}

/// The bytes `abi::call` expects for a value of this parameter: a small
/// aggregate padded to whole eightbytes, a `signed char` or `short` as the
/// 4 bytes of its sign-extended `int` (callees built by LLVM rely on it).
fn widen(p: &crate::plan::ParamPlan, mut bytes: Vec<u8>) -> Vec<u8> {
    match &p.abi {
        ArgClass::Small(eightbytes) => bytes.resize(eightbytes.len() * 8, 0),
        ArgClass::Integer if bytes.len() < 4 && !bytes.is_empty() => {
            let negative = p.signed && bytes[bytes.len() - 1] & 0x80 != 0;
            bytes.resize(4, if negative { 0xff } else { 0 });
        }
        _ => {}
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_cache_keeps_the_most_recently_used_within_its_limit() {
        let dir = std::env::temp_dir().join(format!("cudastub-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let cache = ModuleCache(Some(&dir));
        let t0 = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let mut names = Vec::new();
        for (i, len) in [100usize, 200, 300].into_iter().enumerate() {
            let name = format!("{i:064x}");
            let file = std::fs::File::create(dir.join(&name)).expect("create");
            file.set_len(len as u64).expect("size");
            // The first is the oldest, the last the most recently used.
            file.set_modified(t0 + std::time::Duration::from_secs(i as u64))
                .expect("time");
            names.push(name);
        }
        std::fs::write(dir.join("notes.txt"), vec![0u8; 1000]).expect("other file");
        assert_eq!(cache.prune(10_000).expect("prune"), (0, 600));
        assert_eq!(cache.prune(500).expect("prune"), (1, 500));
        assert!(!dir.join(&names[0]).exists() && dir.join(&names[1]).exists());
        assert_eq!(cache.prune(0).expect("prune"), (2, 0));
        assert!(dir.join("notes.txt").exists(), "not an image: left alone");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"secret", b"secret"));
        assert!(!same_token(b"secret", b"secreT"));
        assert!(!same_token(b"secret", b"secret2"));
        assert!(!same_token(b"", b"x"));
    }
}
