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
  allocators: not observable from outside);
- ``double_free_delayed_32``: free(p), 1024 x free(malloc(32)), free(p) (mimalloc-bench's
  double_free_delayed); ``double_free_interleaved_32``: free p, q, p with the tcache not full;
- ``write_after_free_64``: bytes 16.. of a freed block written, then 20,000 malloc/free pairs:
  "caught" when the allocator notices the write when it hands the slot out again;
- ``freelist_poison_32``: a freed block's first word overwritten with an attacker's address:
  "returned" when a later malloc hands that address out, "caught" when it aborts;
- ``overflow_1_24``: one byte written past a 24-byte request, both blocks freed (a canary sized
  to the request, or an in-band header, is right there);
- ``guard_after_32`` / ``guard_after_262144`` / ``guard_before_262144``: bytes from the block's
  end (start) to the first address that faults, read a page at a time (-1: none within 1 MiB);
- ``uaf_read_faults_32`` / ``uaf_read_faults_262144``: does reading a freed block fault;
- ``reuse_cycle_262144``: freed, then malloc/free cycles until the address returns (-1: not in
  64; a large-allocation quarantine keeps it longer);
- ``malloc0`` (null / same / unique pointers for malloc(0)) and ``malloc0_write_faults``;
- ``invalid_free_stack`` / ``invalid_free_unaligned``: free of a stack address, of p + 1;
- ``freed_block_pointer_32``: does a freed block hold a raw heap pointer (a free-list link an
  attacker can read);
- ``cross_run_random_32``: do the offsets of 64 consecutive 32-byte blocks differ between two
  runs (two processes; models: two seeds, as each process draws its own).

A model has no memory contents: properties that need them are "n/m" (not modelled) in model
rows; ``MODEL_BASIS`` says for each property how a model row is obtained (``simulated``: the
model's own state machine replays the sequence; ``layout``: computed from the model's block
and mapping addresses; ``not modelled``). Every real row is measured (``probe_real``).
"""
from __future__ import annotations

import dataclasses
import math
from collections import Counter

from simkit.allocators import _kernels as K
from simkit.allocators.replay import AllocatorModel

SIZES = (32, 4096, 262144)
_CK = {0: "no", 1: "caught", 2: "crash", 3: "no"}

PROPERTIES = ("double_free_32", "double_free_4096", "double_free_262144", "invalid_free",
              "reuse_32", "reuse_4096", "reuse_262144", "reuse_distance_32",
              "placement_entropy_bits", "randomized", "zero_on_free", "overflow_16_next_free",
              "overflow_16_self_free", "double_free_fastbin_32", "fastbin_dup_returned_32",
              "adjacency_32", "metadata_distance_32",
              "double_free_delayed_32", "double_free_interleaved_32", "write_after_free_64",
              "freelist_poison_32", "overflow_1_24", "guard_after_32", "guard_after_262144",
              "guard_before_262144", "uaf_read_faults_32", "uaf_read_faults_262144",
              "reuse_cycle_262144", "malloc0", "malloc0_write_faults", "invalid_free_stack",
              "invalid_free_unaligned", "freed_block_pointer_32", "cross_run_random_32")
NM = "n/m"      # not modelled: the property needs memory contents or process mappings
MODEL_BASIS = {p: "simulated" for p in PROPERTIES}
MODEL_BASIS.update({p: "layout" for p in (
    "placement_entropy_bits", "randomized", "adjacency_32", "metadata_distance_32",
    "overflow_16_next_free", "overflow_16_self_free", "overflow_1_24", "guard_after_32",
    "guard_after_262144", "guard_before_262144", "uaf_read_faults_32",
    "uaf_read_faults_262144", "malloc0_write_faults")})
MODEL_BASIS.update({p: "not modelled" for p in (
    "zero_on_free", "write_after_free_64", "freelist_poison_32", "freed_block_pointer_32")})
_WORST = {0: 0, 3: 0, 1: 2, 2: 1}


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
    row["zero_on_free"] = NM
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
    # one byte past a 24-byte request: it reaches a canary (checked at the block's own free)
    # or the next chunk's in-band size, which a tcache-sized free does not check
    m = AllocatorModel(config, strict=False)
    a = m.malloc(24)
    d1 = m.eng.metadata_distance(a)
    row["overflow_1_24"] = "caught" if d1 is not None and d1 < 1 and (
        canary or (inband and not tcache)) else "no"
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
    row.update(_more_model_probes(config))
    return row


def _worst(checks) -> str:
    return _CK[max(checks, key=lambda c: _WORST[c])]


def _mapped_end(m, addr: int) -> int:
    """The first address at or after ``addr`` that the model has not mapped (heap end for
    ptmalloc; the end of the run of adjacent slabs for slab designs; guard slabs and address
    space not yet handed to a slab are unmapped)."""
    e = m.eng
    if m.cfg.design == "ptmalloc":
        return K.HEAP_BASE + (int(e.S[K.S_END]) - K.NB) * 16
    n = int(e.Q[K.Q_NSLABS])
    spans = sorted((int(e.slab_addr[s]), int(e.slab_addr[s] + e.cls_bytes[e.slab_cls[s]]))
                   for s in range(n))
    x = addr
    for lo, hi in spans:
        if lo <= x < hi:
            x = hi
    return x


def _distance(d: int) -> int:
    return d if 0 <= d <= 1 << 20 else -1


def _large_mapping(m, oid):
    """(start, end) of the mapping of large object ``oid``; None when the model does not put
    it in a mapping of its own (ptmalloc's heap)."""
    e = m.eng
    if m.cfg.design == "ptmalloc":
        if int(e.obj_g[oid]) >= 0:
            return None
        start = m.address(oid) - 16
        return start, start + int(e.obj_msz[oid])
    if int(e.obj_slot[oid]) >= 0:
        return None
    start = m.address(oid) - m.cfg.header_bytes
    return start, start + int(e.obj_msz[oid])


def _more_model_probes(config) -> dict:
    row = {}
    M = lambda cfg=config: AllocatorModel(cfg, strict=False)   # noqa: E731
    m = M()
    p = m.malloc(32)
    checks = [m.free(p)]
    for _ in range(1024):
        checks.append(m.free(m.malloc(32)))
    checks += [m.free(p)]
    m.malloc(32), m.malloc(32)
    row["double_free_delayed_32"] = _worst(checks)
    m = M()
    p, q = m.malloc(32), m.malloc(32)
    row["double_free_interleaved_32"] = _worst([m.free(p), m.free(q), m.free(p)])
    for k in ("write_after_free_64", "freelist_poison_32", "freed_block_pointer_32"):
        row[k] = NM
    # guards: the model's mappings around a block
    m = M()
    p = m.malloc(32)
    end = m.address(p) + 32
    row["guard_after_32"] = _distance(_mapped_end(m, end) - end)
    row["uaf_read_faults_32"] = "no"          # freed slots stay mapped (purging is madvise)
    m.free(p)
    if m.cfg.design == "ptmalloc" and _mapped_end(m, end) < end:
        row["uaf_read_faults_32"] = "yes"     # trimmed below it
    m = M()
    p = m.malloc(262144)
    span = _large_mapping(m, p)
    a = m.address(p)
    guard = getattr(m.cfg, "large_guard_pages", 0)
    if span is None:
        row["guard_after_262144"] = _distance(_mapped_end(m, a + 262144) - a - 262144)
        row["guard_before_262144"] = NM
    else:
        # the newest mapping is the lowest (mmap grows down): below it nothing is mapped;
        # above it lies what the process mapped before, unknown to the model unless guarded
        row["guard_before_262144"] = a - span[0]
        row["guard_after_262144"] = span[1] - a - 262144 if guard else NM
    before = int(m.eng.S[K.S_MMAPPED])
    m.free(p)
    if span is None:
        row["uaf_read_faults_262144"] = "yes" if _mapped_end(m, a) <= a else "no"
    else:
        row["uaf_read_faults_262144"] = "yes" if int(m.eng.S[K.S_MMAPPED]) < before else "no"
    m = M()
    p = m.malloc(262144)
    a = m.address(p)
    m.free(p)
    cyc = -1
    for i in range(1, 65):
        q = m.malloc(262144)
        back = m.address(q) == a
        m.free(q)
        if back:
            cyc = i
            break
    row["reuse_cycle_262144"] = cyc
    m = M()
    p, q = m.malloc(0), m.malloc(0)
    ap, aq = m.address(p), m.address(q)
    row["malloc0"] = "null" if ap == 0 else "same" if ap == aq else "unique"
    # a 0-byte block is an ordinary slot or chunk in every model: mapped, writable
    row["malloc0_write_faults"] = "no" if _mapped_end(m, ap) > ap else "yes"
    for k, off in (("invalid_free_unaligned", 1), ("invalid_free_stack", None)):
        if m.cfg.design == "ptmalloc":
            row[k] = NM                       # glibc's pointer checks read the fake header
            continue
        m = M()
        p = m.malloc(64)
        m.malloc(16)
        bad = m._next_id
        m._next_id += 1
        m.eng.interior(p, bad, off if off is not None else 0)
        if off is None:
            m.eng.obj_addr[bad] = 0x7FFC00000000     # a stack address: in no slab
        row[k] = _CK[m.free(bad)]
    row["cross_run_random_32"] = _cross_run(config)
    return row


def layout_offsets(config, seed=None, n=64) -> list:
    """Offsets of ``n`` consecutive 32-byte blocks from the first (a model: ``seed`` replaces
    the config's, as each process of a real allocator draws its own)."""
    cfg = AllocatorModel(config).cfg
    if seed is not None and hasattr(cfg, "seed"):
        cfg = dataclasses.replace(cfg, seed=seed)
    m = AllocatorModel(cfg, strict=False)
    addrs = [m.address(m.malloc(32)) for _ in range(n)]
    return [x - addrs[0] for x in addrs]


def _cross_run(config) -> str:
    cfg = AllocatorModel(config).cfg
    s = getattr(cfg, "seed", 0)
    return "yes" if layout_offsets(cfg, s) != layout_offsets(cfg, s + 1) else "no"
