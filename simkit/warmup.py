"""Compile the jitted kernels into numba's on-disk cache (``make setup`` runs it once).

    python -m simkit.warmup [--threads]

A fresh process otherwise spends tens of CPU seconds compiling the kernels on first use;
after this, later processes load them from the cache (about a second). Each kernel is run once
on a tiny input through its ordinary front, so exactly the specializations a real run uses are
compiled. ``--threads`` also compiles the multi-threaded cache kernel (``Hierarchy(threads=T)``,
about 10 s more). Prints each step's CPU seconds.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _records(n: int = 2000) -> np.ndarray:
    from simkit.trace.format import ACCESS_DTYPE

    rng = np.random.default_rng(1)
    recs = np.zeros(n, ACCESS_DTYPE)
    recs["addr"] = rng.integers(0, 1 << 23, n) * 8
    recs["size"] = 8
    recs["icount"] = 4
    recs["op"] = rng.integers(0, 3, n)
    return recs


def steps(threads: bool = False):
    """(name, callable) for each kernel to compile."""
    recs = _records()

    def cache():
        from simkit.cache import Hierarchy
        Hierarchy("reference-3level").access(recs)

    def cache_walk():
        from simkit.cache import CacheConfig, Hierarchy, HierarchyConfig
        Hierarchy(HierarchyConfig(levels=(CacheConfig("L1", "4KiB", 4),
                                          CacheConfig("L2", "32KiB", 8)),
                                  inclusion="inclusive")).access(recs)

    def cache_threads():
        from simkit.cache import Hierarchy
        Hierarchy("reference-3level", threads=2).access(recs)

    def tlb_core():
        from simkit.tlb import MMU
        MMU("victima-radix", core="victima").run(recs)

    def allocators():
        from simkit.allocators import AllocatorModel
        from simkit.trace.alloc import synthetic_alloc
        events = synthetic_alloc(2000, seed=1)
        for name in ("ptmalloc", "hardened"):
            AllocatorModel(name).run(events, timeline_points=0)

    def trace():
        from simkit.trace import synth
        synth.sattolo(16, seed=1)

    out = [("cache (non-inclusive)", cache), ("cache (inclusive/exclusive walk)", cache_walk),
           ("tlb + core", tlb_core), ("allocators", allocators), ("trace", trace)]
    if threads:
        out.append(("cache (threads)", cache_threads))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simkit.warmup", description=__doc__.split("\n")[0])
    ap.add_argument("--threads", action="store_true",
                    help="also compile the multi-threaded cache kernel")
    args = ap.parse_args(argv)
    total = 0.0
    for name, fn in steps(args.threads):
        t = time.process_time()
        fn()
        dt = time.process_time() - t
        total += dt
        print(f"simkit warmup: {name}: {dt:.1f} s CPU", flush=True)
    print(f"simkit warmup: {total:.1f} s CPU in all (later processes load numba's cache)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
