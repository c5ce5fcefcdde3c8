"""The README's numbers cannot drift: its generated blocks are what
``python -m simkit.experiments.readme`` writes from a run's ``results/summary.csv`` (format and
a digest of each table), and no sentence outside them quotes a measured time or rate without
the date it was measured (a heuristic: numbers with a unit of time or speed)."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from simkit.experiments import readme as gen

README = Path(__file__).resolve().parent.parent / "README.md"
RUN = {"mode": "quick", "date_utc_start": "2026-12-07T15:30:00+00:00", "cpu_model": "CPU X",
       "usable_cpus": 2, "hypervisor": True, "loadavg_start": 1.5, "loadavg_end": 2.25}
ROWS = [{"experiment": "exp-a", "environment": "native", "check": "walks | fewer",
         "paper": "10 ms", "paper_value": 10, "ours": "12 ms", "ours_value": 12,
         "holds": True},
        {"experiment": "exp-a", "environment": "this machine", "check": "chase",
         "paper": "", "paper_value": None, "ours": "3 of 4", "ours_value": 3, "holds": False},
        {"experiment": "exp-b", "environment": None, "check": "knee", "paper": "1.7x",
         "paper_value": 1.7, "ours": "1.66x", "ours_value": 1.66, "holds": True}]


def _results(tmp_path, rows=ROWS, run=RUN):
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp_path / "summary.csv", index=False)
    (tmp_path / "summary-run.json").write_text(json.dumps(run))
    return tmp_path


def test_fill_writes_the_table_and_keeps_everything_else(tmp_path):
    res = _results(tmp_path)
    text = ("# t\nkept 1.5 s line\n<!-- simkit:exp-a -->\nstale 99 ms\n<!-- /simkit:exp-a -->\n"
            "between\n<!-- simkit:exp-b -->\n<!-- /simkit:exp-b -->\nend\n")
    (tmp_path / "R.md").write_text(text)
    assert gen.main(["--results", str(res), "--readme", str(tmp_path / "R.md")]) == 0
    out = (tmp_path / "R.md").read_text()
    table = ["| check | paper | ours | holds |", "|---|---|---|---|",
             "| walks \\| fewer (native) | 10 ms | 12 ms | yes |",
             "| chase |  | 3 of 4 | no |"]
    dig = hashlib.sha256("\n".join(table).encode()).hexdigest()[:12]
    assert "\n".join(table) in out and "stale" not in out
    assert (f"quick run of 2026-12-07 15:30 UTC on CPU X (2 CPUs, VM), load 1.5-2.2; "
            f"1 of 2 checks hold; digest {dig}.</sub>") in out
    assert "<summary>exp-a: 1 of 2 checks hold</summary>" in out
    assert "| knee | 1.7x | 1.66x | yes |" in out
    outside = re.sub(r"<!-- simkit:(\S+) -->.*?<!-- /simkit:\1 -->", "", out, flags=re.S)
    assert outside == re.sub(r"<!-- simkit:(\S+) -->.*?<!-- /simkit:\1 -->", "", text,
                             flags=re.S)
    assert gen.main(["--results", str(res), "--readme", str(tmp_path / "R.md"),
                     "--check"]) == 0                               # idempotent
    (tmp_path / "R.md").write_text(out.replace("| 12 ms |", "| 11 ms |"))
    assert gen.main(["--results", str(res), "--readme", str(tmp_path / "R.md"),
                     "--check"]) == 1


@pytest.mark.parametrize("text, msg", [
    ("<!-- simkit:exp-a -->\nno end\n", "not closed"),
    ("<!-- simkit:exp-a -->\n<!-- simkit:exp-b -->\n<!-- /simkit:exp-b -->\n"
     "<!-- /simkit:exp-a -->\n", "not closed"),
    ("<!-- /simkit:exp-a -->\n", "closes no open block"),
    ("<!-- simkit:exp-a -->\n<!-- /simkit:exp-a -->\n" * 2, "appears twice"),
    ("<!-- simkit:exp-z -->\n<!-- /simkit:exp-z -->\n", "'exp-z': no rows"),
])
def test_bad_blocks_are_one_line_errors(tmp_path, capsys, text, msg):
    res = _results(tmp_path)
    (tmp_path / "R.md").write_text(text)
    assert gen.main(["--results", str(res), "--readme", str(tmp_path / "R.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simkit: error:") and msg in err and "\n" not in err
    assert (tmp_path / "R.md").read_text() == text                 # nothing written


def test_missing_run_files_are_named(tmp_path, capsys):
    (tmp_path / "R.md").write_text("x\n")
    assert gen.main(["--results", str(tmp_path), "--readme", str(tmp_path / "R.md")]) == 2
    assert "summary.csv: not found" in capsys.readouterr().err
    _results(tmp_path)
    (tmp_path / "summary-run.json").write_text("{nope")
    assert gen.main(["--results", str(tmp_path), "--readme", str(tmp_path / "R.md")]) == 2
    assert "summary-run.json: not JSON" in capsys.readouterr().err


def test_readme_blocks_are_the_generators_output():
    """Every block of README.md has the generator's shape, its provenance names a run (mode,
    date, machine), its counts match its table, and its digest matches the table: a number
    edited by hand (not regenerated from a run) fails here."""
    text = README.read_text()
    lines = text.split("\n")
    found = gen.blocks(text)
    assert {n for n, _, _ in found} >= {"victima", "kv-paging", "kv-rate-sweep", "allocators",
                                         "flash", "core-validation"}
    for name, a, b in found:
        body = lines[a:b]
        assert body[0] == "<details>" and body[-1] == "</details>", name
        m = re.fullmatch(rf"<summary>{re.escape(name)}: (\d+) of (\d+) checks hold</summary>",
                         body[1])
        assert m, (name, body[1])
        p = gen.PROVENANCE.match(body[3])
        assert p, (name, body[3])
        assert re.match(r"(quick|full) run of 20\d\d-\d\d-\d\d \d\d:\d\d UTC on .+", p["run"])
        table = body[5:-2]
        assert table[:2] == ["| check | paper | ours | holds |", "|---|---|---|---|"]
        cells = [r.split(" | ")[-1] for r in table[2:]]
        assert all(c in ("yes |", "no |") for c in cells), name
        assert (int(p["held"]), int(p["total"])) == (cells.count("yes |"), len(cells)) \
            == (int(m[1]), int(m[2])), name
        assert p["digest"] == hashlib.sha256("\n".join(table).encode()).hexdigest()[:12], \
            f"README block {name!r} was edited by hand: regenerate it from a run"


MEASURED = re.compile(
    r"(?<![\w.-])\d[\d,]*(?:\.\d+)?\s?(?:ms|s|ns|µs|M/s|G/s|[GM]i?B/s|"
    r"M (?:events|accesses|records)/s|(?:tasks|requests|tokens|events)/s)(?![\w/])"
    r"|\d+(?:\.\d+)?\s?[MG]iB peak RSS")
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


def unmarked_units(text):
    """(context, unit) for every paragraph, list item and table of ``text`` outside the
    generated blocks, fenced code and indented code; a table's context is the paragraph
    before it."""
    lines = text.split("\n")
    for _, a, b in reversed(gen.blocks(text)):
        del lines[a:b]
    out, cur, fence, prev = [], [], False, ""

    def flush():
        nonlocal cur, prev
        if cur:
            unit = "\n".join(cur)
            out.append((prev, unit))
            if not unit.startswith("|"):
                prev = unit
        cur = []

    for ln in lines:
        if ln.strip().startswith("```"):
            flush()
            fence = not fence
            continue
        if fence or ln.startswith("    "):
            continue
        if not ln.strip() or ln.startswith(("- ", "#")) or \
                (ln.startswith("|") and cur and not cur[-1].startswith("|")):
            flush()
        if ln.strip():
            cur.append(ln)
    flush()
    return out


def measured_without_date(text):
    bad = []
    for ctx, unit in unmarked_units(text):
        hits = MEASURED.findall(re.sub(r"`[^`]*`", "", unit))
        dated = DATE.search(unit) or (unit.startswith("|") and DATE.search(ctx))
        if hits and not dated:
            bad.append(f"{hits}: {unit[:100]!r}")
    return bad


def test_the_heuristic_catches_an_undated_time_and_passes_a_dated_one():
    text = ("Fast: 3.5 M/s here.\n\n- a list item, 12 s of CPU\n\n"
            "Measured 2026-12-07 on a VM:\n\n| a | b |\n|---|---|\n| x | 4.2 s |\n\n"
            "<!-- simkit:e -->\n1.0 s inside a block\n<!-- /simkit:e -->\n\n"
            "```\nsimkit x --rate 5 s\n```\n\nA count: 3 of 4, `--time 9 s`.\n")
    bad = measured_without_date(text)
    assert len(bad) == 2 and "3.5 M/s" in bad[0] and "12 s" in bad[1]


def test_readme_quotes_no_undated_measurement():
    bad = measured_without_date(README.read_text())
    assert bad == [], "measured numbers without the date they were measured:\n" + \
        "\n".join(bad)
