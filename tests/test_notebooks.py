"""Every analysis notebook in experiments/notebooks/ executes top to bottom (nbclient) on quick
results made here, so the notebooks cannot rot."""
import os
from pathlib import Path

import pytest

NB_DIR = Path(__file__).resolve().parent.parent / "experiments" / "notebooks"
NOTEBOOKS = sorted(p.stem for p in NB_DIR.glob("*.ipynb"))


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """Small versions of the experiments the notebooks read."""
    from simkit import experiments
    from simkit.experiments.victima import victima

    out = tmp_path_factory.mktemp("results")
    experiments.run("cache-miss-curve", quick=True, outdir=out)
    experiments.run("kv-paging", quick=True, outdir=out)
    victima(quick=True, outdir=out, records=100_000,
            configs=["victima-radix", "pom-tlb", "victima-paper"],
            workloads=["gups", "uniform-1GiB"])
    return out


def test_there_is_a_notebook_per_simulator():
    assert {"cache", "tlb", "kvpaging"} <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, quick_results, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (extra 'test')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient not installed (extra 'test')")
    pytest.importorskip("ipykernel", reason="ipykernel not installed (extra 'test')")
    monkeypatch.setenv("SIMKIT_RESULTS", str(quick_results))
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NB_DIR)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    # every code cell ran and the analysis cells produced output (a table or a figure)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code)
    assert sum(bool(c.get("outputs")) for c in code) >= len(code) - 1
