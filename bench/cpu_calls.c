/* Calls one cheap library function N times, for the CPU benchmarks
 * (forwarding.sh, backend.sh). Linked against the real libcudart.so.N (and,
 * built with -DWITH_CUBLAS, libcublas.so.N); run directly, or through the
 * shims with LD_LIBRARY_PATH.
 *
 * Usage: cpu_calls FUNCTION N [time]
 *   FUNCTION  cudaGetLastError, cudaGetDeviceCount, (WITH_CUBLAS) cublasGetProperty,
 *             (WITH_DRIVER, linked against libcuda.so.1) cuDriverGetVersion, or
 *             cuDriverGetVersion@proc: the same function called through the
 *             pointer cuGetProcAddress_v2 returned
 *   time      print ns per call (best of 5 rounds of N calls) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int cudaError_t;
extern cudaError_t cudaGetLastError(void);
extern cudaError_t cudaGetDeviceCount(int *count);

static int count;
static cudaError_t last_error(void) { return cudaGetLastError(); }
static cudaError_t device_count(void) { return cudaGetDeviceCount(&count); }
#ifdef WITH_CUBLAS
extern int cublasGetProperty(int type, int *value); /* MAJOR_VERSION is 0 */
static int property;
static cudaError_t blas_property(void) { return cublasGetProperty(0, &property); }
#endif

#ifdef WITH_DRIVER
extern int cuDriverGetVersion(int *version);
extern int cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, unsigned long long flags,
                               int *status);
static int version;
static int (*proc_driver_version)(int *);
static cudaError_t driver_version(void) { return cuDriverGetVersion(&version); }
static cudaError_t proc_version(void) { return proc_driver_version(&version); }
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: cpu_calls cudaGetLastError|cudaGetDeviceCount|cublasGetProperty N [time]\n");
        return 2;
    }
    cudaError_t (*call)(void) = strcmp(argv[1], "cudaGetDeviceCount") == 0 ? device_count : last_error;
#ifdef WITH_CUBLAS
    if (strcmp(argv[1], "cublasGetProperty") == 0) call = blas_property;
#endif
#ifdef WITH_DRIVER
    if (strcmp(argv[1], "cuDriverGetVersion") == 0) call = driver_version;
    if (strcmp(argv[1], "cuDriverGetVersion@proc") == 0) {
        int status = 0;
        if (cuGetProcAddress_v2("cuDriverGetVersion", (void **)&proc_driver_version, 12000, 0, &status) != 0) {
            fprintf(stderr, "cuGetProcAddress_v2 failed\n");
            return 1;
        }
        call = proc_version;
    }
#endif
    long n = atol(argv[2]);
    int timed = argc > 3 && strcmp(argv[3], "time") == 0;
    volatile int sink = call(); /* the first call resolves the shim */
    if (!timed) {
        for (long i = 0; i < n; i++) sink += call();
        return 0;
    }
    double best = 1e300;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (long i = 0; i < n; i++) sink += call();
        double per = (now() - t0) / n;
        if (per < best) best = per;
    }
    printf("%.2f\n", best);
    return 0;
}
