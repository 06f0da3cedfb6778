//! The shared-memory transport, for a client and server on one host.
//!
//! A client that reaches its server over a Unix socket asks, in its hello,
//! to go on in shared memory: it creates an anonymous memory file
//! (`memfd_create`), sealed against shrinking, and passes it over the
//! socket (`SCM_RIGHTS`); both map it and from then on every frame travels
//! through two byte rings in it, one each way — the same frames as on a
//! socket ([`crate::wire`]), so nothing above the transport changes. A
//! waiting side spins briefly (a reply to a short call arrives within
//! microseconds), then sleeps on a futex in the shared page; the socket
//! stays open as the sign of life: a peer that exits or is killed closes
//! it, and a waiting side looks at it whenever its futex wait times out.
//!
//! The server treats the memory as the client's: every position read from
//! it is checked against the ring's capacity before it is used, all copies
//! are bounded by the capacity, and the seals are checked before the file
//! is mapped (a client cannot shrink it under the server's feet). A
//! corrupt ring ends the session, as a bad frame does.
//!
//! The OS parts are `rustix`'s (memfd, seals, mmap, futex, `SCM_RIGHTS`,
//! poll); what this module adds is the ring protocol between them.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use rustix::thread::futex;

/// Each ring's capacity a client asks for: a 64 MiB copy crosses in eight
/// pieces, the reader taking each as the writer fills the next.
pub const DEFAULT_CAPACITY: u32 = 8 << 20;
/// The smallest ring the server accepts.
pub const MIN_CAPACITY: u32 = 64 << 10;
/// The largest ring the server accepts.
pub const MAX_CAPACITY: u32 = 64 << 20;

/// The two rings' headers, then their data.
const HEADER: usize = 4096;

/// How long a waiting side spins before it sleeps: a short call's answer
/// comes well within it, and a wait that ends while spinning costs no
/// system call on either side.
const SPIN: Duration = Duration::from_micros(100);

/// How long a sleeping side sleeps before it looks at the socket.
const NAP: Duration = Duration::from_millis(50);

/// One ring's control words (at the start of its 128-byte slot in the
/// header page): the writer's and the reader's positions in separate cache
/// lines. Every field is atomic, padding included: the peer may write any
/// of it at any time.
#[repr(C)]
struct Ring {
    /// Bytes ever written (the writer's).
    tail: AtomicU64,
    /// Bumped when `tail` moves and the reader sleeps (its futex word).
    data_seq: AtomicU32,
    /// The reader is (about to be) asleep on `data_seq`.
    reader_sleeps: AtomicU32,
    _pad0: [AtomicU64; 6],
    /// Bytes ever read (the reader's).
    head: AtomicU64,
    /// Bumped when `head` moves and the writer sleeps.
    space_seq: AtomicU32,
    /// The writer is (about to be) asleep on `space_seq`.
    writer_sleeps: AtomicU32,
    _pad1: [AtomicU64; 6],
}

/// Set in the header's last word by a side that is done.
const CLOSED_AT: usize = HEADER - 64;

/// Which end of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Writes ring 0, reads ring 1.
    Client,
    /// Writes ring 1, reads ring 0.
    Server,
}

/// A mapping of a file (the shared one, or a cached module image).
pub(crate) struct Mapping {
    base: *mut u8,
    len: usize,
}

impl Mapping {
    /// A private, writable copy-on-write mapping of all of `file` (a
    /// module image: nothing is read until the real library reads it, and
    /// a write, if one came, would stay this process's).
    pub(crate) fn private(file: &std::fs::File) -> io::Result<Mapping> {
        let len = usize::try_from(file.metadata()?.len())
            .ok()
            .filter(|l| *l > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "an empty file"))?;
        map(file, len, MapFlags::PRIVATE)
    }

    /// Its first byte.
    pub(crate) fn base(&self) -> *mut u8 {
        self.base
    }

    /// Its length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping this struct made, unmapped once.
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
    }
}

/// Frames over shared memory: [`Read`] and [`Write`] like a socket.
pub struct ShmStream {
    map: Mapping,
    capacity: u64,
    side: Side,
    /// This side's own positions (the shared copies are for the peer; a
    /// peer's writes to them are never read back as ours).
    written: u64,
    read: u64,
    /// The connection, kept open as the sign of life.
    socket: OwnedFd,
    /// The process that set the stream up: a forked child's copy of it is
    /// the parent's, and dropping that copy says nothing to the peer.
    pid: u32,
    spin: bool,
}

// SAFETY: the mapping is owned by the stream and used through `&mut self`.
unsafe impl Send for ShmStream {}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the shared-memory ring is corrupt: {what}"),
    )
}

fn region_len(capacity: u32) -> usize {
    HEADER + 2 * capacity as usize
}

/// Whether `capacity` is one the server accepts: a power of two within
/// [`MIN_CAPACITY`] and [`MAX_CAPACITY`].
pub fn valid_capacity(capacity: u32) -> bool {
    capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
}

/// Whether `socket` is a Unix socket (the only kind shared memory is
/// offered on: its peer is on this host).
pub fn is_unix_socket(socket: impl AsFd) -> bool {
    rustix::net::getsockname(socket)
        .is_ok_and(|a| a.address_family() == rustix::net::AddressFamily::UNIX)
}

/// A new readable and writable mapping (`SHARED` or `PRIVATE`) of the
/// first `len` bytes of `fd`.
fn map(fd: impl AsFd, len: usize, flags: MapFlags) -> io::Result<Mapping> {
    // SAFETY: a new mapping of a file of at least `len` bytes.
    let base = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            flags,
            fd,
            0,
        )
    }?;
    Ok(Mapping {
        base: base.cast(),
        len,
    })
}

impl ShmStream {
    /// The client's side: creates the shared file (rings of `capacity`
    /// bytes each), sends it over `socket` and returns the stream. The
    /// server answers on the socket whether it took it.
    pub fn offer(socket: OwnedFd, capacity: u32) -> io::Result<ShmStream> {
        if !valid_capacity(capacity) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a ring of {capacity} bytes (a power of two from 64 KiB to 64 MiB)"),
            ));
        }
        let len = region_len(capacity);
        let file = rustix::fs::memfd_create(
            "cudastub-remote",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        rustix::fs::ftruncate(&file, len as u64)?;
        rustix::fs::fcntl_add_seals(&file, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        let map = map(&file, len, MapFlags::SHARED)?;
        let fds = [file.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        let sent = rustix::net::sendmsg(
            &socket,
            &[IoSlice::new(b"M")],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        if sent != 1 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the shared memory was not sent",
            ));
        }
        Ok(ShmStream::new(map, capacity, Side::Client, socket))
    }

    /// The server's side: receives the client's shared file on `socket`
    /// (the one byte [`ShmStream::offer`] sends with it), checks its seals
    /// and size, and maps it.
    ///
    /// The offer's byte is taken off the socket first, whatever follows
    /// fails: the client goes on on the socket after a refusal, and a byte
    /// left unread there would be taken for the start of its next frame.
    pub fn accept(socket: impl AsFd, capacity: u32) -> io::Result<ShmStream> {
        let mut byte = [0u8; 1];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let (got, mut files) = loop {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            match rustix::net::recvmsg(
                &socket,
                &mut [IoSliceMut::new(&mut byte)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(got) => {
                    let mut files: Vec<OwnedFd> = Vec::new();
                    for message in control.drain() {
                        if let RecvAncillaryMessage::ScmRights(fds) = message {
                            files.extend(fds);
                        }
                    }
                    break (got.bytes, files);
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if got != 1 || byte != *b"M" || files.len() != 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the client sent no shared memory",
            ));
        }
        if !valid_capacity(capacity) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a ring of {capacity} bytes is refused"),
            ));
        }
        let file = files.remove(0);
        let seals = rustix::fs::fcntl_get_seals(&file)?;
        if !seals.contains(SealFlags::SHRINK) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the shared memory can shrink (not sealed)",
            ));
        }
        let len = region_len(capacity);
        let size = rustix::fs::fstat(&file)?.st_size;
        if u64::try_from(size).ok() != Some(len as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the shared memory is {size} bytes, not {len}"),
            ));
        }
        let map = map(&file, len, MapFlags::SHARED)?;
        let socket = socket.as_fd().try_clone_to_owned()?;
        Ok(ShmStream::new(map, capacity, Side::Server, socket))
    }

    fn new(map: Mapping, capacity: u32, side: Side, socket: OwnedFd) -> ShmStream {
        ShmStream {
            map,
            capacity: u64::from(capacity),
            side,
            written: 0,
            read: 0,
            socket,
            pid: std::process::id(),
            // With one CPU the peer cannot run while we spin.
            spin: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
        }
    }

    /// Ring `index`'s control words. The reference is not tied to `self`
    /// (the stream updates its own positions while holding it): it lives in
    /// the mapping, which stays where it is for the stream's life.
    fn ring<'a>(&self, index: usize) -> &'a Ring {
        // SAFETY: the header page holds two `Ring`s at 128-byte offsets,
        // mapped until the stream is dropped; every field is an atomic, and
        // the references never outlive the stream's methods.
        unsafe { &*self.map.base.add(index * 128).cast::<Ring>() }
    }

    fn closed(&self) -> &AtomicU32 {
        // SAFETY: an aligned word in the mapped header page.
        unsafe { &*self.map.base.add(CLOSED_AT).cast::<AtomicU32>() }
    }

    fn data(&self, index: usize) -> *mut u8 {
        // SAFETY: the data areas follow the header, `capacity` bytes each.
        unsafe { self.map.base.add(HEADER + index * self.capacity as usize) }
    }

    fn out_index(&self) -> usize {
        match self.side {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    /// Whether the peer has gone: it said so, or its end of the socket is
    /// closed.
    fn peer_gone(&self) -> bool {
        if self.closed().load(Ordering::Acquire) != 0 {
            return true;
        }
        use rustix::event::{PollFd, PollFlags};
        let mut fds = [PollFd::new(&self.socket, PollFlags::IN | PollFlags::RDHUP)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(0) => false,
            Ok(_) => {
                let r = fds[0].revents();
                if r.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::RDHUP) {
                    return true;
                }
                // Readable: nothing is sent on the socket any more, so it
                // is the end of the stream (or a misbehaving peer).
                let mut b = [0u8; 1];
                !matches!(
                    rustix::net::recv(&self.socket, &mut b, RecvFlags::PEEK | RecvFlags::DONTWAIT),
                    Err(rustix::io::Errno::AGAIN)
                )
            }
            // A signal arrived: nothing is known, look again later.
            Err(rustix::io::Errno::INTR) => false,
            Err(_) => true,
        }
    }

    /// Waits until `ready` (or the peer is gone: `Err` then, unless `ready`
    /// holds after all). Spins first, then sleeps on `seq`, announcing it
    /// in `sleeps`.
    fn wait(
        &self,
        ready: &dyn Fn() -> bool,
        seq: &AtomicU32,
        sleeps: &AtomicU32,
    ) -> io::Result<()> {
        if self.spin {
            let start = Instant::now();
            while start.elapsed() < SPIN {
                for _ in 0..64 {
                    if ready() {
                        return Ok(());
                    }
                    std::hint::spin_loop();
                }
            }
        }
        let nap = futex::Timespec {
            tv_sec: 0,
            tv_nsec: NAP.as_nanos() as _,
        };
        loop {
            sleeps.store(1, Ordering::SeqCst);
            // Paired with `notify`'s: either it sees `sleeps` set, or the
            // check below sees what it published.
            fence(Ordering::SeqCst);
            // Read before the check: a wake-up after it changes the word,
            // and the futex then does not sleep.
            let s = seq.load(Ordering::SeqCst);
            if ready() {
                sleeps.store(0, Ordering::SeqCst);
                return Ok(());
            }
            // EAGAIN (the word moved), ETIMEDOUT, EINTR: look again.
            let _ = futex::wait(seq, futex::Flags::empty(), s, Some(&nap));
            sleeps.store(0, Ordering::SeqCst);
            if ready() {
                return Ok(());
            }
            if self.peer_gone() {
                return if ready() {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "the peer is gone",
                    ))
                };
            }
        }
    }

    fn notify(seq: &AtomicU32, sleeps: &AtomicU32) {
        fence(Ordering::SeqCst);
        if sleeps.load(Ordering::SeqCst) != 0 {
            seq.fetch_add(1, Ordering::SeqCst);
            let _ = futex::wake(seq, futex::Flags::empty(), 1);
        }
    }
}

impl Read for ShmStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let index = 1 - self.out_index();
        let cap = self.capacity;
        let ring = self.ring(index);
        let available = |r: &Ring| r.tail.load(Ordering::Acquire).wrapping_sub(self.read);
        let mut n = available(ring);
        if n == 0 {
            let ready = || available(ring) != 0 || self.closed().load(Ordering::Acquire) != 0;
            match self.wait(&ready, &ring.data_seq, &ring.reader_sleeps) {
                Ok(()) => {}
                // The peer is gone and wrote nothing more: the end.
                Err(_) => return Ok(0),
            }
            n = available(ring);
            if n == 0 {
                return Ok(0);
            }
        }
        if n > cap {
            return Err(corrupt("more unread bytes than the ring holds"));
        }
        let n = n.min(buf.len() as u64) as usize;
        let at = (self.read % cap) as usize;
        let first = n.min(cap as usize - at);
        let data = self.data(index);
        // SAFETY: both pieces lie within the ring's data (at < cap, first
        // ≤ cap - at, n - first < cap); the writer does not touch bytes
        // between `head` and `tail`.
        unsafe {
            std::ptr::copy_nonoverlapping(data.add(at), buf.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(data, buf.as_mut_ptr().add(first), n - first);
        }
        self.read += n as u64;
        ring.head.store(self.read, Ordering::Release);
        Self::notify(&ring.space_seq, &ring.writer_sleeps);
        Ok(n)
    }
}

impl Write for ShmStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let index = self.out_index();
        let cap = self.capacity;
        let ring = self.ring(index);
        let free = |r: &Ring| -> io::Result<u64> {
            let used = self.written.wrapping_sub(r.head.load(Ordering::Acquire));
            if used > cap {
                return Err(corrupt("the reader is ahead of the writer"));
            }
            Ok(cap - used)
        };
        let mut room = free(ring)?;
        if room == 0 {
            // A corrupt position ends the wait too: `free` then says so.
            let ready = || !matches!(free(ring), Ok(0)) || self.peer_gone_flag();
            self.wait(&ready, &ring.space_seq, &ring.writer_sleeps)?;
            if self.peer_gone_flag() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the peer is gone",
                ));
            }
            room = free(ring)?;
        }
        let n = room.min(buf.len() as u64) as usize;
        let at = (self.written % cap) as usize;
        let first = n.min(cap as usize - at);
        let data = self.data(index);
        // SAFETY: as in `read`: within the ring's data, in bytes the reader
        // has consumed.
        unsafe {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), data.add(at), first);
            std::ptr::copy_nonoverlapping(buf.as_ptr().add(first), data, n - first);
        }
        self.written += n as u64;
        ring.tail.store(self.written, Ordering::Release);
        Self::notify(&ring.data_seq, &ring.reader_sleeps);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ShmStream {
    fn peer_gone_flag(&self) -> bool {
        self.closed().load(Ordering::Acquire) != 0
    }

    /// Which transport this is, for diagnostics.
    pub fn side(&self) -> Side {
        self.side
    }
}

impl Drop for ShmStream {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            return;
        }
        self.closed().store(1, Ordering::Release);
        for i in 0..2 {
            let ring = self.ring(i);
            for seq in [&ring.data_seq, &ring.space_seq] {
                seq.fetch_add(1, Ordering::SeqCst);
                let _ = futex::wake(seq, futex::Flags::empty(), 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(capacity: u32) -> (ShmStream, ShmStream) {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let client = ShmStream::offer(a.into(), capacity).expect("offer");
        let server = ShmStream::accept(&b, capacity).expect("accept");
        (client, server)
    }

    #[test]
    fn frames_cross_both_ways_larger_than_the_ring() {
        let (mut client, mut server) = pair(MIN_CAPACITY);
        let big: Vec<u8> = (0..(MIN_CAPACITY as usize * 5 + 123))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let sent = big.clone();
        let t = std::thread::spawn(move || {
            let request: crate::wire::Request = crate::wire::receive(&mut server)
                .expect("receive")
                .expect("a frame");
            crate::wire::send(&mut server, &request).expect("echo");
            // The client's end closes: the server reads the end of stream.
            let end: Option<crate::wire::Request> =
                crate::wire::receive(&mut server).expect("the end");
            assert!(end.is_none());
        });
        let request = crate::wire::Request::Call {
            library: 1,
            function: 2,
            args: vec![crate::wire::Arg::Bytes(serde_bytes::ByteBuf::from(sent))],
            thread: 3,
            host: Default::default(),
        };
        crate::wire::send(&mut client, &request).expect("send");
        let back: crate::wire::Request = crate::wire::receive(&mut client)
            .expect("receive")
            .expect("a frame");
        assert_eq!(back, request);
        if let crate::wire::Request::Call { args, .. } = back {
            assert_eq!(
                args[0],
                crate::wire::Arg::Bytes(serde_bytes::ByteBuf::from(big))
            );
        }
        drop(client);
        t.join().expect("server thread");
    }

    #[test]
    fn a_peer_that_goes_away_ends_a_wait() {
        let (mut client, mut server) = pair(MIN_CAPACITY);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            // Gone as a killed process goes, without a word on the ring:
            // only the socket closes (a copy from another process says
            // nothing when dropped).
            server.pid = 0;
            drop(server);
        });
        let started = Instant::now();
        let got: io::Result<Option<crate::wire::Reply>> = crate::wire::receive(&mut client);
        assert!(matches!(got, Ok(None)), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        t.join().expect("thread");
    }

    #[test]
    fn a_corrupt_ring_is_an_error_not_a_wild_copy() {
        let (client, mut server) = pair(MIN_CAPACITY);
        // The client claims more bytes than the ring holds.
        client.ring(0).tail.store(u64::MAX / 2, Ordering::Release);
        let mut buf = [0u8; 16];
        let e = server.read(&mut buf).expect_err("corrupt");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }

    #[test]
    fn unsealed_or_wrong_sized_memory_is_refused() {
        for (seal, size) in [(false, region_len(MIN_CAPACITY)), (true, 4096)] {
            let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
            let file = rustix::fs::memfd_create("t", MemfdFlags::ALLOW_SEALING).expect("memfd");
            rustix::fs::ftruncate(&file, size as u64).expect("size");
            if seal {
                rustix::fs::fcntl_add_seals(&file, SealFlags::SHRINK).expect("seal");
            }
            let fds = [file.as_fd()];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            control.push(SendAncillaryMessage::ScmRights(&fds));
            let a: OwnedFd = a.into();
            rustix::net::sendmsg(&a, &[IoSlice::new(b"M")], &mut control, SendFlags::empty())
                .expect("send");
            let e = ShmStream::accept(&b, MIN_CAPACITY).err().expect("refused");
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        }
        let (_, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        assert!(ShmStream::accept(&b, 3).is_err());
    }

    /// A refused offer leaves the socket in step: the offer's byte is
    /// taken, and the next frame on the socket reads whole.
    #[test]
    fn a_refused_offer_leaves_the_socket_in_step() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let mut a2 = a.try_clone().expect("dup");
        let offer = ShmStream::offer(a.into(), MIN_CAPACITY).expect("offer");
        let hello = crate::wire::Reply::SharedMemory(None);
        crate::wire::send(&mut a2, &hello).expect("a frame after the offer");
        // A capacity the server does not take.
        let e = ShmStream::accept(&b, MIN_CAPACITY * 2)
            .err()
            .expect("refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        let next: crate::wire::Reply = crate::wire::receive(&mut b)
            .expect("read")
            .expect("a frame");
        assert_eq!(next, hello);
        drop(offer);
    }
}
