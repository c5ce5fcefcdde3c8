"""Writes the analysis notebooks of experiments/notebooks/ (one per simulator), without outputs.

    python experiments/notebooks/make_notebooks.py

Each notebook reads its experiment's tidy results from ``$SIMKIT_RESULTS`` (default
``results/``, what ``make demo`` writes), runs the quick experiment first when they are
missing, then analyses them with pandas and matplotlib and drives the simulator directly.
The test suite executes every notebook (tests/test_notebooks.py) so they cannot rot.
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

LOAD = '''import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from simkit import experiments

RESULTS = Path(os.environ.get("SIMKIT_RESULTS", "results"))


def results(name):
    """The experiment's tidy table; runs the quick experiment when it is missing."""
    path = RESULTS / f"{name}.csv"
    if not path.exists():
        experiments.run(name, quick=True, outdir=RESULTS)
    return pd.read_csv(path)'''

NOTEBOOKS = {
    "cache": [
        new_markdown_cell("# Cache simulator: miss-rate curves on real traces\n\n"
                          "Reads `cache-miss-curve.csv` (from `simkit reproduce cache-miss-curve "
                          "--quick`), then runs a hierarchy directly."),
        new_code_cell(LOAD),
        new_code_cell('df = results("cache-miss-curve")\ndf.head()'),
        new_code_cell('''curves = df.pivot_table(index="param_size_bytes", columns=["trace", "param_policy"],
                        values="miss_rate")
fig, axes = plt.subplots(1, df.trace.nunique(), figsize=(14, 3.2), sharey=True)
for ax, trace in zip(axes, sorted(df.trace.unique())):
    curves[trace].plot(ax=ax, logx=True, marker="o", ms=3, title=trace)
    ax.set_xlabel("cache size (bytes)")
axes[0].set_ylabel("miss rate")
best = df.loc[df.groupby(["trace", "param_size_bytes"]).miss_rate.idxmin(),
              ["trace", "param_size_bytes", "param_policy", "miss_rate"]]
best.head(12)'''),
        new_code_cell('''from simkit.cache import Hierarchy
from simkit.trace.catalog import find_trace

stats = Hierarchy("victima-baseline").run(find_trace("bfs"), warmup_records=100_000,
                                          max_records=600_000)
frame = stats.to_frame()
assert (frame.hits + frame.misses == frame.accesses).all()
frame[["level", "accesses", "hits", "misses", "miss_rate", "mpki"]]'''),
    ],
    "tlb": [
        new_markdown_cell("# Address translation: Victima against its baselines\n\n"
                          "Reads `victima.csv` (from `simkit reproduce victima --quick`), then "
                          "runs the MMU directly: radix vs Victima (paper) on a shipped trace."),
        new_code_cell(LOAD),
        new_code_cell('df = results("victima")\nnative = df[df.environment == "native"]\n'
                      'native.pivot_table(index="workload", columns="config", '
                      'values="walk_reduction").round(2)'),
        new_code_cell('''ax = native.pivot_table(index="workload", columns="config",
                        values="translation_cycles_per_access").plot.bar(figsize=(12, 3.5))
ax.set_ylabel("translation cycles per access")
ax.set_yscale("log")'''),
        new_code_cell('''from simkit.tlb import MMU
from simkit.trace.catalog import find_trace

rows = []
for preset in ("victima-radix", "victima-paper"):
    s = MMU(preset).run(find_trace("llm-decode-paged"), warmup_records=100_000,
                        max_records=400_000)
    rows.append(s.to_frame().assign(preset=preset))
tlb = pd.concat(rows)[["preset", "l2_tlb_mpki", "walks", "mean_walk_cycles",
                       "translation_cycles_per_access", "mean_block_reach_bytes",
                       "mean_l2_tlb_block_share"]]
assert tlb.walks.iloc[1] < tlb.walks.iloc[0]          # Victima's blocks remove walks
tlb'''),
    ],
    "kvpaging": [
        new_markdown_cell("# KV-cache paging: static reservation, PagedAttention, vAttention\n\n"
                          "Reads `kv-paging.csv` (from `simkit reproduce kv-paging --quick`), "
                          "then serves real requests with each manager and plots memory over "
                          "time."),
        new_code_cell(LOAD),
        new_code_cell('df = results("kv-paging")\n'
                      'df[df.part == "waste"][["trace", "manager", "time_avg_token_pct", '
                      '"final_waste_pct", "paper_final_waste_pct"]].round(2)'),
        new_code_cell('df[df.part == "serving"][["manager", "throughput_requests_per_s", '
                      '"ttft_p50_s", "ttft_p99_s", "mean_batch_seqs", "preemptions", '
                      '"mean_waste_fraction"]].round(3)'),
        new_code_cell('''from simkit.kvpaging import ServingSimulator, get_gpu, get_model, load_trace

fig, ax = plt.subplots(figsize=(9, 3.2))
for manager in ("static-max-context", "paged-16", "vattention-2MiB"):
    sim = ServingSimulator(get_model("Llama-3-8B"), get_gpu("A100-80GB"), manager,
                           load_trace("azure-conv", limit=300), capacity_bytes=4 << 30,
                           progress=False)
    stats = sim.run()
    assert stats.requests_finished == 300
    tl = sim.timeline.to_frame()
    ax.plot(tl.time_s, (tl.used_bytes + tl.internal_frag_bytes + tl.reserved_bytes) / 2**30,
            label=f"{manager}: {stats.throughput_requests_per_s:.2f} req/s")
ax.set_xlabel("simulated time (s)")
ax.set_ylabel("KV GiB allocated (of 4)")
ax.legend(fontsize=8)'''),
    ],
    "allocators": [
        new_markdown_cell("# Heap allocators: models and real allocators on real allocation "
                          "traces\n\nReads `allocators.csv` and `allocators-security.csv` (from "
                          "`simkit reproduce allocators --quick`), then replays a trace through "
                          "the models directly."),
        new_code_cell(LOAD),
        new_code_cell('''df = results("allocators")
models = df[df.part == "models"]
models.pivot_table(index="trace", columns="allocator", values="fragmentation").round(3)'''),
        new_code_cell('''real = df[df.part == "real"]
if len(real):
    real = real.dropna(subset=["time_ratio_to_glibc"]).pivot_table(
        index="allocator", columns="trace",
        values=["time_ratio_to_glibc", "delta_hwm_ratio_to_glibc"]).round(2)
real'''),
        new_code_cell('''v = df[df.part == "validation"]    # empty where gcc is missing (no measurement)
if len(v):
    assert (v[v.model == "ptmalloc"].error.abs() <= 0.10).all()
    v = v[["trace", "model", "real", "model_peak_footprint_bytes", "measured_delta_hwm_bytes",
           "error"]]
v'''),
        new_code_cell('''sec = pd.read_csv(RESULTS / "allocators-security.csv")
sec.set_index("allocator")[["kind", "double_free_32", "double_free_262144", "invalid_free",
                            "reuse_32", "reuse_distance_32", "randomized", "zero_on_free"]]'''),
        new_code_cell('''from simkit.allocators import AllocatorModel

fig, ax = plt.subplots(figsize=(9, 3.2))
for name in ("ptmalloc", "hardened", "mimalloc"):
    s = AllocatorModel(name).run("python-json")
    ax.plot(s.timeline.event, s.timeline.rss_bytes / 2**20,
            label=f"{name}: peak {s.peak_footprint_bytes / 2**20:.1f} MiB")
ax.plot(s.timeline.event, s.timeline.live_bytes / 2**20, "k:", label="live bytes")
ax.set_xlabel("event")
ax.set_ylabel("MiB")
ax.legend(fontsize=8)'''),
    ],
    "flash": [
        new_markdown_cell("# Flash simulator: LLM in a flash on real and synthetic activations\n\n"
                          "Drives `simkit.flash` directly (fast): the shipped real SmolLM2-135M "
                          "trace, its temporal correlation, windowing on it, and the Table 2 "
                          "ladder for OPT-6.7B. `simkit reproduce flash` makes the full figure."),
        new_code_cell('''import matplotlib.pyplot as plt
import pandas as pd

from simkit.flash import FlashConfig, FlashSimulator, load_activations, paper
from simkit.flash.activations import list_activations

rows = []
for s in list_activations()["smollm2-135m"]["sparsities"]:
    tr = load_activations("smollm2-135m", s)
    rows.append({"sparsity": s, "active": tr.active_fraction(),
                 "persistence": tr.persistence(), **tr.confusion()})
real = pd.DataFrame(rows)
assert (real.persistence > real.active).all()     # active neurons tend to stay active
real'''),
        new_code_cell('''tr = load_activations("smollm2-135m", 0.97)
curves = []
for pred in ("oracle", "trace"):
    for k in (1, 2, 3, 5, 8, 16):
        s = FlashSimulator(FlashConfig(model="smollm2-135m", policy="all", window_tokens=k,
                                       predictor=pred)).run(tr).summary()
        curves.append({"predictor": pred, "window": k, **s})
curves = pd.DataFrame(curves)
fig, ax = plt.subplots(figsize=(6, 3.5))
for pred, d in curves.groupby("predictor"):
    ax.plot(d.window, 100 * d.loaded_fraction, "o-", label=f"{pred}: loaded")
    ax.plot(d.window, 100 * d.cached_fraction, "s--", label=f"{pred}: cached")
ax.set_xlabel("window (tokens)")
ax.set_ylabel("% of FFN per token")
ax.legend(fontsize=8)'''),
        new_code_cell('''# Table 2 with the persistence fitted to the paper's 2.4% (see paper.fit_stay_on)
ladder = paper.table2(paper.opt_trace(48, 0.715, 0.715, 1.53))
ladder[["step", "io_ms_per_token", "paper_io_ms", "loaded_gb", "paper_loaded_gb", "dram_gb",
        "paper_dram_gb"]]'''),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        for i, cell in enumerate(cells):           # stable ids: regenerating changes nothing
            cell.id = f"{name}-{i}"
        nb = new_notebook(cells=cells, metadata={"kernelspec": {
            "name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
