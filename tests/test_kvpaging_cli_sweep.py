"""`simkit kv prefix-curve` and the kv sweep keys (issue 15, item 8)."""
import csv
import json

import pandas as pd
import pytest

from simkit.errors import InputError
from simkit.sweep import Grid, load_results, run_sweep
from simkit.trace.catalog import traces_dir

# blocks of 4 tokens; each request lists ceil(input_length / 4) chained hashes
HAND = [(8, [1, 2]), (10, [1, 2, 3]), (4, [5]), (8, [1, 9])]


def _write(path, reqs):
    path.write_text("".join(json.dumps({"timestamp": i, "input_length": n, "output_length": 1,
                                        "hash_ids": ids}) + "\n"
                            for i, (n, ids) in enumerate(reqs)))
    return path


def _cli(capsys, *argv):
    from simkit.cli import main

    rc = main(["kv", "prefix-curve", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_prefix_curve_by_hand(tmp_path, capsys):
    # unbounded: r2 reuses 1,2; r4 reuses 1 -> 3 of 8 blocks, 8 + 4 of 30 prompt tokens.
    # LRU of 2 blocks keeps {1, 2} for r2 and {1, 5} for r4: the same 3. LRU of 1 block keeps
    # only the head of the last chain: r2 reuses 1 (4 tokens), r4 finds 5 -> nothing. 0: none
    trace = _write(tmp_path / "t.jsonl", HAND)
    rc, out, err = _cli(capsys, str(trace), "--block", "4", "--cache-blocks", "2,0,1",
                        "--out", str(tmp_path / "c.csv"))
    assert rc == 0, err
    df = pd.read_csv(tmp_path / "c.csv")
    assert df.cache_blocks.tolist() == [0, 1, 2, float("inf")]
    assert df.hit_blocks.tolist() == [0, 1, 3, 3] and (df.blocks == 8).all()
    assert df.token_hit_rate.tolist() == pytest.approx([0, 4 / 30, 12 / 30, 12 / 30])
    assert (df.requests == 4).all() and "wrote" in out


def test_prefix_curve_mooncake_anchor(capsys, tmp_path):
    """REFERENCE.md 2.4 [D]: 36.6% of prefix blocks reused with an unbounded cache."""
    rc, out, err = _cli(capsys, "mooncake-conv", "--cache-blocks", "1000",
                        "--out", str(tmp_path / "m.json"))
    assert rc == 0, err
    rows = json.loads((tmp_path / "m.json").read_text())
    assert rows[-1]["block_hit_rate"] == pytest.approx(0.366, abs=0.0006)
    assert rows[0]["block_hit_rate"] < rows[-1]["block_hit_rate"]


@pytest.mark.parametrize("argv,message", [
    (("--block", "3"), "request 1: 2 hashes for input_length 8, not ceil(8 / --block 3) = 3"),
    (("--block", "0"), "--block: must be > 0"),
    (("--cache-blocks", "1,,2"), "--cache-blocks: empty size"),
    (("--cache-blocks", "x"), "--cache-blocks: bad value"),
    (("--out", "{d}/c.txt"), "--out"),
    (("--trace-is", "{d}/r.csv"), "prefix-curve reads JSON lines"),
    (("--trace-is", "{d}/bad.jsonl"), "line 1: not a request record"),
    (("--trace-is", "{d}/none.jsonl"), "no such file"),
])
def test_prefix_curve_errors(tmp_path, capsys, argv, message):
    trace = _write(tmp_path / "t.jsonl", HAND)
    (tmp_path / "r.csv").write_text("ContextTokens,GeneratedTokens\n5,5\n")
    (tmp_path / "bad.jsonl").write_text('{"input_length": 4}\n')
    argv = [a.format(d=tmp_path) for a in argv]
    if argv[0] == "--trace-is":
        args = [argv[1], "--block", "4"]
    else:
        args = [str(trace), "--block", "4", *argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out, err = _cli(capsys, *args)
    assert rc == 2
    assert err.startswith("simkit: error:") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _over_context(n, limit):
    """Requests among the first ``n`` of the shipped Azure conv excerpt whose prompt is
    ``limit`` tokens or more (read with csv, not simkit)."""
    import lzma

    d = traces_dir() / "llm-serving"
    path = next(p for p in (d / "AzureLLMInferenceTrace_conv.csv",
                            d / "AzureLLMInferenceTrace_conv.csv.xz",
                            d / "AzureLLMInferenceTrace_conv_first1000.csv") if p.exists())
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt") as f:
        rows = list(csv.DictReader(f))[:n]
    return sum(int(float(r["ContextTokens"])) >= limit for r in rows)


def test_kv_sweep_keys(tmp_path):
    g = Grid.from_dict({
        "name": "kvk", "simulator": "kv", "traces": ["azure-conv"], "max_records": 20,
        "base": {"model": "Llama-3-8B", "gpu": "A100-80GB", "manager": "vattention-64KiB",
                 "paged_kernel": "fa2-paged", "calibration": "published",
                 "max_num_batched_tokens": 8192},
        "grid": {"max_context": [1024, 8192], "manager.lookahead_tokens": [1, 64]}})
    r = run_sweep(g, tmp_path, workers=0, progress=False)
    assert (r.done, r.failed) == (4, 0), r.errors
    df = load_results(tmp_path)
    assert (df.param_paged_kernel == "fa2-paged").all()
    assert (df.param_max_num_batched_tokens == 8192).all()
    short = df[df.grid_max_context == "1024"]
    assert (short.requests_over_context == _over_context(20, 1024)).all()
    assert (df[df.grid_max_context == "8192"].requests_over_context
            == _over_context(20, 8192)).all()
    # a 64-token lookahead keeps more pages mapped ahead (reserved) than a 1-token one
    res = df.set_index(["grid_max_context", "grid_manager_lookahead_tokens"]).mean_reserved_bytes
    assert res[("8192", "64")] > res[("8192", "1")]


@pytest.mark.parametrize("point,message", [
    ({"manager.nope": 1}, "manager.nope: not a field of VAttentionConfig"),
    ({"manager.page_bytes": 1000}, "page_bytes: must be a power of two"),
    ({"paged_kernel": "cudnn"}, "paged_kernel: unknown kernel 'cudnn'"),
    ({"calibration": "/no/such.json"}, "calibration:"),
    ({"max_context": 0}, "max_context: expected an integer >= 2"),
    ({"beam_width": 2, "parallel_samples": 2}, "exclude each other"),
    ({"max_num_batched_tokens": -1}, "max_num_batched_tokens: must be an integer >= 0"),
])
def test_kv_sweep_key_errors(point, message):
    g = Grid.from_dict({"name": "bad", "simulator": "kv", "traces": ["azure-conv"],
                        "base": {"manager": "vattention-64KiB"}, "grid": point})
    with pytest.raises(InputError, match=message):
        g.check()
