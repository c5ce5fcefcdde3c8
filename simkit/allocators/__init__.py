"""Heap allocator designs replaying real allocation traces: glibc ptmalloc (in-band
metadata), SJMalloc-style out-of-band metadata, hardened_malloc-style slabs, mimalloc-style
free-list sharding -- footprint, fragmentation, metadata, cost and security properties."""
from simkit.allocators.config import PRESETS, PtmallocConfig, SlabConfig, get_config, load_config
from simkit.allocators.replay import AllocatorModel, AllocStats

__all__ = ["AllocStats", "AllocatorModel", "PRESETS", "PtmallocConfig", "SlabConfig",
           "get_config", "load_config"]
