/* Calls cudaGetDeviceCount N times: the benchmark of bench/backend.sh.
 * Usage: device_count N [time] — with "time", prints ns per call (best of 5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int cudaError_t;
extern cudaError_t cudaGetDeviceCount(int *count);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    int timed = argc > 2 && strcmp(argv[2], "time") == 0;
    int count;
    volatile int sink = cudaGetDeviceCount(&count); /* resolves the shim */
    if (!timed) {
        for (long i = 0; i < n; i++) sink += cudaGetDeviceCount(&count);
        return 0;
    }
    double best = 1e300;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (long i = 0; i < n; i++) sink += cudaGetDeviceCount(&count);
        double per = (now() - t0) / n;
        if (per < best) best = per;
    }
    printf("%.2f\n", best);
    return 0;
}
