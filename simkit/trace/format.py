"""The simkit memory-access trace: record dtype, file layout, reader and writer.

A record is 16 bytes::

    addr    uint64   virtual address of the access (for IFETCH: the instruction address)
    icount  uint32   instructions retired since the previous record, including the one this
                     access belongs to when it is that instruction's first record; sum = instructions
    size    uint16   bytes accessed (0 = unknown; simulators treat it as 1 byte)
    op      uint8    Op: LOAD 0, STORE 1, IFETCH 2, MODIFY 3 (read-modify-write, lackey's " M")
    flags   uint8    bit 0: the address came from the load of the record just before (a
                     dependence, for the core model's ``dependence="flag"``, which waits for
                     the previous load; set by tracers that know it); other bits 0

A file (``.skt``, or ``.skt.xz`` / ``.skt.gz`` compressed as one stream) is::

    offset 0     b"SIMKTRC1"
    offset 8     uint32 little-endian: length L of the JSON header
    offset 12    JSON header (utf-8): {"format": 1, "dtype": ..., "records": N, "meta": {...}}
    offset 4096  N records

The fixed 4096-byte header keeps the records page-aligned, so an uncompressed trace can be
opened with ``np.memmap`` for random access; ``chunks()`` streams any trace (compressed ones
through the decompressor) in constant memory. Nothing is pickled.
"""
from __future__ import annotations

import datetime as _dt
import gzip
import json
import lzma
import os
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from simkit.errors import InputError
from simkit.atomic import commit, discard, temp_for

ACCESS_DTYPE = np.dtype(
    [("addr", "<u8"), ("icount", "<u4"), ("size", "<u2"), ("op", "u1"), ("flags", "u1")]
)
MAGIC = b"SIMKTRC1"
HEADER_BYTES = 4096
FORMAT_VERSION = 1
DEFAULT_CHUNK = 1 << 20


class Op(IntEnum):
    LOAD = 0
    STORE = 1
    IFETCH = 2
    MODIFY = 3


OP_NAMES = tuple(o.name.lower() for o in Op)


@dataclass
class TraceMeta:
    """What a trace is and how it was made. ``records``/``instructions``/``ops`` are filled in
    by the writer; the rest is the producer's to say."""

    source: str = ""            # program or generator, e.g. "gups (traces/src/gups.c)"
    command: str = ""           # the command line that produced it
    created: str = ""           # ISO date-time (UTC); filled in by the writer when empty
    producer: str = ""          # importer/generator: "lackey", "champsim", "synth.uniform", ...
    records: int = 0
    instructions: int = 0       # sum of icount plus trailing instructions with no record
    ops: dict = field(default_factory=dict)   # {"load": n, "store": n, "ifetch": n, "modify": n}
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TraceMeta":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def empty(n: int) -> np.ndarray:
    """A zeroed array of ``n`` access records."""
    return np.zeros(n, dtype=ACCESS_DTYPE)


def make_records(addr, op=Op.LOAD, size=8, icount=1) -> np.ndarray:
    """Build records from array-likes or scalars (broadcast against ``addr``)."""
    addr = np.asarray(addr, dtype=np.uint64)
    out = empty(addr.shape[0])
    out["addr"] = addr
    out["op"] = np.asarray(op, dtype=np.uint8)
    out["size"] = np.asarray(size, dtype=np.uint16)
    out["icount"] = np.asarray(icount, dtype=np.uint32)
    return out


def _compression(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".xz"):
        return "xz"
    if name.endswith(".gz"):
        return "gz"
    return None


def _open_compressed(path: Path, mode: str, kind: str | None = None) -> IO[bytes]:
    kind = kind if kind is not None else _compression(path)
    if kind == "xz":
        return lzma.open(path, mode)
    if kind == "gz":
        return gzip.open(path, mode)
    return open(path, mode)


def _pack_header(meta: TraceMeta, magic: bytes = MAGIC, version: int = FORMAT_VERSION,
                 dtype: np.dtype = ACCESS_DTYPE) -> bytes:
    """The fixed-size header of a record file: magic, JSON length, JSON (format version, record
    dtype, record count, metadata), zero padding. Shared by .skt and .skat files."""
    body = json.dumps(
        {"format": version, "dtype": dtype.descr, "records": meta.records,
         "meta": meta.to_dict()},
        separators=(",", ":"),
    ).encode()
    if 12 + len(body) > HEADER_BYTES:
        raise InputError(f"trace metadata is {len(body)} bytes; at most {HEADER_BYTES - 12} fit")
    head = magic + len(body).to_bytes(4, "little") + body
    return head + b"\0" * (HEADER_BYTES - len(head))


def _unpack_header(raw: bytes, path: Path, magic: bytes = MAGIC, version: int = FORMAT_VERSION,
                   dtype: np.dtype = ACCESS_DTYPE, what: str = "trace",
                   suffix: str = ".skt") -> TraceMeta:
    if len(raw) < 12 or raw[:8] != magic:
        raise InputError(f"{path}: not a simkit {what} (bad magic; expected a {suffix} file)")
    n = int.from_bytes(raw[8:12], "little")
    if len(raw) < HEADER_BYTES or 12 + n > HEADER_BYTES:
        raise InputError(f"{path}: truncated trace header")
    try:
        head = json.loads(raw[12:12 + n].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: corrupt trace header ({exc.__class__.__name__})") from None
    if not isinstance(head, dict):
        raise InputError(f"{path}: corrupt trace header (a JSON {type(head).__name__}, "
                         f"not an object)")
    if head.get("format") != version:
        raise InputError(f"{path}: unsupported {what} format version {head.get('format')!r}")
    if "dtype" not in head:
        raise InputError(f"{path}: header field 'dtype' is missing")
    try:
        layout = np.dtype([tuple(f) for f in head["dtype"]])
    except (TypeError, ValueError, KeyError):
        raise InputError(f"{path}: header field 'dtype' is not a record layout: "
                         f"{str(head['dtype'])[:80]!r}") from None
    if layout != dtype:
        raise InputError(f"{path}: header field 'dtype': record layout differs from this "
                         f"simkit's ({str(head['dtype'])[:120]})")
    records = head.get("records")
    if isinstance(records, bool) or not isinstance(records, int) or records < 0:
        raise InputError(f"{path}: header field 'records' must be a count >= 0, "
                         f"got {str(records)[:40]!r}")
    raw_meta = head.get("meta", {})
    if not isinstance(raw_meta, dict):
        raise InputError(f"{path}: header field 'meta' must be an object, "
                         f"got a {type(raw_meta).__name__}")
    try:
        meta = TraceMeta.from_dict(raw_meta)
    except TypeError as exc:
        raise InputError(f"{path}: header field 'meta': {exc}") from None
    for name in ("extra", "ops"):
        if not isinstance(getattr(meta, name), dict):
            raise InputError(f"{path}: header field 'meta.{name}' must be an object")
    meta.records = records
    return meta


class Trace:
    """An opened trace file: ``meta``, ``len()``, ``chunks()`` and ``read()``.

    Uncompressed files are memory-mapped; compressed ones are streamed. Opening checks the
    header and the file length, so a truncated file fails here, before any simulation runs.
    """

    def __init__(self, path: str | os.PathLike):
        from simkit.atomic import check_input_kind

        self.path = check_input_kind(path)
        try:
            with _open_compressed(self.path, "rb") as f:
                raw = f.read(HEADER_BYTES)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise InputError(f"{self.path}: unreadable ({exc})") from None
        self.meta = _unpack_header(raw, self.path)
        self.compressed = _compression(self.path) is not None
        if not self.compressed:
            have = (self.path.stat().st_size - HEADER_BYTES) // ACCESS_DTYPE.itemsize
            if have < self.meta.records:
                raise InputError(
                    f"{self.path}: truncated: header says {self.meta.records} records, "
                    f"file holds {max(have, 0)}")

    def __len__(self) -> int:
        return self.meta.records

    def __repr__(self) -> str:
        return f"Trace({str(self.path)!r}, records={self.meta.records})"

    def memmap(self) -> np.ndarray:
        """The records as a read-only memory map (uncompressed files only)."""
        if self.compressed:
            raise InputError(f"{self.path}: compressed traces cannot be memory-mapped; "
                             f"use chunks() or `simkit trace convert` to a .skt file")
        if self.meta.records == 0:
            return empty(0)
        return np.memmap(self.path, dtype=ACCESS_DTYPE, mode="r", offset=HEADER_BYTES,
                         shape=(self.meta.records,))

    def chunks(self, chunk_records: int = DEFAULT_CHUNK) -> Iterator[np.ndarray]:
        """Yield consecutive (writable) arrays of at most ``chunk_records`` records, read in
        constant memory whatever the file's size."""
        if chunk_records <= 0:
            raise ValueError(f"chunk_records must be > 0, got {chunk_records}")
        n = self.meta.records
        rec = ACCESS_DTYPE.itemsize
        # Plain reads into a fresh buffer per chunk (not the memory map): pages of a mapped
        # file stay in the process's resident set, so a memmap stream of a 4 GiB trace would
        # show 4 GiB of RSS; this keeps streaming in constant memory.
        with _open_compressed(self.path, "rb") as f:
            f.read(HEADER_BYTES)
            left = n
            while left > 0:
                want = min(chunk_records, left)
                buf = bytearray(want * rec)
                try:
                    got = f.readinto(buf)
                    while got < len(buf):
                        more = f.readinto(memoryview(buf)[got:])
                        if not more:
                            break
                        got += more
                except (OSError, EOFError, lzma.LZMAError) as exc:
                    raise InputError(f"{self.path}: corrupt compressed stream ({exc})") from None
                if got < len(buf):
                    raise InputError(f"{self.path}: truncated: header says {n} records, "
                                     f"stream holds {n - left + got // rec}")
                left -= want
                yield np.frombuffer(buf, dtype=ACCESS_DTYPE)

    def read(self) -> np.ndarray:
        """All records in memory (a copy for compressed files, a memmap otherwise)."""
        if not self.compressed:
            return self.memmap()
        parts = list(self.chunks())
        return np.concatenate(parts) if parts else empty(0)


def open_trace(path: str | os.PathLike) -> Trace:
    return Trace(path)


def op_counts(records: np.ndarray) -> dict:
    counts = np.bincount(records["op"], minlength=len(Op))
    return {name: int(counts[i]) for i, name in enumerate(OP_NAMES)}


class _AtomicRecordFile:
    """What the record-file writers share: records go to ``self._tmp`` (open as ``self._f``)
    after a header-sized gap; ``_finish(header)`` writes the header there, then moves the file
    to ``self.path`` (compressing it when the name asks for .xz/.gz); ``abort()`` (or an
    exception inside ``with``) leaves nothing behind."""

    def _open(self, path, meta: TraceMeta | None, nops: int) -> None:
        self.path = Path(path)
        self.meta = meta if meta is not None else TraceMeta()
        self._tmp = temp_for(self.path)
        self._ops = np.zeros(nops, dtype=np.int64)
        self._records = 0
        try:
            self._f = open(self._tmp, "wb")
        except OSError as exc:
            discard(self._tmp)
            raise InputError(f"{self.path}: cannot write ({exc.strerror})") from None
        self._f.write(b"\0" * HEADER_BYTES)

    def _append(self, records: np.ndarray, dtype: np.dtype, name: str) -> bool:
        """Check ``records`` (dtype, op range), append them and count them by op; False when
        there were none."""
        if records.dtype != dtype:
            raise TypeError(f"records must have {name}, got {records.dtype}")
        if len(records) == 0:
            return False
        nops = len(self._ops)
        if int(records["op"].max()) >= nops:
            raise InputError(f"{self.path}: record with unknown op {int(records['op'].max())}")
        self._f.write(np.ascontiguousarray(records).tobytes())
        self._records += len(records)
        self._ops += np.bincount(records["op"], minlength=nops)[:nops]
        return True

    def _finish(self, header: bytes) -> Path:
        self._f.seek(0)
        self._f.write(header)
        self._f.close()
        try:
            if _compression(self.path) is None:
                commit(self._tmp, self.path)
            else:
                packed = temp_for(self.path, ".packing")
                try:
                    with open(self._tmp, "rb") as src, \
                            _open_compressed(packed, "wb", _compression(self.path)) as dst:
                        while block := src.read(1 << 24):
                            dst.write(block)
                    commit(packed, self.path)
                finally:
                    discard(packed)
        finally:
            discard(self._tmp)
        return self.path

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        discard(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class TraceWriter(_AtomicRecordFile):
    """Write a trace chunk by chunk; the file appears only when ``close()`` succeeds.

    Records go to a temporary file beside ``path`` (uncompressed) and the header is written last, so an
    interrupted import leaves no file at ``path``. Compressed outputs are compressed at close.

        with TraceWriter("gups.skt.xz", TraceMeta(source="gups")) as w:
            for chunk in chunks:
                w.write(chunk)
    """

    def __init__(self, path: str | os.PathLike, meta: TraceMeta | None = None):
        self._instructions = 0
        self.trailing_instructions = 0   # instructions after the last record (set by importers)
        self._open(path, meta, len(Op))

    def write(self, records: np.ndarray) -> None:
        if self._append(records, ACCESS_DTYPE, "ACCESS_DTYPE"):
            self._instructions += int(records["icount"].sum(dtype=np.uint64))

    def close(self) -> Path:
        m = self.meta
        m.records = self._records
        m.instructions = self._instructions + int(self.trailing_instructions)
        m.ops = {name: int(self._ops[i]) for i, name in enumerate(OP_NAMES)}
        if not m.created:
            m.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        return self._finish(_pack_header(m))


def write_trace(path: str | os.PathLike, records: np.ndarray,
                meta: TraceMeta | None = None) -> Path:
    """Write an in-memory array of records as one trace file."""
    with TraceWriter(path, meta) as w:
        for start in range(0, len(records), DEFAULT_CHUNK):
            w.write(records[start:start + DEFAULT_CHUNK])
    return Path(path)
