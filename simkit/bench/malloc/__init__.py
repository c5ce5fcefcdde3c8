"""Real allocators on this machine: replaying allocation traces (``replay``), the security
probes (``probe``), the shared libraries each one needs (``libraries``) and the C programs
compiled at run time into a private cache (``build``).

Comparing the allocator models with these measurements (validation, cost fit, placement) is
``simkit.calibrate.malloc``'s; the table of model and real probes side by side is the
``allocators`` experiment's (``simkit.experiments.allocators.security_table``).
"""
from __future__ import annotations

from simkit.bench.malloc.libraries import (ALLOCATORS, LIBRARIES, PACKAGES, available, library,
                                           missing_reason)
from simkit.bench.malloc.probe import PROBE_SIZES, REFERENCE_TABLE, compare_reference, probe_real
from simkit.bench.malloc.replay import bench_malloc, replay_addresses, replay_once, replay_rss

__all__ = ["ALLOCATORS", "LIBRARIES", "PACKAGES", "PROBE_SIZES", "REFERENCE_TABLE", "available",
           "bench_malloc", "compare_reference", "library", "missing_reason", "probe_real",
           "replay_addresses", "replay_once", "replay_rss"]
