/* A C implementation: the shim's cudaDriverGetVersion. C implementations are
 * named cudastub_impl_<function> so that they never clash with the exported
 * names; the shim's link keeps them local. cudastub_impl.h, generated into
 * OUT_DIR (on the include path), declares each one with the manifest's
 * prototype and types for the major being built: a mismatch does not compile,
 * and a declared implementation that no C file defines does not link.
 * The default and the variable are the device crate's (DRIVER_VERSION). */
#include <stdlib.h>

#include "cudastub_impl.h"

cudaError_t cudastub_impl_cudaDriverGetVersion(int *version) {
    const char *configured = getenv("CUDASTUB_VGPU_DRIVER_VERSION");
    if (!version) return cudaErrorInvalidValue;
    *version = configured && *configured ? atoi(configured) : 13000;
    return cudaSuccess;
}
