"""Dinero IV "din" traces (``dineroIV -informat d``): import and export.

The traditional din format (Dinero III, read by Dinero IV's ``tracein_din`` in ``dinfmt.c``) is
ASCII text with one ``LABEL ADDRESS`` pair per line; the rest of a line is ignored, so it may
hold comments::

    2 400100        label 0 read data, 1 write data, 2 instruction fetch,
    0 7ff0001a8           3 escape record (unknown access type), 4 escape record (cache flush)
    1 7ff0001b0     address in hex, written without "0x" (Dinero IV also accepts a 0x prefix)

Dinero IV reads every din reference as a 4-byte word at ``address & ~3``. The importer keeps the
address as written and records ``size`` (4 by default); labels 3 and 4 carry no access for simkit
and are counted in ``meta.extra`` only. A label above 4, a bad hex digit or a line without an
address (blank lines included, as in Dinero IV) is an error naming ``file:line``.

din has no instruction count. On import each instruction fetch counts one instruction and data
references carry icount 0; data references before the first fetch of the file (a data-only
trace) count one instruction each, as simkit's synthetic traces do.

The exporter writes ``label address`` lines (lower-case hex, no 0x); a MODIFY becomes a read line
followed by a write line. Sizes and icounts are not representable and are dropped.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from simkit.errors import InputError
from simkit.trace._sources import atomic_output, line_blocks, open_input
from simkit.trace.format import ACCESS_DTYPE, Op, Trace, TraceMeta, TraceWriter, empty, open_trace

BLOCK_BYTES = 1 << 22
FORMAT_BATCH = 1 << 16         # records formatted at a time (about 8 MB of temporaries)
LABEL_OP = {0: Op.LOAD, 1: Op.STORE, 2: Op.IFETCH}
ESCAPE_LABELS = (3, 4)
_NL, _CR = 10, 13
_HEX = np.full(256, 255, dtype=np.uint8)
for _c in "0123456789abcdef":
    _HEX[ord(_c)] = _HEX[ord(_c.upper())] = int(_c, 16)
_LABEL_OP = np.array([Op.LOAD, Op.STORE, Op.IFETCH, 255, 255], dtype=np.uint8)


def _blank(buf: np.ndarray) -> np.ndarray:
    return (buf == 32) | (buf == 9) | (buf == _CR)


def _diagnose(line: bytes) -> str:
    text = line.decode("utf-8", "replace").rstrip("\r")
    shown = repr(text[:60] + ("..." if len(text) > 60 else ""))
    fields = text.split()
    if len(fields) < 2:
        return f"short line: expected 'label address': {shown}"
    label, addr = fields[0], fields[1]
    try:
        value = int(label, 16)
    except ValueError:
        return f"bad label {label!r} (0 read, 1 write, 2 fetch, 3/4 escape): {shown}"
    if value > 4:
        return f"unknown label {label!r} (0 read, 1 write, 2 fetch, 3/4 escape): {shown}"
    digits = addr[2:] if addr[:2].lower() == "0x" else addr
    if not digits or len(digits) > 16 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return f"bad hex address {addr!r}: {shown}"
    return f"unparseable line: {shown}"


def _field_bounds(buf, starts, ends):
    """First and second whitespace-separated fields of every line: (lo1, hi1, lo2, hi2, ok)."""
    solid = ~_blank(buf) & (buf != _NL)
    begin = np.flatnonzero(solid & ~np.r_[False, solid[:-1]])     # field starts
    finish = np.flatnonzero(solid & ~np.r_[solid[1:], False]) + 1   # field ends (exclusive)
    i = np.searchsorted(begin, starts)
    n = len(begin)

    def safe(j):
        return np.minimum(j, max(n - 1, 0))

    lo1 = begin[safe(i)] if n else starts
    lo2 = begin[safe(i + 1)] if n else starts
    ok = (i + 1 < n) & (lo2 < ends) if n else np.zeros(len(starts), bool)
    hi1 = finish[safe(i)] if n else starts
    hi2 = finish[safe(i + 1)] if n else starts
    return lo1, hi1, lo2, hi2, ok


def _hex(buf, lo, hi):
    """Hex digits buf[lo:hi] per row (1..16, after an optional 0x); (values, bad)."""
    prefixed = (hi - lo > 2) & (buf[lo] == ord("0")) & ((buf[lo + 1] | 32) == ord("x"))
    lo = lo + 2 * prefixed
    length = hi - lo
    bad = (length < 1) | (length > 16)
    length = np.clip(length, 1, 16)
    hi = lo + length
    value = np.zeros(len(lo), dtype=np.uint64)
    for k in range(int(length.max()) if len(lo) else 0):
        digit = _HEX[buf[hi - 1 - k]] * (length > k)
        bad |= digit == 255
        value += digit.astype(np.uint64) << np.uint64(4 * k)
    return value, bad


def parse_block(data: bytes, name: str, first_line: int):
    """Parse whole din lines; return (label, addr) arrays, or raise InputError name:line."""
    buf = np.frombuffer(data + b"\0\0", dtype=np.uint8)
    ends = np.flatnonzero(buf == _NL)
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    lo1, hi1, lo2, hi2, ok = _field_bounds(buf, starts, ends)
    label, bad_label = _hex(buf, np.where(ok, lo1, starts), np.where(ok, hi1, starts + 1))
    addr, bad_addr = _hex(buf, np.where(ok, lo2, starts), np.where(ok, hi2, starts + 1))
    bad = ~ok | bad_label | bad_addr | (label > 4)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{name}:{first_line + i}: {_diagnose(data[starts[i]:ends[i]])}")
    return label.astype(np.uint8), addr


def import_din(src, dst: str | os.PathLike, *, size: int = 4, max_records: int | None = None,
               meta: TraceMeta | None = None, block_bytes: int = BLOCK_BYTES) -> Path:
    """Convert a din trace (a path, possibly compressed, or an open stream) to the trace ``dst``."""
    if not 0 <= size <= 0xFFFF:
        raise ValueError(f"size: must be in 0..65535, got {size}")
    if max_records is not None and max_records < 0:
        raise ValueError(f"max_records: must be >= 0, got {max_records}")
    meta = meta if meta is not None else TraceMeta()
    meta.producer = meta.producer or "din"
    if not meta.source and isinstance(src, (str, os.PathLike)):
        meta.source = str(src)
    seen_fetch = False
    escapes = {3: 0, 4: 0}
    records = 0
    with open_input(src) as reader, TraceWriter(dst, meta) as w:
        line = 1
        for data in line_blocks(reader, block_bytes, "din text"):
            label, addr = parse_block(data, reader.name, line)
            line += data.count(b"\n")
            for e in ESCAPE_LABELS:
                escapes[e] += int(np.count_nonzero(label == e))
            keep = label < 3
            label, addr = label[keep], addr[keep]
            if max_records is not None:
                label, addr = label[: max_records - records], addr[: max_records - records]
            fetch = label == 2
            out = empty(len(label))
            out["addr"] = addr
            out["op"] = _LABEL_OP[label]
            out["size"] = size
            fetches_before = np.cumsum(fetch) - fetch + seen_fetch
            out["icount"] = fetch | (fetches_before == 0)
            seen_fetch = seen_fetch or bool(fetch.any())
            w.write(out)
            records += len(out)
            if max_records is not None and records >= max_records:
                break
        meta.extra.update({"din_size": size, "escape_records_3": escapes[3],
                           "escape_records_4": escapes[4]})
    return Path(dst)


def _chunks_of(source) -> Iterable[np.ndarray]:
    if isinstance(source, (str, os.PathLike)):
        return open_trace(source).chunks()
    if isinstance(source, Trace):
        return source.chunks()
    if isinstance(source, np.ndarray):
        if source.dtype != ACCESS_DTYPE:
            raise TypeError(f"records must have ACCESS_DTYPE, got {source.dtype}")
        return (source[i:i + (1 << 20)] for i in range(0, len(source), 1 << 20))
    return source        # an iterable of record arrays


_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)


def format_din(records: np.ndarray) -> bytes:
    """The din lines for ``records`` (MODIFY -> a read line then a write line)."""
    op = records["op"]
    twice = op == Op.MODIFY
    reps = 1 + twice
    addr = np.repeat(records["addr"], reps)
    label = np.repeat(np.array([0, 1, 2, 0], dtype=np.uint8)[op], reps)
    label[np.cumsum(reps)[twice] - 1] = 1                 # second line of a MODIFY: the write
    n = len(addr)
    nib = ((addr[:, None] >> _SHIFTS) & np.uint64(15)).astype(np.uint8)
    digits = np.ones(n, dtype=np.int64)
    for k in range(1, 16):
        digits += addr >= np.uint64(1 << (4 * k))
    lines = np.empty((n, 19), dtype=np.uint8)
    lines[:, 0] = label + ord("0")
    lines[:, 1] = ord(" ")
    lines[:, 2:18] = _DIGITS[nib]
    lines[:, 18] = _NL
    keep = np.ones((n, 19), dtype=bool)
    keep[:, 2:18] = np.arange(16) >= (16 - digits)[:, None]
    return lines[keep].tobytes()


def export_din(source, dst: str | os.PathLike) -> Path:
    """Write ``source`` (a trace path, a ``Trace``, a record array or an iterable of record
    arrays) as din text to ``dst`` (compressed when it ends in .gz/.xz/.bz2), atomically."""
    chunks = _chunks_of(source)
    with atomic_output(dst) as f:
        for chunk in chunks:
            for start in range(0, len(chunk), FORMAT_BATCH):     # bounded temporaries
                f.write(format_din(chunk[start:start + FORMAT_BATCH]))
    return Path(dst)
