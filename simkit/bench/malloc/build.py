"""The C programs of ``simkit bench malloc`` (``csrc/malloc_replay.c``, ``csrc/malloc_probe.c``),
compiled with gcc at run time and cached by source hash.

The executables are run (under ``LD_PRELOAD``), so where they live must be writable by this
user only: never a predictable name in a world-writable directory such as ``/tmp``, where
another user could plant a program of that name first. The cache is
``$XDG_CACHE_HOME/simkit`` (default ``~/.cache/simkit``), created mode 0700 and used only
when it is a real directory (not a symlink) owned by this user and writable by nobody else;
a cached executable is reused only when it is a regular file owned by this user and writable
by nobody else. Otherwise the programs are built into a fresh ``tempfile.mkdtemp`` directory
(mode 0700, unpredictable name) removed when the process exits.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from simkit.errors import InputError

CSRC = Path(__file__).resolve().parent / "csrc"
_PRIVATE_TMP: tempfile.TemporaryDirectory | None = None


def _private(path: Path, want_dir: bool) -> bool:
    """``path`` exists, is (not a symlink to) a directory / regular file, is owned by this user
    and is writable by nobody else."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    kind_ok = stat.S_ISDIR(st.st_mode) if want_dir else stat.S_ISREG(st.st_mode)
    return kind_ok and st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def cache_dir() -> Path:
    """This user's private directory for the compiled programs (see the module docstring)."""
    global _PRIVATE_TMP
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "simkit"
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        base.mkdir(mode=0o700, exist_ok=True)
        if _private(base, want_dir=True):
            os.chmod(base, 0o700)
            return base
    except OSError:
        pass
    if _PRIVATE_TMP is None:                      # mkdtemp: mode 0700, unpredictable name
        _PRIVATE_TMP = tempfile.TemporaryDirectory(prefix="simkit-bin-")
    return Path(_PRIVATE_TMP.name)


def build(name: str, csrc: Path = CSRC, flags=None, tag: str | None = None) -> Path:
    """Compile ``<csrc>/<name>.c`` (default: this package's ``csrc``; cached by the hash of
    the source and the headers beside it, and of ``flags`` when given); returns the
    executable, named ``<tag or name>-<hash>``. ``flags``: gcc's flags instead of the
    default ``-O2 -fno-builtin`` (``-O0`` for malloc_probe)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise InputError("gcc is not on PATH; install it with `apt-get install -y gcc`")
    src = Path(csrc) / f"{name}.c"
    if not src.is_file():
        raise InputError(f"{src}: not found")
    h = hashlib.sha256(src.read_bytes())
    for header in sorted(Path(csrc).glob("*.h")):         # what it may #include "..."
        h.update(header.name.encode() + b"\0" + header.read_bytes())
    if flags is not None:
        h.update(b"\0flags\0" + " ".join(flags).encode())
    digest = h.hexdigest()[:12]
    exe = cache_dir() / f"{tag or name}-{digest}"
    if not _private(exe, want_dir=False):
        tmp = exe.with_name(exe.name + f".{os.getpid()}.tmp")
        cflags = list(flags) if flags is not None else \
            [("-O0" if name == "malloc_probe" else "-O2"), "-fno-builtin"]
        r = subprocess.run([gcc, *cflags, "-o", str(tmp), str(src), "-lm"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise InputError(f"compiling {src.name} failed: {r.stderr.strip()[-300:]}")
        os.chmod(tmp, 0o700)
        os.replace(tmp, exe)
    return exe
