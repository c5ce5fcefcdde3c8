"""Opening importer inputs and writing exported text: paths (plain, gz, xz, bz2) or open streams.

Importers read through :func:`open_input`, which sniffs compression from the file's first bytes
(not its name), accepts an already-open text or binary stream (so a pipe can be imported while
it is written), and turns decompression failures into one-line ``InputError``\\ s naming the input.
:func:`atomic_output` writes a temporary file beside the target (simkit.atomic) and renames it at the end, compressing by suffix.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from simkit.errors import InputError
from simkit.atomic import atomic_path

_MAGIC = ((b"\x1f\x8b", "gz"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bz2"))
_OPENERS = {"gz": gzip.open, "xz": lzma.open, "bz2": bz2.open}
_STREAM_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)


def sniff_compression(path: Path) -> str | None:
    """'gz', 'xz', 'bz2' from the file's magic bytes, or None for an uncompressed file."""
    with open(path, "rb") as f:
        head = f.read(6)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def suffix_compression(path: Path) -> str | None:
    """'gz', 'xz', 'bz2' from the file name's last suffix, or None."""
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in _OPENERS else None


def check_input_file(path: Path) -> None:
    """Fail unless ``path`` is a regular file (a directory, FIFO, device or symlink loop is
    named as what it is)."""
    from simkit.atomic import check_input_kind

    check_input_kind(path)


class Reader:
    """``read(n)`` returns exactly ``n`` bytes, or fewer only at the end of the input.

    ``offset`` is the number of (decompressed) bytes returned so far; ``name`` names the input
    in error messages. Text streams are encoded to UTF-8.
    """

    def __init__(self, f: IO, name: str):
        self._f = f
        self.name = name
        self.offset = 0

    def read(self, n: int) -> bytes:
        parts = []
        want = n
        while want > 0:
            try:
                got = self._f.read(want)
            except _STREAM_ERRORS as exc:
                raise InputError(f"{self.name}: unreadable or corrupt compressed input "
                                 f"after byte {self.offset} ({exc})") from None
            if not got:
                break
            if isinstance(got, str):
                got = got.encode("utf-8", "replace")
            parts.append(got)
            want -= len(got)
        data = b"".join(parts)
        self.offset += len(data)
        return data


@contextmanager
def open_input(src) -> Iterator[Reader]:
    """Open ``src`` (a path, or an open stream with ``read``) for reading bytes."""
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        check_input_file(path)
        kind = sniff_compression(path)
        try:
            f = _OPENERS[kind](path, "rb") if kind else open(path, "rb")
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
        try:
            yield Reader(f, str(path))
        finally:
            f.close()
    elif hasattr(src, "read"):
        yield Reader(src, str(getattr(src, "name", "<stream>")))
    else:
        raise TypeError(f"expected a path or an open stream, got {type(src).__name__}")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Write ``path`` by way of a temporary file beside it, compressed when the name ends in .gz/.xz/.bz2.

    The file appears only when the block finishes without an exception."""
    path = Path(path)
    kind = suffix_compression(path)
    with atomic_path(path) as tmp:
        try:
            f = _OPENERS[kind](tmp, "wb") if kind else open(tmp, "wb")
        except OSError as exc:
            raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        with f:
            yield f


MAX_LINE = 1 << 16             # a longer "line" means the input is not the text format expected


def line_blocks(reader: "Reader", block_bytes: int, what: str) -> Iterator[bytes]:
    """Consecutive runs of whole lines, each ending with a newline; ``what`` names the
    expected format in the error for input that has no line breaks ("lackey output")."""
    carry = b""
    while True:
        data = reader.read(block_bytes)
        if not data:
            if carry:
                yield carry + b"\n"
            return
        data = carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) > MAX_LINE:
                raise InputError(f"{reader.name}: no line break in the first {len(data)} bytes "
                                 f"of a line; not {what}")
            carry = data
            continue
        yield data[:cut + 1]
        carry = data[cut + 1:]
        if len(carry) > MAX_LINE:
            raise InputError(f"{reader.name}: a line longer than {MAX_LINE} bytes; not {what}")
