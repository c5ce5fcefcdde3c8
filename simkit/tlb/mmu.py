"""The address-translation front: owns the MMU config, its TLB/PWC, page-table and data-cache
state, and streams traces through ``_kernels.run_mmu``.

    mmu = MMU("victima-radix")
    stats = mmu.run("traces/gups.skt.xz", warmup_records=300_000)
    stats.to_frame()

State persists across ``run`` calls until ``reset()``. Reach and the share of L2 lines holding
TLB blocks are sampled every ``sample_instructions`` instructions (default 1M, as the Victima
artifact's ``create_plots.py`` averages them), so ``TLBStats`` reports time averages; a run
shorter than one period gets one sample at its end.
"""
from __future__ import annotations

import numpy as np

from simkit.cache import CacheConfig, CacheState, HierarchyConfig
from simkit.cache import _kernels as CK
from simkit.core import _kernels as CoreK
from simkit.tlb import _kernels as K
from simkit.tlb.config import MMUConfig
from simkit.tlb.stats import TLBStats
from simkit.trace.format import DEFAULT_CHUNK
from simkit.trace.stream import drive, kernel_view, open_source

INITIAL_PT_SLOTS = 1 << 16
# run_mmu's core argument when no core model rides along: empty params turn it off (arrays of
# the real one's types, so one compiled kernel serves both)
_F = np.zeros(CoreK.NSTATE, np.float64)
NO_CORE = (np.zeros(0, np.int64), _F, np.zeros((2, 1), np.float64), _F, _F, _F,
           _F, np.zeros((2, 1), np.float64), _F, _F, _F, np.zeros((4, 1), np.int64))
CORE_BUFFER = 2048       # records the kernel buffers before advancing the core over them
SAMPLE_INSTRUCTIONS = 1_000_000


def _tlb_levels(config: MMUConfig) -> HierarchyConfig:
    """The TLB and PWC arrays as cache levels whose "lines" are translation keys (one 64-byte
    line per entry; see ``_kernels``). Absent PWCs get a placeholder the kernel never touches."""
    def level(name, entries, ways):
        return CacheConfig(name, entries * 64, ways, 64, "lru")
    pwcs = [level(f"PWC-{n}", e or config.pwc_ways, config.pwc_ways)
            for n, e in zip(("PML4", "PDPT", "PD"), config.pwc_entries)]
    pom = level("POM-TLB", config.pom_entries or config.pom_ways, config.pom_ways)
    l3 = level("L3-TLB", config.l3.entries, config.l3.ways) if config.l3 else level("L3-TLB", 1, 1)
    n = config.nested_tlb
    return HierarchyConfig(levels=(level(config.l1d.name, config.l1d.entries, config.l1d.ways),
                                   level(config.l1i.name, config.l1i.entries, config.l1i.ways),
                                   level(config.l2.name, config.l2.entries, config.l2.ways),
                                   *pwcs, pom, l3, level(n.name, n.entries, n.ways)))


class MMU:
    """A core's address translation (and, by default, its data caches) over traces."""

    def __init__(self, config: MMUConfig | str = "victima-radix", *,
                 sample_instructions: int = SAMPLE_INSTRUCTIONS, core=None):
        if isinstance(config, str):
            config = MMUConfig.preset(config)
        if not isinstance(config, MMUConfig):
            raise TypeError(f"config must be an MMUConfig or a preset name, got "
                            f"{type(config).__name__}")
        if int(sample_instructions) < 1:
            raise ValueError(f"sample_instructions: must be >= 1, got {sample_instructions}")
        self.config = config
        self.sample_instructions = int(sample_instructions)
        self.caches = CacheState(config.caches)
        self.tlbs = CacheState(_tlb_levels(config))
        nlev = len(config.caches.levels)
        p = np.zeros(K.P_CACHE_LAT + 2 * nlev + 1, dtype=np.int64)
        p[K.P_LAT_L1D] = config.l1d.latency_cycles
        p[K.P_LAT_L1I] = config.l1i.latency_cycles
        p[K.P_LAT_L2] = config.l2.latency_cycles
        p[K.P_LAT_PWC] = config.pwc_latency_cycles
        p[K.P_STLB_FILL_VICTIMS] = int(config.stlb_fill == "l1-victims")
        p[K.P_DATA] = int(config.data_through_caches)
        p[K.P_MODE] = self.caches.mode
        p[K.P_NLEV] = self.caches.nlev
        for pl, e in enumerate(config.pwc_entries):
            p[K.P_PWC_ON + pl] = int(e > 0)
        p[K.P_POM_ON] = int(config.pom_entries > 0)
        p[K.P_L3_ON] = int(config.l3 is not None)
        p[K.P_LAT_L3] = config.l3.latency_cycles if config.l3 else 0
        p[K.P_VICTIMA] = int(config.victima)
        p[K.P_VIC_PTW] = int(config.victima and config.victimize_on_ptw)
        p[K.P_VIC_EVICT] = int(config.victima and config.victima_insert_on_eviction)
        p[K.P_VIC_SIZE_TAG] = int(not config.artifact_compat)
        p[K.P_VIC_L2ONLY] = int(config.victima and config.victima_l2_only)
        p[K.P_VIC_LEVEL] = 1 if len(config.caches.levels) > 1 else 0
        p[K.P_PTWCP] = int(config.victima_ptw_cp)
        p[K.P_PTWCP_F_LO], p[K.P_PTWCP_F_HI] = config.ptw_cp_freq_range
        p[K.P_PTWCP_C_LO], p[K.P_PTWCP_C_HI] = config.ptw_cp_cost_range
        p[K.P_PTWCP_ARTIFACT] = int(config.ptw_cp_comparator == "artifact")
        p[K.P_PRESSURE_RRIP] = int(config.victima and len(config.caches.levels) > 1 and
                                   config.caches.levels[1].policy == "srrip-victima")
        if p[K.P_PTWCP] or p[K.P_PRESSURE_RRIP]:
            p[K.P_EPOCH] = config.pressure_epoch_instructions
        p[K.P_PRESSURE_MPKI_X1000] = int(round(min(config.pressure_mpki, 1e12) * 1000))
        p[K.P_NESTED] = int(config.nested)
        p[K.P_LAT_NTLB] = config.nested_tlb.latency_cycles
        p[K.P_SPLINTER] = int(config.nested and config.nested_splinter)
        p[K.P_BYPASS_MPKI_X1000] = int(round(min(config.ptw_cp_bypass_mpki, 1e12) * 1000))
        for k, lv in enumerate(config.caches.levels):
            p[K.P_CACHE_LAT + k] = lv.latency_cycles
        p[K.P_CACHE_LAT + nlev] = config.caches.memory_latency_cycles
        for k, lv in enumerate(config.caches.levels):       # TLB-block hit cycles per level
            p[K.P_CACHE_LAT + nlev + 1 + k] = config.victima_block_cycles[k] \
                if config.victima_block_cycles else lv.latency_cycles
        p[K.P_VIC_PARALLEL] = int(config.victima and config.victima_probe == "parallel-stlb")
        self.params = p
        self.counters = np.zeros(K.NCOUNT, dtype=np.int64)
        self.hist = np.zeros(K.HIST_BINS, dtype=np.int64)
        if core is not None:
            from simkit.core import CoreModel
            core = CoreModel(core, l1_cycles=config.caches.levels[0].latency_cycles,
                             mem_cycles=config.caches.memory_latency_cycles)
        self.core = core
        self._core_buf = np.zeros((4, CORE_BUFFER), np.int64)
        self.reset()

    def reset(self) -> None:
        if self.core is not None:
            self.core.reset()
        self.caches.reset()
        if self.params[K.P_PRESSURE_RRIP]:          # the switch starts off; epochs turn it on
            self.caches.geom[self.params[K.P_VIC_LEVEL], CK.G_PRESSURE] = 0
        self.tlbs.reset()
        self._memo = np.full(2 * K.MEMO_SLOTS, K.EMPTY, dtype=np.uint64)
        self.counters.fill(0)
        self.hist.fill(0)
        # (records so far, L2 TLB reach bytes, TLB-block reach bytes, share of L2 lines that
        # are TLB blocks)
        self.reach_samples = []
        self._new_table(INITIAL_PT_SLOTS)
        self._instructions = self._records = 0
        self._since_sample = 0                     # instructions since the last sample
        self._trace = ""

    def _new_table(self, slots: int) -> None:
        c = self.config
        self.pt_keys = np.full(slots, K.EMPTY, dtype=np.uint64)
        self.pt_vals = np.zeros(slots, dtype=np.uint64)
        m = np.zeros(K.NPM, dtype=np.uint64)
        m[K.PM_MASK] = slots - 1
        m[K.PM_NEXT4K] = 0x100                    # leave the first 1 MiB of frames unused
        m[K.PM_H_NEXT4K] = 0x100                  # (host frames too, under nested paging)
        m[K.PM_SEED] = (c.seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (1 << 64)
        m[K.PM_HUGE_THRESH] = int(round(c.huge_page_fraction * (1 << 32)))
        m[K.PM_H_HUGE_THRESH] = int(round(c.host_huge_page_fraction * (1 << 32)))
        m[K.PM_RANDOM] = c.scatter_mask() if c.placement == "random" else 0
        m[K.PM_RUN] = c.placement_run_frames
        m[K.PM_LEVELS] = c.radix_levels
        self.pt_meta = m

    def _grow_table(self) -> None:
        keys, vals, meta = self.pt_keys, self.pt_vals, self.pt_meta.copy()
        self.pt_keys = np.full(2 * len(keys), K.EMPTY, dtype=np.uint64)
        self.pt_vals = np.zeros(2 * len(keys), dtype=np.uint64)
        meta[K.PM_MASK] = 2 * len(keys) - 1
        meta[K.PM_COUNT] = 0
        K.rehash(keys, vals, self.pt_keys, self.pt_vals, meta)
        self.pt_meta = meta

    def tlb_blocks(self, level: int | str = "L2") -> int:
        """TLB blocks (Victima) resident in cache ``level`` now."""
        return len(self._blocks(level))

    def _blocks(self, level: int | str = "L2") -> np.ndarray:
        names = [lv.name for lv in self.config.caches.levels]
        i = names.index(level) if isinstance(level, str) else level
        lines = self.caches.resident_lines(i)
        return lines[(lines & K.TB_NS) != 0]

    def block_share(self, level: int | str = "L2") -> float:
        """Share of cache ``level``'s lines holding TLB blocks (guest and nested) now."""
        names = [lv.name for lv in self.config.caches.levels]
        i = names.index(level) if isinstance(level, str) else level
        if i >= len(names):
            return 0.0
        lv = self.config.caches.levels[i]
        return len(self._blocks(i)) / (lv.sets * lv.ways)

    def reach(self) -> tuple[int, int]:
        """Bytes of address space the L2 TLB's entries cover now, and the bytes covered by TLB
        blocks in the L2 cache (8 pages each; 4 KiB pages when the size bit is not kept)."""
        keys = self.tlbs.resident_lines(K.T_L2)
        huge = np.count_nonzero(keys & K.SIZE_2M)
        tlb = int((len(keys) - huge) * 4096 + huge * (2 << 20))
        if not self.config.victima or len(self.config.caches.levels) < 2:
            return tlb, 0
        blocks = self._blocks(1)
        blocks = blocks[(blocks & K.TB_NESTED) == 0]           # guest translations only
        big = np.count_nonzero(blocks & K.TB_2M)
        return tlb, int(((len(blocks) - big) * 4096 + big * (2 << 20)) * 8)

    @property
    def pages_mapped(self) -> int:
        return int(self.counters[K.C_PAGES_4K] + self.counters[K.C_PAGES_2M])

    @property
    def stats(self) -> TLBStats:
        return TLBStats(self.counters, self.hist, self.caches.counters, self._instructions,
                        self._records, self.config, self._trace, self.reach_samples,
                        self.core.stats if self.core is not None else None)

    def _sample(self) -> None:
        self.reach_samples.append((self._records, *self.reach(), self.block_share()))
        self._since_sample = 0

    def _feed(self, recs: np.ndarray) -> None:
        """Run the kernel over ``recs``; it stops where a sampling period of instructions ends
        (to sample) or the page table needs to grow."""
        words = kernel_view(recs)
        core = NO_CORE if self.core is None else self.core.kernel_state() + (self._core_buf,)
        done = 0
        total = 0
        while done < len(words):
            need = np.uint64(self.sample_instructions - self._since_sample)
            n, ic = K.run_mmu(words[done:], self.caches.as_tuple(), self.tlbs.as_tuple(),
                              self.pt_keys, self.pt_vals, self.pt_meta, self.params,
                              self.counters, self.hist, core, self._memo, need)
            n, ic = int(n), int(ic)
            done += n
            total += ic
            self._records += n
            self._instructions += ic
            self._since_sample += ic
            if self._since_sample >= self.sample_instructions:
                self._sample()
            elif done < len(words):
                self._grow_table()
        if self.core is not None:
            self.core.count(total, len(words))

    def run(self, trace, *, warmup_records: int = 0, max_records: int | None = None,
            chunk_records: int = DEFAULT_CHUNK, progress: bool | None = None) -> TLBStats:
        """Translate ``trace`` (path, ``Trace``, records or addresses); the first
        ``warmup_records`` records warm TLBs, caches and page table and are not counted."""
        name, total, chunks = open_source(trace, chunk_records, max_records)
        if name:
            self._trace = name
        start = drive(chunks, total, self._feed, lambda: self.stats,
                      warmup_records=warmup_records, progress=progress, desc="tlb",
                      name=name)
        if not self.reach_samples or self.reach_samples[-1][0] <= start.records:
            self._sample()                          # shorter than a period: one end sample
        return self.stats - start
