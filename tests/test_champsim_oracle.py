"""ChampSim as an external oracle for the MMU + caches + core model (issue 14, "cross-check
against ChampSim on the same trace with matched geometry").

Skips unless ChampSim was built by ``sh benchmarks/champsim/build.sh`` (it needs the ChampSim
sources: github.com or ``CHAMPSIM_SRC``). The same records go to both: simkit reads them
directly, ChampSim reads their ``export_champsim`` translation (the instructions between
accesses as non-memory instructions, dependence as a register). ChampSim is a cycle-level
out-of-order core with MSHRs, a DRAM model and 4 KiB pages placed at random, so counts are
compared with tolerances, not exactly:
- the data (load and RFO) misses per kilo-instruction of L1D, L2 and LLC within 15% where they
  are above 1 (simkit's page-walk reads, which go through the same caches, are taken out with
  ``refs_served_by``; ChampSim counts its walker's reads apart, as TRANSLATION);
- IPC: only the ordering (the dependent chase below GUPS in both). The magnitudes differ, and
  the test prints them: on 2026-12-07 GUPS over 8 MiB ran at IPC 0.486 in simkit and 0.218 in
  ChampSim, whose walker issues about twice the page-table reads (0.5 per update against
  simkit's 0.25 walks of one read) and holds at most 5 walks in its MSHRs, where simkit's core
  had no MSHR limit then. Rerun later that day with the matched core's 16 L1D MSHRs (ChampSim's
  default; ChampSim 2ff25011 built from a snapshot): GUPS IPC 0.481 against 0.218, the chase
  0.047 against 0.023, data MPKI within 8%; letting the walks take MSHRs too
  (``walk_mshrs``) moved GUPS to 0.480 (its walks hit the L1D). Where the 2x comes from, read
  off ChampSim's own counters on the chase (16 MiB, 4096 pages; 2026-12-07, 23:15 UTC):
  64% of its loads miss the STLB, and its STLB miss latency is 285.8 cycles, a DRAM access: its
  walks' reads (TRANSLATION) hit the L1D 281 times in 37,975, the L2 in 14%, and 19,101 of
  them went to DRAM for 18,987 walks. ChampSim's ``VirtualMemory::get_pte_pa`` gives each
  page-table entry a slot of its own (keyed by level and VA prefix, the next slot a new page
  each time), so no two pages' PTEs share a line; simkit's radix table packs 8 neighbouring
  PTEs in a line, as x86 does, and its walks hit the caches. 0.64 x 286 cycles on top of
  simkit's ~212 cycles per load gives ~395 against ChampSim's 433 (IPC 0.023 at 10
  instructions per load). Memory latency is ChampSim's own LLC miss latency in the same run,
  the one number transferred.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

BIN = Path(os.environ.get("SIMKIT_CHAMPSIM_DIR", Path.home() / ".cache/simkit/champsim")) \
    / "bin" / "champsim_simkit"
pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"ChampSim not built ({BIN}): run "
                                "sh benchmarks/champsim/build.sh")


def run_champsim(trace: Path, warm: int, sim: int) -> dict:
    out = subprocess.run([str(BIN), "--warmup-instructions", str(warm),
                          "--simulation-instructions", str(sim), str(trace)],
                         capture_output=True, text=True, timeout=900, check=True).stdout
    roi = out[out.rindex("Region of Interest Statistics"):] \
        if "Region of Interest Statistics" in out else out
    ipc = re.search(r"CPU 0 cumulative IPC:\s*([\d.]+)\s+instructions:\s*(\d+)\s+cycles:\s*(\d+)",
                    roi)
    res = {"ipc": float(ipc.group(1)), "instructions": int(ipc.group(2)),
           "cycles": int(ipc.group(3))}
    for name, key in (("L1D", "L1"), ("L2C", "L2"), ("LLC", "L3")):
        # data misses: loads and RFOs (the walker's reads are TRANSLATION, counted apart)
        res[f"{key}_misses"] = sum(
            int(m.group(1)) for kind in ("LOAD", "RFO")
            for m in [re.search(rf"{name}\s+{kind}\s+ACCESS:\s*\d+\s+HIT:\s*\d+\s+MISS:\s*(\d+)",
                                roi)] if m)
        lat = re.search(rf"{name} AVERAGE MISS LATENCY:\s*([\d.]+)", roi)
        res[f"{key}_miss_latency"] = float(lat.group(1)) if lat else np.nan
    return res, out


def matched_mmu(memory_latency: int):
    from simkit.cache import CacheConfig, HierarchyConfig
    from simkit.tlb import MMUConfig, TLBConfig

    caches = HierarchyConfig(levels=(CacheConfig("L1", "32KiB", 8, latency_cycles=5),
                                     CacheConfig("L2", "512KiB", 8, latency_cycles=13),
                                     CacheConfig("L3", "2MiB", 16, latency_cycles=53)),
                             memory_latency_cycles=memory_latency)
    return MMUConfig(l1d=TLBConfig("L1D-TLB", 64, 4, 1), l1i=TLBConfig("L1I-TLB", 64, 4, 1),
                     l2=TLBConfig("L2-TLB", 1536, 12, 8), caches=caches, placement="random")


IPC = {}


@pytest.mark.parametrize("workload", ["gups-8MiB", "chase-16MiB"])
def test_champsim_agrees_with_the_full_model(tmp_path, workload):
    from simkit.core import CoreConfig
    from simkit.tlb import MMU
    from simkit.trace import synth
    from simkit.trace.champsim import export_champsim
    from simkit.trace.format import Op

    n_warm, n_sim = (50_000, 100_000) if workload.startswith("gups") else (15_000, 30_000)
    if workload.startswith("gups"):
        recs = synth.uniform(n_warm + n_sim, 8 << 20, seed=1)
        recs["op"] = Op.MODIFY
        recs["icount"] = 12
        dep = "independent"
    else:
        recs = synth.chase(n_warm + n_sim, 16 << 20, seed=1)
        recs["icount"] = 10          # ChampSim panics below IPC 0.01 (a 460-cycle chain of 4)
        recs["flags"] = 1
        dep = "flag"
    k = int(recs["icount"][0])
    path = tmp_path / f"{workload}.champsim.xz"
    export_champsim(recs, path)
    cs, text = run_champsim(path, n_warm * k, n_sim * k)
    mem = int(round(cs["L3_miss_latency"])) if np.isfinite(cs["L3_miss_latency"]) else 200
    core = CoreConfig("champsim-matched", width=4, rob=224, lq=72, sq=56, walkers=5, mshrs=16,
                      dependence=dep, clock_ghz=4.0)
    s = MMU(matched_mmu(mem), core=core).run(recs, warmup_records=n_warm)
    inst = s.core.instructions
    pte = list(s.refs_served_by().values())          # walk reads served by L1, L2, L3, memory
    report = []
    for key, lv in (("L1", 0), ("L2", 1), ("L3", 2)):
        data = s.cache_stats.levels[lv].misses - sum(pte[lv + 1:])
        ours = 1000 * data / inst
        theirs = 1000 * cs[f"{key}_misses"] / cs["instructions"]
        report.append((key, round(ours, 2), round(theirs, 2)))
    IPC[workload] = (s.core.ipc, cs["ipc"])
    print(workload, "data MPKI (simkit, ChampSim)", report, "IPC", IPC[workload], "memory", mem)
    for key, ours, theirs in report:
        if max(ours, theirs) > 1:
            assert ours == pytest.approx(theirs, rel=0.15), (key, report)
    if len(IPC) == 2:
        (g_ours, g_cs), (c_ours, c_cs) = IPC["gups-8MiB"], IPC["chase-16MiB"]
        assert c_ours < g_ours and c_cs < g_cs, IPC
