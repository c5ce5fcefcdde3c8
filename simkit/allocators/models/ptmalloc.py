"""glibc 2.36 ptmalloc2 (main arena, one thread): what is modelled, and from where.

Source: glibc 2.36 ``malloc/malloc.c`` (REFERENCE 4.2), reimplemented over granule arrays in
``simkit.allocators._kernels.ptmalloc_run``:

- chunks with 16-byte in-band headers (prev_size, size|PREV_INUSE), 16 B alignment, 32 B
  minimum, usable = chunk - 8; ``request2size``;
- the per-thread tcache (64 bins x 7, requests <= 1032 B) in front of malloc and free; the
  0x290-byte ``tcache_perthread_struct`` is the heap's first chunk; calloc and realloc's new
  block bypass the tcache (they call ``_int_malloc``), as in glibc;
- 10 fastbins (used to 128 B), LIFO, not coalesced until ``malloc_consolidate`` (a large
  request with fast chunks present, or a free making a >= 64 KiB chunk);
- the unsorted bin (exact fits returned or stashed into tcache, the last-remainder rule for
  small requests, others sorted into bins), 62 small bins, 63 large bins kept sorted, best fit
  in the request's large bin, then the binmap search of larger bins, splitting with the
  remainder to the unsorted bin; stashing of same-size small/fast chunks into the tcache;
- coalescing with free neighbours and the top chunk on free; ``sysmalloc``: brk growth by
  ``nb + top_pad + MINSIZE`` rounded to pages; ``systrim`` above the trim threshold;
- mmapped chunks from the mmap threshold (128 KiB), raised dynamically by frees of mmapped
  chunks up to 32 MiB (trim threshold = 2x), realloc of mmapped chunks by mremap;
- _int_realloc in place (shrink, grow into top or a free next chunk), memalign by
  over-allocation and giving back the leader and tail;
- free's integrity checks, as results for the security probes: tcache double free (key),
  fasttop, !prev (next chunk's PREV_INUSE clear), top, invalid pointer/size; a second free of
  an mmapped chunk faults.

Not modelled: threads and arenas (every event is the main arena's), the exact per-bin order
of equal-size large chunks (no ``fd_nextsize`` skip list), ``M_PERTURB``, malloc_trim().

RSS model: a heap page is resident once the replayer (which touches every page of each block)
or the allocator (a header) writes it, until the brk end moves below it; mmapped chunks are
resident while mapped.
"""
from __future__ import annotations

import numpy as np

from simkit.allocators import _kernels as K
from simkit.allocators.config import PtmallocConfig


class PtmallocEngine:
    """State arrays of one ptmalloc heap and the calls into ``ptmalloc_run``."""

    kernel = staticmethod(K.ptmalloc_run)
    counter_names = K.COUNTER_NAMES

    def __init__(self, cfg: PtmallocConfig, objects: int, strict: bool = True,
                 sample_every: int = 0):
        self.cfg = cfg
        cap = 1 << 16
        self.csz = np.zeros(cap, np.int32)
        self.st = np.zeros(cap, np.uint8)
        self.psz = np.zeros(cap, np.int32)
        self.fd = np.zeros(cap, np.int32)
        self.bk = np.zeros(cap, np.int32)
        for b in range(K.NB):
            self.fd[b] = self.bk[b] = b
        self.binmap = np.zeros(K.NB, np.uint8)
        self.touched = np.zeros(cap // K.GPP + 8, np.uint8)
        self.tc_head = np.full(64, -1, np.int64)
        self.tc_count = np.zeros(64, np.int64)
        self.fast_head = np.full(10, -1, np.int64)
        self.S = np.zeros(K.NS, np.int64)
        self.S[K.S_TOP] = K.NB
        self.S[K.S_END] = K.NB
        self.S[K.S_MMAP_THR] = cfg.mmap_threshold_bytes
        self.S[K.S_TRIM_THR] = cfg.trim_threshold_bytes
        self.S[K.S_MMAP_NEXT] = K.MMAP_TOP
        self.C = np.zeros(K.NC, np.int64)
        P = np.zeros(K.NP, np.int64)
        P[K.P_TCACHE_COUNT] = cfg.tcache_count
        P[K.P_TCACHE_BINS] = cfg.tcache_bins if cfg.tcache_count > 0 else 0
        P[K.P_FAST_MAX] = cfg.fastbin_max_bytes
        P[K.P_TOP_PAD] = cfg.top_pad_bytes
        P[K.P_MMAP_MAX_THR] = cfg.mmap_threshold_max_bytes
        P[K.P_DYNAMIC] = int(cfg.dynamic_mmap_threshold)
        P[K.P_STRICT] = int(strict)
        P[K.P_SAMPLE] = sample_every
        P[K.P_NMMAPS_MAX] = cfg.mmap_max
        self.P = P
        self.objects(objects)

    def objects(self, n: int) -> None:
        """Make room for object ids < n."""
        have = len(getattr(self, "obj_g", ()))
        if n <= have:
            return
        n = max(n, 2 * have, 16)
        for name, dt, fill in (("obj_g", np.int64, -1), ("obj_addr", np.int64, 0),
                               ("obj_req", np.int64, 0), ("obj_msz", np.int64, 0)):
            new = np.full(n, fill, dt)
            if have:
                new[:have] = getattr(self, name)
            setattr(self, name, new)

    def grow(self) -> None:
        cap = len(self.csz)
        new = 2 * cap
        for name in ("csz", "st", "psz", "fd", "bk"):
            a = getattr(self, name)
            b = np.zeros(new, a.dtype)
            b[:cap] = a
            setattr(self, name, b)
        t = np.zeros(new // K.GPP + 8, np.uint8)
        t[:len(self.touched)] = self.touched
        self.touched = t

    def call(self, op, oid, old, size, align, start, T, nt, out_addr):
        return K.ptmalloc_run(op, oid, old, size, align, start, self.csz, self.st, self.psz,
                              self.fd, self.bk, self.binmap, self.touched, self.tc_head,
                              self.tc_count, self.fast_head, self.obj_g, self.obj_addr,
                              self.obj_req, self.obj_msz, self.S, self.C, self.P, T, nt,
                              out_addr)

    # ---- outputs --------------------------------------------------------------------------
    def metadata_bytes(self) -> int:
        """In-band headers of the chunks in use (8 B size field each; prev_size overlaps the
        previous chunk's user data), the tcache_perthread_struct, and main_arena (2,200 B in
        libc's data: 10 fastbins, 254 bin pointers, binmap, top, counters)."""
        inuse = int(np.count_nonzero((self.st == K.INUSE) | (self.st == K.TCACHE)
                                     | (self.st == K.FAST)))
        return 8 * inuse + (0x290 if self.S[K.S_INIT] and self.P[K.P_TCACHE_BINS] else 0) + 2200

    def heap_bytes(self) -> int:
        return int((self.S[K.S_END] - K.NB) * 16)

    def usable_size(self, oid: int) -> int:
        g = int(self.obj_g[oid])
        if g >= 0:
            return int(self.csz[g]) * 16 - 8
        return int(self.obj_msz[oid]) - 16

    def metadata_distance(self, oid: int) -> int:
        """Bytes past the end of the request before the next chunk's header (size field)."""
        return self.usable_size(oid) - int(self.obj_req[oid])

    def interior(self, oid: int, new: int, offset: int) -> None:
        """Make object ``new`` an interior pointer ``offset`` bytes into ``oid`` (probes)."""
        self.objects(new + 1)
        g = int(self.obj_g[oid])
        self.obj_g[new] = g + offset // 16 if g >= 0 else -1
        self.obj_addr[new] = self.obj_addr[oid] + offset
        self.obj_req[new] = 1
        self.obj_msz[new] = 0
