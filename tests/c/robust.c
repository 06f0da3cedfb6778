/* The host side of the robustness tests (tests/robustness.rs): one program,
 * linked against the real runtime (so that it requires each function with
 * version libcudart.so.N), run through the shim with the fake runtime
 * (robust_fake.c) behind it. argv[1] picks the case:
 *
 *   version  one call; prints its result
 *   trace    calls whose pointer arguments the tracer must not read: an
 *            unfilled output buffer and an unterminated input string, each
 *            ending at a guard page; a code address as `const char *`
 *   errno    errno across the first call (loading) and traced calls
 *   ymm/zmm  the first call arrives with the caller's ymm0-7 / zmm0-7
 *   fork     fork() while another thread is inside the first call's loading */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern int cudaRuntimeGetVersion(int *version);
extern int cudaGetDeviceCount(int *count);
extern int cudaDeviceGetPCIBusId(char *pciBusId, int len, int device);
extern int cudaDeviceGetByPCIBusId(int *device, const char *pciBusId);
extern const char *cudaGetErrorString(int error);
extern void __cudaRegisterFunction(void **handle, const char *hostFun, char *deviceFun,
                                   const char *deviceName, int limit, void *tid, void *bid,
                                   void *bDim, void *gDim, int *wSize);

static int version(void) {
    int v = -1;
    int r = cudaRuntimeGetVersion(&v);
    printf("cudaRuntimeGetVersion -> %d, version %d\n", r, v);
    return r;
}

/* 16 bytes of 'A', no NUL, ending where a PROT_NONE page starts. */
static char *before_guard_page(void) {
    long page = sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED || mprotect(map + page, page, PROT_NONE) != 0) {
        perror("mmap");
        exit(2);
    }
    char *buf = map + page - 16;
    memset(buf, 'A', 16);
    return buf;
}

static void host_stub(void) {}

static int trace_case(void) {
    char *buf = before_guard_page();
    printf("cudaDeviceGetPCIBusId -> %d\n", cudaDeviceGetPCIBusId(buf, 16, 0));
    int device = -1;
    printf("cudaDeviceGetByPCIBusId -> %d\n", cudaDeviceGetByPCIBusId(&device, buf));
    char device_fun[] = "device_fun";
    void *handle = NULL;
    __cudaRegisterFunction(&handle, (const char *)host_stub, device_fun, "kernel_name", -1,
                           NULL, NULL, NULL, NULL, NULL);
    printf("cudaGetErrorString -> %s\n", cudaGetErrorString(1));
    printf("done\n");
    return 0;
}

static int errno_case(void) {
    errno = 4242;
    int v = -1;
    int r = cudaRuntimeGetVersion(&v);
    printf("first call -> %d, version %d, errno %d\n", r, v, errno);
    for (int i = 0; i < 3; i++) {
        errno = 4243 + i;
        r = cudaRuntimeGetVersion(&v);
        printf("call %d -> %d, errno %d\n", i + 2, r, errno);
    }
    return 0;
}

/* Loads ymm0-7 (zmm0-7) from the pattern and makes the first call. */
int call_with_ymm(const unsigned char *pattern);
int call_with_zmm(const unsigned char *pattern);
__asm__(
    ".text\n"
    ".globl call_with_ymm\n"
    ".type call_with_ymm, @function\n"
    "call_with_ymm:\n"
    "  push %rbx\n"
    "  vmovdqu 0(%rdi), %ymm0\n"
    "  vmovdqu 32(%rdi), %ymm1\n"
    "  vmovdqu 64(%rdi), %ymm2\n"
    "  vmovdqu 96(%rdi), %ymm3\n"
    "  vmovdqu 128(%rdi), %ymm4\n"
    "  vmovdqu 160(%rdi), %ymm5\n"
    "  vmovdqu 192(%rdi), %ymm6\n"
    "  vmovdqu 224(%rdi), %ymm7\n"
    "  call cudaDeviceSynchronize@PLT\n"
    "  pop %rbx\n"
    "  ret\n"
    ".size call_with_ymm, .-call_with_ymm\n"
    ".globl call_with_zmm\n"
    ".type call_with_zmm, @function\n"
    "call_with_zmm:\n"
    "  push %rbx\n"
    "  vmovdqu64 0(%rdi), %zmm0\n"
    "  vmovdqu64 64(%rdi), %zmm1\n"
    "  vmovdqu64 128(%rdi), %zmm2\n"
    "  vmovdqu64 192(%rdi), %zmm3\n"
    "  vmovdqu64 256(%rdi), %zmm4\n"
    "  vmovdqu64 320(%rdi), %zmm5\n"
    "  vmovdqu64 384(%rdi), %zmm6\n"
    "  vmovdqu64 448(%rdi), %zmm7\n"
    "  call cudaDeviceReset@PLT\n"
    "  vzeroupper\n"
    "  pop %rbx\n"
    "  ret\n"
    ".size call_with_zmm, .-call_with_zmm\n");

static int vector_case(int zmm) {
    if (zmm ? !__builtin_cpu_supports("avx512f") : !__builtin_cpu_supports("avx")) {
        printf("unsupported\n");
        return 0;
    }
    static unsigned char pattern[8 * 64];
    for (unsigned i = 0; i < sizeof pattern; i++) pattern[i] = (unsigned char)(i * 7 + 1);
    int r = zmm ? call_with_zmm(pattern) : call_with_ymm(pattern);
    const char *fake = getenv("CUDASTUB_REAL_CUDART");
    void *h = fake ? dlopen(fake, RTLD_NOW | RTLD_NOLOAD) : NULL;
    unsigned char *(*seen)(void) = h ? (unsigned char *(*)(void))dlsym(h, "fake_vectors") : NULL;
    if (!seen) {
        printf("cannot find fake_vectors: %s\n", dlerror());
        return 1;
    }
    size_t width = zmm ? 64 : 32;
    int bad = 0;
    for (int reg = 0; reg < 8; reg++) {
        if (memcmp(seen() + reg * width, pattern + reg * width, width) != 0) {
            printf("%s%d differs:", zmm ? "zmm" : "ymm", reg);
            for (size_t b = 0; b < width; b++) printf(" %02x", seen()[reg * width + b]);
            printf("\n");
            bad = 1;
        }
    }
    printf("result %d, %s0-7 %s\n", r, zmm ? "zmm" : "ymm", bad ? "differ" : "intact");
    return 0;
}

static void *first_call(void *arg) {
    (void)arg;
    int v = -1;
    int r = cudaRuntimeGetVersion(&v);
    printf("thread -> %d, version %d\n", r, v);
    fflush(stdout);
    return NULL;
}

static int fork_case(void) {
    pthread_t t;
    pthread_create(&t, NULL, first_call, NULL);
    usleep(300 * 1000); /* the thread is now inside the fake's slow constructor */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        int v = -1;
        int r = cudaRuntimeGetVersion(&v);
        printf("child -> %d, version %d\n", r, v);
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status))
        printf("child exited %d\n", WEXITSTATUS(status));
    else
        printf("child killed by signal %d\n", WTERMSIG(status));
    pthread_join(t, NULL);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "version";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(mode, "version")) {
        version();
        return 0;
    }
    if (!strcmp(mode, "trace")) return trace_case();
    if (!strcmp(mode, "errno")) return errno_case();
    if (!strcmp(mode, "ymm")) return vector_case(0);
    if (!strcmp(mode, "zmm")) return vector_case(1);
    if (!strcmp(mode, "fork")) return fork_case();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
