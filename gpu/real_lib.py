#!/usr/bin/env python3
"""Prints the real library a shim will load, found as the shim finds it.

    real_lib.py codegen/api/cuda.yaml [MAJOR]

Reads `library:` of the manifest (soname, real_path_variable, search) with
no YAML module (the GPU machine's python may lack one) and repeats the
shim's search (runtime/src/load.rs, `candidates`): the override variable if
set, else per directory of the search list (`$VAR/dir` entries skipped while
VAR is unset) the fully versioned SONAME.x.y files, highest first, then
SONAME itself. Prints the first that exists and is not a cudastub shim
(the files under dist/), with links resolved, and exits 1 if there is none.
"""

import os
import re
import subprocess
import sys


def manifest(path, major):
    """soname, override variable and search list of a manifest's `library:`."""
    soname = var = None
    search = []
    in_library = in_search = False
    with open(path) as f:
        for line in f:
            if re.match(r"^\S", line):
                in_library = line.startswith("library:")
                in_search = False
                continue
            if not in_library:
                continue
            m = re.match(r"^  (\w+):\s*(.*?)\s*$", line)
            if m:
                key, value = m.group(1), m.group(2).strip("\"'")
                in_search = key == "search" and not value
                if key == "soname":
                    soname = value.replace("{major}", str(major))
                elif key == "real_path_variable":
                    var = value
                continue
            m = re.match(r"^\s+-\s+(.*?)\s*$", line)
            if in_search and m:
                search.append(m.group(1).strip("\"'"))
    if not soname or not var:
        sys.exit(f"real_lib.py: {path}: no library.soname or library.real_path_variable")
    return soname, var, search


def is_shim(path):
    """A cudastub shim carries a .note.cudastub section (readelf reads only the headers)."""
    try:
        out = subprocess.run(["readelf", "-S", "-W", path], capture_output=True, text=True).stdout
    except OSError:
        return False
    return ".note.cudastub" in out


def candidates(soname, var, search):
    if os.environ.get(var):
        return [os.environ[var]]
    found = []
    for entry in search:
        if entry.startswith("$"):
            name, _, rest = entry[1:].partition("/")
            if not os.environ.get(name):
                continue
            entry = os.path.join(os.environ[name], rest)
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        versioned = []
        for n in names:
            if not n.startswith(soname + "."):
                continue
            parts = n[len(soname) + 1:].split(".")
            if all(p.isdigit() for p in parts):
                versioned.append(([int(p) for p in parts], os.path.join(entry, n)))
        found += [p for _, p in sorted(versioned, reverse=True)]
        plain = os.path.join(entry, soname)
        if os.path.exists(plain):
            found.append(plain)
    return found


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    soname, var, search = manifest(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "")
    for path in candidates(soname, var, search):
        if os.path.isfile(path) and not is_shim(path):
            print(os.path.realpath(path))
            return 0
    print(f"real_lib.py: no real {soname} ({var} unset; searched {', '.join(search)})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
