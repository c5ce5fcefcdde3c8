"""The experiments' figures are readable at a glance: no title runs into another, and no axis
hides its values behind an offset (``+9.999e1``). Rendered from small frames shaped like the
experiments' own output, with values chosen to provoke both faults."""
from __future__ import annotations

import itertools

import pandas as pd


def text_boxes(fig):
    """Rendered bounding boxes of the suptitle and every axes title that has text."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [t for t in (ax.title, ax._left_title, ax._right_title) if t.get_text()]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts]


def assert_readable(fig):
    boxes = text_boxes(fig)
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
