/* The baseline for an implemented function: a plain C library whose
 * cudaGetDeviceCount does what the virtual-gpu example's Rust one does. */
typedef int cudaError_t;
cudaError_t cudaGetDeviceCount(int *count) {
    if (!count) return 1;
    *count = 1;
    return 0;
}
