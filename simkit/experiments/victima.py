"""The Victima reproduction (REFERENCE.md 1.5): ``victima``."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from simkit.experiments._base import experiment, save_outputs
from simkit.atomic import write_via


# --- Victima reproduction ------------------------------------------------------------------

MiB = 1 << 20
GiB = 1 << 30
BASELINE = "victima-radix"
VICTIMA = "victima-paper"           # the design the checks are about; the artifact's is reported
VICTIMA_PARALLEL = "victima-paper-parallel-stlb"   # the same, probing beside the STLB lookup
STLB_REACH_BYTES = 1536 * 4096      # the baseline STLB's 4 KiB-page reach (REFERENCE.md 1.4)
LARGE_FOOTPRINT = 64 * MiB          # checks use workloads > ~10x the STLB's reach
INSTRUCTIONS_PER_ACCESS = 3         # synthetic traces: icount per record, so MPKI means something
# The paper's kind of workload: our programs at 4-14 GiB footprints, self-traced at 64-byte
# line granularity with measured instructions per record and dependence flags, shipped as
# sampled windows (traces/src/make_paper_traces.py; traces/README.md).
PAPER_TRACES = ("paper-bfs", "paper-pagerank", "paper-xsbench", "paper-gups", "paper-dlrm",
                "paper-llm-decode")
REAL_TRACES = ("gups", "bfs", "embedding", "llm-decode-contiguous", "llm-decode-paged")
SYNTHETIC = ("uniform-1GiB", "uniform-4GiB", "zipf-4GiB", "l2-reuse-33MiB")
QUICK_WORKLOADS = PAPER_TRACES + ("l2-reuse-33MiB",)     # l2-reuse: the predictor's check
FULL_WORKLOADS = PAPER_TRACES + REAL_TRACES + SYNTHETIC
REUSE_INSTRUCTIONS_PER_ACCESS = 50  # l2-reuse: few L2 misses per kilo-instruction


def victima_configs() -> dict:
    """The compared MMUs (REFERENCE.md 1.4-1.5), baseline first, Victima last (the paper's
    design under both probe timings, see ``MMUConfig``)."""
    from simkit.tlb.config import MMUConfig, TLBConfig

    p = MMUConfig.preset
    return {
        "victima-radix": p("victima-radix"),
        "pom-tlb": p("pom-tlb"),
        "stlb-64k": p("stlb-64k"),                                    # ideal: 12 c
        "stlb-64k-39c": p("stlb-64k").replace(l2=TLBConfig("L2-TLB", 65536, 16, 39)),
        "stlb-128k": p("stlb-64k").replace(l2=TLBConfig("L2-TLB", 131072, 16, 12)),
        "l3tlb-64k": p("l3tlb-64k"),
        "victima-artifact": p("victima-artifact"),
        "victima-paper": p("victima-paper"),
        VICTIMA_PARALLEL: p("victima-paper").replace(victima_probe="parallel-stlb"),
    }


def _synthetic(name: str, n: int) -> np.ndarray:
    """GUPS-like read-modify-write 8-byte updates, uniform over 1 or 4 GiB, or zipf(1.0)-popular
    4 KiB pages of 4 GiB with a random line in the page; seeded; 3 instructions per access.
    ``l2-reuse-33MiB``: data the L2 keeps beside a translation-heavy sweep, so the PTW cost
    predictor is not bypassed (L2 MPKI < 5) and decides: 7 of 8 loads go to random lines of a
    1 MiB hot set (it fits the 2 MiB L2), 1 in 8 to the next of 8192 pages (32 MiB, 5x the
    STLB's reach, a different line each lap), 50 instructions per access."""
    from simkit.trace import synth
    from simkit.trace.format import ACCESS_DTYPE, Op

    if name == "l2-reuse-33MiB":
        i = np.arange(n)
        sweep = i % 8 == 0
        j = np.cumsum(sweep) - 1
        hot = 0x10000000 + np.random.default_rng(5).integers(0, MiB // 64, n) * 64
        recs = np.zeros(n, dtype=ACCESS_DTYPE)
        recs["addr"] = np.where(sweep, (1 << 32) + (j % 8192) * 4096 + (j // 8192 % 64) * 64,
                                hot).astype(np.uint64)
        recs["op"], recs["size"] = Op.LOAD, 8
        recs["icount"] = REUSE_INSTRUCTIONS_PER_ACCESS
        return recs
    if name.startswith("uniform"):
        recs = synth.uniform(n, (1 if name == "uniform-1GiB" else 4) * GiB, seed=1)
        recs["op"] = Op.MODIFY
    else:
        recs = synth.zipf(n, 4 * GiB, alpha=1.0, align=4096, seed=3)
        recs["addr"] += np.random.default_rng(4).integers(0, 64, n).astype(np.uint64) * 64
    recs["icount"] = INSTRUCTIONS_PER_ACCESS
    return recs


def _workloads(names, n: int, strict: bool):
    """(name, kind, records, footprint bytes) per workload: catalog traces (first ``n``
    records) and the synthetic large-footprint ones. The footprint is the catalog's
    ``footprint_bytes`` (what the traced program maps) where it has one, else the 4 KiB pages
    the records touch. Traces missing from the catalog are skipped unless ``strict`` (names the
    caller chose)."""
    from simkit.trace.catalog import find_trace, load_catalog
    from simkit.trace.format import open_trace

    catalog = load_catalog()
    for name in names:
        if name in SYNTHETIC:
            recs = _synthetic(name, n)
            yield name, "synthetic", recs, _pages(recs) * 4096
        elif name in catalog:
            recs = np.asarray(open_trace(find_trace(name)).read()[:n])
            fp = catalog[name].get("footprint_bytes")
            kind = "paper-regime program" if fp else "real trace"
            yield name, kind, recs, int(fp) if fp else _pages(recs) * 4096
        elif strict:
            raise ValueError(f"workloads: unknown {name!r}; choose from {', '.join(SYNTHETIC)} "
                             f"or a catalog trace ({', '.join(catalog)})")


def _pages(recs) -> int:
    return len(np.unique(recs["addr"] >> np.uint64(12)))


def _environments(configs: dict) -> list:
    """(environment, name, config): native always; virtualized (2D walks) once MMUConfig has
    a ``nested`` field. A combination the config rejects is left out."""
    from simkit.tlb.config import MMUConfig

    out = [("native", k, c) for k, c in configs.items()]
    if "nested" in {f.name for f in dataclasses.fields(MMUConfig)}:
        for k, c in configs.items():
            try:
                out.append(("virtualized", k, c.replace(nested=True)))
            except ValueError:
                pass
    return out


def _add_reductions(df):
    """Walk and translation-cycle reductions and MPKI change vs the radix baseline of the same
    workload and environment: (base - x) / base (REFERENCE.md 1.5, artifact fig. 16)."""
    keys = ["environment", "workload"]
    base = df[df.config == BASELINE].set_index(keys)
    idx = df.set_index(keys).index
    for col, out in (("walks", "walk_reduction"), ("l2_tlb_mpki", "l2_tlb_mpki_reduction"),
                     ("translation_cycles_per_access", "translation_cycle_reduction")):
        b = base[col].reindex(idx).to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            df[out] = np.where(b > 0, (b - df[col].to_numpy(dtype=float)) / b, np.nan)
    if "cycles" in df:     # the core model's: same instructions, so the IPC ratio
        for ref, out in ((BASELINE, "speedup_vs_radix"), ("pom-tlb", "speedup_vs_pom_tlb")):
            b = df[df.config == ref].set_index(keys)["cycles"].reindex(idx)
            with np.errstate(divide="ignore", invalid="ignore"):
                df[out] = b.to_numpy(dtype=float) / df["cycles"].to_numpy(dtype=float) - 1.0
    return df


# The core timing model every run carries (simkit.core): Victima's simulated core (4-wide, ROB
# 224, LQ 72) with dependence="flag": an access whose record has flags bit 0 (the paper-regime
# traces set it where the address came from the load whose record is just before it) waits
# for that load; records
# without it (lackey captures, synthetic workloads) are independent, an upper bound on overlap.
CORE = "victima"


def _core():
    from simkit.core import CoreConfig

    return dataclasses.replace(CoreConfig.preset(CORE), dependence="flag")


@experiment("victima", family="mmu", cost=21)
def victima(quick: bool = True, outdir: Path = Path("results"), *, records: int | None = None,
            configs=None, workloads=None):
    """Victima vs radix, POM-TLB, big STLBs and an L3 TLB: walks, MPKI, reach, translation
    cycles (REFERENCE.md 1.5). Quick: the paper-regime windows (``PAPER_TRACES``, 200,000
    records each) and ``l2-reuse-33MiB``; full: also the lackey captures, the page-granular LLM
    decode traces and the synthetic large footprints. ``records`` caps each workload."""
    import pandas as pd
    from tqdm import tqdm

    from simkit.tlb import MMU

    n = records or (1_000_000 if quick else 4_000_000)   # the shipped windows hold 200,000
    all_configs = victima_configs()
    for k in configs or ():
        if k not in all_configs:
            raise ValueError(f"configs: unknown {k!r}; choose from {', '.join(all_configs)}")
    configs = {k: all_configs[k] for k in (configs or all_configs)}
    runs = _environments(configs)
    rows = []
    default = QUICK_WORKLOADS if quick else FULL_WORKLOADS
    for wname, kind, recs, footprint in _workloads(workloads or default, n,
                                                   strict=bool(workloads)):
        touched = _pages(recs) * 4096
        for env, cname, cfg in tqdm(runs, desc=f"victima {wname}", disable=None, leave=False):
            mmu = MMU(cfg, core=_core())
            s = mmu.run(recs, warmup_records=len(recs) // 5, progress=False)
            row = s.to_frame()
            row.insert(0, "config", cname)
            row.insert(0, "environment", env)
            row.insert(0, "workload_kind", kind)
            row.insert(0, "workload", wname)
            row.insert(4, "footprint_mib", footprint / MiB)
            row.insert(5, "touched_mib", touched / MiB)
            row["block_reach_mib"] = s.mean_block_reach_bytes / MiB
            row["l2_tlb_reach_mib"] = s.mean_tlb_reach_bytes / MiB
            row["reach_mib"] = row.block_reach_mib + row.l2_tlb_reach_mib
            row["param_l2_tlb_latency_cycles"] = cfg.l2.latency_cycles
            row["param_nested"] = bool(getattr(cfg, "nested", False))
            rows.append(row)
    df = _add_reductions(pd.concat(rows, ignore_index=True))
    summary = victima_summary(df)
    paths = save_outputs(df, _victima_figure(df, "native"), outdir, "victima")
    if (df.environment == "virtualized").any():
        png = outdir / "victima-virtualized.png"
        _replace(png, lambda tmp: _victima_figure(df, "virtualized").savefig(
            tmp, dpi=120, bbox_inches="tight"))
        paths.append(png)
    csv = outdir / "victima-summary.csv"
    _replace(csv, lambda tmp: summary.to_csv(tmp, index=False))
    return df, paths + [csv]


def _replace(path: Path, write) -> None:
    """Write ``path`` through a temporary name, so no partial file is left behind."""
    write_via(path, write, f".partial{path.suffix}")


def _victima_figure(df, env: str):
    """Four panels of grouped bars (one group per workload, one colour per configuration)."""
    from matplotlib.figure import Figure

    d = df[df.environment == env]
    workloads = list(dict.fromkeys(d.workload))
    configs = list(dict.fromkeys(d.config))
    colours = {c: f"C{i}" for i, c in enumerate(configs)}
    panels = [("walk_reduction", 100, "walk reduction vs radix (%)", False, True),
              ("l2_tlb_mpki", 1, "L2 TLB MPKI", False, False),
              ("reach_mib", 1, "reach: L2 TLB + TLB blocks in L2 (MiB)", True, False),
              ("translation_cycle_reduction", 100, "translation-cycle reduction vs radix (%)",
               False, True)]
    fig = Figure(figsize=(max(10, 2.6 * len(workloads)), 9), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    x = np.arange(len(workloads))
    for ax, (col, scale, label, log, skip_base) in zip(axes, panels):
        shown = [c for c in configs if not (skip_base and c == BASELINE)]
        w = 0.85 / max(1, len(shown))
        for i, c in enumerate(shown):
            v = d[d.config == c].set_index("workload")[col].reindex(workloads) * scale
            ax.bar(x + (i - (len(shown) - 1) / 2) * w, v.fillna(0), w, color=colours[c], label=c)
        if log:
            ax.set_yscale("log")
        ax.set_xticks(x, [w_ + ("*" if w_ in SYNTHETIC else "") for w_ in workloads],
                      rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.axhline(0, color="k", lw=0.6)
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(8, len(labels)), fontsize=8)
    fig.suptitle(f"Victima reproduction, {env} (simkit.tlb; * synthetic, 3 instructions per "
                 f"access, l2-reuse 50; after a 20% warm-up)")
    return fig


def _ref_shares(d) -> dict:
    """workload -> shares of page-table reads served by the L1D, L2, LLC and memory."""
    cols = ["walk_refs_l1d", "walk_refs_l2", "walk_refs_llc", "walk_refs_memory"]
    if not set(cols) <= set(d.columns):
        return {}
    out = {}
    for _, r in d.iterrows():
        tot = float(sum(r[c] for c in cols))
        if tot > 0:
            out[r.workload] = [float(r[c]) / tot for c in cols]
    return out


PAPER_TRANSLATION_SHARE = 0.30     # ~30% of cycles in translation (REFERENCE.md 1.5 [S])


def victima_summary(df):
    """The paper's claims (REFERENCE.md 1.5) beside our numbers, as checks. Every row states
    the ``tolerance`` that decides ``holds`` (one that a contrary result fails) and whether our
    metric is the paper's (``same_metric``); where it is not, ``note`` says what ours is."""
    import pandas as pd

    rows = []
    small = ("the checks use workloads whose program maps > 64 MiB (the paper-regime "
             "programs map 4-14 GiB; the lackey captures gups, bfs, embedding touch 1-8 MiB, "
             "about the baseline STLB's 6 MiB reach, and are left out)")
    no_timing = ("ours is translation cycles only (TLB, walk, Victima/POM probes), not "
                 "end-to-end IPC; the paper's numbers are whole-program speedups (the "
                 "speedup rows use the core model)")

    def pick(env, config, col, large=True):
        d = df[(df.environment == env) & (df.config == config)]
        if large:
            d = d[d.footprint_mib * MiB > LARGE_FOOTPRINT]
        return d.set_index("workload")[col]

    def row(env, check, paper, paper_value, ours, ours_value, tolerance, holds, same_metric,
            note, ratio=True):
        r = ours_value / paper_value if ratio and paper_value and np.isfinite(ours_value) \
            else np.nan
        rows.append(dict(environment=env, check=check, paper=paper, paper_value=paper_value,
                         ours=ours, ours_value=ours_value, ratio=r, tolerance=tolerance,
                         same_metric=bool(same_metric), holds=bool(holds), note=note))

    def fmt(s, scale=100, unit="%"):
        return ", ".join(f"{k} {v * scale:.0f}{unit}" for k, v in s.items()) or "n/a"

    def fails(ok):
        bad = [k for k, v in ok.items() if not v]
        return f"; fails on {', '.join(bad)}" if bad else ""

    def within(v, lo, hi):
        return bool(np.isfinite(v) and lo <= v <= hi)

    def walk_counts(env, ok):
        """The counters behind a failed walk check: walks per configuration and the distinct
        4 KiB pages the run touched (what bounds the cold walks no TLB size removes)."""
        out = []
        for k in [k for k, v in ok.items() if not v]:
            w = {c: pick(env, c, "walks", False).get(k, np.nan)
                 for c in (BASELINE, "pom-tlb", "stlb-128k", VICTIMA)}
            pages = pick(env, BASELINE, "touched_mib", False).get(k, np.nan) * 256 \
                if "touched_mib" in df else np.nan
            out.append(f"{k}: walks " + ", ".join(f"{c} {v:.0f}" for c, v in w.items())
                       + f"; {pages:.0f} distinct pages")
        return f" ({'; '.join(out)})" if out else ""

    for env in dict.fromkeys(df.environment):
        perf = {"native": ("+7.4% over radix, +6.2% over POM-TLB", 7.4),
                "virtualized": ("+28.7% over radix, +20.1% over POM-TLB", 28.7)}[env]
        # end-to-end speedups from the core model (geometric mean over large workloads)
        paper_sp = {"native": (7.4, 6.2), "virtualized": (28.7, 20.1)}[env]
        for col, ref, pv in (("speedup_vs_radix", "radix", paper_sp[0]),
                             ("speedup_vs_pom_tlb", "POM-TLB", paper_sp[1])):
            if col not in df:
                continue
            sp = pick(env, VICTIMA, col).dropna()
            g = float((np.exp(np.log1p(sp).mean()) - 1) * 100) if len(sp) else np.nan
            row(env, f"Victima speedup over {ref} (geomean, workloads > 64 MiB)",
                f"+{pv}% (geomean IPC, the paper's workloads)", pv,
                f"{VICTIMA}: {fmt(sp, unit='%')}; geomean {g:+.1f}%; radix cycles stalled on "
                f"translation: {fmt(pick(env, BASELINE, 'translation_stall_share'))}", g,
                f"geomean > 0 and within 0.5x-2x of the paper's +{pv}%",
                within(g, pv / 2, 2 * pv), True,
                f"core model {CORE} (simkit.core: ROB/LQ/walker overlap, loads wait for "
                "the load their address came from where the trace flags it, not "
                "cycle-accurate); our workloads are not the paper's binaries: our "
                "GraphBIG-like, XSBench-like, GUPS, DLRM-like and LLM-decode programs "
                "(sampled windows) and, in --full, synthetic workloads",
                ratio=True)
        # walk order
        vic, pom, rad = (pick(env, c, "walks") for c in (VICTIMA, "pom-tlb", BASELINE))
        ok = (vic <= pom.reindex(vic.index)) & (pom.reindex(vic.index) < rad.reindex(vic.index))
        allv, allp, allr = (pick(env, c, "walks", False) for c in (VICTIMA, "pom-tlb", BASELINE))
        ok_all = (allv <= allp.reindex(allv.index)) & (allp.reindex(allv.index)
                                                       < allr.reindex(allv.index))
        row(env, "Victima walks <= POM-TLB walks < radix walks",
            f"Victima > POM-TLB > radix in performance ({perf[0]})", np.nan,
            f"{VICTIMA}: holds on {int(ok.sum())}/{len(ok)} workloads > 64 MiB, "
            f"{int(ok_all.sum())}/{len(ok_all)} in all{fails(ok)}{walk_counts(env, ok)}",
            float(ok.mean()) if len(ok) else np.nan,
            "the order holds on every workload > 64 MiB (ours_value = 1.0)",
            len(ok) > 0 and ok.all(), False,
            "ours: the order of walk counts, the paper's: of performance. ours_value: fraction "
            "of workloads > 64 MiB where it holds. " + small + "; where a few hot pages take "
            "most accesses (zipf) the POM-TLB's 64K entries keep them, while TLB blocks "
            "compete with data in the L2; where a run touches each page about once (the LLM "
            "decode step streams its weights) no TLB size removes a walk (POM-TLB = radix), "
            "while a TLB block brings the PTEs of 8 neighbouring pages")
        # Victima ~ 128K STLB
        wv, w128 = pick(env, VICTIMA, "walk_reduction"), pick(env, "stlb-128k", "walk_reduction")
        diff = (wv - w128.reindex(wv.index)).abs() * 100
        row(env, "Victima ~ ideal 128K STLB (walk reduction within 10 points)",
            "Victima ~ an ideal 128K-entry STLB", np.nan,
            f"walk reduction {VICTIMA}: {fmt(wv)}; stlb-128k: {fmt(w128)}{fails(diff <= 10)}"
            f"{walk_counts(env, diff <= 10)}",
            float(diff.max()) if len(diff) else np.nan,
            "largest gap over workloads > 64 MiB <= 10 points",
            len(diff) > 0 and diff.max() <= 10, False,
            "ours: walk reductions, the paper's: performance. ours_value: largest gap in "
            "points. Victima above the 128K STLB: the walks the 128K STLB keeps are cold "
            "(at most one per distinct page the run touches, see the counts), and one TLB "
            "block (8 PTEs of neighbouring pages) removes up to 8 of them; our runs are "
            "short (the shipped windows hold 200,000 records), so cold walks weigh more than "
            "in the paper's runs",
            ratio=False)
        # big STLB at realistic latency
        t12, t39 = (pick(env, c, "translation_cycle_reduction") for c in ("stlb-64k",
                                                                            "stlb-64k-39c"))
        m39 = float(t39.mean() * 100)
        expect = 0.8 / PAPER_TRANSLATION_SHARE
        row(env, "64K STLB at 39 c gains little: mean translation-cycle change within +-10%",
            "64K STLB: +0.8% performance at 39 c", 0.8,
            f"translation-cycle reduction at 39 c: {fmt(t39)}; at 12 c: {fmt(t12)}; radix mean "
            f"walk: {fmt(pick(env, BASELINE, 'mean_walk_cycles'), 1, ' c')}", m39,
            f"-10% <= mean translation-cycle reduction <= +10% (the paper's +0.8% of "
            f"performance at ~30% of cycles in translation is ~+{expect:.1f}% of translation "
            f"cycles)", within(m39, -10.0, 10.0), False,
            "ours_value: mean translation-cycle reduction (%) at 39 c over workloads > 64 MiB "
            "(negative: a loss, as every L2 TLB hit pays 39 c: where radix walks cost a few "
            "tens of cycles, their page-table lines in the caches, 27 more cycles on every L2 "
            "TLB hit outweigh the walks removed); " + no_timing, ratio=False)
        mp = pick(env, "stlb-64k", "l2_tlb_mpki_reduction")
        mm = float(mp.mean() * 100)
        row(env, "64K STLB cuts L2 TLB MPKI by 44% (within 22-66%)",
            "64K STLB cuts MPKI by 44%", 44.0, f"L2 TLB MPKI reduction: {fmt(mp)}", mm,
            "mean reduction over workloads > 64 MiB in [22%, 66%] (0.5x-1.5x the paper's)",
            within(mm, 22.0, 66.0), True,
            "same metric (L2 TLB MPKI, radix baseline vs a 64K-entry STLB). Random updates over "
            "4 GiB (GUPS, the DLRM tables, the synthetic workloads) lie beyond a 64K STLB's "
            "256 MiB reach, so their cut is small; a decode step touches each page about once "
            "(no cut)")
        tv, tp = (pick(env, c, "translation_cycle_reduction") for c in (VICTIMA, "pom-tlb"))
        better = tv > tp.reindex(tv.index)
        row(env, "Victima cuts translation cycles more than POM-TLB",
            perf[0], perf[1], f"translation-cycle reduction {VICTIMA}: {fmt(tv)}; "
            f"pom-tlb: {fmt(tp)}{fails(better)}", float(tv.mean() * 100),
            "Victima's reduction > POM-TLB's on every workload > 64 MiB",
            len(tv) > 0 and better.all(), False,
            "ours_value: mean translation-cycle reduction (%) vs radix; " + no_timing + ". "
            "Where radix walks are cheap (LLM decode: PWC hits, the PTE line in the L1D) a "
            "paper-mode block hit (the shorter of the L2's 19 c and the walk) saves little and "
            "aborts the walk, so the PTE line is not brought back into the L1D and the next "
            "walks of that region cost more; the artifact copies a block found in the L2 into "
            "the L1D", ratio=False)
        # both probe timings of the paper's design
        par = pick(env, VICTIMA_PARALLEL, "translation_cycle_reduction")
        both = (tv > 0) & (par.reindex(tv.index) > 0)
        row(env, "Victima cuts translation cycles vs radix under both probe timings",
            perf[0], perf[1], f"{VICTIMA} (probe after the STLB): {fmt(tv)}; "
            f"{VICTIMA_PARALLEL} (beside it): {fmt(par)}{fails(both)}",
            float(par.mean() * 100) if len(par) else np.nan,
            "reduction > 0 on every workload > 64 MiB with either probe timing",
            len(par) > 0 and both.all(), False,
            "ours_value: mean reduction (%) with the probe beside the STLB lookup; the paper "
            "states the probe runs in parallel with the walk, not whether it also overlaps the "
            "STLB lookup (REFERENCE.md 1.2); " + no_timing, ratio=False)
        # the PTW cost predictor decides (counts over the whole measured region)
        cp = df[(df.environment == env) & (df.config == VICTIMA)].set_index("workload")
        decided = cp[(cp.ptw_cp_costly > 0) & (cp.ptw_cp_cheap > 0)].index.tolist() \
            if "ptw_cp_cheap" in cp else []
        counts = ", ".join(f"{k} {int(r.ptw_cp_costly)}/{int(r.ptw_cp_cheap)}/"
                           f"{int(r.ptw_cp_bypassed)}" for k, r in cp.iterrows()) \
            if "ptw_cp_cheap" in cp else "n/a"
        row(env, "the PTW cost predictor decides both ways on some workload",
            "PTW-CP gates TLB-block insertion (bypassed while L2 MPKI > 5)", np.nan,
            f"{VICTIMA} costly/cheap/bypass-forced: {counts}", float(len(decided)),
            "costly > 0 and cheap > 0 on at least one workload", len(decided) > 0, False,
            "a mechanism check (the paper reports the predictor's F1, not its decision "
            "counts); ours_value: workloads where it decided both ways. Where the L2 cache "
            "misses more than 5 per kilo-instruction every insertion is forced (the "
            "bypass-forced count); l2-reuse-33MiB is built so that it does not",
            ratio=False)
        if env != "native":
            continue
        # reach (artifact metric: TLB blocks in L2 x 8 x 4 KiB; victima-artifact has no
        # page-size bit, so its block reach is exactly that metric), time-averaged
        reach = pick(env, "victima-artifact", "block_reach_mib", False)
        top = reach.idxmax() if len(reach) else "n/a"
        r = float(reach.max()) if len(reach) else np.nan
        row(env, "TLB-block reach up to ~220 MB (blocks in L2 x 8 x 4 KiB)",
            "reach up to ~220 MB", 220.0, f"victima-artifact max {r:.0f} MiB ({top})", r,
            "largest time-averaged reach within 0.5x-2x of 220 MB", within(r / 220, 0.5, 2.0),
            True, "same metric as the artifact's create_plots.py (mean of samples every 1M "
            "instructions; a run under 1M instructions gets one sample at its end); ours in MiB")
        x = r * MiB / STLB_REACH_BYTES
        row(env, "reach up to ~36x the baseline STLB's (1536 x 4 KiB = 6 MiB)",
            "reach up to ~36x", 36.0, f"victima-artifact max {x:.0f}x", x,
            "within 0.5x-2x of 36x", within(x / 36, 0.5, 2.0), True,
            "the reach above over the STLB's 4 KiB-page reach")
        frac = pick(env, VICTIMA, "mean_l2_tlb_block_share", False)
        fa = pick(env, "victima-artifact", "mean_l2_tlb_block_share", False)
        f = float(frac.max() * 100) if len(frac) else np.nan
        row(env, "L2 cache blocks holding TLB blocks (~21% at 220 MB)",
            "~7,000 blocks, ~21% of the L2 [derived]", 21.0,
            f"{VICTIMA} max {f:.0f}%, victima-artifact max "
            f"{(fa.max() * 100 if len(fa) else np.nan):.0f}% (time averages)", f,
            "largest time-averaged share within 0.5x-2x of 21%", within(f / 21.0, 0.5, 2.0),
            False, "the paper's share is derived from its reach (REFERENCE.md 1.5 [D]); ours "
            "is measured: the mean over samples every 1M instructions of TLB-block lines / "
            "L2 lines")
        mpki = pick(env, BASELINE, "l2_tlb_mpki", False)
        big = pick(env, BASELINE, "l2_tlb_mpki")
        med = float(big.median()) if len(big) else np.nan
        row(env, "baseline L2 TLB MPKI on workloads > 64 MiB near the paper's mean (39)",
            "baseline STLB MPKI 39 (mean)", 39.0,
            ", ".join(f"{k} {v:.1f}" for k, v in mpki.items()), med,
            "median over workloads > 64 MiB within 0.25x-4x of 39", within(med / 39, 0.25, 4.0),
            True, "same metric: misses per 1000 instructions, the paper-regime traces carrying "
            "their programs' measured instructions per record; the synthetic workloads of "
            "--full (every access random, 3 instructions each) and the page-granular LLM "
            "decode traces (1 instruction per record) sit far above, the lackey captures "
            "near 0")
        wl = pick(env, BASELINE, "mean_walk_cycles")
        mw = float(wl.mean()) if len(wl) else np.nan
        row(env, "baseline mean walk latency near the paper's (137 c)",
            "mean page walk 137 cycles (max 608)", 137.0,
            (", ".join(f"{k} {v:.0f} c" for k, v in wl.items()) or "n/a")
            + "; page-table reads served by L1D/L2/LLC/memory: " + "; ".join(
                f"{k} " + "/".join(f"{x:.0%}" for x in r) for k, r in _ref_shares(
                    df[(df.environment == env) & (df.config == BASELINE)
                       & (df.footprint_mib * MiB > LARGE_FOOTPRINT)]).items()), mw,
            "mean over workloads > 64 MiB within 0.5x-2x of 137 c", within(mw / 137, 0.5, 2.0),
            True, "same metric (cycles per walk, PWC + PTE reads through the caches); walks "
            "whose PWC lookups hit and whose PTE lines the L1D or L2 hold cost tens of cycles "
            "(the graph and XSBench windows: their page-table lines stay cached between "
            "walks), random updates over 4 GiB (GUPS, DLRM) read 40-44% of their PTEs from "
            "memory. The LLC serves ~no PTE read: it is smaller than the L2 (1.375 MiB/11 "
            "ways vs 2 MiB/16, both 2048 sets) and a miss fills every level, so every PTE "
            "line it holds the L2 holds too (an 8 MiB or an exclusive LLC serves up to 14% "
            "(GUPS) and shortens the mean walk by at most 6 c)")
    return pd.DataFrame(rows)
