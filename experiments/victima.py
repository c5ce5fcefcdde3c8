"""Victima vs radix, POM-TLB, big STLBs and an L3 TLB: walks, MPKI, reach, translation cycles on
real traces and large synthetic footprints (REFERENCE.md 1.5).

    python experiments/victima.py [--full] [--outdir results]   (= simkit reproduce victima [--full])
"""
import sys

from simkit.experiments import script_main

sys.exit(script_main("victima"))
