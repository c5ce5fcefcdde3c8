"""`simkit cache` / `simkit reproduce` on the command line, and pinned results on shipped traces.

The pins were produced by this kernel after it matched pycachesim (LRU levels) and the Python
reference model (every policy); they guard against silent changes of semantics.
"""
import numpy as np
import pandas as pd
import pytest

from simkit.cache import Hierarchy
from simkit.cli import main
from simkit.trace.catalog import find_trace

# (level, hits, misses, writebacks) per level; memory reads, memory writes; instructions
# (re-pinned when victima-baseline's L2 moved from srrip to srrip-fp, Sniper's SRRIP)
PINS = {
    "gups": ([("L1D", 3000986, 229783, 229271), ("L2", 52475, 177308, 144538),
              ("LLC", 16292, 161016, 131492)], 161016, 131492, 2769231),
    "bfs": ([("L1D", 2865764, 226492, 95535), ("L2", 178291, 48201, 2834),
             ("LLC", 638, 47563, 1064)], 47563, 1064, 2185815),
    "matmul": ([("L1D", 3221716, 44173, 1296), ("L2", 41783, 2390, 0),
                ("LLC", 0, 2390, 0)], 2390, 0, 2194307),
    "embedding": ([("L1D", 2980842, 19199, 625), ("L2", 6391, 12808, 0),
                   ("LLC", 0, 12808, 0)], 12808, 0, 2001027),
}


@pytest.mark.parametrize("name", sorted(PINS))
def test_pinned_victima_baseline_hierarchy_on_shipped_traces(name):
    levels, reads, writes, instructions = PINS[name]
    s = Hierarchy("victima-baseline").run(find_trace(name))
    assert [(lv.name, lv.hits, lv.misses, lv.writebacks) for lv in s.levels] == levels
    assert (s.memory_reads, s.memory_writes, s.instructions) == (reads, writes, instructions)


def test_cache_run_writes_table(tmp_path, capsys):
    out = tmp_path / "gups.csv"
    rc = main(["cache", "run", "--trace", "gups", "--preset", "zen3", "--max-records", "200000",
               "--out", str(out)])
    assert rc == 0
    df = pd.read_csv(out)
    assert list(df["level"]) == ["L1", "L2", "L3"]
    lib = Hierarchy("zen3").run(find_trace("gups"), max_records=200_000).to_frame()
    assert np.array_equal(df["misses"].to_numpy(), lib["misses"].to_numpy())
    assert "L1" in capsys.readouterr().out


def test_cache_sweep_and_toml(tmp_path):
    toml = tmp_path / "h.toml"
    toml.write_text('[[levels]]\nsize_bytes = "16KiB"\nways = 4\npolicy = "plru"\n')
    out = tmp_path / "s.json"
    assert main(["cache", "run", "--trace", "bfs", "--config", str(toml), "--max-records",
                 "50000"]) == 0
    assert main(["cache", "sweep", "--trace", "bfs", "--sizes", "8KiB,64KiB", "--policies",
                 "lru,drrip", "--max-records", "100000", "--out", str(out)]) == 0
    df = pd.read_json(out)
    assert len(df) == 4
    lru = df[df.param_policy == "lru"].sort_values("param_size_bytes")
    assert lru.miss_rate.iloc[0] > lru.miss_rate.iloc[1]       # bigger cache, fewer misses


@pytest.mark.parametrize("argv,needle", [
    (["cache", "run", "--trace", "no/such.skt"], "no/such.skt"),
    (["cache", "run", "--trace", "gups", "--preset", "nope"], "preset"),
    (["cache", "run", "--trace", "gups", "--size", "3000"], "size_bytes"),
    (["cache", "run", "--trace", "gups", "--policy", "lfu", "--size", "32KiB"], "policy"),
    (["reproduce", "no-such-experiment"], "no-such-experiment"),
])
def test_bad_input_is_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simkit: error:") and needle in err and "\n" not in err


def test_bad_out_suffix_fails_before_work_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "x.txt"
    assert main(["cache", "run", "--trace", "gups", "--out", str(out)]) == 2
    assert not out.exists() and not list(tmp_path.iterdir())
    assert "--out" in capsys.readouterr().err


def test_truncated_trace_and_bad_toml(tmp_path, capsys):
    src = find_trace("matmul")
    from simkit.trace.format import open_trace, write_trace
    plain = tmp_path / "m.skt"
    write_trace(plain, open_trace(src).read()[:1000])
    cut = tmp_path / "cut.skt"
    cut.write_bytes(plain.read_bytes()[:-40])
    assert main(["cache", "run", "--trace", str(cut)]) == 2
    assert "truncated" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[[levels]]\nsize_bytes = "32KiB"\nwayz = 8\n')
    assert main(["cache", "run", "--trace", str(plain), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "wayz" in err and str(bad) in err


def test_tlb_run_and_errors(tmp_path, capsys):
    out = tmp_path / "t.parquet"
    assert main(["tlb", "run", "--trace", "gups", "--preset", "zen3", "--max-records", "300000",
                 "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert df.loc[0, "records"] == 300_000 and df.loc[0, "walks"] > 0
    assert main(["tlb", "run", "--trace", "gups", "--huge-fraction", "1.5"]) == 2
    assert "--huge-fraction" in capsys.readouterr().err
