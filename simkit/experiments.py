"""Experiment registry: name -> function(quick, outdir) returning a tidy DataFrame.

Each experiment writes ``<outdir>/<name>.csv`` and one or more PNG plots; ``simkit reproduce``
runs them by name; the address-translation ones live in ``simkit.experiments_tlb``, the KV-paging
one in ``simkit.experiments_kv``, the heap allocator one in ``simkit.experiments_alloc``. Simulators
below this floor return data and never write files.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

REGISTRY: dict[str, Callable] = {}


def experiment(name: str):
    def deco(fn):
        REGISTRY[name] = fn
        return fn
    return deco


def _save(df, fig, outdir: Path, name: str) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    csv = outdir / f"{name}.csv"
    tmp = csv.with_name(csv.name + ".partial")
    df.to_csv(tmp, index=False)
    os.replace(tmp, csv)
    png = outdir / f"{name}.png"
    tmp = png.with_name(png.stem + ".partial.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, png)
    return [csv, png]


def _write_csv(frame, path: Path) -> Path:
    """``frame`` to ``path`` through a temporary name (no partial file is ever left)."""
    tmp = path.with_name(path.name + ".partial")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def summary_rows():
    """A list for a paper-vs-ours summary and the ``row(check, paper, paper_value, ours,
    ours_value, holds, note)`` that appends to it (ratio = ours / paper where both are numbers).
    ``pandas.DataFrame(rows)`` is the ``<name>-summary.csv`` that ``simkit reproduce`` prints."""
    rows = []

    def row(check, paper, paper_value, ours, ours_value, holds, note):
        ratio = ours_value / paper_value if paper_value and np.isfinite(paper_value) else np.nan
        rows.append({"check": check, "paper": paper, "paper_value": paper_value, "ours": ours,
                     "ours_value": ours_value, "ratio": ratio, "holds": bool(holds),
                     "note": note})
    return rows, row


def _measured_vs_simulated(x, latency_ns, curves, xlabel, ylabel_sim, title):
    """One figure: measured latency (log-log, left axis) with simulated rates over it (right
    axis). ``curves``: (values, matplotlib style, label) per simulated series."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.2))
    ax = fig.subplots()
    ax.plot(x, latency_ns, "k-o", ms=3, label="measured latency (min)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ns per dependent load (measured)")
    ax2 = ax.twinx()
    for values, style, label in curves:
        ax2.plot(x, values, style, label=label)
    ax2.set_ylabel(ylabel_sim)
    ax2.set_ylim(-0.02, 1.05)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


@experiment("cache-miss-curve")
def cache_miss_curve(quick: bool = True, outdir: Path = Path("results")):
    """Miss rate vs cache size and replacement policy on the shipped real traces."""
    import pandas as pd
    from matplotlib.figure import Figure
    from tqdm import tqdm

    from simkit.cache import Hierarchy, single
    from simkit.trace.catalog import find_trace, list_traces
    from simkit.trace.format import open_trace

    sizes = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20] if quick else \
        [1 << k for k in range(12, 23)]
    policies = ["lru", "plru", "srrip", "drrip", "random"]
    limit = 500_000 if quick else None
    names = list(list_traces()["name"])
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
    fig = Figure(figsize=(4.2 * len(names), 3.6))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for pol in policies:
            d = df[(df.trace == name) & (df.param_policy == pol)].sort_values("param_size_bytes")
            ax.plot(d.param_size_bytes / 1024, d.miss_rate * 100, marker="o", ms=3, label=pol)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("cache size (KiB), 8-way, 64 B lines")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("miss rate (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Miss rate vs size on real traces (simkit.cache, after 10% warm-up)")
    return df, _save(df, fig, outdir, "cache-miss-curve")


@experiment("cpu-validation")
def cpu_validation(quick: bool = True, outdir: Path = Path("results")):
    """Measured pointer-chase latency vs the simulated miss rates of the same address stream
    through this machine's cache geometry (preset ``zen3-vm``: Zen 3 with the ~4 MiB effective
    L3 seen inside the VM; the physical 32 MiB L3 of preset ``zen3`` misplaces the DRAM step)."""
    import pandas as pd

    from simkit.bench.cpu import chase_address_stream, measure_cpu
    from simkit.cache import Hierarchy

    measured = measure_cpu(quick=quick, sweeps=("cache",), page_kinds=("4k",))
    rows = []
    for ws in measured["working_set_bytes"]:
        lines = int(ws) // 64
        laps = max(2, int(np.ceil(200_000 / lines)))
        addrs = chase_address_stream("cache", working_set_bytes=int(ws), laps=laps)
        stats = Hierarchy("zen3-vm").run(addrs, warmup_records=lines)      # first lap warms
        row = {"working_set_bytes": int(ws)}
        for lv in stats.levels:
            row[f"sim_{lv.name}_miss_rate"] = lv.miss_rate
        row["sim_memory_per_access"] = stats.memory_reads / stats.levels[0].accesses
        rows.append(row)
    sim = pd.DataFrame(rows)
    df = measured.merge(sim, on="working_set_bytes")
    fig = _measured_vs_simulated(
        df.working_set_bytes, df.ns_per_load_min,
        [(df[f"sim_{lv}_miss_rate"], f"C{i}--", f"simulated {lv} miss rate")
         for i, lv in enumerate(("L1", "L2", "L3"))],
        "working set (bytes)", "simulated miss rate",
        "Pointer chase on this machine vs simkit.cache (zen3-vm preset), same addresses")
    return df, _save(df, fig, outdir, "cpu-validation")


def run(name: str, quick: bool = True, outdir: Path = Path("results")):
    if name not in REGISTRY:
        raise ValueError(f"experiment: unknown {name!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name](quick=quick, outdir=Path(outdir))


def script_main(name: str, argv: list[str] | None = None) -> int:
    """The body of ``experiments/<name>.py``: ``python experiments/<name>.py [--full]
    [--outdir DIR]`` runs one experiment (quick by default) and prints its summary, exactly as
    ``simkit reproduce <name> [--quick]``."""
    import argparse

    from simkit.cli import main

    ap = argparse.ArgumentParser(prog=f"experiments/{name}.py",
                                 description=(REGISTRY[name].__doc__ or name).strip())
    ap.add_argument("--full", action="store_true", help="full traces (default: --quick)")
    ap.add_argument("--outdir", default="results")
    args = ap.parse_args(argv)
    return main(["reproduce", name, "--outdir", args.outdir] + ([] if args.full else ["--quick"]))


from simkit import experiments_tlb  # noqa: E402,F401  (registers tlb-validation, victima)
from simkit import experiments_kv  # noqa: E402,F401  (registers kv-paging)
from simkit import experiments_alloc  # noqa: E402,F401  (registers allocators)
from simkit import experiments_flash  # noqa: E402,F401  (registers flash)
