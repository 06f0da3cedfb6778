#!/usr/bin/env python3
"""A real consumer of libcudart.so.13: PyTorch.

Prints only deterministic text on stdout, so that a run straight on PyTorch's
own runtime and a run with the shim in front of it
(LD_PRELOAD=dist/13/libcudart.so.13 CUDASTUB_REAL_CUDART=<PyTorch's
libcudart.so.13>) can be compared byte for byte. What varies (which
libcudart files are mapped) goes to stderr.

    python3 gpu/torch_check.py                 # the check
    python3 gpu/torch_check.py --print-cudart  # the libcudart files that
                                               # importing torch maps, one a line
"""

import os

# Before torch (and cuBLAS) start: deterministic cuBLAS workspaces.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import ctypes  # noqa: E402
import hashlib  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402


def mapped_cudart():
    """The libcudart files mapped into this process, in order of first mapping."""
    paths = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(None, 5)
            if len(fields) == 6 and "libcudart.so" in os.path.basename(fields[5].strip()):
                path = fields[5].strip()
                if path not in paths:
                    paths.append(path)
    return paths


def wheel_cudart():
    """libcudart.so.13 of the nvidia-cuda-runtime wheel next to torch, in case
    importing torch did not map it (it normally does: libtorch_cuda.so NEEDs it)."""
    try:
        import nvidia
    except ImportError:
        return []
    found = []
    for root in getattr(nvidia, "__path__", []):
        for sub in ("cu13/lib", "cuda_runtime/lib"):
            path = os.path.join(root, sub, "libcudart.so.13")
            if os.path.isfile(path) and path not in found:
                found.append(path)
    return found


def digest(t):
    """sha256 of a tensor's bytes (moved to the host, contiguous)."""
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def say(*args):
    print(*args, flush=True)


def runtime_versions():
    """cudaRuntimeGetVersion / cudaDriverGetVersion called through ctypes:
    dlopen of the bare soname returns whatever already answers to it (the
    real runtime directly, the shim when preloaded)."""
    lib = ctypes.CDLL("libcudart.so.13")
    runtime, driver = ctypes.c_int(-1), ctypes.c_int(-1)
    rv1 = lib.cudaRuntimeGetVersion(ctypes.byref(runtime))
    rv2 = lib.cudaDriverGetVersion(ctypes.byref(driver))
    return rv1, runtime.value, rv2, driver.value


def matmul_check():
    g = torch.Generator().manual_seed(1234)
    a = torch.randn(1024, 1024, generator=g, dtype=torch.float32)
    b = torch.randn(1024, 1024, generator=g, dtype=torch.float32)
    c = a.cuda() @ b.cuda()
    torch.cuda.synchronize()
    ref = a.double() @ b.double()
    rel = ((c.double().cpu() - ref).norm() / ref.norm()).item()
    say(f"matmul 1024x1024 float32: sha256 {digest(c)}")
    say(f"matmul relative error vs float64 below 1e-5: {rel < 1e-5}")
    return rel < 1e-5


def mlp_training():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(42)
    x = torch.randn(512, 64, generator=g).cuda()
    w_true = torch.randn(64, 10, generator=g).cuda()
    y = torch.tanh(x @ w_true) + 0.1 * torch.randn(512, 10, generator=g).cuda()
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    ).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(20):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        say(f"mlp step {step:2d} loss {losses[-1]!r}")
    say(f"mlp parameters sha256 {hashlib.sha256(b''.join(digest(p).encode() for p in model.parameters())).hexdigest()}")
    return losses[-1] < losses[0], model


def graph_replay(model):
    """CUDA graph capture and replay through PyTorch (cudaStreamBeginCapture,
    cudaGraphInstantiate, cudaGraphLaunch under the hood)."""
    static_in = torch.zeros(256, 64, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):
            model(static_in)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_out = model(static_in)
    g = torch.Generator().manual_seed(7)
    results = []
    ok = bitwise = True
    for _ in range(5):
        inp = torch.randn(256, 64, generator=g)
        static_in.copy_(inp)
        graph.replay()
        torch.cuda.synchronize()
        results.append(digest(static_out))
        with torch.no_grad():
            eager = model(inp.cuda())
        ok = ok and torch.allclose(eager, static_out, rtol=1e-5, atol=1e-6)
        bitwise = bitwise and torch.equal(eager, static_out)
    say(f"cuda graph 5 replays: sha256 {hashlib.sha256(''.join(results).encode()).hexdigest()}")
    say(f"cuda graph replays match eager results: {ok} (bit for bit: {bitwise})")
    return ok


def report_mapped():
    """Which libcudart files are mapped: differs between the runs, so stderr."""
    for path in mapped_cudart():
        print(f"torch_check: libcudart mapped: {path}", file=sys.stderr, flush=True)


def main():
    if "--print-cudart" in sys.argv[1:]:
        for path in mapped_cudart() or wheel_cudart():
            print(path)
        return 0
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.set_float32_matmul_precision("highest")  # no TF32: full float32 products
    torch.use_deterministic_algorithms(True)

    say(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}")
    say(f"cuda available: {torch.cuda.is_available()}")
    if not torch.cuda.is_available():
        report_mapped()
        say("torch_check: FAIL (no CUDA device)")
        return 1
    say(f"device: {torch.cuda.get_device_name(0)}, capability {torch.cuda.get_device_capability(0)}")
    rv1, runtime, rv2, driver = runtime_versions()
    say(f"cudaRuntimeGetVersion -> {rv1}, {runtime}; cudaDriverGetVersion -> {rv2}, {driver}")

    ok = matmul_check()
    trained, model = mlp_training()
    say(f"mlp loss went down: {trained}")
    replayed = graph_replay(model)
    ok = ok and trained and replayed
    torch.cuda.synchronize()
    report_mapped()
    say(f"torch_check: {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
