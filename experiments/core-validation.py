"""This machine's dependent pointer chase over 4 KiB pages, measured, vs the full model's
prediction (TLBs, walks, caches and the core timing model) with a host preset calibrated on the
chase over 2 MiB pages of the same run.

    python experiments/core-validation.py [--full] [--outdir results]   (= simkit reproduce core-validation [--full])
"""
import sys

from simkit.experiments import script_main

sys.exit(script_main("core-validation"))
