"""Allocator designs, one file each: ``ptmalloc`` (glibc 2.36, in-band metadata) and ``slab``
(out-of-line metadata: the SJMalloc-, hardened_malloc- and mimalloc-style presets)."""
from simkit.allocators.models.ptmalloc import PtmallocEngine
from simkit.allocators.models.slab import SlabEngine

ENGINES = {"ptmalloc": PtmallocEngine, "slab": SlabEngine}

__all__ = ["ENGINES", "PtmallocEngine", "SlabEngine"]
