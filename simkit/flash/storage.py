"""Flash read cost: throughput as a function of chunk size and parallel reads, from a
calibration table.

    T_io = sum over chunk sizes c of  bytes(c) / throughput(c, threads)     (REFERENCE.md 3.1)

``throughput(c, t)`` interpolates the table's points linearly in log2(chunk) among the points
measured with the thread count nearest to ``t`` (in log2); below the smallest chunk the table's
read rate (IOPS) is kept, so throughput falls in proportion to the chunk; above the largest it
stays at the largest point's value, never above the sequential figure. Whole-matrix (dense)
loads use ``sequential_bytes_per_s``.

Calibration file (JSON; ``published-m1max.json`` ships with simkit and says ``"kind":
"published"``; ``simkit bench storage --calibration`` writes ``"kind": "measured"`` files)::

    {"format": "simkit-flash-storage", "version": 1, "kind": "published" | "measured",
     "description": "...", "machine": {...} | null,
     "sequential_bytes_per_s": ...,
     "points": [{"chunk_bytes": 8192, "threads": 32, "bytes_per_s": 1.25e9}, ...],
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
KINDS = ("published", "measured")


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
        for name in ("chunk_bytes", "threads", "bytes_per_s"):
            bad = [v for v in getattr(self, name) if not (v > 0)]
            if bad:
                raise ValueError(f"points.{name}: must be > 0, got {bad[0]!r}")

    # ---- the cost model ------------------------------------------------------------------
    def thread_counts(self) -> list[int]:
        return sorted(set(int(t) for t in self.threads))

    def throughput(self, chunk_bytes: float, threads: int) -> float:
        """Bytes per second for random reads of ``chunk_bytes`` with ``threads`` in flight."""
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes: must be > 0, got {chunk_bytes!r}")
        counts = self.thread_counts()
        t = min(counts, key=lambda c: (abs(math.log2(c) - math.log2(max(threads, 1))), -c))
        pts = sorted((c, b) for c, th, b in zip(self.chunk_bytes, self.threads,
                                                 self.bytes_per_s) if th == t)
        cs = np.log2([p[0] for p in pts])
        bs = np.array([p[1] for p in pts], dtype=float)
        x = math.log2(chunk_bytes)
        if x <= cs[0]:
            v = bs[0] * chunk_bytes / pts[0][0]          # same IOPS as the smallest point
        elif x >= cs[-1]:
            v = bs[-1]
        else:
            v = float(np.interp(x, cs, bs))
        return min(v, self.sequential_bytes_per_s)

    def read_seconds(self, nbytes: float, chunk_bytes: float, threads: int) -> float:
        return nbytes / self.throughput(chunk_bytes, threads) if nbytes else 0.0

    def sequential_seconds(self, nbytes: float) -> float:
        return nbytes / self.sequential_bytes_per_s

    # ---- files ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": 1, "kind": self.kind,
                "description": self.description, "machine": self.machine,
                "sequential_bytes_per_s": self.sequential_bytes_per_s,
                "points": [{"chunk_bytes": int(c), "threads": int(t), "bytes_per_s": float(b)}
                           for c, t, b in zip(self.chunk_bytes, self.threads, self.bytes_per_s)],
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
        return StorageCalibration(kind=doc.get("kind", "measured"),
                                  sequential_bytes_per_s=float(doc["sequential_bytes_per_s"]),
                                  chunk_bytes=c, threads=t, bytes_per_s=b,
                                  description=str(doc.get("description", "")),
                                  machine=doc.get("machine"), sources=doc.get("sources") or {},
                                  path=where)
    except (KeyError, TypeError) as exc:
        raise InputError(f"{where}: missing or bad field {exc}") from None
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


def load_calibration(name_or_path: str | Path = "published-m1max") -> StorageCalibration:
    """A shipped calibration by name (``published-m1max``) or a JSON file written by
    ``simkit bench storage --calibration``."""
    if isinstance(name_or_path, StorageCalibration):
        return name_or_path
    p = Path(name_or_path)
    if not p.suffix and (CALIBRATION_DIR / f"{p}.json").is_file():
        p = CALIBRATION_DIR / f"{p}.json"
    if not p.is_file():
        shipped = ", ".join(sorted(x.stem for x in CALIBRATION_DIR.glob("*.json")))
        raise InputError(f"{name_or_path}: no such calibration file (shipped: {shipped})")
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read JSON ({exc})") from None
    return from_dict(doc, str(p))
