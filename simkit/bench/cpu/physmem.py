"""Where this machine puts a table in physical memory: the frames behind a buffer touched in
order, read from ``/proc/self/pagemap``.

The TLB model hands out frames either in first-touch order or scattered over a span
(``MMUConfig.placement`` / ``placement_span_bytes``); which is nearer the real kernel matters
under a hypervisor, where each 2 MiB region of guest-physical memory a table touches needs its
own host translation. ``physical_regions`` measures how many 2 MiB physical regions a table of
4 KiB pages spans here. Page frame numbers need CAP_SYS_ADMIN: without it the kernel reports
them as zero and this returns None.
"""
from __future__ import annotations

import ctypes
import mmap

import numpy as np

PAGE = 4096
MADV_NOHUGEPAGE = 15
PFN_MASK = (1 << 55) - 1
PRESENT = 1 << 63


def physical_regions(nbytes: int, region_bytes: int = 2 << 20) -> dict | None:
    """Touch ``nbytes`` of fresh anonymous memory page by page (4 KiB pages: THP advised off)
    and read its frames: {"pages", "regions" (distinct ``region_bytes`` physical regions),
    "runs" (maximal runs of consecutive frames)}; None when the frames cannot be read (no
    pagemap, or PFNs hidden from this user)."""
    if nbytes < PAGE or nbytes % PAGE:
        raise ValueError(f"nbytes: a positive multiple of {PAGE}, got {nbytes}")
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        view = (ctypes.c_char * nbytes).from_buffer(buf)
        addr = ctypes.addressof(view)
        try:
            ctypes.CDLL(None).madvise(ctypes.c_void_p(addr), ctypes.c_size_t(nbytes),
                                      MADV_NOHUGEPAGE)
        except (OSError, AttributeError):
            pass
        pages = nbytes // PAGE
        arr = np.frombuffer(buf, dtype=np.uint8)
        arr[::PAGE] = 1                                  # first touch, in order
        try:
            with open("/proc/self/pagemap", "rb") as f:
                f.seek(addr // PAGE * 8)
                raw = f.read(pages * 8)
        except OSError:
            return None
        del arr
        del view
    finally:
        try:
            buf.close()
        except BufferError:
            pass
    if len(raw) != pages * 8:
        return None
    entries = np.frombuffer(raw, dtype=np.uint64)
    present = (entries & np.uint64(PRESENT)) != 0
    pfn = (entries & np.uint64(PFN_MASK)).astype(np.int64)
    if not present.all() or not pfn.any():
        return None
    per_region = region_bytes // PAGE
    return {"pages": int(pages), "regions": int(len(np.unique(pfn // per_region))),
            "runs": int(1 + np.count_nonzero(np.diff(pfn) != 1))}
