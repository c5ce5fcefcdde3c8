"""Trace handling of the serving engine (issue 15 item 6): --rate vs --time-scale on
timestamped traces, Vidur's trace-replay format, integral float token counts, and requests
longer than the context counted and reported."""
import pandas as pd
import pytest

from simkit.errors import InputError
from simkit.kvpaging.requests import load_requests
from simkit.kvpaging.workload import load_trace, token_count
from tests.test_kvpaging_engine import AZURE, BASE_ARGS, cli


def test_token_counts():
    assert [token_count(v) for v in ("7564", " 7564.0 ", 7564.0, 12, "0")] == [7564, 7564, 7564, 12, 0]
    assert [token_count(v) for v in ("7564.5", "-1", "1e400", "nan", "x", -3.0, True, None)] \
        == [None] * 8


def test_float_counts_accepted_when_integral(tmp_path):
    az = tmp_path / "a.csv"
    az.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                  "2023-11-16 18:15:46.0,7564.0,12.0\n2023-11-16 18:15:47.5,10,3\n")
    assert [(r.prompt, r.output) for r in load_trace(az)] == [(7564, 12), (10, 3)]
    assert load_requests(az).tolist() == [[7564, 12], [10, 3]]
    az.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.0,7564.5,12\n")
    with pytest.raises(InputError, match="line 2: ContextTokens '7564.5'"):
        load_trace(az)
    with pytest.raises(InputError, match="line 2: ContextTokens '7564.5'"):
        load_requests(az)
    mc = tmp_path / "m.jsonl"
    mc.write_text('{"timestamp": 0, "input_length": 600.0, "output_length": 3}\n')
    assert [(r.prompt, r.output) for r in load_trace(mc)] == [(600, 3)]
    mc.write_text('{"timestamp": 0, "input_length": 600.5, "output_length": 3}\n')
    with pytest.raises(InputError, match="input_length 600.5 is not a non-negative integer"):
        load_trace(mc)


def test_time_scale_and_rate(tmp_path):
    """Vidur's time_scale_factor multiplies arrival times (trace_replay_request_generator.py:
    ``Time * time_scale_factor``); --rate applies only to traces without times."""
    a = [r.arrival_s for r in load_trace(AZURE, limit=5)]
    half = [r.arrival_s for r in load_trace(AZURE, limit=5, time_scale=0.5)]
    assert half == pytest.approx([x * 0.5 for x in a]) and a[1] > 0
    with pytest.raises(InputError, match="--rate: .* has arrival times.*--time-scale"):
        load_trace(AZURE, rate=2.0)
    with pytest.raises(InputError, match="--rate: .*--time-scale"):
        load_trace("mooncake-conv", limit=2, rate=2.0)
    v = tmp_path / "v.csv"
    v.write_text("num_prefill_tokens,num_decode_tokens\n10,5\n")
    with pytest.raises(InputError, match="--time-scale: v.csv has no arrival times"):
        load_trace(v, rate=1.0, time_scale=2.0)
    with pytest.raises(InputError, match="--time-scale: must be"):
        load_trace(AZURE, time_scale=0.0)
    # Vidur trace-replay CSV: Time in seconds, PromptTokenCount, CompletionTokenCount
    t = tmp_path / "replay.csv"
    t.write_text("Date,Time,PromptTokenCount,CompletionTokenCount\n"
                 "2023-11-16,3.5,100,20\n2023-11-16,1.0,50.0,10\n")
    rs = list(load_trace(t, time_scale=2.0))
    assert [(r.arrival_s, r.prompt, r.output) for r in rs] == [(0.0, 50, 10), (5.0, 100, 20)]


def test_cli_rate_on_timestamped_trace_points_to_time_scale(tmp_path, capsys):
    rc, out, err = cli(capsys, *BASE_ARGS, "--rate", "5")
    assert rc == 2 and err.startswith("simkit: error: --rate:") and "--time-scale" in err
    assert err.count("\n") == 1
    rc, out, err = cli(capsys, *BASE_ARGS, "--time-scale", "-1")
    assert rc == 2 and "--time-scale: must be" in err
    rc, out, err = cli(capsys, *BASE_ARGS, "--time-scale", "0.5",
                       "--out", str(tmp_path / "o.csv"))
    assert rc == 0, err
    fast = pd.read_csv(tmp_path / "o.csv")
    cli(capsys, *BASE_ARGS, "--out", str(tmp_path / "p.csv"))
    slow = pd.read_csv(tmp_path / "p.csv")
    assert fast.requests_finished[0] == slow.requests_finished[0] == 40
    assert fast.duration_s[0] < slow.duration_s[0]


def test_cli_requests_over_the_context(tmp_path, capsys):
    """Llama-2-7B's context is 4096 tokens: a 5000-token prompt is rejected, counted and
    reported on stderr; a run where every request is rejected prints no nan."""
    reqs = tmp_path / "r.csv"
    reqs.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2023-11-16 18:15:46.0,5000,10\n2023-11-16 18:15:47.0,100,10\n"
                    "2023-11-16 18:15:48.0,4000,500\n")
    args = ["--trace", str(reqs), "--model", "llama-2-7b", "--gpu", "A100-80GB",
            "--manager", "paged-16"]
    rc, out, err = cli(capsys, *args, "--out", str(tmp_path / "o.csv"))
    assert rc == 0
    assert "simkit: warning: 1 of 3 requests" in err and "1 outputs were cut" in err
    o = pd.read_csv(tmp_path / "o.csv")
    assert (o.requests_over_context[0], o.requests_rejected[0], o.requests_truncated[0],
            o.requests_finished[0]) == (1, 1, 1, 2)
    reqs.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2023-11-16 18:15:46.0,5000,10\n2023-11-16 18:15:47.0,9000,10\n")
    rc, out, err = cli(capsys, *args, "--out", str(tmp_path / "all.csv"))
    assert rc == 0 and "2 of 2 requests" in err
    assert "nan" not in out.lower()
    a = pd.read_csv(tmp_path / "all.csv")
    assert a.throughput_tokens_per_s[0] == 0 and a.requests_over_context[0] == 2
