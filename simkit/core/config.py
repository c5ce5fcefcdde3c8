"""Core timing parameters and presets."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

DEPENDENCE = ("independent", "chain", "flag")


@dataclass(frozen=True)
class CoreConfig:
    """An out-of-order core as far as memory overlap goes.

    width: instructions dispatched (and retired) per cycle; rob: reorder-buffer entries;
    lq: load-queue entries (stores go to a store queue and never block dispatch); walkers:
    concurrent page walks (a walk waits for a free walker and holds it for its duration);
    mshrs: outstanding L1D load misses (miss-status holding registers / fill buffers: a miss
    waits for the earliest-free one and holds it until its data returns), 0 = no limit;
    dependence: how a memory access depends on earlier ones -- ``independent`` (gathers,
    streams: only the ROB, LQ and walkers limit overlap), ``chain`` (pointer chasing: every
    load's address comes from the previous load), ``flag`` (bit 0 of the record's ``flags``:
    the record waits for the previous load, as ``chain`` does for every record; tracers set it
    when the address came from the load whose record is just before it: sktrace.h leaves it
    off where the producing load wrote no record); clock_ghz: only to express
    cycles as time; dram_line_cycles: memory bandwidth as the interval between line fills from
    memory (a single DRAM server, a slot per fill in dispatch order, and one per walk that read
    memory; the fill's data arrives its latency after its slot), 0 = no limit. Not a
    microarchitectural constant: it is the sustained random-access fill rate one core sees
    (channels, banks, the writebacks the same stream causes, other tenants), taken from a
    measurement (``simkit.experiments.core_validation.calibrate_dram``) or left at 0.
    walk_mshrs: a page walk's PTE reads that miss the L1D take an MSHR too (one at a time, for
    the sum of their latencies, from the walk's start), as on Intel cores, whose page walker
    looks its loads up in the L1D and its fill buffers (the PAGE_WALKER_LOADS.DTLB_L1 event
    counts "hits in the L1+FB"); False: walks never compete with data misses for MSHRs.
    """

    name: str = "core"
    width: int = 4
    rob: int = 224
    lq: int = 72
    sq: int = 56
    walkers: int = 2
    mshrs: int = 0
    dependence: str = "independent"
    clock_ghz: float = 2.6
    dram_line_cycles: float = 0.0
    walk_mshrs: bool = False

    def __post_init__(self):
        for f in ("width", "rob", "lq", "sq", "walkers"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"core.{f}: must be an integer >= 1, got {v!r}")
        if isinstance(self.mshrs, bool) or not isinstance(self.mshrs, int) or self.mshrs < 0:
            raise ValueError(f"core.mshrs: must be an integer >= 0 (0: no limit), got "
                             f"{self.mshrs!r}")
        if self.rob > 1 << 16 or self.lq > 1 << 16 or self.walkers > 1024 or self.mshrs > 1024:
            raise ValueError("core: rob/lq at most 65536, walkers and mshrs at most 1024")
        if self.dependence not in DEPENDENCE:
            raise ValueError(f"core.dependence: one of {', '.join(DEPENDENCE)}, "
                             f"got {self.dependence!r}")
        if not (self.dram_line_cycles >= 0 and self.dram_line_cycles < 1e9):
            raise ValueError(f"core.dram_line_cycles: must be >= 0 (0: no limit), got "
                             f"{self.dram_line_cycles!r}")
        if not isinstance(self.walk_mshrs, bool):
            raise ValueError(f"core.walk_mshrs: must be true or false, got {self.walk_mshrs!r}")
        if not self.clock_ghz > 0:
            raise ValueError(f"core.clock_ghz: must be > 0, got {self.clock_ghz}")

    def replace(self, **kw) -> "CoreConfig":
        return dataclasses.replace(self, **kw)

    @classmethod
    def preset(cls, name: str) -> "CoreConfig":
        try:
            return CORE_PRESETS[name]
        except KeyError:
            raise ValueError(f"core preset: unknown {name!r}; choose from "
                             f"{', '.join(CORE_PRESETS)}") from None

    def params(self, l1_cycles: int = 0, mem_cycles: int = 0) -> np.ndarray:
        """The kernel's parameters; ``l1_cycles``: data latencies above it are L1D misses
        (they take an MSHR when ``mshrs`` > 0); ``mem_cycles``: data latencies at or above it
        are fills from memory (they take a DRAM slot when ``dram_line_cycles`` > 0; then
        ``mem_cycles`` must be > 0)."""
        dram = int(round(self.dram_line_cycles * 1000))
        if dram > 0 and mem_cycles <= 0:
            raise ValueError("core.dram_line_cycles: needs the memory latency (mem_cycles > 0)")
        return np.array([self.width, self.rob, self.lq, self.walkers,
                         DEPENDENCE.index(self.dependence), self.mshrs, l1_cycles, dram,
                         mem_cycles, int(self.walk_mshrs)], dtype=np.int64)


CORE_PRESETS: dict[str, CoreConfig] = {
    # Victima's simulated core (REFERENCE.md 1.1; the artifact's nehalem-based config): 4-wide,
    # ROB 224, LQ 72, SQ 56, 2.6 GHz. The artifact gives the MMU many concurrent walks
    # (perf_model/ptw parallel = 50); the paper's sensitivity study sweeps the walker count
    # down to 2/4/6. MSHRs: the artifact's perf_model/l1_dcache outstanding_misses = 16
    # (sniper/config/utopia_motivation_baseline.cfg, which its configs include).
    "victima": CoreConfig("victima", width=4, rob=224, lq=72, sq=56, walkers=50, mshrs=16,
                          clock_ghz=2.6),
    "victima-2walkers": CoreConfig("victima-2walkers", width=4, rob=224, lq=72, sq=56,
                                   walkers=2, mshrs=16, clock_ghz=2.6),
    # Zen 3 (AMD's Software Optimization Guide for family 19h): 6-wide dispatch, ROB 256,
    # 72 out-of-order loads, 64 stores, 6 concurrent table walks.
    "zen3": CoreConfig("zen3", width=6, rob=256, lq=72, sq=64, walkers=6, clock_ghz=3.0),
}
