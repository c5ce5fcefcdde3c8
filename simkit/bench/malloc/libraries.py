"""The real allocators ``simkit bench malloc`` knows: where each one's shared library is on
Debian/Ubuntu-style systems, which package provides it, and the environment that preloads it.

``efence`` is Debian's electric-fence (a guard page after every block). ``hardened_malloc``
and ``hardened_malloc-light`` are not packaged: ``make tools`` builds them from source at a
pinned commit (``simkit.bench.malloc.hardened``) into this user's cache; the environment
variables ``SIMKIT_HARDENED_MALLOC`` / ``SIMKIT_HARDENED_MALLOC_LIGHT`` name a built library
instead.
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
    "efence": ("libefence.so.0",),
    "hardened_malloc": ("$SIMKIT_HARDENED_MALLOC", "@hardened_malloc"),
    "hardened_malloc-light": ("$SIMKIT_HARDENED_MALLOC_LIGHT", "@hardened_malloc-light"),
}
PACKAGES = {"jemalloc": "libjemalloc2", "mimalloc": "libmimalloc2.0",
            "tcmalloc": "libtcmalloc-minimal4", "scudo": "libclang-rt-14-dev",
            "efence": "electric-fence"}
# replayed by default (``simkit bench malloc`` without --allocator); the others are probed by
# the security table and replayed when named (electric-fence maps pages per block: too slow
# and too big for whole traces)
ALLOCATORS = ("glibc", "jemalloc", "mimalloc", "tcmalloc", "scudo")


def library(name: str) -> str | None:
    """The shared library to preload for allocator ``name`` ("" for glibc), or None."""
    if name not in LIBRARIES:
        raise InputError(f"allocator: unknown {name!r}; choose from {', '.join(LIBRARIES)}")
    if LIBRARIES[name] is None:
        return ""
    for pat in LIBRARIES[name]:
        if pat.startswith("$"):
            v = os.environ.get(pat[1:])
            if v and Path(v).is_file():
                return v
            continue
        if pat.startswith("@"):
            from simkit.bench.malloc.hardened import built_library
            p = built_library(pat[1:])
            if p is not None:
                return str(p)
            continue
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
    if name.startswith("hardened_malloc"):
        return (f"{name} not built (`make tools` builds it from source when "
                f"github.com/GrapheneOS/hardened_malloc or $SIMKIT_HARDENED_MALLOC_SRC is "
                f"reachable)")
    return f"{name} not installed (apt-get install -y {PACKAGES.get(name, '')}; `make tools`)"


def preload_env(lib: str) -> dict:
    """This process's environment with ``LD_PRELOAD`` set to ``lib`` only ("" for glibc)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if lib:
        env["LD_PRELOAD"] = lib
    return env
