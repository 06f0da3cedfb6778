#!/usr/bin/env bash
# Benchmark: what forwarding through the shim costs per call, next to a
# direct call of the same real function (cudaGetLastError of the pinned
# runtimes; no GPU needed).
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

instructions() { # exe libdir calls
    local out="$build/callgrind.out.$$"
    LD_LIBRARY_PATH=$2 CUDASTUB_REAL_CUDART=$real valgrind --tool=callgrind --callgrind-out-file="$out" "$1" cudaGetLastError "$3" 2>/dev/null
    awk '/^summary:/ {print $2}' "$out"
    rm -f "$out"
}

echo "| major | call | direct instr/call | shim instr/call | extra | direct ns/call | shim ns/call |"
echo "|---|---|---|---|---|---|---|"
for major in 12 13; do
    real=target/fixtures/cuda$major/lib/libcudart.so.$major
    exe=$build/forwarding$major
    gcc -O2 -o "$exe" bench/cpu_calls.c "$real"
    per_call() { # libdir
        local a b
        a=$(instructions "$exe" "$1" 10000)
        b=$(instructions "$exe" "$1" 20000)
        echo $(( (b - a) / 10000 ))
    }
    d=$(per_call "$(dirname "$real")")
    s=$(per_call "dist/$major")
    dt=$(LD_LIBRARY_PATH=$(dirname "$real") "$exe" cudaGetLastError 20000000 time)
    st=$(LD_LIBRARY_PATH=dist/$major CUDASTUB_REAL_CUDART=$real "$exe" cudaGetLastError 20000000 time)
    echo "| $major | cudaGetLastError | $d | $s | $((s - d)) | $dt | $st |"
done
