/* GPU discovery as an application does it, linked against the real
 * runtime: device count, properties, attributes, current device, memory,
 * versions, and one allocation. Run through the virtual-gpu example shim. */
#include <stdio.h>
#include <string.h>
#include <cuda_runtime_api.h>

#if CUDART_VERSION < 13000
/* 12's legacy entry point for binaries built against CUDA 11. */
#undef cudaGetDeviceProperties
extern cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device);
#endif

int main(void) {
    int count = -1, value = -1, device = -1, version = -1, driver = -1;
    cudaError_t rv = cudaGetDeviceCount(&count);
    printf("count %s %d\n", cudaGetErrorName(rv), count);
    /* The error state is the real runtime's (when there is one). */
    printf("last-error %s\n", cudaGetErrorName(cudaGetLastError()));
    for (int d = 0; d < count; d++) {
        struct cudaDeviceProp prop;
        memset(&prop, 0xab, sizeof prop);
#if CUDART_VERSION < 13000
        rv = cudaGetDeviceProperties_v2(&prop, d);
#else
        rv = cudaGetDeviceProperties(&prop, d);
#endif
        printf("device %d %s name=\"%s\" memory=%zu cc=%d.%d sms=%d\n", d, cudaGetErrorName(rv), prop.name,
               prop.totalGlobalMem, prop.major, prop.minor, prop.multiProcessorCount);
#if CUDART_VERSION < 13000
        memset(&prop, 0xab, sizeof prop);
        rv = cudaGetDeviceProperties(&prop, d);
        if (rv == cudaSuccess)
            printf("legacy %d %s name=\"%.255s\" memory=%zu cc=%d.%d\n", d, cudaGetErrorName(rv), prop.name,
                   prop.totalGlobalMem, prop.major, prop.minor);
        else
            printf("legacy %d %s\n", d, cudaGetErrorName(rv));
#endif
    }
    rv = cudaDeviceGetAttribute(&value, cudaDevAttrComputeCapabilityMajor, 0);
    printf("attribute cc-major %s %d\n", cudaGetErrorName(rv), value);
    rv = cudaDeviceGetAttribute(&value, cudaDevAttrMultiProcessorCount, 0);
    printf("attribute sms %s %d\n", cudaGetErrorName(rv), value);
    rv = cudaSetDevice(1);
    printf("set-device 1 %s\n", cudaGetErrorName(rv));
    rv = cudaSetDevice(0);
    printf("set-device 0 %s\n", cudaGetErrorName(rv));
    rv = cudaGetDevice(&device);
    printf("get-device %s %d\n", cudaGetErrorName(rv), device);
    size_t free_bytes = 0, total_bytes = 0;
    rv = cudaMemGetInfo(&free_bytes, &total_bytes);
    printf("mem-info %s free=%zu total=%zu\n", cudaGetErrorName(rv), free_bytes, total_bytes);
    rv = cudaRuntimeGetVersion(&version);
    printf("runtime-version %s %d\n", cudaGetErrorName(rv), version);
    rv = cudaDriverGetVersion(&driver);
    printf("driver-version %s %d\n", cudaGetErrorName(rv), driver);
    void *p = NULL;
    rv = cudaMalloc(&p, 1024);
    printf("malloc %s %d\n", cudaGetErrorName(rv), (int)rv);
    return 0;
}
