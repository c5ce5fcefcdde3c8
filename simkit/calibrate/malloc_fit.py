"""Slab presets fitted to their real allocators' footprint over time, and judged out of
sample (issue 17, item 2).

The real footprint is the RSS growth sampled during a replay every N events
(``simkit.bench.malloc.replay_rss``); the model's is its timeline at the same events
(``AllocatorModel.run(sample_every=N)``). The error of a timeline is the mean absolute
difference over the samples divided by the real mean (``timeline_error``).

``leave_one_out``: for each trace, the grid point with the least mean error on the *other*
traces is chosen and its error on the held-out trace reported (out of sample), beside the
preset's own error there and the in-sample error of the choice. Nothing of the held-out trace
reaches the choice (the test checks this by construction).

``python -m simkit.calibrate.malloc_fit`` runs it for the mimalloc, hardened, hardened-light and
scudo presets against mimalloc, hardened_malloc, hardened_malloc-light and Scudo (LLVM 14
standalone) on the shipped traces.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np

PAIRS = {"mimalloc": "mimalloc", "hardened": "hardened_malloc",
         "hardened-light": "hardened_malloc-light", "scudo": "scudo"}
# the release/retention knobs: how many empty slabs a class keeps resident and how many freed
# large mappings stay resident for reuse
GRID = {"empty_slabs_kept": (0, 1, 4, 16, 32, 64), "large_cache": (0, 4, 64, 1024)}
# Scudo keeps a class's pages for release_to_os_interval_ms (5 s) and caches 32 freed
# mappings: the grid reaches "all kept" (2^20) and 32
GRIDS = {"scudo": {"empty_slabs_kept": (0, 1, 4, 16, 64, 1 << 20),
                   "large_cache": (0, 4, 32, 1024)}}
SAMPLES = 400


def timeline_error(model_tl, real_tl) -> float:
    """Mean |model - real| RSS over the events both sampled, over the real mean."""
    tl = model_tl.merge(real_tl, on="event", suffixes=("_model", "_real"))
    if not len(tl):
        raise ValueError("timeline_error: the timelines share no sampled event")
    mean = float(tl.rss_bytes_real.mean())
    return float((tl.rss_bytes_model - tl.rss_bytes_real).abs().mean()) / mean if mean > 0 \
        else float("nan")


def every_for(recs) -> int:
    return max(1, len(recs) // SAMPLES)


def model_timeline(cfg, recs):
    from simkit.allocators import AllocatorModel
    tl = AllocatorModel(cfg).run(recs, sample_every=every_for(recs)).timeline
    return tl[["event", "rss_bytes"]]


def grid_configs(preset, grid=GRID):
    from simkit.allocators.config import get_config
    base = get_config(preset)
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, values)), dataclasses.replace(base, **dict(zip(keys, values)))


def leave_one_out(preset: str, traces: dict, real_timelines: dict, grid=GRID,
                  model_timeline=model_timeline):
    """One row per held-out trace: the chosen parameters, in-sample error (mean over the
    others), out-of-sample error on the held-out trace, and the preset's own error there.
    ``real_timelines``: trace -> DataFrame(event, rss_bytes) of the real allocator."""
    import pandas as pd
    from simkit.allocators.config import get_config

    names = list(traces)
    if len(names) < 2:
        raise ValueError("leave_one_out: needs at least 2 traces")
    errs = {}                                   # (grid index, trace) -> error
    params = []
    for gi, (p, cfg) in enumerate(grid_configs(preset, grid)):
        params.append(p)
        for t in names:
            errs[gi, t] = timeline_error(model_timeline(cfg, traces[t]), real_timelines[t])
    base = {t: timeline_error(model_timeline(get_config(preset), traces[t]),
                              real_timelines[t]) for t in names}
    rows = []
    for held in names:
        others = [t for t in names if t != held]
        ins = [np.mean([errs[gi, t] for t in others]) for gi in range(len(params))]
        best = int(np.argmin(ins))
        rows.append({"preset": preset, "held_out": held, **params[best],
                     "in_sample_error": ins[best], "out_of_sample_error": errs[best, held],
                     "preset_error": base[held], "fitted_on": ",".join(others)})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    import pandas as pd

    from simkit.bench.malloc import library, replay_rss
    from simkit.trace.alloc import open_alloc_trace
    from simkit.trace.alloc_catalog import find_alloc_trace, list_alloc_traces

    traces = {n: open_alloc_trace(find_alloc_trace(n)).read()
              for n in list_alloc_traces().name}
    out = []
    only = argv if argv else None
    for preset, real in PAIRS.items():
        if only and preset not in only:
            continue
        if library(real) is None:
            print(f"{preset}: skipped ({real} not installed; `make tools`)")
            continue
        rt = {t: replay_rss(r, every_for(r), real) for t, r in traces.items()}
        df = leave_one_out(preset, traces, rt, GRIDS.get(preset, GRID))
        print(df.drop(columns="fitted_on").to_string(index=False), flush=True)
        out.append(df)
    if out:
        d = pd.concat(out)
        print(f"\nout of sample within 10%: {(d.out_of_sample_error <= 0.10).sum()} of {len(d)}")
    return 0


if __name__ == "__main__":
    import sys
    raise SystemExit(main(sys.argv[1:]))
