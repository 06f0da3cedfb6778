//! The remote GPU's round trip: an empty synchronous call
//! (`cudaRuntimeGetVersion`, answered by the real CUDA 12.9 runtime in the
//! server) in shared memory, over a Unix socket and over TCP loopback, p50
//! and p99; and a
//! queued call (`cudaMemsetAsync`, batching forced on), per call, with the
//! answered call that sends the last batch.
//!
//!   cargo bench -p cudastub-tests --bench remote

use std::ffi::c_int;
use std::time::Instant;

use cudastub_codegen::catalog::Catalog;
use cudastub_remote::client::{Batching, Client};
use cudastub_tests::{RemoteServer, fixtures, index_path, tempdir};

const CALLS: usize = 20_000;

fn main() {
    let dir = tempdir();
    let token = dir.path().join("token");
    std::fs::write(&token, "bench").expect("token");
    let catalog = Catalog::load(&index_path()).expect("manifests");
    let plan = cudastub_codegen::remote::major_plan(&catalog, 12);
    let socket = format!("unix:{}", dir.path().join("gpu.sock").display());
    for (name, listen, shared) in [
        ("shm", socket.as_str(), true),
        ("unix", socket.as_str(), false),
        ("tcp", "tcp://127.0.0.1:0", false),
    ] {
        let server = RemoteServer::start(listen, &fixtures().cuda12.lib_dir, Some(&token));
        let endpoint = &server.endpoint;
        let mut client =
            Client::connect_with(endpoint, "bench", plan.clone(), shared).expect("connect");
        let expected = match name {
            "shm" => "shared memory",
            "unix" => "Unix socket",
            _ => "TCP",
        };
        assert_eq!(client.transport(), expected);
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
        // Queued calls: each returns at once; the server makes them in
        // batches (here, with no GPU, each fails and the first failure
        // comes back with the wait).
        client.set_batching(Batching::On);
        let (ml, mf) = plan.find("cudart", "cudaMemsetAsync").expect("found");
        let (wl, wf) = plan.find("cudart", "cudaStreamSynchronize").expect("found");
        let (device, value, count, stream) = (0x1000usize, 0 as c_int, 256usize, 0usize);
        let memset: [*const u8; 4] = [
            (&raw const device).cast(),
            (&raw const value).cast(),
            (&raw const count).cast(),
            (&raw const stream).cast(),
        ];
        let t = Instant::now();
        for _ in 0..CALLS {
            // SAFETY: cudaMemsetAsync's four arguments.
            let r = unsafe { client.call(ml, mf, &memset) }.expect("queued");
            assert_eq!(r.value, 0);
        }
        // SAFETY: cudaStreamSynchronize's one argument.
        let waited = unsafe { client.call(wl, wf, &[(&raw const stream).cast()]) }.expect("wait");
        assert!(
            waited.deferred.is_some(),
            "the queued calls' failure comes back"
        );
        let queued = t.elapsed().as_nanos() as f64 / CALLS as f64 / 1000.0;
        times.sort_unstable();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
        println!(
            "{name:<5} empty synchronous call, {CALLS} calls: p50 {:.1} µs, p99 {:.1} µs",
            at(0.50),
            at(0.99)
        );
        println!("{name:<5} queued call, {CALLS} calls and one wait: {queued:.2} µs per call");
    }
}
