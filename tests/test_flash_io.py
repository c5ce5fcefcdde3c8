"""Issue 16 item 4: the I/O model over chunk size x queue depth with a per-request time, bursts
per layer (after each layer's predictor) or per token. Expectations computed by hand."""
import math

import numpy as np
import pytest

from simkit.flash.activations import ActivationTrace, masks_to_csr
from simkit.flash.latency import ComputeProfile
from simkit.flash.models import FlashModel
from simkit.flash.simulate import FlashConfig, FlashSimulator
from simkit.flash.storage import StorageCalibration, load_calibration

US = 1e-6


def two_depth_table(seq=1e9):
    """Depth 1: 4 KiB takes 100 us, 64 KiB 400 us; depth 4: 200 us and 800 us (per request)."""
    pts = [(4096, 1, 100), (65536, 1, 400), (4096, 4, 200), (65536, 4, 800)]
    return StorageCalibration("measured", seq, tuple(p[0] for p in pts),
                              tuple(p[1] for p in pts),
                              tuple(p[1] * p[0] / (p[2] * US) for p in pts), path="hand")


def test_request_time_over_chunk_and_depth():
    st = two_depth_table()
    # table points are reproduced exactly
    assert st.request_seconds(4096, 1) == pytest.approx(100 * US)
    assert st.throughput(65536, 4) == pytest.approx(4 * 65536 / (800 * US))
    # linear in the chunk between points: 16 KiB at depth 1 = 100 + 300 * 12288 / 61440 us
    assert st.request_seconds(16384, 1) == pytest.approx(160 * US)
    # depth 2 halfway in log2 between depths 1 and 4, geometric in time: sqrt(100 x 200) us
    assert st.request_seconds(4096, 2) == pytest.approx(math.sqrt(100 * 200) * US)
    # above the largest chunk: the fitted line (two points: slope 300 us / 61440 B at depth 1)
    assert st.request_seconds(1 << 20, 1) == pytest.approx((400 + 300 * 983040 / 61440) * US)
    # never faster than the sequential figure: depth 4, 1 MiB: line 800 + 9600 us; the floor
    # is 4 * 1 MiB / 1 GB/s = 4194 us, below it, so the line holds...
    assert st.request_seconds(1 << 20, 4) == pytest.approx(10400 * US)
    # ...and with a slow device (0.3 GB/s) the ceiling binds: 4 MiB / 0.3 GB/s
    slow = two_depth_table(seq=0.3e9)
    assert slow.throughput(1 << 20, 4) == pytest.approx(0.3e9)
    # below the smallest chunk: same per-request time (same IOPS)
    assert st.throughput(2048, 1) == pytest.approx(2048 / (100 * US))


def test_depth_outside_the_table_is_refused():
    st = two_depth_table()
    for bad in (8, 0, 2.5):
        with pytest.raises(ValueError, match=r"^threads: .* outside the storage table's queue "
                                             r"depths 1\.\.4"):
            st.throughput(4096, bad)
    with pytest.raises(ValueError, match="threads"):
        FlashSimulator(FlashConfig(storage="published-m1max", threads=4))


def test_bursts_are_whole_waves():
    st = two_depth_table()
    # 9 reads of 4 KiB, 4 in flight: 3 waves of 200 us
    assert st.burst_seconds(9, 4096, 4) == pytest.approx(600 * US)
    # 3 reads with 4 threads: one wave at depth 3 (log2(3)/2 of the way from 100 to 200 us,
    # geometric)
    f = math.log2(3) / 2
    assert st.burst_seconds(3, 4096, 4) == pytest.approx(100 ** (1 - f) * 200 ** f * US)
    assert st.burst_seconds(0, 4096, 4) == 0.0
    # vectorised, and never faster than the sequential figure: on a 1 MB/s device a request at
    # depth 4 takes 4 x 4096 B / 1 MB/s, three waves of them
    slow = two_depth_table(seq=1e6)
    np.testing.assert_allclose(slow.burst_seconds(np.array([[0, 9]]), 4096, 4),
                               [[0.0, 3 * 4 * 4096 / 1e6]])


def test_published_line_reaches_sequential():
    st = load_calibration("published-m1max")
    fit = st.fit().iloc[0]
    # four 32-thread points, per-request 209.7 / 233.0 / 268.9 / 283.7 us: a line within 2%
    assert fit.threads == 32 and fit.points == 4 and fit.max_rel_error < 0.02
    assert 150 * US < fit.latency_s < 230 * US
    assert st.throughput(8 << 20, 32) == pytest.approx(6.1e9)
    assert 4.1e9 < st.throughput(65536, 32) <= 6.1e9


def hand_trace():
    """2 layers x 8 neurons, 2 tokens; layer 0 needs neurons 0-2, layer 1 needs neuron 5."""
    m = np.zeros((2, 2, 8), bool)
    m[:, 0, :3] = True
    m[:, 1, 5] = True
    s = masks_to_csr(m.reshape(4, 8))
    return ActivationTrace("hand", 2, 8, 2, s, s)


MODEL = FlashModel("tiny", 2, 1024, 8, 2, 4, 4, 16, 2)     # neuron 4 KiB, vector 2 KiB


@pytest.mark.parametrize("bursts", ["layer", "token"])
def test_layer_bursts_after_the_predictor(bursts):
    st = two_depth_table()
    prof = ComputeProfile("slowio", 1e9, 1e9, overlap_io=True)
    cfg = FlashConfig(model=MODEL, policy="all", window_tokens=0,
                      predictor="oracle", storage=st, threads=4, compute=prof,
                      io_bursts=bursts)
    df = FlashSimulator(cfg).run(hand_trace()).per_token()
    f = math.log2(3) / 2
    if bursts == "layer":
        # layer 0: 3 reads of 4 KiB at depth 3; layer 1: 1 read at depth 1 (100 us)
        want = 100 ** (1 - f) * 200 ** f * US + 100 * US
        # the predictor dependency leaves nothing to overlap: a plain sum
        np.testing.assert_allclose(df.time_s, df.io_s + df.mem_s + df.compute_s)
    else:
        # 4 reads issued together: one wave at depth 4 (200 us)
        want = 200 * US
        np.testing.assert_allclose(df.time_s, df.mem_s + np.maximum(df.io_s, df.compute_s))
    np.testing.assert_allclose(df.io_s, want)


def test_measured_burst_excess_replaces_tail_and_overhead():
    """With ``burst_excess_s`` (measured on bursts of 1, 4, 16 waves) a burst costs its waves
    plus the mean excess over the measured sizes (at least 0), linear in log2 of the thread
    count; the p99 tail and the fixed overhead are not added on top."""
    base = two_depth_table()
    st = StorageCalibration("measured", 1e9, base.chunk_bytes, base.threads, base.bytes_per_s,
                            latency_tail_s=(100 * US, 100 * US, 400 * US, 400 * US),
                            burst_overhead_s={1: 5 * US, 4: 25 * US},
                            burst_excess_s={1: {1: 10 * US, 4: 30 * US, 16: 50 * US},
                                            4: {1: 40 * US, 4: 100 * US, 16: 400 * US}})
    # at 4 workers the excess is (40 + 100 + 400) / 3 = 180 us, whatever the burst's size
    assert st.burst_seconds(8, 4096, 4) == pytest.approx((400 + 180) * US)
    assert st.burst_seconds(400, 4096, 4) == pytest.approx((20000 + 180) * US)
    # 2 reads: depth 2 (geometric time sqrt(100 x 200) us), excess halfway (log2) between
    # depth 1's 30 us and depth 4's 180 us
    assert st.burst_seconds(2, 4096, 4) == pytest.approx((math.sqrt(100 * 200) + 105) * US)
    # per-layer bursts never cost less than one burst of the same reads
    assert st.burst_seconds([4, 4, 4, 4], 4096, 4).sum() > st.burst_seconds(16, 4096, 4)
    # a negative mean excess counts as 0
    neg = StorageCalibration("measured", 1e9, base.chunk_bytes, base.threads, base.bytes_per_s,
                             burst_excess_s={4: {1: -1.0}})
    assert neg.burst_seconds(4, 4096, 4) == pytest.approx(200 * US)
    from simkit.flash.storage import from_dict
    assert from_dict(st.to_dict()).burst_seconds(8, 4096, 4) == pytest.approx((400 + 180) * US)
    with pytest.raises(ValueError, match="burst_excess_s"):
        StorageCalibration("measured", 1e9, base.chunk_bytes, base.threads, base.bytes_per_s,
                           burst_excess_s={4: {1: float("nan")}})


def test_slowest_read_and_burst_overhead():
    """A burst waits for its slowest read (the 1 - 1/(n+1) quantile above the median, from the
    table's p99 - median by log interpolation, held at p99 from 99 reads on) and pays the
    table's fixed cost of handing out the work."""
    base = two_depth_table()
    st = StorageCalibration("measured", 1e9, base.chunk_bytes, base.threads, base.bytes_per_s,
                            latency_tail_s=(100 * US, 100 * US, 400 * US, 400 * US),
                            burst_overhead_s={1: 5 * US, 4: 25 * US})
    # 9 reads, 4 workers: 3 waves of 200 us + 400 us x log(5) / log(50) + 25 us
    want = 600 * US + 400 * US * math.log(5) / math.log(50) + 25 * US
    assert st.burst_seconds(9, 4096, 4) == pytest.approx(want)
    # 400 reads: 100 waves, the tail held at p99 - median
    assert st.burst_seconds(400, 4096, 4) == pytest.approx((20000 + 400 + 25) * US)
    # one read: its own time, no wait for another (log(1) = 0); depth 1's overhead
    assert st.burst_seconds(1, 4096, 4) == pytest.approx(105 * US)
    # depth 2: tail and overhead halfway in log2 between depths 1 and 4
    assert st.request_tail(4096, 2) == pytest.approx(250 * US)
    assert st.overhead_seconds(2) == pytest.approx(15 * US)
    # round trip through the file format
    from simkit.flash.storage import from_dict
    back = from_dict(st.to_dict())
    assert back.burst_seconds(9, 4096, 4) == pytest.approx(want)
    with pytest.raises(ValueError, match="latency_tail_s"):
        StorageCalibration("measured", 1e9, base.chunk_bytes, base.threads, base.bytes_per_s,
                           latency_tail_s=(1.0,))
