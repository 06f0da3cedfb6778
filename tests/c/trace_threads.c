/* 16 threads calling the runtime at once, for the tracer: every line it
 * writes must be whole. Prints the number of calls made. */
#include <pthread.h>
#include <stdio.h>

#define THREADS 16
#define CALLS 200

typedef int cudaError_t;
extern cudaError_t cudaRuntimeGetVersion(int *version);
extern const char *cudaGetErrorName(cudaError_t error);

static pthread_barrier_t barrier;

static void *run(void *arg) {
    (void)arg;
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < CALLS; i++) {
        int v;
        cudaRuntimeGetVersion(&v);
        cudaGetErrorName((cudaError_t)(i % 3));
    }
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, run, NULL);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    printf("calls %d\n", THREADS * CALLS * 2);
    return 0;
}
