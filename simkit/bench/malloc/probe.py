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

# Measured on Debian 12 (docs/sources.md, "Allocators"), extended with what each allocator's
# documentation states for the newer probes (``DOCUMENTED_BY`` names the source of each row);
# every entry is a behaviour the probe measures, compared by ``compare_reference``.
_HM = {"double_free_32": "caught", "invalid_free": "caught", "zero_on_free": "yes",
       "double_free_delayed_32": "caught", "double_free_interleaved_32": "caught",
       "invalid_free_stack": "caught", "invalid_free_unaligned": "caught",
       "overflow_1_24": "caught", "freed_block_pointer_32": "no",
       "guard_after_262144": 0, "guard_before_262144": 0, "uaf_read_faults_262144": "yes",
       "malloc0_write_faults": "yes"}
REFERENCE_TABLE = {
    "glibc": {"double_free_32": "caught", "double_free_4096": "caught",
              "double_free_262144": "crash", "invalid_free": "caught", "reuse_32": "yes",
              "reuse_4096": "yes", "reuse_262144": "no", "randomized": "no",
              "zero_on_free": "no", "fastbin_dup_returned_32": "yes",
              "double_free_delayed_32": "caught", "invalid_free_unaligned": "caught",
              "freed_block_pointer_32": "no", "cross_run_random_32": "no"},
    "jemalloc": {"double_free_32": "no", "double_free_4096": "no", "double_free_262144": "no",
                 "invalid_free": "no", "reuse_32": "yes", "reuse_4096": "yes",
                 "reuse_262144": "no", "randomized": "no", "zero_on_free": "no"},
    "mimalloc": {"double_free_32": "no", "double_free_4096": "no", "double_free_262144": "no",
                 "invalid_free": "no", "reuse_32": "no", "reuse_4096": "no",
                 "reuse_262144": "yes", "randomized": "no", "zero_on_free": "no",
                 "freed_block_pointer_32": "yes"},
    "tcmalloc": {"double_free_32": "no", "double_free_4096": "no", "double_free_262144": "no",
                 "invalid_free": "no", "reuse_32": "yes", "reuse_4096": "yes",
                 "reuse_262144": "yes", "randomized": "no", "zero_on_free": "no",
                 "freelist_poison_32": "returned"},
    "scudo": {"double_free_32": "caught", "double_free_4096": "caught",
              "double_free_262144": "caught", "invalid_free": "caught", "reuse_32": "yes",
              "reuse_4096": "yes", "reuse_262144": "yes", "randomized": "yes",
              "zero_on_free": "no", "guard_after_262144": 0, "freed_block_pointer_32": "no",
              "cross_run_random_32": "yes"},
    "efence": {"guard_after_32": 0, "guard_after_262144": 0, "uaf_read_faults_32": "yes",
               "uaf_read_faults_262144": "yes", "overflow_1_24": "crash"},
    "hardened_malloc": {**_HM, "reuse_32": "no", "randomized": "yes",
                        "write_after_free_64": "caught", "cross_run_random_32": "yes"},
    "hardened_malloc-light": {**_HM, "randomized": "no", "write_after_free_64": "no"},
}
DOCUMENTED_BY = {
    "glibc": "glibc 2.36 malloc.c checks (tcache key, fasttop only, misaligned_chunk), "
             "safe-linking; measured on Debian 12",
    "jemalloc": "no checks outside debug builds (REFERENCE 4.3); measured on Debian 12",
    "mimalloc": "non-secure build: in-band free list, no checks (readme: secure mode adds "
                "them); measured on Debian 12",
    "tcmalloc": "in-band singly linked free lists, no checks; measured on Debian 12",
    "scudo": "ScudoHardenedAllocator.rst: checksummed in-band header, randomized regions, "
             "guard pages around secondary allocations, zero_contents off",
    "efence": "electric-fence(3): a guard page after every block, freed memory protected",
    "hardened_malloc": "GrapheneOS README: out-of-line metadata, deterministic invalid and "
                       "double-free detection, canaries, zero-on-free with write-after-free "
                       "check, slot randomization, guard slabs, large allocations guarded "
                       "and protected on free, malloc(0) to a PROT_NONE region",
    "hardened_malloc-light": "config/light.mk: as default minus slot randomization, "
                             "quarantines and the write-after-free check",
}

PROBE_SIZES = (32, 4096, 262144)


def _probe(exe: Path, lib: str, *args) -> tuple[str, str]:
    r = subprocess.run([str(exe), *map(str, args)], env=preload_env(lib), capture_output=True,
                       text=True, timeout=60)
    if r.returncode < 0:
        sig = -r.returncode
        # SIGABRT: abort() on detection; SIGILL: electric-fence's EF_Abort
        return ("caught" if sig in (signal.SIGABRT, signal.SIGILL) else "crash"), \
            r.stdout.strip()
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
    row.update(_more_real_probes(exe, lib))
    return row


def _flag(res: str, out: str, yes: str = "yes") -> str:
    """A probe that prints 1/0 when it survives: its answer, else how it ended."""
    if res != "no":
        return res
    return yes if out.split()[:1] == ["1"] else "no"


def _int(res: str, out: str):
    return int(out) if res == "no" and out.lstrip("-").isdigit() else res


def _more_real_probes(exe: Path, lib: str) -> dict:
    row = {}
    row["double_free_delayed_32"] = _probe(exe, lib, "df_delayed", 32)[0]
    row["double_free_interleaved_32"] = _probe(exe, lib, "df_interleaved", 32)[0]
    res, out = _probe(exe, lib, "waf", 64)
    # survived: "no" (the slot came back and nothing noticed) or "not reused" in 20,000
    row["write_after_free_64"] = res if res != "no" else ("no" if out == "1" else "not reused")
    row["freelist_poison_32"] = _flag(*_probe(exe, lib, "poison", 32), yes="returned")
    row["overflow_1_24"] = _probe(exe, lib, "overflow1")[0]
    for key, args in (("guard_after_32", (32, 1)), ("guard_after_262144", (262144, 1)),
                      ("guard_before_262144", (262144, -1))):
        row[key] = _int(*_probe(exe, lib, "guard", *args))
    for n in (32, 262144):
        row[f"uaf_read_faults_{n}"] = _flag(*_probe(exe, lib, "uaf_read", n))
    row["reuse_cycle_262144"] = _int(*_probe(exe, lib, "reuse_cycle", 262144))
    res, out = _probe(exe, lib, "malloc0")
    words = out.split()
    row["malloc0"] = words[0] if res == "no" and words else res
    row["malloc0_write_faults"] = ("yes" if words[1:] == ["1"] else "no") if res == "no" \
        else res
    row["invalid_free_stack"] = _probe(exe, lib, "free_stack")[0]
    row["invalid_free_unaligned"] = _probe(exe, lib, "free_unaligned")[0]
    row["freed_block_pointer_32"] = _flag(*_probe(exe, lib, "freed_ptr", 32))
    runs = [_probe(exe, lib, "layout") for _ in range(2)]
    row["cross_run_random_32"] = ("yes" if runs[0][1] != runs[1][1] else "no") \
        if all(r[0] == "no" for r in runs) else runs[0][0]
    return row


def compare_reference(row: dict) -> list[tuple[str, str, str, bool]]:
    """(property, published value, ours, equal) for every property ``REFERENCE_TABLE`` lists for
    the row's allocator."""
    ref = REFERENCE_TABLE.get(row["allocator"], {})
    return [(k, str(v), str(row.get(k)), str(row.get(k)) == str(v)) for k, v in ref.items()]
