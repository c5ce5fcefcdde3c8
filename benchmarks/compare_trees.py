"""Kernel speed of two source trees side by side in one run (before/after a kernel change).

    python benchmarks/compare_trees.py --base /tmp/simkit-base [--repeats 3] [--cases tlb,cache3]

Each case runs in a fresh process per tree (numba's on-disk cache of that tree already warm:
a first untimed call loads or compiles it), the trees alternating, best of ``--repeats`` wall
seconds and process-CPU seconds. Cases: the cache simulator on 16M uniform 8 B loads over
64 MiB (1 level 32K/8; 3 levels reference-3level), and the TLB model on the shipped gups trace
(victima-radix translation + caches + walks, victima-paper, victima-artifact, pom-tlb, nested
victima-radix and victima-paper, and victima-radix with the core model), the serving engine
on 30,000 ShareGPT-like requests with paged-16 (``kv``, issue 15's speed target; as
``bench_kv_speed.py --sharegpt 30000``, the simulator built inside the timed call) and the
flash simulator (``flash``: 1,000 tokens of OPT-6.7B, windowing k = 5, bundling,
latency model, as benchmarks/bench_flash_speed.py; its items are tokens). Prints one row per
case and tree (items per second: accesses, requests for ``kv``, tokens for ``flash``), the
after/before ratio and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CASES = {
    "cache1": ("from simkit.cache import Hierarchy, single\n"
               "from simkit.trace import synth\n"
               "recs = synth.uniform(1 << 24, 64 << 20, seed=1, size=8)\n"
               "n = len(recs)\n"
               "run = lambda: Hierarchy(single('32KiB', 8)).run(recs)"),
    "cache3": ("from simkit.cache import Hierarchy\n"
               "from simkit.trace import synth\n"
               "recs = synth.uniform(1 << 24, 64 << 20, seed=1, size=8)\n"
               "n = len(recs)\n"
               "run = lambda: Hierarchy('reference-3level').run(recs)"),
    "cache3-t2": ("from simkit.cache import Hierarchy\n"
                  "from simkit.trace import synth\n"
                  "recs = synth.uniform(1 << 24, 64 << 20, seed=1, size=8)\n"
                  "n = len(recs)\n"
                  "run = lambda: Hierarchy('reference-3level', threads=2).run(recs)"),
    "tlb": ("from simkit.tlb import MMU\n" + "GUPS\n" +
            "run = lambda: MMU('victima-radix').run(recs)"),
    "tlb-paper": ("from simkit.tlb import MMU\n" + "GUPS\n" +
                  "run = lambda: MMU('victima-paper').run(recs)"),
    "tlb-artifact": ("from simkit.tlb import MMU\n" + "GUPS\n" +
                     "run = lambda: MMU('victima-artifact').run(recs)"),
    "tlb-pom": ("from simkit.tlb import MMU\n" + "GUPS\n" +
                "run = lambda: MMU('pom-tlb').run(recs)"),
    "tlb-nested": ("from simkit.tlb import MMU, MMUConfig\n" + "GUPS\n" +
                   "cfg = MMUConfig.preset('victima-radix').replace(nested=True)\n"
                   "run = lambda: MMU(cfg).run(recs)"),
    "tlb-paper-nested": ("from simkit.tlb import MMU, MMUConfig\n" + "GUPS\n" +
                         "cfg = MMUConfig.preset('victima-paper').replace(nested=True)\n"
                         "run = lambda: MMU(cfg).run(recs)"),
    "tlb+core": ("from simkit.tlb import MMU\n" + "GUPS\n" +
                 "run = lambda: MMU('victima-radix', core='victima').run(recs)"),
    "kv": ("from simkit.kvpaging.engine import ServingSimulator\n"
           "from simkit.kvpaging.gpus import get_gpu\n"
           "from simkit.kvpaging.models import get_model\n"
           "from simkit.kvpaging.workload import preset_requests\n"
           "n = 30000\n"
           "src = preset_requests('sharegpt', n, rate=20.0, max_tokens=8192, seed=0)\n"
           "list(src)\n"
           "run = lambda: ServingSimulator(get_model('llama-3-8b'), get_gpu('H100-80GB'),\n"
           "                               'paged-16', src, progress=False).run()"),
    "flash": ("from simkit.flash import FlashConfig, FlashSimulator, paper\n"
              "tr = paper.opt_trace(1000, 0.6, 0.6)\n"
              "n = tr.tokens\n"
              "sim = FlashSimulator(FlashConfig(model='opt-6.7b', policy='all', "
              "window_tokens=5))\n"
              "run = lambda: sim.run(tr).summary()"),
}
GUPS = ("import numpy as np\n"
        "from simkit.trace.catalog import find_trace\n"
        "from simkit.trace.stream import open_source\n"
        "recs = np.concatenate(list(open_source(find_trace('gups'), 1 << 22, None)[2]))\n"
        "n = len(recs)")

CHILD = r"""
import json, time
{setup}
run()
wall = cpu = float('inf')
for _ in range({repeats}):
    t, c = time.perf_counter(), time.process_time()
    run()
    wall = min(wall, time.perf_counter() - t)
    cpu = min(cpu, time.process_time() - c)
print(json.dumps({{"n": n, "wall": wall, "cpu": cpu}}))
"""


def measure(tree: str, case: str, repeats: int) -> dict:
    code = CHILD.format(setup=CASES[case].replace("GUPS", GUPS), repeats=repeats)
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=tree)
    if out.returncode:
        raise SystemExit(f"{case} under {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="the 'before' source tree")
    ap.add_argument("--new", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    print(f"load average at start {os.getloadavg()}")
    for case in args.cases.split(","):
        res = {}
        for label, tree in (("before", args.base), ("after", args.new)):
            r = measure(tree, case, args.repeats)
            res[label] = r
            print(json.dumps({"case": case, "tree": label, "accesses": r["n"],
                              "M_per_s_wall": round(r["n"] / r["wall"] / 1e6, 2),
                              "M_per_s_cpu": round(r["n"] / r["cpu"] / 1e6, 2),
                              "per_s_wall": round(r["n"] / r["wall"]),
                              "per_s_cpu": round(r["n"] / r["cpu"]),
                              "wall_s": round(r["wall"], 3), "cpu_s": round(r["cpu"], 3)}),
                  flush=True)
        print(f"  {case}: after/before {res['before']['wall'] / res['after']['wall']:.2f}x wall, "
              f"{res['before']['cpu'] / res['after']['cpu']:.2f}x cpu", flush=True)
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
