"""KV paging: PagedAttention Fig. 2 waste, vAttention Fig. 15, Mooncake prefixes, serving.

    python experiments/kv-paging.py [--full] [--outdir results]   (= simkit reproduce kv-paging [--full])
"""
import sys

from simkit.experiments import script_main

sys.exit(script_main("kv-paging"))
