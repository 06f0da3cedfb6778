#!/usr/bin/env python3
"""Proves from the dynamic loader's own trace that a run went through the shim.

Reads the files PREFIX.* written by a run with
LD_DEBUG=bindings,files LD_DEBUG_OUTPUT=PREFIX and checks that

  * every reference to a symbol of version NODE (libcudart.so.N) from any file
    other than the shim and the real runtime was bound to the shim;
  * each --require CONSUMER:SYM|SYM... is met: some file whose base name
    matches the regular expression CONSUMER has one of the symbols bound to
    the shim ('*' as the symbol list: any symbol of version NODE);
  * the real runtime was loaded by the shim (dlopen), so calls went on to it.

Prints a one-line summary first ("bound: ..."), then details; exits 1 if a
check fails.

    check_bindings.py --trace PREFIX --shim dist/13/libcudart.so.13 \\
        --real /usr/local/cuda/lib64/libcudart.so.13.0.96 --node libcudart.so.13 \\
        --require 'vector_add$:__cudaLaunchKernel' --require 'vector_add$:cudaMalloc'
"""

import argparse
import glob
import os
import re
import sys
from collections import Counter

BINDING = re.compile(r"binding file (.+?) \[\d+\] to (.+?) \[\d+\]: \w+ symbol `([^']+)'(?: \[([^\]]+)\])?")
LOADED = re.compile(r"file=(.+?) \[\d+\];\s+dynamically loaded by (.+?) \[\d+\]")


def canonical(path, cache={}):
    if path not in cache:
        cache[path] = os.path.realpath(path)
    return cache[path]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", required=True, help="LD_DEBUG_OUTPUT prefix")
    ap.add_argument("--shim", required=True)
    ap.add_argument("--real", required=True)
    ap.add_argument("--node", required=True, help="version node, e.g. libcudart.so.13")
    ap.add_argument("--require", action="append", default=[], metavar="CONSUMER:SYM|SYM")
    ap.add_argument("--host-may-load", action="store_true",
                    help="the host may load the real runtime itself (PyTorch preloads it by path)")
    args = ap.parse_args()

    files = sorted(glob.glob(glob.escape(args.trace) + ".*"))
    if not files:
        print(f"bound: NO TRACE (no file {args.trace}.*)")
        return 1
    shim, real = canonical(args.shim), canonical(args.real)
    to_shim = Counter()          # consumer base name -> references bound to the shim
    bound = set()                # (consumer base name, symbol) bound to the shim
    elsewhere = []               # references of version NODE bound to anything else
    real_loaded_by_shim = False
    shim_resolved_in_real = 0    # the shim's dlvsym lookups answered by the real runtime
    real_loaded_by = None        # who loaded the real runtime, if not the shim
    for name in files:
        with open(name, errors="replace") as trace:
            for line in trace:
                if "libcudart" not in line and args.node not in line and "dynamically loaded" not in line:
                    continue  # the traces of big programs are mostly other libraries
                m = BINDING.search(line)
                if m:
                    src, dst, sym, node = m.groups()
                    if node != args.node:
                        continue
                    src_c = canonical(src)
                    if src_c == shim and canonical(dst) == real:
                        shim_resolved_in_real += 1
                        continue
                    if src_c in (shim, real):
                        continue  # the shim's own and the real runtime's internal references
                    if canonical(dst) == shim:
                        base = os.path.basename(src)
                        to_shim[base] += 1
                        bound.add((base, sym))
                    else:
                        elsewhere.append(f"{src}: {sym} -> {dst}")
                    continue
                m = LOADED.search(line)
                if m and canonical(m.group(1)) == real:
                    if canonical(m.group(2)) == shim:
                        real_loaded_by_shim = True
                    else:
                        real_loaded_by = m.group(2)

    problems = []
    if elsewhere:
        problems.append(f"{len(elsewhere)} references of version {args.node} bypass the shim, e.g. " + "; ".join(elsewhere[:5]))
    if not to_shim:
        problems.append(f"no reference of version {args.node} is bound to the shim {args.shim}")
    # The host may have loaded the real runtime by path itself (PyTorch
    # preloads its CUDA libraries): then the shim's dlopen finds it loaded,
    # and the proof is that the shim's lookups resolve into it.
    host_loaded = args.host_may_load and real_loaded_by is not None
    if not real_loaded_by_shim and not shim_resolved_in_real and not host_loaded:
        problems.append(f"the shim neither loaded the real runtime {args.real} nor resolved a function in it")
    met = []
    for req in args.require:
        consumer, _, syms = req.rpartition(":")
        pattern = re.compile(consumer)
        wanted = syms.split("|")
        hits = sorted(
            {sym for base, sym in bound if pattern.search(base) and ("*" in wanted or sym in wanted)}
        )
        if hits:
            met.append(f"{consumer}:{hits[0]}")
        else:
            problems.append(f"required but not bound to the shim: {req}")

    total = sum(to_shim.values())
    if problems:
        print(f"bound: FAIL ({problems[0][:120]})")
    else:
        print(f"bound: {total} refs -> shim")
    print(f"  trace files: {len(files)}")
    for base, n in to_shim.most_common(8):
        print(f"  {base}: {n} references of version {args.node} bound to the shim")
    for m in met:
        print(f"  required and bound: {m}")
    print(f"  real runtime dlopened by the shim: {'yes' if real_loaded_by_shim else 'no'}")
    print(f"  the shim's lookups resolved in the real runtime: {shim_resolved_in_real}")
    if real_loaded_by:
        print(f"  real runtime loaded by: {real_loaded_by} (the shim's dlopen then finds it loaded)")
    for p in problems:
        print(f"  PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
