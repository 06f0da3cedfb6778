/* A C implementation: the shim's cudaDriverGetVersion. C implementations are
 * named cudastub_impl_<function> so that they never clash with the exported
 * names; the shim's link keeps them local. Types are declared here by hand:
 * only the ABI (an int status, an int pointer) has to match the manifest. */
#include <stdlib.h>

typedef int cudaError_t;

cudaError_t cudastub_impl_cudaDriverGetVersion(int *version) {
    const char *configured = getenv("CUDASTUB_VGPU_DRIVER_VERSION");
    if (!version) return 1; /* cudaErrorInvalidValue */
    *version = configured ? atoi(configured) : 13000;
    return 0;
}
