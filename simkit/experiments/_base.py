"""The bottom of ``simkit.experiments``: the registry (name -> function(quick, outdir) returning a
tidy DataFrame and the paths written), the ``@experiment`` decorator, and the helpers every
experiment shares (atomic CSV/PNG output, paper-vs-ours summary rows, the measured-vs-simulated
figure). Experiment modules import only this module (and the simulators below): no circles.

Each experiment writes ``<outdir>/<name>.csv`` and one or more PNG plots; ``simkit reproduce``
runs them by name. Simulators below this floor return data and never write files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from simkit.atomic import write_via

REGISTRY: dict[str, Callable] = {}
# name -> fn(quick) returning what the experiment measures on this machine (timings that must
# run alone); the experiment takes it as ``measured=`` (or measures itself when not given).
MEASURE: dict[str, Callable] = {}
# name -> the family of numba kernels whose cold compile the experiment pays first ("mmu",
# "cache"): ``simkit reproduce`` runs a family's experiments one after another in one worker,
# so the first compiles and caches and the others load the cache (never two compiles at once).
FAMILY: dict[str, str] = {}
# name -> CPU seconds of a quick run with numba's cache warm (the development VM, an Intel VM,
# 2026-12-07 18:50 UTC, load 1-9): only orders the work.
COST: dict[str, float] = {}


def experiment(name: str, *, measure: Callable | None = None, family: str | None = None,
               cost: float = 10.0):
    def deco(fn):
        REGISTRY[name] = fn
        COST[name] = float(cost)
        if measure is not None:
            MEASURE[name] = measure
        if family is not None:
            FAMILY[name] = family
        return fn
    return deco


def save_outputs(df, fig, outdir: Path, name: str) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    csv = outdir / f"{name}.csv"
    write_via(csv, lambda tmp: df.to_csv(tmp, index=False))
    png = outdir / f"{name}.png"
    write_via(png, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"), ".partial.png")
    return [csv, png]


def write_csv(frame, path: Path) -> Path:
    """``frame`` to ``path`` through a temporary name (no partial file is ever left)."""
    return write_via(path, lambda tmp: frame.to_csv(tmp, index=False))


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


def measured_vs_simulated(x, latency_ns, curves, xlabel, ylabel_sim, title):
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


def run(name: str, quick: bool = True, outdir: Path = Path("results"), measured=None):
    """Run one experiment; ``measured``: its ``MEASURE`` step's result, taken earlier."""
    if name not in REGISTRY:
        raise ValueError(f"experiment: unknown {name!r}; choose from {', '.join(REGISTRY)}")
    if measured is None:
        return REGISTRY[name](quick=quick, outdir=Path(outdir))
    return REGISTRY[name](quick=quick, outdir=Path(outdir), measured=measured)


def script_main(name: str, argv: list[str] | None = None) -> int:
    """The body of ``experiments/<name>.py``: ``python experiments/<name>.py [--full]
    [--outdir DIR]`` runs one experiment (quick by default) and prints its summary, exactly as
    ``simkit reproduce <name> [--full]`` (quick by default too)."""
    import argparse

    from simkit.cli import main

    ap = argparse.ArgumentParser(prog=f"experiments/{name}.py",
                                 description=(REGISTRY[name].__doc__ or name).strip())
    ap.add_argument("--full", action="store_true", help="full traces (default: --quick)")
    ap.add_argument("--outdir", default="results")
    args = ap.parse_args(argv)
    return main(["reproduce", name, "--outdir", args.outdir] + (["--full"] if args.full else []))
