// Launch cost of an empty kernel through <<<>>> (which calls
// __cudaPushCallConfiguration, __cudaPopCallConfiguration and
// __cudaLaunchKernel, each one trampoline jump in the shim):
//   launch_throughput  200k launches then one cudaDeviceSynchronize, launches/s
//                      (bounded by whichever is slower: the host submitting or
//                      the GPU running empty kernels)
//   launch_submit      host time of the <<<>>> call alone, in batches of 256
//                      launches on an idle GPU (the sync between batches is
//                      not timed), ns per launch
#include "bench.h"

__global__ void empty_kernel() {}

int main(int argc, char **argv) {
    print_provider();
    const int reps = bench_reps();
    const long launches = scaled(200000, argc, argv);
    const long batches = scaled(128, argc, argv), batch = 256;
    CHECK(cudaFree(nullptr));  // create the context outside the timing
    for (int i = 0; i < 20000; ++i) empty_kernel<<<1, 1>>>();
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());

    std::vector<double> throughput, submit;
    for (int r = 0; r < reps; ++r) {
        double t0 = now_ns();
        for (long i = 0; i < launches; ++i) empty_kernel<<<1, 1>>>();
        CHECK(cudaDeviceSynchronize());
        double t1 = now_ns();
        CHECK(cudaGetLastError());
        throughput.push_back(double(launches) / ((t1 - t0) * 1e-9));
    }
    for (int r = 0; r < reps; ++r) {
        double total = 0;
        for (long b = 0; b < batches; ++b) {
            CHECK(cudaDeviceSynchronize());
            double t0 = now_ns();
            for (long i = 0; i < batch; ++i) empty_kernel<<<1, 1>>>();
            total += now_ns() - t0;
        }
        CHECK(cudaDeviceSynchronize());
        CHECK(cudaGetLastError());
        submit.push_back(total / double(batches * batch));
    }
    report("launch_throughput", "launches/s", throughput);
    report("launch_submit", "ns/launch", submit);
    return 0;
}
