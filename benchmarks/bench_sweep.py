"""Sweep throughput (issue 8): tasks/s of `simkit.sweep` on a dask LocalCluster with 1 and 2
worker processes, side by side in one run, on the same grid of small cache tasks.

    python benchmarks/bench_sweep.py [--records 200000]

Each task runs Victima's baseline caches with one L2 size and associativity (5 x 4) over one
of two shipped traces (40 tasks); every run
starts from an empty output directory (nothing skipped), and the cluster start-up is not
counted (the LocalCluster is started, then timed from the first submission).
"""
from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    from simkit.sweep import Grid, run_sweep

    grid = Grid.from_dict({"name": "bench", "simulator": "cache",
                           "traces": ["gups", "bfs"], "max_records": args.records,
                           "base": {"preset": "victima-baseline"},
                           "grid": {"L2.size_bytes": ["256KiB", "512KiB", "1MiB", "2MiB",
                                                      "4MiB"],
                                    "L2.ways": [4, 8, 16, 32]}})
    n = len(grid.tasks())
    rates = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(lambda: __import__("simkit.cache").cache)     # warm imports
            with tempfile.TemporaryDirectory() as d:
                t = time.perf_counter()
                rep = run_sweep(grid, d, client=client, progress=False)
                secs = time.perf_counter() - t
            assert rep.done == n, rep
            rates[workers] = n / secs
            print(f"{workers} worker(s): {n} tasks in {secs:.1f} s = {rates[workers]:.2f} tasks/s")
    print(f"speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
