"""Cache simulator speed, side by side with pycachesim in one run (REFERENCE.md section 6).

    python benchmarks/bench_cache_speed.py [--n 16777216] [--stream-records 268435456]

Prints accesses/s for simkit and pycachesim on the same uniformly random 8 B loads over 64 MiB
(1 level 32K/8; 3 levels 32K/8, 1M/16, 8M/16; 3 levels of non-power-of-two ways 48K/12,
1.25M/20, 6M/12; all LRU), simkit also with ``--threads`` threads, the ratios, the load average,
the JIT start-up of a fresh process vs one that reuses numba's on-disk cache, and the peak
memory of streaming a large trace from disk.
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


def best_wall_cpu(fn, repeats):
    """(best wall seconds, best process-CPU seconds): on a shared machine the CPU time of a
    single-threaded run is the steadier figure; with threads it adds up every thread's."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
    return wall, cpu


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


NPO2 = ((64, 1024, 8192), (12, 20, 12))       # 48 KiB/12, 1.25 MiB/20, 6 MiB/12


def workloads():
    """(label, simkit config, pycachesim runner taking (addrs, length))."""
    from simkit.cache import CacheConfig, HierarchyConfig, single

    npo2 = HierarchyConfig(levels=tuple(
        CacheConfig(f"L{i + 1}", s * w * 64, w) for i, (s, w) in enumerate(zip(*NPO2))))
    return (("1-level 32K/8", single("32KiB", 8), pycachesim_1level),
            ("3-level 32K/8 1M/16 8M/16", "reference-3level", pycachesim_3level),
            ("3-level 48K/12 1.25M/20 6M/12", npo2,
             lambda addrs, length: pycachesim_3level(addrs, length, *NPO2)))


def speed(n: int, repeats: int, threads: int = 1) -> list[dict]:
    """One row per workload: (wall, CPU) seconds (best of ``repeats``) of pycachesim and of
    simkit with one thread and, when ``threads`` > 1, with that many."""
    from simkit.cache import Hierarchy
    from simkit.trace import synth

    recs = synth.uniform(n, 64 << 20, seed=0)
    addrs = recs["addr"].tolist()
    rows = []
    for label, cfg, theirs in workloads():
        row = {"workload": label,
               "pycachesim_s": best_wall_cpu(lambda: theirs(addrs, 8), repeats)}
        for t in sorted({1, threads}):
            h = Hierarchy(cfg, threads=t) if t > 1 else Hierarchy(cfg)
            h.run(recs[:1000])

            def go():
                h.reset()
                h.run(recs)
            row[f"simkit_{t}t_s"] = best_wall_cpu(go, repeats)
        rows.append(row)
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
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="also time simkit with this many")
    ap.add_argument("--no-real", action="store_true", help="only the uniform workloads (no real traces, start-up or streaming)")
    ap.add_argument("--stream-records", type=int, default=0,
                    help="also stream a trace of this many records from disk (e.g. 268435456)")
    args = ap.parse_args()
    rows = speed(args.n, args.repeats, args.threads)
    print(f"{args.n} uniformly random 8 B loads over 64 MiB, best of {args.repeats}, "
          f"{os.cpu_count()} CPUs, load average {open('/proc/loadavg').read().split()[:3]}:")
    for i, kind in enumerate(("wall", "CPU")):
        print(f" M accesses/s by {kind} time (ratio to pycachesim):")
        for r in rows:
            theirs = r["pycachesim_s"][i]
            line = f"  {r['workload']:30s} pycachesim {args.n / theirs / 1e6:6.1f}"
            for k in r:
                if k.startswith("simkit_"):
                    t = k.split("_")[1]
                    line += f"  simkit {t} {args.n / r[k][i] / 1e6:6.1f} ({theirs / r[k][i]:.2f}x)"
            print(line)
    if args.no_real:
        return
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
