/* The one virtual GPU as the runtime, the driver and NVML each describe it,
 * one line per library, for tests/virtual_gpu.rs to compare. Linked against
 * the virtual-gpu shims themselves (the real headers of CUDA 12). */
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cuda.h>
#include <cuda_runtime_api.h>
#include <nvml.h>

/* How many bytes of a canary-filled buffer a call wrote (two patterns, so
 * that a written byte equal to one canary is still seen). */
static size_t written(cudaError_t (*get)(void *, int), cudaError_t *rv, unsigned char *buf, size_t size) {
    size_t last = 0;
    for (int pattern = 0; pattern < 2; pattern++) {
        unsigned char canary = pattern ? 0x5a : 0xa5;
        memset(buf, canary, size);
        *rv |= get(buf, 0);
        for (size_t i = 0; i < size; i++)
            if (buf[i] != canary && i + 1 > last) last = i + 1;
    }
    return last;
}

/* One cudaGetDeviceProperties ABI: the bytes it wrote, and the name,
 * compute capability and multiprocessors at that ABI's offsets. */
static void properties(const char *label, const char *symbol, size_t major_at, size_t sms_at) {
    static unsigned char buf[4096];
    cudaError_t (*get)(void *, int) = (cudaError_t(*)(void *, int))dlsym(RTLD_DEFAULT, symbol);
    if (!get) {
        printf("properties %s absent\n", label);
        return;
    }
    cudaError_t rv = cudaSuccess;
    size_t bytes = written(get, &rv, buf, sizeof buf);
    int cc[2], sms;
    memcpy(cc, buf + major_at, sizeof cc);
    memcpy(&sms, buf + sms_at, sizeof sms);
    printf("properties %s %d bytes=%zu name=%s cc=%d.%d sms=%d\n", label, rv, bytes, (char *)buf, cc[0], cc[1], sms);
}

/* How many bytes of a canary-filled nvmlPciInfo_t an NVML entry point
 * named `symbol` wrote. */
static size_t pci_written(const char *symbol, nvmlDevice_t handle, nvmlReturn_t *nr) {
    nvmlReturn_t (*get)(nvmlDevice_t, void *) = (nvmlReturn_t(*)(nvmlDevice_t, void *))dlsym(RTLD_DEFAULT, symbol);
    unsigned char buf[256];
    size_t last = 0;
    if (!get) return 0;
    for (int pattern = 0; pattern < 2; pattern++) {
        unsigned char canary = pattern ? 0x5a : 0xa5;
        memset(buf, canary, sizeof buf);
        *nr |= get(handle, buf);
        for (size_t i = 0; i < sizeof buf; i++)
            if (buf[i] != canary && i + 1 > last) last = i + 1;
    }
    return last;
}

static void hex(const char *bytes, char *out) {
    for (int i = 0; i < 16; i++) sprintf(out + 2 * i, "%02x", (unsigned char)bytes[i]);
}

int main(void) {
    char uuid[33], busid[32];
    int count = -1, value[6];

    struct cudaDeviceProp prop;
    memset(&prop, 0xab, sizeof prop);
    cudaError_t rv = cudaGetDeviceCount(&count);
    rv |= cudaGetDeviceProperties(&prop, 0); /* cudaGetDeviceProperties_v2 */
    hex(prop.uuid.bytes, uuid);
    printf("runtime %d count=%d name=%s memory=%zu cc=%d.%d sms=%d uuid=%s pci=%04x:%02x:%02x\n", rv, count, prop.name,
           prop.totalGlobalMem, prop.major, prop.minor, prop.multiProcessorCount, uuid, prop.pciDomainID, prop.pciBusID,
           prop.pciDeviceID);
    const enum cudaDeviceAttr attrs[] = {cudaDevAttrComputeCapabilityMajor, cudaDevAttrComputeCapabilityMinor,
                                         cudaDevAttrMultiProcessorCount, cudaDevAttrPciDomainId, cudaDevAttrPciBusId,
                                         cudaDevAttrPciDeviceId};
    rv = cudaSuccess;
    for (int i = 0; i < 6; i++) rv |= cudaDeviceGetAttribute(&value[i], attrs[i], 0);
    printf("runtime-attributes %d cc=%d.%d sms=%d pci=%04x:%02x:%02x\n", rv, value[0], value[1], value[2], value[3],
           value[4], value[5]);
    size_t free_bytes = 0, total_bytes = 0;
    int device = -1;
    rv = cudaSetDevice(0) | cudaGetDevice(&device) | cudaMemGetInfo(&free_bytes, &total_bytes);
    rv |= cudaDeviceGetPCIBusId(busid, sizeof busid, 0);
    printf("runtime-memory %d device=%d free=%zu total=%zu bus-id=%s\n", rv, device, free_bytes, total_bytes, busid);

    CUdevice dev = -1;
    CUuuid cu_uuid;
    char name[256] = "";
    size_t total = 0;
    CUresult r = cuInit(0) | cuDeviceGetCount(&count) | cuDeviceGet(&dev, 0) | cuDeviceGetName(name, sizeof name, dev);
    r |= cuDeviceTotalMem(&total, dev); /* cuDeviceTotalMem_v2 */
    r |= cuDeviceGetUuid(&cu_uuid, dev); /* cuDeviceGetUuid_v2 */
    hex(cu_uuid.bytes, uuid);
    const CUdevice_attribute cu_attrs[] = {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                           CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                           CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID,
                                           CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID};
    for (int i = 0; i < 6; i++) r |= cuDeviceGetAttribute(&value[i], cu_attrs[i], dev);
    printf("driver %d count=%d name=%s memory=%zu cc=%d.%d sms=%d uuid=%s pci=%04x:%02x:%02x\n", r, count, name, total,
           value[0], value[1], value[2], uuid, value[3], value[4], value[5]);

    unsigned int n = 0;
    nvmlDevice_t handle;
    nvmlMemory_t memory;
    char nvml_name[96] = "", nvml_uuid[96] = "";
    nvmlReturn_t nr = nvmlInit(); /* nvmlInit_v2 */
    nr |= nvmlDeviceGetCount(&n) | nvmlDeviceGetHandleByIndex(0, &handle);
    nr |= nvmlDeviceGetName(handle, nvml_name, sizeof nvml_name) | nvmlDeviceGetMemoryInfo(handle, &memory);
    nr |= nvmlDeviceGetUUID(handle, nvml_uuid, sizeof nvml_uuid);
    printf("nvml %d count=%u name=%s memory=%llu uuid=%s\n", nr, n, nvml_name, memory.total, nvml_uuid);
    /* The rest of NVML's view: compute capability, the versioned memory
     * struct (a wrong version is refused), and the PCI location, whose
     * older entry points fill only the 36 bytes their structs share. */
    int nvml_cc[2] = {-1, -1};
    nvmlMemory_v2_t memory2, stale;
    nvmlPciInfo_t pci;
    memset(&memory2, 0, sizeof memory2);
    memset(&stale, 0, sizeof stale);
    memset(&pci, 0, sizeof pci);
    memory2.version = nvmlMemory_v2;
    stale.version = nvmlMemory_v2 + 1;
    nr = nvmlDeviceGetCudaComputeCapability(handle, &nvml_cc[0], &nvml_cc[1]);
    nr |= nvmlDeviceGetMemoryInfo_v2(handle, &memory2) | nvmlDeviceGetPciInfo(handle, &pci); /* _v3 */
    nvmlReturn_t mismatch = nvmlDeviceGetMemoryInfo_v2(handle, &stale);
    printf("nvml-more %d cc=%d.%d memory-v2=%llu stale-version=%d pci=%s legacy-pci=%s at=%04x:%02x:%02x id=%08x\n", nr,
           nvml_cc[0], nvml_cc[1], memory2.total, mismatch, pci.busId, pci.busIdLegacy, pci.domain, pci.bus, pci.device,
           pci.pciDeviceId);
    nr = NVML_SUCCESS;
    size_t v1 = pci_written("nvmlDeviceGetPciInfo", handle, &nr), v2 = pci_written("nvmlDeviceGetPciInfo_v2", handle, &nr),
           v3 = pci_written("nvmlDeviceGetPciInfo_v3", handle, &nr);
    printf("nvml-pci-bytes %d v1=%zu v2=%zu v3=%zu\n", nr, v1, v2, v3);

    /* The un-suffixed (older) entry points, which the headers rename away. */
    CUresult (*total_v1)(unsigned int *, CUdevice) = (CUresult(*)(unsigned int *, CUdevice))dlsym(RTLD_DEFAULT, "cuDeviceTotalMem");
    CUresult (*uuid_v1)(CUuuid *, CUdevice) = (CUresult(*)(CUuuid *, CUdevice))dlsym(RTLD_DEFAULT, "cuDeviceGetUuid");
    nvmlReturn_t (*init_v1)(void) = (nvmlReturn_t(*)(void))dlsym(RTLD_DEFAULT, "nvmlInit");
    nvmlReturn_t (*count_v1)(unsigned int *) = (nvmlReturn_t(*)(unsigned int *))dlsym(RTLD_DEFAULT, "nvmlDeviceGetCount");
    nvmlReturn_t (*handle_v1)(unsigned int, nvmlDevice_t *) =
        (nvmlReturn_t(*)(unsigned int, nvmlDevice_t *))dlsym(RTLD_DEFAULT, "nvmlDeviceGetHandleByIndex");
    if (!total_v1 || !uuid_v1 || !init_v1 || !count_v1 || !handle_v1) {
        printf("legacy missing\n");
        return 1;
    }
    unsigned int total32 = 0;
    nvmlDevice_t handle1 = NULL;
    memset(&cu_uuid, 0, sizeof cu_uuid);
    n = 0;
    r = total_v1(&total32, dev) | uuid_v1(&cu_uuid, dev);
    hex(cu_uuid.bytes, uuid);
    nr = init_v1() | count_v1(&n) | handle_v1(0, &handle1);
    printf("legacy %d %d memory32=%u uuid=%s count=%u same-handle=%d\n", r, nr, total32, uuid, n, handle1 == handle);
    int runtime_driver = -1, driver_driver = -1;
    rv = cudaDriverGetVersion(&runtime_driver);
    r = cuDriverGetVersion(&driver_driver);
    printf("driver-version %d %d runtime=%d driver=%d\n", rv, r, runtime_driver, driver_driver);
    int runtime_version = -1;
    rv = cudaRuntimeGetVersion(&runtime_version); /* no real runtime: the manifest's release */
    printf("runtime-version %d %d\n", rv, runtime_version);
    /* Each ABI of cudaGetDeviceProperties fills its own struct and no more:
     * in 12 the plain export is CUDA 11's (728 bytes; major at 360,
     * multiProcessorCount at 388), `_v2` the current one. */
#if CUDART_VERSION < 13000
    properties("legacy", "cudaGetDeviceProperties", 360, 388);
    properties("current", "cudaGetDeviceProperties_v2", offsetof(struct cudaDeviceProp, major),
               offsetof(struct cudaDeviceProp, multiProcessorCount));
#else
    properties("current", "cudaGetDeviceProperties", offsetof(struct cudaDeviceProp, major),
               offsetof(struct cudaDeviceProp, multiProcessorCount));
    properties("v2", "cudaGetDeviceProperties_v2", 0, 0);
#endif
    nvmlShutdown();
    return 0;
}
