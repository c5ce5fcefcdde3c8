"""Address translation: TLB hierarchy, page-walk caches, radix page walks through the data
caches, a page table built on first touch (4 KiB and 2 MiB pages)."""
from simkit.tlb.config import PRESETS, MMUConfig, TLBConfig
from simkit.tlb.mmu import MMU
from simkit.tlb.stats import TLBStats

__all__ = ["MMU", "MMUConfig", "PRESETS", "TLBConfig", "TLBStats"]
