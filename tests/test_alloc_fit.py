"""Slab presets fitted on some traces, judged on the others (simkit.calibrate.malloc_fit)."""
import dataclasses

import pandas as pd
import pytest

from simkit.allocators.config import get_config
from simkit.calibrate import malloc_fit as F
from simkit.trace.alloc import synthetic_alloc


def test_timeline_error_by_hand():
    model = pd.DataFrame({"event": [0, 10, 20], "rss_bytes": [100, 200, 300]})
    real = pd.DataFrame({"event": [0, 10, 30], "rss_bytes": [100, 100, 100]})
    # shared events 0 and 10: |100-100| and |200-100| -> mean 50, over the real mean 100
    assert F.timeline_error(model, real) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="share no sampled event"):
        F.timeline_error(model, real.assign(event=[1, 2, 3]))


def test_leave_one_out_recovers_the_truth_and_never_sees_the_held_out_trace():
    """'Real' timelines made by a known config: the fit must pick it for every held-out
    trace (out-of-sample error 0), and the held-out trace's error must not enter the choice:
    the real timeline of each held-out trace is spoiled for the others' fits only through
    its own row."""
    truth = dataclasses.replace(get_config("hardened-light"), empty_slabs_kept=4)
    traces = {f"s{i}": synthetic_alloc(2000, seed=i) for i in range(3)}
    real = {t: F.model_timeline(truth, r) for t, r in traces.items()}
    grid = {"empty_slabs_kept": (0, 4), "large_cache": (0,)}
    errs = [F.timeline_error(F.model_timeline(c, r), real[t])
            for _, c in F.grid_configs("hardened-light", grid) for t, r in traces.items()]
    assert max(errs) > 0                     # the grid points differ on these traces
    df = F.leave_one_out("hardened-light", traces, real, grid)
    assert list(df.empty_slabs_kept) == [4, 4, 4]
    assert (df.out_of_sample_error == 0).all() and (df.in_sample_error == 0).all()
    # spoil one trace's real timeline: only the fits that use it (the other held-outs) move
    spoiled = dict(real, s0=real["s0"].assign(rss_bytes=real["s0"].rss_bytes * 3))
    d2 = F.leave_one_out("hardened-light", traces, spoiled, grid).set_index("held_out")
    assert d2.loc["s0", "in_sample_error"] == 0 and d2.loc["s0", "empty_slabs_kept"] == 4
    assert d2.loc["s1", "fitted_on"] == "s0,s2" and d2.loc["s1", "in_sample_error"] > 0


@pytest.mark.parametrize("trace", ["cc1", "python-json"])
def test_scudo_preset_follows_real_scudo_over_time(trace):
    """The scudo preset against real Scudo (LLVM 14) sampled during a replay: measured 1.4%
    (cc1) and 1.6% (python-json) mean timeline error, 2026-12-07; the target is 10%. With
    16 kept empty slabs instead of all (the release interval of 5 s never elapses in a
    replay), python-json is 16.3% off: the test fails if the retention rule is lost."""
    import shutil

    from simkit.bench.malloc import library, missing_reason, replay_rss
    from simkit.trace.alloc import open_alloc_trace
    from simkit.trace.alloc_catalog import find_alloc_trace

    if shutil.which("gcc") is None or library("scudo") is None:
        pytest.skip(missing_reason("scudo"))
    recs = open_alloc_trace(find_alloc_trace(trace)).read()
    real = replay_rss(recs, F.every_for(recs), "scudo")
    assert F.timeline_error(F.model_timeline(get_config("scudo"), recs), real) <= 0.10
