/* Host functions and stream callbacks (functions of this process that the
 * runtime calls when a stream reaches them): run with the virtual GPU in the
 * process, and through a remote GPU's client libraries with the virtual GPU
 * served (tests/virtual_gpu.rs), it must print the same: each function ran,
 * once, in order, with its own data, before a later call returned. */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <time.h>

static int ran[16];
static int count;

static void CUDART_CB host(void *data) {
    if (count < 16) ran[count++] = *(const int *)data;
}

static void CUDART_CB callback(cudaStream_t stream, cudaError_t status, void *data) {
    if (count < 16) ran[count++] = 100 + *(const int *)data + (stream ? 1000 : 0) + 10000 * (int)status;
}

static void CUDART_CB set_flag(void *data) { *(volatile int *)data = 1; }

int main(void) {
    static int one = 1, two = 2, three = 3;
    /* Refused before anything is queued: the same status both ways. */
    printf("cudaLaunchHostFunc(NULL): %d\n", (int)cudaLaunchHostFunc(0, NULL, &one));
    printf("cudaLaunchHostFunc: %d\n", (int)cudaLaunchHostFunc(0, host, &one));
    printf("cudaLaunchHostFunc: %d\n", (int)cudaLaunchHostFunc(0, host, &two));
    printf("cudaStreamAddCallback: %d\n", (int)cudaStreamAddCallback(0, callback, &three, 0));
    printf("cudaLaunchHostFunc: %d\n", (int)cudaLaunchHostFunc(0, host, &one));
    int devices = 0;
    cudaError_t status = cudaGetDeviceCount(&devices);
    printf("cudaGetDeviceCount: %d, %d device(s)\n", (int)status, devices);
    printf("ran:");
    for (int i = 0; i < count; i++) printf(" %d", ran[i]);
    printf("\n");
    /* A host function waited for without calling CUDA (a flag it sets):
     * it runs all the same, within 10 s. */
    static volatile int flag;
    printf("cudaLaunchHostFunc: %d\n", (int)cudaLaunchHostFunc(0, set_flag, (void *)&flag));
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (!flag && now.tv_sec - start.tv_sec < 10);
    printf("a host function waited for with no call: %s\n", flag ? "ran" : "never ran");
    return 0;
}
