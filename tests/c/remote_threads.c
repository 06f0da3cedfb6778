/* CUDA's per-thread state through a remote GPU: each thread's last error is
 * its own. Run with the virtual GPU in the process (which keeps the current
 * device and the last error per thread, as CUDA does), and through a remote
 * GPU's client libraries with the virtual GPU served (tests/virtual_gpu.rs),
 * it must print the same: the server makes each client thread's calls on a
 * thread of its own. */
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stdio.h>

static void *second(void *arg) {
    (void)arg;
    /* Not the first thread's error: this thread has none yet. */
    printf("second: cudaGetLastError %d\n", (int)cudaGetLastError());
    printf("second: cudaSetDevice(9) %d\n", (int)cudaSetDevice(9));
    printf("second: cudaPeekAtLastError %d\n", (int)cudaPeekAtLastError());
    int device = -1;
    cudaError_t status = cudaGetDevice(&device);
    printf("second: cudaGetDevice %d, device %d\n", (int)status, device);
    return NULL;
}

int main(void) {
    printf("first: cudaSetDevice(7) %d\n", (int)cudaSetDevice(7));
    for (int i = 0; i < 3; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, second, NULL) != 0 || pthread_join(t, NULL) != 0) {
            printf("no thread\n");
            return 1;
        }
    }
    /* Its own error, untouched by the other threads'. */
    printf("first: cudaGetLastError %d\n", (int)cudaGetLastError());
    printf("first: cudaGetLastError again %d\n", (int)cudaGetLastError());
    return 0;
}
