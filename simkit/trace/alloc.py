"""The simkit allocation-event trace: record dtype, file layout, reader, writer, importers.

A record is 40 bytes::

    addr    uint64  address the allocator returned (0 = unknown; for FREE: the address freed)
    size    uint64  bytes requested (MALLOC/CALLOC: n*size; REALLOC: the new size; FREE: 0)
    time    uint64  timestamp from the source in ns, or the event's index when it has none
    id      uint32  object id: dense, 0, 1, 2... in order of allocation; FREE names the object
    old_id  uint32  REALLOC: the object it replaces (NONE = realloc(NULL, n)); else NONE
    align   uint32  MEMALIGN: alignment in bytes; else 0
    tid     uint16  thread (0 when unknown)
    op      uint8   AllocOp: MALLOC 0, CALLOC 1, REALLOC 2, FREE 3, MEMALIGN 4
    flags   uint8   reserved, 0

Every object is allocated once (by MALLOC/CALLOC/MEMALIGN, or as the result of a REALLOC) and
freed at most once (by FREE, or by being the ``old_id`` of a REALLOC); ids are the array index
a simulator keeps per object, so ``meta.extra["objects"]`` (the number of ids) sizes its tables.

A file (``.skat``, ``.skat.xz``, ``.skat.gz``) is laid out like an access trace
(``simkit.trace.format``: 4096-byte header, JSON metadata) with magic ``SIMKALC1``; ``chunks()``
streams it in constant memory.

Importers turn address-keyed logs into id-keyed records (``IdMapper``): glibc ``mtrace`` text,
memray captures, PyTorch CUDA memory snapshots (``trace entries``), and the KV block alloc/free
traces of ``simkit.kvpaging.export``. A bad line (a free of an address that is not live, a
negative size, a truncated or unparsable line) raises ``InputError`` naming the file and line;
with ``lenient=True`` it is skipped and counted in ``meta.extra["skipped"]`` by reason.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import re
from enum import IntEnum
from pathlib import Path
from typing import Iterator

import numpy as np

from simkit.errors import InputError
from simkit.trace.format import (DEFAULT_CHUNK, HEADER_BYTES, TraceMeta, _compression,
                                 _open_compressed)
from simkit.trace.format import _AtomicRecordFile
from simkit.trace.format import _pack_header as format_header
from simkit.trace.format import _unpack_header as parse_header

ALLOC_DTYPE = np.dtype([("addr", "<u8"), ("size", "<u8"), ("time", "<u8"), ("id", "<u4"),
                        ("old_id", "<u4"), ("align", "<u4"), ("tid", "<u2"), ("op", "u1"),
                        ("flags", "u1")])
MAGIC = b"SIMKALC1"
FORMAT_VERSION = 1
NONE = 0xFFFFFFFF
SUFFIXES = (".skat", ".skat.xz", ".skat.gz")


class AllocOp(IntEnum):
    MALLOC = 0
    CALLOC = 1
    REALLOC = 2
    FREE = 3
    MEMALIGN = 4


ALLOC_OP_NAMES = tuple(o.name.lower() for o in AllocOp)


def empty(n: int) -> np.ndarray:
    out = np.zeros(n, dtype=ALLOC_DTYPE)
    out["old_id"] = NONE
    return out


def _pack_header(meta: TraceMeta) -> bytes:
    return format_header(meta, MAGIC, FORMAT_VERSION, ALLOC_DTYPE)


def _unpack_header(raw: bytes, path: Path) -> TraceMeta:
    return parse_header(raw, path, MAGIC, FORMAT_VERSION, ALLOC_DTYPE, "allocation trace",
                        ".skat")


class AllocTrace:
    """An opened allocation trace: ``meta``, ``len()``, ``objects``, ``chunks()``, ``read()``."""

    def __init__(self, path: str | os.PathLike):
        from simkit.atomic import check_input_kind

        self.path = check_input_kind(path)
        try:
            with _open_compressed(self.path, "rb") as f:
                raw = f.read(HEADER_BYTES)
        except (OSError, EOFError) as exc:
            raise InputError(f"{self.path}: unreadable ({exc})") from None
        self.meta = _unpack_header(raw, self.path)
        objects = self.meta.extra.get("objects", 0)
        if isinstance(objects, bool) or not isinstance(objects, int) or not 0 <= objects < NONE:
            raise InputError(f"{self.path}: header field 'meta.extra.objects' must be a count "
                             f"0..{NONE - 1}, got {str(objects)[:40]!r}")
        if objects > max(self.meta.records, 16):
            raise InputError(f"{self.path}: header field 'meta.extra.objects' ({objects}) "
                             f"exceeds the record count ({self.meta.records})")
        self.objects = objects
        self.compressed = _compression(self.path) is not None
        if not self.compressed:
            have = (self.path.stat().st_size - HEADER_BYTES) // ALLOC_DTYPE.itemsize
            if have < self.meta.records:
                raise InputError(f"{self.path}: truncated: header says {self.meta.records} "
                                 f"records, file holds {max(have, 0)}")

    def __len__(self) -> int:
        return self.meta.records

    def __repr__(self) -> str:
        return f"AllocTrace({str(self.path)!r}, records={self.meta.records})"

    def chunks(self, chunk_records: int = DEFAULT_CHUNK) -> Iterator[np.ndarray]:
        n, rec = self.meta.records, ALLOC_DTYPE.itemsize
        with _open_compressed(self.path, "rb") as f:
            f.read(HEADER_BYTES)
            left = n
            while left > 0:
                want = min(chunk_records, left)
                try:
                    buf = f.read(want * rec)
                except (OSError, EOFError) as exc:
                    raise InputError(f"{self.path}: corrupt compressed stream ({exc})") from None
                if len(buf) < want * rec:
                    raise InputError(f"{self.path}: truncated: header says {n} records, "
                                     f"stream holds {n - left + len(buf) // rec}")
                left -= want
                yield np.frombuffer(bytearray(buf), dtype=ALLOC_DTYPE)

    def read(self) -> np.ndarray:
        parts = list(self.chunks())
        return np.concatenate(parts) if parts else empty(0)


def open_alloc_trace(path: str | os.PathLike) -> AllocTrace:
    return AllocTrace(path)


class AllocTraceWriter(_AtomicRecordFile):
    """Write an allocation trace chunk by chunk; the file appears only at ``close()``.
    ``meta.extra["objects"]`` is set to 1 + the largest id written."""

    def __init__(self, path: str | os.PathLike, meta: TraceMeta | None = None):
        if not Path(path).name.lower().endswith(SUFFIXES):
            raise InputError(f"{path}: an allocation trace must end in {', '.join(SUFFIXES)}")
        self._objects = 0
        self._open(path, meta, len(AllocOp))

    def write(self, records: np.ndarray) -> None:
        if self._append(records, ALLOC_DTYPE, "ALLOC_DTYPE"):
            self._objects = max(self._objects, int(records["id"].max()) + 1)

    def close(self) -> Path:
        m = self.meta
        m.records = self._records
        m.ops = {name: int(self._ops[i]) for i, name in enumerate(ALLOC_OP_NAMES)}
        m.extra["objects"] = self._objects
        if not m.created:
            m.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        return self._finish(_pack_header(m))


def write_alloc_trace(path, records: np.ndarray, meta: TraceMeta | None = None) -> Path:
    with AllocTraceWriter(path, meta) as w:
        for start in range(0, len(records), DEFAULT_CHUNK):
            w.write(records[start:start + DEFAULT_CHUNK])
    return Path(path)


# ---- building id-keyed records from address-keyed logs ------------------------------------

class IdMapper:
    """Turns address-keyed events into records with dense object ids, buffering chunks into a
    writer. Errors name ``where`` (file) and the line; ``lenient`` counts them instead."""

    def __init__(self, writer: AllocTraceWriter, where: str, lenient: bool = False,
                 chunk: int = 1 << 16):
        self.w, self.where, self.lenient = writer, where, lenient
        self.live: dict[int, int] = {}
        self.next_id = 0
        self.skipped: dict[str, int] = {}
        self.rows: list[tuple] = []
        self.chunk = chunk
        self.events = 0
        self.free_null = 0
        self.failed = {"malloc": 0, "realloc": 0}

    HINTS = {"free of unknown address": "a block allocated before tracing began? ",
             "realloc of unknown address": "a block allocated before tracing began? ",
             "address already live": "a free not traced? "}

    def bad(self, line: int, reason: str, detail: str) -> None:
        if not self.lenient:
            raise InputError(f"{self.where}:{line}: {detail} ({self.HINTS.get(reason, '')}"
                             f"--lenient skips and counts such lines)")
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def _put(self, addr, size, time, oid, old, align, tid, op) -> None:
        # tuples in ALLOC_DTYPE's field order: far cheaper than setting a record's fields
        self.rows.append((addr, size, time, oid, old, align, tid, op, 0))
        self.events += 1
        if len(self.rows) == self.chunk:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.w.write(np.array(self.rows, dtype=ALLOC_DTYPE))
            self.rows = []

    def alloc(self, line, addr, size, time=None, tid=0, op=AllocOp.MALLOC, align=0) -> None:
        if size < 0:
            return self.bad(line, "negative size", f"negative size {size}")
        if size >= 1 << 64:
            return self.bad(line, "size too large", f"size {size} does not fit in 64 bits")
        if addr == 0:                          # a failed malloc: legal, counted, not replayed
            self.failed["malloc"] += 1
            return
        if addr in self.live:                  # the old object was freed unseen
            self.bad(line, "address already live",
                     f"allocation at {addr:#x}, which is live (no free seen)")
            if not self.lenient:
                return
        oid = self.next_id
        self.next_id += 1
        self.live[addr] = oid
        self._put(addr, size, self.events if time is None else time, oid, NONE, align, tid, op)

    def free(self, line, addr, time=None, tid=0) -> None:
        if addr == 0:
            self.free_null += 1
            return
        oid = self.live.pop(addr, None)
        if oid is None:
            return self.bad(line, "free of unknown address",
                            f"free of {addr:#x}, which is not a live allocation")
        self._put(addr, 0, self.events if time is None else time, oid, NONE, 0, tid,
                  AllocOp.FREE)

    def realloc(self, line, old_addr, new_addr, size, time=None, tid=0) -> None:
        if size < 0:
            return self.bad(line, "negative size", f"negative size {size}")
        if size >= 1 << 64:
            return self.bad(line, "size too large", f"size {size} does not fit in 64 bits")
        old = NONE
        if old_addr:
            got = self.live.pop(old_addr, None)
            if got is None:
                self.bad(line, "realloc of unknown address",
                         f"realloc of {old_addr:#x}, which is not a live allocation")
                if not self.lenient:
                    return
            else:
                old = got
        if new_addr in self.live:
            self.bad(line, "address already live",
                     f"realloc result {new_addr:#x} is live (no free seen)")
        oid = self.next_id
        self.next_id += 1
        self.live[new_addr] = oid
        self._put(new_addr, size, self.events if time is None else time, oid, old, 0, tid,
                  AllocOp.REALLOC)

    def extra(self) -> dict:
        self.flush()
        return {"skipped": dict(self.skipped), "free_null": self.free_null,
                "failed": dict(self.failed), "live_at_end": len(self.live)}

    def failed_realloc(self) -> None:
        """realloc returned NULL: the old block stays live (as after a failed malloc, nothing
        is replayed; both are counted in ``meta.extra["failed"]``)."""
        self.failed["realloc"] += 1


def _finish(path, meta: TraceMeta, fill) -> Path:
    """Run ``fill(mapper)`` into a writer at ``path``; nothing is left behind on error."""
    with AllocTraceWriter(path, meta) as w:
        mapper = fill(w)
        meta.extra.update(mapper.extra())
        if mapper.events == 0:
            skipped = sum(mapper.skipped.values())
            raise InputError(f"{mapper.where}: no allocation events"
                             + (f" ({skipped} bad lines skipped)" if skipped else
                                " (an empty log, or not the format expected)"))
    return Path(path)


# ---- glibc mtrace ---------------------------------------------------------------------------

_MTRACE = re.compile(r"^(?:@ \S+ )?([+\-<>!]) (0x[0-9a-fA-F]+|\(nil\))(?: (0x[0-9a-fA-F]+))?\s*$")


_OPS = frozenset("+-<>!")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


def _hex(tok: str) -> bool:
    """``0x`` and hex digits, or ``(nil)`` (what the regular expression accepts)."""
    return tok == "(nil)" or (tok[:2] == "0x" and len(tok) > 2
                              and _HEXDIGITS.issuperset(tok[2:]))


def _mtrace_int(text: str) -> int:
    return 0 if text == "(nil)" else int(text, 16)


def import_mtrace(src, dst, *, lenient: bool = False, meta: TraceMeta | None = None) -> Path:
    """Import glibc mtrace text (``MALLOC_TRACE``): ``+ addr size``, ``- addr``, and
    ``< old`` / ``> new size`` pairs for realloc (glibc 2.36 ``malloc/mtrace-impl.c``). mtrace
    does not tell calloc or memalign from malloc: all are MALLOC. No timestamps (time = index),
    no threads (tid 0). A failed malloc (``+ (nil) size``) and a failed realloc (``! old
    size``) are legal output: both are skipped and counted (``meta.extra["failed"]``)."""
    from simkit.trace._sources import check_input_file

    src = Path(src)
    check_input_file(src)
    meta = meta if meta is not None else TraceMeta(source=str(src))
    meta.producer = meta.producer or "mtrace"

    def fill(w):
        m = IdMapper(w, str(src), lenient)
        pending = None
        lineno = 0
        for line in _lines(src):
            lineno += 1
            if not line or line.startswith("= "):
                continue
            # fast path: split on spaces (the regular expression only for what it rejects)
            parts = line.split()
            if parts and parts[0] == "@":
                del parts[:2]
            n = len(parts)
            if 2 <= n <= 3 and parts[0] in _OPS and _hex(parts[1]) and (n == 2 or
                                                                        _hex(parts[2])):
                op, s = parts[0], parts[2] if n == 3 else None
                a = 0 if parts[1] == "(nil)" else int(parts[1], 16)
            else:
                mt = _MTRACE.match(line)
                if mt is None:
                    m.bad(lineno, "malformed line", f"malformed mtrace line {line[:60]!r}")
                    continue
                op, a, s = mt.group(1), _mtrace_int(mt.group(2)), mt.group(3)
            if op == "+":
                if s is None:
                    m.bad(lineno, "malformed line", "truncated line: '+' without a size")
                    continue
                m.alloc(lineno, a, int(s, 16))
            elif op == "-":
                m.free(lineno, a)
            elif op == "<":
                pending = (lineno, a)
            elif op == ">":
                if s is None:
                    m.bad(lineno, "malformed line", "truncated line: '>' without a size")
                    continue
                if pending is None:
                    m.bad(lineno, "malformed line", "'>' without the '<' line before it")
                    continue
                m.realloc(lineno, pending[1], a, int(s, 16))
                pending = None
            elif op == "!":
                m.failed_realloc()             # the old block stays live
        if pending is not None:
            m.bad(pending[0], "malformed line", "truncated trace: '<' without its '>' line")
        return m

    return _finish(dst, meta, fill)


def _lines(src: Path) -> Iterator[str]:
    from simkit.trace._sources import _OPENERS, sniff_compression
    kind = sniff_compression(src)
    opener = _OPENERS.get(kind, open) if kind else open
    with opener(src, "rt", errors="replace") as f:
        for line in f:
            yield line.rstrip("\n")


# ---- memray --------------------------------------------------------------------------------

def import_memray(src, dst, *, lenient: bool = False, meta: TraceMeta | None = None) -> Path:
    """Import a memray capture (``memray.Tracker(path, native_traces=False)``) through
    ``memray.FileReader(src).get_allocation_records()``: malloc/calloc/realloc/free and the
    aligned allocators; mmap/munmap and pymalloc records are counted in ``meta.extra``, not
    replayed. Record the program with ``PYTHONMALLOC=malloc`` so small objects reach malloc.
    Line numbers in errors are record indices (1-based)."""
    try:
        import memray
    except ImportError:
        raise InputError("memray is not installed (pip install memray)") from None
    from simkit.trace._sources import check_input_file

    src = Path(src)
    check_input_file(src)
    meta = meta if meta is not None else TraceMeta(source=str(src))
    meta.producer = meta.producer or "memray"
    names = {"MALLOC": AllocOp.MALLOC, "CALLOC": AllocOp.CALLOC, "VALLOC": AllocOp.MEMALIGN,
             "PVALLOC": AllocOp.MEMALIGN, "POSIX_MEMALIGN": AllocOp.MEMALIGN,
             "ALIGNED_ALLOC": AllocOp.MEMALIGN, "MEMALIGN": AllocOp.MEMALIGN}

    def fill(w):
        m = IdMapper(w, str(src), lenient)
        ignored: dict[str, int] = {}
        tids: dict[int, int] = {}
        try:
            reader = memray.FileReader(str(src))
            records = reader.get_allocation_records()
        except (OSError, ValueError, RuntimeError) as exc:
            raise InputError(f"{src}: not a readable memray capture ({exc})") from None
        pending = None                 # a FREE that may be the first half of a realloc
        for i, r in enumerate(records, 1):
            kind = memray.AllocatorType(int(r.allocator)).name
            tid = tids.setdefault(r.tid, len(tids))
            if pending is not None:
                pi, pr, ptid = pending
                pending = None
                if kind == "REALLOC" and ptid == tid:
                    # memray reports realloc(p, n) as FREE p then REALLOC at the result
                    m.realloc(i, pr.address, r.address, r.size, tid=tid)
                    continue
                m.free(pi, pr.address, tid=ptid)
            if kind in names:
                m.alloc(i, r.address, r.size, tid=tid, op=names[kind])
            elif kind == "FREE":
                pending = (i, r, tid)
            elif kind == "REALLOC":                 # realloc(NULL, n)
                m.realloc(i, 0, r.address, r.size, tid=tid)
            else:
                ignored[kind.lower()] = ignored.get(kind.lower(), 0) + 1
        if pending is not None:
            m.free(pending[0], pending[1].address, tid=pending[2])
        meta.extra["ignored"] = ignored
        meta.extra["threads"] = len(tids)
        return m

    return _finish(dst, meta, fill)


# ---- PyTorch CUDA memory snapshots -----------------------------------------------------------

class _PlainData(pickle.Unpickler):
    """An unpickler that builds only builtin containers and scalars: any reference to a class
    or function (how a pickle runs code: ``__reduce__`` -> ``os.system``) is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing {module}.{name}: a snapshot holds only plain "
                                     f"data; convert it to JSON on the machine that made it")


def _load_snapshot(raw: bytes, src: Path):
    """A PyTorch memory snapshot from JSON, or from a pickle read as plain data only (no code
    ever runs: see ``_PlainData``)."""
    import io

    try:
        if raw[:1] in (b"{", b"["):
            return json.loads(raw)
        return _PlainData(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as exc:
        raise InputError(f"{src}: not a plain-data PyTorch memory snapshot ({exc})") from None
    except Exception as exc:  # noqa: BLE001 (a corrupt pickle raises many kinds)
        raise InputError(f"{src}: not a PyTorch memory snapshot ({exc.__class__.__name__})") \
            from None


def import_torch_snapshot(src, dst, *, device: int = 0, lenient: bool = False,
                          meta: TraceMeta | None = None) -> Path:
    """Import the trace entries of a PyTorch CUDA memory snapshot
    (``torch.cuda.memory._dump_snapshot`` pickle, or the same dict as JSON): ``alloc`` ->
    MALLOC, ``free_completed`` -> FREE (an object lives from alloc to free_completed);
    ``segment_alloc``/``segment_free`` and the others are counted, not replayed. ``time_us``
    becomes ns. Line numbers in errors are entry indices (1-based) of ``device``."""
    from simkit.trace._sources import check_input_file

    src = Path(src)
    check_input_file(src)
    raw = src.read_bytes()
    snap = _load_snapshot(raw, src)
    traces = snap.get("device_traces") if isinstance(snap, dict) else None
    if traces is None:
        raise InputError(f"{src}: no 'device_traces' (record with "
                         f"torch.cuda.memory._record_memory_history first)")
    if device >= len(traces):
        raise InputError(f"{src}: no device {device} (snapshot has {len(traces)})")
    meta = meta if meta is not None else TraceMeta(source=str(src))
    meta.producer = meta.producer or "torch.cuda.memory._snapshot"

    def fill(w):
        m = IdMapper(w, str(src), lenient)
        ignored: dict[str, int] = {}
        for i, e in enumerate(traces[device], 1):
            action = e.get("action")
            t = e.get("time_us")
            t = None if t is None else int(t) * 1000
            if action == "alloc":
                m.alloc(i, int(e["addr"]), int(e["size"]), time=t, tid=int(e.get("stream", 0)) & 0xFFFF)
            elif action == "free_completed":
                m.free(i, int(e["addr"]), time=t)
            elif action is None:
                m.bad(i, "malformed line", "trace entry without an 'action'")
            else:
                ignored[action] = ignored.get(action, 0) + 1
        meta.extra["ignored"] = ignored
        meta.extra["device"] = device
        return m

    return _finish(dst, meta, fill)


# ---- kvpaging KV block events ----------------------------------------------------------------

def import_kv_alloc(src, dst, *, lenient: bool = False, meta: TraceMeta | None = None) -> Path:
    """Import a ``simkit.kvpaging.export.AllocExporter`` trace (encoding ``kv-alloc-v1``:
    STORE = allocate ``size`` units at ``addr``, LOAD = free; ``icount`` = iterations since the
    previous record) as allocations of ``size x unit_bytes`` bytes at time = iteration."""
    from simkit.trace.format import Op, open_trace

    t = open_trace(src)
    ex = t.meta.extra
    if ex.get("encoding") != "kv-alloc-v1":
        raise InputError(f"{src}: not a KV alloc/free trace (no encoding 'kv-alloc-v1' in its "
                         f"metadata; write one with `simkit kv run --export-alloc-trace`)")
    unit = int(ex["unit_bytes"])
    meta = meta if meta is not None else TraceMeta(source=t.meta.source)
    meta.producer = meta.producer or "kvpaging.export_alloc"
    meta.extra.update({k: ex[k] for k in ("unit", "unit_bytes", "manager", "model") if k in ex})

    def fill(w):
        m = IdMapper(w, str(src), lenient)
        line, it = 0, 0
        for chunk in t.chunks():
            for addr, icount, size, op in zip(chunk["addr"].tolist(), chunk["icount"].tolist(),
                                              chunk["size"].tolist(), chunk["op"].tolist()):
                line += 1
                it += icount
                if op == Op.STORE:
                    m.alloc(line, addr, size * unit, time=it)
                elif op == Op.LOAD:
                    m.free(line, addr, time=it)
                else:
                    m.bad(line, "malformed line", f"record with op {op} (only STORE/LOAD)")
        return m

    return _finish(dst, meta, fill)


IMPORTERS = {"mtrace": import_mtrace, "memray": import_memray, "torch": import_torch_snapshot,
             "kv": import_kv_alloc}


def sniff_alloc_format(path: Path) -> str:
    """mtrace, memray, torch or kv from the first bytes of ``path``."""
    from simkit.trace.format import MAGIC as ACCESS_MAGIC
    from simkit.trace._sources import sniff_compression

    path = Path(path)
    from simkit.atomic import check_input_kind
    check_input_kind(path)
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(ACCESS_MAGIC) or sniff_compression(path) and \
            path.name.lower().endswith((".skt.xz", ".skt.gz")):
        return "kv"
    if head.startswith(b"\x80") or head.startswith(b"{"):
        return "torch"
    if head.startswith(b"memray") or head.startswith(b"\x04\x22\x4d\x18"):   # lz4 frame
        return "memray"
    return "mtrace"


__all__ = ["ALLOC_DTYPE", "AllocOp", "AllocTrace", "AllocTraceWriter", "IMPORTERS", "NONE",
           "IdMapper", "empty", "import_kv_alloc", "import_memray", "import_mtrace",
           "import_torch_snapshot", "open_alloc_trace", "sniff_alloc_format", "write_alloc_trace"]


def synthetic_alloc(n_events: int, *, seed: int = 0, mean_lifetime: int = 1000,
                    max_size: int = 4096, large_fraction: float = 0.001) -> np.ndarray:
    """A synthetic allocation trace of ``n_events`` records (half mallocs, half frees):
    log-uniform sizes 1..``max_size`` (a ``large_fraction`` of 64 KiB..1 MiB), geometric
    lifetimes of mean ``mean_lifetime`` allocations; objects still live at the end are freed."""
    rng = np.random.default_rng(seed)
    m = n_events // 2
    size = np.exp(rng.uniform(0, np.log(max_size), m)).astype(np.int64)
    big = rng.random(m) < large_fraction
    size[big] = rng.integers(64 << 10, 1 << 20, int(big.sum()))
    t_alloc = np.arange(m, dtype=np.int64) * 2
    t_free = t_alloc + 1 + 2 * rng.geometric(1.0 / mean_lifetime, m)
    t = np.concatenate([t_alloc, t_free])
    order = np.argsort(t, kind="stable")
    out = empty(2 * m)
    ids = np.concatenate([np.arange(m), np.arange(m)])[order]
    is_free = order >= m
    out["id"] = ids
    out["op"] = np.where(is_free, AllocOp.FREE, AllocOp.MALLOC)
    out["size"] = np.where(is_free, 0, size[ids])
    out["time"] = np.arange(2 * m)
    return out
