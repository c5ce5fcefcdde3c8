"""The virtual-address stream of batched LLM decode steps, contiguous or paged KV layout.

``DecodeTrace(model, requests, config)`` replays real requests (prompt_len, output_len) through a
continuously batched decode loop and yields the loads and stores of each step as ACCESS_DTYPE
records; ``write_decode_trace`` writes them as a simkit trace for ``simkit.tlb`` and
``simkit.cache``. Only addresses are modelled: no timing, no values.

Virtual layout (every tensor starts on a 2 MiB boundary, as large GPU allocations do)::

    BASE = 0x7000_0000_0000
    embedding   vocab x hidden                  one row read per sequence per step
    lm_head     vocab x hidden                  (absent when tied: the embedding is re-read)
    layer l     [norm|Wq|Wk|Wv] [Wo|norm|gate|up|down]     at layer_weights + l * weight_span
    block table batch x ceil(max_context / block_tokens) int32    (paged reads it)
    KV layer l  at kv + l * kv_span:
      contiguous (vAttention): K buffer of batch slots x S bytes, then V buffer at v_offset;
                 S = max_context x kv_row rounded up to 2 MiB; the request in slot i lives at
                 i * S (REFERENCE.md 2.2)
      paged (vLLM): one [2, pool_blocks, block_tokens, kv_heads, head_dim] tensor: K blocks,
                 then V blocks at v_offset = pool_blocks x block_bytes

One decode step, in order::

    embedding row of each sequence (random token ids, seeded)
    for each layer:
        read  norm + Q/K/V weights
        store the new token's K row and V row of each sequence     (vLLM reshape_and_cache
                                                                     runs before attention)
        for each sequence: read its block-table row (paged), all its K rows, all its V rows
                           (positions 0..pos, the new token included)
        read  O/norm/MLP weights
    read final norm + lm_head

Granularity. A record is one access per ``stride``-aligned chunk of a tensor extent that the
step touches: ``kv_stride_bytes`` for K/V reads and stores (default 64: every 64-byte line),
``weight_stride_bytes`` for weights and embedding rows (default 4096: one access per 4 KiB page;
weights are streamed, so the pages touched are exact while the accesses are sampled), 64 for
block-table rows. ``size`` is the bytes of the chunk, at most 64 (one line). ``icount`` is 1 per
record, so MPKI over this trace means misses per 1000 accesses.

Requests. ``requests`` is an (n, 2) array of (prompt_len, output_len) in arrival order; batch
slots are filled in that order and a finished request's slot is refilled at the next step
(continuous batching). Prefill is not traced: a request joins with its prompt's KV in place
and generates ``output_len`` tokens, one per step, the token of step j at position
prompt_len + j. Requests with no output or longer than ``max_context`` are skipped (counted).
Paged blocks come from a free list shuffled with ``seed`` (a pool in steady state); a new block
is taken when a sequence's last block is full, and a finished sequence's blocks return to the
tail of the free list in reverse order (as vLLM frees them).
"""
from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from simkit.kvpaging.models import ModelShape
from simkit.trace.format import ACCESS_DTYPE, DEFAULT_CHUNK, Op, TraceMeta, TraceWriter

BASE = 0x7000_0000_0000
ALIGN = 2 << 20
LINE = 64
LAYOUTS = ("contiguous", "paged")
_ABS, _WEIGHT, _KV = 0, 1, 2          # what a template offset is relative to


def _round_up(x: int, a: int = ALIGN) -> int:
    return -(-x // a) * a


def _pow2(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x > 0 and x & (x - 1) == 0


@dataclass(frozen=True)
class DecodeTraceConfig:
    layout: str = "paged"
    batch: int = 8
    steps: int = 64
    block_tokens: int = 16
    weight_stride_bytes: int = 4096
    kv_stride_bytes: int = 64
    max_context: int = 0              # 0: the model's max_context
    pool_blocks: int = 0              # 0: batch x ceil(max_context / block_tokens)
    shuffle_free_list: bool = True
    lm_head: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout: must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        for name in ("batch", "steps", "block_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        for name in ("max_context", "pool_blocks", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}: must be a non-negative integer, got {v!r}")
        for name in ("weight_stride_bytes", "kv_stride_bytes"):
            v = getattr(self, name)
            if not _pow2(v) or v > ALIGN:
                raise ValueError(f"{name}: must be a power of two from 1 to {ALIGN}, got {v!r}")


@dataclass(frozen=True)
class AddressMap:
    """Where each tensor lives (see the module docstring)."""

    embedding: int
    lm_head: int
    layer_weights: int
    weight_span: int
    block_table: int
    block_table_row_bytes: int
    kv: int
    kv_span: int
    v_offset: int
    slot_bytes: int                   # contiguous: S, the bytes reserved per request and buffer
    block_bytes: int                  # paged: one block of K (or of V) in one layer
    end: int

    def weight_base(self, layer: int) -> int:
        return self.layer_weights + layer * self.weight_span

    def kv_base(self, layer: int) -> int:
        return self.kv + layer * self.kv_span


def address_map(model: ModelShape, cfg: DecodeTraceConfig) -> AddressMap:
    max_ctx = cfg.max_context or model.max_context
    row = model.kv_row_bytes
    emb = model.embedding_bytes
    lm = BASE + _round_up(emb)
    layers = lm + (0 if model.tied_embeddings else _round_up(emb))
    if model.tied_embeddings:
        lm = BASE
    wspan = _round_up(model.layer_weight_bytes)
    bt = layers + model.layers * wspan
    max_blocks = -(-max_ctx // cfg.block_tokens)
    bt_row = max_blocks * 4
    kv = bt + _round_up(cfg.batch * bt_row)
    slot = _round_up(max_ctx * row)
    block = cfg.block_tokens * row
    if cfg.layout == "contiguous":
        v_off = _round_up(cfg.batch * slot)
        span = 2 * v_off
    else:
        pool = cfg.pool_blocks or cfg.batch * max_blocks
        v_off = pool * block
        span = _round_up(2 * v_off)
    return AddressMap(embedding=BASE, lm_head=lm, layer_weights=layers, weight_span=wspan,
                      block_table=bt, block_table_row_bytes=bt_row, kv=kv, kv_span=span,
                      v_offset=v_off, slot_bytes=slot, block_bytes=block,
                      end=kv + model.layers * span)


def _chunks(starts, lengths, strides):
    """One (offset, size) per stride-aligned chunk that each extent [start, start+length)
    overlaps: offset = max(chunk start, extent start), size = bytes of the chunk in the extent,
    at most one line."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    strides = np.asarray(strides, dtype=np.int64)
    first = starts // strides
    n = (starts + lengths - 1) // strides - first + 1
    idx = np.repeat(np.arange(len(starts)), n)
    k = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n) + first[idx]
    s = strides[idx]
    lo = np.maximum(k * s, starts[idx])
    hi = np.minimum((k + 1) * s, starts[idx] + lengths[idx])
    return lo, np.minimum(hi - lo, LINE), idx


@dataclass
class DecodeTraceStats:
    """Raw counters of one generated trace. Byte counts are exact (not sampled by strides)."""

    records: int = 0
    loads: int = 0
    stores: int = 0
    steps_run: int = 0
    requests_admitted: int = 0
    requests_finished: int = 0
    requests_skipped: int = 0          # no output, or prompt + output > max_context
    tokens_generated: int = 0
    kv_read_bytes: int = 0
    kv_write_bytes: int = 0
    weight_read_bytes: int = 0
    blocks_allocated: int = 0
    blocks_freed: int = 0
    blocks_reused: int = 0             # allocations of a block that had been freed before
    kv_reserved_bytes: int = 0         # virtual bytes of the KV area (all layers, K and V)
    pages_4k: int = 0                  # distinct 4 KiB pages touched (all records)
    regions_2m: int = 0                # distinct 2 MiB regions touched
    kv_pages_4k: int = 0               # distinct 4 KiB pages of the KV area touched
    kv_regions_2m: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _Footprint:
    """Distinct 4 KiB pages and 2 MiB regions of a record stream (both ends of each access)."""

    def __init__(self, kv_lo: int, kv_hi: int):
        self.kv_lo, self.kv_hi = np.uint64(kv_lo), np.uint64(kv_hi)
        self.pages = np.empty(0, np.uint64)
        self.kv_pages = np.empty(0, np.uint64)
        self._pending: list[np.ndarray] = []

    def add(self, rec: np.ndarray) -> None:
        a = rec["addr"]
        last = a + np.maximum(rec["size"], 1).astype(np.uint64) - np.uint64(1)
        self._pending.append(np.unique(np.concatenate([a, last]) >> np.uint64(12)))
        if sum(len(p) for p in self._pending) > 1 << 22:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.pages = np.union1d(self.pages, np.concatenate(self._pending))
            self._pending = []

    def fill(self, st: DecodeTraceStats) -> None:
        self.flush()
        lo, hi = self.kv_lo >> np.uint64(12), self.kv_hi >> np.uint64(12)
        kv = self.pages[(self.pages >= lo) & (self.pages < hi)]
        st.pages_4k = len(self.pages)
        st.regions_2m = len(np.unique(self.pages >> np.uint64(9)))
        st.kv_pages_4k = len(kv)
        st.kv_regions_2m = len(np.unique(kv >> np.uint64(9)))


@dataclass
class _Seq:
    req: int
    prompt: int
    output: int
    generated: int = 0
    table: list = dataclasses.field(default_factory=list)


class DecodeTrace:
    """The decode-step address stream of ``model`` serving ``requests`` under ``config``.

    Iterate ``chunks()`` once; ``stats`` is complete when the iteration ends.
    """

    def __init__(self, model: ModelShape, requests, config: DecodeTraceConfig | None = None):
        self.model = model
        self.cfg = cfg = config if config is not None else DecodeTraceConfig()
        req = np.asarray(requests, dtype=np.int64)
        if req.ndim != 2 or req.shape[1] != 2 or len(req) == 0:
            raise ValueError(f"requests: need an (n, 2) array of (prompt_len, output_len), "
                             f"got shape {req.shape}")
        if (req < 0).any():
            raise ValueError("requests: lengths must be >= 0")
        self.requests = req
        self.max_context = cfg.max_context or model.max_context
        self.map = address_map(model, cfg)
        self.pool_blocks = (self.map.v_offset // self.map.block_bytes
                            if cfg.layout == "paged" else 0)
        self.stats = DecodeTraceStats(kv_reserved_bytes=model.layers * self.map.kv_span)

    # ---- the batch --------------------------------------------------------------------
    def _admit(self, slots, state) -> None:
        st, cfg = self.stats, self.cfg
        for i in range(cfg.batch):
            while slots[i] is None and state["next"] < len(self.requests):
                r = state["next"]
                state["next"] += 1
                p, o = (int(x) for x in self.requests[r])
                if o == 0 or p + o > self.max_context:
                    st.requests_skipped += 1
                    continue
                s = _Seq(r, p, o)
                if cfg.layout == "paged":
                    for _ in range(-(-p // cfg.block_tokens)):
                        s.table.append(self._alloc(state))
                slots[i] = s
                st.requests_admitted += 1

    def _alloc(self, state) -> int:
        free = state["free"]
        if not free:
            raise ValueError(f"pool_blocks: the pool of {self.pool_blocks} blocks is exhausted")
        b = free.popleft()
        self.stats.blocks_allocated += 1
        if state["freed"][b]:
            self.stats.blocks_reused += 1
        return b

    # ---- one step's template -----------------------------------------------------------
    def _weight_template(self):
        m, ws = self.model, self.cfg.weight_stride_bytes
        a = m.attn_in_params * m.dtype_bytes
        return ([0], [a], [ws]), ([a], [m.layer_weight_bytes - a], [ws])

    def _layer_template(self, slots, wa, wb):
        """Extents of one layer's accesses this step: (start, length, stride, kind, op)."""
        cfg, mp, row = self.cfg, self.map, self.model.kv_row_bytes
        ks = cfg.kv_stride_bytes
        bt, bb = cfg.block_tokens, mp.block_bytes
        ext = [(s, n, st, _WEIGHT, Op.LOAD) for s, n, st in zip(*wa)]
        active = [(i, q) for i, q in enumerate(slots) if q is not None]
        for i, q in active:                           # stores of the new token's K and V
            pos = q.prompt + q.generated
            if cfg.layout == "contiguous":
                off = i * mp.slot_bytes + pos * row
            else:
                off = q.table[pos // bt] * bb + (pos % bt) * row
            ext.append((off, row, ks, _KV, Op.STORE))
            ext.append((mp.v_offset + off, row, ks, _KV, Op.STORE))
        for i, q in active:                           # attention over positions 0..pos
            ctx = q.prompt + q.generated + 1
            if cfg.layout == "contiguous":
                ext.append((i * mp.slot_bytes, ctx * row, ks, _KV, Op.LOAD))
                ext.append((mp.v_offset + i * mp.slot_bytes, ctx * row, ks, _KV, Op.LOAD))
            else:
                nb = -(-ctx // bt)
                ext.append((mp.block_table + i * mp.block_table_row_bytes, nb * 4, LINE,
                            _ABS, Op.LOAD))
                blocks = np.asarray(q.table[:nb], dtype=np.int64) * bb
                lens = np.full(nb, bb, dtype=np.int64)
                lens[-1] = (ctx - (nb - 1) * bt) * row
                ext.extend(zip(blocks.tolist(), lens.tolist(), [ks] * nb, [_KV] * nb,
                               [Op.LOAD] * nb))
                ext.extend(zip((blocks + mp.v_offset).tolist(), lens.tolist(), [ks] * nb,
                               [_KV] * nb, [Op.LOAD] * nb))
        ext.extend((s, n, st, _WEIGHT, Op.LOAD) for s, n, st in zip(*wb))
        return ext

    @staticmethod
    def _records(ext):
        start, length, stride, kind, op = (np.asarray(c, dtype=np.int64) for c in zip(*ext))
        off, size, idx = _chunks(start, length, stride)
        rec = np.zeros(len(off), dtype=ACCESS_DTYPE)
        rec["addr"] = off.astype(np.uint64)
        rec["size"] = size
        rec["op"] = op[idx]
        rec["icount"] = 1
        return rec, kind[idx]

    # ---- one step, for other drivers (the serving engine's export) ----------------------
    def step_records(self, slots, rng: np.random.Generator) -> list[np.ndarray]:
        """The records of one decode step of ``slots`` (a list indexed by batch slot of None
        or objects with ``prompt``, ``generated`` and, paged, ``table``: the new token is at
        position prompt + generated), in the order of ``chunks()``: embedding rows (token ids
        from ``rng``), each layer, lm_head. Stats are not updated."""
        cfg, m, mp = self.cfg, self.model, self.map
        active = [q for q in slots if q is not None]
        if not active:
            return []
        wa, wb = self._weight_template()
        ws, erow = cfg.weight_stride_bytes, m.hidden * m.dtype_bytes
        tok = rng.integers(0, m.vocab, size=len(active))
        emb, _ = self._records([(int(t) * erow, erow, ws, _ABS, Op.LOAD) for t in tok])
        emb["addr"] += np.uint64(mp.embedding)
        out = [emb]
        rec, kind = self._records(self._layer_template(slots, wa, wb))
        for layer in range(m.layers):
            r = rec.copy()
            base = np.array([0, mp.weight_base(layer), mp.kv_base(layer)], dtype=np.uint64)
            r["addr"] += base[kind]
            out.append(r)
        if cfg.lm_head:
            lm, _ = self._records([(0, m.embedding_bytes, ws, _ABS, Op.LOAD)])
            lm["addr"] += np.uint64(mp.lm_head)
            out.append(lm)
        return out

    # ---- the stream --------------------------------------------------------------------
    def chunks(self, chunk_records: int = DEFAULT_CHUNK) -> Iterator[np.ndarray]:
        cfg, m, mp, st = self.cfg, self.model, self.map, self.stats
        rng = np.random.default_rng(cfg.seed)
        order = (rng.permutation(self.pool_blocks) if cfg.shuffle_free_list
                 else np.arange(self.pool_blocks))
        state = {"next": 0, "free": deque(order.tolist()),
                 "freed": np.zeros(self.pool_blocks, dtype=bool)}
        slots: list[_Seq | None] = [None] * cfg.batch
        wa, wb = self._weight_template()
        ws, erow = cfg.weight_stride_bytes, m.hidden * m.dtype_bytes
        lm_bytes = m.embedding_bytes + m.hidden * m.dtype_bytes    # final norm + lm_head
        fp = _Footprint(mp.kv, mp.end)
        pending: list[np.ndarray] = []
        held = 0

        def emit(rec):
            nonlocal held
            st.records += len(rec)
            n_store = int(np.count_nonzero(rec["op"] == Op.STORE))
            st.stores += n_store
            st.loads += len(rec) - n_store
            fp.add(rec)
            pending.append(rec)
            held += len(rec)

        for _ in range(cfg.steps):
            self._admit(slots, state)
            active = [q for q in slots if q is not None]
            if not active:
                break
            if cfg.layout == "paged":
                for q in active:
                    pos = q.prompt + q.generated
                    if pos // cfg.block_tokens == len(q.table):
                        q.table.append(self._alloc(state))
            tok = rng.integers(0, m.vocab, size=len(active))
            emb, _ = self._records([(int(t) * erow, erow, ws, _ABS, Op.LOAD) for t in tok])
            emb["addr"] += np.uint64(mp.embedding)
            emit(emb)
            rec, kind = self._records(self._layer_template(slots, wa, wb))
            for layer in range(m.layers):
                out = rec.copy()
                base = np.array([0, mp.weight_base(layer), mp.kv_base(layer)], dtype=np.uint64)
                out["addr"] += base[kind]
                emit(out)
                if held >= chunk_records:
                    yield from self._drain(pending, chunk_records)
                    held = sum(len(p) for p in pending)
            if cfg.lm_head:
                lm, _ = self._records([(0, m.embedding_bytes, ws, _ABS, Op.LOAD)])
                lm["addr"] += np.uint64(mp.lm_head)     # the embedding itself when tied
                emit(lm)
                st.weight_read_bytes += lm_bytes
            # exact byte counts of this step
            row = m.kv_row_bytes
            ctx = sum(q.prompt + q.generated + 1 for q in active)
            st.kv_read_bytes += m.layers * 2 * row * ctx
            st.kv_write_bytes += m.layers * 2 * row * len(active)
            st.weight_read_bytes += m.layers * m.layer_weight_bytes + len(active) * erow
            st.tokens_generated += len(active)
            st.steps_run += 1
            for i, q in enumerate(slots):
                if q is None:
                    continue
                q.generated += 1
                if q.generated == q.output:
                    for b in reversed(q.table):
                        state["free"].append(b)
                        state["freed"][b] = True
                    st.blocks_freed += len(q.table)
                    st.requests_finished += 1
                    slots[i] = None
        yield from self._drain(pending, 1)
        fp.fill(st)

    @staticmethod
    def _drain(pending: list, at_least: int) -> Iterator[np.ndarray]:
        """Yield the pending records as one array once there are ``at_least`` of them."""
        if pending and sum(len(p) for p in pending) >= at_least:
            out = np.concatenate(pending) if len(pending) > 1 else pending[0]
            pending.clear()
            yield out


def write_decode_trace(path, model: ModelShape, requests, config: DecodeTraceConfig | None = None,
                       *, requests_source: str = "", command: str = "") -> DecodeTraceStats:
    """Write the decode trace to ``path`` (.skt, .skt.xz, .skt.gz) chunk by chunk; nothing
    appears at ``path`` unless the whole trace is written. Returns its stats."""
    gen = DecodeTrace(model, requests, config)
    cfg, mp = gen.cfg, gen.map
    meta = TraceMeta(
        source=f"simkit.kvpaging.decode_trace: {model.name} decode, {cfg.layout} KV",
        producer="kvpaging.decode_trace", command=command,
        notes=("icount = 1 per record (MPKI = misses per 1000 accesses); one record per "
               "stride-aligned chunk touched (kv_stride_bytes for K/V, weight_stride_bytes "
               "for weights and embedding rows, 64 for block tables), size <= 64"))
    with TraceWriter(path, meta) as w:
        for chunk in gen.chunks():
            w.write(chunk)
        st = gen.stats
        meta.extra = {
            "model": model.name, "layout": cfg.layout, "batch": cfg.batch,
            "steps": cfg.steps, "steps_run": st.steps_run, "block_tokens": cfg.block_tokens,
            "pool_blocks": gen.pool_blocks, "max_context": gen.max_context,
            "weight_stride_bytes": cfg.weight_stride_bytes,
            "kv_stride_bytes": cfg.kv_stride_bytes, "shuffle_free_list": cfg.shuffle_free_list,
            "lm_head": cfg.lm_head, "seed": cfg.seed, "requests_source": requests_source,
            "requests_admitted": st.requests_admitted, "requests_skipped": st.requests_skipped,
            "kv_bytes_per_token": model.kv_bytes_per_token,
            "stats": st.to_dict(),
            "address_map": {k: hex(v) if k in ("embedding", "lm_head", "layer_weights",
                                                "block_table", "kv", "end") else v
                            for k, v in dataclasses.asdict(mp).items()},
        }
    return gen.stats


__all__ = ["ALIGN", "BASE", "LAYOUTS", "AddressMap", "DecodeTrace", "DecodeTraceConfig",
           "DecodeTraceStats", "address_map", "write_decode_trace"]
