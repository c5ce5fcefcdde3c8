"""Prefix-block reuse of a request trace with chained block hashes (Mooncake ``hash_ids``).

Each request lists the hashes of its prompt's blocks (Mooncake: 512 tokens per block; a hash
depends on its block and its whole prefix). Replayed in arrival order, a request reuses the
leading blocks that are in the cache (prefix semantics: the first miss ends the match; a
block is only useful after all blocks before it), then all its blocks are in the cache.

``prefix_hit_curve`` returns the reuse for an unbounded cache and for LRU caches of bounded
size (in blocks). After each request its blocks are touched tail first, so the head of a
chain is the most recently used and a chain is evicted from its tail (as vLLM frees a
sequence's blocks in reverse order).

Anchor (REFERENCE.md 2.4 [D]): the Mooncake conversation trace, unbounded cache -> 36.6% of
prefix blocks reused (37.4% token-weighted); the Mooncake paper (FAST 2025, Table 2) reports
about 40%.
"""
from __future__ import annotations

import json
import lzma
import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Sequence

from simkit.errors import InputError

MOONCAKE_BLOCK_TOKENS = 512


def load_hash_trace(path: str | os.PathLike) -> list[tuple[int, list[int]]]:
    """(input_length, hash_ids) per request, in file order, from a Mooncake-style JSON-lines
    trace (``.jsonl`` or ``.jsonl.xz``)."""
    path = Path(path)
    from simkit.atomic import check_input_kind
    check_input_kind(path)
    opener = lzma.open if path.suffix == ".xz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                out.append((int(rec["input_length"]), [int(h) for h in rec["hash_ids"]]))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{path}: line {lineno}: not a request record ({exc})") from None
    if not out:
        raise InputError(f"{path}: no requests")
    return out


def _replay(requests: Sequence[tuple[int, Sequence[int]]], capacity: int | None,
            block_tokens: int) -> tuple[int, int, int, int]:
    """(hit blocks, blocks, hit tokens, prompt tokens) with an LRU cache of ``capacity``
    blocks (None: unbounded)."""
    cache: OrderedDict = OrderedDict()
    seen: set = set()
    hit_b = tot_b = hit_t = tot_t = 0
    for length, ids in requests:
        n = 0
        store = seen if capacity is None else cache
        for h in ids:
            if h not in store:
                break
            n += 1
        hit_b += n
        tot_b += len(ids)
        hit_t += min(n * block_tokens, length)
        tot_t += length
        if capacity is None:
            seen.update(ids)
        elif capacity > 0:
            for h in reversed(ids):
                if h in cache:
                    cache.move_to_end(h)
                else:
                    cache[h] = None
            while len(cache) > capacity:
                cache.popitem(last=False)
    return hit_b, tot_b, hit_t, tot_t


def prefix_hit_curve(requests: Sequence[tuple[int, Sequence[int]]],
                     cache_blocks: Iterable[int | None] = (1000, 2000, 5000, 10000, 20000,
                                                          50000, 100000, 200000, None),
                     block_tokens: int = MOONCAKE_BLOCK_TOKENS):
    """A DataFrame, one row per cache size (``None``: unbounded): ``cache_blocks``,
    ``cache_tokens``, ``hit_blocks``, ``blocks``, ``block_hit_rate`` (share of prefix blocks
    reused), ``token_hit_rate`` (share of prompt tokens found in the cache)."""
    import pandas as pd

    rows = []
    for c in cache_blocks:
        hb, tb, ht, tt = _replay(requests, c, block_tokens)
        rows.append({"cache_blocks": c if c is not None else float("inf"),
                     "cache_tokens": c * block_tokens if c is not None else float("inf"),
                     "hit_blocks": hb, "blocks": tb,
                     "block_hit_rate": hb / tb if tb else 0.0,
                     "token_hit_rate": ht / tt if tt else 0.0})
    return pd.DataFrame(rows)
