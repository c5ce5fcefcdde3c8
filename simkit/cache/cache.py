"""The cache front: owns a hierarchy's config and state arrays, streams traces through the kernel.

    h = Hierarchy("reference-3level")          # or a HierarchyConfig, or a TOML path
    stats = h.run("traces/gups.skt.xz", warmup_records=100_000)
    stats.to_frame()

``Cache`` is the one-level case. State persists across ``run`` calls until ``reset()``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from simkit.cache import _kernels as K
from simkit.cache.config import CacheConfig, HierarchyConfig
from simkit.cache.policies import inclusion_id, policy_id
from simkit.cache.stats import CacheStats
from simkit.trace.format import DEFAULT_CHUNK
from simkit.trace.stream import as_records, drive, kernel_view, open_source


class CacheState:
    """The kernel's arrays for one hierarchy (see ``_kernels`` for the layout).

    ``as_tuple()`` is what jitted kernels take; other simulators (tlb) build one of these and
    call ``_kernels.hier_access`` from their own kernels."""

    def __init__(self, config: HierarchyConfig):
        self.config = config
        n = len(config.levels)
        self.nlev = n
        self.mode = inclusion_id(config.inclusion)
        self.line_shift = config.line_bytes.bit_length() - 1
        self.geom = np.zeros((n, K.NG), dtype=np.uint64)
        slots = sets = 0
        for i, lv in enumerate(config.levels):
            g = self.geom[i]
            g[K.G_SETMASK] = lv.sets - 1
            g[K.G_WAYS] = lv.ways
            g[K.G_BASE] = slots
            g[K.G_SETBASE] = sets
            g[K.G_POLICY] = policy_id(lv.policy)
            g[K.G_WB] = int(lv.write_back)
            g[K.G_WA] = int(lv.write_allocate)
            g[K.G_RRPV_MAX] = (1 << lv.rrpv_bits) - 1
            g[K.G_THROTTLE] = lv.brrip_throttle
            g[K.G_LEADER_STRIDE] = max(lv.sets // 32, 2) if lv.sets >= 4 else 1
            g[K.G_PSEL_MAX] = (1 << lv.psel_bits) - 1
            g[K.G_PRESSURE] = 1          # srrip-victima: on unless an MMU gates it
            slots += lv.sets * lv.ways
            sets += lv.sets
        self.tags = np.full(slots, K.EMPTY, dtype=np.uint64)
        self.repl = np.zeros(slots, dtype=np.uint8)
        self.setbits = np.zeros(sets, dtype=np.uint64)
        self.rng = np.zeros(n, dtype=np.uint64)
        self.psel = np.zeros(n, dtype=np.int64)
        self.counters = np.zeros((n + 1, K.NC), dtype=np.int64)
        self.vict = np.full(n, K.EMPTY, dtype=np.uint64)
        self._events = None
        self.reset()

    def event_buffers(self):
        """Scratch for ``run_records`` (non-inclusive): level-to-level event buffers (2 x EV_BATCH << (nlev-1))
        and a spanning record's events; allocated on first use."""
        if self._events is None:
            cap = K.EV_BATCH << max(self.nlev - 1, 0)
            self._events = (np.zeros((2, cap), dtype=np.uint64), np.zeros((2, cap), dtype=np.uint8),
                            np.zeros((2, 2 * K.MAX_RECORD_LINES), dtype=np.uint64),
                            np.zeros((2, 2 * K.MAX_RECORD_LINES), dtype=np.uint8))
        return self._events

    def reset(self) -> None:
        self.tags.fill(K.EMPTY)
        for i, lv in enumerate(self.config.levels):
            g = self.geom[i]
            base = int(g[K.G_BASE])
            self.repl[base:base + lv.sets * lv.ways] = int(g[K.G_RRPV_MAX])
            # a fixed odd mix of the seed and the level: xorshift state must not be zero
            self.rng[i] = np.uint64((lv.seed * 0x9E3779B97F4A7C15 + 0xD1B54A32D192ED03 * (i + 1))
                                    % (1 << 64) | 1)
            self.psel[i] = (int(g[K.G_PSEL_MAX]) + 1) // 2
        self.setbits.fill(0)
        self.counters.fill(0)
        self.vict.fill(K.EMPTY)

    def as_tuple(self):
        return (self.tags, self.repl, self.setbits, self.geom, self.rng, self.psel,
                self.counters, self.vict)

    def resident_lines(self, level: int) -> np.ndarray:
        """Line numbers held by ``level`` (for tests and inspection)."""
        g = self.geom[level]
        lv = self.config.levels[level]
        base = int(g[K.G_BASE])
        t = self.tags[base:base + lv.sets * lv.ways]
        return np.sort(t[t != K.EMPTY] >> np.uint64(1))


class Hierarchy:
    """A cache hierarchy simulated over traces.

    ``threads``: split the simulation over that many threads (a power of two, at most the
    smallest level's set count); the counters are the same for every count. Hierarchies with
    random, BRRIP or DRRIP levels run on one thread (``self.threads`` says how many are used)."""

    def __init__(self, config: HierarchyConfig | CacheConfig | str | os.PathLike, *,
                 threads: int = 1):
        if isinstance(config, CacheConfig):
            config = HierarchyConfig(levels=(config,))
        elif isinstance(config, (str, os.PathLike)):
            p = Path(config)
            config = HierarchyConfig.from_toml(p) if p.suffix == ".toml" else \
                HierarchyConfig.preset(str(config))
        if not isinstance(config, HierarchyConfig):
            raise TypeError(f"config must be a HierarchyConfig, CacheConfig, preset name or "
                            f"TOML path, got {type(config).__name__}")
        self.config = config
        self.state = CacheState(config)
        fewest = min(lv.sets for lv in config.levels)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1 or \
                threads & (threads - 1) or threads > fewest:
            raise ValueError(f"threads: must be a power of two from 1 to the smallest level's "
                             f"set count ({fewest}), got {threads!r}")
        # threads > 1: the hierarchy is split by the top set bits of its smallest level into
        # that many independent ones over disjoint sets (_kernels, "Threads"); the counters are
        # the same for every thread count. Levels with random, BRRIP or DRRIP replacement draw
        # from one generator per level in trace order, so such hierarchies run on one thread.
        self.threads = threads if all(policy_id(lv.policy) not in K.NOT_SET_LOCAL
                                      for lv in config.levels) else 1
        self._thread_scratch = None
        self._instructions = 0
        self._records = 0
        self._trace = ""

    def reset(self) -> None:
        self.state.reset()
        self._instructions = self._records = 0

    @property
    def stats(self) -> CacheStats:
        """Cumulative counters since construction or the last ``reset()``."""
        return CacheStats([lv.name for lv in self.config.levels], self.state.counters,
                          self._instructions, self._records, self.config, self._trace)

    def _feed(self, recs: np.ndarray) -> None:
        s = self.state
        words = kernel_view(recs)
        if self.threads > 1:
            fewest = min(lv.sets for lv in self.config.levels)
            tshift = fewest.bit_length() - self.threads.bit_length()
            instructions = K.run_records_threads(words, s.line_shift, tshift, s.as_tuple(),
                                                 s.mode, s.nlev, *self._scratch())
        elif s.mode == K.NON_INCLUSIVE:
            instructions = K.run_records(words, s.line_shift, s.as_tuple(), s.nlev,
                                         *s.event_buffers())
        else:
            instructions = K.run_walk(words, s.line_shift, s.as_tuple(), s.mode, s.nlev, K.NO_LAT,
                                      K.NO_LAT)
        self._records += len(recs)
        self._instructions += int(instructions)

    def _scratch(self):
        """Scratch for ``run_records_threads``: each thread's counters, victims, its slice's
        records partitioned by owner (and their counts) and event buffers."""
        if self._thread_scratch is None:
            t, s = self.threads, self.state
            ev = [b[None].repeat(t, axis=0) for b in s.event_buffers()]
            self._thread_scratch = (
                np.zeros((t, s.nlev + 1, K.NC), dtype=np.int64),
                np.full((t, max(s.nlev, 8)), K.EMPTY, dtype=np.uint64),    # a host line each
                np.zeros((t, t, K.PART_RECORDS // t + K.MAX_RECORD_LINES, 2), dtype=np.uint64),
                np.zeros((t, t), dtype=np.uint64), *ev)
        return self._thread_scratch

    def access(self, data) -> CacheStats:
        """Simulate an in-memory batch (records or byte addresses); returns the batch's stats."""
        before = self.stats
        recs = as_records(data)
        for start in range(0, len(recs), DEFAULT_CHUNK):
            self._feed(recs[start:start + DEFAULT_CHUNK])
        return self.stats - before

    def run(self, trace, *, warmup_records: int = 0, max_records: int | None = None,
            chunk_records: int = DEFAULT_CHUNK, progress: bool | None = None) -> CacheStats:
        """Stream ``trace`` (path, ``Trace``, records or addresses) through the hierarchy.

        The first ``warmup_records`` records warm the caches and are not counted; at most
        ``max_records`` records are simulated in all. Returns the measured region's stats."""
        name, total, chunks = open_source(trace, chunk_records, max_records)
        if name:
            self._trace = name
        start = drive(chunks, total, self._feed, lambda: self.stats,
                      warmup_records=warmup_records, progress=progress, desc="cache",
                      name=name)
        return self.stats - start


class Cache(Hierarchy):
    """A single cache level: ``Cache(CacheConfig(size_bytes="32KiB", ways=8))``."""

    def __init__(self, config: CacheConfig | None = None, **fields):
        if config is None:
            config = CacheConfig(**fields)
        elif fields:
            raise TypeError("pass either a CacheConfig or its fields, not both")
        super().__init__(HierarchyConfig(levels=(config,)))
