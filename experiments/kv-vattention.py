"""KV paging: vAttention's prefill / decode / page-size comparisons on the published calibration.

    python experiments/kv-vattention.py [--full] [--outdir results]   (= simkit reproduce kv-vattention [--full])
"""
import sys

from simkit.experiments import script_main

sys.exit(script_main("kv-vattention"))
