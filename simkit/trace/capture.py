"""Capture a real program's memory accesses with valgrind lackey, importing them as they stream.

    valgrind --tool=lackey --trace-mem=yes --log-fd=N CMD ARGS...

Lackey's text goes through a pipe (fd N in the child) straight into the lackey importer, so a
long run never touches the disk as text (lackey prints about 17 bytes per instruction). The
program's own stdout and stderr go to small temporary files; their tails are kept in
``meta.extra``. When ``max_records`` is reached the child is stopped (SIGTERM, then SIGKILL).

Lackey 3.19 has no switch to start tracing at a point in the program. ``start_at`` gives one: an
instruction address, or the name of a function in a non-PIE executable (resolved with ``nm``);
records begin at the first execution of that instruction. ``skip_instructions`` then drops that
many more instructions.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from simkit.errors import InputError
from simkit.trace.format import TraceMeta, TraceWriter
from simkit.trace.lackey import LackeyReader, lackey_extra

INSTALL_HINT = "install it with `apt-get install -y valgrind`"
_TAIL_BYTES = 400


def valgrind_path() -> str:
    """The valgrind executable, or InputError saying how to install it."""
    path = shutil.which("valgrind")
    if path is None:
        raise InputError(f"valgrind is not on PATH; {INSTALL_HINT}")
    return path


def valgrind_version() -> str:
    out = subprocess.run([valgrind_path(), "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def _executable(cmd0: str, cwd) -> Path:
    if os.sep in cmd0:
        path = Path(cwd or ".") / cmd0
    else:
        found = shutil.which(cmd0)
        if found is None:
            raise InputError(f"{cmd0}: command not found")
        path = Path(found)
    if not path.is_file():
        raise InputError(f"{cmd0}: no such file")
    return path


def symbol_address(executable: str | os.PathLike, symbol: str) -> int:
    """The address of ``symbol`` in a non-PIE ELF executable (as valgrind will run it)."""
    path = Path(executable)
    with open(path, "rb") as f:
        head = f.read(18)
    if head[:4] != b"\x7fELF":
        raise InputError(f"{path}: not an ELF executable; give start_at as a hex address")
    if int.from_bytes(head[16:18], "little") != 2:     # e_type ET_EXEC
        raise InputError(f"{path}: position-independent executable; build it with "
                         f"-no-pie to start at a symbol, or give a hex address")
    nm = shutil.which("nm")
    if nm is None:
        raise InputError("nm (binutils) is not on PATH; give start_at as a hex address")
    out = subprocess.run([nm, "-P", "--defined-only", str(path)], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == symbol and fields[1] in "TtWw":
            return int(fields[2], 16)
    raise InputError(f"{path}: no function symbol {symbol!r} (is the binary stripped?)")


def resolve_start(start_at: int | str | None, cmd: list[str], cwd=None) -> int | None:
    """``start_at`` as an address: an int, a hex string, or a function name in ``cmd[0]``."""
    if start_at is None or isinstance(start_at, int):
        return start_at
    text = start_at.strip()
    if text.lower().startswith("0x"):
        try:
            return int(text, 16)
        except ValueError:
            raise InputError(f"start_at: bad hex address {start_at!r}") from None
    return symbol_address(_executable(cmd[0], cwd), text)


def _tail(f) -> str:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - _TAIL_BYTES))
    return f.read().decode("utf-8", "replace").strip()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def capture(cmd: list[str], dst: str | os.PathLike, *, skip_instructions: int = 0,
            max_records: int | None = None, include_ifetch: bool = True,
            start_at: int | str | None = None, env: dict | None = None, cwd=None,
            meta: TraceMeta | None = None) -> Path:
    """Run ``cmd`` under valgrind lackey and write its accesses to the trace ``dst``.

    Raises InputError when valgrind is missing, the program cannot start, exits non-zero
    (unless stopped at ``max_records``), or never executes ``start_at``."""
    if not cmd:
        raise InputError("capture: no command given")
    cmd = [str(c) for c in cmd]
    valgrind = valgrind_path()
    start = resolve_start(start_at, cmd, cwd)
    meta = meta if meta is not None else TraceMeta()
    meta.producer = "lackey"
    meta.source = meta.source or Path(cmd[0]).name
    argv = [valgrind, "--tool=lackey", "--trace-mem=yes", "--log-fd=FD", *cmd]
    shown = shlex.join(cmd)
    with TraceWriter(dst, meta) as w, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err:
        read_fd, write_fd = os.pipe()
        argv[3] = f"--log-fd={write_fd}"
        meta.command = meta.command or shlex.join(["valgrind", *argv[1:]])
        try:
            proc = subprocess.Popen(argv, pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, env=env, cwd=cwd)
        except OSError as exc:
            os.close(read_fd)
            raise InputError(f"{shown}: cannot start valgrind ({exc.strerror or exc})") from None
        finally:
            os.close(write_fd)
        pipe = os.fdopen(read_fd, "rb")
        reader = LackeyReader(pipe, include_ifetch=include_ifetch,
                              skip_instructions=skip_instructions, max_records=max_records,
                              start_address=start)
        at_eof = False
        try:
            for chunk in reader.chunks():
                w.write(chunk)
            at_eof = not reader.stopped_early
        finally:
            pipe.close()            # first, so a child blocked writing the pipe wakes up
            if not at_eof:
                _stop(proc)
        rc = proc.wait()
        if not reader.stopped_early and rc != 0:
            last = _tail(err).splitlines()[-1:] or [""]
            raise InputError(f"`{shown}` exited with status {rc} under valgrind"
                             + (f": {last[0]}" if last[0] else ""))
        if not reader.started:
            raise InputError(f"`{shown}`: start address {start:#x} was never executed")
        w.trailing_instructions = reader.trailing_instructions
        meta.extra.update(lackey_extra(reader))
        meta.extra.update({"valgrind": valgrind_version(),
                           "exit_status": None if reader.stopped_early else rc,
                           "stdout_tail": _tail(out)})
    return Path(dst)
