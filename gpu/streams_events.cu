// streams_events: four non-blocking streams (one of them at the highest
// priority), each filling its own buffer with a slow kernel; each stream then
// waits on its neighbour's event (cudaStreamWaitEvent) before combining the
// two buffers; the default stream (legacy, or per-thread when built with
// --default-stream per-thread) waits on all four and reduces; host functions
// (cudaLaunchHostFunc) count completions. Only results are printed, never
// timings, and every element is checked against a host reference.
#include <atomic>
#include <vector>
#include "common.h"

constexpr int kStreams = 4;
constexpr int kN = 1 << 20;
constexpr int kIters = 4096;
constexpr uint32_t kMul = 1664525u, kAdd = 1013904223u;

__global__ void slow_fill(uint32_t *out, uint32_t base, int n, int iters) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint32_t v = base + uint32_t(i);
    for (int j = 0; j < iters; ++j) v = v * kMul + kAdd;
    out[i] = v;
}

__device__ __host__ inline uint32_t rotl7(uint32_t x) { return (x << 7) | (x >> 25); }

__global__ void combine(const uint32_t *mine, const uint32_t *theirs, uint32_t *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = mine[i] ^ rotl7(theirs[i]);
}

__global__ void reduce(uint32_t *const *parts, int count, uint32_t *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint32_t s = 0;
    for (int k = 0; k < count; ++k) s += parts[k][i] * uint32_t(2 * k + 1);
    out[i] = s;
}

static std::atomic<int> completions{0};
static void CUDART_CB count_completion(void *) { completions.fetch_add(1); }

int main() {
    print_versions("streams_events");
    int least = 0, greatest = 0;
    CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    cudaStream_t s[kStreams];
    CHECK(cudaStreamCreateWithPriority(&s[0], cudaStreamNonBlocking, greatest));
    for (int k = 1; k < kStreams; ++k) CHECK(cudaStreamCreateWithFlags(&s[k], cudaStreamNonBlocking));
    int prio0 = 0, prio1 = 0;
    CHECK(cudaStreamGetPriority(s[0], &prio0));
    CHECK(cudaStreamGetPriority(s[1], &prio1));
    std::printf("streams_events: priorities: stream0 is greatest %s, stream1 is least %s\n",
                prio0 == greatest ? "yes" : "no", prio1 == least ? "yes" : "no");

    const size_t bytes = size_t(kN) * sizeof(uint32_t);
    uint32_t *fill[kStreams], *comb[kStreams], *out, **parts;
    for (int k = 0; k < kStreams; ++k) {
        CHECK(cudaMalloc(&fill[k], bytes));
        CHECK(cudaMalloc(&comb[k], bytes));
    }
    CHECK(cudaMalloc(&out, bytes));
    CHECK(cudaMalloc(&parts, sizeof comb));
    CHECK(cudaMemcpy(parts, comb, sizeof comb, cudaMemcpyHostToDevice));

    cudaEvent_t filled[kStreams], combined[kStreams], start, stop, done;
    for (int k = 0; k < kStreams; ++k) {
        CHECK(cudaEventCreateWithFlags(&filled[k], cudaEventDisableTiming));
        CHECK(cudaEventCreateWithFlags(&combined[k], cudaEventDisableTiming));
    }
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    CHECK(cudaEventCreateWithFlags(&done, cudaEventBlockingSync | cudaEventDisableTiming));

    const int threads = 256, blocks = (kN + threads - 1) / threads;
    CHECK(cudaEventRecord(start, s[0]));
    for (int k = 0; k < kStreams; ++k) {
        CHECK(cudaMemsetAsync(fill[k], 0, bytes, s[k]));
        slow_fill<<<blocks, threads, 0, s[k]>>>(fill[k], uint32_t(k) * kN, kN, kIters);
        CHECK_LAUNCH();
        CHECK(cudaEventRecord(filled[k], s[k]));
    }
    for (int k = 0; k < kStreams; ++k) {
        int prev = (k + kStreams - 1) % kStreams;
        CHECK(cudaStreamWaitEvent(s[k], filled[prev], 0));
        combine<<<blocks, threads, 0, s[k]>>>(fill[k], fill[prev], comb[k], kN);
        CHECK_LAUNCH();
        CHECK(cudaEventRecord(combined[k], s[k]));
        CHECK(cudaLaunchHostFunc(s[k], count_completion, nullptr));
    }
    CHECK(cudaEventRecord(stop, s[0]));
    // The default stream waits on every stream's event, then reduces.
    for (int k = 0; k < kStreams; ++k) CHECK(cudaStreamWaitEvent(0, combined[k], 0));
    CHECK(cudaMemsetAsync(out, 0, bytes, 0));
    reduce<<<blocks, threads>>>(parts, kStreams, out, kN);
    CHECK_LAUNCH();
    CHECK(cudaEventRecord(done, 0));
    CHECK(cudaLaunchHostFunc(0, count_completion, nullptr));
    CHECK(cudaEventSynchronize(done));
    CHECK(cudaEventQuery(done));
    CHECK(cudaDeviceSynchronize());
    for (int k = 0; k < kStreams; ++k) CHECK(cudaStreamQuery(s[k]));
    CHECK(cudaStreamQuery(0));
    float ms = -1.0f;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    std::printf("streams_events: elapsed time between events is non-negative: %s\n", ms >= 0.0f ? "yes" : "no");
    std::printf("streams_events: host functions run: %d of %d\n", completions.load(), kStreams + 1);

    // Host reference: kIters steps of the LCG are one affine map v -> a*v + c.
    uint32_t a = 1, c = 0;
    for (int j = 0; j < kIters; ++j) {
        a *= kMul;
        c = c * kMul + kAdd;
    }
    std::vector<uint32_t> host(kN), want_fill[kStreams], want_out(kN, 0);
    for (int k = 0; k < kStreams; ++k) {
        want_fill[k].resize(kN);
        for (int i = 0; i < kN; ++i) want_fill[k][i] = a * (uint32_t(k) * kN + uint32_t(i)) + c;
    }
    bool ok = completions.load() == kStreams + 1 && ms >= 0.0f;
    for (int k = 0; k < kStreams; ++k) {
        int prev = (k + kStreams - 1) % kStreams;
        CHECK(cudaMemcpy(host.data(), comb[k], bytes, cudaMemcpyDeviceToHost));
        long bad = 0;
        for (int i = 0; i < kN; ++i) {
            uint32_t w = want_fill[k][i] ^ rotl7(want_fill[prev][i]);
            want_out[i] += w * uint32_t(2 * k + 1);
            if (host[i] != w) ++bad;
        }
        std::printf("streams_events: stream %d waited on stream %d: bad=%ld checksum=%016llx\n", k, prev, bad,
                    (unsigned long long)fnv1a(host.data(), bytes));
        ok = ok && bad == 0;
    }
    CHECK(cudaMemcpy(host.data(), out, bytes, cudaMemcpyDeviceToHost));
    long bad = 0;
    for (int i = 0; i < kN; ++i) bad += host[i] != want_out[i];
    std::printf("streams_events: default stream reduce: bad=%ld checksum=%016llx\n", bad,
                (unsigned long long)fnv1a(host.data(), bytes));
    ok = ok && bad == 0;

    for (int k = 0; k < kStreams; ++k) {
        CHECK(cudaEventDestroy(filled[k]));
        CHECK(cudaEventDestroy(combined[k]));
        CHECK(cudaStreamDestroy(s[k]));
        CHECK(cudaFree(fill[k]));
        CHECK(cudaFree(comb[k]));
    }
    CHECK(cudaEventDestroy(start));
    CHECK(cudaEventDestroy(stop));
    CHECK(cudaEventDestroy(done));
    CHECK(cudaFree(out));
    CHECK(cudaFree(parts));
    std::printf("streams_events: %s\n", ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}
