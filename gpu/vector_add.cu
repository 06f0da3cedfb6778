// vector_add: c = a + b on 16M floats, launched with <<<>>> (so through
// __cudaPushCallConfiguration / __cudaLaunchKernel, or __cudaLaunchKernel_ptsz
// when built with --default-stream per-thread) and once more with the
// explicit cudaLaunchKernel. Every element is checked on the host; the
// inputs are exact in float, so the sums must match bit for bit.
#include <cstring>
#include <vector>
#include "common.h"

__global__ void add(const float *a, const float *b, float *c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

__global__ void scale(float *c, float factor, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] *= factor;
}

int main() {
    print_versions("vector_add");
    const int n = 1 << 24;
    const size_t bytes = size_t(n) * sizeof(float);
    std::vector<float> a(n), b(n), c(n);
    for (int i = 0; i < n; ++i) {
        a[i] = float(i % 65536) * 0.5f;          // exact in float
        b[i] = float((i * 7) % 4096) * 0.25f;    // exact in float
    }
    float *da = nullptr, *db = nullptr, *dc = nullptr;
    CHECK(cudaMalloc(&da, bytes));
    CHECK(cudaMalloc(&db, bytes));
    CHECK(cudaMalloc(&dc, bytes));
    CHECK(cudaMemcpy(da, a.data(), bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(db, b.data(), bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemset(dc, 0xff, bytes));  // poison: NaNs where nothing is written

    const int threads = 256, blocks = (n + threads - 1) / threads;
    add<<<blocks, threads>>>(da, db, dc, n);
    CHECK_LAUNCH();
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(c.data(), dc, bytes, cudaMemcpyDeviceToHost));
    long mismatches = 0;
    for (int i = 0; i < n; ++i) {
        float want = a[i] + b[i];
        if (std::memcmp(&c[i], &want, sizeof want) != 0) ++mismatches;
    }
    std::printf("vector_add: <<<>>> n=%d mismatches=%ld checksum=%016llx\n", n, mismatches,
                (unsigned long long)fnv1a(c.data(), bytes));

    // The same through cudaLaunchKernel (dim3 by value through the shim).
    float factor = 2.0f;
    int count = n;
    void *args[] = {&dc, &factor, &count};
    CHECK(cudaLaunchKernel((const void *)scale, dim3(blocks), dim3(threads), args, 0, 0));
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(c.data(), dc, bytes, cudaMemcpyDeviceToHost));
    long mismatches2 = 0;
    for (int i = 0; i < n; ++i) {
        float want = (a[i] + b[i]) * 2.0f;
        if (std::memcmp(&c[i], &want, sizeof want) != 0) ++mismatches2;
    }
    std::printf("vector_add: cudaLaunchKernel mismatches=%ld checksum=%016llx\n", mismatches2,
                (unsigned long long)fnv1a(c.data(), bytes));

    CHECK(cudaFree(da));
    CHECK(cudaFree(db));
    CHECK(cudaFree(dc));
    bool ok = mismatches == 0 && mismatches2 == 0;
    std::printf("vector_add: %s\n", ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}
