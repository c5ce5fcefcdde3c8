"""Security probes against the real allocators, and the published table they are checked
against.

Each probe (``csrc/malloc_probe.c``) runs in a fresh process under ``LD_PRELOAD``; the exit
signal tells "caught" (SIGABRT: the allocator detected it, or a non-zero exit) from "crash"
(SIGSEGV/SIGBUS) from "no". The sequences are the ones ``simkit.allocators.security`` replays
on the models (its docstring lists them), so the rows line up column for column.

``REFERENCE_TABLE`` is the allocator x property table measured on Debian 12 (docs/sources.md,
"Allocators"); ``compare_reference`` checks a measured row against it.
"""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from simkit.bench.malloc.build import build
from simkit.bench.malloc.libraries import library, missing_reason, preload_env
from simkit.errors import InputError

# Measured on Debian 12 (docs/sources.md, "Allocators")
REFERENCE_TABLE = {
    "glibc": {"double_free_32": "caught", "double_free_4096": "caught",
              "double_free_262144": "crash", "invalid_free": "caught", "reuse_32": "yes",
              "reuse_4096": "yes", "reuse_262144": "no", "randomized": "no",
              "zero_on_free": "no"},
    "jemalloc": {"double_free_32": "no", "double_free_4096": "no", "double_free_262144": "no",
                 "invalid_free": "no", "reuse_32": "yes", "reuse_4096": "yes",
                 "reuse_262144": "no", "randomized": "no", "zero_on_free": "no"},
    "mimalloc": {"double_free_32": "no", "double_free_4096": "no", "double_free_262144": "no",
                 "invalid_free": "no", "reuse_32": "no", "reuse_4096": "no",
                 "reuse_262144": "yes", "randomized": "no", "zero_on_free": "no"},
    "tcmalloc": {"double_free_32": "no", "double_free_4096": "no", "double_free_262144": "no",
                 "invalid_free": "no", "reuse_32": "yes", "reuse_4096": "yes",
                 "reuse_262144": "yes", "randomized": "no", "zero_on_free": "no"},
    "scudo": {"double_free_32": "caught", "double_free_4096": "caught",
              "double_free_262144": "caught", "invalid_free": "caught", "reuse_32": "yes",
              "reuse_4096": "yes", "reuse_262144": "yes", "randomized": "yes",
              "zero_on_free": "no"},
    # documented only (docs/sources.md); its model is the "hardened" preset
    "hardened_malloc": {"double_free_32": "caught", "invalid_free": "caught", "reuse_32": "no",
                        "randomized": "yes", "zero_on_free": "yes"},
}

PROBE_SIZES = (32, 4096, 262144)


def _probe(exe: Path, lib: str, *args) -> tuple[str, str]:
    r = subprocess.run([str(exe), *map(str, args)], env=preload_env(lib), capture_output=True,
                       text=True, timeout=60)
    if r.returncode < 0:
        sig = -r.returncode
        return ("caught" if sig == signal.SIGABRT else "crash"), r.stdout.strip()
    if r.returncode != 0:
        return "caught", r.stdout.strip()          # some allocators _exit(1) on detection
    return "no", r.stdout.strip()


def probe_real(name: str) -> dict:
    """The probe results for one installed allocator: one row of the security table, in the
    terms of ``simkit.allocators.security.probe_model``'s rows."""
    lib = library(name)
    if lib is None:
        raise InputError(missing_reason(name))
    exe = build("malloc_probe")
    row = {"allocator": name, "kind": "real"}
    for n in PROBE_SIZES:
        row[f"double_free_{n}"] = _probe(exe, lib, "double_free", n)[0]
    row["invalid_free"] = _probe(exe, lib, "invalid_free")[0]
    for n in PROBE_SIZES:
        res, out = _probe(exe, lib, "reuse", n)
        row[f"reuse_{n}"] = "yes" if out == "1" else "no"
    res, out = _probe(exe, lib, "reuse_distance", 32)
    row["reuse_distance_32"] = int(out) if out.lstrip("-").isdigit() else -1
    res, out = _probe(exe, lib, "placement")
    row["placement_entropy_bits"] = float(out) if out else float("nan")
    zs = [float(_probe(exe, lib, "zero_on_free", n)[1] or 0) for n in (64, 4096)]
    row["zero_on_free"] = "yes" if min(zs) > 0.99 else "no"
    row["overflow_16_next_free"] = _probe(exe, lib, "overflow", 16)[0]
    row["overflow_16_self_free"] = _probe(exe, lib, "overflow_self", 16)[0]
    res, out = _probe(exe, lib, "fastbin_dup", 32)
    row["double_free_fastbin_32"] = res
    row["fastbin_dup_returned_32"] = "yes" if out == "1" else "no"
    res, out = _probe(exe, lib, "adjacency")
    row["adjacency_32"] = float(out) if out else float("nan")
    row["randomized"] = "yes" if row["placement_entropy_bits"] > 1 else "no"
    row["metadata_distance_32"] = float("nan")      # not observable from outside the allocator
    return row


def compare_reference(row: dict) -> list[tuple[str, str, str, bool]]:
    """(property, published value, ours, equal) for every property ``REFERENCE_TABLE`` lists for
    the row's allocator."""
    ref = REFERENCE_TABLE.get(row["allocator"], {})
    return [(k, v, str(row.get(k)), str(row.get(k)) == v) for k, v in ref.items()]
