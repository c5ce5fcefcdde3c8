"""Cache simulator speed, side by side with pycachesim in one run (REFERENCE.md section 6).

    python benchmarks/bench_cache_speed.py [--n 16777216] [--stream-records 268435456]

Prints accesses/s for simkit (1 level; 3 levels) and pycachesim (3 levels) on the same
uniformly random 8 B loads over 64 MiB, the ratio, the JIT start-up of a fresh process vs one
that reuses numba's on-disk cache, and the peak memory of streaming a large trace from disk.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def best_of(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def pycachesim_1level(addrs: list, length: int) -> None:
    """pycachesim with one 32 KiB 8-way LRU level (64 B lines), loading ``addrs``."""
    import cachesim

    mem = cachesim.MainMemory()
    l1 = cachesim.Cache("L1", 64, 8, 64, "LRU")
    mem.load_to(l1)
    mem.store_from(l1)
    cachesim.CacheSimulator(l1, mem).load(addrs, length=length)


def pycachesim_3level(addrs: list, length: int, sets=(64, 1024, 8192),
                     ways=(8, 16, 16)) -> None:
    """pycachesim with three LRU levels of 64 B lines (default: the reference-3level geometry),
    loading ``addrs``."""
    import cachesim

    mem = cachesim.MainMemory()
    l3 = cachesim.Cache("L3", sets[2], ways[2], 64, "LRU")
    mem.load_to(l3)
    mem.store_from(l3)
    l2 = cachesim.Cache("L2", sets[1], ways[1], 64, "LRU", store_to=l3, load_from=l3)
    l1 = cachesim.Cache("L1", sets[0], ways[0], 64, "LRU", store_to=l2, load_from=l2)
    cachesim.CacheSimulator(l1, mem).load(addrs, length=length)


def speed(n: int, repeats: int) -> list[dict]:
    from simkit.cache import Hierarchy, single
    from simkit.trace import synth

    recs = synth.uniform(n, 64 << 20, seed=0)
    rows = []
    for label, cfg in (("simkit 1-level 32KiB/8w LRU", single("32KiB", 8)),
                       ("simkit 3-level (reference-3level)", "reference-3level")):
        h = Hierarchy(cfg)
        h.run(recs[:1000])

        def go():
            h.reset()
            h.run(recs)
        rows.append({"simulator": label, "seconds": best_of(go, repeats)})
    addrs = recs["addr"].tolist()

    def pcs1():
        pycachesim_1level(addrs, 8)

    def pcs3():
        pycachesim_3level(addrs, 8)
    rows.insert(1, {"simulator": "pycachesim 0.3.1 1-level load(list)",
                    "seconds": best_of(pcs1, repeats)})
    rows.append({"simulator": "pycachesim 0.3.1 3-level load(list)",
                 "seconds": best_of(pcs3, repeats)})
    for r in rows:
        r["accesses_per_s_M"] = n / r["seconds"] / 1e6
    return rows


STARTUP = ("import time; t=time.perf_counter(); from simkit.cache import Hierarchy; "
           "import numpy as np; h=Hierarchy('reference-3level'); h.run(np.arange(1000,dtype=np.uint64)*64); "
           "print(time.perf_counter()-t)")


def real_traces(repeats: int) -> list[dict]:
    """simkit vs pycachesim (3 levels, LRU, loads) on every shipped real trace."""
    from simkit.cache import Hierarchy
    from simkit.trace.catalog import find_trace, list_traces
    from simkit.trace.format import Op, make_records, open_trace

    rows = []
    for name in list_traces()["name"]:
        recs = open_trace(find_trace(name)).read()
        addrs = recs["addr"] & np.uint64(0xFFFFFFFF)
        loads = make_records(addrs, op=Op.LOAD, size=1)
        h = Hierarchy("reference-3level")
        h.run(loads[:1000])

        def ours():
            h.reset()
            h.run(loads)
        addr_list = addrs.tolist()

        def theirs():
            pycachesim_3level(addr_list, 1)
        a, b = best_of(ours, repeats), best_of(theirs, repeats)
        rows.append({"trace": name, "records": len(loads), "simkit_M_per_s": len(loads) / a / 1e6,
                     "pycachesim_M_per_s": len(loads) / b / 1e6, "ratio": b / a})
    return rows


def startup() -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        times = [float(subprocess.check_output([sys.executable, "-c", STARTUP], env=env))
                 for _ in range(2)]
    return times[0], times[1]


def stream(records: int, run: str = "from simkit.cache import Hierarchy; "
           "Hierarchy('reference-3level').run(PATH)") -> tuple[float, float]:
    """Write a ``records``-long trace to disk chunk by chunk, stream it in a child process through
    ``run`` (Python code with PATH standing for the file; default: 3 cache levels), and return
    (seconds, child's peak RSS in MiB)."""
    from simkit.trace import synth
    from simkit.trace.format import TraceMeta, TraceWriter

    with tempfile.TemporaryDirectory(dir=os.environ.get("SIMKIT_BENCH_TMP", "/tmp")) as d:
        path = os.path.join(d, "big.skt")
        with TraceWriter(path, TraceMeta(source="bench stream")) as w:
            chunk = 1 << 24
            for i in range(0, records, chunk):
                w.write(synth.uniform(min(chunk, records - i), 64 << 20, seed=i))
        code = (f"import time,resource; t=time.perf_counter(); {run.replace('PATH', repr(path))}; "
                f"print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)")
        out = subprocess.check_output([sys.executable, "-c", code]).split()
        return float(out[0]), float(out[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1 << 24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stream-records", type=int, default=0,
                    help="also stream a trace of this many records from disk (e.g. 268435456)")
    args = ap.parse_args()
    rows = speed(args.n, args.repeats)
    print(f"{args.n} uniformly random 8 B loads over 64 MiB, best of {args.repeats}:")
    for r in rows:
        print(f"  {r['simulator']:38s} {r['accesses_per_s_M']:7.1f} M accesses/s")
    for levels, ours, theirs in (("1-level", rows[0], rows[1]), ("3-level", rows[2], rows[3])):
        print(f"  {levels}: simkit / pycachesim = "
              f"{ours['accesses_per_s_M'] / theirs['accesses_per_s_M']:.2f}x")
    print("shipped real traces, 3 levels (reference-3level), all records as loads:")
    for r in real_traces(args.repeats):
        print(f"  {r['trace']:10s} {r['records']:>9d} records  simkit {r['simkit_M_per_s']:6.1f} M/s  "
              f"pycachesim {r['pycachesim_M_per_s']:5.1f} M/s  ratio {r['ratio']:.2f}x")
    first, second = startup()
    print(f"start-up to first result: fresh process {first:.2f} s, "
          f"second process (numba on-disk cache) {second:.2f} s")
    if args.stream_records:
        secs, rss = stream(args.stream_records)
        print(f"streamed {args.stream_records} records from disk through 3 levels in {secs:.1f} s "
              f"({args.stream_records / secs / 1e6:.1f} M/s), peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
