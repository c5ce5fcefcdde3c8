"""Allocator model speed (issue 6): 10M events through the ptmalloc model in < 10 s on one
core; the slab presets and the shipped real traces beside it.

    python benchmarks/bench_alloc_speed.py [--events 10000000] [--repeats 3] [--stream]

Synthetic trace: ``simkit.trace.alloc.synthetic_alloc`` (half mallocs, log-uniform sizes to
4 KiB, 0.1% of 64 KiB-1 MiB, geometric lifetimes of mean 1000 allocations; seed 1), in memory.
``--stream`` writes it to a .skat file first and replays it from disk in 1M-event chunks.
Reported: best of ``--repeats`` wall seconds after a warm-up run (numba's on-disk cache
loaded), events per second. Each model replays the whole trace from an empty heap.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--models", default="ptmalloc,sjmalloc,hardened,hardened-light,mimalloc")
    args = ap.parse_args()

    from simkit.allocators import AllocatorModel
    from simkit.trace.alloc import synthetic_alloc, write_alloc_trace
    from simkit.trace.alloc_catalog import list_alloc_traces

    recs = synthetic_alloc(args.events, seed=1)
    src = recs
    tmp = None
    if args.stream:
        tmp = tempfile.TemporaryDirectory()
        src = write_alloc_trace(Path(tmp.name) / "synthetic.skat", recs)
    print(f"synthetic trace: {len(recs):,} events{' (streamed from disk)' if args.stream else ''}")
    for name in args.models.split(","):
        m = AllocatorModel(name)
        m.run(recs[:10_000])
        best = None
        for _ in range(args.repeats):
            t = time.perf_counter()
            s = m.run(src, timeline_points=0)
            dt = time.perf_counter() - t
            best = dt if best is None else min(best, dt)
        print(f"  {name:15s} {best:6.2f} s  {s.events / best / 1e6:5.2f} M events/s  "
              f"peak footprint {s.peak_footprint_bytes / 2**20:.1f} MiB "
              f"(live {s.peak_live_bytes / 2**20:.1f} MiB)")
    print("shipped traces (ptmalloc):")
    for name in list_alloc_traces().name:
        m = AllocatorModel("ptmalloc")
        t = time.perf_counter()
        s = m.run(name, timeline_points=0)
        dt = time.perf_counter() - t
        print(f"  {name:18s} {s.events:>9,} events  {dt:6.2f} s  {s.events / dt / 1e6:5.2f} M/s "
              f"(incl. xz decompression)")


if __name__ == "__main__":
    main()
