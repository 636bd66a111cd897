#!/usr/bin/env python3
"""Every public host entry point (each rk::runtime and rk::tenant_registry member defined in
host/src/runtime.cpp, constructors and destructors aside) opens an NVTX range in the ringkernel domain:
either in its own body or in the facility it forwards to (a literal "rk::<class>::<name>" in host/src).
Usage: check_entry_points.py <repository root>. Exits 1 naming the entry points without one."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
runtime_cpp = (root / "host/src/runtime.cpp").read_text()
labels = set(re.findall(r'RK_NVTX_RANGE\("([^"]+)"\)', "\n".join(
    p.read_text() for p in (root / "host/src").glob("*.cpp"))))
missing = []
definitions = re.finditer(r"^(?!\s)(?:[^\n;{}]*?\s)?(runtime|tenant_registry)::(~?\w+)\(", runtime_cpp, re.M)
count = 0
for m in definitions:
    cls, name = m.group(1), m.group(2)
    if name in (cls, "~" + cls):
        continue
    body = runtime_cpp.index("{", m.end())
    if ";" in runtime_cpp[m.end():body]:
        continue  # a declaration, not a definition
    count += 1
    label = re.sub(r"_(erased|for)$", "", name)
    if f"rk::{cls}::{label}" not in labels:
        missing.append(f"rk::{cls}::{name}")
if count < 40:
    print(f"found only {count} entry points in host/src/runtime.cpp: the pattern no longer matches")
    sys.exit(1)
if missing:
    print("entry points without an NVTX range:", ", ".join(missing))
    sys.exit(1)
print(f"{count} entry points, each with an NVTX range")
