//! The remote GPU's round trip: an empty synchronous call
//! (`cudaRuntimeGetVersion`, answered by the real CUDA 12.9 runtime in the
//! server) over a Unix socket and over TCP loopback, p50 and p99.
//!
//!   cargo bench -p cudastub-tests --bench remote

use std::ffi::c_int;
use std::time::Instant;

use cudastub_codegen::catalog::Catalog;
use cudastub_remote::client::Client;
use cudastub_tests::{RemoteServer, fixtures, index_path, tempdir};

const CALLS: usize = 20_000;

fn main() {
    let dir = tempdir();
    let token = dir.path().join("token");
    std::fs::write(&token, "bench").expect("token");
    let catalog = Catalog::load(&index_path()).expect("manifests");
    let plan = cudastub_codegen::remote::major_plan(&catalog, 12);
    let socket = format!("unix:{}", dir.path().join("gpu.sock").display());
    for listen in [socket.as_str(), "tcp://127.0.0.1:0"] {
        let server = RemoteServer::start(listen, &fixtures().cuda12.lib_dir, Some(&token));
        let endpoint = &server.endpoint;
        let mut client = Client::connect(endpoint, "bench", plan.clone()).expect("connect");
        let (l, f) = plan.find("cudart", "cudaRuntimeGetVersion").expect("found");
        let mut v: c_int = 0;
        let out: *mut c_int = &mut v;
        let mut times = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t = Instant::now();
            // SAFETY: one valid `int *` argument.
            let r = unsafe { client.call(l, f, &[(&raw const out).cast()]) }.expect("call");
            times.push(t.elapsed().as_nanos() as u64);
            assert_eq!((r.value, v), (0, 12090));
        }
        times.sort_unstable();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
        println!(
            "{:<5} empty synchronous call, {CALLS} calls: p50 {:.1} µs, p99 {:.1} µs",
            if listen.starts_with("unix") {
                "unix"
            } else {
                "tcp"
            },
            at(0.50),
            at(0.99)
        );
    }
}
