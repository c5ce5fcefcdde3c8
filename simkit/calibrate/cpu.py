"""Presets for *this* host, built from what ``simkit bench cpu`` reads and measures.

``host_mmu_config(machine)`` and ``host_cache_config(machine)`` turn a machine description
(``simkit.bench.cpu.machine.describe_machine()``, or the ``machine`` of a ``simkit bench cpu
--calibration`` JSON) into simulator configurations: data caches from sysfs (size, ways, line),
L1 DTLB and L2 TLB (4 KiB pages) from CPUID. Latencies come from the calibration's measured ladder
when one is given (the plateau of each level, in cycles), else from the ``zen3`` preset. Nothing is
a constant of one machine: the test suite builds these on whatever host it runs on and compares
the simulated steps with the knees measured in the same run (tests/test_tlb.py).

Where CPUID hides the TLBs (an Intel guest whose hypervisor zeroes leaf 0x18) and the
microarchitecture is one ``simkit.calibrate.uarch`` documents, its documented L1 DTLB and STLB
are used, and ``tlb_source`` says so. ``host_core_config(machine)`` is the core of the same
microarchitecture (documented ROB, load queue, walkers and outstanding L1D misses; not measured).
Under a hypervisor, ``host_mmu_config(..., nested=True)`` walks two-dimensionally: the host
table maps guest memory with 2 MiB pages (what KVM hosts typically back guests with), and a
nested TLB of ``nested_tlb_entries`` caches guest-physical -> host translations.

``load_host(path)`` reads a calibration JSON and returns both; ``simkit tlb run --preset
host:FILE.json`` / ``simkit cache run --preset host:FILE.json`` use it (``host`` alone describes
the machine it runs on, without measured latencies).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from simkit.cache.config import CacheConfig, HierarchyConfig
from simkit.calibrate.uarch import identify
from simkit.errors import InputError
from simkit.tlb.config import MMUConfig, TLBConfig


def _pow2_ways(entries: int, ways) -> int:
    """CPUID's ways when entries/ways is a power-of-two set count; 'full' -> entries; else the
    nearest associativity that gives one (the simulator indexes sets by bits)."""
    if ways == "full" or ways is None:
        return entries
    ways = int(ways)
    for w in sorted(range(1, entries + 1), key=lambda w: (abs(w - ways), w)):
        sets = entries // w
        if entries % w == 0 and sets & (sets - 1) == 0:
            return w
    return entries


def _tlb(machine: dict, level: int) -> tuple[int, object] | None:
    for e in machine.get("tlb", {}).get("entries", []):
        if e.get("level") == level and e.get("type") == "data" and e.get("page") == "4K":
            return int(e["entries"]), e.get("ways")
    return None


def _plateau_cycles(calibration: dict | None, level: str) -> int | None:
    """A measured latency in cycles from a calibration's summary, when it has one."""
    if not calibration:
        return None
    summ = calibration.get("summary") or {}
    ns, ghz = summ.get(f"{level.lower()}_ns"), summ.get("clock_ghz")
    if isinstance(ns, (int, float)) and isinstance(ghz, (int, float)) and ns > 0 and ghz > 0:
        return max(1, int(round(ns * ghz)))
    return None


def tlb_source(machine: dict) -> str:
    """Where the host preset's TLB geometry comes from: CPUID, or documented values."""
    if _tlb(machine, 1) is not None and _tlb(machine, 2) is not None:
        return "cpuid"
    ua = identify(machine)
    if ua is not None and ua.l1_dtlb is not None:
        return f"{ua.name}: {ua.source}"
    raise InputError("host preset: the machine description has no CPUID TLB geometry (needs "
                     "/dev/cpu/0/cpuid, AMD) and its microarchitecture is not one "
                     "simkit.calibrate.uarch documents; use a named preset")


def stlb_from_knees(knees, l1_entries: int, documented_entries: int) -> int | None:
    """The L2 TLB's entries as this machine's 4 KiB-page TLB ladder shows them (``knees``:
    ``simkit.bench.cpu.chase.knees`` rows of the "tlb" sweep): the first knee past twice the
    L1 DTLB's entries that is no data cache's (``near_cache_level`` empty) and starts below
    the documented size; its last fast point (``before``, in pages). None: no such knee, and
    the documented size stands. Only for a geometry CPUID does not give (``tlb_source``)."""
    for k in sorted((dict(k) for k in knees), key=lambda k: k["after"]):
        if k.get("sweep", "tlb") != "tlb" or k.get("page_kind", "4k") != "4k":
            continue
        if k.get("near_cache_level"):
            continue
        if 2 * l1_entries <= int(k["before"]) < documented_entries:
            return int(k["before"])
    return None


def splintered(tlb_ladder, l1_entries: int) -> bool | None:
    """Whether this machine caches a guest 2 MiB page as 4 KiB translations (the hypervisor
    backs guest memory with 4 KiB pages), from the TLB ladder of 4 KiB pieces (``tlb_ladder``:
    ``measure_cpu`` "tlb" sweep rows of both page kinds, one line per 4 KiB piece). Past the L1
    DTLB's ``l1_entries`` pieces the 4 KiB ladder steps up; over a huge page the same pieces
    are one translation and must not, unless it is splintered. True when the huge-page ladder,
    backed by huge pages there, steps at least half as much as the 4 KiB one between the last
    point at or below ``l1_entries`` and the first at or above twice it (the 4 KiB step at least
    20%); None when the ladder cannot tell (no huge pages, no such points)."""
    df = tlb_ladder
    if df is None or not len(df) or "thp" not in set(df.page_kind):
        return None
    k4 = df[df.page_kind == "4k"].set_index("pages").ns_per_load_min
    th = df[df.page_kind == "thp"].set_index("pages")
    lo = [p for p in k4.index if p <= l1_entries and p in th.index]
    hi = [p for p in k4.index if p >= 2 * l1_entries and p in th.index]
    if not lo or not hi:
        return None
    lo, hi = max(lo), min(hi)
    if int(th.thp_backed_bytes.loc[hi]) < hi * 4096:
        return None
    step4 = float(k4.loc[hi] / k4.loc[lo]) - 1
    steph = float(th.ns_per_load_min.loc[hi] / th.ns_per_load_min.loc[lo]) - 1
    if step4 < 0.2:
        return None
    return steph >= 0.5 * step4


def host_mmu_config(machine: dict, calibration: dict | None = None, *, nested: bool = False,
                    nested_tlb_entries: int = 64, stlb_entries: int | None = None) -> MMUConfig:
    """The ``zen3`` MMU preset with this host's L1 DTLB and L2 TLB (CPUID, else documented for
    its microarchitecture: ``tlb_source``) and data caches. ``nested``: 2D walks under the
    hypervisor the machine reports, over a host table of 2 MiB pages, with a 4-way nested TLB
    of ``nested_tlb_entries``. ``stlb_entries``: the L2 TLB's size instead (a measured one,
    ``stlb_from_knees``), its ways the nearest that give a power-of-two set count.

    The L1 DTLB is looked up in parallel with the L1D's set index (virtually indexed,
    physically tagged), so its hit costs no cycle of its own: the ladder's L1 plateau, which
    sets the L1D latency, already contains it (charging the zen3 preset's 1 cycle on top put
    every L1-resident chase point 1 cycle, +20-23%, above the measured one)."""
    base = MMUConfig.preset("zen3")
    l1, l2 = _tlb(machine, 1), _tlb(machine, 2)
    if l1 is None or l2 is None:
        tlb_source(machine)                       # raises when nothing documents them
        l1, l2 = identify(machine).l1_dtlb, identify(machine).stlb
    n1, w1 = l1
    n2, w2 = l2
    if stlb_entries is not None:
        if not isinstance(stlb_entries, int) or stlb_entries < 1:
            raise InputError(f"host preset: stlb_entries must be a positive integer, got "
                             f"{stlb_entries!r}")
        n2 = stlb_entries
    cfg = dataclasses.replace(
        base, l1d=TLBConfig("L1D-TLB", n1, _pow2_ways(n1, w1), 0),
        l2=TLBConfig("L2-TLB", n2, _pow2_ways(n2, w2), base.l2.latency_cycles),
        caches=host_cache_config(machine, calibration))
    if nested:
        if not machine.get("hypervisor"):
            raise InputError("host preset: nested walks asked for, but the machine reports no "
                             "hypervisor")
        cfg = cfg.replace(nested=True, host_huge_page_fraction=1.0,
                          nested_tlb=TLBConfig("Nested-TLB", nested_tlb_entries,
                                               min(4, nested_tlb_entries), 1))
    return cfg


def host_core_config(machine: dict, **changes):
    """The core of this host's microarchitecture (``simkit.calibrate.uarch``: documented, not
    measured), or the ``zen3`` core with no outstanding-miss limit when it is not one
    documented there; ``changes`` (dependence, clock_ghz) applied on top."""
    from simkit.core import CoreConfig

    ua = identify(machine)
    if ua is None:
        return CoreConfig.preset("zen3").replace(name="host (zen3 core, undocumented host)",
                                                 **changes)
    return CoreConfig(f"host ({ua.name})", width=ua.width, rob=ua.rob, lq=ua.lq, sq=ua.sq,
                      walkers=ua.walkers, mshrs=ua.mshrs, walk_mshrs=ua.walk_mshrs
                      ).replace(**changes)


def _effective_bytes(size: int, ways: int, line: int, level_index: int,
                     calibration: dict | None, private: bool = False) -> int:
    """The capacity the measured cache ladder shows for the ``level_index``-th data cache (of
    ``size`` bytes per sysfs): the ladder's knees in working-set order are the levels' in
    order; where that level's knee comes at most at half the sysfs size (a VM given part of a
    shared L3), the largest size with power-of-two sets at or below the knee's first slow
    working set. A knee at the sysfs size itself (the chase also holds code and stack, and real
    replacement is not LRU) leaves the size alone, and so does any knee of a ``private`` cache
    (sysfs lists one CPU sharing it: a VM cannot be given part of it, so an early knee there is
    the chase's code, stack, replacement or prefetch, not capacity; on a Granite Rapids VM the
    2 MiB L2's knee fell at 512 KiB or 1 MiB from run to run, while the 1 MiB chase ran at
    near L2 latency)."""
    knees = sorted((k for k in (calibration or {}).get("knees", [])
                    if k.get("sweep") == "cache" and k.get("page_kind") == "4k"),
                   key=lambda k: k["after"])
    if knees and size >= knees[-1].get("settled", np.inf):
        # no level holds a working set at which the ladder has settled on its last plateau
        # (memory): the largest size with power-of-two sets below it. A VM's share of a large
        # L3 whose ladder rises in one slope from L2 to memory gives no knee of its own
        sets = max(1, (int(knees[-1]["settled"]) - 1) // (ways * line))
        size = (1 << (sets.bit_length() - 1)) * ways * line
    if private or level_index >= len(knees) or knees[level_index]["after"] > size / 2:
        return size
    sets = max(1, int(knees[level_index]["after"]) // (ways * line))
    return (1 << (sets.bit_length() - 1)) * ways * line


def host_cache_config(machine: dict, calibration: dict | None = None) -> HierarchyConfig:
    """Data/unified caches of this host from sysfs (L1d, L2, L3); with a calibration, each
    level's latency from the measured ladder's plateau, its capacity from the measured knees
    where they show less than sysfs says (``_effective_bytes``), and memory latency from the
    largest working set (the THP ladder's when there is one: no TLB misses in it). Without one,
    the ``zen3-vm`` preset's latencies."""
    base = HierarchyConfig.preset("zen3-vm")
    levels = []
    for c in sorted(machine.get("caches", []), key=lambda c: c.get("level") or 0):
        if c.get("type") not in ("Data", "Unified") or not c.get("size_bytes"):
            continue
        i = len(levels)
        name = f"L{c['level']}"
        lat = _plateau_cycles(calibration, name) or (
            base.levels[i].latency_cycles if i < len(base.levels) else 60)
        ways, line = int(c.get("ways") or 8), int(c.get("line_bytes") or 64)
        sets = c["size_bytes"] // (ways * line)
        if sets <= 0:
            raise InputError(f"host preset: {name} of {c['size_bytes']} bytes / {ways} ways has "
                             f"no sets")
        # the simulator indexes sets by bits: a level whose sysfs sets are not a power of two
        # (a 480 MiB L3 / 16 ways: 491520 sets, on a Granite Rapids VM) keeps the largest
        # power of two below; the measured knees then bound it as any other
        size = (1 << (sets.bit_length() - 1)) * ways * line
        cpus = str(c.get("shared_cpu_list") or "")
        private = bool(cpus) and cpus.isdigit()         # one CPU: "3", not "0-1" or "0,2"
        size = _effective_bytes(size, ways, line, i, calibration, private)
        levels.append(CacheConfig(name, size, ways, line, latency_cycles=lat))
    if not levels:
        raise InputError("host preset: the machine description has no sysfs cache sizes")
    summ = (calibration or {}).get("summary") or {}
    ghz = summ.get("clock_ghz")
    dram = summ.get("dram_ns_thp") or summ.get("dram_ns_4k")
    mem = int(round(dram * ghz)) if dram and ghz else base.memory_latency_cycles
    return dataclasses.replace(base, levels=tuple(levels), memory_latency_cycles=mem)


def load_host(spec: str) -> tuple[MMUConfig, HierarchyConfig]:
    """``host`` (describe this machine now) or ``host:FILE.json`` (a ``simkit bench cpu
    --calibration`` file: its machine and measured latencies; where CPUID hides the TLBs, the
    L2 TLB's size its TLB ladder shows, ``stlb_from_knees``)."""
    if spec == "host":
        from simkit.bench.cpu.machine import describe_machine

        machine, cal = describe_machine(), None
    else:
        path = Path(spec.partition(":")[2])
        try:
            cal = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a calibration ({exc.__class__.__name__})") from None
        if not isinstance(cal, dict) or not isinstance(cal.get("machine"), dict):
            raise InputError(f"{path}: no 'machine' (write it with simkit bench cpu "
                             f"--calibration)")
        machine = cal["machine"]
    stlb = None
    if cal is not None and tlb_source(machine) != "cpuid":   # hidden: the measured knee
        doc = host_mmu_config(machine)
        knees = [k for k in cal.get("knees") or [] if isinstance(k, dict)
                 and k.get("sweep") == "tlb" and k.get("page_kind") == "4k"
                 and isinstance(k.get("before"), (int, float))
                 and isinstance(k.get("after"), (int, float))]
        stlb = stlb_from_knees(knees, doc.l1d.entries, doc.l2.entries)
    return host_mmu_config(machine, cal, stlb_entries=stlb), host_cache_config(machine, cal)
