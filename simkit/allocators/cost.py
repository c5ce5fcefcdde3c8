"""The allocator cost model: operation counts times per-operation costs.

A replay's time is predicted as

    sum over operations k of  count_k x cost_k

where the counts come from the model's kernel counters (``operations``) and the costs are CPU
nanoseconds per operation measured on the machine by a microbenchmark
(``simkit.calibrate.malloc_cost.measure_costs``, the C program ``csrc/malloc_costs.c``). The
operations mirror the work a real allocator does beyond its fast path:

- ``call``: every malloc / free / realloc (the fast path; its cost is not measured but fitted,
  leave-one-trace-out, by ``simkit.calibrate.malloc_cost``, or taken from a real allocator's
  measured fast path);
- ``fault``: the first write to a page (the RSS model's page faults), ``release_page``: each
  resident page given back (munmap, trim, purge);
- system calls by kind: ``brk`` (sbrk and trims), ``mmap`` (and hardened_malloc's PROT_NONE
  mapping over a freed large region), ``munmap``, ``mremap``, ``mprotect`` (a slab or large
  region made usable in a PROT_NONE reservation), ``madvise`` (a purged slab);
- ``bitmap_word``: 64-bit words of slot bitmaps tested (a scan covers 64 slots per word), and
  ptmalloc's binmap words (32 bins each) searched;
- ``meta_line``: metadata cache lines visited beyond the fast path (ptmalloc: bin list steps,
  unsorted chunks sorted, coalesced neighbours; slab: quarantine swaps, local-free collections,
  slab descriptors created or purged), costed as a dependent load in a 256 KiB working set
  (an assumption: the metadata a replay revisits is mostly cache-resident; the microbenchmark
  also measures 16 KiB, 4 MiB and 64 MiB, ``LINE_NS``);
- ``memset_line``: 64-byte lines the allocator writes or reads in bulk (zero-on-free, the
  write-after-free check).

``harness_operations(records)`` counts the replayer's own work on the same trace (its memset of
up to 256 bytes of each block), which every allocator's measured time contains; the page faults
its touches cause are already the model's ``fault`` count.
"""
from __future__ import annotations

import numpy as np

from simkit.errors import InputError

# operation -> CPU ns; defaults: measured on the development machine (a 2-vCPU KVM guest,
# Debian 12, 2026-12-07 18:48 UTC, load 3.8 rising to 10) by csrc/malloc_costs.c, min of 7
# batches; "call" is the mean of that run's leave-one-trace-out fits (12.6 ns; 8.8-14.6 by
# fold). ``python -m simkit.calibrate.malloc_cost --out F.json`` measures this machine's.
COST_NS = {"call": 12.6, "fault": 1357.0, "release_page": 75.9, "brk": 601.0, "mmap": 427.0,
           "munmap": 983.0, "mremap": 1127.0, "mprotect": 1195.0, "madvise": 261.0,
           "bitmap_word": 0.44, "meta_line": 4.94, "memset_line": 0.31}
OPERATIONS = tuple(COST_NS)
# the dependent-load cost per cache line by working set (KiB), same run; meta_line = 256 KiB
LINE_NS = {16: 1.45, 256: 4.94, 4096: 127.4, 65536: 216.2}
META_LINE_KIB = 256


def operations(stats) -> dict:
    """Operation counts of one replay (``AllocStats``) for the cost model."""
    c = stats.counters
    g = c.get
    ops = dict.fromkeys(OPERATIONS, 0)
    ops["call"] = stats.events
    ops["fault"] = g("page_faults", 0)
    ops["release_page"] = g("pages_released", 0)
    ops["mmap"] = g("mmap_calls", 0) + g("remap_calls", 0)
    ops["munmap"] = g("munmap_calls", 0)
    ops["mremap"] = g("mremap_calls", 0)
    ops["mprotect"] = g("mprotect_calls", 0)
    ops["madvise"] = g("madvise_calls", 0)
    ops["brk"] = g("sbrk_calls", 0) + g("trims", 0)
    ops["bitmap_word"] = g("bitmap_words", 0) + g("binmap_steps", 0) // 32
    if stats.config.design == "ptmalloc":
        # list steps that visit a chunk (not the binmap's bins, 32 per binmap word)
        ops["meta_line"] = (g("list_steps", 0) - g("binmap_steps", 0) + g("unsorted_scanned", 0)
                            + g("coalesces", 0))
    else:
        ops["meta_line"] = (g("quarantined", 0) + g("local_collects", 0)
                            + g("slabs_created", 0) + g("slabs_purged", 0))
    ops["memset_line"] = (g("zeroed_bytes", 0) + g("checked_bytes", 0)) // 64
    return ops


def harness_operations(records) -> dict:
    """The replayer's touching of each allocated block (``csrc/malloc_replay.c``): memset of
    min(size, 256) bytes (``memset_line``). Its one byte per further 4 KiB page mostly faults
    the page in (the model's ``fault``) and is not counted again. Frees touch nothing."""
    from simkit.trace.alloc import AllocOp

    r = np.asarray(records)
    size = r["size"][r["op"] != AllocOp.FREE].astype(np.int64)
    size = size[size > 0]
    ops = dict.fromkeys(OPERATIONS, 0)
    ops["memset_line"] = int(((np.minimum(size, 256) + 63) // 64).sum())
    return ops


def check_costs(cost: dict) -> dict:
    """``COST_NS`` updated with ``cost`` (known keys, non-negative numbers)."""
    out = dict(COST_NS)
    for k, v in cost.items():
        if k not in COST_NS or not isinstance(v, (int, float)) or v < 0:
            raise InputError(f"cost: bad weight {k}={v!r} (keys {', '.join(COST_NS)}, >= 0)")
        out[k] = float(v)
    return out


def predict_ns(ops: dict, cost: dict) -> float:
    """sum over operations of count x cost (ns)."""
    return float(sum(cost[k] * n for k, n in ops.items()))


def breakdown(ops: dict, cost: dict) -> dict:
    """Each operation's share of ``predict_ns`` (ns)."""
    return {k: cost[k] * n for k, n in ops.items()}


__all__ = ["COST_NS", "LINE_NS", "META_LINE_KIB", "OPERATIONS", "breakdown", "check_costs",
           "harness_operations", "operations", "predict_ns"]
