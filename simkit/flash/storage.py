"""Flash read cost: per-request time over chunk size and queue depth, from a calibration table.

Each calibration point (chunk ``c``, ``q`` reads in flight, throughput ``X``) gives, by Little's
law, the time one request takes at that depth::

    t(c, q) = q * c / X                              per-request time (latency + transfer)

Between a depth's points ``t`` is interpolated linearly in ``c`` (so every point is reproduced
exactly); above the largest chunk it is extended by the depth's fitted line
``t = latency + c / stream_bytes_per_s`` (weighted least squares on all that depth's points,
``fit()``), so large reads approach the sequential figure; below the smallest chunk the
smallest point's time is kept (same IOPS). Between depths ``log t`` is interpolated linearly
in log2(q) (a saturated device's per-request time grows in proportion to the depth); a depth
outside the table is refused (``ValueError``). Then::

    throughput(c, q)       = min(q * c / t(c, q), sequential)
    burst_seconds(n, c, q) = max(w t(c, q') + tail(n), n c / sequential)
                             q' = min(q, n), w = ceil(n / q') waves; tail(n) is the wait for
                             the slowest of the n reads: its 1 - 1/(n+1) quantile above the
                             median, from the table's p99 - median (``latency_tail_s``) by
                             log interpolation, held at p99 from 99 reads on;
                             q' below the table's smallest depth uses that depth's times;
                             plus the table's fixed cost of a burst at q' workers
                             (``burst_overhead_s``); or, where the table has
                             ``burst_excess_s`` (``simkit bench storage`` measures it:
                             bursts of 1, 4, 16 waves issued as the schedule issues
                             them), max(w t(c, q'), n c / seq) + excess(q') instead:
                             excess the mean over the sizes, at least 0, linear in
                             log2 q' between counts, held outside
    T_io (one token)       = sum over bursts                                    (REFERENCE 3.1)

A burst is the reads issued together: one per token (``io_bursts="token"``, the paper's
bytes / throughput when bursts are long) or one per layer (``"layer"``: a layer's reads start
after its predictor has run). Whole-matrix (dense) loads use ``sequential_bytes_per_s``.

Calibration file (JSON; shipped presets in ``calibration/`` say ``"kind": "published"``,
``"derived"`` or ``"assumed"``; ``simkit bench storage --calibration`` writes ``"kind":
"measured"`` files)::

    {"format": "simkit-flash-storage", "version": 1, "kind": "published" | "measured" | ...,
     "description": "...", "machine": {...} | null,
     "sequential_bytes_per_s": ...,
     "points": [{"chunk_bytes": 8192, "threads": 32, "bytes_per_s": 1.25e9,
                 "latency_tail_s": 4e-4 (optional: p99 - median of one read's time)}, ...],
     "burst_overhead_s": {"32": 2e-5} (optional),
     "burst_excess_s": {"8": {"1": 3e-4, "4": 6e-4, "16": 9e-4}} (optional; replaces the
                        tail and the overhead),
     "sources": {"<what>": "where the number comes from"}}

A bad file is an ``InputError`` naming the file and the field.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simkit.errors import InputError

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"
FORMAT = "simkit-flash-storage"
KINDS = ("published", "measured", "derived", "assumed")


@dataclass(frozen=True)
class StorageCalibration:
    kind: str
    sequential_bytes_per_s: float
    chunk_bytes: tuple            # one entry per point
    threads: tuple
    bytes_per_s: tuple
    description: str = ""
    machine: dict | None = None
    sources: dict = field(default_factory=dict)
    path: str = ""
    latency_tail_s: tuple = ()    # per point: one read's p99 time minus its median (or empty)
    burst_overhead_s: dict = field(default_factory=dict)   # threads -> fixed cost of a burst
    burst_excess_s: dict = field(default_factory=dict)     # threads -> {waves: seconds}

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: must be one of {KINDS}, got {self.kind!r}")
        if not (self.sequential_bytes_per_s > 0):
            raise ValueError(f"sequential_bytes_per_s: must be > 0, got "
                             f"{self.sequential_bytes_per_s!r}")
        n = len(self.chunk_bytes)
        if n == 0 or len(self.threads) != n or len(self.bytes_per_s) != n:
            raise ValueError("points: need at least one point, each with chunk_bytes, threads "
                             "and bytes_per_s")
        if self.latency_tail_s and (len(self.latency_tail_s) != n
                                  or any(not v >= 0 for v in self.latency_tail_s)):
            raise ValueError("points.latency_tail_s: one value >= 0 per point, or none")
        for k, v in self.burst_overhead_s.items():
            if not (int(k) >= 1 and v >= 0):
                raise ValueError(f"burst_overhead_s: threads >= 1 -> seconds >= 0, got "
                                 f"{k!r}: {v!r}")
        for k, e in self.burst_excess_s.items():
            if not (int(k) >= 1 and e and all(int(w) >= 1 and math.isfinite(v)
                                              for w, v in e.items())):
                raise ValueError(f"burst_excess_s: threads >= 1 -> {{waves >= 1: finite "
                                 f"seconds}}, got {k!r}: {e!r}")
        for name in ("chunk_bytes", "threads", "bytes_per_s"):
            bad = [v for v in getattr(self, name) if not (v > 0)]
            if bad:
                raise ValueError(f"points.{name}: must be > 0, got {bad[0]!r}")

    # ---- the cost model ------------------------------------------------------------------
    def thread_counts(self) -> list[int]:
        return sorted(set(int(t) for t in self.threads))

    def _depth(self, q: int):
        """(chunks, per-request seconds, fitted slope s/B) of depth ``q`` (a table depth)."""
        cache = self.__dict__.setdefault("_depths", {})
        if q not in cache:
            sd = self.latency_tail_s or (0.0,) * len(self.threads)
            pts = sorted((c, q * c / b, s) for c, th, b, s in zip(
                self.chunk_bytes, self.threads, self.bytes_per_s, sd) if th == q)
            c = np.array([p[0] for p in pts], float)
            t = np.array([p[1] for p in pts], float)
            self.__dict__.setdefault("_sds", {})[q] = np.array([p[2] for p in pts], float)
            floor = q / self.sequential_bytes_per_s        # q streams share the ceiling
            if len(c) >= 2 and np.ptp(c) > 0:
                slope, _ = np.polyfit(c, t, 1, w=1.0 / t)  # relative residuals
            else:
                slope = floor
            cache[q] = (c, t, max(float(slope), 1e-15))
        return cache[q]

    def fit(self) -> "object":
        """The fitted line per depth as a DataFrame: threads, latency_s (intercept),
        stream_bytes_per_s (1 / slope), points, max relative error of the line on them."""
        import pandas as pd
        rows = []
        for q in self.thread_counts():
            c, t, slope = self._depth(q)
            lat = float(np.average(t - slope * c, weights=1.0 / t ** 2))
            err = float(np.max(np.abs((lat + slope * c) / t - 1))) if len(c) else np.nan
            rows.append({"threads": q, "latency_s": lat, "stream_bytes_per_s": 1.0 / slope,
                         "points": len(c), "max_rel_error": err})
        return pd.DataFrame(rows)

    def _check_depth(self, threads) -> None:
        counts = self.thread_counts()
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) \
                or not counts[0] <= threads <= counts[-1]:
            raise ValueError(f"threads: {threads!r} is outside the storage table's queue "
                             f"depths {counts[0]}..{counts[-1]} ({self.path or self.kind})")

    def request_seconds(self, chunk_bytes: float, threads: int) -> float:
        """Time one read of ``chunk_bytes`` takes with ``threads`` reads in flight."""
        if not chunk_bytes > 0:
            raise ValueError(f"chunk_bytes: must be > 0, got {chunk_bytes!r}")
        counts = self.thread_counts()
        q = int(min(max(threads, counts[0]), counts[-1]))
        if q in counts:
            return self._at_depth(chunk_bytes, q)
        i = int(np.searchsorted(counts, q))
        lo, hi = counts[i - 1], counts[i]
        f = (math.log2(q) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))
        return self._at_depth(chunk_bytes, lo) ** (1 - f) * self._at_depth(chunk_bytes, hi) ** f

    def request_tail(self, chunk_bytes: float, threads: int) -> float:
        """One read's p99 time minus its median (interpolated like ``request_seconds``, kept
        constant outside the table's chunks); 0 when the table has none."""
        if not self.latency_tail_s:
            return 0.0
        counts = self.thread_counts()
        q = int(min(max(threads, counts[0]), counts[-1]))

        def at(d):
            c = self._depth(d)[0]
            return float(np.interp(chunk_bytes, c, self.__dict__["_sds"][d]))
        if q in counts:
            return at(q)
        i = int(np.searchsorted(counts, q))
        lo, hi = counts[i - 1], counts[i]
        f = (math.log2(q) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))
        return (1 - f) * at(lo) + f * at(hi)

    def overhead_seconds(self, threads: int) -> float:
        """Fixed cost of one burst with ``threads`` workers (interpolated in log2 of the
        count; 0 when the table has none)."""
        if not self.burst_overhead_s:
            return 0.0
        ks = sorted((int(k), float(v)) for k, v in self.burst_overhead_s.items())
        return float(np.interp(math.log2(threads), [math.log2(k) for k, _ in ks],
                               [v for _, v in ks]))

    def excess_seconds(self, threads: int) -> float:
        """What one burst at ``threads`` workers costs beyond its waves of per-request time:
        the mean of ``burst_excess_s[threads]`` over the measured burst sizes (1, 4, 16 waves,
        issued as the schedule issues them), at least 0; between thread counts linear in log2
        of the count, held outside. One number per count: on this project's hosts the sizes
        agree within their noise, and so a burst of more reads never costs less than a shorter
        one, nor L bursts less than one burst of the same reads."""
        ks = sorted(int(k) for k in self.burst_excess_s)
        v = [max(float(np.mean(list(self.burst_excess_s[k].values()))), 0.0) for k in ks]
        return float(np.interp(math.log2(threads), [math.log2(k) for k in ks], v))

    def _at_depth(self, x: float, q: int) -> float:
        c, t, slope = self._depth(q)
        if x <= c[0]:
            v = t[0]
        elif x >= c[-1]:
            v = t[-1] + (x - c[-1]) * slope
        else:
            v = float(np.interp(x, c, t))
        return max(v, q * x / self.sequential_bytes_per_s)

    def throughput(self, chunk_bytes: float, threads: int) -> float:
        """Bytes per second of a long run of random ``chunk_bytes`` reads, ``threads`` in
        flight."""
        self._check_depth(threads)
        return threads * chunk_bytes / self.request_seconds(chunk_bytes, threads)

    def read_seconds(self, nbytes: float, chunk_bytes: float, threads: int) -> float:
        """Steady-state time of ``nbytes`` (bytes / throughput)."""
        return nbytes / self.throughput(chunk_bytes, threads) if nbytes else 0.0

    def burst_seconds(self, reads, chunk_bytes: float, threads: int):
        """Time of bursts of ``reads`` reads (scalar or array) of ``chunk_bytes``, issued
        together with at most ``threads`` in flight: whole waves of per-request time, plus the
        wait for the slowest of the n reads (its 1 - 1/(n+1) quantile above the median: the
        table's p99 - median scaled by log(0.5 (n+1)) / log(50), held at p99 from 99 reads
        on), never faster than the sequential figure, plus the fixed cost of a burst.
        Vectorised over ``reads``."""
        self._check_depth(threads)
        n = np.asarray(reads, dtype=np.int64)
        out = np.zeros(n.shape, float)
        for q in np.unique(np.minimum(n[n > 0], threads)):
            sel = (n > 0) & (np.minimum(n, threads) == q)
            waves = -(-n[sel] // q)
            tail = self.request_tail(chunk_bytes, int(q)) * np.minimum(
                1.0, np.log(0.5 * (n[sel] + 1)) / math.log(50))
            t = self.request_seconds(chunk_bytes, int(q))
            seq = n[sel] * chunk_bytes / self.sequential_bytes_per_s
            if self.burst_excess_s:      # measured on bursts like these: no tail, no overhead
                out[sel] = np.maximum(waves * t, seq) + self.excess_seconds(int(q))
            else:
                out[sel] = np.maximum(waves * t + tail, seq) + self.overhead_seconds(int(q))
        return out if out.ndim else float(out)

    def sequential_seconds(self, nbytes: float) -> float:
        return nbytes / self.sequential_bytes_per_s

    # ---- files ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": 1, "kind": self.kind,
                "description": self.description, "machine": self.machine,
                "sequential_bytes_per_s": self.sequential_bytes_per_s,
                "points": [dict({"chunk_bytes": int(c), "threads": int(t),
                                 "bytes_per_s": float(b)},
                                **({"latency_tail_s": self.latency_tail_s[i]}
                                   if self.latency_tail_s else {}))
                           for i, (c, t, b) in enumerate(zip(self.chunk_bytes, self.threads,
                                                             self.bytes_per_s))],
                "burst_overhead_s": {str(k): float(v)
                                     for k, v in self.burst_overhead_s.items()},
                "burst_excess_s": {str(k): {str(w): float(v) for w, v in e.items()}
                                   for k, e in self.burst_excess_s.items()},
                "sources": dict(self.sources)}


def from_dict(doc: dict, where: str = "calibration") -> StorageCalibration:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"{where}: not a {FORMAT} file (\"format\" is "
                         f"{doc.get('format') if isinstance(doc, dict) else None!r})")
    pts = doc.get("points")
    if not isinstance(pts, list) or not pts:
        raise InputError(f"{where}: \"points\" must be a non-empty list")
    try:
        c = tuple(float(p["chunk_bytes"]) for p in pts)
        t = tuple(int(p["threads"]) for p in pts)
        b = tuple(float(p["bytes_per_s"]) for p in pts)
        sd = tuple(float(p.get("latency_tail_s", 0.0)) for p in pts)
        return StorageCalibration(kind=doc.get("kind", "measured"),
                                  sequential_bytes_per_s=float(doc["sequential_bytes_per_s"]),
                                  chunk_bytes=c, threads=t, bytes_per_s=b,
                                  description=str(doc.get("description", "")),
                                  machine=doc.get("machine"), sources=doc.get("sources") or {},
                                  path=where, latency_tail_s=sd if any(sd) else (),
                                  burst_overhead_s={int(k): float(v) for k, v in (
                                      doc.get("burst_overhead_s") or {}).items()},
                                  burst_excess_s={int(k): {int(w): float(v) for w, v in
                                                           e.items()} for k, e in (
                                      doc.get("burst_excess_s") or {}).items()})
    except (KeyError, TypeError) as exc:
        raise InputError(f"{where}: missing or bad field {exc}") from None
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


# ---- presets that are not files ---------------------------------------------------------------
PCIE_RTX4090_BYTES_PER_S = 31.5e9     # PCIe 4.0 x16, one direction: 16 GT/s x 16 x 128/130 [P]
PCIE_ROW_LATENCY_S = 5e-6             # ASSUMED: one host-to-device copy's fixed cost
PCIE_CHUNKS = tuple(4096 << k for k in range(9))


def pcie_calibration(bytes_per_s: float = PCIE_RTX4090_BYTES_PER_S,
                     latency_s: float = PCIE_ROW_LATENCY_S, kind: str = "published",
                     source: str = "PCIe 4.0 x16 specification (RTX 4090): 31.5 GB/s per "
                                   "direction [P]") -> StorageCalibration:
    """GPU variant: FFN neurons kept in pinned host memory and copied to the GPU over PCIe.
    One copy per row (or bundle), ``q`` in flight sharing the link::

        t(c, q) = latency_s + q * c / bytes_per_s      (points at q = 1 and 32, 4 KiB..1 MiB)
    """
    pts = [(c, q, q * c / (latency_s + q * c / bytes_per_s)) for q in (1, 32)
           for c in PCIE_CHUNKS]
    return StorageCalibration(
        kind, bytes_per_s, tuple(p[0] for p in pts), tuple(p[1] for p in pts),
        tuple(p[2] for p in pts),
        description=f"GPU variant: neurons copied from pinned host memory over PCIe at "
                    f"{bytes_per_s / 1e9:.1f} GB/s ({kind}), {latency_s * 1e6:.0f} us per copy "
                    "(assumed)",
        sources={"sequential_bytes_per_s": source,
                 "latency_s": "ASSUMED: fixed cost of one cudaMemcpyAsync-sized copy"},
        path=f"pcie ({kind})")


def pcie_from_kv_calibration(path) -> StorageCalibration:
    """The GPU variant with the pinned host-to-device bandwidth of a ``simkit-kv-calibration``
    file (``simkit bench gpu`` writes one; its sources say whether it was measured)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        bw = float(doc["pcie_bandwidth_bytes_per_s"])
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read JSON ({exc})") from None
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{p}: no numeric \"pcie_bandwidth_bytes_per_s\" (a "
                         "simkit-kv-calibration file from `simkit bench gpu`)") from None
    if not bw > 0:
        raise InputError(f"{p}: pcie_bandwidth_bytes_per_s must be > 0, got {bw!r}")
    src = str((doc.get("sources") or {}).get("pcie_bandwidth_bytes_per_s", ""))
    kind = "measured" if src.startswith("measured") else "published"
    return pcie_calibration(bw, kind=kind, source=f"{p}: {src or 'no source given'}")


def host_calibration_path() -> Path:
    """Where ``simkit bench storage --calibration host`` keeps this machine's calibration:
    ``$XDG_CACHE_HOME/simkit/flash-storage-host.json`` (default ``~/.cache``)."""
    import os
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "simkit" / "flash-storage-host.json"


def preset_names() -> list[str]:
    return sorted(x.stem for x in CALIBRATION_DIR.glob("*.json")) + ["host", "pcie-rtx4090",
                                                                     "pcie:KV-CALIBRATION.json"]


def load_calibration(name_or_path: str | Path = "published-m1max") -> StorageCalibration:
    """A shipped calibration by name (``published-m1max``, ``m2ultra-assumed``,
    ``rtx4090-linux-derived``, ``generic-nvme-assumed``), ``host`` (what ``simkit bench
    storage --calibration host`` measured here), ``pcie-rtx4090`` / ``pcie:FILE.json`` (the
    GPU variant over PCIe, ``pcie_calibration``), or a JSON file written by ``simkit bench
    storage --calibration``."""
    if isinstance(name_or_path, StorageCalibration):
        return name_or_path
    if name_or_path == "pcie-rtx4090":
        return pcie_calibration()
    if isinstance(name_or_path, str) and name_or_path.startswith("pcie:"):
        return pcie_from_kv_calibration(name_or_path[5:])
    if name_or_path == "host":
        hp = host_calibration_path()
        if not hp.is_file():
            raise InputError(f"host: no storage calibration of this machine at {hp}; measure "
                             "one with `simkit bench storage --calibration host`")
        name_or_path = hp
    p = Path(name_or_path)
    if not p.suffix and (CALIBRATION_DIR / f"{p}.json").is_file():
        p = CALIBRATION_DIR / f"{p}.json"
    if not p.is_file():
        shipped = ", ".join(preset_names())
        raise InputError(f"{name_or_path}: no such calibration file (shipped: {shipped})")
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read JSON ({exc})") from None
    return from_dict(doc, str(p))
