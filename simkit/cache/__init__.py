"""Set-associative caches and hierarchies (LRU, FIFO, random, tree-PLRU, SRRIP, BRRIP, DRRIP;
write-back/through, write-allocate or not; non-inclusive, inclusive, exclusive)."""
from simkit.cache.cache import Cache, CacheState, Hierarchy
from simkit.cache.config import PRESETS, CacheConfig, HierarchyConfig, single
from simkit.cache.policies import INCLUSION_IDS, POLICY_IDS
from simkit.cache.stats import CacheStats, LevelStats

__all__ = ["Cache", "CacheConfig", "CacheState", "CacheStats", "Hierarchy", "HierarchyConfig",
           "INCLUSION_IDS", "LevelStats", "POLICY_IDS", "PRESETS", "single"]
