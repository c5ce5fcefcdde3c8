"""Jitted address translation: page table on first touch, TLBs, page-walk caches, radix walks
whose PTE reads go through the data-cache kernel (numpy + numba, and simkit.cache's kernels).

Page table (``pt_keys``/``pt_vals``: open addressing, linear probing, EMPTY keys; ``pt_meta``):

    key = kind << 58 | number                 value
    K_PAGE   4 KiB page number (va >> 12)       4 KiB frame number        (4 KiB regions only)
    K_REGION 2 MiB region number (va >> 21)     2 MiB frame << 1 | 1 if the region is one 2 MiB
                                                page, else 0
    K_NODE+l radix node of level l (1 = PT ... 5), numbered by the VA bits above it
                                                4 KiB frame of the node (in the page-table zone)

Physical zones (bytes): 4 KiB data frames from 0, 2 MiB frames from 2^41, page-table nodes from
2^43. ``placement`` contiguous hands out frames in first-touch order; random scatters them with
a seeded bijection over 2^28 frames (no two pages share a frame), or, for 4 KiB frames and
page-table nodes, over the power of two of frames ``placement_span_bytes`` asks for (pt_meta's
PM_RANDOM holds the bijection's mask; frames beyond the span are handed out in order past
it), in runs of ``placement_run_frames`` consecutive frames whose starts are scattered
(PM_RUN; 4 KiB frames and nodes). A region is a 2 MiB page when a seeded hash of its number falls below
``huge_page_fraction``.

TLB and PWC arrays are ``simkit.cache`` state (``CacheState`` tuples) whose "lines" are keys:
TLB key = page number | SIZE_2M for 2 MiB pages (bit 62, so the set index comes from the page
number); PWC key = the VA bits above the cached level.
Levels of that state: 0 L1D-TLB, 1 L1I-TLB, 2 L2-TLB, 3 PML4-PWC, 4 PDPT-PWC, 5 PD-PWC,
6 POM-TLB, 7 L3-TLB (optional: probed after an L2 TLB miss, before the POM-TLB and the walk;
filled by walks, or by L2 TLB victims when ``stlb_fill`` is "l1-victims").

Victima (MICRO 2023), as in its artifact (``tlb.cc``, REFERENCE.md 1.2): a TLB block is one
cache line holding the 8 PTEs of 8 consecutive pages, line number ``VPN >> 3`` tagged with
namespace bit TB_NS (and, unless ``artifact_compat``, the page-size bit TB_2M), so blocks never
alias data. After an L2 TLB miss the block of the translation (page size from the page table)
is looked for, by presence, in the first cache level, then the next, ...; a hit in level k > 0 is
read through the hierarchy (filling the levels above) and costs level k's block-hit cycles
(``victima_block_cycles``: the artifact's data access time; default the level's latency), added
after the L2 TLB's latency, or instead of it with ``P_VIC_PARALLEL`` (``victima_probe``
"parallel-stlb", the artifact's charging); a hit skips the walk. With ``victimize_on_ptw`` a
block found nowhere is read in (uncharged) before the walk; with ``insert_on_eviction`` the
block of a translation evicted from the L2 TLB is read in (uncharged) when no level holds it.
A resident block serves all 8 pages (no valid bits, as the artifact).

Victima as its paper describes it (``victima_l2_only``, REFERENCE.md 1.2-1.3): blocks live in
the L2 cache only (cache level P_VIC_LEVEL). After an L2 TLB miss the L2 is probed in parallel
with the walk; a hit ends the translation at the L2's latency. After a walk, a translation the
PTW cost predictor calls costly gets its block: the leaf-PTE line the walk brought into the L2
is re-tagged (it leaves, the block takes its place). An L2 TLB victim that is costly and has no
block gets a background walk (uncharged, uncounted as a walk), then its block. PTW-CP keeps a
3-bit walk-frequency and a 4-bit walk-cost counter (walks with a PTE read from memory) per
translation, beside the page table (kind K_PTWCP), as the paper keeps them in unused PTE bits;
a comparator on the two ranges decides. Translation pressure: every ``P_EPOCH`` instructions
the L2 TLB MPKI of the epoch is compared with a threshold; while it is above its threshold, srrip-victima's TLB-aware mode is on in the L2 cache; while the L2 cache's own
demand MPKI is above another threshold, the predictor is bypassed (every translation is costly).
Our reading of REFERENCE.md 1.3's "bypassed when L2 MPKI > 5": L2 *cache* MPKI, as a cache
whose data sees little reuse loses little to blocks (the TLB MPKI reading would bypass the
predictor in every workload the paper evaluates, all at STLB MPKI well above 5).

Nested paging (``P_NESTED``; REFERENCE.md 1.4): the guest table (kinds above) maps guest VAs to
guest PAs; a host table (kinds K_HOST + kind, frames from the host's own counters, its own
huge-region share) maps guest PAs to host PAs, which the caches see. A 2D walk reads each guest
PTE at its host PA, translating the guest PA of the PTE first, and finally the data's guest PA:
each translation probes the nested TLB (guest-physical pages), then, with Victima, a nested
TLB block (namespace TB_NESTED), then walks the host table (no PWCs), up to (4+1)(4+1)-1 = 24
PTE reads. TLBs cache guest VA -> host PA. Victima's blocks work as natively for guest
translations; nested blocks are read in (artifact) or placed in the L2 (paper: after host walks
when ``victimize_on_ptw``, and with a background host walk) on nested TLB evictions. Not
modelled: the artifact's nested TLB keyed by guest VA and its skipped final step (bugs, REFERENCE
1.4). The page size of a translation is the guest's, or with ``nested_splinter`` (P_SPLINTER)
the smaller of the guest's and the host's, as x86 TLBs cache a guest 2 MiB page that the host
maps with 4 KiB pages (a walk's translation only; Victima's blocks keep the guest's size).

POM-TLB (Ryoo et al., ISCA 2017), as in the Victima artifact (``tlb.cc``): a large set-associative
TLB in memory (zone 2^44, 16-byte entries, a set's ways side by side). On an L2 TLB miss the
line holding the set of the 4 KiB key and the line holding the set of the 2 MiB key are both
read through the data caches; a hit costs the read latency of its own line, a miss the larger of
the two, before the walk. Translations evicted from the L2 TLB are inserted (and their line is
read). The artifact indexes the in-memory sets with the L2 TLB's geometry; here each POM-TLB
set has its own address.
"""
import numpy as np
from numba import njit

from simkit.cache import _kernels as CK
from simkit.core import _kernels as CoreK

EMPTY = CK.EMPTY
NOSLOT = CK.NOSLOT
ONE = np.uint64(1)
ZERO = np.uint64(0)

K_PAGE, K_REGION, K_NODE = 0, 1, 2
K_PTWCP = 8                          # + 1 for 2 MiB translations: PTW-CP counters of a PTE
K_HOST = 10                          # nested paging: the host table's kinds are K_HOST + kind
HOST_SALT = np.uint64(0x5DEECE66D1CE4E5B)   # the host's huge-region hash differs from the guest's
SIZE_2M = np.uint64(1 << 62)
KIND_SHIFT = np.uint64(58)

# pt_meta fields (and the pressure epoch: instructions so far, L2 TLB and L2 cache misses at
# its start, the two switches' states)
PM_COUNT, PM_MASK, PM_NEXT4K, PM_NEXT2M, PM_NEXTNODE, PM_SEED, PM_HUGE_THRESH, PM_RANDOM, \
    PM_LEVELS, PM_EPOCH_INSTR, PM_EPOCH_MISSES, PM_PRESSURE, PM_EPOCH_CMISSES, \
    PM_CACHE_PRESSURE, PM_H_NEXT4K, PM_H_NEXT2M, PM_H_NEXTNODE, PM_H_HUGE_THRESH, \
    PM_RUN = range(19)
NPM = 19
PT_SLACK = 64       # page-table entries one record may add at most (the front grows the table)
ZONE_2M = np.uint64(1 << 41)
ZONE_PT = np.uint64(1 << 43)
ZONE_POM = np.uint64(1 << 44)
TB_NS = CK.TLB_LINE                 # TLB-block line numbers (data lines are PA >> 6 < 2^50)
TB_2M = np.uint64(1 << 55)
TB_NESTED = np.uint64(1 << 54)      # nested TLB blocks (gPA -> hPA)
POM_ENTRY_BYTES = 16
SCATTER_BITS = np.uint64(28)
SCATTER_MASK = np.uint64((1 << 28) - 1)

# TLB state levels
# (numpy ints and bools, not Python ones: a Python constant passed to a helper is a literal
# type, and numba compiles the helper again for each literal value)
T_L1D, T_L1I, T_L2, T_PWC4, T_PWC3, T_PWC2, T_POM, T_L3, T_NTLB = (np.int64(i) for i in range(9))
YES, NO = np.bool_(True), np.bool_(False)

# counters
(C_L1D_HIT, C_L1D_MISS, C_L1I_HIT, C_L1I_MISS, C_L2_HIT, C_L2_MISS, C_WALKS, C_WALKS_2M,
 C_WALK_REFS, C_WALK_CYCLES, C_TRANSLATION_CYCLES, C_PWC_HIT, C_PWC_MISS, C_REFS_AT,
 C_DATA_ACCESSES, C_PAGES_4K, C_PAGES_2M, C_NODES, C_POM_HIT, C_POM_MISS, C_POM_REFS,
 C_POM_CYCLES, C_POM_INSERTS, C_L3_HIT, C_L3_MISS, C_VIC_HIT_AT, C_VIC_MISS, C_VIC_ALLOC_PTW,
 C_VIC_ALLOC_EVICT, C_PTWCP_COSTLY, C_PTWCP_CHEAP, C_PTWCP_BYPASS, C_VIC_BG_WALKS, C_EPOCHS,
 C_PRESSURE_EPOCHS, C_NTLB_HIT, C_NTLB_MISS, C_HOST_WALKS, C_HOST_REFS, C_HOST_CYCLES,
 C_NVIC_HIT, C_NVIC_ALLOC, C_HOST_PAGES, C_HOST_NODES) = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 17, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
    42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59)
NCOUNT = 60        # C_VIC_HIT_AT: TLB-block hits by cache level (up to 7)        # C_PWC_HIT/C_PWC_MISS: 3 each (PML4, PDPT, PD); C_REFS_AT: up to 7 levels
CORE_INFO_MASK = np.uint64(0x01FF0000FFFFFFFF)   # a record's icount, op and flags bit 0
WALK_DRAM_BIT = np.int64(1) << 40   # in the core buffer's info row: the record's walk read memory
WALK_MISS_SHIFT = 32                # the core buffer's walk row: walk cycles in the low 32 bits,
WALK_CYCLES = (np.int64(1) << 32) - 1   # the cycles of its PTE reads beyond the L1D above them
HIST_BINS = 64     # walk latency histogram, 16-cycle bins (the last bin collects the rest)
HIST_WIDTH = 16
MEMO_SLOTS = 4096   # run_mmu's memo of translations (direct-mapped by 4 KiB page number)

# params (int64)
P_LAT_L1D, P_LAT_L1I, P_LAT_L2, P_LAT_PWC, P_STLB_FILL_VICTIMS, P_DATA, P_MODE, P_NLEV = range(8)
P_PWC_ON = 8       # params[8 + pl]: PWC pl (0 PML4, 1 PDPT, 2 PD) is present
P_POM_ON = 11
P_L3_ON, P_LAT_L3 = 12, 13
P_VICTIMA, P_VIC_PTW, P_VIC_EVICT, P_VIC_SIZE_TAG = 14, 15, 16, 17
P_VIC_L2ONLY, P_VIC_LEVEL = 18, 19          # the paper's L2-only blocks; the L2's cache level
P_PTWCP, P_PTWCP_F_LO, P_PTWCP_F_HI, P_PTWCP_C_LO, P_PTWCP_C_HI = 20, 21, 22, 23, 24
P_EPOCH, P_PRESSURE_MPKI_X1000, P_PRESSURE_RRIP, P_BYPASS_MPKI_X1000 = 25, 26, 27, 28
P_NESTED, P_LAT_NTLB = 29, 30
P_VIC_PARALLEL = 31    # TLB-block probe starts with the L2 TLB lookup (its latency not charged)
P_PTWCP_ARTIFACT = 32  # PTW-CP comparator: the artifact's offline rule instead of the ranges
P_SPLINTER = 33        # nested: a guest 2 MiB page over a host 4 KiB page is cached as 4 KiB
P_CACHE_LAT = 40   # params[40 + k]: latency of cache level k; [40 + nlev]: memory (flags below 40)
#                    params[41 + nlev + k]: cycles of a TLB-block hit in cache level k
if P_PTWCP_ARTIFACT >= P_CACHE_LAT:          # the flags must stay below the latency block
    raise ImportError("simkit.tlb._kernels: parameter indices overlap P_CACHE_LAT")


@CK.helper
def _mix(x):
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


@CK.helper
def _scatter(n, seed, mask):
    """A seeded bijection of the frame numbers ``0..mask`` (``mask`` + 1 a power of two:
    multiply by odd and xor-shift steps)."""
    x = (n + seed) & mask
    x = (x * np.uint64(0x9E3779B1)) & mask
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0x85EBCA77)) & mask
    x ^= x >> np.uint64(11)
    return x


@CK.helper
def _pt_slot(keys, meta, key):
    """Slot holding ``key``, or the empty slot where it belongs."""
    mask = meta[PM_MASK]
    s = _mix(key) & mask
    while True:
        k = keys[s]
        if k == key or k == EMPTY:
            return s
        s = (s + ONE) & mask


@CK.helper
def _new_frame(meta, field):
    n = meta[field]
    meta[field] = n + ONE
    mask = meta[PM_RANDOM]
    run = meta[PM_RUN]
    if field == PM_NEXT2M or field == PM_H_NEXT2M:
        mask = SCATTER_MASK if mask != ZERO else ZERO
        run = ONE
    if mask == ZERO or n > mask:                # contiguous; beyond the span: in order, past it
        return n
    if run > ONE:                               # runs of ``run`` frames, the runs scattered
        runs = (mask + ONE) // run
        if runs > ONE:
            return _scatter(n // run, meta[PM_SEED] + np.uint64(field), runs - ONE) * run \
                + n % run
        return n
    return _scatter(n, meta[PM_SEED] + np.uint64(field), mask)


@CK.helper
def _region(keys, vals, meta, va, host):
    """The value of the 2 MiB region of ``va`` (created on first touch) in the guest/native
    table, or (``host``) in the host table of nested paging, where ``va`` is a guest PA."""
    r = va >> np.uint64(21)
    key = (np.uint64(K_REGION + (K_HOST if host else 0)) << KIND_SHIFT) | r
    s = _pt_slot(keys, meta, key)
    if keys[s] == key:
        return vals[s], False
    salt = HOST_SALT if host else ZERO
    thresh = meta[PM_H_HUGE_THRESH] if host else meta[PM_HUGE_THRESH]
    huge = (_mix(r ^ meta[PM_SEED] ^ salt) >> np.uint64(32)) < thresh
    v = ZERO
    if huge:
        v = (_new_frame(meta, PM_H_NEXT2M if host else PM_NEXT2M) << ONE) | ONE
    _pt_put(keys, vals, meta, s, key, v)
    return v, huge


@CK.helper
def _pt_put(keys, vals, meta, s, key, v):
    keys[s] = key
    vals[s] = v
    meta[PM_COUNT] += ONE


@CK.helper
def _lookup_or_new(keys, vals, meta, key, field):
    s = _pt_slot(keys, meta, key)
    if keys[s] == key:
        return vals[s], False
    v = _new_frame(meta, field)
    _pt_put(keys, vals, meta, s, key, v)
    return v, True


@CK.helper
def translate(keys, vals, meta, va, cnt, host):
    """Physical address of ``va`` and its page size bit (1 = 2 MiB), mapping it on first touch;
    with ``host``, the host PA of guest PA ``va`` (nested paging)."""
    rv, new_huge = _region(keys, vals, meta, va, host)
    if (rv & ONE) != ZERO:
        if new_huge:
            cnt[C_HOST_PAGES if host else C_PAGES_2M] += 1
        return ZONE_2M + ((rv >> ONE) << np.uint64(21)) + (va & np.uint64(0x1FFFFF)), ONE
    key = (np.uint64(K_PAGE + (K_HOST if host else 0)) << KIND_SHIFT) | (va >> np.uint64(12))
    f, new = _lookup_or_new(keys, vals, meta, key, PM_H_NEXT4K if host else PM_NEXT4K)
    if new:
        cnt[C_HOST_PAGES if host else C_PAGES_4K] += 1
    return (f << np.uint64(12)) + (va & np.uint64(0xFFF)), ZERO


@CK.helper
def _node_frame(keys, vals, meta, level, va, top, cnt, host):
    """Frame of the radix node holding level ``level``'s entry for ``va`` (root: frame 0), in
    the guest/native table or the ``host`` table."""
    if level == top:
        return ZERO
    prefix = va >> np.uint64(12 + 9 * level)
    key = (np.uint64(K_NODE + level + (K_HOST if host else 0)) << KIND_SHIFT) | prefix
    f, new = _lookup_or_new(keys, vals, meta, key, PM_H_NEXTNODE if host else PM_NEXTNODE)
    if new:
        cnt[C_HOST_NODES if host else C_NODES] += 1
    return f + ONE                            # frame 0 of the zone is the root


@CK.inlined
def _tlb_slot(tags, geom, lv, key):
    """Slot of ``key`` in TLB level ``lv`` (tags and geometry of the TLB state), or NOSLOT.
    TLB and PWC levels are LRU sets of translation keys, never invalidated (no holes) and
    never dirty: ``CK.lookup`` on the tag array alone, without the state tuple."""
    ways = geom[lv, CK.G_WAYS]
    b = geom[lv, CK.G_BASE] + (key & geom[lv, CK.G_SETMASK]) * ways
    for w in range(ways):
        if (tags[b + w] >> ONE) == key:
            return b + w
    return NOSLOT


@CK.inlined
def _tlb_touch(tags, geom, lv, s):
    """LRU hit at slot ``s``: the entry moves to its set's front (``CK.touch`` for LRU)."""
    ways = geom[lv, CK.G_WAYS]
    base = geom[lv, CK.G_BASE]
    CK.lru_to_front(tags, base + ((s - base) // ways) * ways, s)


@CK.inlined
def _tlb_probe(tags, geom, lv, key4, key2):
    """Probe a TLB for both page sizes; on a hit update LRU and return the key, else EMPTY."""
    s = _tlb_slot(tags, geom, lv, key4)
    if s == NOSLOT:
        s = _tlb_slot(tags, geom, lv, key2)
        if s == NOSLOT:
            return EMPTY
        _tlb_touch(tags, geom, lv, s)
        return key2
    _tlb_touch(tags, geom, lv, s)
    return key4


@CK.helper
def _tlb_insert(tags, geom, lv, key):
    """Insert ``key`` (absent) into TLB level ``lv``; returns the displaced key or EMPTY
    (``CK.fill`` for an LRU level without holes: one carry shift). One compiled function:
    inlined at its nine call sites it cost a tenth more cold compile."""
    ways = geom[lv, CK.G_WAYS]
    b = geom[lv, CK.G_BASE] + (key & geom[lv, CK.G_SETMASK]) * ways
    v = CK._lru_access(tags, b, ways, key, ZERO, NO)[1]
    if v == EMPTY:
        return EMPTY
    return v >> ONE


@CK.helper
def _pom_line(t, key):
    """The cache line of the POM-TLB set that holds ``key``."""
    geom = t[3]
    ways = geom[T_POM, CK.G_WAYS]
    s = key & geom[T_POM, CK.G_SETMASK]
    return (ZONE_POM + s * ways * np.uint64(POM_ENTRY_BYTES)) >> np.uint64(6)


@CK.helper
def _pom_probe(c, t, key4, key2, params, cnt):
    """Probe the POM-TLB after an L2 TLB miss; returns (hit key or EMPTY, cycles)."""
    nlev = params[P_NLEV]
    mode = params[P_MODE]
    s4 = CK.hier_access_call(c, _pom_line(t, key4), CK.LOAD, mode, nlev)
    s2 = CK.hier_access_call(c, _pom_line(t, key2), CK.LOAD, mode, nlev)
    cnt[C_POM_REFS] += 2
    lat4 = params[P_CACHE_LAT + s4]
    lat2 = params[P_CACHE_LAT + s2]
    hit = _tlb_probe(t[0], t[3], T_POM, key4, key2)
    if hit == key4:
        cycles = lat4
    elif hit == key2:
        cycles = lat2
    else:
        cycles = lat4 if lat4 > lat2 else lat2
    if hit != EMPTY:
        cnt[C_POM_HIT] += 1
    else:
        cnt[C_POM_MISS] += 1
    cnt[C_POM_CYCLES] += cycles
    return hit, cycles


@CK.helper
def _tlb_block(key, params):
    """Cache line number of the TLB block holding translation ``key``."""
    huge = (key & SIZE_2M) != ZERO
    line = ((key & ~SIZE_2M) >> np.uint64(3)) | TB_NS
    if huge and params[P_VIC_SIZE_TAG] != 0:
        line |= TB_2M
    return line


@CK.helper
def _block_level(c, line, nlev):
    """First cache level holding ``line`` (presence only, no replacement update), or nlev."""
    for k in range(nlev):
        if CK.lookup(c, k, line) != NOSLOT:
            return k
    return nlev


@CK.helper
def _block_cycles(params, k):
    """Cycles of a TLB-block hit in cache level ``k`` (``victima_block_cycles``)."""
    return params[P_CACHE_LAT + params[P_NLEV] + 1 + k]


@CK.helper
def _victima_probe(c, key, params, cnt):
    """After an L2 TLB miss: is the translation's TLB block cached? Returns (hit, cycles of the
    block hit: level k's ``_block_cycles``)."""
    nlev = params[P_NLEV]
    line = _tlb_block(key, params)
    k = _block_level(c, line, nlev)
    if k < nlev:
        if k > 0:
            CK.hier_access_call(c, line, CK.LOAD, params[P_MODE], nlev)
        cnt[C_VIC_HIT_AT + k] += 1
        return True, _block_cycles(params, k)
    cnt[C_VIC_MISS] += 1
    if params[P_VIC_PTW] != 0:
        CK.hier_access_call(c, line, CK.LOAD, params[P_MODE], nlev)
        cnt[C_VIC_ALLOC_PTW] += 1
    return False, 0


@CK.helper
def _victima_probe_l2(c, t, keys, vals, meta, va, key, params, cnt):
    """The paper's lookup: after an L2 TLB miss the L2 cache alone is probed for the block,
    in parallel with the walk; a hit (replacement updated as a TLB-block hit) aborts the walk,
    so the translation costs the shorter of the block hit (``_block_cycles``) and what the walk
    would have taken (estimated without side effects, ``_walk_estimate``; with
    ``P_VIC_PARALLEL`` the probe started with the L2 TLB lookup, so the walk, which starts
    after it, is that lookup's latency later). A miss costs nothing beyond the walk. Under
    nested paging the hit costs the block hit (a 2D walk is rarely shorter)."""
    lv = params[P_VIC_LEVEL]
    s = CK.lookup(c, lv, _tlb_block(key, params))
    if s == NOSLOT:
        cnt[C_VIC_MISS] += 1
        return False, 0
    CK.touch(c, lv, s, CK.LOAD)
    cnt[C_VIC_HIT_AT + lv] += 1
    cycles = _block_cycles(params, lv)
    if params[P_NESTED] == 0:
        w = _walk_estimate(c, t, keys, vals, meta, va, (key & SIZE_2M) != ZERO, params)
        if params[P_VIC_PARALLEL] != 0:
            w += params[P_LAT_L2]
        if w < cycles:
            cycles = w
    return True, cycles


@CK.helper
def _pwc_start(ttags, tgeom, va, leaf, top, params, cnt, probe, charged):
    """The radix level a walk for ``va`` starts at: below the deepest page-walk-cache hit, or
    the root. PWC pl (0 PML4, 1 PDPT, 2 PD) caches entries of radix level 4 - pl, keyed by the
    VA bits that select that entry; the PD cache holds only pointers to PT nodes (leaf entries
    are not cached). With ``probe`` a hit updates LRU and, when ``charged``, hits and misses
    are counted; without, nothing changes."""
    for i in range(3):
        pl = 2 - i
        elevel = 4 - pl
        if elevel <= leaf or params[P_PWC_ON + pl] == 0:
            continue
        s = _tlb_slot(ttags, tgeom, T_PWC4 + pl, va >> np.uint64(12 + 9 * (elevel - 1)))
        if s != NOSLOT:
            if probe:
                _tlb_touch(ttags, tgeom, T_PWC4 + pl, s)
                if charged:
                    cnt[C_PWC_HIT + pl] += 1
            return elevel - 1
        if probe and charged:
            cnt[C_PWC_MISS + pl] += 1
    return top


@CK.helper
def _walk_estimate(c, t, keys, vals, meta, va, huge, params):
    """Cycles the native walk for ``va`` would take now, without touching anything: the
    deepest PWC hit, then each PTE line's latency at the first cache level holding it (memory
    when absent, or when its page-table node does not exist yet)."""
    nlev = params[P_NLEV]
    top = np.int64(meta[PM_LEVELS])
    leaf = 2 if huge else 1
    start = _pwc_start(t[0], t[3], va, leaf, top, params, params, NO, NO)   # (no counters)
    cycles = params[P_LAT_PWC]
    for level in range(start, leaf - 1, -1):
        k = nlev
        node = ZERO
        known = level == top
        if not known:
            nk = (np.uint64(K_NODE + level) << KIND_SHIFT) | (va >> np.uint64(12 + 9 * level))
            s = _pt_slot(keys, meta, nk)
            known = keys[s] == nk
            if known:
                node = vals[s] + ONE
        if known:
            index = (va >> np.uint64(12 + 9 * (level - 1))) & np.uint64(511)
            k = _block_level(c, (ZONE_PT + (node << np.uint64(12)) + (index << np.uint64(3)))
                             >> np.uint64(6), nlev)
        cycles += params[P_CACHE_LAT + k]
    return cycles


@CK.helper
def _victima_place(c, key, params, old_line, ns):
    """Put the TLB block of ``key`` (namespace bits ``ns``: 0, or TB_NESTED for a nested TLB
    block) into the L2 cache (the paper's insertion). ``old_line``, when not EMPTY, is the
    leaf-PTE line the walk brought in: it is re-tagged, i.e. leaves the L2 and the block takes
    its place."""
    lv = params[P_VIC_LEVEL]
    line = _tlb_block(key, params) | ns
    if CK.lookup(c, lv, line) != NOSLOT:
        return False
    if old_line != EMPTY:
        s = CK.lookup(c, lv, old_line)
        if s != NOSLOT:
            CK.invalidate(c, s)
    CK.place(c, lv, line, params[P_MODE], params[P_NLEV])
    return True


@CK.helper
def _l2_victim(c, t, keys, vals, meta, victim, params, cnt, hist):
    """An L2 TLB victim (when something takes victims: Victima's blocks, an L3 TLB filled by
    victims, a POM-TLB; a call only then, as it passes the ~130 words of the state tuples):
    the paper's Victima gives a costly one a block (after a background
    walk), the artifact's reads its block in; an L3 TLB filled by victims takes it; with a
    POM-TLB, it goes there (and the victim's POM line is read through the caches)."""
    if victim != EMPTY and params[P_VIC_EVICT] != 0 and params[P_VIC_L2ONLY] != 0:
        # the paper: a costly victim whose block is absent gets a background walk, then a block
        if CK.lookup(c, params[P_VIC_LEVEL], _tlb_block(victim, params)) == NOSLOT \
                and _ptwcp_costly(keys, vals, meta, victim, params, cnt):
            huge = (victim & SIZE_2M) != ZERO
            va = (victim & ~SIZE_2M) << np.uint64(21) if huge else victim << np.uint64(12)
            _walk(c, t, keys, vals, meta, va, huge, params, cnt, hist, NO)
            _victima_place(c, victim, params, EMPTY, ZERO)
            cnt[C_VIC_ALLOC_EVICT] += 1
    elif victim != EMPTY and params[P_VIC_EVICT] != 0:
        line = _tlb_block(victim, params)
        if _block_level(c, line, params[P_NLEV]) == params[P_NLEV]:
            CK.hier_access_call(c, line, CK.LOAD, params[P_MODE], params[P_NLEV])
            cnt[C_VIC_ALLOC_EVICT] += 1
    if victim != EMPTY and params[P_L3_ON] != 0 and params[P_STLB_FILL_VICTIMS] != 0 \
            and _tlb_slot(t[0], t[3], T_L3, victim) == NOSLOT:
        _tlb_insert(t[0], t[3], T_L3, victim)
    if victim != EMPTY and params[P_POM_ON] != 0 \
            and _tlb_slot(t[0], t[3], T_POM, victim) == NOSLOT:
        _tlb_insert(t[0], t[3], T_POM, victim)
        CK.hier_access_call(c, _pom_line(t, victim), CK.LOAD, params[P_MODE], params[P_NLEV])
        cnt[C_POM_REFS] += 1
        cnt[C_POM_INSERTS] += 1


@CK.helper
def _walk(c, t, keys, vals, meta, va, huge, params, cnt, hist, charged):
    """Walk the radix table for ``va`` (a ``huge`` 2 MiB page ends at the PD); every PTE read
    goes through the data caches. A ``charged`` walk is counted (walk stats, PWC hit rates,
    PTW-CP counters); a background walk (Victima's, to fill a TLB block) only moves state.
    Returns (cycles, line of the leaf PTE, whether a PTE read went to memory)."""
    nlev = params[P_NLEV]
    mode = params[P_MODE]
    top = np.int64(meta[PM_LEVELS])
    leaf = 2 if huge else 1
    start = _pwc_start(t[0], t[3], va, leaf, top, params, cnt, YES, charged)
    cycles = params[P_LAT_PWC]
    dram = False
    nested = params[P_NESTED] != 0
    pte = ZERO
    for level in range(start, leaf - 1, -1):
        node = _node_frame(keys, vals, meta, level, va, top, cnt, NO)
        index = (va >> np.uint64(12 + 9 * (level - 1))) & np.uint64(511)
        pte = ZONE_PT + (node << np.uint64(12)) + (index << np.uint64(3))
        if nested:                             # the guest PTE's guest PA -> host PA first
            pte, hc, hd = _host_translate(c, t, keys, vals, meta, pte, params, cnt, hist,
                                          charged)
            cycles += hc
            dram |= hd
        served = CK.hier_access(c, pte >> np.uint64(6), CK.LOAD, mode, nlev)
        dram |= served == nlev
        if charged:
            cnt[C_WALK_REFS] += 1
            cnt[C_REFS_AT + served] += 1
        cycles += params[P_CACHE_LAT + served]
        if 2 <= level <= 4 and level > leaf:   # a PML4/PDPT/PD pointer was read: cache it
            pl = 4 - level
            if params[P_PWC_ON + pl] != 0:
                key = va >> np.uint64(12 + 9 * (level - 1))
                if _tlb_slot(t[0], t[3], T_PWC4 + pl, key) == NOSLOT:
                    _tlb_insert(t[0], t[3], T_PWC4 + pl, key)
    if nested:                                 # and the data's guest PA -> host PA
        gpa = translate(keys, vals, meta, va, cnt, NO)[0]
        _, hc, hd = _host_translate(c, t, keys, vals, meta, gpa, params, cnt, hist, charged)
        cycles += hc
        dram |= hd
    if not charged:
        cnt[C_VIC_BG_WALKS] += 1
        return cycles, pte >> np.uint64(6), dram
    cnt[C_WALKS] += 1
    if huge:
        cnt[C_WALKS_2M] += 1
    cnt[C_WALK_CYCLES] += cycles
    b = cycles // HIST_WIDTH
    hist[b if b < HIST_BINS else HIST_BINS - 1] += 1
    if params[P_PTWCP] != 0:
        _ptwcp_count(keys, vals, meta, va, huge, dram)
    return cycles, pte >> np.uint64(6), dram


@CK.helper
def _host_walk(c, keys, vals, meta, gpa, huge, params, cnt, charged):
    """Walk the host table for guest PA ``gpa`` (no page-walk caches, as the Victima artifact's
    host walks); PTE reads go through the data caches. Returns (cycles, went to memory)."""
    nlev = params[P_NLEV]
    top = np.int64(meta[PM_LEVELS])
    leaf = 2 if huge else 1
    cycles = 0
    dram = False
    for level in range(top, leaf - 1, -1):
        node = _node_frame(keys, vals, meta, level, gpa, top, cnt, YES)
        index = (gpa >> np.uint64(12 + 9 * (level - 1))) & np.uint64(511)
        pte = ZONE_PT + (node << np.uint64(12)) + (index << np.uint64(3))
        served = CK.hier_access_call(c, pte >> np.uint64(6), CK.LOAD, params[P_MODE], nlev)
        dram |= served == nlev
        cycles += params[P_CACHE_LAT + served]
        if charged:
            cnt[C_HOST_REFS] += 1
            cnt[C_WALK_REFS] += 1
            cnt[C_REFS_AT + served] += 1
    if charged:
        cnt[C_HOST_WALKS] += 1
        cnt[C_HOST_CYCLES] += cycles
    return cycles, dram


@CK.helper
def _host_translate(c, t, keys, vals, meta, gpa, params, cnt, hist, charged):
    """Guest PA -> host PA in a 2D walk: the nested TLB (keyed by the guest-physical page),
    then, with Victima, a nested TLB block (8 gPA -> hPA entries, namespace TB_NESTED) in the
    caches, then a host walk. Returns (host PA, cycles, a host PTE read went to memory)."""
    hpa, hhuge = translate(keys, vals, meta, gpa, cnt, YES)
    key4 = gpa >> np.uint64(12)
    key2 = (gpa >> np.uint64(21)) | SIZE_2M
    cycles = params[P_LAT_NTLB]
    if _tlb_probe(t[0], t[3], T_NTLB, key4, key2) != EMPTY:
        if charged:
            cnt[C_NTLB_HIT] += 1
        return hpa, cycles, False
    if charged:
        cnt[C_NTLB_MISS] += 1
    nkey = key2 if hhuge != ZERO else key4
    nlev = params[P_NLEV]
    dram = False
    hit = False
    if params[P_VICTIMA] != 0:
        line = _tlb_block(nkey, params) | TB_NESTED
        if params[P_VIC_L2ONLY] != 0:
            lv = params[P_VIC_LEVEL]
            s = CK.lookup(c, lv, line)
            if s != NOSLOT:
                CK.touch(c, lv, s, CK.LOAD)
                cycles += _block_cycles(params, lv)
                hit = True
        else:
            k = _block_level(c, line, nlev)
            if k < nlev:
                if k > 0:
                    CK.hier_access_call(c, line, CK.LOAD, params[P_MODE], nlev)
                cycles += _block_cycles(params, k)
                hit = True
        if hit and charged:
            cnt[C_NVIC_HIT] += 1
    if not hit:
        hc, dram = _host_walk(c, keys, vals, meta, gpa, hhuge != ZERO, params, cnt, charged)
        cycles += hc
        if params[P_VICTIMA] != 0 and params[P_VIC_L2ONLY] != 0 and params[P_VIC_PTW] != 0 \
                and _victima_place(c, nkey, params, EMPTY, TB_NESTED):
            cnt[C_NVIC_ALLOC] += 1
    victim = _tlb_insert(t[0], t[3], T_NTLB, nkey)
    if victim != EMPTY and params[P_VICTIMA] != 0 and params[P_VIC_EVICT] != 0:
        line = _tlb_block(victim, params) | TB_NESTED
        if params[P_VIC_L2ONLY] != 0:
            if CK.lookup(c, params[P_VIC_LEVEL], line) == NOSLOT:
                vh = (victim & SIZE_2M) != ZERO
                vgpa = (victim & ~SIZE_2M) << np.uint64(21) if vh else victim << np.uint64(12)
                _host_walk(c, keys, vals, meta, vgpa, vh, params, cnt, NO)
                _victima_place(c, victim, params, EMPTY, TB_NESTED)
                cnt[C_NVIC_ALLOC] += 1
        elif _block_level(c, line, nlev) == nlev:
            CK.hier_access_call(c, line, CK.LOAD, params[P_MODE], nlev)
            cnt[C_NVIC_ALLOC] += 1
    return hpa, cycles, dram


@CK.helper
def _ptwcp_key(key):
    """Page-table key of the PTW-CP counters of translation ``key`` (a TLB key)."""
    kind = np.uint64(K_PTWCP + 1) if (key & SIZE_2M) != ZERO else np.uint64(K_PTWCP)
    return (kind << KIND_SHIFT) | (key & ~SIZE_2M)


@CK.helper
def _ptwcp_count(keys, vals, meta, va, huge, dram):
    """After a walk: the PTE's 3-bit walk-frequency counter and, when a PTE read went to
    memory, its 4-bit walk-cost counter count up (saturating; Victima's PTW-CP, REFERENCE.md 1.3).
    Kept beside the page table, as the paper keeps them in unused PTE bits."""
    key = (va >> np.uint64(21)) | SIZE_2M if huge else va >> np.uint64(12)
    ck = _ptwcp_key(key)
    s = _pt_slot(keys, meta, ck)
    if keys[s] != ck:
        _pt_put(keys, vals, meta, s, ck, ZERO)
    v = vals[s]
    f = v & np.uint64(7)
    cost = v >> np.uint64(3)
    if f < np.uint64(7):
        f += ONE
    if dram and cost < np.uint64(15):
        cost += ONE
    vals[s] = f | (cost << np.uint64(3))


@CK.helper
def _ptwcp_costly(keys, vals, meta, key, params, cnt):
    """The PTW-CP comparator: costly when freq and cost lie in their configured ranges (or, with
    P_PTWCP_ARTIFACT, by the artifact's offline rule ``(cost >= 1 and freq >= 2) or (cost == 1
    and freq == 1)``); each decision is counted as costly or cheap. While
    the L2 cache misses much (the last epoch's L2 MPKI above its threshold: data gets little
    reuse there, so blocks cost little) it is bypassed and every translation is costly."""
    if params[P_PTWCP] == 0:
        return True
    if meta[PM_CACHE_PRESSURE] != ZERO:
        cnt[C_PTWCP_BYPASS] += 1
        return True
    ck = _ptwcp_key(key)
    s = _pt_slot(keys, meta, ck)
    v = vals[s] if keys[s] == ck else ZERO
    f = np.int64(v & np.uint64(7))
    cost = np.int64(v >> np.uint64(3))
    if params[P_PTWCP_ARTIFACT] != 0:
        costly = (cost >= 1 and f >= 2) or (cost == 1 and f == 1)
    else:
        costly = params[P_PTWCP_F_LO] <= f <= params[P_PTWCP_F_HI] \
            and params[P_PTWCP_C_LO] <= cost <= params[P_PTWCP_C_HI]
    if costly:
        cnt[C_PTWCP_COSTLY] += 1
        return True
    cnt[C_PTWCP_CHEAP] += 1
    return False


@CK.helper
def _end_epoch(c, meta, params, cnt):
    """Close a pressure epoch. Translation pressure (this epoch's L2 TLB MPKI above its
    threshold) turns on srrip-victima's TLB-aware mode in the L2 cache for the next epoch;
    cache pressure (the L2 cache's demand MPKI above its threshold) bypasses the PTW-CP."""
    instr = meta[PM_EPOCH_INSTR]
    misses = np.uint64(cnt[C_L2_MISS]) - meta[PM_EPOCH_MISSES]
    on = misses * np.uint64(1000000) > np.uint64(params[P_PRESSURE_MPKI_X1000]) * instr
    meta[PM_PRESSURE] = ONE if on else ZERO
    ccnt = c[6]
    lv = params[P_VIC_LEVEL]
    cm = ZERO
    for op in range(4):
        cm += np.uint64(ccnt[lv, CK.C_MISS + op])
    cmiss = cm - meta[PM_EPOCH_CMISSES]
    meta[PM_EPOCH_CMISSES] = cm
    busy = cmiss * np.uint64(1000000) > np.uint64(params[P_BYPASS_MPKI_X1000]) * instr
    meta[PM_CACHE_PRESSURE] = ONE if busy else ZERO
    if params[P_PRESSURE_RRIP] != 0:
        c[3][params[P_VIC_LEVEL], CK.G_PRESSURE] = ONE if on else ZERO
    cnt[C_EPOCHS] += 1
    if on:
        cnt[C_PRESSURE_EPOCHS] += 1
    meta[PM_EPOCH_INSTR] = ZERO
    meta[PM_EPOCH_MISSES] = np.uint64(cnt[C_L2_MISS])


@njit(cache=True, _nrt=False)
def run_mmu(words, c, t, keys, vals, meta, params, cnt, hist, core, memo, stop):
    """Translate (and, with P_DATA, access) a chunk of records, given as their (n, 2) uint64
    word view. Stops early when the page table is half full, and after the record that brings
    the chunk's instructions to ``stop`` (the end of a sampling period); returns (records done,
    instructions). ``core`` is the core model's state (``simkit.core.CoreModel.kernel_state``:
    its params, then the real and the ideal-translation twin's st, ring, lqr, walk, mshr) and an
    int64 (4, B) buffer; when its params are not empty the core model advances over every
    record in order, B records at a time (``_core_flush``): the real twin with the record's
    translation cycles, the walk's share of them and its data latency (the slowest line's
    serving level), the ideal twin with the data latency alone. Empty params turn it off.

    ``memo`` (uint64, 2 * MEMO_SLOTS, EMPTY-filled by the front) remembers translations already
    in the page table, direct-mapped by 4 KiB page number: word 2j the page number, word 2j + 1
    the data's final physical page (host page under nested paging) << 1 | the guest's 2 MiB bit.
    Page-table entries never change once made, so a remembered page is translated without the
    hash probes; a page not remembered takes ``translate`` as before (first touch included).

    The common record (a hit in the MRU way of its L1 TLB set, then, for a line in the MRU way
    of its L1 cache set, a hit there) is handled inline: for LRU sets that is the state change
    and the counts of ``_tlb_probe`` and ``CK.hier_access`` exactly (a hit on the MRU way
    moves nothing; a store marks it dirty in a write-back L1)."""
    n_rec = words.shape[0]
    cparams = core[0]
    buf = core[11]
    timed = cparams.shape[0] > 0
    nbuf = 0
    nlev = params[P_NLEV]
    mode = params[P_MODE]
    victims_to_l2 = params[P_STLB_FILL_VICTIMS] != 0
    l2only = params[P_VIC_L2ONLY] != 0
    nested = params[P_NESTED] != 0
    data = params[P_DATA] != 0
    lat_l1d = params[P_LAT_L1D]
    lat_l1i = params[P_LAT_L1I]
    lat_c0 = params[P_CACHE_LAT]
    epoch = np.uint64(params[P_EPOCH])
    walk_mshr = False                           # walks' L1D misses take MSHRs in the core
    if timed:
        walk_mshr = cparams[CoreK.P_WALK_MSHR] != 0 and cparams[CoreK.P_MSHRS] > 0
    takes_victims = params[P_VIC_EVICT] != 0 or params[P_POM_ON] != 0 or (
        params[P_L3_ON] != 0 and victims_to_l2)        # something takes L2 TLB victims
    memo_mask = np.uint64((memo.shape[0] >> 1) - 1)
    ttags, tgeom = t[0], t[3]
    d_mask, d_ways, d_base = tgeom[T_L1D, CK.G_SETMASK], tgeom[T_L1D, CK.G_WAYS], \
        tgeom[T_L1D, CK.G_BASE]
    i_mask, i_ways, i_base = tgeom[T_L1I, CK.G_SETMASK], tgeom[T_L1I, CK.G_WAYS], \
        tgeom[T_L1I, CK.G_BASE]
    ctags, cgeom, ccnt = c[0], c[3], c[6]
    c_mask, c_ways, c_base = cgeom[0, CK.G_SETMASK], cgeom[0, CK.G_WAYS], cgeom[0, CK.G_BASE]
    # the inline L1 cache hit: LRU (its MRU way), not exclusive; a store must land in L1
    c_fast = mode != CK.EXCLUSIVE and cgeom[0, CK.G_POLICY] == CK.LRU
    c_wb = cgeom[0, CK.G_WB] != ZERO
    n_l1d_hit = 0
    n_l1i_hit = 0
    n_data = 0
    n_hit_load = 0                  # inline L1 cache hits by op (CK.LOAD .. CK.MODIFY)
    n_hit_store = 0
    n_hit_fetch = 0
    n_hit_modify = 0
    tcycles = 0
    ic = ZERO
    i = 0
    # the page of the last record whose translation ended in its L1 TLB's MRU way (and which
    # L1 TLB), and the physical page of the last data translation: a record on the same page
    # finds both again (only a translation past the L1 TLB changes TLB state)
    hot_page = EMPTY
    hot_fetch = False
    pa_page = EMPTY
    pa_base = ZERO
    check_pt = True
    while i < n_rec:
        if check_pt:                            # only a translation adds page-table entries
            if (meta[PM_COUNT] + np.uint64(PT_SLACK)) * np.uint64(2) > meta[PM_MASK]:
                break                           # the front grows the table and calls again
            check_pt = False
        va = words[i, 0]
        info = words[i, 1]
        ic += info & np.uint64(0xFFFFFFFF)
        if epoch != ZERO:
            meta[PM_EPOCH_INSTR] += info & np.uint64(0xFFFFFFFF)
            if meta[PM_EPOCH_INSTR] >= epoch:
                _end_epoch(c, meta, params, cnt)
        op = np.int64((info >> np.uint64(48)) & np.uint64(0xFF))
        sz = (info >> np.uint64(32)) & np.uint64(0xFFFF)
        i += 1
        fetch = op == CK.IFETCH
        key4 = va >> np.uint64(12)
        walked = 0
        wmiss = 0
        walk_dram = False
        if key4 == hot_page and fetch == hot_fetch:
            hit = True
        else:
            # the MRU way of the L1 TLB set of either page size (a page has one size for good,
            # so at most one of the two keys is ever cached)
            key2 = (va >> np.uint64(21)) | SIZE_2M
            if fetch:
                k4 = ttags[i_base + (key4 & i_mask) * i_ways] >> ONE
                k2 = ttags[i_base + (key2 & i_mask) * i_ways] >> ONE
            else:
                k4 = ttags[d_base + (key4 & d_mask) * d_ways] >> ONE
                k2 = ttags[d_base + (key2 & d_mask) * d_ways] >> ONE
            hit = k4 == key4 or k2 == key2
        if hit:
            hot_page = key4
            hot_fetch = fetch
            if fetch:
                cycles = lat_l1i
                n_l1i_hit += 1
            else:
                cycles = lat_l1d
                n_l1d_hit += 1
        else:
            l1 = T_L1I if fetch else T_L1D
            cycles = lat_l1i if fetch else lat_l1d
            status, victim = _tlb_l1_l2(ttags, tgeom, l1, key4, key2, cnt, fetch)
            if status != 0:
                cycles += params[P_LAT_L2]
            if status == 2:                     # an L2 TLB miss: L3 TLB, POM-TLB, Victima,
                key = EMPTY                         # else the walk
                if params[P_L3_ON] != 0:
                    cycles += params[P_LAT_L3]
                    key = _tlb_probe_call(ttags, tgeom, T_L3, key4, key2)
                    cnt[C_L3_HIT if key != EMPTY else C_L3_MISS] += 1
                if key == EMPTY and params[P_POM_ON] != 0:
                    key, pc = _pom_probe(c, t, key4, key2, params, cnt)
                    cycles += pc
                if key == EMPTY and params[P_VICTIMA] != 0:
                    huge = _page_size(keys, vals, meta, va, cnt, memo)
                    vkey = key2 if huge != ZERO else key4
                    if l2only:
                        vhit, vc = _victima_probe_l2(c, t, keys, vals, meta, va, vkey, params,
                                                     cnt)
                    else:
                        vhit, vc = _victima_probe(c, vkey, params, cnt)
                    cycles += vc
                    if vhit:
                        key = vkey
                        if params[P_VIC_PARALLEL] != 0:    # probed beside the L2 TLB lookup
                            cycles -= params[P_LAT_L2]
                if key == EMPTY:
                    huge = _page_size(keys, vals, meta, va, cnt, memo)
                    key = key2 if huge != ZERO else key4
                    if walk_mshr:               # cycles of PTE reads beyond the L1D, before
                        wmiss = _beyond_l1_cycles(cnt, params, nlev)
                    wc, leaf_line, wdram = _walk(c, t, keys, vals, meta, va, huge != ZERO,
                                                 params, cnt, hist, YES)
                    cycles += wc
                    walked = wc
                    if huge != ZERO and params[P_SPLINTER] != 0:   # the smaller page size
                        gpa = translate(keys, vals, meta, va, cnt, NO)[0]
                        if translate(keys, vals, meta, gpa, cnt, YES)[1] == ZERO:
                            key = key4
                    if walk_mshr:               # and after: its reads that missed the L1D
                        wmiss = _beyond_l1_cycles(cnt, params, nlev) - wmiss
                        walked |= wmiss << WALK_MISS_SHIFT
                    walk_dram = wdram
                    if l2only and params[P_VIC_PTW] != 0 \
                            and _ptwcp_costly(keys, vals, meta, key, params, cnt) \
                            and _victima_place(c, key, params, leaf_line, ZERO):
                        cnt[C_VIC_ALLOC_PTW] += 1
                    if params[P_L3_ON] != 0 and not victims_to_l2:
                        _tlb_insert(ttags, tgeom, T_L3, key)
                if not victims_to_l2:
                    v2 = _tlb_insert(ttags, tgeom, T_L2, key)
                    if v2 != EMPTY and takes_victims:
                        _l2_victim(c, t, keys, vals, meta, v2, params, cnt, hist)
                victim = _tlb_insert(ttags, tgeom, l1, key)
            if victims_to_l2 and victim != EMPTY \
                    and _tlb_slot_call(ttags, tgeom, T_L2, victim) == NOSLOT:
                v2 = _tlb_insert(ttags, tgeom, T_L2, victim)
                if v2 != EMPTY and takes_victims:
                    _l2_victim(c, t, keys, vals, meta, v2, params, cnt, hist)
            hot_page = EMPTY
            check_pt = True
        tcycles += cycles
        data_lat = 0
        if data:
            if key4 != pa_page:
                j = (key4 & memo_mask) << ONE
                if memo[j] == key4:
                    pa_base = (memo[j + ONE] >> ONE) << np.uint64(12)
                else:
                    pa, huge = translate(keys, vals, meta, va, cnt, NO)
                    if nested:
                        pa = translate(keys, vals, meta, pa, cnt, YES)[0]
                    pa_base = (pa >> np.uint64(12)) << np.uint64(12)
                    memo[j] = key4
                    memo[j + ONE] = ((pa >> np.uint64(12)) << ONE) | huge
                    check_pt = True
                pa_page = key4
            pa = pa_base | (va & np.uint64(0xFFF))
            line = pa >> np.uint64(6)
            last = line
            if sz > ONE:
                last = (pa + sz - ONE) >> np.uint64(6)
            while True:
                b = c_base + (line & c_mask) * c_ways
                if c_fast and (ctags[b] | ONE) == ((line << ONE) | ONE) \
                        and (c_wb or (op != CK.STORE and op != CK.MODIFY)):
                    if op == CK.IFETCH:
                        n_hit_fetch += 1
                    elif op == CK.LOAD:
                        n_hit_load += 1
                    else:
                        ctags[b] |= ONE                 # a store lands in the write-back L1
                        if op == CK.MODIFY:
                            n_hit_modify += 1
                        else:
                            n_hit_store += 1
                    if lat_c0 > data_lat:
                        data_lat = lat_c0
                else:
                    served = CK.hier_access(c, line, op, mode, nlev)
                    if params[P_CACHE_LAT + served] > data_lat:
                        data_lat = params[P_CACHE_LAT + served]
                n_data += 1
                if line == last:
                    break
                line += ONE
        if timed:
            buf[0, nbuf] = cycles
            buf[1, nbuf] = walked
            buf[2, nbuf] = data_lat
            buf[3, nbuf] = np.int64(info & CORE_INFO_MASK)
            if walk_dram:
                buf[3, nbuf] |= WALK_DRAM_BIT
            nbuf += 1
            if nbuf == buf.shape[1]:
                _core_flush(core, nbuf)
                nbuf = 0
        if ic >= stop:
            break
    ccnt[0, CK.C_HIT + CK.LOAD] += n_hit_load
    ccnt[0, CK.C_HIT + CK.STORE] += n_hit_store
    ccnt[0, CK.C_HIT + CK.IFETCH] += n_hit_fetch
    ccnt[0, CK.C_HIT + CK.MODIFY] += n_hit_modify
    cnt[C_L1D_HIT] += n_l1d_hit
    cnt[C_L1I_HIT] += n_l1i_hit
    cnt[C_DATA_ACCESSES] += n_data
    cnt[C_TRANSLATION_CYCLES] += tcycles
    if timed and nbuf > 0:
        _core_flush(core, nbuf)
    return i, ic


@CK.helper
def _beyond_l1_cycles(cnt, params, nlev):
    """The cycles of every charged PTE read served beyond the L1D so far (reads per serving
    level times its latency): a walk's share is the difference across it."""
    total = 0
    for lv in range(1, nlev + 1):
        total += cnt[C_REFS_AT + lv] * params[P_CACHE_LAT + lv]
    return total


@CK.helper
def _tlb_probe_call(tags, geom, lv, key4, key2):
    """``_tlb_probe`` as one compiled function (inlined into ``run_mmu``'s loop, the TLB
    probes made LLVM's compile of it 12x longer)."""
    return _tlb_probe(tags, geom, lv, key4, key2)


@CK.helper
def _tlb_slot_call(tags, geom, lv, key):
    """``_tlb_slot`` as one compiled function (as ``_tlb_probe_call``)."""
    return _tlb_slot(tags, geom, lv, key)


@CK.helper
def _tlb_l1_l2(ttags, tgeom, l1, key4, key2, cnt, fetch):
    """A record's translation past the MRU way of its L1 TLB set: the rest of the L1 TLB,
    then the L2 TLB, whose hit is inserted into the L1 TLB. Returns (0: L1 hit, 1: L2 hit,
    2: L2 miss, which ``run_mmu`` handles; the L1 TLB's victim on an L2 hit, else EMPTY).
    Only the TLB arrays are passed: a call with the state tuples passes ~130 words (the gups
    trace's 230k L1 TLB misses took 19 ms through such a call, 11 ms inlined), and these
    probes inlined into ``run_mmu``'s loop made LLVM's compile of it 12x longer."""
    if _tlb_probe(ttags, tgeom, l1, key4, key2) != EMPTY:
        cnt[C_L1I_HIT if fetch else C_L1D_HIT] += 1
        return 0, EMPTY
    cnt[C_L1I_MISS if fetch else C_L1D_MISS] += 1
    key = _tlb_probe(ttags, tgeom, T_L2, key4, key2)
    if key == EMPTY:
        cnt[C_L2_MISS] += 1
        return 2, EMPTY
    cnt[C_L2_HIT] += 1
    return 1, _tlb_insert(ttags, tgeom, l1, key)


@CK.helper
def _page_size(keys, vals, meta, va, cnt, memo):
    """The 2 MiB bit of ``va``'s page (mapping it on first touch), from ``memo`` when there."""
    vpn = va >> np.uint64(12)
    j = (vpn & np.uint64((memo.shape[0] >> 1) - 1)) << ONE
    if memo[j] == vpn:
        return memo[j + ONE] & ONE
    return translate(keys, vals, meta, va, cnt, NO)[1]


@CK.helper
def _core_flush(core, n):
    """Advance the core model's two twins over the first ``n`` buffered records (rows of the
    buffer: translation cycles, walk cycles (and above ``WALK_MISS_SHIFT`` the cycles of its PTE
    reads that missed the L1D, with ``walk_mshrs``), data latency, the record's info word masked
    to its icount, op and flag bit 0, and ``WALK_DRAM_BIT`` when its walk read memory). Buffering
    keeps the twins' state in registers in a tight loop rather than live across the
    translation's helper calls."""
    cparams, st_r, ring_r, lqr_r, walk_r, mshr_r, st_i, ring_i, lqr_i, walk_i, mshr_i, buf = core
    inv_w = 1.0 / float(cparams[CoreK.P_WIDTH])
    dep_chain = cparams[CoreK.P_DEP] == CoreK.DEP_CHAIN
    dep_flag = cparams[CoreK.P_DEP] == CoreK.DEP_FLAG
    sr = CoreK.load(st_r)
    si = CoreK.load(st_i)
    for j in range(n):
        hi = buf[3, j]
        k = float(hi & 0xFFFFFFFF)
        is_load = ((hi >> 48) & 0xFF) != CoreK.STORE_OP
        dependent = dep_chain or (dep_flag and ((hi >> 56) & 1) != 0)
        lat = float(buf[2, j])
        wk = buf[1, j]
        sr = CoreK.step(sr, k, is_load, dependent, float(buf[0, j]), float(wk & WALK_CYCLES),
                        float(wk >> WALK_MISS_SHIFT), (hi & WALK_DRAM_BIT) != 0, lat, cparams,
                        inv_w, ring_r, lqr_r, walk_r, mshr_r)
        si = CoreK.step(si, k, is_load, dependent, 0.0, 0.0, 0.0, NO, lat, cparams, inv_w,
                        ring_i, lqr_i, walk_i, mshr_i)
    CoreK.store(st_r, sr)
    CoreK.store(st_i, si)


@njit(cache=True, _nrt=False)
def rehash(old_keys, old_vals, keys, vals, meta):
    """Move every entry of the old page table into the larger ``keys``/``vals``."""
    for s in range(old_keys.shape[0]):
        k = old_keys[s]
        if k != EMPTY:
            t = _pt_slot(keys, meta, k)
            keys[t] = k
            vals[t] = old_vals[s]
            meta[PM_COUNT] += ONE
