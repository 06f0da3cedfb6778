// Shared by the bench/gpu/ programs. Each program prints machine-readable
// lines, one per repetition and one summary per metric:
//   METRIC rep=I value=V unit=U
//   METRIC median=M min=A max=B n=N unit=U
// and one line naming the file that answers cudaGetLastError (the real
// runtime directly, the shim through it):
//   info cudart=/path/to/libcudart.so.13...
// Repetitions: $BENCH_REPS (default 7). Work per repetition scales with the
// first argument (default 1.0), for quick dry runs.
#pragma once
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <dlfcn.h>
#include <vector>
#include <cuda_runtime.h>

#define CHECK(call)                                                                       \
    do {                                                                                  \
        cudaError_t check_rv_ = (call);                                                   \
        if (check_rv_ != cudaSuccess) {                                                   \
            std::printf("FAIL %s -> %s\n", #call, cudaGetErrorName(check_rv_));           \
            std::fflush(stdout);                                                          \
            std::exit(1);                                                                 \
        }                                                                                 \
    } while (0)

static inline double now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

static inline int bench_reps() {
    const char *s = std::getenv("BENCH_REPS");
    int r = s ? std::atoi(s) : 7;
    return r > 0 ? r : 7;
}

// Iteration count `base` scaled by argv[1].
static inline long scaled(long base, int argc, char **argv) {
    double f = argc > 1 ? std::atof(argv[1]) : 1.0;
    long n = long(double(base) * (f > 0 ? f : 1.0));
    return n > 0 ? n : 1;
}

static inline void report(const char *metric, const char *unit, std::vector<double> v) {
    for (size_t i = 0; i < v.size(); ++i)
        std::printf("%s rep=%zu value=%.6g unit=%s\n", metric, i, v[i], unit);
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    std::printf("%s median=%.6g min=%.6g max=%.6g n=%zu unit=%s\n", metric, median, v.front(), v.back(), n, unit);
    std::fflush(stdout);
}

// Which file answers to cudaGetLastError in the global scope.
static inline void print_provider() {
    void *f = dlsym(RTLD_DEFAULT, "cudaGetLastError");
    Dl_info info;
    if (f && dladdr(f, &info) && info.dli_fname)
        std::printf("info cudart=%s\n", info.dli_fname);
    else
        std::printf("info cudart=unknown\n");
    std::fflush(stdout);
}
