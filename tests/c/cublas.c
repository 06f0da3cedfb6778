/* A cuBLAS consumer, linked against the real libcudart.so.N, libcublas.so.N
 * and libcublasLt.so.N: what it prints must be the same directly and through
 * the shims. With no GPU, cublasCreate fails, and must fail the same way. */
#include <stdio.h>
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cublasLt.h>

int main(void) {
    int runtime = -1;
    cudaError_t rt = cudaRuntimeGetVersion(&runtime);
    printf("cudaRuntimeGetVersion -> %d, %d\n", (int)rt, runtime);
    int major = -1, minor = -1, patch = -1;
    cublasStatus_t s1 = cublasGetProperty(MAJOR_VERSION, &major);
    cublasStatus_t s2 = cublasGetProperty(MINOR_VERSION, &minor);
    cublasStatus_t s3 = cublasGetProperty(PATCH_LEVEL, &patch);
    printf("cublasGetProperty -> %d %d %d: %d.%d.%d\n", s1, s2, s3, major, minor, patch);
    printf("cublasGetCudartVersion -> %zu\n", cublasGetCudartVersion());
    printf("cublasLtGetVersion -> %zu\n", cublasLtGetVersion());
    printf("cublasLtGetCudartVersion -> %zu\n", cublasLtGetCudartVersion());

    cublasHandle_t handle = NULL;
    cublasStatus_t created = cublasCreate(&handle);
    printf("cublasCreate -> %d (%s: %s)\n", created, cublasGetStatusName(created),
           cublasGetStatusString(created));
    int version = -1;
    cublasStatus_t got = cublasGetVersion(handle, &version);
    printf("cublasGetVersion -> %d, %d\n", got, version);
    cublasLtHandle_t lt = NULL;
    cublasStatus_t lt_created = cublasLtCreate(&lt);
    printf("cublasLtCreate -> %d (%s)\n", lt_created, cublasGetStatusName(lt_created));
    if (created == CUBLAS_STATUS_SUCCESS) cublasDestroy(handle);
    if (lt_created == CUBLAS_STATUS_SUCCESS) cublasLtDestroy(lt);
    return 0;
}
