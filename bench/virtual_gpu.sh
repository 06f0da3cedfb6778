#!/usr/bin/env bash
# Benchmark: from process start to ggml's device list, the real
# libggml-cuda.so (llama.cpp's CUDA 12 build) discovering the virtual H100
# through the virtual-gpu CUDA 12 stand-in (no GPU, no CUDA installed). The
# whole process is timed (start, loading ggml and its 210 MB CUDA backend,
# discovery, printing the list, exit): an upper bound of the time to the list.
#
#   bash bench/virtual_gpu.sh [RUNS]    (after scripts/fetch-fixtures, and
#       cudastub dist --package examples/virtual-gpu --out target/virtual-gpu-dist, or
#       `cargo test -p cudastub-tests --test virtual_gpu`, which lays it out)
#
# Median and best of RUNS runs (default 30), after one warm-up run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
dist=${VGPU_DIST:-target/virtual-gpu-dist/12}
ggml=target/fixtures/ggml-cuda12/lib
[[ -f $dist/libcudart.so.12 && -f $dist/libcublas.so.12 ]] || { echo "virtual_gpu.sh: $dist is missing (cudastub dist --package examples/virtual-gpu --out target/virtual-gpu-dist)" >&2; exit 1; }
[[ -f $ggml/libggml-cuda.so ]] || { echo "virtual_gpu.sh: $ggml is missing (scripts/fetch-fixtures)" >&2; exit 1; }
build=target/bench
mkdir -p "$build"
gcc -O1 -o "$build/ggml_discover" tests/c/ggml_discover.c -L"$ggml" -lggml -lggml-base -Wl,-rpath,"$(realpath "$ggml")"
python3 - "$build/ggml_discover" "$(realpath "$ggml/libggml-cuda.so")" "$(realpath "$dist")" "$runs" <<'PY'
import os, statistics, subprocess, sys, time
exe, lib, dist, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDASTUB_", "GGML_"))}
env["LD_LIBRARY_PATH"] = dist
def once():
    start = time.perf_counter()
    out = subprocess.run([exe, lib], env=env, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert "NVIDIA H100 80GB HBM3" in out.stdout, out.stdout + out.stderr
    return elapsed
once()  # warm the page cache
samples = [once() for _ in range(runs)]
print("| discovery | median (ms) | best (ms) |")
print("|---|---:|---:|")
print(f"| process start to ggml's device list, real libggml-cuda.so over the virtual H100 ({runs} runs) | "
      f"{statistics.median(samples) * 1e3:.1f} | {min(samples) * 1e3:.1f} |")
PY
