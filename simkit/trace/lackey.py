"""Import valgrind lackey ``--trace-mem=yes`` output as a simkit trace.

Lackey (``lackey/lk_main.c``) prints one line per executed instruction and one per data access::

    I  0401ab70,3        instruction fetch: address in hex, size in decimal
     L 1fff000778,8      load
     S 1fff000770,8      store
     M 0421f4b0,4        modify: load and store of the same bytes (``add [mem], reg``)
    ==3517== ...         valgrind's own messages ("--pid--" and "**pid**" too): skipped

Instruction counting: each ``I`` line is one instruction. A record's ``icount`` is the number of
instructions since the previous emitted record, counting the one the record belongs to, so
``sum(icount) + trailing_instructions == instructions``. With ``include_ifetch`` every ``I``
becomes an IFETCH record with icount 1 and data records carry 0; without it, ``I`` lines are
counted into the next data record's icount.

``start_address`` drops everything before the first execution of the instruction at that
address (a sentinel: lackey 3.19 has no start switch); ``skip_instructions`` then drops that many
further instructions with their data accesses; ``max_records`` stops the import after that many
records (a cut may fall between an instruction's fetch and its data accesses).

Parsing streams blocks of whole lines in constant memory and is vectorised with numpy per block.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from string import hexdigits
from typing import Iterator

import numpy as np

from simkit.errors import InputError
from simkit.trace._sources import check_input_file, line_blocks, open_input
from simkit.trace.format import Op, TraceMeta, TraceWriter, empty

BLOCK_BYTES = 1 << 22          # text read per step (about 200K lines)

_NL, _CR, _SP, _COMMA = 10, 13, 32, 44
_HEX = np.full(256, 255, dtype=np.uint8)
for _c in "0123456789abcdef":
    _HEX[ord(_c)] = _HEX[ord(_c.upper())] = int(_c, 16)
_DEC = np.full(256, 255, dtype=np.uint8)
_DEC[ord("0"):ord("9") + 1] = np.arange(10)
_DATA_OP = np.full(256, 255, dtype=np.uint8)      # second char of a data line -> Op
_DATA_OP[ord("L")], _DATA_OP[ord("S")], _DATA_OP[ord("M")] = Op.LOAD, Op.STORE, Op.MODIFY
_GUEST = re.compile(rb"guest instrs:\s*([\d,]+)")


def _diagnose(line: bytes) -> str:
    """What is wrong with one line that failed the vectorised checks."""
    text = line.decode("utf-8", "replace").rstrip("\r")
    shown = repr(text[:60] + ("..." if len(text) > 60 else ""))
    if not (text.startswith("I  ") or (len(text) > 2 and text[0] == " " and text[1] in "LSM"
                                       and text[2] == " ")):
        return f"not a lackey line (expected 'I  addr,size' or ' L|S|M addr,size'): {shown}"
    body = text[3:]
    if body.count(",") != 1:
        return f"expected 'address,size' after the access kind: {shown}"
    addr, size = body.split(",")
    if not 1 <= len(addr) <= 16 or any(c not in hexdigits for c in addr):
        return f"bad hex address {addr!r}: {shown}"
    if not size.isdigit() or len(size) > 5 or int(size) > 0xFFFF:
        return f"bad size {size!r} (a decimal byte count up to 65535): {shown}"
    return f"unparseable line: {shown}"


def _digits(table: np.ndarray, buf: np.ndarray, lo: np.ndarray, hi: np.ndarray, base: int):
    """Parse the digits buf[lo:hi] of every row, right to left, one column at a time.

    Returns (values as uint64, bad) where bad marks rows with a character outside ``table``."""
    length = hi - lo
    shortest = int(length.min())
    value = np.zeros(len(lo), dtype=np.uint64)
    bad = np.zeros(len(lo), dtype=bool)
    weight = 1
    for k in range(int(length.max())):
        digit = table[buf[hi - 1 - k]]
        if k >= shortest:
            digit = digit * (length > k)        # rows shorter than k+1 digits contribute 0
        bad |= digit == 255
        value += digit.astype(np.uint64) * np.uint64(weight)
        weight *= base
    return value, bad


def parse_block(data: bytes, name: str, first_line: int):
    """Parse whole lackey lines (``data`` ends with a newline).

    Returns ``(op, addr, size)`` arrays for the access lines, in order; valgrind's own lines
    and blank lines are skipped. A malformed line raises ``InputError("name:line: ...")``.
    """
    buf = np.frombuffer(data + b"\0\0\0\0", dtype=np.uint8)
    ends = np.flatnonzero(buf == _NL)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    ends = ends - (buf[ends - 1] == _CR) * (ends > starts)
    length = ends - starts
    c0, c1, c2 = buf[starts], buf[starts + 1], buf[starts + 2]
    fetch = (c0 == ord("I")) & (c1 == _SP)
    data_op = _DATA_OP[c1]
    access = (fetch | ((c0 == _SP) & (data_op != 255))) & (c2 == _SP) & (length >= 6)
    banner = (length >= 2) & (c1 == c0) & ((c0 == ord("=")) | (c0 == ord("-")) | (c0 == ord("*")))
    bad_line = ~(access | banner | (length == 0))

    rows = np.flatnonzero(access)
    lo, hi = starts[rows] + 3, ends[rows]
    commas = np.flatnonzero(buf == _COMMA)
    at = np.searchsorted(commas, lo)
    comma = commas[np.minimum(at, max(len(commas) - 1, 0))] if len(commas) else hi
    ok = (at < len(commas)) & (comma < hi) & (comma - lo >= 1) & (comma - lo <= 16) \
        & (hi - comma - 1 >= 1) & (hi - comma - 1 <= 5)
    if len(rows):
        comma = np.where(ok, comma, lo + 1)        # keep the digit gathers in range for bad rows
        addr, bad_addr = _digits(_HEX, buf, lo, comma, 16)
        size, bad_size = _digits(_DEC, buf, comma + 1, np.where(ok, hi, comma + 2), 10)
        bad_line[rows] |= ~ok | bad_addr | bad_size | (size > 0xFFFF)
    if bad_line.any():
        i = int(np.argmax(bad_line))
        raise InputError(f"{name}:{first_line + i}: {_diagnose(data[starts[i]:ends[i]])}")
    if not len(rows):
        return np.empty(0, np.uint8), np.empty(0, np.uint64), np.empty(0, np.uint16)
    op = np.where(fetch[rows], np.uint8(Op.IFETCH), data_op[rows]).astype(np.uint8)
    return op, addr, size.astype(np.uint16)


class LackeyReader:
    """Stream lackey text from ``src`` (a path or an open stream) as record chunks.

    After ``chunks()`` is exhausted: ``records``, ``trailing_instructions`` (instructions after
    the last record), ``skipped_instructions`` (before the start, including ``start_address``'s
    prefix), ``lines``, ``started`` (False when ``start_address`` never ran), ``stopped_early``
    (``max_records`` reached) and ``guest_instructions`` (valgrind's own count from its closing
    summary, None when absent) describe the import.
    """

    def __init__(self, src, *, include_ifetch: bool = True, skip_instructions: int = 0,
                 max_records: int | None = None, start_address: int | None = None,
                 block_bytes: int = BLOCK_BYTES):
        if skip_instructions < 0:
            raise ValueError(f"skip_instructions: must be >= 0, got {skip_instructions}")
        if max_records is not None and max_records < 0:
            raise ValueError(f"max_records: must be >= 0, got {max_records}")
        if block_bytes <= 0:
            raise ValueError(f"block_bytes: must be > 0, got {block_bytes}")
        self.src = src
        self.name = str(getattr(src, "name", src))   # for messages; the reader's once open
        self.include_ifetch = include_ifetch
        self.skip_instructions = skip_instructions
        self.max_records = max_records
        self.start_address = start_address
        self.block_bytes = block_bytes
        self.records = 0
        self.lines = 0
        self.skipped_instructions = 0
        self.trailing_instructions = 0
        self.started = start_address is None
        self.stopped_early = False
        self.guest_instructions: int | None = None
        self._to_skip = skip_instructions
        self._skipping = skip_instructions > 0
        self._pending = 0          # instructions counted since the last emitted record

    def chunks(self) -> Iterator[np.ndarray]:
        if self.max_records == 0:
            self.stopped_early = True
            return
        with open_input(self.src) as reader:
            self.name = reader.name
            for data in line_blocks(reader, self.block_bytes, "lackey output"):
                op, addr, size = parse_block(data, reader.name, self.lines + 1)
                self.lines += data.count(b"\n")
                if b"guest instrs" in data:
                    m = _GUEST.search(data)
                    if m:
                        self.guest_instructions = int(m.group(1).replace(b",", b""))
                out = self._select(op, addr, size)
                if out is not None and len(out):
                    yield out
                if self.stopped_early:
                    return
        self.trailing_instructions = self._pending

    def _select(self, op, addr, size) -> np.ndarray | None:
        fetch = op == Op.IFETCH
        if not self.started:
            hit = np.flatnonzero(fetch & (addr == np.uint64(self.start_address)))
            if not len(hit):
                self.skipped_instructions += int(fetch.sum())
                return None
            k = int(hit[0])
            self.skipped_instructions += int(fetch[:k].sum())
            op, addr, size, fetch = op[k:], addr[k:], size[k:], fetch[k:]
            self.started = True
        if self._skipping:
            # inside the skipped prefix: keep from the (to_skip + 1)-th instruction on; data
            # lines before it belong to a skipped instruction
            nth = np.cumsum(fetch, dtype=np.int64)
            keep = np.flatnonzero(nth > self._to_skip)
            if not len(keep):
                seen = int(nth[-1]) if len(nth) else 0
                self._to_skip -= seen
                self.skipped_instructions += seen
                return None
            k = int(keep[0])
            self.skipped_instructions += self._to_skip
            self._to_skip = 0
            self._skipping = False
            op, addr, size, fetch = op[k:], addr[k:], size[k:], fetch[k:]
        counted = np.cumsum(fetch, dtype=np.int64)
        rows = np.arange(len(op)) if self.include_ifetch else np.flatnonzero(~fetch)
        if self.max_records is not None and self.records + len(rows) >= self.max_records:
            rows = rows[: self.max_records - self.records]
            self.stopped_early = True
        total = int(counted[-1]) if len(counted) else 0
        if not len(rows):
            self._pending += total
            return None
        at = counted[rows]
        icount = np.diff(at, prepend=0)
        icount[0] += self._pending
        if int(icount.max()) > 0xFFFFFFFF:
            raise InputError(f"{self.name}: more than 2**32 instructions between two records")
        self._pending = 0 if self.stopped_early else total - int(at[-1])
        out = empty(len(rows))
        out["addr"] = addr[rows]
        out["op"] = op[rows]
        out["size"] = size[rows]
        out["icount"] = icount
        self.records += len(rows)
        return out


def import_lackey(src, dst: str | os.PathLike, *, include_ifetch: bool = True,
                  skip_instructions: int = 0, max_records: int | None = None,
                  meta: TraceMeta | None = None, start_address: int | None = None,
                  block_bytes: int = BLOCK_BYTES) -> Path:
    """Convert lackey ``--trace-mem=yes`` text (a path or an open stream) to the trace ``dst``.

    See the module docstring for the icount rule and the options. No file is left at ``dst``
    when the input is malformed.
    """
    meta = meta if meta is not None else TraceMeta()
    if not meta.producer:
        meta.producer = "lackey"
    if isinstance(src, (str, os.PathLike)):
        check_input_file(Path(src))
        meta.source = meta.source or str(src)
    reader = LackeyReader(src, include_ifetch=include_ifetch, skip_instructions=skip_instructions,
                          max_records=max_records, start_address=start_address,
                          block_bytes=block_bytes)
    with TraceWriter(dst, meta) as w:
        for chunk in reader.chunks():
            w.write(chunk)
        if not reader.started:
            raise InputError(f"{reader.name}: the start address {start_address:#x} "
                             f"never executed")
        w.trailing_instructions = reader.trailing_instructions
        meta.extra.update(lackey_extra(reader))
    return Path(dst)


def lackey_extra(reader: LackeyReader) -> dict:
    """How the import went, for ``TraceMeta.extra``."""
    extra = {"include_ifetch": reader.include_ifetch,
             "skipped_instructions": reader.skipped_instructions,
             "max_records": reader.max_records, "stopped_at_max_records": reader.stopped_early}
    if reader.start_address is not None:
        extra["start_address"] = f"{reader.start_address:#x}"
    if reader.guest_instructions is not None:
        extra["valgrind_guest_instructions"] = reader.guest_instructions
    return extra
