# A stand-in for PyTorch (scripts/gpu-selftest) to exercise scripts/gpu-check with no GPU
# and no torch: loads lib/libc10_cuda.so and lib/libtorch_cuda.so as PyTorch does.
import ctypes, os, types
_here = os.path.dirname(__file__)
ctypes.CDLL(os.path.join(_here, "lib", "libc10_cuda.so"), mode=ctypes.RTLD_GLOBAL)
_tc = ctypes.CDLL(os.path.join(_here, "lib", "libtorch_cuda.so"), mode=ctypes.RTLD_GLOBAL)
__version__ = "0.0-fake"
version = types.SimpleNamespace(cuda="13.0")
def set_float32_matmul_precision(p): pass
def use_deterministic_algorithms(b): pass
backends = types.SimpleNamespace(cudnn=types.SimpleNamespace())
class _Cuda:
    @staticmethod
    def is_available():
        return _tc.fake_launch() == 0
cuda = _Cuda()
