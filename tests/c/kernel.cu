// An nvcc-built program: its fat binary is registered from an ELF
// constructor before main (__cudaRegisterFatBinary, __cudaRegisterFunction,
// __cudaRegisterFatBinaryEnd), and <<<>>> goes through
// __cudaPushCallConfiguration / __cudaGetKernel / __cudaLaunchKernel. With no
// GPU the launch fails; what matters is that the output through the shim is
// the same as directly.
#include <cstdio>
#include <cuda_runtime.h>

__global__ void add(const float *a, const float *b, float *c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

int main() {
    int version = 0;
    cudaError_t rv = cudaRuntimeGetVersion(&version);
    std::printf("runtime %d (%s)\n", version, cudaGetErrorName(rv));
    int count = -1;
    rv = cudaGetDeviceCount(&count);
    std::printf("devices %s count %d\n", cudaGetErrorName(rv), count);
    add<<<dim3(4, 1, 1), dim3(256, 1, 1)>>>(nullptr, nullptr, nullptr, 1024);
    rv = cudaGetLastError();
    std::printf("launch %s: %s\n", cudaGetErrorName(rv), cudaGetErrorString(rv));
    rv = cudaDeviceSynchronize();
    std::printf("synchronize %s\n", cudaGetErrorName(rv));
    // A graph: a kernel node (its kernel and arguments cross), and a
    // capture of a copy from host memory.
    cudaGraph_t graph = nullptr;
    rv = cudaGraphCreate(&graph, 0);
    std::printf("graph %s\n", cudaGetErrorName(rv));
    const float *a = nullptr;
    float *c = nullptr;
    int n = 1024;
    void *args[] = {&a, &a, &c, &n};
    cudaKernelNodeParams node = {};
    node.func = (void *)add;
    node.gridDim = dim3(4, 1, 1);
    node.blockDim = dim3(256, 1, 1);
    node.kernelParams = args;
    cudaGraphNode_t added = nullptr;
    rv = cudaGraphAddKernelNode(&added, graph, nullptr, 0, &node);
    std::printf("kernel node %s\n", cudaGetErrorName(rv));
    cudaStream_t stream = nullptr;
    rv = cudaStreamCreate(&stream);
    std::printf("stream %s\n", cudaGetErrorName(rv));
    rv = cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal);
    std::printf("capture %s\n", cudaGetErrorName(rv));
    static float host[256];
    rv = cudaMemcpyAsync(c, host, sizeof host, cudaMemcpyHostToDevice, stream);
    std::printf("captured copy %s\n", cudaGetErrorName(rv));
    cudaGraph_t captured = nullptr;
    rv = cudaStreamEndCapture(stream, &captured);
    std::printf("end capture %s\n", cudaGetErrorName(rv));
    return 0;
}
