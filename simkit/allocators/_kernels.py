"""Jitted allocator kernels over plain arrays (numpy + numba only).

Two entry kernels, each replaying a chunk of allocation events (``simkit.trace.alloc``):

``ptmalloc_run`` -- glibc 2.36 ptmalloc2, main arena, one thread (``models/ptmalloc.py``).
    The brk heap is an array of 16-byte granules; a chunk is described at its first granule::

        csz[g]    int32  chunk size in granules (0: g is not a chunk start)
        st[g]     uint8  INUSE, TCACHE, FAST (these look in use to the heap: PREV_INUSE set),
                         FREE (in the unsorted/small/large bins), or NOCHUNK
        psz[g]    int32  size of the previous chunk when it is FREE (prev_size + !PREV_INUSE)
        fd, bk    int32  list links: doubly linked bins; tcache and fastbins use fd only
    Granules 0..127 are the bin heads (sentinels); heap granule g is at HEAP_BASE+(g-NB)*16.
    touched[p] (uint8) marks heap pages written (by the replayer touching a block, or by the
    allocator writing a header): resident pages; pages above the brk end are released.

``slab_run`` -- size-class slab allocators with out-of-line metadata (SJMalloc-, hardened_malloc-
    and mimalloc-style; ``models/slab.py``): a slab of one class holds ``slots`` slots; a slot is
    chosen by policy id (LOWEST free bit, LIFO free list, RANDOM free slot, SHARDED free list
    with a separate local-free list collected only when the free list is empty); freed slots
    can pass through a (FIFO + random-array) quarantine; large objects get their own mapping.

Both take trace columns (op, id, old_id, size, align) of one chunk and return
``(status, index)``: status OK, GROW (arrays too small: grow them and call again from index),
or BADFREE (a free/realloc of an object that is not live, when ``strict``).
A free's allocator-side check result goes to ``S[S_LASTCHECK]``: CK_OK, CK_DETECTED (the
allocator aborts), CK_CRASH (touches unmapped memory), CK_ACCEPTED (double free taken into a
free list, silently corrupting it). Probes read it; a replay counts it.
"""
import numpy as np
from numba import njit

# Helpers (called only from the two entry kernels) compile without numba's CPython/C wrappers,
# and are called with numpy scalars, never Python literals (a literal argument compiles one more
# specialization of the helper per value): see simkit.cache._kernels.
# Helpers and kernels take no part in numba's reference counting (_nrt=False, so they cannot
# allocate: the Scudo shuffle's order lives in a buffer the caller passes). With it, every
# helper call increfs and decrefs each of its ~20 array arguments with an atomic instruction,
# and those atomics took ~90% of ptmalloc_run's time (perf, Intel VM, 2026-12-07).
helper = njit(no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
YES, NO = np.bool_(True), np.bool_(False)

# status
OK, GROW, BADFREE = 0, 1, 2
# free-check results
CK_OK, CK_DETECTED, CK_CRASH, CK_ACCEPTED = 0, 1, 2, 3
# ops (simkit.trace.alloc.AllocOp)
MALLOC, CALLOC, REALLOC, FREE, MEMALIGN = (np.int64(i) for i in range(5))
NONE_ID = 0xFFFFFFFF

# chunk states
NOCHUNK, INUSE, TCACHE, FAST, FREE_ST = (np.int64(i) for i in range(5))
NB = 128                      # bin heads (sentinels) at granules 0..127
UNSORTED = np.int64(1)
HEAP_BASE = 0x555555559000
MMAP_TOP = 0x7FFFF7000000
PAGE = 4096
GPP = PAGE // 16              # granules per page

# scalar state S[...]
(S_TOP, S_END, S_MMAP_THR, S_TRIM_THR, S_NMMAPS, S_MMAP_NEXT, S_LASTREM, S_HAVEFAST,
 S_LIVE, S_MMAPPED, S_RSS_PAGES, S_PEAK_FOOT, S_PEAK_LIVE, S_PEAK_HEAP, S_INIT, S_LASTCHECK,
 S_EVENTS, S_LIVE_CHUNK, S_PEAK_RSS_LIVE, S_NLIVE, S_PEAK_EVENT, S_PEAK_MMAPPED,
 S_PEAK_END) = range(23)
NS = 24
# parameters P[...]
(P_TCACHE_COUNT, P_TCACHE_BINS, P_FAST_MAX, P_TOP_PAD, P_MMAP_MAX_THR, P_DYNAMIC, P_STRICT,
 P_SAMPLE, P_NMMAPS_MAX) = range(9)
NP = 12
# counters C[...]
(C_MALLOC, C_FREE, C_REALLOC, C_TCACHE_HIT, C_FAST_HIT, C_SMALL_HIT, C_UNSORTED_SCAN,
 C_LARGE_HIT, C_BINMAP_HIT, C_TOP_SPLIT, C_SBRK, C_TRIM, C_MMAP, C_MUNMAP, C_CONSOLIDATE,
 C_COALESCE, C_STEPS, C_FAULTS, C_DETECTED, C_ACCEPTED, C_CRASH, C_REALLOC_INPLACE,
 C_MEMALIGN, C_RELEASED, C_MREMAP, C_BINMAP_STEPS) = range(26)
NC = 26
COUNTER_NAMES = ("mallocs", "frees", "reallocs", "tcache_hits", "fastbin_hits", "smallbin_hits",
                 "unsorted_scanned", "largebin_hits", "binmap_hits", "top_splits", "sbrk_calls",
                 "trims", "mmap_calls", "munmap_calls", "consolidations", "coalesces",
                 "list_steps", "page_faults", "free_detected", "free_accepted_corrupting",
                 "free_crashed", "realloc_in_place", "memaligns", "pages_released",
                 "mremap_calls", "binmap_steps")
# timeline columns
T_EVENT, T_LIVE, T_HEAP, T_MMAPPED, T_RSS = range(5)
NT = 5


@helper
def _req2g(n):
    """request2size in granules: max(32, (n + 8 + 15) & ~15) / 16."""
    s = (n + 8 + 15) & ~15
    if s < 32:
        s = 32
    return s >> 4


@helper
def _bin_index(sg):
    s = sg << 4
    if s < 1024:
        return s >> 4
    if (s >> 6) <= 48:
        return 48 + (s >> 6)
    if (s >> 9) <= 20:
        return 91 + (s >> 9)
    if (s >> 12) <= 10:
        return 110 + (s >> 12)
    if (s >> 15) <= 4:
        return 119 + (s >> 15)
    if (s >> 18) <= 2:
        return 124 + (s >> 18)
    return 126


@helper
def _touch(touched, S, C, g0, g1):
    """Mark the heap pages of granules [g0, g1) resident."""
    p0 = (g0 - NB) // GPP
    p1 = (g1 - 1 - NB) // GPP
    for p in range(p0, p1 + 1):
        if touched[p] == 0:
            touched[p] = 1
            S[S_RSS_PAGES] += 1
            C[C_FAULTS] += 1


@helper
def _unlink(fd, bk, g):
    f = fd[g]
    b = bk[g]
    fd[b] = f
    bk[f] = b


@helper
def _insert_front(fd, bk, head, g):
    f = fd[head]
    fd[g] = f
    bk[g] = head
    bk[f] = g
    fd[head] = g


@helper
def _set_free(csz, st, psz, g, sg):
    csz[g] = sg
    st[g] = FREE_ST
    psz[g + sg] = sg


@helper
def _set_used(csz, st, psz, g, sg, state):
    csz[g] = sg
    st[g] = state
    psz[g + sg] = 0


@helper
def _bin_insert(csz, fd, bk, binmap, C, g, idx):
    """Insert free chunk g into bin idx (small: front; large: sorted, largest first)."""
    binmap[idx] = 1
    if idx < 64 or idx == UNSORTED:
        _insert_front(fd, bk, idx, g)
        return
    sg = csz[g]
    last = bk[idx]
    if last == idx or sg < csz[last]:
        # smallest so far: append at the end
        f = idx
        b = bk[idx]
        fd[g] = f
        bk[g] = b
        fd[b] = g
        bk[f] = g
        return
    x = fd[idx]
    while csz[x] > sg:
        x = fd[x]
        C[C_STEPS] += 1
    if csz[x] == sg:
        x = fd[x]         # after the first of that size (no nextsize relinking)
    b = bk[x]
    fd[g] = x
    bk[g] = b
    fd[b] = g
    bk[x] = g


@helper
def _bin_remove(fd, bk, binmap, g, idx):
    _unlink(fd, bk, g)
    if fd[idx] == idx:
        binmap[idx] = 0


@helper
def _free_to_bins(csz, st, psz, fd, bk, binmap, touched, S, C, P, g):
    """_int_free's path for a chunk that goes to the heap: coalesce, then unsorted or top.
    Returns the size in granules of the resulting free chunk (0 when merged into top)."""
    sg = csz[g]
    if psz[g] > 0:                                    # previous chunk free: merge backward
        pg = g - psz[g]
        _unlink(fd, bk, pg)
        csz[g] = 0
        st[g] = NOCHUNK
        psz[g] = 0
        g = pg
        sg += csz[pg]
        C[C_COALESCE] += 1
    nx = g + sg
    if nx == S[S_TOP]:                                # merge into top
        csz[g] = 0
        st[g] = NOCHUNK
        psz[nx] = 0
        S[S_TOP] = g
        return S[S_END] - g
    if st[nx] == FREE_ST:                             # next chunk free: merge forward
        _unlink(fd, bk, nx)
        nsg = csz[nx]
        csz[nx] = 0
        st[nx] = NOCHUNK
        psz[nx] = 0
        sg += nsg
        C[C_COALESCE] += 1
    _set_free(csz, st, psz, g, sg)
    _insert_front(fd, bk, UNSORTED, g)
    binmap[UNSORTED] = 1
    _touch(touched, S, C, g, g + 1)                   # fd/bk written into the chunk
    return sg


@helper
def _consolidate(csz, st, psz, fd, bk, binmap, touched, fast_head, S, C, P):
    C[C_CONSOLIDATE] += 1
    for i in range(10):
        g = fast_head[i]
        fast_head[i] = -1
        while g >= 0:
            nxt = fd[g]
            C[C_STEPS] += 1
            st[g] = INUSE
            _free_to_bins(csz, st, psz, fd, bk, binmap, touched, S, C, P, g)
            g = nxt
    S[S_HAVEFAST] = 0


@helper
def _trim(csz, st, psz, touched, S, C, P):
    """systrim: give back top memory above top_pad (sbrk with a negative size)."""
    top_sz = (S[S_END] - S[S_TOP]) * 16
    extra = ((top_sz - P[P_TOP_PAD] - 32 - 1) // PAGE) * PAGE
    if extra <= 0:
        return
    new_end = S[S_END] - extra // 16
    p0 = (new_end - NB) // GPP
    p1 = (S[S_END] - NB) // GPP
    for p in range(p0, p1):
        if touched[p]:
            touched[p] = 0
            S[S_RSS_PAGES] -= 1
            C[C_RELEASED] += 1
    S[S_END] = new_end
    C[C_TRIM] += 1


@helper
def _split_take(csz, st, psz, fd, bk, binmap, touched, S, C, g, nb, small_req):
    """Take nb granules from free chunk g (already unlinked); remainder to unsorted."""
    sg = csz[g]
    rem = sg - nb
    if rem < 2:
        _set_used(csz, st, psz, g, sg, INUSE)
        return
    _set_used(csz, st, psz, g, nb, INUSE)
    r = g + nb
    _set_free(csz, st, psz, r, rem)
    _insert_front(fd, bk, UNSORTED, r)
    binmap[UNSORTED] = 1
    _touch(touched, S, C, r, r + 1)
    if small_req:
        S[S_LASTREM] = r


@helper
def _mmap_chunk(S, C, nbytes):
    """mmap a chunk of nbytes (page multiple); returns its address."""
    S[S_MMAP_NEXT] -= nbytes
    S[S_NMMAPS] += 1
    S[S_MMAPPED] += nbytes
    S[S_RSS_PAGES] += nbytes // PAGE
    C[C_MMAP] += 1
    C[C_FAULTS] += nbytes // PAGE
    return S[S_MMAP_NEXT]


@helper
def _int_malloc(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head,
                S, C, P, nb, use_tcache):
    """glibc _int_malloc for nb granules. Returns chunk granule (>= NB) or -(mmap address).
    Its tcache stashing applies only once the thread's tcache exists (``S_INIT``)."""
    use_tcache = use_tcache and S[S_INIT] == 1
    small = nb < 64
    tci = nb - 2
    # fastbins
    if nb <= P[P_FAST_MAX] // 16:
        fi = nb - 2
        g = fast_head[fi]
        if g >= 0:
            fast_head[fi] = fd[g]
            st[g] = INUSE
            C[C_FAST_HIT] += 1
            if use_tcache and tci < P[P_TCACHE_BINS]:   # stash the rest into tcache
                while fast_head[fi] >= 0 and tc_count[tci] < P[P_TCACHE_COUNT]:
                    x = fast_head[fi]
                    fast_head[fi] = fd[x]
                    st[x] = TCACHE
                    fd[x] = tc_head[tci]
                    tc_head[tci] = x
                    tc_count[tci] += 1
                    C[C_STEPS] += 1
            return g
    if small:
        idx = nb
        if fd[idx] != idx:
            g = bk[idx]
            _bin_remove(fd, bk, binmap, g, idx)
            _set_used(csz, st, psz, g, nb, INUSE)
            C[C_SMALL_HIT] += 1
            if use_tcache and tci < P[P_TCACHE_BINS]:
                while fd[idx] != idx and tc_count[tci] < P[P_TCACHE_COUNT]:
                    x = bk[idx]
                    _bin_remove(fd, bk, binmap, x, idx)
                    _set_used(csz, st, psz, x, nb, TCACHE)
                    fd[x] = tc_head[tci]
                    tc_head[tci] = x
                    tc_count[tci] += 1
                    C[C_STEPS] += 1
            return g
    else:
        idx = _bin_index(nb)
        if S[S_HAVEFAST]:
            _consolidate(csz, st, psz, fd, bk, binmap, touched, fast_head, S, C, P)
    while True:
        return_cached = False
        iters = 0
        while bk[UNSORTED] != UNSORTED:
            g = bk[UNSORTED]
            sg = csz[g]
            C[C_UNSORTED_SCAN] += 1
            if small and fd[UNSORTED] == g and g == S[S_LASTREM] and sg > nb + 2:
                _unlink(fd, bk, g)
                binmap[UNSORTED] = 0
                _split_take(csz, st, psz, fd, bk, binmap, touched, S, C, g, nb, YES)
                return g
            _unlink(fd, bk, g)
            if fd[UNSORTED] == UNSORTED:
                binmap[UNSORTED] = 0
            if sg == nb:
                if use_tcache and tci < P[P_TCACHE_BINS] and tc_count[tci] < P[P_TCACHE_COUNT]:
                    _set_used(csz, st, psz, g, sg, TCACHE)
                    fd[g] = tc_head[tci]
                    tc_head[tci] = g
                    tc_count[tci] += 1
                    return_cached = True
                    continue
                _set_used(csz, st, psz, g, sg, INUSE)
                return g
            _bin_insert(csz, fd, bk, binmap, C, g, _bin_index(sg))
            iters += 1
            if iters >= 10000:
                break
        if return_cached:
            g = tc_head[tci]
            tc_head[tci] = fd[g]
            tc_count[tci] -= 1
            st[g] = INUSE
            C[C_TCACHE_HIT] += 1
            return g
        if not small:
            idx = _bin_index(nb)
            first = fd[idx]
            if first != idx and csz[first] >= nb:
                g = bk[idx]
                while csz[g] < nb:
                    g = bk[g]
                    C[C_STEPS] += 1
                # glibc walks size groups by bk_nextsize to the group's first chunk, then
                # takes the second of the group when there is one (no nextsize relinking)
                while bk[g] != idx and csz[bk[g]] == csz[g]:
                    g = bk[g]
                    C[C_STEPS] += 1
                if fd[g] != idx and csz[fd[g]] == csz[g]:
                    g = fd[g]
                _bin_remove(fd, bk, binmap, g, idx)
                _split_take(csz, st, psz, fd, bk, binmap, touched, S, C, g, nb, NO)
                C[C_LARGE_HIT] += 1
                return g
        # binmap search of larger bins
        j = (nb if small else _bin_index(nb)) + 1
        while j < 127:
            if binmap[j]:
                if fd[j] == j:
                    binmap[j] = 0
                else:
                    g = bk[j]
                    _bin_remove(fd, bk, binmap, g, j)
                    _split_take(csz, st, psz, fd, bk, binmap, touched, S, C, g, nb, small)
                    C[C_BINMAP_HIT] += 1
                    return g
            j += 1
            C[C_STEPS] += 1
            C[C_BINMAP_STEPS] += 1          # of list_steps: bins skipped in the binmap
        # top
        top = S[S_TOP]
        tsz = S[S_END] - top
        if tsz >= nb + 2:
            _set_used(csz, st, psz, top, nb, INUSE)
            S[S_TOP] = top + nb
            psz[top + nb] = 0
            _touch(touched, S, C, top + nb, top + nb + 1)   # the new top's header
            C[C_TOP_SPLIT] += 1
            return top
        if S[S_HAVEFAST]:
            _consolidate(csz, st, psz, fd, bk, binmap, touched, fast_head, S, C, P)
            continue
        # sysmalloc
        if nb * 16 >= S[S_MMAP_THR] and S[S_NMMAPS] < P[P_NMMAPS_MAX]:
            size = ((nb * 16 + 8 + PAGE - 1) // PAGE) * PAGE
            return -_mmap_chunk(S, C, size)
        size = nb * 16 + P[P_TOP_PAD] + 32 - tsz * 16
        size = ((size + PAGE - 1) // PAGE) * PAGE
        S[S_END] += size // 16
        C[C_SBRK] += 1
        heap = (S[S_END] - NB) * 16
        if heap > S[S_PEAK_HEAP]:
            S[S_PEAK_HEAP] = heap


@helper
def _free_chunk(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head,
                S, C, P, g, use_tcache):
    """__libc_free / _int_free of heap chunk g with glibc's checks; returns a CK_ code."""
    use_tcache = use_tcache and S[S_INIT] == 1
    if g < NB or g >= S[S_END] or st[g] == NOCHUNK or csz[g] == 0:
        if g == S[S_TOP]:
            return CK_DETECTED            # "double free or corruption (top)"
        return CK_DETECTED                # "free(): invalid pointer / invalid size"
    state = st[g]
    sg = csz[g]
    tci = sg - 2
    if state == TCACHE:
        return CK_DETECTED                # "free(): double free detected in tcache 2"
    if state == FREE_ST:
        return CK_DETECTED                # "double free or corruption (!prev)"
    if state == FAST:
        if fast_head[sg - 2] == g:
            return CK_DETECTED            # "double free or corruption (fasttop)"
    if use_tcache and tci < P[P_TCACHE_BINS] and tc_count[tci] < P[P_TCACHE_COUNT]:
        if state == FAST:
            return CK_ACCEPTED
        st[g] = TCACHE
        fd[g] = tc_head[tci]
        tc_head[tci] = g
        tc_count[tci] += 1
        return CK_OK
    if sg * 16 <= P[P_FAST_MAX]:
        fi = sg - 2
        accepted = state == FAST
        st[g] = FAST
        fd[g] = fast_head[fi]
        fast_head[fi] = g
        S[S_HAVEFAST] = 1
        return CK_ACCEPTED if accepted else CK_OK
    st[g] = INUSE
    merged = _free_to_bins(csz, st, psz, fd, bk, binmap, touched, S, C, P, g)
    if merged * 16 >= 65536:                          # FASTBIN_CONSOLIDATION_THRESHOLD
        if S[S_HAVEFAST]:
            _consolidate(csz, st, psz, fd, bk, binmap, touched, fast_head, S, C, P)
        if (S[S_END] - S[S_TOP]) * 16 >= S[S_TRIM_THR]:
            _trim(csz, st, psz, touched, S, C, P)
    return CK_OK


@helper
def _munmap(S, C, P, size):
    S[S_MMAPPED] -= size
    S[S_RSS_PAGES] -= size // PAGE
    S[S_NMMAPS] -= 1
    C[C_MUNMAP] += 1
    C[C_RELEASED] += size // PAGE
    if P[P_DYNAMIC] and size > S[S_MMAP_THR] and size <= P[P_MMAP_MAX_THR]:
        S[S_MMAP_THR] = size                       # the dynamic mmap threshold
        S[S_TRIM_THR] = 2 * size


@helper
def _place(obj_g, obj_addr, obj_msz, touched, S, C, oid, g_or_addr, req, touch_user):
    """Record where object oid lives and touch its pages (as the replayer does)."""
    if g_or_addr >= 0:
        g = g_or_addr
        obj_g[oid] = g
        obj_addr[oid] = HEAP_BASE + (g - NB) * 16 + 16
        obj_msz[oid] = 0
        if touch_user:
            _touch(touched, S, C, g, g + 1 + (req + 15) // 16)
    else:
        a = -g_or_addr
        obj_g[oid] = -1
        obj_addr[oid] = a + 16
        obj_msz[oid] = ((req + 16 + PAGE - 1) // PAGE) * PAGE


@helper
def _ensure_tcache(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head,
                   S, C, P):
    """The first malloc allocates the tcache_perthread_struct (0x290-byte chunk)."""
    if S[S_INIT] == 0:
        S[S_INIT] = 1
        if P[P_TCACHE_BINS] > 0:
            g = _int_malloc(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count,
                            fast_head, S, C, P, np.int64(0x290 // 16), NO)
            _touch(touched, S, C, g, g + 0x290 // 16)


@helper
def _free_obj(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head, obj_g,
              obj_addr, obj_req, obj_msz, S, C, P, f):
    """Free object f (by its recorded chunk); returns the allocator's CK_ check result."""
    g = obj_g[f]
    if g >= 0:
        _ensure_tcache(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head,
                       S, C, P)                    # __libc_free: MAYBE_INIT_TCACHE
        ck = _free_chunk(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head,
                         S, C, P, g, YES)
    elif obj_msz[f] == 0:
        ck = CK_CRASH                   # munmapped already: reading the header faults
    else:
        _munmap(S, C, P, obj_msz[f])
        obj_msz[f] = 0
        ck = CK_OK
    S[S_LASTCHECK] = ck
    if ck == CK_OK or ck == CK_ACCEPTED:
        if obj_addr[f] != 0:
            S[S_LIVE] -= obj_req[f]
            S[S_NLIVE] -= 1
        obj_addr[f] = 0
    if ck == CK_DETECTED:
        C[C_DETECTED] += 1
    elif ck == CK_ACCEPTED:
        C[C_ACCEPTED] += 1
    elif ck == CK_CRASH:
        C[C_CRASH] += 1
    return ck


@helper
def _realloc_in_place(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head,
                      obj_g, obj_addr, obj_req, obj_msz, S, C, P, f, k, req):
    """_int_realloc's in-place cases (shrink; grow into top or a free next chunk) and mremap
    of an mmapped chunk. Returns True when object k now lives where f was."""
    nb = _req2g(req)
    g = obj_g[f]
    if g < 0:
        ms = obj_msz[f]
        if ms == 0:
            return False
        newsz = ((nb * 16 + 8 + PAGE - 1) // PAGE) * PAGE      # mremap: stays mmapped
        S[S_MMAPPED] += newsz - ms
        S[S_RSS_PAGES] += (newsz - ms) // PAGE
        if newsz > ms:
            C[C_FAULTS] += (newsz - ms) // PAGE
        elif newsz < ms:
            C[C_RELEASED] += (ms - newsz) // PAGE
        if newsz != ms:
            C[C_MREMAP] += 1
        obj_g[k] = -1
        obj_addr[k] = obj_addr[f]
        obj_msz[k] = newsz
        obj_msz[f] = 0
    else:
        if st[g] != INUSE:
            return False
        sg = csz[g]
        if sg < nb:
            nx = g + sg
            if nx == S[S_TOP] and S[S_END] - nx + sg >= nb + 2:
                _set_used(csz, st, psz, g, nb, INUSE)
                S[S_TOP] = g + nb
                psz[g + nb] = 0
                _touch(touched, S, C, g + nb, g + nb + 1)
                sg = nb
            elif st[nx] == FREE_ST and sg + csz[nx] >= nb:
                _unlink(fd, bk, nx)
                sg = sg + csz[nx]
                csz[nx] = 0
                st[nx] = NOCHUNK
                psz[nx] = 0
                _set_used(csz, st, psz, g, sg, INUSE)
            else:
                return False
        if sg - nb >= 2:                                       # split off the tail, free it
            _set_used(csz, st, psz, g, nb, INUSE)
            r = g + nb
            _set_used(csz, st, psz, r, sg - nb, INUSE)
            _free_chunk(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head,
                        S, C, P, r, YES)
        obj_g[k] = g
        obj_addr[k] = obj_addr[f]
        obj_msz[k] = 0
        _touch(touched, S, C, g, g + 1 + (req + 15) // 16)
    S[S_LIVE] += req - obj_req[f]
    obj_req[k] = req
    obj_addr[f] = 0
    C[C_REALLOC_INPLACE] += 1
    return True


@helper
def _malloc_obj(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head, obj_g,
                obj_addr, obj_req, obj_msz, S, C, P, o, k, req, al):
    """malloc / calloc / memalign, and realloc's new block (o == REALLOC): object k of req
    bytes. malloc and calloc set up the tcache on first use (MAYBE_INIT_TCACHE); memalign with
    alignment > 16 and realloc's _int_malloc do not (glibc 2.36)."""
    if o == MALLOC or o == CALLOC or (o == MEMALIGN and al <= 16):
        _ensure_tcache(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head,
                       S, C, P)
    nb = _req2g(req)
    tci = nb - 2
    if o == MEMALIGN and al > 16:
        C[C_MEMALIGN] += 1
        big = _req2g(nb * 16 + al + 32)       # _int_malloc(av, nb + alignment + MINSIZE)
        g = _int_malloc(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count,
                        fast_head, S, C, P, big, YES)
        if g >= 0:
            mem = HEAP_BASE + (g - NB) * 16 + 16
            if mem % al != 0:
                amem = ((mem + al - 1) // al) * al
                lead = (amem - mem) // 16
                if lead < 2:
                    amem += al
                    lead = (amem - mem) // 16
                sg = csz[g]
                ng = g + lead
                _set_used(csz, st, psz, g, lead, INUSE)
                _set_used(csz, st, psz, ng, sg - lead, INUSE)
                _free_chunk(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count,
                            fast_head, S, C, P, g, YES)
                g = ng
            sg = csz[g]
            if sg - nb > 2:                              # size > nb + MINSIZE
                _set_used(csz, st, psz, g, nb, INUSE)
                r = g + nb
                _set_used(csz, st, psz, r, sg - nb, INUSE)
                _free_chunk(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count,
                            fast_head, S, C, P, r, YES)
    elif o == MALLOC or o == MEMALIGN:
        if tci < P[P_TCACHE_BINS] and tc_head[tci] >= 0:
            g = tc_head[tci]
            tc_head[tci] = fd[g]
            tc_count[tci] -= 1
            st[g] = INUSE
            C[C_TCACHE_HIT] += 1
        else:
            g = _int_malloc(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count,
                            fast_head, S, C, P, nb, YES)
    else:     # calloc and realloc's new block: _int_malloc directly (no tcache_get first;
        # _int_malloc's own stashing into the tcache still happens, as in glibc)
        g = _int_malloc(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count,
                        fast_head, S, C, P, nb, YES)
    _place(obj_g, obj_addr, obj_msz, touched, S, C, k, g, req, YES)
    obj_req[k] = req
    S[S_LIVE] += req
    S[S_NLIVE] += 1


# _nrt=False here too: a kernel with NRT increfs each array it passes to a helper (and helpers
# inherit the flag).
@njit(cache=True, _nrt=False)
def ptmalloc_run(op, oid, old, size, align, start, csz, st, psz, fd, bk, binmap, touched,
                 tc_head, tc_count, fast_head, obj_g, obj_addr, obj_req, obj_msz, S, C, P, T,
                 nt, out_addr):
    """Replay events start.. of one chunk. Returns (status, index, timeline rows used).
    ``out_addr`` (length 0: off) receives the address each allocating event returned."""
    cap = csz.shape[0]
    sample = P[P_SAMPLE]
    n = op.shape[0]
    for i in range(start, n):
        o = op[i]
        k = oid[i]
        req = size[i]
        if o != FREE:
            # the brk heap grows only for requests below the mmap threshold (sysmalloc)
            grow = req + align[i]
            if grow >= S[S_MMAP_THR] and S[S_NMMAPS] < P[P_NMMAPS_MAX]:
                grow = 0
            need = S[S_END] + (grow + P[P_TOP_PAD]) // 16 + 4 * GPP
            if need >= cap or (need - NB) // GPP + 2 >= touched.shape[0]:
                return GROW, i, nt
        S[S_LASTCHECK] = CK_OK
        if o == FREE:
            if P[P_STRICT] and obj_addr[k] == 0:
                return BADFREE, i, nt
            C[C_FREE] += 1
            _free_obj(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head,
                      obj_g, obj_addr, obj_req, obj_msz, S, C, P, k)
        elif o == REALLOC and old[i] != NONE_ID:
            f = old[i]
            if P[P_STRICT] and obj_addr[f] == 0:
                return BADFREE, i, nt
            C[C_REALLOC] += 1
            if not _realloc_in_place(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count,
                                     fast_head, obj_g, obj_addr, obj_req, obj_msz, S, C, P,
                                     f, k, req):
                _malloc_obj(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count,
                            fast_head, obj_g, obj_addr, obj_req, obj_msz, S, C, P, REALLOC, k,
                            req, np.int64(0))
                g = obj_g[f]
                gn = obj_g[k]
                if g >= 0 and gn >= 0 and st[g] == INUSE and gn == g + csz[g]:
                    # "avoid copy if newp is next chunk after oldp": merge, split, free tail
                    nb = _req2g(req)
                    tot = csz[g] + csz[gn]
                    csz[gn] = 0
                    st[gn] = NOCHUNK
                    _set_used(csz, st, psz, g, tot, INUSE)
                    if tot - nb >= 2:
                        _set_used(csz, st, psz, g, nb, INUSE)
                        _set_used(csz, st, psz, g + nb, tot - nb, INUSE)
                        _free_chunk(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count,
                                    fast_head, S, C, P, g + nb, YES)
                    obj_g[k] = g
                    obj_addr[k] = obj_addr[f]
                    obj_addr[f] = 0
                    S[S_LIVE] -= obj_req[f]
                    S[S_NLIVE] -= 1
                    C[C_REALLOC_INPLACE] += 1
                else:
                    _free_obj(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count,
                              fast_head, obj_g, obj_addr, obj_req, obj_msz, S, C, P, f)
        else:
            C[C_MALLOC] += 1
            _malloc_obj(csz, st, psz, fd, bk, binmap, touched, tc_head, tc_count, fast_head,
                        obj_g, obj_addr, obj_req, obj_msz, S, C, P,
                        MALLOC if o == REALLOC else o, k, req, align[i])
        if out_addr.shape[0] > 0 and o != FREE:
            out_addr[i] = obj_addr[k]
        _foot(S)
        if sample > 0 and S[S_EVENTS] % sample == 0 and nt < T.shape[0]:
            _sample(S, T, nt, (S[S_END] - NB) * 16)
            nt += 1
        S[S_EVENTS] += 1
    return OK, n, nt


@helper
def _foot(S):
    foot = S[S_RSS_PAGES] * PAGE
    if foot > S[S_PEAK_FOOT]:
        S[S_PEAK_FOOT] = foot
        S[S_PEAK_RSS_LIVE] = S[S_LIVE]
        S[S_PEAK_EVENT] = S[S_EVENTS]           # the peak's timeline row (always plotted)
        S[S_PEAK_MMAPPED] = S[S_MMAPPED]
        S[S_PEAK_END] = S[S_END]
    if S[S_LIVE] > S[S_PEAK_LIVE]:
        S[S_PEAK_LIVE] = S[S_LIVE]


@helper
def _sample(S, T, nt, heap_bytes):
    """One timeline row (event, live, heap, mmapped, RSS) of either model."""
    T[nt, T_EVENT] = S[S_EVENTS]
    T[nt, T_LIVE] = S[S_LIVE]
    T[nt, T_HEAP] = heap_bytes
    T[nt, T_MMAPPED] = S[S_MMAPPED]
    T[nt, T_RSS] = S[S_RSS_PAGES] * PAGE


# ---- slab allocators (SJMalloc-, hardened_malloc-, mimalloc-style) ---------------------------
# policies
POL_LOWEST, POL_LIFO, POL_RANDOM, POL_SHARDED = 0, 1, 2, 3
SLAB_BASE = 0x7E0000000000
# slot states
SL_FREE, SL_USED, SL_QUAR = 0, 1, 2
# slab scalars Q[...]
(Q_NSLABS, Q_NEXT_ADDR, Q_NPAGES, Q_RNG, Q_LARGE_NEXT, Q_NSLOTS, Q_SLABS_SINCE_GUARD,
 Q_LARGE_MAPPED, Q_LC_NEXT, Q_POOL_N) = range(10)
# what happens to an empty slab beyond the kept ones (R_POOL)
POOL_NONE, POOL_RESIDENT, POOL_PURGED = 0, 1, 2
NQ = 12
# slab parameters R[...]
(R_POLICY, R_HEADER, R_CANARY, R_QFIFO, R_QRAND, R_GUARD, R_LARGE_ROUND, R_LARGE_GUARD,
 R_EMPTY_KEPT, R_DETECT_DF, R_DETECT_INV, R_STRICT, R_SAMPLE, R_ZERO, R_EXTEND,
 R_LARGE_CACHE, R_MAXSLOTS, R_POOL, R_WAF, R_LARGE_CACHE_MAX, R_SHUFFLE) = range(21)
NR = 21
# slab counters (reuse C_ names where they mean the same)
(D_MALLOC, D_FREE, D_REALLOC, D_SLAB_NEW, D_SLAB_PURGE, D_LARGE_MAP, D_LARGE_UNMAP, D_STEPS,
 D_FAULTS, D_DETECTED, D_ACCEPTED, D_CRASH, D_QUAR, D_COLLECT, D_ZEROED_BYTES,
 D_REALLOC_INPLACE, D_BITMAP_WORDS, D_MPROTECT, D_MADVISE, D_REMAP, D_RELEASED,
 D_WAF_BYTES) = range(22)
ND = 22
SLAB_COUNTER_NAMES = ("mallocs", "frees", "reallocs", "slabs_created", "slabs_purged",
                      "mmap_calls", "munmap_calls", "list_steps", "page_faults", "free_detected",
                      "free_accepted_corrupting", "free_crashed", "quarantined", "local_collects",
                      "zeroed_bytes", "realloc_in_place", "bitmap_words", "mprotect_calls",
                      "madvise_calls", "remap_calls", "pages_released", "checked_bytes")


@helper
def _rand(Q):
    x = Q[Q_RNG]
    x ^= (x << 13) & 0x7FFFFFFFFFFFFFFF
    x ^= x >> 7
    x ^= (x << 17) & 0x7FFFFFFFFFFFFFFF
    x &= 0x7FFFFFFFFFFFFFFF
    if x == 0:
        x = 88172645463325252
    Q[Q_RNG] = x
    return x


@helper
def _stouch(touched, S, D, a0, a1):
    """Mark slab-area pages of addresses [a0, a1) resident (written). A page only read before
    (state 2: the kernel's shared zero page) faults again, copy on write."""
    p0 = (a0 - SLAB_BASE) // PAGE
    p1 = (a1 - 1 - SLAB_BASE) // PAGE
    for p in range(p0, p1 + 1):
        if touched[p] != 1:
            touched[p] = 1
            S[S_RSS_PAGES] += 1
            D[D_FAULTS] += 1


@helper
def _sread(touched, D, a0, a1):
    """Read slab-area addresses [a0, a1): a page never touched faults in the shared zero page
    (state 2: a fault, not resident)."""
    p0 = (a0 - SLAB_BASE) // PAGE
    p1 = (a1 - 1 - SLAB_BASE) // PAGE
    for p in range(p0, p1 + 1):
        if touched[p] == 0:
            touched[p] = 2
            D[D_FAULTS] += 1


@helper
def _slot_touch(touched, S, D, R, base, a, req, slot_end, fresh):
    """The pages an allocation in slot [base, slot_end) writes: the block as the replayer
    touches it and the canary at the end of the slot (hardened_malloc's ``set_canary``); before
    both, when ``fresh`` (a newly chosen slot) and the write-after-free check is on, a read of
    the whole slot up to its canary."""
    if fresh and R[R_WAF]:
        _sread(touched, D, base, slot_end - R[R_CANARY])
    _stouch(touched, S, D, base, a + req)
    if R[R_CANARY] > 0:
        _stouch(touched, S, D, slot_end - R[R_CANARY], slot_end)


@helper
def _new_slab(cls_slots, cls_bytes, slab_cls, slab_addr, slab_first, slab_nfree, slab_head,
              slab_local, slab_ext, slab_next, slab_prev, slot_st, slot_next, cls_head, pool, Q,
              R, D, c, scratch):
    s = Q[Q_NSLABS]
    Q[Q_NSLABS] = s + 1
    nsl = cls_slots[c]
    slab_cls[s] = c
    if R[R_GUARD] > 0 and (R[R_POOL] == POOL_NONE or Q[Q_POOL_N] == 0):
        Q[Q_SLABS_SINCE_GUARD] += 1
        if Q[Q_SLABS_SINCE_GUARD] >= R[R_GUARD]:
            Q[Q_NEXT_ADDR] += cls_bytes[c]        # a guard slab: address space, never touched
            Q[Q_SLABS_SINCE_GUARD] = 0
    reused = False
    if R[R_POOL] != POOL_NONE:              # a released slab's range of the same size
        n = Q[Q_POOL_N]
        for j in range(n - 1, max(-1, n - 17), -1):
            if pool[j, 1] == cls_bytes[c]:
                slab_addr[s] = pool[j, 0]
                pool[j, 0] = pool[n - 1, 0]
                pool[j, 1] = pool[n - 1, 1]
                Q[Q_POOL_N] = n - 1
                reused = True
                break
    if not reused:
        slab_addr[s] = Q[Q_NEXT_ADDR]
        Q[Q_NEXT_ADDR] += cls_bytes[c]
    f = Q[Q_NSLOTS]
    slab_first[s] = f
    Q[Q_NSLOTS] = f + nsl
    slab_nfree[s] = nsl
    ext = nsl
    if R[R_EXTEND] > 0:                  # mimalloc: free list extended 4 KiB at a time
        ext = min(nsl, max(4, R[R_EXTEND] * nsl // cls_bytes[c]))
    for k in range(nsl):
        slot_st[f + k] = SL_FREE
        slot_next[f + k] = f + k + 1 if k + 1 < ext else -1
    slab_ext[s] = ext
    slab_head[s] = f
    if R[R_SHUFFLE] > 0 and ext == nsl:  # Scudo: a fresh group's blocks in shuffled order
        order = scratch[:nsl]            # the caller's buffer (no allocation in the kernels)
        for k in range(nsl):
            order[k] = k
        for k in range(nsl - 1, 0, -1):
            j = _rand(Q) % (k + 1)
            t = order[k]
            order[k] = order[j]
            order[j] = t
        for k in range(nsl):
            slot_next[f + order[k]] = f + order[k + 1] if k + 1 < nsl else -1
        slab_head[s] = f + order[0]
    slab_local[s] = -1
    if R[R_GUARD] > 0 and not reused:
        D[D_MPROTECT] += 1        # hardened_malloc: the slab region is reserved PROT_NONE
    # push at the head of the class's list of slabs with free slots
    h = cls_head[c]
    slab_next[s] = h
    slab_prev[s] = -1
    if h >= 0:
        slab_prev[h] = s
    cls_head[c] = s
    D[D_SLAB_NEW] += 1
    return s


@helper
def _slab_unlist(slab_next, slab_prev, cls_head, c, s):
    n = slab_next[s]
    p = slab_prev[s]
    if p >= 0:
        slab_next[p] = n
    else:
        cls_head[c] = n
    if n >= 0:
        slab_prev[n] = p
    slab_next[s] = -2          # not listed
    slab_prev[s] = -1


@helper
def _slab_list(slab_next, slab_prev, cls_head, c, s):
    h = cls_head[c]
    slab_next[s] = h
    slab_prev[s] = -1
    if h >= 0:
        slab_prev[h] = s
    cls_head[c] = s


@njit(cache=True, _nrt=False)
def slab_run(op, oid, old, size, align, start, cls_size, cls_slots, cls_bytes, slab_cls,
             slab_addr, slab_first, slab_nfree, slab_head, slab_local, slab_ext, slab_next,
             slab_prev, slot_st, slot_next, cls_head, cls_empty, touched, qrand, qfifo, qstate,
             lcache, pool, obj_slot, obj_addr, obj_req, obj_msz, obj_res, S, Q, D, R, T, nt,
             out_addr, scratch):
    """Replay events start.. of one chunk through a slab allocator. ``scratch``: int64, at
    least the largest class's slot count (the Scudo shuffle's order)."""
    n = op.shape[0]
    nc = cls_size.shape[0]
    sample = R[R_SAMPLE]
    for i in range(start, n):
        o = op[i]
        k = oid[i]
        req = size[i]
        # capacity: one more slab of the largest class, its slots, and its pages
        if o != FREE:
            if Q[Q_NSLABS] + 2 >= slab_cls.shape[0] or \
                    Q[Q_NSLOTS] + R[R_MAXSLOTS] + 16 >= slot_st.shape[0] \
                    or (Q[Q_NEXT_ADDR] - SLAB_BASE) // PAGE + 2 * (cls_bytes[nc - 1] // PAGE) \
                    + 8 >= touched.shape[0]:
                return GROW, i, nt
        S[S_LASTCHECK] = CK_OK
        fr = NONE_ID
        if o == FREE:
            fr = k
        elif o == REALLOC:
            fr = old[i]
        if fr != NONE_ID and R[R_STRICT] and obj_addr[fr] == 0:
            return BADFREE, i, nt
        if o != FREE:
            # a realloc that still fits its slot stays in place
            if fr != NONE_ID and obj_addr[fr] != 0 and obj_slot[fr] >= 0:
                sl = obj_slot[fr]
                ssz = cls_size[slab_cls[_slab_of(slab_first, Q, sl)]]
                if req + R[R_HEADER] + R[R_CANARY] <= ssz and \
                        2 * (req + R[R_HEADER] + R[R_CANARY]) > ssz:
                    obj_slot[k] = sl
                    obj_addr[k] = obj_addr[fr]
                    obj_msz[k] = 0
                    S[S_LIVE] += req - obj_req[fr]
                    obj_req[k] = req
                    obj_addr[fr] = 0
                    D[D_REALLOC] += 1
                    D[D_REALLOC_INPLACE] += 1
                    a = obj_addr[k]
                    base = a - R[R_HEADER]
                    _slot_touch(touched, S, D, R, base, a, req, base + ssz, NO)
                    if out_addr.shape[0] > 0:
                        out_addr[i] = a
                    _foot(S)
                    if sample > 0 and S[S_EVENTS] % sample == 0 and nt < T.shape[0]:
                        _sample(S, T, nt, np.int64(0))
                        nt += 1
                    S[S_EVENTS] += 1
                    continue
            need = req + R[R_HEADER] + R[R_CANARY]
            # size class: binary search
            lo = 0
            hi = nc
            while lo < hi:
                mid = (lo + hi) // 2
                if cls_size[mid] < need:
                    lo = mid + 1
                else:
                    hi = mid
            c = lo
            if c < nc:
                s = cls_head[c]
                if s < 0:
                    s = _new_slab(cls_slots, cls_bytes, slab_cls, slab_addr, slab_first,
                                  slab_nfree, slab_head, slab_local, slab_ext, slab_next,
                                  slab_prev, slot_st, slot_next, cls_head, pool, Q, R, D, c,
                                  scratch)
                    cls_empty[c] += 1
                if slab_nfree[s] == cls_slots[c] and cls_empty[c] > 0:
                    cls_empty[c] -= 1
                sl = _pick(cls_slots, cls_bytes, slab_first, slab_head, slab_local, slab_ext,
                           slot_st, slot_next, Q, R, D, s, c)
                slot_st[sl] = SL_USED
                if R[R_WAF]:                    # the slot is checked to be still zero
                    D[D_WAF_BYTES] += cls_size[c] - R[R_CANARY]
                slab_nfree[s] -= 1
                if slab_nfree[s] == 0:
                    _slab_unlist(slab_next, slab_prev, cls_head, c, s)
                a = slab_addr[s] + (sl - slab_first[s]) * cls_size[c] + R[R_HEADER]
                obj_slot[k] = sl
                obj_addr[k] = a
                obj_msz[k] = 0
                _slot_touch(touched, S, D, R, a - R[R_HEADER], a, req,
                            a - R[R_HEADER] + cls_size[c], YES)
            else:
                # canaries are a slab slot's (hardened_malloc puts none after large ones)
                m = ((req + R[R_HEADER] + R[R_LARGE_ROUND] - 1) // R[R_LARGE_ROUND]) \
                    * R[R_LARGE_ROUND]
                pages = (req + R[R_HEADER] + PAGE - 1) // PAGE
                best = -1
                for j in range(R[R_LARGE_CACHE]):      # a cached freed mapping that fits
                    if lcache[j, 1] >= m and lcache[j, 1] <= 2 * m and \
                            (best < 0 or lcache[j, 1] < lcache[best, 1]):
                        best = j
                obj_slot[k] = -1
                if best >= 0:
                    obj_addr[k] = lcache[best, 0]
                    obj_msz[k] = lcache[best, 1]
                    res = lcache[best, 2]
                    lcache[best, 1] = 0
                    if pages > res:
                        S[S_RSS_PAGES] += pages - res
                        S[S_MMAPPED] += (pages - res) * PAGE
                        D[D_FAULTS] += pages - res
                        res = pages
                    obj_res[k] = res
                else:
                    Q[Q_LARGE_NEXT] -= m + 2 * R[R_LARGE_GUARD] * PAGE
                    obj_addr[k] = Q[Q_LARGE_NEXT] + R[R_LARGE_GUARD] * PAGE + R[R_HEADER]
                    obj_msz[k] = m
                    obj_res[k] = pages
                    Q[Q_LARGE_MAPPED] += m
                    S[S_RSS_PAGES] += pages
                    S[S_MMAPPED] += pages * PAGE
                    D[D_FAULTS] += pages
                    D[D_LARGE_MAP] += 1
                    if R[R_LARGE_GUARD] > 0:
                        D[D_MPROTECT] += 1      # mapped PROT_NONE with guards, middle made RW
            obj_req[k] = req
            S[S_LIVE] += req
            S[S_NLIVE] += 1
            if o == REALLOC:
                D[D_REALLOC] += 1
            else:
                D[D_MALLOC] += 1
        if fr != NONE_ID:
            if o == FREE:
                D[D_FREE] += 1
            ck = _sfree(cls_size, cls_slots, cls_bytes, slab_cls, slab_addr, slab_first,
                        slab_nfree, slab_head, slab_local, slab_next, slab_prev, slot_st,
                        slot_next, cls_head, cls_empty, touched, qrand, qfifo, qstate, lcache,
                        pool, obj_slot, obj_addr, obj_req, obj_msz, obj_res, S, Q, D, R, fr)
            S[S_LASTCHECK] = ck
            if ck == CK_DETECTED:
                D[D_DETECTED] += 1
            elif ck == CK_ACCEPTED:
                D[D_ACCEPTED] += 1
            elif ck == CK_CRASH:
                D[D_CRASH] += 1
        if out_addr.shape[0] > 0 and o != FREE:
            out_addr[i] = obj_addr[k]
        _foot(S)
        if sample > 0 and S[S_EVENTS] % sample == 0 and nt < T.shape[0]:
            _sample(S, T, nt, np.int64(0))
            nt += 1
        S[S_EVENTS] += 1
    return OK, n, nt


@helper
def _slab_of(slab_first, Q, sl):
    """The slab holding global slot sl (binary search over slab_first, increasing)."""
    lo = 0
    hi = Q[Q_NSLABS] - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if slab_first[mid] <= sl:
            lo = mid
        else:
            hi = mid - 1
    return lo


@helper
def _pick(cls_slots, cls_bytes, slab_first, slab_head, slab_local, slab_ext, slot_st, slot_next,
          Q, R, D, s, c):
    pol = R[R_POLICY]
    f = slab_first[s]
    nsl = cls_slots[c]
    if pol == POL_LIFO or pol == POL_SHARDED:
        x = slab_head[s]
        if x < 0 and slab_local[s] >= 0:
            x = slab_local[s]                   # collect the local-free list (mimalloc)
            slab_local[s] = -1
            D[D_COLLECT] += 1
        if x < 0:                               # extend the free list into fresh slots
            e = slab_ext[s]
            add = nsl - e
            if R[R_EXTEND] > 0:
                add = min(add, max(4, R[R_EXTEND] * nsl // cls_bytes[c]))
            x = f + e
            for j in range(add):
                slot_next[f + e + j] = f + e + j + 1 if j + 1 < add else -1
            slab_ext[s] = e + add
        slab_head[s] = slot_next[x]
        return x
    if pol == POL_RANDOM:
        r = _rand(Q) % nsl
        for j in range(nsl):
            x = f + (r + j) % nsl
            if slot_st[x] == SL_FREE:
                D[D_STEPS] += j
                D[D_BITMAP_WORDS] += j // 64 + 1
                return x
    for j in range(nsl):                        # lowest free slot (bitmap scan)
        if slot_st[f + j] == SL_FREE:
            D[D_STEPS] += j
            D[D_BITMAP_WORDS] += j // 64 + 1
            return f + j
    return -1


@helper
def _release_slot(cls_size, cls_slots, cls_bytes, slab_cls, slab_addr, slab_first, slab_nfree,
                  slab_head, slab_local, slab_next, slab_prev, slot_st, slot_next, cls_head,
                  cls_empty, touched, pool, S, Q, D, R, sl):
    """Return slot sl to its slab (after any quarantine)."""
    s = _slab_of(slab_first, Q, sl)
    c = slab_cls[s]
    slot_st[sl] = SL_FREE
    if R[R_POLICY] == POL_LIFO:
        slot_next[sl] = slab_head[s]
        slab_head[s] = sl
    elif R[R_POLICY] == POL_SHARDED:
        slot_next[sl] = slab_local[s]
        slab_local[s] = sl
    if slab_nfree[s] == 0:
        _slab_list(slab_next, slab_prev, cls_head, c, s)
    slab_nfree[s] += 1
    if slab_nfree[s] == cls_slots[c]:
        cls_empty[c] += 1
        only = cls_head[c] == s and slab_next[s] < 0
        # mimalloc's mi_page_retire: the only page of its size class is not freed
        if cls_empty[c] > R[R_EMPTY_KEPT] and not (R[R_POOL] != POOL_NONE and only):
            cls_empty[c] -= 1
            if R[R_POOL] != POOL_NONE:      # back to the segment: any class may reuse it
                _slab_unlist(slab_next, slab_prev, cls_head, c, s)
                slab_nfree[s] = -1
                n = Q[Q_POOL_N]
                pool[n, 0] = slab_addr[s]
                pool[n, 1] = cls_bytes[c]
                Q[Q_POOL_N] = n + 1
            if R[R_POOL] != POOL_RESIDENT:  # purge: its pages leave the RSS
                p0 = (slab_addr[s] - SLAB_BASE) // PAGE
                for p in range(p0, p0 + (cls_slots[c] * cls_size[c] + PAGE - 1) // PAGE):
                    if touched[p] == 1:
                        S[S_RSS_PAGES] -= 1
                        D[D_RELEASED] += 1
                    touched[p] = 0
                D[D_SLAB_PURGE] += 1
                D[D_MADVISE] += 1           # MADV_DONTNEED (or an mmap over it: one call)


@helper
def _sfree(cls_size, cls_slots, cls_bytes, slab_cls, slab_addr, slab_first, slab_nfree,
           slab_head, slab_local, slab_next, slab_prev, slot_st, slot_next, cls_head, cls_empty,
           touched, qrand, qfifo, qstate, lcache, pool, obj_slot, obj_addr, obj_req, obj_msz,
           obj_res, S, Q, D, R, f):
    sl = obj_slot[f]
    if sl == -1:
        if obj_msz[f] == 0:
            if R[R_DETECT_DF]:
                return CK_DETECTED
            return CK_OK if R[R_LARGE_CACHE] > 0 else CK_CRASH
        m = obj_msz[f]
        res = obj_res[f]
        obj_msz[f] = 0
        slot = -1
        # a mapping above R_LARGE_CACHE_MAX (0: no limit) is unmapped, never cached
        cacheable = R[R_LARGE_CACHE] > 0 and (R[R_LARGE_CACHE_MAX] == 0
                                               or m <= R[R_LARGE_CACHE_MAX])
        for j in range(R[R_LARGE_CACHE] if cacheable else 0):
            if lcache[j, 1] == 0:
                slot = j
                break
        if cacheable and slot < 0:                  # full: unmap the oldest entry
            slot = Q[Q_LC_NEXT] % R[R_LARGE_CACHE]
            Q[Q_LC_NEXT] += 1
            S[S_RSS_PAGES] -= lcache[slot, 2]
            S[S_MMAPPED] -= lcache[slot, 2] * PAGE
            Q[Q_LARGE_MAPPED] -= lcache[slot, 1]
            D[D_LARGE_UNMAP] += 1
            D[D_RELEASED] += lcache[slot, 2]
        if slot >= 0:                               # keep the mapping (resident) for reuse
            lcache[slot, 0] = obj_addr[f]
            lcache[slot, 1] = m
            lcache[slot, 2] = res
        else:
            S[S_RSS_PAGES] -= res
            S[S_MMAPPED] -= res * PAGE
            Q[Q_LARGE_MAPPED] -= m
            D[D_LARGE_UNMAP] += 1
            D[D_RELEASED] += res
            if R[R_LARGE_GUARD] > 0:
                D[D_REMAP] += 1     # hardened_malloc: a PROT_NONE mapping replaces it (region
                                    # quarantine); the munmap comes when it leaves the queue
    else:
        if sl < -1:                                # an interior pointer (probes)
            return CK_DETECTED if R[R_DETECT_INV] else CK_ACCEPTED
        if slot_st[sl] != SL_USED:
            return CK_DETECTED if R[R_DETECT_DF] else (
                CK_ACCEPTED if R[R_POLICY] == POL_LIFO or R[R_POLICY] == POL_SHARDED else CK_OK)
        s = _slab_of(slab_first, Q, sl)
        c = slab_cls[s]
        if R[R_ZERO]:                  # hardened_malloc zeroes the slot up to its canary
            D[D_ZEROED_BYTES] += cls_size[c] - R[R_CANARY]
            base = slab_addr[s] + (sl - slab_first[s]) * cls_size[c]
            _stouch(touched, S, D, base, base + cls_size[c] - R[R_CANARY])
        if R[R_QRAND] + R[R_QFIFO] > 0:          # per-class slab quarantines
            slot_st[sl] = SL_QUAR
            D[D_QUAR] += 1
            ev = sl
            # class c's arrays: qstate[2 nc + 4 c + (0..3)] = random offset, length, queue
            # offset, length (models/slab.py)
            q = 2 * cls_size.shape[0] + 4 * c
            if qstate[q + 1] > 0:
                j = qstate[q] + _rand(Q) % qstate[q + 1]
                ev = qrand[j]
                qrand[j] = sl
            if ev >= 0 and qstate[q + 3] > 0:
                L = qstate[q + 3]
                h = qstate[2 * c]
                o = qstate[q + 2]
                if qstate[2 * c + 1] < L:
                    qfifo[o + (h + qstate[2 * c + 1]) % L] = ev
                    qstate[2 * c + 1] += 1
                    ev = -1
                else:
                    out = qfifo[o + h]
                    qfifo[o + h] = ev
                    qstate[2 * c] = (h + 1) % L
                    ev = out
            if ev >= 0:
                _release_slot(cls_size, cls_slots, cls_bytes, slab_cls, slab_addr, slab_first,
                              slab_nfree, slab_head, slab_local, slab_next, slab_prev, slot_st,
                              slot_next, cls_head, cls_empty, touched, pool, S, Q, D, R, ev)
        else:
            _release_slot(cls_size, cls_slots, cls_bytes, slab_cls, slab_addr, slab_first,
                          slab_nfree, slab_head, slab_local, slab_next, slab_prev, slot_st,
                          slot_next, cls_head, cls_empty, touched, pool, S, Q, D, R, sl)
    if obj_addr[f] != 0:
        S[S_LIVE] -= obj_req[f]
        S[S_NLIVE] -= 1
    obj_addr[f] = 0
    return CK_OK


