//! The messages between a client and the server, and how they travel.
//!
//! Messages are `serde` types encoded with `postcard` (compact, varint
//! integers, maintained); each travels as one frame: a 4-byte little-endian
//! length, then the encoding. A frame longer than [`MAX_FRAME`] is refused
//! before anything is allocated, and every length inside a message is
//! bounded by its frame.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_bytes::ByteBuf;

/// The largest frame either side accepts: 1 GiB.
pub const MAX_FRAME: usize = 1 << 30;

/// The most host memory one call carries, leaving room in its frame for the
/// rest of the message (a larger copy is refused, not yet sent in pieces).
pub const MAX_PAYLOAD: usize = MAX_FRAME - (1 << 20);

/// The protocol's version: a client and server of different versions
/// refuse each other in [`Request::Hello`].
pub const PROTOCOL: u32 = 8;

/// Where a server listens or a client connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `unix:/path/to.sock`
    Unix(PathBuf),
    /// `tcp://host:port`
    Tcp(String),
}

impl Endpoint {
    /// Parses `unix:PATH` or `tcp://HOST:PORT`.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("`{text}`: no socket path after `unix:`"));
            }
            Ok(Endpoint::Unix(PathBuf::from(path)))
        } else if let Some(addr) = text.strip_prefix("tcp://") {
            if !addr.contains(':') {
                return Err(format!("`{text}`: expected tcp://HOST:PORT"));
            }
            Ok(Endpoint::Tcp(addr.to_string()))
        } else {
            Err(format!(
                "`{text}`: expected unix:/path/to.sock or tcp://host:port"
            ))
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// What a client sends.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The first message: who the client is.
    Hello {
        /// [`PROTOCOL`].
        protocol: u32,
        /// The token the server requires (TCP), or empty.
        token: String,
        /// The CUDA major of the client's libraries.
        major: u32,
        /// [`crate::plan::MajorPlan::fingerprint`] of the client's plan.
        fingerprint: u64,
        /// Each ring's capacity, when the client asks to go on in shared
        /// memory ([`crate::shm`]; a Unix socket only), or 0.
        shared_memory: u32,
    },
    /// The sizes of a kernel's parameters, in order.
    KernelParams {
        /// How the kernel is named.
        kernel: crate::plan::KernelRef,
        /// The client's value naming it.
        value: u64,
    },
    /// One call, answered with [`Reply::Return`].
    Call {
        /// The library's index in the major's plan.
        library: u16,
        /// The function's index in the library's plan.
        function: u32,
        /// One per parameter.
        args: Vec<Arg>,
        /// The client's thread that made it (see [`Queued::thread`]).
        thread: u32,
        /// Host memory of the client's a graph may read or write.
        host: GraphHost,
    },
    /// Calls queued by the client, in order: not answered.
    Queued(Vec<Queued>),
    /// Whether the server's module cache holds the image of this BLAKE3
    /// hash (answered with [`Reply::HasModule`]): an image it holds is
    /// sent as [`Arg::Module`], by its hash alone.
    HasModule([u8; 32]),
    /// The client's thread of this number ended (not answered): its
    /// server thread ends too, and the number is free for a new thread,
    /// which starts with fresh per-thread state.
    ThreadEnded(u32),
    /// Nothing to call (after the queued calls): answered with a
    /// [`Reply::Return`] of value 0 that carries what every answer does
    /// (the callbacks the libraries called, what graphs wrote).
    Poll,
}

/// A call that returns nothing useful (a launch, an async copy to the
/// device), queued by the client and sent with others: the server makes it
/// in order and answers nothing; a failure is kept as a [`Deferred`] and
/// reported with the next [`Reply::Return`].
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// The library's index in the major's plan.
    pub library: u16,
    /// The function's index in the library's plan.
    pub function: u32,
    /// One per parameter.
    pub args: Vec<Arg>,
    /// The client's thread that made it, numbered by the client from 0:
    /// the server makes each client thread's calls on a thread of its own,
    /// so that CUDA's per-thread state (the current device and context,
    /// the last error, the per-thread default stream) is per client thread
    /// as it is in a process of its own.
    pub thread: u32,
    /// Host memory of the client's a graph may read or write.
    pub host: GraphHost,
}

/// Host memory of the client's that a graph reads or writes: a copy
/// captured into a graph copies from or to a *mirror* of the server's
/// (the client's memory is not the server's), which each launch of the
/// graph refreshes from the client's memory first, and whose bytes the
/// client's memory receives once the launch has run (see
/// [`Reply::Return`]'s `mirrors` and `writes`).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphHost {
    /// For a call a stream capture may record (an async call with a
    /// stream): the client's address of each host-memory argument, by the
    /// parameter's index.
    pub at: Vec<(u16, u64)>,
    /// For a graph's launch: the client's bytes now of the host memory
    /// the graph reads, by the client's address.
    pub refresh: Vec<(u64, ByteBuf)>,
}

/// Host memory of the client's that the session mirrors (see
/// [`GraphHost`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirrored {
    /// The client's address.
    pub address: u64,
    /// Its bytes.
    pub len: u64,
    /// Read by graphs: the client sends its bytes with each launch.
    pub reads: bool,
    /// Written by graphs: the client receives its bytes after.
    pub writes: bool,
}

/// The most client threads a session serves (each a thread of the
/// server's).
pub const MAX_THREADS: u32 = 1024;

/// A queued call that failed: what it returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferred {
    /// The library's index in the major's plan.
    pub library: u16,
    /// The function's index in the library's plan.
    pub function: u32,
    /// Its status.
    pub value: u64,
}

/// A call of a client's callback the server's stand-in received (a host
/// function its stream reached): the client's number for the callback and
/// the callback's arguments (the data pointer's is 0: the client puts its
/// own there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    /// The client's number for the (function, data) pair.
    pub id: u64,
    /// Each of the callback's parameters, as the library passed it.
    pub args: Vec<u64>,
}

/// One argument of a [`Request::Call`].
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arg {
    /// The value itself (little-endian bytes of the value as passed).
    Value(ByteBuf),
    /// A null pointer.
    Null,
    /// Host memory the call reads (and, for `inout`, writes back).
    Bytes(ByteBuf),
    /// Host memory the call writes: its length.
    Out(u64),
    /// A symbol: the client's address (the server's stands in).
    Symbol(u64),
    /// A module image; `wrapper` is `__cudaRegisterFatBinary`'s wrapper's
    /// magic and version when the image came in one.
    Image {
        /// The wrapper's (magic, version).
        wrapper: Option<(u32, u32)>,
        /// The image.
        bytes: ByteBuf,
    },
    /// A launch's arguments, each its bytes.
    KernelArgs(Vec<ByteBuf>),
    /// A struct the call reads with the arrays it points to
    /// ([`crate::plan::Nested`]), one per nested array (empty for null).
    WithParts {
        /// The struct.
        bytes: ByteBuf,
        /// The arrays.
        parts: Vec<ByteBuf>,
    },
    /// An address whose side the server decides
    /// ([`crate::plan::Wire::ByDescriptor`]), with the bytes there the
    /// client could read (none for a device address; fewer than asked at
    /// the end of its mapped memory).
    Probed {
        /// The address.
        address: u64,
        /// The bytes the client read there.
        bytes: ByteBuf,
    },
    /// A graph kernel node's parameters ([`crate::plan::Wire::KernelNode`]):
    /// the struct as the caller has it, and each of its kernel's arguments
    /// (none when the kernel is one the real libraries do not know: the
    /// call fails on its own).
    KernelNode {
        /// The struct.
        bytes: ByteBuf,
        /// The arguments, each its bytes.
        args: Vec<ByteBuf>,
    },
    /// A module image the server's cache holds, by its BLAKE3 hash (the
    /// server hashed it itself when it was sent as [`Arg::Image`]).
    Module {
        /// As [`Arg::Image`]'s.
        wrapper: Option<(u32, u32)>,
        /// The image's hash.
        hash: [u8; 32],
    },
}

/// What the server answers.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The answer to [`Request::Hello`]: accepted.
    Welcome {
        /// The server's name and version, for diagnostics.
        server: String,
        /// Whether the server takes the shared memory the client asked to
        /// go on in: the client then sends it, and the server answers with
        /// [`Reply::SharedMemory`] on the socket.
        shared_memory: bool,
    },
    /// The answer to a call.
    Return {
        /// The returned value (a status), or 0.
        value: u64,
        /// The text of a returned string (a `const char *` return), if any.
        string: Option<ByteBuf>,
        /// The memory the call wrote, per `out`/`inout` parameter: its index
        /// and bytes.
        outputs: Vec<(u16, ByteBuf)>,
        /// The queued calls that failed since the last answer, the first
        /// of each library (later ones of the library are not kept: CUDA
        /// too reports the first asynchronous error).
        deferred: Vec<Deferred>,
        /// The client's callbacks the libraries called since the last
        /// answer, in the order they were called: the client makes these
        /// calls before the call this answers returns.
        callbacks: Vec<Fired>,
        /// The client's host memory mirrored since the last answer.
        mirrors: Vec<Mirrored>,
        /// The bytes graphs that have run wrote to mirrors of the client's
        /// memory (only to mirrors of it it was told of, written `out`):
        /// the client's address and the bytes, which the client writes
        /// there before the call this answers returns.
        writes: Vec<(u64, ByteBuf)>,
        /// For each executable graph made or updated since the last
        /// answer, the host memory it reads (the client's address and
        /// length of each mirror): what the client sends with its launches.
        reads: Vec<(u64, Vec<(u64, u64)>)>,
    },
    /// The answer to [`Request::KernelParams`]: each parameter's bytes, or
    /// `None` when the real libraries do not know the kernel (a launch of
    /// it fails before reading its arguments: they are sent as null, and
    /// the real launch gives its own error).
    ParamSizes(Option<Vec<u32>>),
    /// The answer to [`Request::HasModule`].
    HasModule(bool),
    /// The request was refused (bad token, unknown function, …): why. The
    /// server closes the connection after a refused hello.
    Refused(String),
    // New variants go last: a client of an older protocol still reads
    // `Refused` (why its hello was refused) at the index it knows.
    /// Whether the server mapped the client's shared memory: `None`, and
    /// every later frame travels through it; or why not, and the session
    /// goes on on the socket.
    SharedMemory(Option<String>),
}

/// Writes `message` as one frame.
pub fn send<T: Serialize>(w: &mut impl Write, message: &T) -> io::Result<()> {
    let mut frame = Vec::new();
    frame_into(&mut frame, message)?;
    w.write_all(&frame)?;
    w.flush()
}

/// Appends `message` to `out` as one frame (its length, then its
/// encoding); on error `out` is as it was. `InvalidInput`: over
/// [`MAX_FRAME`].
pub fn frame_into<T: Serialize>(out: &mut Vec<u8>, message: &T) -> io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let written = match postcard::to_io(message, &mut *out) {
        Ok(_) => Ok(out.len() - start - 4),
        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
    };
    let len = written.and_then(|len| {
        u32::try_from(len)
            .ok()
            .filter(|_| len <= MAX_FRAME)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("a message of {len} bytes is over the frame limit"),
                )
            })
    });
    match len {
        Ok(len) => {
            out[start..start + 4].copy_from_slice(&len.to_le_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The largest hello: a client that has not proven who it is gets no
/// more than this of the server's memory.
pub const MAX_HELLO: usize = 64 << 10;

/// Reads one frame and decodes it; `Ok(None)` at a clean end of stream.
pub fn receive<T: DeserializeOwned>(r: &mut impl Read) -> io::Result<Option<T>> {
    receive_at_most(r, MAX_FRAME)
}

/// [`receive`], refusing a frame longer than `limit` before reading it.
pub fn receive_at_most<T: DeserializeOwned>(
    r: &mut impl Read,
    limit: usize,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is over the limit of {limit}"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    decode(&body).map(Some)
}

/// Decodes one frame's body (the fuzzed entry point of the decoder).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    postcard::from_bytes(body)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_oversized_frames_are_refused() {
        let call = Request::Call {
            library: 1,
            function: 7,
            args: vec![
                Arg::Value(ByteBuf::from(vec![1, 0, 0, 0])),
                Arg::Null,
                Arg::Bytes(ByteBuf::from(b"abc".to_vec())),
                Arg::Out(16),
            ],
            thread: 0,
            host: GraphHost::default(),
        };
        let mut buf = Vec::new();
        send(&mut buf, &call).expect("send");
        let back: Request = receive(&mut buf.as_slice())
            .expect("read")
            .expect("a frame");
        assert_eq!(back, call);
        let none: Option<Request> = receive(&mut [].as_slice()).expect("end");
        assert!(none.is_none());
        let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
        let err = receive::<Request>(&mut huge.as_slice()).expect_err("too big");
        assert!(err.to_string().contains("over the limit"), "{err}");
        let err = receive_at_most::<Request>(&mut buf.as_slice(), 4).expect_err("over 4");
        assert!(err.to_string().contains("limit of 4"), "{err}");
        let err = decode::<Request>(&[0xff, 0xff, 0xff]).expect_err("garbage");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    /// One message of every kind, every argument kind among them.
    pub(crate) fn samples() -> Vec<Request> {
        let b = |v: &[u8]| ByteBuf::from(v.to_vec());
        vec![
            Request::Hello {
                protocol: PROTOCOL,
                token: "secret".into(),
                major: 12,
                fingerprint: 0x0123_4567_89ab_cdef,
                shared_memory: 8 << 20,
            },
            Request::KernelParams {
                kernel: crate::plan::KernelRef::Kernel,
                value: 0x7f00_0000_1000,
            },
            Request::Call {
                library: 2,
                function: 300,
                args: vec![
                    Arg::Value(b(&[1, 0, 0, 0])),
                    Arg::Null,
                    Arg::Bytes(b(b"host bytes")),
                    Arg::Out(4096),
                    Arg::Symbol(0x5555_0000),
                    Arg::Image {
                        wrapper: Some((0x4662_43b1, 1)),
                        bytes: b(&[0x50, 0xed, 0x55, 0xba, 1, 0, 16, 0]),
                    },
                    Arg::KernelArgs(vec![b(&[1, 2, 3, 4]), b(&[0; 12])]),
                    Arg::Module {
                        wrapper: None,
                        hash: [7; 32],
                    },
                    Arg::WithParts {
                        bytes: b(&[0; 56]),
                        parts: vec![b(&[1; 72])],
                    },
                    Arg::Probed {
                        address: 0x7ffd_0000_0010,
                        bytes: b(&[0, 0, 0x80, 0x3f]),
                    },
                    Arg::KernelNode {
                        bytes: b(&[0; 56]),
                        args: vec![b(&[1; 8]), b(&[2; 4])],
                    },
                ],
                thread: 5,
                host: GraphHost {
                    at: vec![(2, 0x7f00_0000_2000)],
                    refresh: vec![(0x7f00_0000_3000, b(b"graph input"))],
                },
            },
            Request::Queued(vec![Queued {
                library: 0,
                function: 9,
                args: vec![Arg::Value(b(&[0; 8])), Arg::KernelArgs(Vec::new())],
                thread: 1,
                host: GraphHost::default(),
            }]),
            Request::HasModule([9; 32]),
            Request::ThreadEnded(1),
            Request::Poll,
        ]
    }

    /// A deterministic mutation loop over every kind of message (the
    /// `wire` fuzz target's check, on the stable toolchain, in every test
    /// run): bits flipped, bytes set, cut, grown and repeated, decoded as
    /// a body and as a frame: an error or a message, never a panic, and
    /// what decodes encodes back to the same.
    #[test]
    fn the_decoder_survives_mutated_messages() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut decoded, mut refused) = (0usize, 0usize);
        for sample in samples() {
            let mut frame = Vec::new();
            frame_into(&mut frame, &sample).expect("encodes");
            let body = frame[4..].to_vec();
            assert_eq!(decode::<Request>(&body).expect("decodes"), sample);
            for _ in 0..100_000 {
                let mut m = body.clone();
                for _ in 0..=next() % 4 {
                    let at = (next() as usize) % m.len().max(1);
                    match next() % 6 {
                        0 if !m.is_empty() => m[at] ^= 1 << (next() % 8),
                        1 if !m.is_empty() => m[at] = next() as u8,
                        2 => m.truncate(at),
                        3 => m.extend((0..next() % 16).map(|_| next() as u8)),
                        4 if !m.is_empty() => {
                            let end = (at + 1 + (next() as usize) % 8).min(m.len());
                            let piece = m[at..end].to_vec();
                            m.splice(at..at, piece);
                        }
                        _ if !m.is_empty() => m[at] = 0xff,
                        _ => {}
                    }
                }
                match decode::<Request>(&m) {
                    Ok(request) => {
                        decoded += 1;
                        let mut again = Vec::new();
                        frame_into(&mut again, &request).expect("a decoded message encodes");
                        assert_eq!(decode::<Request>(&again[4..]).expect("decodes"), request);
                    }
                    Err(e) => {
                        refused += 1;
                        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                    }
                }
                // As a frame, with a length that may lie.
                let mut framed = (m.len() as u32 ^ (next() % 3) as u32)
                    .to_le_bytes()
                    .to_vec();
                framed.extend_from_slice(&m);
                let _ = receive::<Request>(&mut framed.as_slice());
            }
        }
        // Both outcomes were reached: the loop exercised the decoder.
        assert!(
            decoded > 1000 && refused > 1000,
            "{decoded} decoded, {refused} refused"
        );
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("unix:/tmp/s.sock"),
            Ok(Endpoint::Unix("/tmp/s.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:7000"),
            Ok(Endpoint::Tcp("127.0.0.1:7000".into()))
        );
        for bad in ["unix:", "tcp://nohost", "http://x:1", "/tmp/s"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
