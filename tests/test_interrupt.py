"""SIGTERM (what `timeout` and job schedulers send) in the middle of a long write: exit 143,
``simkit: terminated``, and nothing left behind (no temporary, no partial output)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REQS = REPO / "traces" / "llm-serving" / "AzureLLMInferenceTrace_code_first1000.csv"


def _terminate_when_writing(argv: list[str], d: Path, timeout: float = 240.0):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.Popen([sys.executable, "-m", "simkit", *argv], cwd=d, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not [f for f in os.listdir(d) if ".partial" in f or ".packing" in f]:
        if p.poll() is not None or time.monotonic() - t0 > timeout:
            out, err = p.communicate()
            pytest.fail(f"no temporary file appeared (rc {p.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    return p.returncode, err


def test_sigterm_during_trace_convert_leaves_nothing(tmp_path):
    rc, err = _terminate_when_writing(
        ["trace", "convert", str(REPO / "traces" / "gups.skt.xz"), "out.skt.xz"], tmp_path)
    assert rc == 143, err
    assert err.strip().splitlines()[-1] == "simkit: terminated", err
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_sigterm_during_kv_decode_trace_leaves_nothing(tmp_path):
    rc, err = _terminate_when_writing(
        ["kv", "decode-trace", "--model", "Llama-3-8B", "--requests", str(REQS), "--layout",
         "paged", "--steps", "20000", "--weight-stride", "2097152", "--out", "decode.skt"],
        tmp_path)
    assert rc == 143, err
    assert err.strip().splitlines()[-1] == "simkit: terminated", err
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_a_temporary_name_never_follows_a_planted_symlink(tmp_path):
    """Temporary files are created with O_EXCL under unpredictable names: a symlink planted
    at the old predictable name (<out>.partial) is neither followed nor clobbered."""
    from simkit.atomic import write_via

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "out.csv.partial")
    write_via(tmp_path / "out.csv", lambda tmp: Path(tmp).write_text("a,b\n"))
    assert victim.read_text() == "precious"
    assert (tmp_path / "out.csv").read_text() == "a,b\n"
    assert sorted(os.listdir(tmp_path)) == ["out.csv", "out.csv.partial", "victim.txt"]


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """ENOSPC while writing (simulated: the writer raises it): one line naming the file, exit 2,
    and neither the temporary nor an earlier output of the same command remains."""
    import errno

    import pandas as pd

    from simkit.cli import main

    def full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    monkeypatch.chdir(tmp_path)
    rc = main(["trace", "list", "--out", "list.csv"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("simkit: error: ") and "No space" in err
    assert "list.csv" in err
    assert os.listdir(tmp_path) == []


def test_an_earlier_output_is_removed_when_a_later_one_fails(tmp_path, capsys, monkeypatch):
    """``alloc run --out o.csv --plot p.png``: the table is written first; when the plot then
    fails, the table goes too (half a result is not left looking like a whole one)."""
    import errno

    from matplotlib.figure import Figure

    from simkit.cli import main
    from simkit.trace.alloc import synthetic_alloc, write_alloc_trace

    write_alloc_trace(tmp_path / "a.skat", synthetic_alloc(2000, seed=1))

    def broken(self, path, *a, **k):
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(Figure, "savefig", broken)
    monkeypatch.chdir(tmp_path)
    rc = main(["alloc", "run", "a.skat", "--out", "o.csv", "--plot", "p.png"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("simkit: error: ") and "p.png" in err
    assert sorted(os.listdir(tmp_path)) == ["a.skat"]
