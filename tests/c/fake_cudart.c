/* A stand-in for the real runtime that records the bytes each call receives,
 * so that a test can prove the shim passes arguments through untouched:
 * by-value structs in registers and in memory, and struct returns. Built
 * with the same soname and version node as the real library; the test
 * points CUDASTUB_REAL_CUDART at it. Compile with -DMAJOR=12 or -DMAJOR=13. */
#include <stdio.h>
#include <string.h>
#include <cuda_runtime_api.h>

struct record {
    char name[64];
    unsigned char bytes[512];
    size_t len;
};

static struct record rec;
static int loads;

__attribute__((constructor)) static void loaded(void) {
    loads++;
    fprintf(stderr, "fake: loaded\n");
}

static void start(const char *name) {
    memset(&rec, 0, sizeof rec);
    snprintf(rec.name, sizeof rec.name, "%s", name);
}

static void put(const void *p, size_t n) {
    if (rec.len + n <= sizeof rec.bytes) {
        memcpy(rec.bytes + rec.len, p, n);
        rec.len += n;
    }
}

#define PUT(x) put(&(x), sizeof(x))

const struct record *fake_record(void) { return &rec; }
int fake_loads(void) { return loads; }

cudaError_t cudaRuntimeGetVersion(int *v) {
    start("cudaRuntimeGetVersion");
    *v = 4242;
    return cudaSuccess;
}

cudaError_t cudaLaunchKernel(const void *func, dim3 grid, dim3 block, void **args, size_t shm, cudaStream_t stream) {
    start("cudaLaunchKernel");
    PUT(func); PUT(grid); PUT(block); PUT(args); PUT(shm); PUT(stream);
    return (cudaError_t)77;
}

unsigned __cudaPushCallConfiguration(dim3 grid, dim3 block, size_t shm, struct CUstream_st *stream) {
    start("__cudaPushCallConfiguration");
    PUT(grid); PUT(block); PUT(shm); PUT(stream);
    return 7u;
}

cudaError_t cudaIpcOpenMemHandle(void **ptr, cudaIpcMemHandle_t handle, unsigned int flags) {
    start("cudaIpcOpenMemHandle");
    PUT(ptr); PUT(handle); PUT(flags);
    return (cudaError_t)78;
}

cudaError_t cudaMemset3D(struct cudaPitchedPtr p, int value, struct cudaExtent extent) {
    start("cudaMemset3D");
    PUT(p); PUT(value); PUT(extent);
    return (cudaError_t)79;
}

struct cudaChannelFormatDesc cudaCreateChannelDesc(int x, int y, int z, int w, enum cudaChannelFormatKind f) {
    struct cudaChannelFormatDesc d = {x + 1, y + 1, z + 1, w + 1, f};
    start("cudaCreateChannelDesc");
    PUT(x); PUT(y); PUT(z); PUT(w); PUT(f);
    return d;
}

#if MAJOR >= 13
cudaError_t cudaMemAdvise(const void *p, size_t n, enum cudaMemoryAdvise advice, struct cudaMemLocation location) {
    start("cudaMemAdvise");
    PUT(p); PUT(n); PUT(advice); PUT(location);
    return (cudaError_t)80;
}
#else
cudaError_t cudaMemAdvise(const void *p, size_t n, enum cudaMemoryAdvise advice, int device) {
    start("cudaMemAdvise");
    PUT(p); PUT(n); PUT(advice); PUT(device);
    return (cudaError_t)80;
}
#endif
