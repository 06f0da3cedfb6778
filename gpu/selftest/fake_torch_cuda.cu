// Stand-in for libtorch_cuda.so (scripts/gpu-selftest): an nvcc-built library that
// NEEDs libcudart.so.13, found through DT_RPATH as PyTorch does, registers its
// fat binary and launches from a constructor.
#include <cuda_runtime.h>
__global__ void k() {}
__attribute__((constructor)) static void init() { k<<<1,1>>>(); }
extern "C" int fake_launch() { k<<<1,1>>>(); return (int)cudaGetLastError(); }
