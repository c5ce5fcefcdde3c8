"""Measured pointer-chase latency vs the simulated miss rates of the same address stream through
this machine's cache geometry (preset ``zen3-vm``: Zen 3 with the ~4 MiB effective L3 seen
inside the VM; the physical 32 MiB L3 of preset ``zen3`` misplaces the DRAM step).

    python experiments/cpu-validation.py [--full] [--outdir results]   (= simkit reproduce cpu-validation [--full])
"""
import sys

from simkit.experiments import script_main

sys.exit(script_main("cpu-validation"))
