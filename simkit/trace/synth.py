"""Seeded synthetic access streams: sequential, strided, uniform random, zipf, pointer chase.

Every generator returns an ACCESS_DTYPE array and is deterministic for a given seed.
Addresses start at ``base`` and are ``align``-aligned; one instruction per record.
"""
from __future__ import annotations

import numpy as np

from simkit.trace._kernels import sattolo_order
from simkit.trace.format import Op, make_records

GENERATORS = ("sequential", "strided", "uniform", "zipf", "chase")


def _check(n: int, footprint: int, align: int, base: int = 0) -> None:
    if n < 0:
        raise ValueError(f"n: must be >= 0, got {n}")
    if align <= 0:
        raise ValueError(f"align: must be > 0, got {align}")
    if footprint < align:
        raise ValueError(f"footprint_bytes: must be >= align ({align}), got {footprint}")
    if base < 0 or base + footprint > 1 << 64:
        raise ValueError(f"base: {base:#x} + footprint {footprint} does not fit in 64-bit "
                         f"addresses (addresses would wrap)")


def _records(slots: np.ndarray, base: int, align: int, op: int, size: int) -> np.ndarray:
    addr = np.uint64(base) + slots.astype(np.uint64) * np.uint64(align)
    return make_records(addr, op=op, size=size)


def sequential(n: int, footprint_bytes: int, *, stride: int = 8, base: int = 0x10000000,
               op: int = Op.LOAD, size: int = 8) -> np.ndarray:
    """Addresses base, base+stride, ... wrapping at ``footprint_bytes``."""
    _check(n, footprint_bytes, stride, base)
    slots = np.arange(n, dtype=np.uint64) % np.uint64(footprint_bytes // stride)
    return _records(slots, base, stride, op, size)


def strided(n: int, footprint_bytes: int, *, stride: int = 4096, base: int = 0x10000000,
            op: int = Op.LOAD, size: int = 8) -> np.ndarray:
    """A fixed stride larger than a line (the same as ``sequential`` with a big step)."""
    return sequential(n, footprint_bytes, stride=stride, base=base, op=op, size=size)


def uniform(n: int, footprint_bytes: int, *, align: int = 8, base: int = 0x10000000,
            seed: int = 0, store_fraction: float = 0.0, size: int = 8) -> np.ndarray:
    """Uniformly random ``align``-aligned addresses; a ``store_fraction`` of them are stores."""
    _check(n, footprint_bytes, align, base)
    if not 0.0 <= store_fraction <= 1.0:
        raise ValueError(f"store_fraction: must be in [0, 1], got {store_fraction}")
    rng = np.random.default_rng(seed)
    slots = rng.integers(0, footprint_bytes // align, size=n, dtype=np.uint64)
    ops = (rng.random(n) < store_fraction).astype(np.uint8) if store_fraction else Op.LOAD
    return _records(slots, base, align, ops, size)


def zipf(n: int, footprint_bytes: int, *, alpha: float = 1.0, align: int = 64,
         base: int = 0x10000000, seed: int = 0, size: int = 8) -> np.ndarray:
    """Zipf-popular ``align``-sized objects (rank r has weight r**-alpha), ranks shuffled over
    the footprint so popular objects are not adjacent."""
    _check(n, footprint_bytes, align, base)
    if not (alpha > 0 and alpha < float("inf")):
        raise ValueError(f"alpha: must be a finite number > 0, got {alpha}")
    rng = np.random.default_rng(seed)
    objects = footprint_bytes // align
    weights = np.arange(1, objects + 1, dtype=np.float64) ** -alpha
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    ranks = np.searchsorted(cdf, rng.random(n), side="right")
    placement = rng.permutation(objects).astype(np.uint64)
    return _records(placement[np.minimum(ranks, objects - 1)], base, align, Op.LOAD, size)


def sattolo(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly random single cycle over 0..n-1 (Sattolo's algorithm), as (successor array,
    visiting order of a walk from node 0), both uint64. Deterministic for a given ``seed``;
    ``simkit bench cpu`` builds its measured chains with the same function."""
    if n < 1:
        raise ValueError(f"n: a cycle needs at least one node, got {n}")
    rng = np.random.default_rng(seed)
    draws = np.zeros(n, dtype=np.uint64)
    if n > 1:
        draws[1:] = rng.integers(0, np.arange(1, n, dtype=np.int64), dtype=np.int64)
    return sattolo_order(draws)


def sattolo_cycle(n: int, seed: int = 0) -> np.ndarray:
    """The successor array of ``sattolo(n, seed)``: next[i] is i's successor."""
    return sattolo(n, seed)[0]


def chase(n: int, footprint_bytes: int, *, align: int = 64, base: int = 0x10000000,
          seed: int = 0, size: int = 8) -> np.ndarray:
    """A random pointer chase: one ``align``-sized slot per node, visited along a single
    Sattolo cycle, so every slot is touched once per lap."""
    _check(n, footprint_bytes, align, base)
    order = sattolo(footprint_bytes // align, seed)[1]
    slots = np.resize(order, n)
    return _records(slots, base, align, Op.LOAD, size)
