"""Refuse work that cannot fit, before it starts: memory and free disk, estimated.

``check_fits("--n", need_memory=..., need_disk=..., disk_at=dst)`` raises ``InputError`` naming
the field when the estimate exceeds what this machine has now (``MemAvailable`` from
/proc/meminfo; the free space of the output's file system), instead of a MemoryError, a
swap storm or a full disk hours later.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from simkit.errors import InputError
from simkit.units import format_bytes


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (MemAvailable; else physical)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def free_disk(path: str | os.PathLike) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return 1 << 62


def check_fits(field: str, *, need_memory: int = 0, need_disk: int = 0,
               disk_at: str | os.PathLike | None = None) -> None:
    """InputError naming ``field`` when the estimated memory or disk does not fit."""
    if need_memory:
        have = available_memory()
        if need_memory > have:
            raise InputError(f"{field}: needs about {format_bytes(need_memory)} of memory; "
                             f"{format_bytes(have)} is available")
    if need_disk and disk_at is not None:
        have = free_disk(disk_at)
        if need_disk > have:
            raise InputError(f"{field}: needs about {format_bytes(need_disk)} of disk at "
                             f"{Path(disk_at).parent}; {format_bytes(have)} is free")
