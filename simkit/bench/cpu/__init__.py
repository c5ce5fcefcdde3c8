"""The CPU side of the machine: load latency of caches and TLBs by pointer chase, and the
machine's own description.

- ``chase``: the measurement (``measure_cpu``), its address stream for the simulators
  (``chase_address_stream``), knees, summary, calibration file and plot;
- ``_kernels``: the jitted chase and clock loops;
- ``machine``: ``describe_machine()`` (CPU, caches, TLBs, pages, kernel, hypervisor), read from
  the OS; every other benchmark records it beside its numbers.
"""
from __future__ import annotations

import importlib

_MACHINE = ("describe_machine",)
__all__ = ["COLUMNS", "HUGE_BYTES", "LINE_BYTES", "PAGE_BYTES", "PAGE_KINDS", "STREAM_BASE",
           "SWEEPS", "TLB_PAGES_FULL", "TLB_PAGES_QUICK", "ChaseBuffer", "calibration",
           "chase_address_stream", "chase_words", "describe_machine", "find_knees", "knees",
           "measure_cpu", "plot_cpu", "summarize", "time_chase", "write_calibration"]


def __getattr__(name: str):
    """Names load lazily: ``simkit.bench.cpu.machine`` (which every benchmark reads) does not
    pull in numba and the chase."""
    if name in __all__:
        module = "machine" if name in _MACHINE else "chase"
        return getattr(importlib.import_module(f"simkit.bench.cpu.{module}"), name)
    raise AttributeError(f"module 'simkit.bench.cpu' has no attribute {name!r}")
