"""The core model's front: state across chunks, a real and an ideal-translation twin."""
from __future__ import annotations

import numpy as np

from simkit.core import _kernels as K
from simkit.core.config import CoreConfig
from simkit.core.stats import CoreStats


class _Twin:
    def __init__(self, cfg: CoreConfig):
        self.st = np.zeros(K.NSTATE, np.float64)
        self.ring = np.zeros((2, K.ring_size(cfg.rob)), np.float64)
        self.lqr = np.zeros(cfg.lq, np.float64)
        self.walk = np.zeros(cfg.walkers, np.float64)
        self.mshr = np.zeros(max(cfg.mshrs, 1) + 1, np.float64)   # + the DRAM server

    def run(self, icount, ops, flags, trans, walks, lat, params):
        K.run_core(icount, ops, flags, trans, walks, lat, params, self.st, self.ring, self.lqr,
                   self.walk, self.mshr)

    @property
    def cycles(self) -> float:
        return float(max(self.st[K.S_T], self.st[K.S_CUMMAX]))


class CoreModel:
    """Cycles of a stream of memory accesses with given latencies (module ``simkit.core``).

    ``run(icount, trans, walks, lat, ops=None, flags=None)`` takes, per access: instructions
    since the previous access (including this one), translation cycles (lookups + walk), the
    walk's share of them, and the data access latency; it may be called chunk by chunk.
    ``trans`` and ``walks`` None: translation is free (a cache hierarchy timed alone), so the
    ideal-translation twin would repeat the real one and is not run; a model is used one way or
    the other until ``reset()``. ``l1_cycles``: the L1D hit latency; a data latency above it
    is a miss, which takes an MSHR (``CoreConfig.mshrs``); ``mem_cycles``: the memory
    latency, at or above which a data latency is a fill from memory (a DRAM slot, with
    ``CoreConfig.dram_line_cycles``)."""

    def __init__(self, config: CoreConfig | str = "victima", l1_cycles: int = 0,
                 mem_cycles: int = 0):
        self.cfg = CoreConfig.preset(config) if isinstance(config, str) else config
        self.params = self.cfg.params(l1_cycles, mem_cycles)
        self.reset()

    def reset(self) -> None:
        self._real, self._ideal = _Twin(self.cfg), _Twin(self.cfg)
        self._free = None                 # translation free (True) or charged (False), once run
        self.instructions = 0
        self.accesses = 0

    def run(self, icount, trans, walks, lat, ops=None, flags=None) -> CoreStats:
        n = len(icount)
        free = trans is None and walks is None
        if self._free is not None and free != self._free:
            raise ValueError("trans/walks: give them on every call or on none (None: free "
                             "translation) until reset()")
        self._free = free
        zero = np.zeros(n, np.int64)
        icount = np.ascontiguousarray(icount, dtype=np.int64)
        trans = zero if free else np.ascontiguousarray(trans, dtype=np.int64)
        walks = zero if free else np.ascontiguousarray(walks, dtype=np.int64)
        lat = np.ascontiguousarray(lat, dtype=np.int64)
        ops = np.zeros(n, np.uint8) if ops is None else np.ascontiguousarray(ops, np.uint8)
        flags = np.zeros(n, np.uint8) if flags is None else np.ascontiguousarray(flags, np.uint8)
        self._real.run(icount, ops, flags, trans, walks, lat, self.params)
        if not free:
            self._ideal.run(icount, ops, flags, zero, zero, lat, self.params)
        self.instructions += int(icount.sum())
        self.accesses += n
        return self.stats

    def kernel_state(self) -> tuple:
        """The arrays a kernel that runs the core inline (``simkit.tlb._kernels.run_mmu``)
        advances: (params, then st, ring, lqr, walk, mshr of the real and of the
        ideal-translation twin). Translation is charged; the caller counts with ``count``."""
        if self._free:
            raise ValueError("trans/walks: this model was run with free translation; reset() "
                             "first")
        self._free = False
        r, i = self._real, self._ideal
        return (self.params, r.st, r.ring, r.lqr, r.walk, r.mshr, i.st, i.ring, i.lqr, i.walk,
                i.mshr)

    def count(self, instructions: int, accesses: int) -> None:
        """Add what a kernel advanced through ``kernel_state`` covered."""
        self.instructions += int(instructions)
        self.accesses += int(accesses)

    @property
    def stats(self) -> CoreStats:
        real = self._real.cycles
        return CoreStats(self.cfg.name, self.instructions, self.accesses, real,
                         real if self._free else self._ideal.cycles, self.cfg.clock_ghz)
