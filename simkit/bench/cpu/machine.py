"""A description of the machine a measurement ran on, read from the OS (no measuring here).

``describe_machine()`` returns a plain, JSON-ready dict: CPU model (``/proc/cpuinfo``), logical
CPUs, cache geometry (``/sys/devices/system/cpu/cpu0/cache/index*/``), TLB geometry where the
OS exposes it, page size, transparent-huge-page mode, kernel, hypervisor flag and date.

TLB geometry comes from, in order:

1. CPUID leaves 0x80000005/0x80000006 (L1/L2 TLB, 4 KiB and 2 MiB pages) and 0x80000019 (1 GiB)
   read through ``/dev/cpu/0/cpuid`` (needs root and the ``cpuid`` driver), on AMD only. Under a
   hypervisor these are the values the hypervisor's CPUID reports.
2. ``/proc/cpuinfo`` "TLB size" (x86-64 Linux, AMD): the kernel's sum of the L2 data-TLB and L2
   instruction-TLB 4 KiB entries from CPUID 0x80000006 EBX (``cpu_detect_cache_sizes`` in
   ``arch/x86/kernel/cpu/common.c``); it cannot be split, so only the sum is reported.
3. Otherwise the TLB entries are ``None`` (unknown); nothing is filled in from tables.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shutil
import struct
import subprocess
from pathlib import Path

SYS_CPU = Path("/sys/devices/system/cpu")
THP_DIR = Path("/sys/kernel/mm/transparent_hugepage")

# CPUID 0x80000006 4-bit associativity codes (Linux arch/x86/kernel/cpu/cacheinfo.c ``assocs``);
# 0xF is fully associative. Codes missing here are reported raw.
_L2_ASSOC = {1: 1, 2: 2, 4: 4, 6: 8, 8: 16, 0xA: 32, 0xB: 48, 0xC: 64, 0xD: 96, 0xE: 128}
FULLY_ASSOCIATIVE = "full"


def _read(path: Path | str, default: str | None = None) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def _cpuinfo(text: str | None = None) -> dict[str, str]:
    """The first processor's ``key: value`` lines from /proc/cpuinfo."""
    text = _read("/proc/cpuinfo", "") if text is None else text
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def _size_bytes(text: str | None) -> int | None:
    """sysfs cache sizes: '32K', '512K', '32768K', '1M'."""
    if not text:
        return None
    m = re.fullmatch(r"(\d+)\s*([KMG]?)", text.strip())
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def cache_geometry(cpu: int = 0) -> list[dict]:
    """One dict per cache of ``cpu`` from sysfs: level, type, size_bytes, ways, line_bytes, sets,
    shared_cpu_list. Empty when sysfs has no cache directory."""
    caches = []
    base = SYS_CPU / f"cpu{cpu}" / "cache"
    for d in sorted(base.glob("index*"), key=lambda p: int(p.name[5:] or 0)):
        caches.append({
            "level": _int(_read(d / "level")),
            "type": _read(d / "type"),
            "size_bytes": _size_bytes(_read(d / "size")),
            "ways": _int(_read(d / "ways_of_associativity")),
            "line_bytes": _int(_read(d / "coherency_line_size")),
            "sets": _int(_read(d / "number_of_sets")),
            "shared_cpu_list": _read(d / "shared_cpu_list"),
        })
    return caches


def _cpuid(leaf: int, cpu: int = 0) -> tuple[int, int, int, int] | None:
    """(eax, ebx, ecx, edx) of CPUID ``leaf`` through the Linux cpuid driver, or None."""
    try:
        fd = os.open(f"/dev/cpu/{cpu}/cpuid", os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.pread(fd, 16, leaf)
    except OSError:
        return None
    finally:
        os.close(fd)
    return struct.unpack("<4I", raw) if len(raw) == 16 else None


def _tlb_fields(reg: int, level: int, page: str, narrow: bool) -> list[dict]:
    """Decode one CPUID TLB register: data TLB in bits [31:16], instruction TLB in [15:0].

    ``narrow`` (0x80000005 EAX/EBX): 8-bit associativity (0xFF = fully) over 8-bit entries.
    Otherwise (0x80000006 EAX/EBX, 0x80000019 EAX/EBX): a 4-bit associativity code over
    12-bit entries.
    """
    out = []
    for kind, shift in (("data", 16), ("instruction", 0)):
        if narrow:
            assoc, entries = (reg >> (shift + 8)) & 0xFF, (reg >> shift) & 0xFF
            ways = FULLY_ASSOCIATIVE if assoc == 0xFF else assoc
        else:
            code, entries = (reg >> (shift + 12)) & 0xF, (reg >> shift) & 0xFFF
            ways = (FULLY_ASSOCIATIVE if code == 0xF
                    else _L2_ASSOC.get(code, f"code {code:#x}"))
        if entries:
            out.append({"level": level, "type": kind, "page": page, "entries": entries,
                        "ways": ways})
    return out


def tlb_geometry(cpuinfo: dict[str, str] | None = None) -> dict:
    """TLB entries as the OS exposes them (see the module docstring); never invented.

    Returns ``{"source": ..., "entries": [...], "l1_dtlb_4k_entries": int | None,
    "l2_dtlb_4k_entries": int | None, "cpuinfo_tlb_size": str | None, "note": ...}``.
    """
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    raw = cpuinfo.get("TLB size")
    result = {"source": None, "entries": [], "l1_dtlb_4k_entries": None,
              "l2_dtlb_4k_entries": None, "cpuinfo_tlb_size": raw, "note": ""}
    if cpuinfo.get("vendor_id") in ("AuthenticAMD", "HygonGenuine"):
        top = _cpuid(0x80000000)
        if top is not None and top[0] >= 0x80000006:
            l1, l2 = _cpuid(0x80000005), _cpuid(0x80000006)
            entries = (_tlb_fields(l1[1], 1, "4K", True) + _tlb_fields(l1[0], 1, "2M", True)
                       + _tlb_fields(l2[1], 2, "4K", False)
                       + _tlb_fields(l2[0], 2, "2M", False))
            if top[0] >= 0x80000019:
                g = _cpuid(0x80000019)
                entries += _tlb_fields(g[0], 1, "1G", False) + _tlb_fields(g[1], 2, "1G", False)
            result["source"] = "cpuid 0x80000005/0x80000006/0x80000019 via /dev/cpu/0/cpuid"
            result["entries"] = entries
            for e in entries:
                if e["type"] == "data" and e["page"] == "4K":
                    result[f"l{e['level']}_dtlb_4k_entries"] = e["entries"]
            result["note"] = ("as reported by CPUID (under a hypervisor: the hypervisor's CPUID); "
                              "the measured knees are the ground truth")
            return result
    m = re.match(r"(\d+)\s+4K pages", raw or "")
    if m:
        result["source"] = "/proc/cpuinfo 'TLB size'"
        result["note"] = ("Linux sums the L2 data-TLB and L2 instruction-TLB 4 KiB entries of "
                          "CPUID 0x80000006 EBX into this one number; the split and the L1 DTLB "
                          "are unknown")
        result["l2_dtlb_plus_itlb_4k_entries"] = int(m.group(1))
        return result
    result["source"] = "unknown"
    result["note"] = "the OS exposes no TLB geometry here"
    return result


def _choice(text: str | None) -> str | None:
    """'always [madvise] never' -> 'madvise'."""
    if not text:
        return None
    m = re.search(r"\[([^\]]+)\]", text)
    return m.group(1) if m else text


def _meminfo_bytes(key: str) -> int | None:
    for line in (_read("/proc/meminfo", "") or "").splitlines():
        if line.startswith(key + ":"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else None
    return None


def _hypervisor_vendor() -> str | None:
    """lscpu's 'Hypervisor vendor' (KVM, Xen, ...), when lscpu is installed."""
    if shutil.which("lscpu") is None:
        return None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"^Hypervisor vendor:\s*(.+)$", out, re.MULTILINE)
    return m.group(1).strip() if m else None


def describe_machine() -> dict:
    """The machine description written into calibration files (a JSON-ready dict)."""
    info = _cpuinfo()
    flags = info.get("flags", "").split()
    uname = platform.uname()
    try:
        online = len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        online = None
    return {
        "cpu_model": info.get("model name") or uname.processor or None,
        "vendor": info.get("vendor_id"),
        "cpu_family": _int(info.get("cpu family")),
        "cpu_model_number": _int(info.get("model")),
        "stepping": _int(info.get("stepping")),
        "microcode": info.get("microcode"),
        "cpu_mhz_reported": float(info["cpu MHz"]) if "cpu MHz" in info else None,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": online,
        "cores_per_socket": _int(info.get("cpu cores")),
        "caches": cache_geometry(0),
        "tlb": tlb_geometry(info),
        "page_size_bytes": os.sysconf("SC_PAGE_SIZE"),
        "huge_page_size_bytes": _meminfo_bytes("Hugepagesize"),
        "thp_enabled": _choice(_read(THP_DIR / "enabled")),
        "thp_defrag": _choice(_read(THP_DIR / "defrag")),
        "memory_bytes": _meminfo_bytes("MemTotal"),
        "kernel": f"{uname.system} {uname.release} {uname.version}",
        "machine": uname.machine,
        "hypervisor": "hypervisor" in flags,
        "hypervisor_vendor": _hypervisor_vendor(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
