"""The registered experiments run, write their files, and the CPU validation holds: where the
simulated L1 and L2 miss rates of the chase's own address stream step up, this machine's
measured latency steps up too (REFERENCE.md 5.4: L1 1.65 ns, L2 4.3 ns, L3 ~18 ns)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simkit import experiments


def _step(df, col):
    """(last working set below 0.5 simulated miss rate, first at or above)."""
    below = df[df[col] < 0.5].working_set_bytes.max()
    above = df[df[col] >= 0.5].working_set_bytes.min()
    return below, above


def test_cpu_validation_simulated_steps_sit_on_measured_steps(tmp_path):
    """This machine: the host preset is built from this host's sysfs caches and the ladder
    measured in the same run; its simulated L1 and L2 steps fall within a factor 2 of the sysfs
    sizes (read here, not constants: hosts change between runs; the preset may cut a level to
    its measured knee), and the measured latency steps up within [half, double] of each."""
    from simkit.bench.cpu.machine import describe_machine

    df, paths = experiments.run("cpu-validation", quick=True, outdir=tmp_path)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    caches = {c["level"]: c["size_bytes"] for c in describe_machine()["caches"]
              if c.get("type") in ("Data", "Unified") and c.get("size_bytes")}
    lat = dict(zip(df.working_set_bytes, df.ns_per_load_min))
    l2 = df.dropna(subset=["sim_L2_miss_rate"])
    for level, frame, col in ((1, df, "sim_L1_miss_rate"), (2, l2, "sim_L2_miss_rate")):
        size = caches[level]
        fits, beyond = _step(frame, col)
        assert size / 2 <= beyond <= 2 * size and beyond == 2 * fits, (level, size, fits)
        assert lat[beyond] / lat[fits // 2] > 1.8, (level, size, lat)


def test_cache_miss_curve_on_real_traces(tmp_path):
    df, paths = experiments.run("cache-miss-curve", quick=True, outdir=tmp_path)
    assert all(p.exists() for p in paths)
    assert set(df.trace) == {"gups", "bfs", "matmul", "embedding",
                             "llm-decode-contiguous", "llm-decode-paged"}   # the catalog
    assert set(df.param_policy) == {"lru", "plru", "srrip", "drrip", "random"}
    for (trace, pol), g in df.groupby(["trace", "param_policy"]):
        rates = g.sort_values("param_size_bytes").miss_rate.to_numpy()
        assert rates[-1] <= rates[0], (trace, pol)          # 1 MiB never worse than 4 KiB
    gups = df[(df.trace == "gups") & (df.param_policy == "lru")]
    assert np.all(gups.miss_rate > 0)


def test_tlb_validation_runs_and_places_the_simulated_steps(tmp_path):
    df, paths = experiments.run("tlb-validation", quick=True, outdir=tmp_path)
    assert all(p.exists() for p in paths)
    pages = sorted(df.pages)
    # the simulated steps sit at the host preset's TLB sizes (CPUID or documented for this
    # host, read by the experiment: not constants): all hits up to the size, all misses past it
    for col, entries in (("sim_l1d_tlb_miss_rate", int(df.sim_l1d_tlb_entries.iloc[0])),
                         ("sim_walks_per_access", int(df.sim_l2_tlb_entries.iloc[0]))):
        rate = dict(zip(df.pages, df[col]))
        fits = max(p for p in pages if p <= entries)
        beyond = min(p for p in pages if p > entries)
        assert (rate[fits], rate[beyond]) == (0.0, 1.0), (col, entries, fits, beyond)
    lat = dict(zip(df.pages, df.ns_per_load_min))
    assert lat[4096] > 2 * lat[1024]                         # measured: walks cost


def test_kv_paging_experiment_reproduces_the_papers(tmp_path):
    """kv-paging (quick): every part present, files written, and the summary's reproduced
    claims hold where REFERENCE.md section 2 gives a number we reproduce."""
    df, paths = experiments.run("kv-paging", quick=True, outdir=tmp_path)
    assert all(p.exists() for p in paths)
    assert set(df.part) == {"waste", "max-batch", "prefix", "serving"}
    s = pd.read_csv(tmp_path / "kv-paging-summary.csv").set_index("check")
    for check in s.index:
        if check.startswith(("final-length waste", "vAttention Fig. 15", "Mooncake",
                             "PagedAttention keeps")):
            assert s.loc[check, "holds"], check
    serving = df[df.part == "serving"].set_index("manager")
    assert (serving.requests_finished == 500).all()
    # a max-context reservation serves fewer requests at once than block tables
    assert serving.loc["paged-16", "mean_batch_seqs"] > 2 * serving.loc[
        "static-max-context", "mean_batch_seqs"]


def test_every_experiment_has_its_script(tmp_path):
    """experiments/<name>.py exists for every registered experiment and runs it."""
    from pathlib import Path
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent / "experiments"
    assert {p.stem for p in root.glob("*.py")} >= set(experiments.REGISTRY)
    r = subprocess.run([sys.executable, str(root / "cpu-validation.py"), "--outdir",
                        str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "cpu-validation.csv").exists() and "cpu-validation:" in r.stdout


@pytest.mark.parametrize("module", ["_base", "cache_miss_curve", "cpu_validation", "tlb_validation",
                                    "core_validation", "core_programs",
                                    "victima", "kv_paging", "kv_rate_sweep", "kv_vattention",
                                    "allocators", "flash", "gpu_validation", "readme"])
def test_each_experiment_module_imports_alone(module):
    """Each module of simkit.experiments imports in a fresh interpreter on its own (no circle:
    modules import only _base and the simulators, never the package or each other)."""
    import subprocess
    import sys

    code = f"import simkit.experiments.{module} as m; print(m.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    src = (Path(__file__).resolve().parent.parent / "simkit" / "experiments" / f"{module}.py").read_text()
    imports = [ln for ln in src.splitlines() if ln.strip().startswith(("from simkit.experiments", "import simkit.experiments"))]
    # helpers: _base, and core_programs (itself only _base) for core_validation
    helpers = ("from simkit.experiments._base import", "from simkit.experiments.core_programs import")
    assert all(ln.strip().startswith(helpers) for ln in imports), imports


def test_script_and_reproduce_default_to_the_same_mode(monkeypatch, capsys):
    """``python experiments/X.py`` and ``simkit reproduce X`` both default to quick, and
    ``--full`` means full for both; a piped run says which step starts, one flushed line each."""
    from simkit import experiments
    from simkit.cli import main
    from simkit.experiments import _base

    seen = []

    def fake_run(name, quick=True, outdir=None, measured=None):
        seen.append((name, quick))
        return __import__("pandas").DataFrame({"x": [1]}), []

    monkeypatch.setattr(experiments, "run", fake_run)
    assert main(["reproduce", "victima"]) == 0
    assert _base.script_main("victima", []) == 0
    assert main(["reproduce", "victima", "--full"]) == 0
    assert _base.script_main("victima", ["--full"]) == 0
    assert main(["reproduce", "victima", "--quick"]) == 0
    assert seen == [("victima", True), ("victima", True), ("victima", False),
                    ("victima", False), ("victima", True)]
    out = capsys.readouterr().out              # captured: not a terminal
    assert out.count("[1/1] victima: running (quick)") == 3
    assert out.count("[1/1] victima: running (full)") == 2
    assert main(["reproduce", "victima", "--quick", "--full"]) == 2      # one-line usage error
    assert "not allowed with argument" in capsys.readouterr().err


def test_version():
    import subprocess
    import sys

    import simkit

    out = subprocess.run([sys.executable, "-m", "simkit", "--version"], capture_output=True,
                         text=True, check=True).stdout
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert out.strip() == f"simkit {simkit.__version__}"
    assert f'version = "{simkit.__version__}"' in pyproject


@pytest.mark.slow
def test_core_validation_tracks_the_4k_chase(tmp_path):
    """Issue 14: the full model with a host preset calibrated on the THP ladder predicts the
    4 KiB-page chase of the same run (out of sample). The issue's bar (+-20%) is the
    experiment's summary row, met on some runs of this VM and missed on others (medians
    14-37% measured); what must hold on every run: the prediction follows the measurement
    (Spearman rank correlation >= 0.9 over the ladder) and the median |error| stays under 50%.
    A loaded VM moves the measurement: up to 3 runs."""
    from simkit.experiments.core_validation import core_validation

    seen = []
    for i in range(3):
        df, paths = core_validation(quick=True, outdir=tmp_path / str(i))
        assert {p.name for p in paths} - {"core-validation-calibration.csv",
                                          "core-validation-dram.csv",
                                          "core-validation-llc.csv"} == {
            "core-validation.csv", "core-validation.png", "core-validation-gups.csv",
            "core-validation-gather.csv", "core-validation-hugepages.csv",
            "core-validation-summary.csv", "core-validation-programs.csv",
            "core-validation-programs.png"}
        hp = pd.read_csv(tmp_path / str(i) / "core-validation-hugepages.csv")
        assert (hp.rounds == 3).all() and (hp.rounds_low <= hp.measured_change).all() \
            and (hp.measured_change <= hp.rounds_high).all()
        pr = pd.read_csv(tmp_path / str(i) / "core-validation-programs.csv")
        assert set(pr.program) == {"bfs", "dlrm", "xsbench"} \
            and (pr.predicted_ns_per_record > 0).all()
        llc_csv = tmp_path / str(i) / "core-validation-llc.csv"
        if llc_csv.exists():            # one candidate chosen, the one that fits best
            f = pd.read_csv(llc_csv)
            assert f.chosen.sum() == 1 and f[f.chosen].mean_abs_log_error.iloc[0] == \
                f.mean_abs_log_error.min()
        ga = pd.read_csv(tmp_path / str(i) / "core-validation-gather.csv")
        assert set(ga.page_kind) == {"4k", "thp"} and (ga.predicted_ns > 0).all()
        dram_csv = tmp_path / str(i) / "core-validation-dram.csv"
        if dram_csv.exists():        # the DRAM interval: none needed, or it meets the
            d = pd.read_csv(dram_csv)   # calibration point within 2% (or ran out of steps)
            last = d[d.chosen]          # (a second pass under splintered walks: its last row)
            assert len(last) == 1 and last.index[0] == len(d) - 1
            steps = (d.walks == "chosen").sum() if "walks" in d else len(d)
            assert last.dram_line_cycles.iloc[0] == 0 or abs(last.error.iloc[0]) <= 0.02 \
                or steps == 6
        g = pd.read_csv(tmp_path / str(i) / "core-validation-gups.csv")
        assert set(g.page_kind) == {"4k", "thp"} and (g.predicted_ns > 0).all()
        # the model's GUPS with 4 KiB pages walks on nearly every update once the table's
        # pages outnumber the L2 TLB's reach, and never within the L1 DTLB's
        big = g[(g.page_kind == "4k")].sort_values("table_bytes")
        assert big.sim_walks_per_access.iloc[-1] > 0.5
        assert (df.predicted_ns_4k > 0).all() and df.error.notna().all()
        assert df.sim_walks_per_access.iloc[-1] > df.sim_walks_per_access.iloc[0]
        rho = df.predicted_ns_4k.rank().corr(df.measured_ns_4k.rank())
        med = float(df.error.abs().median())
        summary = pd.read_csv(tmp_path / str(i) / "core-validation-summary.csv")
        assert bool(summary.holds.iloc[0]) == (med * 100 <= 20.0)
        seen.append((round(rho, 3), round(med, 3)))
        if rho >= 0.9 and med <= 0.5:
            return
    pytest.fail(f"(rank correlation, median |error|) of 3 runs: {seen}")


def test_plan_chains_a_kernel_family_and_starts_the_costliest(monkeypatch):
    """Experiments of one numba kernel family run one after another in one worker task (the
    first compiles, the rest load the cache: never two cold compiles of a family at once);
    tasks start costliest first."""
    from simkit.commands.reproduce import plan

    assert set(experiments.MEASURE) == {"cpu-validation", "tlb-validation", "core-validation"}
    assert experiments.FAMILY["victima"] == experiments.FAMILY["tlb-validation"] == "mmu"
    monkeypatch.setattr(experiments, "FAMILY",
                        {"t": "mmu", "v": "mmu", "c": "cache", "m": "cache"})
    monkeypatch.setattr(experiments, "COST",
                        {"t": 100, "v": 70, "c": 50, "m": 2, "f": 72, "k": 9})
    cold = lambda family: False                                     # noqa: E731
    assert plan(["c", "m", "t", "k", "v", "f"], cold) == [["t", "v"], ["f"], ["c", "m"], ["k"]]
    assert plan(["k", "f"], cold) == [["f"], ["k"]]
    # with a family's kernels in numba's cache (after make setup), its experiments run apart
    mmu_warm = lambda family: family == "mmu"                       # noqa: E731
    assert plan(["c", "m", "t", "k", "v", "f"], mmu_warm) == [["t"], ["f"], ["v"], ["c", "m"],
                                                               ["k"]]


def test_reproduce_all_goes_on_past_a_failed_experiment(monkeypatch, capsys, tmp_path):
    """``reproduce all``: an experiment that raises ends as one line naming it; the others still
    run and write their summary; the exit status is 1 and stderr lists the failure. One
    experiment alone still fails as an error (status 2 for bad input)."""
    import pandas as pd

    from simkit.cli import main
    from simkit.errors import InputError

    monkeypatch.setattr(experiments, "REGISTRY", {"a": None, "b": None, "c": None})
    monkeypatch.setattr(experiments, "MEASURE", {})
    seen = []

    def fake_run(name, quick=True, outdir=None, measured=None):
        seen.append(name)
        if name == "b":
            raise InputError("host preset: no TLB geometry")
        path = tmp_path / f"{name}-summary.csv"
        pd.DataFrame({"check": [f"{name} holds"], "holds": [True]}).to_csv(path, index=False)
        return pd.DataFrame({"x": [1]}), [path]

    monkeypatch.setattr(experiments, "run", fake_run)
    rc = main(["reproduce", "all", "--jobs", "1", "--outdir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 1 and seen == ["a", "b", "c"]
    assert "b: FAILED after" in out and "host preset: no TLB geometry" in out
    assert "summary: 2 of 2 checks against the papers hold" in out
    assert "1 of 3 experiments failed" in err and "  b: host preset: no TLB geometry" in err
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.experiment) == ["a", "c"]
    run = json.loads((tmp_path / "summary-run.json").read_text())
    assert run["steps"]["b"]["error"] == "host preset: no TLB geometry"
    assert main(["reproduce", "b"]) == 2                  # alone: the error line, status 2
    assert "simkit: error: host preset: no TLB geometry" in capsys.readouterr().err


def test_family_cached_reads_numbas_cache(tmp_path):
    """An empty numba cache directory holds no kernel (so ``reproduce`` chains the family); a
    family this module does not know is never taken as cached."""
    import subprocess
    import sys

    from simkit.commands.reproduce import family_cached

    code = "from simkit.commands.reproduce import family_cached as f; print(f('cache'), f('mmu'))"
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
    assert family_cached("no-such-family") is False
