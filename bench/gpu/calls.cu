// Cheap runtime calls in a tight loop, ns per call:
//   cudaGetLastError          no device needed (also measured with no GPU)
//   cudaRuntimeGetVersion     no device needed (also measured with no GPU)
//   cudaGetDevice             after the context exists
//   cudaStreamQuery_idle      cudaStreamQuery on a created, idle stream
#include "bench.h"

template <typename F>
static std::vector<double> per_call(int reps, long n, F call) {
    for (long i = 0; i < n / 10 + 1; ++i) call();  // warm up
    std::vector<double> v;
    for (int r = 0; r < reps; ++r) {
        double t0 = now_ns();
        for (long i = 0; i < n; ++i) call();
        v.push_back((now_ns() - t0) / double(n));
    }
    return v;
}

int main(int argc, char **argv) {
    print_provider();
    const int reps = bench_reps();
    volatile int sink = 0;
    report("cudaGetLastError", "ns/call",
           per_call(reps, scaled(10000000, argc, argv), [&] { sink = sink + int(cudaGetLastError()); }));
    int version = 0;
    report("cudaRuntimeGetVersion", "ns/call",
           per_call(reps, scaled(5000000, argc, argv), [&] { sink = sink + int(cudaRuntimeGetVersion(&version)); }));

    CHECK(cudaFree(nullptr));  // the context, for the calls below
    int device = -1;
    report("cudaGetDevice", "ns/call",
           per_call(reps, scaled(5000000, argc, argv), [&] { sink = sink + int(cudaGetDevice(&device)); }));
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CHECK(cudaStreamSynchronize(stream));
    CHECK(cudaStreamQuery(stream));
    report("cudaStreamQuery_idle", "ns/call",
           per_call(reps, scaled(200000, argc, argv), [&] { sink = sink + int(cudaStreamQuery(stream)); }));
    CHECK(cudaStreamDestroy(stream));
    if (sink != 0) {
        std::printf("FAIL some call returned an error (sum %d)\n", int(sink));
        return 1;
    }
    return 0;
}
