#!/usr/bin/env bash
# Benchmark: what forwarding through a shim costs per call, next to a
# direct call of the same real function (cudaGetLastError of the pinned
# runtimes, cublasGetProperty of the pinned cuBLAS, cuDriverGetVersion of the
# pinned 535 driver, called by name and through the pointer
# cuGetProcAddress_v2 returns; no GPU needed).
#
#   bash bench/forwarding.sh        (after `cudastub dist` and scripts/fetch-fixtures)
#
# Instructions per call come from callgrind (exact, repeatable on a noisy
# machine): the difference between runs of 20000 and 10000 calls, divided by
# 10000, so start-up and loading cancel out. Nanoseconds per call are the
# best of 5 rounds of 20 million calls.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "forwarding.sh: valgrind is required (scripts/install-deps)" >&2; exit 1; }
build=target/bench
mkdir -p "$build"

# Each shim finds its own real library through its own variable.
reals() { # major
    local lib=target/fixtures/cuda$1/lib
    echo "CUDASTUB_REAL_CUDART=$lib/libcudart.so.$1 CUDASTUB_REAL_CUBLAS=$lib/libcublas.so.$1 CUDASTUB_REAL_CUBLASLT=$lib/libcublasLt.so.$1 CUDASTUB_REAL_CUDA=target/fixtures/driver/lib/libcuda.so.1"
}

instructions() { # exe libdir function calls
    local out="$build/callgrind.out.$$"
    # shellcheck disable=SC2046
    env LD_LIBRARY_PATH="$2" $(reals "$major") valgrind --tool=callgrind --callgrind-out-file="$out" "$1" "$3" "$4" 2>/dev/null
    awk '/^summary:/ {print $2}' "$out"
    rm -f "$out"
}

echo "| major | call | direct instr/call | shim instr/call | extra | direct ns/call | shim ns/call |"
echo "|---|---|---|---|---|---|---|"
for major in 12 13; do
    lib=target/fixtures/cuda$major/lib
    exe=$build/forwarding$major
    driver=target/fixtures/driver/lib
    gcc -O2 -DWITH_CUBLAS -DWITH_DRIVER -o "$exe" bench/cpu_calls.c "$lib/libcudart.so.$major" \
        "$lib/libcublas.so.$major" "$driver/libcuda.so.1"
    per_call() { # libdir function
        local a b
        a=$(instructions "$exe" "$1" "$2" 10000)
        b=$(instructions "$exe" "$1" "$2" 20000)
        echo $(( (b - a) / 10000 ))
    }
    for fn in cudaGetLastError cublasGetProperty cuDriverGetVersion cuDriverGetVersion@proc; do
        d=$(per_call "$lib:$driver" "$fn")
        s=$(per_call "dist/$major" "$fn")
        dt=$(LD_LIBRARY_PATH=$lib:$driver "$exe" "$fn" 20000000 time)
        # shellcheck disable=SC2046
        st=$(env LD_LIBRARY_PATH="dist/$major" $(reals "$major") "$exe" "$fn" 20000000 time)
        echo "| $major | $fn | $d | $s | $((s - d)) | $dt | $st |"
    done
done
