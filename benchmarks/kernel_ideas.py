"""Bare LRU kernels for the ideas of issue 18, timed by ``roofline.py --ideas`` beside the real
simulation: loads only, non-inclusive, no dirty bits, counters = hits per level. Each takes
line numbers and simulates the levels one at a time over batches (as simkit does), so they
differ from each other only in the idea measured:

- ``chain``: the carry shift over ways kept in recency order (simkit's layout), 64-bit tags;
  the same kernel over a uint32 tag array measures 32-bit tags;
- ``part``: ``chain`` with the last level's batch counting-sorted by set, each set's events
  simulated together with its ways hot, the misses re-emitted in the original order;
- ``age``: a timestamp per way, the tag match as a branch-free compare over the contiguous
  ways and the victim as an argmin over uint32 ages.
"""
import numpy as np
from numba import njit

ONE = np.uint64(1)


@njit(inline='always')
def _chain(tags, b, ways, line):
    carry = line << ONE
    key = carry | ONE
    for w in range(ways):
        t = tags[b + w]
        tags[b + w] = carry
        if (t | ONE) == key:
            return True
        carry = t
    return False


@njit(inline='always')
def _chain_unrolled(tags, b, ways, line):
    if ways == np.uint64(16):
        return _chain(tags, b, np.uint64(16), line)
    if ways == np.uint64(8):
        return _chain(tags, b, np.uint64(8), line)
    return _chain(tags, b, ways, line)


@njit(inline='always')
def _age(tags, ages, b, ways, line, clock):
    found = ways
    for w in range(ways):
        if tags[b + w] == line:
            found = w
    if found != ways:
        ages[b + found] = clock
        return True
    m = ages[b]
    v = np.uint64(0)
    for w in range(1, ways):
        a = ages[b + w]
        if a < m:
            m = a
            v = np.uint64(w)
    tags[b + v] = line
    ages[b + v] = clock
    return False


@njit(cache=True)
def simulate(lines, tags, ages, geom, batch, kind, bufs, order, hit, hits):
    """``kind``: 0 chain, 1 chain with the last level set-partitioned, 2 age. ``geom[lv]`` =
    (slot base, set mask, ways); ``bufs``: (2, batch) uint64; ``order``/``hit``: batch each;
    ``tags`` starts all ones (empty), ``ages`` zeros."""
    n_all = lines.shape[0]
    nlev = geom.shape[0]
    clock = np.uint32(0)
    i = 0
    while i < n_all:
        n = min(batch, n_all - i)
        for j in range(n):
            bufs[0, j] = lines[i + j]
        i += n
        src = 0
        for lv in range(nlev):
            base, mask, ways = geom[lv, 0], geom[lv, 1], geom[lv, 2]
            inb = bufs[src]
            out = bufs[1 - src]
            k = 0
            h = 0
            if kind == 1 and lv == nlev - 1:
                nsets = np.int64(mask) + 1
                cnt = np.zeros(nsets + 1, dtype=np.int64)
                for j in range(n):
                    cnt[np.int64(inb[j] & mask) + 1] += 1
                for s in range(nsets):
                    cnt[s + 1] += cnt[s]
                for j in range(n):
                    s = np.int64(inb[j] & mask)
                    order[cnt[s]] = j
                    cnt[s] += 1
                for q in range(n):
                    j = order[q]
                    line = inb[j]
                    hit[j] = _chain_unrolled(tags, base + (line & mask) * ways, ways, line)
                for j in range(n):
                    if hit[j]:
                        h += 1
                    else:
                        out[k] = inb[j]
                        k += 1
            else:
                for j in range(n):
                    line = inb[j]
                    b = base + (line & mask) * ways
                    if kind == 2:
                        clock += np.uint32(1)
                        got = _age(tags, ages, b, ways, line, clock)
                    else:
                        got = _chain_unrolled(tags, b, ways, line)
                    if got:
                        h += 1
                    else:
                        out[k] = line
                        k += 1
            hits[lv] += h
            n = k
            src = 1 - src
    return hits


def runner(levels, lines, kind, tag_dtype=np.uint64, batch=1 << 14):
    """A no-argument function simulating ``lines`` through ``levels`` ((sets, ways) each) from
    empty; returns the hits per level."""
    geom = []
    slots = 0
    for sets, ways in levels:
        geom.append((slots, sets - 1, ways))
        slots += sets * ways
    geom = np.array(geom, dtype=np.uint64)
    bufs = np.zeros((2, batch), dtype=np.uint64)
    order = np.zeros(batch, dtype=np.int64)
    hit = np.zeros(batch, dtype=np.bool_)

    def go():
        tags = np.full(slots, np.iinfo(tag_dtype).max, dtype=tag_dtype)
        ages = np.zeros(slots, dtype=np.uint32)
        hits = np.zeros(len(levels), dtype=np.int64)
        return simulate(lines, tags, ages, geom, batch, kind, bufs, order, hit, hits)
    return go
