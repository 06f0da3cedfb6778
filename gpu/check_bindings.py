#!/usr/bin/env python3
"""Proves from the dynamic loader's own trace that a run went through the shim.

Reads the files PREFIX.* written by a run with
LD_DEBUG=bindings,files LD_DEBUG_OUTPUT=PREFIX and checks that

  * every reference to the library from any file other than the shim and the
    real library was bound to the shim: with --node, every reference of that
    symbol version (libcudart.so.N); without it (libcuda.so.1 and
    libnvidia-ml.so.1 have no symbol versions), every reference bound to the
    shim's or the real library's file, so one bound to the real file is a
    bypass (unless its consumer matches --allow-direct);
  * each --require CONSUMER:SYM|SYM... is met: some file whose base name
    matches the regular expression CONSUMER has one of the symbols bound to
    the shim ('*' as the symbol list: any symbol of the library). A dlsym
    through a dlopen handle shows in the trace as a binding from the
    handle's own file to where the symbol was found, like the shim's
    relocations against its own exports: such shim-to-shim lines are
    counted apart and prove nothing;
  * each --dlopened-by LOADER: a file whose base name matches LOADER
    dlopened SONAME and the loader opened the shim's file for it (the
    "file=SONAME ... dynamically loaded by LOADER" line and the next
    "opening file=" line); a dlopen of SONAME that opened the real file,
    by anyone but the shim, is a bypass;
  * the real library was loaded by the shim (dlopen), so calls went on to it
    (with --no-call, a dry run whose host exits before its first call into
    the library, it may be unloaded: a shim loads it at its first call).

Prints a one-line summary first ("bound: ..."), then details, with the
loader's lines that show who dlopened the library's soname and which files
were opened for it; exits 1 if a check fails.

    check_bindings.py --trace PREFIX --shim dist/13/libcudart.so.13 \\
        --real /usr/local/cuda/lib64/libcudart.so.13.0.96 --node libcudart.so.13 \\
        --require 'vector_add$:__cudaLaunchKernel' --require 'vector_add$:cudaMalloc'
    check_bindings.py --trace PREFIX --shim dist/13/libcuda.so.1 \\
        --real /usr/local/nvidia/lib64/libcuda.so.1 --require '^libcudart\\.so:cuGetProcAddress_v2'
"""

import argparse
import glob
import os
import re
import sys
from collections import Counter

BINDING = re.compile(r"binding file (.+?) \[\d+\] to (.+?) \[\d+\]: \w+ symbol `([^']+)'(?: \[([^\]]+)\])?")
LOADED = re.compile(r"file=(.+?) \[\d+\];\s+dynamically loaded by (.+?) \[\d+\]")
OPENED = re.compile(r"opening file=(.+?) \[\d+\]; direct_opencount")


def canonical(path, cache={}):
    if path not in cache:
        cache[path] = os.path.realpath(path)
    return cache[path]


def stem(path):
    """libcudart.so.13.0.96 -> libcudart.so: what every line about the library contains."""
    base = os.path.basename(path)
    return base[: base.index(".so") + 3] if ".so" in base else base


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", required=True, help="LD_DEBUG_OUTPUT prefix")
    ap.add_argument("--shim", required=True)
    ap.add_argument("--real", required=True)
    ap.add_argument("--node", help="version node, e.g. libcudart.so.13; leave out for an unversioned library")
    ap.add_argument("--soname", help="the name consumers dlopen (default: the shim's file name)")
    ap.add_argument("--require", action="append", default=[], metavar="CONSUMER:SYM|SYM")
    ap.add_argument("--dlopened-by", action="append", default=[], metavar="LOADER")
    ap.add_argument("--allow-direct", metavar="REGEX",
                    help="consumers (base names) that may bind to the real library directly "
                         "(the driver's own components, loaded by it)")
    ap.add_argument("--host-may-load", action="store_true",
                    help="the host may load the real runtime itself (PyTorch preloads it by path)")
    ap.add_argument("--no-call", action="store_true",
                    help="the host makes no call into the library (a dry run, no GPU): the shim, which "
                         "loads the real library at its first call, need not have loaded it")
    args = ap.parse_args()

    files = sorted(glob.glob(glob.escape(args.trace) + ".*"))
    if not files:
        print(f"bound: NO TRACE (no file {args.trace}.*)")
        return 1
    shim, real = canonical(args.shim), canonical(args.real)
    soname = args.soname or os.path.basename(args.shim)
    what = f"version {args.node}" if args.node else f"{soname} (unversioned)"
    keys = {stem(args.shim), stem(args.real), soname, "dynamically loaded"}
    if args.node:
        keys.add(args.node)
    allow = re.compile(args.allow_direct) if args.allow_direct else None
    to_shim = Counter()          # consumer base name -> references bound to the shim
    bound = set()                # (consumer base name, symbol) bound to the shim
    elsewhere = []               # references of the library bound to anything else
    allowed = Counter()          # allowed direct references, by consumer
    real_loaded_by_shim = False
    shim_resolved_in_real = 0    # the shim's dlvsym/dlsym lookups answered by the real library
    real_loaded_by = None        # who loaded the real library, if not the shim
    evidence = []                # the loader's lines about opening the soname, the shim, the real file
    dlopens = []                 # (loader, requested name, file opened) for each dlopen of SONAME
    self_lookups = 0             # shim-to-shim lines: its own relocations, dlsym through its handle
    shim_opened = 0              # dlopen calls that returned the shim (it may have been preloaded)
    for name in files:
        pending = None           # a dlopen of SONAME whose "opening file=" line comes next
        with open(name, errors="replace") as trace:
            for line in trace:
                if not any(k in line for k in keys):
                    continue  # the traces of big programs are mostly other libraries
                m = BINDING.search(line)
                if m:
                    src, dst, sym, node = m.groups()
                    dst_c = canonical(dst)
                    if args.node:
                        if node != args.node:
                            continue
                    elif dst_c not in (shim, real):
                        continue
                    src_c = canonical(src)
                    if src_c == dst_c == shim:
                        self_lookups += 1
                        continue
                    if src_c in (shim, real) and dst_c == real:
                        shim_resolved_in_real += 1  # lookups through the real library's handle
                        continue
                    if src_c in (shim, real):
                        continue  # the shim's own and the real library's internal references
                    base = os.path.basename(src)
                    if dst_c == shim:
                        to_shim[base] += 1
                        bound.add((base, sym))
                    elif allow and allow.search(base):
                        allowed[base] += 1
                    else:
                        elsewhere.append(f"{src}: {sym} -> {dst}")
                    continue
                m = LOADED.search(line)
                if m:
                    loaded = canonical(m.group(1))
                    if loaded == real:
                        if canonical(m.group(2)) == shim:
                            real_loaded_by_shim = True
                        else:
                            real_loaded_by = m.group(2)
                    if loaded in (shim, real) or os.path.basename(m.group(1)) == soname:
                        evidence.append(f"{os.path.basename(name)}: {line.split(':', 1)[-1].strip()}")
                        pending = (m.group(2), m.group(1))
                    continue
                m = OPENED.search(line)
                if m:
                    if pending:
                        dlopens.append((pending[0], pending[1], m.group(1)))
                        pending = None
                    if canonical(m.group(1)) == shim:
                        shim_opened += 1
                    if canonical(m.group(1)) in (shim, real):
                        evidence.append(f"{os.path.basename(name)}: {line.split(':', 1)[-1].strip()}")

    problems = []
    if elsewhere:
        problems.append(f"{len(elsewhere)} references of {what} bypass the shim, e.g. " + "; ".join(elsewhere[:5]))
    dlopened_shim = [d for d in dlopens if canonical(d[2]) == shim]
    if not to_shim and (args.node or not (dlopened_shim or shim_opened)):
        problems.append(f"no reference of {what} is bound to the shim {args.shim}"
                        + ("" if args.node else ", and no dlopen returned it"))
    # The host may have loaded the real runtime by path itself (PyTorch
    # preloads its CUDA libraries): then the shim's dlopen finds it loaded,
    # and the proof is that the shim's lookups resolve into it.
    host_loaded = args.host_may_load and real_loaded_by is not None
    unloaded = not real_loaded_by_shim and not shim_resolved_in_real and not host_loaded
    if unloaded and not args.no_call:
        problems.append(f"the shim neither loaded the real library {args.real} nor resolved a function in it")
    for loader, asked, opened in dlopens:
        # A host that preloads the real library by path (PyTorch) is allowed
        # to (--host-may-load): its references must still bind to the shim.
        if canonical(opened) == real and canonical(loader) != shim and not args.host_may_load:
            problems.append(f"{loader} dlopened {asked} and got the real library {opened}, not the shim")
    met = []
    for want in args.dlopened_by:
        pattern = re.compile(want)
        hits = [(lo, op) for lo, _, op in dlopens if pattern.search(os.path.basename(lo)) and canonical(op) == shim]
        if hits:
            met.append(f"{os.path.basename(hits[0][0])} dlopened {soname} -> {hits[0][1]}")
        else:
            problems.append(f"no file matching {want} dlopened {soname} and got the shim")
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
    elif args.node:
        print(f"bound: {total} refs -> {os.path.basename(args.shim)}"
              + ("; real one not loaded (no call)" if unloaded else ""))
    else:
        how = [f"{total} refs"] if total else []
        loaders = sorted({os.path.basename(d[0]) for d in dlopened_shim})
        if loaders:
            how.append("dlopened by " + ", ".join(loaders))
        elif shim_opened:
            how.append(f"{shim_opened} dlopen calls")
        print(f"bound: {os.path.basename(args.shim)}: {'; '.join(how)}; "
              + ("real one not loaded (no call)" if unloaded else "real one loaded by it"))
    print(f"  trace files: {len(files)}")
    for base, n in to_shim.most_common(8):
        print(f"  {base}: {n} references of {what} bound to the shim")
    print(f"  shim-to-shim lines (its own relocations, dlsym through its handle): {self_lookups}")
    print(f"  dlopen calls that returned the shim: {shim_opened}")
    for base, n in allowed.most_common(8):
        print(f"  {base}: {n} references bound to the real library directly (allowed: {args.allow_direct})")
    for m in met:
        print(f"  required and bound: {m}")
    print(f"  real library {real} dlopened by the shim: {'yes' if real_loaded_by_shim else 'no'}")
    print(f"  lookups through the real library's handle (the shim's): {shim_resolved_in_real}")
    for loader, asked, opened in dlopens[:6]:
        print(f"  dlopen({asked}) by {loader} opened {opened}")
    if real_loaded_by:
        print(f"  real library loaded by: {real_loaded_by} (the shim's dlopen then finds it loaded)")
    if evidence:
        print(f"  the loader on {soname}, the shim and the real file ({len(evidence)} lines, first 8):")
        for e in evidence[:8]:
            print(f"    {e}")
    for p in problems:
        print(f"  PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
