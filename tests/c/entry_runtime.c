/* The real runtime's first calls, which reach the driver: its version, the
 * device count, and a driver entry point through the runtime. */
#include <stdio.h>

#include <cuda_runtime_api.h>

int main(void) {
    int count = -1;
    cudaError_t e = cudaGetDeviceCount(&count);
    printf("cudaGetDeviceCount -> %d %s, %d\n", (int)e, cudaGetErrorName(e), count);
    int version = -1;
    e = cudaDriverGetVersion(&version);
    printf("cudaDriverGetVersion -> %d, %d\n", (int)e, version);
    return 0;
}
