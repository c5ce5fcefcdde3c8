"""Jitted cache kernels over plain arrays (numpy + numba only).

All slot and geometry arithmetic is uint64: signed indices make numba add a negative-index
fix-up to every array access (measured 1.5x slower here; REFERENCE.md section 6). The kernels
allocate nothing and run with ``_nrt=False``: numba cannot prune the reference counting of the
state arrays across these branches, which cost 5-8x on the miss path.

State of a hierarchy of ``nlev`` levels, every level's sets laid end to end (``CacheState``):

    tags     uint64[slots]     (line << 1) | dirty, or EMPTY; slot = base[lv] + set*ways + way
    repl     uint8[slots]      RRPV of each way (RRIP policies; bit 7: srrip-victima's SPARED)
    setbits  uint64[sets]      tree-PLRU bits of each set (bit k = node k of the heap)
    geom     uint64[nlev, NG]  set mask, ways, slot base, set base, policy id, write-back, ...
    rng      uint64[nlev]      xorshift64* state per level (random policy, BRRIP)
    psel     int64[nlev]       DRRIP policy-selection counter per level
    cnt      int64[nlev+1, NC] counters; row nlev is memory (lines read, lines written)
    vict     uint64[nlev]      scratch: victims of one access, disposed deepest first

Ordered policies (LRU, FIFO) keep each set's ways in recency/fill order, MRU first, so a hit
or fill is one pass of a carry shift (the fastest layout measured in REFERENCE.md section 6).
The other policies keep lines in place and their state beside them.

The hot carry shifts see the common associativities as compile-time constants
(``_lru_access_nh``), so LLVM unrolls them.

Only entry kernels carry ``cache=True``; the helpers (``helper``, ``inlined``) compile into
the entry's library. A call passes the state tuple's ~60 words of array descriptors, so the
per-access walk (``hier_access``, ``_demand``) and the carry shift are inlined (measured 13 ->
45 M accesses/s for a per-access walk of L1 hits, and the MMU, which walks every data access,
4-6 -> 11 M/s), by LLVM (``forceinline``), not at numba IR level, where every copy was typed
and lowered again. Helpers are called with numpy scalars (``LV0``, ``YES``/``NO``), never
Python literals, which numba would compile into one more specialization each.

Primitives callable from other jitted kernels (the TLB simulator walks page tables through
them): ``lookup``, ``touch``, ``fill``, ``place``, ``invalidate``, ``hier_access``. ``run_records`` drives a whole
hierarchy over a chunk of trace records.
"""
import numpy as np
from numba import njit, prange

from simkit.cache._linkonly import link_only

# Helpers (called only from other kernels) compile without the CPython and C-callable wrappers
# that numba builds for every dispatcher by default: those unpack the ~60 words of the state
# tuple and were a tenth of a cold start's compile time. ``inlined`` helpers are marked
# always-inline for LLVM (numba's ``forceinline``): the same machine code as inlining at numba
# IR level (``inline='always'``), without typing and lowering one copy per call site.
# Both are link-only (``_linkonly``): compiled to IR for their callers, never to machine code.
_helper = njit(_nrt=False, no_cpython_wrapper=True, no_cfunc_wrapper=True)
_inlined = njit(_nrt=False, no_cpython_wrapper=True, no_cfunc_wrapper=True, forceinline=True)


def helper(fn):
    return link_only(_helper(fn))


def inlined(fn):
    return link_only(_inlined(fn))


EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
NOSLOT = EMPTY          # lookup() result for an absent line
ONE = np.uint64(1)
ZERO = np.uint64(0)
YES, NO = np.bool_(True), np.bool_(False)   # non-literal, as LV0
LV0 = np.int64(0)       # a non-literal 0: a literal argument would compile another specialization
W8, W16 = np.uint64(8), np.uint64(16)     # associativities given as constants (unrolled)

# geom columns
G_SETMASK, G_WAYS, G_BASE, G_SETBASE, G_POLICY, G_WB, G_WA, G_RRPV_MAX, G_THROTTLE, \
    G_LEADER_STRIDE, G_PSEL_MAX, G_PRESSURE = range(12)
NG = 12

# policies (same numbers as policies.py) and inclusion modes
LRU, FIFO, RANDOM, PLRU, SRRIP, BRRIP, DRRIP, SRRIP_FP, VICTIMA_RRIP, VICTIMA_RRIP_ART = (
    np.uint64(i) for i in range(10))
TLB_LINE = np.uint64(1 << 56)   # line numbers with this bit are translation entries (TLB blocks)
SPARED = np.uint8(0x80)         # repl flag of srrip-victima: this TLB block was skipped once
RRPV = np.uint8(0x7F)
NON_INCLUSIVE, INCLUSIVE, EXCLUSIVE = (np.int64(i) for i in range(3))

# request ops (trace ops 0..3, plus write-backs arriving from the level above)
LOAD, STORE, IFETCH, MODIFY, WRITEBACK = (np.int64(i) for i in range(5))
NOPS = 5

# counter columns: hits and misses per op, evictions, dirty evictions, back-invalidations
C_HIT = 0            # C_HIT + op
C_MISS = NOPS        # C_MISS + op
C_EVICT = 2 * NOPS
C_WB_OUT = C_EVICT + 1
C_BACKINV = C_EVICT + 2
NC = 16
M_READ, M_WRITE = 0, 1   # columns of the memory row


@helper
def _rand(rng, lv):
    x = rng[lv]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    rng[lv] = x
    return x * np.uint64(2685821657736338717)


@helper
def lookup(c, lv, line):
    """Slot of ``line`` in level ``lv``, or NOSLOT."""
    tags, geom = c[0], c[3]
    ways = geom[lv, G_WAYS]
    b = geom[lv, G_BASE] + (line & geom[lv, G_SETMASK]) * ways
    for w in range(ways):
        if (tags[b + w] >> ONE) == line:
            return b + w
    return NOSLOT


@helper
def _plru_touch(setbits, sidx, ways, w):
    bits = setbits[sidx]
    node = ONE
    half = ways >> ONE
    while half > ZERO:
        right = (w & half) != ZERO
        if right:
            bits &= ~(ONE << node)                # point left, away from w
        else:
            bits |= ONE << node                   # point right
        node = (node << ONE) + (ONE if right else ZERO)
        half >>= ONE
    setbits[sidx] = bits


@helper
def _plru_victim(setbits, sidx, ways):
    bits = setbits[sidx]
    node = ONE
    while node < ways:
        node = (node << ONE) + ((bits >> node) & ONE)
    return node - ways


@inlined
def lru_to_front(tags, set_start, slot):
    """Move the way at ``slot`` to ``set_start`` (the set's MRU way), shifting the ways before
    it down one (an LRU hit; the TLB kernel's probes use it on their tag arrays too)."""
    t = tags[slot]
    j = slot
    while j > set_start:
        tags[j] = tags[j - ONE]
        j -= ONE
    tags[set_start] = t


@helper
def touch(c, lv, slot, op):
    """Replacement update for a hit at ``slot``; returns the line's slot afterwards
    (LRU moves it to the front). Write-backs arriving from above change no state."""
    tags, repl, setbits, geom = c[0], c[1], c[2], c[3]
    pol = geom[lv, G_POLICY]
    if op == WRITEBACK or pol == FIFO or pol == RANDOM:
        return slot
    ways = geom[lv, G_WAYS]
    base = geom[lv, G_BASE]
    set_start = base + ((slot - base) // ways) * ways
    if pol == LRU:
        lru_to_front(tags, set_start, slot)
        return set_start
    if pol == PLRU:
        _plru_touch(setbits, geom[lv, G_SETBASE] + (slot - base) // ways, ways, slot - set_start)
        return slot
    if pol <= DRRIP:
        repl[slot] = 0                              # RRIP hit priority
        return slot
    r = repl[slot]
    v = r & RRPV
    dec = np.uint8(1)                               # frequency priority: one step per hit
    if ((tags[slot] >> ONE) & TLB_LINE) != ZERO:
        if pol == VICTIMA_RRIP_ART:
            dec = v                                 # the artifact: a TLB-block hit -> 0
        elif pol == VICTIMA_RRIP and geom[lv, G_PRESSURE] != ZERO:
            dec = np.uint8(3)                       # the paper: a TLB-block hit -3
    repl[slot] = (r & SPARED) | (v - dec if v > dec else np.uint8(0))
    return slot


@inlined
def _slot_access(c, lv, line, op, d, alloc):
    """One access of ``line`` at level ``lv`` by the generic path (any policy): a hit updates
    replacement state and adds dirty bit ``d``; a miss fills when ``alloc``. Returns
    (hit, displaced word or EMPTY)."""
    tags = c[0]
    s = lookup(c, lv, line)
    if s != NOSLOT:
        s = touch(c, lv, s, op)
        tags[s] |= d
        return True, EMPTY
    if alloc:
        return False, fill(c, lv, line, d)
    return False, EMPTY


@inlined
def _writeback_in(c, lv, line, d):
    """A line written back into level ``lv`` from above: a resident copy takes dirty bit ``d``
    (replacement state unchanged); otherwise it is allocated without a fetch. Counted under
    WRITEBACK. Returns (hit, displaced word or EMPTY)."""
    tags, cnt = c[0], c[6]
    s = lookup(c, lv, line)
    if s != NOSLOT:
        cnt[lv, C_HIT + WRITEBACK] += 1
        tags[s] |= d
        return True, EMPTY
    cnt[lv, C_MISS + WRITEBACK] += 1
    return False, fill(c, lv, line, d)


@helper
def _rrip_insert_value(c, lv, sidx, line):
    rng, psel, geom = c[4], c[5], c[3]
    rmax = geom[lv, G_RRPV_MAX]
    pol = geom[lv, G_POLICY]
    if pol > DRRIP:                                 # srrip-fp and the Victima variants
        if pol == VICTIMA_RRIP and geom[lv, G_PRESSURE] != ZERO and (line & TLB_LINE) != ZERO:
            return ZERO                             # the paper: TLB blocks insert at 0
        return rmax - ONE
    if pol == DRRIP:
        stride = geom[lv, G_LEADER_STRIDE]
        r = sidx % stride
        pmax = np.int64(geom[lv, G_PSEL_MAX])
        if r == ZERO:                               # SRRIP leader: its misses push PSEL up
            if psel[lv] < pmax:
                psel[lv] += 1
            pol = SRRIP
        elif r == stride - ONE:                     # BRRIP leader: its misses pull PSEL down
            if psel[lv] > 0:
                psel[lv] -= 1
            pol = BRRIP
        else:
            pol = BRRIP if psel[lv] >= (pmax + 1) // 2 else SRRIP
    if pol == SRRIP:
        return rmax - ONE
    if _rand(rng, lv) % geom[lv, G_THROTTLE] == ZERO:
        return rmax - ONE
    return rmax


@inlined
def _lru_access(tags, b, ways, line, d, holes):
    """One access of ``line`` in the ordered (MRU-first) set at slot ``b``, as one carry shift:
    the line goes to the front with dirty bit ``d`` added, the ways before it shift down one,
    up to its old place (a hit), the first hole (a miss, only when ``holes``: a set can have
    invalidated ways in inclusive/exclusive hierarchies, anywhere in its order, so a hit is
    looked for past them first; elsewhere empty ways are all at the tail and carry through),
    or the end. Returns (hit, displaced word or EMPTY). Inlined into
    its callers at numba IR level, so the hot loops make no call."""
    carry = (line << ONE) | d
    key = (line << ONE) | ONE                        # t | 1 == key: t holds line (either
    stop_at_hole = holes                             # dirty bit); measured a few % faster
    if holes:                                        # than comparing t >> 1
        # an invalidation can leave a hole above the line (back-invalidation of a more
        # recent line): look for the line first; only a miss stops at the first hole
        for w in range(ways):
            if (tags[b + w] | ONE) == key:
                stop_at_hole = False
                break
    for w in range(ways):
        t = tags[b + w]
        tags[b + w] = carry
        if (t | ONE) == key:
            if (t & ONE) != ZERO:
                tags[b] = t | d                      # keep the line's dirty bit
            return True, EMPTY
        if stop_at_hole and t == EMPTY:
            return False, EMPTY
        carry = t
    return False, carry


@inlined
def _lru_access_vec(tags, b, ways, line, d):
    """``_lru_access`` without holes, for a compile-time ``ways``: the tag match first, as a
    branch-free compare over the set's ways, then a miss shifts the whole set down one way
    with no compare per way, both of which LLVM vectorizes (AVX2/AVX-512 compares and moves);
    a hit takes the carry shift, which stops at the line. Same result as ``_lru_access``."""
    key = (line << ONE) | ONE
    found = False
    for w in range(ways):
        found |= (tags[b + w] | ONE) == key
    if found:
        return _lru_access(tags, b, ways, line, d, NO)
    last = tags[b + ways - ONE]
    for w in range(ways - ONE, ZERO, -1):
        tags[b + w] = tags[b + w - ONE]
    tags[b] = (line << ONE) | d
    return False, last


@inlined
def _lru_access_nh(tags, b, ways, line, d):
    """``_lru_access`` without holes, with the common associativities (8, 16) as compile-time
    constants so that LLVM unrolls and vectorizes them (``_lru_access_vec``: measured 1.2x
    over the unrolled carry shift on the miss-heavy levels below the first; other
    associativities loop)."""
    if ways == W8:
        return _lru_access_vec(tags, b, W8, line, d)
    if ways == W16:
        return _lru_access_vec(tags, b, W16, line, d)
    return _lru_access(tags, b, ways, line, d, NO)


@helper
def fill(c, lv, line, dirty):
    """Insert ``line`` (absent) into level ``lv``; returns the displaced tag word or EMPTY."""
    tags, repl, setbits, geom, rng = c[0], c[1], c[2], c[3], c[4]
    ways = geom[lv, G_WAYS]
    sidx = line & geom[lv, G_SETMASK]
    b = geom[lv, G_BASE] + sidx * ways
    packed = (line << ONE) | dirty
    pol = geom[lv, G_POLICY]
    if pol == LRU or pol == FIFO:                  # carry shift, stops at a hole
        return _lru_access(tags, b, ways, line, dirty, YES)[1]
    way = NOSLOT
    for w in range(ways):
        if tags[b + w] == EMPTY:
            way = w
            break
    if way == NOSLOT:
        if pol == RANDOM:
            way = _rand(rng, lv) % ways
        elif pol == PLRU:
            way = _plru_victim(setbits, geom[lv, G_SETBASE] + sidx, ways)
        elif pol == VICTIMA_RRIP:
            way = _victima_rrip_victim(tags, repl, b, ways, np.uint8(geom[lv, G_RRPV_MAX]),
                                       geom[lv, G_PRESSURE] != ZERO)
        else:                                       # RRIP: first way at max, ageing the set
            rmax = np.uint8(geom[lv, G_RRPV_MAX])
            m = np.uint8(0)
            for w in range(ways):
                if repl[b + w] > m:
                    m = repl[b + w]
            if m < rmax:
                d = rmax - m
                for w in range(ways):
                    repl[b + w] += d
            for w in range(ways):
                if repl[b + w] == rmax:
                    way = w
                    break
    victim = tags[b + way]
    tags[b + way] = packed
    if pol == PLRU:
        _plru_touch(setbits, geom[lv, G_SETBASE] + sidx, ways, way)
    elif pol >= SRRIP:
        repl[b + way] = _rrip_insert_value(c, lv, sidx, line)
    return victim


@helper
def _victima_rrip_victim(tags, repl, b, ways, rmax, pressure):
    """srrip-victima's victim (Victima, MICRO 2023, TLB-aware SRRIP): the first way at the
    largest RRPV, ageing the set until one is there; under translation pressure a TLB block
    chosen for the first time is spared once (flagged SPARED, moved to rmax - 1) and the search
    goes on."""
    while True:
        m = np.uint8(0)
        for w in range(ways):
            v = repl[b + w] & RRPV
            if v > m:
                m = v
        if m < rmax:
            d = rmax - m
            for w in range(ways):
                repl[b + w] += d
        for w in range(ways):
            r = repl[b + w]
            if (r & RRPV) != rmax:
                continue
            if pressure and (r & SPARED) == 0 and ((tags[b + w] >> ONE) & TLB_LINE) != ZERO:
                repl[b + w] = SPARED | (rmax - np.uint8(1))
                continue
            return np.uint64(w)


@helper
def invalidate(c, slot):
    """Drop the line at ``slot``; returns its dirty bit."""
    tags = c[0]
    d = tags[slot] & ONE
    tags[slot] = EMPTY
    return d


@helper
def _dispose(c, lv, victim, mode, nlev):
    """Handle a line displaced from level ``lv``: count it, back-invalidate (inclusive),
    and move it down (dirty ones always; every one in exclusive mode) until it settles."""
    cnt, vict = c[6], c[7]
    while victim != EMPTY:
        cnt[lv, C_EVICT] += 1
        vline = victim >> ONE
        vd = victim & ONE
        if mode == INCLUSIVE and lv > 0:
            for j in range(lv):
                s = lookup(c, j, vline)
                if s != NOSLOT:
                    vd |= invalidate(c, s)
                    cnt[j, C_BACKINV] += 1
                elif vict[j] != EMPTY and (vict[j] >> ONE) == vline:
                    vd |= vict[j] & ONE               # an upper victim of this same access
                    vict[j] = EMPTY
        if vd == 0 and mode != EXCLUSIVE:
            return
        if vd != 0:
            cnt[lv, C_WB_OUT] += 1
        nxt = lv + 1
        if nxt == nlev:
            if vd != 0:
                cnt[nlev, M_WRITE] += 1
            return
        hit, victim = _writeback_in(c, nxt, vline, vd)
        if hit:
            return
        lv = nxt


@helper
def place(c, lv, line, mode, nlev):
    """Insert ``line`` (absent, clean) into level ``lv`` alone, disposing of the line it displaces
    as an eviction would (write-back down, back-invalidation when inclusive). For lines that
    appear in one level without a demand access (Victima's TLB blocks)."""
    v = fill(c, lv, line, ZERO)
    if v != EMPTY:
        _dispose(c, lv, v, mode, nlev)


@helper
def _settle(c, lv0, mode, nlev):
    vict = c[7]
    for lv in range(nlev - 1, lv0 - 1, -1):
        v = vict[lv]
        vict[lv] = EMPTY
        if v != EMPTY:
            _dispose(c, lv, v, mode, nlev)


@inlined
def _demand(c, line, op, lv0, need_data, store_pending, mode, nlev):
    """A demand access entering at level ``lv0`` (non-inclusive and inclusive modes).

    ``need_data``: a fill is wanted (loads, fetches, modifies, allocating stores);
    ``store_pending``: a write has not yet landed in a write-back level. Each level the
    request reaches counts one hit or miss under ``op``. Returns the level that supplied the
    data or absorbed the write (nlev = memory). LRU levels that allocate take an inlined
    carry shift; clean victims of non-inclusive levels are counted here and dropped, the rest
    are disposed deepest first by ``_settle``."""
    tags, geom, cnt, vict = c[0], c[3], c[6], c[7]
    served = nlev
    lv = lv0
    pending = lv0 > 0 and vict[0] != EMPTY
    while lv < nlev and (need_data or store_pending):
        wb = geom[lv, G_WB] != ZERO
        alloc = need_data or (store_pending and geom[lv, G_WA] != ZERO)
        d = ONE if (store_pending and wb) else np.uint64(0)
        hit = False
        victim = EMPTY
        if alloc and geom[lv, G_POLICY] == LRU:
            ways = geom[lv, G_WAYS]
            b = geom[lv, G_BASE] + (line & geom[lv, G_SETMASK]) * ways
            hit, victim = _lru_access(tags, b, ways, line, d, YES)
        else:
            hit, victim = _slot_access(c, lv, line, op, d, alloc)
        if hit:
            cnt[lv, C_HIT + op] += 1
            if need_data or d != 0:
                if served == nlev:
                    served = lv
            need_data = False
        else:
            cnt[lv, C_MISS + op] += 1
            if alloc:
                need_data = True
        if d != 0 and (hit or alloc):
            store_pending = False
        if victim != EMPTY:
            if mode == NON_INCLUSIVE and (victim & ONE) == 0:
                cnt[lv, C_EVICT] += 1
            else:
                vict[lv] = victim
                pending = True
        lv += 1
    if need_data:
        cnt[nlev, M_READ] += 1
    if store_pending:
        cnt[nlev, M_WRITE] += 1
    if pending:
        _settle(c, LV0, mode, nlev)
    return served


@helper
def _demand_exclusive(c, line, op, nlev):
    tags, cnt = c[0], c[6]
    is_store = op == STORE or op == MODIFY
    s = lookup(c, LV0, line)
    if s != NOSLOT:
        cnt[0, C_HIT + op] += 1
        s = touch(c, LV0, s, op)
        if is_store:
            tags[s] |= ONE
        return 0
    cnt[0, C_MISS + op] += 1
    d = np.uint64(1) if is_store else np.uint64(0)
    served = nlev
    for lv in range(1, nlev):
        s = lookup(c, lv, line)
        if s != NOSLOT:
            cnt[lv, C_HIT + op] += 1
            d |= invalidate(c, s)
            served = lv
            break
        cnt[lv, C_MISS + op] += 1
    if served == nlev:
        cnt[nlev, M_READ] += 1
    _dispose(c, LV0, fill(c, LV0, line, d), EXCLUSIVE, nlev)
    return served


@inlined
def hier_access(c, line, op, mode, nlev):
    """One access of ``line`` (a line number) by ``op`` through the whole hierarchy.
    Returns the level that served it (``nlev`` = memory)."""
    if mode == EXCLUSIVE:
        return _demand_exclusive(c, line, op, nlev)
    store = op == STORE or op == MODIFY
    return _demand(c, line, op, LV0, op != STORE, store, mode, nlev)


@helper
def hier_access_call(c, line, op, mode, nlev):
    """``hier_access`` as one compiled function, for call sites off the hot path: each inlined
    copy is typed and optimized again, which is most of a cold start's compile time."""
    return hier_access(c, line, op, mode, nlev)


# ---------------------------------------------------------------------------------------------
# Level-at-a-time simulation of non-inclusive hierarchies.
#
# In a non-inclusive hierarchy level k's state depends only on the ordered stream of requests
# level k-1 sends it, so a chunk of records is simulated one level at a time: each level reads
# an event buffer and writes the events it sends down (its demand misses and write-throughs,
# then its dirty victims) into the other buffer. The order of events reaching every level is the
# same as in the per-access walk of ``_demand``, so every counter is identical; each level's
# loop is tight and its state stays hot. Event: a line and a code byte,
#     code = op | NEED << 3 | STORE_PENDING << 4     (op 0..3 demand, 4 = dirty write-back)
# A level emits at most two events per input event, so a batch of E level-0 events needs
# buffers of E << (nlev - 1).

EV_NEED = np.uint8(8)
EV_STORE = np.uint8(16)
EV_OPMASK = np.uint8(7)
EV_BATCH = np.int64(1 << 14)         # level-0 events per batch
MAX_RECORD_LINES = 1026     # lines one record can touch (size < 64 KiB, 64 B lines)
NO_LAT = np.zeros(0, dtype=np.int64)  # run_walk's lat/out when no latency is wanted


@inlined
def record_span(a, meta, ls):
    """(first line, last line) a record touches: its address ``a`` and meta word (size in
    bits 32-47), ``ls`` the line shift as uint64."""
    line = a >> ls
    sz = (meta >> np.uint64(32)) & np.uint64(0xFFFF)
    if sz > ONE:
        return line, (a + sz - ONE) >> ls
    return line, line


@helper
def _record_events(words, i, line_shift, out_lines, out_codes, n):
    """Append the level-0 events of record ``i`` (one per line touched) at ``out[n:]``;
    returns the new count. Records are read as two uint64 words: the address, then
    icount | size << 32 | op << 48 | flags << 56 (little-endian ACCESS_DTYPE)."""
    meta = words[i, 1]
    op = np.uint8((meta >> np.uint64(48)) & np.uint64(0xFF))
    line, last = record_span(words[i, 0], meta, np.uint64(line_shift))
    code = op
    if op != STORE:
        code |= EV_NEED
    if op == STORE or op == MODIFY:
        code |= EV_STORE
    while True:
        out_lines[n] = line
        out_codes[n] = code
        n += 1
        if line == last:
            return n
        line += ONE


@helper
def _record_lines(words, i, line_shift):
    a = words[i, 0]
    sz = (words[i, 1] >> np.uint64(32)) & np.uint64(0xFFFF)
    if sz <= ONE:
        return 1
    ls = np.uint64(line_shift)
    return np.int64(((a + sz - ONE) >> ls) - (a >> ls)) + 1


@helper
def _lru_fill_run(c, lv, in_lines, in_codes, e, n_in, out_lines, out_codes, n_out, nlev):
    """Consecutive plain fill requests (code == EV_NEED) from event ``e`` at LRU level ``lv``:
    a bare carry shift each, counters kept in registers. Returns (next event, n_out)."""
    tags, geom, cnt = c[0], c[3], c[6]
    ways = geom[lv, G_WAYS]
    base = geom[lv, G_BASE]
    mask = geom[lv, G_SETMASK]
    last_level = lv == nlev - 1
    hits = 0
    misses = 0
    ev = 0
    j = np.uint64(e)                    # unsigned indices: no negative-index fix-up
    end = np.uint64(n_in)
    k = np.uint64(n_out)
    while j < end and in_codes[j] == EV_NEED:
        line = in_lines[j]
        j += ONE
        b = base + (line & mask) * ways
        hit, victim = _lru_access_nh(tags, b, ways, line, ZERO)
        if hit:
            hits += 1
        else:
            misses += 1
            if not last_level:
                out_lines[k] = line
                out_codes[k] = EV_NEED
                k += ONE
            if victim != EMPTY:
                ev += 1
                if (victim & ONE) != ZERO:
                    cnt[lv, C_WB_OUT] += 1
                    if last_level:
                        cnt[nlev, M_WRITE] += 1
                    else:
                        out_lines[k] = victim >> ONE
                        out_codes[k] = np.uint8(WRITEBACK)
                        k += ONE
    cnt[lv, C_HIT + LOAD] += hits
    cnt[lv, C_MISS + LOAD] += misses
    cnt[lv, C_EVICT] += ev
    if last_level:
        cnt[nlev, M_READ] += misses
    return np.int64(j), np.int64(k)


@helper
def _level_events(c, lv, in_lines, in_codes, n_in, out_lines, out_codes, nlev):
    """Simulate ``n_in`` events at level ``lv`` of a non-inclusive hierarchy; returns the
    number of events written for the level below (the last level counts memory traffic
    instead of writing events)."""
    tags, geom, cnt = c[0], c[3], c[6]
    last_level = lv == nlev - 1
    mem_reads = 0
    mem_writes = 0
    wb = geom[lv, G_WB] != ZERO
    wa = geom[lv, G_WA] != ZERO
    is_lru = geom[lv, G_POLICY] == LRU
    ways = geom[lv, G_WAYS]
    base = geom[lv, G_BASE]
    mask = geom[lv, G_SETMASK]
    n_out = LV0
    h0 = 0              # hits and misses of plain loads (the common case) and evictions,
    m0 = 0              # kept in registers and added at the end
    ev = 0
    e = LV0
    while e < n_in:
        line = in_lines[e]
        code = in_codes[e]
        if code == EV_NEED and is_lru:              # a run of loads' fill requests
            e, n_out = _lru_fill_run(c, lv, in_lines, in_codes, e, n_in, out_lines, out_codes,
                                     n_out, nlev)
            continue
        e += 1
        op = np.int64(code & EV_OPMASK)
        victim = EMPTY
        if op == WRITEBACK:
            hit, victim = _writeback_in(c, lv, line, ONE)
            if hit:
                continue
        else:
            need = (code & EV_NEED) != 0
            store = (code & EV_STORE) != 0
            alloc = need or (store and wa)
            d = ONE if (store and wb) else ZERO
            hit = False
            if alloc and is_lru:                    # no holes without invalidation
                hit, victim = _lru_access_nh(tags, base + (line & mask) * ways, ways, line, d)
            else:
                hit, victim = _slot_access(c, lv, line, op, d, alloc)
            if hit:
                if op == LOAD:
                    h0 += 1
                else:
                    cnt[lv, C_HIT + op] += 1
                need = False
            else:
                if op == LOAD:
                    m0 += 1
                else:
                    cnt[lv, C_MISS + op] += 1
                if alloc:
                    need = True
            if d != ZERO and (hit or alloc):
                store = False
            if last_level:
                if need:
                    mem_reads += 1
                if store:
                    mem_writes += 1
            elif need or store:
                out_lines[n_out] = line
                out_codes[n_out] = np.uint8(op) | (EV_NEED if need else np.uint8(0)) | \
                    (EV_STORE if store else np.uint8(0))
                n_out += 1
        if victim != EMPTY:
            ev += 1
            if (victim & ONE) != ZERO:
                cnt[lv, C_WB_OUT] += 1
                if last_level:
                    mem_writes += 1
                else:
                    out_lines[n_out] = victim >> ONE
                    out_codes[n_out] = np.uint8(WRITEBACK)
                    n_out += 1
    cnt[lv, C_HIT + LOAD] += h0
    cnt[lv, C_MISS + LOAD] += m0
    cnt[lv, C_EVICT] += ev
    cnt[nlev, M_READ] += mem_reads
    cnt[nlev, M_WRITE] += mem_writes
    return n_out


@helper
def _level0_lru(c, words, i, line_shift, nlev, out_lines, out_codes, n, cap, dec_lines,
                dec_codes):
    """Level 0 (LRU, write-back, write-allocate) straight from records, from record ``i`` and
    output event ``n``; stops at the end, when fewer than 2 output slots are left before
    ``cap``, or at a record that spans lines (left to the caller). Returns (i, n, the
    instructions of the records consumed).

    Records are decoded a batch at a time into line numbers and ops, in a loop without a
    branch per record (the spanning-line test folded into an OR over the batch: 380 -> 420-460
    M records/s; 770-830 without any test); a batch holding a record that spans lines is
    decoded again record by record, up to that record.

    Every record is one access: a hit at the MRU way first (no shift; 1.1x on hit-heavy
    traces), then ``_lru_access_nh``; loads count in registers; stores and modifies set the
    dirty bit (a store miss fetches its line as a store-caused read), and they and fetches
    count in memory. One access site in the loop (each inlined copy is compiled again) and
    no calls."""
    tags, geom, cnt = c[0], c[3], c[6]
    ls = np.uint64(line_shift)
    ways = geom[0, G_WAYS]
    base = geom[0, G_BASE]
    mask = geom[0, G_SETMASK]
    single = nlev == 1
    h_load = 0
    m_load = 0
    ev = 0
    wbs = 0
    reads = 0
    writes = 0
    ic = np.uint64(0)
    n_rec = np.uint64(words.shape[0])
    r = np.uint64(i)                    # unsigned indices: no negative-index fix-up
    m = np.uint64(n)
    last = np.uint64(cap - 2)
    dec_cap = np.uint64(dec_lines.shape[0])
    spans = False
    while r < n_rec and m <= last and not spans:
        # decode a batch of records (each emits at most 2 events) into line numbers and ops,
        # then simulate them (bare 1-level kernels: 1.2x over one loop doing both)
        lim = min((np.uint64(cap) - m) >> ONE, dec_cap, n_rec - r)
        q = np.uint64(0)
        crossed = np.uint64(0)          # non-zero: a record of the batch spans lines
        icb = np.uint64(0)
        for j in range(np.int64(lim)):
            u = r + np.uint64(j)
            a = words[u, 0]
            meta = words[u, 1]
            sz = (meta >> np.uint64(32)) & np.uint64(0xFFFF)
            line = a >> ls
            crossed |= ((a + sz - np.uint64(sz != ZERO)) >> ls) ^ line
            dec_lines[j] = line
            dec_codes[j] = np.uint8((meta >> np.uint64(48)) & np.uint64(0xFF))
            icb += meta & np.uint64(0xFFFFFFFF)
        q = lim
        if crossed == ZERO:
            r += lim
            ic += icb
        else:                           # again, up to the record that spans lines
            q = np.uint64(0)
            end = r + lim
            while r < end:
                a = words[r, 0]
                meta = words[r, 1]
                sz = (meta >> np.uint64(32)) & np.uint64(0xFFFF)
                line = a >> ls
                if sz > ONE and ((a + sz - ONE) >> ls) != line:
                    spans = True
                    break
                r += ONE
                dec_lines[q] = line
                dec_codes[q] = np.uint8((meta >> np.uint64(48)) & np.uint64(0xFF))
                ic += meta & np.uint64(0xFFFFFFFF)
                q += ONE
        for j in range(q):
            line = dec_lines[j]
            op = dec_codes[j]
            b = base + (line & mask) * ways
            k = np.int64(op)
            d = ONE if (k == STORE or k == MODIFY) else ZERO
            t = tags[b]
            if (t >> ONE) == line:                      # a hit at the MRU way: no shift
                tags[b] = t | d
                hit, victim = True, EMPTY
            else:
                hit, victim = _lru_access_nh(tags, b, ways, line, d)
            if hit:
                if k == LOAD:
                    h_load += 1
                else:
                    cnt[0, C_HIT + k] += 1
                continue
            if k == LOAD:
                m_load += 1
            else:
                cnt[0, C_MISS + k] += 1
            if single:
                reads += 1
            else:
                out_lines[m] = line
                out_codes[m] = np.uint8(k) | EV_NEED
                m += ONE
            if victim != EMPTY:
                ev += 1
                if (victim & ONE) != ZERO:              # a dirty victim: to memory or level 1
                    wbs += 1
                    if single:
                        writes += 1
                    else:
                        out_lines[m] = victim >> ONE
                        out_codes[m] = np.uint8(WRITEBACK)
                        m += ONE
    cnt[0, C_HIT + LOAD] += h_load
    cnt[0, C_MISS + LOAD] += m_load
    cnt[0, C_EVICT] += ev
    cnt[0, C_WB_OUT] += wbs
    cnt[nlev, M_READ] += reads
    cnt[nlev, M_WRITE] += writes
    return np.int64(r), np.int64(m), ic


@helper
def _spanning_record(c, words, i, line_shift, nlev, side_lines, side_codes, out_lines,
                     out_codes, n):
    """A record that spans lines, through level 0 by the generic path; events appended at
    ``out[n:]``. Returns the new count."""
    m = _record_events(words, i, line_shift, side_lines[0], side_codes[0], LV0)
    got = _level_events(c, LV0, side_lines[0], side_codes[0], m, side_lines[1], side_codes[1], nlev)
    for e in range(got):
        out_lines[n + e] = side_lines[1, e]
        out_codes[n + e] = side_codes[1, e]
    return n + got


@njit(cache=True, _nrt=False)
def run_walk(words, line_shift, c, mode, nlev, lat, out):
    """Simulate a chunk of records, given as their (n, 2) uint64 word view, each access walking
    down the hierarchy (``hier_access``); returns the instructions (sum of icount). An access
    spanning several lines is one per line. The kernel of inclusive and exclusive hierarchies,
    and of any hierarchy timed record by record: when ``out`` has a slot per record, each
    record's data latency is written there, ``lat[level]`` of the level that served its slowest
    line (``lat[nlev]``: memory; ``simkit.core.timed_caches``); a 0-length ``out`` turns that
    off."""
    ls = np.uint64(line_shift)
    n_rec = words.shape[0]
    keep = out.shape[0] > 0
    ic = np.uint64(0)
    for i in range(n_rec):
        meta = words[i, 1]
        ic += meta & np.uint64(0xFFFFFFFF)
        op = np.int64((meta >> np.uint64(48)) & np.uint64(0xFF))
        line, last = record_span(words[i, 0], meta, ls)
        worst = np.int64(0)
        while True:
            served = hier_access(c, line, op, mode, nlev)
            if keep and lat[served] > worst:
                worst = lat[served]
            if line == last:
                break
            line += ONE
        if keep:
            out[i] = worst
    return ic


@njit(cache=True, _nrt=False)
def run_records(words, line_shift, c, nlev, ev_lines, ev_codes, side_lines, side_codes):
    """Simulate a chunk of records of a non-inclusive hierarchy, given as their (n, 2) uint64
    word view, and return its instructions (sum of icount); an access spanning several lines is
    one access per line. Level by level over batches of events (``ev_lines``/``ev_codes``:
    2 x (EV_BATCH << (nlev-1)) buffers; ``side_*``: 2 x MAX_RECORD_LINES). Inclusive and
    exclusive hierarchies take ``run_walk`` (a separate kernel: a non-inclusive run does not
    compile the per-access walk)."""
    geom = c[3]
    n_rec = words.shape[0]
    ic = np.uint64(0)
    fast0 = geom[0, G_POLICY] == LRU and geom[0, G_WB] != ZERO and geom[0, G_WA] != ZERO
    room = 2 * MAX_RECORD_LINES
    i = LV0
    while i < n_rec:
        n = LV0
        if fast0:
            while i < n_rec and n + room <= EV_BATCH:
                i, n, got = _level0_lru(c, words, i, line_shift, nlev, ev_lines[1], ev_codes[1],
                                        n, EV_BATCH, ev_lines[0], ev_codes[0])
                ic += got
                if i < n_rec and n + room <= EV_BATCH:     # stopped at a spanning record
                    ic += words[i, 1] & np.uint64(0xFFFFFFFF)
                    n = _spanning_record(c, words, i, line_shift, nlev, side_lines, side_codes,
                                         ev_lines[1], ev_codes[1], n)
                    i += 1
            src = 1
            first = 1
        else:
            while i < n_rec:
                k = _record_lines(words, i, line_shift)
                if n + k > EV_BATCH:
                    break
                n = _record_events(words, i, line_shift, ev_lines[0], ev_codes[0], n)
                ic += words[i, 1] & np.uint64(0xFFFFFFFF)
                i += 1
            src = 0
            first = 0
        for lv in range(first, nlev):
            n = _level_events(c, lv, ev_lines[src], ev_codes[src], n, ev_lines[1 - src],
                              ev_codes[1 - src], nlev)
            src = 1 - src
    return ic


# ---------------------------------------------------------------------------------------------
# Threads. Every level's set index is the low bits of the line number, so with T = 2^k threads
# (T at most the smallest level's set count S) the lines whose bits log2(S)-k .. log2(S)-1 are
# t map to sets with those bits t at every level, and so do their victims, write-backs and
# back-invalidations (these are the top set bits of the smallest level, so each thread owns
# whole blocks of consecutive sets and no two threads write one host cache line): the
# hierarchy splits exactly into T independent hierarchies over disjoint sets of the same
# arrays, each seeing its own lines in trace order. The chunk is taken a part of T slices at a
# time: thread s partitions slice s by owner into its T buckets (``_split``), then, after a
# barrier, thread d simulates bucket d of every slice in slice order with its own counters and
# scratch; the counters add up to those of one thread. Each record is read once for the
# partition (not once per thread: a thread that read the whole chunk to keep its own lines
# spent ~100 ms of 16M records on it, against ~20 ms for its slice here). Policies that draw
# from a per-level generator or keep a per-level selector (random, BRRIP, DRRIP) are not
# set-local and are not split.


PART_RECORDS = 1 << 18      # records of one part (T slices of PART_RECORDS / T)
NOT_SET_LOCAL = (RANDOM, BRRIP, DRRIP)


@inlined
def _split_two(words, r, e, ls, tsh, tm, out, k0, k1, cap):
    """``_split``'s loop for two threads over single-line records, from record ``r``: each is
    written to both buckets and kept in its owner's (no branch: a branch on the owner
    mispredicts on every other record of a uniform trace). Stops at ``e``, at a full bucket
    (after the record that fills it) or before a record that spans lines. Returns (r, k0, k1)."""
    while r < e:
        a = words[r, 0]
        meta = words[r, 1]
        line, last = record_span(a, meta, ls)
        if line != last:
            break
        r += ONE
        d = (line >> tsh) & tm
        out[0, k0, 0] = a
        out[0, k0, 1] = meta
        out[1, k1, 0] = a
        out[1, k1, 1] = meta
        k0 += ONE - d
        k1 += d
        if k0 >= cap or k1 >= cap:
            break
    return r, k0, k1


@helper
def _split(words, i, end, line_shift, tsh, tm, out, k):
    """Partition records ``i`` .. ``end`` by owner (``(line >> tsh) & tm``) into ``out[d]``,
    ``k[d]`` records each; a record spanning lines gives one single-byte record per line, to
    that line's owner, the record's instructions on its first line's. Stops early when a
    bucket has fewer than ``MAX_RECORD_LINES`` free slots. Returns the next record. Two
    threads take ``_split_two`` between spanning records (2.3x the rate of one loop for
    both cases: 48 against 109 ms per 16M records)."""
    ls = np.uint64(line_shift)
    threads = out.shape[0]
    cap = np.uint64(out.shape[1] - MAX_RECORD_LINES)
    for d in range(threads):
        k[d] = 0
    r = np.uint64(i)
    e = np.uint64(end)
    full = False
    while r < e and not full:
        if threads == 2:
            r, k0, k1 = _split_two(words, r, e, ls, tsh, tm, out, k[0], k[1], cap)
            k[0] = k0
            k[1] = k1
            if r >= e or k0 >= cap or k1 >= cap:
                break
        a = words[r, 0]
        meta = words[r, 1]
        r += ONE
        line, last = record_span(a, meta, ls)
        if line == last:                    # more than two threads
            d = (line >> tsh) & tm
            j = k[d]
            out[d, j, 0] = a
            out[d, j, 1] = meta
            k[d] = j + ONE
            full = j + ONE >= cap
            continue
        piece = (meta & ~np.uint64(0xFFFF_FFFF_FFFF)) | (ONE << np.uint64(32))
        first = meta & np.uint64(0xFFFFFFFF)
        while True:
            d = (line >> tsh) & tm
            j = k[d]
            out[d, j, 0] = line << ls
            out[d, j, 1] = piece | first
            k[d] = j + ONE
            full |= j + ONE >= cap
            first = ZERO
            if line == last:
                break
            line += ONE
    return np.int64(r)


@njit(cache=True, parallel=True)
def run_records_threads(words, line_shift, tshift, c, mode, nlev, part_cnt, part_vict,
                        part_words, part_k, ev_lines, ev_codes, side_lines, side_codes):
    """``run_records`` (or ``run_walk``) split over threads (``part_cnt.shape[0]``, a power of
    two): thread t owns the lines with ``(line >> tshift) & (threads - 1) == t`` and simulates
    them on its disjoint sets of the shared state, with its own counters (``part_cnt[t]``,
    added to ``c``'s and zeroed), victims and event buffers. Parts of ``threads`` slices:
    thread s partitions slice s into ``part_words[s, d, :part_k[s, d]]``; then thread d
    simulates ``part_words[s, d]`` for s in order. Where a slice's partition stopped early (a
    bucket full of spanning records' pieces), that round simulates the slices up to it, and
    the slices after it are partitioned again in the next round, so each thread's records
    keep trace order. Returns the instructions."""
    threads = part_cnt.shape[0]
    n_rec = words.shape[0]
    ics = np.zeros(threads, dtype=np.uint64)
    nolat = np.zeros(0, dtype=np.int64)
    tsh = np.uint64(tshift)
    tm = np.uint64(threads - 1)
    span = part_words.shape[2] - MAX_RECORD_LINES       # records per slice
    cursor = np.zeros(threads, dtype=np.int64)
    nxt = np.zeros(threads, dtype=np.int64)
    p0 = 0
    while p0 < n_rec:
        for s in range(threads):
            cursor[s] = min(p0 + s * span, n_rec)
        while True:
            for s in prange(threads):
                end = min(p0 + (s + 1) * span, n_rec)
                if cursor[s] < end:
                    nxt[s] = _split(words, cursor[s], end, line_shift, tsh, tm, part_words[s],
                                    part_k[s])
                else:
                    nxt[s] = cursor[s]
                    for d in range(threads):
                        part_k[s, d] = 0
            upto = threads
            early = False
            for s in range(threads):
                if nxt[s] < min(p0 + (s + 1) * span, n_rec):
                    upto = s + 1                # slice s stopped early: up to it this round
                    early = True
                    break
            for d in prange(threads):
                ct = (c[0], c[1], c[2], c[3], c[4], c[5], part_cnt[d], part_vict[d])
                for s in range(upto):
                    k = np.int64(part_k[s, d])
                    if k == 0:
                        continue
                    if mode == NON_INCLUSIVE:
                        ics[d] += run_records(part_words[s, d, :k], line_shift, ct, nlev,
                                              ev_lines[d], ev_codes[d], side_lines[d],
                                              side_codes[d])
                    else:
                        ics[d] += run_walk(part_words[s, d, :k], line_shift, ct, mode, nlev,
                                           nolat, nolat)
            for s in range(upto):
                cursor[s] = nxt[s]
            if not early:
                break
        p0 += threads * span
    cnt = c[6]
    ic = np.uint64(0)
    for t in range(threads):
        ic += ics[t]
        for r in range(nlev + 1):
            for j in range(NC):
                cnt[r, j] += part_cnt[t, r, j]
                part_cnt[t, r, j] = 0
    return ic
