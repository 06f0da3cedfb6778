# Sourced by scripts/gpu-check and bench/gpu-bench: finding the CUDA 13
# toolkit's nvcc and real runtime, and the nvcc target flag.
# shellcheck shell=bash

abs() { # absolute path, links resolved
    readlink -f -- "$1"
}

# nvcc: $NVCC, else PATH, $CUDA_HOME/bin, /usr/local/cuda/bin.
find_nvcc() {
    if [[ -n ${NVCC:-} ]]; then
        abs "$NVCC"
        return
    fi
    local c
    for c in "$(command -v nvcc || true)" "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" /usr/local/cuda/bin/nvcc; do
        if [[ -n $c && -x $c ]]; then
            abs "$c"
            return
        fi
    done
    return 1
}

# find_real13 NVCC: $CUDA13_REAL_LIB, else the newest libcudart.so.13.x.y (or
# libcudart.so.13, links resolved) in $CUDA_HOME, next to nvcc, or in
# /usr/local/cuda.
find_real13() {
    if [[ -n ${CUDA13_REAL_LIB:-} ]]; then
        abs "$CUDA13_REAL_LIB"
        return
    fi
    local dirs=() d f
    [[ -n ${CUDA_HOME:-} ]] && dirs+=("$CUDA_HOME/lib64" "$CUDA_HOME/lib")
    dirs+=("$(dirname "$1")/../lib64" "$(dirname "$1")/../lib"
        /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
    for d in "${dirs[@]}"; do
        [[ -d $d ]] || continue
        f=$(find "$d"/ -maxdepth 1 -name 'libcudart.so.13.*.*' 2>/dev/null | sort -V | tail -n 1)
        if [[ -n $f ]]; then
            abs "$f"
            return
        fi
        if [[ -e $d/libcudart.so.13 ]]; then
            abs "$d/libcudart.so.13"
            return
        fi
    done
    return 1
}

# arch_flags NVCC WORKDIR HAVE_GPU(0|1): prints the nvcc target flag:
# $GPU_CHECK_ARCH if set, -arch=native if there is a GPU and nvcc builds with
# it, else -arch=sm_90 (H100/H200).
arch_flags() {
    if [[ -n ${GPU_CHECK_ARCH:-} ]]; then
        printf '%s\n' "$GPU_CHECK_ARCH"
        return
    fi
    if [[ $3 == 1 ]]; then
        printf '__global__ void k() {}\nint main() { k<<<1, 1>>>(); return 0; }\n' >"$2/probe.cu"
        if "$1" -arch=native -cudart shared -o "$2/probe" "$2/probe.cu" >"$2/probe.log" 2>&1; then
            printf '%s\n' -arch=native
            return
        fi
    fi
    printf '%s\n' -arch=sm_90
}
