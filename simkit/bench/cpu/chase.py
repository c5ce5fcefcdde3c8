"""Load latency of this machine's caches and TLBs, measured with a random pointer chase.

Method (REFERENCE.md 5.1):

- **Chain.** One 8-byte slot per 64 B line, linked into a single Sattolo cycle (uint64 word
  indices). The jitted loop ``i = mem[i]`` is a truly dependent load chain: each address is the
  value of the previous load, so loads cannot overlap and hardware prefetchers see no stride.
- **Buffers.** Anonymous ``mmap`` (never a numpy allocation: numpy madvises huge pages on its
  own), 2 MiB aligned, with explicit advice: ``"4k"`` = ``MADV_NOHUGEPAGE``, ``"thp"`` =
  ``MADV_HUGEPAGE``; pre-touched. Whether THP really backed a buffer is read back from
  ``/proc/self/smaps`` (AnonHugePages of that mapping) into ``thp_backed_bytes``.
- **Timing.** ``time.perf_counter_ns`` around one jitted call of a fixed number of loads
  (~``run_ms`` ms), after a warm-up; min and median over ``runs`` runs; the process is pinned to
  one CPU while measuring. The clock is estimated with a dependent imul+xor chain (4 cycles per
  step on Zen 3), giving cycles per load.
- **Sweeps.** ``cache``: working sets of W bytes, every line of the buffer in the cycle.
  ``tlb``: one line per 4 KiB page over N pages, pages visited along the cycle, the line inside
  page p rotated to (7 p) mod 64 so the L1 sets are used evenly.

Layout of a chase slot (word = 8 bytes, a line = 8 words, a page = 512 words)::

    cache sweep, node k:  word 8 k                     (line k of the buffer)
    tlb sweep,   node p:  word 512 p + 8 ((7 p) mod 64) (one line in page p)

``chase_address_stream`` returns the same slots, in the same order, as virtual byte addresses,
so the simulators can replay exactly what was measured.
"""
from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from simkit.bench.cpu import _kernels as _chase
from simkit.trace import synth
from simkit.atomic import write_via

LINE_BYTES = 64
PAGE_BYTES = 4096
HUGE_BYTES = 2 << 20
WORDS_PER_LINE = LINE_BYTES // 8
WORDS_PER_PAGE = PAGE_BYTES // 8
LINES_PER_PAGE = PAGE_BYTES // LINE_BYTES
ROTATE = 7                       # line (7 p) mod 64 inside page p
STREAM_BASE = 0x7F0000000000     # 2 MiB aligned base of chase_address_stream
CLOCK_CYCLES_PER_STEP = 4        # imul (3 cycles) + xor (1 cycle), Zen 3

SWEEPS = ("cache", "tlb")
PAGE_KINDS = ("4k", "thp")
_ADVICE = {"4k": "MADV_NOHUGEPAGE", "thp": "MADV_HUGEPAGE"}

# TLB sweep: dense around the L1 DTLB (64) and L2 TLB (2048) knees of REFERENCE 5.4.
TLB_PAGES_FULL = (8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 112, 128, 160, 192, 256, 320,
                  384, 448, 512, 576, 640, 768, 1024, 1280, 1536, 1792, 2048, 2304, 2560, 2816,
                  3072, 3584, 4096, 5120, 6144, 8192, 12288, 16384, 24576, 32768)
TLB_PAGES_QUICK = (8, 16, 32, 48, 56, 64, 72, 80, 96, 128, 256, 512, 768, 1024, 1536, 1792,
                   2048, 2304, 2560, 3072, 4096, 8192, 32768)

COLUMNS = ("sweep", "page_kind", "working_set_bytes", "pages", "ns_per_load_min",
           "ns_per_load_median", "cycles_per_load", "thp_backed_bytes", "runs", "loads_per_run")


def cache_sizes(points_per_doubling: int = 4, lo: int = 4 << 10, hi: int = 256 << 20) -> list[int]:
    """Working sets from ``lo`` to ``hi`` bytes, ``points_per_doubling`` per doubling, each a
    multiple of 64 B."""
    if points_per_doubling < 1:
        raise ValueError(f"points_per_doubling: must be >= 1, got {points_per_doubling}")
    steps = round(math.log2(hi / lo) * points_per_doubling)
    sizes = {int(round(lo * 2 ** (k / points_per_doubling) / LINE_BYTES)) * LINE_BYTES
             for k in range(steps + 1)}
    return sorted(sizes)


def _settings(quick: bool) -> dict:
    if quick:
        return {"runs": 7, "run_ms": 3.0, "cache_sizes": cache_sizes(1, 4 << 10, 64 << 20),
                "tlb_pages": list(TLB_PAGES_QUICK)}
    return {"runs": 21, "run_ms": 30.0, "cache_sizes": cache_sizes(4, 4 << 10, 256 << 20),
            "tlb_pages": list(TLB_PAGES_FULL)}


# ----------------------------------------------------------------------------------------------
# The chain

sattolo_cycle = synth.sattolo_cycle      # the chain generator, shared with synthetic traces


def _slot_words(kind: str, n: int) -> np.ndarray:
    """The uint64 word index of every node's slot (see the module docstring)."""
    nodes = np.arange(n, dtype=np.uint64)
    if kind == "cache":
        return nodes * np.uint64(WORDS_PER_LINE)
    if kind == "tlb":
        line = (nodes * np.uint64(ROTATE)) % np.uint64(LINES_PER_PAGE)
        return nodes * np.uint64(WORDS_PER_PAGE) + line * np.uint64(WORDS_PER_LINE)
    raise ValueError(f"kind: expected 'cache' or 'tlb', got {kind!r}")


def _nodes(kind: str, n_pages: int | None, working_set_bytes: int | None) -> int:
    if kind == "tlb":
        if n_pages is None or int(n_pages) < 1:
            raise ValueError(f"n_pages: the tlb chase needs n_pages >= 1, got {n_pages!r}")
        return int(n_pages)
    if kind == "cache":
        w = working_set_bytes
        if w is None or int(w) < LINE_BYTES or int(w) % LINE_BYTES:
            raise ValueError(f"working_set_bytes: the cache chase needs a positive multiple "
                             f"of {LINE_BYTES}, got {w!r}")
        return int(w) // LINE_BYTES
    raise ValueError(f"kind: expected 'cache' or 'tlb', got {kind!r}")


def chase_words(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """Word indices (uint64) of the ``n`` slots of a chase in the order the chase loads them:
    the first load reads word ``w[0]`` (node 0), the next ``w[1]``, ..., then ``w[0]`` again."""
    order = synth.sattolo(n, seed)[1]
    return _slot_words(kind, n)[order]


def chase_address_stream(kind: str = "tlb", *, n_pages: int | None = None,
                         working_set_bytes: int | None = None, laps: int = 1, seed: int = 0,
                         base: int = STREAM_BASE) -> np.ndarray:
    """The exact virtual byte addresses the measured chase loads, in order, ``laps`` times.

    ``kind="tlb"`` with ``n_pages``: one address per 4 KiB page (line (7 p) mod 64 of page p),
    every page once per lap. ``kind="cache"`` with ``working_set_bytes``: every 64 B line once
    per lap. Addresses are ``base`` + byte offset into the buffer; ``base`` must be page aligned
    (the measured buffers are 2 MiB aligned, like the default). Same ``seed`` as
    ``measure_cpu`` gives the same cycle as was measured.
    """
    n = _nodes(kind, n_pages, working_set_bytes)
    if int(laps) < 1:
        raise ValueError(f"laps: must be >= 1, got {laps!r}")
    if int(base) < 0 or int(base) % PAGE_BYTES:
        raise ValueError(f"base: must be a non-negative multiple of {PAGE_BYTES}, got {base!r}")
    lap = chase_words(kind, n, seed) * np.uint64(8) + np.uint64(base)
    return np.tile(lap, int(laps))


# ----------------------------------------------------------------------------------------------
# Buffers

def _smaps_anon_huge(start: int, end: int, smaps: str | None = None) -> int:
    """Bytes of AnonHugePages in the mappings of /proc/self/smaps overlapping [start, end)."""
    text = Path("/proc/self/smaps").read_text() if smaps is None else smaps
    total, inside = 0, False
    header = re.compile(r"^([0-9a-f]+)-([0-9a-f]+)\s")
    for line in text.splitlines():
        m = header.match(line)
        if m:
            lo, hi = int(m.group(1), 16), int(m.group(2), 16)
            inside = lo < end and hi > start
        elif inside and line.startswith("AnonHugePages:"):
            total += int(line.split()[1]) * 1024
    return total


class ChaseBuffer:
    """An anonymous mapping for a chase: 2 MiB aligned, advised, pre-touched.

    ``page_kind="4k"`` advises ``MADV_NOHUGEPAGE``, ``"thp"`` ``MADV_HUGEPAGE``. The advised
    range is rounded up to whole 2 MiB and has at least one unadvised 4 KiB page on each side,
    so the kernel keeps it as its own mapping (its smaps entry is this buffer alone).
    ``mem`` is the buffer as a uint64 array. Use as a context manager, or call ``close()``.
    """

    def __init__(self, nbytes: int, page_kind: str = "4k"):
        if page_kind not in PAGE_KINDS:
            raise ValueError(f"page_kind: expected one of {PAGE_KINDS}, got {page_kind!r}")
        if nbytes < 1:
            raise ValueError(f"nbytes: must be >= 1, got {nbytes}")
        self.page_kind = page_kind
        self.nbytes = -(-int(nbytes) // HUGE_BYTES) * HUGE_BYTES
        total = self.nbytes + HUGE_BYTES + PAGE_BYTES
        self._map = mmap.mmap(-1, total, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                              prot=mmap.PROT_READ | mmap.PROT_WRITE)
        raw = np.frombuffer(self._map, dtype=np.uint8)
        base = raw.ctypes.data
        start = -(-(base + PAGE_BYTES) // HUGE_BYTES) * HUGE_BYTES
        off = start - base
        self._map.madvise(getattr(mmap, _ADVICE[page_kind]), off, self.nbytes)
        self.addr = start
        self._bytes = raw[off:off + self.nbytes]
        del raw
        self._bytes[::PAGE_BYTES] = 1          # pre-touch: fault every page in now
        self.mem = self._bytes.view(np.uint64)

    def thp_backed_bytes(self) -> int:
        """AnonHugePages of this buffer's mapping, from /proc/self/smaps."""
        return min(_smaps_anon_huge(self.addr, self.addr + self.nbytes), self.nbytes)

    def link(self, words: np.ndarray) -> np.uint64:
        """Write the cycle ``words[0] -> words[1] -> ... -> words[0]``; return the start word."""
        self.mem[words] = np.roll(words, -1)
        return np.uint64(words[0])

    def close(self) -> None:
        self.mem = self._bytes = None
        if self._map is not None and not self._map.closed:
            try:
                self._map.close()
            except BufferError:     # a caller still holds a view; unmapped when it goes
                pass
        self._map = None

    def __enter__(self) -> "ChaseBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------
# Timing

@contextlib.contextmanager
def pinned(cpu: int | None = None):
    """Pin the calling thread to one CPU (default: the highest-numbered allowed one) for the
    duration; yields the CPU (None where affinity is not supported)."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    cpu = max(before) if cpu is None else int(cpu)
    if cpu not in before:
        raise ValueError(f"cpu: {cpu} is not one of the allowed CPUs {sorted(before)}")
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def _run_chase(mem: np.ndarray, i: np.uint64, n: int) -> tuple[np.uint64, int]:
    t0 = time.perf_counter_ns()
    i = _chase.chase(mem, np.uint64(i), int(n))
    return np.uint64(i), time.perf_counter_ns() - t0


def time_chase(mem: np.ndarray, start: np.uint64, n_nodes: int, *, runs: int = 21,
               run_ms: float = 30.0) -> dict:
    """Time the chase already linked into ``mem`` from word ``start``.

    A short probe sizes a warm-up (at least one run, up to one lap of the ``n_nodes`` cycle or
    four runs), whose speed sizes the runs to ~``run_ms``; then ``runs`` timed runs, each
    continuing where the last stopped. Returns ns per load (min, median) and loads per run.
    """
    if runs < 1:
        raise ValueError(f"runs: must be >= 1, got {runs}")
    if run_ms <= 0:
        raise ValueError(f"run_ms: must be > 0, got {run_ms}")
    run_ns = run_ms * 1e6
    i, _ = _run_chase(mem, start, 1 << 12)
    i, dt = _run_chase(mem, i, 1 << 14)
    loads = int(min(max(run_ns / max(dt / (1 << 14), 0.1), 1 << 10), 1 << 34))
    warm = max(loads, min(n_nodes, 4 * loads))
    i, dt = _run_chase(mem, i, warm)
    loads = int(min(max(run_ns / max(dt / warm, 0.1), 1 << 10), 1 << 34))
    per_load = np.empty(runs)
    for r in range(runs):
        i, dt = _run_chase(mem, i, loads)
        per_load[r] = dt / loads
    return {"ns_per_load_min": float(per_load.min()),
            "ns_per_load_median": float(np.median(per_load)),
            "runs": runs, "loads_per_run": loads}


def estimate_clock_ghz(*, runs: int = 11, run_ms: float = 30.0) -> float:
    """Core clock in GHz from the best of ``runs`` timings of a dependent 4-cycle imul+xor chain
    (REFERENCE 5.1; on the reference VM ~2.93 GHz against a 2.445 GHz TSC)."""
    x, k, c = np.uint64(0x243F6A8885A308D3), np.uint64(0x9E3779B97F4A7C15), np.uint64(0x5851F42D4C957F2D)
    _chase.clock_chain(1 << 10, x, k, c)
    steps = int(run_ms * 1e6 * 3.0 / CLOCK_CYCLES_PER_STEP)     # sized for ~3 GHz
    best = math.inf
    for _ in range(max(runs, 1)):
        t0 = time.perf_counter_ns()
        _chase.clock_chain(steps, x, k, c)
        best = min(best, time.perf_counter_ns() - t0)
    return CLOCK_CYCLES_PER_STEP * steps / best


def measure_point(kind: str, *, n_pages: int | None = None, working_set_bytes: int | None = None,
                  page_kind: str = "4k", runs: int = 21, run_ms: float = 30.0,
                  seed: int = 0) -> dict:
    """Measure one chase (own buffer, own chain); returns one row without ``cycles_per_load``."""
    n = _nodes(kind, n_pages, working_set_bytes)
    words = chase_words(kind, n, seed)
    nbytes = n * (PAGE_BYTES if kind == "tlb" else LINE_BYTES)
    with ChaseBuffer(nbytes, page_kind) as buf:
        start = buf.link(words)
        del words
        timing = time_chase(buf.mem, start, n, runs=runs, run_ms=run_ms)
        thp = buf.thp_backed_bytes()
    return {"sweep": kind, "page_kind": page_kind,
            "working_set_bytes": n * LINE_BYTES,
            "pages": n if kind == "tlb" else -(-nbytes // PAGE_BYTES),
            **timing, "thp_backed_bytes": thp}


def _progress(total: int, enabled: bool | None):
    from tqdm.auto import tqdm
    disable = (not sys.stdout.isatty()) if enabled is None else not enabled
    return tqdm(total=total, disable=disable, unit="point", leave=False)


def measure_cpu(quick: bool = False, *, sweeps=SWEEPS, page_kinds=PAGE_KINDS,
                cache_sizes_bytes=None, tlb_pages=None, runs: int | None = None,
                run_ms: float | None = None, seed: int = 0, cpu: int | None = None,
                progress: bool | None = None):
    """Run the sweeps and return a tidy DataFrame, one row per (sweep, page_kind, point).

    Columns: sweep ("cache" | "tlb"), page_kind ("4k" | "thp"), working_set_bytes (bytes of
    chased lines), pages (4 KiB pages spanned), ns_per_load_min, ns_per_load_median,
    cycles_per_load (min x clock), thp_backed_bytes, runs, loads_per_run. ``df.attrs`` holds
    the clock estimate, the settings and the machine description.

    ``quick`` takes a few seconds (7 runs of ~3 ms, coarse ladder to 64 MiB); the full mode
    takes a few minutes (21 runs of ~30 ms, 4 points per doubling from 4 KiB to 256 MiB).
    Nothing is written to disk.
    """
    import pandas as pd

    from simkit.bench.cpu.machine import describe_machine

    cfg = _settings(quick)
    runs = cfg["runs"] if runs is None else int(runs)
    run_ms = cfg["run_ms"] if run_ms is None else float(run_ms)
    sweeps = (sweeps,) if isinstance(sweeps, str) else tuple(sweeps)
    page_kinds = (page_kinds,) if isinstance(page_kinds, str) else tuple(page_kinds)
    for s in sweeps:
        if s not in SWEEPS:
            raise ValueError(f"sweeps: expected items of {SWEEPS}, got {s!r}")
    for p in page_kinds:
        if p not in PAGE_KINDS:
            raise ValueError(f"page_kinds: expected items of {PAGE_KINDS}, got {p!r}")
    points = {"cache": [("cache", None, int(w)) for w in
                        (cfg["cache_sizes"] if cache_sizes_bytes is None else cache_sizes_bytes)],
              "tlb": [("tlb", int(n), None) for n in
                      (cfg["tlb_pages"] if tlb_pages is None else tlb_pages)]}
    plan = [(kind, n, w, pk) for kind in sweeps for pk in page_kinds for (_, n, w) in points[kind]]
    for kind, n, w, _ in plan:          # validate everything before measuring anything
        _nodes(kind, n, w)

    rows = []
    load_start = os.getloadavg()
    with pinned(cpu) as used_cpu, _progress(len(plan), progress) as bar:
        clock = estimate_clock_ghz(runs=max(5, runs // 2), run_ms=run_ms)
        for kind, n, w, pk in plan:
            bar.set_description(f"{kind} {pk} " + (f"{n} pages" if kind == "tlb" else
                                                    f"{w >> 10} KiB"))
            rows.append(measure_point(kind, n_pages=n, working_set_bytes=w, page_kind=pk,
                                      runs=runs, run_ms=run_ms, seed=seed))
            bar.update()
        clock_end = estimate_clock_ghz(runs=max(5, runs // 2), run_ms=run_ms)
    df = pd.DataFrame(rows)
    df["cycles_per_load"] = df["ns_per_load_min"] * clock
    df = df[list(COLUMNS)]
    df.attrs.update({"clock_ghz": clock, "clock_ghz_end": clock_end, "runs": runs,
                     "run_ms": run_ms, "seed": seed, "cpu": used_cpu, "quick": bool(quick),
                     "loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg()),
                     "machine": describe_machine()})
    return df


# ----------------------------------------------------------------------------------------------
# Knees

def _median3(y: np.ndarray) -> np.ndarray:
    """Running median of three (ends kept): removes single-point spikes, keeps step edges."""
    if len(y) < 3:
        return y.copy()
    out = y.copy()
    out[1:-1] = np.median(np.stack([y[:-2], y[1:-1], y[2:]]), axis=0)
    return out


def find_knees(x, y, *, rel: float = 0.2, abs_ns: float = 0.5) -> list[dict]:
    """Positions where latency ``y`` (sorted by ``x``) steps up.

    ``y`` is first smoothed with a running median of three (a lone noisy point is dropped; a step
    edge stays where it is; the edge is then moved right past raw points still on the plateau). Walking left to right, point i is a step when it exceeds the median
    of the current plateau (the points since the last step settled) by more than ``rel``
    (relative) and ``abs_ns`` (absolute), and the next point does too. The step's ramp goes on
    while each next point is again ``rel`` and ``abs_ns`` above the one before; where it stops the
    new plateau begins. Each knee is a dict: ``before`` (last x on the old plateau), ``after``
    (first x above it), ``settled`` (x where the ramp ends), ``ns_before`` (plateau median),
    ``ns_after`` (median of up to three points from ``settled`` on, up to the next rise),
    ``step_ns``.
    """
    x = np.asarray(x)
    raw = np.asarray(y, dtype=float)
    y = _median3(raw)
    n = len(y)
    out, i0, i = [], 0, 1

    def above(v, ref):
        return v > ref * (1 + rel) and v - ref > abs_ns

    while i < n:
        base = float(np.median(y[i0:i]))
        if above(y[i], base) and (i + 1 == n or above(y[i + 1], base)):
            j = i
            while j + 1 < n and above(y[j + 1], y[j]):
                j += 1
            while i < j and not above(raw[i], base):   # smoothing can pull a noisy
                i += 1                                   # neighbour's value onto the edge
            k = j + 1
            while k < min(j + 3, n) and not above(y[k], y[j]):
                k += 1
            after = float(np.median(y[j:k]))
            out.append({"before": x[i - 1].item(), "after": x[i].item(), "settled": x[j].item(),
                        "ns_before": base, "ns_after": after, "step_ns": after - base})
            i0, i = j, j + 1
        else:
            i += 1
    return out


def _near_cache_level(lines: float, caches: list[dict], tol: float = 0.25) -> str:
    """'L1d' / 'L2' / 'L3' when ``lines`` 64 B lines are within ``tol`` of that cache's size."""
    for c in caches:
        if c.get("type") == "Instruction" or not c.get("size_bytes"):
            continue
        cap = c["size_bytes"] / LINE_BYTES
        if abs(lines - cap) <= tol * cap:
            return f"L{c['level']}" + ("d" if c.get("type") == "Data" else "")
    return ""


def knees(df, *, rel: float = 0.2, abs_ns: float = 0.5, column: str = "ns_per_load_min"):
    """Knees of every (sweep, page_kind) curve of a ``measure_cpu`` frame, as a DataFrame.

    Positions are pages for the tlb sweep and working-set bytes for the cache sweep.
    ``near_cache_level`` names a cache whose capacity in 64 B lines is within 25% of the knee's
    ``before`` or ``after`` point (a TLB-sweep knee at 512 pages is the L1d filling up with the
    512 chased lines, not a TLB); ``step_cycles`` uses the frame's clock.
    """
    import pandas as pd

    clock = _clock_of(df)
    caches = df.attrs.get("machine", {}).get("caches") or _caches()
    rows = []
    for (sweep, pk), g in df.groupby(["sweep", "page_kind"], sort=False):
        xcol = "pages" if sweep == "tlb" else "working_set_bytes"
        g = g.sort_values(xcol)
        per_line = 1 if sweep == "tlb" else LINE_BYTES
        for k in find_knees(g[xcol].to_numpy(), g[column].to_numpy(), rel=rel, abs_ns=abs_ns):
            near = (_near_cache_level(k["before"] / per_line, caches)
                    or _near_cache_level(k["after"] / per_line, caches))
            rows.append({"sweep": sweep, "page_kind": pk, "unit": xcol, **k,
                         "step_cycles": k["step_ns"] * clock if clock else float("nan"),
                         "step_ratio": k["ns_after"] / k["ns_before"],
                         "near_cache_level": near})
    cols = ["sweep", "page_kind", "unit", "before", "after", "settled", "ns_before", "ns_after",
            "step_ns", "step_cycles", "step_ratio", "near_cache_level"]
    return pd.DataFrame(rows, columns=cols)


def _caches() -> list[dict]:
    from simkit.bench.cpu.machine import cache_geometry
    return cache_geometry(0)


def _clock_of(df) -> float | None:
    clock = df.attrs.get("clock_ghz")
    if clock:
        return float(clock)
    ok = df["ns_per_load_min"] > 0
    if "cycles_per_load" in df and ok.any():
        return float((df.loc[ok, "cycles_per_load"] / df.loc[ok, "ns_per_load_min"]).median())
    return None


# ----------------------------------------------------------------------------------------------
# Summary, calibration file, plot

def summarize(df, knees_df=None) -> dict:
    """Named numbers from a ``measure_cpu`` frame: per-level latencies from the 4 KiB-page cache
    ladder (the median over working sets well inside each level, with level sizes from sysfs),
    DRAM (the largest working set, per page kind), all TLB-sweep knees, and for each data-TLB
    size CPUID reports (if the OS exposes one) the knee nearest to it, within a factor 2."""
    kn = knees(df) if knees_df is None else knees_df
    caches = [c for c in (df.attrs.get("machine", {}).get("caches") or _caches())
              if c.get("type") != "Instruction" and c.get("size_bytes")]
    sizes = {c["level"]: c["size_bytes"] for c in caches}
    out: dict = {"clock_ghz": _clock_of(df)}
    lad = df[(df.sweep == "cache") & (df.page_kind == "4k")]
    if len(lad) and sizes:
        prev = 0
        for level in sorted(sizes):
            hi = sizes[level] // 2 if level < 3 else min(sizes[level] // 8, 4 << 20)
            sel = lad[(lad.working_set_bytes >= 2 * prev) & (lad.working_set_bytes <= hi)]
            out[f"l{level}_ns"] = float(sel.ns_per_load_min.median()) if len(sel) else None
            out[f"l{level}_range_bytes"] = [int(2 * prev), int(hi)]
            prev = sizes[level]
    for pk in PAGE_KINDS:
        sel = df[(df.sweep == "cache") & (df.page_kind == pk)]
        if len(sel):
            top = sel.loc[sel.working_set_bytes.idxmax()]
            out[f"dram_ns_{pk}"] = float(top.ns_per_load_min)
            out[f"dram_working_set_bytes_{pk}"] = int(top.working_set_bytes)
    tlb = (df.attrs.get("machine", {}).get("tlb") or {}).get("entries") or []
    reported = sorted({(e["level"], e["entries"]) for e in tlb
                       if e["type"] == "data" and e["page"] == "4K"})
    for pk in PAGE_KINDS:
        tk = kn[(kn.sweep == "tlb") & (kn.page_kind == pk)]
        if not len(tk):
            continue
        out[f"tlb_knees_pages_{pk}"] = [[int(k.before), int(k.after), round(float(k.step_ns), 3)]
                                        for _, k in tk.iterrows()]
        for level, entries in reported:
            # the knee nearest (in log distance, within a factor 2) to the CPUID size
            dist = np.abs(np.log2(tk.before.to_numpy(dtype=float) / entries))
            if dist.min() <= 1:
                k = tk.iloc[int(dist.argmin())]
                out[f"l{level}_dtlb_cpuid_entries"] = entries
                out[f"l{level}_dtlb_knee_pages_{pk}"] = [int(k.before), int(k.after)]
                out[f"l{level}_dtlb_step_ns_{pk}"] = float(k.step_ns)
    return out


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def calibration(df) -> dict:
    """The calibration document for a ``measure_cpu`` frame (what ``write_calibration`` writes)."""
    from simkit.bench.cpu.machine import describe_machine

    kn = knees(df)
    a = df.attrs
    return _jsonable({
        "format": "simkit.bench.cpu",
        "version": 1,
        "label": "measured",
        "machine": a.get("machine") or describe_machine(),
        "method": {
            "chain": "random pointer chase over a single Sattolo cycle, uint64 word indices, "
                     "one 8-byte slot per 64 B line",
            "tlb_sweep": "one line per 4 KiB page, pages in cycle order, line (7*page) mod 64",
            "buffers": "anonymous mmap, 2 MiB aligned, 4k = MADV_NOHUGEPAGE, "
                       "thp = MADV_HUGEPAGE, pre-touched; THP backing from /proc/self/smaps",
            "timing": "perf_counter_ns around a jitted run of a fixed number of loads after a "
                      "warm-up; min and median over runs; pinned to one CPU",
            "clock": "dependent imul+xor chain, 4 cycles per step; cycles = min ns x clock",
            "knees": "after a running median of 3: a point more than 20% and 0.5 ns above the "
                     "median of the plateau before it, confirmed by the next point "
                     "(simkit.bench.cpu.find_knees)",
            "runs": a.get("runs"), "run_ms": a.get("run_ms"), "seed": a.get("seed"),
            "cpu": a.get("cpu"), "quick": a.get("quick"),
            "clock_ghz_start": a.get("clock_ghz"), "clock_ghz_end": a.get("clock_ghz_end"),
            "loadavg_start": a.get("loadavg_start"), "loadavg_end": a.get("loadavg_end"),
        },
        "clock_ghz": _clock_of(df),
        "summary": summarize(df, kn),
        "ladder": df.to_dict(orient="records"),
        "knees": kn.to_dict(orient="records"),
    })


def write_calibration(df, path) -> Path:
    """Write ``calibration(df)`` as JSON to ``path`` by way of a temporary file."""
    path = Path(path)
    doc = calibration(df)
    return write_via(path, lambda tmp: tmp.write_text(json.dumps(doc, indent=1) + "\n"))


def _fmt_bytes(v: float) -> str:
    from simkit.units import format_bytes
    return format_bytes(int(v))


def plot_cpu(df, path=None, *, knees_df=None):
    """Latency curves on log-x (and log-y) axes, one panel per sweep; cache sizes (sysfs) and
    CPUID TLB sizes as vertical lines; knees as numbered triangles, listed in each panel.
    Cycles on the right axis. Returns the matplotlib Figure (Agg canvas, no pyplot state);
    with ``path`` (.png, .svg, .pdf), also saves it, by way of a temporary file."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    kn = knees(df) if knees_df is None else knees_df
    clock = _clock_of(df)
    machine = df.attrs.get("machine") or {}
    sweeps = [s for s in SWEEPS if (df.sweep == s).any()]
    fig = Figure(figsize=(7.0 * max(len(sweeps), 1), 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(sweeps), 1), squeeze=False)[0]
    colors = {"4k": "tab:blue", "thp": "tab:orange"}
    names = {"4k": "4 KiB pages", "thp": "THP (2 MiB)"}
    handles = {}
    for ax, sweep in zip(axes, sweeps):
        xcol = "pages" if sweep == "tlb" else "working_set_bytes"
        sub = df[df.sweep == sweep]
        lo, hi = sub[xcol].min(), sub[xcol].max()
        for pk, g in sub.groupby("page_kind", sort=False):
            g = g.sort_values(xcol)
            h1, = ax.plot(g[xcol], g.ns_per_load_min, "o-", ms=3, lw=1.5, color=colors.get(pk))
            h2, = ax.plot(g[xcol], g.ns_per_load_median, ":", lw=1, color=colors.get(pk))
            handles[f"{names.get(pk, pk)}: min of runs"] = h1
            handles[f"{names.get(pk, pk)}: median"] = h2
        marks = []
        for c in machine.get("caches") or []:
            if c.get("type") == "Instruction" or not c.get("size_bytes"):
                continue
            pos = c["size_bytes"] if sweep == "cache" else c["size_bytes"] / LINE_BYTES
            text = f"L{c['level']}" + ("d" if c.get("type") == "Data" else "") + \
                f" {_fmt_bytes(c['size_bytes'])}" + ("" if sweep == "cache" else "\nof lines")
            marks.append((pos, text, "0.55", "--"))
        if sweep == "tlb":
            for e in (machine.get("tlb") or {}).get("entries") or []:
                if e["type"] == "data" and e["page"] == "4K":
                    marks.append((e["entries"], f"L{e['level']} DTLB\n{e['entries']} (CPUID)",
                                  "tab:green", "-."))
        marks = [m for m in marks if lo <= m[0] <= hi]
        for pos, _, color, ls in marks:
            ax.axvline(pos, color=color, lw=0.8, ls=ls, zorder=0)
        lines = []
        for num, (_, k) in enumerate(kn[kn.sweep == sweep].iterrows(), start=1):
            g = sub[sub.page_kind == k.page_kind]
            yk = g.loc[g[xcol] == k.after, "ns_per_load_min"]
            if not len(yk):
                continue
            ax.plot([k.after], [yk.iloc[0]], "v", ms=8, color=colors.get(k.page_kind),
                    mec="crimson", mew=1.2, zorder=5)
            ax.annotate(str(num), (k.after, yk.iloc[0]), xytext=(-7, 5),
                        textcoords="offset points", fontsize=7, color="crimson", ha="right")
            pos = (f"{int(k.before)}→{int(k.after)}" if sweep == "tlb"
                   else f"{_fmt_bytes(k.before)}→{_fmt_bytes(k.after)}")
            cyc = (f" {k.step_cycles:.0f} c" if clock and math.isfinite(k.step_cycles) else "")
            lines.append(f"{num:>2} {k.page_kind:>3} {pos} +{k.step_ns:.1f} ns{cyc}")
        if lines:
            unit = "pages" if sweep == "tlb" else "working set"
            ax.text(0.015, 0.98, f"knees ({unit} before→after, step)\n" + "\n".join(lines),
                    transform=ax.transAxes, ha="left", va="top", fontsize=6.5,
                    family="monospace", color="crimson",
                    bbox={"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.9})
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        if sweep == "cache":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _fmt_bytes(v)))
            ax.set_xlabel("working set (bytes chased, one slot per 64 B line)")
            ax.set_title("Cache ladder: latency vs working set")
        else:
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v)}"))
            ax.set_xlabel("pages touched (one 64 B line per 4 KiB page)")
            ax.set_title("TLB reach: latency vs pages")
        ax.set_ylabel("ns per load")
        ax.grid(True, which="major", alpha=0.3)
        top = ax.secondary_xaxis("top")    # after set_xscale, or its ticks are reset
        top.set_xticks([m[0] for m in marks], labels=[m[1] for m in marks], fontsize=7)
        top.xaxis.set_minor_locator(NullLocator())
        for label, m in zip(top.get_xticklabels(), marks):
            label.set_color(m[2])
        if clock:
            sec = ax.secondary_yaxis("right", functions=(lambda v: v * clock,
                                                         lambda v: v / clock))
            sec.set_ylabel(f"cycles per load (at {clock:.2f} GHz)")
            sec.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=len(handles), fontsize=8, frameon=False)
    model = machine.get("cpu_model") or "CPU"
    guest = f", {machine.get('hypervisor_vendor') or 'VM'} guest" if machine.get("hypervisor") else ""
    fig.suptitle(f"Pointer-chase load latency: {model}{guest}"
                 + (f", clock ≈ {clock:.2f} GHz" if clock else ""), fontsize=11)
    if path is not None:
        path = Path(path)
        fmt = path.suffix.lstrip(".").lower() or "png"
        write_via(path, lambda tmp: fig.savefig(tmp, dpi=130, format=fmt))
    return fig
