"""LLM in a flash: Table 2 ladder, windowing fractions, real SmolLM2 predictor, storage.

    python experiments/flash.py [--full] [--outdir results]   (= simkit reproduce flash [--full])
"""
import sys

from simkit.experiments import script_main

sys.exit(script_main("flash"))
