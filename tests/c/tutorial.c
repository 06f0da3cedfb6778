/* The README tutorial's runtime shim, by dlopen: its device count, and the
 * bytes each cudaGetDeviceProperties ABI wrote with the name, compute
 * capability and multiprocessors at that ABI's offsets. Compiled with the
 * headers of the major tested; one line per call. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>

typedef cudaError_t (*get_properties)(void *, int);

static void properties(void *lib, const char *label, const char *symbol, size_t major_at, size_t sms_at) {
    static unsigned char buf[4096];
    get_properties get = (get_properties)dlsym(lib, symbol);
    if (!get) {
        printf("%s absent\n", label);
        return;
    }
    cudaError_t rv = cudaSuccess;
    size_t last = 0;
    for (int pattern = 0; pattern < 2; pattern++) {
        unsigned char canary = pattern ? 0x5a : 0xa5;
        memset(buf, canary, sizeof buf);
        rv |= get(buf, 0);
        for (size_t i = 0; i < sizeof buf; i++)
            if (buf[i] != canary && i + 1 > last) last = i + 1;
    }
    int cc[2], sms;
    memcpy(cc, buf + major_at, sizeof cc);
    memcpy(&sms, buf + sms_at, sizeof sms);
    printf("%s %d bytes=%zu name=%s cc=%d.%d sms=%d\n", label, rv, last, (char *)buf, cc[0], cc[1], sms);
}

int main(int argc, char **argv) {
    void *lib = argc > 1 ? dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) : NULL;
    if (!lib) {
        printf("%s\n", dlerror());
        return 2;
    }
    int count = -1;
    cudaError_t (*get_count)(int *) = (cudaError_t(*)(int *))dlsym(lib, "cudaGetDeviceCount");
    int rv = get_count ? get_count(&count) : -1;
    printf("count %d %d\n", rv, count);
    const size_t major_at = offsetof(struct cudaDeviceProp, major);
    const size_t sms_at = offsetof(struct cudaDeviceProp, multiProcessorCount);
#if CUDART_VERSION < 13000
    /* 12's plain export: CUDA 11.8's layout (major at 360, multiProcessorCount at 388). */
    properties(lib, "legacy", "cudaGetDeviceProperties", 360, 388);
    properties(lib, "current", "cudaGetDeviceProperties_v2", major_at, sms_at);
#else
    properties(lib, "current", "cudaGetDeviceProperties", major_at, sms_at);
    properties(lib, "v2", "cudaGetDeviceProperties_v2", major_at, sms_at);
#endif
    return 0;
}
