"""simkit.flash: shapes, storage cost model, policies, the neuron-cache kernel against
hand-computed numbers and against the real-row reference (dram.NeuronCache), the synthetic
generator and error model."""
import json

import numpy as np
import pytest

from simkit.errors import InputError
from simkit.flash import (FlashConfig, FlashSimulator, get_model, load_calibration,
                          opt_layer_fractions, parse_policy, synthetic_trace, with_error_model)
from simkit.flash import _kernels as K
from simkit.flash.activations import ActivationTrace, csr_to_masks, masks_to_csr
from simkit.flash.dram import NeuronCache, measure_management
from simkit.flash.storage import from_dict


# ---- shapes (REFERENCE.md 3.4) ------------------------------------------------------------------
def test_shapes_and_bundled_chunks():
    opt = get_model("opt-6.7b")
    assert opt.ffn_params == 4_294_967_296                 # "4.295 G params" (REFERENCE 3.1 [D])
    assert abs(opt.ffn_share - 0.646) < 0.002              # 64.6% [D]
    assert abs(opt.total_bytes / 1e9 - 13.4) < 0.15        # Table 2: 13.4 GB
    assert opt.neuron_bytes == 16 << 10                    # OPT fp16 bundled 16 KiB
    assert get_model("falcon-7b").neuron_bytes == 36352    # Falcon fp32 35.5 KiB
    assert get_model("llama-2-7b").neuron_bytes == 24 << 10
    assert abs(get_model("smollm2-135m").ffn_share - 0.59) < 0.01
    with pytest.raises(ValueError, match="model"):
        get_model("gpt-5")


# ---- storage ----------------------------------------------------------------------------------
def test_published_storage_preset():
    st = load_calibration("published-m1max")
    assert st.kind == "published"
    assert st.throughput(8192, 32) == pytest.approx(1.25e9)
    assert st.throughput(16384, 32) == pytest.approx(2.25e9)
    assert st.throughput(4096, 32) == pytest.approx(0.625e9)     # same IOPS below the table
    # per-request time 32 c / X is interpolated linearly in the chunk: 8 KiB 209.7 us, 16 KiB
    # 233.0 us -> 12 KiB 221.4 us
    t12 = (32 * 8192 / 1.25e9 + 32 * 16384 / 2.25e9) / 2
    assert st.throughput(12288, 32) == pytest.approx(32 * 12288 / t12)
    # above the table the fitted line carries on: 1 MiB reaches the 6.1 GB/s sequential figure
    assert st.throughput(1 << 20, 32) == pytest.approx(6.1e9)
    assert st.sequential_seconds(13.4e9) == pytest.approx(2.1967, rel=1e-3)


def test_storage_file_errors(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"format": "simkit-flash-storage", "sequential_bytes_per_s": 1e9,
                             "points": [{"chunk_bytes": 4096, "threads": 1}]}))
    with pytest.raises(InputError, match="bytes_per_s"):
        load_calibration(p)
    with pytest.raises(InputError, match="no such calibration"):
        load_calibration(tmp_path / "missing.json")
    doc = load_calibration("published-m1max").to_dict()
    assert from_dict(doc).throughput(8192, 32) == pytest.approx(1.25e9)


def test_policies():
    assert parse_policy("all").name == "hybrid+predictor+windowing+bundling"
    assert parse_policy("predictor-only").name == "hybrid+predictor"
    assert parse_policy("predictor+bundling").hybrid is False
    with pytest.raises(ValueError, match="windowing: needs predictor"):
        parse_policy("hybrid+windowing")
    with pytest.raises(ValueError, match="unknown 'lru'"):
        parse_policy("hybrid+lru")


# ---- the neuron cache ------------------------------------------------------------------------
SETS = [[0, 1], [1, 2], [3], [0, 3]]


def _trace(sets, neurons=4, name="hand"):
    masks = np.zeros((len(sets), neurons), bool)
    for t, s in enumerate(sets):
        masks[t, s] = True
    a = masks_to_csr(masks)
    return ActivationTrace(name, 1, neurons, len(sets), a, a)


def _run(sets, window, mm="preallocated"):
    tr = _trace(sets)
    ptr, idx = tr.active
    tok = np.zeros((len(sets), 7), np.int64)
    lay = np.zeros((1, 3), np.int64)
    peak = np.zeros(1, np.int64)
    tl = np.zeros((len(sets), 1), np.int32)
    K.window_run(ptr, idx, 1, 0, len(sets), window, np.zeros(1, np.int64), K.MM_PREALLOCATED
                 if mm == "preallocated" else K.MM_REALLOCATE,
                 np.full((1, 4), K.NEVER, np.int64), np.zeros((1, 4), np.int32),
                 np.zeros((1, 4), np.int32), np.zeros(1, np.int64), peak, tok, lay, tl)
    assert (tl[:, 0] == tok[:, 1]).all()             # one layer: its burst is the token's
    return tok, peak


def test_window_kernel_hand_computed():
    # window 2: t0 loads 0,1; t1 hits 1, loads 2; t2 loads 3, deletes 0 (row 2 -> row 0:
    # one copy); t3 loads 0 (last used at t0, outside), hits 3, deletes 2 (row 2 -> row 0, one
    # copy) and 1 (the last row: no copy)
    tok, peak = _run(SETS, 2)
    assert tok[:, 0].tolist() == [2, 2, 1, 2]        # needed
    assert tok[:, 1].tolist() == [2, 1, 1, 1]        # loaded
    assert tok[:, 2].tolist() == [0, 1, 0, 1]        # window hits
    assert tok[:, 4].tolist() == [0, 0, 1, 2]        # deleted
    assert tok[:, 5].tolist() == [0, 0, 1, 1]        # rows copied, swap-with-last
    assert tok[:, 6].tolist() == [2, 3, 3, 2]        # cache rows
    assert peak.tolist() == [3]
    tok, _ = _run(SETS, 2, "reallocate")
    assert tok[:, 5].tolist() == [0, 2, 2, 1]        # every kept row into a new matrix
    tok, _ = _run(SETS, 0)
    assert tok[:, 1].tolist() == [2, 2, 1, 2] and tok[:, 6].sum() == 0


@pytest.mark.parametrize("mode", ["preallocated", "reallocate"])
def test_kernel_matches_real_row_cache(mode):
    rng = np.random.default_rng(3)
    sets = [np.sort(rng.choice(64, rng.integers(1, 20), replace=False)) for _ in range(60)]
    tr = _trace([s.tolist() for s in sets], neurons=64)
    ptr, idx = tr.active
    tok = np.zeros((60, 7), np.int64)
    peak = np.zeros(1, np.int64)
    K.window_run(ptr, idx, 1, 0, 60, 3, np.zeros(1, np.int64),
                 K.MM_PREALLOCATED if mode == "preallocated" else K.MM_REALLOCATE,
                 np.full((1, 64), K.NEVER, np.int64), np.zeros((1, 64), np.int32),
                 np.zeros((1, 64), np.int32), np.zeros(1, np.int64), peak, tok,
                 np.zeros((1, 3), np.int64),
                 np.zeros((60, 1), np.int32))
    c = NeuronCache(64, 8, window=3, mode=mode, dtype=np.float32)
    loaded = []

    def fetch(ids):
        return np.repeat(ids[:, None].astype(np.float32), 8, axis=1)
    for t, s in enumerate(sets):
        loaded.append(len(c.step(t, s, fetch)))
        # every cached row holds its own neuron's data, and the cache is the window's union
        used = c.matrix[:c.used, 0].astype(int)
        assert used.tolist() == c.neuron[:c.used].tolist()
        assert c.cached() == set(np.concatenate(sets[max(0, t - 2):t + 1]).tolist())
    assert loaded == tok[:, 1].tolist()
    assert c.rows_copied == tok[:, 5].sum()
    assert c.peak == peak[0]
    m = measure_management(sets, 64, 8, 3, mode)
    assert m["rows_copied"] == c.rows_copied


def _scan_reference(sets, window, static, mode):
    """The neuron cache by a full pass over the rows every token (the kernel's semantics before
    it became incremental): per token loaded, deleted, copied, rows; and the final rows."""
    last, rows, out = {}, [], []
    for t, s in enumerate(sets):
        new = [i for i in s if i >= static and last.get(i, -10**9) < t - window]
        for i in s:
            if i >= static:
                last[i] = t
        deleted = copied = k = 0
        while k < len(rows):
            if last[rows[k]] <= t - window:
                deleted += 1
                tail = rows.pop()
                if k < len(rows):
                    rows[k] = tail
                    copied += mode == "preallocated"
            else:
                k += 1
        copied += len(rows) if mode == "reallocate" else 0
        rows += new
        out.append((len(new), deleted, copied, len(rows)))
    return out, rows


@pytest.mark.parametrize("mode", ["preallocated", "reallocate"])
@pytest.mark.parametrize("window,chunk", [(1, 1), (3, 2), (4, 7), (9, 100)])
def test_kernel_chunks_layers_static_match_full_scan(mode, window, chunk):
    # several layers, a static prefix, and chunks shorter than the window (the rows leaving at
    # a token come from a set fed in an earlier call)
    rng = np.random.default_rng(window * 10 + chunk)
    L, N, T, static = 3, 300, 40, 10            # caches of more than 64 rows
    masks = np.zeros((T, L, N), bool)
    cur = rng.random((L, N)) < 0.3
    for t in range(T):
        flip = rng.random((L, N)) < 0.3
        cur = np.where(flip, rng.random((L, N)) < 0.3, cur)
        masks[t] = cur
    ptr, idx = masks_to_csr(masks.reshape(T * L, N))
    tok = np.zeros((T, 7), np.int64)
    rows = np.zeros((L, N), np.int32)
    count = np.zeros(L, np.int64)
    tl = np.zeros((T, L), np.int32)
    state = (np.full((L, N), K.NEVER, np.int64), rows, np.zeros((L, N), np.int32), count,
             np.zeros(L, np.int64))
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        K.window_run(ptr, idx, L, t0, t1, window, np.full(L, static, np.int64),
                     K.MM_PREALLOCATED if mode == "preallocated" else K.MM_REALLOCATE,
                     *state, tok[t0:t1], np.zeros((L, 3), np.int64), tl[t0:t1])
    want = np.zeros((T, 4), np.int64)
    for l in range(L):
        ref, final = _scan_reference([np.flatnonzero(masks[t, l]) for t in range(T)], window,
                                     static, mode)
        assert tl[:, l].tolist() == [r[0] for r in ref]
        assert rows[l, :count[l]].tolist() == final          # same rows in the same places
        want += np.array(ref)
    assert (tok[:, [1, 4, 5, 6]] == want).all()
    assert tok[:, 4].sum() > 0 and tok[:, 5].sum() > 0


def test_prealloc_copies_less_than_reallocation():
    tr = synthetic_trace(1, 4096, 64, 0.1, stay_on=0.7, seed=2)
    sets = [tr.active[1][tr.active[0][t]:tr.active[0][t + 1]] for t in range(64)]
    pre = measure_management(sets, 4096, 64, 4, "preallocated")
    naive = measure_management(sets, 4096, 64, 4, "reallocate")
    assert pre["bytes_copied"] * 5 < naive["bytes_copied"]


# ---- generator and error model ----------------------------------------------------------------
def test_opt_layer_fractions_table6():
    f = opt_layer_fractions(32)
    # "LLM in a flash" Table 6: layer 1 1.56%, layer 16 2.66%, layer 32 5.36%, mean 3.30%
    assert f[[0, 15, 31]] == pytest.approx([0.0156, 0.0266, 0.0536])
    assert f.mean() == pytest.approx(0.0330)
    assert (np.diff(f) >= 0).all()


def test_synthetic_generator_hits_its_targets():
    tr = synthetic_trace(4, 8192, 400, [0.02, 0.03, 0.04, 0.05], stay_on=0.6, skew_sigma=1.0,
                         seed=5)
    assert tr.active_fraction_per_layer() == pytest.approx([0.02, 0.03, 0.04, 0.05], rel=0.05)
    assert tr.persistence() == pytest.approx(0.6, abs=0.02)
    p = with_error_model(tr, 0.05, 0.07, error_stay=0.5, seed=9)
    c = p.confusion()
    assert c["fn_rate"] == pytest.approx(0.05, abs=0.005)
    assert c["fp_rate"] == pytest.approx(0.07, abs=0.003)
    # REFERENCE 3.3: 5% FN and 7% FP at 3.3% active is ~3x over-prediction
    assert 2.0 < c["over_prediction"] < 3.5
    assert p.persistence("predicted") > 0.4
    m = csr_to_masks(tr.active, 8192)
    assert masks_to_csr(m)[0].tolist() == tr.active[0].tolist()


def test_combine_predicted_is_set_arithmetic():
    # markov_sets rows are sorted sets; predicted = (active - FN) | (FP - active), sorted
    rng = np.random.default_rng(11)
    L, N, T = 3, 200, 30
    sets = [K.markov_sets(rng.uniform(0, r, (L, N)), np.full((L, N), 0.5), T, s)
            for r, s in ((0.2, 1), (0.05, 2), (0.1, 3))]
    for ptr, idx in sets:
        for r in range(T * L):
            row = idx[ptr[r]:ptr[r + 1]]
            assert (np.diff(row) > 0).all()
    (ap, ai), (np_, ni), (fp, fi) = sets
    ptr, idx = K.combine_predicted(ap, ai, np_, ni, fp, fi, N)
    for r in range(T * L):
        a, fn, f = (set(x[p[r]:p[r + 1]].tolist()) for x, p in ((ai, ap), (ni, np_), (fi, fp)))
        assert idx[ptr[r]:ptr[r + 1]].tolist() == sorted((a - fn) | (f - a))


def test_simulator_checks_shapes():
    tr = synthetic_trace(2, 64, 4, 0.1, stay_on=0.5)
    with pytest.raises(ValueError, match="layers"):
        FlashSimulator(FlashConfig(model="opt-6.7b")).run(tr)
    with pytest.raises(ValueError, match="window_tokens"):
        FlashConfig(window_tokens=-1)


# ---- the command ------------------------------------------------------------------------------
def test_cli_flash_run_on_the_real_trace(tmp_path, capsys):
    from simkit.cli import main
    import pandas as pd

    out, per = tmp_path / "s.csv", tmp_path / "t.csv"
    assert main(["flash", "run", "--model", "smollm2-135m", "--policy", "windowing",
                 "--activations", "smollm2-135m", "--sparsity", "0.97", "--tokens", "32",
                 "--out", str(out), "--per-token", str(per)]) == 0
    s = pd.read_csv(out).iloc[0]
    t = pd.read_csv(per)
    assert s.param_policy == "hybrid+predictor+windowing" and s.tokens == 32 and len(t) == 32
    # unbundled: 3 reads of one 1152-byte row per loaded neuron (SwiGLU, fp16, d_model 576)
    assert (t.sparse_reads == 3 * t.loaded_neurons).all() and s.chunk_bytes == 1152
    assert t.flash_bytes.mean() == pytest.approx(s.flash_bytes_per_token)
    assert (t.loaded_neurons <= t.needed_neurons).all()
    assert t.loaded_neurons.iloc[0] == t.needed_neurons.iloc[0]     # nothing cached yet


def test_cli_flash_errors_are_one_line(tmp_path, capsys):
    from simkit.cli import main

    cases = [(["--model", "opt-6.7b", "--policy", "all", "--activations", "smollm2-135m"],
              "layers"),
             (["--model", "opt-6.7b", "--policy", "all", "--activations", "synthetic",
               "--out", str(tmp_path / "x.txt")], "unsupported format"),
             (["--model", "opt-6.7b", "--policy", "all", "--activations", "synthetic",
               "--fn-rate", "1.5"], "--fn-rate"),
             (["--model", "smollm2-135m", "--policy", "all", "--activations", "smollm2-135m",
               "--sparsity", "0.42"], "no sparsity 0.42"),
             (["--model", "opt-6.7b", "--policy", "hybrid+windowing", "--activations",
               "synthetic"], "windowing: needs predictor")]
    for args, text in cases:
        assert main(["flash", "run"] + args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0], err
    assert not list(tmp_path.iterdir())


def test_cli_synthetic_opt(tmp_path):
    """``--policy all`` runs every preset of the ladder (Table 2), one row each, on the same
    trace; a single policy gives one row."""
    import pandas as pd
    from simkit.cli import main
    from simkit.flash.policies import LADDER

    common = ["--model", "falcon-7b", "--activations", "synthetic", "--tokens", "8",
              "--sparsity", "0.95"]
    assert main(["flash", "run", "--policy", "all", *common, "--out", str(tmp_path / "a.csv"),
                 "--per-token", str(tmp_path / "t.csv")]) == 0
    df = pd.read_csv(tmp_path / "a.csv")
    assert df.param_policy.tolist() == [parse_policy(p).name for p in LADDER]
    assert len(set(df.param_policy)) == 5 and (df.tokens == 8).all()
    assert df.flash_bytes_per_token.iloc[0] > df.flash_bytes_per_token.iloc[-1]
    assert len(pd.read_csv(tmp_path / "t.csv")) == 5 * 8
    assert main(["flash", "run", "--policy", "windowing", *common,
                 "--out", str(tmp_path / "w.csv")]) == 0
    one = pd.read_csv(tmp_path / "w.csv")
    assert one.param_policy.tolist() == ["hybrid+predictor+windowing"]


def test_per_layer_and_region_add_up():
    tr = with_error_model(synthetic_trace(4, 512, 40, 0.05, 0.5, seed=4), 0.05, 0.07, 0.5)
    m = get_model("smollm2-135m")
    from simkit.flash.models import FlashModel
    tiny = FlashModel("tiny4", 4, 576, 512, 3, 9, 3, 100)
    st = FlashSimulator(FlashConfig(model=tiny, policy="all", window_tokens=3)).run(tr)
    pt, pl = st.per_token(), st.per_layer()
    assert pl.loaded_neurons.sum() == pt.loaded_neurons.sum()
    assert pl.copied_rows.sum() == pt.copied_rows.sum()
    assert (pl.prealloc_rows * 4 >= 0).all() and pl.prealloc_rows.sum() * tiny.neuron_bytes \
        == st.summary()["prealloc_cache_bytes"]
    r = st.region(10)
    assert r.n_tokens == 30 and r.per_token().loaded_neurons.sum() == \
        pt.loaded_neurons[10:].sum()
    assert r.to_frame().param_model.iloc[0] == "tiny4" and m.layers == 30


def test_config_from_toml(tmp_path):
    p = tmp_path / "f.toml"
    p.write_text('[flash]\nmodel = "llama-2-7b"\npolicy = "predictor+bundling"\n'
                 'window_tokens = 2\nthreads = 8\n')
    c = FlashConfig.from_toml(p)
    assert (c.model, c.policy_obj.name, c.window_tokens, c.threads) == \
        ("llama-2-7b", "predictor+bundling", 2, 8)
    p.write_text('model = "opt-6.7b"\nwindow = 3\n')
    with pytest.raises(InputError, match="unknown field.*window"):
        FlashConfig.from_toml(p)
    p.write_text('threads = 0\n')
    with pytest.raises(InputError, match="threads"):
        FlashConfig.from_toml(p)


def _prefix(tr, n):
    """The first ``n`` tokens of an activation trace (same name)."""
    L = tr.layers

    def cut(s):
        ptr, idx = s
        return ptr[:n * L + 1].copy(), idx[:ptr[n * L]].copy()
    return ActivationTrace(tr.name, L, tr.neurons, n, cut(tr.active),
                           None if tr.predicted is None else cut(tr.predicted))


def test_stats_subtract_a_warm_up_prefix():
    from simkit.flash.models import FlashModel
    tr = with_error_model(synthetic_trace(4, 512, 30, 0.05, 0.5, seed=5), 0.05, 0.07, 0.5)
    tiny = FlashModel("tiny4", 4, 576, 512, 3, 9, 3, 100)
    sim = FlashSimulator(FlashConfig(model=tiny, policy="all", window_tokens=3))
    full, warm = sim.run(tr), sim.run(_prefix(tr, 8))
    roi = full - warm
    assert roi.n_tokens == 22
    # needed neurons per layer after the warm-up, counted from the predicted sets themselves
    ptr = tr.predicted[0]
    needed = [sum(int(ptr[t * 4 + lay + 1] - ptr[t * 4 + lay]) for t in range(8, 30))
              for lay in range(4)]
    assert roi.per_layer().needed_neurons.tolist() == needed
    assert roi.per_token().loaded_neurons.sum() == roi.per_layer().loaded_neurons.sum()
    assert (roi.peak_rows == full.peak_rows).all()          # a peak is a state, kept
    assert roi.to_frame().param_model.iloc[0] == "tiny4"
    with pytest.raises(ValueError, match="prefix"):
        warm - full
    other = FlashSimulator(FlashConfig(model=tiny, policy="all", window_tokens=2)).run(tr)
    with pytest.raises(ValueError, match="config"):
        full - other
