"""Address-translation configurations: TLB levels, page-walk caches, page table, data caches.

    MMUConfig.preset("victima-radix")     # the Victima paper's radix baseline (REFERENCE.md 1.1)
    MMUConfig.preset("zen3")              # this dev/CI VM (REFERENCE.md 5.2/5.4)

Frozen dataclasses, checked at construction (``ValueError`` naming the field).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from simkit.cache.config import HierarchyConfig
from simkit.units import is_power_of_two

STLB_FILLS = ("walk", "l1-victims")
PLACEMENTS = ("contiguous", "random")


@dataclass(frozen=True)
class TLBConfig:
    """One set-associative TLB holding 4 KiB and 2 MiB translations (LRU).

    A lookup probes the set of the 4 KiB page number, then the set of the 2 MiB page number
    (entries are tagged with their size), as a mixed-size TLB with two probes."""

    name: str = "L1D-TLB"
    entries: int = 64
    ways: int = 4
    latency_cycles: int = 1

    def __post_init__(self):
        if self.entries < 1 or self.ways < 1 or self.entries % self.ways:
            raise ValueError(f"{self.name}.entries: {self.entries} must be a positive multiple "
                             f"of ways ({self.ways})")
        if not is_power_of_two(self.entries // self.ways):
            raise ValueError(f"{self.name}.entries: gives {self.entries // self.ways} sets; the "
                             f"number of sets (entries / ways) must be a power of two")
        if self.latency_cycles < 0:
            raise ValueError(f"{self.name}.latency_cycles: must be >= 0, got {self.latency_cycles}")

    @property
    def sets(self) -> int:
        return self.entries // self.ways


@dataclass(frozen=True)
class MMUConfig:
    """A core's translation hardware and the page table it walks.

    Walks read one 8-byte PTE per radix level through ``caches`` (the data hierarchy), so PTEs
    compete with data; page-walk caches (PML4, PDPT, PD; no leaf level) let a walk start below
    the root. ``huge_page_fraction`` of 2 MiB regions are mapped by 2 MiB pages on first touch
    (a seeded hash of the region decides); frames are allocated contiguously or scattered."""

    l1d: TLBConfig = field(default_factory=lambda: TLBConfig("L1D-TLB", 64, 4, 1))
    l1i: TLBConfig = field(default_factory=lambda: TLBConfig("L1I-TLB", 128, 8, 1))
    l2: TLBConfig = field(default_factory=lambda: TLBConfig("L2-TLB", 1536, 12, 12))
    l3: TLBConfig | None = None               # optional L3 TLB (REFERENCE.md 1.4: 64K, 15-40 c)
    pwc_entries: tuple = (16, 16, 32)        # PML4, PDPT, PD caches
    pwc_ways: int = 4
    pwc_latency_cycles: int = 4
    radix_levels: int = 4                     # 4 (48-bit VA) or 5 (57-bit VA)
    huge_page_fraction: float = 0.0
    placement: str = "contiguous"
    stlb_fill: str = "walk"                   # "walk": walks fill L1 and L2 TLB; "l1-victims"
    data_through_caches: bool = True          # data accesses also go through the caches
    pom_entries: int = 0                      # POM-TLB in memory (0: none); REFERENCE.md 1.4
    pom_ways: int = 16
    victima: bool = False                     # TLB blocks in the caches (REFERENCE.md 1.2)
    victimize_on_ptw: bool = True             # read a missing block in on every L2 TLB miss
    victima_insert_on_eviction: bool = True   # read in the block of an L2 TLB victim
    artifact_compat: bool = False             # no page-size bit in the block's tag
    caches: HierarchyConfig = field(default_factory=lambda: HierarchyConfig.preset(
        "victima-baseline"))
    seed: int = 0

    def __post_init__(self):
        if self.radix_levels not in (4, 5):
            raise ValueError(f"radix_levels: must be 4 or 5, got {self.radix_levels}")
        if len(self.pwc_entries) != 3:
            raise ValueError(f"pwc_entries: expected 3 sizes (PML4, PDPT, PD), "
                             f"got {self.pwc_entries!r}")
        for i, e in enumerate(self.pwc_entries):
            if e < 0 or (e and (e % self.pwc_ways or not is_power_of_two(e // self.pwc_ways))):
                raise ValueError(f"pwc_entries[{i}]: {e} must be 0 or ways ({self.pwc_ways}) "
                                 f"times a power of two")
        if not 0.0 <= self.huge_page_fraction <= 1.0:
            raise ValueError(f"huge_page_fraction: must be in [0, 1], got {self.huge_page_fraction}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement: unknown {self.placement!r}; choose from "
                             f"{', '.join(PLACEMENTS)}")
        if self.stlb_fill not in STLB_FILLS:
            raise ValueError(f"stlb_fill: unknown {self.stlb_fill!r}; choose from "
                             f"{', '.join(STLB_FILLS)}")
        if self.pom_entries < 0 or (self.pom_entries and (
                self.pom_entries % self.pom_ways
                or not is_power_of_two(self.pom_entries // self.pom_ways))):
            raise ValueError(f"pom_entries: {self.pom_entries} must be 0 or pom_ways "
                             f"({self.pom_ways}) times a power of two")
        if self.caches.line_bytes != 64:
            raise ValueError(f"caches: walks read 8-byte PTEs from 64-byte lines; line_bytes is "
                             f"{self.caches.line_bytes}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["caches"] = self.caches.to_dict()
        return d

    @classmethod
    def preset(cls, name: str) -> "MMUConfig":
        try:
            return PRESETS[name]
        except KeyError:
            raise ValueError(f"preset: unknown {name!r}; choose from {', '.join(PRESETS)}") from None

    def replace(self, **changes) -> "MMUConfig":
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, MMUConfig] = {
    # Victima's radix baseline (REFERENCE.md 1.1): L1 DTLB 64/4-way, L1 ITLB 128/8-way, 1 c;
    # STLB 1536/12-way, 12 c; PWCs 16/16/32 4-way, 4 c; data caches L1D 32K, L2 2 MiB SRRIP,
    # LLC 1.375 MiB; 2 MiB pages for 30% of new PD entries.
    "victima-radix": MMUConfig(huge_page_fraction=0.3),
    "victima-radix-4k": MMUConfig(huge_page_fraction=0.0),
    # POM-TLB baseline (REFERENCE.md 1.4): 64K entries, 16-way, in memory, cached like data.
    "pom-tlb": MMUConfig(huge_page_fraction=0.3, pom_entries=65536, pom_ways=16),
    # Comparison points of REFERENCE.md 1.4: an ideal 64K-entry STLB at the baseline's 12 c,
    # and a 64K-entry L3 TLB at 15 c (the paper sweeps 15-40 c).
    "stlb-64k": MMUConfig(huge_page_fraction=0.3, l2=TLBConfig("L2-TLB", 65536, 16, 12)),
    "l3tlb-64k": MMUConfig(huge_page_fraction=0.3, l3=TLBConfig("L3-TLB", 65536, 16, 15)),
    # Victima as its artifact runs it (REFERENCE.md 1.2): blocks read in on every L2 TLB miss
    # and on L2 TLB evictions, looked up by presence in L1D/L2/LLC, STLB filled by L1 TLB
    # victims, PWC hit 3 c. Not yet modelled: the PTW cost predictor and TLB-aware SRRIP.
    "victima-artifact": MMUConfig(huge_page_fraction=0.3, victima=True, stlb_fill="l1-victims",
                                  pwc_latency_cycles=3, artifact_compat=True),
    # This VM (REFERENCE.md 5.2/5.4): L1 DTLB 64 entries fully associative, L2 DTLB 2048
    # (8-way per CPUID), STLB hit +7 c; Zen 3 PWC geometry is unpublished: Victima's is used.
    "zen3": MMUConfig(
        l1d=TLBConfig("L1D-TLB", 64, 64, 1),
        l1i=TLBConfig("L1I-TLB", 64, 64, 1),
        l2=TLBConfig("L2-TLB", 2048, 8, 7),
        caches=HierarchyConfig.preset("zen3-vm")),
}
