"""The paper-regime programs in ``core-validation``: BFS, PageRank, XSBench, DLRM gathers, a
Llama-shaped decode step and GUPS (``traces/src/paper/``), timed natively on this machine at
several footprints and traced on the same instance (``simkit.bench.cpu.programs``), each point
predicted by the full model (``simkit.tlb.MMU``: the host preset the experiment builds, TLBs,
walks, caches, and the host core with per-record dependence, ``dependence="flag"``: a record
whose flags bit 0 is set waits for the previous load's data, as the trace says its address came
from an earlier load).

The model is warmed on the program's own accesses: the trace covers ``warmup`` records before
the timed window, which are simulated first and not counted; the rest are the very records
the native run timed. Its instructions per record are those of the timed build (callgrind;
the counting adds a few per record to the plain program's, and they take ROB slots on the
real core too), spread evenly over the records.

The issue gives these programs no bar of their own: each program's summary row reports its
points against GUPS's +-30% for scale. What the model lacks for them, and the numbers show:

- no branch predictor: BFS's visited test (``dist[v] < 0``) is data-dependent and mispredicts
  on the real core (a flush per mispredict, ~15-20 cycles of refetch); the model's non-memory
  instructions cost only their dispatch slots, so where BFS is branch-bound (footprints the
  caches hold) it is predicted too fast;
- no hardware prefetcher: the sequential streams (a vertex's adjacency list in ``col[]``,
  PageRank's sweeps, the decode step's weight rows, DLRM's index array and a row's lines after
  the first) are demand misses in the model and prefetched on the real core, so stream-heavy
  programs (the decode step above all) are predicted too slow;
- dependence: the trace's flag says the address came from *an* earlier load, the core's
  ``flag`` mode makes the record wait for *the previous* load. Where the producer is a load
  the trace elides or one that hits (BFS: ``dist[v]`` from ``col[j]``, whose line was recorded
  once; DLRM: a row's four lines from one index), consecutive flagged misses chain in the model
  and overlap on the core, so ``predicted_ns_per_record`` is an upper bound there; the
  rows give ``predicted_independent_ns_per_record`` (no access waits for another) beside it as
  the lower one. XSBench's binary search is a true chain: there the flag is right;
- instructions per record are an average over the whole kernel (on a small instance), not the
  window's own mix; and only the kernel's own records are simulated (no code, stack or
  page-table lines beyond the walks').
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simkit.experiments._base import write_csv

QUICK_PROGRAMS = ("bfs", "dlrm", "xsbench")
QUICK_FOOTPRINTS = (16 << 20, 256 << 20)
FULL_PROGRAMS = ("bfs", "pagerank", "xsbench", "dlrm", "llm-decode", "gups")
FULL_FOOTPRINTS = (8 << 20, 64 << 20, 512 << 20, 4 << 30)
BAR = 0.30                                   # GUPS's, for scale: the issue sets none here


def measure_programs(quick: bool = True):
    """{"frame", "traces"}: ``QUICK_PROGRAMS`` x ``QUICK_FOOTPRINTS`` (4 KiB pages and THP,
    100k timed records after 200k of warm-up, best of 3) or, full, ``FULL_PROGRAMS`` x
    ``FULL_FOOTPRINTS`` (footprints over half the free memory left out; 400k records after 1M,
    best of 5); None without gcc."""
    import shutil

    from simkit.bench.cpu.programs import measure_programs as run

    if shutil.which("gcc") is None:
        return None
    progs, sizes = (QUICK_PROGRAMS, QUICK_FOOTPRINTS) if quick else (FULL_PROGRAMS,
                                                                     FULL_FOOTPRINTS)
    sizes = [s for s in sizes if s <= _free_bytes() // 2] or [min(sizes)]
    frame, traces = run(progs, sizes, ("4k", "thp"),
                        records=100_000 if quick else 400_000,
                        warmup=200_000 if quick else 1_000_000,
                        skip=100_000 if quick else 1_000_000, reps=3 if quick else 5,
                        progress=False)
    return {"frame": frame, "traces": traces}


def _free_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def program_points(measured, cfg, core, ghz: float, quick: bool = True):
    """One row per measured point (``measured``: ``measure_programs``' dict): program,
    footprint, page kind, measured and predicted ns per record, error, and the model's IPC,
    walks and translation stall share beside the measured IPC (instructions per record / ns
    per record x clock). ``cfg``: the host MMU config (4 KiB pages; THP points are predicted
    with every region huge); ``core``: the host core (its dependence replaced by ``flag``)."""
    import pandas as pd

    from simkit.tlb import MMU

    frame, traces = measured["frame"], measured["traces"]
    core = core.replace(dependence="flag", clock_ghz=ghz)
    indep = core.replace(dependence="independent")
    rows = []
    for _, m in frame.iterrows():
        recs = traces[(m.program, int(m.target_bytes))]
        warm = int(m.warmup)
        huge = 1.0 if m.page_kind == "thp" else 0.0
        c = cfg.replace(huge_page_fraction=huge)
        s = MMU(c, core=core).run(recs, warmup_records=warm)
        pred = s.core.cycles / s.core.accesses / ghz
        si = MMU(c, core=indep).run(recs, warmup_records=warm)
        meas = float(m.ns_per_record)
        rows.append({"program": m.program, "args": m.args,
                     "footprint_bytes": int(m.footprint_bytes), "page_kind": m.page_kind,
                     "measured_ns_per_record": meas, "predicted_ns_per_record": pred,
                     "error": pred / meas - 1,
                     "predicted_independent_ns_per_record": si.core.cycles / si.core.accesses
                     / ghz, "records": int(m.records),
                     "warmup_records": warm, "thp_backed_bytes": int(m.thp_backed_bytes),
                     "instructions_per_record": float(m.instructions_per_record),
                     "plain_instructions_per_record": float(m.plain_instructions_per_record),
                     "ipr_source": m.ipr_source, "dependent_share": float(m.dependent_share),
                     "measured_ipc": float(m.instructions_per_record) / (meas * ghz),
                     "sim_ipc": s.core.ipc, "sim_walks_per_record": s.walks / s.records,
                     "sim_translation_stall_share": s.core.translation_stall_share})
    return pd.DataFrame(rows)


def program_summary(points, row) -> None:
    """One summary row per program (``row``: ``summary_rows``' appender): its 4 KiB points'
    errors, against GUPS's +-30% for scale (the issue gives these programs no bar)."""
    from simkit.units import format_bytes

    for prog, p in points.groupby("program", sort=False):
        k4 = p[p.page_kind == "4k"]
        if not len(k4):
            continue
        ok = k4.error.abs() <= BAR
        med = float(k4.error.abs().median() * 100)
        thp = p[p.page_kind == "thp"]
        row(f"{prog}, 4 KiB pages: predicted ns per record vs measured (reported, no bar of its "
            "own)",
            "issue 14: the shipped programs timed natively and traced; no bar (GUPS's +-30% "
            "for scale)", BAR * 100,
            "; ".join(f"{format_bytes(int(r.footprint_bytes))}: measured "
                      f"{r.measured_ns_per_record:.1f} ns, predicted "
                      f"{r.predicted_ns_per_record:.1f} ns ({r.error:+.0%})"
                      for r in k4.itertuples())
            + (("; THP: " + ", ".join(f"{format_bytes(int(r.footprint_bytes))} "
                                      f"{r.error:+.0%}" for r in thp.itertuples()))
               if len(thp) else ""),
            med, bool(ok.all()),
            f"{int(ok.sum())} of {len(k4)} footprints within +-30%; instructions per record "
            f"{k4.instructions_per_record.iloc[0]:.2f} as timed, "
            f"{k4.plain_instructions_per_record.iloc[0]:.2f} plain ({k4.ipr_source.iloc[0]}); "
            f"{k4.dependent_share.iloc[0]:.0%} of records dependent; the same records with "
            "every access independent: " + ", ".join(
                f"{format_bytes(int(r.footprint_bytes))} {r.predicted_independent_ns_per_record:.1f}"
                " ns" for r in k4.itertuples())
            + " (the true dependence lies between: a flagged record waits for the previous "
            "load in the model, its producer may be an earlier one, often a hit); the model "
            "has no branch predictor and no hardware prefetcher (core_programs' docstring)")


def program_figure(points):
    """Measured vs predicted ns per record, one marker per program (open: THP), log-log,
    with y = x and the +-30% band; a bar from each 4 KiB point down (or up) to the prediction
    with every access independent."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    lo = float(min(points.measured_ns_per_record.min(), points.predicted_ns_per_record.min()))
    hi = float(max(points.measured_ns_per_record.max(), points.predicted_ns_per_record.max()))
    x = np.geomspace(lo / 1.5, hi * 1.5, 50)
    ax.plot(x, x, "k-", lw=0.8, label="predicted = measured")
    ax.fill_between(x, x * (1 - BAR), x * (1 + BAR), color="0.85", label="+-30%")
    markers = "osD^vP"
    for i, (prog, p) in enumerate(points.groupby("program", sort=False)):
        for kind, fill in (("4k", True), ("thp", False)):
            q = p[p.page_kind == kind]
            if len(q) and kind == "4k":       # the independent-access prediction: a bar down
                ax.vlines(q.measured_ns_per_record, q.predicted_independent_ns_per_record,
                          q.predicted_ns_per_record, color=f"C{i}", lw=0.8, alpha=0.6)
                ax.scatter(q.measured_ns_per_record, q.predicted_independent_ns_per_record,
                           marker="_", color=f"C{i}", s=60)
            if len(q):
                ax.scatter(q.measured_ns_per_record, q.predicted_ns_per_record,
                           marker=markers[i % len(markers)], color=f"C{i}",
                           facecolors=None if fill else "none",
                           label=f"{prog}, {'4 KiB' if kind == '4k' else 'THP'}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured ns per record (native run)")
    ax.set_ylabel("predicted ns per record (full model)")
    ax.set_title("Paper-regime programs: measured vs predicted (per-record dependence;\n"
                 "the bar's end: every access independent)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    return fig


def save_programs(points, outdir: Path) -> list[Path]:
    """core-validation-programs.csv and .png."""
    from simkit.atomic import write_via

    outdir.mkdir(parents=True, exist_ok=True)
    paths = [write_csv(points, outdir / "core-validation-programs.csv")]
    if len(points):
        png = outdir / "core-validation-programs.png"
        fig = program_figure(points)
        write_via(png, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"),
                  ".partial.png")
        paths.append(png)
    return paths
