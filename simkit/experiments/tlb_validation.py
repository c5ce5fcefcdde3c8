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


@experiment("tlb-validation", measure=measure, family="mmu", cost=106)
def tlb_validation(quick: bool = True, outdir: Path = Path("results"), measured=None):
    """Measured TLB-reach chase (one line per 4 KiB page) vs the simulated L1/L2 TLB miss
    rates of the same address stream through this machine's MMU (preset ``zen3``)."""

    from simkit.bench.cpu import chase_address_stream
    from simkit.tlb import MMU

    if measured is None:
        measured = measure(quick)
    l1, l2 = [], []
    for pages in measured["pages"]:
        pages = int(pages)
        laps = max(3, int(np.ceil(100_000 / pages)))
        s = MMU("zen3").run(chase_address_stream("tlb", n_pages=pages, laps=laps),
                            warmup_records=pages)
        l1.append(s.l1d_miss_rate)
        l2.append(s.l2_misses / (s.l1d_hits + s.l1d_misses))
    df = measured.assign(sim_l1d_tlb_miss_rate=l1, sim_walks_per_access=l2)
    fig = measured_vs_simulated(
        df.pages, df.ns_per_load_min,
        [(df.sim_l1d_tlb_miss_rate, "C0--", "simulated L1 DTLB miss rate"),
         (df.sim_walks_per_access, "C3--", "simulated walks per access")],
        "pages touched (one 64 B line per 4 KiB page)", "simulated rate",
        "TLB reach on this machine vs simkit.tlb (zen3 preset), same addresses")
    return df, save_outputs(df, fig, outdir, "tlb-validation")
