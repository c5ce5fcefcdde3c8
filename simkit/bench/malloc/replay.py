"""Real allocators measured: replay an allocation trace through glibc, jemalloc, mimalloc,
tcmalloc and Scudo (``LD_PRELOAD``).

Method (mimalloc-bench's; docs/sources.md, "Allocators"): a small C replayer
(``csrc/malloc_replay.c``, compiled with gcc at run time, ``simkit.bench.malloc.build``) reads
the trace as flat arrays from an mmapped file, touches every page of each block (memset <= 256 B,
one byte per 4 KiB, the last byte), and reports the elapsed time, the RSS before replaying and
VmHWM after. Several runs per allocator; medians; ratios to glibc. Debian 12 packages:
libjemalloc2, libmimalloc2.0, libtcmalloc-minimal4, libclang-rt-14-dev (Scudo); ``make tools``
installs them.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from simkit.bench.malloc.build import build
from simkit.bench.malloc.libraries import (ALLOCATORS, LIBRARIES, available, library,
                                           missing_reason, preload_env)
from simkit.errors import InputError


def write_replay_input(records: np.ndarray, path: Path) -> Path:
    """The replayer's flat input: n, objects, size[n] u64, id[n] u32, old[n] u32,
    align[n] u32, op[n] u8."""
    n = len(records)
    nobj = int(records["id"].max()) + 1 if n else 0
    with open(path, "wb") as f:
        f.write(np.array([n, nobj], np.uint64).tobytes())
        for name, dt in (("size", np.uint64), ("id", np.uint32), ("old_id", np.uint32),
                         ("align", np.uint32), ("op", np.uint8)):
            f.write(np.ascontiguousarray(records[name]).astype(dt).tobytes())
    return path


def replay_once(exe: Path, data: Path, lib: str, timeout: float = 300) -> dict:
    r = subprocess.run([str(exe), str(data)], env=preload_env(lib), capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise InputError(f"replayer failed under {lib or 'glibc'} (status {r.returncode}): "
                         f"{r.stderr.strip()[-200:]}")
    ns, n, start, hwm, end, cpu, minflt = (int(x) for x in r.stdout.split())
    return {"elapsed_ns": ns, "events": n, "start_rss_kib": start, "hwm_kib": hwm,
            "end_rss_kib": end, "cpu_ns": cpu, "minor_faults": minflt}


def bench_malloc(traces: dict, allocators=None, runs: int = 5, progress: bool = False):
    """Replay each trace (name -> ALLOC_DTYPE records) ``runs`` times under each allocator.
    Returns (per-run rows, medians with ratios to glibc) as DataFrames."""
    import pandas as pd

    have = available()
    names = list(allocators or ALLOCATORS)
    for a in names:
        if a not in LIBRARIES:
            raise InputError(f"allocator: unknown {a!r}; choose from {', '.join(LIBRARIES)}")
    exe = build("malloc_replay")
    rows = []
    with tempfile.TemporaryDirectory(prefix="simkit-bench-malloc-") as tmp:
        for tname, recs in traces.items():
            data = write_replay_input(recs, Path(tmp) / f"{tname}.bin")
            for run in range(runs):
                for a in names:                   # interleaved: drift hits all alike
                    if a not in have:
                        continue
                    m = replay_once(exe, data, have[a])
                    m.update(trace=tname, allocator=a, run=run)
                    rows.append(m)
                    if progress:
                        print(f"  {tname} {a} run {run}: {m['elapsed_ns'] / 1e6:.1f} ms, "
                              f"HWM {m['hwm_kib']} KiB", flush=True)
    runs_df = pd.DataFrame(rows)
    if runs_df.empty:
        return runs_df, runs_df
    runs_df["delta_hwm_kib"] = runs_df.hwm_kib - runs_df.start_rss_kib
    runs_df["ns_per_op"] = runs_df.elapsed_ns / runs_df.events
    runs_df["cpu_ns_per_op"] = runs_df.cpu_ns / runs_df.events
    med = (runs_df.groupby(["trace", "allocator"], sort=False)
           [["elapsed_ns", "cpu_ns", "minor_faults", "ns_per_op", "cpu_ns_per_op", "hwm_kib",
             "delta_hwm_kib", "start_rss_kib"]]
           .median().reset_index())
    med["runs"] = runs
    base = med[med.allocator == "glibc"].set_index("trace")
    if len(base):
        med["time_ratio_to_glibc"] = med.elapsed_ns / med.trace.map(base.elapsed_ns)
        med["cpu_ratio_to_glibc"] = med.cpu_ns / med.trace.map(base.cpu_ns)
        med["delta_hwm_ratio_to_glibc"] = med.delta_hwm_kib / med.trace.map(base.delta_hwm_kib)
    for a in names:
        if a not in have:
            med = pd.concat([med, pd.DataFrame([{"allocator": a, "trace": t,
                                                 "skipped": missing_reason(a)}
                                                for t in traces])], ignore_index=True)
    return runs_df, med


def replay_addresses(records: np.ndarray, allocator: str = "glibc") -> np.ndarray:
    """The address the real allocator returned for each event (0 for frees), replaying
    ``records`` once in a fresh process."""
    lib = library(allocator)
    if lib is None:
        raise InputError(missing_reason(allocator))
    exe = build("malloc_replay")
    with tempfile.TemporaryDirectory(prefix="simkit-addrs-") as tmp:
        data = write_replay_input(records, Path(tmp) / "t.bin")
        out = Path(tmp) / "addrs.bin"
        r = subprocess.run([str(exe), str(data), str(out)], env=preload_env(lib),
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise InputError(f"replayer failed (status {r.returncode}): {r.stderr.strip()[-200:]}")
        return np.fromfile(out, np.uint64)[:len(records)]


def replay_rss(records: np.ndarray, every: int, allocator: str = "glibc"):
    """Replay ``records`` once in a fresh process, sampling the real RSS after event 0, every,
    2 every, ...: a DataFrame of ``event`` and ``rss_bytes`` (VmRSS minus VmRSS before the
    replay: the heap's resident growth, as the models' ``rss_bytes``)."""
    import pandas as pd

    lib = library(allocator)
    if lib is None:
        raise InputError(missing_reason(allocator))
    exe = build("malloc_replay")
    with tempfile.TemporaryDirectory(prefix="simkit-rss-") as tmp:
        data = write_replay_input(records, Path(tmp) / "t.bin")
        out = Path(tmp) / "rss.bin"
        r = subprocess.run([str(exe), str(data), "-", str(out), str(int(every))],
                           env=preload_env(lib), capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise InputError(f"replayer failed (status {r.returncode}): {r.stderr.strip()[-200:]}")
        a = np.fromfile(out, np.uint64).reshape(-1, 2)
    end = int(np.flatnonzero(a[:, 0] == np.iinfo(np.uint64).max)[0])
    start_kib = int(a[end, 1])
    s = a[:end]
    return pd.DataFrame({"event": s[:, 0].astype(np.int64),
                         "rss_bytes": (s[:, 1].astype(np.int64) - start_kib) * 1024})


__all__ = ["ALLOCATORS", "LIBRARIES", "available", "bench_malloc", "library", "missing_reason",
           "replay_addresses", "replay_once", "replay_rss", "write_replay_input"]
