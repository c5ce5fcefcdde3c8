"""Build GrapheneOS hardened_malloc from source at a pinned commit (it is not packaged), as
mimalloc-bench does: ``python -m simkit.bench.malloc.hardened`` (``make tools`` runs it).

The source is ``$SIMKIT_HARDENED_MALLOC_SRC`` (a checkout or an unpacked snapshot) when set,
otherwise a clone of ``URL`` checked out at ``COMMIT``. Where neither is reachable it prints
one line and exits 0 (the allocator is then skipped, with the reason, everywhere it is used).
Both configurations are built, ``default`` and ``light`` (``config/*.mk``), with gcc, into
this user's private cache (``simkit.bench.malloc.build.cache_dir``).

``COMMIT`` is the last one before the sources moved to C23 (gcc 12, Debian 12's, has no
``-std=c23``): 2026-04-27, "preserve errno in deallocate_small success path".
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

URL = "https://github.com/GrapheneOS/hardened_malloc"
COMMIT = "ff431a4837d1efcff7aa1798d88aa9871aaea31a"
VARIANTS = {"hardened_malloc": ("default", "out/libhardened_malloc.so"),
            "hardened_malloc-light": ("light", "out-light/libhardened_malloc-light.so")}


def build_dir() -> Path:
    from simkit.bench.malloc.build import cache_dir
    return cache_dir() / f"hardened_malloc-{COMMIT[:12]}"


def built_library(name: str) -> Path | None:
    """The built library of ``name`` (a key of ``VARIANTS``), or None."""
    p = build_dir() / VARIANTS[name][1]
    return p if p.is_file() else None


def _source(work: Path) -> tuple[Path | None, str]:
    src = os.environ.get("SIMKIT_HARDENED_MALLOC_SRC")
    if src:
        if not (Path(src) / "h_malloc.c").is_file():
            return None, f"$SIMKIT_HARDENED_MALLOC_SRC={src}: no h_malloc.c there"
        return Path(src), f"source {src}"
    if shutil.which("git") is None:
        return None, "git not on PATH"
    dst = work / "src"
    r = subprocess.run(["git", "clone", "-q", URL, str(dst)], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if r.returncode != 0:
        return None, f"cannot clone {URL} ({(r.stderr.strip().splitlines() or ['?'])[-1]})"
    r = subprocess.run(["git", "-C", str(dst), "checkout", "-q", COMMIT], capture_output=True,
                       text=True)
    if r.returncode != 0:
        return None, f"commit {COMMIT[:12]} not in the clone"
    return dst, f"{URL} at {COMMIT[:12]}"


def build_hardened() -> tuple[bool, str]:
    """Build both variants (skipped when already built); (built, one-line message)."""
    if all(built_library(n) for n in VARIANTS):
        return True, f"hardened_malloc: already built in {build_dir()}"
    if shutil.which("gcc") is None or shutil.which("make") is None:
        return False, "hardened_malloc: skipped (gcc/make not on PATH)"
    with tempfile.TemporaryDirectory(prefix="simkit-hm-") as tmp:
        src, what = _source(Path(tmp))
        if src is None:
            return False, f"hardened_malloc: skipped ({what})"
        work = Path(tmp) / "build"
        shutil.copytree(src, work, ignore=shutil.ignore_patterns(".git", "out", "out-light"))
        for name, (variant, lib) in VARIANTS.items():
            r = subprocess.run(["make", "-C", str(work), "CC=gcc", "CXX=g++",
                                f"VARIANT={variant}"], capture_output=True, text=True)
            if r.returncode != 0:
                tail = (r.stderr.strip().splitlines() or ["?"])[-1]
                return False, f"hardened_malloc: skipped (build of {variant} failed: {tail})"
            out = build_dir() / lib
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp_out = out.with_name(out.name + f".{os.getpid()}.tmp")
            shutil.copy2(work / lib, tmp_out)
            os.replace(tmp_out, out)
    return True, f"hardened_malloc: built default and light from {what} into {build_dir()}"


def main() -> int:
    ok, msg = build_hardened()
    print(msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
