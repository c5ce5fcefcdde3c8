"""KV memory waste of a manager on a set of request lengths, without a serving engine.

``replay_waste`` admits every request (its prompt), grows it to its final length one decode
step at a time, and frees it at completion. Two measures (``MemoryUsage`` terms):

- ``final``: every request at its final length, all resident at once (the snapshot of
  REFERENCE.md 2.5's waste sanity table: rounding up to a block / page, or a static reservation);
- ``time_averaged``: all requests start together and each stays resident from admission to
  completion; used / internal-fragmentation / reserved bytes are summed over the decode steps
  (each request weighted by its lifetime, as under continuous batching with no queueing).
  PagedAttention Fig. 2 measures waste averaged over a serving run.

``max_batch`` admits requests in trace order at their final lengths until the first that does
not fit (vAttention Fig. 15: maximum batch size with 64 KiB vs 2 MiB pages).

Requests are an ``(n, 2)`` array of (prompt_len, output_len) (``load_requests``).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from simkit.kvpaging.managers import make_manager, parse_spec
from simkit.kvpaging.managers.config import PagedConfig, StaticConfig, VAttentionConfig
from simkit.kvpaging.models import ModelShape


def _capacity_for(spec: str, model: ModelShape, lengths: np.ndarray, overrides: dict) -> int:
    """Enough KV memory to hold every request at once (with one spare unit each)."""
    cfg = parse_spec(spec, model)
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    n = len(lengths)
    tb = model.kv_bytes_per_token
    if isinstance(cfg, StaticConfig):
        r = np.maximum(lengths, cfg.reserve_tokens)
        if cfg.round_pow2:
            r = 1 << np.ceil(np.log2(np.maximum(r, 1))).astype(np.int64)
        return int(r.sum() + n) * tb
    if isinstance(cfg, PagedConfig):
        b = cfg.block_tokens
        return int((-(-lengths // b)).sum() + 2 * n) * b * tb
    if isinstance(cfg, VAttentionConfig):
        per = cfg.page_bytes // model.kv_row_bytes or 1
        group = 2 * model.layers * cfg.page_bytes
        return int((-(-lengths // per)).sum() + 2 * n) * group
    raise TypeError(f"config: {cfg!r}")


def replay_waste(requests: np.ndarray, spec: str, model: ModelShape,
                 **overrides) -> dict[str, float]:
    """Waste of manager ``spec`` on ``requests`` (module doc): a dict with ``final_*`` and
    ``time_avg_*`` token and waste fractions and the byte totals behind them."""
    req = np.asarray(requests, dtype=np.int64).reshape(-1, 2)
    prompt, out = req[:, 0], req[:, 1]
    lengths = prompt + out
    m = make_manager(spec, model, _capacity_for(spec, model, lengths, overrides), **overrides)
    for i, (p, o) in enumerate(zip(prompt.tolist(), out.tolist())):
        if m.admit(i, p, p + o) is None:
            raise RuntimeError(f"{spec}: request {i} did not fit (capacity sizing)")
    # requests sorted by output length; after `step` decode steps those with output == step
    # complete and are freed (each is resident for output + 1 samples: prompt .. final length)
    order = np.argsort(out, kind="stable").tolist()
    ends = out[order].tolist()
    sums = np.zeros(3)
    done, step = 0, 0
    while done < len(order):
        u = m.usage()
        sums += (u.used_bytes, u.internal_frag_bytes, u.reserved_bytes)
        while done < len(order) and ends[done] == step:
            m.free(order[done])
            done += 1
        for s in order[done:]:
            m.grow(s)
        step += 1
    final = _final_snapshot(req, spec, model, overrides)
    alloc = sums.sum()
    return {"requests": len(req), **final,
            "time_avg_used_bytes": sums[0], "time_avg_internal_frag_bytes": sums[1],
            "time_avg_reserved_bytes": sums[2],
            "time_avg_token_fraction": sums[0] / alloc if alloc else 0.0,
            "time_avg_waste_fraction": 1 - sums[0] / alloc if alloc else 0.0}


def _final_snapshot(req: np.ndarray, spec: str, model: ModelShape, overrides: dict) -> dict:
    lengths = req.sum(axis=1)
    m = make_manager(spec, model, _capacity_for(spec, model, lengths, overrides), **overrides)
    for i, (p, o) in enumerate(req.tolist()):
        m.admit(i, p, p + o)
        if o:
            m.grow(i, o)
    u = m.usage()
    return {"final_used_bytes": u.used_bytes, "final_internal_frag_bytes": u.internal_frag_bytes,
            "final_reserved_bytes": u.reserved_bytes, "final_token_fraction": u.token_fraction,
            "final_waste_fraction": u.waste_fraction}


def max_batch(requests: np.ndarray, spec: str, model: ModelShape, capacity_bytes: int,
              **overrides) -> int:
    """How many requests, taken in order at their final lengths, fit in ``capacity_bytes``
    at once (admission of the prompt, then growth to prompt + output)."""
    req = np.asarray(requests, dtype=np.int64).reshape(-1, 2)
    m = make_manager(spec, model, capacity_bytes, **overrides)
    for i, (p, o) in enumerate(req.tolist()):
        if m.admit(i, p, p + o) is None or (o and m.grow(i, o) is None):
            return i
    return len(req)
