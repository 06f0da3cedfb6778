// Shared by the gpu/ programs: every CUDA call is checked, and a failure is
// reported as one deterministic line (the call and the error's name) followed
// by exit status 1, so that a failing run also prints the same text directly
// and through the shim.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

#define CHECK(call)                                                           \
    do {                                                                      \
        cudaError_t check_rv_ = (call);                                       \
        if (check_rv_ != cudaSuccess) {                                       \
            std::printf("FAIL %s -> %s\n", #call,                             \
                        cudaGetErrorName(check_rv_));                         \
            std::fflush(stdout);                                              \
            std::exit(1);                                                     \
        }                                                                     \
    } while (0)

// After a <<<>>> launch: the launch error, then (optionally) the kernel's.
#define CHECK_LAUNCH() CHECK(cudaGetLastError())

// FNV-1a, 64 bits, over raw bytes: a checksum that any change shows.
static inline uint64_t fnv1a(const void *data, size_t n, uint64_t h = 1469598103934665603ull) {
    const unsigned char *p = static_cast<const unsigned char *>(data);
    for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

// A tiny deterministic generator (xorshift64*), seeded per use.
static inline uint64_t next_random(uint64_t &s) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
}

// The runtime version the program was compiled against and the one it runs
// on; both are the same directly and through the shim (which forwards).
static inline void print_versions(const char *program) {
    int runtime = 0;
    CHECK(cudaRuntimeGetVersion(&runtime));
    std::printf("%s: built with CUDART_VERSION %d, runtime %d\n", program, CUDART_VERSION, runtime);
    int count = 0;
    CHECK(cudaGetDeviceCount(&count));
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("%s: device 0 of %d: %s, sm_%d%d\n", program, count, prop.name, prop.major, prop.minor);
}
