"""Roofline of the cache simulator: how close the full simulation runs to two lower bounds.

    python benchmarks/roofline.py [--n 16777216] [--repeats 5] [--threads 1] [--ideas]
                                  [--out results/roofline.csv]

For the 1-level (32K/8) and 3-level (32K/8, 1M/16, 8M/16, LRU) hierarchies over the same
uniformly random 8 B loads across 64 MiB, times side by side in one run (best of ``repeats``):

(a) ``records``: reading the trace records alone (address and meta word of each, line number
    taken): what any simulator of this trace must pay; with ``--threads`` T > 1 also
    ``records x T threads``: every thread reading every record at once, as each thread of a
    threaded run does (wall time is the bound there);
(b) ``sets Lk``: reading the whole set (every way's tag) that each access maps to at level k, in
    the simulator's own state array after a warm-up, one level alone; ``sets all``: every
    level's set for each access, as the simulation must when every level misses;
(c) ``simulate``: ``Hierarchy.run`` over the records (threads as given);
(d) with ``--ideas``, the bare kernels of ``kernel_ideas.py`` over the same line numbers:
    simkit's carry shift with 64-bit and 32-bit tags, with the last level's batches
    partitioned by set, and timestamp LRU; each must count the simulation's hits.

Each row gives the best wall and process-CPU seconds (the CPU time is steadier on a shared
machine; with threads it adds up every thread's) and the simulation's speed as a fraction of
the row's (CPU time). Prints a table and writes the rows as CSV (default
``results/roofline.csv``).
"""
from __future__ import annotations

import argparse
import csv
import os
import platform

import numpy as np
from numba import njit, prange

from bench_cache_speed import best_wall_cpu as best_of   # a sibling script (sys.path[0])


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


@njit(cache=True, parallel=True)
def _read_records_threads(words, line_shift, threads):
    """Every thread reads every record (as each thread of ``Hierarchy(threads=T)`` does, to
    keep its own lines): the records row of a threaded run."""
    acc = np.zeros(threads, dtype=np.uint64)
    for t in prange(threads):
        acc[t] = _read_records(words, line_shift)
    return acc


WORKLOADS = (("1-level", "single"), ("3-level", "reference-3level"))


def roofline(n: int, repeats: int, threads: int = 1, ideas: bool = False) -> list[dict]:
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
        h = Hierarchy(cfg, threads=threads)
        s = h.state
        h.run(recs[: min(n, 1 << 22)])                   # warm state for the set reads
        ls = s.line_shift
        _read_records(words[:1000], ls)
        parts = [("records", lambda: _read_records(words, ls))]
        if threads > 1:
            _read_records_threads(words[:1000], ls, threads)
            parts.append((f"records x {threads} threads",
                          lambda: _read_records_threads(words, ls, threads)))
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
        sim_name = f"simulate (threads={threads})"
        parts.append((sim_name, simulate))
        checks = {}
        if ideas:
            import kernel_ideas as I

            lines = words[:, 0] >> np.uint64(ls)
            levels = [(lv.sets, lv.ways) for lv in s.config.levels]
            for what, kind, dt in (("idea chain u64", 0, np.uint64),
                                   ("idea chain u32 tags", 0, np.uint32),
                                   ("idea chain part. last", 1, np.uint64),
                                   ("idea age argmin", 2, np.uint64)):
                go = I.runner(levels, lines, kind, dt)
                I.runner(levels, lines[:1000], kind, dt)()
                parts.append((what, go))
                checks[what] = go
        times = {what: best_of(fn, repeats) for what, fn in parts}
        h.reset()
        h.run(recs)
        hits = [lv.hits for lv in h.stats.levels]
        sim = times[sim_name][1]
        for what, (wall, cpu) in times.items():
            same = list(checks[what]()) == hits if what in checks else ""
            rows.append({"workload": label, "component": what, "wall_s": wall, "cpu_s": cpu,
                         "M_accesses_per_s_wall": n / wall / 1e6,
                         "M_accesses_per_s_cpu": n / cpu / 1e6,
                         "simulate_fraction": cpu and sim / cpu, "same_hits": same})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 24)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ideas", action="store_true", help="also time kernel_ideas.py's kernels")
    ap.add_argument("--out", default=os.path.join("results", "roofline.csv"))
    args = ap.parse_args()
    rows = roofline(args.n, args.repeats, args.threads, args.ideas)
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    print(f"{args.n} uniformly random 8 B loads over 64 MiB, best of {args.repeats}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(load)}")
    print(f"  {'workload':8s} {'component':24s} {'wall s':>7s} {'cpu s':>7s} {'M/s wall':>9s} "
          f"{'M/s cpu':>8s} {'sim/row':>8s} same hits")
    for r in rows:
        print(f"  {r['workload']:8s} {r['component']:24s} {r['wall_s']:7.3f} {r['cpu_s']:7.3f} "
              f"{r['M_accesses_per_s_wall']:9.1f} {r['M_accesses_per_s_cpu']:8.1f} "
              f"{r['simulate_fraction']:8.3f} {r['same_hits']}")
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
