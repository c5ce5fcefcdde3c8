"""Who may import whom around the benchmarks (docs/design.md, "Floors"), read from every
``import`` statement in the source, the ones inside functions included:

- no simulator (nor the ground below it) imports ``simkit.bench``, ``simkit.calibrate`` or
  ``simkit.experiments``;
- ``simkit.bench`` imports no simulator front: only the ground, itself, and the two simulator
  modules that describe what it measures for (LLM shapes, the storage calibration format);
- ``simkit.calibrate`` imports no experiment and no CLI.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "simkit"
SIMULATORS = ("cache", "tlb", "core", "allocators", "kvpaging", "flash", "trace")
GROUND = ("simkit.units", "simkit.trace", "simkit.results", "simkit.errors", "simkit.atomic",
          "simkit.resources")
BENCH_MAY_READ = ("simkit.kvpaging.models", "simkit.flash.storage")


def simkit_imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("simkit")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.startswith("simkit"):
            out += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return out


def modules(*parts):
    base = ROOT.joinpath(*parts)
    return sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]


def under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("pkg", SIMULATORS + ("units",))
def test_simulators_never_import_bench_calibrate_or_experiments(pkg):
    bad = {f"{p.relative_to(ROOT)}: {m}" for p in modules(pkg) for m in simkit_imports(p)
           if under(m, ("simkit.bench", "simkit.calibrate", "simkit.experiments"))}
    assert not bad, sorted(bad)


def test_bench_imports_only_the_ground_and_what_it_measures_for():
    files = modules("bench")
    assert len(files) >= 12                     # cpu/, malloc/, gpu/, storage.py
    bad = {f"{p.relative_to(ROOT)}: {m}" for p in files for m in simkit_imports(p)
           if not under(m, ("simkit.bench",) + GROUND + BENCH_MAY_READ)}
    assert not bad, sorted(bad)


def test_calibrate_sits_below_experiments_and_cli():
    bad = {f"{p.relative_to(ROOT)}: {m}" for p in modules("calibrate") for m in simkit_imports(p)
           if under(m, ("simkit.experiments", "simkit.commands", "simkit.cli"))}
    assert not bad, sorted(bad)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from simkit.bench.malloc import probe_real\n")
    assert "simkit.bench.malloc" in simkit_imports(src)
