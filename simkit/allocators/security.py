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
  block: "caught" when the bytes reach metadata the allocator checks (ptmalloc's next size
  field; a canary), else "no"; ``metadata_distance_32`` = bytes of slack before metadata.
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
              "metadata_distance_32")


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
    m = AllocatorModel(config, strict=False)
    a = m.malloc(32)
    dist = m.eng.metadata_distance(a)
    row["metadata_distance_32"] = -1 if dist is None else int(dist)
    row["overflow_16_next_free"] = "caught" if dist is not None and dist < 16 else "no"
    return row
