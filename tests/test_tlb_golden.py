"""simkit.tlb checked against values written from the rules, not from our code (issue 13).

Every expected number below is computed by hand in the test, from x86-64 radix rules (4 levels
of 512 8-byte entries, 9 VA bits each; a 64-byte line holds the PTEs of 8 consecutive entries;
a 2 MiB page ends the walk at the PD; a nested 2D walk reads (4+1)(4+1)-1 = 24 PTEs) and the
Victima artifact's charging rule (``memory_manager.cc`` ``accessTLBSubsystem``, REFERENCE.md
1.2: a TLB-block hit costs the L1 TLB cycle + the holding level's data access time, 4 / 16 / 20
c; a walk costs L1 TLB + STLB + the walk). simkit's walk timing: the page-walk-cache latency once,
then each PTE read at the latency of the cache level that serves it (memory when no level holds
the line). No simkit call computes an expected value; simkit only runs the traces.
"""
import numpy as np
import pytest

from simkit.cache import CacheConfig, HierarchyConfig
from simkit.tlb import MMU, MMUConfig, TLBConfig
from simkit.trace.format import ACCESS_DTYPE, make_records

# latencies of the radix preset (REFERENCE.md 1.1) written out, so the arithmetic reads alone
L1_TLB, STLB, PWC, L1D, MEM = 1, 12, 4, 5, 117
NESTED_TLB = 1                      # nested TLB hit (REFERENCE.md 1.1)
KIB4, MIB2, GIB1, GIB512 = 1 << 12, 1 << 21, 1 << 30, 1 << 39


def radix(**kw):
    """victima-radix with 4 KiB pages only and no data accesses: only PTE lines enter the
    caches, so which level holds a PTE line follows from the walks alone (the 32 KiB 8-way L1D
    keeps every line these short traces read)."""
    return MMUConfig.preset("victima-radix").replace(
        **dict(dict(huge_page_fraction=0.0, data_through_caches=False), **kw))


def step(mmu, va):
    """Translate one address; the per-access (translation cycles, walks, PTE reads, 2 MiB
    walks)."""
    s = mmu.run(make_records([va]), progress=False)
    return s.translation_cycles, s.walks, s.walk_refs, int(s.to_frame().walks_2m[0])


def test_radix_walks_and_page_walk_caches_by_hand():
    mmu = MMU(radix())
    va = 0x10000000                   # PML4 index 0, PDPT 0, PD 128, PT 0
    # cold: the 4 PWCs/TLBs are empty; 4 PTE reads (PML4, PDPT, PD, PT), all from memory
    assert step(mmu, va) == (L1_TLB + STLB + PWC + 4 * MEM, 1, 4, 0)
    # next 4 KiB page, same 2 MiB region: PD-PWC hit, only the PT entry is read; PT index 1
    # shares the 64-byte line of index 0 (8 PTEs per line), read just now, so the L1D serves it
    assert step(mmu, va + KIB4) == (L1_TLB + STLB + PWC + L1D, 1, 1, 0)
    # 2 MiB away in the same 1 GiB: PD-PWC miss, PDPT-PWC hit: the PD entry (index 129, the
    # line of index 128: L1D) and the PT entry of a new PT node (memory)
    assert step(mmu, va + MIB2) == (L1_TLB + STLB + PWC + L1D + MEM, 1, 2, 0)
    # 1 GiB away in the same 512 GiB: PML4-PWC hit only: the PDPT entry (index 1, the line of
    # index 0: L1D), then a new PD node and a new PT node (memory)
    assert step(mmu, va + GIB1) == (L1_TLB + STLB + PWC + L1D + 2 * MEM, 1, 3, 0)
    # a page already translated hits the L1 TLB: 1 cycle, no walk
    assert step(mmu, va) == (L1_TLB, 0, 0, 0)


def test_2mib_page_cold_walk_reads_three_ptes():
    mmu = MMU(radix(huge_page_fraction=1.0))
    # the walk ends at the PD entry, which maps the page: PML4, PDPT, PD from memory
    assert step(mmu, 0x40000000 + 12345) == (L1_TLB + STLB + PWC + 3 * MEM, 1, 3, 1)
    # another address in the same 2 MiB page hits the L1 TLB's 2 MiB entry
    assert step(mmu, 0x40000000 + MIB2 - 64) == (L1_TLB, 0, 0, 0)
    # the next 2 MiB page: PDPT-PWC hit (the PD cache holds no leaf), the PD entry (index 1,
    # the line of index 0) from the L1D
    assert step(mmu, 0x40000000 + MIB2) == (L1_TLB + STLB + PWC + L1D, 1, 1, 1)


def nested(**kw):
    return radix(nested=True, **kw)


def test_nested_cold_walk_24_reads_and_cycles():
    """A cold 2D walk (guest and host 4-level tables, empty PWCs and nested TLB).

    Guest page-table nodes are guest-physical frames 0 (root), 1, 2, 3 of the page-table zone:
    four consecutive guest-physical pages of one 2 MiB region, so after the first host walk
    every later host walk of a node reads the same host PML4/PDPT/PD entries and a host PT entry
    within the same line (indexes 0..3): 4 L1D hits. Each guest PTE itself lies in a
    host frame not read before: memory. The data's guest PA (the first 4 KiB data frame, far
    below the page-table zone) has a different host PML4 entry in a different line: a cold
    host walk (4 reads from memory)."""
    mmu = MMU(nested())
    va = 0x7F0012345000
    host_cold = NESTED_TLB + 4 * MEM          # nested TLB miss, then 4 host reads
    host_warm = NESTED_TLB + 4 * L1D
    guest_root = host_cold + MEM                   # translate the PTE's gPA, then read it
    guest_node = host_warm + MEM
    data = host_cold
    cycles = L1_TLB + STLB + PWC + guest_root + 3 * guest_node + data
    reads = 4 + 4 * 4 + 4                          # guest PTEs, their host walks, the data's
    assert reads == 24 == (4 + 1) * (4 + 1) - 1
    assert step(mmu, va) == (cycles, 1, reads, 0)
    df = mmu.stats.to_frame().iloc[0]
    assert (df.host_walks, df.host_walk_refs, df.nested_tlb_misses) == (5, 20, 5)


def test_nested_repeat_after_tlb_eviction():
    """After the translation left both TLBs, a repeat walks again, but with the PD-PWC hit and
    the nested TLB holding the guest PT node's page and the data page: 1 guest PTE read (from
    the L1D), no host walk."""
    cfg = nested(l1d=TLBConfig("L1D-TLB", 4, 4, L1_TLB), l2=TLBConfig("L2-TLB", 8, 4, STLB))
    mmu = MMU(cfg)
    va = 0x7F0012345000
    step(mmu, va)
    for k in range(1, 17):            # 16 more pages of the same 2 MiB region: 8 per STLB set,
        step(mmu, va + k * KIB4)      # 4 ways each, so va leaves the STLB; the L1 TLB holds 4
    cycles = L1_TLB + STLB + PWC + (NESTED_TLB + L1D) + NESTED_TLB
    assert step(mmu, va) == (cycles, 1, 1, 0)
    assert mmu.stats.to_frame().host_walks[0] == 5 + 16   # one per eviction page's data gPA


# --- Victima, as its artifact charges it ------------------------------------------------------

ART_L1D, ART_L2, ART_LLC = 4, 16, 20      # the artifact's data access times (REFERENCE.md 1.1)
VIC_PWC = 3                               # PWC hit in Victima's configs
TINY_LRU = HierarchyConfig(levels=(CacheConfig("L1D", 128, 2, latency_cycles=5),      # 1 set
                                   CacheConfig("L2", 256, 4, latency_cycles=19),       # 1 set
                                   CacheConfig("LLC", 512, 8, latency_cycles=24)),     # 1 set
                           memory_latency_cycles=MEM)


def test_victima_artifact_neighbour_hits_cost_5_17_21():
    """Single-set LRU caches (non-inclusive: a miss fills every level) make the block's level
    follow by hand. Page A's walk first reads A's block in (victimize_on_ptw, uncharged), then
    4 PTE lines: the 2-way L1D keeps the last 2 PTE lines, the 4-way L2 the 4 PTE lines (the
    block, oldest, is out), the 8-way LLC all 5. The STLB is filled only by L1 TLB victims, and
    the 64-entry L1 TLB evicts nothing here, so every new page misses both TLBs."""
    cfg = MMUConfig.preset("victima-artifact").replace(
        huge_page_fraction=0.0, data_through_caches=False, caches=TINY_LRU)
    mmu = MMU(cfg)
    a = 0x200000000                    # VPN a multiple of 8: pages a..a+7 share a block
    assert step(mmu, a) == (L1_TLB + STLB + VIC_PWC + 4 * MEM, 1, 4, 0)   # 13 + the walk
    # A+1: the block is in the LLC only: 1 + 20, no walk; the read copies it into L2 and L1D
    assert step(mmu, a + KIB4) == (L1_TLB + ART_LLC, 0, 0, 0) == (21, 0, 0, 0)
    # A+2: now in the L1D: 1 + 4
    assert step(mmu, a + 2 * KIB4) == (L1_TLB + ART_L1D, 0, 0, 0) == (5, 0, 0, 0)
    # C = A+8 (the next block): its block and its PT line (PTEs 8..15: a new line; PD-PWC hit,
    # 1 read from memory) enter L1D and L2, pushing A's block out of the 2-way L1D; the L2
    # (LRU: PDPT, PD, PT, block A after A+1's copy) drops PDPT and PD, keeps block A
    assert step(mmu, a + 8 * KIB4) == (L1_TLB + STLB + VIC_PWC + MEM, 1, 1, 0)
    # A+3: block A in the L2 only: 1 + 16
    assert step(mmu, a + 3 * KIB4) == (L1_TLB + ART_L2, 0, 0, 0) == (17, 0, 0, 0)
    df = mmu.stats.to_frame().iloc[0]
    assert (df.victima_hits_l1d, df.victima_hits_l2, df.victima_hits_llc) == (1, 1, 1)


def test_victima_paper_probe_timings():
    """The paper's mode: a block in the L2 aborts the walk, so a hit costs the shorter of the
    block and the walk. After the STLB miss ("after-stlb"): L1 TLB + STLB + min(L2, walk);
    beside the STLB lookup ("parallel-stlb"): L1 TLB + min(L2, STLB + walk). Same tiny caches;
    page A's walk re-tags its PT line in the L2 into A's block (PTW-CP off: every walk inserts);
    the L1D still holds the walk's last two lines (PD, PT). For A+1 the walk would be the PWC
    (PD hit) + the PT line from the L1D."""
    l2 = 19
    walk = VIC_PWC + L1D
    for probe, expect in (("after-stlb", L1_TLB + STLB + min(l2, walk)),
                          ("parallel-stlb", L1_TLB + min(l2, STLB + walk))):
        cfg = MMUConfig.preset("victima-paper").replace(
            huge_page_fraction=0.0, data_through_caches=False, caches=TINY_LRU,
            victima_ptw_cp=False, victima_probe=probe)
        mmu = MMU(cfg)
        a = 0x200000000
        assert step(mmu, a) == (L1_TLB + STLB + VIC_PWC + 4 * MEM, 1, 4, 0)
        assert step(mmu, a + KIB4) == (expect, 0, 0, 0), probe
        assert mmu.stats.to_frame().victima_hits_l2[0] == 1
    assert (L1_TLB + STLB + min(l2, walk), L1_TLB + min(l2, STLB + walk)) == (21, 20)


def test_a_pte_line_only_the_llc_holds_is_served_by_the_llc():
    """The LLC serves a PTE read when the L2 has dropped the line and the LLC has not (the
    counter path behind "page-table reads served by the LLC"). Same single-set LRU caches
    (L1D 2 ways, L2 4, LLC 8; a miss fills every level, an L2 hit fills the L1D only).

    A cold: PML4, PDPT, PD, PT lines from memory; L1D [PD, PT], L2 and LLC all four.
    B = A + 1 GiB (PML4-PWC hit): the PDPT line (index 1 beside 0) misses the L1D, hits the L2;
    then B's new PD and PT nodes from memory. The L2 drops PML4 and PD (LRU: PDPT was touched),
    the 8-way LLC drops nothing.
    C = A + 2 MiB (PDPT-PWC hit, PD-PWC miss): the PD entry (index 129, the line of A's 128) is
    in neither the L1D [PD_B, PT_B] nor the L2 [PT, PDPT, PD_B, PT_B]: the LLC serves it
    (24 c); C's new PT node from memory."""
    llc, l2 = 24, 19
    mmu = MMU(radix(caches=TINY_LRU))
    a = 0x10000000
    assert step(mmu, a) == (L1_TLB + STLB + PWC + 4 * MEM, 1, 4, 0)
    assert step(mmu, a + GIB1) == (L1_TLB + STLB + PWC + l2 + 2 * MEM, 1, 3, 0)
    assert step(mmu, a + MIB2) == (L1_TLB + STLB + PWC + llc + MEM, 1, 2, 0) == (158, 1, 2, 0)
    df = mmu.stats.to_frame().iloc[0]
    assert (df.walk_refs_l1d, df.walk_refs_l2, df.walk_refs_llc, df.walk_refs_memory) == \
        (0, 1, 1, 4 + 2 + 1)


# --- invariants ---------------------------------------------------------------------------------

def random_trace(n, seed, base=0x10000000, span=64 << 20):
    rng = np.random.default_rng(seed)
    recs = np.zeros(n, dtype=ACCESS_DTYPE)
    hot = base + rng.integers(0, span // 4096, 300) * 4096
    recs["addr"] = np.where(rng.random(n) < 0.6, hot[rng.integers(0, 300, n)],
                            base + rng.integers(0, span, n)).astype(np.uint64)
    recs["op"] = rng.choice([0, 1, 3], n)
    recs["size"] = 8
    recs["icount"] = 3
    return recs


@pytest.mark.parametrize("huge", [0.0, 0.3, 1.0])
def test_walk_read_identity(huge):
    """Each 4 KiB walk reads 4 PTEs and each 2 MiB walk 3, less what the deepest PWC hit skips:
    a PD hit skips 3 (PML4, PDPT, PD), a PDPT hit 2, a PML4 hit 1."""
    span = (4 << 30) if huge == 1.0 else (64 << 20)        # 2048 or 32 regions of 2 MiB
    s = MMU(MMUConfig.preset("victima-radix").replace(huge_page_fraction=huge)).run(
        random_trace(30_000, 1, span=span), progress=False)
    w2 = int(s.to_frame().walks_2m[0])
    w4 = s.walks - w2
    pml4_hits, pdpt_hits, pd_hits = (int(x) for x in s.counters[11:14])
    assert s.walks > 1000 and pml4_hits + pdpt_hits + pd_hits > 0
    assert s.walk_refs == 4 * w4 + 3 * w2 - 3 * pd_hits - 2 * pdpt_hits - pml4_hits


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("preset", ["victima-radix", "victima-artifact", "victima-paper"])
def test_shift_by_512_gib_changes_no_counter(preset, k):
    """Moving the whole trace by k x 512 GiB changes only the PML4 index (0 -> k, in the same
    64-byte root line for k < 8): TLB and PWC set indexes, frames (first-touch order) and the
    lines read are the same, so every counter is. 4 KiB pages: the 2 MiB-page choice is a
    seeded hash of the region number, which the shift changes."""
    cfg = MMUConfig.preset(preset).replace(huge_page_fraction=0.0)
    recs = random_trace(20_000, 2)
    a = MMU(cfg).run(recs, progress=False)
    recs["addr"] += np.uint64(k * GIB512)
    b = MMU(cfg).run(recs, progress=False)
    assert a.walks > 1000
    assert np.array_equal(a.counters, b.counters)
    assert np.array_equal(a.cache_counters, b.cache_counters)


def test_more_stlb_ways_never_more_walks():
    """LRU is a stack algorithm per set: with the sets fixed (128), a set with more ways holds
    a superset of what a smaller one holds, and the STLB sees the same lookups (the L1 TLB is
    unchanged), so walks never grow with ways."""
    recs = random_trace(40_000, 3, span=256 << 20)
    walks = [MMU(MMUConfig.preset("victima-radix").replace(
        l2=TLBConfig("L2-TLB", 128 * w, w, 12))).run(recs, progress=False).walks
        for w in (2, 4, 8, 12, 16)]
    assert walks == sorted(walks, reverse=True) and walks[0] > walks[-1]


@pytest.mark.parametrize("mode", ["artifact", "paper"])
def test_victima_that_places_no_block_equals_radix(mode):
    """Victima whose L2 never receives a TLB block (no insertion after walks, none on STLB
    evictions) must be radix: lookups that find nothing change nothing. Same data caches (LRU)
    and STLB fill on both sides; only victima_misses differs."""
    caches = HierarchyConfig.preset("victima-baseline")
    caches = HierarchyConfig(levels=tuple(
        CacheConfig(lv.name, lv.size_bytes, lv.ways, latency_cycles=lv.latency_cycles)
        for lv in caches.levels), memory_latency_cycles=caches.memory_latency_cycles)
    vic = dict(victima=True, victimize_on_ptw=False, victima_insert_on_eviction=False)
    if mode == "paper":
        vic.update(victima_l2_only=True)
        base = MMUConfig.preset("victima-radix")
    else:
        vic.update(artifact_compat=True, victima_probe="parallel-stlb",
                   victima_block_cycles=(4, 16, 20))
        base = MMUConfig.preset("victima-radix").replace(stlb_fill="l1-victims")
    base = base.replace(caches=caches, pwc_latency_cycles=3)
    recs = random_trace(30_000, 4)
    r = MMU(base).run(recs, progress=False)
    v = MMU(base.replace(**vic)).run(recs, progress=False)
    fr, fv = r.to_frame().iloc[0], v.to_frame().iloc[0]
    assert fv.victima_misses == r.l2_misses > 1000
    for col in ("walks", "walk_refs", "translation_cycles", "l2_tlb_misses", "l1d_tlb_misses",
                "mean_walk_cycles", "walk_refs_memory", "victima_hits_l2"):
        assert fr[col] == fv[col], col
    assert np.array_equal(r.cache_counters, v.cache_counters)
