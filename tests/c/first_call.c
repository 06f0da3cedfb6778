/* The host side of the first-call hardening tests (tests/robustness.rs,
 * issue 20): linked against the real libcudart.so.N and libcublas.so.N, so
 * that it requires each function with its version, and run through the
 * shims with the real libraries behind them. argv[1] picks the case:
 *
 *   threads       four threads make their first call at once; each prints
 *                 its result (none may hang)
 *   stack BYTES   cublasGetProperty, the first cuBLAS call, on a thread
 *                 whose whole stack is BYTES
 *   dlopen-stack BYTES PATH
 *                 the same on a thread of BYTES, calling the real cuBLAS at
 *                 PATH through dlopen and dlsym, without any shim: what the
 *                 real library itself needs
 *   fork-trace    a traced call in the parent, then one in a forked child;
 *                 prints each process's id (its main thread's id) */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern int cudaRuntimeGetVersion(int *version);
extern int cublasGetProperty(int type, int *value);

static void *version_thread(void *arg) {
    int v = -1;
    int r = cudaRuntimeGetVersion(&v);
    printf("thread %ld -> %d, version %d\n", (long)arg, r, v);
    return NULL;
}

static int threads_case(void) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, version_thread, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("done\n");
    return 0;
}

typedef int (*get_property_fn)(int, int *);

static get_property_fn property_fn;
static const char *property_path;

static void *property_thread(void *arg) {
    (void)arg;
    if (property_path) {
        void *h = dlopen(property_path, RTLD_NOW | RTLD_LOCAL);
        property_fn = h ? (get_property_fn)dlsym(h, "cublasGetProperty") : NULL;
        if (!property_fn) {
            printf("cannot load %s: %s\n", property_path, dlerror());
            return NULL;
        }
    }
    int major = -1;
    int r = property_fn(0 /* MAJOR_VERSION */, &major);
    printf("cublasGetProperty -> %d, major %d\n", r, major);
    return NULL;
}

static int stack_case(const char *bytes, const char *path) {
    property_fn = cublasGetProperty;
    property_path = path;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    size_t size = strtoul(bytes, NULL, 10);
    int err = pthread_attr_setstacksize(&attr, size);
    if (err) {
        printf("pthread_attr_setstacksize(%zu): %s\n", size, strerror(err));
        return 2;
    }
    pthread_t t;
    err = pthread_create(&t, &attr, property_thread, NULL);
    if (err) {
        printf("pthread_create: %s\n", strerror(err));
        return 2;
    }
    pthread_join(t, NULL);
    printf("stack %zu done\n", size);
    return 0;
}

static int fork_trace_case(void) {
    int v = -1;
    int r = cudaRuntimeGetVersion(&v);
    printf("parent %d -> %d\n", (int)getpid(), r);
    pid_t pid = fork();
    if (pid == 0) {
        r = cudaRuntimeGetVersion(&v);
        printf("child %d -> %d\n", (int)getpid(), r);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "threads";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(mode, "threads")) return threads_case();
    if (!strcmp(mode, "stack") && argc > 2) return stack_case(argv[2], NULL);
    if (!strcmp(mode, "dlopen-stack") && argc > 3) return stack_case(argv[2], argv[3]);
    if (!strcmp(mode, "fork-trace")) return fork_trace_case();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
