"""Workloads the serving engine hands to the other simulators, as simkit traces.

Both exporters are engine observers (``ServingSimulator(..., observers=[...])``); they write
through ``simkit.trace.TraceWriter``, so nothing appears at the path unless the run completes
(``close()``; ``abort()`` on failure).

KV read address stream (``KVReadExporter``) -> ``simkit.tlb`` / ``simkit.cache``
    The decode steps of iterations ``start_iteration .. start_iteration + max_steps - 1`` that
    have decodes, each written exactly as ``simkit.kvpaging.decode_trace`` writes a step (same
    virtual layout, records, strides: ``DecodeTrace.step_records``): embedding rows, per layer
    the weights, the new token's K/V stores and every decoding sequence's block-table row and
    K/V reads, then lm_head. Prefill tokens of mixed iterations are not traced.
    Layout follows the manager: PagedAttention -> ``paged`` with the manager's own block ids
    (``block_table(seq)``) in a pool of its ``num_blocks``; static and vAttention ->
    ``contiguous``: each request owns a batch slot of ``max_context`` rows per K/V buffer
    (vAttention's reqId x S layout), slots assigned lowest-free-first as requests join the
    batch and released when they finish or are preempted.

Block alloc/free event stream (``AllocExporter``) -> ``simkit.allocators``
    One record per allocation or release of KV memory units by a request::

        op      STORE (1) = allocate, LOAD (0) = free
        addr    ALLOC_BASE + unit_index * unit_bytes   (the unit's byte offset in the KV pool)
        size    units in the event (1 for a block or page-group; a static extent's slots,
                split into records of at most 65,535 units at consecutive addresses)
        icount  engine iterations since the previous record (sum of icount = the iteration
                of the event: the allocator simulator's time axis)
        flags   0

    Units (``meta.extra["unit"]``, ``["unit_bytes"]``): PagedAttention -> one block
    (block_tokens x kv_bytes_per_token), index = block id; a block shared by several requests
    (prefix cache) is allocated when its first live owner takes it and freed when its last
    live owner releases it (freed blocks that stay in the prefix cache count as freed).
    Static -> one token slot (kv_bytes_per_token), an extent per request. vAttention -> one
    page-group (2 x layers pages), index = slot x max_groups + group, allocated as a request's
    mapped groups grow and freed when it finishes or is preempted (its slot's deferred
    reclamation is the manager's business, not the request's).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from simkit.errors import InputError
from simkit.kvpaging.decode_trace import DecodeTrace, DecodeTraceConfig
from simkit.trace.format import ACCESS_DTYPE, Op, TraceMeta, TraceWriter

ALLOC_BASE = 0x7000_0000_0000
MAX_SIZE = 0xFFFF


class _Pos:
    """A decoding sequence as ``DecodeTrace._layer_template`` sees it."""

    __slots__ = ("prompt", "generated", "table")

    def __init__(self, pos, table=()):
        self.prompt, self.generated, self.table = pos, 0, table


class KVReadExporter:
    """Writes the decode steps' address stream (module docstring)."""

    def __init__(self, path, sim, *, start_iteration: int = 0, max_steps: int = 16,
                 kv_stride_bytes: int = 64, weight_stride_bytes: int = 4096, seed: int = 0,
                 command: str = ""):
        if max_steps <= 0 or start_iteration < 0:
            raise ValueError(f"max_steps must be > 0 and start_iteration >= 0, got "
                             f"{max_steps}, {start_iteration}")
        mgr, model = sim.manager, sim.model
        self.paged = sim.kernel == "paged"
        if self.paged:
            cfg = DecodeTraceConfig(layout="paged", batch=sim.cfg.max_num_seqs,
                                    block_tokens=mgr.block_tokens, pool_blocks=mgr.num_blocks,
                                    kv_stride_bytes=kv_stride_bytes,
                                    weight_stride_bytes=weight_stride_bytes, seed=seed)
        else:
            cfg = DecodeTraceConfig(layout="contiguous", batch=sim.cfg.max_num_seqs,
                                    kv_stride_bytes=kv_stride_bytes,
                                    weight_stride_bytes=weight_stride_bytes, seed=seed)
        self.gen = DecodeTrace(model, [[1, 1]], cfg)
        self.rng = np.random.default_rng(seed)
        self.start, self.max_steps = start_iteration, max_steps
        self.steps = 0
        self.slot_of: dict[int, int] = {}
        self.free_slots = list(range(cfg.batch - 1, -1, -1))     # pop() -> lowest
        self.mgr = mgr
        mp = self.gen.map
        self.meta = TraceMeta(
            source=f"simkit.kvpaging engine: {model.name} decode steps, {cfg.layout} KV "
                   f"({sim.manager_spec})",
            producer="kvpaging.engine.export_kv", command=command,
            notes="icount = 1 per record; layout and strides as simkit.kvpaging.decode_trace",
            extra={"model": model.name, "manager": sim.manager_spec, "layout": cfg.layout,
                   "batch_slots": cfg.batch, "block_tokens": cfg.block_tokens,
                   "pool_blocks": self.gen.pool_blocks, "max_context": self.gen.max_context,
                   "kv_stride_bytes": kv_stride_bytes,
                   "weight_stride_bytes": weight_stride_bytes, "seed": seed,
                   "start_iteration": start_iteration, "max_steps": max_steps,
                   "kv_base": hex(mp.kv), "kv_span": mp.kv_span, "v_offset": mp.v_offset,
                   "slot_bytes": mp.slot_bytes, "block_bytes": mp.block_bytes})
        self.writer = TraceWriter(path, self.meta)

    def on_release(self, rid: int) -> None:
        slot = self.slot_of.pop(rid, None)
        if slot is not None:
            self.free_slots.append(slot)
            self.free_slots.sort(reverse=True)

    def on_plan(self, sim) -> None:
        decodes = sim.sched.decodes
        if not decodes or sim.iteration < self.start or self.steps >= self.max_steps:
            return
        slots = [None] * self.gen.cfg.batch
        for s in decodes:
            slot = self.slot_of.get(s.rid)
            if slot is None:
                slot = self.slot_of[s.rid] = self.free_slots.pop()
            # grow() made room for the last emitted token, at position prompt + generated - 1
            pos = s.prompt + s.generated - 1
            slots[slot] = _Pos(pos, self.mgr.block_table(s.rid) if self.paged else ())
        for rec in self.gen.step_records(slots, self.rng):
            self.writer.write(rec)
        self.steps += 1
        self.meta.extra["steps_written"] = self.steps
        self.meta.extra["last_iteration"] = sim.iteration

    def close(self):
        return self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


class AllocExporter:
    """Writes the KV unit alloc/free event stream (module docstring)."""

    def __init__(self, path, sim, *, command: str = ""):
        mgr, model = sim.manager, sim.model
        self.mgr, self.sim = mgr, sim
        self.kind = sim.kernel
        if self.kind == "paged":
            unit, unit_bytes = "block", mgr.block_bytes
        elif self.kind == "contiguous":
            unit, unit_bytes = "token slot", model.kv_bytes_per_token
        else:
            unit, unit_bytes = "page-group", mgr.group_bytes
        if not hasattr(mgr, "extent" if self.kind == "contiguous" else "slot") \
                and self.kind != "paged":
            raise InputError(f"--export-alloc-trace: manager {sim.manager_spec} does not expose "
                             f"its allocations")
        self.owned: dict[int, list[int]] = {}        # rid -> unit indices (paged, vattention)
        self.extent: dict[int, tuple[int, int]] = {}  # rid -> (start slot, slots) (static)
        self.refs: Counter = Counter()
        self.buf: list[tuple] = []
        self.last_iteration = 0
        self.events = {"alloc": 0, "free": 0}
        self.meta = TraceMeta(
            source=f"simkit.kvpaging engine: KV {unit} alloc/free events of {sim.manager_spec} "
                   f"serving {model.name}",
            producer="kvpaging.engine.export_alloc", command=command,
            notes=("op STORE = allocate, LOAD = free; addr = base + unit index x unit_bytes; "
                   "size = units; icount = engine iterations since the previous record "
                   "(see simkit.kvpaging.export)"),
            extra={"encoding": "kv-alloc-v1", "unit": unit, "unit_bytes": unit_bytes,
                   "base": hex(ALLOC_BASE), "manager": sim.manager_spec, "model": model.name,
                   "capacity_bytes": mgr.capacity_bytes})
        self.unit_bytes = unit_bytes
        self.writer = TraceWriter(path, self.meta)

    # ---- events --------------------------------------------------------------------------
    def _event(self, op: int, unit: int, n: int = 1) -> None:
        it = self.sim.iteration
        while n > 0:
            k = min(n, MAX_SIZE)
            self.buf.append((ALLOC_BASE + unit * self.unit_bytes, it - self.last_iteration, k,
                             op))
            self.last_iteration = it
            unit += k
            n -= k
        self.events["alloc" if op == Op.STORE else "free"] += 1
        if len(self.buf) >= 1 << 16:
            self._flush()

    def _units(self, rid: int) -> list[int]:
        if self.kind == "paged":
            return self.mgr.block_table(rid)
        base = self.mgr.slot(rid) * self.mgr.max_groups
        return list(range(base, base + self.mgr.mapped_groups(rid)))

    def on_alloc(self, rid: int) -> None:
        if self.kind == "contiguous":
            if rid not in self.extent:
                start, slots = self.mgr.extent(rid)
                self.extent[rid] = (start, slots)
                self._event(Op.STORE, start, slots)
            return
        now = self._units(rid)
        had = Counter(self.owned.get(rid, ()))
        for u in now:
            if had[u]:
                had[u] -= 1
                continue
            self.refs[u] += 1
            if self.refs[u] == 1:
                self._event(Op.STORE, u)
        for u, c in had.items():                  # replaced (copy-on-write) or unmapped
            for _ in range(c):
                self._drop(u)
        self.owned[rid] = now

    def on_plan(self, sim) -> None:
        if self.kind == "vattention":            # groups mapped in the background (lookahead)
            for s in sim.sched.decodes:
                self.on_alloc(s.rid)

    def _drop(self, u: int) -> None:
        self.refs[u] -= 1
        if self.refs[u] == 0:
            del self.refs[u]
            self._event(Op.LOAD, u)

    def on_release(self, rid: int) -> None:
        if self.kind == "contiguous":
            ext = self.extent.pop(rid, None)
            if ext is not None:
                self._event(Op.LOAD, *ext)
            return
        for u in self.owned.pop(rid, ()):
            self._drop(u)

    # ---- output --------------------------------------------------------------------------
    def _flush(self) -> None:
        if not self.buf:
            return
        rec = np.zeros(len(self.buf), dtype=ACCESS_DTYPE)
        a = np.array(self.buf, dtype=np.uint64)
        rec["addr"], rec["icount"], rec["size"], rec["op"] = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
        self.writer.write(rec)
        self.buf = []

    def close(self):
        self._flush()
        self.meta.extra.update(alloc_events=self.events["alloc"],
                               free_events=self.events["free"],
                               iterations=self.sim.iteration)
        return self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


__all__ = ["ALLOC_BASE", "AllocExporter", "KVReadExporter"]
