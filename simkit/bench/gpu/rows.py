"""The rows each GPU microbenchmark gives: their columns and method, the chase orders (shared
with the simulators, so they can replay what was measured), checks, summaries, JSON documents
and plots.

Pure Python over recorded rows (pandas frames with the columns in ``COLUMNS``): nothing here
imports torch or touches a GPU, so all of it is tested on the CPU with synthetic rows.
``simkit.bench.gpu.measure`` measures the rows; this module turns them into

- ``summarize(bench, df)``: named numbers (latency plateaus, TLB reach, paged-decode slowdown);
- ``bench_document(bench, df, device)``: one JSON document per microbenchmark
  (``"format": "simkit.bench.gpu"``, ``"label": "measured"``, the NVML device description, the
  method, a summary and every row);
- ``plot(bench, df)``: one figure per microbenchmark.

The KV calibration and the GPU TLB preset fitted from these rows are ``simkit.calibrate.gpu``'s.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from simkit.errors import InputError
from simkit.atomic import write_via

MiB = 1 << 20
GiB = 1 << 30
PAGE_2M = 2 * MiB
LINE_IN_PAGE = 128          # the TLB chase puts node p at line (p * ROTATE) mod 16384 of page p
ROTATE = 17

BENCHES = ("info", "latency", "tlb", "bandwidth", "gemm", "attention", "vmm", "h2d")

COLUMNS = {
    "latency": ("cache_op", "working_set_bytes", "stride_bytes", "nodes", "samples",
                "cycles_median", "cycles_mean", "cycles_p10", "cycles_p90", "sm_clock_mhz",
                "ns_median"),
    "tlb": ("cache_op", "span_bytes", "page_stride_bytes", "pages", "samples", "cycles_median",
            "cycles_mean", "cycles_p10", "cycles_p90", "sm_clock_mhz", "ns_median"),
    "bandwidth": ("size_bytes", "bytes_moved", "reps", "median_ms", "min_ms", "bytes_per_s"),
    "gemm": ("kind", "model", "tokens", "flops", "weight_bytes", "reps", "median_us",
             "flops_per_s"),
    "attention": ("phase", "variant", "model", "batch", "context_tokens", "block_size",
                  "heads", "kv_heads", "head_dim", "kv_bytes", "pairs", "reps", "median_us",
                  "min_us", "max_rel_err"),
    "vmm": ("call", "page_bytes", "calls", "mean_us", "p50_us", "p99_us", "min_us", "max_us"),
    "h2d": ("direction", "host_memory", "size_bytes", "reps", "median_us", "bytes_per_s"),
}

METHOD = {
    "latency": "one thread, fine-grained pointer chase (Mei & Chu, TPDS 2017): j = buf[j] over a "
               "single Sattolo cycle of nodes stride_bytes apart; clock64 before and after each "
               "load, the loaded value stored to shared memory before the second read; "
               "cache_op ca = ld.global.ca (L1), cg = ld.global.cg (L2 only); a warm-up lap "
               "(at most 2^20 loads), then 2048 timed loads; ns = cycles / NVML SM clock",
    "tlb": "the same chase with one node per 2 MiB page over a growing span, node p at "
           "128 B line (17 p) mod 16384 of page p (so the nodes do not share cache sets), "
           "ld.global.cg (data from L2), two warm-up laps; steps in latency = TLB levels "
           "running out of reach",
    "bandwidth": "device-to-device copy (torch Tensor.copy_) of size_bytes; bytes_moved = read "
                 "+ written; CUDA events, median after warm-up",
    "gemm": "the model's linear layers in bf16 at a number of tokens (kind layer: QKV, O, "
            "gate+up, down of one decoder layer; lm_head: the vocabulary projection) and a "
            "square 8192^3 bf16 matmul on random data (kind square); CUDA events, median",
    "attention": "one layer's attention in bf16 with the model's heads/kv_heads/head_dim on "
                 "random data: sdpa-contiguous = torch SDPA on a contiguous KV cache; "
                 "paged-gather = KV gathered from a block pool through a shuffled block table, "
                 "then SDPA (an upper bound: it copies the KV); triton-contiguous / "
                 "triton-paged = one Triton decode kernel reading the KV through a block table "
                 "that is in order (contiguous) or shuffled (paged), so their ratio is what "
                 "paging alone costs; CUDA events after warm-up, median; max_rel_err vs SDPA",
    "vmm": "CUDA virtual memory management through ctypes on libcuda: per 2 MiB page "
           "cuMemCreate, cuMemMap, cuMemSetAccess, then cuMemUnmap, cuMemRelease; one "
           "cuMemAddressReserve/cuMemAddressFree for the range; host wall clock per call "
           "(perf_counter_ns)",
    "h2d": "host-to-device and device-to-host copies from pinned (page-locked) and pageable "
           "host memory vs size; CUDA events, median after warm-up",
}


# ----------------------------------------------------------------------------------------------
# Chase layouts (shared by the measurement and by the simulated validation)

def latency_chase_words(working_set_bytes: int, stride_bytes: int = 128, seed: int = 0):
    """(word index of every node in visiting order, number of nodes) of the latency chase."""
    from simkit.trace.synth import sattolo

    if stride_bytes < 8 or stride_bytes % 8:
        raise ValueError(f"stride_bytes: must be a positive multiple of 8, got {stride_bytes}")
    n = int(working_set_bytes) // int(stride_bytes)
    if n < 1:
        raise ValueError(f"working_set_bytes: {working_set_bytes} is smaller than one stride "
                         f"({stride_bytes})")
    order = sattolo(n, seed)[1]
    return order * np.uint64(stride_bytes // 8), n


def tlb_node_words(pages: int, page_bytes: int = PAGE_2M) -> np.ndarray:
    """Word index of node p (p = 0..pages-1): page p, line (17 p) mod lines-per-page."""
    p = np.arange(int(pages), dtype=np.uint64)
    lines = np.uint64(page_bytes // LINE_IN_PAGE)
    line = (p * np.uint64(ROTATE)) % lines
    return (p * np.uint64(page_bytes) + line * np.uint64(LINE_IN_PAGE)) // np.uint64(8)


def tlb_chase_words(pages: int, seed: int = 0, page_bytes: int = PAGE_2M) -> np.ndarray:
    """Word indices of the TLB chase's nodes in visiting order."""
    from simkit.trace.synth import sattolo

    return tlb_node_words(pages, page_bytes)[sattolo(int(pages), seed)[1]]


def tlb_chase_addresses(pages: int, *, laps: int = 1, seed: int = 0, base: int = 1 << 40,
                        page_bytes: int = PAGE_2M) -> np.ndarray:
    """The virtual byte addresses the measured TLB chase loads, ``laps`` times (for the MMU)."""
    if laps < 1:
        raise ValueError(f"laps: must be >= 1, got {laps}")
    lap = tlb_chase_words(pages, seed, page_bytes) * np.uint64(8) + np.uint64(base)
    return np.tile(lap, int(laps))


def chain_values(order_words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, values): writing ``buf[positions] = values`` links the nodes in visiting
    order into one cycle (each node holds the word index of the next)."""
    order_words = np.asarray(order_words, dtype=np.uint64)
    return order_words, np.roll(order_words, -1)


# ----------------------------------------------------------------------------------------------
# Checking recorded rows

def check_rows(bench: str, df) -> None:
    """``InputError`` when ``df`` lacks a column ``bench``'s table needs, or is empty."""
    if bench not in COLUMNS:
        raise InputError(f"bench: unknown {bench!r}; choose from {', '.join(COLUMNS)}")
    missing = [c for c in COLUMNS[bench] if c not in df.columns]
    if missing:
        raise InputError(f"{bench} table: missing columns {', '.join(missing)}")
    if not len(df):
        raise InputError(f"{bench} table: no rows")


# ----------------------------------------------------------------------------------------------
# Summaries

def _knees(x, y, rel: float, abs_cycles: float) -> list[dict]:
    from simkit.bench.cpu.chase import find_knees

    ks = find_knees(np.asarray(x), np.asarray(y, dtype=float), rel=rel, abs_ns=abs_cycles)
    for k in ks:
        k["cycles_before"] = k.pop("ns_before")
        k["cycles_after"] = k.pop("ns_after")
        k["step_cycles"] = k.pop("step_ns")
    return ks


def latency_summary(df) -> dict:
    """Per cache_op: the knees of cycles vs working set and the plateaus between them."""
    out = {}
    for op, g in df.groupby("cache_op", sort=True):
        g = g.sort_values("working_set_bytes")
        ks = _knees(g.working_set_bytes, g.cycles_median, rel=0.15, abs_cycles=10)
        edges = [g.working_set_bytes.min()] + [k["after"] for k in ks]
        ends = [k["before"] for k in ks] + [g.working_set_bytes.max()]
        plateaus = []
        for lo, hi in zip(edges, ends):
            sub = g[(g.working_set_bytes >= lo) & (g.working_set_bytes <= hi)]
            plateaus.append({"from_bytes": int(lo), "to_bytes": int(hi),
                             "cycles": float(sub.cycles_median.median()),
                             "ns": float(sub.ns_median.median())})
        out[op] = {"knees": ks, "plateaus": plateaus}
    return out


def tlb_reach(df) -> dict:
    """The TLB levels seen in the page chase: per step, the span covered before it (reach), the
    entries that reach means at 2 MiB per entry, and the step height in cycles."""
    g = df.sort_values("span_bytes")
    ks = _knees(g.span_bytes, g.cycles_median, rel=0.08, abs_cycles=15)
    levels = []
    for i, k in enumerate(ks, start=1):
        levels.append({"level": f"L{i}", "reach_bytes": int(k["before"]),
                       "entries_at_2MiB": int(k["before"]) // PAGE_2M,
                       "first_span_over_bytes": int(k["after"]),
                       "step_cycles": float(k["step_cycles"]),
                       "cycles_before": float(k["cycles_before"]),
                       "cycles_after": float(k["cycles_after"])})
    return {"base_cycles": float(g.cycles_median.iloc[:3].median()),
            "max_span_bytes": int(g.span_bytes.max()), "levels": levels,
            "note": ("reach = last span before a step; a level whose reach is the largest span "
                     "measured is not seen at all") if not levels else
                    "reach = last span before each step in latency (2 MiB pages assumed)"}


def _median_of(df, col):
    return float(df[col].median()) if len(df) else None


def summarize(bench: str, df) -> dict:
    if bench == "latency":
        return latency_summary(df)
    if bench == "tlb":
        return tlb_reach(df)
    if bench == "bandwidth":
        best = df.loc[df.bytes_per_s.idxmax()]
        return {"max_bytes_per_s": float(best.bytes_per_s), "at_size_bytes": int(best.size_bytes)}
    if bench == "gemm":
        sq = df[df.kind == "square"]
        return {"square_flops_per_s": float(sq.flops_per_s.max()) if len(sq) else None,
                "layer_us_by_tokens": {int(r.tokens): float(r.median_us)
                                       for r in df[df.kind == "layer"].itertuples()}}
    if bench == "attention":
        return {"paged_decode_slowdown": paged_decode_slowdown(df),
                "gather_decode_ratio": variant_ratio(df, "decode", "paged-gather",
                                                     "sdpa-contiguous"),
                "gather_prefill_ratio": variant_ratio(df, "prefill", "paged-gather",
                                                      "sdpa-contiguous"),
                "triton_contiguous_vs_sdpa": variant_ratio(df, "decode", "triton-contiguous",
                                                           "sdpa-contiguous")}
    if bench == "vmm":
        return {r.call: {"mean_us": float(r.mean_us), "p50_us": float(r.p50_us),
                         "p99_us": float(r.p99_us)} for r in df.itertuples()}
    if bench == "h2d":
        out = {}
        for (d, m), g in df.groupby(["direction", "host_memory"]):
            out[f"{d}_{m}_max_bytes_per_s"] = float(g.bytes_per_s.max())
        return out
    raise InputError(f"bench: unknown {bench!r}")


def variant_ratio(df, phase, num, den, block_size=None):
    """Median over matching (batch, context[, block]) rows of time(num) / time(den)."""
    a = df[(df.phase == phase) & (df.variant == num)]
    if block_size is not None:
        a = a[a.block_size == block_size]
    b = df[(df.phase == phase) & (df.variant == den)]
    if not len(a) or not len(b):
        return None
    keys = ["batch", "context_tokens"]
    m = a.merge(b[keys + ["median_us"]], on=keys, suffixes=("", "_ref"))
    m = m[m.median_us_ref > 0]
    return float((m.median_us / m.median_us_ref).median()) if len(m) else None


def paged_decode_slowdown(df, block_size: int = 16) -> dict | None:
    """The decode slowdown of a paged KV layout: triton-paged / triton-contiguous (the same
    kernel, shuffled vs in-order block table) at ``block_size`` (else the nearest measured);
    without Triton rows, paged-gather / sdpa-contiguous, flagged as an upper bound."""
    t = df[(df.phase == "decode") & (df.variant == "triton-paged")]
    if len(t):
        sizes = sorted(set(t.block_size))
        bs = min(sizes, key=lambda s: (abs(s - block_size), s))
        r = variant_ratio(df, "decode", "triton-paged", "triton-contiguous", block_size=bs)
        if r is not None:
            return {"value": r, "block_size": int(bs),
                    "how": f"median over batch x context of triton-paged / triton-contiguous "
                           f"at block size {bs} (same kernel, shuffled vs in-order blocks)"}
    r = variant_ratio(df, "decode", "paged-gather", "sdpa-contiguous")
    if r is not None:
        return {"value": r, "block_size": None,
                "how": "UPPER BOUND: median of paged-gather / sdpa-contiguous (the gather "
                       "copies the KV before SDPA; no Triton paged kernel was measured)"}
    return None


# ----------------------------------------------------------------------------------------------
# JSON documents

def jsonable(v):
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def device_name(device: dict) -> str:
    nv = (device or {}).get("nvml") or {}
    th = (device or {}).get("torch") or {}
    return nv.get("name") or th.get("name") or "unknown GPU"


def driver_version(device: dict) -> str | None:
    nv = (device or {}).get("nvml") or {}
    return nv.get("driver_version") or (device or {}).get("cuda_driver_version")


def bench_document(bench: str, df, device: dict, settings: dict | None = None) -> dict:
    """The calibration JSON of one microbenchmark (see the module docstring)."""
    rows = [] if df is None else df.to_dict(orient="records")
    return jsonable({
        "format": "simkit.bench.gpu", "version": 1, "label": "measured", "bench": bench,
        "device": device, "gpu": device_name(device), "driver": driver_version(device),
        "date": (device or {}).get("date"),
        "method": METHOD.get(bench, "NVML device description"),
        "settings": settings or {},
        "summary": summarize(bench, df) if df is not None and len(df) else {},
        "rows": rows,
    })


def write_json(doc: dict, path) -> Path:
    """Write ``doc`` as JSON by way of a temporary file."""
    path = Path(path)
    return write_via(path, lambda tmp: tmp.write_text(json.dumps(jsonable(doc), indent=1) + "\n"))


# ----------------------------------------------------------------------------------------------
# Plots

def _fmt_bytes(v) -> str:
    from simkit.units import format_bytes
    return format_bytes(int(v))


def _save(fig, path) -> None:
    path = Path(path)
    write_via(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"),
              ".partial" + path.suffix)


def plot(bench: str, df, path=None, *, title_device: str = ""):
    """One matplotlib Figure (Agg canvas, no pyplot state) for ``bench``'s rows; saved to
    ``path`` when given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(8, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    bytes_fmt = FuncFormatter(lambda v, _: _fmt_bytes(v) if v >= 1 else "")
    if bench in ("latency", "tlb"):
        x = "working_set_bytes" if bench == "latency" else "span_bytes"
        for op, g in df.groupby("cache_op"):
            g = g.sort_values(x)
            ax.plot(g[x], g.cycles_median, "o-", ms=3, label=f"ld.global.{op}: median")
            ax.fill_between(g[x], g.cycles_p10, g.cycles_p90, alpha=0.2)
        if bench == "tlb":
            for lv in tlb_reach(df)["levels"]:
                ax.axvline(lv["reach_bytes"], color="crimson", ls="--", lw=0.8)
                ax.annotate(f"{lv['level']} TLB reach {_fmt_bytes(lv['reach_bytes'])}\n"
                            f"+{lv['step_cycles']:.0f} c", (lv["reach_bytes"], 0.95),
                            xycoords=("data", "axes fraction"), fontsize=7, color="crimson",
                            va="top")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(bytes_fmt)
        ax.set_xlabel("working set" if bench == "latency" else
                      "span chased (one node per 2 MiB page)")
        ax.set_ylabel("cycles per load (clock64)")
        ax.set_title(("Memory latency ladder" if bench == "latency" else "GPU TLB reach")
                     + f" {title_device}")
    elif bench in ("bandwidth", "h2d"):
        groups = [("copy", df)] if bench == "bandwidth" else list(
            df.groupby(["direction", "host_memory"]))
        for name, g in groups:
            g = g.sort_values("size_bytes")
            label = name if isinstance(name, str) else " ".join(name)
            ax.plot(g.size_bytes, g.bytes_per_s / 1e9, "o-", ms=3, label=label)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(bytes_fmt)
        ax.set_xlabel("bytes per copy")
        ax.set_ylabel("GB/s" + (" (read + written)" if bench == "bandwidth" else ""))
        ax.set_title(("Device memory bandwidth" if bench == "bandwidth"
                      else "Host <-> device copy bandwidth") + f" {title_device}")
    elif bench == "gemm":
        for kind, g in df[df.kind != "square"].groupby("kind"):
            g = g.sort_values("tokens")
            ax.plot(g.tokens, g.median_us, "o-", ms=3, label=f"{kind}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("tokens")
        ax.set_ylabel("us (median)")
        ax.set_title(f"Linear layers vs tokens {title_device}")
    elif bench == "attention":
        d = df[df.phase == "decode"].copy()
        d["ctx_total"] = d.batch * d.context_tokens
        for (v, bs), g in d.groupby(["variant", "block_size"]):
            g = g.groupby("ctx_total").median_us.median()
            ax.plot(g.index, g.values, "o-", ms=3,
                    label=v + (f" (block {bs})" if bs else ""))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("decode KV tokens read (batch x context)")
        ax.set_ylabel("us per layer (median)")
        ax.set_title(f"Decode attention: contiguous vs paged KV {title_device}")
    elif bench == "vmm":
        ax.bar(df.call, df.mean_us, label="mean")
        ax.plot(df.call, df.p99_us, "k_", ms=20, label="p99")
        ax.set_ylabel("us per call")
        ax.set_title(f"CUDA VMM calls, 2 MiB pages {title_device}")
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    else:
        raise InputError(f"bench: no plot for {bench!r}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    if path is not None:
        _save(fig, path)
    return fig


__all__ = ["BENCHES", "COLUMNS", "bench_document", "check_rows", "device_name",
           "driver_version", "jsonable", "latency_chase_words", "latency_summary",
           "paged_decode_slowdown", "plot", "summarize", "tlb_chase_addresses", "tlb_chase_words",
           "tlb_reach", "variant_ratio", "write_json"]
