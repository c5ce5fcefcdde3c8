"""The real allocators ``simkit bench malloc`` knows: where each one's shared library is on
Debian/Ubuntu-style systems, which package provides it, and the environment that preloads it.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

from simkit.errors import InputError

LIBDIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
LIBRARIES = {
    "glibc": None,
    "jemalloc": ("libjemalloc.so.2",),
    "mimalloc": ("libmimalloc.so.2", "libmimalloc.so.2.0"),
    "tcmalloc": ("libtcmalloc_minimal.so.4",),
    "scudo": ("/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-x86_64.so",),
}
PACKAGES = {"jemalloc": "libjemalloc2", "mimalloc": "libmimalloc2.0",
            "tcmalloc": "libtcmalloc-minimal4", "scudo": "libclang-rt-14-dev"}
ALLOCATORS = tuple(LIBRARIES)


def library(name: str) -> str | None:
    """The shared library to preload for allocator ``name`` ("" for glibc), or None."""
    if name not in LIBRARIES:
        raise InputError(f"allocator: unknown {name!r}; choose from {', '.join(LIBRARIES)}")
    if LIBRARIES[name] is None:
        return ""
    for pat in LIBRARIES[name]:
        if pat.startswith("/"):
            hits = sorted(glob.glob(pat))
            if hits:
                return hits[-1]
            continue
        for d in LIBDIRS:
            p = Path(d) / pat
            if p.exists():
                return str(p)
    return None


def available() -> dict[str, str]:
    """Allocators present on this machine: name -> library ("" for glibc)."""
    out = {}
    for name in LIBRARIES:
        lib = library(name)
        if lib is not None:
            out[name] = lib
    return out


def missing_reason(name: str) -> str:
    return f"{name} not installed (apt-get install -y {PACKAGES.get(name, '')}; `make tools`)"


def preload_env(lib: str) -> dict:
    """This process's environment with ``LD_PRELOAD`` set to ``lib`` only ("" for glibc)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if lib:
        env["LD_PRELOAD"] = lib
    return env
