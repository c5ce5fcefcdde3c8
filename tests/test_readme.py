"""The README's command block, doctest-style: every line is a real command (no pseudo-syntax such
as ``a | b`` or ``[--flag]``, every option exists, every input file named is shipped or made by
an earlier line), and the lines that take seconds run as pasted, in order, in a scratch folder
that sees the repository's ``traces/`` and ``experiments/``. Lines that need valgrind, gcc,
memray or a GPU skip when those are absent (the GPU line skips itself with one line); the few that
take minutes are only parsed here and named in ``LONG`` with where they run."""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# minutes, not seconds: parsed here, run by `make demo` or by the tests named
LONG = {
    "simkit reproduce victima": "make demo (reproduce all)",
    "python experiments/victima.py": "the same run as `simkit reproduce victima`",
    "simkit reproduce all": "make demo",
    "simkit sweep": "tests/test_sweep.py (a smaller grid)",
    "simkit bench malloc": "tests/test_allocators.py (real allocators, cc1)",
    "simkit bench storage": "tests/test_bench_storage.py (the same sweep, smaller)",
    "simkit bench cpu": "tests/test_bench_cpu.py and the cpu-validation experiment",
    "simkit kv run --trace mooncake-conv": "tests/test_kvpaging_engine.py",
    "simkit tlb run --trace llm-decode-paged": "the victima experiment (nested runs)",
}


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


def needs(cmd: str) -> str | None:
    """Why this line cannot run here, or None."""
    t = tokens(cmd)
    if "capture" in t[:3] and shutil.which("valgrind") is None:
        return "valgrind not on PATH"
    if ("capture-malloc" in t[:3] or t[1:3] == ["bench", "malloc"]) and shutil.which("gcc") is None:
        return "gcc not on PATH"
    if "memray" in t and importlib.util.find_spec("memray") is None:
        return "memray not installed"
    return None


def is_long(cmd: str) -> bool:
    return any(" ".join(tokens(cmd)).startswith(k) for k in LONG)


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


def test_the_short_lines_run_as_pasted(tmp_path):
    """In order (later lines read what earlier ones wrote), from a scratch folder."""
    for d in ("traces", "experiments"):
        (tmp_path / d).symlink_to(ROOT / d)
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PATH=bindir + os.pathsep + os.environ.get("PATH", ""), MPLBACKEND="Agg")
    ran = 0
    for cmd in COMMANDS:
        if is_long(cmd) or needs(cmd):
            continue
        t = tokens(cmd)
        argv = [sys.executable, "-m", "simkit", *t[1:]] if t[0] == "simkit" else \
            [sys.executable, *t[1:]]
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, f"{cmd}\n{r.stderr[-2000:]}"
        ran += 1
    assert ran >= 15


def test_links_point_inside_the_project():
    """A clone has no ../shared/: every relative link and image of the README and of docs/
    resolves inside the repository, and the README says how to get `simkit` on PATH."""
    text = README.read_text()
    assert "../shared" not in text and ".venv/bin/activate" in text.split("##")[0]
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if not re.match(r"[a-z]+://", target):
                assert (page.parent / target).exists(), f"{page.name}: {target}"
