"""Security probes run identically against every allocator model (and, through
``simkit.bench.malloc.probe_real``, every real allocator): the allocator x property table.

Each probe replays the same tiny sequence the C probe (``simkit/bench/csrc/malloc_probe.c``)
runs in a fresh process:

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

``REFERENCE_TABLE`` is REFERENCE.md 4.6 (measured on Debian 12) in these terms;
``compare_reference`` checks a real allocator's row against it.
"""
from __future__ import annotations

import math
from collections import Counter

from simkit.allocators.replay import AllocatorModel

SIZES = (32, 4096, 262144)
_CK = {0: "no", 1: "caught", 2: "crash", 3: "no"}

# REFERENCE.md 4.6, "Measured on Debian 12"
REFERENCE_TABLE = {
    "glibc": {"double_free_32": "caught", "double_free_4096": "caught",
              "double_free_262144": "crash", "invalid_free": "caught", "reuse_32": "yes",
              "reuse_4096": "yes", "reuse_262144": "no", "randomized": "no",
              "zero_on_free": "no"},
    "jemalloc": {"double_free_32": "no", "double_free_4096": "no", "double_free_262144": "no",
                 "invalid_free": "no", "reuse_32": "yes", "reuse_4096": "yes",
                 "reuse_262144": "no", "randomized": "no", "zero_on_free": "no"},
    "mimalloc": {"double_free_32": "no", "double_free_4096": "no", "double_free_262144": "no",
                 "invalid_free": "no", "reuse_32": "no", "reuse_4096": "no",
                 "reuse_262144": "yes", "randomized": "no", "zero_on_free": "no"},
    "tcmalloc": {"double_free_32": "no", "double_free_4096": "no", "double_free_262144": "no",
                 "invalid_free": "no", "reuse_32": "yes", "reuse_4096": "yes",
                 "reuse_262144": "yes", "randomized": "no", "zero_on_free": "no"},
    "scudo": {"double_free_32": "caught", "double_free_4096": "caught",
              "double_free_262144": "caught", "invalid_free": "caught", "reuse_32": "yes",
              "reuse_4096": "yes", "reuse_262144": "yes", "randomized": "yes",
              "zero_on_free": "no"},
    # documented only (REFERENCE 4.3/4.6); its model is the "hardened" preset
    "hardened_malloc": {"double_free_32": "caught", "invalid_free": "caught", "reuse_32": "no",
                        "randomized": "yes", "zero_on_free": "yes"},
}
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


def finish_real(row: dict) -> dict:
    """Derived columns of a real allocator's probe row (``simkit.bench.malloc.probe_real``)."""
    row = dict(row)
    row["randomized"] = "yes" if row.get("placement_entropy_bits", 0) > 1 else "no"
    row.setdefault("metadata_distance_32", -1)
    return row


def compare_reference(row: dict) -> list[tuple[str, str, str, bool]]:
    """(property, REFERENCE value, ours, equal) for every property REFERENCE lists for the
    row's allocator."""
    ref = REFERENCE_TABLE.get(row["allocator"], {})
    return [(k, v, str(row.get(k)), str(row.get(k)) == v) for k, v in ref.items()]


def security_table(models=("ptmalloc", "sjmalloc", "hardened", "hardened-light", "mimalloc"),
                   real=True):
    """The allocator x property table: every model, then every installed real allocator,
    with ``matches_reference`` (real allocators: all REFERENCE 4.6 properties equal)."""
    import pandas as pd

    rows = [probe_model(m) for m in models]
    if real:
        from simkit.bench.malloc import available, probe_real
        for a in available():
            r = finish_real(probe_real(a))
            cmp = compare_reference(r)
            r["matches_reference"] = all(c[3] for c in cmp) if cmp else None
            r["mismatches"] = "; ".join(f"{k}: ref {v}, ours {o}" for k, v, o, eq in cmp
                                        if not eq)
            rows.append(r)
    df = pd.DataFrame(rows)
    cols = ["allocator", "kind", *PROPERTIES, "matches_reference", "mismatches"]
    return df[[c for c in cols if c in df.columns]]
