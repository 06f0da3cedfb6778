/* A consumer of four libraries beyond the five (CUPTI, nvJitLink, cuFile, NVTX),
 * each opened by its soname, as PyTorch opens them: what the library says
 * about itself, the same directly and through the shims of dist/MAJOR.
 * Usage: more_libs MAJOR */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* cufile.h's status: an operation error and a CUDA driver error. */
typedef struct {
    int err;
    int cu_err;
} CUfileError_t;

static void *open_lib(const char *soname) {
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("dlopen %s failed: %s\n", soname, dlerror());
        exit(1);
    }
    return h;
}

static void *sym(void *h, const char *name) {
    void *f = dlsym(h, name);
    if (!f) {
        printf("dlsym %s failed\n", name);
        exit(1);
    }
    return f;
}

int main(int argc, char **argv) {
    const char *major = argc > 1 ? argv[1] : "12";
    char name[64];

    snprintf(name, sizeof name, "libcupti.so.%s", major);
    int (*cuptiGetVersion)(uint32_t *) = (int (*)(uint32_t *))sym(open_lib(name), "cuptiGetVersion");
    uint32_t cupti = 0;
    int st = cuptiGetVersion(&cupti);
    printf("cuptiGetVersion: status %d, version %u\n", st, cupti);

    snprintf(name, sizeof name, "libnvJitLink.so.%s", major);
    int (*nvJitLinkVersion)(unsigned *, unsigned *) =
        (int (*)(unsigned *, unsigned *))sym(open_lib(name), "nvJitLinkVersion");
    unsigned jmaj = 0, jmin = 0;
    st = nvJitLinkVersion(&jmaj, &jmin);
    printf("nvJitLinkVersion: status %d, %u.%u\n", st, jmaj, jmin);

    void *cufile = open_lib("libcufile.so.0");
    CUfileError_t (*cuFileGetVersion)(int *) = (CUfileError_t (*)(int *))sym(cufile, "cuFileGetVersion");
    int version = -1;
    CUfileError_t e = cuFileGetVersion(&version);
    printf("cuFileGetVersion: err %d, cu_err %d, version %d\n", e.err, e.cu_err, version);

    /* With no NVTX tool injected, NVTX answers NVTX_NO_PUSH_POP_TRACKING (-2). */
    void *nvtx = open_lib("libnvtx3interop.so.1");
    int (*nvtxRangePushA)(const char *) = (int (*)(const char *))sym(nvtx, "nvtxRangePushA");
    int (*nvtxRangePop)(void) = (int (*)(void))sym(nvtx, "nvtxRangePop");
    int pushed = nvtxRangePushA("more_libs");
    printf("nvtxRangePushA: %d, nvtxRangePop: %d\n", pushed, nvtxRangePop());
    return 0;
}
