"""Cold start: CPU seconds a fresh process spends compiling each jitted entry kernel (issue 18).

    python benchmarks/cold_start.py [--only cache,tlb] [--no-warm] [--tree DIR ...]

Each scenario (and each ``--tree``, to compare source trees in one run) runs in its own fresh
Python process with an empty numba cache directory
(``NUMBA_CACHE_DIR`` a new temporary directory) and times, with the process CPU clock, the
import and the first call of a small run (which compiles the kernel); then, unless
``--no-warm``, a second fresh process reusing that cache directory times the same steps
(the on-disk cache loaded). Prints one tidy row per scenario and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

# Each scenario: (imports, a small run). Both print nothing; the child times them.
SCENARIOS = {
    "cache": ("from simkit.cache import Hierarchy",
              "Hierarchy('reference-3level').access(recs)"),
    "cache-threads": ("from simkit.cache import Hierarchy",
                      "Hierarchy('reference-3level', threads=2).access(recs)"),
    "tlb": ("from simkit.tlb import MMU",
            "MMU('victima-radix').run(recs)"),
    "tlb+core": ("from simkit.tlb import MMU",
                 "MMU('victima-radix', core='victima').run(recs)"),
    "alloc": ("from simkit.allocators import AllocatorModel\n"
              "from simkit.trace.alloc import synthetic_alloc",
              "[AllocatorModel(m).run(synthetic_alloc(2000, seed=1)) "
              "for m in ('ptmalloc', 'hardened')]"),
}

CHILD = r"""
import json, sys, time
import numpy as np
t0 = time.process_time()
{imports}
from simkit.trace.format import ACCESS_DTYPE
t1 = time.process_time()
rng = np.random.default_rng(1)
recs = np.zeros(2000, ACCESS_DTYPE)
recs["addr"] = rng.integers(0, 1 << 23, 2000) * 8
recs["size"] = 8
recs["icount"] = 4
recs["op"] = rng.integers(0, 3, 2000)
t2 = time.process_time()
{run}
t3 = time.process_time()
print(json.dumps({{"import_s": t1 - t0, "first_call_s": t3 - t2}}))
"""


def child(name: str, cache_dir: str, tree: str) -> dict:
    imports, run = SCENARIOS[name]
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, "-c", CHILD.format(imports=imports, run=run)],
                         env=env, cwd=tree, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{name}: child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    ap.add_argument("--no-warm", action="store_true", help="skip the cached second process")
    ap.add_argument("--tree", action="append",
                    help="source tree to time (repeatable, e.g. before and after a change; "
                         "default: this checkout)")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    trees = args.tree or [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    rows = []
    for name in names:
        for tree in trees:
            with tempfile.TemporaryDirectory() as d:
                cold = child(name, d, tree)
                warm = {} if args.no_warm else child(name, d, tree)
            rows.append({"scenario": name, "tree": tree,
                         "cold_first_call_cpu_s": round(cold["first_call_s"], 2),
                         "cold_import_cpu_s": round(cold["import_s"], 2),
                         "cached_first_call_cpu_s": round(warm.get("first_call_s", float("nan")),
                                                          2)})
            print(json.dumps(rows[-1]), flush=True)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
