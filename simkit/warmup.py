"""Compile the jitted kernels into numba's on-disk cache (``make setup`` runs it once).

    python -m simkit.warmup [--threads] [--jobs N]

A fresh process otherwise spends tens of CPU seconds compiling the kernels on first use;
after this, later processes load them from the cache (about a second). Each kernel is run once
on a tiny input through its ordinary front, so exactly the specializations a real run uses are
compiled. ``--threads`` also compiles the multi-threaded cache kernel (``Hierarchy(threads=T)``,
about 10 s more). ``--jobs N`` (default: the CPUs this process may use) compiles the steps in N
worker processes, the costliest first, so a cold set-up on two cores takes about half the wall
time; each kernel is still compiled once. Prints each step's CPU seconds.
"""
from __future__ import annotations

import argparse
import os
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

    # costliest first (CPU s on the development VM, 2026-12-07: 41 / 24 / 9 / 6 / 1)
    out = [("tlb + core", tlb_core), ("allocators", allocators), ("cache (non-inclusive)", cache),
           ("cache (inclusive/exclusive walk)", cache_walk), ("trace", trace)]
    if threads:
        out.append(("cache (threads)", cache_threads))
    return out


def _step(index: int, threads: bool) -> tuple[str, float]:
    """Run step ``index`` of ``steps(threads)``; (name, CPU seconds). Also a worker's task."""
    name, fn = steps(threads)[index]
    t = time.process_time()
    fn()
    return name, time.process_time() - t


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                                # not Linux
        return os.cpu_count() or 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simkit.warmup", description=__doc__.split("\n")[0])
    ap.add_argument("--threads", action="store_true",
                    help="also compile the multi-threaded cache kernel")
    ap.add_argument("--jobs", type=int, default=None, metavar="N",
                    help="compile in N worker processes (default: the usable CPUs)")
    args = ap.parse_args(argv)
    n = len(steps(args.threads))
    jobs = max(1, min(n, args.jobs if args.jobs is not None else _cpus()))
    wall = time.perf_counter()
    total = 0.0
    if jobs == 1:
        done = (_step(i, args.threads) for i in range(n))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"))
        futures = [pool.submit(_step, i, args.threads) for i in range(n)]   # costliest first
        done = (f.result() for f in as_completed(futures))
    for name, dt in done:
        total += dt
        print(f"simkit warmup: {name}: {dt:.1f} s CPU", flush=True)
    if jobs > 1:
        pool.shutdown()
    print(f"simkit warmup: {total:.1f} s CPU in all, {time.perf_counter() - wall:.1f} s wall "
          f"with {jobs} process{'es' if jobs > 1 else ''} (later processes load numba's cache)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
