#!/usr/bin/env bash
# Benchmark: what a call costs when it is forwarded, traced, or answered by a
# Rust implementation, next to a direct call (cudaGetDeviceCount; no GPU).
#
#   bash bench/backend.sh   (after `cudastub dist`, scripts/fetch-fixtures, and
#                            building examples/virtual-gpu for major 12)
#
# Instructions per call: callgrind, (20000 calls - 10000 calls) / 10000.
# Nanoseconds per call: best of 5 rounds of 2 million calls (traced: 200 000).
set -euo pipefail
cd "$(dirname "$0")/.."
build=target/bench
mkdir -p "$build"
real=target/fixtures/cuda12/lib/libcudart.so.12
vgpu=${VGPU_DIR:-target/virtual-gpu-12/lib}
[[ -f $vgpu/libcudart.so.12 ]] || { echo "backend.sh: build examples/virtual-gpu first (cargo test --test backend does)" >&2; exit 1; }
gcc -O2 -o "$build/device_count" bench/cpu_calls.c "$real"
mkdir -p "$build/one-device"
gcc -O2 -shared -fPIC -o "$build/one-device/libcudart.so.12" bench/one_device.c -Wl,-soname,libcudart.so.12 \
    -Wl,--version-script=<(echo 'libcudart.so.12 { global: cudaGetDeviceCount; local: *; };')

instructions() { # libdir env...
    local dir=$1 out="$build/callgrind.out.$$" a b
    shift
    a=$(env LD_LIBRARY_PATH="$dir" "$@" valgrind --tool=callgrind --callgrind-out-file="$out" "$build/device_count" cudaGetDeviceCount 10000 2>/dev/null; awk '/^summary:/ {print $2}' "$out")
    b=$(env LD_LIBRARY_PATH="$dir" "$@" valgrind --tool=callgrind --callgrind-out-file="$out" "$build/device_count" cudaGetDeviceCount 20000 2>/dev/null; awk '/^summary:/ {print $2}' "$out")
    rm -f "$out"
    echo $(((b - a) / 10000))
}
nanos() { # libdir calls env...
    local dir=$1 n=$2
    shift 2
    env LD_LIBRARY_PATH="$dir" "$@" "$build/device_count" cudaGetDeviceCount "$n" time
}

echo "| path | instr/call | ns/call |"
echo "|---|---:|---:|"
row() { # label libdir calls env...
    local label=$1 dir=$2 n=$3
    shift 3
    echo "| $label | $(instructions "$dir" "$@") | $(nanos "$dir" "$n" "$@") |"
}
row "direct: real runtime 12.9.79 (returns 35, no driver)" "$(dirname "$real")" 2000000 CUDASTUB_UNUSED=1
row "shim, forwarded to the real runtime" dist/12 2000000 CUDASTUB_REAL_CUDART="$real"
row "shim, forwarded, CUDASTUB_TRACE=summary" dist/12 200000 CUDASTUB_REAL_CUDART="$real" CUDASTUB_TRACE=summary CUDASTUB_TRACE_FILE=/dev/null
row "shim, forwarded, CUDASTUB_TRACE=1 (lines to /dev/null)" dist/12 200000 CUDASTUB_REAL_CUDART="$real" CUDASTUB_TRACE=1 CUDASTUB_TRACE_FILE=/dev/null
row "direct: a C library answering 1 device" "$build/one-device" 2000000 CUDASTUB_UNUSED=1
row "virtual-gpu shim: Rust implementation" "$vgpu" 2000000 CUDASTUB_REAL_CUDART="$real"
