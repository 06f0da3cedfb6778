/* A CUDA runtime consumer with no GPU needed: it prints what the runtime
 * answers. Linked against the real libcudart.so.N, so its binary requires
 * every function it calls with the version libcudart.so.N. */
#include <stdio.h>

typedef int cudaError_t;
extern cudaError_t cudaRuntimeGetVersion(int *version);
extern cudaError_t cudaDriverGetVersion(int *version);
extern cudaError_t cudaGetDeviceCount(int *count);
extern const char *cudaGetErrorString(cudaError_t error);
extern const char *cudaGetErrorName(cudaError_t error);

int main(void) {
    int version = -1, driver = -1, count = -1;
    cudaError_t rv = cudaRuntimeGetVersion(&version);
    printf("cudaRuntimeGetVersion -> %d, version %d\n", rv, version);
    rv = cudaDriverGetVersion(&driver);
    printf("cudaDriverGetVersion -> %d, version %d\n", rv, driver);
    printf("cudaGetErrorString(100) = %s\n", cudaGetErrorString(100));
    printf("cudaGetErrorString(9999) = %s\n", cudaGetErrorString(9999));
    printf("cudaGetErrorName(999) = %s\n", cudaGetErrorName(999));
    rv = cudaGetDeviceCount(&count);
    printf("cudaGetDeviceCount -> %d, count %d\n", rv, count);
    return 0;
}
