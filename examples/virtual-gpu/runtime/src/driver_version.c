/* A C implementation: the shim's cudaDriverGetVersion. C implementations are
 * named cudastub_impl_<function> so that they never clash with the exported
 * names; the shim's link keeps them local. cudastub_impl.h, generated into
 * OUT_DIR (on the include path), declares each one with the manifest's
 * prototype and types for the major being built: a mismatch does not compile,
 * and a declared implementation that no C file defines does not link.
 * The version is the driver shim's: CUDASTUB_VGPU_DRIVER_VERSION when it is
 * a number (surrounding blanks allowed), else the device crate's default,
 * which build.rs defines as VGPU_DRIVER_VERSION. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "cudastub_impl.h"

static int configured_version(void) {
    const char *text = getenv("CUDASTUB_VGPU_DRIVER_VERSION");
    char *end = NULL;
    if (!text || !*text) return VGPU_DRIVER_VERSION;
    int saved = errno;
    errno = 0;
    long value = strtol(text, &end, 10);
    int bad = errno != 0 || end == text || value < INT_MIN || value > INT_MAX;
    errno = saved; /* errno is the caller's */
    while (!bad && isspace((unsigned char)*end)) end++;
    return bad || *end ? VGPU_DRIVER_VERSION : (int)value;
}

cudaError_t cudastub_impl_cudaDriverGetVersion(int *version) {
    if (!version) return cudaErrorInvalidValue;
    *version = configured_version();
    return cudaSuccess;
}
