// memcpy_sizes: host -> device -> host round trips from 4 B to 64 MiB, both
// with pageable memory and cudaMemcpy, and with pinned memory
// (cudaMallocHost) and cudaMemcpyAsync on a stream; plus a device-to-device
// copy and a kernel that changes every byte, so the data really went through
// the GPU. Every byte is checked on the host.
#include <cstring>
#include <vector>
#include "common.h"

__global__ void flip(const unsigned char *in, unsigned char *out, size_t n) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
         i += size_t(gridDim.x) * blockDim.x)
        out[i] = in[i] ^ 0x5a;
}

static bool round_trip(size_t size, bool pinned, cudaStream_t stream) {
    unsigned char *src, *flipped, *copied;
    std::vector<unsigned char> pageable;
    if (pinned) {
        CHECK(cudaMallocHost(&src, 3 * size));
    } else {
        pageable.resize(3 * size);
        src = pageable.data();
    }
    flipped = src + size;
    copied = src + 2 * size;
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ size;
    for (size_t i = 0; i < size; ++i) src[i] = (unsigned char)(next_random(seed) >> 56);
    std::memset(flipped, 0, size);
    std::memset(copied, 0, size);

    unsigned char *d1, *d2, *d3;
    CHECK(cudaMalloc(&d1, size));
    CHECK(cudaMalloc(&d2, size));
    CHECK(cudaMalloc(&d3, size));
    unsigned blocks = (unsigned)((size + 255) / 256);
    if (blocks > 4096) blocks = 4096;
    if (pinned) {
        CHECK(cudaMemcpyAsync(d1, src, size, cudaMemcpyHostToDevice, stream));
        flip<<<blocks, 256, 0, stream>>>(d1, d2, size);
        CHECK_LAUNCH();
        CHECK(cudaMemcpyAsync(d3, d1, size, cudaMemcpyDeviceToDevice, stream));
        CHECK(cudaMemcpyAsync(flipped, d2, size, cudaMemcpyDeviceToHost, stream));
        CHECK(cudaMemcpyAsync(copied, d3, size, cudaMemcpyDeviceToHost, stream));
        CHECK(cudaStreamSynchronize(stream));
    } else {
        CHECK(cudaMemcpy(d1, src, size, cudaMemcpyHostToDevice));
        flip<<<blocks, 256>>>(d1, d2, size);
        CHECK_LAUNCH();
        CHECK(cudaMemcpy(d3, d1, size, cudaMemcpyDeviceToDevice));
        CHECK(cudaMemcpy(flipped, d2, size, cudaMemcpyDeviceToHost));
        CHECK(cudaMemcpy(copied, d3, size, cudaMemcpyDeviceToHost));
    }
    size_t bad = 0;
    for (size_t i = 0; i < size; ++i)
        if (flipped[i] != (src[i] ^ 0x5a) || copied[i] != src[i]) ++bad;
    std::printf("memcpy_sizes: %-8s %9zu B  src=%016llx flipped=%016llx bad=%zu\n",
                pinned ? "pinned" : "pageable", size, (unsigned long long)fnv1a(src, size),
                (unsigned long long)fnv1a(flipped, size), bad);
    CHECK(cudaFree(d1));
    CHECK(cudaFree(d2));
    CHECK(cudaFree(d3));
    if (pinned) CHECK(cudaFreeHost(src));
    return bad == 0;
}

int main() {
    print_versions("memcpy_sizes");
    const size_t sizes[] = {4, 1000, 4096, 65539, 1 << 20, (16 << 20) + 5, 64 << 20};
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    bool ok = true;
    for (size_t size : sizes) {
        ok = round_trip(size, false, stream) && ok;
        ok = round_trip(size, true, stream) && ok;
    }
    CHECK(cudaStreamDestroy(stream));
    std::printf("memcpy_sizes: %s\n", ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}
