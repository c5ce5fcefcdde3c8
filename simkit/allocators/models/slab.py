"""Slab allocators with out-of-line metadata: one model, three designs as presets.

``simkit.allocators._kernels.slab_run`` over per-slab and per-slot arrays. Each size class
has slabs of ``slots`` equal slots (the slab size grows from ``slab_bytes`` in powers of two to
hold ``slab_min_slots``, up to ``slab_max_bytes``; classes from ``single_slot_bytes`` get one
slot). Metadata lives outside the slabs (a descriptor per slab, ``slot_meta_bits`` per slot),
except an optional in-band ``header_bytes``. A free slot is chosen by policy:

- ``lowest``: the lowest free slot of the slab (a bitmap scan) -- SJMalloc-style [assumed:
  the paper's design is public only as "out-of-band metadata" (REFERENCE 4.1); size classes,
  slab sizes and the bitmap are our assumptions, after jemalloc's];
- ``random``: a random free slot -- hardened_malloc (GrapheneOS README: slot randomization,
  FIFO + random-array quarantines, zero-on-free, 8 B canaries, guard slabs, deterministic
  invalid/double-free detection from the slot bitmap; REFERENCE 4.3); ``hardened-light``
  drops the quarantines and randomization (its ``light`` config);
- ``sharded``: mimalloc's free-list sharding (Leijen et al., "Mimalloc: Free List Sharding in
  Action", 2019): each page keeps a ``free`` list to allocate from and a ``local_free`` list
  that frees go to; ``local_free`` becomes the free list only when ``free`` is empty, so a
  freed block is not reused immediately and allocation stays a pop;
- ``lifo``: a plain per-slab free list (reuse the last freed slot).

The class's slabs with free slots form a list; allocation takes the most recently listed.
Empty slabs beyond ``empty_slabs_kept`` per class are purged (their pages leave the RSS).
Objects above the last class get their own mapping rounded to ``large_round_bytes`` (plus
``large_guard_pages`` of address space on each side); ``large_cache`` freed mappings stay
resident for reuse (mimalloc keeps freed spans in their segment).

Not modelled: threads (mimalloc's per-thread heaps and cross-thread delayed frees; every event
is one thread's), mimalloc's segments and arenas and its secure mode, hardened_malloc's
write-after-free check as a detection (its work is counted: ``checked_bytes``), canary values
(only their 8 bytes of space), metadata sealing, and its large-allocation region quarantine
(address space only, not resident). Probe results for these designs come from the model's
mechanisms (slot choice, quarantine, bitmap checks), with ``detects_double_free`` /
``detects_invalid_free`` standing for the out-of-line bitmap checks.
"""
from __future__ import annotations

import numpy as np

from simkit.allocators import _kernels as K
from simkit.allocators.config import SLOT_POLICIES, SlabConfig


def class_geometry(cfg: SlabConfig):
    """(size, slots, slab bytes) per class."""
    size = np.asarray(cfg.size_classes, np.int64)
    slots = np.zeros(len(size), np.int64)
    sbytes = np.zeros(len(size), np.int64)
    for i, s in enumerate(size):
        if cfg.class_slots:
            n = int(cfg.class_slots[i])
            slots[i], sbytes[i] = n, -(-n * int(s) // 4096) * 4096
            continue
        if cfg.single_slot_bytes and s >= cfg.single_slot_bytes:
            b = -(-int(s) // 4096) * 4096
            slots[i], sbytes[i] = 1, b
            continue
        b = cfg.slab_bytes
        while b < s * cfg.slab_min_slots and b < cfg.slab_max_bytes:
            b *= 2
        b = max(b, -(-int(s) // 4096) * 4096)
        slots[i], sbytes[i] = b // s, b
    return size, slots, sbytes


def quarantine_lengths(cfg: SlabConfig, size):
    """Slab quarantine lengths per class (random array, FIFO queue). hardened_malloc scales
    both by the class: length << (clz64(size) - (63 - 17)) (h_malloc.c, extended size classes),
    8,192 x the configured length for 16 B down to 1x for 128 KiB (``quarantine_scaled``)."""
    size = np.asarray(size, np.int64)
    shift = np.zeros(len(size), np.int64)
    if cfg.quarantine_scaled:
        shift = np.maximum(17 - np.floor(np.log2(size)).astype(np.int64), 0)
    return cfg.quarantine_random << shift, cfg.quarantine_fifo << shift


class SlabEngine:
    kernel = staticmethod(K.slab_run)
    counter_names = K.SLAB_COUNTER_NAMES

    def __init__(self, cfg: SlabConfig, objects: int, strict: bool = True,
                 sample_every: int = 0):
        self.cfg = cfg
        self.cls_size, self.cls_slots, self.cls_bytes = class_geometry(cfg)
        nc = len(self.cls_size)
        ns, nslot = 256, max(1 << 16, 4 * int(self.cls_slots.max()))
        self.scratch = np.zeros(int(self.cls_slots.max()) + 1, np.int64)   # the shuffle's order
        self.slab_cls = np.zeros(ns, np.int64)
        self.slab_addr = np.zeros(ns, np.int64)
        self.slab_first = np.zeros(ns, np.int64)
        self.slab_nfree = np.zeros(ns, np.int64)
        self.slab_head = np.full(ns, -1, np.int64)
        self.slab_local = np.full(ns, -1, np.int64)
        self.slab_ext = np.zeros(ns, np.int64)
        self.lcache = np.zeros((max(cfg.large_cache, 1), 3), np.int64)
        self.pool = np.zeros((ns, 2), np.int64)
        self.slab_next = np.full(ns, -2, np.int64)
        self.slab_prev = np.full(ns, -1, np.int64)
        self.slot_st = np.zeros(nslot, np.uint8)
        self.slot_next = np.full(nslot, -1, np.int64)
        self.cls_head = np.full(nc, -1, np.int64)
        self.cls_empty = np.zeros(nc, np.int64)
        self.touched = np.zeros(1 << 14, np.uint8)
        rlen, flen = quarantine_lengths(cfg, self.cls_size)
        self.qrand = np.full(max(int(rlen.sum()), 1), -1, np.int64)
        self.qfifo = np.full(max(int(flen.sum()), 1), -1, np.int64)
        # per class: FIFO head and count, then random offset, length, queue offset, length
        self.qstate = np.zeros(6 * nc, np.int64)
        q = self.qstate[2 * nc:].reshape(nc, 4)
        q[:, 0] = np.cumsum(rlen) - rlen
        q[:, 1] = rlen
        q[:, 2] = np.cumsum(flen) - flen
        q[:, 3] = flen
        self.S = np.zeros(K.NS, np.int64)
        self.Q = np.zeros(K.NQ, np.int64)
        self.Q[K.Q_NEXT_ADDR] = K.SLAB_BASE
        self.Q[K.Q_LARGE_NEXT] = K.MMAP_TOP
        self.Q[K.Q_RNG] = (cfg.seed * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) & ((1 << 63) - 1) or 1
        self.C = np.zeros(K.ND, np.int64)
        R = np.zeros(K.NR, np.int64)
        R[K.R_POLICY] = SLOT_POLICIES.index(cfg.slot_policy)
        R[K.R_HEADER] = cfg.header_bytes
        R[K.R_CANARY] = cfg.canary_bytes
        R[K.R_QFIFO] = cfg.quarantine_fifo
        R[K.R_QRAND] = cfg.quarantine_random
        R[K.R_GUARD] = cfg.guard_slab_interval
        R[K.R_LARGE_ROUND] = cfg.large_round_bytes
        R[K.R_LARGE_GUARD] = cfg.large_guard_pages
        R[K.R_EMPTY_KEPT] = cfg.empty_slabs_kept
        R[K.R_DETECT_DF] = int(cfg.detects_double_free)
        R[K.R_DETECT_INV] = int(cfg.detects_invalid_free)
        R[K.R_STRICT] = int(strict)
        R[K.R_SAMPLE] = sample_every
        R[K.R_ZERO] = int(cfg.zero_on_free)
        R[K.R_EXTEND] = cfg.extend_bytes
        R[K.R_LARGE_CACHE] = cfg.large_cache
        R[K.R_MAXSLOTS] = int(self.cls_slots.max())
        R[K.R_POOL] = ("class", "resident", "purged").index(cfg.empty_slabs)
        R[K.R_WAF] = int(cfg.write_after_free_check)
        R[K.R_LARGE_CACHE_MAX] = cfg.large_cache_max_bytes
        R[K.R_SHUFFLE] = int(cfg.shuffle_fresh)
        self.P = R
        self.objects(objects)

    def objects(self, n: int) -> None:
        have = len(getattr(self, "obj_slot", ()))
        if n <= have:
            return
        n = max(n, 2 * have, 16)
        for name, fill in (("obj_slot", -1), ("obj_addr", 0), ("obj_req", 0), ("obj_msz", 0),
                           ("obj_res", 0)):
            new = np.full(n, fill, np.int64)
            if have:
                new[:have] = getattr(self, name)
            setattr(self, name, new)

    def grow(self) -> None:
        def g(name, fill):
            a = getattr(self, name)
            b = np.full(2 * len(a), fill, a.dtype)
            b[:len(a)] = a
            setattr(self, name, b)
        for name, fill in (("slab_cls", 0), ("slab_addr", 0), ("slab_first", 0),
                           ("slab_nfree", 0), ("slab_head", -1), ("slab_local", -1),
                           ("slab_ext", 0),
                           ("slab_next", -2), ("slab_prev", -1), ("slot_st", 0),
                           ("slot_next", -1), ("touched", 0)):
            g(name, fill)
        pool = np.zeros((len(self.slab_cls), 2), np.int64)
        pool[:len(self.pool)] = self.pool
        self.pool = pool
        need = (int(self.Q[K.Q_NEXT_ADDR]) - K.SLAB_BASE) // K.PAGE \
            + 4 * int(self.cls_bytes[-1]) // K.PAGE + 64
        if len(self.touched) < need:
            t = np.zeros(2 * need, np.uint8)
            t[:len(self.touched)] = self.touched
            self.touched = t

    def call(self, op, oid, old, size, align, start, T, nt, out_addr):
        return K.slab_run(op, oid, old, size, align, start, self.cls_size, self.cls_slots,
                          self.cls_bytes, self.slab_cls, self.slab_addr, self.slab_first,
                          self.slab_nfree, self.slab_head, self.slab_local, self.slab_ext,
                          self.slab_next, self.slab_prev, self.slot_st, self.slot_next,
                          self.cls_head, self.cls_empty, self.touched, self.qrand, self.qfifo,
                          self.qstate, self.lcache, self.pool, self.obj_slot, self.obj_addr,
                          self.obj_req,
                          self.obj_msz, self.obj_res, self.S, self.Q, self.C, self.P, T, nt,
                          out_addr, self.scratch)

    # ---- outputs --------------------------------------------------------------------------
    def metadata_bytes(self) -> int:
        ns = int(self.Q[K.Q_NSLABS])
        slots = int(self.Q[K.Q_NSLOTS])
        c = self.cfg
        live_large = int(np.count_nonzero(self.obj_msz))
        return (ns * c.slab_meta_bytes + (slots * c.slot_meta_bits + 7) // 8
                + c.header_bytes * int(self.S[K.S_NLIVE]) + 32 * live_large
                + 16 * len(self.cls_size))

    def heap_bytes(self) -> int:
        return int(self.Q[K.Q_NEXT_ADDR] - K.SLAB_BASE + self.Q[K.Q_LARGE_MAPPED])

    def usable_size(self, oid: int) -> int:
        sl = int(self.obj_slot[oid])
        if sl >= 0:
            s = K._slab_of.py_func(self.slab_first, self.Q, sl)
            return int(self.cls_size[self.slab_cls[s]]) - self.cfg.header_bytes \
                - self.cfg.canary_bytes
        return int(self.obj_msz[oid]) - self.cfg.header_bytes

    def metadata_distance(self, oid: int) -> int | None:
        """Bytes past the request before allocator metadata: None (out-of-line: an overflow
        reaches the next slot's data, never metadata); a canary counts as metadata (its
        corruption is detected at free)."""
        if self.cfg.canary_bytes:
            return self.usable_size(oid) - int(self.obj_req[oid])
        if self.cfg.header_bytes:
            return self.usable_size(oid) - int(self.obj_req[oid])
        return None

    def interior(self, oid: int, new: int, offset: int) -> None:
        self.objects(new + 1)
        self.obj_slot[new] = -2
        self.obj_addr[new] = self.obj_addr[oid] + offset
        self.obj_req[new] = 1
        self.obj_msz[new] = 0
