/* cuBLASLt's scalars through a remote GPU: `alpha` and `beta` are host
 * memory or device addresses as the matmul descriptor's pointer mode says,
 * and as long as its scale type says. Run directly with the real cuBLASLt
 * and through the client libraries (tests/remote.rs), it must print the
 * same. With no GPU, the handle is null and every matmul reports it; with
 * one, the null layouts are refused before anything runs. */
#include <cublasLt.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static cublasStatus_t matmul(cublasLtHandle_t lt, cublasLtMatmulDesc_t desc, const void *alpha,
                             const void *beta) {
    /* Device operands are never read here: the null layouts fail first. */
    void *d = (void *)0x1000;
    return cublasLtMatmul(lt, desc, alpha, d, NULL, d, NULL, beta, d, NULL, d, NULL, NULL, NULL, 0,
                          0);
}

int main(void) {
    cublasLtHandle_t lt = NULL;
    cublasStatus_t s = cublasLtCreate(&lt);
    printf("cublasLtCreate: %d\n", (int)s);
    cublasLtMatmulDesc_t desc = NULL;
    s = cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_64F, CUDA_R_64F);
    printf("cublasLtMatmulDescCreate: %d %s\n", (int)s, desc ? "a descriptor" : "null");
    int scale = -1;
    size_t written = 0;
    s = cublasLtMatmulDescGetAttribute(desc, CUBLASLT_MATMUL_DESC_SCALE_TYPE, &scale, sizeof scale,
                                       &written);
    printf("scale type: %d %d %zu\n", (int)s, scale, written);
    /* The host mode (the default): the scalars cross by value. */
    double one = 1, zero = 0;
    cublasStatus_t host = matmul(lt, desc, &one, &zero);
    printf("matmul, host scalars: %d\n", (int)host);
    /* A double at the very end of readable memory: the client reads no
     * further than it may. */
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(two + page, page, PROT_NONE);
    double *last = (double *)(two + page - sizeof(double));
    *last = 2;
    printf("matmul, a scalar at the end of a page: %s\n",
           matmul(lt, desc, last, &zero) == host ? "as above" : "differs");
    printf("matmul, null scalars: %s\n", matmul(lt, desc, NULL, NULL) == host ? "as above" : "differs");
    /* The device mode: the scalars are device addresses, never read here. */
    int mode = CUBLASLT_POINTER_MODE_DEVICE;
    s = cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &mode, sizeof mode);
    printf("pointer mode device: %d\n", (int)s);
    printf("matmul, device scalars: %s\n",
           matmul(lt, desc, (void *)0x2000, (void *)0x3000) == host ? "as above" : "differs");
    /* Alpha on the device, beta on the host. */
    mode = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST;
    s = cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &mode, sizeof mode);
    printf("pointer mode alpha device, beta host: %d\n", (int)s);
    printf("matmul, mixed scalars: %s\n",
           matmul(lt, desc, (void *)0x2000, &zero) == host ? "as above" : "differs");
    /* A half-precision scale type: two bytes, at the end of the page too. */
    cublasLtMatmulDesc_t half = NULL;
    s = cublasLtMatmulDescCreate(&half, CUBLAS_COMPUTE_16F, CUDA_R_16F);
    printf("half descriptor: %d\n", (int)s);
    unsigned short *h = (unsigned short *)(two + page - sizeof(unsigned short));
    *h = 0x3c00;
    printf("matmul, a half at the end of a page: %s\n",
           matmul(lt, half, h, h) == host ? "as above" : "differs");
    printf("destroy: %d %d\n", (int)cublasLtMatmulDescDestroy(desc), (int)cublasLtMatmulDescDestroy(half));
    if (lt) cublasLtDestroy(lt);
    return 0;
}
