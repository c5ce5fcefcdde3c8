"""simkit bench storage: a tiny sweep on a small file (structure and sane numbers), the
calibration it writes driving the flash cost model, and the simulator's read schedule executed
on a real file."""
import json

import numpy as np
import pytest

from simkit.bench import storage as S
from simkit.calibrate.storage import schedule_offsets, validate_schedule
from simkit.cli import main
from simkit.flash import FlashConfig, synthetic_trace, with_error_model
from simkit.flash.models import FlashModel
from simkit.flash.simulate import FlashSimulator, read_schedule
from simkit.flash.storage import from_dict


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    path = tmp_path_factory.mktemp("st") / "f.bin"
    return S.measure_storage(path, 16 << 20, chunks=(4096, 65536), threads=(1, 4),
                             seconds=0.1)


def test_sweep_structure_and_sane_numbers(sweep):
    df = sweep
    assert list(df[df["mode"] == "random"][["chunk_bytes", "threads"]].itertuples(
        index=False, name=None)) == [(4096, 1), (4096, 4), (65536, 1), (65536, 4)]
    assert (df["mode"] == "sequential").sum() == 1
    assert (df.reads > 0).all()
    # bytes/s is reads x chunk over the wall time; iops x chunk gives it back
    assert np.allclose(df.iops * df.chunk_bytes, df.bytes_per_s)
    assert (df.bytes_per_s > 1e6).all() and (df.bytes_per_s < 1e12).all()
    assert (df.lat_us_median > 0).all() and (df.lat_us_p99 >= df.lat_us_median).all()
    assert df.attrs["machine"]["cpu_model"] is not None
    if not df.attrs["direct"]:
        assert "O_DIRECT" in df.attrs["note"]


def test_calibration_feeds_the_cost_model(sweep):
    doc = S.calibration(sweep)
    assert doc["kind"] == "measured" and len(doc["points"]) == 4
    cal = from_dict(json.loads(json.dumps(doc, default=str)))
    r = sweep[(sweep.chunk_bytes == 65536) & (sweep.threads == 4)].bytes_per_s.iloc[0]
    assert cal.throughput(65536, 4) == pytest.approx(min(r, cal.sequential_bytes_per_s))


def test_schedule_offsets_layouts():
    m = FlashModel("tiny", 2, 2048, 8, 2, 1, 1, 10, 2)     # 4 KiB vectors, 8 KiB neurons
    loads = (np.array([0, 1]), np.array([3, 5]))
    off, chunk = schedule_offsets(loads, m, bundled=True)
    assert chunk == 8192 and off.tolist() == [3 * 8192, (8 + 5) * 8192]
    off, chunk = schedule_offsets(loads, m, bundled=False)
    # layer 0: up region at 0, down region at 8 vectors; layer 1 starts at 16 vectors
    assert chunk == 4096 and off.tolist() == [3 * 4096, 11 * 4096, 21 * 4096, 29 * 4096]


def test_validation_on_a_real_file(tmp_path, sweep):
    """Issue 16 item 7: schedules the calibration did not see (per-layer bursts, an 8 KiB
    bundled chunk between the grid's 4 and 64 KiB), repeated, with the spread reported."""
    m = FlashModel("tiny", 4, 2048, 512, 2, 1, 1, 10, 2)   # 4 x 512 neurons, 16 MiB file
    tr = with_error_model(synthetic_trace(4, 512, 12, 0.05, 0.6, seed=1), 0.05, 0.07, 0.6)
    cal = from_dict(S.calibration(sweep))
    cfg = FlashConfig(model=m, policy="all", window_tokens=3, threads=4, storage=cal)
    sched = read_schedule(cfg, tr, m)
    stats = FlashSimulator(cfg).run(tr)
    assert [len(s[0]) for s in sched] == stats.tokens[:, 1].tolist()
    # the schedule's per-layer bursts are the simulator's
    assert [np.bincount(s[0], minlength=4).tolist() for s in sched] == \
        stats.layer_loads.tolist()
    out = {}
    for policy, bursts in (("all", "layer"), ("all", "token"), ("windowing", "layer")):
        per_tok, summ = validate_schedule(tr, m, policy, cal, tmp_path / "ffn.bin", window=3,
                                          threads=4, io_bursts=bursts, repeats=3)
        out[policy, bursts] = summ
        assert len(per_tok) == 3 * 12 and summ["reads"] == per_tok.reads.sum() / 3 > 0
        assert summ["chunk_bytes"] == (8192 if policy == "all" else 4096)
        want = [1] * 12 if bursts == "token" else [len(set(s[0].tolist())) for s in sched]
        if policy == "all":
            assert per_tok.bursts.tolist() == want * 3
        assert summ["error_pct_min"] <= summ["error_pct"] <= summ["error_pct_max"]
        assert summ["measured_s_min"] <= summ["measured_s"] <= summ["measured_s_max"]
        # what holds on every run of this shared VM's virtual disk, calibrated for 0.1 s a
        # point (the experiment holds larger schedules to the +-20% bar and reports the
        # spread): the prediction within a factor 3 of the measurement
        assert 1 / 3 < 1 + summ["error_pct"] / 100 < 3, summ
    # the same bytes in per-layer bursts cost more than in one burst per token, predicted
    # (whole waves, one burst overhead per layer) and measured
    lay, tok = out["all", "layer"], out["all", "token"]
    assert lay["bytes"] == tok["bytes"]
    assert lay["predicted_s"] > tok["predicted_s"]


def test_cli_bad_input(tmp_path, capsys):
    assert main(["bench", "storage", "--file", str(tmp_path / "x.bin"), "--size", "8KiB",
                 "--chunks", "64k"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--size" in err[0]
    assert main(["bench", "storage", "--file", str(tmp_path / "no" / "x.bin")]) == 2
    assert not (tmp_path / "x.bin").exists()


def test_flash_run_reads_a_measured_calibration(tmp_path, sweep, capsys):
    import pandas as pd
    cal = tmp_path / "disk.json"
    S.write_calibration(sweep, cal)
    out = tmp_path / "s.csv"
    assert main(["flash", "run", "--model", "smollm2-135m", "--policy", "bundling",
                 "--activations", "smollm2-135m", "--tokens", "8", "--threads", "4", "--storage", str(cal),
                 "--io-bursts", "token", "--out", str(out), "--per-token",
                 str(tmp_path / "t.csv")]) == 0
    s = pd.read_csv(out).iloc[0]
    c = from_dict(S.calibration(sweep))
    tput = c.throughput(3456, 4)   # bundled SmolLM2 neuron
    assert s.throughput_bytes_per_s == pytest.approx(tput)
    # one burst per token: whole waves of 4 reads plus the mean excess measured on bursts of
    # 1, 4 and 16 waves at 4 threads (at least 0)
    n = pd.read_csv(tmp_path / "t.csv").loaded_neurons.to_numpy()
    w = -(-n // 4)
    excess = max(np.mean(list(c.burst_excess_s[4].values())), 0.0)
    io = np.maximum(w * c.request_seconds(3456, 4), n * 3456 / c.sequential_bytes_per_s) + excess
    assert s.io_ms_per_token == pytest.approx(1e3 * io.mean())
    assert s.io_ms_per_token >= 1e3 * s.flash_bytes_per_token / tput


def test_cli_leaves_no_files_behind(tmp_path, monkeypatch, capsys):
    """Without --file, the bench file lives in a temporary directory under --workdir (default:
    the current directory) and is removed afterwards; a --file given is the user's and kept."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    small = ["--size", "1MiB", "--chunks", "4k", "--threads", "1", "--seconds", "0.02"]
    assert main(["bench", "storage", *small]) == 0
    assert list(work.iterdir()) == []
    other = tmp_path / "other"
    other.mkdir()
    assert main(["bench", "storage", "--workdir", str(other), *small]) == 0
    assert list(other.iterdir()) == [] and list(work.iterdir()) == []
    assert main(["bench", "storage", "--file", str(work / "mine.bin"), *small]) == 0
    assert [p.name for p in work.iterdir()] == ["mine.bin"]
    capsys.readouterr()
    assert main(["bench", "storage", "--workdir", str(tmp_path / "nope"), *small]) == 2
    assert "--workdir" in capsys.readouterr().err
