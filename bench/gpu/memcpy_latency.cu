// Latency of a synchronous 4-byte cudaMemcpy from pageable host memory,
// ns per copy, host to device (memcpy_h2d_4B) and back (memcpy_d2h_4B).
#include "bench.h"

int main(int argc, char **argv) {
    print_provider();
    const int reps = bench_reps();
    const long n = scaled(10000, argc, argv);
    int *dev = nullptr;
    CHECK(cudaMalloc(&dev, sizeof(int)));
    int host = 0;
    for (int i = 0; i < 2000; ++i) CHECK(cudaMemcpy(dev, &host, sizeof host, cudaMemcpyHostToDevice));

    std::vector<double> h2d, d2h;
    for (int r = 0; r < reps; ++r) {
        double t0 = now_ns();
        for (long i = 0; i < n; ++i) {
            host = int(i);
            CHECK(cudaMemcpy(dev, &host, sizeof host, cudaMemcpyHostToDevice));
        }
        h2d.push_back((now_ns() - t0) / double(n));
    }
    for (int r = 0; r < reps; ++r) {
        double t0 = now_ns();
        for (long i = 0; i < n; ++i) CHECK(cudaMemcpy(&host, dev, sizeof host, cudaMemcpyDeviceToHost));
        d2h.push_back((now_ns() - t0) / double(n));
    }
    if (host != int(n - 1)) {
        std::printf("FAIL read back %d, wrote %ld last\n", host, n - 1);
        return 1;
    }
    report("memcpy_h2d_4B", "ns/copy", h2d);
    report("memcpy_d2h_4B", "ns/copy", d2h);
    CHECK(cudaFree(dev));
    return 0;
}
