"""Experiments by name: ``simkit reproduce NAME`` and ``experiments/NAME.py`` run them.

Layout (no import circles): ``_base`` holds the registry, the ``@experiment`` decorator and the
shared output helpers; each module above it registers one experiment (or a family) and imports
only ``_base`` and the simulators. The list below is the registration order (``reproduce all``).
``gpu_validation`` holds the GPU validation tables built by ``simkit bench gpu``.
"""
from simkit.experiments._base import (COST, FAMILY, MEASURE, REGISTRY, experiment, run,
                                      script_main, summary_rows)
from simkit.experiments import (  # noqa: F401  (each registers its experiment)
    cache_miss_curve,
    cpu_validation,
    tlb_validation,
    core_validation,
    victima,
    kv_paging,
    kv_rate_sweep,
    allocators,
    flash,
)

__all__ = ["COST", "FAMILY", "MEASURE", "REGISTRY", "experiment", "run", "script_main",
           "summary_rows"]
