/* A CUDA program that needs no GPU for its answers: run directly with the
 * real runtime and cuBLAS, and through a remote GPU's client libraries
 * (tests/remote.rs), it must print the same. */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int v = -1;
    cudaError_t e = cudaRuntimeGetVersion(&v);
    printf("cudaRuntimeGetVersion: %d %d\n", (int)e, v);
    v = -1;
    e = cudaDriverGetVersion(&v);
    printf("cudaDriverGetVersion: %d %d\n", (int)e, v);
    int n = -7;
    e = cudaGetDeviceCount(&n);
    printf("cudaGetDeviceCount: %d %d %s: %s\n", (int)e, n, cudaGetErrorName(e),
           cudaGetErrorString(e));
    printf("cudaGetLastError: %d\n", (int)cudaGetLastError());
    printf("cudaGetLastError again: %d\n", (int)cudaGetLastError());
    if (e == cudaSuccess && n > 0) {
        struct cudaDeviceProp prop;
        e = cudaGetDeviceProperties(&prop, 0);
        printf("cudaGetDeviceProperties: %d %s, %d SMs, %zu MiB\n", (int)e, prop.name,
               prop.multiProcessorCount, prop.totalGlobalMem >> 20);
    }
    /* Memory: allocated on the device, filled from the host, read back. */
    enum { BYTES = 1 << 20 };
    static unsigned char pattern[BYTES], back[BYTES];
    for (int i = 0; i < BYTES; i++) pattern[i] = (unsigned char)(i * 7 + 3);
    void *d = NULL;
    e = cudaMalloc(&d, BYTES);
    printf("cudaMalloc: %d %s\n", (int)e, d ? "an address" : "null");
    e = cudaMemcpy(d, pattern, BYTES, cudaMemcpyHostToDevice);
    printf("cudaMemcpy HostToDevice: %d\n", (int)e);
    e = cudaMemset(d, 0x5a, 4096);
    printf("cudaMemset: %d\n", (int)e);
    e = cudaMemcpy(back, d, BYTES, cudaMemcpyDeviceToHost);
    int same = 1;
    for (int i = 0; i < BYTES; i++)
        if (back[i] != (i < 4096 ? 0x5a : pattern[i])) same = 0;
    printf("cudaMemcpy DeviceToHost: %d, data %s\n", (int)e, same ? "as written" : "not as written");
    unsigned char h2h[16] = {0};
    e = cudaMemcpy(h2h, pattern, sizeof h2h, cudaMemcpyHostToHost);
    printf("cudaMemcpy HostToHost: %d %d %d\n", (int)e, h2h[0], h2h[15]);
    /* Unified addressing: the addresses say which side each is. */
    memset(back, 0, sizeof back);
    e = cudaMemcpy(d, pattern, 4096, cudaMemcpyDefault);
    cudaError_t e2 = cudaMemcpy(back, d, 4096, cudaMemcpyDefault);
    printf("cudaMemcpy Default: %d %d, data %s\n", (int)e, (int)e2,
           memcmp(back, pattern, 4096) == 0 ? "as written" : "not as written");
    memset(back, 0, sizeof back);
    e = cudaMemcpyAsync(back, d, 4096, cudaMemcpyDefault, 0);
    e2 = cudaStreamSynchronize(0);
    printf("cudaMemcpyAsync Default to the host: %d %d, data %s\n", (int)e, (int)e2,
           memcmp(back, pattern, 4096) == 0 ? "as written" : "not as written");
    unsigned char dflt[16] = {0};
    e = cudaMemcpy(dflt, pattern, sizeof dflt, cudaMemcpyDefault);
    printf("cudaMemcpy Default host to host: %d %d %d\n", (int)e, dflt[0], dflt[15]);
    e = cudaFree(d);
    printf("cudaFree: %d\n", (int)e);
    e = cudaDeviceSynchronize();
    printf("cudaDeviceSynchronize: %d\n", (int)e);
    int major = -1, minor = -1;
    cublasStatus_t s = cublasGetProperty(MAJOR_VERSION, &major);
    cublasStatus_t t = cublasGetProperty(MINOR_VERSION, &minor);
    printf("cublasGetProperty: %d %d %d %d\n", (int)s, major, (int)t, minor);
    printf("cublasGetStatusName: %s\n", cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED));
    /* A forked child calls too (remotely: on a connection of its own). */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int w = -1;
        cudaError_t c = cudaRuntimeGetVersion(&w);
        printf("child: cudaRuntimeGetVersion: %d %d\n", (int)c, w);
        fflush(stdout);
        _exit(0);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    printf("child exited: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    v = -1;
    e = cudaRuntimeGetVersion(&v);
    printf("parent after fork: %d %d\n", (int)e, v);
    return 0;
}
