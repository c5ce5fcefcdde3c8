"""The experiments' figures are readable at a glance: no title, axis label or legend runs into
another, and no axis hides its values behind an offset (``+9.999e1``). Every experiment's figure
function is rendered here from small frames shaped like the experiment's own output, with values
chosen to provoke both faults (wide ranges, values that differ in the fifth digit)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def text_boxes(fig):
    """Rendered bounding boxes of the suptitle and every axes title that has text."""
    renderer = _renderer(fig)
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [t for t in (ax.title, ax._left_title, ax._right_title) if t.get_text()]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts]


def label_boxes(fig):
    """Titles (as ``text_boxes``), every axis label with text, and every legend (of an axes or
    of the figure): (name, box)."""
    renderer = _renderer(fig)
    out = text_boxes(fig)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lab = axis.get_label()
            if lab.get_text() and lab.get_visible():
                out.append((f"label {lab.get_text()!r}", lab.get_window_extent(renderer)))
        if ax.get_legend() is not None:
            out.append((f"legend of {ax.get_title()!r}",
                        ax.get_legend().get_window_extent(renderer)))
    for leg in fig.legends:
        out.append(("figure legend", leg.get_window_extent(renderer)))
    return out


def assert_readable(fig):
    boxes = label_boxes(fig)
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        assert not ba.overlaps(bb), f"{a!r} overlaps {b!r}"
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            assert axis.get_offset_text().get_text() == "", (ax.get_title(), "offset")


def test_cache_miss_curve_figure():
    from simkit.experiments.cache_miss_curve import cache_miss_figure

    rows = []
    for trace, base in (("gups", 99.99), ("bfs", 40.0), ("matmul", 5.0), ("embedding", 70.0)):
        for k, size in enumerate((4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20)):
            for j, pol in enumerate(("lru", "plru", "srrip", "drrip", "random")):
                rate = base - (0.001 * (k + j) if base > 99 else 3 * k + j)
                rows.append({"trace": trace, "param_policy": pol, "param_size_bytes": size,
                             "miss_rate": rate / 100})
    fig = cache_miss_figure(pd.DataFrame(rows))
    assert len(fig.axes) == 4 and fig._suptitle.get_text()
    assert_readable(fig)


def test_the_checker_catches_an_overlap_and_an_offset():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))                     # no layout: the suptitle sits on the title
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([1, 2], [99.991, 99.992])
    ax.set_title("a panel title long enough to reach the middle", fontsize=14)
    fig.suptitle("a suptitle", y=0.9)
    try:
        assert_readable(fig)
    except AssertionError as exc:
        assert "overlaps" in str(exc) or "offset" in str(exc)
    else:
        raise AssertionError("the checker missed it")
    for build in (_legend_on_a_label, _offset_only):
        fig = build()
        try:
            assert_readable(fig)
        except AssertionError:
            continue
        raise AssertionError(f"the checker missed {build.__name__}")


def _legend_on_a_label():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot([1, 2], [1, 2], label="a line")
    ax.set_xlabel("an x label")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02))      # on the x label
    return fig


def _offset_only():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot([1, 2], [99.991, 99.992])
    return fig


def test_allocators_figure_shows_every_bar():
    """Small footprints (cc1) next to large ones: every validation bar is visible (no log axis
    starting from 0), and a model group whose fragmentation is 0% still shows its values."""
    import numpy as np

    from simkit.experiments.allocators import MODELS, _figure

    traces = ("cc1", "python-json", "kv-paged-smollm2")
    rows = [{"part": "models", "allocator": m, "trace": t,
             "fragmentation": 0.0 if t == "kv-paged-smollm2" else 0.1 * (i + 1)}
            for t in traces for i, m in enumerate(MODELS)]
    rows += [{"part": "real", "allocator": a, "trace": t, "time_ratio_to_glibc": r,
              "delta_hwm_ratio_to_glibc": r}
             for t in traces[:2] for a, r in (("glibc", 1.0), ("jemalloc", 0.9))]
    rows += [{"part": "validation", "trace": t, "model": "ptmalloc",
              "model_peak_footprint_bytes": b, "measured_delta_hwm_bytes": b * 1.01,
              "error": -0.01} for t, b in (("cc1", 4 << 20), ("python-json", 400 << 20))]
    timelines = {(t, m): pd.DataFrame({"event": np.arange(5), "rss_bytes": np.arange(5) << 20,
                                       "live_bytes": np.arange(5) << 19})
                 for t in traces for m in MODELS}
    fig = _figure(pd.DataFrame(rows), timelines)
    assert_readable(fig)
    frag, _, valid, _ = fig.axes
    renderer = fig.canvas.get_renderer()
    assert valid.get_yscale() == "linear"
    heights = [p.get_window_extent(renderer).height for p in valid.patches]
    assert len(heights) == 4 and min(heights) >= 1
    labels = [t.get_text() for t in frag.texts]
    assert len(labels) == len(traces) * len(MODELS) and labels.count("0") == len(MODELS)


def legend_problems(fig):
    """Legends drawn over data points or bars of their own axes, or over another panel or a
    title."""
    renderer = fig.canvas.get_renderer()
    out = []
    titles = [b for _, b in text_boxes(fig)]
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None:
            continue
        box = leg.get_window_extent(renderer)
        for line in ax.lines:
            if line.get_transform() != ax.transData:           # axhline / axvline: span axes
                continue
            pts = ax.transData.transform(line.get_xydata())
            if any(box.contains(x, y) for x, y in pts):
                out.append(f"{ax.get_title()}: legend over {line.get_label()}")
        for patch in ax.patches:
            if patch.get_transform() == ax.transData and \
                    box.overlaps(patch.get_window_extent(renderer)):
                out.append(f"{ax.get_title()}: legend over a bar")
        for other in fig.axes:
            if other is not ax and box.overlaps(other.get_window_extent(renderer)):
                out.append(f"{ax.get_title()}: legend over panel {other.get_title()}")
        out += [f"{ax.get_title()}: legend over a title" for t in titles if box.overlaps(t)]
    return out


def test_kv_paging_figure_legends_cover_nothing():
    import numpy as np

    from simkit.experiments.kv_paging import WASTE_SPECS, _figure

    rows = [{"part": "waste", "trace": t, "manager": m, "time_avg_token_pct": v}
            for t in ("azure-conv", "azure-code")
            for m, v in zip(WASTE_SPECS, (25, 60, 99, 98, 97, 55))]
    rows += [{"part": "max-batch", "model": m, "ratio": r, "paper_ratio": r}
             for m, r in (("Yi-6B", 1.28), ("Llama-3-8B", 1.27), ("Yi-34B", 1.21))]
    rows += [{"part": "prefix", "cache_blocks": c, "block_hit_rate": h}
             for c, h in ((100, 0.1), (1000, 0.25), (10000, 0.35), (np.inf, 0.366))]
    t = np.linspace(0, 100, 50)
    timelines = {s: pd.DataFrame({"time_s": t, "used_bytes": (i + 1) * 0.9 * (1 << 30) + 0 * t,
                                  "internal_frag_bytes": 0 * t,
                                  "reserved_bytes": (1 << 28) * (1 + np.sin(t / 7 + i))})
                 for i, s in enumerate(WASTE_SPECS)}           # lines across the whole panel
    fig = _figure(pd.DataFrame(rows), timelines)
    assert_readable(fig)
    assert legend_problems(fig) == []


def test_validation_figures():
    """cpu-validation and tlb-validation (measured latency with simulated rates on a twin axis)
    and core-validation (measured vs predicted)."""
    from simkit.experiments._base import measured_vs_simulated
    from simkit.experiments.core_validation import core_figure

    ws = 2.0 ** np.arange(12, 27)
    lat = np.linspace(1.0001, 1.0009, len(ws)) * 99.99          # offset-prone values
    rates = [(np.linspace(0, 1, len(ws)), "C0--", "simulated L1 miss rate"),
             (np.linspace(0, 0.5, len(ws)), "C1--", "simulated L2 miss rate")]
    assert_readable(measured_vs_simulated(ws, lat, rates, "working set (bytes)",
                                          "simulated miss rate", "a title as long as theirs"
                                          " with the preset named, same addresses"))
    out = pd.DataFrame({"working_set_bytes": ws, "measured_ns_4k": lat,
                        "measured_ns_thp": lat * 0.9, "predicted_ns_4k": lat * 1.1,
                        "error": 0.1})
    assert_readable(core_figure(out))
    tb = [8 << 20, 64 << 20, 512 << 20]
    g = pd.DataFrame({"table_bytes": tb * 2, "page_kind": ["4k"] * 3 + ["thp"] * 3,
                      "measured_ns": [9.99, 15.01, 19.99, 9.98, 14.02, 15.5],
                      "predicted_ns": [10.0, 14.0, 21.2, 9.9, 10.3, 10.4], "error": 0.1})
    assert_readable(core_figure(out, g))
    fig = core_figure(out, g, g.assign(measured_ns=g.measured_ns * 2))       # + the gather
    assert_readable(fig)
    assert len(fig.axes) == 3 and "gather" in fig.axes[2].get_title()


def test_victima_figures():
    from simkit.experiments.victima import REAL_TRACES, SYNTHETIC, _victima_figure, \
        victima_configs

    rows = []
    for env in ("virtualized",):                    # native: the same function and layout
        for i, w in enumerate(REAL_TRACES + SYNTHETIC):
            for j, c in enumerate(victima_configs()):
                rows.append({"environment": env, "workload": w, "config": c,
                             "walk_reduction": 0.1 * (j % 9), "l2_tlb_mpki": 700.0 / (1 + i),
                             "reach_mib": 2.0 ** (j + i % 4),
                             "translation_cycle_reduction": -0.8 + 0.15 * j})
    df = pd.DataFrame(rows)
    fig = _victima_figure(df, "virtualized")
    assert len(fig.axes) == 4
    assert_readable(fig)


def test_kv_rate_sweep_figure():
    from simkit.experiments.kv_rate_sweep import _figure

    rows, knees = [], []
    for setup, wl in (("opt-13b/a100-40gb", "sharegpt"), ("opt-13b/a100-40gb", "alpaca"),
                      ("llama-3-8b/a100-80gb", "sharegpt")):          # the --full set-ups
        for m, spec in enumerate(("paged-16", "orca-oracle", "orca-pow2", "orca-max",
                                  "vattention-2MiB", "paged-16/no-kernel-cost")):
            for r in 2.0 ** np.arange(0, 5, 0.5):
                rows.append({"setup": setup, "workload": wl, "manager": spec, "rate": r,
                             "normalized_latency_s_per_token": 0.05 * (1 + r ** (m + 1)),
                             "threshold_s_per_token": 0.2})
            knees.append({"setup": setup, "workload": wl, "manager": spec,
                          "knee_rate": 2.0 + m})
    assert_readable(_figure(pd.DataFrame(rows), pd.DataFrame(knees)))


def test_flash_figure():
    from simkit.experiments.flash import _figure

    steps = ("naive", "hybrid", "predictor", "windowing", "all")
    rows = [{"part": "table2", "step": s, "calibration": c, "paper_io_ms": 2000.0 / (i + 1),
             "io_ms_per_token": 2100.0 / (i + 1)}
            for c in ("measured", "fitted-error-persistence") for i, s in enumerate(steps)]
    rows += [{"part": "window", "calibration": c, "predictor": p, "param_model": m,
              "window_tokens": k, "loaded_fraction": 0.05 / k, "cached_fraction": 0.04 * k}
             for m in ("opt-6.7b", "falcon-7b") for c in ("measured", "fitted")
             for p in ("error model", "oracle") for k in range(1, 9)]
    rows += [{"part": "storage", "mode": "random", "threads": t, "chunk_bytes": c,
              "bytes_per_s": 1e8 * t * np.log2(c)}
             for t in (1, 8, 32) for c in (4096, 8192, 16384, 65536, 1 << 20)]
    rows += [{"part": "storage", "mode": "sequential", "threads": 1, "chunk_bytes": 1 << 20,
              "bytes_per_s": 2e9}]
    rows += [{"part": "predictor", "sparsity": s, "fn_rate": 0.15, "fp_rate": 0.25,
              "top1_agreement_sparse_oracle": 0.9, "top1_agreement_sparse_predicted": 0.5}
             for s in (0.5, 0.7, 0.9, 0.97)]
    assert_readable(_figure(pd.DataFrame(rows)))
