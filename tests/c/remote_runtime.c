/* A CUDA program that needs no GPU for its answers: run directly with the
 * real runtime and cuBLAS, and through a remote GPU's client libraries
 * (tests/remote.rs), it must print the same. */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
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
