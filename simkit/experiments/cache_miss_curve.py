"""Miss rate vs cache size and replacement policy on the shipped real traces: ``cache-miss-curve``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simkit.experiments._base import experiment, save_outputs


@experiment("cache-miss-curve", family="cache", cost=4)
def cache_miss_curve(quick: bool = True, outdir: Path = Path("results")):
    """Miss rate vs cache size and replacement policy on the shipped real traces."""
    import pandas as pd
    from tqdm import tqdm

    from simkit.cache import Hierarchy, single
    from simkit.trace.catalog import find_trace, list_traces, load_catalog
    from simkit.trace.format import open_trace

    sizes = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20] if quick else \
        [1 << k for k in range(12, 23)]
    policies = ["lru", "plru", "srrip", "drrip", "random"]
    limit = 500_000 if quick else None
    # the paper-regime windows (catalog entries with a program footprint) are sampled for the
    # Victima study, which runs them; the demo's curves stay on the captures and decode traces
    catalog = load_catalog()
    names = [n for n in list_traces()["name"] if "footprint_bytes" not in catalog[n]]
    rows = []
    jobs = [(n, s, p) for n in names for s in sizes for p in policies]
    traces = {}
    for name, size, pol in tqdm(jobs, desc="cache-miss-curve", disable=None, leave=False):
        if name not in traces:
            recs = open_trace(find_trace(name)).read()
            traces[name] = np.asarray(recs[:limit] if limit else recs)
        recs = traces[name]
        warm = len(recs) // 10
        stats = Hierarchy(single(size, 8, policy=pol)).run(recs, warmup_records=warm)
        df = stats.to_frame()
        df["trace"] = name
        rows.append(df)
    df = pd.concat(rows, ignore_index=True)
    return df, save_outputs(df, cache_miss_figure(df), outdir, "cache-miss-curve")


def cache_miss_figure(df):
    """One panel per trace: miss rate (%) vs cache size per policy. Constrained layout keeps the
    suptitle clear of the panel titles; plain tick labels (no ``+9.999e1`` offset) on traces
    whose miss rates all sit near 100%."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(df.trace))
    policies = list(dict.fromkeys(df.param_policy))
    fig = Figure(figsize=(4.2 * len(names), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for pol in policies:
            d = df[(df.trace == name) & (df.param_policy == pol)].sort_values("param_size_bytes")
            ax.plot(d.param_size_bytes / 1024, d.miss_rate * 100, marker="o", ms=3, label=pol)
        ax.set_xscale("log", base=2)
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        ax.set_xlabel("cache size (KiB), 8-way, 64 B lines")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("miss rate (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Miss rate vs size on real traces (simkit.cache, after 10% warm-up)")
    return fig
