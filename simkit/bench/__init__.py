"""Microbenchmarks on the real machine, split by what they measure; results become
calibration files.

- ``simkit.bench.cpu``: load latency of caches and TLBs by pointer chase (``measure_cpu``,
  ``knees``, ``write_calibration``, ``plot_cpu``, ``chase_address_stream``) and the machine's
  description (``simkit.bench.cpu.machine.describe_machine``);
- ``simkit.bench.storage``: random-read throughput vs chunk size and parallel reads;
- ``simkit.bench.malloc``: real allocators (glibc, jemalloc, mimalloc, tcmalloc, Scudo) replaying
  an allocation trace, and the security probes run against them;
- ``simkit.bench.gpu``: GPU microbenchmarks (PTX through the driver API, torch, Triton).

bench imports no simulator front: turning measurements into simulator presets and
calibrations, and checking a simulator against a measurement, is ``simkit.calibrate``'s job.
The simulators never import bench.

Names load lazily, so ``import simkit.bench`` costs nothing until one is used.
"""
from __future__ import annotations

import importlib

_NAMES = {
    "measure_cpu": "cpu.chase", "knees": "cpu.chase", "find_knees": "cpu.chase",
    "write_calibration": "cpu.chase", "calibration": "cpu.chase", "plot_cpu": "cpu.chase",
    "chase_address_stream": "cpu.chase", "sattolo_cycle": "cpu.chase",
    "summarize": "cpu.chase", "describe_machine": "cpu.machine",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"simkit.bench.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'simkit.bench' has no attribute {name!r}")
