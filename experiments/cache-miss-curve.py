"""Miss rate vs cache size and replacement policy on the shipped real traces.

    python experiments/cache-miss-curve.py [--full] [--outdir results]   (= simkit reproduce cache-miss-curve [--full])
"""
import sys

from simkit.experiments import script_main

sys.exit(script_main("cache-miss-curve"))
