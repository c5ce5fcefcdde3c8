"""Driving a simulator over a trace: sources, chunks, warm-up and progress, in one place.

Every simulator front feeds chunks of ACCESS_DTYPE records to its kernel. ``drive`` streams any
source (path, ``Trace``, records, or an integer address array read as loads), splits the
warm-up at the exact record, and returns the stats snapshot taken when the warm-up ended; the
front returns ``stats - snapshot``.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

import numpy as np

from simkit.errors import InputError
from simkit.trace.format import ACCESS_DTYPE, DEFAULT_CHUNK, Op, Trace, make_records

PROGRESS_MIN_RECORDS = 20_000_000


def as_records(data) -> np.ndarray:
    """ACCESS_DTYPE records as given, or a plain integer array of byte addresses as loads."""
    arr = np.asarray(data)
    if arr.dtype == ACCESS_DTYPE:
        return arr
    if arr.dtype.kind in "ui" and arr.ndim == 1:
        if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
            raise InputError("addresses: negative address in input")
        return make_records(arr.astype(np.uint64), op=Op.LOAD, size=1, icount=1)
    raise InputError(f"trace: expected ACCESS_DTYPE records or an integer address array, "
                     f"got dtype {arr.dtype}")


def kernel_view(chunk: np.ndarray) -> np.ndarray:
    """The chunk as an (n, 2) uint64 word view of a writable, C-contiguous plain ndarray: one
    numba specialization for every source (read-only memmaps would add another)."""
    arr = np.ascontiguousarray(chunk)
    if type(arr) is not np.ndarray:
        arr = arr.view(np.ndarray)
    if not arr.flags.writeable:
        arr = arr.copy()
    return arr.view(np.uint64).reshape(-1, 2)


if sys.byteorder != "little":   # kernels read records as two little-endian uint64 words
    raise ImportError("simkit needs a little-endian host")


def open_source(trace, chunk_records: int = DEFAULT_CHUNK, max_records: int | None = None):
    """(name, number of records to simulate, iterator of chunks) for any trace source."""
    if isinstance(trace, (str, os.PathLike)):
        trace = Trace(trace)
    if isinstance(trace, Trace):
        name, total, chunks = trace.path.name, len(trace), trace.chunks(chunk_records)
    else:
        recs = as_records(trace)
        name, total = "", len(recs)
        chunks = (recs[i:i + chunk_records] for i in range(0, total, chunk_records))
    if max_records is not None:
        if isinstance(max_records, bool) or int(max_records) != max_records or max_records < 0:
            raise ValueError(f"max_records: must be a count >= 0, got {max_records!r}")
        total = min(total, int(max_records))
    return name, total, chunks


def check_ops(chunk: np.ndarray, offset: int, name: str) -> None:
    """Refuse records whose op byte is not an ``Op`` (a kernel would count them as nothing)."""
    ops = chunk["op"]
    if not len(ops) or int(ops.max()) <= max(Op):      # the fast path: one pass, no temporaries
        return
    bad = np.flatnonzero(ops > max(Op))
    if len(bad):
        i = int(bad[0])
        raise InputError(f"{name or 'trace'}: record {offset + i}: unknown op "
                         f"{int(chunk['op'][i])} (0..{int(max(Op))})")


def drive(chunks, total: int, feed: Callable, snapshot: Callable, *, warmup_records: int = 0,
          progress: bool | None = None, desc: str = "simulate", name: str = ""):
    """Feed at most ``total`` records of ``chunks`` to ``feed``; return ``snapshot()`` as taken
    after the first ``warmup_records`` records (before any, when there is no warm-up). Each
    chunk is checked (op bytes) before the kernel sees it; ``name`` names the trace in errors."""
    if warmup_records < 0:
        raise ValueError(f"warmup_records: must be >= 0, got {warmup_records}")
    if warmup_records and warmup_records >= total:
        raise ValueError(f"warmup_records: {warmup_records} is not below the {total} records "
                         f"simulated; nothing would be measured")
    if progress is None:
        progress = total >= PROGRESS_MIN_RECORDS and sys.stderr.isatty()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="rec", unit_scale=True, desc=desc, leave=False)
    start = snapshot()
    done = 0
    try:
        for chunk in chunks:
            if done >= total:
                break
            chunk = chunk[:total - done]
            check_ops(chunk, done, name)
            if done < warmup_records <= done + len(chunk):
                cut = warmup_records - done
                feed(chunk[:cut])
                start = snapshot()
                chunk = chunk[cut:]
                done += cut
            feed(chunk)
            done += len(chunk)
            if done <= warmup_records:
                start = snapshot()
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return start
