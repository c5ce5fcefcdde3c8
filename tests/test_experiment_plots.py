"""The experiments' figures are readable at a glance: no title runs into another, and no axis
hides its values behind an offset (``+9.999e1``). Rendered from small frames shaped like the
experiments' own output, with values chosen to provoke both faults."""
from __future__ import annotations

import itertools

import pandas as pd


def text_boxes(fig):
    """Rendered bounding boxes of the suptitle and every axes title that has text."""
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
