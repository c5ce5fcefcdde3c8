"""This machine's measured pointer-chase latency vs the simulated cache miss rates of the same
address stream: ``cpu-validation``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simkit.experiments._base import experiment, measured_vs_simulated, save_outputs


def measure(quick: bool = True):
    """The pointer-chase cache ladder on this machine, 4 KiB pages (quick: one point per
    doubling from 4 KiB to 64 MiB, 7 runs of ~3 ms each)."""
    from simkit.bench.cpu import measure_cpu

    return measure_cpu(quick=quick, sweeps=("cache",), page_kinds=("4k",))


@experiment("cpu-validation", measure=measure, family="cache", cost=2)
def cpu_validation(quick: bool = True, outdir: Path = Path("results"), measured=None):
    """Measured pointer-chase latency vs the simulated miss rates of the same address stream
    through this machine's cache geometry (preset ``zen3-vm``: Zen 3 with the ~4 MiB effective
    L3 seen inside the VM; the physical 32 MiB L3 of preset ``zen3`` misplaces the DRAM step)."""
    import pandas as pd

    from simkit.bench.cpu import chase_address_stream
    from simkit.cache import Hierarchy

    if measured is None:
        measured = measure(quick)
    rows = []
    for ws in measured["working_set_bytes"]:
        lines = int(ws) // 64
        laps = max(2, int(np.ceil(200_000 / lines)))
        addrs = chase_address_stream("cache", working_set_bytes=int(ws), laps=laps)
        stats = Hierarchy("zen3-vm").run(addrs, warmup_records=lines)      # first lap warms
        row = {"working_set_bytes": int(ws)}
        for lv in stats.levels:
            row[f"sim_{lv.name}_miss_rate"] = lv.miss_rate
        row["sim_memory_per_access"] = stats.memory_reads / stats.levels[0].accesses
        rows.append(row)
    sim = pd.DataFrame(rows)
    df = measured.merge(sim, on="working_set_bytes")
    fig = measured_vs_simulated(
        df.working_set_bytes, df.ns_per_load_min,
        [(df[f"sim_{lv}_miss_rate"], f"C{i}--", f"simulated {lv} miss rate")
         for i, lv in enumerate(("L1", "L2", "L3"))],
        "working set (bytes)", "simulated miss rate",
        "Pointer chase on this machine vs simkit.cache (zen3-vm preset), same addresses")
    return df, save_outputs(df, fig, outdir, "cpu-validation")
