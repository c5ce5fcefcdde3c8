"""Jitted cache kernels over plain arrays (numpy + numba only).

All slot and geometry arithmetic is uint64: signed indices make numba add a negative-index
fix-up to every array access (measured 1.5x slower here; REFERENCE.md section 6). The kernels
allocate nothing and run with ``_nrt=False``: numba cannot prune the reference counting of the
state arrays across these branches, which cost 5-8x on the miss path.

State of a hierarchy of ``nlev`` levels, every level's sets laid end to end (``CacheState``):

    tags     uint64[slots]     (line << 1) | dirty, or EMPTY; slot = base[lv] + set*ways + way
    repl     uint8[slots]      RRPV of each way (RRIP policies)
    setbits  uint64[sets]      tree-PLRU bits of each set (bit k = node k of the heap)
    geom     uint64[nlev, NG]  set mask, ways, slot base, set base, policy id, write-back, ...
    rng      uint64[nlev]      xorshift64* state per level (random policy, BRRIP)
    psel     int64[nlev]       DRRIP policy-selection counter per level
    cnt      int64[nlev+1, NC] counters; row nlev is memory (lines read, lines written)
    vict     uint64[nlev]      scratch: victims of one access, disposed deepest first

Ordered policies (LRU, FIFO) keep each set's ways in recency/fill order, MRU first, so a hit
or fill is one pass of a carry shift (the fastest layout measured in REFERENCE.md section 6).
The other policies keep lines in place and their state beside them.

Only entry kernels carry ``cache=True``; the helpers are plain ``@njit`` so they compile into
the entry's library, where LLVM inlines them (a call into another cached library cannot be
inlined and costs a copy of every state array's descriptor per call).

Primitives callable from other jitted kernels (the TLB simulator walks page tables through
them): ``lookup``, ``fill``, ``invalidate``, ``hier_access``. ``run_records`` drives a whole
hierarchy over a chunk of trace records.
"""
import numpy as np
from numba import njit

EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
NOSLOT = EMPTY          # lookup() result for an absent line
ONE = np.uint64(1)
ZERO = np.uint64(0)

# geom columns
G_SETMASK, G_WAYS, G_BASE, G_SETBASE, G_POLICY, G_WB, G_WA, G_RRPV_MAX, G_THROTTLE, \
    G_LEADER_STRIDE, G_PSEL_MAX = range(11)
NG = 11

# policies (same numbers as policies.py) and inclusion modes
LRU, FIFO, RANDOM, PLRU, SRRIP, BRRIP, DRRIP = (np.uint64(i) for i in range(7))
NON_INCLUSIVE, INCLUSIVE, EXCLUSIVE = 0, 1, 2

# request ops (trace ops 0..3, plus write-backs arriving from the level above)
LOAD, STORE, IFETCH, MODIFY, WRITEBACK = 0, 1, 2, 3, 4
NOPS = 5

# counter columns: hits and misses per op, evictions, dirty evictions, back-invalidations
C_HIT = 0            # C_HIT + op
C_MISS = NOPS        # C_MISS + op
C_EVICT = 2 * NOPS
C_WB_OUT = C_EVICT + 1
C_BACKINV = C_EVICT + 2
NC = 16
M_READ, M_WRITE = 0, 1   # columns of the memory row


@njit(_nrt=False)
def _rand(rng, lv):
    x = rng[lv]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    rng[lv] = x
    return x * np.uint64(2685821657736338717)


@njit(_nrt=False)
def lookup(c, lv, line):
    """Slot of ``line`` in level ``lv``, or NOSLOT."""
    tags, geom = c[0], c[3]
    ways = geom[lv, G_WAYS]
    b = geom[lv, G_BASE] + (line & geom[lv, G_SETMASK]) * ways
    for w in range(ways):
        if (tags[b + w] >> ONE) == line:
            return b + w
    return NOSLOT


@njit(_nrt=False)
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


@njit(_nrt=False)
def _plru_victim(setbits, sidx, ways):
    bits = setbits[sidx]
    node = ONE
    while node < ways:
        node = (node << ONE) + ((bits >> node) & ONE)
    return node - ways


@njit(_nrt=False)
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
        t = tags[slot]
        j = slot
        while j > set_start:
            tags[j] = tags[j - ONE]
            j -= ONE
        tags[set_start] = t
        return set_start
    if pol == PLRU:
        _plru_touch(setbits, geom[lv, G_SETBASE] + (slot - base) // ways, ways, slot - set_start)
        return slot
    repl[slot] = 0                                  # RRIP hit priority
    return slot


@njit(_nrt=False)
def _rrip_insert_value(c, lv, sidx):
    rng, psel, geom = c[4], c[5], c[3]
    rmax = geom[lv, G_RRPV_MAX]
    pol = geom[lv, G_POLICY]
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


@njit(_nrt=False)
def fill(c, lv, line, dirty):
    """Insert ``line`` (absent) into level ``lv``; returns the displaced tag word or EMPTY."""
    tags, repl, setbits, geom, rng = c[0], c[1], c[2], c[3], c[4]
    ways = geom[lv, G_WAYS]
    sidx = line & geom[lv, G_SETMASK]
    b = geom[lv, G_BASE] + sidx * ways
    packed = (line << ONE) | dirty
    pol = geom[lv, G_POLICY]
    if pol == LRU or pol == FIFO:                  # carry shift, stops at a hole
        carry = packed
        for w in range(ways):
            t = tags[b + w]
            tags[b + w] = carry
            if t == EMPTY:
                return EMPTY
            carry = t
        return carry
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
        repl[b + way] = _rrip_insert_value(c, lv, sidx)
    return victim


@njit(_nrt=False)
def invalidate(c, slot):
    """Drop the line at ``slot``; returns its dirty bit."""
    tags = c[0]
    d = tags[slot] & ONE
    tags[slot] = EMPTY
    return d


@njit(_nrt=False)
def _dispose(c, lv, victim, mode, nlev):
    """Handle a line displaced from level ``lv``: count it, back-invalidate (inclusive),
    and move it down (dirty ones always; every one in exclusive mode) until it settles."""
    tags, cnt, vict = c[0], c[6], c[7]
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
        s = lookup(c, nxt, vline)
        if s != NOSLOT:
            cnt[nxt, C_HIT + WRITEBACK] += 1
            tags[s] |= vd
            return
        cnt[nxt, C_MISS + WRITEBACK] += 1
        victim = fill(c, nxt, vline, vd)
        lv = nxt


@njit(_nrt=False)
def _settle(c, lv0, mode, nlev):
    vict = c[7]
    for lv in range(nlev - 1, lv0 - 1, -1):
        v = vict[lv]
        vict[lv] = EMPTY
        if v != EMPTY:
            _dispose(c, lv, v, mode, nlev)


@njit(_nrt=False)
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
            t = tags[b]
            if (t >> ONE) == line:
                hit = True
                tags[b] = t | d
            else:
                carry = t
                for w in range(ONE, ways):
                    t = tags[b + w]
                    tags[b + w] = carry
                    if (t >> ONE) == line:
                        hit = True
                        break
                    if t == EMPTY:
                        break
                    carry = t
                else:
                    victim = carry
                tags[b] = (t | d) if hit else ((line << ONE) | d)
        else:
            s = lookup(c, lv, line)
            if s != NOSLOT:
                hit = True
                s = touch(c, lv, s, op)
                tags[s] |= d
            elif alloc:
                victim = fill(c, lv, line, d)
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
        _settle(c, 0, mode, nlev)
    return served


@njit(_nrt=False)
def _demand_exclusive(c, line, op, nlev):
    tags, cnt = c[0], c[6]
    is_store = op == STORE or op == MODIFY
    s = lookup(c, 0, line)
    if s != NOSLOT:
        cnt[0, C_HIT + op] += 1
        s = touch(c, 0, s, op)
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
    _dispose(c, 0, fill(c, 0, line, d), EXCLUSIVE, nlev)
    return served


@njit(_nrt=False)
def hier_access(c, line, op, mode, nlev):
    """One access of ``line`` (a line number) by ``op`` through the whole hierarchy.
    Returns the level that served it (``nlev`` = memory)."""
    if mode == EXCLUSIVE:
        return _demand_exclusive(c, line, op, nlev)
    store = op == STORE or op == MODIFY
    return _demand(c, line, op, 0, op != STORE, store, mode, nlev)


@njit(cache=True, _nrt=False)
def run_records(recs, line_shift, c, mode, nlev):
    """Simulate a chunk of ACCESS_DTYPE records. Loads and fetches that hit an LRU first
    level take an inlined carry-shift path; everything else goes through ``hier_access``.
    An access spanning several lines is one access per line."""
    tags, geom, cnt, vict = c[0], c[3], c[6], c[7]
    ls = np.uint64(line_shift)
    fast = geom[0, G_POLICY] == LRU and mode != EXCLUSIVE
    mask0 = geom[0, G_SETMASK]
    ways0 = geom[0, G_WAYS]
    base0 = geom[0, G_BASE]
    hits_load = 0
    hits_ifetch = 0
    for i in range(recs.shape[0]):
        a = recs[i].addr
        sz = recs[i].size
        op = np.int64(recs[i].op)
        line = a >> ls
        last = line
        if sz > 1:
            last = (a + np.uint64(sz - 1)) >> ls
        while True:
            if fast and (op == LOAD or op == IFETCH):
                b = base0 + (line & mask0) * ways0
                t = tags[b]
                if (t >> ONE) == line:
                    if op == LOAD:
                        hits_load += 1
                    else:
                        hits_ifetch += 1
                else:
                    carry = t
                    hit = False
                    victim = EMPTY
                    for w in range(ONE, ways0):
                        t = tags[b + w]
                        tags[b + w] = carry
                        if (t >> ONE) == line:
                            hit = True
                            break
                        if t == EMPTY:
                            break
                        carry = t
                    else:
                        victim = carry
                    if hit:
                        tags[b] = t
                        if op == LOAD:
                            hits_load += 1
                        else:
                            hits_ifetch += 1
                    else:
                        tags[b] = line << ONE
                        cnt[0, C_MISS + op] += 1
                        clean = (victim & ONE) == 0
                        if victim != EMPTY and clean and (mode == NON_INCLUSIVE or nlev == 1):
                            cnt[0, C_EVICT] += 1
                            victim = EMPTY
                        if nlev == 1 and victim == EMPTY:
                            cnt[1, M_READ] += 1
                        else:
                            vict[0] = victim
                            _demand(c, line, op, 1, True, False, mode, nlev)
            else:
                hier_access(c, line, op, mode, nlev)
            if line == last:
                break
            line += ONE
    cnt[0, C_HIT + LOAD] += hits_load
    cnt[0, C_HIT + IFETCH] += hits_ifetch
