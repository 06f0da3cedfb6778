#!/usr/bin/env bash
# Benchmark: how long `cudastub audit` takes on a 458-export library (the
# real 13.5.37 runtime by default), in process split into its parts
# (bench/audit.rs), and end to end as a command.
#
#   bash bench/audit.sh [LIBRARY] [RUNS]     (after scripts/fetch-fixtures)
#
# Medians of RUNS runs (default 200 in process, 50 for the command).
set -euo pipefail
cd "$(dirname "$0")/.."
lib=${1:-target/fixtures/cuda13/lib/libcudart.so.13}
runs=${2:-200}
[[ -f $lib ]] || { echo "audit.sh: $lib is missing (run scripts/fetch-fixtures)" >&2; exit 1; }
# cargo runs benchmarks in the package's directory (tests/).
lib=$(realpath "$lib")

cargo bench --quiet -p cudastub-tests --bench audit -- "$lib" "$runs"

cargo build --quiet --release --bin cudastub
bin=target/release/cudastub
bin_runs=$((runs < 50 ? runs : 50))
python3 - "$bin" "$lib" "$bin_runs" <<'PY'
import statistics, subprocess, sys, time
binary, lib, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
cmd = [binary, "audit", lib]
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # warm the page cache
samples = []
for _ in range(runs):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    samples.append(time.perf_counter() - start)
print(f"| `cudastub audit {lib}` as a command ({runs} runs) | "
      f"{statistics.median(samples) * 1e3:.3f} | {min(samples) * 1e3:.3f} |")
PY
