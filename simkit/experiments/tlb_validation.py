"""The TLB-reach chase measured on this machine vs the simulated TLB miss rates of the same
address stream: ``tlb-validation``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simkit.experiments._base import experiment, measured_vs_simulated, save_outputs


def measure(quick: bool = True):
    """The TLB-reach chase on this machine (quick: 23 page counts, 7 runs of ~3 ms each)."""
    from simkit.bench.cpu import measure_cpu

    return measure_cpu(quick=quick, sweeps=("tlb",), page_kinds=("4k",))


def _short(preset: str) -> str:
    """'host (cpuid)' -> 'host, CPUID'; 'host (NAME: documented ...)' -> 'host, documented NAME'."""
    if not preset.startswith("host ("):
        return preset.split(" (")[0]
    src = preset[len("host ("):].rstrip(")")
    return "host, CPUID" if src == "cpuid" else f"host, documented {src.split(':')[0]}"


@experiment("tlb-validation", measure=measure, family="mmu", cost=2.5)
def tlb_validation(quick: bool = True, outdir: Path = Path("results"), measured=None):
    """Measured TLB-reach chase (one line per 4 KiB page) vs the simulated L1/L2 TLB miss
    rates of the same address stream through this machine's MMU: the host preset
    (``simkit.calibrate.cpu.host_mmu_config``: L1 DTLB and L2 TLB from CPUID, or documented for
    the microarchitecture where the hypervisor hides them), else ``zen3``, named in the plot and
    in the ``sim_preset`` column."""

    from simkit.bench.cpu import chase_address_stream
    from simkit.bench.cpu.machine import describe_machine
    from simkit.calibrate.cpu import host_mmu_config, tlb_source
    from simkit.errors import InputError
    from simkit.tlb import MMU, MMUConfig

    if measured is None:
        measured = measure(quick)
    machine = measured.attrs.get("machine") or describe_machine()
    try:
        cfg, preset = host_mmu_config(machine), f"host ({tlb_source(machine)})"
    except InputError:
        cfg, preset = MMUConfig.preset("zen3"), "zen3 (this host's TLBs are not known)"
    l1, l2 = [], []
    for pages in measured["pages"]:
        pages = int(pages)
        laps = max(3, int(np.ceil(100_000 / pages)))
        s = MMU(cfg).run(chase_address_stream("tlb", n_pages=pages, laps=laps),
                            warmup_records=pages)
        l1.append(s.l1d_miss_rate)
        l2.append(s.l2_misses / (s.l1d_hits + s.l1d_misses))
    df = measured.assign(sim_l1d_tlb_miss_rate=l1, sim_walks_per_access=l2, sim_preset=preset,
                         sim_l1d_tlb_entries=cfg.l1d.entries, sim_l2_tlb_entries=cfg.l2.entries)
    fig = measured_vs_simulated(
        df.pages, df.ns_per_load_min,
        [(df.sim_l1d_tlb_miss_rate, "C0--", "simulated L1 DTLB miss rate"),
         (df.sim_walks_per_access, "C3--", "simulated walks per access")],
        "pages touched (one 64 B line per 4 KiB page)", "simulated rate",
        f"TLB reach on this machine vs simkit.tlb (L1 DTLB {cfg.l1d.entries}, L2 TLB "
        f"{cfg.l2.entries} entries: {_short(preset)}), same addresses")
    return df, save_outputs(df, fig, outdir, "tlb-validation")
