"""Address-translation simulator speed (issue 3), side by side with pycachesim in one run.

    python benchmarks/bench_tlb_speed.py [--repeats 3] [--stream-records 1000000000]
    python benchmarks/bench_tlb_speed.py --core [--repeats 5]

``--core``: the full model (TLBs, walks, data caches and the core timing model, both of its
twins) beside the translation-only model (the same without the core) on the shipped GUPS trace,
for victima-radix and victima-paper with the victima core: accesses per CPU second (thread CPU
time, best of ``--repeats``, the two models alternating), their ratio and the load average
(issue 13's target: the full model at >= 10 M accesses/s).

The full model (L1 + L2 TLBs, PWCs, walks and every data access through Victima's 3 cache
levels) on the shipped GUPS trace, for the radix baseline, Victima (artifact and paper) and
nested paging; beside it pycachesim 0.3.1 running the same trace's addresses through the data
caches alone (victima-baseline geometry, LRU: pycachesim has no SRRIP), a lower bound on the
work a peer would do. ``--stream-records`` also streams a trace of that many records from disk
through victima-paper in a child process and reports its peak memory.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cache_speed import best_of, pycachesim_3level, stream  # noqa: E402

CONFIGS = ("victima-radix", "victima-artifact", "victima-paper", "pom-tlb")


def speed(repeats: int) -> list[dict]:
    from simkit.tlb import MMU, MMUConfig
    from simkit.trace.catalog import find_trace
    from simkit.trace.stream import open_source

    name, total, chunks = open_source(find_trace("gups"), 1 << 22, None)
    import numpy as np
    recs = np.concatenate(list(chunks))
    n = len(recs)
    rows = []
    for label in CONFIGS + ("victima-radix nested", "victima-paper nested"):
        preset, _, env = label.partition(" ")
        cfg = MMUConfig.preset(preset)
        if env:
            cfg = cfg.replace(nested=True)
        MMU(cfg).run(recs[:1000])                         # compile / load the kernel
        secs = best_of(lambda: MMU(cfg).run(recs), repeats)
        rows.append({"workload": f"gups ({n} records)", "simulator": f"simkit tlb {label}",
                     "seconds": secs, "accesses_per_s": n / secs})
    addrs = [int(a) for a in recs["addr"]]
    # Victima's data-cache geometry: L1D 32 KiB/8, L2 2 MiB/16, LLC 1.375 MiB/11 (LRU)
    secs = best_of(lambda: pycachesim_3level(addrs, 8, (64, 2048, 2048), (8, 16, 11)), repeats)
    rows.append({"workload": f"gups ({n} records)",
                 "simulator": "pycachesim 3 data-cache levels only", "seconds": secs,
                 "accesses_per_s": n / secs})
    return rows


def core_speed(repeats: int) -> list[dict]:
    """Full model vs translation-only, alternating run by run, best thread-CPU time of each."""
    import time

    import numpy as np

    from simkit.tlb import MMU
    from simkit.trace.catalog import find_trace
    from simkit.trace.stream import open_source

    recs = np.concatenate(list(open_source(find_trace("gups"), 1 << 22, None)[2]))
    n = len(recs)
    rows = []
    for preset in ("victima-radix", "victima-paper"):
        models = {"translation only": None, "full model (+ core victima)": "victima"}
        best = dict.fromkeys(models, float("inf"))
        for core in models.values():
            MMU(preset, core=core).run(recs[:1000])            # compile / load the kernel
        for _ in range(repeats):
            for label, core in models.items():
                m = MMU(preset, core=core)
                t = time.thread_time()
                m.run(recs)
                best[label] = min(best[label], time.thread_time() - t)
        base = best["translation only"]
        for label, secs in best.items():
            rows.append({"preset": preset, "model": label, "records": n,
                         "cpu_seconds": round(secs, 4),
                         "M_accesses_per_s": round(n / secs / 1e6, 2),
                         "vs_translation_only": round(base / secs, 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stream-records", type=int, default=0,
                    help="also stream a trace of this many records from disk (e.g. 1000000000)")
    ap.add_argument("--core", action="store_true",
                    help="full model (with the core timing model) beside translation-only")
    args = ap.parse_args()
    import pandas as pd

    if args.core:
        import datetime
        print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
              f"load average {os.getloadavg()}, best of {args.repeats} (thread CPU time)")
        print(pd.DataFrame(core_speed(args.repeats)).to_string(index=False))
        print(f"load average at end {os.getloadavg()}")
        return

    df = pd.DataFrame(speed(args.repeats))
    peer = df.accesses_per_s.iloc[-1]
    df["ratio_vs_pycachesim"] = df.accesses_per_s / peer
    df["accesses_per_s"] = (df.accesses_per_s / 1e6).round(2).astype(str) + " M/s"
    print(df.to_string(index=False))
    if args.stream_records:
        secs, rss = stream(args.stream_records,
                           "from simkit.tlb import MMU; MMU('victima-paper').run(PATH)")
        print(f"streamed {args.stream_records} records from disk through victima-paper in "
              f"{secs:.1f} s ({args.stream_records / secs / 1e6:.1f} M/s), peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
