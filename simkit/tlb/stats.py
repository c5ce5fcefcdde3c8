"""Translation statistics: raw counters from the kernel, derived metrics as properties.

Subtraction gives a region of interest; ``to_frame()`` gives one tidy row per (config, trace)
with ``param_*`` columns; ``cache_stats`` gives the data caches' own ``CacheStats``.
"""
from __future__ import annotations

import numpy as np

from simkit.cache.stats import CacheStats
from simkit.tlb import _kernels as K


def _per_kilo(n, instructions):
    return 1000.0 * n / instructions if instructions else float("nan")


class TLBStats:
    def __init__(self, counters, hist, cache_counters, instructions, records, config, trace="",
                 reach_samples=(), core=None):
        self.counters = np.asarray(counters, dtype=np.int64).copy()
        self.hist = np.asarray(hist, dtype=np.int64).copy()
        self.cache_counters = np.asarray(cache_counters, dtype=np.int64).copy()
        self.instructions = int(instructions)
        self.records = int(records)
        self.config = config
        self.trace = trace
        self.reach_samples = list(reach_samples)   # every MMU.sample_instructions
        self.core = core                            # CoreStats when the MMU runs a core model

    def __sub__(self, other: "TLBStats") -> "TLBStats":
        """The region between ``other`` and this snapshot (reach samples taken inside it)."""
        return TLBStats(self.counters - other.counters, self.hist - other.hist,
                        self.cache_counters - other.cache_counters,
                        self.instructions - other.instructions, self.records - other.records,
                        self.config, self.trace,
                        [s for s in self.reach_samples if s[0] > other.records],
                        self.core - other.core if self.core is not None and
                        other.core is not None else self.core)

    @property
    def mean_tlb_reach_bytes(self) -> float:
        """Mean over samples of the address space covered by L2 TLB entries."""
        return float(np.mean([s[1] for s in self.reach_samples])) if self.reach_samples \
            else float("nan")

    @property
    def mean_block_reach_bytes(self) -> float:
        """Mean over samples of the address space covered by TLB blocks in the L2 cache
        (REFERENCE.md 1.4: the artifact's reach metric)."""
        return float(np.mean([s[2] for s in self.reach_samples])) if self.reach_samples \
            else float("nan")

    @property
    def mean_l2_block_share(self) -> float:
        """Mean over samples of the share of L2 cache lines holding TLB blocks (a time average:
        the artifact samples every 1M instructions)."""
        return float(np.mean([s[3] for s in self.reach_samples])) if self.reach_samples \
            else float("nan")

    def _c(self, i) -> int:
        return int(self.counters[i])

    # TLBs
    @property
    def l1d_hits(self): return self._c(K.C_L1D_HIT)
    @property
    def l1d_misses(self): return self._c(K.C_L1D_MISS)
    @property
    def l1i_hits(self): return self._c(K.C_L1I_HIT)
    @property
    def l1i_misses(self): return self._c(K.C_L1I_MISS)
    @property
    def l2_hits(self): return self._c(K.C_L2_HIT)
    @property
    def l2_misses(self): return self._c(K.C_L2_MISS)

    @property
    def l1d_miss_rate(self) -> float:
        n = self.l1d_hits + self.l1d_misses
        return self.l1d_misses / n if n else float("nan")

    @property
    def l2_miss_rate(self) -> float:
        n = self.l2_hits + self.l2_misses
        return self.l2_misses / n if n else float("nan")

    @property
    def l2_mpki(self) -> float:
        return _per_kilo(self.l2_misses, self.instructions)

    @property
    def l1_mpki(self) -> float:
        return _per_kilo(self.l1d_misses + self.l1i_misses, self.instructions)

    # walks
    @property
    def walks(self): return self._c(K.C_WALKS)

    @property
    def walk_refs(self): return self._c(K.C_WALK_REFS)

    @property
    def refs_per_walk(self) -> float:
        return self.walk_refs / self.walks if self.walks else float("nan")

    @property
    def mean_walk_cycles(self) -> float:
        return self._c(K.C_WALK_CYCLES) / self.walks if self.walks else float("nan")

    def walk_cycles_percentile(self, q: float) -> float:
        """Approximate walk latency percentile from the 16-cycle histogram (bin upper edge)."""
        total = self.hist.sum()
        if total == 0:
            return float("nan")
        k = int(np.searchsorted(np.cumsum(self.hist), q / 100.0 * total))
        return float((k + 1) * K.HIST_WIDTH)

    def refs_served_by(self) -> dict:
        """Walk PTE reads by the level that served them (cache names, then 'memory')."""
        names = [lv.name for lv in self.config.caches.levels] + ["memory"]
        return {n: self._c(K.C_REFS_AT + i) for i, n in enumerate(names)}

    def pwc_hit_rates(self) -> dict:
        out = {}
        for pl, name in enumerate(("pml4", "pdpt", "pd")):
            h, m = self._c(K.C_PWC_HIT + pl), self._c(K.C_PWC_MISS + pl)
            out[name] = h / (h + m) if h + m else float("nan")
        return out

    # Victima's PTW cost predictor: insertions it decided, and those its bypass forced
    @property
    def ptw_cp_costly(self): return self._c(K.C_PTWCP_COSTLY)

    @property
    def ptw_cp_cheap(self): return self._c(K.C_PTWCP_CHEAP)

    @property
    def ptw_cp_bypassed(self): return self._c(K.C_PTWCP_BYPASS)

    @property
    def ptw_cp_decided(self) -> int:
        """Insertion decisions the predictor made (costly + cheap), not forced by the bypass."""
        return self.ptw_cp_costly + self.ptw_cp_cheap

    @property
    def pom_hits(self): return self._c(K.C_POM_HIT)

    @property
    def pom_misses(self): return self._c(K.C_POM_MISS)

    @property
    def translation_cycles(self): return self._c(K.C_TRANSLATION_CYCLES)

    @property
    def translation_cycles_per_access(self) -> float:
        n = self.l1d_hits + self.l1d_misses + self.l1i_hits + self.l1i_misses
        return self.translation_cycles / n if n else float("nan")

    @property
    def cache_stats(self) -> CacheStats:
        return CacheStats([lv.name for lv in self.config.caches.levels], self.cache_counters,
                          self.instructions, self.records, self.config.caches, self.trace)

    def to_frame(self):
        import pandas as pd

        row = {"trace": self.trace, "records": self.records, "instructions": self.instructions,
               "l1d_tlb_hits": self.l1d_hits, "l1d_tlb_misses": self.l1d_misses,
               "l1i_tlb_hits": self.l1i_hits, "l1i_tlb_misses": self.l1i_misses,
               "l2_tlb_hits": self.l2_hits, "l2_tlb_misses": self.l2_misses,
               "l3_tlb_hits": self._c(K.C_L3_HIT), "l3_tlb_misses": self._c(K.C_L3_MISS),
               "l1d_tlb_miss_rate": self.l1d_miss_rate, "l2_tlb_miss_rate": self.l2_miss_rate,
               "l1_tlb_mpki": self.l1_mpki, "l2_tlb_mpki": self.l2_mpki,
               "walks": self.walks, "walks_2m": self._c(K.C_WALKS_2M),
               "walk_refs": self.walk_refs, "refs_per_walk": self.refs_per_walk,
               "mean_walk_cycles": self.mean_walk_cycles,
               "p50_walk_cycles": self.walk_cycles_percentile(50),
               "p99_walk_cycles": self.walk_cycles_percentile(99),
               "translation_cycles": self.translation_cycles,
               "translation_cycles_per_access": self.translation_cycles_per_access,
               "pages_4k": self._c(K.C_PAGES_4K), "pages_2m": self._c(K.C_PAGES_2M),
               "page_table_nodes": self._c(K.C_NODES),
               "pom_hits": self.pom_hits, "pom_misses": self.pom_misses,
               "pom_line_reads": self._c(K.C_POM_REFS),
               "pom_inserts": self._c(K.C_POM_INSERTS),
               "victima_misses": self._c(K.C_VIC_MISS),
               "victima_alloc_on_ptw": self._c(K.C_VIC_ALLOC_PTW),
               "victima_alloc_on_eviction": self._c(K.C_VIC_ALLOC_EVICT),
               "victima_background_walks": self._c(K.C_VIC_BG_WALKS),
               "ptw_cp_costly": self.ptw_cp_costly, "ptw_cp_cheap": self.ptw_cp_cheap,
               "ptw_cp_decided": self.ptw_cp_decided,
               "ptw_cp_bypassed": self.ptw_cp_bypassed,
               "pressure_epochs": self._c(K.C_EPOCHS),
               "nested_tlb_hits": self._c(K.C_NTLB_HIT),
               "nested_tlb_misses": self._c(K.C_NTLB_MISS),
               "host_walks": self._c(K.C_HOST_WALKS), "host_walk_refs": self._c(K.C_HOST_REFS),
               "host_walk_cycles": self._c(K.C_HOST_CYCLES),
               "victima_nested_block_hits": self._c(K.C_NVIC_HIT),
               "victima_nested_block_allocs": self._c(K.C_NVIC_ALLOC),
               "host_pages": self._c(K.C_HOST_PAGES), "host_table_nodes": self._c(K.C_HOST_NODES),
               "translation_pressure_epochs": self._c(K.C_PRESSURE_EPOCHS),
               "mean_tlb_reach_bytes": self.mean_tlb_reach_bytes,
               "mean_block_reach_bytes": self.mean_block_reach_bytes,
               "mean_l2_tlb_block_share": self.mean_l2_block_share,
               "reach_samples": len(self.reach_samples)}
        for i, lv in enumerate(self.config.caches.levels):
            row[f"victima_hits_{lv.name.lower()}"] = self._c(K.C_VIC_HIT_AT + i)
        for name, v in self.pwc_hit_rates().items():
            row[f"pwc_{name}_hit_rate"] = v
        for name, v in self.refs_served_by().items():
            row[f"walk_refs_{name.lower()}"] = v
        c = self.config
        for part in ("l1d", "l1i", "l2", "l3"):
            t = getattr(c, part)
            row[f"param_{part}_tlb_entries"] = t.entries if t else 0
            row[f"param_{part}_tlb_ways"] = t.ways if t else 0
        row.update(param_pwc_entries=str(c.pwc_entries), param_radix_levels=c.radix_levels,
                   param_pom_entries=c.pom_entries, param_victima=c.victima,
                   param_artifact_compat=c.artifact_compat,
                   param_victima_l2_only=c.victima_l2_only,
                   param_victima_probe=c.victima_probe,
                   param_victima_block_cycles=str(c.victima_block_cycles),
                   param_nested=c.nested,
                   param_nested_tlb_entries=c.nested_tlb.entries,
                   param_host_huge_page_fraction=c.host_huge_page_fraction,
                   param_victima_ptw_cp=c.victima_ptw_cp,
                   param_ptw_cp_comparator=c.ptw_cp_comparator,
                   param_ptw_cp_freq_range=str(c.ptw_cp_freq_range),
                   param_ptw_cp_cost_range=str(c.ptw_cp_cost_range),
                   param_pressure_mpki=c.pressure_mpki,
                   param_ptw_cp_bypass_mpki=c.ptw_cp_bypass_mpki,
                   param_huge_page_fraction=c.huge_page_fraction, param_placement=c.placement,
                   param_stlb_fill=c.stlb_fill, param_seed=c.seed,
                   param_caches=", ".join(f"{lv.name} {lv.size_bytes}B/{lv.ways}w/{lv.policy}"
                                          for lv in c.caches.levels))
        if self.core is not None:
            row.update(self.core.row())
        return pd.DataFrame([row])
