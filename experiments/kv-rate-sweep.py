"""KV paging: PagedAttention Fig. 12, normalized latency vs request rate, paged vs Orca knees.

    python experiments/kv-rate-sweep.py [--full] [--outdir results]   (= simkit reproduce kv-rate-sweep [--full])
"""
import sys

from simkit.experiments import script_main

sys.exit(script_main("kv-rate-sweep"))
