"""vAttention's kernel comparisons (ASPLOS 2025; REFERENCE.md 2.2, 2.3), on the PUBLISHED
CALIBRATION (no GPU measured anything here): ``kv-vattention``.

The paper's claims: prefill with vAttention (contiguous FlashAttention-2 / FlashInfer kernels)
beats the same libraries' paged kernels (paged prefill up to 37% / 42% slower, Fig. 2);
decode is on par with them and up to ~2x faster than vLLM's paged kernel (1.99x; vLLM's
decode kernel up to 2.8x slower than FA2's, Table 7); 64 KiB pages do not slow the kernels,
and mapping them in the background hides the allocation cost (synchronous 64 KB overhead
1.15x, 1.00x with overlap [S]).

Each comparison runs the serving engine on Llama-3-8B on one A100-80GB (the published
A100-80GB calibration) with a batch of identical requests arriving at t = 0:

- prefill: ``PREFILL_BATCH`` prompts of L tokens, one output token each; prefill throughput
  = prompt tokens / busy time, vAttention (2 MiB pages) over paged-16 with the paged kernel
  profile of each library (``kvpaging.kernels``: fa2-paged, flashinfer-paged);
- decode: ``DECODE_BATCH`` requests of L-token prompts, each run twice (1 output token, and
  1 + ``DECODE_STEPS``); decode time = the difference of busy times, so prefill cancels;
  vAttention over paged-16 with vllm-vs-fa2, fa2-paged and flashinfer-paged;
- page size: the same decode runs with vAttention 64 KiB vs 2 MiB pages, background mapping
  on (the default) and off (``overlap=False``: every map on the critical path).

The model's context is raised to the longest L (prefill: 128k) as the paper does for long
prompts; vAttention runs with the repository's lookahead of 10 steps (``LOOKAHEAD_TOKENS``);
everything in GPU terms is the published calibration. The kernel factors are the papers'
"up to" figures applied to every attention call, so the serving-level ratios here are the
kernel factor diluted by the parts of an iteration that do not change (dense layers, the
fixed step cost): they must lie between 1 and the factor.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path



from simkit.experiments._base import experiment, save_outputs, summary_rows, write_csv

MODEL, GPU = "Llama-3-8B", "A100-80GB"
PREFILL_CONTEXTS = {True: (4096, 32768, 131072), False: (2048, 4096, 8192, 16384, 32768,
                                                         65536, 131072)}
DECODE_CONTEXTS = {True: (1024, 16384), False: (1024, 2048, 4096, 8192, 16384)}
PREFILL_BATCH = 2
LOOKAHEAD_TOKENS = 10     # microsoft/vattention's lookahead of 10 steps (REFERENCE.md 2.2 [C])
DECODE_BATCH = 16
DECODE_STEPS = 64
PREFILL_KERNELS = ("fa2-paged", "flashinfer-paged")
DECODE_KERNELS = ("vllm-vs-fa2", "fa2-paged", "flashinfer-paged")
# published figures (REFERENCE.md 2.2, 2.3): kernel-level worst cases and the paper's claims
PAPER = {"prefill fa2-paged": 1.37, "prefill flashinfer-paged": 1.42,
         "decode vllm-vs-fa2": 1.99, "decode fa2-paged": 1.0, "decode flashinfer-paged": 1.0,
         "page 64KiB/2MiB overlap": 1.00, "page 64KiB/2MiB sync": 1.15}


def _busy(model, spec, kernel, n, prompt, output, **overrides):
    if spec.startswith("vattention"):
        overrides.setdefault("lookahead_tokens", LOOKAHEAD_TOKENS)
    from simkit.kvpaging.costmodel import default_calibration
    from simkit.kvpaging.engine import ServingSimulator
    from simkit.kvpaging.gpus import get_gpu
    from simkit.kvpaging.workload import Request, RequestSource

    gpu = get_gpu(GPU)
    cal = default_calibration(gpu.name).with_paged_kernel(kernel)
    items = [Request(i, 0.0, prompt, output) for i in range(n)]
    src = RequestSource("batch", lambda: iter(items), n)
    sim = ServingSimulator(model, gpu, spec, src, calibration=cal, progress=False,
                           manager_overrides=overrides or None)
    st = sim.run()
    if st.requests_finished != n:
        raise RuntimeError(f"kv-vattention: {spec} finished {st.requests_finished} of {n}")
    return st.busy_s, st.map_exposed_s


def _rows(quick):
    from simkit.kvpaging import get_model

    base = get_model(MODEL)
    rows = []
    pre = PREFILL_CONTEXTS[quick]
    model = dataclasses.replace(base, max_context=max(pre) + 1)
    for L in pre:
        va, _ = _busy(model, "vattention-2MiB", "contiguous", PREFILL_BATCH, L, 1)
        for k in PREFILL_KERNELS:
            pg, _ = _busy(model, "paged-16", k, PREFILL_BATCH, L, 1)
            rows.append({"comparison": f"prefill {k}", "context_tokens": L,
                         "ours_tokens_per_s": PREFILL_BATCH * L / va,
                         "base_tokens_per_s": PREFILL_BATCH * L / pg,
                         "ratio": pg / va, "paper": PAPER[f"prefill {k}"]})
    dec = DECODE_CONTEXTS[quick]
    model = dataclasses.replace(base, max_context=max(dec) + 2 * DECODE_STEPS)
    for L in dec:
        def decode_s(spec, kernel, **ov):
            a, _ = _busy(model, spec, kernel, DECODE_BATCH, L, 1, **ov)
            b, exposed = _busy(model, spec, kernel, DECODE_BATCH, L, 1 + DECODE_STEPS, **ov)
            return b - a, exposed

        tokens = DECODE_BATCH * DECODE_STEPS
        va, _ = decode_s("vattention-2MiB", "contiguous")
        for k in DECODE_KERNELS:
            pg, _ = decode_s("paged-16", k)
            rows.append({"comparison": f"decode {k}", "context_tokens": L,
                         "ours_tokens_per_s": tokens / va, "base_tokens_per_s": tokens / pg,
                         "ratio": pg / va, "paper": PAPER[f"decode {k}"]})
        for mode, overlap in (("overlap", True), ("sync", False)):
            big, _ = decode_s("vattention-2MiB", "contiguous", overlap=overlap)
            small, exposed = decode_s("vattention-64KiB", "contiguous", overlap=overlap)
            rows.append({"comparison": f"page 64KiB/2MiB {mode}", "context_tokens": L,
                         "ours_tokens_per_s": tokens / small, "base_tokens_per_s": tokens / big,
                         "ratio": small / big, "paper": PAPER[f"page 64KiB/2MiB {mode}"],
                         "map_exposed_s": exposed})
    import pandas as pd

    df = pd.DataFrame(rows)
    df.insert(0, "label", "PUBLISHED CALIBRATION")
    return df


def vattention_summary(df):
    """One row per comparison: our largest ratio over the contexts beside the paper's."""
    import pandas as pd

    rows, row = summary_rows()
    for comp, g in df.groupby("comparison", sort=False):
        hi, lo = g.ratio.max(), g.ratio.min()
        paper = g.paper.iloc[0]
        if comp.startswith("prefill"):
            what = "time ratio paged / vAttention (= vAttention's prefill speed-up)"
            holds = 1.0 < hi <= paper
            note = ("the kernel factor, diluted by the dense layers; grows with context "
                    "(attention's share) toward the paper's worst case")
            pap = f"up to {paper}x (kernel, Fig. 2)"
        elif comp.startswith("decode vllm"):
            what = "time ratio vLLM paged / vAttention decode"
            holds = 1.0 < hi <= 2.8
            note = ("vLLM's kernel 2.8x slower (Table 7) diluted by the weight-streaming "
                    "dense layers; the paper's 1.99x is its end-to-end decode figure")
            pap = "up to 1.99x (decode throughput)"
        elif comp.startswith("decode"):
            what = "time ratio paged / vAttention decode"
            holds = abs(hi - 1) < 0.02 and abs(lo - 1) < 0.02
            note = "on par: the library's paged decode kernel is as fast as its contiguous one"
            pap = "on par (1.0x)"
        elif comp.endswith("overlap"):
            what = "decode time 64 KiB / 2 MiB pages, background mapping"
            holds = hi <= 1.02
            note = (f"exposed mapping time {g.map_exposed_s.max():.4f} s at most; per-call "
                    "costs per page size from the calibration's vmm_by_page (64 KiB: "
                    "ASSUMPTION, see its sources)")
            pap = "1.00x (64 KB pages do not slow decode)"
        else:
            what = "decode time 64 KiB / 2 MiB pages, synchronous mapping"
            holds = hi >= 1.0
            note = ("every map on the critical path; the paper's 1.15x [S] is one set-up, "
                    "ours depends on the assumed 64 KiB per-call cost")
            pap = "1.15x [S]"
        row(f"{comp}: {what}", pap, paper,
            f"{lo:.3f}-{hi:.3f}x over {g.context_tokens.min()}-{g.context_tokens.max()} "
            f"tokens", hi, holds, "PUBLISHED CALIBRATION, not measured; " + note)
    return pd.DataFrame(rows)


@experiment("kv-vattention", cost=0.8)
def kv_vattention(quick: bool = True, outdir: Path = Path("results")):
    """vAttention: prefill vs paged FA2/FlashInfer, decode vs vLLM and on par, 64 KiB pages."""
    df = _rows(quick)
    summary = vattention_summary(df)
    paths = save_outputs(df, _figure(df), Path(outdir), "kv-vattention")
    return df, paths + [write_csv(summary, Path(outdir) / "kv-vattention-summary.csv")]


def _figure(df):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 3)
    for ax, prefix, title in zip(axes, ("prefill", "decode", "page"),
                                 ("prefill: paged / vAttention time",
                                  "decode: paged / vAttention time",
                                  "decode: 64 KiB / 2 MiB page time")):
        for comp, g in df[df.comparison.str.startswith(prefix)].groupby("comparison",
                                                                        sort=False):
            line, = ax.plot(g.context_tokens, g.ratio, "o-", ms=3, label=comp)
            ax.axhline(g.paper.iloc[0], color=line.get_color(), ls=":", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context tokens")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("ratio (dotted: paper)")
    fig.suptitle("vAttention comparisons, Llama-3-8B / A100-80GB: PUBLISHED CALIBRATION, "
                 "not measured", fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["kv_vattention", "vattention_summary"]

