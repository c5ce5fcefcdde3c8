"""The README's command block, doctest-style: every line is a real command (no pseudo-syntax such
as ``a | b`` or ``[--flag]``, every option exists for that subcommand, every input file named is
shipped or made by an earlier line), and the lines that take seconds run as pasted in a scratch
folder that sees the repository's ``traces/`` and ``experiments/``. The others take minutes on a
loaded 2-core machine (valgrind, memray, real allocators, whole traces) and are only parsed."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# the lines run for real here (seconds each); every other line is parsed against the real
# parser by test_every_line_is_a_real_command, and runs in the tests of what it drives
RUN = ("simkit trace list", "simkit trace info", "simkit trace gen", "simkit cache presets",
       "simkit alloc traces", "simkit reproduce list")


def readme_commands() -> list[str]:
    """The lines of the README's shell blocks (fences without a language), continuations
    joined."""
    out, inside, shell, buf = [], False, False, []
    for line in README.read_text().splitlines():
        s = line.strip()
        if s.startswith("```"):
            inside, shell = (True, s == "```") if not inside else (False, False)
            continue
        if not (inside and shell):
            continue
        buf.append(line.rstrip())
        if line.rstrip().endswith("\\"):
            continue
        text = " ".join(b.rstrip("\\").strip() for b in buf)
        buf = []
        if text and not text.startswith("#"):
            out.append(text)
    return out


def tokens(cmd: str) -> list[str]:
    return shlex.split(cmd, comments=True)


COMMANDS = readme_commands()


def test_the_block_is_there():
    assert len(COMMANDS) >= 30 and COMMANDS[0].startswith("simkit trace list")


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_line_is_a_real_command(cmd):
    from simkit.cli import build_parser

    t = tokens(cmd)
    assert t[0] in ("simkit", "python"), cmd
    assert not any(x in ("|", "...", "[", "]") or re.fullmatch(r"\[.*\]|.*\|.*|[A-Z]+", x)
                   for x in t if not x.startswith("import ")), f"pseudo-syntax in: {cmd}"
    if t[0] == "python":
        if t[1] != "-c":
            assert (ROOT / t[1]).is_file(), cmd
        return
    args = t[1:t.index("--")] if "--" in t else t[1:]
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"argparse refused ({exc.code}): {cmd}")
    made = {tok for c in COMMANDS[:COMMANDS.index(cmd)] for tok in tokens(c)}
    inputs = [args[2]] if args[:2] in (["trace", "info"], ["trace", "convert"],
                                        ["trace", "import-malloc"]) else []
    inputs += [args[i + 1] for i, x in enumerate(args[:-1]) if x in ("--trace", "--requests")]
    for x in inputs:
        if "/" in x or "." in x:
            assert (ROOT / x).exists() or x in made, \
                f"{x}: neither shipped nor made by an earlier line ({cmd})"


def test_the_short_lines_run_as_pasted(tmp_path, monkeypatch, capsys):
    """From a scratch folder that sees the repository's traces/ and experiments/."""
    from simkit.cli import main

    for d in ("traces", "experiments"):
        (tmp_path / d).symlink_to(ROOT / d)
    monkeypatch.chdir(tmp_path)
    run = [c for c in COMMANDS if any(" ".join(tokens(c)).startswith(k) for k in RUN)]
    assert len(run) == len(RUN)
    for cmd in run:
        assert main(tokens(cmd)[1:]) == 0, cmd
        out = capsys.readouterr()
        assert out.out.strip() and not out.err.strip(), (cmd, out.err[-2000:])


def test_links_point_inside_the_project():
    """A clone has no ../shared/: every relative link and image of the README and of docs/
    resolves inside the repository, and the README says how to get `simkit` on PATH."""
    text = README.read_text()
    assert "../shared" not in text and ".venv/bin/activate" in text.split("##")[0]
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if not re.match(r"[a-z]+://", target):
                assert (page.parent / target).exists(), f"{page.name}: {target}"
