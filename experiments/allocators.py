"""Heap allocators: models vs glibc/jemalloc/mimalloc/tcmalloc/Scudo on real allocation traces,
the ptmalloc-vs-glibc peak footprint validation, and the security-probe table.

    python experiments/allocators.py [--full] [--outdir results]   (= simkit reproduce allocators [--full])
"""
import sys

from simkit.experiments import script_main

sys.exit(script_main("allocators"))
