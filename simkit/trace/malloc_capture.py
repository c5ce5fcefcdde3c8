"""Capture a real program's heap allocations: glibc mtrace through a preloaded shim, or memray.

mtrace (any dynamically linked program; REFERENCE 4.7)::

    LD_PRELOAD="libc_malloc_debug.so.0 <shim.so>"  SIMKIT_MTRACE_DIR=<tmp>  CMD ARGS...

Since glibc 2.34 the working ``mtrace()`` lives only in ``libc_malloc_debug.so.0``; the shim
(C source below, compiled with gcc at capture time) is a constructor that points
``MALLOC_TRACE`` at ``<tmp>/mtrace.<pid>`` and calls ``mtrace()``, so every process of the
command (a compiler driver's cc1, as, ld) writes its own file. The debug library is listed
first so the shim's ``mtrace`` binds to it. Allocations made before the constructor ran (the
dynamic loader's, libc's stdio set-up) are not seen; their frees are counted as
``skipped["free of unknown address"]`` in the imported trace, never silently dropped.
By default the process with the most events is imported (``process="largest"``); the event
count of every process is kept in ``meta.extra["processes"]``.

memray (Python programs): ``python -m memray run -o <tmp>/capture.bin SCRIPT`` with
``PYTHONMALLOC=malloc`` so pymalloc does not hide small objects.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from simkit.errors import InputError
from simkit.trace.alloc import import_memray, import_mtrace
from simkit.trace.format import TraceMeta

SHIM_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
extern void mtrace(void);
__attribute__((constructor)) static void simkit_mtrace_start(void) {
    const char *dir = getenv("SIMKIT_MTRACE_DIR");
    char path[4096];
    if (!dir) return;
    snprintf(path, sizeof path, "%s/mtrace.%d", dir, (int)getpid());
    setenv("MALLOC_TRACE", path, 1);
    mtrace();
}
"""
DEBUG_LIB = "libc_malloc_debug.so.0"


def debug_library() -> str:
    """The path of glibc's ``libc_malloc_debug.so.0``, or InputError."""
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
              "/lib/aarch64-linux-gnu", "/usr/lib"):
        p = Path(d) / DEBUG_LIB
        if p.exists():
            return str(p)
    raise InputError(f"{DEBUG_LIB} not found (glibc >= 2.34 ships it; mtrace capture needs it)")


def build_shim(workdir: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise InputError("gcc is not on PATH; install it with `apt-get install -y gcc`")
    src = workdir / "simkit_mtrace_shim.c"
    src.write_text(SHIM_C)
    out = workdir / "simkit_mtrace_shim.so"
    r = subprocess.run([gcc, "-O1", "-shared", "-fPIC", "-o", str(out), str(src)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise InputError(f"compiling the mtrace shim failed: {r.stderr.strip().splitlines()[-1:]}")
    return out


def capture_malloc(cmd: list[str], dst, *, tool: str = "mtrace", process: str = "largest",
                   lenient: bool = True, env: dict | None = None, cwd=None,
                   meta: TraceMeta | None = None, timeout: float | None = None) -> Path:
    """Run ``cmd`` and write its allocations to the allocation trace ``dst``.

    ``lenient`` (default True here): frees of blocks allocated before tracing began are counted
    in ``meta.extra["skipped"]``; with False they are an error naming the line."""
    if not cmd:
        raise InputError("capture-malloc: no command given")
    if tool not in ("mtrace", "memray"):
        raise InputError(f"--tool: unknown {tool!r} (mtrace or memray)")
    cmd = [str(c) for c in cmd]
    shown = shlex.join(cmd)
    meta = meta if meta is not None else TraceMeta()
    meta.source = meta.source or Path(cmd[0]).name
    base_env = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory(prefix="simkit-malloc-") as tmp:
        tmp = Path(tmp)
        if tool == "mtrace":
            shim = build_shim(tmp)
            run_env = dict(base_env, SIMKIT_MTRACE_DIR=str(tmp),
                           LD_PRELOAD=f"{debug_library()} {shim}")
            argv = cmd
            meta.command = meta.command or f"LD_PRELOAD='{DEBUG_LIB} shim.so' " + shown
        else:
            try:
                import memray  # noqa: F401
            except ImportError:
                raise InputError("memray is not installed (pip install memray)") from None
            if not Path(cmd[0]).name.startswith("python"):
                raise InputError("--tool memray runs Python programs: -- python SCRIPT ARGS")
            out_bin = tmp / "capture.bin"
            argv = [sys.executable, "-m", "memray", "run", "-q", "-o", str(out_bin), *cmd[1:]]
            run_env = dict(base_env, PYTHONMALLOC="malloc")
            meta.command = meta.command or "PYTHONMALLOC=malloc python -m memray run " + \
                shlex.join(cmd[1:])
        try:
            proc = subprocess.run(argv, env=run_env, cwd=cwd, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout)
        except FileNotFoundError:
            raise InputError(f"{cmd[0]}: command not found") from None
        except subprocess.TimeoutExpired:
            raise InputError(f"`{shown}` ran past {timeout} s") from None
        if proc.returncode != 0:
            last = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise InputError(f"`{shown}` exited with status {proc.returncode}"
                             + (f": {last[0]}" if last[0] else ""))
        meta.extra["exit_status"] = proc.returncode
        meta.extra["stdout_tail"] = proc.stdout[-300:].decode("utf-8", "replace").strip()
        if tool == "memray":
            return import_memray(out_bin, dst, lenient=lenient, meta=meta)
        files = sorted(tmp.glob("mtrace.*"))
        if not files:
            raise InputError(f"`{shown}`: no mtrace output (statically linked, or setuid?)")
        counts = {}
        for f in files:
            with open(f, "rb") as fh:
                counts[f.name.split(".")[1]] = sum(1 for ln in fh if ln[:1] in b"@+-<>")
        meta.extra["processes"] = counts
        if process == "largest":
            pid = max(counts, key=lambda p: counts[p])
        else:
            if process not in counts:
                raise InputError(f"--process {process}: no such traced process "
                                 f"({', '.join(counts)})")
            pid = process
        meta.extra["pid"] = int(pid)
        return import_mtrace(tmp / f"mtrace.{pid}", dst, lenient=lenient, meta=meta)
