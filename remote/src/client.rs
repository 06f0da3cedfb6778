//! The client side: a connection to the server, and calls encoded from
//! their plans — values read from the caller's arguments, host memory read
//! before the call (sizes evaluated from the other arguments, as the roles
//! say) and written back after it.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{CStr, c_char};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use serde_bytes::ByteBuf;

use crate::plan::{
    CallPlan, Class, Count, Dir, Factor, GraphStep, KernelRef, MajorPlan, ParamPlan, RetPlan, Wire,
};
use crate::wire::{self, Arg, Deferred, Endpoint, GraphHost, Queued, Reply, Request};

/// A byte stream to the server.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A connected socket that writes with `MSG_NOSIGNAL`: a server gone between
/// calls is an error return, never a SIGPIPE that kills the host process
/// (a C program keeps SIGPIPE's default action).
struct Socket(std::os::fd::OwnedFd);

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: a valid descriptor and buffer.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: a valid descriptor and buffer.
            let n = unsafe {
                libc::send(
                    self.0.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection to the server for one major's libraries.
pub struct Client {
    stream: Box<dyn Stream>,
    transport: &'static str,
    plan: std::sync::Arc<MajorPlan>,
    /// Each kernel's parameter sizes, asked of the server once.
    kernels: HashMap<(KernelRef, u64), Option<Vec<u32>>>,
    /// Calls that return nothing useful, not yet sent (see [`Batching`]).
    queue: Vec<Queued>,
    /// The host bytes `queue` carries.
    queued_bytes: usize,
    batching: Batching,
    /// Failures of queued calls the server reported and no call of their
    /// library has returned yet: the first of each library.
    pending: Vec<Deferred>,
    /// The handles set to the device pointer mode, per library (a
    /// handle's mode is the host's until its library's `set` says so).
    device_mode: std::collections::HashSet<(u16, u64)>,
    /// Per library: whether it has calls that wait for earlier work
    /// (`class: sync`), which report a queued call's failure; a library
    /// without any reports it with its next call.
    waits: Vec<bool>,
    /// The callbacks sent, by their numbers.
    callbacks: crate::callback::Registry,
    /// Calls of them the server reported, not yet made (see
    /// [`Client::take_ready`]).
    ready: Vec<crate::callback::Ready>,
    /// The host memory the server mirrors for graphs' copies: address,
    /// length, and whether graphs read it and write it (see
    /// [`GraphHost`]).
    mirrors: BTreeSet<(u64, u64, bool, bool)>,
    /// Per callback number, the calls of it still awaited: sent with work
    /// on a stream, not yet come back (see [`Client::awaits_callbacks`]).
    awaited: HashMap<u64, u64>,
    /// The host memory each executable graph reads (address, length), as
    /// the server said when it was made: what its launches carry.
    graph_reads: HashMap<u64, Vec<(u64, u64)>>,
    /// The caller's thread, as the caller numbers its threads (see
    /// [`Client::set_thread`]).
    thread: u32,
}

/// Offers the server shared memory on `socket` (the server has said it
/// takes it): the stream to go on in, or `None` to go on on the socket (the
/// server could not map it, or it could not be made here: the server is told
/// so with a byte that carries none).
fn go_shared(
    socket: std::os::fd::OwnedFd,
    stream: &mut Box<dyn Stream>,
) -> io::Result<Option<crate::shm::ShmStream>> {
    let offered = match socket.try_clone() {
        Ok(fd) => crate::shm::ShmStream::offer(fd, crate::shm::DEFAULT_CAPACITY).ok(),
        Err(_) => None,
    };
    if offered.is_none() {
        Socket(socket).write_all(b"N")?;
    }
    match wire::receive::<Reply>(stream)? {
        Some(Reply::SharedMemory(None)) if offered.is_some() => Ok(offered),
        Some(Reply::SharedMemory(_)) => Ok(None),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the GPU server did not answer the shared-memory offer",
        )),
    }
}

/// Whether calls of class `async` are queued and sent in batches, their
/// failures reported by a later call of their library (one that waits for
/// earlier work, `cudaStreamSynchronize` and the like), as CUDA reports a
/// kernel's failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// Every call is answered before it returns.
    Off,
    /// Queued once a call of class `async` has been answered with success:
    /// until then every call is answered, so a server that cannot start
    /// work (no device) gives each call the status a direct call gets.
    Probe,
    /// Queued.
    On,
}

/// Queued calls are sent once they carry this many host bytes …
const QUEUE_BYTES: usize = 8 << 20;
/// … or are this many.
const QUEUE_CALLS: usize = 1024;

/// What a call returned.
#[derive(Debug, PartialEq, Eq)]
pub struct Returned {
    /// The returned value (a status), or 0.
    pub value: u64,
    /// For a function returning `const char *`: the text, kept for the
    /// life of the process (null when the function returned null).
    pub string: *const c_char,
    /// The failure of an earlier, queued call this call reports: that
    /// call's function and status (`value` when this call itself
    /// succeeded).
    pub deferred: Option<(String, u64)>,
}

/// Why a call did not happen.
#[derive(Debug)]
pub enum CallError {
    /// The transport failed: the server is gone.
    Transport(io::Error),
    /// The server refused the call (a bug: client and server disagree).
    Refused(String),
    /// The call cannot be sent: why.
    Unsupported(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(e) => write!(f, "the GPU server is unreachable: {e}"),
            CallError::Refused(why) => write!(f, "the GPU server refused the call: {why}"),
            CallError::Unsupported(why) => write!(f, "not supported remotely: {why}"),
        }
    }
}

impl std::error::Error for CallError {}

impl Client {
    /// Connects to `endpoint` and introduces itself with `token` and `plan`;
    /// over a Unix socket, goes on in shared memory ([`crate::shm`]) if the
    /// server takes it.
    pub fn connect(endpoint: &Endpoint, token: &str, plan: MajorPlan) -> io::Result<Client> {
        Client::connect_with(endpoint, token, plan, true)
    }

    /// [`Client::connect`], going on in shared memory over a Unix socket
    /// only if `shared_memory`.
    pub fn connect_with(
        endpoint: &Endpoint,
        token: &str,
        plan: MajorPlan,
        shared_memory: bool,
    ) -> io::Result<Client> {
        // The connection's second descriptor, for the shared memory.
        let mut local: Option<std::os::fd::OwnedFd> = None;
        let mut stream: Box<dyn Stream> = match endpoint {
            Endpoint::Unix(path) => {
                let fd: std::os::fd::OwnedFd = UnixStream::connect(path)?.into();
                if shared_memory {
                    // Without a second descriptor, the socket alone.
                    local = fd.try_clone().ok();
                }
                Box::new(Socket(fd))
            }
            Endpoint::Tcp(addr) => {
                // A host that does not answer is an error in seconds, not a hang.
                let resolved = std::net::ToSocketAddrs::to_socket_addrs(addr.as_str())?
                    .next()
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address"))
                    })?;
                let s = TcpStream::connect_timeout(&resolved, std::time::Duration::from_secs(10))?;
                s.set_nodelay(true)?;
                keep_alive(&s);
                Box::new(Socket(s.into()))
            }
        };
        wire::send(
            &mut stream,
            &Request::Hello {
                protocol: wire::PROTOCOL,
                token: token.to_string(),
                major: plan.major,
                fingerprint: plan.fingerprint(),
                shared_memory: if local.is_some() {
                    crate::shm::DEFAULT_CAPACITY
                } else {
                    0
                },
            },
        )?;
        let mut transport = match endpoint {
            Endpoint::Unix(_) => "Unix socket",
            Endpoint::Tcp(_) => "TCP",
        };
        match wire::receive::<Reply>(&mut stream)? {
            Some(Reply::Welcome { shared_memory, .. }) => Ok(Client {
                stream: match local.filter(|_| shared_memory) {
                    Some(fd) => match go_shared(fd, &mut stream)? {
                        Some(shm) => {
                            transport = "shared memory";
                            Box::new(shm)
                        }
                        None => stream,
                    },
                    None => stream,
                },
                transport,
                waits: plan
                    .libraries
                    .iter()
                    .map(|l| l.functions.iter().any(|f| f.class == Class::Sync))
                    .collect(),
                plan: std::sync::Arc::new(plan),
                kernels: HashMap::new(),
                queue: Vec::new(),
                queued_bytes: 0,
                device_mode: std::collections::HashSet::new(),
                batching: Batching::Probe,
                pending: Vec::new(),
                callbacks: crate::callback::Registry::default(),
                ready: Vec::new(),
                mirrors: BTreeSet::new(),
                graph_reads: HashMap::new(),
                awaited: HashMap::new(),
                thread: 0,
            }),
            Some(Reply::Refused(why)) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the GPU server at {endpoint} refused the connection: {why}"),
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{endpoint} is not a cudastub GPU server"),
            )),
        }
    }

    /// How the calls travel: `shared memory`, `Unix socket` or `TCP`.
    pub fn transport(&self) -> &'static str {
        self.transport
    }

    /// The plan this client calls by.
    pub fn plan(&self) -> &MajorPlan {
        &self.plan
    }

    /// Whether to queue calls that return nothing useful ([`Batching`];
    /// [`Batching::Probe`] by default).
    pub fn set_batching(&mut self, batching: Batching) {
        self.batching = batching;
    }

    /// Sends the queued calls, if any (the next answered call sends them
    /// anyway: this is for a process about to end).
    pub fn flush(&mut self) -> io::Result<()> {
        let mut frame = Vec::new();
        self.frame_queue(&mut frame)?;
        if !frame.is_empty() {
            self.stream.write_all(&frame)?;
        }
        Ok(())
    }

    /// Says which of the process's threads makes the calls that follow,
    /// numbered from 0 (by default every call is thread 0's): the server
    /// makes each thread's calls on a thread of its own, so that CUDA's
    /// per-thread state is per client thread. At most
    /// [`wire::MAX_THREADS`] threads.
    pub fn set_thread(&mut self, thread: u32) {
        self.thread = thread;
    }

    /// Says that the process's thread `thread` ended (after the calls
    /// queued so far): the server ends its thread for it.
    pub fn end_thread(&mut self, thread: u32) -> Result<(), CallError> {
        self.send(&Request::ThreadEnded(thread))
    }

    /// The calls of the client's callbacks the server reported, in the
    /// order the libraries made them, for the caller to make
    /// ([`crate::callback::Ready::run`]) before its call returns, once it
    /// holds no lock a callback's own code might need.
    pub fn take_ready(&mut self) -> Vec<crate::callback::Ready> {
        std::mem::take(&mut self.ready)
    }

    /// Appends the queued calls to `frame` as one frame, emptying the queue.
    fn frame_queue(&mut self, frame: &mut Vec<u8>) -> io::Result<()> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let calls = std::mem::take(&mut self.queue);
        self.queued_bytes = 0;
        wire::frame_into(frame, &Request::Queued(calls))
    }

    /// Writes `request` after the queued calls, in one write.
    fn send(&mut self, request: &Request) -> Result<(), CallError> {
        let mut frame = Vec::new();
        wire::frame_into(&mut frame, request).map_err(|e| match e.kind() {
            // Over the frame limit: nothing was sent, the session is intact.
            io::ErrorKind::InvalidInput => CallError::Unsupported(e.to_string()),
            _ => CallError::Transport(e),
        })?;
        let mut all = Vec::new();
        self.frame_queue(&mut all).map_err(CallError::Transport)?;
        if all.is_empty() {
            all = frame;
        } else {
            all.extend_from_slice(&frame);
        }
        self.stream.write_all(&all).map_err(CallError::Transport)
    }

    /// Takes in what any answer carries besides the call's own results:
    /// queued calls' failures, the callbacks the libraries called, the
    /// host memory graphs use, and what they wrote to it.
    fn absorb(
        &mut self,
        deferred: Vec<Deferred>,
        callbacks: Vec<wire::Fired>,
        mirrors: Vec<wire::Mirrored>,
        writes: Vec<(u64, ByteBuf)>,
        reads: Vec<(u64, Vec<(u64, u64)>)>,
    ) {
        for (exec, memory) in reads {
            if memory.is_empty() {
                self.graph_reads.remove(&exec);
            } else {
                self.graph_reads.insert(exec, memory);
            }
        }
        for c in &callbacks {
            // More calls than were awaited (a host node's, at each launch
            // of its graph) leave the others awaited.
            if let Some(n) = self.awaited.get_mut(&c.id) {
                *n -= 1;
                if *n == 0 {
                    self.awaited.remove(&c.id);
                }
            }
        }
        self.ready
            .extend(callbacks.iter().filter_map(|c| self.callbacks.ready(c)));
        self.mirrors.extend(
            mirrors
                .iter()
                .map(|m| (m.address, m.len, m.reads, m.writes)),
        );
        // What graphs wrote to host memory: only where a copy the client
        // sent named, as long as it was.
        for (address, bytes) in writes {
            let len = bytes.len() as u64;
            if self
                .mirrors
                .range((address, len, false, false)..=(address, len, true, true))
                .any(|m| m.3)
            {
                write_readable(address as *mut u8, &bytes);
            }
        }
        for d in deferred {
            if !self.pending.iter().any(|p| p.library == d.library) {
                self.pending.push(d);
            }
        }
    }

    /// The server's answer to the request just sent.
    fn reply(&mut self) -> Result<Reply, CallError> {
        wire::receive::<Reply>(&mut self.stream)
            .map_err(CallError::Transport)?
            .ok_or_else(|| {
                CallError::Transport(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ))
            })
    }

    /// Whether callbacks the client sent with work on a stream may still be
    /// called: fewer calls of one have come back than were sent (see
    /// [`Client::poll`]).
    pub fn awaits_callbacks(&self) -> bool {
        !self.awaited.is_empty()
    }

    /// Asks the server for what its libraries did since the last answer
    /// (the callbacks they called, what graphs wrote), after the queued
    /// calls: for a process that waits for its own callback without
    /// calling CUDA (a flag the host function sets), which would otherwise
    /// wait for ever. The callbacks to make are then [`Client::take_ready`]'s.
    pub fn poll(&mut self) -> Result<(), CallError> {
        self.send(&Request::Poll)?;
        let reply = self.reply()?;
        match reply {
            Reply::Return {
                deferred,
                callbacks,
                mirrors,
                writes,
                reads,
                ..
            } => {
                self.absorb(deferred, callbacks, mirrors, writes, reads);
                Ok(())
            }
            Reply::Refused(why) => Err(CallError::Refused(why)),
            _ => Err(CallError::Refused("an unexpected reply".into())),
        }
    }

    /// What a call carries for graphs ([`GraphHost`]): for a call a stream
    /// capture may record, the address of each host-memory argument; for a
    /// graph's launch, the bytes now of the host memory graphs read.
    ///
    /// # Safety
    /// `args` as for [`Client::call`].
    unsafe fn graph_host(&self, f: &CallPlan, args: &[*const u8], encoded: &[Arg]) -> GraphHost {
        let mut host = GraphHost::default();
        if let Some(GraphStep::StreamCopy { buffers }) = f.graph {
            for (i, (p, a)) in f.params.iter().zip(encoded).enumerate() {
                if buffers >> i & 1 == 1
                    && matches!(a, Arg::Bytes(_) | Arg::Out(_) | Arg::Probed { .. })
                    && !matches!(p.wire, Wire::ByMode { .. } | Wire::ByDescriptor { .. })
                {
                    // SAFETY: a pointer parameter (host memory).
                    let at = unsafe { pointer_of(args[i]) } as u64;
                    host.at.push((i as u16, at));
                }
            }
        }
        if let Some(GraphStep::Launch { exec, .. }) = f.graph
            && let Some(named) = args.get(usize::from(exec))
            // SAFETY: a handle is a pointer-sized value.
            && let Some(memory) = self.graph_reads.get(&unsafe { named.cast::<u64>().read_unaligned() })
        {
            for &(address, len) in memory {
                let bytes = readable(address as *const u8, len as usize);
                if bytes.len() as u64 == len {
                    host.refresh.push((address, ByteBuf::from(bytes)));
                }
            }
        }
        host
    }

    /// Forgets the client's host memory at `start`, `len` bytes (freed):
    /// graphs' copies no longer write there, nor their launches read it.
    pub fn forget_host(&mut self, start: u64, len: u64) {
        let gone = |address: u64| address >= start && address < start.saturating_add(len);
        self.mirrors.retain(|&(address, ..)| !gone(address));
        for memory in self.graph_reads.values_mut() {
            memory.retain(|&(address, _)| !gone(address));
        }
    }

    /// Whether a call of `f` with `args` may be queued: its class is
    /// `async` and it returns a status, or it returns nothing at all (a
    /// kernel's registration: there is no status to report, now or later);
    /// and nothing of it comes back to the host.
    fn queues(&self, f: &CallPlan, args: &[Arg]) -> bool {
        self.batching != Batching::Off
            && (f.class == Class::Async && matches!(f.ret, RetPlan::Value { .. })
                || f.ret == RetPlan::Void)
            && f.params.iter().zip(args).all(|(p, a)| match a {
                Arg::Out(_) => false,
                Arg::Bytes(_) => p.wire.host_dir() != Some(Dir::InOut),
                // Memory whose side the server decides may be written
                // (a copy to host memory): its answer is needed.
                Arg::Probed { .. } => p.wire.host_dir() == Some(Dir::In),
                _ => true,
            })
    }

    /// Whether the call is queued now: batching is on, or the call returns
    /// nothing (no status can differ from a direct call's).
    fn queued_now(&self, f: &CallPlan, args: &[Arg]) -> bool {
        (self.batching == Batching::On || f.ret == RetPlan::Void) && self.queues(f, args)
    }

    /// Calls function `function` of library `library` with `args`: the
    /// address of each argument's value, as the caller passed it.
    ///
    /// # Safety
    /// `args` must hold one valid address per parameter, each pointing to a
    /// value of the parameter's type; the pointers among those values must
    /// be valid as the function's C contract requires.
    pub unsafe fn call(
        &mut self,
        library: u16,
        function: u32,
        args: &[*const u8],
    ) -> Result<Returned, CallError> {
        // The plan outlives the borrows of `self` below.
        let plan = std::sync::Arc::clone(&self.plan);
        let f = plan
            .libraries
            .get(usize::from(library))
            .and_then(|l| l.functions.get(function as usize))
            .ok_or_else(|| CallError::Unsupported(format!("no function {library}/{function}")))?;
        if let Some(why) = &f.unsupported {
            return Err(CallError::Unsupported(format!("{}: {why}", f.name)));
        }
        if args.len() != f.params.len() {
            return Err(CallError::Unsupported(format!(
                "{}: {} arguments for {} parameters",
                f.name,
                args.len(),
                f.params.len()
            )));
        }
        // A kernel's parameter sizes, from the server the first time.
        let mut ask = |question: Ask| -> Result<Answer, CallError> {
            let (kernel, value) = match question {
                Ask::KernelParams(kernel, value) => (kernel, value),
                Ask::Callback {
                    function,
                    data,
                    params,
                    data_at,
                } => {
                    return Ok(Answer::Callback(
                        self.callbacks.id(function, data, params, data_at),
                    ));
                }
                Ask::DeviceMode(handle) => {
                    return Ok(Answer::DeviceMode(
                        self.device_mode.contains(&(library, handle)),
                    ));
                }
                Ask::HasModule(hash) => {
                    self.send(&Request::HasModule(hash))?;
                    return match wire::receive::<Reply>(&mut self.stream)
                        .map_err(CallError::Transport)?
                    {
                        Some(Reply::HasModule(held)) => Ok(Answer::HasModule(held)),
                        Some(Reply::Refused(why)) => Err(CallError::Refused(why)),
                        _ => Err(CallError::Transport(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "no answer about a module",
                        ))),
                    };
                }
            };
            if let Some(sizes) = self.kernels.get(&(kernel, value)) {
                return Ok(Answer::ParamSizes(sizes.clone()));
            }
            self.send(&Request::KernelParams { kernel, value })?;
            match wire::receive::<Reply>(&mut self.stream).map_err(CallError::Transport)? {
                Some(Reply::ParamSizes(sizes)) => {
                    self.kernels.insert((kernel, value), sizes.clone());
                    Ok(Answer::ParamSizes(sizes))
                }
                Some(Reply::Refused(why)) => Err(CallError::Refused(why)),
                _ => Err(CallError::Transport(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "no answer to a kernel's parameters",
                ))),
            }
        };
        // SAFETY: as the caller promises.
        let encoded = unsafe { encode(f, args, &mut ask) }?;
        // Memory whose side the server decided: written back only where
        // this process can write (the address may be no memory of its).
        let probed: Vec<bool> = encoded
            .iter()
            .map(|a| matches!(a, Arg::Probed { .. }))
            .collect();
        // What the caller's memory holds, per parameter: never write more.
        let room: Vec<usize> = encoded
            .iter()
            .zip(&f.params)
            .map(|(a, p)| match a {
                Arg::Out(n) => *n as usize,
                Arg::Bytes(b) => b.len(),
                // Memory whose side the address says: as long as the host
                // memory it may be.
                Arg::Probed { .. } => match &p.wire {
                    Wire::Sided { host, .. } | Wire::Addressed { host } => match host.as_ref() {
                        // SAFETY: as the caller promises (read by `encode`).
                        Wire::Host { elem, count, .. } => {
                            unsafe { host_len(f, *elem, count, args) }.unwrap_or(0)
                        }
                        _ => 0,
                    },
                    _ => 0,
                },
                Arg::Value(_)
                | Arg::KernelNode { .. }
                | Arg::Null
                | Arg::Symbol(_)
                | Arg::Image { .. }
                | Arg::Module { .. }
                | Arg::WithParts { .. }
                | Arg::KernelArgs(_) => 0,
            })
            .collect();
        // What an `inout` argument sent: only the bytes the call changed go
        // back, never a stale copy over the caller's newer ones.
        let sent: Vec<Option<Vec<u8>>> = f
            .params
            .iter()
            .zip(&encoded)
            .map(|(p, a)| match a {
                Arg::Bytes(b) | Arg::Probed { bytes: b, .. }
                    if p.wire.host_dir() == Some(Dir::InOut) =>
                {
                    Some(b.to_vec())
                }
                _ => None,
            })
            .collect();
        // SAFETY: as the caller promises.
        let host = unsafe { self.graph_host(f, args, &encoded) };
        // The callbacks work on a stream will call (a host function, a
        // stream callback; not a destructor, called when its object goes):
        // each is awaited until its call comes back.
        let awaited: Vec<u64> = if f.class == Class::Async {
            f.params
                .iter()
                .zip(&encoded)
                .filter_map(|(p, a)| match (&p.wire, a) {
                    (Wire::Callback { .. }, Arg::Value(b)) => {
                        Some(u64::from_le_bytes(b.as_slice().try_into().ok()?))
                    }
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        for id in &awaited {
            *self.awaited.entry(*id).or_default() += 1;
        }
        if self.queued_now(f, &encoded) {
            let bytes: usize = encoded.iter().map(arg_bytes).sum::<usize>()
                + host.refresh.iter().map(|(_, b)| b.len()).sum::<usize>();
            if !self.queue.is_empty() && self.queued_bytes + bytes > QUEUE_BYTES {
                self.flush().map_err(CallError::Transport)?;
            }
            self.queue.push(Queued {
                library,
                function,
                thread: self.thread,
                args: encoded,
                host,
            });
            self.queued_bytes += bytes;
            if self.queued_bytes > QUEUE_BYTES || self.queue.len() >= QUEUE_CALLS {
                self.flush().map_err(CallError::Transport)?;
            }
            return Ok(Returned {
                value: 0,
                string: std::ptr::null(),
                deferred: None,
            });
        }
        let probe =
            self.batching == Batching::Probe && f.ret != RetPlan::Void && self.queues(f, &encoded);
        let request = Request::Call {
            library,
            function,
            thread: self.thread,
            args: encoded,
            host,
        };
        self.send(&request).map_err(|e| match e {
            CallError::Unsupported(why) => CallError::Unsupported(format!("{}: {why}", f.name)),
            e => e,
        })?;
        let reply = self.reply()?;
        match reply {
            Reply::Return {
                value,
                string,
                outputs,
                deferred,
                callbacks,
                mirrors,
                writes,
                reads,
            } => {
                self.absorb(deferred, callbacks, mirrors, writes, reads);
                // A call that failed queued no work: its callback is not
                // awaited.
                let succeeded = plan.libraries[usize::from(library)]
                    .statuses
                    .as_ref()
                    .is_none_or(|st| value == st.success as u64);
                if !succeeded {
                    for id in &awaited {
                        if let Some(n) = self.awaited.get_mut(id) {
                            *n -= 1;
                            if *n == 0 {
                                self.awaited.remove(id);
                            }
                        }
                    }
                }
                for (index, bytes) in outputs {
                    let Some(p) = f.params.get(usize::from(index)) else {
                        continue;
                    };
                    // A string's text is copied, never written in place.
                    let room = match p.wire {
                        Wire::OutString { .. } => usize::MAX,
                        _ => room[usize::from(index)],
                    };
                    let bytes = &bytes[..bytes.len().min(room)];
                    if probed[usize::from(index)] {
                        // SAFETY: as the caller promises (a pointer).
                        let at = unsafe { pointer_of(args[usize::from(index)]) };
                        write_readable(at, bytes);
                        continue;
                    }
                    // SAFETY: as the caller promises; never more than the
                    // caller's memory holds (the size sent before the call).
                    unsafe {
                        write_back(
                            p,
                            args[usize::from(index)],
                            bytes,
                            sent[usize::from(index)].as_deref(),
                        )
                    };
                }
                if probe && value == 0 {
                    self.batching = Batching::On;
                }
                // An executable graph destroyed, or every graph with its
                // context: its launches carry nothing any more.
                match f.graph {
                    Some(GraphStep::DestroyExec { exec }) if value == 0 => {
                        if let Some(named) = args.get(usize::from(exec)) {
                            // SAFETY: a handle is a pointer-sized value.
                            let exec = unsafe { named.cast::<u64>().read_unaligned() };
                            self.graph_reads.remove(&exec);
                        }
                    }
                    Some(GraphStep::Reset) if value == 0 => self.graph_reads.clear(),
                    _ => {}
                }
                // A handle's pointer mode, as its library's `set` made it;
                // a destroyed handle's is forgotten (its address may come
                // back as another handle's).
                if value == 0
                    && plan.libraries[usize::from(library)]
                        .pointer_mode
                        .as_ref()
                        .is_some_and(|mode| mode.destroy == Some(function))
                    && let (Some(hp), Some(ha)) = (f.params.first(), args.first())
                {
                    // SAFETY: the handle, a value.
                    let handle = unsafe { integer_of(hp, *ha) };
                    self.device_mode.remove(&(library, handle));
                }
                if value == 0
                    && let Some(mode) = &plan.libraries[usize::from(library)].pointer_mode
                    && mode.set == function
                    && let (Some(hp), Some(mp), Some(ha), Some(ma)) =
                        (f.params.first(), f.params.get(1), args.first(), args.get(1))
                {
                    // SAFETY: `set(handle, mode)`: two values.
                    let (handle, set) = unsafe { (integer_of(hp, *ha), integer_of(mp, *ma)) };
                    if set as i64 == mode.device {
                        self.device_mode.insert((library, handle));
                    } else {
                        self.device_mode.remove(&(library, handle));
                    }
                }
                // The real runtime's own last error, taken by this call, was
                // the queued failure: it is not reported again.
                if f.name == "cudaGetLastError" {
                    self.pending.retain(|p| p.library != library);
                }
                // A queued call's failure is reported by the next call of
                // its library that waits for earlier work: returned by it
                // when it succeeded itself (it fails with its own status
                // otherwise).
                let reports = f.class == Class::Sync
                    || !self
                        .waits
                        .get(usize::from(library))
                        .copied()
                        .unwrap_or(true);
                let deferred = self
                    .pending
                    .iter()
                    .position(|p| p.library == library)
                    .filter(|_| reports)
                    .map(|i| {
                        let d = self.pending.remove(i);
                        let name = self.plan.libraries[usize::from(d.library)]
                            .functions
                            .get(d.function as usize)
                            .map_or_else(|| format!("function {}", d.function), |f| f.name.clone());
                        (name, d.value)
                    });
                Ok(Returned {
                    value: match &deferred {
                        Some((_, failed)) if value == 0 => *failed,
                        _ => value,
                    },
                    string: string.map_or(std::ptr::null(), |s| intern(&s)),
                    deferred,
                })
            }
            Reply::Refused(why) => Err(CallError::Refused(why)),
            Reply::Welcome { .. }
            | Reply::SharedMemory(_)
            | Reply::ParamSizes(_)
            | Reply::HasModule(_) => Err(CallError::Refused("an unexpected reply".into())),
        }
    }
}

/// Writes `bytes` at `at` in this process, where its memory is mapped and
/// writable (by the kernel, as [`readable`] reads: host memory freed since
/// a graph's copy named it is not written, and does not fault).
fn write_readable(at: *mut u8, bytes: &[u8]) {
    let local = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let remote = libc::iovec {
        iov_base: at.cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: the kernel checks `remote`; `local` is ours to read.
    unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
}

/// Up to `len` bytes at `at` in this process, as many as are mapped and
/// readable (none at all for a device address of the server's): read by
/// the kernel (`process_vm_readv` on this process), which reports an
/// unmapped page instead of faulting.
fn readable(at: *const u8, len: usize) -> Vec<u8> {
    const PAGE: usize = 4096;
    let mut out = vec![0u8; len];
    let local = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: len,
    };
    // A short read (up to two pages: a scalar's) is split where a page
    // ends, as the kernel reads whole vectors or none past a fault.
    let start = at as usize;
    let split = (start / PAGE + 1) * PAGE - start;
    let remote: Vec<libc::iovec> = if len <= PAGE && split < len {
        vec![
            libc::iovec {
                iov_base: at.cast_mut().cast(),
                iov_len: split,
            },
            libc::iovec {
                iov_base: at.wrapping_add(split).cast_mut().cast(),
                iov_len: len - split,
            },
        ]
    } else {
        vec![libc::iovec {
            iov_base: at.cast_mut().cast(),
            iov_len: len,
        }]
    };
    // SAFETY: `local` is our buffer of `len` bytes; the kernel checks
    // `remote`, which it reads as another process's memory would be.
    let read = unsafe {
        libc::process_vm_readv(
            libc::getpid(),
            &local,
            1,
            remote.as_ptr(),
            remote.len() as libc::c_ulong,
            0,
        )
    };
    out.truncate(usize::try_from(read).unwrap_or(0));
    out
}

/// All `len` bytes at `at` in this process, if all are mapped and
/// readable (one byte is tried first: a device address of the server's
/// costs no allocation of its length).
fn readable_all(at: *const u8, len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    if readable(at, 1).is_empty() {
        return None;
    }
    let bytes = readable(at, len);
    (bytes.len() == len).then_some(bytes)
}

/// The host bytes an argument carries.
fn arg_bytes(a: &Arg) -> usize {
    match a {
        Arg::Value(b) | Arg::Bytes(b) => b.len(),
        Arg::Probed { bytes, .. } => bytes.len() + 8,
        Arg::Image { bytes, .. } => bytes.len(),
        Arg::KernelArgs(v) => v.iter().map(|b| b.len() + 8).sum(),
        Arg::KernelNode { bytes, args } => {
            bytes.len() + args.iter().map(|b| b.len() + 8).sum::<usize>()
        }
        Arg::Null | Arg::Out(_) | Arg::Symbol(_) => 8,
        Arg::Module { .. } => 48,
        Arg::WithParts { bytes, parts } => {
            bytes.len() + parts.iter().map(|p| p.len()).sum::<usize>()
        }
    }
}

/// TCP keepalive on a connection: a peer whose host vanished is noticed
/// (in minutes, by the kernel) instead of waited for forever.
pub fn keep_alive(socket: &impl std::os::fd::AsRawFd) {
    let on: libc::c_int = 1;
    // SAFETY: setting an integer option on a valid socket.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// A returned string, kept for the life of the process (one copy per text).
fn intern(bytes: &[u8]) -> *const c_char {
    static STRINGS: Mutex<BTreeSet<&'static CStr>> = Mutex::new(BTreeSet::new());
    let Ok(owned) = std::ffi::CString::new(bytes.to_vec()) else {
        return std::ptr::null();
    };
    let mut strings = STRINGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = strings.get(owned.as_c_str()) {
        return s.as_ptr();
    }
    let leaked: &'static CStr = Box::leak(owned.into_boxed_c_str());
    strings.insert(leaked);
    leaked.as_ptr()
}

/// Reads `size` bytes at `p`.
unsafe fn bytes_at(p: *const u8, size: usize) -> Vec<u8> {
    // SAFETY: as the caller promises.
    unsafe { std::slice::from_raw_parts(p, size) }.to_vec()
}

/// The pointer value of a pointer argument.
unsafe fn pointer_of(arg: *const u8) -> *mut u8 {
    // SAFETY: the argument is a pointer, as its plan says.
    unsafe { arg.cast::<*mut u8>().read_unaligned() }
}

/// The integer value of argument `p` (for sizes).
unsafe fn integer_of(p: &ParamPlan, arg: *const u8) -> u64 {
    // SAFETY: the argument holds `p.size` bytes.
    unsafe { integer_at(arg, p.size as usize, p.signed) }
}

unsafe fn integer_at(at: *const u8, width: usize, signed: bool) -> u64 {
    let mut b = [0u8; 8];
    let width = width.min(8);
    // SAFETY: as the caller promises.
    unsafe { std::ptr::copy_nonoverlapping(at, b.as_mut_ptr(), width) };
    let v = u64::from_le_bytes(b);
    if signed && width < 8 && width > 0 && b[width - 1] & 0x80 != 0 {
        v | (!0u64 << (width * 8))
    } else {
        v
    }
}

/// The bytes behind a host pointer, by the plan's count.
unsafe fn host_len(
    f: &CallPlan,
    elem: u32,
    count: &Count,
    args: &[*const u8],
) -> Result<usize, String> {
    let mut n: u64 = 1;
    for factor in &count.0 {
        // SAFETY: as the caller promises.
        let v = unsafe { factor_value(f, factor, args) }?;
        n = n
            .checked_mul(v)
            .ok_or_else(|| "a size that overflows".to_string())?;
    }
    let bytes = n
        .checked_mul(u64::from(elem))
        .filter(|b| *b <= wire::MAX_PAYLOAD as u64)
        .ok_or_else(|| format!("{n} elements of {elem} bytes: over the 1 GiB a call carries"))?;
    Ok(bytes as usize)
}

unsafe fn factor_value(f: &CallPlan, factor: &Factor, args: &[*const u8]) -> Result<u64, String> {
    let param = |i: u16| {
        f.params
            .get(usize::from(i))
            .zip(args.get(usize::from(i)))
            .ok_or_else(|| format!("no parameter {i}"))
    };
    // SAFETY (all reads): as the caller of `Client::call` promises.
    Ok(match factor {
        Factor::Const(n) => *n,
        Factor::Param(i) => {
            let (p, a) = param(*i)?;
            unsafe { integer_of(p, *a) }
        }
        Factor::Deref { param: i, width } => {
            let (_, a) = param(*i)?;
            let ptr = unsafe { pointer_of(*a) };
            if ptr.is_null() {
                0
            } else {
                unsafe { integer_at(ptr, usize::from(*width), false) }
            }
        }
        Factor::Of { param: i, sizes } => {
            let (p, a) = param(*i)?;
            let v = unsafe { integer_of(p, *a) } as i64;
            sizes.get(&v).copied().unwrap_or(0)
        }
        Factor::Rows {
            pitch,
            width,
            height,
        } => {
            let (pp, pa) = param(*pitch)?;
            let (wp, wa) = param(*width)?;
            let (hp, ha) = param(*height)?;
            let (pitch, width, height) = unsafe {
                (
                    integer_of(pp, *pa),
                    integer_of(wp, *wa),
                    integer_of(hp, *ha),
                )
            };
            if height == 0 {
                0
            } else {
                (height - 1)
                    .checked_mul(pitch)
                    .and_then(|r| r.checked_add(width))
                    .ok_or_else(|| "a 2D size that overflows".to_string())?
            }
        }
    })
}

/// The bytes of an ELF image (64-bit): the furthest end of its section
/// header table, its program header table and its sections' contents.
unsafe fn elf_len(data: *const u8) -> u64 {
    // SAFETY (all reads): an ELF file's headers are where its header says.
    let u16_at =
        |at: u64| u64::from(unsafe { data.add(at as usize).cast::<u16>().read_unaligned() });
    let u32_at = |at: u64| unsafe { data.add(at as usize).cast::<u32>().read_unaligned() };
    let u64_at = |at: u64| unsafe { data.add(at as usize).cast::<u64>().read_unaligned() };
    let (phoff, shoff) = (u64_at(0x20), u64_at(0x28));
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    let (shentsize, shnum) = (u16_at(0x3a), u16_at(0x3c));
    let mut end = 0x40u64
        .max(phoff.saturating_add(phentsize * phnum))
        .max(shoff.saturating_add(shentsize * shnum));
    const NOBITS: u32 = 8;
    for i in 0..shnum {
        let header = shoff.saturating_add(i * shentsize);
        if shentsize < 0x28 || header > wire::MAX_PAYLOAD as u64 {
            break;
        }
        if u32_at(header + 4) != NOBITS {
            end = end.max(u64_at(header + 0x18).saturating_add(u64_at(header + 0x20)));
        }
    }
    end
}

/// The arguments of a call, as they cross.
/// What a kernel's parameters are, by how the launch names it.
type Asker<'a> = dyn FnMut(Ask) -> Result<Answer, CallError> + 'a;

/// What encoding a call asks of the server.
enum Ask<'a> {
    /// A kernel's parameter sizes.
    KernelParams(KernelRef, u64),
    /// Whether it holds a module image.
    HasModule([u8; 32]),
    /// Whether a handle of the call's library is in the device pointer
    /// mode (answered by the client itself).
    DeviceMode(u64),
    /// The number of a callback (answered by the client itself).
    Callback {
        function: u64,
        data: u64,
        params: &'a [u32],
        data_at: u16,
    },
}

/// Its answers.
enum Answer {
    ParamSizes(Option<Vec<u32>>),
    HasModule(bool),
    DeviceMode(bool),
    Callback(u64),
}

/// Images this long or longer are hashed and sent once per server: a
/// later registration of the same image sends its hash alone.
pub const MODULE_CACHE_MIN: usize = 64 << 10;

unsafe fn encode(f: &CallPlan, args: &[*const u8], ask: &mut Asker) -> Result<Vec<Arg>, CallError> {
    let mut out = Vec::with_capacity(args.len());
    for (p, a) in f.params.iter().zip(args) {
        let arg = match &p.wire {
            Wire::KernelArgs { by, kernel, .. } => {
                // SAFETY: as the caller of `Client::call` promises.
                unsafe { kernel_args(f, *by, *kernel, *a, args, ask) }?
            }
            Wire::KernelNode {
                size,
                func,
                kernel,
                args: at,
                extra,
            } => {
                // SAFETY: as the caller of `Client::call` promises.
                unsafe { kernel_node(f, p, (*size, *func, *kernel, *at, *extra), *a, ask) }?
            }
            Wire::ByMode { handle, host } => {
                let named = args.get(usize::from(*handle)).ok_or_else(|| {
                    CallError::Unsupported(format!("{}: no parameter {handle}", f.name))
                })?;
                // SAFETY: a handle is a pointer-sized value.
                let handle = unsafe { named.cast::<u64>().read_unaligned() };
                let wire = match ask(Ask::DeviceMode(handle))? {
                    Answer::DeviceMode(true) => &Wire::Value,
                    _ => host.as_ref(),
                };
                // SAFETY: as the caller of `Client::call` promises.
                unsafe { encode_arg(f, p, wire, *a, args) }.map_err(CallError::Unsupported)?
            }
            Wire::Callback {
                data,
                params,
                data_at,
            } => {
                // SAFETY (both reads): as the caller of `Client::call`
                // promises; the data parameter is a pointer.
                let function = unsafe { pointer_of(*a) } as u64;
                let named = args.get(usize::from(*data)).ok_or_else(|| {
                    CallError::Unsupported(format!("{}: no parameter {data}", f.name))
                })?;
                let data = unsafe { pointer_of(*named) } as u64;
                if function == 0 {
                    Arg::Null
                } else {
                    match ask(Ask::Callback {
                        function,
                        data,
                        params,
                        data_at: *data_at,
                    })? {
                        Answer::Callback(id) => {
                            Arg::Value(ByteBuf::from(id.to_le_bytes().to_vec()))
                        }
                        _ => {
                            return Err(CallError::Unsupported(format!(
                                "{}: no number for its callback",
                                f.name
                            )));
                        }
                    }
                }
            }
            Wire::Image => {
                // SAFETY: as the caller of `Client::call` promises.
                let ptr = unsafe { pointer_of(*a) };
                if ptr.is_null() {
                    Arg::Null
                } else {
                    // SAFETY: as above.
                    unsafe { image_arg(ptr, ask) }.map_err(|e| match e {
                        CallError::Unsupported(why) => {
                            CallError::Unsupported(format!("{} `{}`: {why}", f.name, p.name))
                        }
                        e => e,
                    })?
                }
            }
            // SAFETY: as the caller of `Client::call` promises.
            wire => unsafe { encode_arg(f, p, wire, *a, args) }.map_err(CallError::Unsupported)?,
        };
        out.push(arg);
    }
    Ok(out)
}

/// A launch's arguments: each `args[i]` read for as many bytes as the
/// kernel's parameter `i` has.
unsafe fn kernel_args(
    f: &CallPlan,
    by: u16,
    kernel: KernelRef,
    a: *const u8,
    args: &[*const u8],
    ask: &mut Asker,
) -> Result<Arg, CallError> {
    // SAFETY (all reads): as the caller of `Client::call` promises.
    let array = unsafe { pointer_of(a) }.cast::<*const u8>();
    let named = args
        .get(usize::from(by))
        .ok_or_else(|| CallError::Unsupported(format!("{}: no parameter {by}", f.name)))?;
    if array.is_null() {
        return Ok(Arg::Null);
    }
    let value = unsafe { named.cast::<u64>().read_unaligned() };
    // A kernel the real libraries do not know: its launch fails on its own.
    let Answer::ParamSizes(Some(sizes)) = ask(Ask::KernelParams(kernel, value))? else {
        return Ok(Arg::Null);
    };
    let mut out = Vec::with_capacity(sizes.len());
    for (i, size) in sizes.iter().enumerate() {
        let p = unsafe { array.add(i).read_unaligned() };
        if p.is_null() {
            return Err(CallError::Unsupported(format!(
                "{}: kernel argument {i} is null",
                f.name
            )));
        }
        out.push(ByteBuf::from(unsafe { bytes_at(p, *size as usize) }));
    }
    Ok(Arg::KernelArgs(out))
}

/// A graph kernel node's parameters (`layout`: the struct's size and the
/// offsets of its kernel, argument array and `extra` fields, and how the
/// kernel is named): the struct, and its kernel's arguments, each as long
/// as the server says the kernel's parameter is.
///
/// # Safety
/// `a` as for [`Client::call`]: the address of a pointer to the struct.
unsafe fn kernel_node(
    f: &CallPlan,
    p: &ParamPlan,
    layout: (u32, u32, KernelRef, u32, u32),
    a: *const u8,
    ask: &mut Asker,
) -> Result<Arg, CallError> {
    let (size, func, kernel, at, extra) = layout;
    let refuse = |why: &str| CallError::Unsupported(format!("{} `{}`: {why}", f.name, p.name));
    // SAFETY (all reads): as the caller promises; the struct is `size`
    // bytes, and its argument array holds one pointer per parameter.
    let ptr = unsafe { pointer_of(a) };
    if ptr.is_null() {
        return Ok(Arg::Null);
    }
    let bytes = unsafe { bytes_at(ptr, size as usize) };
    let field = |at: u32| {
        bytes
            .get(at as usize..at as usize + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    if field(extra) != 0 {
        return Err(refuse("`extra` arguments (not sent yet)"));
    }
    let (value, array) = (field(func), field(at) as *const *const u8);
    if value == 0 {
        return Err(refuse("no kernel in `func`"));
    }
    let mut list = Vec::new();
    if let Answer::ParamSizes(Some(sizes)) = ask(Ask::KernelParams(kernel, value))? {
        if array.is_null() && !sizes.is_empty() {
            return Err(refuse("no arguments for a kernel that has parameters"));
        }
        for (i, len) in sizes.iter().enumerate() {
            let arg = unsafe { array.add(i).read_unaligned() };
            if arg.is_null() {
                return Err(refuse(&format!("kernel argument {i} is null")));
            }
            list.push(ByteBuf::from(unsafe { bytes_at(arg, *len as usize) }));
        }
    }
    Ok(Arg::KernelNode {
        bytes: ByteBuf::from(bytes),
        args: list,
    })
}

/// `cuLaunchKernel`'s `extra` list: its buffer's bytes.
///
/// # Safety
/// `list` points to `CU_LAUNCH_PARAM_*` pairs ending with
/// `CU_LAUNCH_PARAM_END`, as the driver requires.
unsafe fn launch_extra(list: *const u64) -> Result<Arg, String> {
    // `CU_LAUNCH_PARAM_END`, `_BUFFER_POINTER`, `_BUFFER_SIZE`.
    const END: u64 = 0;
    const POINTER: u64 = 1;
    const SIZE: u64 = 2;
    let (mut buffer, mut size) = (None, None);
    let mut ended = false;
    for i in 0..16 {
        // SAFETY: as the caller promises: pairs up to the end.
        let key = unsafe { list.add(2 * i).read_unaligned() };
        if key == END {
            ended = true;
            break;
        }
        // SAFETY: as above.
        let value = unsafe { list.add(2 * i + 1).read_unaligned() };
        match key {
            POINTER => buffer = Some(value as *const u8),
            // SAFETY: the size's own `size_t`, as the driver reads it.
            SIZE if value != 0 => size = Some(unsafe { (value as *const usize).read_unaligned() }),
            _ => return Err(format!("a launch parameter {key:#x} (not sent)")),
        }
    }
    if !ended {
        return Err("a launch list of over 16 pairs".into());
    }
    match (buffer, size) {
        // No arguments: a kernel without parameters.
        (None, None) => Ok(Arg::Bytes(ByteBuf::new())),
        (Some(b), Some(n)) if !b.is_null() && n <= crate::plan::MAX_LAUNCH_BUFFER => {
            // SAFETY: the buffer holds `n` bytes, as its size says.
            Ok(Arg::Bytes(ByteBuf::from(unsafe { bytes_at(b, n) })))
        }
        (Some(_), Some(n)) => Err(format!("a launch buffer of {n} bytes")),
        _ => Err("a launch list without a buffer and its size".into()),
    }
}

/// A module image: a `__cudaRegisterFatBinary` wrapper, a fat binary, an
/// ELF cubin or PTX text, sized by its own header.
unsafe fn image_arg(ptr: *const u8, ask: &mut Asker) -> Result<Arg, CallError> {
    const WRAPPER: u32 = 0x4662_43b1;
    const FATBIN: u32 = 0xba55_ed50;
    const ELF: u32 = 0x464c_457f;
    // SAFETY (all reads): the image is as its magic number says.
    let word = |p: *const u8, at: usize| unsafe { p.add(at).cast::<u32>().read_unaligned() };
    let (wrapper, data) = if word(ptr, 0) == WRAPPER {
        let data = unsafe { ptr.add(8).cast::<*const u8>().read_unaligned() };
        (Some((WRAPPER, word(ptr, 4))), data)
    } else {
        (None, ptr)
    };
    if data.is_null() {
        return Err(CallError::Unsupported(
            "a module image wrapper with no image".into(),
        ));
    }
    let len: u64 = match word(data, 0) {
        FATBIN => {
            let header = u64::from(unsafe { data.add(6).cast::<u16>().read_unaligned() });
            let body = unsafe { data.add(8).cast::<u64>().read_unaligned() };
            header.saturating_add(body)
        }
        // The end of whatever comes last: the section headers, the program
        // headers (nvcc puts them after the sections), or a section's bytes.
        ELF => unsafe { elf_len(data) },
        // PTX text.
        _ => unsafe { CStr::from_ptr(data.cast()) }
            .to_bytes_with_nul()
            .len() as u64,
    };
    if len > wire::MAX_PAYLOAD as u64 {
        return Err(CallError::Unsupported(format!(
            "a module image of {len} bytes: over the frame limit"
        )));
    }
    // SAFETY: the image is `len` bytes long, as its header says.
    let image = unsafe { std::slice::from_raw_parts(data, len as usize) };
    if image.len() >= MODULE_CACHE_MIN {
        let hash = *blake3::hash(image).as_bytes();
        if let Answer::HasModule(true) = ask(Ask::HasModule(hash))? {
            return Ok(Arg::Module { wrapper, hash });
        }
    }
    Ok(Arg::Image {
        wrapper,
        bytes: ByteBuf::from(image.to_vec()),
    })
}

/// One argument as `wire` says it crosses.
unsafe fn encode_arg(
    f: &CallPlan,
    p: &ParamPlan,
    wire: &Wire,
    a: *const u8,
    args: &[*const u8],
) -> Result<Arg, String> {
    // SAFETY (all reads): as the caller of `Client::call` promises.
    Ok(match wire {
        Wire::Value => Arg::Value(ByteBuf::from(unsafe { bytes_at(a, p.size as usize) })),
        Wire::InString { .. } => {
            let ptr = unsafe { pointer_of(a) };
            if ptr.is_null() {
                Arg::Null
            } else {
                let s = unsafe { CStr::from_ptr(ptr as *const c_char) };
                Arg::Bytes(ByteBuf::from(s.to_bytes_with_nul().to_vec()))
            }
        }
        Wire::Host {
            dir,
            elem,
            count,
            addresses,
            nested,
            ..
        } => {
            let ptr = unsafe { pointer_of(a) };
            if ptr.is_null() {
                Arg::Null
            } else {
                let len = unsafe { host_len(f, *elem, count, args) }
                    .map_err(|e| format!("{} `{}`: {e}", f.name, p.name))?;
                match dir {
                    Dir::Out => Arg::Out(len as u64),
                    Dir::In | Dir::InOut => {
                        let bytes = unsafe { bytes_at(ptr, len) };
                        if let Some(at) = crate::plan::address_at(&bytes, *elem, addresses) {
                            return Err(format!(
                                "{} `{}`: a host address at byte {at} of what it points to (only null is sent)",
                                f.name, p.name
                            ));
                        }
                        if nested.is_empty() {
                            Arg::Bytes(ByteBuf::from(bytes))
                        } else {
                            let mut parts = Vec::with_capacity(nested.len());
                            for n in nested {
                                let (Some(at), Some(len)) =
                                    (n.pointer_in(&bytes), n.len_in(&bytes))
                                else {
                                    return Err(format!("{} `{}`: a short struct", f.name, p.name));
                                };
                                if len > wire::MAX_PAYLOAD as u64 {
                                    return Err(format!(
                                        "{} `{}`: an array of {len} bytes",
                                        f.name, p.name
                                    ));
                                }
                                let part = if at == 0 || len == 0 {
                                    Vec::new()
                                } else {
                                    // SAFETY: the struct points to `len` bytes, as its
                                    // count says.
                                    unsafe { bytes_at(at as *const u8, len as usize) }
                                };
                                parts.push(ByteBuf::from(part));
                            }
                            Arg::WithParts {
                                bytes: ByteBuf::from(bytes),
                                parts,
                            }
                        }
                    }
                }
            }
        }
        Wire::OutString { .. } => {
            if unsafe { pointer_of(a) }.is_null() {
                Arg::Null
            } else {
                Arg::Out(8)
            }
        }
        Wire::Symbol { .. } => Arg::Symbol(unsafe { a.cast::<u64>().read_unaligned() }),
        // The server decides the side: the address, and what is there if
        // this process can read it.
        Wire::ByDescriptor { .. } => {
            let ptr = unsafe { pointer_of(a) };
            if ptr.is_null() {
                Arg::Null
            } else {
                Arg::Probed {
                    address: ptr as u64,
                    bytes: ByteBuf::from(readable(ptr, wire.probe_len() as usize)),
                }
            }
        }
        // The kernel's arguments packed in one buffer.
        Wire::LaunchExtra => {
            let list = unsafe { pointer_of(a) }.cast::<u64>();
            if list.is_null() {
                Arg::Null
            } else {
                unsafe { launch_extra(list) }
                    .map_err(|why| format!("{} `{}`: {why}", f.name, p.name))?
            }
        }
        // Numbered by the client (`encode`).
        Wire::Callback { .. } => return Err("a callback outside a call".into()),
        Wire::Image | Wire::ByMode { .. } => {
            return Err(format!("{} `{}`: out of place", f.name, p.name));
        }
        Wire::KernelArgs { .. } | Wire::KernelNode { .. } => {
            return Err(format!(
                "{} `{}`: kernel arguments out of place",
                f.name, p.name
            ));
        }
        Wire::Sided {
            by,
            host_when,
            device_when,
            address_when,
            host,
        } => {
            let (bp, ba) = f
                .params
                .get(usize::from(*by))
                .zip(args.get(usize::from(*by)))
                .ok_or_else(|| format!("{}: no parameter {by}", f.name))?;
            let side = unsafe { integer_of(bp, *ba) } as i64;
            if host_when.contains(&side) {
                unsafe { encode_arg(f, p, host, a, args) }?
            } else if device_when.contains(&side) {
                unsafe { encode_arg(f, p, &Wire::Value, a, args) }?
            } else if address_when.contains(&side) {
                unsafe { probe_address(f, p, host, a, args) }?
            } else {
                return Err(format!(
                    "{} `{}`: `{}` = {side} leaves the side to the address (not sent yet)",
                    f.name, p.name, bp.name
                ));
            }
        }
        Wire::Addressed { host } => unsafe { probe_address(f, p, host, a, args) }?,
    })
}

/// Memory whose side its address says. Memory this process cannot read
/// is not its own: the address goes as a value, for the server's driver to
/// take as its device memory or refuse (and nothing comes back: such a
/// copy may be queued). Memory it can read goes as the address with, for
/// an input, its bytes; the server refuses an address that is its device
/// memory too (two processes' unified addresses met).
///
/// # Safety
/// `a` and `args` as for [`Client::call`].
unsafe fn probe_address(
    f: &CallPlan,
    p: &ParamPlan,
    host: &Wire,
    a: *const u8,
    args: &[*const u8],
) -> Result<Arg, String> {
    // SAFETY: as the caller promises (a pointer).
    let ptr = unsafe { pointer_of(a) };
    let Wire::Host {
        dir, elem, count, ..
    } = host
    else {
        return Err(format!("{} `{}`: out of place", f.name, p.name));
    };
    if ptr.is_null() {
        return Ok(Arg::Null);
    }
    if readable(ptr, 1).is_empty() {
        return Ok(Arg::Value(ByteBuf::from(
            (ptr as u64).to_le_bytes().to_vec(),
        )));
    }
    let bytes = match dir {
        Dir::Out => Vec::new(),
        Dir::In | Dir::InOut => {
            // SAFETY: as the caller promises.
            let len = unsafe { host_len(f, *elem, count, args) }
                .map_err(|e| format!("{} `{}`: {e}", f.name, p.name))?;
            readable_all(ptr, len).unwrap_or_default()
        }
    };
    Ok(Arg::Probed {
        address: ptr as u64,
        bytes: ByteBuf::from(bytes),
    })
}

/// Copies what the call wrote into the caller's memory: no more than the
/// caller's memory holds by the plan (the size sent before the call).
unsafe fn write_back(p: &ParamPlan, arg: *const u8, bytes: &[u8], sent: Option<&[u8]>) {
    if !p.wire.host_dir().is_some_and(|d| d != Dir::In) {
        return;
    }
    // SAFETY: as the caller of `Client::call` promises.
    let ptr = unsafe { pointer_of(arg) };
    if ptr.is_null() {
        return;
    }
    if matches!(p.wire, Wire::OutString { .. }) {
        let text = bytes.strip_suffix(&[0]).map_or(std::ptr::null(), intern);
        // SAFETY: a `const char **` the call sets, as its plan says.
        unsafe { ptr.cast::<*const c_char>().write_unaligned(text) };
        return;
    }
    // SAFETY: `bytes` is no longer than the memory the caller's arguments
    // said is there before the call.
    unsafe {
        if let Some(sent) = sent {
            // Only the bytes the call changed from what was sent: a library
            // that fills an older, smaller version of a struct writes no
            // further than it, and bytes between a 2D copy's rows stay the
            // caller's own, however they changed meanwhile.
            for (i, b) in bytes.iter().enumerate() {
                if sent.get(i) != Some(b) {
                    ptr.add(i).write(*b);
                }
            }
        } else {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nvcc's cubins put the program headers after the section headers: an
    /// image is as long as its furthest part, not its section table's end.
    #[test]
    fn an_elf_image_ends_where_its_furthest_part_ends() {
        let mut elf = vec![0u8; 3580];
        elf[..4].copy_from_slice(&0x464c_457f_u32.to_le_bytes());
        let put16 =
            |e: &mut Vec<u8>, at: usize, v: u16| e[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let put64 =
            |e: &mut Vec<u8>, at: usize, v: u64| e[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put64(&mut elf, 0x28, 2340); // section headers at 2340
        put16(&mut elf, 0x3a, 64);
        put16(&mut elf, 0x3c, 15); // … 15 of 64 bytes: to 3300
        put64(&mut elf, 0x20, 3300); // program headers at 3300
        put16(&mut elf, 0x36, 56);
        put16(&mut elf, 0x38, 5); // … 5 of 56 bytes: to 3580
        // SAFETY: a buffer holding the whole image.
        assert_eq!(unsafe { elf_len(elf.as_ptr()) }, 3580);
        // A section whose bytes lie beyond both tables.
        let mut big = elf.clone();
        big.resize(8192, 0);
        let header = 2340 + 3 * 64;
        big[header + 4..header + 8].copy_from_slice(&1u32.to_le_bytes()); // PROGBITS
        put64(&mut big, header + 0x18, 4000);
        put64(&mut big, header + 0x20, 1000);
        // SAFETY: as above.
        assert_eq!(unsafe { elf_len(big.as_ptr()) }, 5000);
    }

    /// Reading and writing this process's memory through the kernel: as
    /// much as is mapped, never a fault — a scalar at the very end of
    /// readable memory, an address mapped to nothing, a page that may not
    /// be touched.
    #[test]
    fn memory_is_read_and_written_only_where_it_is_mapped() {
        const PAGE: usize = 4096;
        // SAFETY: a private anonymous mapping of our own, its second page
        // made inaccessible.
        let two = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                2 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            libc::mprotect(p.cast::<u8>().add(PAGE).cast(), PAGE, libc::PROT_NONE);
            p.cast::<u8>()
        };
        let last = two.wrapping_add(PAGE - 4);
        // SAFETY: the last 4 bytes of the readable page.
        unsafe { last.cast::<[u8; 4]>().write([1, 2, 3, 4]) };
        assert_eq!(
            readable(last, 16),
            [1, 2, 3, 4],
            "up to the end of the page"
        );
        assert_eq!(readable(last, 4), [1, 2, 3, 4]);
        assert!(
            readable(two.wrapping_add(PAGE), 8).is_empty(),
            "not readable"
        );
        assert!(readable(0x10 as *const u8, 8).is_empty(), "not mapped");
        assert_eq!(readable_all(last, 4), Some(vec![1, 2, 3, 4]));
        assert_eq!(readable_all(last, 5), None, "not all of it");
        assert_eq!(
            readable_all(two.wrapping_add(PAGE), 1 << 40),
            None,
            "no allocation"
        );
        write_readable(last, &[9, 9]);
        write_readable(two.wrapping_add(PAGE), &[9; 8]);
        write_readable(0x10 as *mut u8, &[9; 8]);
        assert_eq!(readable(last, 4), [9, 9, 3, 4]);
        // SAFETY: our mapping.
        unsafe { libc::munmap(two.cast(), 2 * PAGE) };
    }
}
