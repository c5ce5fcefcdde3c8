"""A cache hierarchy with the core model riding along: cycles and IPC of a trace's data accesses.

    from simkit.core.timed_caches import TimedHierarchy
    stats = TimedHierarchy("reference-3level", core="zen3").run("gups")
    stats.core.ipc, stats.to_frame()[["level", "miss_rate", "cycles", "ipc"]]

Translation is free here (every access hits an ideal TLB); for its cost use
``simkit.tlb.MMU(..., core=...)``, which times translation and data together. The cache counters
are exactly ``simkit.cache.Hierarchy``'s: each record walks the hierarchy (the cache package's
``run_walk``, the kernel of its inclusive and exclusive hierarchies) through the same
``hier_access`` the level-at-a-time kernel reproduces, and each record's data latency is the hit
latency (``latency_cycles``) of the level that served its slowest line, or the hierarchy's
``memory_latency_cycles``.
"""
from __future__ import annotations

import numpy as np

from simkit.cache import Hierarchy
from simkit.cache.stats import CacheStats
from simkit.cache import _kernels as CK
from simkit.core.config import CoreConfig
from simkit.core.model import CoreModel
from simkit.trace.stream import kernel_view


class TimedHierarchy(Hierarchy):
    """``Hierarchy(config)`` timed by ``CoreModel(core)`` (a preset name or a ``CoreConfig``).
    Runs on one thread, record by record (about half the speed of the untimed hierarchy)."""

    def __init__(self, config, core: CoreConfig | str = "victima"):
        super().__init__(config)
        cfg = self.config
        self.core = CoreModel(core, l1_cycles=cfg.levels[0].latency_cycles,
                              mem_cycles=cfg.memory_latency_cycles)
        self.latency = np.array([lv.latency_cycles for lv in cfg.levels]
                                + [cfg.memory_latency_cycles], dtype=np.int64)

    def reset(self) -> None:
        super().reset()
        self.core.reset()

    @property
    def stats(self) -> CacheStats:
        st = super().stats
        st.core = self.core.stats
        return st

    def _feed(self, recs: np.ndarray) -> None:
        s = self.state
        words = kernel_view(recs)
        lat = np.empty(len(words), dtype=np.int64)
        instructions = CK.run_walk(words, s.line_shift, s.as_tuple(), s.mode, s.nlev,
                                   self.latency, lat)
        self._records += len(recs)
        self._instructions += int(instructions)
        self.core.run(recs["icount"], None, None, lat, recs["op"], recs["flags"])
