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


def _size(n: int) -> str:
    from simkit.units import format_bytes
    return format_bytes(int(n))


@experiment("cpu-validation", measure=measure, family="cache", cost=1.3)
def cpu_validation(quick: bool = True, outdir: Path = Path("results"), measured=None):
    """Measured pointer-chase latency vs the simulated miss rates of the same address stream
    through this machine's cache geometry: the host preset (``simkit.calibrate.cpu``) built
    from this machine's sysfs cache sizes and ways and from the ladder measured in this run
    (each level's latency; a level's capacity cut to its measured knee where the knee comes at
    half the sysfs size or below, as a VM's share of a shared L3 does)."""
    import pandas as pd

    from simkit.bench.cpu import chase_address_stream
    from simkit.bench.cpu.chase import calibration
    from simkit.bench.cpu.machine import describe_machine
    from simkit.cache import Hierarchy
    from simkit.calibrate.cpu import host_cache_config

    if measured is None:
        measured = measure(quick)
    cal = calibration(measured)
    host = host_cache_config(measured.attrs.get("machine") or describe_machine(), cal)
    rows = []
    for ws in measured["working_set_bytes"]:
        lines = int(ws) // 64
        laps = max(2, int(np.ceil(200_000 / lines)))
        addrs = chase_address_stream("cache", working_set_bytes=int(ws), laps=laps)
        stats = Hierarchy(host).run(addrs, warmup_records=lines)          # first lap warms
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
         for i, lv in enumerate(c.name for c in host.levels)],
        "working set (bytes)", "simulated miss rate",
        "Pointer chase on this machine vs simkit.cache (host preset: "
        + ", ".join(f"{c.name} {_size(c.size_bytes)}/{c.ways}" for c in host.levels)
        + "), same addresses")
    return df, save_outputs(df, fig, outdir, "cpu-validation")
