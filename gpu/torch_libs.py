#!/usr/bin/env python3
"""PyTorch through its CUDA libraries: cuDNN, cuBLAS(Lt), cuFFT, cuSOLVER,
cuSPARSE, and cuRAND called through ctypes (scripts/gpu-torch-libs).

Prints only deterministic text on stdout (one line `name shape sha256` per
result, computed on cuda:0 from fixed seeds with deterministic settings, and
correctness checks against float64 references as True/False), so that a run
on PyTorch's own libraries and a run with every shim preloaded can be
compared byte for byte. What varies between runs (which NVIDIA files are
mapped, how libcurand was loaded) goes to stderr.

    python3 gpu/torch_libs.py                  # the workload; ends with "torch_libs: OK"
    python3 gpu/torch_libs.py --find SONAME... # "torch-lib DIR", then "SONAME PATH" for
                                               # each real library found in the wheels
                                               # (no torch import, no GPU needed)
"""

import os

# Before torch (and cuBLAS) start: deterministic cuBLAS workspaces.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import ctypes  # noqa: E402
import glob  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402

MAPPED_KEYS = ("libcu", "libnv", "libnccl")


def err(*args):
    print("torch_libs:", *args, file=sys.stderr, flush=True)


def say(*args):
    print(*args, flush=True)


def torch_lib_dir():
    """torch/lib of the installed PyTorch, found without importing it."""
    spec = importlib.util.find_spec("torch")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if os.path.isdir(os.path.join(loc, "lib")):
            return os.path.join(loc, "lib")
    return None


def find_real(soname):
    """SONAME in any directory of the `nvidia` namespace package (nvidia/*/lib,
    nvidia/*/lib64), else in torch/lib; None if absent."""
    roots = []
    try:
        import nvidia

        roots = list(getattr(nvidia, "__path__", []))
    except ImportError:
        pass
    for root in roots:
        for sub in ("lib", "lib64"):
            hits = sorted(glob.glob(os.path.join(glob.escape(root), "*", sub, soname)))
            if hits:
                return os.path.realpath(hits[0])
    lib = torch_lib_dir()
    if lib and os.path.isfile(os.path.join(lib, soname)):
        return os.path.realpath(os.path.join(lib, soname))
    return None


def mapped_nvidia():
    """The NVIDIA library files mapped into this process, in order of first mapping."""
    paths = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(None, 5)
            if len(fields) == 6:
                path = fields[5].strip()
                base = os.path.basename(path)
                if any(k in base for k in MAPPED_KEYS) and path not in paths:
                    paths.append(path)
    return paths


def shape(t):
    return "x".join(str(s) for s in t.shape) or "scalar"


def digest(t):
    """sha256 of a tensor's bytes (moved to the host, contiguous)."""
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def result(name, t):
    say(f"{name} {shape(t)} {digest(t)}")


def close(got, ref, tol):
    """Relative error (Frobenius) of got against a float64 reference below tol."""
    got, ref = got.detach().cpu().to(ref.dtype), ref.detach().cpu()
    return bool(((got - ref).norm() / ref.norm().clamp_min(1e-30)).item() < tol)


def check(what, ok):
    say(f"check {what}: {ok}")
    return ok


def conv(torch, g):
    """cuDNN: conv2d forward and backward, float32, deterministic algorithms, no TF32."""
    F = torch.nn.functional
    x0 = torch.randn(8, 16, 32, 32, generator=g)
    w0 = torch.randn(32, 16, 3, 3, generator=g) * 0.1
    b0 = torch.randn(32, generator=g)
    gy = torch.randn(8, 32, 32, 32, generator=g)
    x, w, b = (t.cuda().requires_grad_() for t in (x0, w0, b0))
    y = F.conv2d(x, w, b, padding=1)
    y.backward(gy.cuda())
    torch.cuda.synchronize()
    for name, t in (("conv2d.forward", y), ("conv2d.grad_input", x.grad),
                    ("conv2d.grad_weight", w.grad), ("conv2d.grad_bias", b.grad)):
        result(name, t)
    xd, wd = x0.double().requires_grad_(), w0.double().requires_grad_()
    yd = F.conv2d(xd, wd, b0.double(), padding=1)
    yd.backward(gy.double())
    return all([check("conv2d forward vs float64", close(y, yd, 1e-5)),
                check("conv2d grad_input vs float64", close(x.grad, xd.grad, 1e-5)),
                check("conv2d grad_weight vs float64", close(w.grad, wd.grad, 1e-5))])


def blas(torch, g):
    """cuBLAS (a @ b) and cuBLASLt (linear with a bias: addmm's gemm-and-bias path)."""
    a, b = torch.randn(512, 384, generator=g), torch.randn(384, 256, generator=g)
    bias = torch.randn(256, generator=g)
    c = a.cuda() @ b.cuda()
    lin = torch.nn.functional.linear(a.cuda(), b.t().contiguous().cuda(), bias.cuda())
    torch.cuda.synchronize()
    result("matmul", c)
    result("linear_bias", lin)
    ref = a.double() @ b.double()
    return all([check("matmul vs float64", close(c, ref, 1e-5)),
                check("linear_bias vs float64", close(lin, ref + bias.double(), 1e-5))])


def fft(torch, g):
    """cuFFT: fft2 of a complex field, rfft and irfft (cuFFT's plans are deterministic)."""
    z = torch.complex(torch.randn(4, 64, 96, generator=g), torch.randn(4, 64, 96, generator=g))
    r = torch.randn(16, 1000, generator=g)
    f2 = torch.fft.fft2(z.cuda())
    rf = torch.fft.rfft(r.cuda())
    back = torch.fft.irfft(rf, n=1000)
    torch.cuda.synchronize()
    result("fft2", f2)
    result("rfft", rf)
    result("irfft", back)
    return all([check("fft2 vs float64", close(f2, torch.fft.fft2(z.to(torch.complex128)), 1e-5)),
                check("rfft vs float64", close(rf, torch.fft.rfft(r.double()), 1e-5)),
                check("irfft(rfft(x)) == x", close(back, r.double(), 1e-5))])


def solver(torch, g):
    """cuSOLVER: Cholesky, QR, symmetric eigen-decomposition, SVD (float64, so
    the references are tight; cuSOLVER's default mode is deterministic)."""
    torch.backends.cuda.preferred_linalg_library("cusolver")
    m = torch.randn(96, 96, generator=g, dtype=torch.float64)
    spd = m @ m.T + 96 * torch.eye(96, dtype=torch.float64)
    rect = torch.randn(128, 80, generator=g, dtype=torch.float64)
    A, B = spd.cuda(), rect.cuda()
    L = torch.linalg.cholesky(A)
    Q, R = torch.linalg.qr(B)
    evals, evecs = torch.linalg.eigh(A)
    U, S, Vh = torch.linalg.svd(B, full_matrices=False)
    torch.cuda.synchronize()
    for name, t in (("cholesky", L), ("qr.Q", Q), ("qr.R", R), ("eigh.values", evals),
                    ("eigh.vectors", evecs), ("svd.U", U), ("svd.S", S), ("svd.Vh", Vh)):
        result(name, t)
    L, Q, R, evals, evecs, U, S, Vh = (t.cpu() for t in (L, Q, R, evals, evecs, U, S, Vh))
    return all([check("cholesky L L^T == A", close(L @ L.T, spd, 1e-12)),
                check("qr Q R == B", close(Q @ R, rect, 1e-12)),
                check("eigh V diag(w) V^T == A", close(evecs @ torch.diag(evals) @ evecs.T, spd, 1e-12)),
                check("svd U diag(S) Vh == B", close(U @ torch.diag(S) @ Vh, rect, 1e-12))])


def sparse(torch, g):
    """cuSPARSE: a CSR matrix times a dense one (cusparseSpMM)."""
    dense = torch.randn(300, 200, generator=g)
    dense = dense * (torch.rand(300, 200, generator=g) < 0.05)
    rhs = torch.randn(200, 64, generator=g)
    csr = dense.cuda().to_sparse_csr()
    out = csr @ rhs.cuda()
    torch.cuda.synchronize()
    result("csr.values", csr.values())
    result("csr_matmul", out)
    return check("csr @ dense vs float64", close(out, dense.double() @ rhs.double(), 1e-5))


def curand(torch):
    """cuRAND through ctypes: XORWOW (CURAND_RNG_PSEUDO_DEFAULT) with a fixed
    seed, uniform floats into a PyTorch buffer. By soname first, so that the
    preloaded shim (or the real file PyTorch loaded) answers."""
    try:
        lib = ctypes.CDLL("libcurand.so.10")
        err("libcurand.so.10 loaded by soname")
    except OSError as e:
        path = find_real("libcurand.so.10")
        if not path:
            err(f"libcurand.so.10 not found ({e})")
            return check("curand loaded", False)
        lib = ctypes.CDLL(path)
        err(f"libcurand.so.10 loaded by path {path} (by soname: {e})")
    vp = ctypes.c_void_p
    lib.curandCreateGenerator.argtypes = [ctypes.POINTER(vp), ctypes.c_int]
    lib.curandSetPseudoRandomGeneratorSeed.argtypes = [vp, ctypes.c_ulonglong]
    lib.curandGenerateUniform.argtypes = [vp, vp, ctypes.c_size_t]
    lib.curandDestroyGenerator.argtypes = [vp]
    n = 1 << 20
    buf = torch.empty(n, dtype=torch.float32, device="cuda")
    torch.cuda.synchronize()
    gen = vp()
    st = [lib.curandCreateGenerator(ctypes.byref(gen), 100)]
    st.append(lib.curandSetPseudoRandomGeneratorSeed(gen, 1234))
    st.append(lib.curandGenerateUniform(gen, vp(buf.data_ptr()), n))
    torch.cuda.synchronize()
    st.append(lib.curandDestroyGenerator(gen))
    say(f"curand statuses {st}")
    result("curand.uniform", buf)
    mean = buf.double().mean().item()
    return all([check("curand statuses all CURAND_STATUS_SUCCESS", st == [0, 0, 0, 0]),
                check("curand uniform in (0, 1] with mean 0.5 +- 0.005",
                      bool(buf.min().item() > 0 and buf.max().item() <= 1 and abs(mean - 0.5) < 0.005))])


def main():
    args = sys.argv[1:]
    if args[:1] == ["--find"]:
        lib = torch_lib_dir()
        if lib:
            print(f"torch-lib {lib}")
        for soname in args[1:]:
            path = find_real(soname)
            if path:
                print(f"{soname} {path}")
        return 0
    import torch

    torch.manual_seed(0)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    # warn_only: an op with no deterministic implementation warns (stderr)
    # instead of raising; none of those used here is known to be one.
    torch.use_deterministic_algorithms(True, warn_only=True)
    say(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}")
    say(f"cuda available: {torch.cuda.is_available()}")
    if not torch.cuda.is_available():
        for path in mapped_nvidia():
            err(f"mapped: {path}")
        say("torch_libs: FAIL (no CUDA device)")
        return 1
    say(f"device: {torch.cuda.get_device_name(0)}, capability {torch.cuda.get_device_capability(0)}")
    say(f"cudnn {torch.backends.cudnn.version()}")
    torch.cuda.set_device(0)
    g = torch.Generator().manual_seed(20240607)
    ok = True
    for part in (conv, blas, fft, solver, sparse):
        try:
            ok = part(torch, g) and ok
        except Exception as e:  # one failing library must not hide the others
            say(f"{part.__name__}: FAIL ({type(e).__name__})")
            err(f"{part.__name__}: {e!r}")
            ok = False
    try:
        ok = curand(torch) and ok
    except Exception as e:
        say(f"curand: FAIL ({type(e).__name__})")
        err(f"curand: {e!r}")
        ok = False
    torch.cuda.synchronize()
    for path in mapped_nvidia():
        err(f"mapped: {path}")
    say(f"torch_libs: {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
