/* Host functions and stream callbacks (functions of this process that the
 * runtime calls when a stream reaches them): run with the virtual GPU in the
 * process, and through a remote GPU's client libraries with the virtual GPU
 * served (tests/virtual_gpu.rs), it must print the same: each function ran,
 * once, in order, with its own data, before a later call returned. */
#include <cuda_runtime_api.h>
#include <stdio.h>

static int ran[16];
static int count;

static void CUDART_CB host(void *data) {
    if (count < 16) ran[count++] = *(const int *)data;
}

static void CUDART_CB callback(cudaStream_t stream, cudaError_t status, void *data) {
    if (count < 16) ran[count++] = 100 + *(const int *)data + (stream ? 1000 : 0) + 10000 * (int)status;
}

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
    return 0;
}
