"""Roofline of the cache simulator: how close the full simulation runs to two lower bounds.

    python benchmarks/roofline.py [--n 16777216] [--repeats 5] [--threads 1] [--out results/roofline.csv]

For the 1-level (32K/8) and 3-level (32K/8, 1M/16, 8M/16, LRU) hierarchies over the same
uniformly random 8 B loads across 64 MiB, times side by side in one run (best of ``repeats``):

(a) ``records``: reading the trace records alone (address and meta word of each, line number
    taken): what any simulator of this trace must pay;
(b) ``sets Lk``: reading the whole set (every way's tag) that each access maps to at level k, in
    the simulator's own state array after a warm-up, one level alone; ``sets all``: every
    level's set for each access, as the simulation must when every level misses;
(c) ``simulate``: ``Hierarchy.run`` over the records (threads as given).

The last column is the simulation's speed as a fraction of each bound. Prints a table and
writes the rows as CSV (default ``results/roofline.csv``).
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import time

import numpy as np
from numba import njit


@njit(cache=True)
def _read_records(words, line_shift):
    ls = np.uint64(line_shift)
    acc = np.uint64(0)
    for i in range(words.shape[0]):
        acc += (words[i, 0] >> ls) ^ words[i, 1]
    return acc


@njit(cache=True)
def _read_sets(words, line_shift, tags, geom, levels):
    """For every record, OR together every way of its set at each level in ``levels``."""
    ls = np.uint64(line_shift)
    acc = np.uint64(0)
    for i in range(words.shape[0]):
        line = words[i, 0] >> ls
        for k in range(levels.shape[0]):
            lv = levels[k]
            ways = geom[lv, 1]
            b = geom[lv, 2] + (line & geom[lv, 0]) * ways
            x = np.uint64(0)
            for w in range(ways):
                x |= tags[b + w]
            acc += x
    return acc


def best_of(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


WORKLOADS = (("1-level", "single"), ("3-level", "reference-3level"))


def roofline(n: int, repeats: int, threads: int = 1) -> list[dict]:
    from simkit.cache import Hierarchy, single
    from simkit.cache import _kernels as K
    from simkit.trace import synth
    from simkit.trace.stream import kernel_view

    assert K.G_SETMASK == 0 and K.G_WAYS == 1 and K.G_BASE == 2
    recs = synth.uniform(n, 64 << 20, seed=0)
    words = kernel_view(recs)
    rows = []
    for label, name in WORKLOADS:
        cfg = single("32KiB", 8) if name == "single" else name
        h = Hierarchy(cfg, threads=threads) if threads != 1 else Hierarchy(cfg)
        s = h.state
        h.run(recs[: min(n, 1 << 22)])                   # warm state for the set reads
        ls = s.line_shift
        _read_records(words[:1000], ls)
        parts = [("records", lambda: _read_records(words, ls))]
        for lv in range(s.nlev):
            one = np.array([lv], dtype=np.int64)
            parts.append((f"sets {s.config.levels[lv].name}",
                          lambda one=one: _read_sets(words, ls, s.tags, s.geom, one)))
        if s.nlev > 1:
            every = np.arange(s.nlev, dtype=np.int64)
            parts.append(("sets all", lambda: _read_sets(words, ls, s.tags, s.geom, every)))
        _read_sets(words[:1000], ls, s.tags, s.geom, np.arange(s.nlev, dtype=np.int64))

        def simulate():
            h.reset()
            h.run(recs)
        parts.append((f"simulate (threads={threads})", simulate))
        times = {what: best_of(fn, repeats) for what, fn in parts}
        sim = times[parts[-1][0]]
        for what, t in times.items():
            rows.append({"workload": label, "component": what, "seconds": t,
                         "M_accesses_per_s": n / t / 1e6, "simulate_fraction": t / sim})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 24)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join("results", "roofline.csv"))
    args = ap.parse_args()
    rows = roofline(args.n, args.repeats, args.threads)
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    print(f"{args.n} uniformly random 8 B loads over 64 MiB, best of {args.repeats}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(load)}")
    print(f"  {'workload':8s} {'component':24s} {'seconds':>8s} {'M acc/s':>9s} {'sim/bound':>9s}")
    for r in rows:
        print(f"  {r['workload']:8s} {r['component']:24s} {r['seconds']:8.3f} "
              f"{r['M_accesses_per_s']:9.1f} {r['simulate_fraction']:9.3f}")
    d = os.path.dirname(args.out)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) + ["loadavg"])
        w.writeheader()
        for r in rows:
            w.writerow(dict(r, loadavg=" ".join(load)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
