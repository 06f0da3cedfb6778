/* A stand-in for the real runtime for the robustness tests
 * (tests/robustness.rs). Built with the real soname and version node; the
 * tests point CUDASTUB_REAL_CUDART (or a search directory) at it.
 *
 * - Its constructor says "fake: loaded"; FAKE_SLEEP_MS makes it sleep (a
 *   long load, to fork during it); FAKE_CALL_BACK makes it call
 *   cudaGetDeviceCount through the global scope, that is back into the shim
 *   that is loading it.
 * - cudaRuntimeGetVersion answers 4242 and leaves errno alone.
 * - cudaDeviceGetPCIBusId fills nothing, cudaDeviceGetByPCIBusId reads
 *   nothing: what the real runtime does without a driver.
 * - cudaDeviceSynchronize and cudaDeviceReset record ymm0-7 and zmm0-7 as
 *   they arrive (fake_vectors() returns them), to prove the first call
 *   reaches the target with the caller's whole vector registers. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int loads;

int fake_loads(void) { return loads; }

__attribute__((constructor)) static void loaded(void) {
    loads++;
    fprintf(stderr, "fake: loaded\n");
    const char *sleep_ms = getenv("FAKE_SLEEP_MS");
    if (sleep_ms) usleep((useconds_t)atoi(sleep_ms) * 1000);
    if (getenv("FAKE_CALL_BACK")) {
        int (*count)(int *) = (int (*)(int *))dlsym(RTLD_DEFAULT, "cudaGetDeviceCount");
        int n = -1;
        int r = count ? count(&n) : -1;
        fprintf(stderr, "fake: call back cudaGetDeviceCount -> %d\n", r);
    }
}

int cudaRuntimeGetVersion(int *v) {
    *v = 4242;
    return 0;
}

int cudaDeviceGetPCIBusId(char *pciBusId, int len, int device) {
    (void)pciBusId; (void)len; (void)device;
    return 35;
}

int cudaDeviceGetByPCIBusId(int *device, const char *pciBusId) {
    (void)device; (void)pciBusId;
    return 35;
}

void __cudaRegisterFunction(void **handle, const char *hostFun, char *deviceFun,
                            const char *deviceName, int limit, void *tid, void *bid,
                            void *bDim, void *gDim, int *wSize) {
    (void)handle; (void)hostFun; (void)deviceFun; (void)deviceName; (void)limit;
    (void)tid; (void)bid; (void)bDim; (void)gDim; (void)wSize;
}

const char *cudaGetErrorString(int error) {
    (void)error;
    return "fake error string";
}

__attribute__((visibility("hidden"))) unsigned char fake_seen[8 * 64];

unsigned char *fake_vectors(void) { return fake_seen; }

__asm__(
    ".text\n"
    ".globl cudaDeviceSynchronize\n"
    ".type cudaDeviceSynchronize, @function\n"
    "cudaDeviceSynchronize:\n"
    "  lea fake_seen(%rip), %rax\n"
    "  vmovdqu %ymm0, 0(%rax)\n"
    "  vmovdqu %ymm1, 32(%rax)\n"
    "  vmovdqu %ymm2, 64(%rax)\n"
    "  vmovdqu %ymm3, 96(%rax)\n"
    "  vmovdqu %ymm4, 128(%rax)\n"
    "  vmovdqu %ymm5, 160(%rax)\n"
    "  vmovdqu %ymm6, 192(%rax)\n"
    "  vmovdqu %ymm7, 224(%rax)\n"
    "  vzeroupper\n"
    "  xor %eax, %eax\n"
    "  ret\n"
    ".size cudaDeviceSynchronize, .-cudaDeviceSynchronize\n"
    ".globl cudaDeviceReset\n"
    ".type cudaDeviceReset, @function\n"
    "cudaDeviceReset:\n"
    "  lea fake_seen(%rip), %rax\n"
    "  vmovdqu64 %zmm0, 0(%rax)\n"
    "  vmovdqu64 %zmm1, 64(%rax)\n"
    "  vmovdqu64 %zmm2, 128(%rax)\n"
    "  vmovdqu64 %zmm3, 192(%rax)\n"
    "  vmovdqu64 %zmm4, 256(%rax)\n"
    "  vmovdqu64 %zmm5, 320(%rax)\n"
    "  vmovdqu64 %zmm6, 384(%rax)\n"
    "  vmovdqu64 %zmm7, 448(%rax)\n"
    "  vzeroupper\n"
    "  xor %eax, %eax\n"
    "  ret\n"
    ".size cudaDeviceReset, .-cudaDeviceReset\n");
