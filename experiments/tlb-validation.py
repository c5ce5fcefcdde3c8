"""Measured TLB-reach chase (one line per 4 KiB page) vs the simulated L1/L2 TLB miss rates of the
same address stream through this machine's MMU (preset ``zen3``).

    python experiments/tlb-validation.py [--full] [--outdir results]   (= simkit reproduce tlb-validation [--full])
"""
import sys

from simkit.experiments import script_main

sys.exit(script_main("tlb-validation"))
