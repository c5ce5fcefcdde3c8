"""The per-token latency model of simkit.flash (latency.py; "LLM in a flash" Table 3,
REFERENCE.md 3.2): terms computed by hand, the paper-derived profiles against Table 3's rows
they were not derived from, and the overlap switch."""
from dataclasses import replace

import numpy as np
import pytest

from simkit.flash import FlashConfig, FlashSimulator, paper
from simkit.flash.activations import ActivationTrace, masks_to_csr
from simkit.flash.latency import PROFILES, ComputeProfile, measure_copy, measure_gemv
from simkit.flash.models import FlashModel

TINY = FlashModel("tiny", 1, 8, 4, 2, 2, 2, 10)       # 1 layer, d 8, 4 neurons, 2 matrices


def _tiny_trace():
    sets = [[0, 1], [1, 2], [3], [0, 3]]
    m = np.zeros((4, 4), bool)
    for t, s in enumerate(sets):
        m[t, s] = True
    a = masks_to_csr(m)
    return ActivationTrace("hand", 1, 4, 4, a, a)


def test_latency_terms_by_hand():
    prof = ComputeProfile("unit", 1e9, 2e9)
    s = FlashSimulator(FlashConfig(model=TINY, policy="all", window_tokens=2, compute=prof,
                                   context_tokens=10)).run(_tiny_trace())
    d = s.per_token()
    # window 2 (see test_flash's hand case): cache rows 2, 3, 3, 2; rows copied 0, 0, 1, 1
    ffn = np.array([2, 3, 3, 2]) * 2 * 8                  # cached rows x matrices x d_model
    attn = 2 * 8 * 8 + 2 * 8 * 8 + 4 * 8 + 2 * 2 * 4 * 10   # Q,O + K,V + norms + KV at 10 tokens
    head = 10 * 8
    pred = 128 * (8 + 4)                                    # default rank 128, one layer
    np.testing.assert_allclose(d.ffn_s, ffn / 1e9)
    np.testing.assert_allclose(d.compute_s, (ffn + attn + head + pred) / 1e9)
    np.testing.assert_allclose(d.mem_s, np.array([0, 0, 1, 1]) * TINY.neuron_bytes / 2e9)
    np.testing.assert_allclose(d.time_s, d.io_s + d.mem_s + d.compute_s)
    # overlapped (one burst per token only: per-layer bursts wait for the predictor): I/O
    # hides behind compute (or the reverse), memory management does not
    s2 = FlashSimulator(FlashConfig(model=TINY, policy="all", window_tokens=2,
                                    compute=replace(prof, overlap_io=True),
                                    context_tokens=10, io_bursts="token")).run(_tiny_trace())
    d2 = s2.per_token()
    np.testing.assert_allclose(d2.time_s, d2.mem_s + np.maximum(d2.io_s, d2.compute_s))


def test_paper_profiles_predict_the_naive_rows():
    """Table 3: OPT-6.7B naive 3182 ms (CPU) and 2218 ms (GPU). The profiles are derived from
    the All row's compute and memory columns only, so the naive rows are out of sample: the
    whole model read at 6.1 GB/s plus its dense compute."""
    tr = paper.opt_trace(8, 0.5, 0.5, seed=1)
    for name, ms in (("paper-m1max-cpu", 3182), ("paper-rtx4090-gpu", 2218)):
        s = FlashSimulator(FlashConfig(model="opt-6.7b", policy="naive", compute=name)
                           ).run(tr).summary()
        assert s["time_ms_per_token"] == pytest.approx(ms, rel=0.05), name


def test_paper_cpu_profile_on_the_all_row():
    """OPT-6.7B All on CPU: 669 ms = 105 I/O + 58 memory + 506 compute. With the error
    persistence fitted to 2.4% loaded, the total is within 15%, compute within 10%."""
    tr = paper.opt_trace(48, None, 0.79, seed=0)
    s = FlashSimulator(FlashConfig(model="opt-6.7b", policy="all", compute="paper-m1max-cpu")
                       ).run(tr).summary()
    assert s["compute_ms_per_token"] == pytest.approx(506, rel=0.10)
    assert s["time_ms_per_token"] == pytest.approx(669, rel=0.15)
    assert s["time_ms_per_token"] == pytest.approx(
        s["io_ms_per_token"] + s["mem_ms_per_token"] + s["compute_ms_per_token"])
    assert PROFILES["paper-m1max-cpu"].kind == "derived"


def test_host_measurements_are_rates():
    assert measure_gemv(256, 256, repeats=2) > 1e6
    assert measure_copy(1 << 20, repeats=2) > 1e7


def test_bad_compute_profile():
    with pytest.raises(ValueError, match="compute"):
        FlashConfig(compute="tpu")
    with pytest.raises(ValueError, match="weights_per_s"):
        ComputeProfile("x", 0, 1e9)


def test_cli_refuses_a_thread_count_outside_the_table(capsys):
    """Issue 16 item 4: the published M1 Max table has only 32-thread points; --threads 4
    used to give the 32-thread throughput silently."""
    from simkit.cli import main
    rc = main(["flash", "run", "--model", "opt-6.7b", "--policy", "all", "--activations",
               "synthetic", "--tokens", "2", "--threads", "4"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith("simkit: error: --threads: 4 is outside the queue depths") \
        and "32" in err


def test_published_points_are_labelled():
    from simkit.flash.storage import load_calibration
    src = load_calibration("published-m1max").sources
    assert "[P]" in src["8192"] and "[P]" in src["16384"]
    assert "[D]" in src["32768"] and "not a figure the paper prints" in src["32768"]
