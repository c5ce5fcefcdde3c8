"""The allocator front: ``AllocatorModel`` replays allocation traces through a model's kernel,
chunk by chunk, and returns ``AllocStats``.

    m = AllocatorModel("ptmalloc")
    stats = m.run("traces/malloc/cc1.skat.xz")        # or an array of ALLOC_DTYPE records
    stats.peak_footprint_bytes, stats.fragmentation, stats.to_frame()

Footprint is the RSS model: resident pages (the replayer in ``simkit bench malloc`` touches
every page of each block; the allocator's own header writes count too), heap plus mappings.
Fragmentation = peak footprint / peak live bytes - 1 (Johnstone & Wilson, ISMM 1998; REFERENCE
4.7). The operation cost is operation counts times measured per-operation costs
(``simkit.allocators.cost``; validated out of sample by ``simkit.calibrate.malloc_cost``).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import numpy as np

from simkit.allocators import _kernels as K
from simkit.allocators.cost import COST_NS, check_costs, operations, predict_ns
from simkit.allocators.config import get_config
from simkit.allocators.models import ENGINES
from simkit.errors import InputError
from simkit.trace.alloc import ALLOC_DTYPE, AllocOp, AllocTrace, NONE


@dataclass
class AllocStats:
    """Raw results of one replay; derived metrics are properties."""

    allocator: str
    config: object
    trace: str
    events: int
    counters: dict
    peak_footprint_bytes: int
    peak_live_bytes: int
    live_at_peak_footprint_bytes: int
    peak_heap_bytes: int
    final_footprint_bytes: int
    final_live_bytes: int
    metadata_bytes: int
    timeline: object = None          # DataFrame: event, live_bytes, heap_bytes, mmapped, rss
    cost_ns: dict = field(default_factory=lambda: dict(COST_NS))

    @property
    def fragmentation(self) -> float:
        """Peak footprint over peak live bytes, minus 1."""
        return self.peak_footprint_bytes / self.peak_live_bytes - 1 if self.peak_live_bytes \
            else float("nan")

    @property
    def syscalls(self) -> int:
        c = self.counters
        return sum(c.get(k, 0) for k in ("sbrk_calls", "trims", "mmap_calls", "munmap_calls",
                                         "mremap_calls", "mprotect_calls", "madvise_calls",
                                         "remap_calls"))

    @property
    def operations(self) -> dict:
        """Operation counts for the cost model (``simkit.allocators.cost.operations``)."""
        return operations(self)

    @property
    def cost_estimate_ns(self) -> float:
        """Operation counts x per-operation costs (``simkit.allocators.cost``), ns."""
        return predict_ns(self.operations, self.cost_ns)

    @property
    def ns_per_op(self) -> float:
        return self.cost_estimate_ns / self.events if self.events else float("nan")

    def row(self) -> dict:
        d = {"allocator": self.allocator, "trace": self.trace, "events": self.events,
             "peak_footprint_bytes": self.peak_footprint_bytes,
             "peak_live_bytes": self.peak_live_bytes,
             "live_at_peak_footprint_bytes": self.live_at_peak_footprint_bytes,
             "peak_heap_bytes": self.peak_heap_bytes,
             "final_footprint_bytes": self.final_footprint_bytes,
             "final_live_bytes": self.final_live_bytes, "metadata_bytes": self.metadata_bytes,
             "fragmentation": self.fragmentation, "cost_ns_per_op": self.ns_per_op}
        d.update(self.counters)
        for f in dataclasses.fields(self.config):
            v = getattr(self.config, f.name)
            d[f"param_{f.name}"] = v if not isinstance(v, tuple) else len(v)
        return d

    def to_frame(self):
        import pandas as pd
        return pd.DataFrame([self.row()])

    def __sub__(self, other: "AllocStats") -> "AllocStats":
        """The events after ``other``, a replay of a prefix of the same trace by the same
        allocator (``run(trace, max_events=N)``): the region of interest = end - warm-up.
        Events and counters subtract; peaks, final levels and metadata are states, not sums,
        and stay this replay's; the timeline keeps the samples taken after ``other``'s events."""
        if (other.allocator, other.trace) != (self.allocator, self.trace):
            raise ValueError(f"cannot subtract stats of {other.allocator} on {other.trace} "
                             f"from {self.allocator} on {self.trace}")
        if other.events > self.events:
            raise ValueError(f"cannot subtract a longer replay ({other.events} events) from a "
                             f"shorter one ({self.events})")
        counters = {k: v - other.counters.get(k, 0) for k, v in self.counters.items()}
        tl = self.timeline
        if tl is not None:
            tl = tl[tl["event"] >= other.events].reset_index(drop=True)
        return dataclasses.replace(self, events=self.events - other.events, counters=counters,
                                   timeline=tl, cost_ns=dict(self.cost_ns))


def load_cost(cost) -> dict:
    """Cost weights: None (``simkit.allocators.cost.COST_NS``), a dict, or a calibration JSON
    file (its ``cost_ns``) written by ``python -m simkit.calibrate.malloc_cost --out F.json``."""
    if cost is None:
        return dict(COST_NS)
    if isinstance(cost, dict):
        d = cost
    else:
        import json
        try:
            with open(cost) as f:
                d = json.load(f).get("cost_ns", {})
        except (OSError, ValueError) as exc:
            raise InputError(f"{cost}: not a cost calibration ({exc.__class__.__name__})") \
                from None
    return check_costs(d)


_NO_ADDR = np.zeros(0, np.int64)
# A request this large cannot be served (x86-64 user space is 2^47 bytes): glibc returns NULL.
# The replay counts it as a failed allocation; a later free of that object is free(NULL).
MAX_REQUEST = 1 << 47
_ALLOCS = np.array([AllocOp.MALLOC, AllocOp.CALLOC, AllocOp.REALLOC, AllocOp.MEMALIGN])


def _columns(chunk: np.ndarray):
    return (np.ascontiguousarray(chunk["op"]), np.ascontiguousarray(chunk["id"]).astype(np.int64),
            np.ascontiguousarray(chunk["old_id"]).astype(np.int64),
            np.ascontiguousarray(chunk["size"]).astype(np.int64),
            np.ascontiguousarray(chunk["align"]).astype(np.int64))


class AllocatorModel:
    """One allocator design (a preset name or a config) replaying traces.

    ``run()`` starts from an empty heap each time. ``malloc``/``free``/``realloc`` step the
    model one event at a time (the security probes use them)."""

    def __init__(self, config="ptmalloc", *, strict: bool = True, cost=None):
        self.cfg = get_config(config)
        self.cost_ns = load_cost(cost)
        self.engine_cls = ENGINES[self.cfg.design]
        self.strict = strict
        self.reset()

    @property
    def name(self) -> str:
        return self.cfg.name

    def reset(self, objects: int = 16, sample_every: int = 0) -> None:
        self.eng = self.engine_cls(self.cfg, objects, strict=self.strict,
                                   sample_every=sample_every)
        self._next_id = 0
        self._id_limit = objects        # ids a trace may name (the header's object count)
        self._failed: set[int] = set()  # objects whose allocation failed (size >= MAX_REQUEST)
        self._failed_allocs = 0

    def _checked(self, chunk: np.ndarray, offset: int, tname: str):
        """Validate a chunk before a kernel sees it (vectorised): known ops, ids within the
        object table, and requests that can exist; returns (records, their indices in chunk)
        with failed allocations (and frees of their objects) taken out."""
        if not len(chunk):
            return chunk, None
        op, ids, old, size = chunk["op"], chunk["id"], chunk["old_id"], chunk["size"]
        # fast path: maxima only (one pass per field); the slow path finds the first bad record
        fine = (int(op.max()) <= AllocOp.MEMALIGN and int(ids.max()) < self._id_limit
                and int(size.max()) < MAX_REQUEST and not self._failed)
        if fine:
            olds = old[op == AllocOp.REALLOC]
            olds = olds[olds != NONE]
            if not len(olds) or int(olds.max()) < self._id_limit:
                return chunk, None
        bad = np.flatnonzero(op > AllocOp.MEMALIGN)
        if len(bad):
            i = int(bad[0])
            raise InputError(f"{tname}: record {offset + i}: unknown op {int(op[i])} "
                             f"(0..{int(AllocOp.MEMALIGN)})")
        bad = np.flatnonzero((ids >= self._id_limit)
                             | ((op == AllocOp.REALLOC) & (old != NONE) & (old >= self._id_limit)))
        if len(bad):
            i = int(bad[0])
            which = int(ids[i]) if ids[i] >= self._id_limit else int(old[i])
            raise InputError(f"{tname}: record {offset + i}: object id {which} is beyond the "
                             f"trace's object count ({self._id_limit}; header meta.extra.objects)")
        huge = (size >= MAX_REQUEST) & (op != AllocOp.FREE)
        if not huge.any() and not self._failed:
            return chunk, None
        keep = ~huge
        self._failed.update(ids[huge].tolist())
        self._failed_allocs += int(huge.sum())
        failed = np.fromiter(self._failed, np.int64, len(self._failed))
        keep &= ~((op == AllocOp.FREE) & np.isin(ids, failed))
        chunk = chunk.copy()
        from_failed = (op == AllocOp.REALLOC) & np.isin(old, failed)
        chunk["old_id"][from_failed] = NONE          # realloc(NULL, n) is malloc(n)
        index = np.flatnonzero(keep)
        return chunk[index], index

    # ---- replay -----------------------------------------------------------------------------
    def run(self, trace, *, timeline_points: int = 400, max_events: int | None = None,
            chunk_records: int = 1 << 20, name: str | None = None,
            sample_every: int | None = None) -> AllocStats:
        """Replay ``trace``; the timeline samples every ``total // timeline_points`` events
        (or every ``sample_every``: events 0, N, 2N, ... as ``simkit.bench.malloc.replay_rss``
        samples the real allocator), plus the peak's own row."""
        if isinstance(trace, (str, os.PathLike)):
            from simkit.trace.alloc_catalog import find_alloc_trace
            t = AllocTrace(find_alloc_trace(trace))
            total, objects = len(t), t.objects
            chunks = t.chunks(chunk_records)
            tname = name or t.path.name.split(".")[0]
            where = str(t.path)
        else:
            recs = np.asarray(trace)
            if recs.dtype != ALLOC_DTYPE:
                raise TypeError(f"records must have ALLOC_DTYPE, got {recs.dtype}")
            total = len(recs)
            objects = int(recs["id"].max()) + 1 if total else 0
            chunks = (recs[s:s + chunk_records] for s in range(0, total, chunk_records))
            tname = name or "records"
            where = tname
        if max_events is not None:
            total = min(total, max_events)
        sample = max(1, total // timeline_points) if timeline_points else 0
        if sample_every is not None:
            if sample_every < 1:
                raise ValueError(f"sample_every: must be >= 1, got {sample_every}")
            sample, timeline_points = sample_every, total // sample_every + 1
        self.reset(max(objects, 16), sample)
        T = np.zeros((timeline_points + 2 if timeline_points else 1, K.NT), np.int64)
        nt = 0
        done = 0
        for chunk in chunks:
            if max_events is not None and done >= max_events:
                break
            if max_events is not None:
                chunk = chunk[:max_events - done]
            nt = self._feed(chunk, T, nt, done, where)
            done += len(chunk)
        return self._stats(tname, done, T[:nt])

    def _feed(self, chunk, T, nt, offset, tname, out_addr=None) -> int:
        chunk, index = self._checked(chunk, offset, tname)
        if index is not None and out_addr is not None:
            sub = np.zeros(len(chunk), np.int64)
            nt = self._feed_checked(chunk, T, nt, offset, tname, sub, index)
            out_addr[index] = sub
            return nt
        return self._feed_checked(chunk, T, nt, offset, tname, out_addr, index)

    def _feed_checked(self, chunk, T, nt, offset, tname, out_addr, index) -> int:
        cols = _columns(chunk)
        start = 0
        out = _NO_ADDR if out_addr is None else out_addr
        while True:
            status, idx, nt = self.eng.call(*cols, start, T, nt, out)
            if status == K.OK:
                return nt
            if status == K.GROW:
                self.eng.grow()
                start = idx
                continue
            r = chunk[idx]
            which = int(r["id"]) if int(r["op"]) == AllocOp.FREE else int(r["old_id"])
            at = offset + (int(index[idx]) if index is not None else idx)
            raise InputError(f"{tname}: record {at}: "
                             f"{AllocOp(int(r['op'])).name.lower()} of object {which}, "
                             f"which is not live")

    def _stats(self, tname, events, T) -> AllocStats:
        import pandas as pd

        e = self.eng
        S = e.S
        counters = {n: int(e.C[i]) for i, n in enumerate(e.counter_names)}
        counters["failed_allocations"] = self._failed_allocs
        tl = pd.DataFrame(T, columns=["event", "live_bytes", "heap_bytes", "mmapped_bytes",
                                      "rss_bytes"])
        if len(tl) and int(S[K.S_PEAK_FOOT]) > int(tl.rss_bytes.max()):
            # every Nth event misses the peak between two samples: add the peak's own row
            heap = (int(S[K.S_PEAK_END]) - K.NB) * 16 if self.cfg.design == "ptmalloc" else 0
            peak = pd.DataFrame([[int(S[K.S_PEAK_EVENT]), int(S[K.S_PEAK_RSS_LIVE]), heap,
                                  int(S[K.S_PEAK_MMAPPED]), int(S[K.S_PEAK_FOOT])]],
                                columns=tl.columns)
            tl = pd.concat([tl, peak]).sort_values("event", kind="stable") \
                .reset_index(drop=True)
        return AllocStats(
            allocator=self.cfg.name, config=self.cfg, trace=tname, events=events,
            counters=counters, peak_footprint_bytes=int(S[K.S_PEAK_FOOT]),
            peak_live_bytes=int(S[K.S_PEAK_LIVE]),
            live_at_peak_footprint_bytes=int(S[K.S_PEAK_RSS_LIVE]),
            peak_heap_bytes=max(int(S[K.S_PEAK_HEAP]), e.heap_bytes()),
            final_footprint_bytes=int(S[K.S_RSS_PAGES]) * K.PAGE,
            final_live_bytes=int(S[K.S_LIVE]), metadata_bytes=e.metadata_bytes(), timeline=tl,
            cost_ns=dict(self.cost_ns))

    def addresses(self, records: np.ndarray, chunk_records: int = 1 << 20) -> np.ndarray:
        """Replay ``records`` from an empty heap; the address each event returned (0 for
        frees), as the real allocator's would be (``simkit.bench.malloc.replay_addresses``)."""
        records = np.asarray(records)
        self.reset(max(int(records["id"].max()) + 1, 16) if len(records) else 16)
        out = np.zeros(len(records), np.int64)
        T = np.zeros((1, K.NT), np.int64)
        for s in range(0, len(records), chunk_records):
            self._feed(records[s:s + chunk_records], T, 0, s, self.name,
                       out[s:s + chunk_records])
        return out

    # ---- stepping (probes) ------------------------------------------------------------------
    def _step(self, op, oid, old=NONE, size=0, align=0) -> int:
        rec = np.zeros(1, ALLOC_DTYPE)
        rec["op"], rec["id"], rec["old_id"], rec["size"], rec["align"] = op, oid, old, size, align
        need = max(oid if oid != NONE else 0, old if old != NONE else 0) + 1
        self.eng.objects(need)
        self._id_limit = max(self._id_limit, need)
        T = np.zeros((1, K.NT), np.int64)
        self._feed(rec, T, 0, 0, self.name)
        return int(self.eng.S[K.S_LASTCHECK])

    def malloc(self, size: int, align: int = 0) -> int:
        """Allocate; returns the object id (its address: ``address(id)``)."""
        oid = self._next_id
        self._next_id += 1
        self._step(AllocOp.MEMALIGN if align else AllocOp.MALLOC, oid, size=size, align=align)
        return oid

    def free(self, oid: int) -> int:
        """Free object ``oid``; returns the allocator's check: 0 ok, 1 detected (abort),
        2 crash, 3 accepted (a double free taken into a free list)."""
        return self._step(AllocOp.FREE, oid)

    def address(self, oid: int) -> int:
        """The address of live object ``oid`` (0 once freed)."""
        return int(self.eng.obj_addr[oid])


__all__ = ["AllocStats", "AllocatorModel", "COST_NS"]
