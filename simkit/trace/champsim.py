"""Import ChampSim binary traces (``input_instr``, ChampSim ``inc/trace_instruction.h``).

Each instruction is a packed 64-byte record::

    offset  0  ip                   u64
            8  is_branch            u8
            9  branch_taken         u8
           10  destination_registers u8[2]
           12  source_registers     u8[4]
           16  destination_memory   u64[2]
           32  source_memory        u64[4]

Files are plain or gzip/xz/bzip2 compressed (sniffed from the magic bytes) and are streamed
chunk by chunk through ``np.frombuffer`` on :data:`CHAMPSIM_DTYPE`.

Each instruction becomes, in order: an IFETCH of ``ip`` (unless ``include_ifetch=False``), a LOAD
for every nonzero source-memory slot, then a STORE for every nonzero destination-memory slot.
The trace records neither instruction lengths nor access sizes: IFETCH records get size 4 (about
the mean x86-64 instruction length) and data records size 8; both are stated in ``meta.notes``.
icount follows the simkit rule: an instruction's first record carries 1 plus any earlier
instructions that produced no record; the others carry 0. Branch and register fields are dropped.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from simkit.errors import InputError
from simkit.trace._sources import check_input_file, open_input
from simkit.trace.format import Op, TraceMeta, TraceWriter, empty

CHAMPSIM_DTYPE = np.dtype([
    ("ip", "<u8"), ("is_branch", "u1"), ("branch_taken", "u1"),
    ("destination_registers", "u1", (2,)), ("source_registers", "u1", (4,)),
    ("destination_memory", "<u8", (2,)), ("source_memory", "<u8", (4,)),
])
assert CHAMPSIM_DTYPE.itemsize == 64
RECORD_BYTES = 64
CHUNK_INSTRUCTIONS = 1 << 16
IFETCH_SIZE = 4
DATA_SIZE = 8
NOTES = (f"ChampSim traces carry no sizes: IFETCH records have size {IFETCH_SIZE} "
         f"(about the mean x86-64 instruction length), loads and stores size {DATA_SIZE}.")
# per instruction, slots in record order: ip, 4 sources (loads), 2 destinations (stores)
_SLOT_OP = np.array([Op.IFETCH] + [Op.LOAD] * 4 + [Op.STORE] * 2, dtype=np.uint8)
_SLOT_SIZE = np.array([IFETCH_SIZE] + [DATA_SIZE] * 6, dtype=np.uint16)


class ChampSimReader:
    """Stream a ChampSim trace as simkit record chunks; after ``chunks()``: ``instructions``
    (read), ``skipped_instructions``, ``records``, ``trailing_instructions``, ``stopped_early``."""

    def __init__(self, src, *, include_ifetch: bool = True, skip_instructions: int = 0,
                 max_records: int | None = None, chunk_instructions: int = CHUNK_INSTRUCTIONS):
        if skip_instructions < 0:
            raise ValueError(f"skip_instructions: must be >= 0, got {skip_instructions}")
        if max_records is not None and max_records < 0:
            raise ValueError(f"max_records: must be >= 0, got {max_records}")
        if chunk_instructions <= 0:
            raise ValueError(f"chunk_instructions: must be > 0, got {chunk_instructions}")
        self.src = src
        self.include_ifetch = include_ifetch
        self.skip_instructions = skip_instructions
        self.max_records = max_records
        self.chunk_instructions = chunk_instructions
        self.instructions = 0
        self.skipped_instructions = 0
        self.records = 0
        self.trailing_instructions = 0
        self.stopped_early = False
        self._pending = 0

    def instr_chunks(self) -> Iterator[np.ndarray]:
        """Raw ``input_instr`` arrays; a trailing partial record raises InputError."""
        want = self.chunk_instructions * RECORD_BYTES
        with open_input(self.src) as reader:
            while True:
                start = reader.offset
                data = reader.read(want)
                whole = len(data) - len(data) % RECORD_BYTES
                if whole:
                    yield np.frombuffer(data, dtype=CHAMPSIM_DTYPE, count=whole // RECORD_BYTES)
                if len(data) < want:
                    if whole != len(data):
                        raise InputError(
                            f"{reader.name}: truncated ChampSim record at byte offset "
                            f"{start + whole} ({len(data) - whole} of {RECORD_BYTES} bytes)")
                    return

    def chunks(self) -> Iterator[np.ndarray]:
        if self.max_records == 0:
            self.stopped_early = True
            return
        for instr in self.instr_chunks():
            self.instructions += len(instr)
            if self.skipped_instructions < self.skip_instructions:
                drop = min(len(instr), self.skip_instructions - self.skipped_instructions)
                self.skipped_instructions += drop
                instr = instr[drop:]
                if not len(instr):
                    continue
            out = self._records(instr)
            if len(out):
                yield out
            if self.stopped_early:
                return
        self.trailing_instructions = self._pending

    def _records(self, instr: np.ndarray) -> np.ndarray:
        n = len(instr)
        addr = np.empty((n, 7), dtype=np.uint64)
        addr[:, 0] = instr["ip"]
        addr[:, 1:5] = instr["source_memory"]
        addr[:, 5:7] = instr["destination_memory"]
        mask = addr != 0
        mask[:, 0] = self.include_ifetch
        per_instr = mask.sum(axis=1)
        has = np.flatnonzero(per_instr)
        out = empty(int(per_instr.sum()))
        out["addr"] = addr[mask]
        out["op"] = np.broadcast_to(_SLOT_OP, (n, 7))[mask]
        out["size"] = np.broadcast_to(_SLOT_SIZE, (n, 7))[mask]
        if len(has):
            first = np.cumsum(per_instr)[has] - per_instr[has]     # first record of each
            out["icount"][first] = np.diff(has, prepend=-1 - self._pending)
            self._pending = n - 1 - int(has[-1])
        else:
            self._pending += n
        if self.max_records is not None and self.records + len(out) >= self.max_records:
            out = out[: self.max_records - self.records]
            self.stopped_early = True
            self._pending = 0
        self.records += len(out)
        return out


def import_champsim(src, dst: str | os.PathLike, *, include_ifetch: bool = True,
                    skip_instructions: int = 0, max_records: int | None = None,
                    meta: TraceMeta | None = None,
                    chunk_instructions: int = CHUNK_INSTRUCTIONS) -> Path:
    """Convert a ChampSim trace (a path, plain or compressed, or an open binary stream) to ``dst``.

    No file is left at ``dst`` when the input is truncated or corrupt."""
    meta = meta if meta is not None else TraceMeta()
    meta.producer = meta.producer or "champsim"
    meta.notes = f"{meta.notes} {NOTES}".strip()
    if isinstance(src, (str, os.PathLike)):
        check_input_file(Path(src))
        meta.source = meta.source or str(src)
    reader = ChampSimReader(src, include_ifetch=include_ifetch,
                            skip_instructions=skip_instructions, max_records=max_records,
                            chunk_instructions=chunk_instructions)
    with TraceWriter(dst, meta) as w:
        for chunk in reader.chunks():
            w.write(chunk)
        w.trailing_instructions = reader.trailing_instructions
        meta.extra.update({"include_ifetch": include_ifetch,
                           "skipped_instructions": reader.skipped_instructions,
                           "max_records": max_records,
                           "stopped_at_max_records": reader.stopped_early,
                           "ifetch_size": IFETCH_SIZE, "data_size": DATA_SIZE})
    return Path(dst)


# ---------------------------------------------------------------------------------------------
# Export: simkit records -> ChampSim input_instr, so the same trace can be run by ChampSim (an
# external oracle for the cache hierarchy and the core model; tests/test_champsim_oracle.py).

DEP_REGISTER = 1          # every load writes it; a record flagged dependent (flags bit 0) reads it
FILLER_IP = 0x400000      # non-memory instructions of data-only traces: 16 ips, always L1I hits


def _instructions_with_ifetch(recs: np.ndarray) -> tuple[np.ndarray, int]:
    """Instructions of records that hold IFETCHes, every instruction complete (a chunk starts at
    an IFETCH and ends before one); returns (instructions, memory operands that did not fit)."""
    op = recs["op"]
    is_if = op == Op.IFETCH
    inst = np.cumsum(is_if) - 1
    out = np.zeros(int(is_if.sum()), dtype=CHAMPSIM_DTYPE)
    out["ip"] = recs["addr"][is_if]
    dropped = 0
    for mask, field, slots in ((np.isin(op, (Op.LOAD, Op.MODIFY)), "source_memory", 4),
                               (np.isin(op, (Op.STORE, Op.MODIFY)), "destination_memory", 2)):
        idx = np.flatnonzero(mask)
        if not len(idx):
            continue
        who = inst[idx]
        first = np.searchsorted(who, who, side="left")     # who is sorted: rank in its group
        rank = np.arange(len(idx)) - first
        fits = rank < slots
        dropped += int((~fits).sum())
        out[field][who[fits], rank[fits]] = recs["addr"][idx[fits]]
    _registers(out, inst, recs, np.isin(op, (Op.LOAD, Op.MODIFY)))
    return out, dropped


def _registers(out, inst, recs, load) -> None:
    """Every load (``load``: a mask of ``recs``) writes ``DEP_REGISTER`` in its instruction
    (``inst``: each record's), and a load flagged dependent reads it."""
    out["destination_registers"][inst[load], 0] = DEP_REGISTER
    dep = load & ((recs["flags"] & 1) != 0)
    out["source_registers"][inst[dep], 0] = DEP_REGISTER


def _instructions_data_only(recs: np.ndarray) -> np.ndarray:
    """Each record: icount - 1 non-memory instructions, then the one that accesses memory."""
    k = np.maximum(recs["icount"].astype(np.int64), 1)
    n = int(k.sum())
    out = np.zeros(n, dtype=CHAMPSIM_DTYPE)
    mem = np.cumsum(k) - 1                                   # each record's instruction
    out["ip"] = FILLER_IP + 4 * (np.arange(n) % 16)
    op = recs["op"]
    load = np.isin(op, (Op.LOAD, Op.MODIFY))
    store = np.isin(op, (Op.STORE, Op.MODIFY))
    out["source_memory"][mem[load], 0] = recs["addr"][load]
    out["destination_memory"][mem[store], 0] = recs["addr"][store]
    _registers(out, mem, recs, load)
    return out


def export_champsim(src, dst: str | os.PathLike, *, max_records: int | None = None) -> dict:
    """Write the simkit trace ``src`` (path, ``Trace`` or records) as a ChampSim trace at
    ``dst`` (xz-compressed when it ends in ``.xz``, as ChampSim reads it).

    A trace with IFETCH records keeps its instructions: each IFETCH starts one, its loads fill
    ``source_memory`` (at most 4) and its stores ``destination_memory`` (at most 2; a MODIFY is
    both); operands beyond those are dropped and counted. A data-only trace gets ``icount - 1``
    non-memory instructions before each access. Dependence: every load writes register
    ``DEP_REGISTER`` and a record flagged dependent (bit 0) reads it, so ChampSim's core waits
    for the previous load as ``simkit.core``'s ``dependence="flag"`` does. Branches and other
    registers are not recorded. Returns counts: instructions, records, dropped operands."""
    import lzma

    from simkit.atomic import write_via
    from simkit.trace.stream import open_source

    _, total, chunks = open_source(src, 1 << 18, max_records)
    counts = {"instructions": 0, "records": 0, "dropped_operands": 0}

    def write(tmp):
        opener = lzma.open if str(dst).endswith(".xz") else open
        kw = {"preset": 1} if opener is lzma.open else {}
        carry = None
        with opener(tmp, "wb", **kw) as f:
            has_ifetch = None
            for chunk in chunks:
                chunk = np.asarray(chunk)[:total - counts["records"]]
                if not len(chunk):
                    break
                counts["records"] += len(chunk)
                if has_ifetch is None:
                    has_ifetch = bool((chunk["op"] == Op.IFETCH).any())
                if not has_ifetch:
                    ins = _instructions_data_only(chunk)
                else:
                    if carry is not None:
                        chunk = np.concatenate([carry, chunk])
                    starts = np.flatnonzero(chunk["op"] == Op.IFETCH)
                    if not len(starts):
                        carry = chunk
                        continue
                    chunk = chunk[starts[0]:]                  # data before any IFETCH: none
                    cut = starts[-1] - starts[0]
                    carry, chunk = chunk[cut:].copy(), chunk[:cut]
                    ins, dropped = _instructions_with_ifetch(chunk)
                    counts["dropped_operands"] += dropped
                counts["instructions"] += len(ins)
                f.write(ins.tobytes())
            if carry is not None and len(carry):
                ins, dropped = _instructions_with_ifetch(carry)
                counts["dropped_operands"] += dropped
                counts["instructions"] += len(ins)
                f.write(ins.tobytes())

    write_via(Path(dst), write)
    return counts
