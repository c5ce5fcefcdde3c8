"""pytest-benchmark: the full Victima model (TLBs, walks, data caches and the core timing model)
beside the translation-only model on the shipped GUPS trace (not part of CI).

    .venv/bin/pytest benchmarks/test_speed_tlb.py --benchmark-enable --benchmark-group-by=group

The group pairs the two models, so the comparison is within one run.
``test_full_model_reaches_10M_per_s`` records issue 13's target on the machine that runs it:
the full model at >= 10 M accesses per CPU second (best of 5, thread CPU time, beside
translation-only in the same run; 13.3-13.9 M/s against 15.9-16.7 on 2026-12-07, load 2.9).
"""
import time

import numpy as np
import pytest

from simkit.tlb import MMU
from simkit.trace.catalog import find_trace
from simkit.trace.stream import open_source

GROUP = "victima-radix on gups: translation only vs + core"


@pytest.fixture(scope="module")
def gups():
    return np.concatenate(list(open_source(find_trace("gups"), 1 << 22, None)[2]))


def _run(preset, core, recs):
    MMU(preset, core=core).run(recs)


@pytest.mark.benchmark(group=GROUP)
def test_translation_only(benchmark, gups):
    _run("victima-radix", None, gups[:1000])
    benchmark(_run, "victima-radix", None, gups)


@pytest.mark.benchmark(group=GROUP)
def test_full_model(benchmark, gups):
    _run("victima-radix", "victima", gups[:1000])
    benchmark(_run, "victima-radix", "victima", gups)


def test_full_model_reaches_10M_per_s(gups):
    best = {None: float("inf"), "victima": float("inf")}
    for core in best:
        _run("victima-radix", core, gups[:1000])
    for _ in range(5):
        for core in best:
            t = time.thread_time()
            _run("victima-radix", core, gups)
            best[core] = min(best[core], time.thread_time() - t)
    full, trans = len(gups) / best["victima"], len(gups) / best[None]
    print(f"full model {full / 1e6:.2f} M/s, translation only {trans / 1e6:.2f} M/s, "
          f"ratio {full / trans:.3f}")
    assert full >= 10e6
