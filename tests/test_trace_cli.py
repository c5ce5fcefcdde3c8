"""`simkit trace ...` through simkit.cli.main: outputs, numbers, and one-line errors (exit 2)."""
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from simkit.cli import main
from simkit.trace.catalog import find_trace
from simkit.trace.format import Op, make_records, open_trace, write_trace
from test_trace_lackey import SAMPLE


def one_line_error(capsys, argv, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("simkit: error: ") and err.count("\n") == 1, err
    for f in fragments:
        assert f in err, err
    return err


def test_module_help_works():
    out = subprocess.run([sys.executable, "-m", "simkit", "trace", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    for sub in ("list", "info", "convert", "gen", "capture"):
        assert sub in out.stdout


def test_list(capsys, tmp_path):
    assert main(["trace", "list", "--out", str(tmp_path / "l.csv")]) == 0
    out = capsys.readouterr().out
    for name in ("gups", "bfs", "matmul", "embedding"):
        assert name in out
    df = pd.read_csv(tmp_path / "l.csv")
    assert df["records"].tolist() == [3_000_000] * 4 + [2_878_079, 3_148_196] + [200_000] * 6
    assert df["name"].tolist()[6:] == ["paper-bfs", "paper-pagerank", "paper-xsbench",
                                       "paper-gups", "paper-dlrm", "paper-llm-decode"]


def test_info_numbers(capsys, tmp_path):
    p = tmp_path / "t.skt"
    write_trace(p, make_records([0x1000, 0x1008, 0x1040, 0x5000, 0x5FFC],
                                op=[Op.LOAD, Op.STORE, Op.IFETCH, Op.MODIFY, Op.LOAD], size=8))
    assert main(["trace", "info", str(p), "--out", str(tmp_path / "i.json")]) == 0
    out = capsys.readouterr().out
    row = pd.read_json(tmp_path / "i.json").iloc[0]
    assert (row["records"], row["load"], row["store"], row["ifetch"], row["modify"]) \
        == (5, 2, 1, 1, 1)
    # the last access 0x5ffc..0x6003 crosses into page 0x6 and line 0x180
    assert (row["addr_min"], row["addr_max"]) == ("0x1000", "0x6003")
    assert (row["pages_4k"], row["lines_64b"]) == (3, 5)
    assert "pages_4k" in out and "0x6003" in out


def test_info_on_a_shipped_trace_by_name(capsys):
    assert main(["trace", "info", "matmul"]) == 0
    out = capsys.readouterr().out
    assert "3000000" in out and "2194307" in out


def test_info_bad_input_is_one_line(capsys, tmp_path):
    one_line_error(capsys, ["trace", "info", "gups", "--out", str(tmp_path / "x.txt")],
                   "unsupported format")
    one_line_error(capsys, ["trace", "info", str(tmp_path / "no.skt")], "no such file")
    one_line_error(capsys, ["trace", "info", "nosuchtrace"], "unknown trace 'nosuchtrace'")
    bad = tmp_path / "bad.skt"
    bad.write_bytes(b"not a trace at all")
    one_line_error(capsys, ["trace", "info", str(bad)], "not a simkit trace")


def test_convert_lackey_to_skt_to_din_and_back(capsys, tmp_path):
    src = tmp_path / "run.lackey"
    src.write_text(SAMPLE)
    assert main(["trace", "convert", str(src), str(tmp_path / "a.skt.gz")]) == 0
    assert "10 records, 6 instructions" in capsys.readouterr().out
    assert main(["trace", "convert", str(tmp_path / "a.skt.gz"), str(tmp_path / "a.din")]) == 0
    lines = (tmp_path / "a.din").read_text().splitlines()
    assert lines[:3] == ["2 4000000", "0 1ffefffd48", "2 4000003"]
    assert len(lines) == 11                                   # the M became two lines
    assert main(["trace", "convert", str(tmp_path / "a.din"), str(tmp_path / "b.skt")]) == 0
    back = np.asarray(open_trace(tmp_path / "b.skt").read())
    assert back["addr"].tolist()[:2] == [0x4000000, 0x1FFEFFFD48] and len(back) == 11
    # content sniffing: a lackey file without a telling name, and data-only import options
    (tmp_path / "run.txt").write_text(SAMPLE)
    assert main(["trace", "convert", str(tmp_path / "run.txt"), str(tmp_path / "c.skt"),
                 "--no-ifetch", "--max-records", "3"]) == 0
    c = open_trace(tmp_path / "c.skt").meta
    assert (c.records, c.instructions, c.ops["ifetch"]) == (3, 3, 0)   # L | S after 2 | M
    # lackey straight to din goes through a temporary trace that is removed afterwards
    assert main(["trace", "convert", str(tmp_path / "run.txt"), str(tmp_path / "d.din")]) == 0
    assert (tmp_path / "d.din").read_text() == (tmp_path / "a.din").read_text()
    assert not list(tmp_path.glob(".convert-*"))


def test_convert_bad_input_is_one_line_and_leaves_nothing(capsys, tmp_path):
    src = tmp_path / "bad.lackey"
    src.write_text(SAMPLE.replace(" S 1ffefffd40,8", " S 1ffefffd40;8"))
    one_line_error(capsys, ["trace", "convert", str(src), str(tmp_path / "o.skt")],
                   f"{src}:7: expected 'address,size'")
    one_line_error(capsys, ["trace", "convert", str(src), str(tmp_path / "o.din")],
                   f"{src}:7:")
    one_line_error(capsys, ["trace", "convert", str(src), str(tmp_path / "o.txt")],
                   "output must end in")
    one_line_error(capsys, ["trace", "convert", str(tmp_path / "none"), str(tmp_path / "o.skt")],
                   "no such file")
    one_line_error(capsys, ["trace", "convert", str(find_trace("gups")), str(tmp_path / "o.skt"),
                            "--skip", "5"], "--skip and --no-ifetch apply to lackey")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.lackey"]


def test_gen(capsys, tmp_path):
    dst = tmp_path / "z.skt"
    assert main(["trace", "gen", "zipf", str(dst), "--n", "10000", "--footprint", "1MiB",
                 "--alpha", "1.2", "--seed", "7"]) == 0
    t = open_trace(dst)
    r = np.asarray(t.read())
    assert len(r) == 10000 and t.meta.producer == "synth.zipf"
    assert t.meta.extra["params"] == {"n": 10000, "footprint_bytes": 1 << 20, "alpha": 1.2,
                                      "seed": 7}
    assert int(r["addr"].max()) < 0x10000000 + (1 << 20)
    one_line_error(capsys, ["trace", "gen", "uniform", str(dst), "--n", "10", "--footprint",
                            "4k", "--alpha", "1"], "--alpha does not apply to uniform")
    one_line_error(capsys, ["trace", "gen", "uniform", str(dst), "--n", "10", "--footprint",
                            "lots"], "--footprint")
    one_line_error(capsys, ["trace", "gen", "uniform", str(tmp_path / "u.csv"), "--n", "10",
                            "--footprint", "4k"], "output must end in")


def test_capture_without_a_command(capsys, tmp_path):
    one_line_error(capsys, ["trace", "capture", "-o", str(tmp_path / "c.skt")],
                   "no command given")


@pytest.mark.valgrind
@pytest.mark.skipif(shutil.which("valgrind") is None,
                    reason="valgrind not on PATH (apt-get install -y valgrind)")
def test_capture_true(capsys, tmp_path):
    dst = tmp_path / "true.skt"
    assert main(["trace", "capture", "--max-records", "5000", "--no-ifetch", "-o", str(dst),
                 "--", "/bin/true"]) == 0
    assert "5000 records" in capsys.readouterr().out
    m = open_trace(dst).meta
    assert m.records == 5000 and m.ops["ifetch"] == 0 and m.producer == "lackey"
    one_line_error(capsys, ["trace", "capture", "-o", str(tmp_path / "f.skt"), "--",
                            "/bin/false"], "`/bin/false` exited with status 1")
    assert not (tmp_path / "f.skt").exists()
