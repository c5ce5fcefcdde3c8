"""Numbers of "LLM in a flash" (Alizadeh et al., ACL 2024; REFERENCE.md section 3) reproduced
by simkit.flash, and the shipped real SmolLM2-135M activation trace (no gguf needed)."""
import numpy as np
import pytest

from simkit.flash import FlashConfig, FlashSimulator, load_activations, paper
from simkit.flash.activations import list_activations, trace_meta


@pytest.fixture(scope="module")
def real97():
    return load_activations("smollm2-135m", 0.97)


@pytest.fixture(scope="module")
def fitted_trace():
    # activation persistence measured per layer on the real trace; the predictor errors'
    # persistence fitted so that windowing (k=5) loads the paper's 2.4% of the FFN; pinned
    # here so the test does not re-fit
    return paper.opt_trace(96, None, FITTED_ERROR_STAY, SKEW, seed=0)


SKEW = 1.53                # paper.fit_skew(0.26): PowerInfer's 26% of neurons carry 80%
FITTED_ERROR_STAY = 0.79   # paper.fit_persistence("error", tokens=48)


def test_table2_ladder_first_three_steps():
    """Table 2: naive 2196 ms, hybrid 1090, + predictor 738 (within 10%): these steps depend on
    the model's size, the throughput figures and the predictor's 5% FN / 7% FP (REFERENCE 3.3:
    ~3x over-prediction of Table 6's 3.30% active), not on temporal correlation."""
    tr = paper.opt_trace(32, 0.3, 0.3, SKEW, seed=3)
    df = paper.table2(tr).set_index("step")
    for step, ms in (("naive", 2196), ("hybrid", 1090), ("predictor-only", 738)):
        assert df.loc[step, "io_ms_per_token"] == pytest.approx(ms, rel=0.10), step
    assert df.loc["naive", "loaded_gb"] == pytest.approx(13.4, rel=0.01)
    assert df.loc["hybrid", "loaded_gb"] == pytest.approx(6.7, rel=0.01)
    assert df.loc["predictor-only", "loaded_gb"] == pytest.approx(0.9, rel=0.10)
    assert df.loc["predictor-only", "gb_per_s"] == pytest.approx(1.25)
    # Table 2's DRAM column: half the model resident (hybrid); attention + embeddings only
    # (predictor: the paper's 4.8 GB also holds the predictor, ~1.25% of the model)
    assert df.loc["hybrid", "dram_gb"] == pytest.approx(6.7, rel=0.02)
    assert df.loc["predictor-only", "dram_gb"] == pytest.approx(4.8, rel=0.03)


def test_table2_windowing_and_bundling_with_fitted_error_persistence(fitted_trace):
    """Table 2: + windowing 164 ms, + bundling 87 ms; the text: 2.4% loaded per token (OPT).
    With the error persistence fitted to the 2.4%, both I/O times are within 10%; the cached
    share is then a prediction: ~20% of the FFN, i.e. the 1.7 GB that Table 2's DRAM column grows by
    from the predictor row (4.8 GB) to the windowing row (6.5 GB) -- the text says 24%."""
    df = paper.table2(fitted_trace).set_index("step")
    assert df.loc["windowing", "io_ms_per_token"] == pytest.approx(164, rel=0.10)
    assert df.loc["all", "io_ms_per_token"] == pytest.approx(87, rel=0.10)
    assert df.loc["all", "gb_per_s"] == pytest.approx(2.25)
    assert df.loc["all", "loaded_fraction"] == pytest.approx(0.024, rel=0.10)
    cached_gb = df.loc["all", "cached_fraction"] * 8.59
    assert cached_gb == pytest.approx(6.5 - 4.8, rel=0.15)
    assert 0.17 < df.loc["all", "cached_fraction"] < 0.24
    assert df.loc["all", "dram_gb"] == pytest.approx(6.5, rel=0.05)


def test_window_curve_is_monotone(fitted_trace):
    w = paper.window_curve(fitted_trace, windows=(1, 2, 4, 8))
    assert (np.diff(w.loaded_fraction) < 0).all()
    assert (np.diff(w.cached_fraction) > 0).all()


def test_shipped_trace_shape_and_sparsity(real97):
    cat = list_activations()["smollm2-135m"]
    assert (real97.tokens, real97.layers, real97.neurons) == (256, 30, 1536)
    assert cat["sparsities"] == [0.8, 0.9, 0.95, 0.97]
    # thresholds come from other (calibration) tokens, so the trace is near, not at, 3%
    assert real97.active_fraction() == pytest.approx(0.03, rel=0.15)
    assert real97.active_fraction_per_layer().min() > 0.005
    meta = trace_meta("smollm2-135m")
    assert "Paris" not in meta["generated_text"] and len(meta["generated_text"]) > 500


def test_shipped_trace_predictor_matches_its_metadata(real97):
    st = real97.meta["predictor_stats"]
    c = real97.confusion()
    assert c["fn_rate"] == pytest.approx(st["fn_rate"], abs=1e-9)
    assert c["fp_rate"] == pytest.approx(st["fp_rate"], abs=1e-9)
    assert c["over_prediction"] > 2


def test_windowing_on_the_real_trace(real97):
    """Real SmolLM2 activations through windowing: the oracle loads less than the low-rank
    predictor, more window means less loaded and more cached."""
    out = {}
    for pred in ("oracle", "trace"):
        for k in (1, 5):
            s = FlashSimulator(FlashConfig(model="smollm2-135m", policy="all", window_tokens=k,
                                           predictor=pred)).run(real97).summary()
            out[pred, k] = s
    assert out["oracle", 5]["loaded_fraction"] < out["trace", 5]["loaded_fraction"]
    for pred in ("oracle", "trace"):
        assert out[pred, 5]["loaded_fraction"] < out[pred, 1]["loaded_fraction"]
        assert out[pred, 5]["cached_fraction"] > out[pred, 1]["cached_fraction"]
