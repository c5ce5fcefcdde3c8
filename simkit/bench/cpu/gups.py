"""GUPS (and an embedding gather) timed natively on this machine, for the core model's
validation (``core-validation``).

``csrc/gups_timed.c`` runs the loop of the shipped ``traces/src/gups.c`` (HPCC RandomAccess:
``table[ran & mask] ^= ran`` at LFSR-random indices; independent read-modify-writes) over a
table of 2^k 64-bit words in an anonymous mmap advised ``MADV_NOHUGEPAGE`` (``"4k"``) or
``MADV_HUGEPAGE`` (``"thp"``), and prints the best ns per update of a few timed runs and how
much of the table the kernel backed with huge pages.

The model needs the instructions between two updates: ``instructions_per_update`` reads them
from the compiled loop itself (``objdump``: the loop body is straight-line, so its instruction
count is what every iteration executes).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from simkit.errors import InputError

CSRC = Path(__file__).resolve().parent / "csrc"
COLUMNS = ("table_bytes", "page_kind", "ns_per_update", "thp_backed_bytes", "updates", "reps",
           "instructions_per_update")


def build(program: str = "gups_timed") -> Path:
    """The compiled ``gups_timed`` or ``gather_timed`` (gcc -O2, cached by source hash; see
    ``bench.malloc.build``)."""
    from simkit.bench.malloc.build import build as build_c

    return build_c(program, CSRC)


def instructions_per_update(exe: Path) -> int:
    """Instructions of one iteration of ``kernel``'s loop in ``exe``, counted in its
    disassembly: from the target of the loop's backward branch to that branch, inclusive."""
    objdump = shutil.which("objdump")
    if objdump is None:
        raise InputError("objdump is not on PATH (binutils); it counts the GUPS loop's "
                         "instructions")
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(exe)], capture_output=True,
                          text=True, check=True).stdout
    body = re.search(r"<kernel>:\n(.*?)(?:\n\n|\Z)", text, re.S)
    if body is None:
        raise InputError(f"{exe}: no function 'kernel' in the disassembly")
    insns = []
    for line in body.group(1).splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(\S+)\s*(.*)", line)
        if m:
            insns.append((int(m.group(1), 16), m.group(2), m.group(3)))
    for addr, mnem, arg in insns:
        jump = re.match(r"([0-9a-f]+)\s", arg + " ")
        if mnem.startswith("j") and mnem != "jmp" and jump and int(jump.group(1), 16) < addr:
            target = int(jump.group(1), 16)
            return sum(1 for a, _, _ in insns if target <= a <= addr)
    raise InputError(f"{exe}: no backward branch (loop) in 'kernel'")


def measure_gups(table_bytes, page_kinds=("4k", "thp"), *, updates: int = 2_000_000,
                 reps: int = 5, progress: bool | None = None, program: str = "gups_timed"):
    """Best ns per update for each table size (bytes, powers of two >= 64) and page kind, as
    a tidy frame (``COLUMNS``); runs pinned to one CPU when the OS allows. ``program``
    ``gather_timed``: the embedding gather instead (``measure_gather``)."""
    import pandas as pd

    from simkit.bench.cpu.chase import _progress, pinned

    gather = program == "gather_timed"
    smallest = 256 if gather else 64
    points = [(int(b), k) for b in table_bytes for k in page_kinds]
    for nbytes, kind in points:
        if nbytes < smallest or nbytes & (nbytes - 1):
            raise InputError(f"table_bytes: a power of two >= {smallest}, got {nbytes}")
        if kind not in ("4k", "thp"):
            raise InputError(f"page_kinds: '4k' or 'thp', got {kind!r}")
    exe = build(program)
    ipu = instructions_per_update(exe)
    rows = []
    with _progress(len(points), progress) as bar:
        for nbytes, kind in points:
            log2 = (nbytes if gather else nbytes // 8).bit_length() - 1
            with pinned():
                r = subprocess.run([str(exe), str(log2), str(updates), str(reps), kind],
                                   capture_output=True, text=True, timeout=3600)
            if r.returncode != 0:
                raise InputError(f"{program} {log2} {kind}: {r.stderr.strip()[-200:]}")
            row = json.loads(r.stdout)
            row["instructions_per_update"] = ipu
            rows.append({c: row[c] for c in COLUMNS})
            bar.update(1)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def measure_gather(table_bytes, page_kinds=("4k", "thp"), *, lookups: int = 2_000_000,
                   reps: int = 5, progress: bool | None = None):
    """``csrc/gather_timed.c``, an embedding gather (independent lookups of 128 B rows at
    uniform random indices, each row added into an accumulator), timed like GUPS: best ns per
    lookup per table size (bytes, powers of two >= 256) and page kind, in ``measure_gups``'s
    columns (an "update" is a lookup; ``instructions_per_update`` per lookup)."""
    return measure_gups(table_bytes, page_kinds, updates=lookups, reps=reps, progress=progress,
                        program="gather_timed")
