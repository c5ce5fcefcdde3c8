"""Output files that appear whole or not at all, and that an interrupted run removes.

Every writer in simkit writes through a temporary file made by :func:`temp_for` (created with
``O_EXCL`` in the target's directory, so a pre-existing file or symlink of that name is never
followed) and moves it into place with :func:`commit`. Temporary files are registered while they
exist, so the command line can remove them all when a run fails, is interrupted (SIGINT) or
terminated (SIGTERM): :func:`cleanup`. Within one command (between :func:`start_command` and
:func:`cleanup`), outputs already committed are remembered too, so that a failure after a first
output was written (``kv run --out a.csv --plot bad/``) removes that first output as well.

:func:`check_output_file` and :func:`check_output_dir` check an output location before any work
starts (it exists as the right kind of thing, its directory is writable: tried, not guessed from
permission bits, so it also holds for root and read-only mounts).
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from simkit.errors import InputError

_TEMPS: set[Path] = set()
_WRITTEN: list[Path] = []
_TRACKING = False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


def temp_for(path: str | os.PathLike, suffix: str = ".partial") -> Path:
    """Create (``O_EXCL``) and register an empty temporary file beside ``path``; its name ends
    in ``suffix`` (".partial.png" keeps a format-by-suffix writer such as matplotlib happy)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        fd, name = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)
    os.chmod(name, _MODE)
    tmp = Path(name)
    _TEMPS.add(tmp)
    return tmp


def discard(tmp: Path) -> None:
    """Remove a temporary file (no error when it is gone already)."""
    _TEMPS.discard(tmp)
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def commit(tmp: Path, path: str | os.PathLike) -> Path:
    """Move ``tmp`` onto ``path`` (atomic within a file system) and remember ``path`` as
    written by the current command."""
    path = Path(path)
    os.replace(tmp, path)
    _TEMPS.discard(tmp)
    if _TRACKING:
        _WRITTEN.append(path)
    return path


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".partial") -> Iterator[Path]:
    """``with atomic_path(out) as tmp: write(tmp)``: ``out`` appears when the block ends
    without an exception; otherwise nothing is left."""
    tmp = temp_for(path, suffix)
    try:
        try:
            yield tmp
        except OSError as exc:   # a full disk, a quota, an I/O error: name the output
            raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        commit(tmp, path)
    finally:
        if tmp in _TEMPS:
            discard(tmp)


def start_command() -> None:
    """Begin remembering committed outputs (the command line calls this once per command)."""
    global _TRACKING
    _TRACKING = True
    _WRITTEN.clear()


def cleanup(rollback: bool = False) -> None:
    """Remove every registered temporary file; with ``rollback``, also the outputs the current
    command committed (it failed, so they are half of a result)."""
    global _TRACKING
    for tmp in list(_TEMPS):
        discard(tmp)
    if rollback:
        for path in _WRITTEN:
            try:
                if path.is_dir() and not path.is_symlink():
                    continue
                path.unlink()
            except OSError:
                pass
    _WRITTEN.clear()
    _TRACKING = False


def _probe_writable(directory: Path, what: str) -> None:
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".simkit-probe-")
    except OSError as exc:
        raise InputError(f"{what}: directory {directory} is not writable "
                         f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(name)


def _kind(path: Path) -> str | None:
    """What ``path`` is when it is not a plain file or absent: 'a directory', 'a FIFO', ..."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        return f"unreadable ({exc.strerror})"
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def check_output_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """Fail (InputError, one line) unless ``path`` can be written as a file: not a directory,
    FIFO, device or symlink loop, in an existing, writable directory."""
    path = Path(path)
    what = f"{option} {path}"
    kind = _kind(path)
    if kind is not None:
        raise InputError(f"{what}: is {kind}, not a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{what}: directory {parent} does not exist")
    _probe_writable(parent, what)
    return path


def check_output_dir(path: str | os.PathLike, option: str = "--outdir") -> Path:
    """Fail unless ``path`` is (or can be created as) a writable directory."""
    path = Path(path)
    what = f"{option} {path}"
    if path.exists() or path.is_symlink():
        kind = _kind(path)
        if kind != "a directory":
            raise InputError(f"{what}: is {kind or 'a file'}, not a directory")
        _probe_writable(path, what)
        return path
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{what}: {parent} is not a directory")
    _probe_writable(parent, what)
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file (through symlinks, ``..`` or hard links)."""
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def check_input_kind(path: str | os.PathLike) -> Path:
    """Fail unless ``path`` is an existing regular file, naming what it is otherwise."""
    path = Path(path)
    kind = _kind(path)
    if kind is not None:
        raise InputError(f"{path}: is {kind}, not a file")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    return path


def write_via(path: str | os.PathLike, write, suffix: str = ".partial") -> Path:
    """``write(tmp)`` into a fresh temporary beside ``path``, then move it onto ``path``; on
    any exception nothing is left. Returns ``path``."""
    with atomic_path(path, suffix) as tmp:
        write(tmp)
    return Path(path)
