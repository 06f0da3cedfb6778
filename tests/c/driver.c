/* A consumer of the driver and NVML, linked against the real libcuda.so.1
 * and libnvidia-ml.so.1. On a machine with no GPU every answer is an error
 * or a version, which is what the shims must reproduce. It also asks
 * cuGetProcAddress for variants of a few functions and prints which export
 * each pointer is, and whether it lies in the library this program's own
 * calls bind to (through a shim: the shim itself). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <cuda.h>
#include <nvml.h>

static void entry(const char *symbol, int version, cuuint64_t flags) {
    void *p = NULL;
    CUdriverProcAddressQueryResult status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    CUresult r = cuGetProcAddress(symbol, &p, version, flags, &status);
    Dl_info at, own;
    const char *name = "(none)";
    int same = 0;
    if (p && dladdr(p, &at) && at.dli_sname && at.dli_saddr == p) {
        name = at.dli_sname;
        same = dladdr((void *)cuInit, &own) && own.dli_fbase == at.dli_fbase;
    }
    printf("cuGetProcAddress(%s, %d, %llu) -> %d status %d: %s, %s\n", symbol, version,
           (unsigned long long)flags, r, (int)status, name,
           same ? "in the library cuInit binds to" : "ELSEWHERE");
}

int main(void) {
    int version = -1;
    CUresult r = cuDriverGetVersion(&version);
    printf("cuDriverGetVersion -> %d, %d\n", r, version);
    r = cuInit(0);
    const char *s = NULL, *n = NULL;
    cuGetErrorString(r, &s);
    cuGetErrorName(r, &n);
    printf("cuInit -> %d %s (%s)\n", r, n ? n : "(null)", s ? s : "(null)");
    int count = -1;
    r = cuDeviceGetCount(&count);
    printf("cuDeviceGetCount -> %d, %d\n", r, count);
    entry("cuMemAlloc", 12000, CU_GET_PROC_ADDRESS_DEFAULT);
    entry("cuMemAlloc", 3000, CU_GET_PROC_ADDRESS_DEFAULT);
    entry("cuMemcpyHtoD", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
    entry("cuCtxCreate", 12050, CU_GET_PROC_ADDRESS_DEFAULT);
    entry("cuGetProcAddress", 12000, CU_GET_PROC_ADDRESS_DEFAULT);
    entry("cuNoSuchFunction", 12000, CU_GET_PROC_ADDRESS_DEFAULT);

    nvmlReturn_t nr = nvmlInit_v2();
    printf("nvmlInit_v2 -> %d (%s)\n", nr, nvmlErrorString(nr));
    char v[96] = "";
    nr = nvmlSystemGetDriverVersion(v, sizeof v);
    printf("nvmlSystemGetDriverVersion -> %d (%s) \"%s\"\n", nr, nvmlErrorString(nr), v);
    unsigned int devices = 12345;
    nr = nvmlDeviceGetCount_v2(&devices);
    printf("nvmlDeviceGetCount_v2 -> %d, %u\n", nr, devices);
    return 0;
}
