/* Stand-in for libc10_cuda.so (scripts/gpu-selftest): calls cudaMalloc at load. */
#include <stddef.h>
extern int cudaMalloc(void **, size_t);
__attribute__((constructor)) static void init(void) { void *p; cudaMalloc(&p, 16); }
