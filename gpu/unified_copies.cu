// unified_copies: copies whose sides the addresses say (unified addressing),
// 1 MiB of pageable host memory and device memory each way: the runtime's
// cudaMemcpyDefault (synchronous and on a stream), the driver's cuMemcpy and
// cuMemcpyAsync (host addresses as CUdeviceptr). (cudaMemcpyWithAttributesAsync
// is not in CUDA 13.0's headers, the GPU machine's.) Each result is checked on the host and
// printed with its checksum, so a remote run must print the same lines;
// the last is `unified_copies: OK` (else the program exits 1).
// Build: nvcc -O2 -cudart shared unified_copies.cu -lcuda
#include <cstring>
#include <vector>
#include <cuda.h>
#include "common.h"

#define CHECK_CU(call)                                                        \
    do {                                                                      \
        CUresult check_cu_rv_ = (call);                                       \
        if (check_cu_rv_ != CUDA_SUCCESS) {                                   \
            const char *check_cu_name_ = nullptr;                             \
            cuGetErrorName(check_cu_rv_, &check_cu_name_);                    \
            std::printf("FAIL %s -> %s\n", #call,                             \
                        check_cu_name_ ? check_cu_name_ : "?");               \
            std::fflush(stdout);                                              \
            std::exit(1);                                                     \
        }                                                                     \
    } while (0)

static CUdeviceptr at(const void *p) { return (CUdeviceptr)(uintptr_t)p; }

static bool all_equal = true;

static void report(const char *what, const std::vector<unsigned char> &got,
                   const std::vector<unsigned char> &want) {
    bool equal = std::memcmp(got.data(), want.data(), want.size()) == 0;
    all_equal = all_equal && equal;
    std::printf("%s: %s, fnv1a %016llx\n", what, equal ? "equal" : "DIFFERS",
                (unsigned long long)fnv1a(got.data(), got.size()));
}

int main() {
    const size_t n = 1 << 20;
    std::vector<unsigned char> a(n), b(n), c(n), out(n);
    uint64_t seed = 0x2545f4914f6cdd1dull;
    for (auto &x : a) x = (unsigned char)(next_random(seed) >> 56);
    for (auto &x : b) x = (unsigned char)(next_random(seed) >> 56);
    void *d1, *d2;
    CHECK(cudaMalloc(&d1, n));
    CHECK(cudaMalloc(&d2, n));
    cudaStream_t stream;
    CHECK(cudaStreamCreate(&stream));

    // The runtime's cudaMemcpyDefault: host to device, device to device,
    // device to host, host to host; then device to host on a stream.
    CHECK(cudaMemcpy(d1, a.data(), n, cudaMemcpyDefault));
    CHECK(cudaMemcpy(d2, d1, n, cudaMemcpyDefault));
    CHECK(cudaMemcpy(out.data(), d2, n, cudaMemcpyDefault));
    report("cudaMemcpyDefault host -> device -> device -> host", out, a);
    CHECK(cudaMemcpy(out.data(), b.data(), n, cudaMemcpyDefault));
    report("cudaMemcpyDefault host -> host", out, b);
    std::memset(out.data(), 0, n);
    CHECK(cudaMemcpyAsync(out.data(), d1, n, cudaMemcpyDefault, stream));
    CHECK(cudaStreamSynchronize(stream));
    report("cudaMemcpyAsync cudaMemcpyDefault device -> host", out, a);

    // The driver's unified copies, in the runtime's (current) context.
    CHECK_CU(cuMemcpy(at(d2), at(b.data()), n));
    std::memset(out.data(), 0, n);
    CHECK_CU(cuMemcpy(at(out.data()), at(d2), n));
    report("cuMemcpy host -> device -> host", out, b);
    CHECK_CU(cuMemcpy(at(out.data()), at(a.data()), n));
    report("cuMemcpy host -> host", out, a);
    for (size_t i = 0; i < n; ++i) c[i] = a[i] ^ b[i];
    CHECK_CU(cuMemcpyAsync(at(d1), at(c.data()), n, (CUstream)stream));
    CHECK_CU(cuMemcpyAsync(at(d2), at(d1), n, (CUstream)stream));
    std::memset(out.data(), 0, n);
    CHECK_CU(cuMemcpyAsync(at(out.data()), at(d2), n, (CUstream)stream));
    CHECK_CU(cuStreamSynchronize((CUstream)stream));
    report("cuMemcpyAsync host -> device -> device -> host", out, c);

    CHECK(cudaFree(d1));
    CHECK(cudaFree(d2));
    CHECK(cudaStreamDestroy(stream));
    std::printf("unified_copies: %s\n", all_equal ? "OK" : "FAILED");
    return all_equal ? 0 : 1;
}
