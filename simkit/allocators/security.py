"""Security probes run identically against every allocator model: one row of the allocator x
property table per model.

Each probe replays the same tiny sequence the C probe of the real allocators
(``simkit/bench/malloc/csrc/malloc_probe.c``) runs in a fresh process, so a model's row can be
put beside its real counterpart's (the ``allocators`` experiment does):

- ``double_free_N``: p = malloc(N); a guard malloc(16); free(p); free(p). "caught" when the
  allocator detects it (aborts), "crash" when it faults, "no" when it takes it silently;
- ``invalid_free``: free(p + 16) of a 64-byte block;
- ``reuse_N``: p freed, does the next malloc(N) return p? ``reuse_distance_32``: mallocs of
  32 B until p comes back (-1: not within 4096);
- ``placement_entropy_bits``: Shannon entropy of the deltas between 256 consecutive 32-byte
  allocations (0: a fixed stride; randomized placement when > 1 bit);
- ``zero_on_free``: a model has no memory contents; the design's flag is reported;
- ``overflow_16_next_free``: 16 bytes written past a 32-byte request, then free of the next
  block: "caught" when the bytes reach in-band metadata that free checks (ptmalloc's size field
  of the next chunk); a canary after the overflowed block is not looked at when its neighbour
  is freed, so canary designs report "no" here, as real hardened_malloc does;
- ``overflow_16_self_free``: the same overflow, then free of the overflowed block itself:
  "caught" when a canary within the 16 bytes is checked at free, or the in-band next-chunk size
  is (glibc's "free(): invalid next size", which a tcache-sized chunk never reaches: "no");
- ``double_free_fastbin_32`` / ``fastbin_dup_returned_32``: 7 blocks freed first (glibc's
  tcache is then full), then free p, q, p: is it detected, and does a later malloc return the
  same block twice (glibc's fastbin check compares only with the bin's top, so it does);
- ``adjacency_32``: the share of consecutive 32-byte allocations whose second block starts
  within 64 bytes after the first (what an overflow into the next block needs);
- ``metadata_distance_32`` = bytes of slack before metadata (-1: out of line; NaN for real
  allocators: not observable from outside).
"""
from __future__ import annotations

import math
from collections import Counter

from simkit.allocators.replay import AllocatorModel

SIZES = (32, 4096, 262144)
_CK = {0: "no", 1: "caught", 2: "crash", 3: "no"}

PROPERTIES = ("double_free_32", "double_free_4096", "double_free_262144", "invalid_free",
              "reuse_32", "reuse_4096", "reuse_262144", "reuse_distance_32",
              "placement_entropy_bits", "randomized", "zero_on_free", "overflow_16_next_free",
              "overflow_16_self_free", "double_free_fastbin_32", "fastbin_dup_returned_32",
              "adjacency_32", "metadata_distance_32")


def delta_entropy(addresses) -> float:
    """Shannon entropy (bits) of the deltas between consecutive addresses."""
    d = [b - a for a, b in zip(addresses, addresses[1:])]
    c = Counter(d)
    n = len(d)
    return abs(-sum(v / n * math.log2(v / n) for v in c.values())) if n else 0.0


def probe_model(config) -> dict:
    """The probe results for one allocator model (a preset name or config)."""
    name = AllocatorModel(config).name
    row = {"allocator": name, "kind": "model"}
    for n in SIZES:
        m = AllocatorModel(config, strict=False)
        p = m.malloc(n)
        m.malloc(16)
        m.free(p)
        row[f"double_free_{n}"] = _CK[m.free(p)]
    m = AllocatorModel(config, strict=False)
    p = m.malloc(64)
    m.malloc(16)
    bad = m._next_id
    m._next_id += 1
    m.eng.interior(p, bad, 16)
    row["invalid_free"] = _CK[m.free(bad)]
    for n in SIZES:
        m = AllocatorModel(config, strict=False)
        p = m.malloc(n)
        a = m.address(p)
        m.free(p)
        row[f"reuse_{n}"] = "yes" if m.address(m.malloc(n)) == a else "no"
    m = AllocatorModel(config, strict=False)
    p = m.malloc(32)
    a = m.address(p)
    m.free(p)
    dist = -1
    for i in range(1, 4097):
        if m.address(m.malloc(32)) == a:
            dist = i
            break
    row["reuse_distance_32"] = dist
    m = AllocatorModel(config, strict=False)
    addrs = [m.address(m.malloc(32)) for _ in range(256)]
    row["placement_entropy_bits"] = round(delta_entropy(addrs), 3) + 0.0
    row["randomized"] = "yes" if row["placement_entropy_bits"] > 1 else "no"
    row["zero_on_free"] = "yes" if getattr(m.cfg, "zero_on_free", False) else "no"
    deltas = [b - a for a, b in zip(addrs, addrs[1:])]
    row["adjacency_32"] = round(sum(0 < d <= 64 for d in deltas) / len(deltas), 4)
    m = AllocatorModel(config, strict=False)
    a = m.malloc(32)
    dist = m.eng.metadata_distance(a)
    row["metadata_distance_32"] = -1 if dist is None else int(dist)
    near = dist is not None and dist < 16
    inband = m.cfg.design == "ptmalloc"
    canary = getattr(m.cfg, "canary_bytes", 0) > 0
    row["overflow_16_next_free"] = "caught" if near and inband else "no"
    # glibc puts a freed 48-byte chunk into the tcache before any next-size check
    tcache = inband and getattr(m.cfg, "tcache_count", 0) > 0
    row["overflow_16_self_free"] = "caught" if near and ((inband and not tcache) or canary) \
        else "no"
    m = AllocatorModel(config, strict=False)
    p, q = m.malloc(32), m.malloc(32)
    fill = [m.malloc(32) for _ in range(7)]
    for t in fill:
        m.free(t)
    checks = [m.free(p), m.free(q), m.free(p)]
    got = [m.address(m.malloc(32)) for _ in range(10)]
    worst = max(checks, key=lambda c: {0: 0, 3: 0, 1: 2, 2: 1}[c])
    row["double_free_fastbin_32"] = _CK[worst]
    row["fastbin_dup_returned_32"] = "yes" if worst in (0, 3) and len(set(got)) < len(got) \
        else "no"
    return row
