//! Remote GPU for cudastub: a process with no GPU (and no NVIDIA library)
//! calls the real CUDA libraries in a server process, on this machine or
//! another.
//!
//! - [`plan`]: how each function's call crosses, computed from the
//!   manifest's prototypes, layouts and parameter roles (by
//!   `cudastub_codegen::remote`), identical on both sides;
//! - [`wire`]: the messages, and their frames;
//! - [`shm`]: the frames over shared memory, for a client on the server's
//!   host;
//! - [`abi`]: calling a C function known only as data (x86-64 System V);
//! - [`callback`]: the client's callbacks, called by the server's libraries
//!   and made in the client;
//! - `mirror`: the server's mirrors of the client's host memory that
//!   graphs read and write;
//! - [`server`]: listening, one child process per client, and sessions;
//! - [`client`]: a connection, and calls encoded from their plans.

pub mod abi;
pub mod callback;
pub mod client;
mod mirror;
pub mod plan;
pub mod server;
pub mod shm;
pub mod wire;
