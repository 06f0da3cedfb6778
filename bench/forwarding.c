/* Cost of a forwarded call: calls one cheap runtime function N times.
 * Linked against the real libcudart.so.N; run directly, or through the shim
 * with LD_LIBRARY_PATH. Usage: forwarding N [time]
 * With "time", prints ns per call (best of 5 rounds of N calls). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int cudaError_t;
extern cudaError_t cudaGetLastError(void);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    int timed = argc > 2 && strcmp(argv[2], "time") == 0;
    volatile int sink = 0;
    sink += cudaGetLastError(); /* the first call resolves the shim */
    if (!timed) {
        for (long i = 0; i < n; i++) sink += cudaGetLastError();
        return 0;
    }
    double best = 1e300;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (long i = 0; i < n; i++) sink += cudaGetLastError();
        double per = (now() - t0) / n;
        if (per < best) best = per;
    }
    printf("%.2f\n", best);
    return 0;
}
