"""KV-cache paging experiment, registered in ``simkit.experiments``: ``kv-paging``.

Four parts, all on shipped real traces (``traces/llm-serving/``), each beside the paper's
number (REFERENCE.md section 2):

- waste: KV memory holding real tokens vs wasted, per manager, on the Azure conv/code requests
  (PagedAttention Fig. 2; the waste sanity table of REFERENCE 2.5);
- max-batch: vAttention Fig. 15, the maximum batch with 64 KiB vs 2 MiB pages (the set-up is
  our assumption, stated in ``tests/test_kvpaging_managers.py::test_fig15_max_batch_ratio``);
- prefix: Mooncake conversation trace, 512-token prefix blocks, LRU hit rate vs cache size;
- serving: the Azure conv requests at their real arrival times through the continuous-batching
  engine with 8 GiB of KV memory for Llama-3-8B on an A100-80GB, per manager: throughput,
  latency, batch size, preemptions, and the memory breakdown over time.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from simkit.experiments._base import save_outputs, write_csv, experiment, summary_rows

WASTE_SPECS = ("static-max-context", "static-trace-max", "paged-16", "paged-32",
               "vattention-64KiB", "vattention-2MiB")
# REFERENCE 2.5, final-length waste (%) on the full traces (1 KiB rows for the page sizes)
PAPER_FINAL_WASTE = {("conv", "paged-16"): 0.54, ("conv", "paged-32"): 1.12,
                     ("conv", "vattention-64KiB"): 2.21, ("conv", "vattention-2MiB"): 45.83,
                     ("conv", "static-trace-max"): 90.3,
                     ("code", "paged-16"): 0.37, ("code", "paged-32"): 0.73,
                     ("code", "vattention-64KiB"): 1.51, ("code", "vattention-2MiB"): 36.62,
                     ("code", "static-trace-max"): 73.5}
FIG15 = {"Yi-6B": (240, 187, 1), "Llama-3-8B": (258, 203, 2), "Yi-34B": (68, 56, 2)}
SERVE_SPECS = ("static-max-context", "static", "paged-16", "vattention-64KiB",
               "vattention-2MiB")
SERVE_CAPACITY = 8 << 30
CACHE_BLOCKS = (1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, None)


def _dir() -> Path:
    from simkit.trace.catalog import traces_dir
    return traces_dir() / "llm-serving"


def _waste_rows():
    from simkit.kvpaging import get_model, load_requests
    from simkit.kvpaging.waste import replay_waste

    llama = get_model("Llama-3-8B")
    yi = dataclasses.replace(get_model("Yi-6B"), max_context=8192)   # 1 KiB rows
    rows = []
    for kind in ("conv", "code"):
        r = load_requests(_dir() / f"AzureLLMInferenceTrace_{kind}_first1000.csv")
        r = r[r.sum(axis=1) <= llama.max_context]
        lmax = int(r.sum(axis=1).max())
        for spec in WASTE_SPECS:
            if spec == "static-trace-max":
                w = replay_waste(r, "static", llama, reserve_tokens=lmax)
            elif spec.startswith("vattention"):
                w = replay_waste(r, spec, yi, overlap=False)
            else:
                w = replay_waste(r, spec, llama)
            rows.append({"part": "waste", "trace": f"azure-{kind}", "manager": spec,
                         "requests": len(r),
                         "final_waste_pct": 100 * w["final_waste_fraction"],
                         "paper_final_waste_pct": PAPER_FINAL_WASTE.get((kind, spec), np.nan),
                         "time_avg_token_pct": 100 * w["time_avg_token_fraction"]})
    return rows


def _max_batch_rows():
    import pandas as pd

    from simkit.kvpaging import get_model
    from simkit.kvpaging.waste import max_batch

    df = pd.read_csv(_dir() / "vidur_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv.xz")
    req = df[["num_prefill_tokens", "num_decode_tokens"]].to_numpy()
    rows = []
    for name, (p64, p2m, tp) in FIG15.items():
        m = get_model(name)
        shard = dataclasses.replace(m, heads=m.heads // tp, kv_heads=m.kv_heads // tp)
        cap = int(80 * (1 << 30) * 0.9) - m.weight_bytes // tp
        b64 = max_batch(req, "vattention-64KiB", shard, cap, overlap=False)
        b2m = max_batch(req, "vattention-2MiB", shard, cap, overlap=False)
        rows.append({"part": "max-batch", "model": name, "tensor_parallel": tp,
                     "max_batch_64k": b64, "max_batch_2m": b2m, "ratio": b64 / b2m,
                     "paper_max_batch_64k": p64, "paper_max_batch_2m": p2m,
                     "paper_ratio": p64 / p2m})
    return rows


def _prefix_rows(quick: bool):
    from simkit.kvpaging.prefix import load_hash_trace, prefix_hit_curve

    reqs = load_hash_trace(_dir() / "mooncake_conversation_trace.jsonl.xz")
    curve = prefix_hit_curve(reqs, CACHE_BLOCKS[::2] if quick else CACHE_BLOCKS)
    curve = curve.assign(part="prefix", trace="mooncake-conv")
    return curve.to_dict("records")


def _serving(quick: bool):
    from simkit.kvpaging import get_model
    from simkit.kvpaging.engine import ServingSimulator
    from simkit.kvpaging.gpus import get_gpu
    from simkit.kvpaging.workload import load_trace

    rows, timelines = [], {}
    for spec in SERVE_SPECS:
        src = load_trace("azure-conv", limit=500 if quick else None)
        sim = ServingSimulator(get_model("Llama-3-8B"), get_gpu("A100-80GB"), spec, src,
                               capacity_bytes=SERVE_CAPACITY, progress=False)
        row = sim.run().to_frame().iloc[0].to_dict()
        rows.append({"part": "serving", "trace": "azure-conv", "manager": spec, **row})
        timelines[spec] = sim.timeline.to_frame()
    return rows, timelines


@experiment("kv-paging", cost=4)
def kv_paging(quick: bool = True, outdir: Path = Path("results")):
    """KV paging: PagedAttention Fig. 2 waste, vAttention Fig. 15, Mooncake prefixes, serving."""
    import pandas as pd

    serving, timelines = _serving(quick)
    df = pd.DataFrame(_waste_rows() + _max_batch_rows() + _prefix_rows(quick) + serving)
    summary = kv_summary(df)
    fig = _figure(df, timelines)
    paths = save_outputs(df, fig, Path(outdir), "kv-paging")
    return df, paths + [write_csv(summary, Path(outdir) / "kv-paging-summary.csv")]


def kv_summary(df):
    """Paper vs ours, one row per claim (REFERENCE.md section 2)."""
    import pandas as pd

    w = df[df.part == "waste"].set_index(["trace", "manager"])
    rows, row = summary_rows()

    st = [w.loc[(t, s), "time_avg_token_pct"] for t in ("azure-conv", "azure-code")
          for s in ("static-max-context", "static-trace-max")]
    row("static reservation keeps 20.4-38.2% of KV memory for tokens (PagedAttention Fig. 2)",
        "20.4-38.2%", 29.3, "conv/code x max-context/trace-max: "
        + ", ".join(f"{v:.1f}%" for v in st), float(np.mean(st)), max(st) < 40,
        "time-averaged token share, 1,000 shipped requests per trace, Llama-3-8B (8K context); "
        "conv's short prompts leave the max-context reservation emptier than the paper's")
    pg = [w.loc[(t, "paged-16"), "time_avg_token_pct"] for t in ("azure-conv", "azure-code")]
    row("PagedAttention keeps ~96% of KV memory for tokens (waste < 4%)", "96.3%", 96.3,
        ", ".join(f"{v:.1f}%" for v in pg), float(np.mean(pg)), min(pg) > 96,
        "waste is the last block's unfilled tail only")
    for (t, s), v in PAPER_FINAL_WASTE.items():
        if s.startswith("static"):
            continue
        ours = w.loc[(f"azure-{t}", s), "final_waste_pct"]
        row(f"final-length waste, azure-{t}, {s} (REFERENCE 2.5)", f"{v}%", v, f"{ours:.2f}%",
            ours, abs(ours - v) <= max(0.15 * v, 0.1),
            "ours on the 1,000-request subset, theirs on the full trace")
    for _, r in df[df.part == "max-batch"].iterrows():
        row(f"vAttention Fig. 15, {r.model}: max batch 64 KiB / 2 MiB pages",
            f"{r.paper_max_batch_64k:.0f}/{r.paper_max_batch_2m:.0f} = {r.paper_ratio:.3f}",
            r.paper_ratio, f"{r.max_batch_64k:.0f}/{r.max_batch_2m:.0f} = {r.ratio:.3f}",
            r.ratio, abs(r.ratio / r.paper_ratio - 1) <= 0.10,
            "ratio within 10%; absolute batches higher (the paper's KV memory is unknown; ours "
            "0.9 x 80 GiB minus the weights' TP shard)")
    p = df[df.part == "prefix"]
    hit = 100 * float(p[np.isinf(p.cache_blocks)].block_hit_rate.iloc[-1])
    row("Mooncake conversation: prefix-block reuse, unbounded cache", "36.6% [D] (paper ~40%)",
        36.6, f"{hit:.2f}%", hit, abs(hit - 36.6) <= 0.1, "512-token hash_ids, arrival order")
    s = df[df.part == "serving"].set_index("manager")
    tp = s.throughput_requests_per_s
    for base, paper, lo in (("static-max-context", "2-4x (vs Orca-Max-like reservation)", 2.0),
                            ("static", "1.7-2.7x vs Orca-Oracle", 1.7)):
        r = tp["paged-16"] / tp[base]
        row(f"PagedAttention throughput over {base}", paper, lo, f"{r:.2f}x", r, r >= lo,
            "same trace, arrivals and 8 GiB of KV; the paper measures at equal latency under a "
            "swept request rate. At the Azure conv arrival rate an exact reservation (Oracle) "
            "is not memory-bound, so paged gains nothing over it")
    return pd.DataFrame(rows)


def _figure(df, timelines):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 8.5))
    (a, b), (c, d) = fig.subplots(2, 2)
    w = df[df.part == "waste"]
    specs = list(WASTE_SPECS)
    x = np.arange(len(specs))
    for k, t in enumerate(("azure-conv", "azure-code")):
        v = w[w.trace == t].set_index("manager").loc[specs, "time_avg_token_pct"]
        a.bar(x + (k - 0.5) * 0.38, v, 0.38, label=t)
    a.axhspan(20.4, 38.2, color="tab:red", alpha=0.12, label="paper: static 20.4-38.2%")
    a.axhline(96.3, color="tab:green", ls="--", lw=1, label="paper: vLLM 96.3%")
    a.set_xticks(x, specs, rotation=20, fontsize=8)
    a.set_ylabel("KV memory holding tokens (%, time-averaged)")
    a.set_title("PagedAttention Fig. 2: token share by manager")
    a.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    m = df[df.part == "max-batch"]
    x = np.arange(len(m))
    b.bar(x - 0.2, m.ratio, 0.4, label="ours")
    b.bar(x + 0.2, m.paper_ratio, 0.4, label="paper")
    b.set_xticks(x, m.model)
    b.set_ylabel("max batch, 64 KiB pages / 2 MiB pages")
    b.set_ylim(1.0, 1.4)
    b.set_title("vAttention Fig. 15: batch gain of 64 KiB pages")
    b.legend(fontsize=8)
    p = df[df.part == "prefix"]
    bounded = p[np.isfinite(p.cache_blocks)]
    c.plot(bounded.cache_blocks, 100 * bounded.block_hit_rate, "o-", label="LRU, ours")
    c.axhline(36.6, color="k", ls="--", lw=1, label="unbounded: 36.6% [D]")
    c.set_xscale("log")
    c.set_xlabel("prefix cache size (512-token blocks)")
    c.set_ylabel("prefix-block hit rate (%)")
    c.set_title("Mooncake conversation trace: prefix reuse")
    c.legend(fontsize=8)
    for spec, tl in timelines.items():
        alloc = tl.used_bytes + tl.internal_frag_bytes + tl.reserved_bytes
        d.plot(tl.time_s, alloc / (1 << 30), lw=1, label=f"{spec}: allocated")
        if spec in ("static-max-context", "paged-16"):
            d.plot(tl.time_s, tl.used_bytes / (1 << 30), lw=1, ls=":",
                   label=f"{spec}: holding tokens")
    d.set_xlabel("simulated time (s)")
    d.set_ylabel("KV memory (GiB of 8)")
    d.set_title("Azure conv through continuous batching (Llama-3-8B, A100, 8 GiB KV)")
    d.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    return fig
