/* The driver variants a caller reaches through cuGetProcAddress, with the
 * virtual GPU's libcuda.so.1 over the real driver: the real driver picks the
 * variant for the caller's CUDA version and flags, the shim hands out its own
 * export of it, and that export answers from the implementation of its API.
 * One line per case, for tests/virtual_gpu.rs. */
#include <dlfcn.h>
#include <stdio.h>

#include <cuda.h>

/* cuda.h of 12 renames cuGetProcAddress to the 5-parameter `_v2`. */
static void *lookup(const char *symbol, int version, cuuint64_t flags, const char *expect, CUresult *r) {
    void *p = NULL;
    CUdriverProcAddressQueryResult found = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    *r = cuGetProcAddress(symbol, &p, version, flags, &found);
    void *self = dlsym(RTLD_DEFAULT, expect);
    printf("%s@%d -> %d found=%d is-%s=%d", symbol, version, *r, found == CU_GET_PROC_ADDRESS_SUCCESS, expect,
           p != NULL && p == self);
    return p;
}

int main(void) {
    CUresult r = cuInit(0);
    printf("cuInit %d\n", r);
    size_t bytes = 0;
    void *p = lookup("cuDeviceTotalMem", 12000, CU_GET_PROC_ADDRESS_DEFAULT, "cuDeviceTotalMem_v2", &r);
    if (p) r = ((CUresult(*)(size_t *, CUdevice))p)(&bytes, 0);
    printf(" call %d bytes=%zu\n", r, bytes);
    unsigned int bytes32 = 0;
    p = lookup("cuDeviceTotalMem", 3000, CU_GET_PROC_ADDRESS_DEFAULT, "cuDeviceTotalMem", &r);
    if (p) r = ((CUresult(*)(unsigned int *, CUdevice))p)(&bytes32, 0);
    printf(" call %d bytes=%u\n", r, bytes32);
    CUuuid uuid = {{0}};
    p = lookup("cuDeviceGetUuid", 12000, CU_GET_PROC_ADDRESS_DEFAULT, "cuDeviceGetUuid_v2", &r);
    if (p) r = ((CUresult(*)(CUuuid *, CUdevice))p)(&uuid, 0);
    printf(" call %d uuid0=%02x\n", r, (unsigned char)uuid.bytes[0]);
    return 0;
}
