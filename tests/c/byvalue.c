/* Calls the by-value-struct functions of the runtime with patterned
 * arguments and checks, through the fake runtime's record, that each one
 * arrived byte for byte. argv[1] names the function to call first, so that
 * every function is tested on the call that resolves the shim, and again
 * on a later call. Prints one PASS or FAIL line per call.
 * Usage: CUDASTUB_REAL_CUDART=fake.so byvalue FUNCTION [direct] */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>

extern unsigned __cudaPushCallConfiguration(dim3, dim3, size_t, struct CUstream_st *);

struct record {
    char name[64];
    unsigned char bytes[512];
    size_t len;
};

static const struct record *(*record)(void);
static unsigned char want[512];
static size_t want_len;
static int failures;

#define PUT(x) (memcpy(want + want_len, &(x), sizeof(x)), want_len += sizeof(x))

static void check(const char *name, int round, long got, long expected) {
    if (!record) {
        /* The call just made loaded the fake: find that copy. */
        void *h = dlopen(getenv("CUDASTUB_REAL_CUDART"), RTLD_NOW | RTLD_NOLOAD);
        record = h ? (const struct record *(*)(void))dlsym(h, "fake_record") : NULL;
        if (!record) {
            printf("FAIL %s round %d: the fake runtime is not loaded after the call\n", name, round);
            exit(1);
        }
    }
    const struct record *r = record();
    int ok = strcmp(r->name, name) == 0 && r->len == want_len && memcmp(r->bytes, want, want_len) == 0 && got == expected;
    printf("%s %s round %d\n", ok ? "PASS" : "FAIL", name, round);
    if (!ok) {
        failures++;
        printf("  recorded %s (%zu bytes), expected %zu bytes; returned %ld, expected %ld\n", r->name, r->len, want_len, got, expected);
    }
    want_len = 0;
}

static void fill(void *p, size_t n, unsigned seed) {
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(seed * 31 + i * 7 + 1);
}

static void launch(int round) {
    const void *func = (const void *)0x1111;
    dim3 grid = {3, 5, 7}, block = {11 + round, 13, 17};
    void **args = (void **)0x2222;
    size_t shm = 0x3333;
    cudaStream_t stream = (cudaStream_t)0x4444;
    PUT(func); PUT(grid); PUT(block); PUT(args); PUT(shm); PUT(stream);
    check("cudaLaunchKernel", round, cudaLaunchKernel(func, grid, block, args, shm, stream), 77);
}

static void push(int round) {
    dim3 grid = {21, 22, 23 + round}, block = {24, 25, 26};
    size_t shm = 27;
    struct CUstream_st *stream = (struct CUstream_st *)0x28;
    PUT(grid); PUT(block); PUT(shm); PUT(stream);
    check("__cudaPushCallConfiguration", round, __cudaPushCallConfiguration(grid, block, shm, stream), 7);
}

static void ipc(int round) {
    void **ptr = (void **)0x5555;
    cudaIpcMemHandle_t handle;
    unsigned flags = 1 + round;
    fill(&handle, sizeof handle, 9 + round);
    PUT(ptr); PUT(handle); PUT(flags);
    check("cudaIpcOpenMemHandle", round, cudaIpcOpenMemHandle(ptr, handle, flags), 78);
}

static void memset3d(int round) {
    struct cudaPitchedPtr p = {(void *)0x6666, 512, 100 + round, 200};
    int value = 0x5a;
    struct cudaExtent extent = {1000, 2000, 3000 + round};
    PUT(p); PUT(value); PUT(extent);
    check("cudaMemset3D", round, cudaMemset3D(p, value, extent), 79);
}

static void channel(int round) {
    int x = 8, y = 16, z = 24 + round, w = 32;
    enum cudaChannelFormatKind f = cudaChannelFormatKindFloat;
    PUT(x); PUT(y); PUT(z); PUT(w); PUT(f);
    struct cudaChannelFormatDesc d = cudaCreateChannelDesc(x, y, z, w, f);
    int ok = d.x == 9 && d.y == 17 && d.z == 25 + round && d.w == 33 && d.f == f;
    check("cudaCreateChannelDesc", round, ok, 1);
}

static void advise(int round) {
    const void *p = (const void *)0x7777;
    size_t n = 4096 + round;
    enum cudaMemoryAdvise advice = cudaMemAdviseSetPreferredLocation;
#if CUDART_VERSION >= 13000
    struct cudaMemLocation location;
    memset(&location, 0, sizeof location);
    location.type = cudaMemLocationTypeDevice;
    location.id = 3;
    PUT(p); PUT(n); PUT(advice); PUT(location);
    check("cudaMemAdvise", round, cudaMemAdvise(p, n, advice, location), 80);
#else
    int device = 3;
    PUT(p); PUT(n); PUT(advice); PUT(device);
    check("cudaMemAdvise", round, cudaMemAdvise(p, n, advice, device), 80);
#endif
}

static const struct { const char *name; void (*run)(int); } cases[] = {
    {"cudaLaunchKernel", launch}, {"__cudaPushCallConfiguration", push}, {"cudaIpcOpenMemHandle", ipc},
    {"cudaMemset3D", memset3d},   {"cudaCreateChannelDesc", channel},   {"cudaMemAdvise", advise},
};

int main(int argc, char **argv) {
    const char *first = argc > 1 ? argv[1] : "";
    const char *fake = getenv("CUDASTUB_REAL_CUDART");
    size_t n = sizeof cases / sizeof cases[0], i;
    for (i = 0; i < n && strcmp(cases[i].name, first) != 0; i++) {}
    if (i == n || !fake) {
        fprintf(stderr, "usage: CUDASTUB_REAL_CUDART=fake.so byvalue FUNCTION\n");
        return 2;
    }
    /* Nothing has called the runtime yet: the shim has not loaded the fake
     * (unless the fake is itself the runtime the program was started with,
     * argv[2] = "direct", to check this test without a shim). */
    int direct = argc > 2 && strcmp(argv[2], "direct") == 0;
    if (!direct && dlopen(fake, RTLD_NOW | RTLD_NOLOAD)) {
        fprintf(stderr, "byvalue: the fake runtime was loaded before the first call\n");
        return 3;
    }
    cases[i].run(1); /* the call that loads the fake and fills the slots */
    cases[i].run(2);
    for (size_t j = 0; j < n; j++)
        if (j != i) cases[j].run(1);
    return failures ? 1 : 0;
}
