"""Microbenchmarks on the real machine; results become calibration files.

``simkit.bench.cpu``: load latency of caches and TLBs by pointer chase (``measure_cpu``,
``knees``, ``write_calibration``, ``plot_cpu``, ``chase_address_stream``).
``simkit.bench.machine``: ``describe_machine()``.

Names load lazily, so ``import simkit.bench`` costs nothing until one is used.
"""
from __future__ import annotations

import importlib

_NAMES = {
    "measure_cpu": "cpu", "knees": "cpu", "find_knees": "cpu", "write_calibration": "cpu",
    "calibration": "cpu", "plot_cpu": "cpu", "chase_address_stream": "cpu",
    "sattolo_cycle": "cpu", "summarize": "cpu", "describe_machine": "machine",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"simkit.bench.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'simkit.bench' has no attribute {name!r}")
