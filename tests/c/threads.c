/* 64 threads make their first runtime call at the same moment. Each must
 * get the right answer; the shim must load the real library once. Prints
 * the versions seen and, when CUDASTUB_REAL_CUDART is the recording fake, how
 * many times it was loaded. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 64

typedef int cudaError_t;
extern cudaError_t cudaRuntimeGetVersion(int *version);

static pthread_barrier_t barrier;
static int versions[THREADS];
static int results[THREADS];

static void *run(void *arg) {
    long i = (long)arg;
    pthread_barrier_wait(&barrier);
    results[i] = cudaRuntimeGetVersion(&versions[i]);
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, run, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    int same = 1;
    for (int i = 1; i < THREADS; i++) same &= versions[i] == versions[0] && results[i] == results[0];
    printf("threads %d result %d version %d all-equal %s\n", THREADS, results[0], versions[0], same ? "yes" : "no");
    const char *lib = getenv("CUDASTUB_REAL_CUDART");
    void *h = lib ? dlopen(lib, RTLD_NOW | RTLD_NOLOAD) : NULL;
    int (*loads)(void) = h ? (int (*)(void))dlsym(h, "fake_loads") : NULL;
    if (loads) printf("loads %d\n", loads());
    return 0;
}
