/* A user shim implementing the API cudaMemcpyAsync (its `cuda_memcpy_async`
 * returns 100 + the stream handle it was given) and cudaMemcpy2DToArray (7):
 * the per-thread variants reach the same implementations, a null stream made
 * the per-thread one (cudaStreamPerThread, 0x2). One line per call. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

typedef int (*memcpy_async)(void *, const void *, size_t, int, void *);
typedef int (*to_array)(void *, size_t, size_t, const void *, size_t, size_t, size_t, int);

int main(void) {
    void *lib = dlopen("libcudart.so.12", RTLD_NOW);
    if (!lib) {
        printf("%s\n", dlerror());
        return 1;
    }
    memcpy_async plain = (memcpy_async)dlsym(lib, "cudaMemcpyAsync");
    memcpy_async ptsz = (memcpy_async)dlsym(lib, "cudaMemcpyAsync_ptsz");
    to_array ptds = (to_array)dlsym(lib, "cudaMemcpy2DToArray_ptds");
    if (!plain || !ptsz || !ptds) {
        printf("missing\n");
        return 1;
    }
    printf("cudaMemcpyAsync(null) -> %d\n", plain(0, 0, 0, 0, NULL));
    printf("cudaMemcpyAsync_ptsz(null) -> %d\n", ptsz(0, 0, 0, 0, NULL));
    printf("cudaMemcpyAsync_ptsz(0x10) -> %d\n", ptsz(0, 0, 0, 0, (void *)(uintptr_t)0x10));
    printf("cudaMemcpy2DToArray_ptds -> %d\n", ptds(0, 0, 0, 0, 0, 0, 0, 0));
    return 0;
}
