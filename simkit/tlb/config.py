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
VICTIMA_PROBES = ("after-stlb", "parallel-stlb")
PTW_CP_COMPARATORS = ("ranges", "artifact")
PTW_CP_FREQ_MAX, PTW_CP_COST_MAX = 7, 15     # 3-bit and 4-bit saturating counters


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
    (a seeded hash of the region decides); frames are allocated contiguously or scattered.

    What a Victima TLB-block hit costs (REFERENCE.md 1.2, "Latency accounting"):

    - ``victima_block_cycles``: cycles of a block hit by the cache level holding the block
      (empty: each level's ``latency_cycles``). The artifact charges the level's *data access
      time*, not its full latency: ``memory_manager.cc`` ``accessTLBSubsystem`` adds
      ``perf_model/{l1_dcache,l2_cache,nuca}/data_access_time`` (4, 16, 20 c in Victima's
      configs) to the L1 TLB cycle, and ``page_table_virtualized.cc`` adds the same to the
      nested TLB's latency for a nested block hit.
    - ``victima_probe``: when the block lookup starts. ``"after-stlb"`` (default): after the L2
      TLB (STLB) lookup missed, so a hit costs L1 TLB + STLB + block. This is the paper's
      reading (REFERENCE.md 1.2: "the L2 is probed in parallel with the walk after the STLB
      miss"). ``"parallel-stlb"``: the lookup starts beside the STLB lookup, so a hit costs L1
      TLB + block and the STLB's cycles are not added. This is what the artifact charges
      (``accessTLBSubsystem``: a TLB-block hit is ``m_tlb_l1_access_penalty`` +
      ``data_access_time``, commented "parallel access to L2 and victima"). In the paper's
      L2-only mode a hit aborts the walk, so it costs the shorter of the block and the walk
      (which starts after the STLB lookup: STLB + walk under ``"parallel-stlb"``). A walk
      costs L1 TLB + STLB + the walk under both (the artifact: ``ptw_latency`` +
      ``m_tlb_l1_access_penalty`` + ``m_tlb_l2_access_penalty``, ``parallel_walk`` false).
      The walk itself is ours: the PWC latency once, then each PTE read below the deepest PWC
      hit at its cache level's latency (the artifact's ``pagetable_walker_radix.cc`` charges
      per level instead: a PWC hit 3 c, a miss the PTE read + 1 c; not modelled).

    The PTW cost predictor (``victima_ptw_cp``, REFERENCE.md 1.3) keeps per translation a 3-bit
    saturating walk-frequency counter (0-7) and a 4-bit walk-cost counter (walks with a PTE
    read from memory, 0-15), as the paper keeps them in unused PTE bits, and decides with
    ``ptw_cp_comparator``: ``"ranges"``, the paper's comparator box (costly when freq lies in
    ``ptw_cp_freq_range`` and cost in ``ptw_cp_cost_range``; the paper's "freq in [1, 12]"
    cannot be reached by a 3-bit counter, so the default is its reachable part, [1, 7]), or
    ``"artifact"``, the artifact's offline comparator (``ptw_cp/predict.py``): costly when
    ``(cost >= 1 and freq >= 2) or (cost == 1 and freq == 1)``. Cost counts a subset of the
    walks freq counts, so after a walk the artifact's rule is ``cost >= 1`` and differs from the
    default ranges only once a translation's walks went to memory 8 times or more (cost > 7).
    While the L2 cache's demand MPKI of the last epoch is above ``ptw_cp_bypass_mpki`` the
    predictor is bypassed and every translation is costly (``TLBStats``: ``ptw_cp_costly`` /
    ``ptw_cp_cheap`` count the predictor's decisions, ``ptw_cp_bypassed`` the insertions the
    bypass forced)."""

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
    placement_span_bytes: int = 0             # "random" over this span (0: 2^28 frames, 1 TiB)
    placement_run_frames: int = 1             # "random": in runs of this many frames (2^k)
    stlb_fill: str = "walk"                   # "walk": walks fill L1 and L2 TLB; "l1-victims"
    data_through_caches: bool = True          # data accesses also go through the caches
    pom_entries: int = 0                      # POM-TLB in memory (0: none); REFERENCE.md 1.4
    pom_ways: int = 16
    victima: bool = False                     # TLB blocks in the caches (REFERENCE.md 1.2)
    victimize_on_ptw: bool = True             # read a missing block in on every L2 TLB miss
    victima_insert_on_eviction: bool = True   # read in the block of an L2 TLB victim
    artifact_compat: bool = False             # no page-size bit in the block's tag
    victima_l2_only: bool = False             # the paper: blocks in the L2 only, probed there
    victima_probe: str = "after-stlb"         # block lookup after / beside the STLB (above)
    victima_block_cycles: tuple = ()          # block-hit cycles per cache level (above)
    victima_ptw_cp: bool = False              # the paper: PTW cost predictor gates insertions
    ptw_cp_comparator: str = "ranges"         # "ranges" (the paper's) or "artifact" (above)
    ptw_cp_freq_range: tuple = (1, 7)         # "ranges": costly when freq and cost lie in
    ptw_cp_cost_range: tuple = (1, 7)         #   these ranges (REFERENCE.md 1.3, the paper's)
    pressure_mpki: float = 5.0                # TLB-aware SRRIP on while L2 TLB MPKI > this
    ptw_cp_bypass_mpki: float = 5.0           # PTW-CP bypassed while L2 cache MPKI > this
    pressure_epoch_instructions: int = 100_000  # both measured over epochs of this length
    nested: bool = False                      # virtualized: 2D walks (guest table x host table)
    nested_tlb: TLBConfig = field(default_factory=lambda: TLBConfig("Nested-TLB", 64, 4, 1))
    host_huge_page_fraction: float = 0.0      # share of host 2 MiB regions mapped by 2 MiB pages
    nested_splinter: bool = False             # a walk caches min(guest, host) page size (x86)
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
        for name in ("huge_page_fraction", "host_huge_page_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement: unknown {self.placement!r}; choose from "
                             f"{', '.join(PLACEMENTS)}")
        r = self.placement_run_frames
        if isinstance(r, bool) or not isinstance(r, int) or r < 1 or r & (r - 1) or r > 1 << 18:
            raise ValueError(f"placement_run_frames: a power of two from 1 to 2^18, got {r!r}")
        if not isinstance(self.nested_splinter, bool):
            raise ValueError(f"nested_splinter: must be true or false, got "
                             f"{self.nested_splinter!r}")
        span = self.placement_span_bytes
        if isinstance(span, bool) or not isinstance(span, int) or not (
                span == 0 or 2 << 20 <= span <= 1 << 40):
            raise ValueError(f"placement_span_bytes: must be 0 (1 TiB) or 2 MiB..1 TiB, got "
                             f"{span!r}")
        if self.stlb_fill not in STLB_FILLS:
            raise ValueError(f"stlb_fill: unknown {self.stlb_fill!r}; choose from "
                             f"{', '.join(STLB_FILLS)}")
        if self.pom_entries < 0 or (self.pom_entries and (
                self.pom_entries % self.pom_ways
                or not is_power_of_two(self.pom_entries // self.pom_ways))):
            raise ValueError(f"pom_entries: {self.pom_entries} must be 0 or pom_ways "
                             f"({self.pom_ways}) times a power of two")
        if self.victima_probe not in VICTIMA_PROBES:
            raise ValueError(f"victima_probe: unknown {self.victima_probe!r}; choose from "
                             f"{', '.join(VICTIMA_PROBES)}")
        bc = self.victima_block_cycles
        if not isinstance(bc, (tuple, list)) or not all(
                isinstance(x, int) and x >= 0 for x in bc) or \
                len(bc) not in (0, len(self.caches.levels)):
            raise ValueError(f"victima_block_cycles: expected () or one cycle count >= 0 per "
                             f"cache level ({len(self.caches.levels)}), got {bc!r}")
        object.__setattr__(self, "victima_block_cycles", tuple(bc))
        if self.ptw_cp_comparator not in PTW_CP_COMPARATORS:
            raise ValueError(f"ptw_cp_comparator: unknown {self.ptw_cp_comparator!r}; choose "
                             f"from {', '.join(PTW_CP_COMPARATORS)}")
        for name, top in (("ptw_cp_freq_range", PTW_CP_FREQ_MAX),
                          ("ptw_cp_cost_range", PTW_CP_COST_MAX)):
            r = getattr(self, name)
            if (not isinstance(r, (tuple, list)) or len(r) != 2
                    or not all(isinstance(x, int) and 0 <= x <= top for x in r)
                    or r[0] > r[1]):
                raise ValueError(f"{name}: expected (low, high) integers with 0 <= low <= high "
                                 f"<= {top} (the counter's largest value), got {r!r}")
            object.__setattr__(self, name, tuple(r))
        if self.victima_ptw_cp and not (self.victima and self.victima_l2_only):
            raise ValueError("victima_ptw_cp: the PTW cost predictor gates the paper's L2 "
                             "insertions; it needs victima and victima_l2_only")
        if self.victima_l2_only and len(self.caches.levels) < 2:
            raise ValueError("victima_l2_only: the caches have no L2 level")
        for name in ("pressure_mpki", "ptw_cp_bypass_mpki"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.pressure_epoch_instructions < 1:
            raise ValueError(f"pressure_epoch_instructions: must be >= 1, got "
                             f"{self.pressure_epoch_instructions}")
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

    def scatter_mask(self) -> int:
        """The mask of ``placement`` random's frame numbers: 4 KiB frames scatter over the
        power of two of frames covering ``placement_span_bytes`` (0: 2^28 frames, 1 TiB)."""
        if not self.placement_span_bytes:
            return (1 << 28) - 1
        return (1 << (-(-self.placement_span_bytes // 4096) - 1).bit_length()) - 1

    def replace(self, **changes) -> "MMUConfig":
        return dataclasses.replace(self, **changes)


def _victima_caches(l2_policy: str) -> HierarchyConfig:
    """Victima's data caches (REFERENCE.md 1.1) with another L2 replacement policy."""
    base = HierarchyConfig.preset("victima-baseline")
    levels = list(base.levels)
    levels[1] = dataclasses.replace(levels[1], policy=l2_policy)
    return dataclasses.replace(base, levels=tuple(levels))


# Sniper's perf_model/{l1_dcache,l2_cache,nuca}/data_access_time in Victima's configs
# (REFERENCE.md 1.1: L1D 4+1, L2 16+3, LLC 4+20 c): what the artifact charges for a block hit.
ARTIFACT_DATA_ACCESS_CYCLES = (4, 16, 20)

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
    # Victima as its artifact runs it (REFERENCE.md 1.2-1.3): blocks read in on every L2 TLB
    # miss and on L2 TLB evictions, looked up by presence in L1D/L2/LLC, STLB filled by L1 TLB
    # victims, PWC hit 3 c, the L2's srrip/tlb_enabled policy (TLB-block hit -> 0), no PTW-CP.
    # A block hit costs the L1 TLB cycle + the data access time of the level holding it
    # (1 + 4 / 16 / 20), the STLB's 12 c not added (memory_manager.cc accessTLBSubsystem).
    "victima-artifact": MMUConfig(huge_page_fraction=0.3, victima=True, stlb_fill="l1-victims",
                                  pwc_latency_cycles=3, artifact_compat=True,
                                  victima_probe="parallel-stlb",
                                  victima_block_cycles=ARTIFACT_DATA_ACCESS_CYCLES,
                                  caches=_victima_caches("srrip-victima-artifact")),
    # Victima as its paper describes it (REFERENCE.md 1.2-1.3): blocks (with a page-size bit)
    # in the L2 only, probed in parallel with the walk after the STLB miss (victima_probe
    # "after-stlb"; "parallel-stlb" is the other reading), a hit costing the L2's latency;
    # the PTW cost predictor's comparator (freq in [1, 12] -> [1, 7] for a 3-bit counter, cost
    # in [1, 7]) gates insertion after walks and on L2 TLB evictions; TLB-aware SRRIP on while
    # the L2 TLB MPKI > 5; the predictor bypassed while L2 MPKI > 5.
    "victima-paper": MMUConfig(huge_page_fraction=0.3, victima=True, victima_l2_only=True,
                               victima_ptw_cp=True, pwc_latency_cycles=3,
                               caches=_victima_caches("srrip-victima")),
    # The same with the artifact's offline comparator (ptw_cp/predict.py): costly when
    # (DRAM >= 1 and PTWs >= 2) or (DRAM == 1 and PTWs == 1).
    "victima-paper-cp-artifact": MMUConfig(
        huge_page_fraction=0.3, victima=True, victima_l2_only=True, victima_ptw_cp=True,
        ptw_cp_comparator="artifact", pwc_latency_cycles=3,
        caches=_victima_caches("srrip-victima")),
    # This VM (REFERENCE.md 5.2/5.4): L1 DTLB 64 entries fully associative, L2 DTLB 2048
    # (8-way per CPUID), STLB hit +7 c; Zen 3 PWC geometry is unpublished: Victima's is used.
    "zen3": MMUConfig(
        l1d=TLBConfig("L1D-TLB", 64, 64, 1),
        l1i=TLBConfig("L1I-TLB", 64, 64, 1),
        l2=TLBConfig("L2-TLB", 2048, 8, 7),
        caches=HierarchyConfig.preset("zen3-vm")),
}
