"""Documented core parameters of the host's microarchitecture: what the host preset cannot
measure (outstanding-miss limit, reorder buffer, load queue, walkers) and, where CPUID hides it
(Intel under a hypervisor that zeroes leaf 0x18), the TLB geometry.

Every value here is documented, not measured, and is labelled so in the preset it goes into
(``source``). The microarchitecture is recognised from the machine description
(``simkit.bench.cpu.machine.describe_machine()``): vendor and family, and for Intel the sysfs
cache geometry, since hypervisors report masked model numbers (a Granite Rapids VM here
reported family 6 model 167, Rocket Lake's number, with 48 KiB L1D / 2 MiB L2 caches).
"""
from __future__ import annotations

from dataclasses import dataclass

KIB, MIB = 1 << 10, 1 << 20


@dataclass(frozen=True)
class Uarch:
    name: str
    width: int
    rob: int
    lq: int
    sq: int
    walkers: int
    mshrs: int                      # L1D outstanding misses (fill buffers / MSHRs)
    walk_mshrs: bool                # page-walk loads go through the L1D and take its MSHRs
    l1_dtlb: tuple | None           # (entries, ways) of the 4 KiB L1 DTLB, when CPUID hides it
    stlb: tuple | None              # (entries, ways) of the L2 TLB
    source: str


# Golden Cove and its server/client derivatives (Sapphire Rapids, Emerald Rapids, Granite
# Rapids' Redwood Cove, Alder/Raptor Lake P-cores): 6-wide, ROB 512, 192 loads, 114 stores,
# 16 L1D fill buffers, 4 page walkers, L1 DTLB 96 entries (loads, 6-way), STLB 2048 (4K/2M).
# The page walker's loads go through the L1D and its fill buffers (Intel's perfmon events
# PAGE_WALKER_LOADS.DTLB_L1/L2/L3/MEMORY count where they hit, the first as "L1+FB"), so a PTE
# read that misses the L1D takes a fill buffer as a data miss does.
GOLDEN_COVE = Uarch(
    "intel-golden-cove-class", width=6, rob=512, lq=192, sq=114, walkers=4, mshrs=16,
    walk_mshrs=True, l1_dtlb=(96, 6), stlb=(2048, 16),
    source="documented, not measured: Intel 64 and IA-32 Architectures Optimization Reference "
           "Manual, Golden Cove microarchitecture (16 L1D fill buffers, 4 page walkers, DTLB "
           "96 / STLB 2048 entries, ROB 512, LQ 192, SQ 114); the page walker's loads are "
           "looked up in the L1D and its fill buffers (PAGE_WALKER_LOADS.DTLB_L1: 'hits in "
           "the L1+FB')")
# AMD family 19h (Zen 3 / Zen 4): the ``zen3`` core preset (6-wide, ROB 256, 72 loads, 64
# stores, 6 table walkers) and 24 outstanding L1D misses; TLBs come from CPUID. Whether its
# table walker's reads take L1D miss buffers is not documented: they are left out.
AMD_19H = Uarch(
    "amd-family-19h", width=6, rob=256, lq=72, sq=64, walkers=6, mshrs=24,
    walk_mshrs=False, l1_dtlb=None, stlb=None,
    source="documented, not measured: AMD Software Optimization Guide for family 19h "
           "(6 table walkers, 72 loads, 64 stores; 24 outstanding L1D misses)")


def _cache_bytes(machine: dict, level: int) -> int | None:
    for c in machine.get("caches", []):
        if c.get("level") == level and c.get("type") in ("Data", "Unified"):
            return c.get("size_bytes")
    return None


def identify(machine: dict) -> Uarch | None:
    """The documented microarchitecture of ``machine``, or None when it is not one of these."""
    vendor, family = machine.get("vendor"), machine.get("cpu_family")
    if vendor in ("AuthenticAMD", "HygonGenuine") and family == 0x19:
        return AMD_19H
    if vendor == "GenuineIntel" and family == 6 and _cache_bytes(machine, 1) == 48 * KIB \
            and _cache_bytes(machine, 2) == 2 * MIB:
        return GOLDEN_COVE
    return None
