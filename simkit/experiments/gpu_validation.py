"""GPU validation experiments: the simulators against ``simkit bench gpu``'s measurements.

**No measured GPU file exists yet.** simkit's developers have had no GPU, so these functions
have only ever run on recorded *synthetic* rows (``tests/test_bench_gpu.py``); no plot or number
they make is a GPU result until they are fed rows measured on a GPU
(``bash benchmarks/gpu_check.sh`` runs them on its own measurements;
``simkit bench gpu --from-rows DIR --outdir OUT`` runs them on a folder of recorded tables).

- ``tlb_validation(tlb_df, config)``: the measured 2 MiB-stride chase (``gpu-tlb.csv``) beside
  the same address stream (``simkit.bench.gpu.rows.tlb_chase_addresses``: same nodes, same
  Sattolo order, two warm-up laps) through ``simkit.tlb.MMU`` with the GPU preset built from the
  measurement (``simkit.calibrate.gpu.gpu_tlb_preset``). Simulated cycles per load = measured
  base (L2 hit with an L1 TLB hit) + L1 TLB miss rate x L2 TLB latency + walks per load x the simulated mean
  walk cycles. The preset comes from the same rows, so the check is of the *shape* (where the
  steps fall, given the assumed associativity and LRU), not of an independent prediction.
- ``kv_validation(tables, calibration, model)``: the KV cost model's terms beside the measured
  kernels on the same batches: decode attention (contiguous and paged) per batch x context,
  prefill attention per chunk, the dense layers per token count, and one decode iteration per
  (batch, context) where the dense rows have that batch's token count (measured: the sum of the
  measured parts; simulated: the cost model's iteration less its fixed per-step cost
  ``step_fixed_us``, which no microbenchmark measures). Under a measured calibration, the contiguous decode and dense terms
  reproduce their own curves (a consistency check); the paged slowdown, prefill and iteration
  rows, and any published calibration (``published-h100-80gb.json``), are real comparisons.

Each returns ``(DataFrame, Figure)``; nothing is written here (the CLI writes).
"""
from __future__ import annotations

import numpy as np


def tlb_validation(tlb_df, config=None, *, latency_df=None, l2_cache_bytes=None, seed: int = 0,
                   min_records: int = 20_000):
    """Measured vs simulated cycles per load of the TLB chase (module docstring)."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    from simkit.bench.gpu import rows as gpu_fit
    from simkit.calibrate.gpu import gpu_tlb_preset
    from simkit.tlb import MMU
    from simkit.units import format_bytes

    if config is None:
        config = gpu_tlb_preset(tlb_df, latency_df, l2_cache_bytes=l2_cache_bytes)
    base = gpu_fit.tlb_reach(tlb_df)["base_cycles"]
    rows = []
    for r in tlb_df.sort_values("span_bytes").itertuples():
        pages = int(r.pages)
        laps = 2 + max(1, -(-min_records // pages))
        addrs = gpu_fit.tlb_chase_addresses(pages, laps=laps, seed=seed)
        s = MMU(config).run(addrs, warmup_records=2 * pages)
        loads = s.l1d_hits + s.l1d_misses
        walks = s.l2_misses / loads if loads else 0.0
        walk_c = s.mean_walk_cycles if s.walks else 0.0
        sim = base + s.l1d_miss_rate * config.l2.latency_cycles + walks * walk_c
        rows.append({"span_bytes": int(r.span_bytes), "pages": pages,
                     "measured_cycles": float(r.cycles_median),
                     "sim_l1_tlb_miss_rate": s.l1d_miss_rate, "sim_walks_per_load": walks,
                     "sim_mean_walk_cycles": walk_c, "sim_cycles": sim})
    df = pd.DataFrame(rows)
    fig = Figure(figsize=(8, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(df.span_bytes, df.measured_cycles, "k-o", ms=3, label="measured (median cycles)")
    ax.plot(df.span_bytes, df.sim_cycles, "C3--s", ms=3,
            label=f"simkit.tlb: {config.l1d.entries}-entry L1 TLB, {config.l2.entries}-entry "
                  f"L2 TLB (+{config.l2.latency_cycles} c)")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_bytes(int(v))))
    ax.set_xlabel("span chased (one node per 2 MiB page)")
    ax.set_ylabel("cycles per load")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("GPU TLB reach: measured vs simulated, same address stream")
    return df, fig


def kv_validation(tables: dict, calibration, model: str = "Llama-2-7B"):
    """The KV cost model's terms vs the measured kernels on the same batches (module
    docstring). ``calibration``: a ``Calibration`` or a path to a calibration file."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from simkit.kvpaging.costmodel import Calibration, CostModel, load_calibration
    from simkit.kvpaging.models import get_model

    cal = calibration if isinstance(calibration, Calibration) else load_calibration(calibration)
    shape = get_model(model)
    cms = {k: CostModel(shape, cal, k) for k in ("contiguous", "paged")}
    att, gemm = tables.get("attention"), tables.get("gemm")
    L = shape.layers
    rows = []

    def add(component, variant, batch, x, measured_us, sim_s):
        rows.append({"component": component, "variant": variant, "batch": int(batch),
                     "x": int(x), "measured_us": float(measured_us),
                     "simulated_us": float(sim_s * 1e6),
                     "ratio_sim_over_measured": float(sim_s * 1e6 / measured_us)
                     if measured_us > 0 else float("nan")})

    dense = {}
    if gemm is not None:
        lay = gemm[gemm.kind == "layer"].groupby("tokens").median_us.median()
        head = gemm[gemm.kind == "lm_head"].groupby("tokens").median_us.median()
        for t, us in lay.items():
            dense[int(t)] = L * us + head.get(t, 0.0)
            add("dense", "layers+lm_head", t, t, dense[int(t)], cms["contiguous"].dense_s(t, t))
    if att is not None:
        kinds = {"sdpa-contiguous": "contiguous", "triton-paged": "paged"}
        dec = att[(att.phase == "decode") & att.variant.isin(list(kinds))]
        for r in dec.itertuples():
            cm = cms[kinds[r.variant]]
            b, ctx = int(r.batch), int(r.batch * r.context_tokens)
            sim = cm.iteration_s(b, b, decode_ctx_tokens=ctx) - cm.iteration_s(b, b)
            add("decode_attention", f"{r.variant}/{r.block_size}", b, r.context_tokens,
                L * r.median_us, sim)
            if b in dense and r.variant == "sdpa-contiguous":
                add("decode_iteration", "contiguous", b, r.context_tokens,
                    dense[b] + L * r.median_us,
                    cm.iteration_s(b, b, decode_ctx_tokens=ctx) - cm.fixed_s)
        pre = att[(att.phase == "prefill") & (att.variant == "sdpa-contiguous")]
        for r in pre.itertuples():
            cm = cms["contiguous"]
            t = int(r.context_tokens) * int(r.batch)
            sim = (cm.iteration_s(t, int(r.batch), prefill_pairs=int(r.pairs))
                   - cm.iteration_s(t, int(r.batch)))
            add("prefill_attention", "sdpa-contiguous", r.batch, r.context_tokens,
                L * r.median_us, sim)
    df = pd.DataFrame(rows, columns=["component", "variant", "batch", "x", "measured_us",
                                     "simulated_us", "ratio_sim_over_measured"])
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, (comp, g) in enumerate(df.groupby("component", sort=False)):
        ax.loglog(g.measured_us, g.simulated_us, "o^sd"[i % 4], ms=5, color=f"C{i}", label=comp,
                  alpha=0.8)
    if len(df):
        lo = float(min(df.measured_us.min(), df.simulated_us.min())) / 1.5
        hi = float(max(df.measured_us.max(), df.simulated_us.max())) * 1.5
        ax.plot([lo, hi], [lo, hi], "k:", lw=1, label="simulated = measured")
        ax.fill_between([lo, hi], [lo / 1.2, hi / 1.2], [lo * 1.2, hi * 1.2], color="0.9",
                        label="within 20%")
    ax.set_xlabel(f"measured us ({shape.name}, all {L} layers)")
    ax.set_ylabel("simulated us (simkit.kvpaging cost model)")
    ax.set_title(f"KV cost model vs measured kernels\ncalibration: {cal.kind} ({cal.gpu})",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return df, fig


def summary(df) -> dict:
    """Median and worst ratio of simulated to measured per component."""
    out = {}
    for comp, g in df.groupby("component", sort=False):
        r = g.ratio_sim_over_measured.replace([np.inf, -np.inf], np.nan).dropna()
        out[comp] = {"rows": int(len(g)), "median_ratio": float(r.median()) if len(r) else None,
                     "worst_ratio": float(r.iloc[(r - 1).abs().argmax()]) if len(r) else None}
    return out
